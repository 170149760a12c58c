/* args.c -- the driver's argument cursor (see cli.h). */
#include "backend/cli/cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void args_init(SglArgs *a, int argc, char **argv)
{
    a->argc = argc;
    a->argv = argv;
    a->i = 1;
    a->cmd = argc > 0 ? argv[0] : "?";
    a->bad = false;
}

bool args_more(const SglArgs *a) { return a->i < a->argc && !a->bad; }

int args_usage_error(SglArgs *a, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "sglc %s: ", a->cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(see 'sglc %s --help')\n", a->cmd);
    a->bad = true;
    return 2;
}

bool args_positional(SglArgs *a, const char **val)
{
    const char *w = a->argv[a->i];
    if (w[0] == '-' && w[1] != '\0')
        return false;
    *val = w;
    a->i++;
    return true;
}

bool args_flag(SglArgs *a, const char *name)
{
    if (strcmp(a->argv[a->i], name) != 0)
        return false;
    a->i++;
    return true;
}

bool args_str(SglArgs *a, const char *name, const char **val)
{
    const char *w = a->argv[a->i];
    size_t n = strlen(name);
    if (strncmp(w, name, n) != 0)
        return false;
    if (w[n] == '=') {
        *val = w + n + 1;
        a->i++;
        return true;
    }
    if (w[n] != '\0')
        return false;
    if (a->i + 1 >= a->argc) {
        args_usage_error(a, "option %s needs a value", name);
        a->i++;
        return true;
    }
    *val = a->argv[a->i + 1];
    a->i += 2;
    return true;
}

bool args_long(SglArgs *a, const char *name, long lo, long hi, long *val)
{
    const char *s = NULL;
    if (!args_str(a, name, &s))
        return false;
    if (a->bad)
        return true;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || errno == ERANGE)
        args_usage_error(a, "option %s: '%s' is not an integer", name, s);
    else if (v < lo || v > hi)
        args_usage_error(a, "option %s: %ld is out of range [%ld, %ld]", name, v, lo, hi);
    else
        *val = v;
    return true;
}

bool args_double(SglArgs *a, const char *name, double lo, double hi, double *val)
{
    const char *s = NULL;
    if (!args_str(a, name, &s))
        return false;
    if (a->bad)
        return true;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*s == '\0' || *end != '\0' || errno == ERANGE || !isfinite(v))
        args_usage_error(a, "option %s: '%s' is not a number", name, s);
    else if (v < lo || v > hi)
        args_usage_error(a, "option %s: %g is out of range [%g, %g]", name, v, lo, hi);
    else
        *val = v;
    return true;
}

int args_unknown(SglArgs *a)
{
    const char *w = a->argv[a->i];
    if (w[0] == '-')
        return args_usage_error(a, "unknown option '%s'", w);
    return args_usage_error(a, "unexpected argument '%s'", w);
}

bool args_wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
            return true;
    return false;
}

char *cli_read_stream(FILE *f, size_t *len)
{
    size_t cap = 1 << 14, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0)
            break;
        if (n + 1 == cap) {
            char *p = cap < ((size_t)1 << 40) ? realloc(buf, cap * 2) : NULL;
            if (!p) {
                free(buf);
                return NULL;
            }
            buf = p;
            cap *= 2;
        }
    }
    if (buf && ferror(f)) {
        free(buf);
        return NULL;
    }
    if (buf) {
        buf[n] = '\0';
        *len = n;
    }
    return buf;
}

char *cli_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = cli_read_stream(f, len);
    fclose(f);
    return buf;
}

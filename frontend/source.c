/* source.c -- SglSource: file bytes, line table, line:col lookup (see source.h). */
#include "frontend/source.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

SglSource *sgl_source_new(const char *name, const char *bytes, size_t len)
{
    if (len > SGL_MAX_SOURCE_BYTES)
        return NULL;
    SglSource *s = calloc(1, sizeof *s);
    if (!s)
        goto fail;
    s->name = strdup(name ? name : "<input>");
    s->text = malloc(len + 1);
    if (!s->name || !s->text)
        goto fail;
    if (len)
        memcpy(s->text, bytes, len);
    s->text[len] = '\0';
    s->len = (uint32_t)len;
    uint32_t n = 1;
    for (uint32_t i = 0; i < s->len; i++)
        n += s->text[i] == '\n';
    s->line_off = malloc(n * sizeof *s->line_off);
    if (!s->line_off)
        goto fail;
    s->line_off[0] = 0;
    s->n_lines = 1;
    for (uint32_t i = 0; i < s->len; i++)
        if (s->text[i] == '\n')
            s->line_off[s->n_lines++] = i + 1;
    return s;
fail:
    sgl_source_free(s);
    return NULL;
}

void sgl_source_free(SglSource *s)
{
    if (!s)
        return;
    free(s->line_off);
    free(s->text);
    free(s->name);
    free(s);
}

SglSource *sgl_source_read_file(const char *path, char *err, size_t err_cap)
{
    bool is_stdin = strcmp(path, "-") == 0;
    FILE *f = is_stdin ? stdin : fopen(path, "rb");
    char *buf = NULL;
    SglSource *s = NULL;
    size_t len = 0, cap = 1 << 16;
    if (!f) {
        snprintf(err, err_cap, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    buf = malloc(cap);
    if (!buf) {
        snprintf(err, err_cap, "%s: out of memory", path);
        goto out;
    }
    for (;;) {
        if (len == cap) {
            if (cap > SGL_MAX_SOURCE_BYTES) {
                snprintf(err, err_cap, "%s: file is larger than the %u MiB limit", path,
                         SGL_MAX_SOURCE_BYTES >> 20);
                goto out;
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                snprintf(err, err_cap, "%s: out of memory", path);
                goto out;
            }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) {
            if (ferror(f)) {
                snprintf(err, err_cap, "%s: read error: %s", path, strerror(errno));
                goto out;
            }
            break;
        }
    }
    if (len > SGL_MAX_SOURCE_BYTES) {
        snprintf(err, err_cap, "%s: file is larger than the %u MiB limit", path,
                 SGL_MAX_SOURCE_BYTES >> 20);
        goto out;
    }
    s = sgl_source_new(is_stdin ? "<stdin>" : path, buf, len);
    if (!s)
        snprintf(err, err_cap, "%s: out of memory", path);
out:
    free(buf);
    if (!is_stdin)
        fclose(f);
    return s;
}

static uint32_t line_of(const SglSource *s, uint32_t off)
{
    uint32_t lo = 0, hi = s->n_lines; /* line_off[lo] <= off < line_off[hi] */
    while (hi - lo > 1) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (s->line_off[mid] <= off)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

int sgl_utf8_decode(const unsigned char *p, size_t n, uint32_t *cp)
{
    if (n == 0)
        return 0;
    unsigned c = p[0];
    int len;
    uint32_t v, min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
        len = 2, v = c & 0x1F, min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3, v = c & 0x0F, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4, v = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if ((size_t)len > n)
        return 0;
    for (int i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        v = (v << 6) | (p[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    *cp = v;
    return len;
}

/* Counts characters in t[0..n): a valid UTF-8 sequence is one character and
 * so is each invalid byte (the renderer shows those as '?'). */
static uint32_t count_chars(const char *t, uint32_t n)
{
    uint32_t c = 0, cp;
    for (uint32_t i = 0; i < n; c++) {
        int k = sgl_utf8_decode((const unsigned char *)t + i, n - i, &cp);
        i += k ? (uint32_t)k : 1;
    }
    return c;
}

void sgl_source_line_col(const SglSource *s, uint32_t off, uint32_t *line, uint32_t *col)
{
    if (off > s->len)
        off = s->len;
    uint32_t l = line_of(s, off);
    *line = l + 1;
    *col = count_chars(s->text + s->line_off[l], off - s->line_off[l]) + 1;
}

void sgl_source_line(const SglSource *s, uint32_t line, uint32_t *off, uint32_t *len)
{
    if (line < 1)
        line = 1;
    if (line > s->n_lines)
        line = s->n_lines;
    uint32_t start = s->line_off[line - 1];
    uint32_t end = line < s->n_lines ? s->line_off[line] - 1 : s->len;
    if (end > start && s->text[end - 1] == '\r')
        end--;
    *off = start;
    *len = end - start;
}

SglLoc sgl_loc_span(SglLoc a, SglLoc b)
{
    if (!a.src)
        return b;
    if (!b.src || b.src != a.src)
        return a;
    uint32_t lo = a.off < b.off ? a.off : b.off;
    uint32_t ae = a.off + a.len, be = b.off + b.len;
    uint32_t hi = ae > be ? ae : be;
    return sgl_loc(a.src, lo, hi - lo);
}

/* libsgltest.c -- a shared library for the extern (libffi) tests
 * (tests/unit/test_ffi.c): one function per type combination of
 * docs/language.md's extern rules, and one that fails by the documented
 * convention (a str-returning extern returns NULL, errno says why).
 * Returned strings live in thread-local buffers: valid until the next call
 * on the same thread, which is all the caller needs (it copies them).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char buf[512];

int64_t sgltest_add(int64_t a, int64_t b) { return a + b; }

double sgltest_scale(double x, double k) { return x * k; }

bool sgltest_not(bool b) { return !b; }

bool sgltest_is_even(int64_t n) { return n % 2 == 0; }

int64_t sgltest_count(const char *s, const char *sub)
{
    int64_t n = 0;
    size_t len = strlen(sub);
    for (const char *p = s; len && (p = strstr(p, sub)); p += len)
        n++;
    return n;
}

const char *sgltest_greet(const char *name)
{
    snprintf(buf, sizeof buf, "hello, %s", name);
    return buf;
}

/* All four parameter types at once, echoed as text. */
const char *sgltest_describe(const char *name, int64_t n, double x, bool flag)
{
    snprintf(buf, sizeof buf, "%s/%lld/%.3f/%s", name, (long long)n, x, flag ? "yes" : "no");
    return buf;
}

/* The error convention: NULL with errno set. Fails for "" and "fail". */
const char *sgltest_lookup(const char *key)
{
    if (key[0] == '\0') {
        errno = EINVAL;
        return NULL;
    }
    if (strcmp(key, "fail") == 0) {
        errno = ENOENT;
        return NULL;
    }
    snprintf(buf, sizeof buf, "value of %s", key);
    return buf;
}

int64_t sgltest_calls;   /* a data symbol: not a function */

void sgltest_touch(void) { sgltest_calls++; }

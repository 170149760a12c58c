/* dfa.c -- the byte-level DFA: lifecycle, walking, hashing, integrity check
 * and (de)serialization. Deliberately simple: a dense table over byte classes.
 *
 * Serialized layout (all integers little-endian):
 *   "SGLDFA1\0"  u32 n_states  u32 n_classes  u32 start
 *   u8 byte_class[256]  u8 accept[n_states]  i32 trans[n_states * n_classes]
 *   u64 hash
 */
#include "runtime/dfa.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char MAGIC[8] = {'S', 'G', 'L', 'D', 'F', 'A', '1', '\0'};

SglDfa *sgl_dfa_new(int32_t n_states, int32_t n_classes)
{
    if (n_states < 1 || n_states > SGL_DFA_MAX_STATES || n_classes < 1 || n_classes > 256)
        return NULL;
    SglDfa *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->n_states = n_states;
    d->n_classes = n_classes;
    d->trans = malloc((size_t)n_states * (size_t)n_classes * sizeof *d->trans);
    d->accept = calloc((size_t)n_states, 1);
    if (!d->trans || !d->accept) {
        sgl_dfa_free(d);
        return NULL;
    }
    memset(d->trans, 0xff, (size_t)n_states * (size_t)n_classes * sizeof *d->trans);
    return d;
}

void sgl_dfa_free(SglDfa *d)
{
    if (!d)
        return;
    free(d->trans);
    free(d->accept);
    free(d);
}

SglDfa *sgl_dfa_clone(const SglDfa *d)
{
    SglDfa *c = sgl_dfa_new(d->n_states, d->n_classes);
    if (!c)
        return NULL;
    c->start = d->start;
    c->hash = d->hash;
    memcpy(c->byte_class, d->byte_class, 256);
    memcpy(c->trans, d->trans, (size_t)d->n_states * (size_t)d->n_classes * sizeof *d->trans);
    memcpy(c->accept, d->accept, (size_t)d->n_states);
    return c;
}

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

static uint64_t content_hash(const SglDfa *d)
{
    uint64_t h = 0xcbf29ce484222325ull;
    int32_t hdr[3] = {d->n_states, d->n_classes, d->start};
    h = fnv(h, hdr, sizeof hdr);
    h = fnv(h, d->byte_class, 256);
    h = fnv(h, d->accept, (size_t)d->n_states);
    h = fnv(h, d->trans, (size_t)d->n_states * (size_t)d->n_classes * sizeof *d->trans);
    return h;
}

void sgl_dfa_finish(SglDfa *d)
{
    d->hash = content_hash(d);
}

int32_t sgl_dfa_walk(const SglDfa *d, int32_t s, const void *bytes, size_t len)
{
    const uint8_t *b = bytes;
    for (size_t i = 0; i < len && s >= 0; i++)
        s = sgl_dfa_step(d, s, b[i]);
    return s;
}

bool sgl_dfa_accepts(const SglDfa *d, const void *bytes, size_t len)
{
    int32_t s = sgl_dfa_walk(d, d->start, bytes, len);
    return s >= 0 && d->accept[s];
}

bool sgl_dfa_is_empty(const SglDfa *d)
{
    if (d->accept[d->start])
        return false;
    const int32_t *row = d->trans + (size_t)d->start * (size_t)d->n_classes;
    for (int32_t c = 0; c < d->n_classes; c++)
        if (row[c] >= 0)
            return false;
    return true;
}

size_t sgl_dfa_forced(const SglDfa *d, int32_t s, char *buf, size_t cap)
{
    size_t len = 0;
    while (s >= 0 && !d->accept[s] && len < (size_t)d->n_states) {
        int only = -1, n_live = 0;
        const int32_t *row = d->trans + (size_t)s * (size_t)d->n_classes;
        for (int b = 0; b < 256 && n_live < 2; b++)
            if (row[d->byte_class[b]] >= 0)
                n_live++, only = b;
        if (n_live != 1)
            break;
        if (len < cap)
            buf[len] = (char)only;
        len++;
        s = row[d->byte_class[only]];
    }
    return len;
}

bool sgl_dfa_equal(const SglDfa *a, const SglDfa *b)
{
    return a->n_states == b->n_states && a->n_classes == b->n_classes && a->start == b->start &&
           memcmp(a->byte_class, b->byte_class, 256) == 0 &&
           memcmp(a->accept, b->accept, (size_t)a->n_states) == 0 &&
           memcmp(a->trans, b->trans,
                  (size_t)a->n_states * (size_t)a->n_classes * sizeof *a->trans) == 0;
}

/* Structure first (so the graph walks below stay in bounds), then forward
 * reachability from start and backward reachability from accepting states. */
bool sgl_dfa_check(const SglDfa *d, char *why, size_t why_len)
{
    bool ok = false;
    size_t n = (size_t)d->n_states, k = (size_t)d->n_classes;
    uint8_t *fwd = NULL, *bwd = NULL;
    int32_t *stack = NULL, *rev = NULL;
    size_t *rev_off = NULL, *rev_fill = NULL;
    if (d->start < 0 || d->start >= d->n_states) {
        snprintf(why, why_len, "start %d out of range", d->start);
        return false;
    }
    for (int b = 0; b < 256; b++)
        if (d->byte_class[b] >= k) {
            snprintf(why, why_len, "byte %d has class %d >= %zu", b, d->byte_class[b], k);
            return false;
        }
    for (size_t i = 0; i < n * k; i++)
        if (d->trans[i] < -1 || d->trans[i] >= d->n_states) {
            snprintf(why, why_len, "transition %zu -> %d out of range", i, d->trans[i]);
            return false;
        }
    fwd = calloc(n, 1);
    bwd = calloc(n, 1);
    stack = malloc(n * sizeof *stack);
    if (!fwd || !bwd || !stack) {
        snprintf(why, why_len, "out of memory");
        goto out;
    }
    size_t top = 0;
    fwd[d->start] = 1;
    stack[top++] = d->start;
    while (top) {
        int32_t s = stack[--top];
        for (size_t c = 0; c < k; c++) {
            int32_t t = d->trans[(size_t)s * k + c];
            if (t >= 0 && !fwd[t]) {
                fwd[t] = 1;
                stack[top++] = t;
            }
        }
    }
    /* Backward reachability from accepting states over reverse edges (CSR). */
    rev_off = calloc(n + 1, sizeof *rev_off);
    rev_fill = calloc(n + 1, sizeof *rev_fill);
    rev = malloc((n * k + 1) * sizeof *rev);
    if (!rev_off || !rev_fill || !rev) {
        snprintf(why, why_len, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n * k; i++)
        if (d->trans[i] >= 0)
            rev_off[d->trans[i] + 1]++;
    for (size_t s = 0; s < n; s++)
        rev_off[s + 1] += rev_off[s];
    for (size_t i = 0; i < n * k; i++) {
        int32_t t = d->trans[i];
        if (t >= 0)
            rev[rev_off[t] + rev_fill[t]++] = (int32_t)(i / k);
    }
    top = 0;
    for (size_t s = 0; s < n; s++)
        if (d->accept[s]) {
            bwd[s] = 1;
            stack[top++] = (int32_t)s;
        }
    while (top) {
        int32_t t = stack[--top];
        for (size_t j = rev_off[t]; j < rev_off[t + 1]; j++)
            if (!bwd[rev[j]]) {
                bwd[rev[j]] = 1;
                stack[top++] = rev[j];
            }
    }
    for (size_t s = 0; s < n; s++) {
        if (!fwd[s]) {
            snprintf(why, why_len, "state %zu is unreachable", s);
            goto out;
        }
        if (!bwd[s] && !(n == 1 && sgl_dfa_is_empty(d))) {
            snprintf(why, why_len, "state %zu cannot reach an accepting state", s);
            goto out;
        }
    }
    ok = true;
out:
    free(fwd);
    free(bwd);
    free(stack);
    free(rev);
    free(rev_off);
    free(rev_fill);
    return ok;
}

/* ---- serialization --------------------------------------------------- */

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static size_t ser_size(size_t n, size_t k)
{
    return 8 + 12 + 256 + n + 4 * n * k + 8;
}

SglStatus sgl_dfa_serialize(const SglDfa *d, uint8_t **buf, size_t *len)
{
    size_t n = (size_t)d->n_states, k = (size_t)d->n_classes;
    size_t sz = ser_size(n, k);
    uint8_t *b = malloc(sz), *p = b;
    if (!b)
        return SGL_E_NOMEM;
    memcpy(p, MAGIC, 8);
    p += 8;
    put_u32(p, (uint32_t)d->n_states);
    put_u32(p + 4, (uint32_t)d->n_classes);
    put_u32(p + 8, (uint32_t)d->start);
    p += 12;
    memcpy(p, d->byte_class, 256);
    p += 256;
    memcpy(p, d->accept, n);
    p += n;
    for (size_t i = 0; i < n * k; i++, p += 4)
        put_u32(p, (uint32_t)d->trans[i]);
    put_u32(p, (uint32_t)d->hash);
    put_u32(p + 4, (uint32_t)(d->hash >> 32));
    *buf = b;
    *len = sz;
    return SGL_OK;
}

SglStatus sgl_dfa_deserialize(const uint8_t *buf, size_t len, SglDfa **out, SglErr *err)
{
    *out = NULL;
    if (len < ser_size(0, 0) || memcmp(buf, MAGIC, 8) != 0)
        return sgl_err(err, SGL_E_FORMAT, "dfa: bad magic or truncated header (%zu bytes)", len);
    uint32_t n = get_u32(buf + 8), k = get_u32(buf + 12), start = get_u32(buf + 16);
    if (n < 1 || n > SGL_DFA_MAX_STATES || k < 1 || k > 256)
        return sgl_err(err, SGL_E_FORMAT, "dfa: sizes out of range (%u states, %u classes)", n,
                       k);
    if (len != ser_size(n, k))
        return sgl_err(err, SGL_E_FORMAT, "dfa: %zu bytes, expected %zu for %u states x %u classes",
                       len, ser_size(n, k), n, k);
    if (start >= n)
        return sgl_err(err, SGL_E_FORMAT, "dfa: start state %u >= %u states", start, n);
    SglDfa *d = sgl_dfa_new((int32_t)n, (int32_t)k);
    if (!d)
        return sgl_err(err, SGL_E_NOMEM, "dfa: out of memory");
    const uint8_t *p = buf + 20;
    d->start = (int32_t)start;
    memcpy(d->byte_class, p, 256);
    p += 256;
    SglStatus st = SGL_OK;
    for (uint32_t s = 0; s < n; s++) {
        if (p[s] > 1) {
            st = sgl_err(err, SGL_E_FORMAT, "dfa: accept flag of state %u is %u", s, p[s]);
            goto fail;
        }
        d->accept[s] = p[s];
    }
    p += n;
    for (size_t i = 0; i < (size_t)n * k; i++, p += 4)
        d->trans[i] = (int32_t)get_u32(p);
    uint64_t hash = (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
    char why[160];
    if (!sgl_dfa_check(d, why, sizeof why)) {
        st = sgl_err(err, SGL_E_FORMAT, "dfa: %s", why);
        goto fail;
    }
    sgl_dfa_finish(d);
    if (d->hash != hash) {
        st = sgl_err(err, SGL_E_FORMAT, "dfa: content hash mismatch (corrupt buffer)");
        goto fail;
    }
    *out = d;
    return SGL_OK;
fail:
    sgl_dfa_free(d);
    return st;
}

/* bench_fsm.c -- constraint compile time and per-token mask time.
 *
 *   bench_fsm [--gens N] [--repeats R]      (SGL_SHARED_DIR: default ../shared)
 *
 * 1. Compile time of a 10-field JSON schema (schema -> regex -> minimized
 *    DFA), median of R runs.
 * 2. Per-token mask time on the SmolLM2 49k vocabulary and on a synthetic
 *    128k vocabulary (the 49k tokens plus random concatenations of two of
 *    them): N random constrained generations over that schema, each step
 *    timing tokmask_fill + tokmask_advance; steps whose state was not yet
 *    cached (a trie walk) are reported apart from cached ones. Token choice
 *    (uniform among allowed tokens, steered home after 64 steps) is not
 *    timed. Also: the time to compute every state's mask once, and the share
 *    of output bytes that jump-forward would have appended without decoding.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ir/fsm/jsonschema.h"
#include "runtime/tokenizer.h"
#include "runtime/tokmask.h"

static const char *const SCHEMA =
    "{\"type\":\"object\",\"properties\":{"
    "\"id\":{\"type\":\"integer\"},"
    "\"name\":{\"type\":\"string\",\"maxLength\":40},"
    "\"email\":{\"type\":\"string\",\"format\":\"email\"},"
    "\"age\":{\"type\":\"integer\"},"
    "\"score\":{\"type\":\"number\"},"
    "\"active\":{\"type\":\"boolean\"},"
    "\"role\":{\"enum\":[\"admin\",\"editor\",\"viewer\"]},"
    "\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\",\"maxLength\":12},\"maxItems\":5},"
    "\"address\":{\"type\":\"object\",\"properties\":{\"street\":{\"type\":\"string\"},"
    "\"city\":{\"type\":\"string\"},\"zip\":{\"type\":\"string\",\"pattern\":\"^[0-9]{5}$\"}},"
    "\"required\":[\"street\",\"city\",\"zip\"]},"
    "\"joined\":{\"type\":\"string\",\"format\":\"date\"}},"
    "\"required\":[\"id\",\"name\",\"email\",\"age\",\"score\",\"active\",\"role\",\"tags\","
    "\"address\",\"joined\"]}";

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* CPU time of this thread: the compile figure on a shared, loaded machine
 * (the per-token figures use now_us: a syscall per call would dwarf them). */
static double cpu_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, double p)
{
    if (n == 0)
        return 0;
    qsort(v, n, sizeof *v, cmp_d);
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return v[i];
}

/* Fewest bytes to acceptance per state (for steering generations home). */
static int32_t *dist_to_accept(const SglDfa *d)
{
    int32_t n = d->n_states, k = d->n_classes;
    int32_t *dist = malloc((size_t)n * sizeof *dist);
    for (int32_t s = 0; s < n; s++)
        dist[s] = d->accept[s] ? 0 : INT32_MAX;
    for (int changed = 1; changed;) {
        changed = 0;
        for (int32_t s = 0; s < n; s++)
            for (int32_t c = 0; c < k; c++) {
                int32_t t = d->trans[(size_t)s * k + c];
                if (t >= 0 && dist[t] != INT32_MAX && dist[t] + 1 < dist[s])
                    dist[s] = dist[t] + 1, changed = 1;
            }
    }
    return dist;
}

static void bench_vocab(const char *label, const SglDfa *d, const TokVocab *v, int gens)
{
    SglErr err;
    TokFsm *f;
    double t_new = now_us();
    if (tokfsm_new(d, v, &f, &err) != SGL_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return;
    }
    t_new = now_us() - t_new;
    int32_t n = tokvocab_size(v), eos = tokvocab_eos(v), nw = tokfsm_n_words(f);
    uint32_t *mask = malloc((size_t)nw * 4);
    int32_t *allowed = malloc((size_t)n * sizeof *allowed);
    int32_t *dist = dist_to_accept(d);
    size_t cap = (size_t)gens * 600;
    double *cached = malloc(cap * sizeof *cached), *uncached = malloc(cap * sizeof *uncached),
           *all = malloc(cap * sizeof *all);
    size_t n_c = 0, n_u = 0, n_all = 0, bytes_out = 0, bytes_forced = 0;
    uint64_t rng = 42;
    for (int g = 0; g < gens; g++) {
        TokCursor c;
        tokmask_init(&c, f);
        for (int step = 0; step < 512 && !c.done; step++) {
            bool was_cached = tokfsm_cached(f, c.state);
            double t0 = now_us();
            tokmask_fill(&c, mask);
            double t1 = now_us();
            int32_t na = 0;
            for (int32_t w = 0; w < nw; w++)
                for (uint32_t bits = mask[w]; bits; bits &= bits - 1)
                    allowed[na++] = w * 32 + __builtin_ctz(bits);
            if (na == 0)
                break;
            int32_t tok = allowed[rng_next(&rng) % (uint32_t)na];
            if (step >= 64) {
                int32_t best = INT32_MAX;
                for (int32_t i = 0; i < na; i++) {
                    int32_t id = allowed[i], dd;
                    if (id == eos) {
                        dd = -1;
                    } else {
                        size_t len;
                        bool ex;
                        const char *b = tokvocab_bytes(v, id, &len, &ex);
                        dd = dist[sgl_dfa_walk(d, c.state, b, len)];
                    }
                    if (dd < best)
                        best = dd, tok = id;
                }
            }
            int32_t prev_state = c.state;
            double t2 = now_us();
            if (tokmask_advance(&c, tok) != SGL_OK) {
                fprintf(stderr, "advance refused an allowed token\n");
                exit(1);
            }
            double t3 = now_us();
            double us = (t1 - t0) + (t3 - t2);
            if (n_all < cap) {
                all[n_all++] = us;
                if (was_cached)
                    cached[n_c++] = us;
                else
                    uncached[n_u++] = us;
            }
            if (tok != eos) { /* bytes that were forced where they were written */
                size_t len, fl;
                bool ex;
                const char *b = tokvocab_bytes(v, tok, &len, &ex), *fb;
                TokCursor tmp = {f, prev_state, false};
                for (size_t i = 0; i < len; i++) {
                    bytes_forced += tokmask_forced(&tmp, &fb, &fl);
                    tmp.state = sgl_dfa_step(d, tmp.state, (uint8_t)b[i]);
                }
                bytes_out += len;
            }
        }
    }
    /* every state's mask once, from a fresh TokFsm */
    TokFsm *f2;
    tokfsm_new(d, v, &f2, &err);
    double *per_state = malloc((size_t)d->n_states * sizeof *per_state);
    for (int32_t s = 0; s < d->n_states; s++) {
        TokCursor c = {f2, s, false};
        double t0 = now_us();
        tokmask_fill(&c, mask);
        per_state[s] = now_us() - t0;
    }
    double sum = 0;
    for (int32_t s = 0; s < d->n_states; s++)
        sum += per_state[s];
    printf("%s (%d tokens): %zu steps in %d generations; TokFsm setup %.2f ms\n", label, n,
           n_all, gens, t_new / 1e3);
    printf("  fill+advance, all steps:      median %7.2f us   p99 %8.2f us\n", pct(all, n_all, 0.5),
           pct(all, n_all, 0.99));
    printf("  cached states   (%6zu steps): median %7.2f us   p99 %8.2f us\n", n_c,
           pct(cached, n_c, 0.5), pct(cached, n_c, 0.99));
    printf("  uncached states (%6zu steps): median %7.2f us   p99 %8.2f us\n", n_u,
           pct(uncached, n_u, 0.5), pct(uncached, n_u, 0.99));
    printf("  every state once (%d states): median %7.2f us   p99 %8.2f us   total %.1f ms\n",
           d->n_states, pct(per_state, (size_t)d->n_states, 0.5),
           pct(per_state, (size_t)d->n_states, 0.99), sum / 1e3);
    printf("  output bytes written at forced states (jump-forward could skip): %zu of %zu\n",
           bytes_forced, bytes_out);
    tokfsm_free(f2);
    tokfsm_free(f);
    free(per_state);
    free(mask);
    free(allowed);
    free(dist);
    free(cached);
    free(uncached);
    free(all);
}

int main(int argc, char **argv)
{
    int gens = 200, repeats = 20;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--gens") == 0)
            gens = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--repeats") == 0)
            repeats = atoi(argv[i + 1]);
    }
    if (gens < 1 || repeats < 1) {
        fprintf(stderr, "usage: bench_fsm [--gens N] [--repeats R]\n");
        return 2;
    }
    json_error_t jerr;
    json_t *schema = json_loads(SCHEMA, 0, &jerr);
    SglDfa *d = NULL;
    FsmErr ferr;
    double *ct = malloc((size_t)repeats * sizeof *ct), *cc = malloc((size_t)repeats * sizeof *cc);
    for (int r = 0; r < repeats; r++) {
        sgl_dfa_free(d);
        double t0 = now_us(), c0 = cpu_us();
        if (jsonschema_compile(schema, NULL, NULL, &d, &ferr) != SGL_OK) {
            fprintf(stderr, "%s\n", ferr.msg);
            return 1;
        }
        ct[r] = now_us() - t0;
        cc[r] = cpu_us() - c0;
    }
    char *re;
    jsonschema_to_regex(schema, NULL, &re, &ferr);
    double median = pct(ct, (size_t)repeats, 0.5); /* sorts ct */
    double cmedian = pct(cc, (size_t)repeats, 0.5);
    printf("10-field JSON schema: compile (schema -> regex -> minimized DFA) median %.2f ms, "
           "min %.2f ms over %d runs (thread CPU time: median %.2f ms, min %.2f ms); "
           "regex %zu bytes, DFA %d states, %d byte classes\n",
           median / 1e3, ct[0] / 1e3, repeats, cmedian / 1e3, cc[0] / 1e3, strlen(re), d->n_states,
           d->n_classes);
    free(re);
    free(ct);
    free(cc);

    const char *shared = getenv("SGL_SHARED_DIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/models/smollm2-135m-tokenizer", shared ? shared : "../shared");
    SglTokenizer *t;
    SglErr err;
    if (sgl_tokenizer_load(path, &t, &err) != SGL_OK) {
        printf("skipped mask benchmarks: %s\n", err.msg);
        return 0;
    }
    TokVocab *v49;
    if (tokvocab_new(t, &v49, &err) != SGL_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    bench_vocab("smollm2 vocabulary", d, v49, gens);

    /* synthetic 128k: the real tokens plus concatenations of two of them */
    enum { N128 = 128000 };
    int32_t n = sgl_tokenizer_vocab_size(t);
    const char **toks = calloc(N128, sizeof *toks);
    size_t *lens = calloc(N128, sizeof *lens);
    char *blob = malloc((size_t)N128 * 32);
    uint64_t rng = 7;
    for (int32_t i = 0; i < N128; i++) {
        if (i < n) {
            toks[i] = sgl_tokenizer_token_bytes(t, i, &lens[i]);
            if (sgl_tokenizer_is_special(t, i) && i != sgl_tokenizer_eos(t))
                lens[i] = 0; /* excluded, as tokvocab_new does */
            continue;
        }
        char *o = blob + (size_t)i * 32;
        size_t len = 0;
        for (int part = 0; part < 2; part++) {
            int32_t j = 3 + (int32_t)(rng_next(&rng) % (uint64_t)(n - 3));
            size_t l;
            const char *b = sgl_tokenizer_token_bytes(t, j, &l);
            if (sgl_tokenizer_is_special(t, j))
                l = 0;
            if (len + l > 32)
                l = 32 - len;
            memcpy(o + len, b, l);
            len += l;
        }
        toks[i] = o;
        lens[i] = len;
    }
    TokVocab *v128;
    if (tokvocab_new_from_bytes(toks, lens, N128, sgl_tokenizer_eos(t), &v128, &err) != SGL_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    bench_vocab("synthetic vocabulary", d, v128, gens);
    tokvocab_free(v128);
    tokvocab_free(v49);
    free(toks);
    free(lens);
    free(blob);
    sgl_tokenizer_free(t);
    sgl_dfa_free(d);
    json_decref(schema);
    return 0;
}

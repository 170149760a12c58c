/* test_sampler.c -- sampling parameters, sgl_sample and raw log-probs.
 *
 * Every expected value is computed here from the definitions in double
 * precision (argmax, softmax, top-k/top-p/min-p sets, penalties): kept sets
 * are compared exactly over many seeded draws, frequencies with a chi-square
 * bound. `test_sampler --bench` prints µs per call at several vocab sizes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "runtime/sampler.h"

/* ---- helpers -------------------------------------------------------------- */

static uint64_t trng = 0x1234567ull;   /* test-data RNG (splitmix64), reset per test */

static uint64_t tnext(void)
{
    uint64_t z = (trng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double tuniform(void) { return (double)(tnext() >> 11) * 0x1.0p-53; }

static double tnormal(void)
{
    double u = tuniform() + 1e-300, v = tuniform();
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

/* Random permutation of 0..n-1. */
static void perm(int32_t *p, int32_t n)
{
    for (int32_t i = 0; i < n; i++) p[i] = i;
    for (int32_t i = n - 1; i > 0; i--) {
        int32_t j = (int32_t)(tnext() % (uint64_t)(i + 1));
        int32_t t = p[i]; p[i] = p[j]; p[j] = t;
    }
}

static SglSampler *make(float temp, int32_t top_k, float top_p, float min_p, int32_t vocab,
                        uint64_t seed)
{
    SglSamplingParams p;
    sgl_sampling_params_default(&p);
    p.temperature = temp;
    p.top_k = top_k;
    p.top_p = top_p;
    p.min_p = min_p;
    SglSampler *s = sgl_sampler_new(&p, vocab, seed);
    assert_non_null(s);
    return s;
}

/* Draws n tokens (logits copied each time: sgl_sample may clobber them). */
static void draw_counts(SglSampler *s, const float *logits, int32_t vocab, const uint32_t *mask,
                        int n, int64_t *counts)
{
    float *work = malloc((size_t)vocab * sizeof *work);
    assert_non_null(work);
    memset(counts, 0, (size_t)vocab * sizeof *counts);
    for (int d = 0; d < n; d++) {
        memcpy(work, logits, (size_t)vocab * sizeof *work);
        int32_t tok = -1;
        assert_int_equal(sgl_sample(s, work, mask, NULL, 0, &tok, NULL, NULL), SGL_OK);
        assert_true(tok >= 0 && tok < vocab);
        counts[tok]++;
    }
    free(work);
}

static const float *sort_key;

/* qsort order: logit descending, then id ascending. */
static int by_logit_desc(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    if (sort_key[x] != sort_key[y]) return sort_key[x] > sort_key[y] ? -1 : 1;
    return x < y ? -1 : x > y;
}

/* Kept-set semantics from the definitions, in double: weights w[i] =
 * exp((l[i] - max) / T), then top-k (value desc, id asc), top-p on the
 * renormalized survivors (keep while the mass before < top_p), min-p relative
 * to the max. keep[i] = 1 for kept tokens; returns the renormalized
 * distribution in prob. The margin argument receives the smallest relative
 * distance of any cumulative sum / ratio from its threshold, so a test can
 * assert that its case is not decided by rounding. */
static int32_t ref_kept(const float *l, int32_t vocab, float temp, int32_t top_k, float top_p,
                        float min_p, char *keep, double *prob, double *margin)
{
    int32_t *order = malloc((size_t)vocab * sizeof *order);
    assert_non_null(order);
    double mx = -INFINITY;
    for (int32_t i = 0; i < vocab; i++) if (l[i] > mx) mx = l[i];
    for (int32_t i = 0; i < vocab; i++) order[i] = i;
    sort_key = l;
    qsort(order, (size_t)vocab, sizeof *order, by_logit_desc);
    int32_t n = vocab;
    if (top_k > 0 && top_k < n) n = top_k;
    double z = 0.0;
    for (int32_t j = 0; j < n; j++) z += exp(((double)l[order[j]] - mx) / temp);
    *margin = 1.0;
    if (top_p < 1.0f) {
        double acc = 0.0, target = top_p * z;
        int32_t j = 0;
        for (; j < n && acc < target; j++) {
            acc += exp(((double)l[order[j]] - mx) / temp);
            double d = fabs(acc - target) / z;
            if (d < *margin) *margin = d;
        }
        n = j;
    }
    memset(keep, 0, (size_t)vocab);
    int32_t kept = 0;
    double zk = 0.0;
    for (int32_t j = 0; j < n; j++) {
        double w = exp(((double)l[order[j]] - mx) / temp);
        if (min_p > 0.0f) {
            double d = fabs(w - min_p) / min_p;
            if (d < *margin) *margin = d;
            if (w < min_p) continue;
        }
        keep[order[j]] = 1;
        kept++;
        zk += w;
    }
    for (int32_t i = 0; i < vocab; i++)
        prob[i] = keep[i] ? exp(((double)l[i] - mx) / temp) / zk : 0.0;
    free(order);
    return kept;
}

/* Pearson chi-square of counts against prob (bins with expected < 5 merged). */
static double chi_square(const int64_t *counts, const double *prob, int32_t vocab, int n,
                         int *df)
{
    double chi = 0.0, e_acc = 0.0, o_acc = 0.0;
    int bins = 0;
    for (int32_t i = 0; i < vocab; i++) {
        e_acc += prob[i] * n;
        o_acc += (double)counts[i];
        if (e_acc >= 5.0) {
            chi += (o_acc - e_acc) * (o_acc - e_acc) / e_acc;
            bins++;
            e_acc = o_acc = 0.0;
        }
    }
    if (e_acc > 0.0 || o_acc > 0.0) {
        chi += (o_acc - e_acc) * (o_acc - e_acc) / (e_acc > 1e-9 ? e_acc : 1e-9);
        bins++;
    }
    *df = bins - 1;
    return chi;
}

/* Bound for a chi-square statistic: mean + 6 standard deviations. */
static double chi_bound(int df) { return df + 6.0 * sqrt(2.0 * df) + 10.0; }

/* Set check: no token outside keep is ever drawn; with exact, every kept
 * token is drawn at least once (and is likely enough for that to be fair). */
static void assert_same_set(const int64_t *counts, const char *keep, const double *prob,
                            int32_t vocab, int draws, bool exact)
{
    for (int32_t i = 0; i < vocab; i++) {
        if (exact && keep[i] && prob[i] * draws < 12.0)
            fail_msg("bad test: kept token %d expected only %.1f times", (int)i, prob[i] * draws);
        if (exact && keep[i] && counts[i] == 0) fail_msg("kept token %d never drawn", (int)i);
        if (!keep[i] && counts[i] != 0)
            fail_msg("token %d outside the kept set drawn %lld times", (int)i, (long long)counts[i]);
    }
}

/* ---- parameters ----------------------------------------------------------- */

static void test_defaults(void **state)
{
    (void)state;
    SglSamplingParams p;
    memset(&p, 0x5A, sizeof p);
    sgl_sampling_params_default(&p);
    assert_int_equal(p.max_new_tokens, 128);
    assert_int_equal(p.min_new_tokens, 0);
    assert_true(p.temperature == 1.0f);
    assert_true(p.top_k <= 0);
    assert_true(p.top_p == 1.0f);
    assert_true(p.min_p == 0.0f);
    assert_true(p.frequency_penalty == 0.0f && p.presence_penalty == 0.0f);
    assert_true(p.repetition_penalty == 1.0f);
    assert_int_equal(p.n, 1);
    assert_false(p.has_seed);
    assert_false(p.ignore_eos);
    assert_int_equal(p.n_stop, 0);
    assert_int_equal(p.n_stop_token_ids, 0);
    assert_null(p.stop_token_ids);
    assert_false(p.return_logprob);
    assert_int_equal(p.top_logprobs_num, 0);
    assert_int_equal(p.logprob_start_len, -1);
    SglErr e = {{0}};
    assert_int_equal(sgl_sampling_params_check(&p, 100, &e), SGL_OK);
}

static char long_stop[SGL_MAX_STOP_LEN + 2];
static const int32_t bad_ids[] = {3, 100};

/* Applies bad case k to p; returns the text the error must contain, or NULL
 * past the last case. */
static const char *bad_case(int k, SglSamplingParams *p, int32_t *vocab)
{
    switch (k) {
    case 0: p->max_new_tokens = -1; return "max_new_tokens must be >= 0, got -1";
    case 1: p->min_new_tokens = -3; return "min_new_tokens";
    case 2: p->max_new_tokens = 4; p->min_new_tokens = 5; return "min_new_tokens";
    case 3: p->temperature = -0.5f; return "temperature must be a finite number >= 0, got -0.5";
    case 4: p->temperature = NAN; return "temperature";
    case 5: p->temperature = INFINITY; return "temperature";
    case 6: p->top_k = -2; return "top_k";
    case 7: p->top_p = 0.0f; return "top_p must be in (0, 1], got 0";
    case 8: p->top_p = 1.5f; return "top_p must be in (0, 1], got 1.5";
    case 9: p->top_p = NAN; return "top_p";
    case 10: p->min_p = -0.1f; return "min_p";
    case 11: p->min_p = 1.5f; return "min_p must be in [0, 1], got 1.5";
    case 12: p->frequency_penalty = 2.5f; return "frequency_penalty must be in [-2, 2], got 2.5";
    case 13: p->presence_penalty = -3.0f; return "presence_penalty must be in [-2, 2], got -3";
    case 14: p->repetition_penalty = 0.0f; return "repetition_penalty";
    case 15: p->repetition_penalty = 2.5f; return "repetition_penalty must be in (0, 2], got 2.5";
    case 16: p->n = 0; return "n must be in [1, 128], got 0";
    case 17: p->n = SGL_MAX_N + 1; return "n must be in";
    case 18: p->n_stop = SGL_MAX_STOP + 1; return "stop: at most 16 strings, got 17";
    case 19: p->n_stop = -1; return "stop";
    case 20: p->n_stop = 1; p->stop[0] = ""; return "stop[0] must be a non-empty string";
    case 21: p->n_stop = 1; p->stop[0] = NULL; return "stop[0]";
    case 22: p->n_stop = 2; p->stop[0] = "ok"; p->stop[1] = long_stop;
        return "stop[1] is longer than 256 bytes";
    case 23: p->n_stop = 1; p->stop[0] = "ab\xff"; return "stop[0] is not valid UTF-8 (byte 2)";
    case 24: p->n_stop = 1; p->stop[0] = "\xc3"; return "stop[0] is not valid UTF-8";
    case 25: p->n_stop = 1; p->stop[0] = "\xed\xa0\x80"; return "stop[0] is not valid UTF-8";
    case 26: p->n_stop_token_ids = -1; return "stop_token_ids";
    case 27: p->n_stop_token_ids = 2; p->stop_token_ids = NULL; return "stop_token_ids";
    case 28: p->n_stop_token_ids = 2; p->stop_token_ids = bad_ids;
        return "stop_token_ids[1] must be in [0, 100), got 100";
    case 29: p->top_logprobs_num = SGL_MAX_TOP_LOGPROBS + 1;
        return "top_logprobs_num must be in [0, 32], got 33";
    case 30: p->top_logprobs_num = -1; return "top_logprobs_num";
    case 31: *vocab = 10; p->top_logprobs_num = 11; return "top_logprobs_num";
    case 32: p->logprob_start_len = -2; return "logprob_start_len must be >= -1, got -2";
    case 33: *vocab = 0; return "vocab_size";
    default: return NULL;
    }
}

static void test_params_check(void **state)
{
    (void)state;
    memset(long_stop, 'x', sizeof long_stop - 1);
    long_stop[sizeof long_stop - 1] = '\0';
    int k = 0;
    for (;; k++) {
        SglSamplingParams p;
        sgl_sampling_params_default(&p);
        int32_t vocab = 100;
        const char *want = bad_case(k, &p, &vocab);
        if (!want) break;
        SglErr e = {{0}};
        SglStatus st = sgl_sampling_params_check(&p, vocab, &e);
        if (st != SGL_E_INVAL || !strstr(e.msg, want))
            fail_msg("case %d: status %d, message '%s', expected it to contain '%s'", k, st,
                     e.msg, want);
        assert_null(sgl_sampler_new(&p, vocab, 1));
    }
    assert_true(k >= 34);
    /* the accepted edges */
    SglSamplingParams p;
    sgl_sampling_params_default(&p);
    p.temperature = 0.0f; p.top_k = 0; p.top_p = 1.0f; p.min_p = 1.0f;
    p.frequency_penalty = -2.0f; p.presence_penalty = 2.0f; p.repetition_penalty = 2.0f;
    p.n = SGL_MAX_N; p.max_new_tokens = 0; p.top_logprobs_num = SGL_MAX_TOP_LOGPROBS;
    p.n_stop = 2; p.stop[0] = "é"; p.stop[1] = "\xf0\x9f\x98\x80";
    static const int32_t ok_ids[] = {0, 99};
    p.stop_token_ids = ok_ids; p.n_stop_token_ids = 2;
    SglErr e = {{0}};
    assert_int_equal(sgl_sampling_params_check(&p, 100, &e), SGL_OK);
    assert_int_equal(sgl_sampling_params_check(NULL, 100, &e), SGL_E_INVAL);
}

/* ---- greedy ---------------------------------------------------------------- */

static int32_t ref_argmax(const float *l, int32_t n, const uint32_t *mask)
{
    int32_t arg = -1;
    for (int32_t i = 0; i < n; i++) {
        if (mask && !(mask[i / 32] >> (i % 32) & 1u)) continue;
        if (l[i] > -INFINITY && (arg < 0 || l[i] > l[arg])) arg = i;
    }
    return arg;
}

static void test_greedy_argmax(void **state)
{
    (void)state;
    trng = 1;
    static const int32_t sizes[] = {1, 3, 31, 63, 64, 65, 200, 1000, 4099};
    for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
        int32_t v = sizes[si];
        float *l = malloc((size_t)v * sizeof *l), *w = malloc((size_t)v * sizeof *w);
        uint32_t *mask = calloc((size_t)(v + 31) / 32, sizeof *mask);
        SglSampler *s = make(0.0f, -1, 1.0f, 0.0f, v, 7);
        for (int rep = 0; rep < 40; rep++) {
            /* small integer logits: many ties for the maximum */
            for (int32_t i = 0; i < v; i++) l[i] = (float)(tnext() % 4);
            if (rep % 5 == 1) l[tnext() % (uint64_t)v] = NAN;
            if (rep % 7 == 2) l[v - 1] = 100.0f;            /* winner in the tail */
            int32_t want = ref_argmax(l, v, NULL);
            for (int mode = 0; mode < 2; mode++) {
                memcpy(w, l, (size_t)v * sizeof *w);
                int32_t tok = -1;
                float lp;
                SglTopLogprob top[4];
                SglStatus st = sgl_sample(s, w, NULL, NULL, 0, &tok, mode ? &lp : NULL,
                                          mode ? top : NULL);
                assert_int_equal(st, want < 0 ? SGL_E_NOTFOUND : SGL_OK);   /* v = 1, NaN */
                assert_int_equal(tok, want);
            }
            /* with a random mask that leaves at least one token */
            for (int32_t i = 0; i < (v + 31) / 32; i++) mask[i] = (uint32_t)tnext();
            int32_t keep = (int32_t)(tnext() % (uint64_t)v);
            mask[keep / 32] |= 1u << (keep % 32);
            if (l[keep] != l[keep]) l[keep] = 0.0f;
            want = ref_argmax(l, v, mask);
            memcpy(w, l, (size_t)v * sizeof *w);
            int32_t tok = -1;
            assert_int_equal(sgl_sample(s, w, mask, NULL, 0, &tok, NULL, NULL), SGL_OK);
            assert_int_equal(tok, want);
        }
        sgl_sampler_free(s);
        free(mask);
        free(w);
        free(l);
    }
    /* temperature below 1e-6 is greedy too */
    float l[5] = {0.0f, 3.0f, 3.0f, 1.0f, 2.0f};
    SglSampler *s = make(1e-7f, -1, 1.0f, 0.0f, 5, 3);
    for (int i = 0; i < 20; i++) {
        int32_t tok = -1;
        assert_int_equal(sgl_sample(s, l, NULL, NULL, 0, &tok, NULL, NULL), SGL_OK);
        assert_int_equal(tok, 1);
    }
    sgl_sampler_free(s);
}

/* ---- masks --------------------------------------------------------------- */

static void test_mask_never_sampled(void **state)
{
    (void)state;
    trng = 2;
    const int32_t v = 1000;
    float l[1000], w[1000];
    uint32_t mask[(1000 + 31) / 32] = {0};
    for (int32_t i = 0; i < v; i++) {
        if (tnext() % 10 == 0) mask[i / 32] |= 1u << (i % 32);
        /* disallowed tokens get the largest logits */
        l[i] = (mask[i / 32] >> (i % 32) & 1u) ? (float)tnormal() : 10.0f + (float)tnormal();
    }
    const int32_t banned[] = {3, 500, 999, -5, 5000};   /* out-of-range ids are ignored */
    for (int32_t j = 0; j < 3; j++) mask[banned[j] / 32] |= 1u << (banned[j] % 32);
    struct { float t; int32_t k; float p, mp; } cfg[] = {
        {1.0f, -1, 1.0f, 0.0f}, {1.0f, 20, 1.0f, 0.0f}, {0.7f, -1, 0.9f, 0.0f},
        {1.5f, -1, 1.0f, 0.2f}, {1.0f, 30, 0.8f, 0.05f}, {0.0f, -1, 1.0f, 0.0f},
    };
    for (size_t c = 0; c < sizeof cfg / sizeof *cfg; c++) {
        SglSampler *s = make(cfg[c].t, cfg[c].k, cfg[c].p, cfg[c].mp, v, 99 + c);
        for (int d = 0; d < 10000; d++) {
            memcpy(w, l, sizeof w);
            int32_t tok = -1;
            assert_int_equal(sgl_sample(s, w, mask, banned, 5, &tok, NULL, NULL), SGL_OK);
            assert_true(tok >= 0 && tok < v);
            assert_true(mask[tok / 32] >> (tok % 32) & 1u);
            assert_true(tok != 3 && tok != 500 && tok != 999);
        }
        sgl_sampler_free(s);
    }
}

static void test_all_masked(void **state)
{
    (void)state;
    float l[40], w[40];
    for (int i = 0; i < 40; i++) l[i] = (float)i;
    uint32_t none[2] = {0, 0}, one[2] = {0, 1u << 3};   /* only token 35 */
    const int32_t ban35[] = {35};
    for (int greedy = 0; greedy < 2; greedy++) {
        SglSampler *s = make(greedy ? 0.0f : 1.0f, greedy ? -1 : 5, 0.9f, 0.0f, 40, 5);
        int32_t tok = 1234;
        float lp;
        SglTopLogprob top[1];
        memcpy(w, l, sizeof w);
        assert_int_equal(sgl_sample(s, w, none, NULL, 0, &tok, &lp, top), SGL_E_NOTFOUND);
        assert_int_equal(tok, 1234);
        memcpy(w, l, sizeof w);
        assert_int_equal(sgl_sample(s, w, one, ban35, 1, &tok, NULL, NULL), SGL_E_NOTFOUND);
        memcpy(w, l, sizeof w);
        w[35] = -INFINITY;     /* the only allowed token is impossible */
        assert_int_equal(sgl_sample(s, w, one, NULL, 0, &tok, NULL, NULL), SGL_E_NOTFOUND);
        for (int i = 0; i < 40; i++) w[i] = NAN;
        assert_int_equal(sgl_sample(s, w, NULL, NULL, 0, &tok, NULL, NULL), SGL_E_NOTFOUND);
        assert_int_equal(tok, 1234);
        memcpy(w, l, sizeof w);
        assert_int_equal(sgl_sample(s, w, one, NULL, 0, &tok, NULL, NULL), SGL_OK);
        assert_int_equal(tok, 35);
        sgl_sampler_free(s);
    }
}

/* ---- top-k / top-p / min-p: exact kept sets -------------------------------- */

/* Checks the kept set of one configuration (exactly unless `exact` is false:
 * then only that nothing outside it is drawn) and its frequencies. */
static void check_set_x(const float *l, int32_t v, float t, int32_t k, float p, float mp,
                        int draws, uint64_t seed, int32_t want_kept, bool exact)
{
    char *keep = malloc((size_t)v);
    double *prob = malloc((size_t)v * sizeof *prob), margin;
    int64_t *counts = malloc((size_t)v * sizeof *counts);
    int32_t kept = ref_kept(l, v, t, k, p, mp, keep, prob, &margin);
    if (want_kept > 0) assert_int_equal(kept, want_kept);
    if (exact) assert_true(margin > 1e-4);   /* the case is not decided by rounding */
    SglSampler *s = make(t, k, p, mp, v, seed);
    draw_counts(s, l, v, NULL, draws, counts);
    assert_same_set(counts, keep, prob, v, draws, exact);
    int df;
    double chi = chi_square(counts, prob, v, draws, &df);
    if (df > 0 && chi > chi_bound(df))
        fail_msg("chi-square %.1f > %.1f (df %d)", chi, chi_bound(df), df);
    sgl_sampler_free(s);
    free(counts);
    free(prob);
    free(keep);
}

static void check_set(const float *l, int32_t v, float t, int32_t k, float p, float mp, int draws,
                      uint64_t seed, int32_t want_kept)
{
    check_set_x(l, v, t, k, p, mp, draws, seed, want_kept, true);
}

static void test_topk_set(void **state)
{
    (void)state;
    trng = 3;
    int32_t pr[1300];
    float l[1300];
    perm(pr, 300);
    for (int32_t i = 0; i < 300; i++) l[i] = -2.0f + 4.0f * (float)pr[i] / 300.0f;
    check_set(l, 300, 1.0f, 12, 1.0f, 0.0f, 20000, 11, 12);
    check_set(l, 300, 0.5f, 1, 1.0f, 0.0f, 200, 12, 1);
    check_set(l, 300, 1.0f, 299, 1.0f, 0.0f, 60000, 13, 299);
    /* ties: the lower ids win */
    for (int32_t i = 0; i < 300; i++) l[i] = 0.0f;
    check_set(l, 300, 1.0f, 5, 1.0f, 0.0f, 5000, 14, 5);
    int64_t counts[300];
    SglSampler *s = make(1.0f, 5, 1.0f, 0.0f, 300, 15);
    draw_counts(s, l, 300, NULL, 1000, counts);
    for (int32_t i = 0; i < 300; i++) assert_true((counts[i] > 0) == (i < 5));
    sgl_sampler_free(s);
    /* large k: the quickselect path (k > 1024) */
    perm(pr, 1300);
    for (int32_t i = 0; i < 1300; i++) l[i] = 1e-5f * (float)pr[i];
    check_set(l, 1300, 1.0f, 1100, 1.0f, 0.0f, 20000, 16, 1100);
    /* large k with many ties: quickselect must break them by id */
    for (int32_t i = 0; i < 1200; i++) l[i] = 0.25f * (float)(tnext() % 2);
    check_set(l, 1200, 1.0f, 1030, 1.0f, 0.0f, 25000, 18, 1030);
    /* large k with top-p after it */
    perm(pr, 1300);
    for (int32_t i = 0; i < 1300; i++) l[i] = -0.004f * (float)pr[i];
    check_set(l, 1300, 1.0f, 1250, 0.3f, 0.0f, 10000, 17, 0);
}

static void test_topp_set(void **state)
{
    (void)state;
    trng = 4;
    static int32_t pr[12000];
    static float l[12000];
    perm(pr, 1000);
    for (int32_t i = 0; i < 1000; i++) l[i] = -0.15f * (float)pr[i];
    check_set(l, 1000, 1.0f, -1, 0.9f, 0.0f, 30000, 21, 16);
    check_set(l, 1000, 0.8f, -1, 0.5f, 0.0f, 20000, 22, 0);
    check_set(l, 1000, 1.0f, -1, 0.01f, 0.0f, 100, 23, 1);   /* at least one token */
    /* top_p within 1e-5 of 1: every positive probability is a candidate */
    check_set_x(l, 1000, 1.0f, -1, 0.999995f, 0.0f, 3000, 26, 82, false);
    /* a large vocabulary: the nucleus ends inside a populated bucket */
    perm(pr, 12000);
    for (int32_t i = 0; i < 12000; i++) l[i] = -0.008f * (float)pr[i];
    check_set(l, 12000, 1.0f, -1, 0.5f, 0.0f, 5000, 24, 87);
    /* all logits equal: one bucket; ties go to the lower ids */
    for (int32_t i = 0; i < 1000; i++) l[i] = 1.0f;
    int64_t counts[1000];
    SglSampler *s = make(1.0f, -1, 0.25f, 0.0f, 1000, 25);   /* 0.25f is exact */
    draw_counts(s, l, 1000, NULL, 20000, counts);
    for (int32_t i = 0; i < 1000; i++)
        if ((counts[i] > 0) != (i < 250)) fail_msg("token %d drawn %lld times", i, (long long)counts[i]);
    sgl_sampler_free(s);
}

static void test_topk_topp_minp_combined(void **state)
{
    (void)state;
    trng = 5;
    int32_t pr[500];
    float l[500];
    perm(pr, 100);
    for (int32_t i = 0; i < 100; i++) l[i] = -0.3f * (float)pr[i];
    /* top-p applies to the renormalized top-k set */
    check_set(l, 100, 1.0f, 10, 0.8f, 0.0f, 20000, 31, 0);
    check_set(l, 100, 0.7f, 20, 0.9f, 0.05f, 20000, 32, 0);
    perm(pr, 500);
    for (int32_t i = 0; i < 500; i++) l[i] = -0.02f * (float)pr[i];
    check_set(l, 500, 0.5f, -1, 1.0f, 0.295f, 30000, 33, 31);   /* min-p only */
    check_set(l, 500, 0.5f, -1, 0.7f, 0.295f, 30000, 34, 0);    /* top-p then min-p */
}

/* ---- distribution --------------------------------------------------------- */

static void test_distribution(void **state)
{
    (void)state;
    trng = 6;
    float l[300];
    for (int32_t i = 0; i < 300; i++) l[i] = (float)(2.0 * tuniform() - 1.0);
    check_set(l, 300, 0.8f, -1, 1.0f, 0.0f, 300000, 41, 300);
    for (int32_t i = 0; i < 20; i++) l[i] = (float)(3.0 * tnormal());
    check_set_x(l, 20, 2.0f, -1, 1.0f, 0.0f, 100000, 42, 20, false);
    check_set_x(l, 20, 0.3f, -1, 1.0f, 0.0f, 100000, 43, 20, false);
}

/* ---- penalties ------------------------------------------------------------ */

static void test_penalties(void **state)
{
    (void)state;
    const float l[8] = {2.0f, 1.0f, -1.0f, 0.5f, 3.0f, 0.0f, -2.0f, 1.5f};
    /* prompt [1, 6], outputs [3, 3, 4, 6]; repetition 1.25, frequency 0.5,
     * presence 0.3. By hand (repetition first, then frequency and presence):
     *   0: 2.0 (untouched)     1: 1.0/1.25 = 0.8 (prompt only: no freq/pres)
     *   3: 0.5/1.25 - (0.5*2 + 0.3) = -0.9
     *   4: 3.0/1.25 - (0.5*1 + 0.3) = 1.6
     *   6: -2.0*1.25 - (0.5*1 + 0.3) = -3.3 */
    const float want[8] = {2.0f, 0.8f, -1.0f, -0.9f, 1.6f, 0.0f, -3.3f, 1.5f};
    SglSamplingParams p;
    sgl_sampling_params_default(&p);
    p.repetition_penalty = 1.25f;
    p.frequency_penalty = 0.5f;
    p.presence_penalty = 0.3f;
    p.temperature = 0.0f;
    SglSampler *g = sgl_sampler_new(&p, 8, 1);
    p.temperature = 1.0f;
    SglSampler *s = sgl_sampler_new(&p, 8, 2);
    assert_non_null(g);
    assert_non_null(s);
    const int32_t prompt[] = {1, 6, -1, 8};   /* out-of-range ids ignored */
    const int32_t out[] = {3, 3, 4, 6, 99};
    SglSampler *both[2] = {g, s};
    for (int k = 0; k < 2; k++) {
        sgl_sampler_observe_prompt(both[k], prompt, 4);
        for (int j = 0; j < 5; j++) sgl_sampler_accept(both[k], out[j]);
    }
    float w[8];
    memcpy(w, l, sizeof w);
    int32_t tok = -1;
    float lp;
    assert_int_equal(sgl_sample(g, w, NULL, NULL, 0, &tok, &lp, NULL), SGL_OK);
    for (int i = 0; i < 8; i++) assert_float_equal(w[i], want[i], 1e-6);
    assert_int_equal(tok, 0);               /* 4 would win without penalties */
    /* the reported log-prob is still the raw one */
    double z = 0.0;
    for (int i = 0; i < 8; i++) z += exp((double)l[i]);
    assert_float_equal(lp, (double)l[0] - log(z), 1e-5);

    /* a penalized token that still wins reports its raw log-prob too */
    float l2[8];
    memcpy(l2, l, sizeof l2);
    l2[4] = 10.0f;                          /* 10/1.25 - 0.8 = 7.2: still the max */
    memcpy(w, l2, sizeof w);
    assert_int_equal(sgl_sample(g, w, NULL, NULL, 0, &tok, &lp, NULL), SGL_OK);
    assert_int_equal(tok, 4);
    assert_float_equal(w[4], 7.2, 1e-5);
    z = 0.0;
    for (int i = 0; i < 8; i++) z += exp((double)l2[i]);
    assert_float_equal(lp, 10.0 - log(z), 1e-5);

    /* sampled frequencies follow softmax of the penalized logits */
    int64_t counts[8];
    double prob[8], zp = 0.0;
    for (int i = 0; i < 8; i++) zp += exp((double)want[i]);
    for (int i = 0; i < 8; i++) prob[i] = exp((double)want[i]) / zp;
    draw_counts(s, l, 8, NULL, 80000, counts);
    int df;
    double chi = chi_square(counts, prob, 8, 80000, &df);
    assert_true(chi < chi_bound(df));

    /* negative penalties reward repeats; prompt tokens only see repetition */
    sgl_sampling_params_default(&p);
    p.frequency_penalty = -1.0f;
    p.presence_penalty = -0.5f;
    p.temperature = 0.0f;
    SglSampler *r = sgl_sampler_new(&p, 8, 3);
    const int32_t pr5[] = {5};
    sgl_sampler_observe_prompt(r, pr5, 1);
    sgl_sampler_accept(r, 2);
    sgl_sampler_accept(r, 2);
    memcpy(w, l, sizeof w);
    assert_int_equal(sgl_sample(r, w, NULL, NULL, 0, &tok, NULL, NULL), SGL_OK);
    assert_float_equal(w[2], -1.0 + 2.0 + 0.5, 1e-6);
    assert_float_equal(w[5], 0.0, 0.0);
    assert_int_equal(tok, 4);
    sgl_sampler_free(r);
    sgl_sampler_free(s);
    sgl_sampler_free(g);
}

/* ---- seeds ---------------------------------------------------------------- */

static void seq(uint64_t seed, int32_t *out, int n, const float *l, int32_t v, float top_p)
{
    SglSampler *s = make(1.0f, -1, top_p, 0.0f, v, seed);
    float w[1000];
    for (int i = 0; i < n; i++) {
        memcpy(w, l, (size_t)v * sizeof *w);
        assert_int_equal(sgl_sample(s, w, NULL, NULL, 0, &out[i], NULL, NULL), SGL_OK);
    }
    sgl_sampler_free(s);
}

static void test_seed_reproducible(void **state)
{
    (void)state;
    trng = 7;
    float l[1000];
    for (int i = 0; i < 1000; i++) l[i] = (float)tnormal();
    int32_t a[500], b[500], c[500];
    for (int pass = 0; pass < 2; pass++) {
        float tp = pass ? 0.9f : 1.0f;
        seq(42, a, 500, l, 1000, tp);
        seq(42, b, 500, l, 1000, tp);
        seq(43, c, 500, l, 1000, tp);
        assert_memory_equal(a, b, sizeof a);
        int diff = 0;
        for (int i = 0; i < 500; i++) diff += a[i] != c[i];
        assert_true(diff > 400);
    }
}

/* ---- log-probs ------------------------------------------------------------ */

static void ref_log_softmax(const float *l, int32_t v, double *out)
{
    double m = -INFINITY, z = 0.0;
    for (int32_t i = 0; i < v; i++) if (l[i] > m) m = l[i];
    for (int32_t i = 0; i < v; i++) z += exp((double)l[i] - m);
    for (int32_t i = 0; i < v; i++) out[i] = (double)l[i] - m - log(z);
}

static void assert_lp(double got, double want)
{
    double tol = 2e-5 + 2e-6 * fabs(want);   /* float output; exp() rel. error < 3e-7 */
    if (fabs(got - want) > tol) fail_msg("logprob %.9g, expected %.9g", got, want);
}

static void test_logprobs(void **state)
{
    (void)state;
    trng = 8;
    static const int32_t sizes[] = {5, 64, 100, 5000, 70001};
    for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
        int32_t v = sizes[si];
        float *l = malloc((size_t)v * sizeof *l), *w = malloc((size_t)v * sizeof *w);
        double *ref = malloc((size_t)v * sizeof *ref);
        for (int rep = 0; rep < 4; rep++) {
            double scale = rep == 3 ? 400.0 : 3.0;    /* rep 3: extreme spread */
            for (int32_t i = 0; i < v; i++) l[i] = (float)(scale * tnormal());
            if (v > 10) { l[v / 3] = l[v / 2] = l[v - 1] = 25.0f; }   /* tied top values */
            ref_log_softmax(l, v, ref);
            int32_t n_top = v < 8 ? v : 8;
            SglSamplingParams p;
            sgl_sampling_params_default(&p);
            p.top_logprobs_num = n_top;
            p.repetition_penalty = 1.5f;        /* penalties and masks never change them */
            p.temperature = rep % 2 ? 0.0f : 1.0f;
            SglSampler *s = sgl_sampler_new(&p, v, 5);
            assert_non_null(s);
            const int32_t pr[] = {0, 1, 2};
            sgl_sampler_observe_prompt(s, pr, v < 3 ? v : 3);
            sgl_sampler_accept(s, v - 1);
            uint32_t *mask = malloc((size_t)(v + 31) / 32 * sizeof *mask);
            for (int32_t i = 0; i < (v + 31) / 32; i++) mask[i] = 0xAAAAAAAAu | 1u;
            memcpy(w, l, (size_t)v * sizeof *w);
            int32_t tok = -1;
            float lp;
            SglTopLogprob top[8];
            assert_int_equal(sgl_sample(s, w, mask, NULL, 0, &tok, &lp, top), SGL_OK);
            assert_lp(lp, ref[tok]);
            /* the top n: values from the reference, ties to the lower id */
            for (int32_t j = 0; j < n_top; j++) {
                assert_lp(top[j].logprob, ref[top[j].id]);
                if (j > 0) {
                    assert_true(ref[top[j - 1].id] >= ref[top[j].id]);
                    if (l[top[j - 1].id] == l[top[j].id]) assert_true(top[j - 1].id < top[j].id);
                }
            }
            int32_t better = 0;    /* tokens strictly better than the n-th */
            for (int32_t i = 0; i < v; i++)
                if (l[i] > l[top[n_top - 1].id]) better++;
            assert_true(better < n_top);
            /* the standalone helpers agree */
            SglTopLogprob top2[8];
            sgl_top_logprobs(l, v, n_top, top2);
            for (int32_t j = 0; j < n_top; j++) {
                assert_int_equal(top2[j].id, top[j].id);
                assert_lp(top2[j].logprob, ref[top2[j].id]);
            }
            int32_t ids[4] = {0, v - 1, v / 2, v};   /* v is out of range */
            float out[4];
            sgl_logprobs_of(l, v, ids, 4, out);
            for (int j = 0; j < 3; j++) assert_lp(out[j], ref[ids[j]]);
            assert_true(out[3] == -INFINITY);
            free(mask);
            sgl_sampler_free(s);
        }
        free(ref);
        free(w);
        free(l);
    }
}

/* NaN and +inf logits never break sampling. */
static void test_bad_logits(void **state)
{
    (void)state;
    float l[70];
    for (int i = 0; i < 70; i++) l[i] = (i % 3 == 0) ? NAN : (float)(i % 5);
    int64_t counts[70];
    SglSampler *s = make(1.0f, -1, 0.9f, 0.0f, 70, 9);
    draw_counts(s, l, 70, NULL, 5000, counts);
    for (int i = 0; i < 70; i += 3) assert_int_equal(counts[i], 0);
    sgl_sampler_free(s);
    l[10] = INFINITY;
    s = make(1.0f, 4, 1.0f, 0.0f, 70, 9);
    draw_counts(s, l, 70, NULL, 100, counts);
    assert_int_equal(counts[10], 100);
    sgl_sampler_free(s);
}

/* ---- benchmark ------------------------------------------------------------- */

/* CPU time of this process: the machine is shared, wall time is not ours. */
static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* µs (process CPU time) per sgl_sample call on LM-like logits: normal with
 * sd 2.5 and a few peaks; median of 5 runs. */
static int bench(void)
{
    static const int32_t sizes[] = {512, 49152, 128256};
    printf("%-8s %-32s %10s\n", "vocab", "config", "us/call");
    for (size_t si = 0; si < 3; si++) {
        int32_t v = sizes[si];
        float *l = malloc((size_t)v * sizeof *l);
        trng = 77;
        for (int32_t i = 0; i < v; i++) l[i] = (float)(2.5 * tnormal());
        for (int i = 0; i < 5; i++) l[tnext() % (uint64_t)v] = 12.0f + (float)i;
        struct { const char *name; float t, p; int32_t k, top; bool lp; } cfg[] = {
            {"greedy", 0.0f, 1.0f, -1, 0, false},
            {"greedy + logprob + top-5", 0.0f, 1.0f, -1, 5, true},
            {"T=0.8 top_p=0.95", 0.8f, 0.95f, -1, 0, false},
            {"T=0.8 top_p=0.95 + top-5", 0.8f, 0.95f, -1, 5, true},
            {"T=1.0 (plain)", 1.0f, 1.0f, -1, 0, false},
            {"T=0.8 top_k=50 top_p=0.95", 0.8f, 0.95f, 50, 0, false},
        };
        for (size_t c = 0; c < sizeof cfg / sizeof *cfg; c++) {
            SglSamplingParams p;
            sgl_sampling_params_default(&p);
            p.temperature = cfg[c].t;
            p.top_p = cfg[c].p;
            p.top_k = cfg[c].k;
            p.top_logprobs_num = cfg[c].top;
            SglSampler *s = sgl_sampler_new(&p, v, 1);
            int iters = v > 10000 ? 400 : 20000;
            SglTopLogprob top[5];
            float lp;
            int32_t tok;
            for (int i = 0; i < iters / 10; i++)   /* warm-up; logits are not modified */
                sgl_sample(s, l, NULL, NULL, 0, &tok, cfg[c].lp ? &lp : NULL, top);
            double runs[5];
            for (int r = 0; r < 5; r++) {
                double t0 = now_us();
                for (int i = 0; i < iters / 5; i++)
                    sgl_sample(s, l, NULL, NULL, 0, &tok, cfg[c].lp ? &lp : NULL, top);
                runs[r] = (now_us() - t0) / (iters / 5);
            }
            for (int a = 0; a < 5; a++)
                for (int b = a + 1; b < 5; b++)
                    if (runs[b] < runs[a]) { double t = runs[a]; runs[a] = runs[b]; runs[b] = t; }
            double us = runs[2];
            printf("%-8d %-32s %10.2f\n", (int)v, cfg[c].name, us);
            sgl_sampler_free(s);
        }
        free(l);
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--bench") == 0) return bench();
    if (argc > 1) cmocka_set_test_filter(argv[1]);   /* e.g. test_sampler 'test_top*' */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_params_check),
        cmocka_unit_test(test_greedy_argmax),
        cmocka_unit_test(test_mask_never_sampled),
        cmocka_unit_test(test_all_masked),
        cmocka_unit_test(test_topk_set),
        cmocka_unit_test(test_topp_set),
        cmocka_unit_test(test_topk_topp_minp_combined),
        cmocka_unit_test(test_distribution),
        cmocka_unit_test(test_penalties),
        cmocka_unit_test(test_seed_reproducible),
        cmocka_unit_test(test_logprobs),
        cmocka_unit_test(test_bad_logits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

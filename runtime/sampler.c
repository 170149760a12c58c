/* sampler.c -- one row of logits -> one token, for one sequence.
 *
 * Order of operations (SGLang's): raw log-probs are taken first from the
 * untouched logits; then penalties (repetition, then frequency and presence),
 * banned ids and the constraint mask (-inf); then temperature, top-k, top-p,
 * min-p, and one draw from the sequence's xoshiro256** stream. Temperature
 * below 1e-6 is greedy (argmax, ties to the lowest id, as torch.argmax).
 *
 * Speed: nothing is allocated per call. Greedy is one pass (a blocked vector
 * max; the winning block is rescanned for the first index). Top-k never sorts
 * the vocabulary: a k-element heap (quickselect for k > HEAP_MAX_K) picks the
 * candidates, sorted only when top-p follows. Top-p alone: one exp pass, a
 * few vector passes to find a power-of-two threshold above which top_p of the
 * mass lies, then a histogram of just those candidates by float exponent, so
 * only the bucket where the nucleus ends is sorted (sample_topp). exp() is a
 * 4-lane polynomial (relative error < 3e-7), ~1-2 ns per logit.
 *
 * Random numbers: one uniform double per non-greedy draw, nothing for greedy,
 * so a sequence is reproducible from its seed whatever the vocab size.
 */
#include "runtime/sampler.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SAMPLING_EPS 1e-6f      /* temperature below this means greedy (SGLang) */
#define SEEN_BIT 0x80000000u    /* count[id]: id is in the touched list */
#define N_BUCKETS 2048          /* top-p histogram: 16 per octave of probability */
#define HEAP_MAX_K 1024         /* top-k up to this uses a heap, above it quickselect */
#define MAX_STOP_TOKEN_IDS 1024

struct SglSampler {
    int32_t vocab;
    bool greedy;
    float inv_temp;             /* 1 / temperature (non-greedy only) */
    int32_t top_k;              /* 0 = off (also when >= vocab) */
    float top_p, min_p;         /* 1 / 0 = off */
    float freq, pres, rep;
    bool penalize;              /* any penalty active: the arrays below exist */
    int32_t n_top;              /* top_logprobs_num */
    uint64_t rng[4];            /* xoshiro256** state */

    uint32_t *count;            /* (vocab) output count of id | SEEN_BIT; NULL if !penalize */
    int32_t *touched;           /* (vocab) ids seen in prompt or output, first-seen order */
    float *saved;               /* (vocab) raw logits of touched ids, during one call */
    int32_t n_touched;

    float *val;                 /* (vocab) probabilities / candidate values; NULL if greedy */
    int32_t *cand;              /* (vocab) candidate ids; NULL if greedy */
    double *bsum;               /* ((vocab + 63) / 64) sums of val per block of 64 */
    double hist_mass[N_BUCKETS]; /* top-p: probability mass per bucket */
};

/* ---- sampling parameters ------------------------------------------------ */

void sgl_sampling_params_default(SglSamplingParams *p)
{
    memset(p, 0, sizeof *p);
    p->max_new_tokens = 128;
    p->min_new_tokens = 0;
    p->temperature = 1.0f;
    p->top_k = -1;
    p->top_p = 1.0f;
    p->min_p = 0.0f;
    p->frequency_penalty = 0.0f;
    p->presence_penalty = 0.0f;
    p->repetition_penalty = 1.0f;
    p->n = 1;
    p->top_logprobs_num = 0;
    p->logprob_start_len = -1;
}

/* Length of the valid UTF-8 prefix of s[0..len) (== len when all valid).
 * Rejects overlong forms, surrogates and code points above U+10FFFF. */
static size_t utf8_valid_prefix(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        size_t n;
        unsigned lo = 0x80, hi = 0xBF;
        if (c < 0x80) { i++; continue; }
        else if (c >= 0xC2 && c <= 0xDF) n = 1;
        else if (c >= 0xE0 && c <= 0xEF) {
            n = 2;
            if (c == 0xE0) lo = 0xA0;
            if (c == 0xED) hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3;
            if (c == 0xF0) lo = 0x90;
            if (c == 0xF4) hi = 0x8F;
        } else return i;
        if (i + n >= len) return i;     /* truncated sequence */
        if (s[i + 1] < lo || s[i + 1] > hi) return i;
        for (size_t k = 2; k <= n; k++)
            if ((s[i + k] & 0xC0) != 0x80) return i;
        i += n + 1;
    }
    return i;
}

SglStatus sgl_sampling_params_check(const SglSamplingParams *p, int32_t vocab_size, SglErr *err)
{
    if (!p) return sgl_err(err, SGL_E_INVAL, "sampling params: NULL");
    if (vocab_size <= 0)
        return sgl_err(err, SGL_E_INVAL, "vocab_size must be positive, got %d", (int)vocab_size);
    if (p->max_new_tokens < 0)
        return sgl_err(err, SGL_E_INVAL, "max_new_tokens must be >= 0, got %d",
                       (int)p->max_new_tokens);
    if (p->min_new_tokens < 0 || p->min_new_tokens > p->max_new_tokens)
        return sgl_err(err, SGL_E_INVAL, "min_new_tokens must be in [0, max_new_tokens=%d], got %d",
                       (int)p->max_new_tokens, (int)p->min_new_tokens);
    if (!(p->temperature >= 0.0f) || !isfinite(p->temperature))
        return sgl_err(err, SGL_E_INVAL, "temperature must be a finite number >= 0, got %g",
                       (double)p->temperature);
    if (p->top_k < -1)
        return sgl_err(err, SGL_E_INVAL, "top_k must be -1 or 0 (off) or >= 1, got %d",
                       (int)p->top_k);
    if (!(p->top_p > 0.0f && p->top_p <= 1.0f))
        return sgl_err(err, SGL_E_INVAL, "top_p must be in (0, 1], got %g", (double)p->top_p);
    if (!(p->min_p >= 0.0f && p->min_p <= 1.0f))
        return sgl_err(err, SGL_E_INVAL, "min_p must be in [0, 1], got %g", (double)p->min_p);
    if (!(p->frequency_penalty >= -2.0f && p->frequency_penalty <= 2.0f))
        return sgl_err(err, SGL_E_INVAL, "frequency_penalty must be in [-2, 2], got %g",
                       (double)p->frequency_penalty);
    if (!(p->presence_penalty >= -2.0f && p->presence_penalty <= 2.0f))
        return sgl_err(err, SGL_E_INVAL, "presence_penalty must be in [-2, 2], got %g",
                       (double)p->presence_penalty);
    if (!(p->repetition_penalty > 0.0f && p->repetition_penalty <= 2.0f))
        return sgl_err(err, SGL_E_INVAL, "repetition_penalty must be in (0, 2], got %g",
                       (double)p->repetition_penalty);
    if (p->n < 1 || p->n > SGL_MAX_N)
        return sgl_err(err, SGL_E_INVAL, "n must be in [1, %d], got %d", SGL_MAX_N, (int)p->n);
    if (p->n_stop < 0 || p->n_stop > SGL_MAX_STOP)
        return sgl_err(err, SGL_E_INVAL, "stop: at most %d strings, got %d", SGL_MAX_STOP,
                       (int)p->n_stop);
    for (int32_t i = 0; i < p->n_stop; i++) {
        const char *s = p->stop[i];
        if (!s || !s[0])
            return sgl_err(err, SGL_E_INVAL, "stop[%d] must be a non-empty string", (int)i);
        size_t len = strnlen(s, SGL_MAX_STOP_LEN + 1);
        if (len > SGL_MAX_STOP_LEN)
            return sgl_err(err, SGL_E_INVAL, "stop[%d] is longer than %d bytes", (int)i,
                           SGL_MAX_STOP_LEN);
        size_t ok = utf8_valid_prefix((const unsigned char *)s, len);
        if (ok != len)
            return sgl_err(err, SGL_E_INVAL, "stop[%d] is not valid UTF-8 (byte %zu)", (int)i, ok);
    }
    if (p->n_stop_token_ids < 0 || p->n_stop_token_ids > MAX_STOP_TOKEN_IDS)
        return sgl_err(err, SGL_E_INVAL, "stop_token_ids: at most %d ids, got %d",
                       MAX_STOP_TOKEN_IDS, (int)p->n_stop_token_ids);
    if (p->n_stop_token_ids > 0 && !p->stop_token_ids)
        return sgl_err(err, SGL_E_INVAL, "stop_token_ids: NULL with %d ids",
                       (int)p->n_stop_token_ids);
    for (int32_t i = 0; i < p->n_stop_token_ids; i++)
        if (p->stop_token_ids[i] < 0 || p->stop_token_ids[i] >= vocab_size)
            return sgl_err(err, SGL_E_INVAL, "stop_token_ids[%d] must be in [0, %d), got %d",
                           (int)i, (int)vocab_size, (int)p->stop_token_ids[i]);
    if (p->top_logprobs_num < 0 || p->top_logprobs_num > SGL_MAX_TOP_LOGPROBS ||
        p->top_logprobs_num > vocab_size)
        return sgl_err(err, SGL_E_INVAL, "top_logprobs_num must be in [0, %d], got %d",
                       SGL_MAX_TOP_LOGPROBS < vocab_size ? SGL_MAX_TOP_LOGPROBS : (int)vocab_size,
                       (int)p->top_logprobs_num);
    if (p->logprob_start_len < -1)
        return sgl_err(err, SGL_E_INVAL, "logprob_start_len must be >= -1, got %d",
                       (int)p->logprob_start_len);
    return SGL_OK;
}

/* ---- vector kernels (GNU C vector extensions, also understood by clang) -- */

/* 4 lanes: the SSE2 width every x86-64 has, so no ABI or -march dependence. */
#define VL 4
typedef float vf __attribute__((vector_size(VL * 4)));
typedef int32_t vi __attribute__((vector_size(VL * 4)));
#define BLOCK 64                /* elements per block in blocked passes */

static inline vf splat(float x) { return (vf){x, x, x, x}; }
static inline vf loadv(const float *p) { vf v; memcpy(&v, p, sizeof v); return v; }
static inline void storev(float *p, vf v) { memcpy(p, &v, sizeof v); }
static inline vf selectv(vi m, vf a, vf b) { return (vf)((m & (vi)a) | (~m & (vi)b)); }

/* Loads n < VL floats, filling the remaining lanes with `fill`. */
static inline vf load_tail(const float *p, int32_t n, float fill)
{
    float t[VL];
    for (int i = 0; i < VL; i++) t[i] = i < n ? p[i] : fill;
    return loadv(t);
}

static inline float hmaxv(vf v)
{
    float m = -INFINITY;
    for (int i = 0; i < VL; i++) m = v[i] > m ? v[i] : m;
    return m;
}

static inline float hsumv(vf v) { return (v[0] + v[1]) + (v[2] + v[3]); }

/* exp(x) for x <= 0: Cody-Waite reduction x = n ln2 + r, |r| <= ln2/2, and
 * the degree-7 Taylor polynomial of e^r (truncation error < 6e-9); relative
 * error < 3e-7 overall. Lanes below -87 (incl. -inf) and NaN lanes give 0. */
static inline vf expv(vf x)
{
    const vf lim = splat(-87.0f), magic = splat(12582912.0f); /* 1.5 * 2^23 */
    vi dead = (x < lim) | (x != x);
    x = selectv(dead, lim, x);
    vf n = (x * splat(1.44269504088896341f) + magic) - magic;  /* round(x / ln2) */
    vf r = x - n * splat(0.693359375f);
    r = r - n * splat(-2.12194440e-4f);
    vf p = splat(1.0f / 5040.0f);
    p = p * r + splat(1.0f / 720.0f);
    p = p * r + splat(1.0f / 120.0f);
    p = p * r + splat(1.0f / 24.0f);
    p = p * r + splat(1.0f / 6.0f);
    p = p * r + splat(0.5f);
    p = p * r + splat(1.0f);
    p = p * r + splat(1.0f);
    vi e = __builtin_convertvector(n, vi);
    vf scale = (vf)((e + 127) << 23);
    return (vf)((vi)(p * scale) & ~dead);
}

/* Index of the first maximum of x[0..n) ignoring NaN (torch.argmax order);
 * -1 when no element is > -inf. One pass: per block of 64 a vector max; only
 * the block holding the winner is rescanned. */
static int32_t argmax_f32(const float *x, int32_t n, float *max_out)
{
    float best = -INFINITY;
    int32_t blk = -1, arg = -1, i = 0;
    for (; i + BLOCK <= n; i += BLOCK) {
        vf m = splat(-INFINITY);
        for (int j = 0; j < BLOCK; j += VL) {
            vf v = loadv(x + i + j);
            m = selectv(v > m, v, m);
        }
        float bm = hmaxv(m);
        if (bm > best) { best = bm; blk = i; }
    }
    if (blk >= 0)
        for (int32_t j = blk; j < blk + BLOCK; j++)
            if (x[j] == best) { arg = j; break; }
    for (; i < n; i++)
        if (x[i] > best) { best = x[i]; arg = i; }
    if (max_out) *max_out = best;
    return arg;
}

/* Argmax over the tokens whose bit is set in allowed (same tie rule). */
static int32_t argmax_masked(const float *x, int32_t n, const uint32_t *allowed)
{
    float best = -INFINITY;
    int32_t arg = -1;
    int32_t n_words = (int32_t)(((int64_t)n + 31) / 32);
    for (int32_t w = 0; w < n_words; w++) {
        uint32_t bits = allowed[w];
        int32_t base = w * 32;
        if (base + 32 > n) bits &= (1u << (n - base)) - 1u;
        if (bits == 0xFFFFFFFFu) {
            vf m = splat(-INFINITY);
            for (int j = 0; j < 32; j += VL) {
                vf v = loadv(x + base + j);
                m = selectv(v > m, v, m);
            }
            if (!(hmaxv(m) > best)) continue;
        }
        while (bits) {
            int b = __builtin_ctz(bits);
            bits &= bits - 1;
            if (x[base + b] > best) { best = x[base + b]; arg = base + b; }
        }
    }
    return arg;
}

/* Maximum and number of finite-or-+inf (> -inf) elements; NaN ignored. */
static float max_count(const float *x, int32_t n, int32_t *n_fin)
{
    vf m = splat(-INFINITY);
    vi cnt = {0};
    int32_t i = 0;
    const vf ninf = splat(-INFINITY);
    for (; i + VL <= n; i += VL) {
        vf v = loadv(x + i);
        m = selectv(v > m, v, m);
        cnt -= (v > ninf);
    }
    if (i < n) {
        vf v = load_tail(x + i, n - i, -INFINITY);
        m = selectv(v > m, v, m);
        cnt -= (v > ninf);
    }
    int32_t c = 0;
    for (int k = 0; k < VL; k++) c += cnt[k];
    *n_fin = c;
    return hmaxv(m);
}

/* sum_i exp(x[i] - m), blocks summed in float and added in double. */
static double sum_exp(const float *x, int32_t n, float m)
{
    double total = 0.0;
    const vf vm = splat(m);
    int32_t i = 0;
    for (; i + BLOCK <= n; i += BLOCK) {
        vf acc = splat(0.0f);
        for (int j = 0; j < BLOCK; j += VL) acc += expv(loadv(x + i + j) - vm);
        total += (double)hsumv(acc);
    }
    for (; i < n; i += VL) {
        int32_t k = n - i < VL ? n - i : VL;
        total += (double)hsumv(expv(load_tail(x + i, k, -INFINITY) - vm));
    }
    return total;
}

/* Histogram bucket of a probability e in (0, 1]: 16 buckets per octave,
 * read from the float's exponent and top 4 mantissa bits; 0 holds e = 1. */
static inline int32_t bucket_of(float e)
{
    uint32_t bits;
    memcpy(&bits, &e, sizeof bits);
    if (bits >= 0x3F800000u) return 0;
    int32_t b = (int32_t)((0x3F800000u - bits) >> 19);
    return b < N_BUCKETS ? b : N_BUCKETS - 1;
}

/* out[i] = exp((x[i] - m) * inv_t), zeroed below min_e; per-block sums of
 * out go to bsum[i / BLOCK]. Returns their total. */
static double exp_pass(const float *x, int32_t n, float m, float inv_t, float min_e,
                       float *out, double *bsum)
{
    double total = 0.0;
    const vf vm = splat(m), vt = splat(inv_t), vmin = splat(min_e);
    for (int32_t i = 0; i < n; i += BLOCK) {
        vf acc = splat(0.0f);
        int32_t end = n - i < BLOCK ? n - i : BLOCK;
        for (int32_t j = 0; j < end; j += VL) {
            int32_t k = end - j < VL ? end - j : VL;
            vf v = k == VL ? loadv(x + i + j) : load_tail(x + i + j, k, -INFINITY);
            vf e = expv((v - vm) * vt);
            e = (vf)((vi)e & ~(e < vmin));
            if (k == VL) storev(out + i + j, e);
            else for (int32_t q = 0; q < k; q++) out[i + j + q] = e[q];
            acc += e;
        }
        double b = (double)hsumv(acc);
        bsum[i / BLOCK] = b;
        total += b;
    }
    return total;
}

/* ---- ordering helpers: (value desc, id asc) is the one total order used --- */

static inline bool better(float va, int32_t ia, float vb, int32_t ib)
{
    return va > vb || (va == vb && ia < ib);
}

/* Sift down in a heap whose root is the worst element (pairs v[i], id[i]). */
static void sift_pairs(float *v, int32_t *id, int32_t n, int32_t i)
{
    for (;;) {
        int32_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && better(v[c], id[c], v[c + 1], id[c + 1])) c++;
        if (!better(v[i], id[i], v[c], id[c])) break;
        float tv = v[i]; v[i] = v[c]; v[c] = tv;
        int32_t ti = id[i]; id[i] = id[c]; id[c] = ti;
        i = c;
    }
}

/* Heap sort of n pairs, best first. */
static void sort_pairs(float *v, int32_t *id, int32_t n)
{
    for (int32_t i = n / 2 - 1; i >= 0; i--) sift_pairs(v, id, n, i);
    for (int32_t e = n - 1; e > 0; e--) {
        float tv = v[0]; v[0] = v[e]; v[e] = tv;
        int32_t ti = id[0]; id[0] = id[e]; id[e] = ti;
        sift_pairs(v, id, e, 0);
    }
}

/* Same for ids ordered by key[id]. */
static void sift_ids(int32_t *ids, const float *key, int32_t n, int32_t i)
{
    for (;;) {
        int32_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && better(key[ids[c]], ids[c], key[ids[c + 1]], ids[c + 1])) c++;
        if (!better(key[ids[i]], ids[i], key[ids[c]], ids[c])) break;
        int32_t t = ids[i]; ids[i] = ids[c]; ids[c] = t;
        i = c;
    }
}

static void sort_ids(int32_t *ids, const float *key, int32_t n)
{
    for (int32_t i = n / 2 - 1; i >= 0; i--) sift_ids(ids, key, n, i);
    for (int32_t e = n - 1; e > 0; e--) {
        int32_t t = ids[0]; ids[0] = ids[e]; ids[e] = t;
        sift_ids(ids, key, e, 0);
    }
}

/* The k best (> -inf) logits of x[0..n) into v/id[0..k), best first when
 * sorted is set (else in heap order); needs at least k such logits. A
 * worst-at-root heap; blocks whose max cannot beat the root are skipped with
 * one vector compare. */
static void heap_topk(const float *x, int32_t n, int32_t k, bool sorted, float *v, int32_t *id)
{
    int32_t cnt = 0, i = 0;
    for (; i < n && cnt < k; i++)
        if (x[i] > -INFINITY) { v[cnt] = x[i]; id[cnt] = i; cnt++; }
    for (int32_t j = k / 2 - 1; j >= 0; j--) sift_pairs(v, id, k, j);
    while (i < n) {
        if (i % BLOCK == 0 && i + BLOCK <= n) {
            vf m = splat(-INFINITY);
            for (int j = 0; j < BLOCK; j += VL) {
                vf t = loadv(x + i + j);
                m = selectv(t > m, t, m);
            }
            if (!(hmaxv(m) > v[0])) { i += BLOCK; continue; }
            for (int32_t e = i + BLOCK; i < e; i++)
                if (x[i] > v[0]) { v[0] = x[i]; id[0] = i; sift_pairs(v, id, k, 0); }
            continue;
        }
        if (x[i] > v[0]) { v[0] = x[i]; id[0] = i; sift_pairs(v, id, k, 0); }
        i++;
    }
    for (int32_t e = sorted ? k - 1 : 0; e > 0; e--) {
        float tv = v[0]; v[0] = v[e]; v[e] = tv;
        int32_t ti = id[0]; id[0] = id[e]; id[e] = ti;
        sift_pairs(v, id, e, 0);
    }
}

/* Quickselect (Hoare/Wirth) so that pairs [0..k) are the k best of [0..n),
 * in no particular order. 0 < k < n. */
static void select_best(float *v, int32_t *id, int32_t n, int32_t k)
{
    int32_t lo = 0, hi = n - 1, target = k - 1;
    while (lo < hi) {
        int32_t mid = lo + (hi - lo) / 2;
        float pv = v[mid];
        int32_t pid = id[mid];
        /* median of three as the pivot */
        if (better(v[lo], id[lo], pv, pid) != better(v[hi], id[hi], pv, pid)) {
            /* mid lies between lo and hi already */
        } else if (better(v[lo], id[lo], v[hi], id[hi]) == better(pv, pid, v[hi], id[hi])) {
            pv = v[lo]; pid = id[lo];   /* mid is an extreme: the median is lo or hi */
        } else {
            pv = v[hi]; pid = id[hi];
        }
        int32_t i = lo, j = hi;
        while (i <= j) {
            while (better(v[i], id[i], pv, pid)) i++;
            while (better(pv, pid, v[j], id[j])) j--;
            if (i <= j) {
                float tv = v[i]; v[i] = v[j]; v[j] = tv;
                int32_t ti = id[i]; id[i] = id[j]; id[j] = ti;
                i++; j--;
            }
        }
        if (target <= j) hi = j;
        else if (target >= i) lo = i;
        else break;
    }
}

/* ---- random numbers: xoshiro256** seeded through splitmix64 -------------- */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline uint64_t rotl64(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rng_next(uint64_t s[4])
{
    uint64_t r = rotl64(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl64(s[3], 45);
    return r;
}

/* Uniform double in [0, 1) with 53 random bits. */
static double rng_uniform(uint64_t s[4]) { return (double)(rng_next(s) >> 11) * 0x1.0p-53; }

/* ---- sampler lifecycle and penalty bookkeeping --------------------------- */

SglSampler *sgl_sampler_new(const SglSamplingParams *p, int32_t vocab_size, uint64_t seed)
{
    if (sgl_sampling_params_check(p, vocab_size, NULL) != SGL_OK) return NULL;
    SglSampler *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    size_t v = (size_t)vocab_size;
    s->vocab = vocab_size;
    s->greedy = p->temperature < SAMPLING_EPS;
    s->inv_temp = s->greedy ? 1.0f : 1.0f / p->temperature;
    s->top_k = p->top_k > 0 && p->top_k < vocab_size ? p->top_k : 0;
    s->top_p = p->top_p;
    s->min_p = p->min_p;
    s->freq = p->frequency_penalty;
    s->pres = p->presence_penalty;
    s->rep = p->repetition_penalty;
    s->penalize = s->freq != 0.0f || s->pres != 0.0f || s->rep != 1.0f;
    s->n_top = p->top_logprobs_num;
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) s->rng[i] = splitmix64(&x);
    if (s->penalize) {
        s->count = calloc(v, sizeof *s->count);
        s->touched = malloc(v * sizeof *s->touched);
        s->saved = malloc(v * sizeof *s->saved);
        if (!s->count || !s->touched || !s->saved) goto fail;
    }
    if (!s->greedy) {
        s->val = malloc(v * sizeof *s->val);
        s->cand = malloc(v * sizeof *s->cand);
        s->bsum = malloc((v + BLOCK - 1) / BLOCK * sizeof *s->bsum);
        if (!s->val || !s->cand || !s->bsum) goto fail;
    }
    return s;
fail:
    sgl_sampler_free(s);
    return NULL;
}

void sgl_sampler_free(SglSampler *s)
{
    if (!s) return;
    free(s->bsum);
    free(s->cand);
    free(s->val);
    free(s->saved);
    free(s->touched);
    free(s->count);
    free(s);
}

static void touch(SglSampler *s, int32_t id)
{
    if (!(s->count[id] & SEEN_BIT)) {
        s->count[id] |= SEEN_BIT;
        s->touched[s->n_touched++] = id;
    }
}

void sgl_sampler_observe_prompt(SglSampler *s, const int32_t *ids, int32_t n)
{
    if (!s->penalize) return;
    for (int32_t i = 0; i < n; i++)
        if (ids[i] >= 0 && ids[i] < s->vocab) touch(s, ids[i]);
}

void sgl_sampler_accept(SglSampler *s, int32_t token)
{
    if (!s->penalize || token < 0 || token >= s->vocab) return;
    touch(s, token);
    if ((s->count[token] & ~SEEN_BIT) != ~SEEN_BIT) s->count[token]++;
}

/* Penalizes every touched id in place, saving its raw logit (vLLM's order:
 * repetition, then frequency and presence). Returns whether any was touched. */
static bool apply_penalties(SglSampler *s, float *logits)
{
    if (!s->penalize || s->n_touched == 0) return false;
    for (int32_t j = 0; j < s->n_touched; j++) {
        int32_t id = s->touched[j];
        float x = logits[id];
        uint32_t c = s->count[id] & ~SEEN_BIT;
        s->saved[j] = x;
        if (s->rep != 1.0f) x = x > 0.0f ? x / s->rep : x * s->rep;
        if (c > 0) x -= s->freq * (float)c + s->pres;
        logits[id] = x;
    }
    return true;
}

/* The raw (unpenalized) logit of token after apply_penalties ran. */
static float raw_logit(const SglSampler *s, const float *logits, int32_t token)
{
    if (s->penalize && (s->count[token] & SEEN_BIT))
        for (int32_t j = 0; j < s->n_touched; j++)
            if (s->touched[j] == token) return s->saved[j];
    return logits[token];
}

/* ---- raw log-probs ------------------------------------------------------- */

/* The n best logits of x[0..vocab) into top (value in .logprob for now), best
 * first, NaN ranked as -inf. n <= vocab. */
static void top_raw(const float *x, int32_t vocab, int32_t n, SglTopLogprob *top)
{
    int32_t i = 0;
    for (; i < n; i++) {
        float v = x[i] == x[i] ? x[i] : -INFINITY;
        int32_t j = i;
        while (j > 0 && v > top[j - 1].logprob) { top[j] = top[j - 1]; j--; }
        top[j] = (SglTopLogprob){i, v};
    }
    if (n == 0) return;
    while (i < vocab) {
        if (i % BLOCK == 0 && i + BLOCK <= vocab) {
            vf m = splat(-INFINITY);
            for (int j = 0; j < BLOCK; j += VL) {
                vf t = loadv(x + i + j);
                m = selectv(t > m, t, m);
            }
            if (!(hmaxv(m) > top[n - 1].logprob)) { i += BLOCK; continue; }
        }
        int32_t end = i % BLOCK == 0 && i + BLOCK <= vocab ? i + BLOCK : i + 1;
        for (; i < end; i++) {
            float v = x[i];
            if (!(v > top[n - 1].logprob)) continue;
            int32_t j = n - 1;
            while (j > 0 && v > top[j - 1].logprob) { top[j] = top[j - 1]; j--; }
            top[j] = (SglTopLogprob){i, v};
        }
    }
}

/* log(sum exp(x)) over x[0..vocab), computed as m + log(sum exp(x - m)). */
static double log_sum_exp(const float *x, int32_t vocab, float m)
{
    if (!(m > -INFINITY)) return -INFINITY;
    return (double)m + log(sum_exp(x, vocab, m));
}

void sgl_top_logprobs(const float *logits, int32_t vocab, int32_t n, SglTopLogprob *top)
{
    if (n > vocab) n = vocab;
    if (n <= 0) return;
    top_raw(logits, vocab, n, top);
    double lse = log_sum_exp(logits, vocab, top[0].logprob);
    for (int32_t j = 0; j < n; j++) top[j].logprob = (float)((double)top[j].logprob - lse);
}

void sgl_logprobs_of(const float *logits, int32_t vocab, const int32_t *ids, int32_t n_ids,
                     float *out)
{
    float m;
    argmax_f32(logits, vocab, &m);
    double lse = log_sum_exp(logits, vocab, m);
    for (int32_t j = 0; j < n_ids; j++)
        out[j] = ids[j] >= 0 && ids[j] < vocab ? (float)((double)logits[ids[j]] - lse)
                                                : -INFINITY;
}

/* ---- drawing ------------------------------------------------------------- */

/* Draws from weights w[list[0..n)] (list NULL: w[0..n) by position, ids
 * from ids[] if given). Strict '>' so zero weights are never drawn. */
static int32_t draw_list(SglSampler *s, const float *w, const int32_t *list, int32_t n)
{
    double z = 0.0;
    for (int32_t j = 0; j < n; j++) z += w[list ? list[j] : j];
    double target = rng_uniform(s->rng) * z, acc = 0.0;
    int32_t last = -1;
    for (int32_t j = 0; j < n; j++) {
        float e = w[list ? list[j] : j];
        if (e > 0.0f) last = j;
        acc += e;
        if (acc > target) return j;
    }
    return last;  /* rounding: target fell at the very end */
}

/* Draws from val[0..vocab) using the block sums from exp_pass. */
static int32_t draw_vocab(SglSampler *s, double z)
{
    double target = rng_uniform(s->rng) * z, acc = 0.0;
    int32_t n_blocks = (s->vocab + BLOCK - 1) / BLOCK, blk = -1;
    for (int32_t b = 0; b < n_blocks; b++) {
        if (s->bsum[b] > 0.0) blk = b;
        if (acc + s->bsum[b] > target) { blk = b; break; }
        acc += s->bsum[b];
    }
    if (blk < 0) return -1;
    int32_t lo = blk * BLOCK, hi = lo + BLOCK < s->vocab ? lo + BLOCK : s->vocab, last = -1;
    double t = target - acc, a = 0.0;
    for (int32_t i = lo; i < hi; i++) {
        if (s->val[i] > 0.0f) last = i;
        a += s->val[i];
        if (a > t) return i;
    }
    return last;
}

/* Keeps the entries of list[0..n) with weight >= min_e (order kept). */
static int32_t filter_min(const float *w, int32_t *list, int32_t n, float min_e, bool by_pos,
                          float *wpos)
{
    int32_t k = 0;
    for (int32_t j = 0; j < n; j++) {
        float e = by_pos ? wpos[j] : w[list[j]];
        if (e >= min_e) {
            if (by_pos) wpos[k] = wpos[j];
            list[k++] = list[j];
        }
    }
    return k;
}

/* Top-k (with optional top-p and min-p after it) over logits with n_fin > k
 * finite entries and maximum m. */
static int32_t sample_topk(SglSampler *s, const float *logits, int32_t n_fin, float m)
{
    int32_t k = s->top_k, n = s->vocab;
    float *v = s->val;   /* v/id: candidates by position, sorted only for top-p */
    int32_t *id = s->cand;
    if (k <= HEAP_MAX_K) {
        heap_topk(logits, n, k, s->top_p < 1.0f, v, id);
    } else {
        int32_t c = 0;
        for (int32_t i = 0; i < n; i++)
            if (logits[i] > -INFINITY) { v[c] = logits[i]; id[c] = i; c++; }
        select_best(v, id, n_fin, k);
        if (s->top_p < 1.0f) sort_pairs(v, id, k);
    }
    for (int32_t j = 0; j < k; j += VL) {
        int32_t q = k - j < VL ? k - j : VL;
        vf e = expv((load_tail(v + j, q, -INFINITY) - splat(m)) * splat(s->inv_temp));
        for (int32_t r = 0; r < q; r++) v[j + r] = e[r];
    }
    int32_t kept = k;
    if (s->top_p < 1.0f) {
        double z = 0.0, acc = 0.0;
        for (int32_t j = 0; j < k; j++) z += v[j];
        double target = (double)s->top_p * z;
        for (kept = 0; kept < k && acc < target; kept++) acc += v[kept];
    }
    if (s->min_p > 0.0f) kept = filter_min(NULL, id, kept, s->min_p, true, v);
    int32_t j = draw_list(s, v, NULL, kept);
    return j < 0 ? -1 : id[j];
}

/* First bucket at which the cumulative mass from bucket 0 reaches target. */
static int32_t crossing_bucket(const double *hist, double target)
{
    double cum = 0.0;
    int32_t b = 0;
    for (; b < N_BUCKETS - 1; b++) {
        if (cum + hist[b] >= target) break;
        cum += hist[b];
    }
    return b;
}

/* Mass of the values >= t in e[0..n): blocks of 64 summed in float. */
static double mass_at_least(const float *e, int32_t n, float t)
{
    double total = 0.0;
    const vf vt = splat(t);
    int32_t i = 0;
    for (; i + BLOCK <= n; i += BLOCK) {
        vf acc = splat(0.0f);
        for (int j = 0; j < BLOCK; j += VL) {
            vf v = loadv(e + i + j);
            acc += (vf)((vi)v & (v >= vt));
        }
        total += (double)hsumv(acc);
    }
    for (; i < n; i++)
        if (e[i] >= t) total += e[i];
    return total;
}

/* Top-p (then min-p) over the whole vocabulary without sorting it. After
 * the exp pass (e = probability relative to the max, z their sum), a few
 * vector passes find a threshold t = 2^-k whose tokens (e >= t) hold at
 * least top_p of the mass: the nucleus is among them. Those candidates are
 * histogrammed by float exponent (16 buckets per octave); every token in a
 * bucket above the one where the nucleus ends is kept, and only that
 * boundary bucket is sorted. */
static int32_t sample_topp(SglSampler *s, const float *logits, float m)
{
    static const int steps[] = {2, 6, 12, 24, 48, 126};
    int32_t n = s->vocab;
    float *e = s->val;
    int32_t *c = s->cand;
    double z = exp_pass(logits, n, m, s->inv_temp, 0.0f, e, s->bsum);
    double target = (double)s->top_p * z;
    float t = 0.0f;   /* 0: every positive e is a candidate */
    for (size_t i = 0; i < sizeof steps / sizeof *steps; i++) {
        float ti = ldexpf(1.0f, -steps[i]);
        /* a relative margin keeps float block sums from choosing t too high */
        if (mass_at_least(e, n, ti) >= target * (1.0 + 1e-5)) { t = ti; break; }
    }
    /* candidates, histogrammed; exact for every bucket above bucket_of(t) */
    memset(s->hist_mass, 0, sizeof s->hist_mass);
    int32_t nc = 0;
    const vf vt = splat(t);
    for (int32_t i = 0; i < n; i += VL) {
        int32_t k = n - i < VL ? n - i : VL;
        if (k == VL) {
            vi in = loadv(e + i) >= vt;
            if (!(in[0] | in[1] | in[2] | in[3])) continue;
        }
        for (int32_t q = i; q < i + k; q++)
            if (e[q] >= t && e[q] > 0.0f) {
                c[nc++] = q;
                s->hist_mass[bucket_of(e[q])] += e[q];
            }
    }
    int32_t bp = crossing_bucket(s->hist_mass, target);
    /* partition in place: buckets < bp first, then bucket bp */
    int32_t na = 0, nb = 0;
    for (int32_t j = 0; j < nc; j++) {
        int32_t id = c[j], b = bucket_of(e[id]);
        if (b < bp) { c[j] = c[na + nb]; c[na + nb] = c[na]; c[na++] = id; }
        else if (b == bp) { c[j] = c[na + nb]; c[na + nb++] = id; }
    }
    double above = 0.0;
    for (int32_t j = 0; j < na; j++) above += e[c[j]];
    int32_t kept = -1;
    if (above < target) {
        sort_ids(c + na, e, nb);
        double acc = above;
        int32_t q = 0;
        for (; q < nb && acc < target; q++) acc += e[c[na + q]];
        if (acc >= target) kept = na + q;
    }
    if (kept < 0) {
        /* rounding moved the end of the nucleus out of bucket bp (the
         * histogram and the exact sums add in different orders): sort all */
        int32_t np = 0;
        for (int32_t i = 0; i < n; i++)
            if (e[i] > 0.0f) c[np++] = i;
        sort_ids(c, e, np);
        double acc = 0.0;
        for (kept = 0; kept < np && acc < target; kept++) acc += e[c[kept]];
    }
    if (s->min_p > 0.0f) kept = filter_min(e, c, kept, s->min_p, false, NULL);
    int32_t j = draw_list(s, e, c, kept);
    return j < 0 ? -1 : c[j];
}

SglStatus sgl_sample(SglSampler *s, float *logits, const uint32_t *allowed,
                     const int32_t *banned, int32_t n_banned,
                     int32_t *token, float *logprob, SglTopLogprob *top)
{
    int32_t n = s->vocab, tok = -1;
    bool want_top = top && s->n_top > 0;
    double lse = 0.0;
    int32_t raw_arg = -1;
    if (logprob || want_top) {
        float m;
        if (want_top) {
            top_raw(logits, n, s->n_top, top);
            m = top[0].logprob;
            raw_arg = m > -INFINITY ? top[0].id : -1;
        } else {
            raw_arg = argmax_f32(logits, n, &m);
        }
        lse = log_sum_exp(logits, n, m);
        if (want_top)
            for (int32_t j = 0; j < s->n_top; j++)
                top[j].logprob = (float)((double)top[j].logprob - lse);
    }
    bool changed = apply_penalties(s, logits);
    for (int32_t j = 0; j < n_banned; j++)
        if (banned[j] >= 0 && banned[j] < n) { logits[banned[j]] = -INFINITY; changed = true; }

    if (s->greedy) {
        if (allowed) tok = argmax_masked(logits, n, allowed);
        else if (!changed && (logprob || want_top)) tok = raw_arg;
        else tok = argmax_f32(logits, n, NULL);
    } else {
        if (allowed) {
            for (int32_t w = 0; w < (n + 31) / 32; w++) {
                uint32_t bits = allowed[w];
                if (bits == 0xFFFFFFFFu) continue;
                for (int32_t b = 0; b < 32 && w * 32 + b < n; b++)
                    if (!(bits >> b & 1u)) logits[w * 32 + b] = -INFINITY;
            }
        }
        int32_t n_fin;
        float m = max_count(logits, n, &n_fin);
        if (n_fin == 0) return SGL_E_NOTFOUND;
        if (m == INFINITY) {
            tok = argmax_f32(logits, n, NULL);  /* degenerate: +inf logits win outright */
        } else if (s->top_k > 0 && s->top_k < n_fin) {
            tok = sample_topk(s, logits, n_fin, m);
        } else if (s->top_p < 1.0f) {
            tok = sample_topp(s, logits, m);
        } else {
            double z = exp_pass(logits, n, m, s->inv_temp, s->min_p, s->val, s->bsum);
            tok = draw_vocab(s, z);
        }
    }
    if (tok < 0) return SGL_E_NOTFOUND;
    *token = tok;
    if (logprob) *logprob = (float)((double)raw_logit(s, logits, tok) - lse);
    return SGL_OK;
}

/* test_sample_ref.c -- the device sampler's reference (kernels/ref/sample_ref.c),
 * which needs no GPU: greedy rows (with masks and NaNs) pick exactly what the
 * CPU sampler (runtime/sampler.c) picks at temperature 0; empty masks give -1;
 * log-probs equal log_softmax of the raw row; draws are a pure function of
 * (seed, step); frequencies over 40000 steps match the truncated softmax
 * (top-k, top-p, min-p, masks) computed here in double within 5 sigma.
 * tests/kernels/test_sample.c holds the kernel to this reference on a GPU. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "kernels/ref/ref.h"
#include "runtime/sampler.h"

static uint64_t trng = 0x2545F4914F6CDD1Dull;
static uint32_t trand(void)
{
    trng ^= trng >> 12;
    trng ^= trng << 25;
    trng ^= trng >> 27;
    return (uint32_t)((trng * 0x2545F4914F6CDD1Dull) >> 32);
}
static float trandf(float lo, float hi) { return lo + (hi - lo) * (float)(trand() >> 8) / 16777216.0f; }

static void test_greedy_equals_cpu_sampler(void **state)
{
    (void)state;
    enum { V = 5000, W = (V + 31) / 32, N = 40 };
    float *x = malloc(sizeof(float) * V), *copy = malloc(sizeof(float) * V);
    uint32_t mask[W];
    SglSamplingParams p;
    sgl_sampling_params_default(&p);
    p.temperature = 0.0f;
    SglSampler *smp = sgl_sampler_new(&p, V, 1);
    assert_non_null(smp);
    for (int r = 0; r < N; r++) {
        for (int j = 0; j < V; j++) x[j] = trandf(-5, 5);
        if (r % 3 == 1) { x[7] = NAN; x[100] = x[200] = 6.0f; }
        for (int w = 0; w < W; w++) mask[w] = r % 2 ? trand() : 0xFFFFFFFFu;
        SglKSampleRow row = {.seed = 9, .step = (uint64_t)r, .temperature = 0.0f, .top_p = 1.0f,
                             .use_mask = r % 2, .want_logprob = 1};
        int32_t id = -2, want = -3;
        float lp = 0.0f, want_lp = 0.0f;
        sgl_ref_sample(x, 1, V, &row, mask, &id, &lp);
        memcpy(copy, x, sizeof(float) * V);
        assert_int_equal(sgl_sample(smp, copy, r % 2 ? mask : NULL, NULL, 0, &want, &want_lp, NULL), SGL_OK);
        assert_int_equal(id, want);
        assert_true(fabsf(lp - want_lp) < 1e-4f);
    }
    memset(mask, 0, sizeof mask);
    SglKSampleRow row = {.temperature = 0.7f, .top_p = 1.0f, .use_mask = 1};
    int32_t id = 5;
    sgl_ref_sample(x, 1, V, &row, mask, &id, NULL);
    assert_int_equal(id, -1);
    sgl_sampler_free(smp);
    free(x);
    free(copy);
}

static void test_reproducible(void **state)
{
    (void)state;
    enum { V = 1000 };
    float x[V];
    for (int j = 0; j < V; j++) x[j] = trandf(-1, 1);
    int seen[V] = {0}, distinct = 0;
    for (int step = 0; step < 200; step++) {
        SglKSampleRow row = {.seed = 77, .step = (uint64_t)step, .temperature = 1.0f, .top_p = 1.0f};
        int32_t a = -1, b = -1;
        sgl_ref_sample(x, 1, V, &row, NULL, &a, NULL);
        sgl_ref_sample(x, 1, V, &row, NULL, &b, NULL);
        assert_int_equal(a, b);
        assert_true(a >= 0 && a < V);
        distinct += !seen[a]++;
    }
    assert_true(distinct > 100); /* near-uniform row: 200 draws hit many tokens */
    assert_int_not_equal(sgl_ref_philox_u32(1, 0, 0), sgl_ref_philox_u32(2, 0, 0));
    assert_int_not_equal(sgl_ref_philox_u32(1, 0, 0), sgl_ref_philox_u32(1, 1, 0));
}

/* one distribution case: expected probabilities in double from the definitions */
static void check_dist(float temp, int top_k, float top_p, float min_p, bool masked)
{
    enum { V = 24, N = 40000 };
    float row[V];
    for (int j = 0; j < V; j++) row[j] = (float)((j * 5) % V) * 0.2f - 2.0f;
    uint32_t mask = 0;
    for (int j = 0; j < V; j++) if (!masked || j % 3 != 0) mask |= 1u << j;
    int order[V], n = 0;
    for (int j = 0; j < V; j++) if ((mask >> j) & 1u) order[n++] = j;
    for (int a = 0; a < n; a++)
        for (int b = a + 1; b < n; b++)
            if (row[order[b]] > row[order[a]]) { int t = order[a]; order[a] = order[b]; order[b] = t; }
    int keep = top_k > 0 && top_k < n ? top_k : n;
    double w[V], z = 0;
    for (int i = 0; i < keep; i++) z += w[i] = exp((row[order[i]] - row[order[0]]) / temp);
    if (top_p < 1.0f) {
        double acc = 0;
        int k = 0;
        while (k < keep && acc < top_p * z) acc += w[k++];
        keep = k;
    }
    while (keep > 1 && w[keep - 1] < min_p) keep--; /* w is relative to the best token */
    double zk = 0, p[V] = {0};
    for (int i = 0; i < keep; i++) zk += w[i];
    for (int i = 0; i < keep; i++) p[order[i]] = w[i] / zk;
    int cnt[V] = {0};
    for (int s = 0; s < N; s++) {
        SglKSampleRow r = {.seed = 5, .step = (uint64_t)s, .temperature = temp, .top_k = top_k,
                           .top_p = top_p, .min_p = min_p, .use_mask = masked};
        int32_t id = -1;
        sgl_ref_sample(row, 1, V, &r, &mask, &id, NULL);
        assert_true(id >= 0 && id < V);
        cnt[id]++;
    }
    for (int j = 0; j < V; j++) {
        double f = cnt[j] / (double)N, tol = 5 * sqrt(p[j] * (1 - p[j]) / N) + 1e-4;
        if (fabs(f - p[j]) > tol)
            fail_msg("T=%g k=%d p=%g min_p=%g mask=%d: token %d freq %.4f want %.4f", temp, top_k, top_p,
                     min_p, masked, j, f, p[j]);
    }
}

static void test_distribution(void **state)
{
    (void)state;
    check_dist(1.0f, 0, 1.0f, 0.0f, false);
    check_dist(0.8f, 10, 0.9f, 0.0f, false);
    check_dist(1.3f, 0, 0.7f, 0.0f, true);
    check_dist(0.9f, 0, 1.0f, 0.1f, true);
    check_dist(1.0f, 6, 1.0f, 0.05f, false);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greedy_equals_cpu_sampler),
        cmocka_unit_test(test_reproducible),
        cmocka_unit_test(test_distribution),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

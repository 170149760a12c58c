/* ktest.h -- tiny harness shared by the kernel tests (tests/kernels/test_<op>.c).
 *
 * Plain C, no CMocka (the GPU machine has none). Each test: kt_init() skips
 * with exit 77 when no CUDA device is usable; device outputs come from
 * kt_alloc(), which surrounds them with a guard band of canary bytes (0x88,
 * as dav1d's checkasm) that kt_guard_ok() verifies after the launch; floats
 * are compared with |got-ref| <= atol + rtol*|ref| and the first mismatches
 * printed with their index; kt_summary() prints "N passed, M failed" and
 * returns the exit status. --bench times a launcher with CUDA events after
 * flushing L2 (llm.c benchmark_kernel). Test programs may exit; libraries may not.
 */
#ifndef SGL_KTEST_H
#define SGL_KTEST_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "kernels/kernels.h"
#include "kernels/ref/ref.h"

#define KT_CANARY 0x88
#define KT_GUARD 256 /* bytes of canary on each side of a device output */

static int kt_passed, kt_failed, kt_bench_mode;
static uint64_t kt_rng = 0x9e3779b97f4a7c15ull;

#define KT_CUDA(expr)                                                                   \
    do {                                                                                \
        cudaError_t e_ = (expr);                                                        \
        if (e_ != cudaSuccess) {                                                        \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #expr,              \
                    cudaGetErrorString(e_));                                            \
            exit(1);                                                                    \
        }                                                                               \
    } while (0)

/* Records one check; prints the message when it fails. */
#define KT_CHECK(cond, ...)                                                             \
    do {                                                                                \
        if (cond) {                                                                     \
            kt_passed++;                                                                \
        } else {                                                                        \
            kt_failed++;                                                                \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                        \
            fprintf(stderr, __VA_ARGS__);                                               \
            fputc('\n', stderr);                                                        \
        }                                                                               \
    } while (0)

static inline void kt_init(int argc, char **argv, const char *name)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--bench")) kt_bench_mode = 1;
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
        printf("%s: skipped: no usable CUDA device (%s)\n", name,
               e != cudaSuccess ? cudaGetErrorString(e) : "device count 0");
        exit(77);
    }
    struct cudaDeviceProp p;
    KT_CUDA(cudaGetDeviceProperties(&p, 0));
    printf("%s: on %s (sm_%d%d)\n", name, p.name, p.major, p.minor);
}

static inline uint32_t kt_rand(void)
{
    kt_rng ^= kt_rng >> 12;
    kt_rng ^= kt_rng << 25;
    kt_rng ^= kt_rng >> 27;
    return (uint32_t)((kt_rng * 0x2545f4914f6cdd1dull) >> 32);
}
/* uniform in [lo, hi) */
static inline float kt_randf(float lo, float hi) { return lo + (hi - lo) * (kt_rand() >> 8) / 16777216.0f; }

static inline void kt_fill_f32(float *x, size_t n, float lo, float hi)
{
    for (size_t i = 0; i < n; i++) x[i] = kt_randf(lo, hi);
}
static inline void kt_fill_bf16(uint16_t *x, size_t n, float lo, float hi)
{
    for (size_t i = 0; i < n; i++) x[i] = sgl_f32_to_bf16(kt_randf(lo, hi));
}

static inline void *kt_xmalloc(size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "out of host memory (%zu bytes)\n", bytes);
        exit(1);
    }
    return p;
}

/* Device buffer of `bytes` with KT_GUARD canary bytes each side; the interior
 * is canary-filled too, so bytes a kernel must not write can be checked. */
static inline void *kt_alloc(size_t bytes)
{
    char *d;
    KT_CUDA(cudaMalloc((void **)&d, bytes + 2 * KT_GUARD));
    KT_CUDA(cudaMemset(d, KT_CANARY, bytes + 2 * KT_GUARD));
    return d + KT_GUARD;
}
static inline void kt_free(void *d)
{
    if (d) KT_CUDA(cudaFree((char *)d - KT_GUARD));
}
static inline void kt_up(void *d, const void *h, size_t bytes)
{
    KT_CUDA(cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice));
}
static inline void kt_down(void *h, const void *d, size_t bytes)
{
    KT_CUDA(cudaMemcpy(h, d, bytes, cudaMemcpyDeviceToHost));
}
/* Device buffer holding a copy of host data. */
static inline void *kt_dup(const void *h, size_t bytes)
{
    void *d = kt_alloc(bytes);
    kt_up(d, h, bytes);
    return d;
}

/* True when both guard bands of a kt_alloc'd buffer still hold the canary. */
static inline int kt_guard_ok(const void *d, size_t bytes)
{
    unsigned char g[2 * KT_GUARD];
    KT_CUDA(cudaMemcpy(g, (const char *)d - KT_GUARD, KT_GUARD, cudaMemcpyDeviceToHost));
    KT_CUDA(cudaMemcpy(g + KT_GUARD, (const char *)d + bytes, KT_GUARD, cudaMemcpyDeviceToHost));
    for (int i = 0; i < 2 * KT_GUARD; i++)
        if (g[i] != KT_CANARY) {
            fprintf(stderr, "  canary overwritten at %s%d\n", i < KT_GUARD ? "-" : "+",
                    i < KT_GUARD ? KT_GUARD - i : i - KT_GUARD);
            return 0;
        }
    return 1;
}

/* Number of elements with |got-ref| > atol + rtol*|ref| (NaN counts); prints
 * the first five and the max error. */
static inline size_t kt_cmp(const char *what, const float *got, const float *ref, size_t n, float atol,
                     float rtol)
{
    size_t bad = 0;
    double maxerr = 0.0;
    for (size_t i = 0; i < n; i++) {
        double err = fabs((double)got[i] - ref[i]);
        if (err > maxerr || err != err) maxerr = err;
        if (!(err <= atol + rtol * fabs((double)ref[i]))) {
            if (bad < 5)
                fprintf(stderr, "  %s[%zu]: got %.7g ref %.7g (err %.3g)\n", what, i, got[i],
                        ref[i], err);
            bad++;
        }
    }
    if (bad) fprintf(stderr, "  %s: %zu of %zu mismatched, max err %.3g\n", what, bad, n, maxerr);
    return bad;
}

static inline void kt_bf16_to_f32(const uint16_t *h, float *f, size_t n)
{
    for (size_t i = 0; i < n; i++) f[i] = sgl_bf16_to_f32(h[i]);
}

/* Mean time in microseconds of fn(ctx) over iters runs, L2 flushed before each. */
static inline double kt_bench(void (*fn)(void *), void *ctx, int iters)
{
    int l2 = 0;
    KT_CUDA(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, 0));
    size_t flush_bytes = (size_t)(l2 > 0 ? l2 : 64 << 20) * 2;
    void *flush;
    KT_CUDA(cudaMalloc(&flush, flush_bytes));
    cudaEvent_t a, b;
    KT_CUDA(cudaEventCreate(&a));
    KT_CUDA(cudaEventCreate(&b));
    fn(ctx); /* warm up */
    double total_ms = 0.0;
    for (int i = 0; i < iters; i++) {
        KT_CUDA(cudaMemset(flush, i & 0xff, flush_bytes));
        KT_CUDA(cudaEventRecord(a, 0));
        fn(ctx);
        KT_CUDA(cudaEventRecord(b, 0));
        KT_CUDA(cudaEventSynchronize(b));
        float ms;
        KT_CUDA(cudaEventElapsedTime(&ms, a, b));
        total_ms += ms;
    }
    KT_CUDA(cudaGetLastError());
    KT_CUDA(cudaEventDestroy(a));
    KT_CUDA(cudaEventDestroy(b));
    KT_CUDA(cudaFree(flush));
    return total_ms * 1000.0 / iters;
}

static inline int kt_summary(const char *name)
{
    printf("%s: %d passed, %d failed\n", name, kt_passed, kt_failed);
    return kt_failed ? 1 : 0;
}

#endif

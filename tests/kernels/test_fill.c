/* test_fill.c -- sgl_k_fill_bf16 / sgl_k_fill_f32 vs the reference, bit-exact
 * (sizes not multiples of the block or of 4, beyond one grid pass; a == 0
 * gives ones), guard bands intact, and the values' mean and spread those of
 * uniform(-a, a). --bench: GB/s filling 1 GiB of bf16. */
#include "tests/kernels/ktest.h"

typedef struct { uint16_t *o; int64_t n; } Ctx;
static void run(void *p)
{
    Ctx *c = p;
    sgl_k_fill_bf16(c->o, c->n, 0.0346f, 7, 0);
}

int main(int argc, char **argv)
{
    kt_init(argc, argv, "test_fill");
    static const int64_t sizes[] = {1, 5, 4099, 3000017};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        int64_t n = sizes[s];
        for (int k = 0; k < 2; k++) {
            float a = k ? 0.0f : 0.02f * 1.7320508f;
            uint64_t seed = 0x5EED + (uint64_t)s * 1000003u;
            uint16_t *ref = kt_xmalloc((size_t)n * 2), *got = kt_xmalloc((size_t)n * 2);
            float *reff = kt_xmalloc((size_t)n * 4), *gotf = kt_xmalloc((size_t)n * 4);
            sgl_ref_fill_bf16(ref, n, a, seed);
            sgl_ref_fill_f32(reff, n, a, seed);
            uint16_t *o_d = kt_alloc((size_t)n * 2);
            float *of_d = kt_alloc((size_t)n * 4);
            KT_CHECK(sgl_k_fill_bf16(o_d, n, a, seed, 0) == 0 && sgl_k_fill_f32(of_d, n, a, seed, 0) == 0, "launch");
            KT_CUDA(cudaDeviceSynchronize());
            kt_down(got, o_d, (size_t)n * 2);
            kt_down(gotf, of_d, (size_t)n * 4);
            KT_CHECK(memcmp(got, ref, (size_t)n * 2) == 0, "fill_bf16 n=%lld a=%g differs", (long long)n, a);
            KT_CHECK(memcmp(gotf, reff, (size_t)n * 4) == 0, "fill_f32 n=%lld a=%g differs", (long long)n, a);
            KT_CHECK(kt_guard_ok(o_d, (size_t)n * 2) && kt_guard_ok(of_d, (size_t)n * 4), "guard");
            if (n > 1000000 && a > 0) {
                double sum = 0, sq = 0;
                for (int64_t i = 0; i < n; i++) { sum += gotf[i]; sq += (double)gotf[i] * gotf[i]; }
                double mean = sum / n, sd = sqrt(sq / n - mean * mean);
                KT_CHECK(fabs(mean) < 1e-4 && fabs(sd - 0.02) < 2e-4, "moments: mean %g sd %g (want 0, 0.02)", mean, sd);
            }
            kt_free(o_d); kt_free(of_d);
            free(ref); free(got); free(reff); free(gotf);
        }
    }
    KT_CHECK(sgl_k_fill_bf16(NULL, -1, 1.0f, 0, 0) == SGL_K_EINVAL, "n < 0 rejected");
    if (kt_bench_mode) {
        int64_t n = (int64_t)1 << 29;
        uint16_t *o;
        KT_CUDA(cudaMalloc((void **)&o, (size_t)n * 2));
        Ctx c = {o, n};
        double us = kt_bench(run, &c, 5);
        printf("bench fill_bf16 1 GiB: %.1f us, %.1f GB/s\n", us, n * 2.0 / us / 1e3);
        KT_CUDA(cudaFree(o));
    }
    return kt_summary("test_fill");
}

/* test_silu_mul.c -- sgl_k_silu_mul vs sgl_ref_silu_mul. The kernel's expf and
 * the reference's double exp can round the bf16 result differently by one step:
 * rtol 2^-7 (one bf16 ulp), atol 1e-6. */
#include "tests/kernels/ktest.h"

typedef struct { const float *gu; int n, inter; uint16_t *out; } Ctx;
static void run(void *p)
{
    Ctx *c = p;
    sgl_k_silu_mul(c->gu, c->n, c->inter, c->out, 0);
}

int main(int argc, char **argv)
{
    kt_init(argc, argv, "test_silu_mul");
    static const int shapes[][2] = {{1, 172}, {7, 172}, {33, 1}, {64, 4864}, {5, 14336}, {512, 14336}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int n = shapes[s][0], inter = shapes[s][1];
        size_t isz = (size_t)n * 2 * inter, osz = (size_t)n * inter;
        float *gu = kt_xmalloc(isz * 4), *ref = kt_xmalloc(osz * 4), *got = kt_xmalloc(osz * 4);
        uint16_t *o16 = kt_xmalloc(osz * 2);
        kt_fill_f32(gu, isz, -8, 8);
        sgl_ref_silu_mul(gu, n, inter, o16);
        kt_bf16_to_f32(o16, ref, osz);
        float *gu_d = kt_dup(gu, isz * 4);
        uint16_t *o_d = kt_alloc(osz * 2);
        KT_CHECK(sgl_k_silu_mul(gu_d, n, inter, o_d, 0) == 0, "launch");
        KT_CUDA(cudaDeviceSynchronize());
        kt_down(o16, o_d, osz * 2);
        kt_bf16_to_f32(o16, got, osz);
        KT_CHECK(kt_cmp("out", got, ref, osz, 1e-6f, 1.0f / 128) == 0, "silu_mul n=%d inter=%d", n, inter);
        KT_CHECK(kt_guard_ok(o_d, osz * 2), "guard n=%d inter=%d", n, inter);
        if (kt_bench_mode) {
            Ctx c = {gu_d, n, inter, o_d};
            double us = kt_bench(run, &c, 20);
            printf("bench silu_mul n=%d inter=%d: %.2f us, %.1f GB/s\n", n, inter, us, osz * 10.0 / us / 1e3);
        }
        kt_free(gu_d); kt_free(o_d);
        free(gu); free(ref); free(got); free(o16);
    }
    return kt_summary("test_silu_mul");
}

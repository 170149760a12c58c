/* test_gemv.c -- sgl_k_gemv vs sgl_ref_gemv (double sums) over row counts
 * 1..8, widths that are and are not multiples of the 512-element warp step,
 * tiny and Llama-3-8B-sized matrices, beta 0 and 1; bad arguments rejected.
 * Tolerance: the kernel sums in fp32 (per lane, then a 32-way shuffle tree);
 * with inputs in [-1, 1] the rounding error stays near sqrt(in) * 2^-24 *
 * |partial sums|: atol 2e-3, rtol 1e-4 hold with a wide margin at in = 14336.
 * --bench also times cuBLAS (cublasGemmEx, bf16 in, fp32 out, the runner's
 * call) on the decode shapes of a Llama-3-8B layer, to pick the faster. */
#include <cublas_v2.h>

#include "tests/kernels/ktest.h"

typedef struct { const uint16_t *x, *W; float *y; int n, in, out; float beta; cublasHandle_t h; } Ctx;
static void run(void *p)
{
    Ctx *c = p;
    sgl_k_gemv(c->x, c->W, c->y, c->n, c->in, c->out, c->beta, 0);
}
static void run_cublas(void *p)
{
    Ctx *c = p;
    const float alpha = 1.0f;
    cublasGemmEx(c->h, CUBLAS_OP_T, CUBLAS_OP_N, c->out, c->n, c->in, &alpha, c->W, CUDA_R_16BF, c->in,
                 c->x, CUDA_R_16BF, c->in, &c->beta, c->y, CUDA_R_32F, c->out, CUBLAS_COMPUTE_32F,
                 CUBLAS_GEMM_DEFAULT);
}

int main(int argc, char **argv)
{
    kt_init(argc, argv, "test_gemv");
    /* n, in, out, beta */
    static const int shapes[][4] = {{1, 8, 1, 0},     {3, 24, 17, 1},     {8, 264, 9, 0},
                                    {2, 1000, 33, 1}, {1, 4096, 6144, 0}, {8, 4096, 1000, 1},
                                    {5, 14336, 64, 0}, {7, 520, 300, 1},  {4, 512, 4096, 0}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int n = shapes[s][0], in = shapes[s][1], out = shapes[s][2];
        float beta = (float)shapes[s][3];
        size_t xs = (size_t)n * in, ws = (size_t)out * in, ys = (size_t)n * out;
        uint16_t *x = kt_xmalloc(xs * 2), *W = kt_xmalloc(ws * 2);
        float *y0 = kt_xmalloc(ys * 4), *ref = kt_xmalloc(ys * 4), *got = kt_xmalloc(ys * 4);
        kt_fill_bf16(x, xs, -1, 1);
        kt_fill_bf16(W, ws, -1, 1);
        kt_fill_f32(y0, ys, -4, 4);
        memcpy(ref, y0, ys * 4);
        sgl_ref_gemv(x, W, ref, n, in, out, beta);
        uint16_t *x_d = kt_dup(x, xs * 2), *W_d = kt_dup(W, ws * 2);
        float *y_d = kt_alloc(ys * 4);
        kt_up(y_d, y0, ys * 4);
        KT_CHECK(sgl_k_gemv(x_d, W_d, y_d, n, in, out, beta, 0) == 0, "launch");
        KT_CUDA(cudaDeviceSynchronize());
        kt_down(got, y_d, ys * 4);
        KT_CHECK(kt_cmp("y", got, ref, ys, 2e-3f, 1e-4f) == 0, "gemv n=%d in=%d out=%d beta=%g", n, in,
                 out, beta);
        KT_CHECK(kt_guard_ok(y_d, ys * 4), "guard n=%d in=%d out=%d", n, in, out);
        kt_free(x_d); kt_free(W_d); kt_free(y_d);
        free(x); free(W); free(y0); free(ref); free(got);
    }
    KT_CHECK(sgl_k_gemv(NULL, NULL, NULL, 9, 8, 8, 0, 0) == SGL_K_EINVAL, "n > 8 rejected");
    KT_CHECK(sgl_k_gemv(NULL, NULL, NULL, 1, 12, 8, 0, 0) == SGL_K_EINVAL, "in not a multiple of 8 rejected");
    KT_CHECK(sgl_k_gemv(NULL, NULL, NULL, 1, 8, 8, 0.5f, 0) == SGL_K_EINVAL, "beta 0.5 rejected");
    if (kt_bench_mode) { /* Llama-3-8B decode shapes: qkv, o, gate|up, down, lm_head */
        static const int bench[][2] = {{4096, 6144}, {4096, 4096}, {4096, 28672}, {14336, 4096},
                                       {4096, 128256}};
        cublasHandle_t h;
        KT_CHECK(cublasCreate(&h) == CUBLAS_STATUS_SUCCESS, "cublasCreate");
        for (int n = 1; n <= 8; n *= 2)
            for (size_t b = 0; b < sizeof bench / sizeof bench[0]; b++) {
                int in = bench[b][0], out = bench[b][1];
                if (out > 100000 && n > 1) continue; /* lm_head: batch 1 only (1 GB to fill) */
                size_t ws = (size_t)out * in;
                uint16_t *W = kt_xmalloc(ws * 2), *x = kt_xmalloc((size_t)n * in * 2);
                kt_fill_bf16(W, ws, -1, 1);
                kt_fill_bf16(x, (size_t)n * in, -1, 1);
                uint16_t *W_d = kt_dup(W, ws * 2), *x_d = kt_dup(x, (size_t)n * in * 2);
                float *y_d = kt_alloc((size_t)n * out * 4);
                Ctx c = {x_d, W_d, y_d, n, in, out, 0.0f, h};
                double us = kt_bench(run, &c, 20), us_cb = kt_bench(run_cublas, &c, 20);
                printf("bench gemv n=%d in=%d out=%d: %.2f us, %.0f GB/s; cublasGemmEx %.2f us, %.0f GB/s\n",
                       n, in, out, us, ws * 2.0 / us / 1e3, us_cb, ws * 2.0 / us_cb / 1e3);
                kt_free(W_d); kt_free(x_d); kt_free(y_d);
                free(W); free(x);
            }
        cublasDestroy(h);
    }
    return kt_summary("test_gemv");
}

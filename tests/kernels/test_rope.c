/* test_rope.c -- sgl_k_rope (bias add + rotate_half) vs sgl_ref_rope, default
 * and llama3 inverse frequencies, positions up to 131071. Both sides form the
 * angle with the same fp32 multiply; the reference then uses double cos/sin,
 * the kernel sincosf (<= 2 ulp) and possibly FMA contraction: for |x| <= ~2,
 * errors stay below 1e-6, so atol 4e-6, rtol 1e-5. */
#include "tests/kernels/ktest.h"

typedef struct { float *x; int stride, n, nq, nkv, hd; const float *bias; const int32_t *pos; const float *inv; } Ctx;
static void run(void *p)
{
    Ctx *c = p;
    sgl_k_rope(c->x, c->stride, c->n, c->nq, c->nkv, c->hd, c->bias, c->pos, c->inv, 0);
}

int main(int argc, char **argv)
{
    kt_init(argc, argv, "test_rope");
    /* n tokens, n_q, n_kv, head_dim, extra stride, bias, llama3 */
    static const int shapes[][7] = {{1, 8, 4, 8, 0, 0, 0},  {5, 4, 2, 64, 0, 1, 0},
                                    {33, 32, 8, 128, 0, 0, 1}, {17, 14, 2, 64, 16, 1, 0},
                                    {3, 12, 12, 256, 0, 0, 0}, {129, 8, 1, 96, 0, 1, 1}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int n = shapes[s][0], nq = shapes[s][1], nkv = shapes[s][2], hd = shapes[s][3];
        int width = (nq + 2 * nkv) * hd, stride = width + shapes[s][4];
        size_t sz = (size_t)n * stride;
        float *x = kt_xmalloc(sz * 4), *ref = kt_xmalloc(sz * 4), *got = kt_xmalloc(sz * 4);
        float *bias = kt_xmalloc((size_t)width * 4), *inv = kt_xmalloc((size_t)hd / 2 * 4);
        int32_t *pos = kt_xmalloc((size_t)n * 4);
        kt_fill_f32(x, sz, -1, 1);
        kt_fill_f32(bias, width, -0.5f, 0.5f);
        for (int i = 0; i < n; i++) pos[i] = i == n - 1 ? 131071 : (int32_t)(kt_rand() % 9000);
        if (shapes[s][6])
            sgl_rope_inv_freq(hd, 500000.0, 8.0, 1.0, 4.0, 8192, inv);
        else
            sgl_rope_inv_freq(hd, 10000.0, 0, 0, 0, 0, inv);
        memcpy(ref, x, sz * 4);
        const float *b = shapes[s][5] ? bias : NULL;
        sgl_ref_rope(ref, stride, n, nq, nkv, hd, b, pos, inv);
        float *x_d = kt_dup(x, sz * 4), *bias_d = kt_dup(bias, (size_t)width * 4);
        float *inv_d = kt_dup(inv, (size_t)hd / 2 * 4);
        int32_t *pos_d = kt_dup(pos, (size_t)n * 4);
        KT_CHECK(sgl_k_rope(x_d, stride, n, nq, nkv, hd, b ? bias_d : NULL, pos_d, inv_d, 0) == 0, "launch");
        KT_CUDA(cudaDeviceSynchronize());
        kt_down(got, x_d, sz * 4);
        KT_CHECK(kt_cmp("qkv", got, ref, sz, 4e-6f, 1e-5f) == 0, "rope n=%d nq=%d nkv=%d hd=%d", n, nq, nkv, hd);
        KT_CHECK(kt_guard_ok(x_d, sz * 4), "guard");
        if (kt_bench_mode) { /* rotates the buffer further each run: fine for timing */
            Ctx c = {x_d, stride, n, nq, nkv, hd, b ? bias_d : NULL, pos_d, inv_d};
            double us = kt_bench(run, &c, 20);
            printf("bench rope n=%d nq=%d nkv=%d hd=%d: %.2f us, %.1f GB/s\n", n, nq, nkv, hd, us,
                   (double)n * (nq + nkv) * hd * 8 / us / 1e3);
        }
        kt_free(x_d); kt_free(bias_d); kt_free(inv_d); kt_free(pos_d);
        free(x); free(ref); free(got); free(bias); free(inv); free(pos);
    }
    KT_CHECK(sgl_k_rope(NULL, 64, 1, 1, 1, 7, NULL, NULL, NULL, 0) == SGL_K_EINVAL, "odd head_dim rejected");
    KT_CHECK(sgl_k_rope(NULL, 10, 1, 1, 1, 8, NULL, NULL, NULL, 0) == SGL_K_EINVAL, "short stride rejected");
    return kt_summary("test_rope");
}

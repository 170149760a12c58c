/* test_rmsnorm.c -- sgl_k_rmsnorm vs sgl_ref_rmsnorm, with and without the fused
 * residual add and the row map. The residual (fp32, one add) must match exactly.
 * The bf16 output may differ by one bf16 rounding step where the fp32 tree sum
 * and the reference's double sum land on opposite sides of a rounding boundary:
 * bf16 keeps 8 significant bits, so rtol 2^-7 (one ulp) plus atol 1e-6. */
#include "tests/kernels/ktest.h"

typedef struct { float *x; const float *add; const uint16_t *w; int hidden, n; uint16_t *out; } Ctx;
static void run(void *p)
{
    Ctx *c = p;
    sgl_k_rmsnorm(c->x, c->add, c->w, c->hidden, 1e-5f, NULL, c->n, c->out, 0);
}

int main(int argc, char **argv)
{
    kt_init(argc, argv, "test_rmsnorm");
    static const int shapes[][2] = {{64, 1}, {64, 9}, {1, 3}, {100, 17}, {896, 33},
                                    {4096, 64}, {5000, 7}, {8192, 256}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int hidden = shapes[s][0], n = shapes[s][1];
        for (int mode = 0; mode < 3; mode++) { /* 0 plain, 1 residual add, 2 add + row map */
            size_t xsz = (size_t)n * hidden;
            float *x = kt_xmalloc(xsz * 4), *add = kt_xmalloc(xsz * 4), *xref = kt_xmalloc(xsz * 4);
            float *xgot = kt_xmalloc(xsz * 4), *oref = kt_xmalloc(xsz * 4), *ogot = kt_xmalloc(xsz * 4);
            uint16_t *w = kt_xmalloc((size_t)hidden * 2), *o16 = kt_xmalloc(xsz * 2);
            int32_t *rows = kt_xmalloc((size_t)n * 4);
            kt_fill_f32(x, xsz, -3, 3);
            kt_fill_f32(add, xsz, -1, 1);
            kt_fill_bf16(w, hidden, 0.5f, 1.5f);
            int nr = mode == 2 ? (n + 1) / 2 : n;
            for (int r = 0; r < nr; r++) rows[r] = mode == 2 ? (n - 1 - 2 * r) : r;
            memcpy(xref, x, xsz * 4);
            sgl_ref_rmsnorm(xref, mode ? add : NULL, w, hidden, 1e-5f, mode == 2 ? rows : NULL, nr, o16);
            kt_bf16_to_f32(o16, oref, (size_t)nr * hidden);
            float *x_d = kt_dup(x, xsz * 4), *add_d = kt_dup(add, xsz * 4);
            uint16_t *w_d = kt_dup(w, (size_t)hidden * 2), *o_d = kt_alloc((size_t)nr * hidden * 2);
            int32_t *rows_d = kt_dup(rows, (size_t)n * 4);
            KT_CHECK(sgl_k_rmsnorm(x_d, mode ? add_d : NULL, w_d, hidden, 1e-5f,
                                   mode == 2 ? rows_d : NULL, nr, o_d, 0) == 0, "launch");
            KT_CUDA(cudaDeviceSynchronize());
            kt_down(xgot, x_d, xsz * 4);
            kt_down(o16, o_d, (size_t)nr * hidden * 2);
            kt_bf16_to_f32(o16, ogot, (size_t)nr * hidden);
            KT_CHECK(kt_cmp("x", xgot, xref, xsz, 0, 0) == 0, "residual hidden=%d n=%d mode=%d", hidden, n, mode);
            KT_CHECK(kt_cmp("out", ogot, oref, (size_t)nr * hidden, 1e-6f, 1.0f / 128) == 0,
                     "out hidden=%d n=%d mode=%d", hidden, n, mode);
            KT_CHECK(kt_guard_ok(o_d, (size_t)nr * hidden * 2) && kt_guard_ok(x_d, xsz * 4),
                     "guard hidden=%d n=%d mode=%d", hidden, n, mode);
            if (kt_bench_mode && mode == 1) {
                Ctx c = {x_d, add_d, w_d, hidden, n, o_d};
                double us = kt_bench(run, &c, 20);
                printf("bench rmsnorm+add hidden=%d n=%d: %.2f us, %.1f GB/s\n", hidden, n, us,
                       xsz * 14.0 / us / 1e3);
            }
            kt_free(x_d); kt_free(add_d); kt_free(w_d); kt_free(o_d); kt_free(rows_d);
            free(x); free(add); free(xref); free(xgot); free(oref); free(ogot); free(w); free(o16); free(rows);
        }
    }
    return kt_summary("test_rmsnorm");
}

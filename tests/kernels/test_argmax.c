/* test_argmax.c -- sgl_k_argmax vs sgl_ref_argmax, exact: random rows, ties
 * (lowest index wins), NaNs (never win), all-equal rows, vocab sizes that are
 * not multiples of the block. */
#include "tests/kernels/ktest.h"

typedef struct { const float *x; int n, cols; int32_t *out; } Ctx;
static void run(void *p)
{
    Ctx *c = p;
    sgl_k_argmax(c->x, c->n, c->cols, c->out, 0);
}

int main(int argc, char **argv)
{
    kt_init(argc, argv, "test_argmax");
    static const int shapes[][2] = {{1, 1}, {1, 512}, {9, 257}, {64, 32000}, {3, 151936}, {256, 128256}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int n = shapes[s][0], cols = shapes[s][1];
        size_t sz = (size_t)n * cols;
        float *x = kt_xmalloc(sz * 4);
        int32_t *ref = kt_xmalloc((size_t)n * 4), *got = kt_xmalloc((size_t)n * 4);
        kt_fill_f32(x, sz, -10, 10);
        for (int r = 0; r < n; r++) {
            float *xr = x + (size_t)r * cols;
            int kind = r % 4;
            if (kind == 1 && cols > 2) { /* tie between two positions */
                int a = (int)(kt_rand() % (uint32_t)cols), b = (int)(kt_rand() % (uint32_t)cols);
                xr[a] = xr[b] = 11.0f;
            } else if (kind == 2) { /* NaNs, incl. at index 0 */
                xr[0] = NAN;
                xr[cols / 2] = NAN;
            } else if (kind == 3 && r % 8 == 3) {
                for (int j = 0; j < cols; j++) xr[j] = 1.5f;
            }
        }
        sgl_ref_argmax(x, n, cols, ref);
        float *x_d = kt_dup(x, sz * 4);
        int32_t *o_d = kt_alloc((size_t)n * 4);
        KT_CHECK(sgl_k_argmax(x_d, n, cols, o_d, 0) == 0, "launch");
        KT_CUDA(cudaDeviceSynchronize());
        kt_down(got, o_d, (size_t)n * 4);
        int bad = 0;
        for (int r = 0; r < n; r++)
            if (got[r] != ref[r] && bad++ < 5) fprintf(stderr, "  row %d: got %d ref %d\n", r, got[r], ref[r]);
        KT_CHECK(bad == 0, "argmax n=%d cols=%d: %d rows differ", n, cols, bad);
        KT_CHECK(kt_guard_ok(o_d, (size_t)n * 4), "guard");
        if (kt_bench_mode) {
            Ctx c = {x_d, n, cols, o_d};
            double us = kt_bench(run, &c, 20);
            printf("bench argmax n=%d cols=%d: %.2f us, %.1f GB/s\n", n, cols, us, sz * 4.0 / us / 1e3);
        }
        kt_free(x_d); kt_free(o_d);
        free(x); free(ref); free(got);
    }
    return kt_summary("test_argmax");
}

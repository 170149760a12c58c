/* test_embedding.c -- sgl_k_embedding vs sgl_ref_embedding: exact (bf16 -> f32
 * is exact), incl. out-of-range ids (zero rows) and canaries around x. */
#include "tests/kernels/ktest.h"

typedef struct { const uint16_t *e; int vocab, hidden, n; const int32_t *tok; float *x; } Ctx;
static void run(void *p)
{
    Ctx *c = p;
    sgl_k_embedding(c->e, c->vocab, c->hidden, c->tok, c->n, c->x, 0);
}

int main(int argc, char **argv)
{
    kt_init(argc, argv, "test_embedding");
    static const int shapes[][3] = {{512, 64, 1}, {512, 64, 7}, {1000, 100, 33}, {32000, 4096, 5},
                                    {151936, 896, 65}, {17, 3, 300}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int vocab = shapes[s][0], hidden = shapes[s][1], n = shapes[s][2];
        size_t esz = (size_t)vocab * hidden, xsz = (size_t)n * hidden;
        uint16_t *e = kt_xmalloc(esz * 2);
        int32_t *tok = kt_xmalloc((size_t)n * 4);
        float *ref = kt_xmalloc(xsz * 4), *got = kt_xmalloc(xsz * 4);
        kt_fill_bf16(e, esz, -1, 1);
        for (int i = 0; i < n; i++) tok[i] = (int32_t)(kt_rand() % (uint32_t)vocab);
        if (n > 2) { tok[0] = -1; tok[1] = vocab; tok[2] = vocab - 1; } /* edges */
        sgl_ref_embedding(e, vocab, hidden, tok, n, ref);
        uint16_t *e_d = kt_dup(e, esz * 2);
        int32_t *tok_d = kt_dup(tok, (size_t)n * 4);
        float *x_d = kt_alloc(xsz * 4);
        KT_CHECK(sgl_k_embedding(e_d, vocab, hidden, tok_d, n, x_d, 0) == 0, "launch");
        KT_CUDA(cudaDeviceSynchronize());
        kt_down(got, x_d, xsz * 4);
        KT_CHECK(kt_cmp("x", got, ref, xsz, 0, 0) == 0, "embedding vocab=%d hidden=%d n=%d", vocab, hidden, n);
        KT_CHECK(kt_guard_ok(x_d, xsz * 4), "guard vocab=%d hidden=%d n=%d", vocab, hidden, n);
        if (kt_bench_mode) {
            Ctx c = {e_d, vocab, hidden, n, tok_d, x_d};
            double us = kt_bench(run, &c, 20);
            printf("bench embedding vocab=%d hidden=%d n=%d: %.2f us, %.1f GB/s\n", vocab, hidden, n,
                   us, xsz * 6.0 / us / 1e3);
        }
        kt_free(e_d); kt_free(tok_d); kt_free(x_d);
        free(e); free(tok); free(ref); free(got);
    }
    KT_CHECK(sgl_k_embedding(NULL, 0, 4, NULL, 1, NULL, 0) == SGL_K_EINVAL, "bad vocab rejected");
    return kt_summary("test_embedding");
}

/* test_embedding_range.c -- sgl_k_embedding_range vs sgl_ref_embedding_range:
 * exact (bf16 -> f32 is exact), with canaries around x. For every shape the
 * table is cut into `parts` vocab blocks of ceil(vocab/parts) rows (the last
 * one short, as runtime/tp.h shards it) and the per-block outputs must sum to
 * the whole-table sgl_ref_embedding exactly (one block is non-zero per token),
 * which is what the tensor-parallel all-reduce relies on. */
#include "tests/kernels/ktest.h"

typedef struct { const uint16_t *e; int row0, n_rows, hidden, n; const int32_t *tok; float *x; } Ctx;
static void run(void *p)
{
    Ctx *c = p;
    sgl_k_embedding_range(c->e, c->row0, c->n_rows, c->hidden, c->tok, c->n, c->x, 0);
}

int main(int argc, char **argv)
{
    kt_init(argc, argv, "test_embedding_range");
    /* vocab, hidden, n tokens, parts */
    static const int shapes[][4] = {{512, 64, 1, 2}, {512, 64, 7, 1}, {1000, 100, 33, 3}, {3001, 96, 40, 2},
                                    {128256, 1024, 9, 2}, {151936, 896, 65, 4}, {17, 3, 300, 5}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int vocab = shapes[s][0], hidden = shapes[s][1], n = shapes[s][2], parts = shapes[s][3];
        int block = (vocab + parts - 1) / parts;
        size_t esz = (size_t)vocab * hidden, xsz = (size_t)n * hidden;
        uint16_t *e = kt_xmalloc(esz * 2);
        int32_t *tok = kt_xmalloc((size_t)n * 4);
        float *full = kt_xmalloc(xsz * 4), *sum = kt_xmalloc(xsz * 4);
        float *ref = kt_xmalloc(xsz * 4), *got = kt_xmalloc(xsz * 4);
        kt_fill_bf16(e, esz, -1, 1);
        for (int i = 0; i < n; i++) tok[i] = (int32_t)(kt_rand() % (uint32_t)vocab);
        if (n > 3) { tok[0] = -1; tok[1] = vocab; tok[2] = vocab - 1; tok[3] = block < vocab ? block : 0; }
        sgl_ref_embedding(e, vocab, hidden, tok, n, full);
        memset(sum, 0, xsz * 4);
        int32_t *tok_d = kt_dup(tok, (size_t)n * 4);
        for (int r = 0; r < parts; r++) {
            int row0 = r * block, n_rows = vocab - row0 < block ? vocab - row0 : block;
            if (n_rows < 0) n_rows = 0;
            sgl_ref_embedding_range(e + (size_t)row0 * hidden, row0, n_rows, hidden, tok, n, ref);
            uint16_t *e_d = kt_dup(e + (size_t)row0 * hidden, (size_t)(n_rows ? n_rows : 1) * hidden * 2);
            float *x_d = kt_alloc(xsz * 4);
            KT_CHECK(sgl_k_embedding_range(e_d, row0, n_rows, hidden, tok_d, n, x_d, 0) == 0, "launch");
            KT_CUDA(cudaDeviceSynchronize());
            kt_down(got, x_d, xsz * 4);
            KT_CHECK(kt_cmp("x", got, ref, xsz, 0, 0) == 0, "embedding_range vocab=%d hidden=%d n=%d block %d/%d",
                     vocab, hidden, n, r, parts);
            KT_CHECK(kt_guard_ok(x_d, xsz * 4), "guard vocab=%d hidden=%d n=%d", vocab, hidden, n);
            for (size_t k = 0; k < xsz; k++) sum[k] += got[k];
            if (kt_bench_mode && r == 0) {
                Ctx c = {e_d, row0, n_rows, hidden, n, tok_d, x_d};
                double us = kt_bench(run, &c, 20);
                printf("bench embedding_range vocab=%d hidden=%d n=%d parts=%d: %.2f us\n", vocab, hidden, n,
                       parts, us);
            }
            kt_free(e_d);
            kt_free(x_d);
        }
        KT_CHECK(kt_cmp("sum", sum, full, xsz, 0, 0) == 0, "blocks sum to the whole table vocab=%d parts=%d",
                 vocab, parts);
        kt_free(tok_d);
        free(e); free(tok); free(full); free(sum); free(ref); free(got);
    }
    KT_CHECK(sgl_k_embedding_range(NULL, 0, 4, 0, NULL, 1, NULL, 0) == SGL_K_EINVAL, "bad hidden rejected");
    KT_CHECK(sgl_k_embedding_range(NULL, -1, 4, 8, NULL, 1, NULL, 0) == SGL_K_EINVAL, "negative row0 rejected");
    return kt_summary("test_embedding_range");
}

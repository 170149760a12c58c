/* test_attn_prefill.c -- sgl_k_attn_prefill vs the double reference: several
 * sequences per batch, each with a cached prefix in the pool (0, 1, 50, 700
 * tokens; the second shares the first's prefix slots) and new-token counts
 * that are and are not multiples of the query tile, over MHA and GQA head
 * geometries with head_dim 8..256. Each case runs twice: with 16-token tiles
 * and with the kernel's own tile (sgl_k_attn_prefill_tile: 64 tokens on the
 * tensor-core path for head_dim 64/128), cut per sequence as the runner cuts
 * them. Tolerance: 1e-3 for the fp32 SIMT path; the tensor-core path rounds Q
 * and the probabilities P to bf16 for the mma, so each term of P V carries up
 * to 2^-9 relative error: 2e-3. */
#include "tests/kernels/attn_setup.h"

#define TC_ATOL 2e-3f

typedef struct { SglAttnArgs a; const int32_t *tiles, *tlen; int nt; } Ctx;
static void run(void *p)
{
    Ctx *c = p;
    sgl_k_attn_prefill(&c->a, c->tiles, c->tlen, c->nt, 0);
}

/* Cuts every sequence's new tokens into tiles of at most `tile`. */
static int cut_tiles(const AttnCase *c, int ns, int tile, int32_t *tiles, int32_t *tlen)
{
    int nt = 0;
    for (int s = 0; s < ns; s++)
        for (int t = 0; t < c->seq_new[s]; t += tile) {
            tiles[nt] = c->seq_start[s] + t;
            tlen[nt++] = c->seq_new[s] - t < tile ? c->seq_new[s] - t : tile;
        }
    return nt;
}

int main(int argc, char **argv)
{
    kt_init(argc, argv, "test_attn_prefill");
    static const int heads[][3] = {{8, 4, 8}, {4, 4, 64}, {32, 8, 128}, {14, 2, 64}, {4, 2, 256}};
    /* pairs (kv_len, n_new), 0-terminated */
    static const int cases[][10] = {{1, 1, 0}, {16, 16, 17, 17, 0}, {55, 5, 60, 10, 40, 40, 0},
                                    {701, 1, 740, 40, 0}, {300, 300, 0}};
    for (size_t h = 0; h < sizeof heads / sizeof heads[0]; h++)
        for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
            int kv_len[8], n_new[8], ns = 0;
            for (int s = 0; cases[k][2 * s]; s++, ns++) {
                kv_len[s] = cases[k][2 * s];
                n_new[s] = cases[k][2 * s + 1];
            }
            AttnCase c;
            attn_case_init(&c, ns, kv_len, n_new, heads[h][0], heads[h][1], heads[h][2]);
            int32_t *tiles = kt_xmalloc((size_t)c.n * 4), *tlen = kt_xmalloc((size_t)c.n * 4);
            SglAttnArgs a = attn_case_args(&c);
            int tile = sgl_k_attn_prefill_tile(c.hd);
            float atol = tile > 16 ? TC_ATOL : 1e-3f;
            int32_t *tiles_d = NULL, *tlen_d = NULL;
            int nt = 0;
            for (int pass = 0; pass < 2; pass++) {
                int tl = pass == 0 ? 16 : tile;
                if (pass == 1 && tl == 16) break;
                kt_free(tiles_d); kt_free(tlen_d);
                nt = cut_tiles(&c, ns, tl, tiles, tlen);
                tiles_d = kt_dup(tiles, (size_t)nt * 4);
                tlen_d = kt_dup(tlen, (size_t)nt * 4);
                KT_CUDA(cudaMemset(c.out_d, KT_CANARY, (size_t)c.n * c.nh * c.hd * 2));
                KT_CHECK(sgl_k_attn_prefill(&a, tiles_d, tlen_d, nt, 0) == 0, "launch");
                KT_CUDA(cudaDeviceSynchronize());
                KT_CHECK(attn_case_check(&c, "out", atol) == 0, "prefill nh=%d nkv=%d hd=%d case#%zu tile %d",
                         c.nh, c.nkv, c.hd, k, tl);
            }
            if (kt_bench_mode) {
                Ctx x = {a, tiles_d, tlen_d, nt};
                double us = kt_bench(run, &x, 10);
                double flops = 0;
                for (int s = 0; s < ns; s++)
                    for (int t = 0; t < n_new[s]; t++)
                        flops += 4.0 * (kv_len[s] - n_new[s] + t + 1) * c.nh * c.hd;
                printf("bench attn_prefill nh=%d nkv=%d hd=%d tokens=%d: %.2f us, %.2f TFLOP/s\n", c.nh,
                       c.nkv, c.hd, c.n, us, flops / us / 1e6);
            }
            kt_free(tiles_d); kt_free(tlen_d);
            free(tiles); free(tlen);
            attn_case_free(&c);
        }
    if (kt_bench_mode) { /* timing only (the double reference would take minutes): 8 x 2048, Llama-3-8B heads */
        int kv_len[8], n_new[8];
        for (int s = 0; s < 8; s++) kv_len[s] = n_new[s] = 2048;
        AttnCase c;
        attn_case_init(&c, 8, kv_len, n_new, 32, 8, 128);
        int32_t *tiles = kt_xmalloc((size_t)c.n * 4), *tlen = kt_xmalloc((size_t)c.n * 4);
        int nt = cut_tiles(&c, 8, sgl_k_attn_prefill_tile(128), tiles, tlen);
        int32_t *tiles_d = kt_dup(tiles, (size_t)nt * 4), *tlen_d = kt_dup(tlen, (size_t)nt * 4);
        Ctx x = {attn_case_args(&c), tiles_d, tlen_d, nt};
        double us = kt_bench(run, &x, 5);
        double flops = 8 * 4.0 * 32 * 128 * (2048.0 * 2049 / 2);
        printf("bench attn_prefill 8 x 2048 nh=32 nkv=8 hd=128 (tensor cores): %.1f us, %.2f TFLOP/s\n", us,
               flops / us / 1e6);
        kt_free(tiles_d); kt_free(tlen_d);
        free(tiles); free(tlen);
        attn_case_free(&c);
    }
    return kt_summary("test_attn_prefill");
}

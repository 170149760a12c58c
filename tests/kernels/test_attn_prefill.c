/* test_attn_prefill.c -- sgl_k_attn_prefill vs the double reference: several
 * sequences per batch, each with a cached prefix in the pool (0, 1, 50, 700
 * tokens; the second shares the first's prefix slots) and new-token counts
 * that are and are not multiples of the 16-token query tile, over MHA and GQA
 * head geometries with head_dim 8..256. Tiles are cut per sequence as the
 * runner cuts them. The experimental tensor-core v2 runs on the same cases
 * (head_dim 64 and 128) with 64-token tiles. */
#include "tests/kernels/attn_setup.h"

/* The experimental tensor-core kernel (tests/kernels/attn_prefill_v2.cu).
 * It rounds Q and the probabilities P to bf16 for the mma: each term of P V
 * carries up to 2^-9 relative error, so its absolute tolerance is 2e-3. */
int sgl_k_attn_prefill_v2(const SglAttnArgs *a, const int32_t *tiles, const int32_t *tile_len,
                          int n_tiles, cudaStream_t st);
#define V2_ATOL 2e-3f

typedef struct { SglAttnArgs a; const int32_t *tiles, *tlen; int nt; int v2; } Ctx;
static void run(void *p)
{
    Ctx *c = p;
    if (c->v2)
        sgl_k_attn_prefill_v2(&c->a, c->tiles, c->tlen, c->nt, 0);
    else
        sgl_k_attn_prefill(&c->a, c->tiles, c->tlen, c->nt, 0);
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
            int nt = 0;
            for (int s = 0; s < ns; s++)
                for (int t = 0; t < c.seq_new[s]; t += SGL_K_PREFILL_TILE) {
                    tiles[nt] = c.seq_start[s] + t;
                    tlen[nt++] = c.seq_new[s] - t < SGL_K_PREFILL_TILE ? c.seq_new[s] - t : SGL_K_PREFILL_TILE;
                }
            int32_t *tiles_d = kt_dup(tiles, (size_t)nt * 4), *tlen_d = kt_dup(tlen, (size_t)nt * 4);
            SglAttnArgs a = attn_case_args(&c);
            KT_CHECK(sgl_k_attn_prefill(&a, tiles_d, tlen_d, nt, 0) == 0, "launch");
            KT_CUDA(cudaDeviceSynchronize());
            KT_CHECK(attn_case_check(&c, "out", 1e-3f) == 0, "prefill nh=%d nkv=%d hd=%d case#%zu", c.nh, c.nkv,
                     c.hd, k);
            if (c.hd == 64 || c.hd == 128) { /* experimental tensor-core v2, 64-token tiles */
                int nt2 = 0;
                for (int s = 0; s < ns; s++)
                    for (int t = 0; t < c.seq_new[s]; t += 64) {
                        tiles[nt2] = c.seq_start[s] + t;
                        tlen[nt2++] = c.seq_new[s] - t < 64 ? c.seq_new[s] - t : 64;
                    }
                int32_t *t2_d = kt_dup(tiles, (size_t)nt2 * 4), *l2_d = kt_dup(tlen, (size_t)nt2 * 4);
                KT_CUDA(cudaMemset(c.out_d, KT_CANARY, (size_t)c.n * c.nh * c.hd * 2));
                KT_CHECK(sgl_k_attn_prefill_v2(&a, t2_d, l2_d, nt2, 0) == 0, "v2 launch");
                KT_CUDA(cudaDeviceSynchronize());
                KT_CHECK(attn_case_check(&c, "out_v2", V2_ATOL) == 0, "prefill v2 nh=%d nkv=%d hd=%d case#%zu",
                         c.nh, c.nkv, c.hd, k);
                kt_free(t2_d); kt_free(l2_d);
            }
            if (kt_bench_mode) {
                Ctx x = {a, tiles_d, tlen_d, nt, 0};
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
        int nt = 0;
        for (int t = 0; t < c.n; t += SGL_K_PREFILL_TILE, nt++) {
            tiles[nt] = t;
            tlen[nt] = SGL_K_PREFILL_TILE; /* 2048 is a multiple of the tile */
        }
        int32_t *tiles_d = kt_dup(tiles, (size_t)nt * 4), *tlen_d = kt_dup(tlen, (size_t)nt * 4);
        Ctx x = {attn_case_args(&c), tiles_d, tlen_d, nt, 0};
        double us = kt_bench(run, &x, 3);
        double flops = 8 * 4.0 * 32 * 128 * (2048.0 * 2049 / 2);
        printf("bench attn_prefill 8 x 2048 nh=32 nkv=8 hd=128: %.1f us, %.2f TFLOP/s\n", us, flops / us / 1e6);
        int nt2 = 0;
        for (int t = 0; t < c.n; t += 64, nt2++) {
            tiles[nt2] = t;
            tlen[nt2] = 64;
        }
        int32_t *t2_d = kt_dup(tiles, (size_t)nt2 * 4), *l2_d = kt_dup(tlen, (size_t)nt2 * 4);
        Ctx x2 = {attn_case_args(&c), t2_d, l2_d, nt2, 1};
        us = kt_bench(run, &x2, 5);
        printf("bench attn_prefill_v2 (mma.sync) 8 x 2048 nh=32 nkv=8 hd=128: %.1f us, %.2f TFLOP/s\n", us,
               flops / us / 1e6);
        kt_free(t2_d); kt_free(l2_d);
        kt_free(tiles_d); kt_free(tlen_d);
        free(tiles); free(tlen);
        attn_case_free(&c);
    }
    return kt_summary("test_attn_prefill");
}

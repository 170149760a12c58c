/* test_attn_decode.c -- sgl_k_attn_decode vs the double reference over head
 * geometries (MHA, GQA groups 2/4/7/8, head_dim 8..256) and context lengths
 * that are not multiples of the 32-key tile, short and long enough to split
 * (flash-decoding path), with a full workspace, none, and a too-small one. */
#include "tests/kernels/attn_setup.h"

typedef struct { SglAttnArgs a; int max_len; float *ws; int64_t ws_floats; } Ctx;
static void run(void *p)
{
    Ctx *c = p;
    sgl_k_attn_decode(&c->a, c->max_len, c->ws, c->ws_floats, 0);
}

int main(int argc, char **argv)
{
    kt_init(argc, argv, "test_attn_decode");
    static const int heads[][3] = {{8, 4, 8}, {4, 4, 64}, {32, 8, 128}, {14, 2, 64}, {16, 2, 128},
                                   {4, 2, 256}};
    static const int lens[][6] = {{1, 0}, {2, 33, 31, 32, 1, 0}, {300, 1000, 4097, 0},
                                  {5000, 0}};
    for (size_t h = 0; h < sizeof heads / sizeof heads[0]; h++)
        for (size_t l = 0; l < sizeof lens / sizeof lens[0]; l++) {
            int kv_len[8], n_new[8], ns = 0;
            for (int s = 0; lens[l][s]; s++, ns++) { kv_len[s] = lens[l][s]; n_new[s] = 1; }
            AttnCase c;
            attn_case_init(&c, ns, kv_len, n_new, heads[h][0], heads[h][1], heads[h][2]);
            SglAttnArgs a = attn_case_args(&c);
            int64_t wsf = sgl_k_attn_decode_ws_floats(c.n, c.nh, c.hd, c.max_len);
            for (int mode = 0; mode < 3; mode++) { /* full ws, no ws, a third of it */
                float *ws = NULL;
                int64_t have = mode == 0 ? wsf : mode == 2 ? wsf / 3 : 0;
                if (have > 0) ws = kt_alloc((size_t)have * 4);
                KT_CUDA(cudaMemset(c.out_d, KT_CANARY, (size_t)c.n * c.nh * c.hd * 2));
                KT_CHECK(sgl_k_attn_decode(&a, c.max_len, ws, have, 0) == 0, "launch");
                KT_CUDA(cudaDeviceSynchronize());
                KT_CHECK(attn_case_check(&c, "out", 1e-3f) == 0, "decode nh=%d nkv=%d hd=%d lens#%zu ws=%lld",
                         c.nh, c.nkv, c.hd, l, (long long)have);
                if (ws) KT_CHECK(kt_guard_ok(ws, (size_t)have * 4), "ws guard");
                if (kt_bench_mode && mode == 0) {
                    Ctx x = {a, c.max_len, ws, have};
                    double us = kt_bench(run, &x, 20);
                    double bytes = 0;
                    for (int s = 0; s < ns; s++) bytes += 2.0 * kv_len[s] * c.nkv * c.hd * 2;
                    printf("bench attn_decode nh=%d nkv=%d hd=%d seqs=%d max_len=%d: %.2f us, %.1f GB/s (KV)\n",
                           c.nh, c.nkv, c.hd, ns, c.max_len, us, bytes / us / 1e3);
                }
                kt_free(ws);
            }
            attn_case_free(&c);
        }
    if (kt_bench_mode) { /* timing only: Llama-3-8B heads, batch 1 and 64 at 1024 keys, batch 1 at 8192 */
        static const int bench[][2] = {{1, 1024}, {64, 1024}, {1, 8192}};
        for (int k = 0; k < 3; k++) {
            int ns = bench[k][0], kv_len[64], n_new[64];
            for (int s = 0; s < ns; s++) { kv_len[s] = bench[k][1]; n_new[s] = 1; }
            AttnCase c;
            attn_case_init(&c, ns, kv_len, n_new, 32, 8, 128);
            int64_t wsf = sgl_k_attn_decode_ws_floats(c.n, c.nh, c.hd, c.max_len);
            float *ws = wsf ? kt_alloc((size_t)wsf * 4) : NULL;
            Ctx x = {attn_case_args(&c), c.max_len, ws, wsf};
            double us = kt_bench(run, &x, 20);
            double bytes = 2.0 * ns * bench[k][1] * c.nkv * c.hd * 2;
            printf("bench attn_decode batch %d x %d keys nh=32 nkv=8 hd=128: %.2f us, %.1f GB/s (KV)\n", ns,
                   bench[k][1], us, bytes / us / 1e3);
            kt_free(ws);
            attn_case_free(&c);
        }
    }
    SglAttnArgs bad = {0};
    bad.n = 1; bad.n_heads = 6; bad.n_kv_heads = 4; bad.head_dim = 64; bad.q_stride = 1000;
    KT_CHECK(sgl_k_attn_decode(&bad, 1, NULL, 0, 0) == SGL_K_EINVAL, "heads not a multiple of kv heads rejected");
    return kt_summary("test_attn_decode");
}

/* attn_decode.cu -- decode attention over the slot-indexed KV pool,
 * GQA-aware and split over the keys (flash-decoding).
 *
 * Grid (token, head block, split): a block takes one query token and nh q heads
 * of one kv group (so each K/V tile is read once for the whole group) and a
 * chunk of the keys. With one split it writes the normalised bf16 output
 * directly; otherwise it writes (m, l, acc[hd]) partials to the workspace and
 * attn_reduce_kernel merges them: M = max m_s, out = sum acc_s e^(m_s-M) /
 * sum l_s e^(m_s-M). The block body is in attn_common.cuh.
 */
#include "kernels/attn_common.cuh"
#include "kernels/cuda_check.h"

#define DEC_MIN_CHUNK 256   /* keys per split at least: below this, splitting costs more */
#define DEC_TARGET_BLOCKS 264 /* ~2 waves of an H100's 132 SMs */

/* Workspace partial for (split, token, head): [m, l, acc(hd)]. */
#define PART(ws, s, i, h, n, nh_tot, hd) ((ws) + (((int64_t)(s) * (n) + (i)) * (nh_tot) + (h)) * ((hd) + 2))

__global__ void attn_decode_kernel(const SglAttnArgs a, int nh, int chunk, int n_splits, float *ws)
{
    extern __shared__ float sm[];
    int i = blockIdx.x, h0 = blockIdx.y * nh, s = blockIdx.z;
    int hd = a.head_dim;
    att_block(a, i, 1, h0, nh, s * chunk, (s + 1) * chunk, sm);
    const float *acc = sm;
    const float *mrow = sm + 2 * nh * hd + nh * ATT_KT, *lrow = mrow + nh;
    if (n_splits == 1) {
        for (int e = threadIdx.x; e < nh * hd; e += blockDim.x) {
            int g = e / hd, d = e - g * hd;
            float l = lrow[g];
            float v = l > 0.0f ? acc[e] / l : 0.0f;
            a.out[(int64_t)i * a.n_heads * hd + (h0 + g) * hd + d] =
                __bfloat16_as_ushort(__float2bfloat16(v));
        }
        return;
    }
    for (int e = threadIdx.x; e < nh * (hd + 2); e += blockDim.x) {
        int g = e / (hd + 2), d = e - g * (hd + 2);
        float *p = PART(ws, s, i, h0 + g, a.n, a.n_heads, hd);
        p[d] = d == 0 ? mrow[g] : d == 1 ? lrow[g] : acc[g * hd + d - 2];
    }
}

__global__ void attn_reduce_kernel(const SglAttnArgs a, int n_splits, const float *ws)
{
    int i = blockIdx.x, h = blockIdx.y, hd = a.head_dim;
    float M = -CUDART_INF_F;
    for (int s = 0; s < n_splits; s++) M = fmaxf(M, PART(ws, s, i, h, a.n, a.n_heads, hd)[0]);
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
        float L = 0.0f, v = 0.0f;
        for (int s = 0; s < n_splits; s++) {
            const float *p = PART(ws, s, i, h, a.n, a.n_heads, hd);
            if (p[1] == 0.0f) continue; /* split saw no keys */
            float w = __expf(p[0] - M);
            L += p[1] * w;
            v += p[2 + d] * w;
        }
        a.out[(int64_t)i * a.n_heads * hd + h * hd + d] =
            __bfloat16_as_ushort(__float2bfloat16(L > 0.0f ? v / L : 0.0f));
    }
}

static int decode_splits(int n, int head_blocks, int max_kv_len)
{
    int by_len = (max_kv_len + DEC_MIN_CHUNK - 1) / DEC_MIN_CHUNK;
    int want = (DEC_TARGET_BLOCKS + n * head_blocks - 1) / (n * head_blocks);
    int s = want < by_len ? want : by_len;
    return s < 1 ? 1 : s;
}

extern "C" int64_t sgl_k_attn_decode_ws_floats(int n, int n_heads, int head_dim, int max_kv_len)
{
    int s = decode_splits(n > 0 ? n : 1, 1, max_kv_len);
    return s <= 1 ? 0 : (int64_t)s * n * n_heads * (head_dim + 2);
}

static int attn_args_ok(const SglAttnArgs *a)
{
    return a->n >= 0 && a->n_kv_heads > 0 && a->n_heads % a->n_kv_heads == 0 && a->head_dim > 0 &&
           (a->head_dim & 1) == 0 && a->head_dim <= SGL_K_MAX_HEAD_DIM &&
           a->q_stride >= a->n_heads * a->head_dim;
}

extern "C" int sgl_k_attn_decode(const SglAttnArgs *a, int max_kv_len, float *ws, int64_t ws_floats,
                                 cudaStream_t st)
{
    if (!attn_args_ok(a) || max_kv_len < 1) return SGL_K_EINVAL;
    if (a->n == 0) return 0;
    int group = a->n_heads / a->n_kv_heads;
    int nh = att_heads_per_block(group, 1, a->head_dim);
    int head_blocks = a->n_heads / nh;
    int n_splits = decode_splits(a->n, head_blocks, max_kv_len);
    int64_t need = (int64_t)n_splits * a->n * a->n_heads * (a->head_dim + 2);
    if (n_splits > 1 && (!ws || need > ws_floats)) {
        /* fit the workspace we were given; one split needs none */
        int64_t per = (int64_t)a->n * a->n_heads * (a->head_dim + 2);
        n_splits = ws ? (int)(ws_floats / per) : 1;
        if (n_splits < 1) n_splits = 1;
    }
    int chunk = (max_kv_len + n_splits - 1) / n_splits;
    chunk = (chunk + ATT_KT - 1) / ATT_KT * ATT_KT;
    n_splits = (max_kv_len + chunk - 1) / chunk;
    size_t smem = att_smem_bytes(nh, a->head_dim);
    if (smem > 48 * 1024) {
        cudaError_t e = cudaFuncSetAttribute(attn_decode_kernel,
                                             cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
        if (e != cudaSuccess) return (int)e;
    }
    dim3 grid(a->n, head_blocks, n_splits);
    attn_decode_kernel<<<grid, ATT_THREADS, smem, st>>>(*a, nh, chunk, n_splits, ws);
    SGL_K_LAUNCHED(st);
    if (n_splits > 1) {
        dim3 g2(a->n, a->n_heads);
        int threads = a->head_dim >= 128 ? 128 : ((a->head_dim + 31) / 32) * 32;
        attn_reduce_kernel<<<g2, threads, 0, st>>>(*a, n_splits, ws);
        SGL_K_LAUNCHED(st);
    }
    return 0;
}

/* attn_prefill.cu -- prefill/extend attention: causal, with the cached prefix
 * read from the slot-indexed pool like the new tokens.
 *
 * Grid (query tile, head block): a block takes up to SGL_K_PREFILL_TILE
 * consecutive tokens of one sequence times nh q heads of one kv group, so each
 * K/V tile it gathers serves tile * nh query rows. Keys run from 0 to the last
 * token's position; rows mask their own causal limit. No split: a prefill has
 * enough tiles to fill the GPU. This is the SIMT correctness-first version (fp32
 * FMAs from shared memory); tensor cores are the next step (issue 7).
 */
#include "kernels/attn_common.cuh"
#include "kernels/cuda_check.h"

__global__ void attn_prefill_kernel(const SglAttnArgs a, const int32_t *tiles,
                                    const int32_t *tile_len, int nh)
{
    extern __shared__ float sm[];
    int t0 = tiles[blockIdx.x], nt = tile_len[blockIdx.x], h0 = blockIdx.y * nh;
    int hd = a.head_dim, R = nt * nh;
    att_block(a, t0, nt, h0, nh, 0, 0x7fffffff, sm);
    const float *acc = sm;
    const float *lrow = sm + 2 * R * hd + R * ATT_KT + R;
    for (int e = threadIdx.x; e < R * hd; e += blockDim.x) {
        int r = e / hd, d = e - r * hd;
        int t = r / nh, g = r - t * nh;
        float l = lrow[r];
        a.out[(int64_t)(t0 + t) * a.n_heads * hd + (h0 + g) * hd + d] =
            __bfloat16_as_ushort(__float2bfloat16(l > 0.0f ? acc[e] / l : 0.0f));
    }
}

extern "C" int sgl_k_attn_prefill(const SglAttnArgs *a, const int32_t *tiles,
                                  const int32_t *tile_len, int n_tiles, cudaStream_t st)
{
    if (a->n < 0 || a->n_kv_heads <= 0 || a->n_heads % a->n_kv_heads != 0 || a->head_dim <= 0 ||
        (a->head_dim & 1) || a->head_dim > SGL_K_MAX_HEAD_DIM ||
        a->q_stride < a->n_heads * a->head_dim || n_tiles < 0)
        return SGL_K_EINVAL;
    if (n_tiles == 0) return 0;
    int group = a->n_heads / a->n_kv_heads;
    int nh = att_heads_per_block(group, SGL_K_PREFILL_TILE, a->head_dim);
    size_t smem = att_smem_bytes(SGL_K_PREFILL_TILE * nh, a->head_dim);
    if (smem > 48 * 1024) {
        cudaError_t e = cudaFuncSetAttribute(attn_prefill_kernel,
                                             cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
        if (e != cudaSuccess) return (int)e;
    }
    dim3 grid(n_tiles, a->n_heads / nh);
    attn_prefill_kernel<<<grid, ATT_THREADS, smem, st>>>(*a, tiles, tile_len, nh);
    SGL_K_LAUNCHED(st);
    return 0;
}

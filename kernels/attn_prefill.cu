/* attn_prefill.cu -- prefill/extend attention: causal, with the cached prefix
 * read from the slot-indexed pool like the new tokens.
 *
 * head_dim 64 and 128 (every Llama/Qwen2 size we serve) run the tensor-core
 * kernel: FlashAttention-2 structure on mma.sync.m16n8k16 (bf16 in, fp32
 * accumulate). A block takes up to 64 consecutive tokens of one sequence for
 * one q head; each of its 4 warps owns 16 query rows with Q kept in registers
 * as A fragments. Per 64-key tile, K (row-major) and V (transposed) are
 * gathered from the pool into shared memory; S = Q K^T comes out in the
 * C-fragment layout, is masked causally, exponentiated (base 2, online
 * softmax) and reused directly as the A fragment of P V. Q and P are rounded
 * to bf16 for the mma (each P V term within 2^-9 relative).
 * Other head dims run the SIMT kernel (fp32 FMAs from shared memory, 16-token
 * tiles; attn_common.cuh): grid (query tile, head block), a block takes the
 * tile's tokens times nh q heads of one kv group so each K/V tile it gathers
 * serves tile * nh rows. Keys run from 0 to the last token's position; rows
 * mask their own causal limit. No split: a prefill has enough tiles.
 * The tensor-core kernel was measured at 83.6 TFLOP/s against 4.35 for the
 * SIMT one on 8 x 2048 tokens, Llama-3-8B heads, H100 (test_k_attn_prefill --bench).
 */
#include "kernels/attn_common.cuh"
#include "kernels/cuda_check.h"

#define SIMT_TILE 16 /* query tokens per tile of the SIMT kernel */
#define V2_BQ 64
#define V2_BK 64
#define V2_THREADS 128
#define V2_MAX_HD 128

static __device__ __forceinline__ uint32_t pack_bf16(float lo, float hi)
{
    __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
    return *(uint32_t *)&h;
}

/* d (16x8 fp32 C fragment) += A (16x16 bf16) * B (16x8 bf16) */
static __device__ __forceinline__ void mma16816(float *d, const uint32_t *a, uint32_t b0, uint32_t b1)
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
                 "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

static __device__ __forceinline__ void v2_body(const SglAttnArgs a, const int32_t *tiles,
                                               const int32_t *tile_len, const int HD)
{
    __shared__ __align__(16) __nv_bfloat16 Ks[V2_BK][V2_MAX_HD + 8];
    __shared__ __align__(16) __nv_bfloat16 Vt[V2_MAX_HD][V2_BK + 8];
    const int t0 = tiles[blockIdx.x], nt = tile_len[blockIdx.x], h = blockIdx.y;
    const int kh = h / (a.n_heads / a.n_kv_heads), kvd = a.n_kv_heads * HD;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, tig = lane & 3;
    const int32_t *slots = a.slots + a.slot_base[t0];
    const int p0 = a.positions[t0], plast = a.positions[t0 + nt - 1];
    const int r0 = warp * 16 + g, r1 = r0 + 8;   /* this thread's two rows in the tile */
    const int pos0 = r0 < nt ? p0 + r0 : -1;      /* -1: row absent, every key masked */
    const int pos1 = r1 < nt ? p0 + r1 : -1;
    const float qscale = a.scale * 1.4426950408889634f; /* exp2 domain */

    uint32_t qf[V2_MAX_HD / 16][4];
#pragma unroll
    for (int ks = 0; ks < HD / 16; ks++) {
        int c = ks * 16 + tig * 2;
        const float *q0 = a.q + (int64_t)(t0 + r0) * a.q_stride + h * HD;
        const float *q1 = a.q + (int64_t)(t0 + r1) * a.q_stride + h * HD;
        float z = 0.0f;
        qf[ks][0] = r0 < nt ? pack_bf16(q0[c] * qscale, q0[c + 1] * qscale) : pack_bf16(z, z);
        qf[ks][1] = r1 < nt ? pack_bf16(q1[c] * qscale, q1[c + 1] * qscale) : pack_bf16(z, z);
        qf[ks][2] = r0 < nt ? pack_bf16(q0[c + 8] * qscale, q0[c + 9] * qscale) : pack_bf16(z, z);
        qf[ks][3] = r1 < nt ? pack_bf16(q1[c + 8] * qscale, q1[c + 9] * qscale) : pack_bf16(z, z);
    }
    float o[V2_MAX_HD / 8][4];
#pragma unroll
    for (int d8 = 0; d8 < HD / 8; d8++) o[d8][0] = o[d8][1] = o[d8][2] = o[d8][3] = 0.0f;
    float m0 = -CUDART_INF_F, m1 = -CUDART_INF_F, l0 = 0.0f, l1 = 0.0f;

    for (int kt = 0; kt <= plast; kt += V2_BK) {
        __syncthreads();
        for (int e = threadIdx.x; e < V2_BK * (HD / 8); e += V2_THREADS) {
            /* consecutive threads take consecutive keys: the transposed V
             * stores then hit consecutive shared-memory halves */
            int c8 = (e / V2_BK) * 8, j = e - (c8 / 8) * V2_BK;
            uint4 k4 = make_uint4(0, 0, 0, 0), v4 = make_uint4(0, 0, 0, 0);
            if (kt + j <= plast) {
                int64_t base = (int64_t)slots[kt + j] * kvd + (int64_t)kh * HD + c8;
                k4 = *(const uint4 *)(a.k_pool + base);
                v4 = *(const uint4 *)(a.v_pool + base);
            }
            *(uint4 *)&Ks[j][c8] = k4;
            const __nv_bfloat16 *vv = (const __nv_bfloat16 *)&v4;
#pragma unroll
            for (int u = 0; u < 8; u++) Vt[c8 + u][j] = vv[u];
        }
        __syncthreads();

        float s[V2_BK / 8][4];
#pragma unroll
        for (int n8 = 0; n8 < V2_BK / 8; n8++) {
            s[n8][0] = s[n8][1] = s[n8][2] = s[n8][3] = 0.0f;
#pragma unroll
            for (int ks = 0; ks < HD / 16; ks++) {
                const __nv_bfloat16 *kr = &Ks[n8 * 8 + g][ks * 16 + tig * 2];
                mma16816(s[n8], qf[ks], *(const uint32_t *)kr, *(const uint32_t *)(kr + 8));
            }
        }
        float mx0 = m0, mx1 = m1;
#pragma unroll
        for (int n8 = 0; n8 < V2_BK / 8; n8++)
#pragma unroll
            for (int e = 0; e < 2; e++) {
                int key = kt + n8 * 8 + tig * 2 + e;
                if (key > pos0) s[n8][e] = -CUDART_INF_F;
                if (key > pos1) s[n8][2 + e] = -CUDART_INF_F;
                mx0 = fmaxf(mx0, s[n8][e]);
                mx1 = fmaxf(mx1, s[n8][2 + e]);
            }
        mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
        mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
        mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
        mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
        /* a row with no visible key yet keeps m = -inf: scale 1, probabilities 0 */
        float c0 = mx0 == -CUDART_INF_F ? 1.0f : exp2f(m0 - mx0);
        float c1 = mx1 == -CUDART_INF_F ? 1.0f : exp2f(m1 - mx1);
        float b0 = mx0 == -CUDART_INF_F ? 0.0f : mx0, b1 = mx1 == -CUDART_INF_F ? 0.0f : mx1;
        m0 = mx0;
        m1 = mx1;
        float rs0 = 0.0f, rs1 = 0.0f;
#pragma unroll
        for (int n8 = 0; n8 < V2_BK / 8; n8++)
#pragma unroll
            for (int e = 0; e < 2; e++) {
                s[n8][e] = exp2f(s[n8][e] - b0); /* -inf -> 0 */
                s[n8][2 + e] = exp2f(s[n8][2 + e] - b1);
                rs0 += s[n8][e];
                rs1 += s[n8][2 + e];
            }
        l0 = l0 * c0 + rs0; /* per-thread partial sums; c is uniform over the quad */
        l1 = l1 * c1 + rs1;
#pragma unroll
        for (int d8 = 0; d8 < HD / 8; d8++) {
            o[d8][0] *= c0;
            o[d8][1] *= c0;
            o[d8][2] *= c1;
            o[d8][3] *= c1;
        }
#pragma unroll
        for (int k16 = 0; k16 < V2_BK / 16; k16++) {
            uint32_t pa[4] = {pack_bf16(s[2 * k16][0], s[2 * k16][1]),
                              pack_bf16(s[2 * k16][2], s[2 * k16][3]),
                              pack_bf16(s[2 * k16 + 1][0], s[2 * k16 + 1][1]),
                              pack_bf16(s[2 * k16 + 1][2], s[2 * k16 + 1][3])};
#pragma unroll
            for (int d8 = 0; d8 < HD / 8; d8++) {
                const __nv_bfloat16 *vr = &Vt[d8 * 8 + g][k16 * 16 + tig * 2];
                mma16816(o[d8], pa, *(const uint32_t *)vr, *(const uint32_t *)(vr + 8));
            }
        }
    }
    l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
    l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
    float i0 = l0 > 0.0f ? 1.0f / l0 : 0.0f, i1 = l1 > 0.0f ? 1.0f / l1 : 0.0f;
#pragma unroll
    for (int d8 = 0; d8 < HD / 8; d8++) {
        int c = h * HD + d8 * 8 + tig * 2;
        if (r0 < nt)
            *(__nv_bfloat162 *)(a.out + (int64_t)(t0 + r0) * a.n_heads * HD + c) =
                __floats2bfloat162_rn(o[d8][0] * i0, o[d8][1] * i0);
        if (r1 < nt)
            *(__nv_bfloat162 *)(a.out + (int64_t)(t0 + r1) * a.n_heads * HD + c) =
                __floats2bfloat162_rn(o[d8][2] * i1, o[d8][3] * i1);
    }
}

__global__ void __launch_bounds__(V2_THREADS) attn_prefill_v2_hd64(const SglAttnArgs a,
    const int32_t *tiles, const int32_t *tile_len)
{
    v2_body(a, tiles, tile_len, 64);
}

__global__ void __launch_bounds__(V2_THREADS) attn_prefill_v2_hd128(const SglAttnArgs a,
    const int32_t *tiles, const int32_t *tile_len)
{
    v2_body(a, tiles, tile_len, 128);
}


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

extern "C" int sgl_k_attn_prefill_tile(int head_dim)
{
    return head_dim == 64 || head_dim == 128 ? V2_BQ : 16;
}

extern "C" int sgl_k_attn_prefill(const SglAttnArgs *a, const int32_t *tiles,
                                  const int32_t *tile_len, int n_tiles, cudaStream_t st)
{
    if (a->n < 0 || a->n_kv_heads <= 0 || a->n_heads % a->n_kv_heads != 0 || a->head_dim <= 0 ||
        (a->head_dim & 1) || a->head_dim > SGL_K_MAX_HEAD_DIM ||
        a->q_stride < a->n_heads * a->head_dim || n_tiles < 0)
        return SGL_K_EINVAL;
    if (n_tiles == 0) return 0;
    if (a->head_dim == 64 || a->head_dim == 128) {
        dim3 grid(n_tiles, a->n_heads);
        if (a->head_dim == 64)
            attn_prefill_v2_hd64<<<grid, V2_THREADS, 0, st>>>(*a, tiles, tile_len);
        else
            attn_prefill_v2_hd128<<<grid, V2_THREADS, 0, st>>>(*a, tiles, tile_len);
        SGL_K_LAUNCHED(st);
        return 0;
    }
    int group = a->n_heads / a->n_kv_heads;
    int nh = att_heads_per_block(group, SIMT_TILE, a->head_dim);
    size_t smem = att_smem_bytes(SIMT_TILE * nh, a->head_dim);
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

/* attn_decode.cu -- decode attention over the slot-indexed KV pool,
 * GQA-aware and split over the keys (flash-decoding).
 *
 * Fast path (head_dim 64/128/256): grid (token, head block, split). A block
 * takes one query token, G q heads of one kv group (G = 8, 4, 2 or 1, the
 * largest dividing the group, so each K/V row is read once for all G) and one
 * split of the token's keys. Each warp walks keys; a key is handled by
 * head_dim/8 lanes, each loading 8 bf16 of K and of V with one 16-byte load
 * and keeping q, the online-softmax state (m, l) and the accumulator for its
 * 8 dims in registers; the G dot products are reduced with xor shuffles among
 * those lanes. At the end the warp's key slots, then the block's warps, are
 * merged through shared memory. The split count depends only on the batch
 * size and head blocks (about two waves of the GPU), never on the key count:
 * each token cuts its own keys into that many chunks on the device, so a
 * captured CUDA graph stays valid as contexts grow.
 * Other head dims run the shared-memory block body of attn_common.cuh.
 * Each warp keeps DW_UNROLL keys' K and V loads in flight per lane before
 * the first use. The fast path and the reduction are launched with PDL
 * (pdl.cuh): they wait for the previous kernel before touching q, the pool
 * or the workspace.
 * With one split a block writes the normalised bf16 output directly;
 * otherwise it writes (m, l, acc[hd]) partials to the workspace and
 * attn_reduce_kernel merges them: M = max m_s, out = sum acc_s e^(m_s-M) /
 * sum l_s e^(m_s-M).
 */
#include "kernels/attn_common.cuh"
#include "kernels/cuda_check.h"
#include "kernels/pdl.cuh"

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
    pdl_trigger();
    pdl_wait();
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

/* ---- fast path -------------------------------------------------------- */

#define DW_WARPS 4
#define DW_MAX_SPLITS 64
#define DW_MIN_CHUNK 32     /* keys per split at least */
#define DW_UNROLL 4         /* keys per lane group with loads in flight */

static int dw_splits(int n, int head_blocks)
{
    int s = (DEC_TARGET_BLOCKS + n * head_blocks - 1) / (n * head_blocks);
    return s < 1 ? 1 : s > DW_MAX_SPLITS ? DW_MAX_SPLITS : s;
}

static __device__ __forceinline__ void bf16x8_to_f32(uint4 u, float *f)
{
    const __nv_bfloat162 *h = (const __nv_bfloat162 *)&u;
#pragma unroll
    for (int k = 0; k < 4; k++) {
        float2 t = __bfloat1622float2(h[k]);
        f[2 * k] = t.x;
        f[2 * k + 1] = t.y;
    }
}

/* Merges online-softmax state (mo, lo, ao) into (m, l, a); -inf m = empty. */
static __device__ __forceinline__ void dw_merge(float *m, float *l, float *acc, float mo, float lo,
                                                const float *ao)
{
    float M = fmaxf(*m, mo);
    float c = *m == -CUDART_INF_F ? 0.0f : __expf(*m - M);
    float co = mo == -CUDART_INF_F ? 0.0f : __expf(mo - M);
    *l = *l * c + lo * co;
#pragma unroll
    for (int e = 0; e < 8; e++) acc[e] = acc[e] * c + ao[e] * co;
    *m = M;
}

/* sm_acc: (DW_WARPS, G, HD) floats, declared by the kernel at its own size */
static __device__ __forceinline__ void dw_body(const SglAttnArgs a, int n_splits, float *ws,
                                               float *sm_acc, const int HD, const int G)
{
    const int LPK = HD / 8, KPW = 32 / LPK; /* lanes per key, keys per warp step */
    __shared__ float sm_m[DW_WARPS][8], sm_l[DW_WARPS][8];
    pdl_trigger();
    pdl_wait();
    const int i = blockIdx.x, h0 = blockIdx.y * G, s = blockIdx.z;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int sub = lane / LPK, part = lane - sub * LPK;
    const int kh = h0 / (a.n_heads / a.n_kv_heads), kvd = a.n_kv_heads * HD;
    const int kv = a.positions[i] + 1;
    int chunk = (kv + n_splits - 1) / n_splits;
    if (chunk < DW_MIN_CHUNK) chunk = DW_MIN_CHUNK;
    const int lo = s * chunk, hi = min(kv, lo + chunk);
    const int32_t *slots = a.slots + a.slot_base[i];

    /* sized for the largest G; HD and G are literals after inlining, so the
     * unrolled loops index these with constants and they stay in registers */
    float q[8][8], acc[8][8], m[8], l[8];
#pragma unroll
    for (int g = 0; g < G; g++) {
        const float *qp = a.q + (int64_t)i * a.q_stride + (h0 + g) * HD + part * 8;
#pragma unroll
        for (int e = 0; e < 8; e++) {
            q[g][e] = qp[e] * a.scale;
            acc[g][e] = 0.0f;
        }
        m[g] = -CUDART_INF_F;
        l[g] = 0.0f;
    }
    const int step = DW_WARPS * KPW;
    for (int j0 = lo + warp * KPW; j0 < hi; j0 += DW_UNROLL * step) {
        uint4 k4[DW_UNROLL], v4[DW_UNROLL];
        bool ok[DW_UNROLL];
#pragma unroll
        for (int u = 0; u < DW_UNROLL; u++) { /* every key's loads in flight before any use */
            int j = j0 + u * step + sub;
            ok[u] = j < hi;
            k4[u] = v4[u] = make_uint4(0, 0, 0, 0);
            if (ok[u]) {
                int64_t base = (int64_t)slots[j] * kvd + (int64_t)kh * HD + part * 8;
                k4[u] = *(const uint4 *)(a.k_pool + base);
                v4[u] = *(const uint4 *)(a.v_pool + base);
            }
        }
#pragma unroll
        for (int u = 0; u < DW_UNROLL; u++) {
            float kf[8], vf[8];
            bf16x8_to_f32(k4[u], kf);
            bf16x8_to_f32(v4[u], vf);
#pragma unroll
            for (int g = 0; g < G; g++) {
                float d = 0.0f;
#pragma unroll
                for (int e = 0; e < 8; e++) d += q[g][e] * kf[e];
#pragma unroll
                for (int off = LPK / 2; off > 0; off >>= 1) d += __shfl_xor_sync(0xffffffffu, d, off);
                if (ok[u]) {
                    float M = fmaxf(m[g], d);
                    float c = __expf(m[g] - M); /* m = -inf: 0 */
                    float p = __expf(d - M);
                    l[g] = l[g] * c + p;
#pragma unroll
                    for (int e = 0; e < 8; e++) acc[g][e] = acc[g][e] * c + p * vf[e];
                    m[g] = M;
                }
            }
        }
    }
    /* merge the warp's key slots: lanes with the same part hold the same dims */
#pragma unroll
    for (int off = LPK; off < 32; off <<= 1)
#pragma unroll
        for (int g = 0; g < G; g++) {
            float mo = __shfl_xor_sync(0xffffffffu, m[g], off);
            float lo2 = __shfl_xor_sync(0xffffffffu, l[g], off);
            float ao[8];
#pragma unroll
            for (int e = 0; e < 8; e++) ao[e] = __shfl_xor_sync(0xffffffffu, acc[g][e], off);
            dw_merge(&m[g], &l[g], acc[g], mo, lo2, ao);
        }
    if (sub == 0) {
#pragma unroll
        for (int g = 0; g < G; g++) {
#pragma unroll
            for (int e = 0; e < 8; e++) sm_acc[(warp * G + g) * HD + part * 8 + e] = acc[g][e];
            if (part == 0) {
                sm_m[warp][g] = m[g];
                sm_l[warp][g] = l[g];
            }
        }
    }
    __syncthreads();
    for (int t = threadIdx.x; t < G * HD; t += blockDim.x) {
        int g = t / HD, d = t - g * HD;
        float M = -CUDART_INF_F;
        for (int w = 0; w < DW_WARPS; w++) M = fmaxf(M, sm_m[w][g]);
        float L = 0.0f, V = 0.0f;
        if (M != -CUDART_INF_F)
            for (int w = 0; w < DW_WARPS; w++) {
                float c = sm_m[w][g] == -CUDART_INF_F ? 0.0f : __expf(sm_m[w][g] - M);
                L += sm_l[w][g] * c;
                V += sm_acc[(w * G + g) * HD + d] * c;
            }
        if (n_splits == 1) {
            a.out[(int64_t)i * a.n_heads * HD + (h0 + g) * HD + d] =
                __bfloat16_as_ushort(__float2bfloat16(L > 0.0f ? V / L : 0.0f));
        } else {
            float *pp = PART(ws, s, i, h0 + g, a.n, a.n_heads, HD);
            if (d == 0) {
                pp[0] = M;
                pp[1] = L;
            }
            pp[2 + d] = V;
        }
    }
}

#define DW_KERNEL(HD, G)                                                                   \
    __global__ void __launch_bounds__(DW_WARPS * 32)                                       \
        attn_decode_hd##HD##_g##G(const SglAttnArgs a, int n_splits, float *ws)            \
    {                                                                                      \
        __shared__ float sm_acc[DW_WARPS * G * HD];                                        \
        dw_body(a, n_splits, ws, sm_acc, HD, G);                                           \
    }
DW_KERNEL(64, 1) DW_KERNEL(64, 2) DW_KERNEL(64, 4) DW_KERNEL(64, 8)
DW_KERNEL(128, 1) DW_KERNEL(128, 2) DW_KERNEL(128, 4) DW_KERNEL(128, 8)
DW_KERNEL(256, 1) DW_KERNEL(256, 2) DW_KERNEL(256, 4) DW_KERNEL(256, 8)

typedef void (*DwKernel)(const SglAttnArgs, int, float *);

/* The fast kernel for (head_dim, heads per block), or NULL. */
static DwKernel dw_pick(int hd, int g)
{
    static const DwKernel k64[] = {attn_decode_hd64_g1, attn_decode_hd64_g2, attn_decode_hd64_g4,
                                   attn_decode_hd64_g8};
    static const DwKernel k128[] = {attn_decode_hd128_g1, attn_decode_hd128_g2,
                                    attn_decode_hd128_g4, attn_decode_hd128_g8};
    static const DwKernel k256[] = {attn_decode_hd256_g1, attn_decode_hd256_g2,
                                    attn_decode_hd256_g4, attn_decode_hd256_g8};
    int gi = g == 1 ? 0 : g == 2 ? 1 : g == 4 ? 2 : g == 8 ? 3 : -1;
    if (gi < 0) return NULL;
    return hd == 64 ? k64[gi] : hd == 128 ? k128[gi] : hd == 256 ? k256[gi] : NULL;
}

/* ---- shared-memory block path (other head dims) ------------------------ */

static int decode_splits(int n, int head_blocks, int max_kv_len)
{
    int by_len = (max_kv_len + DEC_MIN_CHUNK - 1) / DEC_MIN_CHUNK;
    int want = (DEC_TARGET_BLOCKS + n * head_blocks - 1) / (n * head_blocks);
    int s = want < by_len ? want : by_len;
    return s < 1 ? 1 : s;
}

extern "C" int64_t sgl_k_attn_decode_ws_floats(int n, int n_heads, int head_dim, int max_kv_len)
{
    if (n < 1) n = 1;
    int s = decode_splits(n, 1, max_kv_len), s2 = dw_splits(n, 1);
    if (s2 > s) s = s2;
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
    int gf = group % 8 == 0 ? 8 : group % 4 == 0 ? 4 : group % 2 == 0 ? 2 : 1;
    DwKernel fast = dw_pick(a->head_dim, gf);
    if (fast) {
        int hb = a->n_heads / gf, ns = dw_splits(a->n, hb);
        int64_t per = (int64_t)a->n * a->n_heads * (a->head_dim + 2);
        if (ns > 1 && (!ws || ns * per > ws_floats)) ns = ws ? (int)(ws_floats / per) : 1;
        if (ns < 1) ns = 1;
        SglAttnArgs av = *a;
        void *args[] = {(void *)&av, (void *)&ns, (void *)&ws};
        cudaError_t e = pdl_launch((const void *)fast, dim3(a->n, hb, ns), dim3(DW_WARPS * 32), 0, st, args);
        if (e != cudaSuccess) return (int)e;
        SGL_K_LAUNCHED(st);
        if (ns > 1) {
            e = pdl_launch((const void *)attn_reduce_kernel, dim3(a->n, a->n_heads),
                           dim3(a->head_dim >= 128 ? 128 : 64), 0, st, args);
            if (e != cudaSuccess) return (int)e;
            SGL_K_LAUNCHED(st);
        }
        return 0;
    }
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

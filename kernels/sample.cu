/* sample.cu -- per-row token sampling on the device, so only token ids (and
 * the log-probs asked for) go back to the host. One 1024-thread block per
 * row; the row (fp32, up to 128k+ entries) is read a few times, from L2
 * after the first pass:
 *   1. raw max (for the log-prob) and the masked argmax (greedy result);
 *   2. top-k: the k-th largest allowed logit, by bisection over ordered
 *      float keys (32 counting passes);
 *   3. top-p: the largest key whose tail mass (of the top-k set, at
 *      temperature T) reaches top_p of it, by the same bisection;
 *   4. min-p: z/T >= log(min_p) relative to the best token;
 *   5. Gumbel-max over the candidates with a Philox-4x32-10 hash of
 *      (seed, step, token id); lowest id wins ties.
 * Ties at a top-k/top-p threshold keep every tied token (the CPU sampler
 * keeps the lower ids). Masked tokens and NaN/-inf logits never win; a row
 * with none allowed gets id -1. */
#include <math.h>

#include "kernels/cuda_check.h"
#include "kernels/kernels.h"

#define SAMPLE_THREADS 1024
#define SAMPLE_WARPS (SAMPLE_THREADS / 32)

__device__ __forceinline__ uint32_t philox_u32(uint64_t seed, uint64_t step, uint32_t token)
{
    uint32_t c0 = token, c1 = (uint32_t)step, c2 = (uint32_t)(step >> 32), c3 = 0x53474cu;
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
#pragma unroll
    for (int i = 0; i < 10; i++) {
        uint32_t hi0 = __umulhi(0xD2511F53u, c0), lo0 = 0xD2511F53u * c0;
        uint32_t hi1 = __umulhi(0xCD9E8D57u, c2), lo1 = 0xCD9E8D57u * c2;
        uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
        c1 = lo1;
        c3 = lo0;
        c0 = n0;
        c2 = n2;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    return c0;
}

__device__ __forceinline__ uint32_t okey(float v)
{
    uint32_t u = __float_as_uint(v);
    return (u & 0x80000000u) ? ~u : u | 0x80000000u;
}

__device__ __forceinline__ bool allowed(float v, const uint32_t *m, int j)
{
    if (m && !((m[j >> 5] >> (j & 31)) & 1u)) return false;
    return v == v && v > -INFINITY;
}

/* (va, ia) replaced by (vb, ib)?  larger value, then lower index; ia < 0 = empty */
__device__ __forceinline__ bool better(float va, int ia, float vb, int ib)
{
    if (ib < 0) return false;
    if (ia < 0) return true;
    return vb > va || (vb == va && ib < ia);
}

struct Red {
    float f[SAMPLE_WARPS];
    int i[SAMPLE_WARPS];
    float out_f;
    int out_i;
};

__device__ float block_sum(float v, Red *s)
{
    for (int o = 16; o; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    if ((threadIdx.x & 31) == 0) s->f[threadIdx.x >> 5] = v;
    __syncthreads();
    if (threadIdx.x < 32) {
        v = threadIdx.x < SAMPLE_WARPS ? s->f[threadIdx.x] : 0.0f;
        for (int o = 16; o; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
        if (threadIdx.x == 0) s->out_f = v;
    }
    __syncthreads();
    return s->out_f;
}

__device__ int block_count(int v, Red *s)
{
    for (int o = 16; o; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    if ((threadIdx.x & 31) == 0) s->i[threadIdx.x >> 5] = v;
    __syncthreads();
    if (threadIdx.x < 32) {
        v = threadIdx.x < SAMPLE_WARPS ? s->i[threadIdx.x] : 0;
        for (int o = 16; o; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
        if (threadIdx.x == 0) s->out_i = v;
    }
    __syncthreads();
    return s->out_i;
}

__device__ float block_max(float v, Red *s)
{
    for (int o = 16; o; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    if ((threadIdx.x & 31) == 0) s->f[threadIdx.x >> 5] = v;
    __syncthreads();
    if (threadIdx.x < 32) {
        v = threadIdx.x < SAMPLE_WARPS ? s->f[threadIdx.x] : -INFINITY;
        for (int o = 16; o; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
        if (threadIdx.x == 0) s->out_f = v;
    }
    __syncthreads();
    return s->out_f;
}

/* block-wide best (value, index); every thread gets the index */
__device__ int block_best(float v, int i, Red *s)
{
    for (int o = 16; o; o >>= 1) {
        float v2 = __shfl_xor_sync(0xffffffffu, v, o);
        int i2 = __shfl_xor_sync(0xffffffffu, i, o);
        if (better(v, i, v2, i2)) { v = v2; i = i2; }
    }
    if ((threadIdx.x & 31) == 0) { s->f[threadIdx.x >> 5] = v; s->i[threadIdx.x >> 5] = i; }
    __syncthreads();
    if (threadIdx.x < 32) {
        v = threadIdx.x < SAMPLE_WARPS ? s->f[threadIdx.x] : -INFINITY;
        i = threadIdx.x < SAMPLE_WARPS ? s->i[threadIdx.x] : -1;
        for (int o = 16; o; o >>= 1) {
            float v2 = __shfl_xor_sync(0xffffffffu, v, o);
            int i2 = __shfl_xor_sync(0xffffffffu, i, o);
            if (better(v, i, v2, i2)) { v = v2; i = i2; }
        }
        if (threadIdx.x == 0) s->out_i = i;
    }
    __syncthreads();
    return s->out_i;
}

__global__ void __launch_bounds__(SAMPLE_THREADS)
sample_kernel(const float *x, int cols, const SglKSampleRow *rows, const uint32_t *masks, int words,
              int32_t *ids, float *logprobs)
{
    __shared__ Red red;
    const SglKSampleRow P = rows[blockIdx.x];
    const float *xr = x + (int64_t)blockIdx.x * cols;
    const uint32_t *mr = masks && P.use_mask ? masks + (int64_t)blockIdx.x * words : NULL;
    float rmax = -INFINITY, bv = -INFINITY;
    int bi = -1;
    for (int j = threadIdx.x; j < cols; j += SAMPLE_THREADS) {
        float v = xr[j];
        if (v == v) rmax = fmaxf(rmax, v);
        if (allowed(v, mr, j) && better(bv, bi, v, j)) { bv = v; bi = j; }
    }
    rmax = block_max(rmax, &red);
    int best = block_best(bv, bi, &red);
    float m = best >= 0 ? xr[best] : -INFINITY;
    int chosen = best;
    if (best >= 0 && !(P.temperature <= 0.0f || P.top_k == 1)) {
        float inv_t = 1.0f / P.temperature;
        uint32_t thr = 0;
        if (P.top_k > 0 && P.top_k < cols) {
            uint32_t lo = 0, hi = 0xFFFFFFFFu;
            while (lo < hi) {
                uint32_t mid = lo + (uint32_t)(((uint64_t)hi - lo + 1) / 2);
                int cnt = 0;
                for (int j = threadIdx.x; j < cols; j += SAMPLE_THREADS) {
                    float v = xr[j];
                    cnt += allowed(v, mr, j) && okey(v) >= mid;
                }
                if (block_count(cnt, &red) >= P.top_k) lo = mid; else hi = mid - 1;
            }
            thr = lo;
        }
        if (P.top_p < 1.0f) {
            float z = 0.0f;
            for (int j = threadIdx.x; j < cols; j += SAMPLE_THREADS) {
                float v = xr[j];
                if (allowed(v, mr, j) && okey(v) >= thr) z += expf((v - m) * inv_t);
            }
            float want = P.top_p * block_sum(z, &red);
            uint32_t lo = thr, hi = 0xFFFFFFFFu;
            while (lo < hi) {
                uint32_t mid = lo + (uint32_t)(((uint64_t)hi - lo + 1) / 2);
                float s = 0.0f;
                for (int j = threadIdx.x; j < cols; j += SAMPLE_THREADS) {
                    float v = xr[j];
                    if (allowed(v, mr, j) && okey(v) >= mid) s += expf((v - m) * inv_t);
                }
                if (block_sum(s, &red) >= want) lo = mid; else hi = mid - 1;
            }
            thr = lo;
        }
        float zmin = P.min_p > 0.0f ? logf(P.min_p) : -INFINITY;
        float gv = -INFINITY;
        int gi = -1;
        for (int j = threadIdx.x; j < cols; j += SAMPLE_THREADS) {
            float v = xr[j];
            if (!allowed(v, mr, j) || okey(v) < thr) continue;
            float z = (v - m) * inv_t;
            if (z < zmin) continue;
            uint32_t h = philox_u32(P.seed, P.step, (uint32_t)j);
            float u = ((float)(h >> 8) + 0.5f) * (1.0f / 16777216.0f);
            float g = z - logf(-logf(u));
            if (better(gv, gi, g, j)) { gv = g; gi = j; }
        }
        chosen = block_best(gv, gi, &red);
    }
    if (P.want_logprob && logprobs) {
        float s = 0.0f;
        for (int j = threadIdx.x; j < cols; j += SAMPLE_THREADS) {
            float v = xr[j];
            if (v == v) s += expf(v - rmax);
        }
        s = block_sum(s, &red);
        if (threadIdx.x == 0) logprobs[blockIdx.x] = chosen < 0 ? -INFINITY : xr[chosen] - rmax - logf(s);
    }
    if (threadIdx.x == 0) ids[blockIdx.x] = chosen;
}

extern "C" int sgl_k_sample(const float *x, int n, int cols, const SglKSampleRow *rows,
                            const uint32_t *masks, int32_t *ids, float *logprobs, cudaStream_t st)
{
    if (n < 0 || cols <= 0 || !rows || !ids) return SGL_K_EINVAL;
    if (n == 0) return 0;
    sample_kernel<<<n, SAMPLE_THREADS, 0, st>>>(x, cols, rows, masks, (cols + 31) / 32, ids, logprobs);
    SGL_K_LAUNCHED(st);
    return 0;
}

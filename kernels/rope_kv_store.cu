/* rope_kv_store.cu -- qkv bias + RoPE + KV store in one pass (sgl_k_rope and
 * sgl_k_kv_store fused): the rotated k heads and the biased v heads go
 * straight to the bf16 pool instead of back to the fp32 qkv buffer and out
 * again. One block per token; each thread takes rotation pairs (d, d+hd/2)
 * of the q and k heads (q written back in place, k to the pool), then the v
 * columns. Full-precision sincosf as in rope.cu (positions reach 10^5).
 * Launched with PDL: everything it touches is written by earlier kernels, so
 * it waits first. The slot map comes from the scheduler: out-of-range slots
 * are skipped, not trusted. */
#include <cuda_bf16.h>

#include "kernels/cuda_check.h"
#include "kernels/kernels.h"
#include "kernels/pdl.cuh"

__global__ void rope_kv_store_kernel(float *qkv, int stride, int n_q, int n_kv, int head_dim,
                                     const float *bias, const int32_t *positions, const float *inv_freq,
                                     const int32_t *slot_of, int64_t n_slots, __nv_bfloat16 *k_pool,
                                     __nv_bfloat16 *v_pool)
{
    pdl_trigger();
    pdl_wait();
    int i = blockIdx.x;
    float *row = qkv + (int64_t)i * stride;
    int half = head_dim / 2, kv_dim = n_kv * head_dim, q_dim = n_q * head_dim;
    int n_rot = (n_q + n_kv) * half;
    int64_t s = slot_of[i];
    bool store = s >= 0 && s < n_slots;
    float pos = (float)positions[i];
    for (int p = threadIdx.x; p < n_rot; p += blockDim.x) {
        int h = p / half, d = p - h * half;
        int c1 = h * head_dim + d, c2 = c1 + half;
        if (h >= n_q && !store) continue;
        float x1 = row[c1], x2 = row[c2];
        if (bias) {
            x1 += bias[c1];
            x2 += bias[c2];
        }
        float sn, cs;
        sincosf(pos * inv_freq[d], &sn, &cs);
        float r1 = x1 * cs - x2 * sn, r2 = x2 * cs + x1 * sn;
        if (h < n_q) {
            row[c1] = r1;
            row[c2] = r2;
        } else {
            __nv_bfloat16 *kp = k_pool + s * kv_dim + (c1 - q_dim);
            kp[0] = __float2bfloat16(r1);
            kp[half] = __float2bfloat16(r2);
        }
    }
    if (!store) return;
    int v0 = q_dim + kv_dim;
    for (int j = threadIdx.x; j < kv_dim; j += blockDim.x) {
        float v = row[v0 + j];
        if (bias) v += bias[v0 + j];
        v_pool[s * kv_dim + j] = __float2bfloat16(v);
    }
}

extern "C" int sgl_k_rope_kv_store(float *qkv, int stride, int n, int n_q, int n_kv, int head_dim,
                                   const float *bias, const int32_t *positions, const float *inv_freq,
                                   const int32_t *slot_of, int64_t n_slots, uint16_t *k_pool,
                                   uint16_t *v_pool, cudaStream_t st)
{
    if (n < 0 || n_q <= 0 || n_kv <= 0 || head_dim <= 0 || (head_dim & 1) ||
        head_dim > SGL_K_MAX_HEAD_DIM || stride < (n_q + 2 * n_kv) * head_dim || n_slots < 0)
        return SGL_K_EINVAL;
    if (n == 0) return 0;
    int pairs = (n_q + n_kv) * head_dim / 2;
    int threads = pairs >= 256 ? 256 : ((pairs + 31) / 32) * 32;
    __nv_bfloat16 *kp = (__nv_bfloat16 *)k_pool, *vp = (__nv_bfloat16 *)v_pool;
    void *args[] = {(void *)&qkv, (void *)&stride, (void *)&n_q, (void *)&n_kv, (void *)&head_dim,
                    (void *)&bias, (void *)&positions, (void *)&inv_freq, (void *)&slot_of,
                    (void *)&n_slots, (void *)&kp, (void *)&vp};
    cudaError_t e = pdl_launch((const void *)rope_kv_store_kernel, dim3(n), dim3(threads), 0, st, args);
    if (e != cudaSuccess) return (int)e;
    SGL_K_LAUNCHED(st);
    return 0;
}

/* kv_store.cu -- write the new tokens' K and V rows (fp32 in the qkv buffer)
 * into their slots of one layer's bf16 KV pool. One block per token; the slot
 * map comes from the scheduler, so out-of-range slots are skipped, not trusted. */
#include <cuda_bf16.h>

#include "kernels/cuda_check.h"
#include "kernels/kernels.h"

__global__ void kv_store_kernel(const float *qkv, int stride, int k_col, int v_col, int kv_dim,
                                const int32_t *slot_of, int64_t n_slots, __nv_bfloat16 *k_pool,
                                __nv_bfloat16 *v_pool)
{
    int i = blockIdx.x;
    int64_t s = slot_of[i];
    if (s < 0 || s >= n_slots) return;
    const float *row = qkv + (int64_t)i * stride;
    for (int j = threadIdx.x; j < kv_dim; j += blockDim.x) {
        k_pool[s * kv_dim + j] = __float2bfloat16(row[k_col + j]);
        v_pool[s * kv_dim + j] = __float2bfloat16(row[v_col + j]);
    }
}

extern "C" int sgl_k_kv_store(const float *qkv, int stride, int n, int k_col, int v_col,
                              int kv_dim, const int32_t *slot_of, int64_t n_slots,
                              uint16_t *k_pool, uint16_t *v_pool, cudaStream_t st)
{
    if (n < 0 || kv_dim <= 0 || k_col < 0 || v_col < 0 || k_col + kv_dim > stride ||
        v_col + kv_dim > stride)
        return SGL_K_EINVAL;
    if (n == 0) return 0;
    int threads = kv_dim >= 256 ? 256 : ((kv_dim + 31) / 32) * 32;
    kv_store_kernel<<<n, threads, 0, st>>>(qkv, stride, k_col, v_col, kv_dim, slot_of, n_slots,
                                           (__nv_bfloat16 *)k_pool, (__nv_bfloat16 *)v_pool);
    SGL_K_LAUNCHED(st);
    return 0;
}

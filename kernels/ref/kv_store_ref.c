/* kv_store_ref.c -- reference for sgl_k_kv_store (kernels/kv_store.cu). */
#include "kernels/ref/ref.h"

void sgl_ref_kv_store(const float *qkv, int stride, int n, int k_col, int v_col, int kv_dim,
                      const int32_t *slot_of, int64_t n_slots, uint16_t *k_pool,
                      uint16_t *v_pool)
{
    for (int i = 0; i < n; i++) {
        int64_t s = slot_of[i];
        if (s < 0 || s >= n_slots) continue;
        for (int j = 0; j < kv_dim; j++) {
            k_pool[s * kv_dim + j] = sgl_f32_to_bf16(qkv[(int64_t)i * stride + k_col + j]);
            v_pool[s * kv_dim + j] = sgl_f32_to_bf16(qkv[(int64_t)i * stride + v_col + j]);
        }
    }
}

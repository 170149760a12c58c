/* rope_kv_store_ref.c -- reference for sgl_k_rope_kv_store
 * (kernels/rope_kv_store.cu): per token, sgl_ref_rope on a copy of the row,
 * the q columns copied back, sgl_ref_kv_store from the copy. Scratch is one
 * row, allocated per call (on failure nothing is written). */
#include "kernels/ref/ref.h"

#include <stdlib.h>

void sgl_ref_rope_kv_store(float *qkv, int stride, int n, int n_q, int n_kv, int head_dim,
                           const float *bias, const int32_t *positions, const float *inv_freq,
                           const int32_t *slot_of, int64_t n_slots, uint16_t *k_pool, uint16_t *v_pool)
{
    int q_dim = n_q * head_dim, kv_dim = n_kv * head_dim, width = q_dim + 2 * kv_dim;
    float *row = malloc((size_t)width * 4);
    if (!row) return;
    for (int i = 0; i < n; i++) {
        memcpy(row, qkv + (int64_t)i * stride, (size_t)width * 4);
        sgl_ref_rope(row, width, 1, n_q, n_kv, head_dim, bias, positions + i, inv_freq);
        memcpy(qkv + (int64_t)i * stride, row, (size_t)q_dim * 4);
        sgl_ref_kv_store(row, width, 1, q_dim, q_dim + kv_dim, kv_dim, slot_of + i, n_slots, k_pool, v_pool);
    }
    free(row);
}

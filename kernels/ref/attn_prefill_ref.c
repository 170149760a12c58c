/* attn_prefill_ref.c -- reference for sgl_k_attn_prefill (kernels/attn_prefill.cu).
 * The result does not depend on the tiling, so this is the decode reference. */
#include "kernels/ref/ref.h"

void sgl_ref_attn_prefill(const float *q, int q_stride, const uint16_t *k_pool,
                          const uint16_t *v_pool, const int32_t *slots, const int32_t *slot_base,
                          const int32_t *positions, int n, int n_heads, int n_kv_heads,
                          int head_dim, float scale, float *out)
{
    sgl_ref_attn_decode(q, q_stride, k_pool, v_pool, slots, slot_base, positions, n, n_heads,
                        n_kv_heads, head_dim, scale, out);
}

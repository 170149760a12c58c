/* attn_decode_ref.c -- reference for sgl_k_attn_decode (kernels/attn_decode.cu):
 * plain softmax(q.k * scale) v over keys 0..pos, in double. */
#include "kernels/ref/ref.h"

#include <math.h>
#include <stdlib.h>

void sgl_ref_attn_decode(const float *q, int q_stride, const uint16_t *k_pool,
                         const uint16_t *v_pool, const int32_t *slots, const int32_t *slot_base,
                         const int32_t *positions, int n, int n_heads, int n_kv_heads,
                         int head_dim, float scale, float *out)
{
    int kv_dim = n_kv_heads * head_dim, group = n_heads / n_kv_heads;
    int max_len = 1;
    for (int i = 0; i < n; i++)
        if (positions[i] + 1 > max_len) max_len = positions[i] + 1;
    double *p = malloc(sizeof(double) * (size_t)max_len);
    if (!p) return; /* test helper: the caller sees unchanged out */
    for (int i = 0; i < n; i++) {
        int len = positions[i] + 1;
        for (int h = 0; h < n_heads; h++) {
            const float *qh = q + (int64_t)i * q_stride + h * head_dim;
            int64_t koff = (int64_t)(h / group) * head_dim;
            double m = -INFINITY, l = 0.0;
            for (int j = 0; j < len; j++) {
                const uint16_t *k = k_pool + (int64_t)slots[slot_base[i] + j] * kv_dim + koff;
                double dot = 0.0;
                for (int d = 0; d < head_dim; d++) dot += (double)qh[d] * sgl_bf16_to_f32(k[d]);
                p[j] = dot * scale;
                if (p[j] > m) m = p[j];
            }
            for (int j = 0; j < len; j++) l += (p[j] = exp(p[j] - m));
            for (int d = 0; d < head_dim; d++) {
                double acc = 0.0;
                for (int j = 0; j < len; j++)
                    acc += p[j] * sgl_bf16_to_f32(
                        v_pool[(int64_t)slots[slot_base[i] + j] * kv_dim + koff + d]);
                out[(int64_t)i * n_heads * head_dim + h * head_dim + d] = (float)(acc / l);
            }
        }
    }
    free(p);
}

/* ref.h -- plain-C references for the kernels in kernels.h (no CUDA headers).
 *
 * Each sgl_ref_<op> has the semantics documented for sgl_k_<op> in kernels.h,
 * on host memory and with the same rounding points (bf16 stores round to
 * nearest even, fp32 accumulation), so a test can compare the two directly.
 * The attention references compute in double, as the ground truth.
 */
#ifndef SGL_KERNELS_REF_H
#define SGL_KERNELS_REF_H

#include <stdint.h>
#include <string.h>

#include "kernels/sample_row.h"

static inline float sgl_bf16_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Round to nearest even; NaN stays a (quiet) NaN. */
static inline uint16_t sgl_f32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

void sgl_ref_embedding(const uint16_t *embed, int vocab, int hidden, const int32_t *tokens,
                       int n, float *x);
void sgl_ref_embedding_range(const uint16_t *embed, int row0, int n_rows, int hidden,
                             const int32_t *tokens, int n, float *x);
void sgl_ref_rmsnorm(float *x, const float *add, const uint16_t *w, int hidden, float eps,
                     const int32_t *rows, int n, uint16_t *out);
void sgl_ref_rope(float *qkv, int stride, int n, int n_q, int n_kv, int head_dim,
                  const float *bias, const int32_t *positions, const float *inv_freq);
void sgl_ref_silu_mul(const float *gu, int n, int inter, uint16_t *out);
void sgl_ref_kv_store(const float *qkv, int stride, int n, int k_col, int v_col, int kv_dim,
                      const int32_t *slot_of, int64_t n_slots, uint16_t *k_pool,
                      uint16_t *v_pool);
/* Arguments as in SglAttnArgs; out in fp32 (the kernels round it to bf16).
 * attn_prefill has the same semantics whatever the tiling, so its reference
 * takes the same arguments. */
void sgl_ref_attn_decode(const float *q, int q_stride, const uint16_t *k_pool,
                       const uint16_t *v_pool, const int32_t *slots, const int32_t *slot_base,
                       const int32_t *positions, int n, int n_heads, int n_kv_heads,
                       int head_dim, float scale, float *out /* (n, n_heads*head_dim) */);
void sgl_ref_attn_prefill(const float *q, int q_stride, const uint16_t *k_pool,
                          const uint16_t *v_pool, const int32_t *slots, const int32_t *slot_base,
                          const int32_t *positions, int n, int n_heads, int n_kv_heads,
                          int head_dim, float scale, float *out);
void sgl_ref_argmax(const float *x, int n, int cols, int32_t *out);
/* sgl_k_sample on host arrays; sgl_ref_philox_u32 is its per-token hash. */
void sgl_ref_sample(const float *x, int n, int cols, const SglKSampleRow *rows, const uint32_t *masks,
                    int32_t *ids, float *logprobs);
uint32_t sgl_ref_philox_u32(uint64_t seed, uint64_t step, uint32_t token);
/* sgl_k_fill_bf16 / _f32 on host arrays; sgl_ref_fill_value is element i. */
float sgl_ref_fill_value(uint64_t seed, int64_t i, float a);
void sgl_ref_fill_bf16(uint16_t *out, int64_t n, float a, uint64_t seed);
void sgl_ref_fill_f32(float *out, int64_t n, float a, uint64_t seed);
void sgl_ref_gemv(const uint16_t *x, const uint16_t *W, float *y, int n, int in, int out, float beta);

/* References for the fused kernels: the unfused references composed. */
void sgl_ref_norm_gemv(const float *x, const int32_t *rows, const uint16_t *nw, float eps, int n, int in,
                       const uint16_t *W, int out, float *y, uint16_t *silu_out);
void sgl_ref_rope_kv_store(float *qkv, int stride, int n, int n_q, int n_kv, int head_dim,
                           const float *bias, const int32_t *positions, const float *inv_freq,
                           const int32_t *slot_of, int64_t n_slots, uint16_t *k_pool, uint16_t *v_pool);

/* RoPE inverse frequencies (head_dim/2), HF default or llama3-scaled
 * (factor, low_freq_factor, high_freq_factor, original_max_pos; factor <= 0 =
 * default). Shared by the runners and the tests, so it lives with the refs. */
void sgl_rope_inv_freq(int head_dim, double theta, double factor, double low_ff,
                       double high_ff, double orig_max_pos, float *inv_freq);

#endif

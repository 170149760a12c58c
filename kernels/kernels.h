/* kernels.h -- C-callable CUDA kernel launchers for the Llama-family forward.
 *
 * One op per file (kernels/<op>.cu) with a plain-C reference of identical
 * semantics (kernels/ref/ref.h). Storage is bf16 (passed as uint16_t so this
 * header needs no CUDA bf16 types), accumulation fp32. All pointers are device
 * pointers and are borrowed for the call; launches are asynchronous on the
 * given stream. Every launcher returns 0 on success, SGL_K_EINVAL for shapes
 * it does not support (nothing launched), or a positive cudaError_t from the
 * launch (cudaGetLastError after the launch). Row-major everywhere.
 */
#ifndef SGL_KERNELS_H
#define SGL_KERNELS_H

#include <stdint.h>

#include <cuda_runtime_api.h>

#include "kernels/sample_row.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SGL_K_EINVAL (-1)
#define SGL_K_MAX_HEAD_DIM 256 /* attention and rope support head_dim <= this, even */

/* x[i,:] = f32(embed[tokens[i],:]). Token ids outside [0,vocab) give rows of 0. */
int sgl_k_embedding(const uint16_t *embed /* (vocab, hidden) bf16 */, int vocab, int hidden,
                    const int32_t *tokens /* (n) */, int n, float *x /* (n, hidden) */,
                    cudaStream_t st);

/* Vocab-parallel embedding: embed holds the rows of token ids [row0, row0+n_rows);
 * x[i,:] = f32(embed[tokens[i]-row0,:]) for ids in that range, rows of 0 otherwise. */
int sgl_k_embedding_range(const uint16_t *embed /* (n_rows, hidden) bf16 */, int row0, int n_rows,
                          int hidden, const int32_t *tokens /* (n) */, int n,
                          float *x /* (n, hidden) */, cudaStream_t st);

/* For r in [0,n): i = rows ? rows[r] : r; if add, x[i] += add[i] (x updated in
 * place: the fused residual add); out[r] = bf16(x[i] * rsqrt(mean(x[i]^2)+eps) * w). */
int sgl_k_rmsnorm(float *x /* (*, hidden) */, const float *add /* (*, hidden) or NULL */,
                  const uint16_t *w /* (hidden) bf16 */, int hidden, float eps,
                  const int32_t *rows /* (n) or NULL */, int n,
                  uint16_t *out /* (n, hidden) bf16 */, cudaStream_t st);

/* qkv: (n, stride) fp32 with q heads, then k heads, then v heads, head_dim each.
 * Adds bias (((n_q+2*n_kv)*head_dim), or NULL) to the whole row, then rotates
 * the n_q + n_kv q/k heads in place with HF rotate_half: for d < hd/2,
 * angle = positions[i] * inv_freq[d], (x[d], x[d+hd/2]) -> (x1 c - x2 s, x2 c + x1 s). */
int sgl_k_rope(float *qkv, int stride, int n, int n_q, int n_kv, int head_dim,
               const float *bias, const int32_t *positions /* (n) */,
               const float *inv_freq /* (head_dim/2) */, cudaStream_t st);

/* out[i,j] = bf16(silu(gu[i,j]) * gu[i,inter+j]); gu: (n, 2*inter) fp32, gate then up. */
int sgl_k_silu_mul(const float *gu, int n, int inter, uint16_t *out /* (n, inter) */,
                   cudaStream_t st);

/* k_pool[slot_of[i], :] = bf16(qkv[i, k_col .. k_col+kv_dim)), same for v with v_col.
 * Pools are (n_slots, kv_dim) bf16 for one layer; rows with slot_of[i] < 0 or
 * >= n_slots are skipped. */
int sgl_k_kv_store(const float *qkv, int stride, int n, int k_col, int v_col, int kv_dim,
                   const int32_t *slot_of /* (n) */, int64_t n_slots,
                   uint16_t *k_pool, uint16_t *v_pool, cudaStream_t st);

/* Attention geometry shared by both attention kernels. Query token i (q read at
 * q + i*q_stride, heads of head_dim fp32) attends causally to keys 0..positions[i]
 * of its sequence; key j lives in pool row slots[slot_base[i] + j]. */
typedef struct {
    const float *q; int q_stride;
    const uint16_t *k_pool, *v_pool;    /* (n_slots, n_kv*head_dim) bf16, one layer */
    const int32_t *slots;               /* per-sequence slot lists, concatenated */
    const int32_t *slot_base;           /* (n) start of token i's sequence in slots */
    const int32_t *positions;           /* (n) */
    int n, n_heads, n_kv_heads, head_dim;
    float scale;                        /* usually 1/sqrt(head_dim) */
    uint16_t *out;                      /* (n, n_heads*head_dim) bf16 */
} SglAttnArgs;

/* Decode attention, one query token per block row, split over the keys
 * (flash-decoding) when max_kv_len is long: partial results go to ws
 * (ws_floats floats) and a second kernel reduces them. max_kv_len must be
 * >= every positions[i]+1. ws may be NULL (no split). */
int sgl_k_attn_decode(const SglAttnArgs *a, int max_kv_len, float *ws, int64_t ws_floats,
                      cudaStream_t st);

/* Floats of ws that attn_decode can use profitably for n tokens. */
int64_t sgl_k_attn_decode_ws_floats(int n, int n_heads, int head_dim, int max_kv_len);

/* Prefill/extend attention: query tiles of up to sgl_k_attn_prefill_tile(head_dim)
 * consecutive tokens of one sequence share K/V tiles in shared memory. tiles:
 * (n_tiles) start token index of each tile; tile_len: (n_tiles) tokens in it
 * (1..tile), all of one sequence with consecutive positions. Every token must
 * be in one tile. head_dim 64/128 run on tensor cores (Q and P rounded to bf16). */
int sgl_k_attn_prefill(const SglAttnArgs *a, const int32_t *tiles, const int32_t *tile_len,
                       int n_tiles, cudaStream_t st);

/* Largest query tile sgl_k_attn_prefill takes for head_dim (64 or 16). */
int sgl_k_attn_prefill_tile(int head_dim);

/* Few-row matrix product for decode steps: y[r, o] = beta*y[r, o] + sum_k
 * x[r, k] W[o, k] for r < n <= SGL_K_GEMV_MAX_ROWS; x (n, in) and W (out, in)
 * bf16, 16-byte aligned, in a multiple of 8; y (n, out) fp32; beta 0 or 1. */
#define SGL_K_GEMV_MAX_ROWS 8
int sgl_k_gemv(const uint16_t *x, const uint16_t *W, float *y, int n, int in, int out, float beta,
               cudaStream_t st);

/* Few-row products with the RMSNorm of their input fused in (decode steps).
 * Row r (r < n <= SGL_K_NORM_GEMV_MAX_ROWS) of the product's input is
 * xn = bf16(x[i] * rsqrt(mean(x[i]^2) + eps) * nw), i = rows ? rows[r] : r,
 * the values sgl_k_rmsnorm writes. Then, with W (out, in) bf16:
 *   silu_out NULL: y[r, o] = sum_k xn[k] W[o, k], y (n, out) fp32;
 *   otherwise:     W is gate rows then up rows (out = 2*inter) and
 *                  silu_out[r, j] = bf16(silu(g) * u), g = xn.W[j],
 *                  u = xn.W[inter + j]; silu_out (n, inter); y unused.
 * in a multiple of 8 with n*in <= SGL_K_NORM_GEMV_MAX_ELEMS; x, W 16-byte
 * aligned; out even with silu_out. Launched with PDL (pdl.cuh). */
#define SGL_K_NORM_GEMV_MAX_ROWS 2
#define SGL_K_NORM_GEMV_MAX_ELEMS 16384 /* bf16 inputs staged in 32 KB of shared memory */
int sgl_k_norm_gemv(const float *x /* (*, in) */, const int32_t *rows /* (n) or NULL */,
                    const uint16_t *nw /* (in) bf16 */, float eps, int n, int in,
                    const uint16_t *W, int out, float *y, uint16_t *silu_out, cudaStream_t st);

/* sgl_k_rope and sgl_k_kv_store in one pass: per token i, the bias is added
 * to the whole row, the q heads are rotated in place in qkv, and the rotated
 * k heads and the v heads go to k_pool[slot_of[i]] / v_pool[slot_of[i]] as
 * bf16 (skipped when the slot is outside [0, n_slots)). qkv's k and v
 * columns are left as they were. Pools (n_slots, n_kv*head_dim) for one layer. */
int sgl_k_rope_kv_store(float *qkv, int stride, int n, int n_q, int n_kv, int head_dim,
                        const float *bias, const int32_t *positions /* (n) */,
                        const float *inv_freq /* (head_dim/2) */, const int32_t *slot_of /* (n) */,
                        int64_t n_slots, uint16_t *k_pool, uint16_t *v_pool, cudaStream_t st);

/* Programmatic dependent launch of the decode-chain kernels (gemv, norm_gemv,
 * rope_kv_store, attn_decode; kernels/pdl.cuh): process-wide, on by default
 * on sm_90+. Graphs keep the setting they were captured with. */
void sgl_k_set_pdl(int on);
int sgl_k_pdl(void);

/* out[r] = index of the largest x[r, :] (lowest index on ties; NaN never wins). */
int sgl_k_argmax(const float *x /* (n, cols) */, int n, int cols, int32_t *out /* (n) */,
                 cudaStream_t st);

/* Per row r: ids[r] = a token drawn from softmax(x[r,:]/T) restricted to the
 * allowed tokens (bit j of masks[r*((cols+31)/32) + j/32] when rows[r].use_mask;
 * NaN/-inf never) after top-k, then top-p on the top-k set, then min-p
 * (kernels/sample_row.h: the Philox/Gumbel draw); argmax when T <= 0 or
 * top_k == 1; -1 when nothing is allowed. With want_logprob, logprobs[r] =
 * raw log_softmax(x[r,:])[ids[r]] (before mask and temperature). rows: (n)
 * device array; masks NULL when no row uses one. */
int sgl_k_sample(const float *x /* (n, cols) */, int n, int cols, const SglKSampleRow *rows,
                 const uint32_t *masks, int32_t *ids /* (n) */, float *logprobs /* (n) or NULL */,
                 cudaStream_t st);

/* Dummy weights on the device: out[i] uniform in [-a, a] (65536 levels; a
 * pure function of (seed, i)), or 1 when a == 0. SGL_K_EINVAL for n < 0 or
 * a < 0. The bf16 form rounds to nearest even. */
int sgl_k_fill_bf16(uint16_t *out /* (n) */, int64_t n, float a, uint64_t seed, cudaStream_t st);
int sgl_k_fill_f32(float *out /* (n) */, int64_t n, float a, uint64_t seed, cudaStream_t st);

#ifdef __cplusplus
}
#endif

#endif

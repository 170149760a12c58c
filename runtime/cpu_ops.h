/* cpu_ops.h -- the math kernels of the CPU runner, one table per ISA.
 *
 * runner_cpu.c calls these through a CpuKernels table picked once at runner
 * creation: "avx2" (AVX2+FMA intrinsics, chosen when the CPU has them) or
 * "generic" (plain C that any compiler vectorizes as far as it can). Both
 * compute the same functions; tests compare them shape by shape. All float
 * arrays are row-major fp32. Kernels never allocate; scratch comes from the
 * caller's workspace.
 *
 * Padding contract for matmul: `in` must be a multiple of CPU_PAD, and every
 * row of X and W is readable (and finite) up to `in`; the caller zero-pads W
 * rows beyond the logical width, so the padded columns add nothing.
 */
#ifndef SGL_CPU_OPS_H
#define SGL_CPU_OPS_H

#include <stdbool.h>
#include <stdint.h>

#define CPU_PAD 8          /* floats: row strides of matmul operands */
#define CPU_ATTN_TILE 128  /* keys per online-softmax tile */
/* attention scratch floats: max, sum, rescale factor, scaled q (up to 8
 * floats) and scores per head; gathered K/V tile */
#define CPU_ATTN_SCRATCH(n_heads, kv_row) \
    ((int64_t)(n_heads) * (CPU_ATTN_TILE + 11) + 2 * (int64_t)CPU_ATTN_TILE * (kv_row))

typedef struct {
    int n_heads, n_kv_heads;  /* query heads; KV heads (n_heads % n_kv_heads == 0) */
    int head_dim;
    int n_keys;            /* attend to positions 0 .. n_keys-1 */
    const float *q;        /* (n_heads, head_dim), contiguous */
    const float *k, *v;    /* row of slot s at k + s*kv_stride: (n_kv_heads, head_dim) */
    int64_t kv_stride;
    const int32_t *slots;  /* (n_keys) slot of each position */
    float scale;           /* 1/sqrt(head_dim) */
    float *out;            /* (n_heads, head_dim) */
    float *scratch;        /* (CPU_ATTN_SCRATCH(n_heads, n_kv_heads*head_dim)) floats */
} CpuAttnArgs;

typedef struct {
    const char *name;
    /* Y[t][o] = sum_i X[t][i] * W[o][i] for t < n, o < out, i < in. */
    void (*matmul)(int n, int out, int in, const float *X, int ldx, const float *W, int ldw,
                   float *Y, int ldy);
    /* Softmax attention of one query token, all heads, over n_keys positions
     * (GQA: query head h reads KV head h / (n_heads / n_kv_heads)). */
    void (*attend)(const CpuAttnArgs *a);
    /* out[i] = silu(g[i]) * u[i] */
    void (*silu_mul)(int n, const float *g, const float *u, float *out);
    /* cpu_rmsnorm and cpu_rope below (the generic table points at them) */
    void (*rmsnorm)(int n, const float *x, const float *w, float eps, float *out);
    void (*rope)(int n_heads, int head_dim, float *x, const float *cos_t, const float *sin_t);
} CpuKernels;

/* The fastest table this CPU supports, or the named one ("avx2",
 * "generic"); NULL when the named one is unknown or unsupported here. */
const CpuKernels *cpu_kernels_get(const char *name);

/* out[i] = x[i] / rms(x) * w[i], rms over n elements (HF LlamaRMSNorm). */
void cpu_rmsnorm(int n, const float *x, const float *w, float eps, float *out);

/* Rotates the halves of each head in place (HF rotate_half convention):
 * x[j], x[j+h] <- x[j]*c[j] - x[j+h]*s[j], x[j+h]*c[j] + x[j]*s[j], h = hd/2. */
void cpu_rope(int n_heads, int head_dim, float *x, const float *cos_t, const float *sin_t);

/* y[i] = half/bfloat16/float -> float conversion of n elements (src may be
 * unaligned). */
void cpu_f16_to_f32(int64_t n, const void *src, float *dst);
void cpu_bf16_to_f32(int64_t n, const void *src, float *dst);

#endif

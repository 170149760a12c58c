/* sample_row.h -- per-row parameters of sgl_k_sample and sgl_ref_sample.
 *
 * Plain C (no CUDA headers) so kernels.h and kernels/ref/ref.h share it.
 * The random draw of a row is a pure function of (seed, step, token id): a
 * Philox-4x32-10 counter hash gives each token a uniform u, and the token
 * with the largest z/T - log(-log u) among the candidates wins (Gumbel-max,
 * an exact draw from softmax(z/T) restricted to the candidates). No RNG
 * state lives on the device, so a captured graph can replay it and the
 * same (seed, step) always gives the same token.
 */
#ifndef SGL_K_SAMPLE_ROW_H
#define SGL_K_SAMPLE_ROW_H

#include <stdint.h>

typedef struct {
    uint64_t seed;        /* RNG key of the sequence */
    uint64_t step;        /* RNG counter: the sequence's output index */
    float temperature;    /* <= 0: greedy (argmax, lowest id on ties) */
    int32_t top_k;        /* <= 0 or >= cols: off */
    float top_p;          /* >= 1: off */
    float min_p;          /* <= 0: off */
    int32_t use_mask;     /* nonzero: the row of masks applies */
    int32_t want_logprob; /* nonzero: logprobs[r] is written */
} SglKSampleRow;

#endif

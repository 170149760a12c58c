/* silu_mul_ref.c -- reference for sgl_k_silu_mul (kernels/silu_mul.cu). */
#include "kernels/ref/ref.h"

#include <math.h>

void sgl_ref_silu_mul(const float *gu, int n, int inter, uint16_t *out)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < inter; j++) {
            double g = gu[(int64_t)i * 2 * inter + j], u = gu[(int64_t)i * 2 * inter + inter + j];
            out[(int64_t)i * inter + j] = sgl_f32_to_bf16((float)(g / (1.0 + exp(-g)) * u));
        }
}

/* fill_ref.c -- reference for sgl_k_fill_bf16 / sgl_k_fill_f32 (kernels/fill.cu):
 * the same hash and the same fused multiply-add, so results are bit-exact. */
#include <math.h>

#include "kernels/ref/ref.h"

float sgl_ref_fill_value(uint64_t seed, int64_t i, float a)
{
    if (a == 0.0f) return 1.0f;
    uint64_t z = seed + 0x9E3779B97F4A7C15ull * (uint64_t)((i >> 2) + 1);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    uint32_t bits = (uint32_t)(z >> (16 * (i & 3))) & 0xFFFFu;
    return fmaf(2.0f * a / 65535.0f, (float)bits, -a);
}

void sgl_ref_fill_bf16(uint16_t *out, int64_t n, float a, uint64_t seed)
{
    for (int64_t i = 0; i < n; i++) out[i] = sgl_f32_to_bf16(sgl_ref_fill_value(seed, i, a));
}

void sgl_ref_fill_f32(float *out, int64_t n, float a, uint64_t seed)
{
    for (int64_t i = 0; i < n; i++) out[i] = sgl_ref_fill_value(seed, i, a);
}

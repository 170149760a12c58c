/* rmsnorm_ref.c -- reference for sgl_k_rmsnorm (kernels/rmsnorm.cu). */
#include "kernels/ref/ref.h"

#include <math.h>

void sgl_ref_rmsnorm(float *x, const float *add, const uint16_t *w, int hidden, float eps,
                     const int32_t *rows, int n, uint16_t *out)
{
    for (int r = 0; r < n; r++) {
        int64_t i = rows ? rows[r] : r;
        float *xi = x + i * hidden;
        double ss = 0.0;
        for (int j = 0; j < hidden; j++) {
            if (add) xi[j] += add[i * hidden + j];
            ss += (double)xi[j] * xi[j];
        }
        float inv = (float)(1.0 / sqrt(ss / hidden + eps));
        for (int j = 0; j < hidden; j++)
            out[(int64_t)r * hidden + j] = sgl_f32_to_bf16(xi[j] * inv * sgl_bf16_to_f32(w[j]));
    }
}

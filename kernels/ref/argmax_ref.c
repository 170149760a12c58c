/* argmax_ref.c -- reference for sgl_k_argmax (kernels/argmax.cu). */
#include "kernels/ref/ref.h"

void sgl_ref_argmax(const float *x, int n, int cols, int32_t *out)
{
    for (int r = 0; r < n; r++) {
        const float *xr = x + (int64_t)r * cols;
        int best = 0;
        for (int j = 1; j < cols; j++)
            if (xr[j] > xr[best] || (xr[best] != xr[best] && xr[j] == xr[j])) best = j;
        out[r] = best;
    }
}

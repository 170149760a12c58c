/* gemv_ref.c -- reference for sgl_k_gemv: y (n, out) = beta*y + x W^T, with
 * bf16 inputs and the sum in double (the kernel sums in fp32). */
#include "kernels/ref/ref.h"

void sgl_ref_gemv(const uint16_t *x, const uint16_t *W, float *y, int n, int in, int out, float beta)
{
    for (int r = 0; r < n; r++)
        for (int o = 0; o < out; o++) {
            double s = 0;
            for (int k = 0; k < in; k++)
                s += (double)sgl_bf16_to_f32(x[(int64_t)r * in + k]) *
                     sgl_bf16_to_f32(W[(int64_t)o * in + k]);
            float *yp = y + (int64_t)r * out + o;
            *yp = (float)(beta != 0.0f ? *yp * beta + s : s);
        }
}

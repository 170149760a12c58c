/* norm_gemv_ref.c -- reference for sgl_k_norm_gemv (kernels/norm_gemv.cu):
 * sgl_ref_rmsnorm into a bf16 scratch, sgl_ref_gemv, then (silu form)
 * sgl_ref_silu_mul on the product, exactly the unfused path. Scratch is
 * allocated per call (a test helper; on failure the outputs are untouched). */
#include "kernels/ref/ref.h"

#include <stdlib.h>

void sgl_ref_norm_gemv(const float *x, const int32_t *rows, const uint16_t *nw, float eps, int n, int in,
                       const uint16_t *W, int out, float *y, uint16_t *silu_out)
{
    uint16_t *xn = malloc((size_t)n * in * 2 + 1);
    float *tmp = silu_out ? malloc((size_t)n * out * 4 + 1) : y;
    if (!xn || !tmp) goto out;
    sgl_ref_rmsnorm((float *)x, NULL, nw, in, eps, rows, n, xn); /* no add: x is only read */
    sgl_ref_gemv(xn, W, tmp, n, in, out, 0.0f);
    if (silu_out) sgl_ref_silu_mul(tmp, n, out / 2, silu_out);
out:
    if (silu_out) free(tmp);
    free(xn);
}

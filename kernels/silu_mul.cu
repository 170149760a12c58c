/* silu_mul.cu -- SwiGLU activation: silu(gate) * up from the merged gate|up
 * GEMM output (fp32), stored bf16 as the input of the down projection.
 * A flat grid-stride loop over n*inter elements. */
#include <cuda_bf16.h>

#include "kernels/cuda_check.h"
#include "kernels/kernels.h"

__global__ void silu_mul_kernel(const float *gu, int64_t total, int inter, __nv_bfloat16 *out)
{
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < total;
         e += (int64_t)gridDim.x * blockDim.x) {
        int64_t i = e / inter, j = e - i * inter;
        float g = gu[i * 2 * inter + j], u = gu[i * 2 * inter + inter + j];
        out[e] = __float2bfloat16(g / (1.0f + expf(-g)) * u);
    }
}

extern "C" int sgl_k_silu_mul(const float *gu, int n, int inter, uint16_t *out, cudaStream_t st)
{
    if (n < 0 || inter <= 0) return SGL_K_EINVAL;
    if (n == 0) return 0;
    int64_t total = (int64_t)n * inter;
    int64_t blocks = (total + 255) / 256;
    if (blocks > 65536) blocks = 65536;
    silu_mul_kernel<<<(unsigned)blocks, 256, 0, st>>>(gu, total, inter, (__nv_bfloat16 *)out);
    SGL_K_LAUNCHED(st);
    return 0;
}

/* rmsnorm.cu -- RMSNorm with the residual add fused in.
 * One block per output row: pass 1 adds the residual in place and sums squares
 * (fp32, block reduction), pass 2 scales by rsqrt(mean+eps) * w and stores bf16.
 * The optional row map lets the final norm run only on the rows that need logits. */
#include <cuda_bf16.h>

#include "kernels/cuda_check.h"
#include "kernels/kernels.h"

#define RMS_THREADS 256

__global__ void rmsnorm_kernel(float *x, const float *add, const __nv_bfloat16 *w, int hidden,
                               float eps, const int32_t *rows, __nv_bfloat16 *out)
{
    __shared__ float red[RMS_THREADS / 32];
    int r = blockIdx.x;
    int64_t i = rows ? rows[r] : r;
    float *xi = x + i * hidden;
    float ss = 0.0f;
    for (int j = threadIdx.x; j < hidden; j += blockDim.x) {
        float v = xi[j];
        if (add) {
            v += add[i * hidden + j];
            xi[j] = v;
        }
        ss += v * v;
    }
    for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = ss;
    __syncthreads();
    if (threadIdx.x < 32) {
        float v = threadIdx.x < (blockDim.x >> 5) ? red[threadIdx.x] : 0.0f;
        for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
        if (threadIdx.x == 0) red[0] = v;
    }
    __syncthreads();
    float inv = rsqrtf(red[0] / (float)hidden + eps);
    __nv_bfloat16 *o = out + (int64_t)r * hidden;
    for (int j = threadIdx.x; j < hidden; j += blockDim.x)
        o[j] = __float2bfloat16(xi[j] * inv * __bfloat162float(w[j]));
}

extern "C" int sgl_k_rmsnorm(float *x, const float *add, const uint16_t *w, int hidden, float eps,
                             const int32_t *rows, int n, uint16_t *out, cudaStream_t st)
{
    if (n < 0 || hidden <= 0) return SGL_K_EINVAL;
    if (n == 0) return 0;
    rmsnorm_kernel<<<n, RMS_THREADS, 0, st>>>(x, add, (const __nv_bfloat16 *)w, hidden, eps, rows,
                                              (__nv_bfloat16 *)out);
    SGL_K_LAUNCHED(st);
    return 0;
}

/* argmax.cu -- greedy token choice on device: per row, the index of the
 * largest fp32 logit, lowest index on ties, NaN never chosen over a number.
 * One block per row; each thread scans a strided slice, then a shared-memory
 * tree reduction with the same tie rule. */
#include "kernels/cuda_check.h"
#include "kernels/kernels.h"

#define ARGMAX_THREADS 256

/* true when (vb, ib) should replace (va, ia) */
__device__ __forceinline__ int argmax_better(float va, int ia, float vb, int ib)
{
    if (vb != vb) return 0;
    if (va != va) return 1;
    return vb > va || (vb == va && ib < ia);
}

__global__ void argmax_kernel(const float *x, int cols, int32_t *out)
{
    __shared__ float sv[ARGMAX_THREADS];
    __shared__ int si[ARGMAX_THREADS];
    const float *xr = x + (int64_t)blockIdx.x * cols;
    float bv = __int_as_float(0x7fffffff); /* NaN: loses to any number */
    int bi = 0x7fffffff;
    for (int j = threadIdx.x; j < cols; j += blockDim.x) {
        float v = xr[j];
        if (argmax_better(bv, bi, v, j)) {
            bv = v;
            bi = j;
        }
    }
    sv[threadIdx.x] = bv;
    si[threadIdx.x] = bi;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s && argmax_better(sv[threadIdx.x], si[threadIdx.x],
                                             sv[threadIdx.x + s], si[threadIdx.x + s])) {
            sv[threadIdx.x] = sv[threadIdx.x + s];
            si[threadIdx.x] = si[threadIdx.x + s];
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) out[blockIdx.x] = si[0] == 0x7fffffff ? 0 : si[0];
}

extern "C" int sgl_k_argmax(const float *x, int n, int cols, int32_t *out, cudaStream_t st)
{
    if (n < 0 || cols <= 0) return SGL_K_EINVAL;
    if (n == 0) return 0;
    argmax_kernel<<<n, ARGMAX_THREADS, 0, st>>>(x, cols, out);
    SGL_K_LAUNCHED(st);
    return 0;
}

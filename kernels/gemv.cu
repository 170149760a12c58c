/* gemv.cu -- y (n, out) [+]= x (n, in) W^T for a few rows: the decode-step
 * matrix products, where the weights are read once and nothing is reused.
 *
 * Bandwidth-bound by design: each warp owns one output column o (one weight
 * row W[o, :]) and streams it with 16-byte loads (8 bf16 per lane, 256 per
 * warp step, four steps in flight), multiplies it with the n <= 8 input rows
 * (16-byte loads too; they stay in L1/L2, every warp reads them) and reduces
 * its n partial sums with xor shuffles. fp32 accumulation, fp32 output; beta
 * is 0 (overwrite) or 1 (the residual add of o_proj/down_proj). The row count
 * is a literal per kernel (one instantiation per n), so the accumulators stay
 * in registers. Launched with PDL (pdl.cuh): each warp loads its first four
 * weight chunks before pdl_wait(), so the stream of weights starts while the
 * previous kernel finishes; x and y are touched only after it.
 */
#include <cuda_bf16.h>

#include "kernels/cuda_check.h"
#include "kernels/kernels.h"
#include "kernels/pdl.cuh"

#define GV_WARPS 8

static __device__ __forceinline__ void gv_fma8(float *acc, uint4 w, uint4 x)
{
    const __nv_bfloat162 *wh = (const __nv_bfloat162 *)&w, *xh = (const __nv_bfloat162 *)&x;
#pragma unroll
    for (int k = 0; k < 4; k++) {
        float2 wf = __bfloat1622float2(wh[k]), xf = __bfloat1622float2(xh[k]);
        *acc += wf.x * xf.x + wf.y * xf.y;
    }
}

/* Weights are read once per step: stream them past L1 (evict-first). */
static __device__ __forceinline__ uint4 ld_stream(const uint16_t *p)
{
    return __ldcs((const uint4 *)p);
}

static __device__ __forceinline__ void gv_body(const uint16_t *x, const uint16_t *W, float *y,
                                               int in, int out, float beta, const int N)
{
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int o = blockIdx.x * GV_WARPS + warp;
    pdl_trigger();
    if (o >= out) return;
    const uint16_t *w = W + (int64_t)o * in;
    float acc[8];
#pragma unroll
    for (int r = 0; r < 8; r++) acc[r] = 0.0f;
    int k = lane * 8;
    uint4 wv[4];
    const bool first = k + 3 * 256 < in;
    if (first) /* weights only: safe before the wait */
#pragma unroll
        for (int u = 0; u < 4; u++) wv[u] = ld_stream(w + k + u * 256);
    pdl_wait();
    if (first) {
#pragma unroll
        for (int r = 0; r < N; r++)
#pragma unroll
            for (int u = 0; u < 4; u++)
                gv_fma8(&acc[r], wv[u], __ldg((const uint4 *)(x + (int64_t)r * in + k + u * 256)));
        k += 4 * 256;
    }
    for (; k + 3 * 256 < in; k += 4 * 256) { /* four weight loads in flight */
#pragma unroll
        for (int u = 0; u < 4; u++) wv[u] = ld_stream(w + k + u * 256);
#pragma unroll
        for (int r = 0; r < N; r++)
#pragma unroll
            for (int u = 0; u < 4; u++)
                gv_fma8(&acc[r], wv[u], __ldg((const uint4 *)(x + (int64_t)r * in + k + u * 256)));
    }
    for (; k < in; k += 256) {
        uint4 w0 = ld_stream(w + k);
#pragma unroll
        for (int r = 0; r < N; r++) gv_fma8(&acc[r], w0, __ldg((const uint4 *)(x + (int64_t)r * in + k)));
    }
#pragma unroll
    for (int r = 0; r < N; r++) {
        float v = acc[r];
#pragma unroll
        for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
        if (lane == 0) {
            float *yp = y + (int64_t)r * out + o;
            *yp = beta != 0.0f ? *yp * beta + v : v;
        }
    }
}

#define GV_KERNEL(N)                                                                          \
    __global__ void __launch_bounds__(GV_WARPS * 32)                                          \
        gemv_n##N(const uint16_t *x, const uint16_t *W, float *y, int in, int out, float beta) \
    {                                                                                         \
        gv_body(x, W, y, in, out, beta, N);                                                   \
    }
GV_KERNEL(1) GV_KERNEL(2) GV_KERNEL(3) GV_KERNEL(4) GV_KERNEL(5) GV_KERNEL(6) GV_KERNEL(7) GV_KERNEL(8)

typedef void (*GvKernel)(const uint16_t *, const uint16_t *, float *, int, int, float);

extern "C" int sgl_k_gemv(const uint16_t *x, const uint16_t *W, float *y, int n, int in, int out,
                          float beta, cudaStream_t st)
{
    static const GvKernel ks[] = {gemv_n1, gemv_n2, gemv_n3, gemv_n4,
                                  gemv_n5, gemv_n6, gemv_n7, gemv_n8};
    if (n < 0 || n > SGL_K_GEMV_MAX_ROWS || in < 8 || in % 8 || out < 0 ||
        (beta != 0.0f && beta != 1.0f) || ((uintptr_t)x | (uintptr_t)W) % 16)
        return SGL_K_EINVAL;
    if (n == 0 || out == 0) return 0;
    void *args[] = {(void *)&x, (void *)&W, (void *)&y, (void *)&in, (void *)&out, (void *)&beta};
    cudaError_t e = pdl_launch((const void *)ks[n - 1], dim3((out + GV_WARPS - 1) / GV_WARPS),
                               dim3(GV_WARPS * 32), 0, st, args);
    if (e != cudaSuccess) return (int)e;
    SGL_K_LAUNCHED(st);
    return 0;
}

/* norm_gemv.cu -- RMSNorm fused into the few-row decode products:
 * y = rmsnorm(x) W^T (qkv, lm_head) or act = silu(rmsnorm(x) Wg^T) *
 * (rmsnorm(x) Wu^T) (gate/up with the SwiGLU epilogue), so a batch-1 layer
 * needs neither the norm kernel nor the silu_mul kernel and their round trips.
 *
 * Block of NG_WARPS warps: before pdl_wait() each warp loads its first weight
 * chunk (weights do not depend on the previous kernel, so with PDL this load
 * overlaps the previous kernel's tail); then the block computes the n rows'
 * sum of squares (float4 loads, fp32, block reduction, the same order in every
 * block, so all blocks get the same bf16 inputs), writes the normalised bf16
 * rows to shared memory, and each warp streams its weight row(s) against them
 * as sgl_k_gemv does (16-byte loads, four in flight, xor-shuffle reduction).
 * Each block re-reads the n input rows from L2 (n * in * 4 bytes): small
 * against the weights it streams (NG_WARPS rows of in * 2 bytes, twice that
 * in the silu form). The row count and the silu form are literals per
 * kernel instantiation.
 */
#include <cuda_bf16.h>

#include "kernels/cuda_check.h"
#include "kernels/kernels.h"
#include "kernels/pdl.cuh"

#define NG_WARPS 16
#define NG_THREADS (NG_WARPS * 32)

static __device__ __forceinline__ void ng_fma8(float *acc, uint4 w, uint4 x)
{
    const __nv_bfloat162 *wh = (const __nv_bfloat162 *)&w, *xh = (const __nv_bfloat162 *)&x;
#pragma unroll
    for (int k = 0; k < 4; k++) {
        float2 wf = __bfloat1622float2(wh[k]), xf = __bfloat1622float2(xh[k]);
        *acc += wf.x * xf.x + wf.y * xf.y;
    }
}

static __device__ __forceinline__ uint4 ng_ld(const uint16_t *p) { return __ldcs((const uint4 *)p); }

/* Four 256-element steps of one or two weight rows against the N staged rows. */
static __device__ __forceinline__ void ng_step4(float *ga, float *ua, const uint4 *wa, const uint4 *wb,
                                                const uint16_t *xs, int in, int k, const int N,
                                                const bool SILU)
{
#pragma unroll
    for (int r = 0; r < N; r++)
#pragma unroll
        for (int u = 0; u < 4; u++) {
            uint4 xv = *(const uint4 *)(xs + r * in + k + u * 256);
            ng_fma8(&ga[r], wa[u], xv);
            if (SILU) ng_fma8(&ua[r], wb[u], xv);
        }
}

static __device__ __forceinline__ void ng_body(const float *x, const int32_t *rows, const uint16_t *nw,
                                               float eps, int in, const uint16_t *W, int out, float *y,
                                               uint16_t *silu_out, const int N, const bool SILU)
{
    extern __shared__ uint4 ng_smem[];
    __shared__ float red[SGL_K_NORM_GEMV_MAX_ROWS][NG_WARPS];
    uint16_t *xs = (uint16_t *)ng_smem; /* (N, in) bf16 */
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int n_out = SILU ? out / 2 : out;
    const int o = blockIdx.x * NG_WARPS + warp;
    const bool active = o < n_out;
    const uint16_t *wa = W + (int64_t)(active ? o : 0) * in;
    const uint16_t *wb = SILU ? wa + (int64_t)n_out * in : wa;
    int k = lane * 8;
    const bool first = active && k + 3 * 256 < in;
    uint4 pa[4], pb[4];
    if (first) {
#pragma unroll
        for (int u = 0; u < 4; u++) {
            pa[u] = ng_ld(wa + k + u * 256);
            if (SILU) pb[u] = ng_ld(wb + k + u * 256);
        }
    }
    pdl_trigger();
    pdl_wait();

    /* the norm: sum of squares of each input row */
    float ss[SGL_K_NORM_GEMV_MAX_ROWS];
#pragma unroll
    for (int r = 0; r < N; r++) {
        const float *xr = x + (int64_t)(rows ? rows[r] : r) * in;
        float s = 0.0f;
        for (int j = threadIdx.x * 4; j < in; j += NG_THREADS * 4) {
            float4 v = *(const float4 *)(xr + j);
            s += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
        }
#pragma unroll
        for (int off = 16; off > 0; off >>= 1) s += __shfl_xor_sync(0xffffffffu, s, off);
        if (lane == 0) red[r][warp] = s;
    }
    __syncthreads();
#pragma unroll
    for (int r = 0; r < N; r++) {
        float s = 0.0f;
#pragma unroll
        for (int w = 0; w < NG_WARPS; w++) s += red[r][w];
        ss[r] = rsqrtf(s / (float)in + eps);
    }
    /* stage the normalised rows as bf16, 8 elements per thread step */
#pragma unroll
    for (int r = 0; r < N; r++) {
        const float *xr = x + (int64_t)(rows ? rows[r] : r) * in;
        for (int j = threadIdx.x * 8; j < in; j += NG_THREADS * 8) {
            float4 a = *(const float4 *)(xr + j), b = *(const float4 *)(xr + j + 4);
            uint4 wv = *(const uint4 *)(nw + j);
            const __nv_bfloat162 *wh = (const __nv_bfloat162 *)&wv;
            float2 w0 = __bfloat1622float2(wh[0]), w1 = __bfloat1622float2(wh[1]);
            float2 w2 = __bfloat1622float2(wh[2]), w3 = __bfloat1622float2(wh[3]);
            uint4 ov;
            __nv_bfloat162 *oh = (__nv_bfloat162 *)&ov;
            oh[0] = __floats2bfloat162_rn(a.x * ss[r] * w0.x, a.y * ss[r] * w0.y);
            oh[1] = __floats2bfloat162_rn(a.z * ss[r] * w1.x, a.w * ss[r] * w1.y);
            oh[2] = __floats2bfloat162_rn(b.x * ss[r] * w2.x, b.y * ss[r] * w2.y);
            oh[3] = __floats2bfloat162_rn(b.z * ss[r] * w3.x, b.w * ss[r] * w3.y);
            *(uint4 *)(xs + r * in + j) = ov;
        }
    }
    __syncthreads();
    if (!active) return;

    float ga[SGL_K_NORM_GEMV_MAX_ROWS], ua[SGL_K_NORM_GEMV_MAX_ROWS];
#pragma unroll
    for (int r = 0; r < N; r++) ga[r] = ua[r] = 0.0f;
    if (first) {
        ng_step4(ga, ua, pa, pb, xs, in, k, N, SILU);
        k += 4 * 256;
    }
    for (; k + 3 * 256 < in; k += 4 * 256) {
#pragma unroll
        for (int u = 0; u < 4; u++) {
            pa[u] = ng_ld(wa + k + u * 256);
            if (SILU) pb[u] = ng_ld(wb + k + u * 256);
        }
        ng_step4(ga, ua, pa, pb, xs, in, k, N, SILU);
    }
    for (; k < in; k += 256) {
        uint4 a0 = ng_ld(wa + k), b0 = SILU ? ng_ld(wb + k) : a0;
#pragma unroll
        for (int r = 0; r < N; r++) {
            uint4 xv = *(const uint4 *)(xs + r * in + k);
            ng_fma8(&ga[r], a0, xv);
            if (SILU) ng_fma8(&ua[r], b0, xv);
        }
    }
#pragma unroll
    for (int r = 0; r < N; r++) {
        float g = ga[r], u = ua[r];
#pragma unroll
        for (int off = 16; off > 0; off >>= 1) {
            g += __shfl_xor_sync(0xffffffffu, g, off);
            if (SILU) u += __shfl_xor_sync(0xffffffffu, u, off);
        }
        if (lane == 0) {
            if (SILU)
                silu_out[(int64_t)r * n_out + o] = __bfloat16_as_ushort(__float2bfloat16(g / (1.0f + expf(-g)) * u));
            else
                y[(int64_t)r * out + o] = g;
        }
    }
}

#define NG_KERNEL(N, SILU, NAME)                                                                  \
    __global__ void __launch_bounds__(NG_THREADS)                                                \
        NAME(const float *x, const int32_t *rows, const uint16_t *nw, float eps, int in,          \
             const uint16_t *W, int out, float *y, uint16_t *silu_out)                           \
    {                                                                                             \
        ng_body(x, rows, nw, eps, in, W, out, y, silu_out, N, SILU);                              \
    }
NG_KERNEL(1, false, norm_gemv_n1) NG_KERNEL(2, false, norm_gemv_n2)
NG_KERNEL(1, true, norm_gemv_silu_n1) NG_KERNEL(2, true, norm_gemv_silu_n2)

extern "C" int sgl_k_norm_gemv(const float *x, const int32_t *rows, const uint16_t *nw, float eps, int n,
                               int in, const uint16_t *W, int out, float *y, uint16_t *silu_out,
                               cudaStream_t st)
{
    if (n < 0 || n > SGL_K_NORM_GEMV_MAX_ROWS || in < 8 || in % 8 || out < 0 ||
        (int64_t)n * in > SGL_K_NORM_GEMV_MAX_ELEMS || (silu_out && out % 2) ||
        ((uintptr_t)x | (uintptr_t)W | (uintptr_t)nw) % 16)
        return SGL_K_EINVAL;
    if (n == 0 || out == 0) return 0;
    const void *fn = silu_out ? (n == 1 ? (const void *)norm_gemv_silu_n1 : (const void *)norm_gemv_silu_n2)
                              : (n == 1 ? (const void *)norm_gemv_n1 : (const void *)norm_gemv_n2);
    int n_out = silu_out ? out / 2 : out;
    void *args[] = {(void *)&x, (void *)&rows, (void *)&nw, (void *)&eps, (void *)&in,
                    (void *)&W, (void *)&out, (void *)&y, (void *)&silu_out};
    cudaError_t e = pdl_launch(fn, dim3((n_out + NG_WARPS - 1) / NG_WARPS), dim3(NG_THREADS),
                               (size_t)n * in * 2, st, args);
    if (e != cudaSuccess) return (int)e;
    SGL_K_LAUNCHED(st);
    return 0;
}

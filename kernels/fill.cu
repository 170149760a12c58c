/* fill.cu -- random weights generated on the device (dummy models): element i
 * of a tensor is a pure function of (seed, i), so any slice can be filled by
 * any thread and the result does not depend on the launch shape. Uniform in
 * [-a, a] on 65536 levels (16 bits of a splitmix64 hash of (seed, i / 4),
 * lane i % 4), the same family as the host's dummy weights (runtime/model.c);
 * a == 0 gives ones (norm weights). */
#include "kernels/cuda_check.h"
#include "kernels/kernels.h"

#define FILL_THREADS 256

__device__ __forceinline__ float fill_value(uint64_t seed, int64_t i, float a)
{
    if (a == 0.0f) return 1.0f;
    uint64_t z = seed + 0x9E3779B97F4A7C15ull * (uint64_t)((i >> 2) + 1);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    uint32_t bits = (uint32_t)(z >> (16 * (i & 3))) & 0xFFFFu;
    return __fmaf_rn(2.0f * a / 65535.0f, (float)bits, -a);
}

__global__ void fill_bf16_kernel(uint16_t *out, int64_t n, float a, uint64_t seed)
{
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        uint32_t u = __float_as_uint(fill_value(seed, i, a));
        u += 0x7FFFu + ((u >> 16) & 1u); /* round to nearest even; values are finite */
        out[i] = (uint16_t)(u >> 16);
    }
}

__global__ void fill_f32_kernel(float *out, int64_t n, float a, uint64_t seed)
{
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        out[i] = fill_value(seed, i, a);
}

static int fill_grid(int64_t n)
{
    int64_t g = (n + FILL_THREADS - 1) / FILL_THREADS;
    return g > 8192 ? 8192 : (int)g;
}

extern "C" int sgl_k_fill_bf16(uint16_t *out, int64_t n, float a, uint64_t seed, cudaStream_t st)
{
    if (n < 0 || !(a >= 0.0f)) return SGL_K_EINVAL;
    if (n == 0) return 0;
    fill_bf16_kernel<<<fill_grid(n), FILL_THREADS, 0, st>>>(out, n, a, seed);
    SGL_K_LAUNCHED(st);
    return 0;
}

extern "C" int sgl_k_fill_f32(float *out, int64_t n, float a, uint64_t seed, cudaStream_t st)
{
    if (n < 0 || !(a >= 0.0f)) return SGL_K_EINVAL;
    if (n == 0) return 0;
    fill_f32_kernel<<<fill_grid(n), FILL_THREADS, 0, st>>>(out, n, a, seed);
    SGL_K_LAUNCHED(st);
    return 0;
}

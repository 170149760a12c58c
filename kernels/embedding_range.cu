/* embedding_range.cu -- vocab-parallel token embedding (tensor parallelism):
 * this rank holds rows [row0, row0 + n_rows) of the table; a token in that
 * range gathers its row as fp32, any other token gives a row of zeros, so the
 * sum over ranks (all-reduce) is the full embedding. One block per token;
 * threads stride over the hidden dimension (as embedding.cu). */
#include <cuda_bf16.h>

#include "kernels/cuda_check.h"
#include "kernels/kernels.h"

__global__ void embedding_range_kernel(const __nv_bfloat16 *embed /* (n_rows, hidden) */, int row0,
                                       int n_rows, int hidden, const int32_t *tokens,
                                       float *x /* (n, hidden) */)
{
    int i = blockIdx.x;
    int64_t t = (int64_t)tokens[i] - row0;
    float *xi = x + (int64_t)i * hidden;
    if (t < 0 || t >= n_rows) {
        for (int j = threadIdx.x; j < hidden; j += blockDim.x) xi[j] = 0.0f;
        return;
    }
    const __nv_bfloat16 *row = embed + t * hidden;
    for (int j = threadIdx.x; j < hidden; j += blockDim.x) xi[j] = __bfloat162float(row[j]);
}

extern "C" int sgl_k_embedding_range(const uint16_t *embed, int row0, int n_rows, int hidden,
                                     const int32_t *tokens, int n, float *x, cudaStream_t st)
{
    if (n < 0 || hidden <= 0 || n_rows < 0 || row0 < 0) return SGL_K_EINVAL;
    if (n == 0) return 0;
    int threads = hidden >= 256 ? 256 : ((hidden + 31) / 32) * 32;
    embedding_range_kernel<<<n, threads, 0, st>>>((const __nv_bfloat16 *)embed, row0, n_rows, hidden,
                                                  tokens, x);
    SGL_K_LAUNCHED(st);
    return 0;
}

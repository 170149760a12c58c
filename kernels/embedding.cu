/* embedding.cu -- token embedding gather: bf16 table rows -> fp32 residual rows.
 * One block per token; threads stride over the hidden dimension. */
#include <cuda_bf16.h>

#include "kernels/cuda_check.h"
#include "kernels/kernels.h"

__global__ void embedding_kernel(const __nv_bfloat16 *embed /* (vocab, hidden) */, int vocab,
                                 int hidden, const int32_t *tokens, float *x /* (n, hidden) */)
{
    int i = blockIdx.x;
    int t = tokens[i];
    float *xi = x + (int64_t)i * hidden;
    if (t < 0 || t >= vocab) {
        for (int j = threadIdx.x; j < hidden; j += blockDim.x) xi[j] = 0.0f;
        return;
    }
    const __nv_bfloat16 *row = embed + (int64_t)t * hidden;
    for (int j = threadIdx.x; j < hidden; j += blockDim.x) xi[j] = __bfloat162float(row[j]);
}

extern "C" int sgl_k_embedding(const uint16_t *embed, int vocab, int hidden,
                               const int32_t *tokens, int n, float *x, cudaStream_t st)
{
    if (n < 0 || hidden <= 0 || vocab <= 0) return SGL_K_EINVAL;
    if (n == 0) return 0;
    int threads = hidden >= 256 ? 256 : ((hidden + 31) / 32) * 32;
    embedding_kernel<<<n, threads, 0, st>>>((const __nv_bfloat16 *)embed, vocab, hidden, tokens, x);
    SGL_K_LAUNCHED(st);
    return 0;
}

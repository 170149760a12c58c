/* embedding_ref.c -- reference for sgl_k_embedding (kernels/embedding.cu). */
#include "kernels/ref/ref.h"

void sgl_ref_embedding(const uint16_t *embed, int vocab, int hidden, const int32_t *tokens,
                       int n, float *x)
{
    for (int i = 0; i < n; i++) {
        int t = tokens[i];
        for (int j = 0; j < hidden; j++)
            x[(int64_t)i * hidden + j] =
                (t >= 0 && t < vocab) ? sgl_bf16_to_f32(embed[(int64_t)t * hidden + j]) : 0.0f;
    }
}

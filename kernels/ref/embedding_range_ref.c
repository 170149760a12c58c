/* embedding_range_ref.c -- reference for sgl_k_embedding_range (kernels/embedding_range.cu). */
#include "kernels/ref/ref.h"

void sgl_ref_embedding_range(const uint16_t *embed, int row0, int n_rows, int hidden,
                             const int32_t *tokens, int n, float *x)
{
    for (int i = 0; i < n; i++) {
        int64_t t = (int64_t)tokens[i] - row0;
        for (int j = 0; j < hidden; j++)
            x[(int64_t)i * hidden + j] =
                (t >= 0 && t < n_rows) ? sgl_bf16_to_f32(embed[t * hidden + j]) : 0.0f;
    }
}

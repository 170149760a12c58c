/* rope_ref.c -- reference for sgl_k_rope (kernels/rope.cu), and the inverse
 * frequency table (HF default and llama3 scaling) that both runners use. */
#include "kernels/ref/ref.h"

#include <math.h>

void sgl_ref_rope(float *qkv, int stride, int n, int n_q, int n_kv, int head_dim,
                  const float *bias, const int32_t *positions, const float *inv_freq)
{
    int width = (n_q + 2 * n_kv) * head_dim, half = head_dim / 2;
    for (int i = 0; i < n; i++) {
        float *row = qkv + (int64_t)i * stride;
        if (bias)
            for (int j = 0; j < width; j++) row[j] += bias[j];
        for (int h = 0; h < n_q + n_kv; h++) {
            float *x = row + h * head_dim;
            for (int d = 0; d < half; d++) {
                float ang = (float)positions[i] * inv_freq[d];
                double c = cos((double)ang), s = sin((double)ang);
                float x1 = x[d], x2 = x[d + half];
                x[d] = (float)(x1 * c - x2 * s);
                x[d + half] = (float)(x2 * c + x1 * s);
            }
        }
    }
}

/* HF _compute_default_rope_parameters / _compute_llama3_parameters, in fp32
 * as HF computes them: the default table is 1/theta^(2d/hd); llama3 keeps high
 * frequencies, divides low ones by factor and blends the band between. */
void sgl_rope_inv_freq(int head_dim, double theta, double factor, double low_ff,
                       double high_ff, double orig_max_pos, float *inv_freq)
{
    const float pi = 3.14159265358979323846f;
    for (int d = 0; d < head_dim / 2; d++) {
        float f = 1.0f / powf((float)theta, (float)(2 * d) / (float)head_dim);
        if (factor > 0) {
            float old = (float)orig_max_pos;
            float low_wl = old / (float)low_ff, high_wl = old / (float)high_ff;
            float wl = 2 * pi / f;
            if (wl > low_wl) {
                f = f / (float)factor;
            } else if (wl >= high_wl) {
                float smooth = (old / wl - (float)low_ff) / (float)(high_ff - low_ff);
                f = (1 - smooth) * f / (float)factor + smooth * f;
            }
        }
        inv_freq[d] = f;
    }
}

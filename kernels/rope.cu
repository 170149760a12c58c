/* rope.cu -- qkv bias add fused with rotary position embedding (HF rotate_half).
 * One block per token. Each thread takes rotation pairs (d, d+hd/2) of the q
 * and k heads, adds the bias to both members, then rotates; the v columns only
 * get the bias. The angle uses the precomputed inv_freq table (default or
 * llama3-scaled, see sgl_rope_inv_freq) and full-precision sincosf, since
 * positions reach 10^5 and the fast intrinsic loses accuracy there. */
#include "kernels/cuda_check.h"
#include "kernels/kernels.h"

__global__ void rope_kernel(float *qkv, int stride, int n_q, int n_kv, int head_dim,
                            const float *bias, const int32_t *positions, const float *inv_freq)
{
    int i = blockIdx.x;
    float *row = qkv + (int64_t)i * stride;
    int half = head_dim / 2;
    int n_rot = (n_q + n_kv) * half;
    float pos = (float)positions[i];
    for (int p = threadIdx.x; p < n_rot; p += blockDim.x) {
        int h = p / half, d = p - h * half;
        int c1 = h * head_dim + d, c2 = c1 + half;
        float x1 = row[c1], x2 = row[c2];
        if (bias) {
            x1 += bias[c1];
            x2 += bias[c2];
        }
        float s, c;
        sincosf(pos * inv_freq[d], &s, &c);
        row[c1] = x1 * c - x2 * s;
        row[c2] = x2 * c + x1 * s;
    }
    if (bias) {
        int v0 = (n_q + n_kv) * head_dim, v1 = v0 + n_kv * head_dim;
        for (int j = v0 + threadIdx.x; j < v1; j += blockDim.x) row[j] += bias[j];
    }
}

extern "C" int sgl_k_rope(float *qkv, int stride, int n, int n_q, int n_kv, int head_dim,
                          const float *bias, const int32_t *positions, const float *inv_freq,
                          cudaStream_t st)
{
    if (n < 0 || n_q <= 0 || n_kv <= 0 || head_dim <= 0 || (head_dim & 1) ||
        head_dim > SGL_K_MAX_HEAD_DIM || stride < (n_q + 2 * n_kv) * head_dim)
        return SGL_K_EINVAL;
    if (n == 0) return 0;
    int pairs = (n_q + n_kv) * head_dim / 2;
    int threads = pairs >= 256 ? 256 : ((pairs + 31) / 32) * 32;
    rope_kernel<<<n, threads, 0, st>>>(qkv, stride, n_q, n_kv, head_dim, bias, positions, inv_freq);
    SGL_K_LAUNCHED(st);
    return 0;
}

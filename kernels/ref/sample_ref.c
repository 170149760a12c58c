/* sample_ref.c -- reference for sgl_k_sample (kernels/sample.cu): the same
 * candidate rules, thresholds found by the same bisection over ordered float
 * keys, the same Philox hash and Gumbel-max draw; fp32 sums in index order
 * (the kernel sums in another order, so ids can differ where a threshold or
 * a Gumbel race is decided by the last bits). */
#include <math.h>

#include "kernels/ref/ref.h"

uint32_t sgl_ref_philox_u32(uint64_t seed, uint64_t step, uint32_t token)
{
    uint32_t c0 = token, c1 = (uint32_t)step, c2 = (uint32_t)(step >> 32), c3 = 0x53474cu;
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    for (int i = 0; i < 10; i++) {
        uint64_t p0 = (uint64_t)0xD2511F53u * c0, p1 = (uint64_t)0xCD9E8D57u * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0, n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        c1 = (uint32_t)p1;
        c3 = (uint32_t)p0;
        c0 = n0;
        c2 = n2;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    return c0;
}

/* monotone map of floats to unsigned keys (larger float, larger key) */
static uint32_t okey(float v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    return (u & 0x80000000u) ? ~u : u | 0x80000000u;
}

static int allowed(const float *x, const uint32_t *m, int j)
{
    if (m && !((m[j >> 5] >> (j & 31)) & 1u)) return 0;
    return x[j] == x[j] && x[j] > -INFINITY;
}

void sgl_ref_sample(const float *x, int n, int cols, const SglKSampleRow *rows, const uint32_t *masks,
                    int32_t *ids, float *logprobs)
{
    int words = (cols + 31) / 32;
    for (int r = 0; r < n; r++) {
        const SglKSampleRow *P = &rows[r];
        const float *xr = x + (int64_t)r * cols;
        const uint32_t *mr = masks && P->use_mask ? masks + (int64_t)r * words : NULL;
        float rmax = -INFINITY, m = -INFINITY;
        int best = -1;
        for (int j = 0; j < cols; j++) {
            if (xr[j] == xr[j] && xr[j] > rmax) rmax = xr[j];
            if (allowed(xr, mr, j) && xr[j] > m) {
                m = xr[j];
                best = j;
            }
        }
        int chosen = best;
        if (best >= 0 && !(P->temperature <= 0.0f || P->top_k == 1)) {
            float inv_t = 1.0f / P->temperature;
            uint32_t thr = 0;
            if (P->top_k > 0 && P->top_k < cols) {
                uint32_t lo = 0, hi = 0xFFFFFFFFu;
                while (lo < hi) {
                    uint32_t mid = lo + (uint32_t)(((uint64_t)hi - lo + 1) / 2);
                    int cnt = 0;
                    for (int j = 0; j < cols; j++) cnt += allowed(xr, mr, j) && okey(xr[j]) >= mid;
                    if (cnt >= P->top_k) lo = mid; else hi = mid - 1;
                }
                thr = lo;
            }
            if (P->top_p < 1.0f) {
                float z = 0.0f;
                for (int j = 0; j < cols; j++)
                    if (allowed(xr, mr, j) && okey(xr[j]) >= thr) z += expf((xr[j] - m) * inv_t);
                float want = P->top_p * z;
                uint32_t lo = thr, hi = 0xFFFFFFFFu;
                while (lo < hi) {
                    uint32_t mid = lo + (uint32_t)(((uint64_t)hi - lo + 1) / 2);
                    float s = 0.0f;
                    for (int j = 0; j < cols; j++)
                        if (allowed(xr, mr, j) && okey(xr[j]) >= mid) s += expf((xr[j] - m) * inv_t);
                    if (s >= want) lo = mid; else hi = mid - 1;
                }
                thr = lo;
            }
            float zmin = P->min_p > 0.0f ? logf(P->min_p) : -INFINITY;
            float bg = -INFINITY;
            chosen = -1;
            for (int j = 0; j < cols; j++) {
                if (!allowed(xr, mr, j) || okey(xr[j]) < thr) continue;
                float z = (xr[j] - m) * inv_t;
                if (z < zmin) continue;
                uint32_t h = sgl_ref_philox_u32(P->seed, P->step, (uint32_t)j);
                float u = ((float)(h >> 8) + 0.5f) * (1.0f / 16777216.0f);
                float g = z - logf(-logf(u));
                if (chosen < 0 || g > bg) {
                    bg = g;
                    chosen = j;
                }
            }
        }
        ids[r] = chosen;
        if (P->want_logprob && logprobs) {
            float s = 0.0f;
            for (int j = 0; j < cols; j++)
                if (xr[j] == xr[j]) s += expf(xr[j] - rmax);
            logprobs[r] = chosen < 0 ? -INFINITY : xr[chosen] - rmax - logf(s);
        }
    }
}

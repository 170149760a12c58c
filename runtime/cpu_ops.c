/* cpu_ops.c -- CPU math kernels: a generic C version and an AVX2+FMA one.
 *
 * The project builds with the distribution's baseline flags (x86-64 without
 * -march), so the AVX2 functions carry __attribute__((target("avx2,fma")))
 * and are only reached through the table cpu_kernels_get returns after
 * checking the CPU. The generic versions are the reference: deliberately
 * simple loops (with a few independent accumulators so -O2 can overlap them).
 */
#include "runtime/cpu_ops.h"

#include <math.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_X86 1
#endif

/* ---- shared scalar helpers -------------------------------------------- */

void cpu_rmsnorm(int n, const float *restrict x, const float *restrict w, float eps, float *restrict out)
{
    float ss[4] = {0, 0, 0, 0};
    int i = 0;
    for (; i + 4 <= n; i += 4)
        for (int l = 0; l < 4; l++)
            ss[l] += x[i + l] * x[i + l];
    for (; i < n; i++)
        ss[0] += x[i] * x[i];
    float r = 1.0f / sqrtf((ss[0] + ss[1] + ss[2] + ss[3]) / (float)n + eps);
    for (i = 0; i < n; i++)
        out[i] = w[i] * (x[i] * r);
}

void cpu_rope(int n_heads, int head_dim, float *restrict x, const float *restrict cos_t,
              const float *restrict sin_t)
{
    int h = head_dim / 2;
    for (int hh = 0; hh < n_heads; hh++) {
        float *a = x + (int64_t)hh * head_dim, *b = a + h;
        for (int j = 0; j < h; j++) {
            float x1 = a[j], x2 = b[j];
            a[j] = x1 * cos_t[j] - x2 * sin_t[j];
            b[j] = x2 * cos_t[j] + x1 * sin_t[j];
        }
    }
}

static float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1F, man = h & 0x3FF, u;
    if (exp == 0x1F)
        u = sign | 0x7F800000u | (man << 13);              /* inf / nan */
    else if (exp != 0)
        u = sign | ((exp + 112) << 23) | (man << 13);      /* normal: rebias 15 -> 127 */
    else if (man == 0)
        u = sign;                                          /* zero */
    else {                                                 /* subnormal: normalize */
        int e = -1;
        do {
            man <<= 1;
            e++;
        } while (!(man & 0x400));
        u = sign | ((uint32_t)(112 - e) << 23) | ((man & 0x3FF) << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

void cpu_f16_to_f32(int64_t n, const void *src, float *dst)
{
    const unsigned char *s = src;
    for (int64_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, s + 2 * i, 2);
        dst[i] = half_to_float(h);
    }
}

void cpu_bf16_to_f32(int64_t n, const void *src, float *dst)
{
    const unsigned char *s = src;
    for (int64_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, s + 2 * i, 2);
        uint32_t u = (uint32_t)h << 16;
        memcpy(&dst[i], &u, 4);
    }
}

/* ---- generic kernels -------------------------------------------------- */

static float dot_generic(int n, const float *restrict a, const float *restrict b)
{
    float acc[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++)
            acc[l] += a[i + l] * b[i + l];
    for (; i < n; i++)
        acc[0] += a[i] * b[i];
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

static void matmul_generic(int n, int out, int in, const float *X, int ldx, const float *W, int ldw,
                           float *Y, int ldy)
{
    for (int t = 0; t < n; t++)
        for (int o = 0; o < out; o++)
            Y[(int64_t)t * ldy + o] = dot_generic(in, X + (int64_t)t * ldx, W + (int64_t)o * ldw);
}

static void silu_mul_generic(int n, const float *restrict g, const float *restrict u, float *restrict out)
{
    for (int i = 0; i < n; i++)
        out[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

/* Online softmax over tiles of keys: per head a running max m, running sum
 * l, and the unnormalized output; a tile's contribution is rescaled when the
 * max grows. Generic over head_dim. */
static void attend_generic(const CpuAttnArgs *a)
{
    int NH = a->n_heads, hd = a->head_dim, G = a->n_heads / a->n_kv_heads;
    float *m = a->scratch, *l = m + NH, *s = l + NH;   /* s: (NH, TILE) */
    for (int h = 0; h < NH; h++) {
        m[h] = -INFINITY;
        l[h] = 0;
        memset(a->out + (int64_t)h * hd, 0, sizeof(float) * (size_t)hd);
    }
    for (int t0 = 0; t0 < a->n_keys; t0 += CPU_ATTN_TILE) {
        int nt = a->n_keys - t0 < CPU_ATTN_TILE ? a->n_keys - t0 : CPU_ATTN_TILE;
        for (int h = 0; h < NH; h++) {
            const float *q = a->q + (int64_t)h * hd;
            const int64_t koff = (int64_t)(h / G) * hd;
            float *sh = s + h * CPU_ATTN_TILE, *o = a->out + (int64_t)h * hd;
            float mx = m[h];
            for (int j = 0; j < nt; j++) {
                const float *k = a->k + (int64_t)a->slots[t0 + j] * a->kv_stride + koff;
                sh[j] = dot_generic(hd, q, k) * a->scale;
                mx = sh[j] > mx ? sh[j] : mx;
            }
            float corr = expf(m[h] - mx), sum = 0;
            m[h] = mx;
            for (int d = 0; d < hd; d++)
                o[d] *= corr;
            for (int j = 0; j < nt; j++) {
                float p = expf(sh[j] - mx);
                const float *v = a->v + (int64_t)a->slots[t0 + j] * a->kv_stride + koff;
                sum += p;
                for (int d = 0; d < hd; d++)
                    o[d] += p * v[d];
            }
            l[h] = l[h] * corr + sum;
        }
    }
    for (int h = 0; h < NH; h++) {
        float inv = 1.0f / l[h];
        for (int d = 0; d < hd; d++)
            a->out[(int64_t)h * hd + d] *= inv;
    }
}

static const CpuKernels k_generic = {
    .name = "generic",
    .matmul = matmul_generic,
    .attend = attend_generic,
    .silu_mul = silu_mul_generic,
    .rmsnorm = cpu_rmsnorm,
    .rope = cpu_rope,
};

/* ---- AVX2 + FMA kernels ----------------------------------------------- */
#ifdef HAVE_X86
#define AVX2 __attribute__((target("avx2,fma")))
#define PREFETCH_KEYS 16

/* [sum(a0), sum(a1), sum(a2), sum(a3)] */
AVX2 static inline __m128 hsum4(__m256 a0, __m256 a1, __m256 a2, __m256 a3)
{
    __m256 s = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
    return _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
}

AVX2 static inline float hsum1(__m256 a)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* exp(x) for x in float range; Cephes-style degree-5 polynomial after
 * range reduction by ln 2 (relative error ~2e-7). */
AVX2 static inline __m256 exp256(__m256 x)
{
    x = _mm256_min_ps(x, _mm256_set1_ps(88.3762626647949f));
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.3365447505531f));
    __m256 fx = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
    x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), x);
    __m256 y = _mm256_set1_ps(1.9875691500E-4f);
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507E-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073E-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894E-2f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459E-1f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201E-1f));
    y = _mm256_fmadd_ps(y, _mm256_mul_ps(x, x), x);
    y = _mm256_add_ps(y, _mm256_set1_ps(1.0f));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(fx), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}

/* 2^t: t = n + f with |f| <= 1/2, 2^f by a degree-5 polynomial (Chebyshev
 * interpolant, relative error 1.1e-7), 2^n added to the exponent. t is
 * clamped to [-125, 125], so the result is never a denormal or infinite.
 * Five FMAs, where exp256 needs eleven: the softmax of head_dim-8 attention
 * runs one of these per 8 (key, head) scores, SiLU one per 8 elements. */
AVX2 static inline __m256 exp2_256(__m256 t)
{
    t = _mm256_min_ps(_mm256_max_ps(t, _mm256_set1_ps(-125.0f)), _mm256_set1_ps(125.0f));
    __m256 n = _mm256_round_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 f = _mm256_sub_ps(t, n);
    __m256 y = _mm256_set1_ps(0.0013390863364533504f);
    y = _mm256_fmadd_ps(y, f, _mm256_set1_ps(0.009676031918326564f));
    y = _mm256_fmadd_ps(y, f, _mm256_set1_ps(0.05550357114219461f));
    y = _mm256_fmadd_ps(y, f, _mm256_set1_ps(0.24022107485308208f));
    y = _mm256_fmadd_ps(y, f, _mm256_set1_ps(0.6931471880262287f));
    y = _mm256_fmadd_ps(y, f, _mm256_set1_ps(1.0000000754548972f));
    __m256i e = _mm256_slli_epi32(_mm256_cvtps_epi32(n), 23);
    return _mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(y), e));
}

/* 8 rows of W against one row of X: Y[o..o+8). */
AVX2 static inline void mm_8x1(int in, const float *x, const float *W, int ldw, float *y)
{
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    const float *w0 = W, *w1 = W + ldw, *w2 = W + 2 * (int64_t)ldw, *w3 = W + 3 * (int64_t)ldw;
    const float *w4 = W + 4 * (int64_t)ldw, *w5 = W + 5 * (int64_t)ldw, *w6 = W + 6 * (int64_t)ldw,
                *w7 = W + 7 * (int64_t)ldw;
    for (int i = 0; i < in; i += 8) {
        __m256 xv = _mm256_loadu_ps(x + i);
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w0 + i), xv, a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w1 + i), xv, a1);
        a2 = _mm256_fmadd_ps(_mm256_loadu_ps(w2 + i), xv, a2);
        a3 = _mm256_fmadd_ps(_mm256_loadu_ps(w3 + i), xv, a3);
        a4 = _mm256_fmadd_ps(_mm256_loadu_ps(w4 + i), xv, a4);
        a5 = _mm256_fmadd_ps(_mm256_loadu_ps(w5 + i), xv, a5);
        a6 = _mm256_fmadd_ps(_mm256_loadu_ps(w6 + i), xv, a6);
        a7 = _mm256_fmadd_ps(_mm256_loadu_ps(w7 + i), xv, a7);
    }
    _mm_storeu_ps(y, hsum4(a0, a1, a2, a3));
    _mm_storeu_ps(y + 4, hsum4(a4, a5, a6, a7));
}

/* 4 rows of W against two rows of X: Y[t][o..o+4), Y[t+1][o..o+4). */
AVX2 static inline void mm_4x2(int in, const float *x0, const float *x1, const float *W, int ldw,
                               float *y0, float *y1)
{
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
    const float *w0 = W, *w1 = W + ldw, *w2 = W + 2 * (int64_t)ldw, *w3 = W + 3 * (int64_t)ldw;
    for (int i = 0; i < in; i += 8) {
        __m256 xa = _mm256_loadu_ps(x0 + i), xb = _mm256_loadu_ps(x1 + i);
        __m256 v0 = _mm256_loadu_ps(w0 + i), v1 = _mm256_loadu_ps(w1 + i);
        __m256 v2 = _mm256_loadu_ps(w2 + i), v3 = _mm256_loadu_ps(w3 + i);
        a0 = _mm256_fmadd_ps(v0, xa, a0);
        a1 = _mm256_fmadd_ps(v1, xa, a1);
        a2 = _mm256_fmadd_ps(v2, xa, a2);
        a3 = _mm256_fmadd_ps(v3, xa, a3);
        b0 = _mm256_fmadd_ps(v0, xb, b0);
        b1 = _mm256_fmadd_ps(v1, xb, b1);
        b2 = _mm256_fmadd_ps(v2, xb, b2);
        b3 = _mm256_fmadd_ps(v3, xb, b3);
    }
    _mm_storeu_ps(y0, hsum4(a0, a1, a2, a3));
    _mm_storeu_ps(y1, hsum4(b0, b1, b2, b3));
}

/* 4 rows of W against three rows of X (12 accumulators, 7 loads per 12 FMAs). */
AVX2 static inline void mm_4x3(int in, const float *x0, const float *x1, const float *x2, const float *W,
                               int ldw, float *y0, float *y1, float *y2)
{
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
    __m256 c0 = a0, c1 = a0, c2 = a0, c3 = a0;
    const float *w0 = W, *w1 = W + ldw, *w2 = W + 2 * (int64_t)ldw, *w3 = W + 3 * (int64_t)ldw;
    for (int i = 0; i < in; i += 8) {
        __m256 xa = _mm256_loadu_ps(x0 + i), xb = _mm256_loadu_ps(x1 + i), xc = _mm256_loadu_ps(x2 + i);
        __m256 v = _mm256_loadu_ps(w0 + i);
        a0 = _mm256_fmadd_ps(v, xa, a0);
        b0 = _mm256_fmadd_ps(v, xb, b0);
        c0 = _mm256_fmadd_ps(v, xc, c0);
        v = _mm256_loadu_ps(w1 + i);
        a1 = _mm256_fmadd_ps(v, xa, a1);
        b1 = _mm256_fmadd_ps(v, xb, b1);
        c1 = _mm256_fmadd_ps(v, xc, c1);
        v = _mm256_loadu_ps(w2 + i);
        a2 = _mm256_fmadd_ps(v, xa, a2);
        b2 = _mm256_fmadd_ps(v, xb, b2);
        c2 = _mm256_fmadd_ps(v, xc, c2);
        v = _mm256_loadu_ps(w3 + i);
        a3 = _mm256_fmadd_ps(v, xa, a3);
        b3 = _mm256_fmadd_ps(v, xb, b3);
        c3 = _mm256_fmadd_ps(v, xc, c3);
    }
    _mm_storeu_ps(y0, hsum4(a0, a1, a2, a3));
    _mm_storeu_ps(y1, hsum4(b0, b1, b2, b3));
    _mm_storeu_ps(y2, hsum4(c0, c1, c2, c3));
}

AVX2 static inline float dot_avx2(int in, const float *x, const float *w)
{
    __m256 a = _mm256_setzero_ps(), b = a;
    int i = 0;
    for (; i + 16 <= in; i += 16) {
        a = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(x + i), a);
        b = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 8), _mm256_loadu_ps(x + i + 8), b);
    }
    for (; i < in; i += 8)
        a = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(x + i), a);
    return hsum1(_mm256_add_ps(a, b));
}

AVX2 static void matmul_avx2(int n, int out, int in, const float *X, int ldx, const float *W, int ldw,
                             float *Y, int ldy)
{
    int t = 0;
    int out4 = out & ~3;
    for (; t + 3 <= n; t += 3) {
        const float *x0 = X + (int64_t)t * ldx, *x1 = x0 + ldx, *x2 = x1 + ldx;
        float *y0 = Y + (int64_t)t * ldy, *y1 = y0 + ldy, *y2 = y1 + ldy;
        for (int o = 0; o < out4; o += 4)
            mm_4x3(in, x0, x1, x2, W + (int64_t)o * ldw, ldw, y0 + o, y1 + o, y2 + o);
        for (int o = out4; o < out; o++) {
            y0[o] = dot_avx2(in, x0, W + (int64_t)o * ldw);
            y1[o] = dot_avx2(in, x1, W + (int64_t)o * ldw);
            y2[o] = dot_avx2(in, x2, W + (int64_t)o * ldw);
        }
    }
    for (; t + 2 <= n; t += 2) {
        const float *x0 = X + (int64_t)t * ldx, *x1 = x0 + ldx;
        float *y0 = Y + (int64_t)t * ldy, *y1 = y0 + ldy;
        for (int o = 0; o < out4; o += 4)
            mm_4x2(in, x0, x1, W + (int64_t)o * ldw, ldw, y0 + o, y1 + o);
        for (int o = out4; o < out; o++) {
            y0[o] = dot_avx2(in, x0, W + (int64_t)o * ldw);
            y1[o] = dot_avx2(in, x1, W + (int64_t)o * ldw);
        }
    }
    for (; t < n; t++) {
        const float *x = X + (int64_t)t * ldx;
        float *y = Y + (int64_t)t * ldy;
        int o = 0;
        for (; o + 8 <= out; o += 8)
            mm_8x1(in, x, W + (int64_t)o * ldw, ldw, y + o);
        for (; o < out; o++)
            y[o] = dot_avx2(in, x, W + (int64_t)o * ldw);
    }
}

AVX2 static void rmsnorm_avx2(int n, const float *restrict x, const float *restrict w, float eps,
                              float *restrict out)
{
    __m256 a0 = _mm256_setzero_ps(), a1 = a0;
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 v0 = _mm256_loadu_ps(x + i), v1 = _mm256_loadu_ps(x + i + 8);
        a0 = _mm256_fmadd_ps(v0, v0, a0);
        a1 = _mm256_fmadd_ps(v1, v1, a1);
    }
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        a0 = _mm256_fmadd_ps(v, v, a0);
    }
    float ss = hsum1(_mm256_add_ps(a0, a1));
    for (; i < n; i++)
        ss += x[i] * x[i];
    const float r = 1.0f / sqrtf(ss / (float)n + eps);
    const __m256 rv = _mm256_set1_ps(r);
    for (i = 0; i + 8 <= n; i += 8)
        _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_loadu_ps(w + i), _mm256_mul_ps(_mm256_loadu_ps(x + i), rv)));
    for (; i < n; i++)
        out[i] = w[i] * (x[i] * r);
}

/* cpu_rope with 4 or 8-float vectors when head_dim / 2 is a multiple of 4. */
AVX2 static void rope_avx2(int n_heads, int head_dim, float *restrict x, const float *restrict cos_t,
                           const float *restrict sin_t)
{
    const int h = head_dim / 2;
    if (h % 4 != 0) {
        cpu_rope(n_heads, head_dim, x, cos_t, sin_t);
        return;
    }
    for (int hh = 0; hh < n_heads; hh++) {
        float *a = x + (int64_t)hh * head_dim, *b = a + h;
        int j = 0;
        for (; j + 8 <= h; j += 8) {
            __m256 x1 = _mm256_loadu_ps(a + j), x2 = _mm256_loadu_ps(b + j);
            __m256 c = _mm256_loadu_ps(cos_t + j), s = _mm256_loadu_ps(sin_t + j);
            _mm256_storeu_ps(a + j, _mm256_fmsub_ps(x1, c, _mm256_mul_ps(x2, s)));
            _mm256_storeu_ps(b + j, _mm256_fmadd_ps(x2, c, _mm256_mul_ps(x1, s)));
        }
        for (; j < h; j += 4) {
            __m128 x1 = _mm_loadu_ps(a + j), x2 = _mm_loadu_ps(b + j);
            __m128 c = _mm_loadu_ps(cos_t + j), s = _mm_loadu_ps(sin_t + j);
            _mm_storeu_ps(a + j, _mm_fmsub_ps(x1, c, _mm_mul_ps(x2, s)));
            _mm_storeu_ps(b + j, _mm_fmadd_ps(x2, c, _mm_mul_ps(x1, s)));
        }
    }
}

AVX2 static void silu_mul_avx2(int n, const float *restrict g, const float *restrict u, float *restrict out)
{
    int i = 0;
    const __m256 one = _mm256_set1_ps(1.0f);
    for (; i + 8 <= n; i += 8) {
        __m256 gv = _mm256_loadu_ps(g + i);
        __m256 e = exp2_256(_mm256_mul_ps(gv, _mm256_set1_ps(-1.44269504088896341f)));   /* e^-g */
        __m256 s = _mm256_div_ps(gv, _mm256_add_ps(one, e));
        _mm256_storeu_ps(out + i, _mm256_mul_ps(s, _mm256_loadu_ps(u + i)));
    }
    for (; i < n; i++)
        out[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

/* In-register 8x8 transpose: r[j] holds key j's 8 dims on entry and dim j
 * of keys 0..7 on return. */
AVX2 static inline void transpose8(__m256 r[8])
{
    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    r[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
    r[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
    r[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
    r[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
    r[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
    r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
    r[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
    r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

/* PV for query heads [h0, h0 + nc), nc <= 8, of a head_dim-8 tile: each
 * head's output row (one register) is rescaled by corr[h] and then gets
 * p[h][j] * V[j] for every key j < nt, V of KV head kvh + c / G for head
 * h0 + c. Inlined with constant nc and G, so the accumulators stay in
 * registers and the heads of one group share one V load. */
AVX2 static inline __attribute__((always_inline)) void pv_hd8(int nc, int G, int h0, int kvh, int nt,
                                                               const float *v, int64_t stride,
                                                               const int32_t *sl, const float *p,
                                                               const float *corr, float *out)
{
    __m256 acc[8];
    const float *vb = v + kvh * 8;   /* KV head of query head h0 */
    const int v_bytes = (nc + G - 1) / G * 32;   /* V read per key */
#pragma GCC unroll 8
    for (int c = 0; c < nc; c++)
        acc[c] = _mm256_mul_ps(_mm256_loadu_ps(out + (h0 + c) * 8), _mm256_set1_ps(corr[h0 + c]));
    for (int j = 0; j < nt; j++) {
        const float *vr = vb + (int64_t)sl[j] * stride;
        if (j + PREFETCH_KEYS < nt) {
            const char *pf = (const char *)(vb + (int64_t)sl[j + PREFETCH_KEYS] * stride);
            _mm_prefetch(pf, _MM_HINT_T0);
            if (v_bytes > 64)
                _mm_prefetch(pf + 64, _MM_HINT_T0);
        }
#pragma GCC unroll 8
        for (int c = 0; c < nc; c++)
            acc[c] = _mm256_fmadd_ps(_mm256_set1_ps(p[(h0 + c) * CPU_ATTN_TILE + j]),
                                     _mm256_loadu_ps(vr + (c / G) * 8), acc[c]);
    }
#pragma GCC unroll 8
    for (int c = 0; c < nc; c++)
        _mm256_storeu_ps(out + (h0 + c) * 8, acc[c]);
}

/* attend for head_dim 8 (stories260K): per-key work is a handful of
 * instructions, so nothing is copied. Keys are read in place through the
 * slot table. Scores come 8 keys per register: the 8 K rows of a KV head
 * are transposed in registers and each query head of the group takes 8
 * FMAs. Softmax is two-pass within a tile (max, then exp and sum, 8 keys
 * per exp2_256); PV keeps up to 8 head outputs in registers over the tile. */
AVX2 static void attend_hd8_avx2(const CpuAttnArgs *a)
{
    const int NH = a->n_heads, G = a->n_heads / a->n_kv_heads;
    const int64_t vs = a->kv_stride;
    float *m = a->scratch, *l = m + NH, *s = l + NH;   /* s: (NH, TILE) scores, then probabilities */
    float *corr = s + (int64_t)NH * CPU_ATTN_TILE;     /* (NH) */
    float *qs = corr + NH;                             /* (NH, 8) q * scale * log2(e) */
    const __m256 iota = _mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7);
    /* scores in base-2 units: softmax is then 2^(s - max), see exp2_256 */
    const __m256 qscale = _mm256_set1_ps(a->scale * 1.44269504088896341f);
    for (int h = 0; h < NH; h++) {
        m[h] = -INFINITY;
        l[h] = 0;
        _mm256_storeu_ps(qs + h * 8, _mm256_mul_ps(_mm256_loadu_ps(a->q + h * 8), qscale));
    }
    memset(a->out, 0, sizeof(float) * 8 * (size_t)NH);
    for (int t0 = 0; t0 < a->n_keys; t0 += CPU_ATTN_TILE) {
        const int nt = a->n_keys - t0 < CPU_ATTN_TILE ? a->n_keys - t0 : CPU_ATTN_TILE;
        const int nr = (nt + 7) & ~7;
        const int32_t *sl = a->slots + t0;
        for (int j = 0; j < nr; j += 8) {
            const float *row[8];
#pragma GCC unroll 8
            for (int u = 0; u < 8; u++)   /* rows past the end repeat the last key; masked below */
                row[u] = a->k + (int64_t)sl[j + u < nt ? j + u : nt - 1] * vs;
            for (int g = 0; g < a->n_kv_heads; g++) {
                __m256 c[8];
#pragma GCC unroll 8
                for (int u = 0; u < 8; u++)
                    c[u] = _mm256_loadu_ps(row[u] + g * 8);
                transpose8(c);
                for (int h = g * G; h < (g + 1) * G; h++) {
                    const float *q = qs + h * 8;
                    __m256 s0 = _mm256_mul_ps(_mm256_set1_ps(q[0]), c[0]);
                    __m256 s1 = _mm256_mul_ps(_mm256_set1_ps(q[1]), c[1]);
                    s0 = _mm256_fmadd_ps(_mm256_set1_ps(q[2]), c[2], s0);
                    s1 = _mm256_fmadd_ps(_mm256_set1_ps(q[3]), c[3], s1);
                    s0 = _mm256_fmadd_ps(_mm256_set1_ps(q[4]), c[4], s0);
                    s1 = _mm256_fmadd_ps(_mm256_set1_ps(q[5]), c[5], s1);
                    s0 = _mm256_fmadd_ps(_mm256_set1_ps(q[6]), c[6], s0);
                    s1 = _mm256_fmadd_ps(_mm256_set1_ps(q[7]), c[7], s1);
                    _mm256_storeu_ps(s + h * CPU_ATTN_TILE + j, _mm256_add_ps(s0, s1));
                }
            }
        }
        const __m256 tail = _mm256_cmp_ps(iota, _mm256_set1_ps((float)(nt - (nr - 8))), _CMP_LT_OQ);
        for (int h = 0; h < NH; h++) {
            float *sh = s + h * CPU_ATTN_TILE;
            __m256 mv = _mm256_set1_ps(m[h]);
            for (int j = 0; j < nr - 8; j += 8)
                mv = _mm256_max_ps(mv, _mm256_loadu_ps(sh + j));
            mv = _mm256_max_ps(mv, _mm256_blendv_ps(_mm256_set1_ps(-INFINITY), _mm256_loadu_ps(sh + nr - 8), tail));
            __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(mv), _mm256_extractf128_ps(mv, 1));
            m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
            m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
            const float mx = _mm_cvtss_f32(m4);
            corr[h] = exp2f(m[h] - mx);
            m[h] = mx;
            __m256 mxv = _mm256_set1_ps(mx), sumv = _mm256_setzero_ps();
            for (int j = 0; j < nr; j += 8) {
                __m256 p = exp2_256(_mm256_sub_ps(_mm256_loadu_ps(sh + j), mxv));
                if (j == nr - 8)
                    p = _mm256_and_ps(p, tail);
                _mm256_storeu_ps(sh + j, p);
                sumv = _mm256_add_ps(sumv, p);
            }
            l[h] = l[h] * corr[h] + hsum1(sumv);
        }
        int h0 = 0;
        if (G == 1 || G == 2 || G == 4 || G == 8)   /* chunks of 8 heads hold whole groups */
            for (; h0 + 8 <= NH; h0 += 8)
                switch (G) {
                case 1: pv_hd8(8, 1, h0, h0, nt, a->v, vs, sl, s, corr, a->out); break;
                case 2: pv_hd8(8, 2, h0, h0 / 2, nt, a->v, vs, sl, s, corr, a->out); break;
                case 4: pv_hd8(8, 4, h0, h0 / 4, nt, a->v, vs, sl, s, corr, a->out); break;
                default: pv_hd8(8, 8, h0, h0 / 8, nt, a->v, vs, sl, s, corr, a->out); break;
                }
        for (; h0 < NH; h0++)   /* other shapes: one head at a time */
            pv_hd8(1, 1, h0, h0 / G, nt, a->v, vs, sl, s, corr, a->out);
    }
    for (int h = 0; h < NH; h++) {
        __m256 inv = _mm256_set1_ps(1.0f / l[h]);
        float *o = a->out + h * 8;
        _mm256_storeu_ps(o, _mm256_mul_ps(_mm256_loadu_ps(o), inv));
    }
}

/* Scores of 8 consecutive rows of a gathered K tile for one head:
 * dot(q, k_j) * scale, j < 8, rows `stride` floats apart. */
AVX2 static inline __m256 scores8(int hd, const float *q, const float *kb, int64_t stride, __m256 scale)
{
    __m256 a[8];
    if (hd == 8) {   /* the common tiny-head case: one product per key, no spills */
        __m256 qv = _mm256_loadu_ps(q);
        for (int j = 0; j < 8; j++)
            a[j] = _mm256_mul_ps(qv, _mm256_loadu_ps(kb + j * stride));
    } else {
        for (int j = 0; j < 8; j++) {
            const float *k = kb + j * stride;
            __m256 acc = _mm256_mul_ps(_mm256_loadu_ps(q), _mm256_loadu_ps(k));
            for (int d = 8; d < hd; d += 8)
                acc = _mm256_fmadd_ps(_mm256_loadu_ps(q + d), _mm256_loadu_ps(k + d), acc);
            a[j] = acc;
        }
    }
    __m256 h0 = _mm256_hadd_ps(_mm256_hadd_ps(a[0], a[1]), _mm256_hadd_ps(a[2], a[3]));
    __m256 h1 = _mm256_hadd_ps(_mm256_hadd_ps(a[4], a[5]), _mm256_hadd_ps(a[6], a[7]));
    __m256 lo = _mm256_permute2f128_ps(h0, h1, 0x20), hi = _mm256_permute2f128_ps(h0, h1, 0x31);
    return _mm256_mul_ps(_mm256_add_ps(lo, hi), scale);
}

/* Same algorithm as attend_generic, for head_dim a multiple of 8. Each tile's
 * K and V rows (scattered over the pool by the slot table) are first copied
 * into contiguous buffers, prefetching ahead, and zero-padded to a multiple
 * of 8 rows; all heads then work on L1-resident, regularly strided data. */
AVX2 static void attend_avx2(const CpuAttnArgs *a)
{
    const int NH = a->n_heads, hd = a->head_dim, G = a->n_heads / a->n_kv_heads;
    if (hd == 8) {
        attend_hd8_avx2(a);
        return;
    }
    if (hd % 8 != 0) {
        attend_generic(a);
        return;
    }
    const int64_t R = (int64_t)a->n_kv_heads * hd, vs = a->kv_stride;   /* row floats, slot stride */
    float *m = a->scratch, *l = m + NH, *s = l + NH;
    float *kt = s + (int64_t)NH * CPU_ATTN_TILE, *vt = kt + CPU_ATTN_TILE * R;
    const __m256 scale = _mm256_set1_ps(a->scale);
    const __m256 iota = _mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7);
    for (int h = 0; h < NH; h++) {
        m[h] = -INFINITY;
        l[h] = 0;
        memset(a->out + (int64_t)h * hd, 0, sizeof(float) * (size_t)hd);
    }
    for (int t0 = 0; t0 < a->n_keys; t0 += CPU_ATTN_TILE) {
        const int nt = a->n_keys - t0 < CPU_ATTN_TILE ? a->n_keys - t0 : CPU_ATTN_TILE;
        const int nr = (nt + 7) & ~7;
        const int32_t *sl = a->slots + t0;
        for (int j = 0; j < nt; j++) {
            if (j + PREFETCH_KEYS < nt) {
                const char *kr = (const char *)(a->k + (int64_t)sl[j + PREFETCH_KEYS] * vs);
                const char *vr = (const char *)(a->v + (int64_t)sl[j + PREFETCH_KEYS] * vs);
                for (int64_t off = 0; off < R * 4; off += 64) {
                    _mm_prefetch(kr + off, _MM_HINT_T0);
                    _mm_prefetch(vr + off, _MM_HINT_T0);
                }
            }
            const float *ks = a->k + (int64_t)sl[j] * vs, *vsrc = a->v + (int64_t)sl[j] * vs;
            float *kd = kt + j * R, *vd = vt + j * R;
            for (int64_t d = 0; d < R; d += 8) {
                _mm256_storeu_ps(kd + d, _mm256_loadu_ps(ks + d));
                _mm256_storeu_ps(vd + d, _mm256_loadu_ps(vsrc + d));
            }
        }
        memset(kt + nt * R, 0, sizeof(float) * (size_t)((nr - nt) * R));
        memset(vt + nt * R, 0, sizeof(float) * (size_t)((nr - nt) * R));
        for (int j = 0; j < nr; j += 8)
            for (int h = 0; h < NH; h++)
                _mm256_storeu_ps(s + h * CPU_ATTN_TILE + j,
                                 scores8(hd, a->q + (int64_t)h * hd, kt + j * R + (h / G) * hd, R, scale));
        const __m256 tail = _mm256_cmp_ps(iota, _mm256_set1_ps((float)(nt - (nr - 8))), _CMP_LT_OQ);
        for (int h = 0; h < NH; h++) {
            float *sh = s + h * CPU_ATTN_TILE, *o = a->out + (int64_t)h * hd;
            /* padded rows score 0: keep them out of the max and the sum */
            __m256 mv = _mm256_set1_ps(m[h]);
            for (int j = 0; j < nr - 8; j += 8)
                mv = _mm256_max_ps(mv, _mm256_loadu_ps(sh + j));
            mv = _mm256_max_ps(mv, _mm256_blendv_ps(_mm256_set1_ps(-INFINITY), _mm256_loadu_ps(sh + nr - 8), tail));
            __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(mv), _mm256_extractf128_ps(mv, 1));
            m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
            m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
            const float mx = _mm_cvtss_f32(m4), corr = expf(m[h] - mx);
            m[h] = mx;
            __m256 mxv = _mm256_set1_ps(mx), sumv = _mm256_setzero_ps();
            for (int j = 0; j < nr; j += 8) {
                __m256 p = exp256(_mm256_sub_ps(_mm256_loadu_ps(sh + j), mxv));
                if (j == nr - 8)
                    p = _mm256_and_ps(p, tail);
                _mm256_storeu_ps(sh + j, p);
                sumv = _mm256_add_ps(sumv, p);
            }
            l[h] = l[h] * corr + hsum1(sumv);
            /* four independent FMA chains: a single one is latency-bound */
            const __m256 cv = _mm256_set1_ps(corr);
            const float *vb = vt + (h / G) * hd;
            for (int d = 0; d < hd; d += 8) {
                __m256 acc0 = _mm256_mul_ps(_mm256_loadu_ps(o + d), cv), acc1 = _mm256_setzero_ps(),
                       acc2 = acc1, acc3 = acc1;
                for (int j = 0; j < nr; j += 4) {
                    const float *v = vb + j * R + d;
                    acc0 = _mm256_fmadd_ps(_mm256_set1_ps(sh[j]), _mm256_loadu_ps(v), acc0);
                    acc1 = _mm256_fmadd_ps(_mm256_set1_ps(sh[j + 1]), _mm256_loadu_ps(v + R), acc1);
                    acc2 = _mm256_fmadd_ps(_mm256_set1_ps(sh[j + 2]), _mm256_loadu_ps(v + 2 * R), acc2);
                    acc3 = _mm256_fmadd_ps(_mm256_set1_ps(sh[j + 3]), _mm256_loadu_ps(v + 3 * R), acc3);
                }
                _mm256_storeu_ps(o + d, _mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));
            }
        }
    }
    for (int h = 0; h < NH; h++) {
        __m256 inv = _mm256_set1_ps(1.0f / l[h]);
        float *o = a->out + (int64_t)h * hd;
        for (int d = 0; d < hd; d += 8)
            _mm256_storeu_ps(o + d, _mm256_mul_ps(_mm256_loadu_ps(o + d), inv));
    }
}

static const CpuKernels k_avx2 = {
    .name = "avx2",
    .matmul = matmul_avx2,
    .attend = attend_avx2,
    .silu_mul = silu_mul_avx2,
    .rmsnorm = rmsnorm_avx2,
    .rope = rope_avx2,
};

static bool have_avx2(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
#endif

const CpuKernels *cpu_kernels_get(const char *name)
{
#ifdef HAVE_X86
    if ((!name || !strcmp(name, "avx2")) && have_avx2())
        return &k_avx2;
#endif
    if (!name || !strcmp(name, "generic"))
        return &k_generic;
    return NULL;
}

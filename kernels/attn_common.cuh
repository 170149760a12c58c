/* attn_common.cuh -- the attention block body shared by attn_decode.cu and
 * attn_prefill.cu (included by both; not a separate op).
 *
 * A block owns R = nt * nh query rows: nt consecutive tokens of one sequence
 * times nh consecutive q heads of one kv group, and walks a key range of that
 * sequence in tiles of ATT_KT keys. Per tile: K and V rows are gathered from
 * the slot-indexed pool into shared memory (bf16, rows padded by one word so
 * the score loop's column reads hit distinct banks), R x KT scores are
 * computed one per thread, R threads do the online-softmax bookkeeping, and
 * the R x head_dim accumulators (shared memory, one owner thread per element)
 * are rescaled and updated. Everything is fp32 except the K/V tiles.
 * Row r = t * nh + g is token t0+t, head h0+g; it sees keys j <= positions[t0+t].
 */
#ifndef SGL_ATTN_COMMON_CUH
#define SGL_ATTN_COMMON_CUH

#include <cuda_bf16.h>
#include <math_constants.h>

#include "kernels/kernels.h"

#define ATT_KT 32          /* keys per shared-memory tile */
#define ATT_THREADS 128
#define ATT_MAX_ROW_ELEMS 8192 /* R * head_dim bound, keeps shared memory <= ~100 KB */

/* Shared memory bytes for R rows of head_dim. */
static __host__ __device__ size_t att_smem_bytes(int rows, int head_dim)
{
    return sizeof(float) * ((size_t)2 * rows * head_dim + (size_t)rows * ATT_KT + 3 * (size_t)rows) +
           sizeof(__nv_bfloat16) * 2 * (size_t)ATT_KT * (head_dim + 2);
}

/* Largest divisor of group that keeps nt*nh rows within the limits. */
static int att_heads_per_block(int group, int nt, int head_dim)
{
    int best = 1;
    for (int d = 1; d <= group; d++)
        if (group % d == 0 && nt * d <= 64 && nt * d * head_dim <= ATT_MAX_ROW_ELEMS) best = d;
    return best;
}

/* Runs the block over keys [k_lo, k_hi) and leaves per-row m, l and the
 * unnormalised accumulator in shared memory (pointers returned via the smem
 * layout: acc at sm, m at sm + 2*R*hd + R*KT, l right after). */
static __device__ void att_block(const SglAttnArgs a, int t0, int nt, int h0, int nh, int k_lo,
                                 int k_hi, float *sm)
{
    const int hd = a.head_dim, R = nt * nh, kvd = a.n_kv_heads * hd;
    const int kh = h0 / (a.n_heads / a.n_kv_heads);
    const int pitch = hd + 2; /* bf16 elements per K/V tile row */
    float *acc = sm;                    /* (R, hd) */
    float *qs = acc + R * hd;           /* (R, hd) */
    float *S = qs + R * hd;             /* (R, KT) */
    float *mrow = S + R * ATT_KT;       /* (R) running max */
    float *lrow = mrow + R;             /* (R) running sum */
    float *crow = lrow + R;             /* (R) rescale factor of this tile */
    __nv_bfloat16 *Ks = (__nv_bfloat16 *)(crow + R); /* (KT, pitch) */
    __nv_bfloat16 *Vs = Ks + ATT_KT * pitch;          /* (KT, pitch) */
    const int32_t *slots = a.slots + a.slot_base[t0];

    for (int e = threadIdx.x; e < R * hd; e += blockDim.x) {
        int r = e / hd, d = e - r * hd;
        int t = r / nh, g = r - t * nh;
        qs[e] = a.q[(int64_t)(t0 + t) * a.q_stride + (h0 + g) * hd + d] * a.scale;
        acc[e] = 0.0f;
    }
    for (int r = threadIdx.x; r < R; r += blockDim.x) {
        mrow[r] = -CUDART_INF_F;
        lrow[r] = 0.0f;
    }
    int last = a.positions[t0 + nt - 1] + 1; /* keys any row can see */
    if (k_hi > last) k_hi = last;
    for (int kt = k_lo; kt < k_hi; kt += ATT_KT) {
        int nk = k_hi - kt < ATT_KT ? k_hi - kt : ATT_KT;
        __syncthreads(); /* previous tile fully consumed */
        const int hw = hd / 2; /* bf16 pairs per row */
        for (int e = threadIdx.x; e < nk * hw; e += blockDim.x) {
            int j = e / hw, w = e - j * hw;
            int64_t base = (int64_t)slots[kt + j] * kvd + (int64_t)kh * hd;
            ((__nv_bfloat162 *)(Ks + j * pitch))[w] = ((const __nv_bfloat162 *)(a.k_pool + base))[w];
            ((__nv_bfloat162 *)(Vs + j * pitch))[w] = ((const __nv_bfloat162 *)(a.v_pool + base))[w];
        }
        __syncthreads();
        for (int p = threadIdx.x; p < R * ATT_KT; p += blockDim.x) {
            int r = p / ATT_KT, j = p - r * ATT_KT;
            int pos = a.positions[t0 + r / nh];
            float s = -CUDART_INF_F;
            if (j < nk && kt + j <= pos) {
                const float *qr = qs + r * hd;
                const __nv_bfloat16 *kr = Ks + j * pitch;
                s = 0.0f;
                for (int d = 0; d < hd; d++) s += qr[d] * __bfloat162float(kr[d]);
            }
            S[p] = s;
        }
        __syncthreads();
        for (int r = threadIdx.x; r < R; r += blockDim.x) {
            float *sr = S + r * ATT_KT;
            float mt = mrow[r];
            for (int j = 0; j < nk; j++) mt = fmaxf(mt, sr[j]);
            float c = 1.0f, sum = 0.0f;
            if (mt == -CUDART_INF_F) { /* row sees no key in this tile yet */
                for (int j = 0; j < ATT_KT; j++) sr[j] = 0.0f;
            } else {
                c = __expf(mrow[r] - mt);
                for (int j = 0; j < ATT_KT; j++) {
                    float pj = j < nk ? __expf(sr[j] - mt) : 0.0f;
                    sr[j] = pj;
                    sum += pj;
                }
                mrow[r] = mt;
            }
            lrow[r] = lrow[r] * c + sum;
            crow[r] = c;
        }
        __syncthreads();
        for (int e = threadIdx.x; e < R * hd; e += blockDim.x) {
            int r = e / hd, d = e - r * hd;
            const float *pr = S + r * ATT_KT;
            float v = acc[e] * crow[r];
            for (int j = 0; j < nk; j++) v += pr[j] * __bfloat162float(Vs[j * pitch + d]);
            acc[e] = v;
        }
    }
    __syncthreads();
}

#endif

/* attn_setup.h -- a random attention scenario for test_attn_decode/prefill:
 * sequences with cached prefixes and new tokens over a shuffled slot pool,
 * where the second sequence shares the first one's prefix slots (as the radix
 * cache makes them), random bf16 K/V, random fp32 q with a padded row stride. */
#ifndef SGL_ATTN_SETUP_H
#define SGL_ATTN_SETUP_H

#include "tests/kernels/ktest.h"

typedef struct {
    int n_seqs, n, nh, nkv, hd, q_stride, max_len;
    int64_t n_slots;
    float *q;                       /* (n, q_stride) */
    uint16_t *k, *v;                /* (n_slots, nkv*hd) */
    int32_t *slots, *slot_base, *positions, *seq_of;
    int32_t n_slot_entries;
    int32_t *seq_start, *seq_new;   /* per sequence: first token index, new tokens */
    /* device copies */
    float *q_d;
    uint16_t *k_d, *v_d, *out_d;
    int32_t *slots_d, *slot_base_d, *positions_d;
} AttnCase;

/* kv_len[s] keys, n_new[s] of them new (the last ones). */
static void attn_case_init(AttnCase *c, int n_seqs, const int *kv_len, const int *n_new, int nh,
                           int nkv, int hd)
{
    memset(c, 0, sizeof *c);
    c->n_seqs = n_seqs; c->nh = nh; c->nkv = nkv; c->hd = hd;
    c->q_stride = (nh + 2 * nkv) * hd + 8;
    int total_kv = 0;
    for (int s = 0; s < n_seqs; s++) {
        c->n += n_new[s];
        total_kv += kv_len[s];
        if (kv_len[s] > c->max_len) c->max_len = kv_len[s];
    }
    c->n_slots = total_kv + 7;
    int kvd = nkv * hd;
    c->q = kt_xmalloc((size_t)c->n * c->q_stride * 4);
    c->k = kt_xmalloc((size_t)c->n_slots * kvd * 2);
    c->v = kt_xmalloc((size_t)c->n_slots * kvd * 2);
    c->slots = kt_xmalloc((size_t)total_kv * 4);
    c->slot_base = kt_xmalloc((size_t)c->n * 4);
    c->positions = kt_xmalloc((size_t)c->n * 4);
    c->seq_of = kt_xmalloc((size_t)c->n * 4);
    c->seq_start = kt_xmalloc((size_t)n_seqs * 4);
    c->seq_new = kt_xmalloc((size_t)n_seqs * 4);
    kt_fill_f32(c->q, (size_t)c->n * c->q_stride, -1, 1);
    kt_fill_bf16(c->k, (size_t)c->n_slots * kvd, -1, 1);
    kt_fill_bf16(c->v, (size_t)c->n_slots * kvd, -1, 1);
    int32_t *perm = kt_xmalloc((size_t)c->n_slots * 4);
    for (int64_t i = 0; i < c->n_slots; i++) perm[i] = (int32_t)i;
    for (int64_t i = c->n_slots - 1; i > 0; i--) {
        int64_t j = kt_rand() % (uint32_t)(i + 1);
        int32_t t = perm[i]; perm[i] = perm[j]; perm[j] = t;
    }
    int off = 0, tok = 0;
    for (int s = 0; s < n_seqs; s++) {
        int prefix = kv_len[s] - n_new[s];
        for (int j = 0; j < kv_len[s]; j++) {
            /* sequence 1 shares sequence 0's cached prefix slots */
            int shared = s == 1 && j < prefix && j < kv_len[0] - n_new[0];
            c->slots[off + j] = shared ? c->slots[j] : perm[off + j];
        }
        c->seq_start[s] = tok;
        c->seq_new[s] = n_new[s];
        for (int t = 0; t < n_new[s]; t++, tok++) {
            c->slot_base[tok] = off;
            c->positions[tok] = prefix + t;
            c->seq_of[tok] = s;
        }
        off += kv_len[s];
    }
    c->n_slot_entries = off;
    free(perm);
    c->q_d = kt_dup(c->q, (size_t)c->n * c->q_stride * 4);
    c->k_d = kt_dup(c->k, (size_t)c->n_slots * kvd * 2);
    c->v_d = kt_dup(c->v, (size_t)c->n_slots * kvd * 2);
    c->slots_d = kt_dup(c->slots, (size_t)off * 4);
    c->slot_base_d = kt_dup(c->slot_base, (size_t)c->n * 4);
    c->positions_d = kt_dup(c->positions, (size_t)c->n * 4);
    c->out_d = kt_alloc((size_t)c->n * nh * hd * 2);
}

static SglAttnArgs attn_case_args(const AttnCase *c)
{
    SglAttnArgs a = {c->q_d, c->q_stride, c->k_d, c->v_d, c->slots_d, c->slot_base_d,
                     c->positions_d, c->n, c->nh, c->nkv, c->hd, 1.0f / sqrtf((float)c->hd),
                     c->out_d};
    return a;
}

/* Compares the device output with the double reference, |err| <= atol +
 * |ref| / 128. Output is bf16: one rounding of a value of magnitude <= 1 is
 * <= 2^-9 absolute (rtol 2^-7 covers it), plus fp32 accumulation and __expf
 * (2 ulp) error: callers pass atol 1e-3 for the SIMT kernels. */
static size_t attn_case_check(const AttnCase *c, const char *what, float atol)
{
    size_t osz = (size_t)c->n * c->nh * c->hd;
    float *ref = kt_xmalloc(osz * 4), *got = kt_xmalloc(osz * 4);
    uint16_t *o16 = kt_xmalloc(osz * 2);
    sgl_ref_attn_decode(c->q, c->q_stride, c->k, c->v, c->slots, c->slot_base, c->positions, c->n,
                        c->nh, c->nkv, c->hd, 1.0f / sqrtf((float)c->hd), ref);
    kt_down(o16, c->out_d, osz * 2);
    kt_bf16_to_f32(o16, got, osz);
    size_t bad = kt_cmp(what, got, ref, osz, atol, 1.0f / 128);
    if (!kt_guard_ok(c->out_d, osz * 2)) bad++;
    free(ref); free(got); free(o16);
    return bad;
}

static void attn_case_free(AttnCase *c)
{
    kt_free(c->q_d); kt_free(c->k_d); kt_free(c->v_d); kt_free(c->slots_d);
    kt_free(c->slot_base_d); kt_free(c->positions_d); kt_free(c->out_d);
    free(c->q); free(c->k); free(c->v); free(c->slots); free(c->slot_base);
    free(c->positions); free(c->seq_of); free(c->seq_start); free(c->seq_new);
}

#endif

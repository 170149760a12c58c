/* test_rope_kv_store.c -- sgl_k_rope_kv_store vs sgl_ref_rope_kv_store (the
 * rope and kv_store references composed): default and llama3 frequencies,
 * with and without the qkv bias, positions up to 131071, slots a random
 * permutation with some rows at -1 / n_slots (skipped). Checks: the q
 * columns (fp32, rope's tolerance: reference double cos/sin vs sincosf,
 * atol 4e-6, rtol 1e-5), qkv's k/v columns unchanged (exact), the pools
 * (bf16 of the same values: a rotated k may round to the neighbouring bf16,
 * so k within one bf16 ulp, rtol 8e-3; v is bias + value, exact), and pool
 * rows the reference does not write still canary. Before the GPU part the
 * reference's pool rows are checked on the CPU against sgl_ref_rope +
 * sgl_ref_kv_store on a copy (the unfused path, exact). */
#include "tests/kernels/ktest.h"

typedef struct {
    float *qkv; int stride, n, nq, nkv, hd; const float *bias; const int32_t *pos; const float *inv;
    const int32_t *slot; int64_t ns; uint16_t *k, *v;
} Ctx;
static void run(void *p)
{
    Ctx *c = p;
    sgl_k_rope_kv_store(c->qkv, c->stride, c->n, c->nq, c->nkv, c->hd, c->bias, c->pos, c->inv, c->slot, c->ns,
                        c->k, c->v, 0);
}
static void run_unfused(void *p)
{
    Ctx *c = p;
    sgl_k_rope(c->qkv, c->stride, c->n, c->nq, c->nkv, c->hd, c->bias, c->pos, c->inv, 0);
    sgl_k_kv_store(c->qkv, c->stride, c->n, c->nq * c->hd, (c->nq + c->nkv) * c->hd, c->nkv * c->hd, c->slot,
                   c->ns, c->k, c->v, 0);
}

static int cpu_check(void)
{
    int n = 5, nq = 4, nkv = 2, hd = 16, width = (nq + 2 * nkv) * hd, kvd = nkv * hd;
    int64_t ns = 8;
    float *qkv = kt_xmalloc((size_t)n * width * 4), *cp = kt_xmalloc((size_t)n * width * 4);
    float bias[128], inv[8];
    int32_t pos[5] = {0, 7, 100, 3000, 131071}, slot[5] = {3, -1, 0, 7, 8};
    uint16_t k1[8 * 32], v1[8 * 32], k2[8 * 32], v2[8 * 32];
    kt_fill_f32(qkv, (size_t)n * width, -2, 2);
    kt_fill_f32(bias, (size_t)width, -0.5f, 0.5f);
    memcpy(cp, qkv, (size_t)n * width * 4);
    sgl_rope_inv_freq(hd, 10000.0, 0, 0, 0, 0, inv);
    memset(k1, 0, sizeof k1); memset(v1, 0, sizeof v1); memset(k2, 0, sizeof k2); memset(v2, 0, sizeof v2);
    sgl_ref_rope_kv_store(qkv, width, n, nq, nkv, hd, bias, pos, inv, slot, ns, k1, v1);
    sgl_ref_rope(cp, width, n, nq, nkv, hd, bias, pos, inv);
    sgl_ref_kv_store(cp, width, n, nq * hd, (nq + nkv) * hd, kvd, slot, ns, k2, v2);
    int bad = memcmp(k1, k2, sizeof k1) || memcmp(v1, v2, sizeof v1);
    for (int i = 0; i < n; i++)
        bad |= memcmp(qkv + (size_t)i * width, cp + (size_t)i * width, (size_t)nq * hd * 4) != 0;
    free(qkv); free(cp);
    return bad;
}

int main(int argc, char **argv)
{
    int cpu_bad = cpu_check();
    printf("test_rope_kv_store: reference vs rope + kv_store references on the CPU: %s\n", cpu_bad ? "FAIL" : "ok");
    if (cpu_bad) return 1;
    kt_init(argc, argv, "test_rope_kv_store");
    sgl_k_set_pdl(1);
    /* n tokens, n_q, n_kv, head_dim, extra stride, bias, llama3, n_slots */
    static const int shapes[][8] = {{1, 8, 4, 8, 0, 0, 0, 16},      {5, 4, 2, 64, 0, 1, 0, 64},
                                    {33, 32, 8, 128, 0, 0, 1, 100}, {17, 14, 2, 64, 16, 1, 0, 40},
                                    {3, 12, 12, 256, 0, 0, 0, 9},   {129, 8, 1, 96, 0, 1, 1, 300},
                                    {64, 32, 8, 128, 0, 0, 1, 4096}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int n = shapes[s][0], nq = shapes[s][1], nkv = shapes[s][2], hd = shapes[s][3];
        int width = (nq + 2 * nkv) * hd, stride = width + shapes[s][4], kvd = nkv * hd;
        int64_t ns = shapes[s][7];
        size_t sz = (size_t)n * stride, psz = (size_t)ns * kvd;
        float *qkv = kt_xmalloc(sz * 4), *ref = kt_xmalloc(sz * 4), *got = kt_xmalloc(sz * 4);
        float *bias = shapes[s][5] ? kt_xmalloc((size_t)width * 4) : NULL, inv[SGL_K_MAX_HEAD_DIM / 2];
        int32_t *pos = kt_xmalloc((size_t)n * 4), *slot = kt_xmalloc((size_t)n * 4), *perm = kt_xmalloc((size_t)ns * 4);
        uint16_t *kref = kt_xmalloc(psz * 2), *vref = kt_xmalloc(psz * 2), *kgot = kt_xmalloc(psz * 2),
                 *vgot = kt_xmalloc(psz * 2);
        float *kf = kt_xmalloc(psz * 4), *kfr = kt_xmalloc(psz * 4);
        kt_fill_f32(qkv, sz, -2, 2);
        if (bias) kt_fill_f32(bias, (size_t)width, -0.5f, 0.5f);
        for (int i = 0; i < n; i++) pos[i] = i == n - 1 ? 131071 : (int32_t)(kt_rand() % 9000);
        if (shapes[s][6])
            sgl_rope_inv_freq(hd, 500000.0, 8.0, 1.0, 4.0, 8192, inv);
        else
            sgl_rope_inv_freq(hd, 10000.0, 0, 0, 0, 0, inv);
        for (int64_t i = 0; i < ns; i++) perm[i] = (int32_t)i;
        for (int64_t i = ns - 1; i > 0; i--) {
            int64_t j = kt_rand() % (uint32_t)(i + 1);
            int32_t t = perm[i]; perm[i] = perm[j]; perm[j] = t;
        }
        for (int i = 0; i < n; i++) slot[i] = i < ns ? perm[i] : -1; /* unique: order-free */
        if (n > 3) { slot[1] = -1; slot[2] = (int32_t)ns; }
        memcpy(ref, qkv, sz * 4);
        memset(kref, KT_CANARY, psz * 2);
        memset(vref, KT_CANARY, psz * 2);
        sgl_ref_rope_kv_store(ref, stride, n, nq, nkv, hd, bias, pos, inv, slot, ns, kref, vref);
        float *q_d = kt_dup(qkv, sz * 4), *b_d = bias ? kt_dup(bias, (size_t)width * 4) : NULL;
        float *inv_d = kt_dup(inv, (size_t)hd / 2 * 4);
        int32_t *p_d = kt_dup(pos, (size_t)n * 4), *s_d = kt_dup(slot, (size_t)n * 4);
        uint16_t *k_d = kt_alloc(psz * 2), *v_d = kt_alloc(psz * 2);
        KT_CHECK(sgl_k_rope_kv_store(q_d, stride, n, nq, nkv, hd, b_d, p_d, inv_d, s_d, ns, k_d, v_d, 0) == 0,
                 "launch");
        KT_CUDA(cudaDeviceSynchronize());
        kt_down(got, q_d, sz * 4);
        kt_down(kgot, k_d, psz * 2);
        kt_down(vgot, v_d, psz * 2);
        KT_CHECK(kt_cmp("qkv", got, ref, sz, 4e-6f, 1e-5f) == 0, "rope_kv_store q n=%d nq=%d nkv=%d hd=%d", n, nq,
                 nkv, hd);
        size_t kbad = 0;
        for (size_t e = 0; e < psz; e++) {
            int unwritten = kref[e] == (KT_CANARY << 8 | KT_CANARY);
            if (unwritten ? kgot[e] != kref[e] : 0) kbad++;
            kf[e] = sgl_bf16_to_f32(kgot[e]);
            kfr[e] = sgl_bf16_to_f32(kref[e]);
        }
        KT_CHECK(kbad == 0 && kt_cmp("k_pool", kf, kfr, psz, 1e-6f, 8e-3f) == 0, "k pool n=%d hd=%d", n, hd);
        KT_CHECK(!memcmp(vgot, vref, psz * 2), "v pool differs n=%d hd=%d", n, hd);
        KT_CHECK(kt_guard_ok(k_d, psz * 2) && kt_guard_ok(v_d, psz * 2) && kt_guard_ok(q_d, sz * 4), "guard");
        if (kt_bench_mode) {
            Ctx c = {q_d, stride, n, nq, nkv, hd, b_d, p_d, inv_d, s_d, ns, k_d, v_d};
            double us = kt_bench(run, &c, 20), us_u = kt_bench(run_unfused, &c, 20);
            printf("bench rope_kv_store n=%d nq=%d nkv=%d hd=%d: %.2f us; rope + kv_store %.2f us\n", n, nq, nkv, hd,
                   us, us_u);
        }
        kt_free(q_d); kt_free(b_d); kt_free(inv_d); kt_free(p_d); kt_free(s_d); kt_free(k_d); kt_free(v_d);
        free(qkv); free(ref); free(got); free(bias); free(pos); free(slot); free(perm);
        free(kref); free(vref); free(kgot); free(vgot); free(kf); free(kfr);
    }
    KT_CHECK(sgl_k_rope_kv_store(NULL, 10, 1, 1, 1, 8, NULL, NULL, NULL, NULL, 4, NULL, NULL, 0) == SGL_K_EINVAL,
             "stride too small rejected");
    KT_CHECK(sgl_k_rope_kv_store(NULL, 64, 1, 1, 1, 7, NULL, NULL, NULL, NULL, 4, NULL, NULL, 0) == SGL_K_EINVAL,
             "odd head_dim rejected");
    return kt_summary("test_rope_kv_store");
}

/* test_kv_store.c -- sgl_k_kv_store vs sgl_ref_kv_store, exact (both round the
 * same fp32 with round-to-nearest-even). Slots are a random permutation of the
 * pool; some rows carry -1 or n_slots (skipped). Every pool byte the reference
 * does not write must still be canary, which checks that nothing else is touched. */
#include "tests/kernels/ktest.h"

typedef struct { const float *qkv; int stride, n, kc, vc, kvd; const int32_t *slot; int64_t ns; uint16_t *k, *v; } Ctx;
static void run(void *p)
{
    Ctx *c = p;
    sgl_k_kv_store(c->qkv, c->stride, c->n, c->kc, c->vc, c->kvd, c->slot, c->ns, c->k, c->v, 0);
}

int main(int argc, char **argv)
{
    kt_init(argc, argv, "test_kv_store");
    /* n tokens, n_q, n_kv, head_dim, n_slots */
    static const int shapes[][5] = {{1, 8, 4, 8, 16}, {7, 8, 4, 8, 512}, {33, 32, 8, 128, 100},
                                    {65, 14, 2, 64, 1000}, {300, 4, 4, 64, 301}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int n = shapes[s][0], nq = shapes[s][1], nkv = shapes[s][2], hd = shapes[s][3];
        int64_t n_slots = shapes[s][4];
        int kvd = nkv * hd, stride = (nq + 2 * nkv) * hd;
        size_t qsz = (size_t)n * stride, psz = (size_t)n_slots * kvd;
        float *qkv = kt_xmalloc(qsz * 4);
        int32_t *slot = kt_xmalloc((size_t)n * 4), *perm = kt_xmalloc((size_t)n_slots * 4);
        uint16_t *kref = kt_xmalloc(psz * 2), *vref = kt_xmalloc(psz * 2);
        uint16_t *kgot = kt_xmalloc(psz * 2), *vgot = kt_xmalloc(psz * 2);
        kt_fill_f32(qkv, qsz, -4, 4);
        for (int64_t i = 0; i < n_slots; i++) perm[i] = (int32_t)i;
        for (int64_t i = n_slots - 1; i > 0; i--) {
            int64_t j = kt_rand() % (uint32_t)(i + 1);
            int32_t t = perm[i]; perm[i] = perm[j]; perm[j] = t;
        }
        for (int i = 0; i < n; i++) slot[i] = perm[i % n_slots];
        if (n > 3) { slot[1] = -1; slot[2] = (int32_t)n_slots; }
        memset(kref, KT_CANARY, psz * 2);
        memset(vref, KT_CANARY, psz * 2);
        /* a duplicate slot would make the result order-dependent: keep them unique */
        int uniq = n <= n_slots;
        if (!uniq) for (int i = (int)n_slots; i < n; i++) slot[i] = -1;
        sgl_ref_kv_store(qkv, stride, n, nq * hd, (nq + nkv) * hd, kvd, slot, n_slots, kref, vref);
        float *q_d = kt_dup(qkv, qsz * 4);
        int32_t *s_d = kt_dup(slot, (size_t)n * 4);
        uint16_t *k_d = kt_alloc(psz * 2), *v_d = kt_alloc(psz * 2);
        KT_CHECK(sgl_k_kv_store(q_d, stride, n, nq * hd, (nq + nkv) * hd, kvd, s_d, n_slots, k_d, v_d, 0) == 0,
                 "launch");
        KT_CUDA(cudaDeviceSynchronize());
        kt_down(kgot, k_d, psz * 2);
        kt_down(vgot, v_d, psz * 2);
        KT_CHECK(!memcmp(kgot, kref, psz * 2) && !memcmp(vgot, vref, psz * 2),
                 "kv_store n=%d nkv=%d hd=%d slots=%lld differs", n, nkv, hd, (long long)n_slots);
        KT_CHECK(kt_guard_ok(k_d, psz * 2) && kt_guard_ok(v_d, psz * 2), "guard");
        if (kt_bench_mode) {
            Ctx c = {q_d, stride, n, nq * hd, (nq + nkv) * hd, kvd, s_d, n_slots, k_d, v_d};
            double us = kt_bench(run, &c, 20);
            printf("bench kv_store n=%d nkv=%d hd=%d: %.2f us, %.1f GB/s\n", n, nkv, hd, us,
                   (double)n * kvd * 12 / us / 1e3);
        }
        kt_free(q_d); kt_free(s_d); kt_free(k_d); kt_free(v_d);
        free(qkv); free(slot); free(perm); free(kref); free(vref); free(kgot); free(vgot);
    }
    KT_CHECK(sgl_k_kv_store(NULL, 10, 1, 8, 0, 8, NULL, 4, NULL, NULL, 0) == SGL_K_EINVAL, "k_col past stride rejected");
    return kt_summary("test_kv_store");
}

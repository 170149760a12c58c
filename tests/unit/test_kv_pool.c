/* test_kv_pool.c -- the paged KV allocator: alloc order, all-or-nothing,
 * refcounts, and a randomized run against a plain refcount array. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "runtime/kv_pool.h"

static void check_pool(const KvPool *p)
{
    char why[256];
    bool ok = kvpool_check_integrity(p, why, sizeof why);
    if (!ok)
        fail_msg("kvpool integrity: %s", why);
}

static void test_new_rejects_bad_sizes(void **state)
{
    (void)state;
    assert_null(kvpool_new(0, 1));
    assert_null(kvpool_new(-3, 1));
    assert_null(kvpool_new(4, 0));
    assert_null(kvpool_new(1 << 20, 1 << 12)); /* 2^32 slots */
    KvPool *p = kvpool_new(5, 16);
    assert_non_null(p);
    assert_int_equal(kvpool_n_pages(p), 5);
    assert_int_equal(kvpool_page_size(p), 16);
    assert_int_equal(kvpool_n_free(p), 5);
    check_pool(p);
    kvpool_free(p);
    kvpool_free(NULL);
}

static void test_alloc_all_or_nothing(void **state)
{
    (void)state;
    KvPool *p = kvpool_new(8, 1);
    int32_t a[8], b[8];
    assert_int_equal(kvpool_alloc(p, 3, a), SGL_OK);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(a[i], i); /* fresh pools hand out 0, 1, 2, ... */
        assert_int_equal(kvpool_refcount(p, a[i]), 1);
    }
    assert_int_equal(kvpool_n_free(p), 5);
    memset(b, 0x55, sizeof b);
    assert_int_equal(kvpool_alloc(p, 6, b), SGL_E_NOSPACE);
    assert_int_equal(b[0], 0x55555555); /* nothing written */
    assert_int_equal(kvpool_n_free(p), 5);
    assert_int_equal(kvpool_alloc(p, -1, b), SGL_E_INVAL);
    assert_int_equal(kvpool_alloc(p, 0, b), SGL_OK);
    assert_int_equal(kvpool_alloc(p, 5, b), SGL_OK);
    assert_int_equal(kvpool_n_free(p), 0);
    assert_int_equal(kvpool_alloc(p, 1, b + 5), SGL_E_NOSPACE);
    check_pool(p);
    kvpool_unref(p, a, 3);
    kvpool_unref(p, b, 5);
    assert_int_equal(kvpool_n_free(p), 8);
    check_pool(p);
    kvpool_free(p);
}

static void test_refcounts(void **state)
{
    (void)state;
    KvPool *p = kvpool_new(4, 2);
    int32_t a[2];
    assert_int_equal(kvpool_alloc(p, 2, a), SGL_OK);
    kvpool_ref(p, a, 2);
    kvpool_ref(p, a, 1);
    assert_int_equal(kvpool_refcount(p, a[0]), 3);
    assert_int_equal(kvpool_refcount(p, a[1]), 2);
    assert_int_equal(kvpool_refcount(p, -1), 0);
    assert_int_equal(kvpool_refcount(p, 4), 0);
    kvpool_unref(p, a, 2);
    assert_int_equal(kvpool_n_free(p), 2);
    kvpool_unref(p, a, 2);
    assert_int_equal(kvpool_refcount(p, a[0]), 1);
    assert_int_equal(kvpool_refcount(p, a[1]), 0);
    assert_int_equal(kvpool_n_free(p), 3);
    check_pool(p);
    /* A freed page is handed out again (LIFO). */
    int32_t c;
    assert_int_equal(kvpool_alloc(p, 1, &c), SGL_OK);
    assert_int_equal(c, a[1]);
    kvpool_unref(p, &c, 1);
    kvpool_unref(p, a, 1);
    assert_int_equal(kvpool_n_free(p), 4);
    check_pool(p);
    kvpool_free(p);
}

/* Fixed-seed xorshift, so failures reproduce. */
static uint32_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return (uint32_t)(*s >> 16);
}

/* Random alloc / ref / unref against a plain refcount array; the pool's
 * counts, refcounts and integrity are checked after every operation, and
 * every page comes back at the end. */
static void test_random_against_model(void **state)
{
    (void)state;
    enum { N_PAGES = 97, N_OPS = 20000 };
    uint64_t seed = 0x9E3779B97F4A7C15ull;
    KvPool *p = kvpool_new(N_PAGES, 4);
    int32_t model[N_PAGES] = {0};
    int32_t held[N_PAGES * 8 + 16]; /* one entry per reference the test owns */
    int32_t n_held = 0;
    int32_t buf[N_PAGES];
    for (int op = 0; op < N_OPS; op++) {
        int32_t model_free = 0;
        for (int i = 0; i < N_PAGES; i++)
            model_free += model[i] == 0;
        uint32_t r = rnd(&seed) % 10;
        if (r < 4) {
            int32_t n = (int32_t)(rnd(&seed) % 12);
            SglStatus st = kvpool_alloc(p, n, buf);
            if (n > model_free) {
                assert_int_equal(st, SGL_E_NOSPACE);
            } else {
                assert_int_equal(st, SGL_OK);
                for (int i = 0; i < n; i++) {
                    assert_int_equal(model[buf[i]], 0); /* really was free */
                    model[buf[i]] = 1;
                    held[n_held++] = buf[i];
                }
            }
        } else if (r < 6 && n_held > 0 && n_held < N_PAGES * 8 - 1) {
            int32_t id = held[rnd(&seed) % (uint32_t)n_held];
            kvpool_ref(p, &id, 1);
            model[id]++;
            held[n_held++] = id;
        } else if (n_held > 0) {
            int32_t k = (int32_t)(rnd(&seed) % (uint32_t)n_held);
            int32_t id = held[k];
            held[k] = held[--n_held];
            kvpool_unref(p, &id, 1);
            model[id]--;
        }
        model_free = 0;
        for (int i = 0; i < N_PAGES; i++) {
            assert_int_equal(kvpool_refcount(p, i), model[i]);
            model_free += model[i] == 0;
        }
        assert_int_equal(kvpool_n_free(p), model_free);
        check_pool(p);
    }
    kvpool_unref(p, held, n_held);
    assert_int_equal(kvpool_n_free(p), N_PAGES);
    check_pool(p);
    kvpool_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_rejects_bad_sizes),
        cmocka_unit_test(test_alloc_all_or_nothing),
        cmocka_unit_test(test_refcounts),
        cmocka_unit_test(test_random_against_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

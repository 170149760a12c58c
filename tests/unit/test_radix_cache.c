/* test_radix_cache.c -- the radix prefix cache, mirroring SGLang's radix cache
 * unit tests (partial match, split, insert return, lock accounting, eviction
 * order, page alignment, namespaces, disabled cache, reset), plus a randomized
 * run against a naive page-list model of the cache and a throughput bench:
 *   SGL_BENCH_RADIX=1 build-rdx/tests/test_radix_cache
 * Every test ends with radix_check_integrity + kvpool_check_integrity and,
 * where it owns nothing any more, with a fully free pool.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "runtime/radix_cache.h"

typedef struct {
    KvPool *pool;
    RadixCache *c;
    int32_t P;
} Fix;

static Fix fix_new(int32_t n_pages, int32_t page_size, bool disabled)
{
    Fix f;
    f.pool = kvpool_new(n_pages, page_size);
    assert_non_null(f.pool);
    f.c = radix_new(f.pool, disabled);
    assert_non_null(f.c);
    f.P = page_size;
    return f;
}

static void check(const Fix *f)
{
    char why[256];
    if (!radix_check_integrity(f->c, why, sizeof why)) {
        radix_dump(f->c, stderr);
        fail_msg("radix integrity: %s", why);
    }
    if (!kvpool_check_integrity(f->pool, why, sizeof why))
        fail_msg("kvpool integrity: %s", why);
}

/* Frees the cache and checks that every page came back to the pool. */
static void fix_free(Fix *f)
{
    check(f);
    radix_free(f->c);
    assert_int_equal(kvpool_n_free(f->pool), kvpool_n_pages(f->pool));
    kvpool_free(f->pool);
}

/* What a finished request does: allocate pages for all n tokens (the partial
 * last page included), insert, drop the duplicates and the partial page.
 * Pages of the inserted key go to out (may be NULL). Returns insert's value. */
static int32_t put(Fix *f, int32_t ns, const int32_t *key, int32_t n, int32_t *out,
                   RadixNode **last)
{
    int32_t pages[256];
    int32_t n_pages = (n + f->P - 1) / f->P, n_full = n / f->P;
    assert_true(n_pages <= 256);
    assert_int_equal(kvpool_alloc(f->pool, n_pages, pages), SGL_OK);
    int32_t r = radix_insert(f->c, ns, key, n, pages, last);
    assert_true(r >= 0 && r % f->P == 0 && r <= n_full * f->P);
    kvpool_unref(f->pool, pages, r / f->P);                    /* duplicates */
    kvpool_unref(f->pool, pages + n_full, n_pages - n_full);   /* partial page */
    if (out)
        memcpy(out, pages, (size_t)n_pages * sizeof *pages);
    check(f);
    return r;
}

static int32_t match(Fix *f, int32_t ns, const int32_t *key, int32_t n, int32_t *pages,
                     RadixNode **last)
{
    int32_t r = radix_match(f->c, ns, key, n, pages, last, true);
    check(f);
    return r;
}

#define KEY(...) ((const int32_t[]){__VA_ARGS__}), (int32_t)(sizeof((int32_t[]){__VA_ARGS__}) / 4)

static void test_insert_and_partial_match(void **state)
{
    (void)state;
    Fix f = fix_new(64, 1, false);
    int32_t ins[8], got[8];
    RadixNode *last;
    assert_int_equal(put(&f, 0, KEY(1, 2, 3, 4, 5), ins, &last), 0);
    assert_int_equal(radix_node_prefix_len(last), 5);
    assert_int_equal(radix_total_tokens(f.c), 5);
    assert_int_equal(radix_node_count(f.c), 1);
    assert_int_equal(match(&f, 0, KEY(1, 2, 3, 9), got, &last), 3);
    assert_memory_equal(got, ins, 3 * sizeof *got);
    assert_int_equal(radix_node_prefix_len(last), 3);
    assert_int_equal(match(&f, 0, KEY(1, 2, 3, 4, 5, 6), got, &last), 5);
    assert_memory_equal(got, ins, 5 * sizeof *got);
    assert_int_equal(radix_node_prefix_len(last), 5);
    assert_int_equal(match(&f, 0, KEY(7, 1, 2), got, &last), 0);
    assert_int_equal(radix_node_prefix_len(last), 0);
    assert_int_equal(radix_match(f.c, 0, NULL, 0, NULL, &last, false), 0);
    assert_int_equal(radix_node_prefix_len(last), 0);
    /* The tree holds exactly one reference per stored page. */
    for (int i = 0; i < 5; i++)
        assert_int_equal(kvpool_refcount(f.pool, ins[i]), 1);
    assert_int_equal(kvpool_n_free(f.pool), 64 - 5);
    fix_free(&f);
}

static void test_match_splits_edge(void **state)
{
    (void)state;
    Fix f = fix_new(64, 1, false);
    int32_t ins[8], got[8];
    RadixNode *last;
    put(&f, 0, KEY(1, 2, 3, 4, 5, 6, 7, 8), ins, NULL);
    assert_int_equal(radix_node_count(f.c), 1);
    /* peek never splits */
    assert_int_equal(radix_peek(f.c, 0, KEY(1, 2, 3), got), 3);
    assert_int_equal(radix_node_count(f.c), 1);
    /* a match ending inside the edge splits it there */
    assert_int_equal(match(&f, 0, KEY(1, 2, 3), got, &last), 3);
    assert_int_equal(radix_node_count(f.c), 2);
    assert_int_equal(radix_node_prefix_len(last), 3);
    assert_memory_equal(got, ins, 3 * sizeof *got);
    /* later matches see both halves */
    assert_int_equal(match(&f, 0, KEY(1, 2, 3, 4, 5, 6, 7, 8), got, &last), 8);
    assert_memory_equal(got, ins, 8 * sizeof *got);
    assert_int_equal(radix_node_prefix_len(last), 8);
    assert_int_equal(match(&f, 0, KEY(1, 2, 3, 4, 5, 0), got, &last), 5);
    assert_memory_equal(got, ins, 5 * sizeof *got);
    assert_int_equal(radix_node_count(f.c), 3);
    assert_int_equal(match(&f, 0, KEY(1, 2), got, &last), 2); /* splits the first half */
    assert_int_equal(radix_node_count(f.c), 4);
    assert_int_equal(match(&f, 0, KEY(1, 2, 3, 4, 5, 6, 7, 8), got, &last), 8);
    assert_memory_equal(got, ins, 8 * sizeof *got);
    assert_int_equal(radix_total_tokens(f.c), 8);
    assert_int_equal(radix_evictable_tokens(f.c), 8);
    fix_free(&f);
}

static void test_insert_returns_cached_prefix(void **state)
{
    (void)state;
    Fix f = fix_new(64, 1, false);
    int32_t a[8], b[8], c[8], got[8];
    RadixNode *last;
    assert_int_equal(put(&f, 0, KEY(1, 2, 3, 4), a, &last), 0);
    int32_t free0 = kvpool_n_free(f.pool);
    /* [1,2,3,4] already cached: put() drops its 4 duplicate pages, the tree
     * keeps its own */
    assert_int_equal(put(&f, 0, KEY(1, 2, 3, 4, 5, 6), b, &last), 4);
    assert_int_equal(radix_node_prefix_len(last), 6);
    assert_int_equal(kvpool_n_free(f.pool), free0 - 2);
    for (int i = 0; i < 4; i++)
        assert_int_equal(kvpool_refcount(f.pool, b[i]), 0); /* duplicates freed */
    assert_int_equal(match(&f, 0, KEY(1, 2, 3, 4, 5, 6), got, &last), 6);
    assert_memory_equal(got, a, 4 * sizeof *got);
    assert_memory_equal(got + 4, b + 4, 2 * sizeof *got);
    /* diverging inside an edge: split, new leaf */
    assert_int_equal(put(&f, 0, KEY(1, 2, 7), c, &last), 2);
    assert_int_equal(radix_node_prefix_len(last), 3);
    assert_int_equal(match(&f, 0, KEY(1, 2, 7), got, &last), 3);
    assert_int_equal(got[2], c[2]);
    /* a key that is a prefix of a cached one: all cached, node split out */
    int32_t nodes = radix_node_count(f.c);
    assert_int_equal(put(&f, 0, KEY(1, 2, 3), NULL, &last), 3);
    assert_int_equal(radix_node_prefix_len(last), 3);
    assert_int_equal(radix_node_count(f.c), nodes + 1);
    assert_int_equal(put(&f, 0, KEY(1, 2, 3, 4, 5, 6), NULL, NULL), 6);
    assert_int_equal(radix_total_tokens(f.c), 7);
    assert_int_equal(kvpool_n_free(f.pool), 64 - 7);
    fix_free(&f);
}

static void test_lock_accounting(void **state)
{
    (void)state;
    Fix f = fix_new(64, 1, false);
    RadixNode *l1, *l2, *mid;
    put(&f, 0, KEY(1, 2, 3, 4, 5, 6), NULL, &l1);
    put(&f, 0, KEY(1, 2, 3, 7, 8), NULL, &l2); /* [1 2 3] -> {[4 5 6], [7 8]} */
    assert_int_equal(match(&f, 0, KEY(1, 2, 3), NULL, &mid), 3);
    assert_int_equal(radix_total_tokens(f.c), 8);
    assert_int_equal(radix_evictable_tokens(f.c), 8);
    assert_int_equal(radix_protected_tokens(f.c), 0);
    radix_lock(f.c, l1);
    check(&f);
    assert_int_equal(radix_protected_tokens(f.c), 6);
    assert_int_equal(radix_evictable_tokens(f.c), 2);
    radix_lock(f.c, l2); /* shares the ancestor [1 2 3] */
    check(&f);
    assert_int_equal(radix_protected_tokens(f.c), 8);
    assert_int_equal(radix_evictable_tokens(f.c), 0);
    radix_lock(f.c, mid); /* nested lock on the shared ancestor */
    radix_lock(f.c, l1);  /* and a second lock on the same leaf */
    check(&f);
    assert_int_equal(radix_protected_tokens(f.c), 8);
    assert_int_equal(radix_evict(f.c, 100), 0); /* everything is protected */
    radix_unlock(f.c, l1);
    radix_unlock(f.c, l1);
    check(&f);
    assert_int_equal(radix_protected_tokens(f.c), 5); /* [1 2 3] + [7 8] */
    assert_int_equal(radix_evictable_tokens(f.c), 3);
    radix_unlock(f.c, l2);
    check(&f);
    assert_int_equal(radix_protected_tokens(f.c), 3); /* mid still locked */
    assert_int_equal(radix_evictable_tokens(f.c), 5);
    assert_int_equal(radix_evict(f.c, 100), 5); /* both leaves, not mid */
    assert_int_equal(radix_total_tokens(f.c), 3);
    radix_unlock(f.c, mid);
    check(&f);
    assert_int_equal(radix_protected_tokens(f.c), 0);
    assert_int_equal(radix_evictable_tokens(f.c), 3);
    /* locking the root (or NULL) is a no-op */
    RadixNode *root;
    match(&f, 0, KEY(9), NULL, &root);
    radix_lock(f.c, root);
    radix_lock(f.c, NULL);
    assert_int_equal(radix_protected_tokens(f.c), 0);
    radix_unlock(f.c, root);
    fix_free(&f);
}

/* A lock taken before a split still protects (and releases) both halves. */
static void test_lock_survives_split(void **state)
{
    (void)state;
    Fix f = fix_new(64, 1, false);
    RadixNode *leaf, *half;
    put(&f, 0, KEY(1, 2, 3, 4, 5, 6), NULL, &leaf);
    radix_lock(f.c, leaf);
    assert_int_equal(match(&f, 0, KEY(1, 2, 3), NULL, &half), 3);
    assert_int_equal(radix_protected_tokens(f.c), 6);
    put(&f, 0, KEY(1, 2, 9), NULL, NULL); /* splits [1 2 3] again */
    assert_int_equal(radix_protected_tokens(f.c), 6);
    assert_int_equal(radix_evictable_tokens(f.c), 1);
    radix_unlock(f.c, leaf);
    check(&f);
    assert_int_equal(radix_protected_tokens(f.c), 0);
    assert_int_equal(radix_evictable_tokens(f.c), 7);
    fix_free(&f);
}

static void test_eviction_order(void **state)
{
    (void)state;
    Fix f = fix_new(64, 1, false);
    RadixNode *lc;
    put(&f, 0, KEY(10, 11, 12), NULL, NULL);        /* a */
    put(&f, 0, KEY(20, 21), NULL, NULL);            /* b */
    put(&f, 0, KEY(30, 31, 32, 33), NULL, &lc);     /* c */
    match(&f, 0, KEY(10, 11, 12), NULL, NULL);      /* a is now newer than b */
    /* LRU leaf first, whole node: b goes although 1 token was asked for */
    assert_int_equal(radix_evict(f.c, 1), 2);
    check(&f);
    assert_int_equal(match(&f, 0, KEY(20, 21), NULL, NULL), 0);
    assert_int_equal(radix_peek(f.c, 0, KEY(10, 11, 12), NULL), 3);
    /* a locked path is never evicted, even when asked for everything */
    radix_lock(f.c, lc);
    assert_int_equal(radix_evict(f.c, 1000), 3);
    check(&f);
    assert_int_equal(radix_total_tokens(f.c), 4);
    assert_int_equal(radix_peek(f.c, 0, KEY(30, 31, 32, 33), NULL), 4);
    radix_unlock(f.c, lc);
    assert_int_equal(radix_evict(f.c, 1000), 4);
    assert_int_equal(radix_stats(f.c).evicted_tokens, 9);
    /* a parent becomes an evictable leaf after its last child goes */
    put(&f, 0, KEY(1, 2, 3, 4), NULL, NULL);
    put(&f, 0, KEY(1, 2, 5, 6), NULL, NULL);        /* [1 2] -> {[3 4], [5 6]} */
    put(&f, 0, KEY(40, 41, 42), NULL, NULL);
    match(&f, 0, KEY(1, 2, 3, 4), NULL, NULL);       /* order: [5 6], [40..], [3 4], [1 2] */
    assert_int_equal(radix_evict(f.c, 1), 2);
    assert_int_equal(radix_peek(f.c, 0, KEY(1, 2, 5, 6), NULL), 2);
    assert_int_equal(radix_evict(f.c, 1), 3);
    assert_int_equal(radix_peek(f.c, 0, KEY(40, 41, 42), NULL), 0);
    assert_int_equal(radix_evict(f.c, 1), 2);
    assert_int_equal(radix_peek(f.c, 0, KEY(1, 2, 3, 4), NULL), 2);
    assert_int_equal(radix_evict(f.c, 1), 2);
    assert_int_equal(radix_total_tokens(f.c), 0);
    assert_int_equal(radix_evict(f.c, 1), 0);
    assert_int_equal(kvpool_n_free(f.pool), 64);
    fix_free(&f);
}

static void test_page_size_4(void **state)
{
    (void)state;
    Fix f = fix_new(64, 4, false);
    int32_t ins[4], got[4];
    RadixNode *last;
    const int32_t *k10 = (const int32_t[]){1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    /* 10 tokens -> 2 whole pages stored, the partial third page is not */
    assert_int_equal(put(&f, 0, k10, 10, ins, &last), 0);
    assert_int_equal(radix_node_prefix_len(last), 8);
    assert_int_equal(radix_total_tokens(f.c), 8);
    assert_int_equal(kvpool_n_free(f.pool), 62);
    assert_int_equal(match(&f, 0, k10, 10, got, &last), 8);
    assert_memory_equal(got, ins, 2 * sizeof *got);
    assert_int_equal(match(&f, 0, k10, 7, got, &last), 4);    /* 7 -> 1 page */
    assert_int_equal(got[0], ins[0]);
    assert_int_equal(radix_node_prefix_len(last), 4);
    assert_int_equal(match(&f, 0, k10, 3, got, &last), 0);    /* < 1 page */
    assert_int_equal(match(&f, 0, KEY(1, 2, 3, 4, 5, 6, 0, 8), got, &last), 4);
    assert_int_equal(match(&f, 0, KEY(1, 2, 3, 0), got, &last), 0);
    /* a key diverging inside page 2 shares page 1 only */
    assert_int_equal(put(&f, 0, KEY(1, 2, 3, 4, 5, 6, 0, 8, 9), NULL, &last), 4);
    assert_int_equal(radix_node_prefix_len(last), 8);
    assert_int_equal(radix_total_tokens(f.c), 12);
    assert_int_equal(radix_node_count(f.c), 3);
    /* a key shorter than a page stores nothing */
    assert_int_equal(put(&f, 0, KEY(5, 5, 5), NULL, &last), 0);
    assert_int_equal(radix_node_prefix_len(last), 0);
    assert_int_equal(radix_total_tokens(f.c), 12);
    assert_int_equal(kvpool_n_free(f.pool), 61);
    assert_int_equal(radix_evict(f.c, 1), 4);
    assert_int_equal(radix_evict(f.c, 100), 8);
    fix_free(&f);
}

static void test_namespace_isolation(void **state)
{
    (void)state;
    Fix f = fix_new(64, 1, false);
    int32_t a[4], b[4], got[4];
    RadixNode *la, *lb;
    assert_int_equal(put(&f, 0, KEY(1, 2, 3), a, &la), 0);
    assert_int_equal(match(&f, 1, KEY(1, 2, 3), got, NULL), 0);
    assert_int_equal(match(&f, -5, KEY(1, 2, 3), got, NULL), 0);
    assert_int_equal(put(&f, 1, KEY(1, 2, 3), b, &lb), 0); /* not shared */
    assert_int_equal(radix_total_tokens(f.c), 6);
    assert_int_equal(match(&f, 0, KEY(1, 2, 3), got, NULL), 3);
    assert_memory_equal(got, a, sizeof a - sizeof *a);
    assert_int_equal(match(&f, 1, KEY(1, 2, 3), got, NULL), 3);
    assert_memory_equal(got, b, sizeof b - sizeof *b);
    /* a split in one namespace leaves the other alone */
    assert_int_equal(match(&f, 1, KEY(1, 2), got, NULL), 2);
    assert_int_equal(radix_node_count(f.c), 3);
    radix_lock(f.c, la);
    assert_int_equal(radix_evict(f.c, 100), 3); /* namespace 1 only */
    assert_int_equal(radix_peek(f.c, 1, KEY(1, 2, 3), NULL), 0);
    assert_int_equal(radix_peek(f.c, 0, KEY(1, 2, 3), NULL), 3);
    radix_unlock(f.c, la);
    fix_free(&f);
}

static void test_disabled_cache(void **state)
{
    (void)state;
    Fix f = fix_new(16, 1, true);
    RadixNode *last = NULL;
    int32_t pages[3];
    assert_true(radix_disabled(f.c));
    assert_int_equal(kvpool_alloc(f.pool, 3, pages), SGL_OK);
    assert_int_equal(radix_insert(f.c, 0, KEY(1, 2, 3), pages, &last), 0);
    assert_int_equal(radix_node_prefix_len(last), 0);
    assert_int_equal(radix_total_tokens(f.c), 0);
    for (int i = 0; i < 3; i++) /* the tree took nothing: the caller owns all */
        assert_int_equal(kvpool_refcount(f.pool, pages[i]), 1);
    kvpool_unref(f.pool, pages, 3);
    assert_int_equal(kvpool_n_free(f.pool), 16);
    assert_int_equal(match(&f, 0, KEY(1, 2, 3), NULL, &last), 0);
    assert_int_equal(radix_peek(f.c, 0, KEY(1, 2, 3), NULL), 0);
    radix_lock(f.c, last);
    assert_int_equal(radix_protected_tokens(f.c), 0);
    radix_unlock(f.c, last);
    assert_int_equal(radix_stats(f.c).miss_tokens, 3);
    assert_int_equal(radix_stats(f.c).hit_tokens, 0);
    assert_int_equal(radix_evict(f.c, 10), 0);
    assert_true(radix_reset(f.c));
    fix_free(&f);
}

static void test_reset_refuses_while_locked(void **state)
{
    (void)state;
    Fix f = fix_new(32, 1, false);
    RadixNode *l;
    put(&f, 0, KEY(1, 2, 3), NULL, &l);
    put(&f, 2, KEY(4, 5), NULL, NULL);
    radix_lock(f.c, l);
    assert_false(radix_reset(f.c));
    check(&f);
    assert_int_equal(radix_total_tokens(f.c), 5);
    radix_unlock(f.c, l);
    assert_true(radix_reset(f.c));
    check(&f);
    assert_int_equal(radix_total_tokens(f.c), 0);
    assert_int_equal(radix_node_count(f.c), 0);
    assert_int_equal(kvpool_n_free(f.pool), 32);
    assert_int_equal(radix_stats(f.c).evicted_tokens, 0);
    /* the cache is usable after a reset */
    assert_int_equal(put(&f, 0, KEY(1, 2, 3), NULL, NULL), 0);
    assert_int_equal(radix_peek(f.c, 0, KEY(1, 2, 3), NULL), 3);
    fix_free(&f);
}

static void test_stats(void **state)
{
    (void)state;
    Fix f = fix_new(32, 1, false);
    put(&f, 0, KEY(1, 2, 3, 4), NULL, NULL);
    radix_match(f.c, 0, KEY(1, 2, 9, 9, 9), NULL, NULL, true);  /* 2 hit, 3 miss */
    radix_match(f.c, 0, KEY(1, 2, 3, 4), NULL, NULL, false);    /* not counted */
    radix_match(f.c, 0, KEY(1, 2, 3, 4, 5), NULL, NULL, true);  /* 4 hit, 1 miss */
    RadixStats s = radix_stats(f.c);
    assert_int_equal(s.hit_tokens, 6);
    assert_int_equal(s.miss_tokens, 4);
    assert_int_equal(s.evicted_tokens, 0);
    fix_free(&f);
}

/* The integrity check notices a page the tree holds being freed behind its
 * back (so it can fail), and passes again once the page is in use. */
static void test_integrity_detects_freed_page(void **state)
{
    (void)state;
    Fix f = fix_new(8, 1, false);
    int32_t ins[2], again;
    char why[256];
    put(&f, 0, KEY(1, 2), ins, NULL);
    kvpool_unref(f.pool, ins, 1);
    assert_false(radix_check_integrity(f.c, why, sizeof why));
    assert_non_null(strstr(why, "refcount 0"));
    assert_int_equal(kvpool_alloc(f.pool, 1, &again), SGL_OK);
    assert_int_equal(again, ins[0]);
    check(&f);
    fix_free(&f);
}

/* ---- randomized test against a naive model ----------------------------- */

/* The model is a flat list of cached pages. Entry e stands for the page that
 * ends prefix key[0..len) in namespace ns; the cache is prefix-closed, so a
 * match is "how many leading pages have an entry". Eviction removes, one page
 * at a time, the unlocked page with no extension that was used least
 * recently, until exactly as many tokens as the tree reported are gone. */
enum { MAXLEN = 40, MAX_HANDLES = 6 };

typedef struct {
    bool alive;
    int32_t ns, len, page, locks, n_ext;
    uint64_t time;
    int32_t key[MAXLEN];
} MEntry;

typedef struct {
    MEntry *e;
    int32_t cap, P;
    uint64_t tick;
    int64_t hit, miss;
} Model;

typedef struct {
    RadixNode *node;
    int32_t ns, len;
    int32_t key[MAXLEN];
} Handle;

static int32_t m_find(const Model *m, int32_t ns, const int32_t *key, int32_t len)
{
    for (int32_t i = 0; i < m->cap; i++)
        if (m->e[i].alive && m->e[i].ns == ns && m->e[i].len == len &&
            memcmp(m->e[i].key, key, (size_t)len * sizeof *key) == 0)
            return i;
    return -1;
}

/* Number of leading cached tokens; touches them and writes their pages. */
static int32_t m_match(Model *m, int32_t ns, const int32_t *key, int32_t n, int32_t *pages,
                       bool touch)
{
    int32_t k = m->P;
    uint64_t t = ++m->tick;
    for (; k <= n; k += m->P) {
        int32_t i = m_find(m, ns, key, k);
        if (i < 0)
            break;
        if (pages)
            pages[k / m->P - 1] = m->e[i].page;
        if (touch)
            m->e[i].time = t;
    }
    return k - m->P;
}

static int32_t m_insert(Model *m, int32_t ns, const int32_t *key, int32_t n,
                        const int32_t *pages)
{
    int32_t r = m_match(m, ns, key, n, NULL, true);
    for (int32_t k = r + m->P; k <= n - n % m->P; k += m->P) {
        int32_t i = 0;
        while (m->e[i].alive)
            i++; /* the pool bounds the number of live entries */
        MEntry *e = &m->e[i];
        memset(e, 0, sizeof *e);
        e->alive = true;
        e->ns = ns;
        e->len = k;
        e->page = pages[k / m->P - 1];
        e->time = m->tick;
        memcpy(e->key, key, (size_t)k * sizeof *key);
        if (k > m->P)
            m->e[m_find(m, ns, key, k - m->P)].n_ext++;
    }
    return r;
}

static void m_lock(Model *m, const Handle *h, int32_t delta)
{
    for (int32_t k = m->P; k <= h->len; k += m->P)
        m->e[m_find(m, h->ns, h->key, k)].locks += delta;
}

static void m_evict(Model *m, int32_t n_tokens)
{
    for (int32_t freed = 0; freed < n_tokens; freed += m->P) {
        int32_t best = -1;
        for (int32_t i = 0; i < m->cap; i++) {
            const MEntry *e = &m->e[i];
            if (e->alive && e->locks == 0 && e->n_ext == 0 &&
                (best < 0 || e->time < m->e[best].time))
                best = i;
        }
        assert_true(best >= 0);
        MEntry *e = &m->e[best];
        e->alive = false;
        if (e->len > m->P)
            m->e[m_find(m, e->ns, e->key, e->len - m->P)].n_ext--;
    }
}

/* Everything the tree and the pool report agrees with the model. */
static void m_compare(const Model *m, Fix *f)
{
    int64_t locked = 0, unlocked = 0, alive = 0;
    int32_t pages[MAXLEN];
    check(f);
    for (int32_t i = 0; i < m->cap; i++) {
        const MEntry *e = &m->e[i];
        if (!e->alive)
            continue;
        alive++;
        *(e->locks ? &locked : &unlocked) += m->P;
        assert_int_equal(radix_peek(f->c, e->ns, e->key, e->len, pages), e->len);
        assert_int_equal(pages[e->len / m->P - 1], e->page);
        assert_int_equal(kvpool_refcount(f->pool, e->page), 1);
    }
    assert_int_equal(radix_total_tokens(f->c), locked + unlocked);
    assert_int_equal(radix_protected_tokens(f->c), locked);
    assert_int_equal(radix_evictable_tokens(f->c), unlocked);
    assert_int_equal(kvpool_n_free(f->pool), kvpool_n_pages(f->pool) - alive);
    RadixStats s = radix_stats(f->c);
    assert_int_equal(s.hit_tokens, m->hit);
    assert_int_equal(s.miss_tokens, m->miss);
}

static uint32_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return (uint32_t)(*s >> 16);
}

/* Keys share prefixes of a few base sequences, then continue with tokens
 * from a tiny alphabet so that divergence happens at every position. */
static int32_t gen_key(uint64_t *s, int32_t bases[4][MAXLEN], int32_t *key, int32_t *ns)
{
    static const int32_t nss[3] = {0, 1, 7};
    *ns = nss[rnd(s) % 3];
    int32_t n = 1 + (int32_t)(rnd(s) % MAXLEN);
    int32_t shared = (int32_t)(rnd(s) % (uint32_t)(n + 1));
    const int32_t *b = bases[rnd(s) % 4];
    for (int32_t i = 0; i < n; i++)
        key[i] = i < shared ? b[i] : 1 + (int32_t)(rnd(s) % 3);
    return n;
}

/* Evicts (tree and model) until n pages are free; false if impossible. */
static bool make_room(Fix *f, Model *m, int32_t n)
{
    int32_t short_by = n - kvpool_n_free(f->pool);
    if (short_by > 0) {
        int32_t freed = radix_evict(f->c, short_by * f->P);
        assert_true(freed % f->P == 0);
        m_evict(m, freed);
    }
    return kvpool_n_free(f->pool) >= n;
}

static void random_run(int32_t page_size, int32_t n_pages, uint64_t seed, int n_ops)
{
    Fix f = fix_new(n_pages, page_size, false);
    int32_t P = page_size;
    uint64_t seed0 = seed;
    Model m = {calloc((size_t)n_pages, sizeof(MEntry)), n_pages, P, 0, 0, 0};
    assert_non_null(m.e);
    Handle hs[MAX_HANDLES];
    int n_h = 0;
    int32_t bases[4][MAXLEN], key[MAXLEN], pages[MAXLEN + 1], mpages[MAXLEN + 1];
    int32_t ns, n;
    for (int b = 0; b < 4; b++)
        for (int i = 0; i < MAXLEN; i++)
            bases[b][i] = 100 + (int32_t)(rnd(&seed) % 50);
    int stat_ops[7] = {0};
    for (int op = 0; op < n_ops; op++) {
        uint32_t r = rnd(&seed) % 100;
        RadixNode *last, *nlast;
        n = gen_key(&seed, bases, key, &ns);
        int32_t n_al = n - n % P;
        if (r < 30) { /* match, maybe keep a lock */
            bool count = rnd(&seed) % 2;
            int32_t got = radix_match(f.c, ns, key, n, pages, &last, count);
            int32_t want = m_match(&m, ns, key, n, mpages, true);
            assert_int_equal(got, want);
            assert_memory_equal(pages, mpages, (size_t)(got / P) * sizeof *pages);
            assert_int_equal(radix_node_prefix_len(last), got);
            if (count) {
                m.hit += got;
                m.miss += n - got;
            }
            if (got > 0 && n_h < MAX_HANDLES && rnd(&seed) % 2) {
                Handle *h = &hs[n_h++];
                h->node = last;
                h->ns = ns;
                h->len = got;
                memcpy(h->key, key, (size_t)got * sizeof *key);
                radix_lock(f.c, last);
                m_lock(&m, h, +1);
            }
            stat_ops[0]++;
        } else if (r < 65) { /* a request: match+lock, allocate the rest, insert */
            int32_t got = radix_match(f.c, ns, key, n, pages, &last, true);
            assert_int_equal(got, m_match(&m, ns, key, n, mpages, true));
            m.hit += got;
            m.miss += n - got;
            Handle h = {last, ns, got, {0}};
            memcpy(h.key, key, (size_t)got * sizeof *key);
            radix_lock(f.c, last);
            m_lock(&m, &h, +1);
            int32_t need = (n + P - 1) / P - got / P;
            if (!make_room(&f, &m, need) ||
                kvpool_alloc(f.pool, need, pages + got / P) != SGL_OK) {
                radix_unlock(f.c, last);
                m_lock(&m, &h, -1);
                stat_ops[5]++;
                m_compare(&m, &f);
                continue;
            }
            int32_t ret = radix_insert(f.c, ns, key, n, pages, &nlast);
            assert_int_equal(ret, m_insert(&m, ns, key, n, pages));
            assert_true(ret >= got);
            assert_int_equal(radix_node_prefix_len(nlast), n_al);
            /* [got, ret): duplicates we allocated; [n_al, n): partial page */
            kvpool_unref(f.pool, pages + got / P, ret / P - got / P);
            kvpool_unref(f.pool, pages + n_al / P, (n + P - 1) / P - n_al / P);
            radix_unlock(f.c, last);
            m_lock(&m, &h, -1);
            if (n_al > 0 && n_h < MAX_HANDLES && rnd(&seed) % 3 == 0) {
                Handle *k = &hs[n_h++];
                k->node = nlast;
                k->ns = ns;
                k->len = n_al;
                memcpy(k->key, key, (size_t)n_al * sizeof *key);
                radix_lock(f.c, nlast);
                m_lock(&m, k, +1);
            }
            stat_ops[1]++;
        } else if (r < 75) { /* a plain insert of freshly allocated pages */
            int32_t need = (n + P - 1) / P;
            if (!make_room(&f, &m, need)) {
                m_compare(&m, &f);
                continue;
            }
            assert_int_equal(kvpool_alloc(f.pool, need, pages), SGL_OK);
            int32_t ret = radix_insert(f.c, ns, key, n, pages, NULL);
            assert_int_equal(ret, m_insert(&m, ns, key, n, pages));
            kvpool_unref(f.pool, pages, ret / P);
            kvpool_unref(f.pool, pages + n_al / P, need - n_al / P);
            stat_ops[2]++;
        } else if (r < 90) { /* release a lock */
            if (n_h > 0) {
                int k = (int)(rnd(&seed) % (uint32_t)n_h);
                assert_int_equal(radix_node_prefix_len(hs[k].node), hs[k].len);
                radix_unlock(f.c, hs[k].node);
                m_lock(&m, &hs[k], -1);
                hs[k] = hs[--n_h];
            }
            stat_ops[3]++;
        } else if (r < 99) { /* evict */
            int32_t want = (int32_t)(rnd(&seed) % (uint32_t)(3 * MAXLEN));
            int32_t evictable = radix_evictable_tokens(f.c);
            int32_t freed = radix_evict(f.c, want);
            assert_true(freed >= (want < evictable ? want : evictable));
            m_evict(&m, freed);
            stat_ops[4]++;
        } else { /* reset: refused while anything is locked */
            bool ok = radix_reset(f.c);
            assert_int_equal(ok, n_h == 0);
            stat_ops[6]++;
            if (ok)
                for (int32_t i = 0; i < m.cap; i++)
                    m.e[i].alive = false;
        }
        m_compare(&m, &f);
    }
    while (n_h > 0) {
        n_h--;
        radix_unlock(f.c, hs[n_h].node);
        m_lock(&m, &hs[n_h], -1);
    }
    m_compare(&m, &f);
    int32_t total = radix_total_tokens(f.c);
    assert_int_equal(radix_evict(f.c, INT32_MAX), total);
    m_evict(&m, total);
    m_compare(&m, &f);
    assert_int_equal(radix_total_tokens(f.c), 0);
    assert_int_equal(radix_node_count(f.c), 0);
    assert_int_equal(kvpool_n_free(f.pool), n_pages);
    print_message("random P=%d pages=%d seed=%llx: %d match, %d request, %d insert, "
                  "%d unlock, %d evict, %d reset, %d no-room; %lld tokens evicted\n",
                  P, n_pages, (unsigned long long)seed0, stat_ops[0], stat_ops[1],
                  stat_ops[2], stat_ops[3], stat_ops[4], stat_ops[6], stat_ops[5],
                  (long long)radix_stats(f.c).evicted_tokens);
    free(m.e);
    fix_free(&f);
}

static void test_random_page1(void **state)
{
    (void)state;
    random_run(1, 96, 0x5EEDull, 4000);
    random_run(1, 200, 0xC0FFEEull, 4000);
}

static void test_random_page4(void **state)
{
    (void)state;
    random_run(4, 24, 0xBADC0DEull, 4000);
    random_run(4, 64, 0x12345678ull, 4000);
}

static void test_random_page3(void **state)
{
    (void)state;
    random_run(3, 40, 0xFEEDull, 3000);
}

/* ---- bench ------------------------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* n_seq sequences of seq_len tokens (vocabulary 128k): each starts with a
 * prefix (random length up to 3/4 of seq_len) of one of n_groups shared
 * "system prompts", then unique tokens. The pool holds pool_frac of all
 * tokens, so inserts need evictions. Each request does match + lock, alloc
 * (evicting when short), insert, unref duplicates, unlock. */
static void bench(int32_t P, int32_t n_seq, int32_t seq_len, int32_t n_groups, double pool_frac)
{
    uint64_t s = 42;
    int32_t *keys = malloc((size_t)n_seq * (size_t)seq_len * sizeof *keys);
    int32_t *groups = malloc((size_t)n_groups * (size_t)seq_len * sizeof *groups);
    int32_t *pages = malloc(((size_t)seq_len / (size_t)P + 1) * sizeof *pages);
    if (!keys || !groups || !pages)
        fail_msg("bench: out of memory");
    for (int64_t i = 0; i < (int64_t)n_groups * seq_len; i++)
        groups[i] = (int32_t)(rnd(&s) % 128000);
    for (int32_t q = 0; q < n_seq; q++) {
        int32_t *k = keys + (int64_t)q * seq_len;
        const int32_t *g = groups + (int64_t)(rnd(&s) % (uint32_t)n_groups) * seq_len;
        int32_t shared = (int32_t)(rnd(&s) % (uint32_t)(seq_len * 3 / 4));
        for (int32_t i = 0; i < seq_len; i++)
            k[i] = i < shared ? g[i] : (int32_t)(rnd(&s) % 128000);
    }
    int32_t n_pages = (int32_t)((double)n_seq * seq_len * pool_frac / P);
    Fix f = fix_new(n_pages, P, false);
    double t_match = 0, t_insert = 0, t_evict = 0, t0;
    int64_t toks = 0, hit = 0, evicted = 0;
    for (int32_t q = 0; q < n_seq; q++) {
        const int32_t *k = keys + (int64_t)q * seq_len;
        RadixNode *last;
        t0 = now_s();
        int32_t got = radix_match(f.c, 0, k, seq_len, pages, &last, true);
        radix_lock(f.c, last);
        t_match += now_s() - t0;
        int32_t need = (seq_len + P - 1) / P - got / P;
        if (kvpool_n_free(f.pool) < need) {
            t0 = now_s();
            evicted += radix_evict(f.c, (need - kvpool_n_free(f.pool)) * P);
            t_evict += now_s() - t0;
        }
        assert_int_equal(kvpool_alloc(f.pool, need, pages + got / P), SGL_OK);
        t0 = now_s();
        int32_t ret = radix_insert(f.c, 0, k, seq_len, pages, NULL);
        t_insert += now_s() - t0;
        kvpool_unref(f.pool, pages + got / P, ret / P - got / P);
        int32_t n_al = seq_len - seq_len % P;
        kvpool_unref(f.pool, pages + n_al / P, (seq_len + P - 1) / P - n_al / P);
        radix_unlock(f.c, last);
        toks += seq_len;
        hit += got;
    }
    check(&f);
    int32_t nodes = radix_node_count(f.c), cached = radix_total_tokens(f.c);
    /* match-only pass over the last half (most of it still cached) */
    int64_t mtoks = 0, mhit = 0;
    t0 = now_s();
    for (int32_t q = n_seq / 2; q < n_seq; q++) {
        mhit += radix_match(f.c, 0, keys + (int64_t)q * seq_len, seq_len, pages, NULL, false);
        mtoks += seq_len;
    }
    double t_mo = now_s() - t0;
    t0 = now_s();
    int32_t freed = radix_evict(f.c, INT32_MAX);
    double t_ev_all = now_s() - t0;
    printf("radix bench P=%d: %d seqs x %d tokens, %d groups, pool %d pages (%.0f%% of tokens)\n",
           P, n_seq, seq_len, n_groups, n_pages, 100 * pool_frac);
    printf("  requests: hit %.1f%%, %d nodes / %d tokens cached at end, %lld evicted on the way\n",
           100.0 * (double)hit / (double)toks, nodes, cached, (long long)evicted);
    printf("  match+lock  %8.3f ms total  %7.2f us/seq  %8.1f Mtok/s\n", 1e3 * t_match,
           1e6 * t_match / n_seq, (double)toks / t_match / 1e6);
    printf("  insert      %8.3f ms total  %7.2f us/seq  %8.1f Mtok/s\n", 1e3 * t_insert,
           1e6 * t_insert / n_seq, (double)toks / t_insert / 1e6);
    if (evicted > 0)
        printf("  evict (in)  %8.3f ms total  %8.1f Mtok/s freed\n", 1e3 * t_evict,
               (double)evicted / t_evict / 1e6);
    printf("  match only  %8.3f ms for %lld tok (%.1f%% hit)  %7.2f us/seq  %8.1f Mtok/s\n",
           1e3 * t_mo, (long long)mtoks, 100.0 * (double)mhit / (double)mtoks,
           1e6 * t_mo / (n_seq - n_seq / 2), (double)mtoks / t_mo / 1e6);
    printf("  evict all   %8.3f ms for %d tok  %8.1f Mtok/s\n", 1e3 * t_ev_all, freed,
           (double)freed / t_ev_all / 1e6);
    fix_free(&f);
    free(pages);
    free(groups);
    free(keys);
}

int main(void)
{
    const char *b = getenv("SGL_BENCH_RADIX");
    if (b && *b && strcmp(b, "0") != 0) {
        bench(1, 10000, 1024, 64, 0.25);
        bench(16, 10000, 1024, 64, 0.25);
        bench(1, 10000, 1024, 64, 1.0);
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_insert_and_partial_match),
        cmocka_unit_test(test_match_splits_edge),
        cmocka_unit_test(test_insert_returns_cached_prefix),
        cmocka_unit_test(test_lock_accounting),
        cmocka_unit_test(test_lock_survives_split),
        cmocka_unit_test(test_eviction_order),
        cmocka_unit_test(test_page_size_4),
        cmocka_unit_test(test_namespace_isolation),
        cmocka_unit_test(test_disabled_cache),
        cmocka_unit_test(test_reset_refuses_while_locked),
        cmocka_unit_test(test_stats),
        cmocka_unit_test(test_integrity_detects_freed_page),
        cmocka_unit_test(test_random_page1),
        cmocka_unit_test(test_random_page4),
        cmocka_unit_test(test_random_page3),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_router_tree.c -- the router's prefix trees (backend/router/ptree.c)
 * and policies (backend/router/policy.c).
 *
 * Trees: insert/match with edge splits, byte accounting, LRU eviction order
 * under a cap, deep chains (no recursion), and a randomized comparison with
 * a brute-force longest-common-prefix over every inserted string. Policies:
 * cache_aware follows the longest match past the threshold, else the
 * emptiest tree, and the least-loaded worker when the load is imbalanced;
 * round_robin alternates; shortest_queue and random; unhealthy workers are
 * never chosen. Every tree test ends with ptree_check.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "backend/router/policy.h"
#include "backend/router/ptree.h"

static size_t match_s(const PtTree *t, const char *s)
{
    return ptree_match(t, s, strlen(s));
}

static void insert_s(PtTree *t, const char *s)
{
    assert_true(ptree_insert(t, s, strlen(s)));
    assert_true(ptree_check(t));
}

static void test_insert_match(void **state)
{
    (void)state;
    PtTree t;
    assert_true(ptree_init(&t, 0));
    assert_int_equal(match_s(&t, "hello"), 0);
    insert_s(&t, "hello world");
    assert_int_equal(t.n_bytes, 11);
    assert_int_equal(match_s(&t, "hello world"), 11);
    assert_int_equal(match_s(&t, "hello there"), 6);
    assert_int_equal(match_s(&t, "hello world, again"), 11);
    assert_int_equal(match_s(&t, "help"), 3);
    assert_int_equal(match_s(&t, "xyz"), 0);
    assert_int_equal(ptree_match(&t, "", 0), 0);
    /* splitting the edge at "hello " keeps the bytes and adds a node */
    insert_s(&t, "hello there");
    assert_int_equal(t.n_bytes, 11 + 5);
    assert_int_equal(t.n_nodes, 3);
    assert_int_equal(match_s(&t, "hello there!"), 11);
    assert_int_equal(match_s(&t, "hello world"), 11);
    /* a prefix of what is stored: nothing new */
    insert_s(&t, "hello");
    assert_int_equal(t.n_bytes, 16);
    insert_s(&t, "hello world");
    assert_int_equal(t.n_bytes, 16);
    /* bytes, including NUL and high bytes */
    const char bin[] = {'a', 0, (char)0xff, 'b'};
    assert_true(ptree_insert(&t, bin, 4));
    assert_int_equal(ptree_match(&t, bin, 4), 4);
    assert_int_equal(ptree_match(&t, bin, 2), 2);
    assert_true(ptree_check(&t));
    ptree_clear(&t);
    assert_int_equal(t.n_bytes, 0);
    assert_int_equal(match_s(&t, "hello"), 0);
    insert_s(&t, "again");
    assert_int_equal(match_s(&t, "again"), 5);
    ptree_deinit(&t);
}

static void test_evict_lru(void **state)
{
    (void)state;
    PtTree t;
    assert_true(ptree_init(&t, 30));
    insert_s(&t, "AAAAAAAAAA");     /* 10 bytes each, distinct first bytes */
    insert_s(&t, "BBBBBBBBBB");
    insert_s(&t, "CCCCCCCCCC");
    assert_int_equal(t.n_bytes, 30);
    insert_s(&t, "AAAAAAAAAA");     /* A is now the most recent */
    insert_s(&t, "DDDDDDDDDD");     /* over the cap: B, the oldest, goes */
    assert_int_equal(t.n_bytes, 30);
    assert_int_equal(match_s(&t, "BBBBBBBBBB"), 0);
    assert_int_equal(match_s(&t, "AAAAAAAAAA"), 10);
    assert_int_equal(match_s(&t, "CCCCCCCCCC"), 10);
    assert_int_equal(match_s(&t, "DDDDDDDDDD"), 10);
    /* a shared prefix stays while a branch under it is cut */
    insert_s(&t, "AAAAAAAAAAxyz");   /* +3: C (oldest) goes */
    assert_int_equal(match_s(&t, "CCCCCCCCCC"), 0);
    assert_int_equal(match_s(&t, "AAAAAAAAAAxyz"), 13);
    /* an explicit evict to a smaller size removes leaves oldest first */
    size_t removed = ptree_evict(&t, 13);
    assert_int_equal(removed, 10);   /* D */
    assert_int_equal(match_s(&t, "DDDDDDDDDD"), 0);
    assert_int_equal(match_s(&t, "AAAAAAAAAAxyz"), 13);
    assert_true(ptree_check(&t));
    /* a text longer than the cap is cut to it */
    char big[100];
    memset(big, 'Q', sizeof big);
    assert_true(ptree_insert(&t, big, sizeof big));
    assert_true(t.n_bytes <= 30);
    assert_int_equal(ptree_match(&t, big, sizeof big), 30);
    assert_true(ptree_check(&t));
    ptree_deinit(&t);
}

static void test_deep_chain(void **state)
{
    (void)state;
    /* every text extends the previous by one byte: a chain of 10000 nodes,
     * which recursive walks would not survive under ASan's stack */
    enum { N = 10000 };
    char *s = malloc(N);
    assert_non_null(s);
    for (int i = 0; i < N; i++)
        s[i] = (char)('a' + i % 26);
    PtTree t;
    assert_true(ptree_init(&t, 0));
    for (int i = 1; i <= N; i++)
        assert_true(ptree_insert(&t, s, (size_t)i));
    /* one insert per length splits nothing: the chain extends the leaf */
    assert_int_equal(t.n_bytes, N);
    assert_int_equal(ptree_match(&t, s, N), N);
    assert_true(ptree_check(&t));
    /* now branch off every 100th byte, making a deep tree */
    for (int i = 100; i < N; i += 100) {
        char c = s[i];
        s[i] = '#';
        assert_true(ptree_insert(&t, s, (size_t)i + 1));
        s[i] = c;
    }
    assert_true(ptree_check(&t));
    assert_true(ptree_evict(&t, N / 2) > 0);
    assert_true(t.n_bytes <= N / 2);
    assert_true(ptree_check(&t));
    ptree_deinit(&t);
    free(s);
}

/* Random texts over a 3-letter alphabet (long shared prefixes); the match
 * must equal the longest common prefix with any inserted text. */
static void test_random_vs_bruteforce(void **state)
{
    (void)state;
    enum { N = 400, L = 40 };
    static char texts[N][L];
    static size_t lens[N];
    uint64_t rng = 12345;
    PtTree t;
    assert_true(ptree_init(&t, 0));
    for (int i = 0; i < N; i++) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        lens[i] = 1 + (size_t)((rng >> 33) % L);
        for (size_t k = 0; k < lens[i]; k++) {
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            texts[i][k] = (char)('a' + (rng >> 33) % 3);
        }
        assert_true(ptree_insert(&t, texts[i], lens[i]));
        /* query a fresh random text against the first i+1 texts */
        char q[L];
        size_t ql = 1 + (size_t)((rng >> 20) % L);
        for (size_t k = 0; k < ql; k++) {
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            q[k] = (char)('a' + (rng >> 33) % 3);
        }
        size_t want = 0;
        for (int j = 0; j <= i; j++) {
            size_t m = 0;
            while (m < ql && m < lens[j] && q[m] == texts[j][m])
                m++;
            if (m > want)
                want = m;
        }
        assert_int_equal(ptree_match(&t, q, ql), want);
    }
    assert_true(ptree_check(&t));
    ptree_deinit(&t);
}

/* ---- policies ---- */

static RtBalancer *balancer(RtPolicy p, int32_t n)
{
    RtBalancerOpts o = {.policy = p, .n_workers = n, .cache_threshold = 0.5, .balance_abs = 4,
                        .balance_rel = 1.5, .tree_max_bytes = 1 << 20, .seed = 7};
    RtBalancer *b = rt_balancer_new(&o);
    assert_non_null(b);
    return b;
}

static int32_t pick(RtBalancer *b, const char *text, const bool *ok, const int32_t *load)
{
    RtPick p;
    rt_balancer_pick(b, text, strlen(text), ok, load, &p);
    return p.worker;
}

static void test_cache_aware(void **state)
{
    (void)state;
    RtBalancer *b = balancer(RT_CACHE_AWARE, 2);
    bool ok[2] = {true, true};
    int32_t load[2] = {0, 0};
    const char *sys_a = "You are a helpful pirate. Answer in pirate speak. Question: ";
    const char *sys_b = "You are a terse mathematician. Answer with a formula. Question: ";
    char q[256];
    /* the first group lands somewhere; its other prompts follow it */
    snprintf(q, sizeof q, "%s%s", sys_a, "where is the gold?");
    int32_t wa = pick(b, q, ok, load);
    assert_true(wa == 0 || wa == 1);
    /* the second group has no match anywhere: the emptiest tree (the other worker) */
    snprintf(q, sizeof q, "%s%s", sys_b, "what is pi?");
    int32_t wb = pick(b, q, ok, load);
    assert_int_equal(wb, 1 - wa);
    for (int i = 0; i < 10; i++) {
        snprintf(q, sizeof q, "%squestion %d", sys_a, i);
        assert_int_equal(pick(b, q, ok, load), wa);
        snprintf(q, sizeof q, "%squestion %d", sys_b, i);
        assert_int_equal(pick(b, q, ok, load), wb);
    }
    RtBalancerStats st = rt_balancer_stats(b);
    assert_int_equal(st.by_cache, 20);
    assert_int_equal(st.by_room, 2);
    assert_true(st.matched_bytes > st.request_bytes / 2);
    /* below the threshold (1 of 18 bytes matched): the emptiest tree */
    size_t tree_a = rt_balancer_tree_bytes(b, wa), tree_b = rt_balancer_tree_bytes(b, wb);
    int32_t w = pick(b, "Yzzzzzzzzzzzzzzzzz", ok, load);
    assert_int_equal(w, tree_a <= tree_b ? wa : wb);
    assert_int_equal(rt_balancer_stats(b).by_room, 3);
    /* imbalanced: worker wa has 10 in flight, wb none -> wb, despite the cache */
    load[wa] = 10;
    load[wb] = 0;
    RtPick p;
    snprintf(q, sizeof q, "%squestion 99", sys_a);
    rt_balancer_pick(b, q, strlen(q), ok, load, &p);
    assert_int_equal(p.worker, wb);
    assert_true(p.by_load);
    /* balanced enough (10 vs 7: difference 3 <= balance_abs 4): the longest
     * match again (wb now holds "...question 9", wa "...question 1") */
    load[wb] = 7;
    snprintf(q, sizeof q, "%squestion 1", sys_a);
    rt_balancer_pick(b, q, strlen(q), ok, load, &p);
    assert_int_equal(p.worker, wa);
    assert_int_equal(p.matched, strlen(q));
    assert_false(p.by_load);
    /* the cached worker down: the other one */
    load[0] = load[1] = 0;
    ok[wa] = false;
    assert_int_equal(pick(b, q, ok, load), wb);
    ok[wb] = false;
    assert_int_equal(pick(b, q, ok, load), -1);
    /* forget: the worker's tree is empty again */
    rt_balancer_forget(b, wa);
    assert_int_equal(rt_balancer_tree_bytes(b, wa), 0);
    rt_balancer_free(b);
}

static void test_round_robin_and_others(void **state)
{
    (void)state;
    bool ok[3] = {true, true, true};
    int32_t load[3] = {0, 0, 0};
    RtBalancer *b = balancer(RT_ROUND_ROBIN, 3);
    int32_t seen[6];
    for (int i = 0; i < 6; i++)
        seen[i] = pick(b, "same text", ok, load);
    for (int i = 0; i < 3; i++)
        assert_int_equal(seen[i + 3], seen[i]);
    assert_true(seen[0] != seen[1] && seen[1] != seen[2] && seen[0] != seen[2]);
    ok[1] = false;
    for (int i = 0; i < 6; i++)
        assert_int_not_equal(pick(b, "x", ok, load), 1);
    rt_balancer_free(b);

    b = balancer(RT_SHORTEST_QUEUE, 3);
    ok[1] = true;
    load[0] = 5;
    load[1] = 2;
    load[2] = 9;
    assert_int_equal(pick(b, "x", ok, load), 1);
    ok[1] = false;
    assert_int_equal(pick(b, "x", ok, load), 0);
    rt_balancer_free(b);

    b = balancer(RT_RANDOM, 3);
    ok[0] = ok[2] = true;
    ok[1] = false;
    int hits[3] = {0, 0, 0};
    for (int i = 0; i < 200; i++) {
        int32_t w = pick(b, "x", ok, load);
        assert_true(w >= 0 && w < 3);
        hits[w]++;
    }
    assert_int_equal(hits[1], 0);
    assert_true(hits[0] > 40 && hits[2] > 40);
    rt_balancer_free(b);
}

static void test_policy_names(void **state)
{
    (void)state;
    RtPolicy p;
    for (int i = 0; i < RT_N_POLICIES; i++) {
        assert_true(rt_policy_parse(rt_policy_name((RtPolicy)i), &p));
        assert_int_equal(p, i);
        assert_non_null(strstr(rt_policy_list(), rt_policy_name((RtPolicy)i)));
    }
    assert_false(rt_policy_parse("cache", &p));
    assert_false(rt_policy_parse(NULL, &p));
    RtBalancerOpts o = {.policy = RT_CACHE_AWARE, .n_workers = 0};
    assert_null(rt_balancer_new(&o));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_insert_match),
        cmocka_unit_test(test_evict_lru),
        cmocka_unit_test(test_deep_chain),
        cmocka_unit_test(test_random_vs_bruteforce),
        cmocka_unit_test(test_cache_aware),
        cmocka_unit_test(test_round_robin_and_others),
        cmocka_unit_test(test_policy_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

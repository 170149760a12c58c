/* policy.c -- the router's policies over per-worker prefix trees (policy.h).
 *
 * One mutex guards the trees and counters; a pick matches the text against
 * each healthy worker's tree (O(len) each), decides, and inserts into the
 * chosen one. Ties go to the lower load, then rotate, so a quiet router
 * does not pile everything on worker 0.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "backend/router/policy.h"
#include "backend/router/ptree.h"

static const char *const rt_policy_names[] = { /* ORDER RT_POLICY */
    "cache_aware", "round_robin", "shortest_queue", "random"};
_Static_assert(sizeof rt_policy_names / sizeof rt_policy_names[0] == RT_N_POLICIES,
               "one name per policy");

const char *rt_policy_name(RtPolicy p)
{
    return p >= 0 && p < RT_N_POLICIES ? rt_policy_names[p] : "?";
}

bool rt_policy_parse(const char *s, RtPolicy *p)
{
    for (int i = 0; i < RT_N_POLICIES; i++)
        if (s && strcmp(s, rt_policy_names[i]) == 0) {
            *p = (RtPolicy)i;
            return true;
        }
    return false;
}

const char *rt_policy_list(void)
{
    return "cache_aware|round_robin|shortest_queue|random";
}

struct RtBalancer {
    RtBalancerOpts o;
    pthread_mutex_t mu;
    PtTree *trees;          /* (n_workers) */
    uint64_t rr;            /* rotation for round_robin and ties */
    uint64_t rng;           /* xorshift64 state */
    RtBalancerStats st;
};

RtBalancer *rt_balancer_new(const RtBalancerOpts *o)
{
    if (!o || o->n_workers < 1 || o->policy < 0 || o->policy >= RT_N_POLICIES)
        return NULL;
    RtBalancer *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->o = *o;
    b->rng = o->seed ? o->seed : 0x9E3779B97F4A7C15ull;
    if (!(b->trees = calloc((size_t)o->n_workers, sizeof *b->trees)))
        goto fail;
    for (int32_t i = 0; i < o->n_workers; i++)
        if (!ptree_init(&b->trees[i], o->tree_max_bytes))
            goto fail;
    pthread_mutex_init(&b->mu, NULL);
    return b;
fail:
    if (b->trees)
        for (int32_t i = 0; i < o->n_workers; i++)
            ptree_deinit(&b->trees[i]);
    free(b->trees);
    free(b);
    return NULL;
}

void rt_balancer_free(RtBalancer *b)
{
    if (!b)
        return;
    for (int32_t i = 0; i < b->o.n_workers; i++)
        ptree_deinit(&b->trees[i]);
    free(b->trees);
    pthread_mutex_destroy(&b->mu);
    free(b);
}

static uint64_t next_rand(RtBalancer *b)
{
    uint64_t x = b->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return b->rng = x;
}

/* The healthy worker with the least load; ties rotate from b->rr. */
static int32_t least_loaded(RtBalancer *b, const bool *healthy, const int32_t *load)
{
    int32_t n = b->o.n_workers, best = -1;
    for (int32_t k = 0; k < n; k++) {
        int32_t i = (int32_t)((b->rr + (uint64_t)k) % (uint64_t)n);
        if (healthy[i] && (best < 0 || load[i] < load[best]))
            best = i;
    }
    b->rr++;
    return best;
}

static int32_t cache_aware(RtBalancer *b, const char *text, size_t len, const bool *healthy,
                           const int32_t *load, RtPick *out)
{
    int32_t n = b->o.n_workers, lo = -1, hi = -1;
    for (int32_t i = 0; i < n; i++) {
        if (!healthy[i])
            continue;
        if (lo < 0 || load[i] < load[lo])
            lo = i;
        if (hi < 0 || load[i] > load[hi])
            hi = i;
    }
    if (lo < 0)
        return -1;
    if (load[hi] - load[lo] > b->o.balance_abs &&
        (double)load[hi] > b->o.balance_rel * (double)load[lo]) {
        out->by_load = true;
        b->st.by_load++;
        return least_loaded(b, healthy, load);
    }
    int32_t best = -1, room = -1;
    size_t best_m = 0;
    for (int32_t k = 0; k < n; k++) {
        int32_t i = (int32_t)((b->rr + (uint64_t)k) % (uint64_t)n);
        if (!healthy[i])
            continue;
        size_t m = ptree_match(&b->trees[i], text, len);
        if (best < 0 || m > best_m || (m == best_m && load[i] < load[best])) {
            best = i;
            best_m = m;
        }
        size_t sz = b->trees[i].n_bytes;
        if (room < 0 || sz < b->trees[room].n_bytes ||
            (sz == b->trees[room].n_bytes && load[i] < load[room]))
            room = i;
    }
    b->rr++;
    if (len > 0 && (double)best_m >= b->o.cache_threshold * (double)len) {
        b->st.by_cache++;
        return best;
    }
    b->st.by_room++;
    return room;
}

void rt_balancer_pick(RtBalancer *b, const char *text, size_t len, const bool *healthy,
                      const int32_t *load, RtPick *out)
{
    *out = (RtPick){.worker = -1};
    int32_t n = b->o.n_workers, w = -1;
    pthread_mutex_lock(&b->mu);
    switch (b->o.policy) {
    case RT_CACHE_AWARE:
        w = cache_aware(b, text, len, healthy, load, out);
        break;
    case RT_ROUND_ROBIN:
        for (int32_t k = 0; k < n && w < 0; k++) {
            int32_t i = (int32_t)((b->rr + (uint64_t)k) % (uint64_t)n);
            if (healthy[i]) {
                w = i;
                b->rr += (uint64_t)k + 1;
            }
        }
        break;
    case RT_SHORTEST_QUEUE:
        w = least_loaded(b, healthy, load);
        break;
    default: {
        int32_t n_ok = 0;
        for (int32_t i = 0; i < n; i++)
            n_ok += healthy[i];
        if (n_ok) {
            int32_t r = (int32_t)(next_rand(b) % (uint64_t)n_ok);
            for (int32_t i = 0; i < n && w < 0; i++)
                if (healthy[i] && r-- == 0)
                    w = i;
        }
        break;
    }
    }
    if (w >= 0) {
        out->worker = w;
        out->matched = ptree_match(&b->trees[w], text, len);
        b->st.request_bytes += len;
        b->st.matched_bytes += out->matched;
        ptree_insert(&b->trees[w], text, len);
    }
    pthread_mutex_unlock(&b->mu);
}

void rt_balancer_forget(RtBalancer *b, int32_t w)
{
    if (w < 0 || w >= b->o.n_workers)
        return;
    pthread_mutex_lock(&b->mu);
    ptree_clear(&b->trees[w]);
    pthread_mutex_unlock(&b->mu);
}

RtBalancerStats rt_balancer_stats(RtBalancer *b)
{
    pthread_mutex_lock(&b->mu);
    RtBalancerStats s = b->st;
    pthread_mutex_unlock(&b->mu);
    return s;
}

size_t rt_balancer_tree_bytes(RtBalancer *b, int32_t w)
{
    if (w < 0 || w >= b->o.n_workers)
        return 0;
    pthread_mutex_lock(&b->mu);
    size_t n = b->trees[w].n_bytes;
    pthread_mutex_unlock(&b->mu);
    return n;
}

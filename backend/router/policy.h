/* policy.h -- which worker gets a request: the router's load-balancing policies.
 *
 *   cache_aware     SGLang's router: one approximate prefix tree per worker
 *                   (ptree.h) of the request texts sent there. Unless the load
 *                   is imbalanced, a request goes to the worker with the
 *                   longest matched prefix when match/len >= cache_threshold,
 *                   else to the worker with the smallest tree (most cache
 *                   room). Imbalanced (max in-flight - min > balance_abs and
 *                   max > balance_rel * min): the least-loaded worker.
 *   round_robin     healthy workers in turn
 *   shortest_queue  fewest requests in flight (ties rotate)
 *   random          uniform over the healthy workers
 * Every policy keeps the trees up to date, so /metrics reports the prefix
 * hit ratio a policy achieves (matched bytes / request bytes) whichever runs.
 * The balancer is pure bookkeeping with its own lock; the caller supplies
 * each worker's health and load (requests in flight) at the moment of the
 * choice. Owned by the router; thread-safe.
 */
#ifndef SGL_ROUTER_POLICY_H
#define SGL_ROUTER_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { /* ORDER RT_POLICY: rt_policy_names in policy.c */
    RT_CACHE_AWARE,
    RT_ROUND_ROBIN,
    RT_SHORTEST_QUEUE,
    RT_RANDOM,
    RT_N_POLICIES
} RtPolicy;

const char *rt_policy_name(RtPolicy p);
/* "cache_aware" etc. -> *p; false for any other word. */
bool rt_policy_parse(const char *s, RtPolicy *p);
/* "cache_aware|round_robin|shortest_queue|random" (static). */
const char *rt_policy_list(void);

typedef struct {
    RtPolicy policy;
    int32_t n_workers;       /* >= 1 */
    double cache_threshold;  /* [0, 1]; default 0.5 */
    int32_t balance_abs;     /* default 32 */
    double balance_rel;      /* >= 1; default 1.5 */
    size_t tree_max_bytes;   /* per worker; 0: unbounded */
    uint64_t seed;           /* random policy */
} RtBalancerOpts;

typedef struct {
    int32_t worker;          /* chosen index, or -1 when no worker is healthy */
    size_t matched;          /* bytes of the text found in that worker's tree */
    bool by_load;            /* cache_aware: chosen for balance, not cache */
} RtPick;

typedef struct RtBalancer RtBalancer;

/* NULL: out of memory or invalid options (n_workers < 1). */
RtBalancer *rt_balancer_new(const RtBalancerOpts *o);
void rt_balancer_free(RtBalancer *b);

/* Chooses a worker among those with healthy[i] for a request whose text is
 * text[0..len) (may be empty), given load[i] requests in flight, and
 * records the text in the chosen worker's tree. Both arrays are
 * (n_workers). out->worker is -1 when no worker is healthy. */
void rt_balancer_pick(RtBalancer *b, const char *text, size_t len, const bool *healthy,
                      const int32_t *load, RtPick *out);
/* Forgets what worker w was sent (its cache was flushed or it went down). */
void rt_balancer_forget(RtBalancer *b, int32_t w);

typedef struct {
    uint64_t request_bytes, matched_bytes;   /* over every pick */
    uint64_t by_cache, by_load, by_room;     /* cache_aware decisions */
} RtBalancerStats;
RtBalancerStats rt_balancer_stats(RtBalancer *b);
/* Bytes held by worker w's tree. */
size_t rt_balancer_tree_bytes(RtBalancer *b, int32_t w);

#endif

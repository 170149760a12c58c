/* radix_cache.h -- RadixAttention's prefix cache: token ids -> KV pages.
 *
 * A radix tree keyed by token-id sequences (within a namespace) whose edges
 * carry the KV page ids of those tokens. With page_size P > 1 keys are
 * matched and inserted in whole pages only (lengths are multiples of P).
 *
 * Ownership: the tree holds one KvPool reference on every page it stores.
 * A request that matched a prefix borrows those pages while it holds a lock
 * on the matched node (radix_lock); locked nodes and their ancestors are
 * "protected" and never evicted. Unlocked leaves are "evictable", LRU first.
 *
 * Which calls modify the tree: match may split one node (same content, same
 * pages: logically const) and updates access times; insert, evict, reset do.
 * Page ids returned by match stay valid while the node is locked.
 * With the cache disabled, match returns 0 and insert stores nothing.
 */
#ifndef SGL_RADIX_CACHE_H
#define SGL_RADIX_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/kv_pool.h"

typedef struct RadixCache RadixCache;
typedef struct RadixNode RadixNode;

/* The pool must outlive the cache. NULL on allocation failure. */
RadixCache *radix_new(KvPool *pool, bool disabled);
/* Drops the tree's references to every page, then frees the tree. */
void radix_free(RadixCache *c);

/* Longest cached prefix of key[0..n) in namespace ns. Writes the page id of
 * each matched page into pages (capacity n / page_size + 1) and returns the
 * matched length in tokens. *last gets the deepest matched node (the root
 * when nothing matched): lock it to keep the pages. Counts hits/misses only
 * when count_stats is true. */
int32_t radix_match(RadixCache *c, int32_t ns, const int32_t *key, int32_t n,
                    int32_t *pages, RadixNode **last, bool count_stats);

/* Inserts key[0..n) -> pages (n rounded down to whole pages). The tree takes
 * one reference to each page it newly stores. Returns the length (tokens) of
 * the prefix that was already cached: the caller still owns its references to
 * pages of that prefix and to everything it did not insert (drop them with
 * kvpool_unref). *last (may be NULL) gets the node ending the key. */
int32_t radix_insert(RadixCache *c, int32_t ns, const int32_t *key, int32_t n,
                     const int32_t *pages, RadixNode **last);

/* Lock / unlock a node and all its ancestors (moves tokens between evictable
 * and protected). Locking the root is a no-op. */
void radix_lock(RadixCache *c, RadixNode *node);
void radix_unlock(RadixCache *c, RadixNode *node);

/* Evicts least-recently-used unlocked leaves until at least n_tokens were
 * freed or nothing is evictable. Returns tokens freed. */
int32_t radix_evict(RadixCache *c, int32_t n_tokens);

/* Drops every unlocked node (flush_cache). Returns false, doing nothing, if
 * any node is locked. */
bool radix_reset(RadixCache *c);

int32_t radix_evictable_tokens(const RadixCache *c);
int32_t radix_protected_tokens(const RadixCache *c);
int32_t radix_total_tokens(const RadixCache *c);

typedef struct {
    int64_t hit_tokens;      /* tokens served from the cache by counted matches */
    int64_t miss_tokens;     /* tokens of counted matches that were not cached */
    int64_t evicted_tokens;
} RadixStats;
RadixStats radix_stats(const RadixCache *c);

/* Sizes, locks and the evictable/protected counters all agree; every page in
 * the tree has refcount >= 1. Writes the first violation into why. */
bool radix_check_integrity(const RadixCache *c, char *why, size_t why_len);

#endif

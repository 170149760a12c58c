/* radix_cache.h -- RadixAttention's prefix cache: token ids -> KV pages.
 *
 * A radix tree keyed by token-id sequences (within a namespace) whose edges
 * carry the KV page ids of those tokens. With page_size P > 1 keys are
 * matched and inserted in whole pages only (lengths are multiples of P).
 * Namespaces never share nodes: the same tokens in two namespaces are two
 * separate paths from the root.
 *
 * Ownership: the tree holds one KvPool reference on every page it stores.
 * A request that matched a prefix borrows those pages while it holds a lock
 * on the matched node (radix_lock); locked nodes and their ancestors are
 * "protected" and never evicted. Unlocked leaves are "evictable", LRU first.
 * A RadixNode* stays valid while it is locked; an unlocked one may be freed
 * by the next radix_evict / radix_reset.
 *
 * Which calls modify the tree: match may split one node (same content, same
 * pages: logically const) and updates access times; insert, evict, reset do;
 * peek and every getter change nothing.
 * Page ids returned by match stay valid while the node is locked.
 * With the cache disabled, match returns 0 and insert stores nothing.
 * Not thread-safe (engine thread only).
 */
#ifndef SGL_RADIX_CACHE_H
#define SGL_RADIX_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "runtime/kv_pool.h"

typedef struct RadixCache RadixCache;
typedef struct RadixNode RadixNode;

/* The pool must outlive the cache; its page size is the cache's P. NULL on
 * allocation failure. */
RadixCache *radix_new(KvPool *pool, bool disabled);
/* Drops the tree's references to every page (locked or not), then frees the
 * tree. */
void radix_free(RadixCache *c);

/* Longest cached prefix of key[0..n) in namespace ns, in whole pages. Writes
 * the page id of each matched page into pages (capacity n / page_size + 1; may
 * be NULL) and returns the matched length in tokens. *last (may be NULL) gets
 * the deepest matched node (the root when nothing matched): lock it to keep
 * the pages. If the match ends inside an edge, that node is split so *last
 * ends exactly there (if the split cannot allocate, the match stops at the
 * last whole node instead). Counts hits/misses only when count_stats is true. */
int32_t radix_match(RadixCache *c, int32_t ns, const int32_t *key, int32_t n,
                    int32_t *pages, RadixNode **last, bool count_stats);

/* Like radix_match but changes nothing (no split, no access time, no stats):
 * for planning, e.g. ranking waiting requests by cached prefix length. */
int32_t radix_peek(const RadixCache *c, int32_t ns, const int32_t *key,
                   int32_t n, int32_t *pages);

/* Inserts key[0..n) -> pages (n rounded down to A = whole pages). Returns R,
 * the length (tokens) of the prefix that was already cached. Ownership of the
 * caller's references, by token range of key:
 *   [0, R)   already cached: the tree keeps its own pages and takes nothing;
 *            the caller still owns whatever references it had to pages of
 *            this range (duplicates it allocated: drop them with kvpool_unref)
 *   [R, A)   on success, ownership of one reference of each page passes to
 *            the tree
 *   [A, n)   the partial last page is not inserted: the caller still owns it
 * *last (may be NULL) gets the node ending at A (the root when A = 0), split
 * out of an edge if A ends inside one. Returns SGL_E_NOMEM (< 0) if a node
 * could not be allocated: then nothing changed logically, the caller still
 * owns every reference and *last is the root. Disabled cache: returns 0,
 * stores nothing, and the caller still owns every reference ([R, A) included:
 * check radix_disabled, or simply drop all its pages). */
int32_t radix_insert(RadixCache *c, int32_t ns, const int32_t *key, int32_t n,
                     const int32_t *pages, RadixNode **last);

/* Lock / unlock a node and all its ancestors (moves tokens between evictable
 * and protected). Locking the root (or NULL) is a no-op. Every unlock must
 * pair with an earlier lock of the same node. */
void radix_lock(RadixCache *c, RadixNode *node);
void radix_unlock(RadixCache *c, RadixNode *node);

/* Evicts least-recently-used unlocked leaves (whole nodes; a parent whose
 * last child went becomes a leaf) until at least n_tokens were freed or
 * nothing is evictable. Their pages get kvpool_unref. Returns tokens freed. */
int32_t radix_evict(RadixCache *c, int32_t n_tokens);

/* Drops every node (flush_cache). Returns false, doing nothing, if any node is
 * locked. Hit/miss/evicted counters are kept (reset is not eviction). */
bool radix_reset(RadixCache *c);

int32_t radix_evictable_tokens(const RadixCache *c);
int32_t radix_protected_tokens(const RadixCache *c);
int32_t radix_total_tokens(const RadixCache *c);
int32_t radix_node_count(const RadixCache *c);    /* excluding the root */
bool radix_disabled(const RadixCache *c);
int32_t radix_node_prefix_len(const RadixNode *node); /* root..node end, tokens */

typedef struct {
    int64_t hit_tokens;      /* tokens served from the cache by counted matches */
    int64_t miss_tokens;     /* tokens of counted matches that were not cached */
    int64_t evicted_tokens;
} RadixStats;
RadixStats radix_stats(const RadixCache *c);

/* Sizes, locks and the evictable/protected counters all agree; parent/child
 * links, the child index and the LRU heap are consistent; no empty non-root
 * node; every page in the tree has refcount >= its number of occurrences (>= 1).
 * Writes the first violation into why. O(nodes + pages); no allocation. */
bool radix_check_integrity(const RadixCache *c, char *why, size_t why_len);

/* Debug dump, one line per node, indented by depth (first tokens only). */
void radix_dump(const RadixCache *c, FILE *out);

#endif

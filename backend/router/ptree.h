/* ptree.h -- the router's approximate prefix tree: what one worker has seen.
 *
 * A byte-level radix tree (compressed edges) over the request texts the
 * router sent to one worker. It approximates that worker's radix cache
 * without asking it: a long match means the worker probably still holds
 * the prefix's KV pages. Each node carries the tick of its last use; when
 * the bytes stored pass the cap, least-recently-used leaves are cut until
 * they fit again (the worker's own cache also evicts LRU). Bytes, not
 * characters: a UTF-8 text matches byte for byte, which is what prefix
 * reuse needs. Not thread-safe: the caller (policy.c) holds a lock.
 *
 * Invariants (ptree_check): every non-root edge is non-empty; siblings
 * start with distinct bytes; n_bytes and n_nodes count the edges' bytes and
 * the nodes; a node is never older than its children (an insert refreshes
 * its whole path), so the oldest leaf is the least recently used entry.
 */
#ifndef SGL_PTREE_H
#define SGL_PTREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct PtNode PtNode;
typedef struct {
    PtNode *root;        /* owned */
    size_t n_bytes;      /* bytes on all edges */
    size_t n_nodes;      /* nodes except the root */
    size_t cap_bytes;    /* 0: no cap */
    uint64_t tick;       /* logical clock, advanced by each insert */
} PtTree;

/* Empty tree holding at most cap_bytes (0: unbounded). false: no memory. */
bool ptree_init(PtTree *t, size_t cap_bytes);
void ptree_deinit(PtTree *t);
/* Drops every entry (the worker's cache was flushed). */
void ptree_clear(PtTree *t);

/* Length of the longest prefix of s[0..len) stored in the tree. Does not
 * modify the tree (recency is refreshed by ptree_insert). */
size_t ptree_match(const PtTree *t, const char *s, size_t len);

/* Adds s[0..len) (a prefix longer than cap_bytes is cut to it), marks its
 * whole path as just used, then evicts LRU leaves until n_bytes <= cap.
 * false: out of memory (the tree stays consistent, maybe without s). */
bool ptree_insert(PtTree *t, const char *s, size_t len);

/* Evicts least-recently-used leaves until n_bytes <= max_bytes; returns the
 * bytes removed. */
size_t ptree_evict(PtTree *t, size_t max_bytes);

/* Structural check (tests): true when every invariant above holds. */
bool ptree_check(const PtTree *t);

#endif

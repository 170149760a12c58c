/* radix_cache.c -- the token-id radix tree behind RadixAttention.
 *
 * Each non-root node is one edge: key[0..len) token ids and the pages[len/P]
 * holding their KV. Three structures index the nodes:
 *   - child lists: each node links its children (unordered, doubly linked);
 *     used to walk, free and check the tree.
 *   - child index: one open-addressing hash table (linear probing, backward
 *     shift deletion) for the whole tree, keyed by (parent id, namespace,
 *     first page of the child's key). Finding the child that continues a key
 *     is O(P) whatever the fan-out (a root can have 100k+ children).
 *   - LRU heap: a binary min-heap on last_access of exactly the evictable
 *     leaves (non-root, no children, lock_ref 0); each node knows its index.
 * Invariants (radix_check_integrity): len > 0 and a multiple of P below the
 * root; siblings differ in their first page; lock_ref(n) >= sum of children's
 * lock_ref (a lock counts on the node and all its ancestors); evictable /
 * protected / total equal the sums of len over unlocked / locked / all nodes;
 * a parent was accessed no earlier than its children. Access time is a
 * counter bumped once per match/insert, so eviction order is deterministic.
 * Hash and heap capacity are reserved before a tree change so that no step
 * after the first mutation can fail.
 */
#include "runtime/radix_cache.h"

#include <assert.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

struct RadixNode {
    RadixNode *parent;       /* NULL at the root */
    RadixNode *first_child;
    RadixNode *prev_sib, *next_sib;
    int32_t *key;            /* (len,) token ids of this edge */
    int32_t *pages;          /* (len / P,) page ids of this edge */
    int32_t *buf;            /* allocation holding key and pages (may be larger) */
    int32_t len;             /* tokens on this edge: > 0 below the root */
    int32_t end;             /* tokens from the root to the end of this edge */
    int32_t ns;              /* namespace (meaningless at the root) */
    int32_t lock_ref;        /* locks held on this node or a descendant */
    int32_t n_children;
    int32_t heap_idx;        /* index in the LRU heap, -1 if not there */
    uint64_t id;             /* serial number, hashed by the child index */
    uint64_t hash;           /* this node's key in the child index */
    uint64_t last_access;
};

typedef struct {
    uint64_t hash;
    RadixNode *node;         /* NULL = empty slot */
} Slot;

struct RadixCache {
    KvPool *pool;            /* borrowed; must outlive the cache */
    bool disabled;
    int32_t page_size;       /* P */
    RadixNode root;
    int32_t n_nodes;         /* excluding the root = used slots */
    uint64_t next_id;
    uint64_t clock;          /* access time source */
    Slot *slots;             /* (slot_mask + 1,) child index */
    size_t slot_mask;
    RadixNode **heap;        /* (heap_cap,) evictable leaves, min last_access first */
    int32_t heap_n, heap_cap;
    int64_t evictable, protected_, total; /* tokens */
    RadixStats stats;
    int32_t *scratch;        /* (n_pages,) page occurrence counts for the check */
};

/* ---- child index ------------------------------------------------------- */

static uint64_t hash_first_page(uint64_t parent_id, int32_t ns, const int32_t *tok,
                                int32_t page_size)
{
    uint64_t h = parent_id * 0x9E3779B97F4A7C15ull ^ (uint32_t)ns * 0xC2B2AE3D27D4EB4Full;
    for (int32_t i = 0; i < page_size; i++)
        h = (h ^ (uint32_t)tok[i]) * 0x100000001B3ull;
    h ^= h >> 33;
    h *= 0xFF51AFD7ED558CCDull;
    h ^= h >> 33;
    h *= 0xC4CEB9FE1A85EC53ull;
    h ^= h >> 33;
    return h;
}

/* The child of parent (in namespace ns) whose key starts with the page tok. */
static RadixNode *child_find(const RadixCache *c, const RadixNode *parent, int32_t ns,
                             const int32_t *tok)
{
    uint64_t h = hash_first_page(parent->id, ns, tok, c->page_size);
    size_t size = (size_t)c->page_size * sizeof *tok;
    for (size_t i = h & c->slot_mask;; i = (i + 1) & c->slot_mask) {
        const Slot *s = &c->slots[i];
        if (!s->node)
            return NULL;
        if (s->hash == h && s->node->parent == parent && s->node->ns == ns &&
            memcmp(s->node->key, tok, size) == 0)
            return s->node;
    }
}

static size_t slot_of(const RadixCache *c, const RadixNode *node)
{
    size_t i = node->hash & c->slot_mask;
    while (c->slots[i].node != node) {
        assert(c->slots[i].node);
        i = (i + 1) & c->slot_mask;
    }
    return i;
}

/* Capacity must have been reserved (index_reserve). */
static void index_add(RadixCache *c, RadixNode *node)
{
    node->hash = hash_first_page(node->parent->id, node->ns, node->key, c->page_size);
    size_t i = node->hash & c->slot_mask;
    while (c->slots[i].node)
        i = (i + 1) & c->slot_mask;
    c->slots[i].hash = node->hash;
    c->slots[i].node = node;
}

/* Backward-shift deletion: later entries of the probe run move up so that no
 * tombstones are needed. */
static void index_remove(RadixCache *c, const RadixNode *node)
{
    size_t i = slot_of(c, node), j = i;
    for (;;) {
        j = (j + 1) & c->slot_mask;
        if (!c->slots[j].node)
            break;
        size_t k = c->slots[j].hash & c->slot_mask;
        bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
        if (stays)
            continue;
        c->slots[i] = c->slots[j];
        i = j;
    }
    c->slots[i].node = NULL;
}

/* Makes room for `extra` more nodes in the child index and the heap. On
 * failure nothing changed. */
static bool reserve(RadixCache *c, int32_t extra)
{
    size_t need = (size_t)c->n_nodes + (size_t)extra;
    if (need * 2 > c->slot_mask + 1) {
        size_t cap = (c->slot_mask + 1) * 2;
        while (need * 2 > cap)
            cap *= 2;
        Slot *ns = calloc(cap, sizeof *ns);
        if (!ns)
            return false;
        for (size_t i = 0; i <= c->slot_mask; i++) {
            Slot s = c->slots[i];
            if (!s.node)
                continue;
            size_t j = s.hash & (cap - 1);
            while (ns[j].node)
                j = (j + 1) & (cap - 1);
            ns[j] = s;
        }
        free(c->slots);
        c->slots = ns;
        c->slot_mask = cap - 1;
    }
    if (need > (size_t)c->heap_cap) {
        if (need > INT32_MAX / 2)
            return false;
        int32_t cap = c->heap_cap * 2 > (int32_t)need ? c->heap_cap * 2 : (int32_t)need;
        RadixNode **h = realloc(c->heap, (size_t)cap * sizeof *h);
        if (!h)
            return false;
        c->heap = h;
        c->heap_cap = cap;
    }
    return true;
}

/* ---- LRU heap of evictable leaves --------------------------------------- */

static void heap_set(RadixCache *c, int32_t i, RadixNode *n)
{
    c->heap[i] = n;
    n->heap_idx = i;
}

static void sift_up(RadixCache *c, int32_t i)
{
    RadixNode *n = c->heap[i];
    while (i > 0) {
        int32_t up = (i - 1) / 2;
        if (c->heap[up]->last_access <= n->last_access)
            break;
        heap_set(c, i, c->heap[up]);
        i = up;
    }
    heap_set(c, i, n);
}

static void sift_down(RadixCache *c, int32_t i)
{
    RadixNode *n = c->heap[i];
    for (;;) {
        int32_t l = 2 * i + 1, m = l;
        if (l >= c->heap_n)
            break;
        if (l + 1 < c->heap_n && c->heap[l + 1]->last_access < c->heap[l]->last_access)
            m = l + 1;
        if (n->last_access <= c->heap[m]->last_access)
            break;
        heap_set(c, i, c->heap[m]);
        i = m;
    }
    heap_set(c, i, n);
}

static void heap_remove(RadixCache *c, RadixNode *n)
{
    int32_t i = n->heap_idx;
    RadixNode *tail = c->heap[--c->heap_n];
    n->heap_idx = -1;
    if (tail == n)
        return;
    heap_set(c, i, tail);
    sift_up(c, i);
    sift_down(c, tail->heap_idx);
}

static bool is_evictable_leaf(const RadixCache *c, const RadixNode *n)
{
    return n != &c->root && n->n_children == 0 && n->lock_ref == 0;
}

/* Puts n in the heap or takes it out to match is_evictable_leaf. The heap
 * never grows past n_nodes, whose capacity was reserved. */
static void heap_update(RadixCache *c, RadixNode *n)
{
    bool want = is_evictable_leaf(c, n);
    if (want && n->heap_idx < 0) {
        assert(c->heap_n < c->heap_cap);
        heap_set(c, c->heap_n++, n);
        sift_up(c, n->heap_idx);
    } else if (!want && n->heap_idx >= 0) {
        heap_remove(c, n);
    }
}

/* Access times only grow, so a node in the heap can only move down. */
static void touch(RadixCache *c, RadixNode *n, uint64_t tick)
{
    n->last_access = tick;
    if (n->heap_idx >= 0)
        sift_down(c, n->heap_idx);
}

/* ---- nodes -------------------------------------------------------------- */

static void link_child(RadixNode *parent, RadixNode *child)
{
    child->parent = parent;
    child->prev_sib = NULL;
    child->next_sib = parent->first_child;
    if (parent->first_child)
        parent->first_child->prev_sib = child;
    parent->first_child = child;
    parent->n_children++;
}

static void unlink_child(RadixNode *child)
{
    RadixNode *p = child->parent;
    if (child->prev_sib)
        child->prev_sib->next_sib = child->next_sib;
    else
        p->first_child = child->next_sib;
    if (child->next_sib)
        child->next_sib->prev_sib = child->prev_sib;
    p->n_children--;
    child->prev_sib = child->next_sib = NULL;
}

/* A new unlinked node holding copies of key[0..len) and pages[0..len/P). */
static RadixNode *node_new(RadixCache *c, int32_t ns, const int32_t *key,
                           const int32_t *pages, int32_t len)
{
    int32_t n_pages = len / c->page_size;
    RadixNode *n = calloc(1, sizeof *n);
    int32_t *buf = malloc(((size_t)len + (size_t)n_pages) * sizeof *buf);
    if (!n || !buf) {
        free(n);
        free(buf);
        return NULL;
    }
    memcpy(buf, key, (size_t)len * sizeof *buf);
    memcpy(buf + len, pages, (size_t)n_pages * sizeof *buf);
    n->buf = n->key = buf;
    n->pages = buf + len;
    n->len = len;
    n->ns = ns;
    n->heap_idx = -1;
    n->id = c->next_id++;
    return n;
}

/* Splits child at s tokens (0 < s < len, multiple of P) into mid = key[0..s)
 * and child = key[s..len); returns mid, which takes child's place, lock_ref
 * and access time. Copies the shorter half. NULL (nothing changed) on
 * allocation failure. Needs one reserved slot. */
static RadixNode *split(RadixCache *c, RadixNode *child, int32_t s)
{
    int32_t P = c->page_size, a = s, b = child->len - s;
    assert(s > 0 && s < child->len && s % P == 0);
    RadixNode *mid = calloc(1, sizeof *mid);
    int32_t half = a <= b ? a : b;
    int32_t *buf = malloc(((size_t)half + (size_t)(half / P)) * sizeof *buf);
    if (!mid || !buf) {
        free(mid);
        free(buf);
        return NULL;
    }
    if (a <= b) {
        memcpy(buf, child->key, (size_t)a * sizeof *buf);
        memcpy(buf + a, child->pages, (size_t)(a / P) * sizeof *buf);
        mid->buf = mid->key = buf;
        mid->pages = buf + a;
        child->key += a;
        child->pages += a / P;
    } else {
        memcpy(buf, child->key + a, (size_t)b * sizeof *buf);
        memcpy(buf + b, child->pages + a / P, (size_t)(b / P) * sizeof *buf);
        mid->buf = child->buf;
        mid->key = child->key;
        mid->pages = child->pages;
        child->buf = child->key = buf;
        child->pages = buf + b;
    }
    mid->len = a;
    child->len = b;
    mid->end = child->end - b;
    mid->ns = child->ns;
    mid->lock_ref = child->lock_ref;
    mid->last_access = child->last_access;
    mid->heap_idx = -1;
    mid->id = c->next_id++;
    /* mid takes child's place among the siblings and in the child index. */
    RadixNode *p = child->parent;
    mid->parent = p;
    mid->prev_sib = child->prev_sib;
    mid->next_sib = child->next_sib;
    if (mid->prev_sib)
        mid->prev_sib->next_sib = mid;
    else
        p->first_child = mid;
    if (mid->next_sib)
        mid->next_sib->prev_sib = mid;
    size_t slot = slot_of(c, child);
    mid->hash = child->hash;
    c->slots[slot].node = mid;
    child->prev_sib = child->next_sib = NULL;
    mid->first_child = child;
    mid->n_children = 1;
    child->parent = mid;
    index_add(c, child);
    c->n_nodes++;
    return mid;
}

/* Unlinks and frees an evictable leaf, dropping the tree's page references. */
static void evict_leaf(RadixCache *c, RadixNode *n)
{
    RadixNode *p = n->parent;
    kvpool_unref(c->pool, n->pages, n->len / c->page_size);
    c->evictable -= n->len;
    c->total -= n->len;
    index_remove(c, n);
    heap_remove(c, n);
    unlink_child(n);
    c->n_nodes--;
    free(n->buf);
    free(n);
    heap_update(c, p);
}

/* Common prefix of a[0..n) and b[0..n), rounded down to whole pages. */
static int32_t common_pages(const int32_t *a, const int32_t *b, int32_t n, int32_t P)
{
    int32_t i = 0;
    while (i < n && a[i] == b[i])
        i++;
    return i - i % P;
}

/* ---- public API --------------------------------------------------------- */

RadixCache *radix_new(KvPool *pool, bool disabled)
{
    RadixCache *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->pool = pool;
    c->disabled = disabled;
    c->page_size = kvpool_page_size(pool);
    c->root.heap_idx = -1;
    c->root.id = c->next_id++;
    c->slot_mask = 63;
    c->slots = calloc(c->slot_mask + 1, sizeof *c->slots);
    c->heap_cap = 32;
    c->heap = malloc((size_t)c->heap_cap * sizeof *c->heap);
    c->scratch = calloc((size_t)kvpool_n_pages(pool), sizeof *c->scratch);
    if (!c->slots || !c->heap || !c->scratch) {
        radix_free(c);
        return NULL;
    }
    return c;
}

/* Frees every node, dropping the tree's page references; the root remains. */
static void drop_all(RadixCache *c)
{
    for (size_t i = 0; i <= c->slot_mask; i++) {
        RadixNode *n = c->slots[i].node;
        if (!n)
            continue;
        kvpool_unref(c->pool, n->pages, n->len / c->page_size);
        free(n->buf);
        free(n);
        c->slots[i].node = NULL;
    }
    c->root.first_child = NULL;
    c->root.n_children = 0;
    c->n_nodes = 0;
    c->heap_n = 0;
    c->evictable = c->protected_ = c->total = 0;
}

void radix_free(RadixCache *c)
{
    if (!c)
        return;
    if (c->slots)
        drop_all(c);
    free(c->slots);
    free(c->heap);
    free(c->scratch);
    free(c);
}

int32_t radix_match(RadixCache *c, int32_t ns, const int32_t *key, int32_t n,
                    int32_t *pages, RadixNode **last, bool count_stats)
{
    int32_t P = c->page_size, i = 0;
    RadixNode *node = &c->root;
    if (n < 0)
        n = 0;
    int32_t n_al = n - n % P;
    if (!c->disabled && n_al > 0) {
        uint64_t tick = ++c->clock;
        bool can_split = reserve(c, 1);
        while (i < n_al) {
            RadixNode *child = child_find(c, node, ns, key + i);
            if (!child)
                break;
            int32_t room = n_al - i < child->len ? n_al - i : child->len;
            int32_t m = common_pages(child->key, key + i, room, P);
            if (m < child->len) {
                RadixNode *mid = can_split ? split(c, child, m) : NULL;
                if (!mid)
                    break;
                child = mid;
            }
            if (pages)
                memcpy(pages + i / P, child->pages, (size_t)(m / P) * sizeof *pages);
            touch(c, child, tick);
            i += m;
            node = child;
        }
    }
    if (count_stats) {
        c->stats.hit_tokens += i;
        c->stats.miss_tokens += n - i;
    }
    if (last)
        *last = node;
    return i;
}

int32_t radix_peek(const RadixCache *c, int32_t ns, const int32_t *key, int32_t n,
                   int32_t *pages)
{
    int32_t P = c->page_size, i = 0;
    const RadixNode *node = &c->root;
    if (n < 0 || c->disabled)
        return 0;
    int32_t n_al = n - n % P;
    while (i < n_al) {
        const RadixNode *child = child_find(c, node, ns, key + i);
        if (!child)
            break;
        int32_t room = n_al - i < child->len ? n_al - i : child->len;
        int32_t m = common_pages(child->key, key + i, room, P);
        if (pages)
            memcpy(pages + i / P, child->pages, (size_t)(m / P) * sizeof *pages);
        i += m;
        if (m < child->len)
            break;
        node = child;
    }
    return i;
}

int32_t radix_insert(RadixCache *c, int32_t ns, const int32_t *key, int32_t n,
                     const int32_t *pages, RadixNode **last)
{
    int32_t P = c->page_size, i = 0;
    RadixNode *node = &c->root;
    int32_t ret = 0;
    int32_t n_al = n < 0 ? 0 : n - n % P;
    if (c->disabled || n_al == 0)
        goto out;
    if (!reserve(c, 2)) {
        ret = SGL_E_NOMEM;
        goto out;
    }
    uint64_t tick = ++c->clock;
    while (i < n_al) {
        RadixNode *child = child_find(c, node, ns, key + i);
        if (!child) {
            RadixNode *leaf = node_new(c, ns, key + i, pages + i / P, n_al - i);
            if (!leaf) {
                node = &c->root;
                ret = SGL_E_NOMEM;
                goto out;
            }
            leaf->last_access = tick;
            leaf->end = node->end + leaf->len;
            link_child(node, leaf);
            index_add(c, leaf);
            c->n_nodes++;
            c->total += leaf->len;
            c->evictable += leaf->len;
            heap_update(c, node);
            heap_update(c, leaf);
            ret = i;
            node = leaf;
            goto out;
        }
        int32_t room = n_al - i < child->len ? n_al - i : child->len;
        int32_t m = common_pages(child->key, key + i, room, P);
        if (m < child->len) {
            RadixNode *mid = split(c, child, m);
            if (!mid) {
                node = &c->root;
                ret = SGL_E_NOMEM;
                goto out;
            }
            child = mid;
        }
        touch(c, child, tick);
        i += m;
        node = child;
    }
    ret = n_al;
out:
    if (last)
        *last = node;
    return ret;
}

void radix_lock(RadixCache *c, RadixNode *node)
{
    for (RadixNode *x = node; x && x != &c->root; x = x->parent) {
        if (x->lock_ref++ == 0) {
            c->evictable -= x->len;
            c->protected_ += x->len;
            if (x->heap_idx >= 0)
                heap_remove(c, x);
        }
    }
}

void radix_unlock(RadixCache *c, RadixNode *node)
{
    for (RadixNode *x = node; x && x != &c->root; x = x->parent) {
        assert(x->lock_ref > 0 && "radix_unlock without a matching lock");
        if (x->lock_ref <= 0)
            continue;
        if (--x->lock_ref == 0) {
            c->protected_ -= x->len;
            c->evictable += x->len;
            heap_update(c, x);
        }
    }
}

int32_t radix_evict(RadixCache *c, int32_t n_tokens)
{
    int64_t freed = 0;
    while (freed < n_tokens && c->heap_n > 0) {
        RadixNode *n = c->heap[0];
        freed += n->len;
        evict_leaf(c, n);
    }
    c->stats.evicted_tokens += freed;
    return (int32_t)freed;
}

bool radix_reset(RadixCache *c)
{
    if (c->protected_ > 0)
        return false;
    drop_all(c);
    return true;
}

int32_t radix_evictable_tokens(const RadixCache *c) { return (int32_t)c->evictable; }
int32_t radix_protected_tokens(const RadixCache *c) { return (int32_t)c->protected_; }
int32_t radix_total_tokens(const RadixCache *c) { return (int32_t)c->total; }
int32_t radix_node_count(const RadixCache *c) { return c->n_nodes; }
bool radix_disabled(const RadixCache *c) { return c->disabled; }
int32_t radix_node_prefix_len(const RadixNode *node) { return node ? node->end : 0; }
RadixStats radix_stats(const RadixCache *c) { return c->stats; }

/* ---- checks and dump ---------------------------------------------------- */

/* Pre-order successor using the links only (no recursion, no stack). */
static const RadixNode *next_preorder(const RadixNode *root, const RadixNode *n, int *depth)
{
    if (n->first_child) {
        (*depth)++;
        return n->first_child;
    }
    while (n != root && !n->next_sib) {
        n = n->parent;
        (*depth)--;
    }
    return n == root ? NULL : n->next_sib;
}

#define CHECK(cond, ...)                                  \
    do {                                                  \
        if (!(cond)) {                                    \
            snprintf(why, why_len, __VA_ARGS__);          \
            goto out;                                     \
        }                                                 \
    } while (0)

/* Checks one node's own fields and its child list. */
static bool check_node(const RadixCache *c, const RadixNode *n, int64_t *sums,
                       int32_t *n_leaves, char *why, size_t why_len)
{
    bool ok = false;
    int32_t P = c->page_size, n_pages = kvpool_n_pages(c->pool);
    const RadixNode *root = &c->root;
    if (n == root) {
        CHECK(n->len == 0 && n->end == 0 && !n->parent && n->lock_ref == 0,
              "root has len %d end %d lock_ref %d", n->len, n->end, n->lock_ref);
    } else {
        const RadixNode *p = n->parent;
        CHECK(n->len > 0 && n->len % P == 0, "node %" PRIu64 " has len %d (page size %d)",
              n->id, n->len, P);
        CHECK(n->end == p->end + n->len, "node %" PRIu64 " end %d != parent end %d + len %d",
              n->id, n->end, p->end, n->len);
        CHECK(p == root || p->ns == n->ns, "node %" PRIu64 " namespace %d under namespace %d",
              n->id, n->ns, p->ns);
        CHECK(n->lock_ref >= 0, "node %" PRIu64 " lock_ref %d", n->id, n->lock_ref);
        CHECK(p == root || p->last_access >= n->last_access,
              "node %" PRIu64 " accessed after its parent", n->id);
        CHECK(child_find(c, p, n->ns, n->key) == n,
              "node %" PRIu64 " not found in the child index (duplicate first page?)", n->id);
        sums[n->lock_ref > 0 ? 1 : 0] += n->len;
        for (int32_t k = 0; k < n->len / P; k++) {
            int32_t pg = n->pages[k];
            CHECK(pg >= 0 && pg < n_pages, "node %" PRIu64 " holds bad page id %d", n->id, pg);
            c->scratch[pg]++;
            CHECK(kvpool_refcount(c->pool, pg) >= c->scratch[pg],
                  "page %d is stored %d times in the tree but has refcount %d", pg,
                  c->scratch[pg], kvpool_refcount(c->pool, pg));
        }
        bool leaf = is_evictable_leaf(c, n);
        *n_leaves += leaf;
        CHECK(leaf == (n->heap_idx >= 0), "node %" PRIu64 " evictable=%d but heap index %d",
              n->id, leaf, n->heap_idx);
    }
    int32_t count = 0;
    int64_t child_locks = 0;
    const RadixNode *prev = NULL;
    for (const RadixNode *ch = n->first_child; ch; ch = ch->next_sib) {
        CHECK(ch->parent == n, "node %" PRIu64 ": child %" PRIu64 " has another parent",
              n->id, ch->id);
        CHECK(ch->prev_sib == prev, "node %" PRIu64 ": broken sibling links", n->id);
        CHECK(++count <= n->n_children, "node %" PRIu64 ": more children than n_children %d",
              n->id, n->n_children);
        child_locks += ch->lock_ref;
        prev = ch;
    }
    CHECK(count == n->n_children, "node %" PRIu64 ": %d children but n_children %d", n->id,
          count, n->n_children);
    CHECK(n == root || n->lock_ref >= child_locks,
          "node %" PRIu64 ": lock_ref %d below its children's %" PRId64, n->id, n->lock_ref,
          child_locks);
    ok = true;
out:
    return ok;
}

bool radix_check_integrity(const RadixCache *c, char *why, size_t why_len)
{
    bool ok = false;
    int64_t sums[2] = {0, 0}; /* unlocked, locked */
    int32_t n_seen = 0, n_leaves = 0, n_slots = 0, depth = 0;
    const RadixNode *root = &c->root;
    for (const RadixNode *n = root; n; n = next_preorder(root, n, &depth)) {
        CHECK(n_seen++ <= c->n_nodes, "more than n_nodes %d reachable (cycle?)", c->n_nodes);
        if (!check_node(c, n, sums, &n_leaves, why, why_len))
            goto out;
    }
    CHECK(n_seen == c->n_nodes + 1, "%d nodes reachable, n_nodes %d", n_seen - 1, c->n_nodes);
    for (size_t i = 0; i <= c->slot_mask; i++) {
        if (!c->slots[i].node)
            continue;
        n_slots++;
        CHECK(c->slots[i].hash == c->slots[i].node->hash, "child index slot %zu stale", i);
    }
    CHECK(n_slots == c->n_nodes, "child index has %d entries, n_nodes %d", n_slots, c->n_nodes);
    CHECK(c->heap_n == n_leaves, "heap has %d entries, %d evictable leaves", c->heap_n,
          n_leaves);
    for (int32_t i = 0; i < c->heap_n; i++) {
        CHECK(c->heap[i]->heap_idx == i, "heap entry %d has index %d", i, c->heap[i]->heap_idx);
        CHECK(i == 0 || c->heap[(i - 1) / 2]->last_access <= c->heap[i]->last_access,
              "heap order broken at %d", i);
    }
    CHECK(sums[0] == c->evictable, "evictable %" PRId64 " but unlocked nodes hold %" PRId64,
          c->evictable, sums[0]);
    CHECK(sums[1] == c->protected_, "protected %" PRId64 " but locked nodes hold %" PRId64,
          c->protected_, sums[1]);
    CHECK(sums[0] + sums[1] == c->total, "total %" PRId64 " != %" PRId64, c->total,
          sums[0] + sums[1]);
    CHECK(!c->disabled || c->total == 0, "disabled cache holds %" PRId64 " tokens", c->total);
    ok = true;
    if (why_len > 0)
        why[0] = '\0';
out:
    for (const RadixNode *n = root; n; n = next_preorder(root, n, &depth)) {
        if (n_seen-- <= 0)
            break;
        for (int32_t k = 0; n != root && k < n->len / c->page_size; k++)
            if (n->pages[k] >= 0 && n->pages[k] < kvpool_n_pages(c->pool))
                c->scratch[n->pages[k]] = 0;
    }
    return ok;
}

#undef CHECK

void radix_dump(const RadixCache *c, FILE *out)
{
    int depth = 0;
    fprintf(out, "radix: %d nodes, total %" PRId64 ", evictable %" PRId64
                 ", protected %" PRId64 ", page size %d%s\n",
            c->n_nodes, c->total, c->evictable, c->protected_, c->page_size,
            c->disabled ? " (disabled)" : "");
    for (const RadixNode *n = c->root.first_child; n; n = next_preorder(&c->root, n, &depth)) {
        fprintf(out, "%*sns=%d len=%d end=%d lock=%d t=%" PRIu64 " key=[", 2 * depth + 2, "",
                n->ns, n->len, n->end, n->lock_ref, n->last_access);
        for (int32_t k = 0; k < n->len && k < 8; k++)
            fprintf(out, "%s%d", k ? " " : "", n->key[k]);
        fprintf(out, "%s] pages=[%d..]\n", n->len > 8 ? " ..." : "", n->pages[0]);
    }
}

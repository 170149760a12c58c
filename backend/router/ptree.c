/* ptree.c -- byte radix tree with LRU trimming (ptree.h).
 *
 * Nodes hold their edge bytes and a small unsorted child array (a router's
 * trees fan out little: prompts share long prefixes). Every walk is a loop
 * with an explicit stack, never recursion: a tree of ever-longer prompts is
 * deep. Eviction builds a min-heap of the leaves by tick, cuts the oldest,
 * and pushes a parent that became a leaf, so one call is O(n log n).
 */
#include <stdlib.h>
#include <string.h>

#include "backend/router/ptree.h"

struct PtNode {
    char *edge;          /* (len) bytes below the parent; owned; NULL for the root */
    size_t len;
    PtNode **kids;       /* (n_kids) owned */
    uint32_t n_kids, cap_kids;
    PtNode *parent;
    uint64_t tick;       /* last insert through this node */
};

static PtNode *node_new(const char *s, size_t len)
{
    PtNode *n = calloc(1, sizeof *n);
    if (!n)
        return NULL;
    if (len) {
        if (!(n->edge = malloc(len))) {
            free(n);
            return NULL;
        }
        memcpy(n->edge, s, len);
        n->len = len;
    }
    return n;
}

static void node_free(PtNode *n)
{
    free(n->edge);
    free(n->kids);
    free(n);
}

static bool kid_reserve(PtNode *n)
{
    if (n->n_kids < n->cap_kids)
        return true;
    uint32_t nc = n->cap_kids ? n->cap_kids * 2 : 2;
    PtNode **k = realloc(n->kids, nc * sizeof *k);
    if (!k)
        return false;
    n->kids = k;
    n->cap_kids = nc;
    return true;
}

static PtNode *find_kid(const PtNode *n, unsigned char c)
{
    for (uint32_t i = 0; i < n->n_kids; i++)
        if ((unsigned char)n->kids[i]->edge[0] == c)
            return n->kids[i];
    return NULL;
}

static void remove_kid(PtNode *n, PtNode *k)
{
    for (uint32_t i = 0; i < n->n_kids; i++)
        if (n->kids[i] == k) {
            n->kids[i] = n->kids[--n->n_kids];
            return;
        }
}

static size_t common(const char *a, size_t na, const char *b, size_t nb)
{
    size_t n = na < nb ? na : nb, i = 0;
    while (i < n && a[i] == b[i])
        i++;
    return i;
}

bool ptree_init(PtTree *t, size_t cap_bytes)
{
    *t = (PtTree){.cap_bytes = cap_bytes};
    return (t->root = node_new(NULL, 0)) != NULL;
}

/* Frees every node below the root (iteratively: an explicit stack). */
static void free_below(PtTree *t)
{
    PtNode *n = t->root;
    /* Reuse the child arrays as the stack: detach kids one at a time. */
    while (n) {
        if (n->n_kids) {
            n = n->kids[--n->n_kids];
            continue;
        }
        PtNode *p = n->parent;
        if (n != t->root)
            node_free(n);
        n = p;
    }
    t->n_bytes = t->n_nodes = 0;
}

void ptree_clear(PtTree *t)
{
    if (t->root)
        free_below(t);
}

void ptree_deinit(PtTree *t)
{
    if (t->root) {
        free_below(t);
        node_free(t->root);
    }
    t->root = NULL;
}

size_t ptree_match(const PtTree *t, const char *s, size_t len)
{
    const PtNode *n = t->root;
    size_t i = 0;
    while (i < len) {
        const PtNode *k = find_kid(n, (unsigned char)s[i]);
        if (!k)
            break;
        size_t m = common(k->edge, k->len, s + i, len - i);
        i += m;
        if (m < k->len)
            break;
        n = k;
    }
    return i;
}

/* Splits k after m bytes of its edge: a new node holding edge[0..m) takes
 * k's place under its parent and k keeps the rest. NULL: out of memory
 * (nothing changed). */
static PtNode *split(PtTree *t, PtNode *k, size_t m)
{
    PtNode *mid = node_new(k->edge, m);
    if (!mid || !kid_reserve(mid)) {
        if (mid)
            node_free(mid);
        return NULL;
    }
    PtNode *p = k->parent;
    for (uint32_t i = 0; i < p->n_kids; i++)
        if (p->kids[i] == k)
            p->kids[i] = mid;
    mid->parent = p;
    mid->tick = k->tick;
    memmove(k->edge, k->edge + m, k->len - m);
    k->len -= m;
    k->parent = mid;
    mid->kids[mid->n_kids++] = k;
    t->n_nodes++;
    return mid;
}

bool ptree_insert(PtTree *t, const char *s, size_t len)
{
    if (t->cap_bytes && len > t->cap_bytes)
        len = t->cap_bytes;
    uint64_t tick = ++t->tick;
    PtNode *n = t->root;
    n->tick = tick;
    size_t i = 0;
    bool ok = true;
    while (i < len) {
        PtNode *k = find_kid(n, (unsigned char)s[i]);
        if (!k) {
            PtNode *leaf = node_new(s + i, len - i);
            if (!leaf || !kid_reserve(n)) {
                if (leaf)
                    node_free(leaf);
                ok = false;
                break;
            }
            leaf->parent = n;
            leaf->tick = tick;
            n->kids[n->n_kids++] = leaf;
            t->n_bytes += len - i;
            t->n_nodes++;
            break;
        }
        size_t m = common(k->edge, k->len, s + i, len - i);
        if (m < k->len && !(k = split(t, k, m))) {
            ok = false;
            break;
        }
        k->tick = tick;
        i += m;
        n = k;
    }
    if (t->cap_bytes)
        ptree_evict(t, t->cap_bytes);
    return ok;
}

/* ---- eviction: a binary min-heap of leaves keyed by tick ---- */

static void heap_push(PtNode **h, size_t *n, PtNode *x)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (h[p]->tick <= x->tick)
            break;
        h[i] = h[p];
        i = p;
    }
    h[i] = x;
}

static PtNode *heap_pop(PtNode **h, size_t *n)
{
    PtNode *top = h[0], *x = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n)
            break;
        if (c + 1 < *n && h[c + 1]->tick < h[c]->tick)
            c++;
        if (x->tick <= h[c]->tick)
            break;
        h[i] = h[c];
        i = c;
    }
    if (*n)
        h[i] = x;
    return top;
}

size_t ptree_evict(PtTree *t, size_t max_bytes)
{
    if (t->n_bytes <= max_bytes)
        return 0;
    /* every node is pushed at most once: n_nodes slots hold the heap, and
     * the DFS stack below needs at most n_nodes + 1 */
    PtNode **heap = malloc((t->n_nodes + 1) * sizeof *heap);
    PtNode **stack = malloc((t->n_nodes + 1) * sizeof *stack);
    size_t nh = 0, ns = 0, removed = 0;
    if (!heap || !stack)
        goto out;
    stack[ns++] = t->root;
    while (ns) {
        PtNode *n = stack[--ns];
        if (n->n_kids == 0 && n != t->root)
            heap_push(heap, &nh, n);
        for (uint32_t i = 0; i < n->n_kids; i++)
            stack[ns++] = n->kids[i];
    }
    while (t->n_bytes > max_bytes && nh) {
        PtNode *leaf = heap_pop(heap, &nh);
        PtNode *p = leaf->parent;
        remove_kid(p, leaf);
        t->n_bytes -= leaf->len;
        t->n_nodes--;
        removed += leaf->len;
        node_free(leaf);
        if (p != t->root && p->n_kids == 0)
            heap_push(heap, &nh, p);
    }
out:
    free(heap);
    free(stack);
    return removed;
}

bool ptree_check(const PtTree *t)
{
    if (!t->root || t->root->len != 0 || t->root->parent)
        return false;
    size_t bytes = 0, nodes = 0, ns = 0, cap = 64;
    const PtNode **stack = malloc(cap * sizeof *stack);
    bool ok = stack != NULL;
    if (ok)
        stack[ns++] = t->root;
    while (ok && ns) {
        const PtNode *n = stack[--ns];
        for (uint32_t i = 0; i < n->n_kids && ok; i++) {
            const PtNode *k = n->kids[i];
            ok = k->parent == n && k->len > 0 && k->tick <= n->tick;
            for (uint32_t j = 0; j < i && ok; j++)
                ok = n->kids[j]->edge[0] != k->edge[0];
            bytes += k->len;
            nodes++;
            if (ns == cap) {
                const PtNode **s2 = realloc(stack, 2 * cap * sizeof *s2);
                if (!s2) {
                    ok = false;
                    break;
                }
                stack = s2;
                cap *= 2;
            }
            stack[ns++] = k;
        }
    }
    free(stack);
    return ok && bytes == t->n_bytes && nodes == t->n_nodes;
}

/* kv_pool.c -- the paged KV allocator: a stack of free page ids + refcounts.
 *
 * Pure bookkeeping (nano-vllm's block manager): the pool never touches K/V
 * memory, it only decides which page ids are in use. Three arrays, all
 * allocated in kvpool_new and never resized:
 *   free_stack[0..n_free)  ids of the pages with refcount 0, popped from the top
 *   refcount[n_pages]      0 = free, >= 1 = in use
 *   mark[n_pages]          scratch for kvpool_check_integrity (duplicate check)
 * Invariant: page p is in free_stack exactly once iff refcount[p] == 0.
 * The stack starts as n_pages-1 .. 0 so fresh pools hand out 0, 1, 2, ...
 * Misuse (bad page id, unref of a free page) is a programmer error: it
 * asserts in debug builds and is ignored in release builds so that the free
 * list can never be corrupted by it.
 */
#include "runtime/kv_pool.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>

struct KvPool {
    int32_t n_pages;
    int32_t page_size;
    int32_t n_free;
    int32_t *free_stack; /* (n_pages,) the first n_free entries are valid */
    int32_t *refcount;   /* (n_pages,) */
    uint8_t *mark;       /* (n_pages,) scratch of the integrity check */
};

KvPool *kvpool_new(int32_t n_pages, int32_t page_size)
{
    if (n_pages < 1 || page_size < 1 || (int64_t)n_pages * page_size > INT32_MAX)
        return NULL;
    KvPool *p = calloc(1, sizeof *p);
    if (!p)
        goto fail;
    p->free_stack = malloc((size_t)n_pages * sizeof *p->free_stack);
    p->refcount = calloc((size_t)n_pages, sizeof *p->refcount);
    p->mark = calloc((size_t)n_pages, sizeof *p->mark);
    if (!p->free_stack || !p->refcount || !p->mark)
        goto fail;
    p->n_pages = n_pages;
    p->page_size = page_size;
    p->n_free = n_pages;
    for (int32_t i = 0; i < n_pages; i++)
        p->free_stack[i] = n_pages - 1 - i;
    return p;
fail:
    kvpool_free(p);
    return NULL;
}

void kvpool_free(KvPool *p)
{
    if (!p)
        return;
    free(p->mark);
    free(p->refcount);
    free(p->free_stack);
    free(p);
}

int32_t kvpool_page_size(const KvPool *p) { return p->page_size; }
int32_t kvpool_n_pages(const KvPool *p) { return p->n_pages; }
int32_t kvpool_n_free(const KvPool *p) { return p->n_free; }

SglStatus kvpool_alloc(KvPool *p, int32_t n, int32_t *pages)
{
    if (n < 0)
        return SGL_E_INVAL;
    if (n > p->n_free)
        return SGL_E_NOSPACE;
    for (int32_t i = 0; i < n; i++) {
        int32_t id = p->free_stack[--p->n_free];
        assert(p->refcount[id] == 0);
        p->refcount[id] = 1;
        pages[i] = id;
    }
    return SGL_OK;
}

void kvpool_ref(KvPool *p, const int32_t *pages, int32_t n)
{
    for (int32_t i = 0; i < n; i++) {
        int32_t id = pages[i];
        bool ok = id >= 0 && id < p->n_pages && p->refcount[id] > 0 &&
                  p->refcount[id] < INT32_MAX;
        assert(ok && "kvpool_ref: bad page id or page not in use");
        if (ok)
            p->refcount[id]++;
    }
}

void kvpool_unref(KvPool *p, const int32_t *pages, int32_t n)
{
    for (int32_t i = 0; i < n; i++) {
        int32_t id = pages[i];
        bool ok = id >= 0 && id < p->n_pages && p->refcount[id] > 0;
        assert(ok && "kvpool_unref: bad page id or page already free");
        if (!ok)
            continue;
        if (--p->refcount[id] == 0)
            p->free_stack[p->n_free++] = id;
    }
}

int32_t kvpool_refcount(const KvPool *p, int32_t page)
{
    if (page < 0 || page >= p->n_pages)
        return 0;
    return p->refcount[page];
}

bool kvpool_check_integrity(const KvPool *p, char *why, size_t why_len)
{
    bool ok = false;
    int32_t n_zero = 0;
    if (p->n_free < 0 || p->n_free > p->n_pages) {
        snprintf(why, why_len, "n_free %d outside 0..%d", p->n_free, p->n_pages);
        return false;
    }
    for (int32_t i = 0; i < p->n_pages; i++) {
        p->mark[i] = 0;
        if (p->refcount[i] < 0) {
            snprintf(why, why_len, "page %d has refcount %d", i, p->refcount[i]);
            goto out;
        }
        n_zero += p->refcount[i] == 0;
    }
    for (int32_t i = 0; i < p->n_free; i++) {
        int32_t id = p->free_stack[i];
        if (id < 0 || id >= p->n_pages) {
            snprintf(why, why_len, "free list slot %d holds bad page id %d", i, id);
            goto out;
        }
        if (p->mark[id]) {
            snprintf(why, why_len, "page %d is on the free list twice", id);
            goto out;
        }
        if (p->refcount[id] != 0) {
            snprintf(why, why_len, "page %d is free but has refcount %d", id,
                     p->refcount[id]);
            goto out;
        }
        p->mark[id] = 1;
    }
    if (n_zero != p->n_free) {
        snprintf(why, why_len, "%d pages have refcount 0 but %d are on the free list",
                 n_zero, p->n_free);
        goto out;
    }
    ok = true;
    if (why_len > 0)
        why[0] = '\0';
out:
    for (int32_t i = 0; i < p->n_pages; i++)
        p->mark[i] = 0;
    return ok;
}

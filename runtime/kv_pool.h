/* kv_pool.h -- the paged KV allocator: pure bookkeeping of page ids.
 *
 * The pool hands out page ids 0..n_pages-1; page p covers KV slots
 * p*page_size .. p*page_size+page_size-1 (the runner stores K/V per slot).
 * Pages carry a refcount: alloc sets it to 1, kvpool_ref/unref move it, and a
 * page returns to the free list when it reaches 0. All memory is allocated in
 * kvpool_new; alloc/ref/unref never allocate. Not thread-safe (engine thread).
 */
#ifndef SGL_KV_POOL_H
#define SGL_KV_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/status.h"

typedef struct KvPool KvPool;

/* NULL on allocation failure, n_pages < 1, page_size < 1, or more than
 * INT32_MAX slots (n_pages * page_size). */
KvPool *kvpool_new(int32_t n_pages, int32_t page_size);
void kvpool_free(KvPool *p);

int32_t kvpool_page_size(const KvPool *p);
int32_t kvpool_n_pages(const KvPool *p);
int32_t kvpool_n_free(const KvPool *p);          /* pages with refcount 0 */

/* All or nothing: on SGL_OK, pages[0..n) are fresh ids with refcount 1 and the
 * caller owns that one reference of each; on SGL_E_NOSPACE (n > n_free) or
 * SGL_E_INVAL (n < 0) nothing changed. */
SglStatus kvpool_alloc(KvPool *p, int32_t n, int32_t *pages);

/* Adds / drops one reference of each page (ids must be in use; misuse asserts
 * in debug builds and is ignored in release). Pages reaching 0 are free again. */
void kvpool_ref(KvPool *p, const int32_t *pages, int32_t n);
void kvpool_unref(KvPool *p, const int32_t *pages, int32_t n);
int32_t kvpool_refcount(const KvPool *p, int32_t page); /* 0 for a bad id */

/* Free list and refcounts agree (no page both free and referenced, no
 * duplicates). Writes the first violation into why. */
bool kvpool_check_integrity(const KvPool *p, char *why, size_t why_len);

#endif

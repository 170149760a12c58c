/* arena.c -- bump allocator over a list of malloc'd chunks (see arena.h).
 *
 * Deliberately simple: a request that does not fit the newest chunk opens a
 * new chunk of max(64 KiB, request) bytes; the tail of the old chunk is wasted.
 */
#include "frontend/arena.h"

#include <stdlib.h>
#include <string.h>

#define CHUNK_BYTES (64u << 10)
#define MAX_ALLOC ((size_t)1 << 30)

struct SglArenaChunk {
    SglArenaChunk *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
};

void sgl_arena_init(SglArena *a)
{
    memset(a, 0, sizeof *a);
}

void sgl_arena_deinit(SglArena *a)
{
    SglArenaChunk *c = a->head;
    while (c) {
        SglArenaChunk *next = c->next;
        free(c);
        c = next;
    }
    a->head = NULL;
    a->n_bytes = 0;
}

void sgl_arena_fail_at(SglArena *a, uint64_t n)
{
    a->fail_at = n ? a->n_allocs + n : 0;
}

void *sgl_arena_alloc(SglArena *a, size_t n)
{
    a->n_allocs++;
    if (a->fail_at && a->n_allocs >= a->fail_at)
        return NULL;
    if (n > MAX_ALLOC)
        return NULL;
    size_t need = (n + 15) & ~(size_t)15;
    if (need == 0)
        need = 16;
    SglArenaChunk *c = a->head;
    if (!c || c->cap - c->used < need) {
        size_t cap = need > CHUNK_BYTES ? need : CHUNK_BYTES;
        c = malloc(sizeof *c + cap);
        if (!c)
            return NULL;
        c->used = 0;
        c->cap = cap;
        c->next = a->head;
        a->head = c;
    }
    void *p = c->data + c->used;
    c->used += need;
    a->n_bytes += need;
    return p;
}

void *sgl_arena_calloc(SglArena *a, size_t n, size_t size)
{
    if (size && n > MAX_ALLOC / size)
        return NULL;
    void *p = sgl_arena_alloc(a, n * size);
    if (p)
        memset(p, 0, n * size);
    return p;
}

char *sgl_arena_strndup(SglArena *a, const char *s, size_t len)
{
    char *p = sgl_arena_alloc(a, len + 1);
    if (!p)
        return NULL;
    if (len)
        memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

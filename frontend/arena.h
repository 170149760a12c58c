/* arena.h -- the compiler's bump allocator (one per compilation).
 *
 * Tokens' strings, the AST and (later) IR under construction are allocated
 * here and freed together by sgl_arena_deinit (chibicc's "never free", bounded
 * to one compilation). Lua-style ownership: the *caller* provides the SglArena
 * and calls sgl_arena_deinit whatever the compile status, so no error path can
 * leak. Allocation failure returns NULL; it never aborts.
 * Test mode: sgl_arena_fail_at(a, n) makes the n-th allocation from now fail
 * (and every one after it), like Lua's Memcontrol.failnext, so tests can walk
 * every failure point of the frontend.
 */
#ifndef SGL_ARENA_H
#define SGL_ARENA_H

#include <stddef.h>
#include <stdint.h>

typedef struct SglArenaChunk SglArenaChunk;

typedef struct {
    SglArenaChunk *head;      /* newest chunk first; owned */
    size_t n_bytes;           /* total bytes handed out */
    uint64_t n_allocs;        /* allocations served (or attempted) so far */
    uint64_t fail_at;         /* 0 = off; else allocation number that starts failing */
} SglArena;

void sgl_arena_init(SglArena *a);
/* Frees every chunk; the arena can be reused after sgl_arena_init. */
void sgl_arena_deinit(SglArena *a);
/* n bytes aligned to 16; NULL when memory (or the test budget) runs out or n is
 * absurd (> 1 GiB). Memory is not zeroed. */
void *sgl_arena_alloc(SglArena *a, size_t n);
/* Zeroed allocation of n * size bytes with overflow check. */
void *sgl_arena_calloc(SglArena *a, size_t n, size_t size);
/* NUL-terminated copy of s[0..len); NULL on failure. */
char *sgl_arena_strndup(SglArena *a, const char *s, size_t len);
/* Test mode: the n-th allocation from now (1-based) and all later ones fail. */
void sgl_arena_fail_at(SglArena *a, uint64_t n);

#endif

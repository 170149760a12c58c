/* compile.c -- the frontend pipeline object (see compile.h). */
#include "frontend/compile.h"

#include <stdlib.h>
#include <string.h>

#include "frontend/parse.h"
#include "frontend/sema.h"

void sgl_compile_init(SglCompile *c)
{
    memset(c, 0, sizeof *c);
    sgl_arena_init(&c->arena);
    sgl_diags_init(&c->diags, SGL_MAX_ERRORS);
}

void sgl_compile_deinit(SglCompile *c)
{
    for (size_t i = 0; i < c->n_sources; i++)
        sgl_source_free(c->sources[i]);
    free(c->sources);
    sgl_diags_deinit(&c->diags);
    sgl_arena_deinit(&c->arena);
    memset(c, 0, sizeof *c);
}

/* Takes ownership of src (freeing it if it cannot be recorded). */
static bool add_source(SglCompile *c, SglSource *src)
{
    if (c->n_sources == c->cap_sources) {
        size_t cap = c->cap_sources ? c->cap_sources * 2 : 4;
        SglSource **s = realloc(c->sources, cap * sizeof *s);
        if (!s) {
            sgl_source_free(src);
            sgl_diag_error(&c->diags, sgl_loc(NULL, 0, 0), "out of memory");
            return false;
        }
        c->sources = s;
        c->cap_sources = cap;
    }
    c->sources[c->n_sources++] = src;
    return true;
}

static bool run(SglCompile *c, SglSource *src)
{
    if (!add_source(c, src))
        return false;
    c->program = sgl_parse(src, &c->arena, &c->diags, c->partial, &c->incomplete);
    if (!c->program || c->diags.n_errors > 0)
        return false;
    /* semantic check (sema.c) */
    SemaOptions sema_opt = {NULL, &c->sources, &c->n_sources, &c->cap_sources};
    SemaResult sema_res;
    sema_check(c->program, src, &c->arena, &c->diags, &sema_opt, &sema_res);
    return c->diags.n_errors == 0;
}

bool sgl_compile_file(SglCompile *c, const char *path)
{
    char err[512];
    SglSource *src = sgl_source_read_file(path, err, sizeof err);
    if (!src) {
        sgl_diag_error(&c->diags, sgl_loc(NULL, 0, 0), "%s", err);
        return false;
    }
    return run(c, src);
}

bool sgl_compile_buffer(SglCompile *c, const char *name, const char *bytes, size_t len)
{
    if (len > SGL_MAX_SOURCE_BYTES) {
        sgl_diag_error(&c->diags, sgl_loc(NULL, 0, 0), "%s: input is larger than the %u MiB limit",
                       name, SGL_MAX_SOURCE_BYTES >> 20);
        return false;
    }
    SglSource *src = sgl_source_new(name, bytes, len);
    if (!src) {
        sgl_diag_error(&c->diags, sgl_loc(NULL, 0, 0), "%s: out of memory", name);
        return false;
    }
    return run(c, src);
}

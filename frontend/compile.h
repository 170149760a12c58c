/* compile.h -- the frontend pipeline: source -> tokens -> AST -> checked AST.
 *
 * An SglCompile owns everything one compilation creates: the arena (AST,
 * strings), the diagnostics and the sources (whose bytes diagnostics point
 * into). Callers init it, run one sgl_compile_* call, read `program` and
 * `diags`, and always sgl_compile_deinit it, whatever the result (Lua's
 * protected-parser rule: the caller owns the scratch memory).
 * Stages: read -> parse (lexer.re, parser.y) -> semantic check (sema.c) ->
 * (later) lower. A stage runs only when the previous one reported no error;
 * all errors of the stage that failed are in `diags`.
 */
#ifndef SGL_COMPILE_H
#define SGL_COMPILE_H

#include <stdbool.h>
#include <stddef.h>

#include "frontend/arena.h"
#include "frontend/ast.h"
#include "frontend/diag.h"
#include "frontend/source.h"

typedef struct {
    SglArena arena;           /* owns the AST */
    SglDiags diags;
    SglSource **sources;      /* owned; sources[0] is the main file */
    size_t n_sources, cap_sources;
    AstNode *program;         /* AST_PROGRAM of the main file, or NULL */
    bool partial;             /* REPL mode: input may continue (set before compiling) */
    bool incomplete;          /* partial and the input stopped mid-construct */
} SglCompile;

void sgl_compile_init(SglCompile *c);
void sgl_compile_deinit(SglCompile *c);

/* Reads and compiles PATH ("-" = stdin). Returns true when there is no error;
 * on false, `diags` says why (a read failure is one diagnostic without a
 * location). `program` is set whenever parsing finished, even with errors. */
bool sgl_compile_file(SglCompile *c, const char *path);
/* Same for bytes in memory (copied); `name` is used in diagnostics. */
bool sgl_compile_buffer(SglCompile *c, const char *name, const char *bytes, size_t len);

#endif

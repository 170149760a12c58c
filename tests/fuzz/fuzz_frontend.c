/* fuzz_frontend.c -- libFuzzer target over the whole frontend: lexer, parser
 * (batch and REPL/partial modes), semantic checker, AST printer and the
 * diagnostic renderer. Any input must give a tree or diagnostics, never a
 * crash, leak, hang or sanitizer report. Imports are disabled (no
 * SemaOptions.sources) so inputs cannot make the target read files.
 * Build and run: see tests/fuzz/README.md.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "frontend/ast.h"
#include "frontend/diag.h"
#include "frontend/parse.h"
#include "frontend/sema.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void one_pass(const SglSource *src, bool partial, FILE *sink)
{
    SglArena arena;
    SglDiags diags;
    sgl_arena_init(&arena);
    sgl_diags_init(&diags, 0);
    bool incomplete = false;
    AstNode *prog = sgl_parse(src, &arena, &diags, partial, &incomplete);
    if (prog && diags.n_errors == 0 && !partial) {
        SemaResult res;
        sema_check(prog, src, &arena, &diags, NULL, &res);
        if (sink)
            ast_print(sink, prog);
    }
    if (sink)
        sgl_diags_render(&diags, sink);
    sgl_diags_deinit(&diags);
    sgl_arena_deinit(&arena);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static FILE *sink;    /* opened once; output is discarded */
    if (!sink)
        sink = fopen("/dev/null", "w");
    if (size > SGL_MAX_SOURCE_BYTES)
        return 0;
    SglSource *src = sgl_source_new("fuzz.sgl", (const char *)data, size);
    if (!src)
        return 0;
    one_pass(src, false, sink);
    one_pass(src, true, NULL);
    sgl_source_free(src);
    return 0;
}

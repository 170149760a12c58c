/* repl.h -- the core of `sglc repl`: a session over one engine.
 *
 * A session holds declarations (fn, type, const, extern, import), the
 * prompt state and the variables. Each complete input is either a
 * declaration (kept for every later turn) or statements: those run as one
 * turn, a program `fn main() { <state> <vars> if true { <input> } }` whose
 * start re-appends the state so far (the engine's radix cache still holds
 * its KV: the turn reports how many prompt tokens were cached) and
 * re-declares the variables (`let v: T = parse_json(...)`). Afterwards the
 * turn's final state and variables become the session's. A syntax, check or
 * runtime error reports and changes nothing; diagnostics count lines from
 * the input (`input:1:5:`; earlier declarations are `session:`). Meta info (meta(x)) does not
 * survive a turn.
 * Input arrives line by line (sgl_repl_feed); an input that is not complete
 * yet (an open block, bracket or string; an unfinished statement) waits for
 * more lines, detected by compiling it in the frontend's partial mode (the
 * push parser's "need more input"), or when the first error lies past the
 * input, in the closing braces the turn program adds (an open `(` meeting
 * them); an empty line ends such an input and shows the errors. Lines starting with ':' are commands
 * (:help lists them); a comment line on its own is skipped. `fn main() { ... }`
 * (no parameters) is not declared: its body runs as one turn, so a session
 * written by :save (declarations + fn main) loads back with :load. The frontend is reached through SglReplCompiler, so
 * this file depends on backend/ only. Output goes to `out`, errors to `err`.
 */
#ifndef SGL_REPL_H
#define SGL_REPL_H

#include <stdbool.h>
#include <stdio.h>

#include "backend/interp.h"

typedef enum { SGL_RC_OK, SGL_RC_INCOMPLETE, SGL_RC_ERROR } SglReplCompileRc;

typedef struct {
    /* Compiles src (named name) through the whole pipeline and the passes,
     * in the frontend's partial mode. SGL_RC_OK: *out set (owned by the
     * caller). SGL_RC_INCOMPLETE: the input stopped inside a string, comment
     * or bracket, or mid-construct. SGL_RC_ERROR: diagnostics rendered to
     * diag, *err_off = the byte offset of the first error in src. */
    SglReplCompileRc (*compile)(void *user, const char *name, const char *src, size_t len,
                                FILE *diag, IrProgram **out, size_t *err_off);
    void *user;
} SglReplCompiler;

typedef struct {
    SglEngine *engine;           /* borrowed; outlives the session */
    const ChatTemplate *tmpl;    /* borrowed */
    SglExecOpts xo;              /* gen defaults (stream is set per turn) */
    bool stream;                 /* echo each turn's text as it is generated */
    FILE *out, *err;             /* borrowed */
    SglReplCompiler cc;
} SglReplOpts;

typedef struct SglRepl SglRepl;

typedef enum { SGL_REPL_DONE, SGL_REPL_MORE, SGL_REPL_QUIT } SglReplStatus;

/* NULL on out of memory. */
SglRepl *sgl_repl_new(const SglReplOpts *o);
/* Frees the session; call after sgl_engine_close (turns' constraint tables
 * live in the session). NULL is fine. */
void sgl_repl_free(SglRepl *r);
/* One input line (no newline). MORE: the input continues on the next line. */
SglReplStatus sgl_repl_feed(SglRepl *r, const char *line);
/* Feeds every line of a file (what :load does); false if it cannot be read
 * or ends inside an incomplete input (reported). */
bool sgl_repl_load(SglRepl *r, const char *path);

#endif

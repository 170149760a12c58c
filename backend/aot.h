/* aot.h -- `sglc build`: a verified IrProgram -> C source -> a program binary.
 *
 * sgl_aot_emit writes one C file holding the program as static data (types,
 * constants, every function's node graph, externs, start-up prefills: the
 * exact IrProgram the passes produced) and a main() that hands it to the run
 * command line (backend/run_main.h). So the binary does no compiler work at
 * start-up and runs every op through the same implementations as `sglc run`
 * (backend/ops.c via the interpreter): one definition of the semantics.
 * Constraint DFAs the constraint pass attached are embedded serialized and
 * only validated at start (sgl_aot_attach_dfa), not recompiled.
 * sgl_aot_link runs the system C compiler ($CC, else cc from PATH) on it
 * and links the sglc static libraries. Where they are: $SGLC_LIB_DIR (a
 * meson build directory) and $SGLC_INCLUDE_DIR (the source root) when set,
 * else the build and source directories baked into sglc when it was built
 * (SGL_AOT_BUILD_DIR / SGL_AOT_SOURCE_DIR in backend/meson.build).
 * With a model, the binary embeds the model directory (its default --model)
 * and the hash of that tokenizer's vocabulary, checked at start, and for
 * every constraint DFA the token tables of that tokenizer (every reachable
 * state's mask and forced string, runtime/tokmask.h), loaded into the
 * interpreter's TokRegistry at start so no mask is computed while running.
 */
#ifndef SGL_AOT_H
#define SGL_AOT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "ir/ir.h"
#include "runtime/engine.h"

struct SglExec;   /* backend/interp.h */

typedef struct {
    const char *source_name;    /* FILE.sgl, for the binary's messages */
    const char *model_dir;      /* NULL, or the default --model */
    uint64_t vocab_hash;        /* with model_dir: tokvocab_hash of its tokenizer */
    const SglTokenizer *tok;    /* borrowed; non-NULL: embed token tables for it */
    size_t table_cap_bytes;     /* per constraint; larger tables are left out (0: 64 MiB) */
    FILE *notes;                /* table sizes and left-out tables are reported here, or NULL */
} SglAotOpts;

/* Writes the C translation of p (verified, frozen, borrowed) to f. false +
 * msg on a write error or a program the emitter cannot represent. */
bool sgl_aot_emit(const IrProgram *p, const SglAotOpts *o, FILE *f, char *msg, size_t cap);

/* Compiles c_path and links it into the executable out_path. false + msg:
 * no C compiler, missing sglc libraries (named, with where they were
 * looked for), or the compiler failed (its output is on stderr). */
bool sgl_aot_link(const char *c_path, const char *out_path, char *msg, size_t cap);

/* Start-up in a built binary: a GEN's constraint DFA (compiled by the
 * constraint pass at build time, embedded as sgl_dfa_serialize bytes) is
 * validated and attached to g->con.fsm; it lives as long as the process.
 * false: a message naming cmd on stderr. */
bool sgl_aot_attach_dfa(IrGenInfo *g, const uint8_t *bytes, size_t len, const char *cmd);

/* One constraint's embedded token tables (emitted by sgl_aot_emit). */
typedef struct {
    const IrNode *gen;          /* its GEN (con.fsm attached by sgl_aot_attach_dfa) */
    const uint8_t *bytes;
    size_t len;
} SglAotTables;

/* Start-up in a built binary, once the executor x (struct SglExec,
 * backend/interp.h) exists: every table is validated and loaded into
 * x->tokreg. false + msg: a model with another tokenizer (naming it and
 * built_for) or damaged tables (naming the gen's location). */
bool sgl_aot_load_tables(struct SglExec *x, const SglAotTables *t, size_t n,
                         const char *built_for, const char *model_dir, char *msg, size_t cap);

/* tokvocab_hash of tokenizer t. false + msg on failure. */
bool sgl_aot_vocab_hash(const SglTokenizer *t, uint64_t *out, char *msg, size_t cap);

/* Start-up check in a built binary: the opened model's vocabulary must hash
 * to `want`; else false + msg naming both hashes and the model. */
bool sgl_aot_check_vocab(SglEngine *e, uint64_t want, const char *built_for,
                         const char *model_dir, char *msg, size_t cap);

#endif

/* interp.h -- run a compiled IrProgram against the engine.
 *
 * An SglExec binds a verified, frozen IrProgram (borrowed, read-only) to an
 * engine (borrowed) and a chat template: it converts the program's types,
 * loads its externs (dlopen + dlsym, libffi) and holds the gen defaults.
 * sgl_exec_run_main runs `main` once; any number of runs may go on at once
 * from different threads (--batch), each with its own SglRun. Concurrency
 * inside a run: fork branches marked IR_F_PARALLEL and IR_F_ASYNC calls run
 * on worker threads (bounded; past the bound they run inline), each blocking
 * on its engine request while the engine batches them.
 */
#ifndef SGL_INTERP_H
#define SGL_INTERP_H

#include <jansson.h>
#include <stdio.h>

#include "backend/ops.h"

typedef struct {
    /* gen defaults (a gen's own options win). NaN / -1: not given */
    double temperature, top_p, min_p;
    int32_t max_tokens, top_k;
    int32_t max_tokens_cap;          /* > 0: upper bound on every gen's max_tokens */
    int64_t seed;
    bool no_parallel;                /* run forks and calls one after another */
    FILE *stream;                    /* --stream: main's state is echoed here */
    int32_t max_workers;             /* concurrent worker threads; 0 = 256 */
    struct SglRemote *remote;        /* borrowed: requests go over HTTP (backend/remote.h);
                                      * sgl_exec_new then takes engine NULL */
} SglExecOpts;

void sgl_exec_opts_default(SglExecOpts *o);

struct SglExec {
    const IrProgram *p;              /* borrowed */
    SglEngine *engine;               /* borrowed; NULL with the HTTP backend */
    struct SglRemote *remote;        /* borrowed: the HTTP backend, or NULL */
    const SglTokenizer *tok;         /* borrowed from the engine */
    const ChatTemplate *tmpl;
    SglExecOpts o;
    int32_t vocab;
    struct ExecTypes *types;         /* owned: ValTypes of the program's types */
    struct SglFfi *ffi;              /* owned: loaded externs */
    TokRegistry *tokreg;             /* owned: constraint FSMs */
    struct ConCache *cons;           /* owned: compiled constraint DFAs per GEN */
    pthread_mutex_t mu;
    int32_t workers;                 /* worker threads alive */
};

/* Prepares p for running. false with msg (an extern whose library or symbol
 * is missing gives "file:line:col: error: ..."); *out NULL then. */
bool sgl_exec_new(const IrProgram *p, SglEngine *e, const ChatTemplate *t, const SglExecOpts *o,
                  SglExec **out, char *msg, size_t cap);
void sgl_exec_free(SglExec *x);
/* Issues the program's start-up prefills (IrProgram.init); never waits. */
void sgl_exec_warm(SglExec *x);

typedef struct {
    char *text;                      /* main's final prompt state (owned) */
    size_t len;
    Value *ret;                      /* main's return value (VOID when none) */
    json_t *vars;                    /* {"name": value} of main's variables */
    SglRunCounters c;
    double seconds;
    char *error;                     /* runtime error line, or NULL */
} SglRunResult;

/* Runs main with args (main's parameters in order, borrowed). true on
 * success; false with res->error set on a runtime error. Always free res. */
bool sgl_exec_run_main(SglExec *x, Value *const *args, SglRunResult *res);
void sgl_run_result_free(SglRunResult *res);
/* {"text", "vars", "return", "meta": {...}} (or {"error"} on failure). */
json_t *sgl_run_result_json(const SglRunResult *res);

#endif

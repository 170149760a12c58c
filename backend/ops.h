/* ops.h -- the semantics of each IR op, one function per op, shared by the
 * interpreter (interp.c) and, later, AOT-compiled programs.
 *
 * SglRun is one running instance of a program (one `main`, or one --batch
 * line): its failure flag and first error, the engine requests it has in
 * flight (aborted together when it fails) and its counters. PState is a
 * prompt state: append-only text plus the chat-role bookkeeping; fork copies
 * it. Every op returns true on success; on a runtime error it calls
 * run_fail (which records "file:line:col: runtime error: msg" once and
 * aborts the run's requests) and returns false. Values passed in are
 * borrowed; values returned are new references owned by the caller.
 */
#ifndef SGL_OPS_H
#define SGL_OPS_H

#include <pthread.h>
#include <stdio.h>

#include "backend/chat_template.h"
#include "backend/value.h"
#include "ir/ir.h"
#include "runtime/engine.h"
#include "runtime/tokmask.h"

typedef struct SglExec SglExec;     /* shared by runs: interp.h */

typedef struct {
    int64_t requests, prompt_tokens, completion_tokens, cached_tokens;
} SglRunCounters;

typedef struct SglRun {
    SglExec *x;                      /* borrowed */
    SglEngine *engine;               /* borrowed */
    pthread_mutex_t mu;              /* guards everything below */
    bool failed;
    char *error;                     /* first runtime error (owned) */
    uint64_t *inflight;              /* ids of submitted, unfinished requests */
    int32_t n_inflight, cap_inflight;
    SglRunCounters c;
} SglRun;

void run_init(SglRun *r, SglExec *x, SglEngine *e);
void run_deinit(SglRun *r);
bool run_failed(SglRun *r);
/* Records "file:line:col: runtime error: msg" (first one wins) and aborts
 * every request of the run in flight. Always returns false. */
bool run_fail(SglRun *r, IrLoc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

typedef struct {
    char *text;                      /* owned, NUL-terminated */
    size_t len, cap;
    bool after_system_end;           /* last append closed a system block */
    FILE *stream;                    /* non-NULL: echo appends (sglc run --stream) */
} PState;

bool pstate_init(PState *s);
bool pstate_copy(PState *dst, const PState *src);   /* dst gets no stream */
void pstate_deinit(PState *s);

/* Submits n requests for the run and waits for all of them (results in
 * res[i], free with sgl_gen_result_free). run may be NULL (no tracking).
 * stream: echo sample 0's text as it arrives. False: the submit failed or
 * the run was cancelled (msg says why); res are then empty. */
bool ops_generate(SglEngine *e, SglRun *run, const SglRequest *reqs, int32_t n,
                  SglGenResult *res, FILE *stream, char *msg, size_t cap);

/* A submission gate for the branches of one parallel fork: the first
 * request of each branch waits at the gate until every branch has either
 * brought its request or left (done, or blocked on something else); then
 * all of them go to the engine in one sgl_engine_submit_batch, so they
 * prefill and decode as one batch. A thread joins a gate with gate_enter
 * (thread-local, one-shot); gate_leave is a no-op for a thread without one. */
typedef struct SglGate SglGate;
SglGate *gate_new(SglEngine *e, int32_t n_branches);
void gate_free(SglGate *g);
void gate_enter(SglGate *g);
void gate_leave(void);

/* ---- state ops ---- */
bool op_append(SglRun *r, PState *s, const char *text, size_t len);
bool op_role(SglRun *r, PState *s, const ChatTemplate *t, IrRole role, bool begin);
/* GEN: option values args (borrowed, keys in n->gen->keys). *out: the value;
 * *meta: the meta record. */
bool op_gen(SglRun *r, PState *s, const IrNode *n, Value *const *args, Value **out, Value **meta);
bool op_select(SglRun *r, PState *s, const IrNode *n, const Value *choices, Value **out,
               Value **meta);
/* PREFILL: fire-and-forget prefill-only request (FRESH: s may be NULL). */
bool op_prefill(SglRun *r, const PState *s, const IrNode *n);

/* ---- pure ops ---- */
bool op_unop(SglRun *r, const IrNode *n, const Value *x, Value **out);
bool op_binop(SglRun *r, const IrNode *n, const Value *a, const Value *b, Value **out);
bool op_concat(SglRun *r, const IrNode *n, Value *const *args, uint32_t n_args, Value **out);
bool op_index(SglRun *r, const IrNode *n, const Value *xs, const Value *i, Value **out);
bool op_set_index(SglRun *r, const IrNode *n, const Value *xs, const Value *i, Value *v,
                  Value **out);
bool op_set_field(SglRun *r, const IrNode *n, const Value *rec, Value *v, Value **out);
bool op_builtin(SglRun *r, const IrNode *n, Value **args, Value **out);

/* builtins.c: one built-in (args borrowed, sema-checked); false + msg on a
 * runtime error. ret: the static result type (parse_json, min/max). */
bool sgl_builtin_call(IrBuiltin b, Value **args, uint32_t n, const ValType *ret, Value **out,
                      char *msg, size_t cap);

/* interp.c: the ValType of an IR type (program lifetime). */
const ValType *exec_vtype(const SglExec *x, const IrType *t);

#endif

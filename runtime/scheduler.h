/* scheduler.h -- continuous batching over a runner, a KV pool and a radix cache.
 *
 * Single-threaded: the engine's loop thread owns the scheduler and everything
 * it touches. sched_step() is the whole loop body (nano-vllm's engine.step):
 *   1. schedule: decodes of running sequences first (allocating, evicting,
 *      retracting when pages run out), then chunks of unfinished prefills,
 *      then admissions from the waiting queue in policy order;
 *   2. run: one runner forward over the batch;
 *   3. postprocess: prompt logprobs, sampling, stop checks, events, finishing
 *      (the sequence's KV goes into the radix cache and its lock is dropped),
 *      and jump-forward: a constrained sequence whose constraint forces the
 *      next bytes gets them appended at once, re-tokenized canonically with
 *      its recent output (see jump_forward in scheduler.c), and computes them
 *      as one extend chunk in the next step.
 * Overlap: with a runner that has forward_sample_begin/end (and the option
 * on), a step whose requests all sample on the runner is enqueued, then the
 * previous step's results are postprocessed while it runs; the next step is
 * scheduled with placeholders for tokens not yet back (see scheduler.c).
 * Tests drive it directly with a fake runner (tests/unit/test_scheduler.c).
 */
#ifndef SGL_SCHEDULER_H
#define SGL_SCHEDULER_H

#include <stdio.h>

#include "runtime/kv_pool.h"
#include "runtime/radix_cache.h"
#include "runtime/request.h"
#include "runtime/runner.h"
#include "runtime/tokenizer.h"

typedef struct Sched Sched;
typedef struct SchedReq SchedReq;

typedef struct {
    SglSchedOpts o;                /* defaults applied by sched_new */
    int32_t vocab_size;
    int32_t max_ctx;               /* longest sequence (prompt + output) in tokens */
    int32_t eos_ids[8];
    int32_t n_eos;
    const SglTokenizer *tok;       /* borrowed, may be NULL: then token_text is used */
    /* Text of one token when there is no tokenizer (tests). May be NULL. */
    const char *(*token_text)(void *user, int32_t id, size_t *len);
    /* Canonical encoding of text when there is no tokenizer (tests; used by
     * jump-forward re-tokenization). May be NULL: then no jump-forward. On
     * SGL_OK *ids is malloc'd and owned by the caller. */
    SglStatus (*token_encode)(void *user, const char *text, size_t len, int32_t **ids, int32_t *n);
    void *token_text_user;
    /* Chrome trace-event output (borrowed, may be NULL): sched_new writes the
     * header, every step its phases, sched_free the footer. Implies profile. */
    FILE *trace;
} SchedConfig;

/* Fills o's zero fields with the defaults documented in request.h. */
void sched_opts_defaults(SglSchedOpts *o);

/* runner, pool and cache are borrowed and must outlive the scheduler.
 * NULL on allocation failure (err says so) or a bad config. */
Sched *sched_new(const SchedConfig *cfg, SglRunner *runner, KvPool *pool, RadixCache *cache,
                 SglErr *err);
/* Aborts whatever is left (abort events are delivered), then frees. */
void sched_free(Sched *s);

/* Checks req against the limits (params, prompt fits the KV pool and the
 * context) and copies it. Thread-safe (reads only immutable config). On
 * success *out is owned by the caller until sched_add. */
SglStatus sched_req_new(const Sched *s, const SglRequest *req, uint64_t id, SchedReq **out,
                        SglErr *err);
void sched_req_free(SchedReq *r);

/* Ownership of r passes to the scheduler (appended to the waiting queue). */
void sched_add(Sched *s, SchedReq *r);
/* Aborts request id wherever it is; false when it is not here. */
bool sched_abort(Sched *s, uint64_t id);
/* Aborts everything (each unfinished sample gets reason kind with msg). */
void sched_abort_all(Sched *s, SglFinishKind kind, const char *msg);

/* One schedule -> run -> postprocess iteration (overlapped: schedule N+1 ->
 * enqueue N+1 -> wait for N -> postprocess N). SGL_E_AGAIN when there was
 * nothing to do; SGL_E_DEVICE/INVAL from the runner (err set; the requests in
 * that batch were finished with reason "error", the scheduler stays usable). */
SglStatus sched_step(Sched *s, SglErr *err);

/* Nothing queued, running or still on the runner. */
bool sched_idle(const Sched *s);
int32_t sched_n_waiting(const Sched *s);
int32_t sched_n_running(const Sched *s);
void sched_stats(const Sched *s, SglEngineStats *st);

/* Pool, cache and the scheduler's own page accounting agree: every page
 * held by a sequence has a reference, pool pages in use == pages held by
 * sequences + pages in the tree. Writes the first violation into why. */
bool sched_check_integrity(const Sched *s, char *why, size_t why_len);

/* radix_reset when nothing runs; false otherwise. */
bool sched_flush_cache(Sched *s);

#endif

/* request.h -- what callers hand the engine and what they get back.
 *
 * An SglRequest is a prompt (token ids) plus SglSamplingParams, an optional
 * constraint hook and an event callback. The engine answers with SglEvents:
 * one TOKEN event per generated token of each sample, then one FINAL event
 * per sample (FINAL with last = true is the request's very last event).
 * Everything an event points to is borrowed for the duration of the callback.
 * SglGenResult is the collected form used by the blocking helper.
 */
#ifndef SGL_REQUEST_H
#define SGL_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/sampler.h"

/* A per-request token constraint (the FSM engine plugs in here). Each hook is
 * called on the engine thread, per sample index. mask: fill allowed (vocab
 * bits, zeroed by the engine) and return true, or return false for "no
 * restriction". accept: the token was taken; return true when the constraint
 * is complete (the sample then finishes with reason "stop"). release: called
 * once after the request's last event; ctx is the caller's until then. */
typedef struct {
    void *ctx;
    bool (*mask)(void *ctx, int32_t index, uint32_t *allowed, int32_t vocab);
    bool (*accept)(void *ctx, int32_t index, int32_t token);
    void (*release)(void *ctx);
    /* Jump-forward (both NULL: none). forced: the bytes every accepted
     * continuation of sample index must start with (*bytes borrowed until the
     * next hook call); false or *len 0 when nothing is forced. accept_bytes:
     * the engine appended exactly those bytes; return true when the
     * constraint is then complete. */
    bool (*forced)(void *ctx, int32_t index, const char **bytes, size_t *len);
    bool (*accept_bytes)(void *ctx, int32_t index, const char *bytes, size_t len);
} SglConstraint;

typedef enum { SGL_EV_TOKEN, SGL_EV_FINAL } SglEventKind;
typedef enum { SGL_FINISH_STOP, SGL_FINISH_LENGTH, SGL_FINISH_ABORT, SGL_FINISH_ERROR } SglFinishKind;

typedef struct {
    SglEventKind kind;
    uint64_t id;
    int32_t index;                 /* sample index (0..n-1) */
    /* TOKEN (and FINAL: the last released text piece, may be empty) */
    int32_t token;
    int32_t n_rollback;            /* TOKEN: drop this many earlier TOKEN ids of the sample
                                    * first (jump-forward re-tokenized them; text unchanged) */
    bool forced;                   /* TOKEN: appended by jump-forward, not sampled (logprob 0) */
    float logprob;                 /* raw log-prob of token (when return_logprob) */
    int32_t n_top;
    const SglTopLogprob *top;      /* (n_top) best first */
    const char *text;              /* newly released output text (stop strings held back) */
    size_t text_len;
    /* FINAL */
    SglFinishKind finish;
    int32_t matched_token;         /* stop: the EOS/stop id that ended it, else -1 */
    const char *matched_stop;      /* stop: the stop string, else NULL */
    const char *error;             /* error/abort: message, else NULL */
    int32_t prompt_tokens, completion_tokens, cached_tokens;
    const int32_t *output_ids;     /* (completion_tokens) */
    const float *output_logprobs;  /* (completion_tokens) or NULL */
    const char *output_text;       /* whole output text (cut before a stop string) */
    size_t output_text_len;
    int32_t prompt_logprob_start;  /* prompt logprobs of positions [start, prompt_tokens); */
    const float *prompt_logprobs;  /* NULL unless logprob_start_len >= 0; position 0 is NaN */
    bool last;
} SglEvent;

typedef void (*SglEventFn)(void *user, const SglEvent *ev);

typedef struct {
    const int32_t *input_ids;      /* (n_input), copied at submit */
    int32_t n_input;
    SglSamplingParams params;      /* stop strings / ids copied at submit */
    int32_t ns;                    /* radix-cache namespace (0 = default) */
    SglConstraint constraint;      /* all NULL: none */
    SglEventFn on_event;           /* may be NULL (fire and forget) */
    void *user;
} SglRequest;

typedef enum {
    SGL_POLICY_LPM, SGL_POLICY_FCFS, SGL_POLICY_LOF, SGL_POLICY_RANDOM, SGL_POLICY_DFS_WEIGHT,
    SGL_POLICY_COUNT_
} SglPolicy;
/* "lpm", "fcfs", ...; -1 when unknown. ORDER SglPolicy */
int sgl_policy_parse(const char *name);
const char *sgl_policy_name(SglPolicy p);

/* Scheduler knobs (0 = default). */
typedef struct {
    int32_t max_running_requests;  /* sequences decoding at once; default 256 */
    int32_t max_queued_requests;   /* waiting requests; default 4096 (SGL_E_FULL beyond) */
    int32_t chunked_prefill_size;  /* max prompt tokens of one sequence per step; default 2048 */
    int32_t max_prefill_tokens;    /* max prompt tokens per step; default chunked_prefill_size */
    SglPolicy policy;              /* default lpm */
    bool disable_radix_cache;
    bool disable_jump_forward;     /* constrained requests decode forced text token by token */
    bool check_integrity;          /* pool + cache + scheduler checks after every step */
    bool disable_overlap_schedule; /* every step synchronous (SGLang's flag); default: overlap
                                    * when the runner has forward_sample_begin/end (the engine:
                                    * on cuda; on cpu only with enable_overlap_schedule) */
    bool enable_overlap_schedule;  /* engine: overlap on the cpu runner too (its step thread
                                    * costs more than the CPU work it hides on small models) */
    bool profile;                  /* time each step's phases into SglEngineStats */
    float init_new_token_ratio;    /* admission keeps room for this share of every running
                                    * request's remaining output (at most 4096 tokens each),
                                    * decaying to 0.1 over 600 steps and reset by a retraction
                                    * (SGLang's --init-new-token-ratio); 0 = 0.7, < 0 = none */
    uint64_t seed;                 /* seeds samplers of requests without a seed */
    /* Optional step log: called on the loop thread after each forward. */
    void (*on_step)(void *user, int32_t n_prefill_seqs, int32_t n_decode_seqs, int32_t n_tokens);
    void *on_step_user;
} SglSchedOpts;

/* Phases of a scheduler step, timed with SglSchedOpts.profile (or a trace):
 * schedule (queues, admission, KV allocation), build (batch arrays, sampling
 * rows, constraint masks), launch (overlap: enqueue on the runner), wait (the
 * loop thread blocked on the runner: the whole forward when synchronous),
 * postprocess (token bookkeeping, stop checks, finishing, caching), emit
 * (detokenize, stop strings, events). ORDER SglPhase */
typedef enum {
    SGL_PHASE_SCHEDULE, SGL_PHASE_BUILD, SGL_PHASE_LAUNCH, SGL_PHASE_WAIT, SGL_PHASE_POSTPROCESS,
    SGL_PHASE_EMIT, SGL_PHASE_COUNT_
} SglPhase;
const char *sgl_phase_name(SglPhase p);

typedef struct {
    int64_t steps, forward_tokens, prefill_tokens, decode_tokens, generated_tokens;
    int64_t overlap_steps;         /* steps enqueued while the previous one was still running */
    int64_t profiled_steps;        /* steps timed (profile or trace on) */
    double step_us;                /* wall time of the scheduler calls that timed them (with
                                    * overlap: also the calls that only waited and postprocessed) */
    double phase_us[SGL_PHASE_COUNT_]; /* that time per phase, summed (ORDER SglPhase) */
    int64_t cached_tokens;         /* sum of prefix-cache hits at admission */
    int64_t requests_finished, requests_aborted, retractions;
    int64_t jump_forwards;         /* forced strings appended at once */
    int64_t jump_forward_tokens;   /* tokens those appended (after re-tokenization) */
    int64_t jump_forward_rollbacks; /* earlier output tokens they replaced */
    int64_t integrity_failures;    /* check_integrity: steps whose checks failed */
    int32_t running, queued;
    int32_t pool_pages, pool_free_pages, page_size;
    int32_t cache_tokens, cache_evictable_tokens, cache_protected_tokens;
    double cache_hit_rate;         /* hit / (hit + miss) of counted matches */
} SglEngineStats;

typedef struct {
    SglFinishKind finish;
    int32_t matched_token;
    char *matched_stop;            /* owned copy or NULL */
    char *error;                   /* owned copy or NULL */
    int32_t *output_ids;           /* (n_output) */
    int32_t n_output;
    float *output_logprobs;        /* (n_output) when return_logprob */
    SglTopLogprob *top;            /* (n_output * n_top) when top_logprobs_num > 0 */
    int32_t n_top;
    char *text;
    size_t text_len;
    int32_t cached_tokens;
} SglGenSample;

typedef struct {
    uint64_t id;
    int32_t prompt_tokens;
    int32_t n_samples;
    SglGenSample *samples;         /* (n_samples) */
    float *prompt_logprobs;        /* (prompt_tokens) or NULL; NaN before the start */
} SglGenResult;

void sgl_gen_result_free(SglGenResult *r);
const char *sgl_finish_name(SglFinishKind k);

/* A thread-safe FIFO of copied events, for callers that poll instead of
 * handling callbacks (send/get with an EAGAIN-style "no event yet", as
 * dav1d). Pass sgl_evq_on_event as SglRequest.on_event with user = the
 * queue; any number of requests may share one queue. */
typedef struct SglEventQueue SglEventQueue;

/* NULL on allocation failure. */
SglEventQueue *sgl_evq_new(void);
/* Frees the queue and every event still in it. No request may still be
 * delivering into it. */
void sgl_evq_free(SglEventQueue *q);
/* The callback: deep-copies ev (one allocation) and wakes a waiting getter.
 * Without memory, a FINAL event is still queued with its fixed fields (the
 * borrowed arrays and strings left NULL), a TOKEN event is dropped and
 * counted by sgl_evq_dropped. */
void sgl_evq_on_event(void *q, const SglEvent *ev);
/* The oldest event: SGL_OK and *out (owned by the caller, every pointer in
 * it points into the same block: free(*out) releases all), or SGL_E_AGAIN
 * when none arrived within timeout_ms (0: do not wait; < 0: wait forever). */
SglStatus sgl_evq_get(SglEventQueue *q, int timeout_ms, SglEvent **out);
int64_t sgl_evq_dropped(SglEventQueue *q);

#endif

/* scheduler.c -- continuous batching: waiting/running queues, admission
 * against the KV budget, chunked prefill, retraction, finishing into the
 * radix cache. See scheduler.h for the step structure.
 *
 * Sequences. A request with n samples owns n SchedSeqs; sample 0 is created
 * at submit, samples 1..n-1 when sample 0 has prefilled the whole prompt
 * (the fork). By then the prompt is in the radix tree (locked by sample 0),
 * so the forked samples match it and compute only the last prompt token
 * themselves (a match always leaves >= 1 token to compute, as in SGLang, so
 * that every sequence gets its own logits row). With the cache disabled the
 * samples recompute the prompt.
 *
 * A sequence holds tokens[0..n_tokens) (prompt, then outputs) and has KV for
 * positions [0, kv_len). Each step it is given tokens [kv_len, n_tokens)
 * (a decode when that is one token), at most a chunk of them.
 *
 * Page ownership of a running sequence q (P = page size, page i covers
 * positions [i*P, (i+1)*P)), as half-open token ranges:
 *   [0, tree_len)                 pages borrowed from the radix tree, valid
 *                                 while q holds radix_lock(q->node)
 *   [tree_len, n_pages*P)         pages q owns: one KvPool reference each,
 *                                 nobody else refers to them
 * KV is written only at positions >= kv_len >= tree_len, so only into q's
 * own pages. After each prefill chunk (cache_unfinished) and at the end
 * (cache_finished) the computed whole pages [tree_len, aligned) go into the
 * tree: radix_insert returns the prefix p that was already cached;
 *   [tree_len, p)          duplicates: q drops its references
 *   [p, aligned)           the tree takes over q's references
 *   [aligned, n_pages*P)   (finish only) not inserted: q drops them
 * and q then borrows [0, aligned) from the tree under a lock on the new node.
 * Retraction and abort drop q's own references and the lock, inserting
 * nothing. So no page is ever released twice, and after every step
 *   pool pages in use == sum over running (n_pages - tree_len/P) + tree pages
 * which sched_check_integrity asserts.
 *
 * Overlap scheduling (step N+1 enqueued before step N's ids are back,
 * placeholder tokens, finishing while in flight) and the step profile and
 * trace have their own sections below.
 */
#include "runtime/scheduler.h"
#include "runtime/textbuf.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LPM_FALLBACK_LEN 128       /* longer queues: lpm/dfs-weight act as fcfs (SGLang) */
#define IN_BATCH_PREFIX_MIN 32     /* defer a request sharing this much with one admitted in the same step */
#define LP_ROWS_BUDGET_FLOATS (4 << 20) /* logits rows kept for prompt logprobs */
#define NEW_TOKEN_RATIO_INIT 0.7   /* admission reserve (SGLang's defaults): see reserve_tokens */
#define NEW_TOKEN_RATIO_MIN 0.1
#define NEW_TOKEN_RATIO_DECAY_STEPS 600.0
#define NEW_TOKEN_RESERVE_CLIP 4096

typedef enum { SEQ_WAITING, SEQ_RUNNING, SEQ_DONE } SeqState;

struct SchedSeq;

/* A batch begun on the runner whose ids are not back yet. */
typedef struct {
    int32_t nb;
    struct SchedSeq **seq;         /* (max_running) its sequences; NULL once finished */
    int32_t *row;                  /* (max_running) sample row of seq[b], or -1 */
    int32_t *ids;                  /* (max_running) sampled ids, filled by end */
    float *lp;                     /* (max_running) their log-probs */
    int64_t step;                  /* stats step number, for the trace */
    double t_begin;                /* profiling: when it was begun (us) */
} SchedFlight;

typedef struct SchedSeq {
    SchedReq *req;
    int32_t index;                 /* sample index */
    SeqState state;
    int32_t *tokens;               /* (cap) prompt then outputs */
    int32_t n_tokens, cap;
    int32_t n_out;
    int32_t kv_len;
    int32_t *pages;                /* (cap / P + 1) */
    int32_t n_pages;
    int32_t tree_len;
    RadixNode *node;               /* locked while running; NULL otherwise */
    int32_t lane;                  /* slot-table lane while running, else -1 */
    int32_t cached_tokens;         /* prefix hit at first admission */
    bool admitted_once;
    bool jf_start_done;            /* the constraint's start state was checked for forced text */
    int32_t sort_key;              /* policy scratch */
    /* this step */
    int32_t n_new, sample_row, lp_row0, lp_pos0, n_lp;
    bool was_decode;
    /* overlap (see "overlap scheduling" below) */
    int32_t pending;               /* the last `pending` tokens are placeholders for ids not back yet */
    int32_t fl_refs;               /* begun batches that still list this sequence */
    bool simple;                   /* params never need the host sampler (set at creation) */
    /* output */
    SglSampler *sampler;
    SglDetok detok;
    bool has_detok;
    SglStopMatcher stop;
    char *tail;                    /* (stop.max_len) output tail before the last push */
    float *out_lp;                 /* (max_new) */
    SglTopLogprob top[SGL_MAX_TOP_LOGPROBS];
    int32_t *banned;               /* (n_eos + n_stop_token_ids) */
    int32_t n_banned;
    SglFinishKind finish;
    int32_t matched_token;
    int32_t matched_stop;          /* index into req stops, -1 */
    char error[200];
} SchedSeq;

struct SchedReq {
    uint64_t id;
    uint64_t arrival;
    SglRequest r;                  /* pointers below are our copies */
    int32_t *ids;
    char *stops[SGL_MAX_STOP];
    int32_t *stop_ids;
    int32_t n_samples, n_created, n_done;
    int32_t max_new;               /* clipped to the context */
    int32_t lp_first;              /* first position whose logits feed prompt logprobs, -1 */
    float *prompt_lp;              /* (n_input) or NULL */
    bool prompt_lp_done;
    SchedSeq **seqs;               /* (n_samples) */
};

struct Sched {
    SchedConfig cfg;
    SglRunner *runner;
    KvPool *pool;
    RadixCache *cache;
    int32_t P, V;
    int32_t max_batch_tokens, max_rows;
    uint64_t rng, arrivals;
    SchedSeq **waiting;            /* (cap_waiting) */
    int32_t n_waiting, cap_waiting;
    SchedSeq **running;            /* (max_running) */
    int32_t n_running;
    /* batch buffers, allocated once */
    int32_t nb, nt, nr;
    SchedSeq **bseq;               /* (max_running) */
    int32_t *tokens, *positions;   /* (max_batch_tokens) */
    int32_t *seq_off, *kv_len, *slot_off; /* (max_running + 1) */
    int32_t *slots;                /* (max_running lanes, max_ctx) */
    int32_t *lanes_free;           /* (max_running) stack */
    int32_t n_lanes_free;
    int32_t *logit_rows;           /* (max_rows) */
    float *logits;                 /* (max_rows, V) */
    uint32_t *mask;                /* ((V + 31) / 32) */
    /* device sampling (runner forward_sample; see forward_step) */
    SglRowSampling *gs_rows;       /* (max_rows) or NULL: off */
    uint32_t *gs_masks;            /* (max_rows, (V + 31) / 32) */
    int32_t *gs_ids;               /* (max_rows) */
    float *gs_lp;                  /* (max_rows) */
    bool gs_step;                  /* this step's tokens came from the device */
    int32_t *match_pages;          /* (max_ctx / P + 1) */
    SchedSeq **tmp;                /* (cap_waiting) ordering scratch */
    /* overlap scheduling */
    bool overlap;                  /* runner has begin/end and the option is on */
    bool gs_sync;                  /* the synchronous path may use forward_sample */
    bool force_sync;               /* the next step runs synchronously (begin declined) */
    SchedFlight fl[2];             /* begun batches: fl[fl_head] oldest, n_fl of them */
    int32_t fl_head, n_fl;
    /* profiling (profile option or trace) */
    bool prof;
    double t_step0, t_mark, emit_us; /* microseconds, CLOCK_MONOTONIC */
    SglEngineStats st;
    int64_t hit_tokens, miss_tokens; /* prefix-cache hits / misses at admission */
    double ntr, ntr_init;          /* new-token ratio (admission reserve), its reset value */
};

/* ---- small helpers ----------------------------------------------------- */

static uint64_t rng_next(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static int32_t min32(int32_t a, int32_t b) { return a < b ? a : b; }
static int32_t max32(int32_t a, int32_t b) { return a > b ? a : b; }

void sched_opts_defaults(SglSchedOpts *o)
{
    if (o->max_running_requests <= 0) o->max_running_requests = 256;
    if (o->max_queued_requests <= 0) o->max_queued_requests = 4096;
    if (o->chunked_prefill_size <= 0) o->chunked_prefill_size = 2048;
    if (o->max_prefill_tokens <= 0 || o->max_prefill_tokens < o->chunked_prefill_size)
        o->max_prefill_tokens = o->chunked_prefill_size;
    if ((unsigned)o->policy >= SGL_POLICY_COUNT_) o->policy = SGL_POLICY_LPM;
}

static const char *const policy_names[] = {"lpm", "fcfs", "lof", "random", "dfs-weight"}; /* ORDER SglPolicy */
_Static_assert(sizeof policy_names / sizeof policy_names[0] == SGL_POLICY_COUNT_, "policy names");

int sgl_policy_parse(const char *name)
{
    for (int i = 0; i < SGL_POLICY_COUNT_; i++)
        if (strcmp(name, policy_names[i]) == 0)
            return i;
    return -1;
}

const char *sgl_policy_name(SglPolicy p)
{
    return (unsigned)p < SGL_POLICY_COUNT_ ? policy_names[p] : "?";
}

static const char *const phase_names[] = {"schedule", "build", "launch", "wait", "postprocess",
                                          "emit"}; /* ORDER SglPhase */
_Static_assert(sizeof phase_names / sizeof phase_names[0] == SGL_PHASE_COUNT_, "phase names");

const char *sgl_phase_name(SglPhase p)
{
    return (unsigned)p < SGL_PHASE_COUNT_ ? phase_names[p] : "?";
}

/* ---- profiling ------------------------------------------------------------
 * With profile (or a trace) each step reads CLOCK_MONOTONIC at its phase
 * boundaries (a vDSO call, ~20 ns) and adds the spans to st.phase_us; the
 * trace gets one complete ("X") event per phase. Off, each boundary is one
 * predictable branch. */

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return 1e6 * (double)ts.tv_sec + 1e-3 * (double)ts.tv_nsec;
}

/* tid 1: the loop thread's phases; tid 2: batches on the runner (overlap) */
static void trace_event_on(Sched *s, int tid, const char *name, double t0, double dur, int64_t step,
                           int32_t n_seqs)
{
    fprintf(s->cfg.trace, ",\n{\"name\":\"%s\",\"cat\":\"sched\",\"ph\":\"X\",\"pid\":1,\"tid\":%d,"
            "\"ts\":%.3f,\"dur\":%.3f,\"args\":{\"step\":%lld,\"seqs\":%d}}",
            name, tid, t0, dur, (long long)step, (int)n_seqs);
}

static void trace_event(Sched *s, const char *name, double t0, double dur, int64_t step, int32_t n_seqs)
{
    trace_event_on(s, 1, name, t0, dur, step, n_seqs);
}

/* Ends the phase that began at t_mark (the previous boundary). */
static void phase_end(Sched *s, SglPhase ph, int64_t step, int32_t n_seqs)
{
    if (!s->prof)
        return;
    double t = now_us(), d = t - s->t_mark;
    if (ph == SGL_PHASE_POSTPROCESS) { /* emit time was summed separately inside it */
        d -= s->emit_us;
        s->st.phase_us[SGL_PHASE_EMIT] += s->emit_us;
        if (s->cfg.trace && s->emit_us > 0)
            trace_event(s, phase_names[SGL_PHASE_EMIT], s->t_mark + d, s->emit_us, step, n_seqs);
        s->emit_us = 0;
    }
    s->st.phase_us[ph] += d;
    if (s->cfg.trace)
        trace_event(s, phase_names[ph], s->t_mark, d, step, n_seqs);
    s->t_mark = t;
}

const char *sgl_finish_name(SglFinishKind k)
{
    switch (k) {
    case SGL_FINISH_STOP: return "stop";
    case SGL_FINISH_LENGTH: return "length";
    case SGL_FINISH_ABORT: return "abort";
    case SGL_FINISH_ERROR: return "error";
    }
    return "?";
}

/* ---- requests and sequences -------------------------------------------- */

static void seq_free(SchedSeq *q)
{
    if (!q)
        return;
    free(q->tokens);
    free(q->pages);
    sgl_sampler_free(q->sampler);
    if (q->has_detok)
        sgl_detok_deinit(&q->detok);
    sgl_stop_deinit(&q->stop);
    free(q->tail);
    free(q->out_lp);
    free(q->banned);
    free(q);
}

void sched_req_free(SchedReq *r)
{
    if (!r)
        return;
    if (r->seqs)
        for (int32_t i = 0; i < r->n_samples; i++)
            seq_free(r->seqs[i]);
    free(r->seqs);
    free(r->prompt_lp);
    free(r->ids);
    free(r->stop_ids);
    for (int i = 0; i < SGL_MAX_STOP; i++)
        free(r->stops[i]);
    free(r);
}

/* A sequence of request r for sample index: tokens = the prompt. */
static SchedSeq *seq_new(const Sched *s, SchedReq *r, int32_t index)
{
    SchedSeq *q = calloc(1, sizeof *q);
    if (!q)
        return NULL;
    q->req = r;
    q->index = index;
    q->lane = -1;
    q->matched_token = -1;
    q->matched_stop = -1;
    q->cap = r->r.n_input + r->max_new;
    q->tokens = malloc((size_t)q->cap * sizeof *q->tokens);
    q->pages = malloc(((size_t)q->cap / (size_t)s->P + 1) * sizeof *q->pages);
    q->out_lp = malloc(((size_t)r->max_new + 1) * sizeof *q->out_lp);
    uint64_t seed = r->r.params.has_seed ? r->r.params.seed + (uint64_t)index
                                         : (r->id * 0x2545F4914F6CDD1Dull ^ s->cfg.o.seed) + (uint64_t)index;
    q->sampler = sgl_sampler_new(&r->r.params, s->V, seed);
    q->banned = malloc(((size_t)s->cfg.n_eos + (size_t)r->r.params.n_stop_token_ids + 1) * sizeof *q->banned);
    if (!q->tokens || !q->pages || !q->out_lp || !q->sampler || !q->banned)
        goto fail;
    if (sgl_stop_init(&q->stop, (const char *const *)r->stops, r->r.params.n_stop) != SGL_OK) {
        memset(&q->stop, 0, sizeof q->stop);
        goto fail;
    }
    if (q->stop.max_len > 0 && !(q->tail = malloc(q->stop.max_len)))
        goto fail;
    if (s->cfg.tok) {
        sgl_detok_init(&q->detok, s->cfg.tok, true);
        q->has_detok = true;
    }
    memcpy(q->tokens, r->ids, (size_t)r->r.n_input * sizeof *q->tokens);
    q->n_tokens = r->r.n_input;
    sgl_sampler_observe_prompt(q->sampler, r->ids, r->r.n_input);
    /* ids banned until min_new_tokens: EOS (unless ignored) and stop ids */
    if (!r->r.params.ignore_eos)
        for (int32_t i = 0; i < s->cfg.n_eos; i++)
            q->banned[q->n_banned++] = s->cfg.eos_ids[i];
    for (int32_t i = 0; i < r->r.params.n_stop_token_ids; i++)
        q->banned[q->n_banned++] = r->stop_ids[i];
    const SglSamplingParams *p = &r->r.params;
    const SglConstraint *c = &r->r.constraint;
    q->simple = !c->mask && !c->accept && !c->forced && r->lp_first < 0 && p->frequency_penalty == 0.0f &&
                p->presence_penalty == 0.0f && p->repetition_penalty == 1.0f && p->top_logprobs_num == 0;
    return q;
fail:
    seq_free(q);
    return NULL;
}

SglStatus sched_req_new(const Sched *s, const SglRequest *req, uint64_t id, SchedReq **out,
                        SglErr *err)
{
    *out = NULL;
    const SglSamplingParams *p = &req->params;
    SglStatus st = sgl_sampling_params_check(p, s->V, err);
    if (st != SGL_OK)
        return st;
    if (req->n_input < 1 || !req->input_ids)
        return sgl_err(err, SGL_E_INVAL, "input_ids: the prompt is empty");
    for (int32_t i = 0; i < req->n_input; i++)
        if (req->input_ids[i] < 0 || req->input_ids[i] >= s->V)
            return sgl_err(err, SGL_E_INVAL, "input_ids[%d]: %d is outside the vocabulary [0, %d)",
                           (int)i, (int)req->input_ids[i], (int)s->V);
    int64_t cap_tokens = (int64_t)kvpool_n_pages(s->pool) * s->P;
    if (req->n_input >= s->cfg.max_ctx || req->n_input + 1 > cap_tokens)
        return sgl_err(err, SGL_E_INVAL,
                       "input_ids: a prompt of %d tokens does not fit (context %d, KV capacity %lld tokens)",
                       (int)req->n_input, (int)s->cfg.max_ctx, (long long)cap_tokens);
    if (p->n < 1 || p->n > s->cfg.o.max_running_requests)
        return sgl_err(err, SGL_E_INVAL, "n must be in [1, %d], got %d",
                       (int)s->cfg.o.max_running_requests, (int)p->n);

    SchedReq *r = calloc(1, sizeof *r);
    if (!r)
        return sgl_err(err, SGL_E_NOMEM, "out of memory");
    r->id = id;
    r->r = *req;
    r->n_samples = p->n;
    int64_t room = min32(s->cfg.max_ctx, (int32_t)(cap_tokens < INT32_MAX ? cap_tokens : INT32_MAX)) - req->n_input;
    r->max_new = p->max_new_tokens < room ? p->max_new_tokens : (int32_t)room;
    r->lp_first = p->logprob_start_len >= 0 ? max32(min32(p->logprob_start_len, req->n_input), 1) - 1 : -1;
    r->ids = malloc((size_t)req->n_input * sizeof *r->ids);
    r->seqs = calloc((size_t)r->n_samples, sizeof *r->seqs);
    if (!r->ids || !r->seqs)
        goto nomem;
    memcpy(r->ids, req->input_ids, (size_t)req->n_input * sizeof *r->ids);
    r->r.input_ids = r->ids;
    for (int32_t i = 0; i < p->n_stop; i++) {
        if (!(r->stops[i] = strdup(p->stop[i])))
            goto nomem;
        r->r.params.stop[i] = r->stops[i];
    }
    if (p->n_stop_token_ids > 0) {
        if (!(r->stop_ids = malloc((size_t)p->n_stop_token_ids * sizeof *r->stop_ids)))
            goto nomem;
        memcpy(r->stop_ids, p->stop_token_ids, (size_t)p->n_stop_token_ids * sizeof *r->stop_ids);
    }
    r->r.params.stop_token_ids = r->stop_ids;
    if (r->lp_first >= 0) {
        if (!(r->prompt_lp = malloc((size_t)req->n_input * sizeof *r->prompt_lp)))
            goto nomem;
        for (int32_t i = 0; i < req->n_input; i++)
            r->prompt_lp[i] = NAN;
    }
    if (!(r->seqs[0] = seq_new(s, r, 0)))
        goto nomem;
    r->n_created = 1;
    *out = r;
    return SGL_OK;
nomem:
    sched_req_free(r);
    return sgl_err(err, SGL_E_NOMEM, "out of memory copying the request");
}

/* ---- events ------------------------------------------------------------ */

static void emit(SchedReq *r, const SglEvent *ev)
{
    if (r->r.on_event)
        r->r.on_event(r->r.user, ev);
}

static void emit_token(SchedSeq *q, int32_t tok, float lp, const char *text, size_t len)
{
    SchedReq *r = q->req;
    SglEvent ev = {0};
    ev.kind = SGL_EV_TOKEN;
    ev.id = r->id;
    ev.index = q->index;
    ev.token = tok;
    ev.n_rollback = 0;
    ev.forced = false;
    ev.logprob = lp;
    ev.n_top = r->r.params.top_logprobs_num;
    ev.top = q->top;
    ev.text = text;
    ev.text_len = len;
    ev.matched_token = -1;
    emit(r, &ev);
}

/* The FINAL event of q; frees the request after its last sample. */
static void emit_final(Sched *s, SchedSeq *q, const char *text, size_t len)
{
    SchedReq *r = q->req;
    SglEvent ev = {0};
    ev.kind = SGL_EV_FINAL;
    ev.id = r->id;
    ev.index = q->index;
    ev.token = -1;
    ev.text = text ? text : "";
    ev.text_len = len;
    ev.finish = q->finish;
    ev.matched_token = q->matched_token;
    ev.matched_stop = q->matched_stop >= 0 ? r->stops[q->matched_stop] : NULL;
    ev.error = q->error[0] ? q->error : NULL;
    ev.prompt_tokens = r->r.n_input;
    ev.completion_tokens = q->n_out;
    ev.cached_tokens = q->cached_tokens;
    ev.output_ids = q->tokens + r->r.n_input;
    ev.output_logprobs = r->r.params.return_logprob ? q->out_lp : NULL;
    ev.output_text = q->stop.buf ? q->stop.buf : "";
    ev.output_text_len = q->stop.buf ? q->stop.len : 0;
    ev.prompt_logprob_start = r->lp_first >= 0 ? r->r.params.logprob_start_len : 0;
    ev.prompt_logprobs = r->prompt_lp;
    r->n_done++;
    ev.last = r->n_done == r->n_samples;
    q->state = SEQ_DONE;
    if (q->finish == SGL_FINISH_ABORT)
        s->st.requests_aborted += ev.last;
    else
        s->st.requests_finished += ev.last;
    emit(r, &ev);
    if (ev.last) {
        if (r->r.constraint.release)
            r->r.constraint.release(r->r.constraint.ctx);
        sched_req_free(r);
    }
}

/* ---- KV bookkeeping ---------------------------------------------------- */

static void write_slots(Sched *s, SchedSeq *q, int32_t from_page, int32_t to_page)
{
    int32_t *sl = s->slots + (size_t)q->lane * (size_t)s->cfg.max_ctx;
    for (int32_t pg = from_page; pg < to_page; pg++)
        for (int32_t j = 0; j < s->P; j++) {
            int32_t pos = pg * s->P + j;
            if (pos < s->cfg.max_ctx)
                sl[pos] = q->pages[pg] * s->P + j;
        }
}

/* Free pages >= n, evicting unlocked cache entries if needed. */
static bool ensure_free(Sched *s, int32_t n)
{
    int32_t f = kvpool_n_free(s->pool);
    if (f < n)
        radix_evict(s->cache, (n - f) * s->P);
    return kvpool_n_free(s->pool) >= n;
}

static bool is_decode(const SchedSeq *q);
static bool device_sampling_init(Sched *s);
static bool flights_init(Sched *s);
static SglStatus drain(Sched *s, SglErr *err);

/* Pages q needs beyond what it holds to have KV room for positions [0, upto). */
static int32_t pages_needed(const Sched *s, const SchedSeq *q, int32_t upto)
{
    int32_t want = (upto + s->P - 1) / s->P;
    return want > q->n_pages ? want - q->n_pages : 0;
}

/* Decode lookahead: a decoding sequence that needs a page takes up to this
 * many positions' worth at once while the pool is mostly free, so that its
 * KV stays in runs of consecutive slots instead of being interleaved with
 * every other sequence's one-token pages (measured: batch-32 decode of
 * stories260K at 384 tokens of context was ~2x faster with runs of 16). The
 * extra pages are owned like any other (released or cached at the end). */
#define DECODE_LOOKAHEAD_TOKENS 16
#define LOOKAHEAD_MIN_FREE_PAGES 1024

static SglStatus grow(Sched *s, SchedSeq *q, int32_t upto)
{
    int32_t n = pages_needed(s, q, upto);
    if (n == 0)
        return SGL_OK;
    if (is_decode(q) && n == 1 && s->P < DECODE_LOOKAHEAD_TOKENS) {
        int32_t extra = DECODE_LOOKAHEAD_TOKENS / s->P - 1;
        int32_t room = (q->cap + s->P - 1) / s->P - q->n_pages - 1; /* pages q can still use */
        int32_t spare = kvpool_n_free(s->pool) - LOOKAHEAD_MIN_FREE_PAGES -
                        2 * (DECODE_LOOKAHEAD_TOKENS / s->P) * s->n_running;
        if (extra > room)
            extra = room;
        if (extra > 0 && spare >= extra)
            n += extra;
    }
    if (kvpool_alloc(s->pool, n, q->pages + q->n_pages) != SGL_OK)
        return SGL_E_NOSPACE;
    q->n_pages += n;
    write_slots(s, q, q->n_pages - n, q->n_pages);
    return SGL_OK;
}

static void unref_pages(Sched *s, SchedSeq *q, int32_t from_page, int32_t to_page)
{
    if (to_page > from_page)
        kvpool_unref(s->pool, q->pages + from_page, to_page - from_page);
}

/* Inserts q's computed whole pages into the tree (table in the file comment).
 * finishing: also drops the pages past them and the lock. If the insertion
 * fails (no memory) q keeps owning everything, as if the cache were off. */
static void cache_seq(Sched *s, SchedSeq *q, bool finishing)
{
    int32_t P = s->P, known = min32(q->kv_len, q->n_tokens - q->pending); /* placeholders never enter the tree */
    int32_t aligned = known / P * P;
    int32_t own_from = q->tree_len; /* q holds references on pages from here */
    if (!s->cfg.o.disable_radix_cache && aligned > q->tree_len) {
        RadixNode *last = NULL;
        int32_t p = radix_insert(s->cache, q->req->r.ns, q->tokens, aligned, q->pages, &last);
        if (p >= q->tree_len) {
            unref_pages(s, q, q->tree_len / P, p / P); /* duplicates of cached pages */
            own_from = aligned;                        /* [p, aligned) now the tree's */
            if (!finishing) {
                /* borrow the tree's pages for [tree_len, aligned) from now on;
                 * nothing was evicted since the insert, so the match is whole */
                RadixNode *node = NULL;
                int32_t m = radix_match(s->cache, q->req->r.ns, q->tokens, aligned, s->match_pages,
                                        &node, false);
                if (m != aligned)
                    node = last;
                int32_t hi = m < aligned ? m : aligned;
                if (hi > q->tree_len)
                    memcpy(q->pages + q->tree_len / P, s->match_pages + q->tree_len / P,
                           (size_t)(hi - q->tree_len) / (size_t)P * sizeof *q->pages);
                write_slots(s, q, q->tree_len / P, aligned / P);
                radix_lock(s->cache, node);
                if (q->node)
                    radix_unlock(s->cache, q->node);
                q->node = node;
                q->tree_len = aligned;
            }
        }
    }
    if (finishing) {
        unref_pages(s, q, own_from / P, q->n_pages);
        if (q->node)
            radix_unlock(s->cache, q->node);
        q->node = NULL;
        q->n_pages = 0;
        q->tree_len = 0;
    }
}

/* Drops q's own pages and its lock without caching anything. */
static void release_kv(Sched *s, SchedSeq *q)
{
    unref_pages(s, q, q->tree_len / s->P, q->n_pages);
    if (q->node)
        radix_unlock(s->cache, q->node);
    q->node = NULL;
    q->n_pages = 0;
    q->tree_len = 0;
    q->kv_len = 0;
}

static void lane_put(Sched *s, SchedSeq *q)
{
    if (q->lane >= 0)
        s->lanes_free[s->n_lanes_free++] = q->lane;
    q->lane = -1;
}

static void running_remove(Sched *s, SchedSeq *q)
{
    for (int32_t i = 0; i < s->n_running; i++)
        if (s->running[i] == q) {
            memmove(s->running + i, s->running + i + 1, (size_t)(s->n_running - i - 1) * sizeof *s->running);
            s->n_running--;
            return;
        }
}

static bool waiting_push(Sched *s, SchedSeq *q, bool front)
{
    if (s->n_waiting == s->cap_waiting) {
        int32_t nc = s->cap_waiting ? s->cap_waiting * 2 : 64;
        SchedSeq **w = realloc(s->waiting, (size_t)nc * sizeof *w);
        SchedSeq **t = realloc(s->tmp, (size_t)nc * sizeof *t);
        if (w) s->waiting = w;
        if (t) s->tmp = t;
        if (!w || !t)
            return false;
        s->cap_waiting = nc;
    }
    if (front) {
        memmove(s->waiting + 1, s->waiting, (size_t)s->n_waiting * sizeof *s->waiting);
        s->waiting[0] = q;
    } else {
        s->waiting[s->n_waiting] = q;
    }
    s->n_waiting++;
    q->state = SEQ_WAITING;
    return true;
}

static void waiting_remove_at(Sched *s, int32_t i)
{
    memmove(s->waiting + i, s->waiting + i + 1, (size_t)(s->n_waiting - i - 1) * sizeof *s->waiting);
    s->n_waiting--;
}

/* Finishes q: it leaves the running list, its KV goes into the cache (or is
 * released when cache is false), then the FINAL event, after which q (and,
 * for the request's last sample, the request) is freed: callers must not
 * touch q afterwards. text: a last released piece. */
static void flight_forget(Sched *s, SchedSeq *q);

static void finish_seq(Sched *s, SchedSeq *q, SglFinishKind kind, bool cache, const char *text, size_t len)
{
    q->finish = kind;
    if (q->fl_refs > 0)
        flight_forget(s, q); /* its ids still to come are dropped */
    if (q->pending > 0) {
        /* placeholders of begun steps: those tokens are discarded; the KV of
         * the real tokens up to n_tokens is written by a begun step, which
         * the runner completes before any later one reads it */
        q->n_tokens -= q->pending;
        q->pending = 0;
        if (q->kv_len > q->n_tokens)
            q->kv_len = q->n_tokens;
    }
    if (q->state == SEQ_RUNNING) {
        running_remove(s, q);
        if (cache)
            cache_seq(s, q, true);
        else
            release_kv(s, q);
        lane_put(s, q);
    }
    q->state = SEQ_DONE; /* removed from running by the caller */
    emit_final(s, q, text, len);
}

/* ---- lifecycle ----------------------------------------------------------- */

Sched *sched_new(const SchedConfig *cfg, SglRunner *runner, KvPool *pool, RadixCache *cache,
                 SglErr *err)
{
    Sched *s = calloc(1, sizeof *s);
    if (!s) {
        sgl_err(err, SGL_E_NOMEM, "out of memory");
        return NULL;
    }
    s->cfg = *cfg;
    sched_opts_defaults(&s->cfg.o);
    s->ntr = s->ntr_init = s->cfg.o.init_new_token_ratio == 0.0f ? NEW_TOKEN_RATIO_INIT
                           : s->cfg.o.init_new_token_ratio < 0.0f ? 0.0
                           : s->cfg.o.init_new_token_ratio;
    s->runner = runner;
    s->pool = pool;
    s->cache = cache;
    s->P = kvpool_page_size(pool);
    s->V = cfg->vocab_size;
    s->rng = cfg->o.seed ^ 0x5DEECE66Dull;
    if (s->V < 1 || s->cfg.max_ctx < 2) {
        sgl_err(err, SGL_E_INVAL, "scheduler: bad vocab size %d or context %d", (int)s->V, (int)s->cfg.max_ctx);
        free(s);
        return NULL;
    }
    int32_t R = s->cfg.o.max_running_requests;
    s->max_batch_tokens = s->cfg.o.max_prefill_tokens + R;
    int32_t extra = LP_ROWS_BUDGET_FLOATS / s->V;
    s->max_rows = R + max32(64, min32(extra, s->cfg.o.max_prefill_tokens));
    s->running = calloc((size_t)R, sizeof *s->running);
    s->bseq = calloc((size_t)R, sizeof *s->bseq);
    s->tokens = malloc((size_t)s->max_batch_tokens * sizeof *s->tokens);
    s->positions = malloc((size_t)s->max_batch_tokens * sizeof *s->positions);
    s->seq_off = malloc(((size_t)R + 1) * sizeof *s->seq_off);
    s->kv_len = malloc(((size_t)R + 1) * sizeof *s->kv_len);
    s->slot_off = malloc(((size_t)R + 1) * sizeof *s->slot_off);
    s->slots = malloc((size_t)R * (size_t)s->cfg.max_ctx * sizeof *s->slots);
    s->lanes_free = malloc((size_t)R * sizeof *s->lanes_free);
    s->logit_rows = malloc((size_t)s->max_rows * sizeof *s->logit_rows);
    s->logits = malloc((size_t)s->max_rows * (size_t)s->V * sizeof *s->logits);
    s->mask = malloc(((size_t)s->V + 31) / 32 * sizeof *s->mask);
    s->match_pages = malloc(((size_t)s->cfg.max_ctx / (size_t)s->P + 2) * sizeof *s->match_pages);
    if (!s->running || !s->bseq || !s->tokens || !s->positions || !s->seq_off || !s->kv_len ||
        !s->slot_off || !s->slots || !s->lanes_free || !s->logit_rows || !s->logits || !s->mask ||
        !s->match_pages) {
        sgl_err(err, SGL_E_NOMEM, "scheduler: out of memory for batch buffers");
        sched_free(s);
        return NULL;
    }
    if (cfg->trace) {
        s->prof = true;
        fprintf(cfg->trace, "{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n"
                "{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":1,\"tid\":1,\"args\":{\"name\":\"engine loop\"}},\n"
                "{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":1,\"tid\":2,"
                "\"args\":{\"name\":\"runner: begun .. ended (overlap)\"}}");
    }
    s->prof |= s->cfg.o.profile;
    if (!device_sampling_init(s) || !flights_init(s)) {
        sgl_err(err, SGL_E_NOMEM, "scheduler: out of memory for device sampling buffers");
        sched_free(s);
        return NULL;
    }
    for (int32_t i = 0; i < R; i++)
        s->lanes_free[i] = R - 1 - i;
    s->n_lanes_free = R;
    s->st.page_size = s->P;
    return s;
}

void sched_free(Sched *s)
{
    if (!s)
        return;
    drain(s, NULL);
    sched_abort_all(s, SGL_FINISH_ABORT, "engine closed");
    if (s->cfg.trace)
        fprintf(s->cfg.trace, "\n]}\n");
    for (int k = 0; k < 2; k++) {
        free(s->fl[k].seq);
        free(s->fl[k].row);
        free(s->fl[k].ids);
        free(s->fl[k].lp);
    }
    free(s->waiting);
    free(s->tmp);
    free(s->running);
    free(s->bseq);
    free(s->tokens);
    free(s->positions);
    free(s->seq_off);
    free(s->kv_len);
    free(s->slot_off);
    free(s->slots);
    free(s->lanes_free);
    free(s->logit_rows);
    free(s->logits);
    free(s->mask);
    free(s->gs_rows);
    free(s->gs_masks);
    free(s->gs_ids);
    free(s->gs_lp);
    free(s->match_pages);
    free(s);
}

/* Aborts every sample of r that has not finished (running, waiting, or not
 * yet forked: those get a final event too). Frees r after its last event. */
static void abort_req(Sched *s, SchedReq *r, SglFinishKind kind, const char *msg)
{
    int32_t n = r->n_samples;
    for (int32_t i = 0; i < n; i++) {
        SchedSeq *q = r->seqs[i];
        if (q && q->state == SEQ_DONE)
            continue;
        if (!q) {
            q = r->seqs[i] = seq_new(s, r, i);
            if (!q) {
                /* no memory even for the report: count it silently */
                if (++r->n_done == n) {
                    if (r->r.constraint.release)
                        r->r.constraint.release(r->r.constraint.ctx);
                    sched_req_free(r);
                    return;
                }
                continue;
            }
            r->n_created = i + 1;
        } else if (q->state == SEQ_RUNNING) {
            running_remove(s, q);
        } else {
            for (int32_t j = 0; j < s->n_waiting; j++)
                if (s->waiting[j] == q) {
                    waiting_remove_at(s, j);
                    break;
                }
        }
        snprintf(q->error, sizeof q->error, "%s", msg);
        bool last = r->n_done + 1 == n;
        finish_seq(s, q, kind, false, NULL, 0);
        if (last)
            return; /* r is freed */
    }
}

void sched_add(Sched *s, SchedReq *r)
{
    r->arrival = ++s->arrivals;
    if (!waiting_push(s, r->seqs[0], false))
        abort_req(s, r, SGL_FINISH_ERROR, "out of memory queueing the request");
}

static SchedReq *find_req(Sched *s, uint64_t id)
{
    for (int32_t i = 0; i < s->n_running; i++)
        if (s->running[i]->req->id == id)
            return s->running[i]->req;
    for (int32_t i = 0; i < s->n_waiting; i++)
        if (s->waiting[i]->req->id == id)
            return s->waiting[i]->req;
    return NULL;
}

bool sched_abort(Sched *s, uint64_t id)
{
    SchedReq *r = find_req(s, id);
    if (!r)
        return false;
    abort_req(s, r, SGL_FINISH_ABORT, "aborted");
    return true;
}

void sched_abort_all(Sched *s, SglFinishKind kind, const char *msg)
{
    while (s->n_running > 0)
        abort_req(s, s->running[0]->req, kind, msg);
    while (s->n_waiting > 0)
        abort_req(s, s->waiting[0]->req, kind, msg);
    drain(s, NULL); /* begun batches now list no sequence: their ids are dropped */
}

bool sched_idle(const Sched *s) { return s->n_running == 0 && s->n_waiting == 0 && s->n_fl == 0; }
int32_t sched_n_waiting(const Sched *s) { return s->n_waiting; }
int32_t sched_n_running(const Sched *s) { return s->n_running; }

bool sched_flush_cache(Sched *s)
{
    if (s->n_running > 0)
        return false;
    return radix_reset(s->cache);
}

void sched_stats(const Sched *s, SglEngineStats *st)
{
    *st = s->st;
    st->running = s->n_running;
    st->queued = s->n_waiting;
    st->pool_pages = kvpool_n_pages(s->pool);
    st->pool_free_pages = kvpool_n_free(s->pool);
    st->page_size = s->P;
    st->cache_tokens = radix_total_tokens(s->cache);
    st->cache_evictable_tokens = radix_evictable_tokens(s->cache);
    st->cache_protected_tokens = radix_protected_tokens(s->cache);
    st->cache_hit_rate = s->hit_tokens + s->miss_tokens > 0
                             ? (double)s->hit_tokens / (double)(s->hit_tokens + s->miss_tokens) : 0.0;
}

/* ---- policies ------------------------------------------------------------ */

static bool wants_lp(const SchedSeq *q)
{
    return q->index == 0 && q->req->lp_first >= 0 && !q->req->prompt_lp_done;
}

/* Longest prefix q may take from the cache: at least one token is always
 * computed, and prompt logprobs need the logits from lp_first on. */
static int32_t match_cap(const SchedSeq *q)
{
    int32_t cap = q->n_tokens - 1;
    if (wants_lp(q) && q->req->lp_first < cap)
        cap = q->req->lp_first;
    return cap;
}

static int cmp_arrival(const SchedSeq *a, const SchedSeq *b)
{
    if (a->req->arrival != b->req->arrival)
        return a->req->arrival < b->req->arrival ? -1 : 1;
    return (a->index > b->index) - (a->index < b->index);
}

/* sort_key descending, then arrival. */
static int cmp_key_desc(const void *pa, const void *pb)
{
    const SchedSeq *a = *(SchedSeq *const *)pa, *b = *(SchedSeq *const *)pb;
    if (a->sort_key != b->sort_key)
        return a->sort_key > b->sort_key ? -1 : 1;
    return cmp_arrival(a, b);
}

static int cmp_fcfs(const void *pa, const void *pb)
{
    return cmp_arrival(*(SchedSeq *const *)pa, *(SchedSeq *const *)pb);
}

/* Lexicographic on (namespace, tokens), shorter first, then arrival. */
static int cmp_lex(const void *pa, const void *pb)
{
    const SchedSeq *a = *(SchedSeq *const *)pa, *b = *(SchedSeq *const *)pb;
    if (a->req->r.ns != b->req->r.ns)
        return a->req->r.ns < b->req->r.ns ? -1 : 1;
    int32_t n = min32(a->n_tokens, b->n_tokens);
    for (int32_t i = 0; i < n; i++)
        if (a->tokens[i] != b->tokens[i])
            return a->tokens[i] < b->tokens[i] ? -1 : 1;
    if (a->n_tokens != b->n_tokens)
        return a->n_tokens < b->n_tokens ? -1 : 1;
    return cmp_arrival(a, b);
}

static int32_t token_at(const SchedSeq *q, int32_t d) { return d < q->n_tokens ? q->tokens[d] : -1; }

/* dfs-weight over the waiting prompts themselves: in a lexicographically
 * sorted range w[lo, hi) sharing tokens [0, d), the sequences that end at d
 * come first, then the groups continuing with each next token, heaviest
 * (most sequences) group first, each group ordered the same way. This is
 * SGLang's DFS over radix nodes weighted by waiting requests, computed on a
 * trie of the queue instead of the cache. Recursion depth <= the number of
 * sequences (each level splits off at least one group); callers bound it. */
static int32_t group_end(SchedSeq **w, int32_t i, int32_t hi, int32_t d)
{
    int32_t j = i + 1;
    while (j < hi && token_at(w[j], d) == token_at(w[i], d) && w[j]->req->r.ns == w[i]->req->r.ns)
        j++;
    return j;
}

static void dfs_order(SchedSeq **w, SchedSeq **tmp, int32_t lo, int32_t hi, int32_t d)
{
    for (;;) {
        while (lo < hi && token_at(w[lo], d) < 0)
            lo++; /* sequences ending at depth d sort first and stay first */
        if (hi - lo <= 1)
            return;
        int32_t n_groups = 0;
        for (int32_t i = lo, j; i < hi; i = j) {
            j = group_end(w, i, hi, d);
            w[i]->sort_key = j - i; /* group size, kept on the group's head */
            n_groups++;
        }
        if (n_groups == 1) {
            d++;
            continue;
        }
        int32_t out = lo;
        for (int32_t pass = 0; pass < n_groups; pass++) {
            int32_t best = -1, best_n = 0;
            for (int32_t i = lo; i < hi; i += abs(w[i]->sort_key))
                if (w[i]->sort_key > best_n) {
                    best = i;
                    best_n = w[i]->sort_key;
                }
            memcpy(tmp + out, w + best, (size_t)best_n * sizeof *w);
            w[best]->sort_key = -best_n; /* taken */
            out += best_n;
        }
        memcpy(w + lo, tmp + lo, (size_t)(hi - lo) * sizeof *w);
        for (int32_t i = lo, j; i < hi; i = j) {
            j = group_end(w, i, hi, d);
            dfs_order(w, tmp, i, j, d + 1);
        }
        return;
    }
}

/* Puts the waiting queue in admission order. */
static void order_waiting(Sched *s)
{
    SglPolicy pol = s->cfg.o.policy;
    int32_t n = s->n_waiting;
    if (n < 2)
        return;
    if ((pol == SGL_POLICY_LPM || pol == SGL_POLICY_DFS_WEIGHT) && n > LPM_FALLBACK_LEN)
        pol = SGL_POLICY_FCFS;
    switch (pol) {
    case SGL_POLICY_LPM:
        for (int32_t i = 0; i < n; i++) {
            SchedSeq *q = s->waiting[i];
            RadixNode *node = NULL;
            q->sort_key = radix_match(s->cache, q->req->r.ns, q->tokens, match_cap(q), s->match_pages, &node, false);
        }
        qsort(s->waiting, (size_t)n, sizeof *s->waiting, cmp_key_desc);
        break;
    case SGL_POLICY_FCFS: {
        /* the queue is appended in arrival order and requeued sequences go
         * to the front, so it is almost always sorted already: check first */
        int32_t i = 1;
        while (i < n && cmp_arrival(s->waiting[i - 1], s->waiting[i]) <= 0)
            i++;
        if (i < n)
            qsort(s->waiting, (size_t)n, sizeof *s->waiting, cmp_fcfs);
        break;
    }
    case SGL_POLICY_LOF:
        for (int32_t i = 0; i < n; i++)
            s->waiting[i]->sort_key = s->waiting[i]->req->max_new;
        qsort(s->waiting, (size_t)n, sizeof *s->waiting, cmp_key_desc);
        break;
    case SGL_POLICY_RANDOM:
        for (int32_t i = n - 1; i > 0; i--) {
            int32_t j = (int32_t)(rng_next(&s->rng) % (uint64_t)(i + 1));
            SchedSeq *t = s->waiting[i];
            s->waiting[i] = s->waiting[j];
            s->waiting[j] = t;
        }
        break;
    case SGL_POLICY_DFS_WEIGHT:
        qsort(s->waiting, (size_t)n, sizeof *s->waiting, cmp_lex);
        dfs_order(s->waiting, s->tmp, 0, n, 0);
        break;
    default:
        break;
    }
}

/* ---- schedule ------------------------------------------------------------- */

static bool is_decode(const SchedSeq *q) { return q->n_tokens - q->kv_len == 1; }

/* Logits rows for prompt logprobs in q's chunk [kv_len, kv_len + n): the
 * row at position pos scores prompt token pos + 1. */
static int32_t lp_rows(const SchedSeq *q, int32_t n, int32_t *pos0)
{
    *pos0 = 0;
    if (!wants_lp(q))
        return 0;
    int32_t lo = max32(q->kv_len, q->req->lp_first);
    int32_t hi = min32(q->kv_len + n, q->req->r.n_input - 1);
    *pos0 = lo;
    return hi > lo ? hi - lo : 0;
}

/* The chunk ends at the last token and an output is still due (outputs
 * whose ids are not back yet count: see overlap scheduling). */
static bool samples_after(const SchedSeq *q, int32_t n)
{
    return q->kv_len + n == q->n_tokens && q->n_out + q->pending < q->req->max_new;
}

/* Overlap: q's last outputs are on their way and will reach max_new_tokens,
 * so it is not given another step. */
static bool outputs_due(const SchedSeq *q)
{
    return q->pending > 0 && q->n_out + q->pending >= q->req->max_new;
}

/* Shrinks chunk n until its logits rows fit in what is left this step. */
static int32_t fit_rows(const Sched *s, const SchedSeq *q, int32_t n)
{
    int32_t left = s->max_rows - s->nr, p0;
    while (n > 0) {
        int32_t need = lp_rows(q, n, &p0) + (samples_after(q, n) ? 1 : 0);
        if (need <= left)
            break;
        n -= need - left < n ? need - left : n;
    }
    return n;
}

/* Puts n tokens of q into this step; rows are only counted here (the
 * arrays are laid out by build_batch). */
static void add_to_batch(Sched *s, SchedSeq *q, int32_t n)
{
    s->bseq[s->nb++] = q;
    q->n_new = n;
    q->was_decode = is_decode(q);
    int32_t p0;
    s->nr += lp_rows(q, n, &p0) + (samples_after(q, n) ? 1 : 0);
}

static int cmp_lane(const void *pa, const void *pb)
{
    const SchedSeq *a = *(SchedSeq *const *)pa, *b = *(SchedSeq *const *)pb;
    return (a->lane > b->lane) - (a->lane < b->lane);
}

/* Lays out the runner's arrays. Sequences go in lane order so that slot_off
 * increases and each sequence's slot table has max_ctx entries of room. */
static void build_batch(Sched *s)
{
    qsort(s->bseq, (size_t)s->nb, sizeof *s->bseq, cmp_lane);
    s->nt = s->nr = 0;
    for (int32_t b = 0; b < s->nb; b++) {
        SchedSeq *q = s->bseq[b];
        int32_t n = q->n_new;
        s->seq_off[b] = s->nt;
        for (int32_t j = 0; j < n; j++) {
            s->tokens[s->nt + j] = q->tokens[q->kv_len + j];
            s->positions[s->nt + j] = q->kv_len + j;
        }
        s->nt += n;
        s->kv_len[b] = q->kv_len + n;
        s->slot_off[b] = q->lane * s->cfg.max_ctx;
        int32_t p0;
        q->n_lp = lp_rows(q, n, &p0);
        q->lp_pos0 = p0;
        q->lp_row0 = s->nr;
        for (int32_t k = 0; k < q->n_lp; k++)
            s->logit_rows[s->nr++] = s->seq_off[b] + (p0 + k - q->kv_len);
        q->sample_row = -1;
        if (samples_after(q, n)) {
            q->sample_row = s->nr;
            s->logit_rows[s->nr++] = s->nt - 1;
        }
    }
    s->seq_off[s->nb] = s->nt;
    s->slot_off[s->nb] = s->cfg.o.max_running_requests * s->cfg.max_ctx;
}

/* Gives q's pages back and puts it at the front of the waiting queue; its
 * tokens (prompt + output so far) are recomputed when it is readmitted. */
static void retract(Sched *s, SchedSeq *q)
{
    s->ntr = s->ntr_init; /* admission was too optimistic: reserve more again */
    running_remove(s, q);
    release_kv(s, q);
    lane_put(s, q);
    s->st.retractions++;
    if (!waiting_push(s, q, true)) {
        snprintf(q->error, sizeof q->error, "out of memory re-queueing a retracted request");
        finish_seq(s, q, SGL_FINISH_ERROR, false, NULL, 0);
    }
}

/* Retraction victim (SGLang's order): fewest outputs, then longest prompt. */
static SchedSeq *pick_victim(Sched *s)
{
    SchedSeq *v = NULL;
    for (int32_t i = 0; i < s->n_running; i++) {
        SchedSeq *q = s->running[i];
        if (!v || q->n_out < v->n_out || (q->n_out == v->n_out && q->req->r.n_input > v->req->r.n_input))
            v = q;
    }
    return v;
}

static bool shares_prefix_with_admitted(const Sched *s, const SchedSeq *q, int32_t from)
{
    if (q->n_tokens < IN_BATCH_PREFIX_MIN)
        return false;
    for (int32_t b = from; b < s->nb; b++) {
        const SchedSeq *o = s->bseq[b];
        if (o->req->r.ns == q->req->r.ns && o->n_tokens >= IN_BATCH_PREFIX_MIN &&
            memcmp(o->tokens, q->tokens, IN_BATCH_PREFIX_MIN * sizeof *q->tokens) == 0)
            return true;
    }
    return false;
}

static void schedule_decodes(Sched *s)
{
    int32_t need = 0;
    for (int32_t i = 0; i < s->n_running; i++)
        if (is_decode(s->running[i]) && !outputs_due(s->running[i]) &&
            pages_needed(s, s->running[i], s->running[i]->kv_len + 1) > 0)
            need++;
    while (!ensure_free(s, need) && s->n_running > 1) {
        SchedSeq *v = pick_victim(s);
        if (is_decode(v) && !outputs_due(v) && pages_needed(s, v, v->kv_len + 1) > 0)
            need--;
        retract(s, v);
    }
    for (int32_t i = 0; i < s->n_running; i++) {
        SchedSeq *q = s->running[i];
        if (!is_decode(q) || outputs_due(q))
            continue;
        if (grow(s, q, q->kv_len + 1) != SGL_OK) {
            /* alone and still no page: cannot happen for a request that
             * passed sched_req_new, but never spin on it */
            running_remove(s, q);
            i--;
            snprintf(q->error, sizeof q->error, "KV pool exhausted");
            finish_seq(s, q, SGL_FINISH_LENGTH, true, NULL, 0);
            continue;
        }
        add_to_batch(s, q, 1);
    }
}

/* Output tokens admission keeps room for on q's behalf (SGLang's
 * new_token_ratio): without it a batch admitted on its prompts alone runs
 * out of pages as outputs grow and retracts (recomputes) requests. */
static int64_t reserve_tokens(const Sched *s, const SchedSeq *q)
{
    int64_t left = (int64_t)q->req->max_new - q->n_out;
    if (left <= 0 || s->ntr <= 0.0)
        return 0;
    if (left > NEW_TOKEN_RESERVE_CLIP)
        left = NEW_TOKEN_RESERVE_CLIP;
    return (int64_t)ceil(s->ntr * (double)left);
}

static void schedule_prefills(Sched *s)
{
    int32_t budget = s->cfg.o.max_prefill_tokens, chunk = s->cfg.o.chunked_prefill_size;
    for (int32_t i = 0; i < s->n_running && budget > 0; i++) {
        SchedSeq *q = s->running[i];
        if (q->n_new > 0 || is_decode(q))
            continue;
        int32_t n = fit_rows(s, q, min32(min32(q->n_tokens - q->kv_len, chunk), budget));
        if (n <= 0 || !ensure_free(s, pages_needed(s, q, q->kv_len + n)))
            continue;
        grow(s, q, q->kv_len + n);
        add_to_batch(s, q, n);
        budget -= n;
    }
    int32_t R = s->cfg.o.max_running_requests;
    if (s->n_waiting == 0 || s->n_running >= R || budget <= 0)
        return;
    /* no room for even one page beyond the running decodes: skip ordering */
    if (kvpool_n_free(s->pool) + radix_evictable_tokens(s->cache) / s->P < 1 + s->n_running)
        return;
    order_waiting(s);
    int32_t first_admitted = s->nb;
    int64_t reserve = 0; /* tokens kept for the running requests' outputs */
    for (int32_t i = 0; i < s->n_running; i++)
        reserve += reserve_tokens(s, s->running[i]);
    for (int32_t i = 0; i < s->n_waiting && s->n_running < R && budget > 0 && s->nr < s->max_rows;) {
        SchedSeq *q = s->waiting[i];
        RadixNode *node = NULL;
        int32_t m = radix_match(s->cache, q->req->r.ns, q->tokens, match_cap(q), s->match_pages, &node, false);
        if (m < IN_BATCH_PREFIX_MIN && shares_prefix_with_admitted(s, q, first_admitted)) {
            i++; /* its prefix is being computed in this batch: next step it hits */
            continue;
        }
        radix_lock(s->cache, node);
        memcpy(q->pages, s->match_pages, (size_t)(m / s->P) * sizeof *q->pages);
        q->n_pages = m / s->P;
        q->tree_len = q->kv_len = m;
        q->node = node;
        int32_t n = fit_rows(s, q, min32(min32(q->n_tokens - m, chunk), budget));
        int32_t need = pages_needed(s, q, m + n);
        int32_t avail = kvpool_n_free(s->pool) + radix_evictable_tokens(s->cache) / s->P;
        int64_t own = reserve_tokens(s, q);
        int64_t kept = s->n_running > 0 ? (reserve + own + s->P - 1) / s->P : 0;
        if (n <= 0 || avail < need + s->n_running + kept || !ensure_free(s, need)) {
            q->node = NULL;
            q->n_pages = q->tree_len = q->kv_len = 0;
            radix_unlock(s->cache, node);
            break;
        }
        waiting_remove_at(s, i);
        q->lane = s->lanes_free[--s->n_lanes_free];
        q->state = SEQ_RUNNING;
        s->running[s->n_running++] = q;
        write_slots(s, q, 0, q->n_pages);
        grow(s, q, m + n);
        if (!q->admitted_once) {
            q->admitted_once = true;
            q->cached_tokens = m;
            s->st.cached_tokens += m;
        }
        s->hit_tokens += m;
        s->miss_tokens += q->n_tokens - m;
        reserve += own;
        add_to_batch(s, q, n);
        budget -= n;
    }
}

/* ---- postprocess --------------------------------------------------------- */

static bool is_stop_token(const Sched *s, const SchedSeq *q, int32_t tok)
{
    const SchedReq *r = q->req;
    for (int32_t i = 0; i < r->r.params.n_stop_token_ids; i++)
        if (r->stop_ids[i] == tok)
            return true;
    if (!r->r.params.ignore_eos)
        for (int32_t i = 0; i < s->cfg.n_eos; i++)
            if (s->cfg.eos_ids[i] == tok)
                return true;
    return false;
}

/* Feeds a decoded piece to the stop matcher; *text and *len get the part that
 * may be released. Records which stop string completed, if one did. */
static void push_text(SchedSeq *q, const char *piece, size_t plen, const char **text, size_t *len)
{
    SglStopMatcher *m = &q->stop;
    size_t before = m->emitted, old_len = m->len, tl = 0;
    if (q->tail && m->n_stops > 0) {
        tl = old_len < m->max_len ? old_len : m->max_len;
        if (tl)
            memcpy(q->tail, m->buf + old_len - tl, tl);
    }
    size_t safe = 0;
    if (sgl_stop_push(m, piece, plen, &safe) != SGL_OK) {
        snprintf(q->error, sizeof q->error, "out of memory holding the output text");
        safe = 0;
    }
    *text = m->buf ? m->buf + before : "";
    *len = safe;
    if (!m->matched)
        return;
    /* the stop string starts at the cut m->len of old text + piece */
    size_t cut = m->len, base = old_len - tl;
    for (int32_t i = 0; i < m->n_stops && q->matched_stop < 0; i++) {
        size_t sl = strlen(m->stops[i]);
        if (cut < base || cut + sl > old_len + plen)
            continue;
        bool eq = true;
        for (size_t k = 0; k < sl && eq; k++) {
            size_t x = cut + k;
            char c = x < old_len ? q->tail[x - base] : piece[x - old_len];
            eq = c == m->stops[i][k];
        }
        if (eq)
            q->matched_stop = i;
    }
}

/* The text of token tok (malloc'd by the detokenizer, or borrowed from the
 * test hook); *owned says whether the caller frees it. */
static const char *token_piece(Sched *s, SchedSeq *q, int32_t tok, size_t *len, char **owned)
{
    *owned = NULL;
    *len = 0;
    if (q->has_detok) {
        if (sgl_detok_push(&q->detok, tok, owned, len) != SGL_OK)
            return "";
        return *owned;
    }
    if (s->cfg.token_text)
        return s->cfg.token_text(s->cfg.token_text_user, tok, len);
    return "";
}

/* End of output: releases what the detokenizer and stop matcher held back.
 * *text and *len: the released piece (inside the matcher's buffer). */
static void flush_text(SchedSeq *q, const char **text, size_t *len)
{
    SglStopMatcher *m = &q->stop;
    size_t before = m->emitted, safe = 0;
    if (q->has_detok) {
        char *t = NULL;
        size_t tl = 0;
        if (sgl_detok_flush(&q->detok, &t, &tl) == SGL_OK && tl > 0) {
            const char *dummy;
            push_text(q, t, tl, &dummy, &safe);
        }
        free(t);
    }
    if (!m->matched)
        safe += sgl_stop_finish(m);
    *text = m->buf ? m->buf + before : "";
    *len = safe;
}

/* ---- jump-forward ---------------------------------------------------------
 *
 * When a constrained sequence reaches a DFA state whose next bytes are forced
 * (the keys and punctuation of a JSON object), they are appended at once
 * instead of being decoded token by token. Tokenizing the forced text alone
 * would give a token sequence the tokenizer never produces at the boundary
 * ("John" + "\", " vs "John\"" + ", "), so, as SGLang's jump-forward does,
 * the last few output tokens are re-tokenized together with the forced text:
 * with w0 = max(tree_len, n_input, n_tokens - JF_RETOK_TOKENS),
 *   text   = bytes(tokens[w0, n_tokens)) + forced
 *   ids    = encode(text), accepted only when the ids spell text exactly
 *   common = longest common prefix of ids and tokens[w0, n_tokens)
 * tokens[w0 + common, n_tokens) are rolled back and ids[common..] appended.
 * KV ownership: w0 >= tree_len, so every rolled-back position lies in pages
 * the sequence owns; kv_len drops to at most w0 + common and those pages are
 * reused when the next step computes tokens [kv_len, n_tokens) as one extend
 * chunk (the page table already maps them, nothing is freed or allocated
 * here; pages past the new end are released or cached at finish as usual).
 * Streaming: the text is unchanged byte for byte, so the detokenizer is
 * rebuilt over the new output ids and only text past what the stop matcher
 * already saw is pushed; TOKEN events of the new ids carry n_rollback (ids of
 * earlier events they replace) and forced = true, logprob 0. The jump is
 * skipped (decoding goes on token by token) when no exact encoding exists,
 * the result would pass max_new_tokens, or a new id is a stop id. This is
 * allocation per jump, not per token. */

#define JF_RETOK_TOKENS 8   /* output tokens re-tokenized with the forced text */

static const char *token_bytes(const Sched *s, int32_t id, size_t *len)
{
    *len = 0;
    if (s->cfg.tok)
        return sgl_tokenizer_token_bytes(s->cfg.tok, id, len);
    if (s->cfg.token_text)
        return s->cfg.token_text(s->cfg.token_text_user, id, len);
    return "";
}

/* ids[0..n) spell text[0..len) byte for byte with no special token. */
static bool spells(const Sched *s, const int32_t *ids, int32_t n, const char *text, size_t len)
{
    size_t off = 0;
    for (int32_t i = 0; i < n; i++) {
        size_t tl;
        const char *tb = token_bytes(s, ids[i], &tl);
        if (tl == 0 || tl > len - off || memcmp(text + off, tb, tl) != 0)
            return false;
        if (s->cfg.tok && sgl_tokenizer_is_special(s->cfg.tok, ids[i]))
            return false;
        off += tl;
    }
    return off == len;
}

/* The tokenizer's encoding of text when it spells text exactly (a leading
 * lone " " token, SentencePiece's dummy prefix, is dropped); else NULL.
 * malloc'd, *n ids. */
static int32_t *canonical_tokens(const Sched *s, const char *text, size_t len, int32_t *n)
{
    int32_t *ids = NULL, m = 0;
    *n = 0;
    SglStatus st = SGL_E_UNSUPPORTED;
    if (s->cfg.tok)
        st = sgl_tokenizer_encode(s->cfg.tok, text, len, false, &ids, &m);
    else if (s->cfg.token_encode)
        st = s->cfg.token_encode(s->cfg.token_text_user, text, len, &ids, &m);
    if (st != SGL_OK)
        return NULL;
    if (m > 0 && spells(s, ids, m, text, len)) {
        *n = m;
        return ids;
    }
    size_t l0 = 0;
    const char *b0 = m > 1 ? token_bytes(s, ids[0], &l0) : "";
    if (l0 == 1 && b0[0] == ' ' && spells(s, ids + 1, m - 1, text, len)) {
        memmove(ids, ids + 1, (size_t)(m - 1) * sizeof *ids);
        *n = m - 1;
        return ids;
    }
    free(ids);
    return NULL;
}

/* Appends p[0..n) to the growing buffer *buf (*len used, *cap allocated). */
/* The text a fresh stream releases for outputs ids[0..n): with a tokenizer
 * *d (initialized here; caller keeps or deinits it on true) detokenizes
 * them, else the test hook's token texts are concatenated. NULL-safe false
 * on allocation failure. */
static bool outputs_text(const Sched *s, const int32_t *ids, int32_t n, SglDetok *d, char **buf,
                         size_t *len)
{
    size_t cap = 0;
    *buf = NULL;
    *len = 0;
    if (!sgl_text_append(buf, len, &cap, "", 0))
        return false;
    if (s->cfg.tok)
        sgl_detok_init(d, s->cfg.tok, true);
    for (int32_t i = 0; i < n; i++) {
        if (s->cfg.tok) {
            char *t = NULL;
            size_t tl = 0;
            bool ok = sgl_detok_push(d, ids[i], &t, &tl) == SGL_OK && sgl_text_append(buf, len, &cap, t, tl);
            free(t);
            if (!ok)
                goto fail;
        } else if (s->cfg.token_text) {
            size_t tl = 0;
            const char *t = s->cfg.token_text(s->cfg.token_text_user, ids[i], &tl);
            if (!sgl_text_append(buf, len, &cap, t, tl))
                goto fail;
        }
    }
    return true;
fail:
    if (s->cfg.tok)
        sgl_detok_deinit(d);
    free(*buf);
    *buf = NULL;
    return false;
}

/* A TOKEN event for an id appended by jump-forward. */
static void emit_forced(SchedSeq *q, int32_t tok, int32_t n_rollback, const char *text, size_t len)
{
    SchedReq *r = q->req;
    for (int32_t j = 0; j < r->r.params.top_logprobs_num; j++)
        q->top[j] = j == 0 ? (SglTopLogprob){tok, 0.0f} : (SglTopLogprob){-1, -INFINITY};
    SglEvent ev = {0};
    ev.kind = SGL_EV_TOKEN;
    ev.id = r->id;
    ev.index = q->index;
    ev.token = tok;
    ev.n_rollback = n_rollback;
    ev.forced = true;
    ev.logprob = 0.0f;
    ev.n_top = r->r.params.top_logprobs_num;
    ev.top = q->top;
    ev.text = text;
    ev.text_len = len;
    ev.matched_token = -1;
    emit(r, &ev);
}

static void fork_samples(Sched *s, SchedReq *r);

/* finish_seq for a sequence that may still be in the waiting queue. Sample
 * 0 finishing there (its whole output forced) first creates the request's
 * other samples, which otherwise fork only after its prompt prefill. */
static void finish_any(Sched *s, SchedSeq *q, SglFinishKind kind, const char *text, size_t len)
{
    if (q->index == 0 && q->req->n_created < q->req->n_samples)
        fork_samples(s, q->req);
    if (q->state == SEQ_WAITING)
        for (int32_t j = 0; j < s->n_waiting; j++)
            if (s->waiting[j] == q) {
                waiting_remove_at(s, j);
                break;
            }
    finish_seq(s, q, kind, true, text, len);
}

/* Appends q's forced text (see above). Returns true when q finished (it
 * was then freed or removed from whichever queue held it). */
static bool jump_forward(Sched *s, SchedSeq *q)
{
    SchedReq *r = q->req;
    const SglConstraint *c = &r->r.constraint;
    const char *fb = NULL;
    size_t fl = 0;
    if (s->cfg.o.disable_jump_forward || !c->forced || !c->accept_bytes ||
        !c->forced(c->ctx, q->index, &fb, &fl) || fl == 0)
        return false;
    int32_t n_in = r->r.n_input;
    int32_t w0 = max32(max32(q->tree_len, n_in), q->n_tokens - JF_RETOK_TOKENS);
    char *text = NULL, *d_text = NULL;
    int32_t *ids = NULL, *outs = NULL, m = 0;
    size_t tlen = fl, d_len = 0;
    SglDetok nd;
    bool finished = false, have_nd = false;
    for (int32_t i = w0; i < q->n_tokens; i++) {
        size_t l;
        token_bytes(s, q->tokens[i], &l);
        tlen += l;
    }
    if (!(text = malloc(tlen + 1)))
        goto out;
    size_t off = 0;
    for (int32_t i = w0; i < q->n_tokens; i++) {
        size_t l;
        const char *b = token_bytes(s, q->tokens[i], &l);
        memcpy(text + off, b, l);
        off += l;
    }
    memcpy(text + off, fb, fl);
    ids = canonical_tokens(s, text, tlen, &m);
    if (!ids && w0 < q->n_tokens) {
        w0 = q->n_tokens; /* the tail does not round-trip: the forced text alone */
        ids = canonical_tokens(s, fb, fl, &m);
    }
    if (!ids)
        goto out;
    int32_t common = 0;
    while (common < m && w0 + common < q->n_tokens && ids[common] == q->tokens[w0 + common])
        common++;
    int32_t new_n = w0 + m, n_roll = q->n_tokens - (w0 + common);
    if (new_n - n_in > r->max_new || common == m)
        goto out;
    for (int32_t i = common; i < m; i++)
        if (is_stop_token(s, q, ids[i]))
            goto out;
    /* the stream's text so far must be a prefix of the new outputs' text */
    if (!(outs = malloc(((size_t)(new_n - n_in) + 1) * sizeof *outs)))
        goto out;
    memcpy(outs, q->tokens + n_in, (size_t)(w0 + common - n_in) * sizeof *outs);
    memcpy(outs + (w0 + common - n_in), ids + common, (size_t)(m - common) * sizeof *outs);
    if (!outputs_text(s, outs, new_n - n_in, &nd, &d_text, &d_len))
        goto out;
    have_nd = s->cfg.tok != NULL;
    size_t seen = q->stop.len;
    if (d_len < seen || (seen > 0 && memcmp(d_text, q->stop.buf, seen) != 0))
        goto out;

    /* commit */
    bool complete = c->accept_bytes(c->ctx, q->index, fb, fl);
    memcpy(q->tokens + w0 + common, ids + common, (size_t)(m - common) * sizeof *q->tokens);
    q->n_tokens = new_n;
    if (q->kv_len > w0 + common)
        q->kv_len = w0 + common;
    for (int32_t i = w0 + common - n_in; i < new_n - n_in; i++)
        q->out_lp[i] = 0.0f;
    q->n_out = new_n - n_in;
    for (int32_t i = common; i < m; i++)
        sgl_sampler_accept(q->sampler, ids[i]);
    if (have_nd) {
        sgl_detok_deinit(&q->detok);
        q->detok = nd;
        have_nd = false;
    }
    const char *rel = "";
    size_t rel_len = 0;
    push_text(q, d_text + seen, d_len - seen, &rel, &rel_len);
    for (int32_t i = common; i < m; i++)
        emit_forced(q, ids[i], i == common ? n_roll : 0, i == common ? rel : "", i == common ? rel_len : 0);
    s->st.jump_forwards++;
    s->st.jump_forward_tokens += m - common;
    s->st.jump_forward_rollbacks += n_roll;
    if (q->stop.matched) {
        finish_any(s, q, SGL_FINISH_STOP, NULL, 0);
        finished = true;
    } else if (complete || q->n_out >= r->max_new) {
        flush_text(q, &rel, &rel_len);
        finish_any(s, q, complete ? SGL_FINISH_STOP : SGL_FINISH_LENGTH, rel, rel_len);
        finished = true;
    }
out:
    if (have_nd)
        sgl_detok_deinit(&nd);
    free(d_text);
    free(outs);
    free(ids);
    free(text);
    return finished;
}

/* Start states: a constrained sequence that was never admitted gets its
 * forced prefix (the "{\"" of a JSON object) before its prompt is prefilled,
 * so prompt and forced text are computed in one extend. */
static void jump_forward_waiting(Sched *s)
{
    if (s->cfg.o.disable_jump_forward)
        return;
    for (int32_t i = 0; i < s->n_waiting;) {
        SchedSeq *q = s->waiting[i];
        /* (prompt logprobs need the prompt's forward: no start jump then) */
        if (!q->jf_start_done && q->req->r.constraint.forced && !wants_lp(q)) {
            q->jf_start_done = true;
            if (q->n_out == 0 && jump_forward(s, q)) {
                i = 0; /* finished and removed; forked samples may be at the front */
                continue;
            }
        }
        i++;
    }
}

/* ---- device sampling --------------------------------------------------------
 * With a runner that has forward_sample, a step whose every logits row is a
 * sample row with device-supported params (no penalties, no banned ids before
 * min_new_tokens, no top-n log-probs, no prompt log-probs) is sampled on the
 * device: only ids and the chosen tokens' log-probs come back, instead of
 * (rows x vocab) fp32 logits. The constraint masks are computed here, before
 * the forward, for the state sample_seq would see. Any other step, or
 * SGL_HOST_SAMPLING=1 in the environment, keeps the host path. The device
 * draw is keyed by (seed, tokens output so far), not the CPU sampler's RNG
 * stream: seeded samples differ between the paths, greedy ones do not.
 * The overlap path (below) always samples on the runner, so it uses the same
 * rows; SGL_HOST_SAMPLING=1 turns it off too. */

static bool device_sampling_init(Sched *s)
{
    const char *env = getenv("SGL_HOST_SAMPLING");
    const SglRunnerOps *ops = s->runner ? s->runner->ops : NULL;
    if (!ops || (env && *env && strcmp(env, "0") != 0))
        return true;
    s->gs_sync = ops->forward_sample != NULL;
    s->overlap = ops->forward_sample_begin && ops->forward_sample_end && !s->cfg.o.disable_overlap_schedule;
    if (!s->gs_sync && !s->overlap)
        return true;
    size_t words = ((size_t)s->V + 31) / 32;
    s->gs_rows = calloc((size_t)s->max_rows, sizeof *s->gs_rows);
    s->gs_masks = malloc((size_t)s->max_rows * words * sizeof *s->gs_masks);
    s->gs_ids = malloc((size_t)s->max_rows * sizeof *s->gs_ids);
    s->gs_lp = malloc((size_t)s->max_rows * sizeof *s->gs_lp);
    return s->gs_rows && s->gs_masks && s->gs_ids && s->gs_lp;
}

/* The runner's sampler covers q's next token (its output index is n_out +
 * pending: earlier ones may not be back yet). */
static bool device_row_ok(const SchedSeq *q)
{
    const SglSamplingParams *p = &q->req->r.params;
    return q->n_lp == 0 && p->frequency_penalty == 0.0f && p->presence_penalty == 0.0f &&
           p->repetition_penalty == 1.0f && p->top_logprobs_num == 0 &&
           !(q->n_out + q->pending < p->min_new_tokens && q->n_banned > 0);
}

/* Fills gs_rows/gs_masks for this step; false when a row needs the host. */
static bool device_plan(Sched *s)
{
    size_t words = ((size_t)s->V + 31) / 32;
    int32_t n_rows = 0;
    for (int32_t b = 0; b < s->nb; b++) {
        SchedSeq *q = s->bseq[b];
        if (q->sample_row < 0)
            continue;
        if (!device_row_ok(q))
            return false;
        SchedReq *r = q->req;
        const SglSamplingParams *p = &r->r.params;
        SglRowSampling *g = &s->gs_rows[q->sample_row];
        g->temperature = p->temperature;
        g->top_k = p->top_k;
        g->top_p = p->top_p;
        g->min_p = p->min_p;
        g->seed = p->has_seed ? p->seed + (uint64_t)q->index
                              : (r->id * 0x2545F4914F6CDD1Dull ^ s->cfg.o.seed) + (uint64_t)q->index;
        g->step = (uint64_t)(q->n_out + q->pending);
        g->want_logprob = p->return_logprob;
        g->use_mask = false;
        if (r->r.constraint.mask) {
            uint32_t *m = s->gs_masks + (size_t)q->sample_row * words;
            memset(m, 0, words * sizeof *m);
            g->use_mask = r->r.constraint.mask(r->r.constraint.ctx, q->index, m, s->V);
        }
        n_rows++;
    }
    return n_rows == s->nr && n_rows > 0;
}

static SglStatus forward_step(Sched *s, const SglBatch *batch, bool on_device, SglErr *err)
{
    s->gs_step = false;
    if (on_device) {
        SglStatus st = s->runner->ops->forward_sample(s->runner, batch, s->gs_rows, s->gs_masks,
                                                      s->gs_ids, s->gs_lp, err);
        if (st != SGL_E_UNSUPPORTED) {
            s->gs_step = st == SGL_OK;
            return st;
        }
    }
    return sgl_runner_forward(s->runner, batch, s->logits, err);
}

/* The device's token for q: SGL_E_NOTFOUND when its mask allowed none. */
static SglStatus device_token(const Sched *s, const SchedSeq *q, int32_t *tok, float *lp)
{
    int32_t t = s->gs_ids[q->sample_row];
    if (t < 0 || t >= s->V)
        return SGL_E_NOTFOUND;
    *tok = t;
    *lp = q->req->r.params.return_logprob ? s->gs_lp[q->sample_row] : 0.0f;
    return SGL_OK;
}

/* finish_seq, or finish_any for a sequence retracted while its token was
 * still on the runner. */
static void finish_taken(Sched *s, SchedSeq *q, SglFinishKind kind, const char *text, size_t len)
{
    if (q->state == SEQ_WAITING)
        finish_any(s, q, kind, text, len);
    else
        finish_seq(s, q, kind, true, text, len);
}

/* q's next output token is tok (sampled here or on the runner): record it,
 * stream its text, and finish q on a stop token, stop string, completed
 * constraint or length; otherwise try jump-forward. The token replaces q's
 * oldest placeholder when it has one. */
static void take_token(Sched *s, SchedSeq *q, int32_t tok, float lp)
{
    SchedReq *r = q->req;
    sgl_sampler_accept(q->sampler, tok);
    bool c_done = r->r.constraint.accept && r->r.constraint.accept(r->r.constraint.ctx, q->index, tok);
    if (q->pending > 0)
        q->tokens[q->n_tokens - q->pending--] = tok;
    else
        q->tokens[q->n_tokens++] = tok;
    q->out_lp[q->n_out++] = lp;
    s->st.generated_tokens++;
    bool stop_tok = is_stop_token(s, q, tok);
    const char *text = "";
    size_t len = 0;
    double te = s->prof ? now_us() : 0.0;
    if (!stop_tok) {
        char *owned;
        size_t plen;
        const char *piece = token_piece(s, q, tok, &plen, &owned);
        push_text(q, piece, plen, &text, &len);
        emit_token(q, tok, lp, text, len);
        free(owned);
    } else {
        emit_token(q, tok, lp, "", 0);
        q->matched_token = tok;
    }
    if (s->prof)
        s->emit_us += now_us() - te;
    if (q->stop.matched && !stop_tok) {
        finish_taken(s, q, SGL_FINISH_STOP, NULL, 0);
    } else if (stop_tok || c_done || q->n_out >= r->max_new) {
        flush_text(q, &text, &len);
        SglFinishKind k = stop_tok || c_done || q->stop.matched ? SGL_FINISH_STOP : SGL_FINISH_LENGTH;
        finish_taken(s, q, k, text, len);
    } else if (q->state == SEQ_RUNNING && q->pending == 0) {
        jump_forward(s, q);
    }
}

static void sample_seq(Sched *s, SchedSeq *q)
{
    SchedReq *r = q->req;
    float *row = s->logits + (size_t)q->sample_row * (size_t)s->V;
    const uint32_t *allowed = NULL;
    if (r->r.constraint.mask && !s->gs_step) {
        memset(s->mask, 0, ((size_t)s->V + 31) / 32 * sizeof *s->mask);
        if (r->r.constraint.mask(r->r.constraint.ctx, q->index, s->mask, s->V))
            allowed = s->mask;
    }
    int32_t n_banned = q->n_out < r->r.params.min_new_tokens ? q->n_banned : 0;
    int32_t tok = -1;
    float lp = 0.0f;
    bool want_lp = r->r.params.return_logprob || r->r.params.top_logprobs_num > 0;
    if (s->gs_step ? device_token(s, q, &tok, &lp) != SGL_OK
                   : sgl_sample(q->sampler, row, allowed, q->banned, n_banned, &tok, want_lp ? &lp : NULL,
                                r->r.params.top_logprobs_num > 0 ? q->top : NULL) != SGL_OK) {
        /* an unsatisfiable constraint state: end this sample, never spin */
        snprintf(q->error, sizeof q->error,
                 "constraint: no token of the vocabulary can continue the output after %d tokens",
                 (int)q->n_out);
        const char *text = "";
        size_t len = 0;
        flush_text(q, &text, &len);
        finish_seq(s, q, SGL_FINISH_ERROR, true, text, len);
        return;
    }
    take_token(s, q, tok, lp);
}

/* Creates samples 1..n-1 at the front of the waiting queue. */
static void fork_samples(Sched *s, SchedReq *r)
{
    for (int32_t i = r->n_samples - 1; i >= r->n_created; i--) {
        SchedSeq *q = r->seqs[i] = seq_new(s, r, i);
        if (!q || !waiting_push(s, q, true)) {
            if (q) {
                snprintf(q->error, sizeof q->error, "out of memory forking sample %d", (int)i);
                finish_seq(s, q, SGL_FINISH_ERROR, false, NULL, 0);
            } else {
                r->n_done++; /* r has a running sample 0, so it is not complete */
            }
        }
    }
    r->n_created = r->n_samples;
}

/* The part of postprocessing that needs no sampled token: q's chunk is
 * computed (or, overlapped, enqueued: the runner orders it before anything
 * that reads it), prefill chunks go into the radix cache, and sample 0
 * forks the others once its prompt is in. */
static void commit_chunk(Sched *s, SchedSeq *q)
{
    SchedReq *r = q->req;
    q->kv_len += q->n_new;
    if (q->was_decode) {
        s->st.decode_tokens++;
    } else {
        s->st.prefill_tokens += q->n_new;
        cache_seq(s, q, false);
    }
    if (q->index == 0 && r->n_created < r->n_samples && q->kv_len >= r->r.n_input)
        fork_samples(s, r);
}

static void postprocess(Sched *s)
{
    for (int32_t b = 0; b < s->nb; b++) {
        SchedSeq *q = s->bseq[b];
        SchedReq *r = q->req;
        for (int32_t k = 0; k < q->n_lp; k++) {
            int32_t pos = q->lp_pos0 + k, tok = q->tokens[pos + 1];
            sgl_logprobs_of(s->logits + (size_t)(q->lp_row0 + k) * (size_t)s->V, s->V, &tok, 1,
                            &r->prompt_lp[pos + 1]);
        }
        commit_chunk(s, q);
        if (wants_lp(q) && q->kv_len >= r->r.n_input - 1)
            r->prompt_lp_done = true;
        if (q->sample_row >= 0)
            sample_seq(s, q);
        else if (r->max_new == 0 && q->kv_len == q->n_tokens)
            finish_seq(s, q, SGL_FINISH_LENGTH, true, NULL, 0);
    }
}

/* ---- overlap scheduling -----------------------------------------------------
 * SGLang's zero-overhead scheduler, on forward_sample_begin/end. One call of
 * sched_step, with batch N begun earlier and still running:
 *   schedule N+1 -> build -> begin N+1 -> commit its chunks -> end N ->
 *   postprocess N (tokens, detokenize, stops, events, finishing)
 * so that everything but the begin runs while the runner computes. Batch N+1
 * is scheduled before N's ids are back: a sequence of N that samples gets a
 * placeholder token -(row+1) appended when N is begun (pending counts them;
 * they are always its last tokens), N+1 feeds that placeholder as its input
 * token and the runner reads the id from N's result on the device. When N's
 * ids come back each replaces its sequence's oldest placeholder.
 *   A sequence that finishes at N (EOS, stop string, length) may already be in
 * N+1: finish_seq drops its placeholder, removes it from the begun batch (its
 * N+1 id is discarded) and releases or caches its KV at once; N+1 writes KV
 * only into pages the sequence held, and any batch that reuses those pages is
 * begun later, so the runner runs it after N+1. Length is known in advance:
 * a sequence whose outputs + placeholders reach max_new_tokens is not
 * scheduled again, so only EOS, stop ids and stop strings cost an extra row.
 *   Retraction and abort work as usual (placeholders stay in the token list of
 * a retracted sequence and are resolved by the runner if it is readmitted
 * before its id is back; the radix tree never gets them: cache_seq stops
 * at the first placeholder).
 *   A step runs synchronously (after draining the begun batches) when any
 * queued or running request needs the host sampler: constraints (masks,
 * jump-forward), penalties, top-n or prompt log-probs, banned ids before
 * min_new_tokens; or when the runner declined the batch (more rows than it
 * samples at once). */

static bool flights_init(Sched *s)
{
    if (!s->overlap)
        return true;
    size_t R = (size_t)s->cfg.o.max_running_requests;
    for (int k = 0; k < 2; k++) {
        SchedFlight *f = &s->fl[k];
        f->seq = calloc(R, sizeof *f->seq);
        f->row = malloc(R * sizeof *f->row);
        f->ids = malloc(R * sizeof *f->ids);
        f->lp = calloc(R, sizeof *f->lp);
        if (!f->seq || !f->row || !f->ids || !f->lp)
            return false;
    }
    return true;
}

static void flight_forget(Sched *s, SchedSeq *q)
{
    for (int32_t k = 0; k < s->n_fl; k++) {
        SchedFlight *f = &s->fl[(s->fl_head + k) % 2];
        for (int32_t b = 0; b < f->nb; b++)
            if (f->seq[b] == q)
                f->seq[b] = NULL;
    }
    q->fl_refs = 0;
}

/* Every queued and running sequence can sample on the runner. */
static bool all_simple(const Sched *s)
{
    for (int32_t i = 0; i < s->n_running; i++) {
        const SchedSeq *q = s->running[i];
        if (!q->simple || (q->n_out < q->req->r.params.min_new_tokens && q->n_banned > 0))
            return false;
    }
    for (int32_t i = 0; i < s->n_waiting; i++) {
        const SchedSeq *q = s->waiting[i];
        if (!q->simple || (q->n_out < q->req->r.params.min_new_tokens && q->n_banned > 0))
            return false;
    }
    return true;
}

/* Takes the oldest begun batch's ids and postprocesses them. On a runner
 * error its sequences finish with reason "error". */
static SglStatus flight_end(Sched *s, SglErr *err)
{
    SchedFlight *f = &s->fl[s->fl_head];
    SglErr e2 = {{0}};
    SglErr *e = err ? err : &e2;
    SglStatus st = s->runner->ops->forward_sample_end(s->runner, f->ids, f->lp, e);
    s->fl_head = (s->fl_head + 1) % 2;
    s->n_fl--;
    if (s->cfg.trace) /* the batch was on the runner (queued or running) from begin to here */
        trace_event_on(s, 2, "batch", f->t_begin, now_us() - f->t_begin, f->step, f->nb);
    phase_end(s, SGL_PHASE_WAIT, f->step, f->nb);
    for (int32_t b = 0; b < f->nb; b++) {
        SchedSeq *q = f->seq[b];
        if (!q)
            continue;
        f->seq[b] = NULL;
        q->fl_refs--;
        if (st != SGL_OK) {
            snprintf(q->error, sizeof q->error, "forward failed: %.140s", e->msg);
            if (q->state == SEQ_WAITING)
                finish_any(s, q, SGL_FINISH_ERROR, NULL, 0);
            else
                finish_seq(s, q, SGL_FINISH_ERROR, false, NULL, 0);
            continue;
        }
        if (f->row[b] >= 0) {
            int32_t tok = f->ids[f->row[b]];
            if (tok < 0 || tok >= s->V) { /* NaN logits everywhere: nothing could be drawn */
                snprintf(q->error, sizeof q->error, "runner: no token could be sampled after %d tokens",
                         (int)q->n_out);
                finish_taken(s, q, SGL_FINISH_ERROR, NULL, 0);
                continue;
            }
            take_token(s, q, tok, q->req->r.params.return_logprob ? f->lp[f->row[b]] : 0.0f);
        } else if (q->req->max_new == 0 && q->state == SEQ_RUNNING && q->kv_len == q->n_tokens) {
            finish_seq(s, q, SGL_FINISH_LENGTH, true, NULL, 0);
        }
    }
    phase_end(s, SGL_PHASE_POSTPROCESS, f->step, f->nb);
    return st;
}

/* Ends every begun batch (err may be NULL). */
static SglStatus drain(Sched *s, SglErr *err)
{
    SglStatus st = SGL_OK;
    while (s->n_fl > 0) {
        SglStatus st2 = flight_end(s, err);
        if (st == SGL_OK)
            st = st2;
    }
    return st;
}

/* The batch could not be begun: its sequences get their chunk again next step. */
static void unschedule(Sched *s)
{
    for (int32_t b = 0; b < s->nb; b++)
        s->bseq[b]->n_new = 0;
    s->nb = s->nt = s->nr = 0;
}

/* ---- the step --------------------------------------------------------------- */

/* Fills bseq with this step's work (nb 0: none). */
static void schedule(Sched *s)
{
    s->nb = s->nt = s->nr = 0;
    for (int32_t i = 0; i < s->n_running; i++)
        s->running[i]->n_new = 0;
    jump_forward_waiting(s);
    if (s->n_running == 0 && s->n_waiting == 0)
        return;
    schedule_decodes(s);
    schedule_prefills(s);
    if (s->nb == 0 && s->n_running > 0 && s->n_fl == 0) {
        /* Running sequences are all mid-prefill and none can get a page
         * (they hold the pool between them): keep the one retraction would
         * spare, requeue the others, and try again. A lone sequence always
         * fits (sched_req_new checked it), so this cannot repeat. */
        while (s->n_running > 1)
            retract(s, pick_victim(s));
        schedule_decodes(s);
        schedule_prefills(s);
        if (s->nb == 0 && s->n_running > 0) {
            SchedSeq *q = s->running[0];
            snprintf(q->error, sizeof q->error, "KV pool exhausted");
            finish_seq(s, q, SGL_FINISH_ERROR, false, NULL, 0);
        }
    }
}

static SglBatch batch_view(const Sched *s)
{
    return (SglBatch){
        .n_seqs = s->nb, .n_tokens = s->nt, .tokens = s->tokens, .positions = s->positions,
        .seq_off = s->seq_off, .kv_len = s->kv_len, .slot_off = s->slot_off, .slots = s->slots,
        .n_logits = s->nr, .logit_rows = s->logit_rows,
    };
}

static void step_done(Sched *s, int32_t n_prefill)
{
    double floor = s->ntr_init < NEW_TOKEN_RATIO_MIN ? s->ntr_init : NEW_TOKEN_RATIO_MIN;
    s->ntr -= (s->ntr_init - floor) / NEW_TOKEN_RATIO_DECAY_STEPS;
    if (s->ntr < floor)
        s->ntr = floor;
    s->st.steps++;
    s->st.forward_tokens += s->nt;
    if (s->cfg.o.on_step)
        s->cfg.o.on_step(s->cfg.o.on_step_user, n_prefill, s->nb - n_prefill, s->nt);
}

static int32_t count_prefill(const Sched *s)
{
    int32_t n = 0;
    for (int32_t b = 0; b < s->nb; b++)
        n += !s->bseq[b]->was_decode;
    return n;
}

/* schedule -> forward (the loop thread waits) -> postprocess. */
static SglStatus step_sync(Sched *s, SglErr *err)
{
    if (s->n_running == 0 && s->n_waiting == 0)
        return SGL_E_AGAIN;
    schedule(s);
    int64_t step = s->st.steps + 1;
    phase_end(s, SGL_PHASE_SCHEDULE, step, s->nb);
    if (s->nb == 0)
        return SGL_E_AGAIN;
    build_batch(s);
    int32_t n_prefill = count_prefill(s);
    SglBatch batch = batch_view(s);
    bool on_device = s->gs_sync && device_plan(s);
    phase_end(s, SGL_PHASE_BUILD, step, s->nb);
    SglStatus st = forward_step(s, &batch, on_device, err);
    phase_end(s, SGL_PHASE_WAIT, step, s->nb);
    s->st.steps++;
    s->st.forward_tokens += s->nt;
    if (st != SGL_OK) {
        for (int32_t b = 0; b < s->nb; b++) {
            SchedSeq *q = s->bseq[b];
            running_remove(s, q);
            snprintf(q->error, sizeof q->error, "forward failed: %.140s", err ? err->msg : sgl_status_str(st));
            finish_seq(s, q, SGL_FINISH_ERROR, false, NULL, 0);
        }
        return st;
    }
    if (s->cfg.o.on_step)
        s->cfg.o.on_step(s->cfg.o.on_step_user, n_prefill, s->nb - n_prefill, s->nt);
    postprocess(s);
    phase_end(s, SGL_PHASE_POSTPROCESS, step, s->nb);
    return SGL_OK;
}

/* schedule N+1 -> begin N+1 -> end N -> postprocess N (see above). */
static SglStatus step_overlap(Sched *s, SglErr *err)
{
    if (s->n_running == 0 && s->n_waiting == 0)
        return s->n_fl > 0 ? drain(s, err) : SGL_E_AGAIN;
    schedule(s);
    int64_t step = s->st.steps + 1;
    phase_end(s, SGL_PHASE_SCHEDULE, step, s->nb);
    if (s->nb == 0) /* nothing new can run before the begun batches are back */
        return s->n_fl > 0 ? drain(s, err) : SGL_E_AGAIN;
    build_batch(s);
    int32_t n_prefill = count_prefill(s);
    SglBatch batch = batch_view(s);
    bool planned = device_plan(s) || s->nr == 0;
    phase_end(s, SGL_PHASE_BUILD, step, s->nb);
    SglStatus st = planned ? s->runner->ops->forward_sample_begin(s->runner, &batch, s->gs_rows, err)
                           : SGL_E_UNSUPPORTED;
    if (st == SGL_E_UNSUPPORTED) {
        unschedule(s);
        s->force_sync = true;
        return s->n_fl > 0 ? drain(s, err) : SGL_OK;
    }
    if (st != SGL_OK) {
        /* these sequences may still be in a begun batch: finish_seq forgets them there */
        for (int32_t b = 0; b < s->nb; b++) {
            SchedSeq *q = s->bseq[b];
            running_remove(s, q);
            snprintf(q->error, sizeof q->error, "forward failed: %.140s", err ? err->msg : sgl_status_str(st));
            finish_seq(s, q, SGL_FINISH_ERROR, false, NULL, 0);
        }
        drain(s, NULL);
        return st;
    }
    SchedFlight *f = &s->fl[(s->fl_head + s->n_fl) % 2];
    s->n_fl++;
    f->nb = s->nb;
    f->step = step;
    f->t_begin = s->prof ? now_us() : 0.0;
    for (int32_t b = 0; b < s->nb; b++) {
        SchedSeq *q = s->bseq[b];
        commit_chunk(s, q);
        f->seq[b] = q;
        f->row[b] = q->sample_row;
        q->fl_refs++;
        if (q->sample_row >= 0) {
            q->tokens[q->n_tokens++] = -(q->sample_row + 1);
            q->pending++;
        }
    }
    s->st.overlap_steps += s->n_fl > 1;
    step_done(s, n_prefill);
    phase_end(s, SGL_PHASE_LAUNCH, step, s->nb);
    if (s->n_fl > 1)
        return flight_end(s, err);
    return SGL_OK;
}

SglStatus sched_step(Sched *s, SglErr *err)
{
    if (s->prof)
        s->t_step0 = s->t_mark = now_us();
    int64_t steps0 = s->st.steps;
    SglStatus st;
    if (s->overlap && !s->force_sync && all_simple(s)) {
        st = step_overlap(s, err);
    } else {
        s->force_sync = false;
        SglStatus d = s->n_fl > 0 ? drain(s, err) : SGL_E_AGAIN;
        st = step_sync(s, err);
        if (d != SGL_E_AGAIN && (st == SGL_E_AGAIN || d != SGL_OK))
            st = d; /* the drain did work (or failed) */
    }
    if (s->prof && s->t_mark != s->t_step0) { /* a phase was timed: count the whole call */
        s->st.profiled_steps += s->st.steps - steps0;
        s->st.step_us += now_us() - s->t_step0;
    }
    if (s->cfg.o.check_integrity && st != SGL_E_AGAIN) {
        char why[256];
        if (!sched_check_integrity(s, why, sizeof why)) {
            s->st.integrity_failures++;
            return sgl_err(err, SGL_E_INVAL, "integrity check failed after step %lld: %s",
                           (long long)s->st.steps, why);
        }
    }
    return st;
}

/* ---- integrity ------------------------------------------------------------ */

bool sched_check_integrity(const Sched *s, char *why, size_t why_len)
{
    if (!kvpool_check_integrity(s->pool, why, why_len) || !radix_check_integrity(s->cache, why, why_len))
        return false;
    int64_t owned = 0;
    for (int32_t i = 0; i < s->n_running; i++) {
        const SchedSeq *q = s->running[i];
        if (q->state != SEQ_RUNNING || q->lane < 0 || q->tree_len % s->P || q->tree_len > q->kv_len ||
            q->kv_len > q->n_pages * s->P || q->kv_len >= q->n_tokens + 1) {
            snprintf(why, why_len, "running seq %llu/%d: bad state (tree %d kv %d pages %d tokens %d)",
                     (unsigned long long)q->req->id, (int)q->index, (int)q->tree_len, (int)q->kv_len,
                     (int)q->n_pages, (int)q->n_tokens);
            return false;
        }
        for (int32_t pg = q->tree_len / s->P; pg < q->n_pages; pg++)
            if (kvpool_refcount(s->pool, q->pages[pg]) != 1) {
                snprintf(why, why_len, "seq %llu/%d page %d (id %d) has refcount %d, want 1",
                         (unsigned long long)q->req->id, (int)q->index, (int)pg, (int)q->pages[pg],
                         (int)kvpool_refcount(s->pool, q->pages[pg]));
                return false;
            }
        owned += q->n_pages - q->tree_len / s->P;
    }
    for (int32_t i = 0; i < s->n_waiting; i++) {
        const SchedSeq *q = s->waiting[i];
        if (q->state != SEQ_WAITING || q->n_pages || q->node || q->lane >= 0) {
            snprintf(why, why_len, "waiting seq %llu/%d holds KV", (unsigned long long)q->req->id, (int)q->index);
            return false;
        }
    }
    int64_t used = kvpool_n_pages(s->pool) - kvpool_n_free(s->pool);
    int64_t tree = radix_total_tokens(s->cache) / s->P;
    if (used != owned + tree) {
        snprintf(why, why_len, "pool has %lld pages in use, sequences own %lld and the tree holds %lld",
                 (long long)used, (long long)owned, (long long)tree);
        return false;
    }
    if (s->n_lanes_free + s->n_running != s->cfg.o.max_running_requests) {
        snprintf(why, why_len, "%d free lanes + %d running != %d", (int)s->n_lanes_free, (int)s->n_running,
                 (int)s->cfg.o.max_running_requests);
        return false;
    }
    return true;
}

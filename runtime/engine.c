/* engine.c -- the engine: owns every runtime component and the loop thread.
 *
 * Threads. The loop thread owns the scheduler, pool, cache and runner; no
 * other thread touches them. Other threads talk to it through e->mu:
 *   inbox[]   requests copied by sgl_engine_submit (double-buffered: the loop
 *             swaps the two arrays, so draining allocates nothing)
 *   aborts[]  ids to abort
 *   flush     a cache-flush request and its answer
 *   stats     a snapshot copied once per step
 * The loop sleeps on e->cv when the scheduler is idle and nothing is queued.
 * Events are delivered from the loop thread, outside e->mu.
 */
#include "runtime/engine.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime/kv_pool.h"
#include "runtime/radix_cache.h"
#include "runtime/runner.h"
#include "runtime/runner_tp.h"
#ifdef SGL_HAVE_CUDA
#include "runtime/runner_cuda.h"
#endif
#include "runtime/scheduler.h"

#define DEFAULT_KV_BYTES (512ll << 20)
#define DEFAULT_KV_TOKENS_CAP 65536
#define DEFAULT_MEM_FRACTION 0.9       /* cuda: of the memory free after weights + workspace */
#define DEFAULT_GRAPH_MAX_BS 160       /* cuda: SGLang's default on 80 GB cards */

struct SglEngine {
    SglModel *model;
    SglTokenizer *tok;
    SglRunner *runner;
    KvPool *pool;
    RadixCache *cache;
    Sched *sched;
    FILE *trace;                   /* trace_path / $SGL_TRACE, written by the scheduler */
    int32_t max_queued;

    pthread_t thread;
    bool thread_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;             /* wakes the loop */
    pthread_cond_t flush_cv;       /* flush answers */
    SchedReq **inbox, **inbox_work;
    int32_t n_inbox, cap_inbox, cap_work;
    uint64_t *aborts, *aborts_work;
    int32_t n_aborts, cap_aborts, cap_aborts_work;
    bool closing;
    uint64_t flush_asked, flush_done;
    bool flush_ok;
    uint64_t next_id;
    int32_t n_waiting;             /* snapshot of the scheduler's queue, under mu */
    SglEngineStats stats;          /* under mu */
};

void sgl_engine_opts_default(SglEngineOpts *o)
{
    memset(o, 0, sizeof *o);
    o->load_format = SGL_LOAD_AUTO;
    o->device = SGL_DEVICE_CPU;
    o->page_size = 1;
    sched_opts_defaults(&o->sched);
}

/* Grows a pointer array to hold n + 1 entries. */
static bool grow_array(void **arr, int32_t *cap, int32_t n, size_t elem)
{
    if (n < *cap)
        return true;
    int32_t nc = *cap ? *cap * 2 : 64;
    void *p = realloc(*arr, (size_t)nc * elem);
    if (!p)
        return false;
    *arr = p;
    *cap = nc;
    return true;
}

static void *loop_main(void *arg)
{
    SglEngine *e = arg;
    bool stalled = false;
    for (;;) {
        pthread_mutex_lock(&e->mu);
        while (!e->closing && e->n_inbox == 0 && e->n_aborts == 0 && e->flush_asked == e->flush_done &&
               (sched_idle(e->sched) || stalled)) {
            if (stalled) {
                /* work exists but none fits now (cannot happen with valid
                 * requests; never spin on it) */
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_nsec += 1000000;
                if (ts.tv_nsec >= 1000000000) {
                    ts.tv_sec++;
                    ts.tv_nsec -= 1000000000;
                }
                pthread_cond_timedwait(&e->cv, &e->mu, &ts);
                stalled = false;
                break;
            }
            pthread_cond_wait(&e->cv, &e->mu);
        }
        if (e->closing) {
            pthread_mutex_unlock(&e->mu);
            break;
        }
        SchedReq **in = e->inbox;
        int32_t n_in = e->n_inbox, cap_in = e->cap_inbox;
        e->inbox = e->inbox_work;
        e->cap_inbox = e->cap_work;
        e->inbox_work = in;
        e->cap_work = cap_in;
        e->n_inbox = 0;
        uint64_t *ab = e->aborts;
        int32_t n_ab = e->n_aborts, cap_ab = e->cap_aborts;
        e->aborts = e->aborts_work;
        e->cap_aborts = e->cap_aborts_work;
        e->aborts_work = ab;
        e->cap_aborts_work = cap_ab;
        e->n_aborts = 0;
        bool flush = e->flush_asked != e->flush_done;
        pthread_mutex_unlock(&e->mu);

        for (int32_t i = 0; i < n_in; i++)
            sched_add(e->sched, in[i]);
        for (int32_t i = 0; i < n_ab; i++)
            sched_abort(e->sched, ab[i]);
        if (flush) {
            bool ok = sched_flush_cache(e->sched);
            pthread_mutex_lock(&e->mu);
            sched_stats(e->sched, &e->stats);
            e->flush_ok = ok;
            e->flush_done = e->flush_asked;
            pthread_cond_broadcast(&e->flush_cv);
            pthread_mutex_unlock(&e->mu);
        }
        SglErr err = {{0}};
        SglStatus st = sched_step(e->sched, &err);
        stalled = st == SGL_E_AGAIN && !sched_idle(e->sched);

        pthread_mutex_lock(&e->mu);
        sched_stats(e->sched, &e->stats);
        e->n_waiting = e->stats.queued;
        pthread_mutex_unlock(&e->mu);
    }
    /* closing: whatever is queued or running ends with "abort" */
    pthread_mutex_lock(&e->mu);
    SchedReq **in = e->inbox;
    int32_t n_in = e->n_inbox;
    e->n_inbox = 0;
    pthread_mutex_unlock(&e->mu);
    for (int32_t i = 0; i < n_in; i++)
        sched_add(e->sched, in[i]);
    sched_abort_all(e->sched, SGL_FINISH_ABORT, "engine closed");
    return NULL;
}

/* Resolves o->device: cuda only when built with it and a device answers;
 * auto falls back to the cpu. */
static SglStatus pick_device(const SglEngineOpts *o, bool *use_cuda, SglErr *err)
{
    *use_cuda = false;
    if (o->device == SGL_DEVICE_CPU)
        return SGL_OK;
    if (o->device != SGL_DEVICE_CUDA && o->device != SGL_DEVICE_AUTO)
        return sgl_err(err, SGL_E_INVAL, "engine: unknown device %d", (int)o->device);
    if (o->mem_fraction_static < 0 || o->mem_fraction_static > 1 || o->cuda_graph_max_bs < 0)
        return sgl_err(err, SGL_E_INVAL, "engine: mem_fraction_static must be in (0, 1] and "
                       "cuda_graph_max_bs >= 0");
#ifdef SGL_HAVE_CUDA
    SglErr why = {{0}};
    if (sgl_runner_cuda_available(&why) == SGL_OK) {
        *use_cuda = true;
        return SGL_OK;
    }
    if (o->device == SGL_DEVICE_AUTO)
        return SGL_OK;
    return sgl_err(err, SGL_E_DEVICE, "engine: device cuda requested, but %s", why.msg);
#else
    if (o->device == SGL_DEVICE_AUTO)
        return SGL_OK;
    return sgl_err(err, SGL_E_UNSUPPORTED, "engine: device cuda requested, but this sglc was "
                   "built without CUDA (configure with meson -Dcuda=enabled)");
#endif
}

/* CUDA KV capacity in tokens: mem_fraction_static of the device memory that
 * is free once the weights and the runner's workspace are counted. */
static SglStatus cuda_kv_tokens(const SglEngineOpts *o, const SglModelConfig *mc,
                                const SglSchedOpts *so, int64_t *tokens, SglErr *err)
{
#ifdef SGL_HAVE_CUDA
    int64_t free_b = 0, total_b = 0;
    SglStatus st = sgl_runner_cuda_mem_info(&free_b, &total_b, err);
    if (st != SGL_OK)
        return st;
    int64_t ctx = mc->max_position_embeddings > 0 ? mc->max_position_embeddings : 8192;
    int tp = o->tp_size > 1 ? o->tp_size : 1;   /* every GPU holds 1/tp of the weights and KV heads */
    SglRunnerOpts ro = {.n_slots = ctx, .max_batch_tokens = so->max_prefill_tokens + so->max_running_requests,
                        .max_seqs = so->max_running_requests, .tp = {0, tp}};
    int64_t per_token = sgl_runner_cuda_kv_bytes_per_token_tp(mc, tp);
    int64_t fixed = sgl_runner_cuda_bytes(mc, &ro) - ctx * per_token; /* weights + workspace */
    double frac = o->mem_fraction_static > 0 ? o->mem_fraction_static : DEFAULT_MEM_FRACTION;
    int64_t avail = (int64_t)((double)(free_b - fixed) * frac);
    *tokens = per_token > 0 && avail > 0 ? avail / per_token : 0;
    if (*tokens < 2 * ((int64_t)o->page_size > 0 ? o->page_size : 1))
        return sgl_err(err, SGL_E_NOMEM, "engine: the model does not fit on the GPU: weights and "
                       "workspace need %.2f GiB, %.2f GiB of %.2f GiB are free",
                       fixed / 1073741824.0, free_b / 1073741824.0, total_b / 1073741824.0);
    if (*tokens > INT32_MAX / 4)
        *tokens = INT32_MAX / 4;
    return SGL_OK;
#else
    (void)o, (void)mc, (void)so, (void)tokens;
    return sgl_err(err, SGL_E_UNSUPPORTED, "engine: built without CUDA");
#endif
}

/* Tensor parallelism: the dist part of o, checked. */
static SglStatus tp_dist(const SglEngineOpts *o, int *tp, SglTpDist *d, SglErr *err)
{
    *tp = o->tp_size > 0 ? o->tp_size : 1;
    *d = (SglTpDist){.nnodes = o->nnodes > 0 ? o->nnodes : 1, .node_rank = o->node_rank,
                     .dist_init_addr = o->dist_init_addr, .timeout_ms = o->dist_timeout_ms};
    if (d->node_rank < 0 || d->node_rank >= d->nnodes)
        return sgl_err(err, SGL_E_INVAL, "node_rank %d must be in [0, nnodes %d)", d->node_rank, d->nnodes);
    if (*tp % d->nnodes != 0)
        return sgl_err(err, SGL_E_INVAL, "tp %d is not a multiple of nnodes %d", *tp, d->nnodes);
    if (d->nnodes > 1 && (!d->dist_init_addr || !*d->dist_init_addr))
        return sgl_err(err, SGL_E_INVAL, "nnodes %d needs dist_init_addr (HOST:PORT of node 0)", d->nnodes);
    return SGL_OK;
}

static const SglTpFactory *tp_factory(bool use_cuda)
{
#ifdef SGL_HAVE_CUDA
    if (use_cuda)
        return &sgl_tp_cuda_factory;
#endif
    (void)use_cuda;
    return &sgl_tp_cpu_factory;
}

SglStatus sgl_engine_run_worker(const SglEngineOpts *o, SglErr *err)
{
    bool use_cuda = false;
    int tp = 1;
    SglTpDist d;
    SglStatus st;
    if (!o || !o->model_dir)
        return sgl_err(err, SGL_E_INVAL, "engine: no model directory given");
    if ((st = pick_device(o, &use_cuda, err)) != SGL_OK || (st = tp_dist(o, &tp, &d, err)) != SGL_OK)
        return st;
    if (d.node_rank < 1)
        return sgl_err(err, SGL_E_INVAL, "engine: node 0 opens the engine; workers have node_rank >= 1");
    SglModel *m = NULL;
    SglLoadFormat lf = use_cuda && o->load_format == SGL_LOAD_DUMMY ? SGL_LOAD_DUMMY_SHAPES : o->load_format;
    if ((st = sgl_model_load(o->model_dir, lf, &m, err)) != SGL_OK)
        return st;
    st = sgl_tp_worker_run(m, tp, &d, tp_factory(use_cuda), err);
    sgl_model_free(m);
    return st;
}

SglStatus sgl_engine_open(const SglEngineOpts *o, SglEngine **out, SglErr *err)
{
    *out = NULL;
    SglStatus st = SGL_OK;
    if (!o || !o->model_dir)
        return sgl_err(err, SGL_E_INVAL, "engine: no model directory given");
    bool use_cuda = false;
    if ((st = pick_device(o, &use_cuda, err)) != SGL_OK)
        return st;
    int tp = 1;
    SglTpDist dist;
    if ((st = tp_dist(o, &tp, &dist, err)) != SGL_OK)
        return st;
    if (dist.node_rank > 0)
        return sgl_err(err, SGL_E_INVAL, "engine: node_rank %d is a worker (sgl_engine_run_worker); node 0 "
                       "opens the engine", dist.node_rank);
    if (o->page_size < 0 || o->page_size > 4096)
        return sgl_err(err, SGL_E_INVAL, "page_size must be in [1, 4096], got %d", (int)o->page_size);
    if (o->max_total_tokens < 0 || o->kv_mem_bytes < 0)
        return sgl_err(err, SGL_E_INVAL, "max_total_tokens and kv_mem_bytes must be >= 0");
    SglEngine *e = calloc(1, sizeof *e);
    if (!e)
        return sgl_err(err, SGL_E_NOMEM, "engine: out of memory");
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    pthread_cond_init(&e->flush_cv, NULL);
    e->next_id = 1;

    /* dummy weights for the GPU are generated there (well under a second, not ~40 s of host RNG) */
    SglLoadFormat lf = use_cuda && o->load_format == SGL_LOAD_DUMMY ? SGL_LOAD_DUMMY_SHAPES : o->load_format;
    if ((st = sgl_model_load(o->model_dir, lf, &e->model, err)) != SGL_OK)
        goto fail;
    if ((st = sgl_tokenizer_load(o->model_dir, &e->tok, err)) != SGL_OK)
        goto fail;
    const SglModelConfig *mc = &e->model->cfg;
    if (sgl_tokenizer_vocab_size(e->tok) > mc->vocab_size) {
        st = sgl_err(err, SGL_E_FORMAT, "%s: the tokenizer has %d tokens but config.json vocab_size is %d",
                     o->model_dir, (int)sgl_tokenizer_vocab_size(e->tok), mc->vocab_size);
        goto fail;
    }

    SchedConfig sc = {0};
    sc.o = o->sched;
    sched_opts_defaults(&sc.o);
    int32_t P = o->page_size > 0 ? o->page_size : 1;
    int64_t per_token = 2ll * mc->n_layers * mc->n_kv_heads * mc->head_dim * (int64_t)sizeof(float);
    int64_t tokens = o->max_total_tokens;
    if (use_cuda && tokens == 0 && o->kv_mem_bytes == 0) {
        if ((st = cuda_kv_tokens(o, mc, &sc.o, &tokens, err)) != SGL_OK)
            goto fail;
    } else if (tokens == 0) {
        int64_t bytes = o->kv_mem_bytes > 0 ? o->kv_mem_bytes : DEFAULT_KV_BYTES;
        tokens = per_token > 0 ? bytes / per_token : 0;
        if (tokens > DEFAULT_KV_TOKENS_CAP)
            tokens = DEFAULT_KV_TOKENS_CAP;
    }
    int64_t n_pages = tokens / P;
    if (n_pages < 2 || n_pages * P > INT32_MAX / 2) {
        st = sgl_err(err, SGL_E_INVAL, "KV capacity of %lld tokens (page size %d) is out of range",
                     (long long)tokens, (int)P);
        goto fail;
    }
    int64_t max_ctx = mc->max_position_embeddings > 0 ? mc->max_position_embeddings : n_pages * P;
    if (max_ctx > n_pages * P)
        max_ctx = n_pages * P;
    sc.vocab_size = mc->vocab_size;
    sc.max_ctx = (int32_t)max_ctx;
    for (int i = 0; i < mc->n_eos && sc.n_eos < 8; i++)
        sc.eos_ids[sc.n_eos++] = mc->eos_ids[i];
    int32_t teos = sgl_tokenizer_eos(e->tok);
    bool have = teos < 0;
    for (int i = 0; i < sc.n_eos; i++)
        have |= sc.eos_ids[i] == teos;
    if (!have && sc.n_eos < 8)
        sc.eos_ids[sc.n_eos++] = teos;
    sc.tok = e->tok;
    if (!use_cuda && !sc.o.enable_overlap_schedule)
        sc.o.disable_overlap_schedule = true; /* docs/performance.md: overlap on the CPU runner */
    const char *trace = o->trace_path ? o->trace_path : getenv("SGL_TRACE");
    if (trace && *trace) {
        if (!(e->trace = fopen(trace, "w"))) {
            st = sgl_err(err, SGL_E_IO, "trace: cannot open %s for writing", trace);
            goto fail;
        }
        setvbuf(e->trace, NULL, _IOFBF, 1 << 20); /* a step's events cost one memcpy each */
        sc.trace = e->trace;
    }
    e->max_queued = sc.o.max_queued_requests;

    SglRunnerOpts ro = {
        .n_slots = n_pages * P,
        .max_batch_tokens = sc.o.max_prefill_tokens + sc.o.max_running_requests,
        .max_seqs = sc.o.max_running_requests,
        .n_threads = o->n_threads,
    };
    if (use_cuda)
        ro.graph_max_bs = o->disable_cuda_graph ? 0
                          : o->cuda_graph_max_bs > 0 ? o->cuda_graph_max_bs : DEFAULT_GRAPH_MAX_BS;
    if (tp > 1 || dist.nnodes > 1) {
        st = sgl_runner_tp_new(e->model, &ro, tp, &dist, tp_factory(use_cuda), &e->runner, err);
    } else if (use_cuda) {
#ifdef SGL_HAVE_CUDA
        st = sgl_runner_cuda_new(e->model, &ro, &e->runner, err);
#endif
    } else {
        st = sgl_runner_cpu_new(e->model, &ro, &e->runner, err);
    }
    if (st != SGL_OK)
        goto fail;
    e->pool = kvpool_new((int32_t)n_pages, P);
    e->cache = e->pool ? radix_new(e->pool, sc.o.disable_radix_cache) : NULL;
    if (!e->pool || !e->cache) {
        st = sgl_err(err, SGL_E_NOMEM, "engine: out of memory for the KV pool of %lld pages", (long long)n_pages);
        goto fail;
    }
    if (!(e->sched = sched_new(&sc, e->runner, e->pool, e->cache, err))) {
        st = SGL_E_NOMEM;
        goto fail;
    }
    sched_stats(e->sched, &e->stats);
    if (pthread_create(&e->thread, NULL, loop_main, e) != 0) {
        st = sgl_err(err, SGL_E_NOMEM, "engine: cannot start the loop thread");
        goto fail;
    }
    e->thread_started = true;
    *out = e;
    return SGL_OK;
fail:
    sgl_engine_close(e);
    return st;
}

void sgl_engine_close(SglEngine *e)
{
    if (!e)
        return;
    if (e->thread_started) {
        pthread_mutex_lock(&e->mu);
        e->closing = true;
        pthread_cond_broadcast(&e->cv);
        pthread_cond_broadcast(&e->flush_cv);
        pthread_mutex_unlock(&e->mu);
        pthread_join(e->thread, NULL);
    }
    sched_free(e->sched);
    if (e->trace)
        fclose(e->trace);
    radix_free(e->cache);
    kvpool_free(e->pool);
    sgl_runner_free(e->runner);
    sgl_tokenizer_free(e->tok);
    sgl_model_free(e->model);
    free(e->inbox);
    free(e->inbox_work);
    free(e->aborts);
    free(e->aborts_work);
    pthread_cond_destroy(&e->flush_cv);
    pthread_cond_destroy(&e->cv);
    pthread_mutex_destroy(&e->mu);
    free(e);
}

SglStatus sgl_engine_submit_batch(SglEngine *e, const SglRequest *reqs, int32_t n, uint64_t *ids,
                                  SglErr *err)
{
    if (n < 1)
        return sgl_err(err, SGL_E_INVAL, "submit: no requests");
    SchedReq **rs = calloc((size_t)n, sizeof *rs);
    if (!rs)
        return sgl_err(err, SGL_E_NOMEM, "out of memory");
    SglStatus st = SGL_OK;
    pthread_mutex_lock(&e->mu);
    uint64_t first = e->next_id;
    e->next_id += (uint64_t)n;
    pthread_mutex_unlock(&e->mu);
    for (int32_t i = 0; i < n; i++) {
        if ((st = sched_req_new(e->sched, &reqs[i], first + (uint64_t)i, &rs[i], err)) != SGL_OK) {
            if (n > 1 && err) {
                char msg[sizeof err->msg];
                snprintf(msg, sizeof msg, "request %d: %.490s", (int)i, err->msg);
                memcpy(err->msg, msg, sizeof msg);
            }
            goto out;
        }
    }
    pthread_mutex_lock(&e->mu);
    if (e->closing) {
        st = sgl_err(err, SGL_E_CLOSED, "the engine is closing");
    } else if (e->n_inbox + e->n_waiting + n > e->max_queued) {
        st = sgl_err(err, SGL_E_FULL, "the request queue is full (%d waiting at most)", (int)e->max_queued);
    } else {
        while (st == SGL_OK && e->n_inbox + n > e->cap_inbox)
            if (!grow_array((void **)&e->inbox, &e->cap_inbox, e->cap_inbox, sizeof *e->inbox))
                st = sgl_err(err, SGL_E_NOMEM, "out of memory queueing the requests");
        if (st == SGL_OK) {
            memcpy(e->inbox + e->n_inbox, rs, (size_t)n * sizeof *rs);
            e->n_inbox += n;
            memset(rs, 0, (size_t)n * sizeof *rs);
            pthread_cond_signal(&e->cv);
        }
    }
    pthread_mutex_unlock(&e->mu);
out:
    for (int32_t i = 0; i < n; i++)
        sched_req_free(rs[i]);
    free(rs);
    if (st == SGL_OK && ids)
        for (int32_t i = 0; i < n; i++)
            ids[i] = first + (uint64_t)i;
    return st;
}

SglStatus sgl_engine_submit(SglEngine *e, const SglRequest *req, uint64_t *id, SglErr *err)
{
    return sgl_engine_submit_batch(e, req, 1, id, err);
}

SglStatus sgl_engine_abort(SglEngine *e, uint64_t id)
{
    SglStatus st = SGL_OK;
    pthread_mutex_lock(&e->mu);
    if (id == 0 || id >= e->next_id)
        st = SGL_E_NOTFOUND;
    else if (!grow_array((void **)&e->aborts, &e->cap_aborts, e->n_aborts, sizeof *e->aborts))
        st = SGL_E_NOMEM;
    else {
        e->aborts[e->n_aborts++] = id;
        pthread_cond_signal(&e->cv);
    }
    pthread_mutex_unlock(&e->mu);
    return st;
}

SglEngineStats sgl_engine_stats(SglEngine *e)
{
    pthread_mutex_lock(&e->mu);
    SglEngineStats s = e->stats;
    pthread_mutex_unlock(&e->mu);
    return s;
}

bool sgl_engine_flush_cache(SglEngine *e)
{
    pthread_mutex_lock(&e->mu);
    uint64_t ticket = ++e->flush_asked;
    pthread_cond_signal(&e->cv);
    while (e->flush_done < ticket && !e->closing)
        pthread_cond_wait(&e->flush_cv, &e->mu);
    bool ok = e->flush_done >= ticket && e->flush_ok;
    pthread_mutex_unlock(&e->mu);
    return ok;
}

const SglTokenizer *sgl_engine_tokenizer(const SglEngine *e) { return e->tok; }
const SglModelConfig *sgl_engine_model_config(const SglEngine *e) { return &e->model->cfg; }

SglStatus sgl_engine_encode(const SglEngine *e, const char *text, size_t len, bool add_special,
                            int32_t **ids, int32_t *n)
{
    return sgl_tokenizer_encode(e->tok, text, len, add_special, ids, n);
}

/* ---- blocking helper --------------------------------------------------- */

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done, oom;
    SglGenResult *res;
    int32_t *top_cap;              /* (n_samples) capacity of each sample's top array, in tokens */
} GenWait;

static char *dup_str(const char *s, size_t n, bool *oom)
{
    char *d = malloc(n + 1);
    if (!d) {
        *oom = true;
        return NULL;
    }
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

static void gen_event(void *user, const SglEvent *ev)
{
    GenWait *g = user;
    SglGenResult *res = g->res;
    SglGenSample *s = &res->samples[ev->index];
    if (ev->kind == SGL_EV_TOKEN) {
        /* jump-forward replaced the last n_rollback tokens */
        s->n_output = s->n_output > ev->n_rollback ? s->n_output - ev->n_rollback : 0;
        if (ev->n_top > 0) {
            int32_t k = s->n_output; /* tokens so far (counted below) */
            if (k >= g->top_cap[ev->index]) {
                int32_t nc = g->top_cap[ev->index] ? g->top_cap[ev->index] * 2 : 64;
                SglTopLogprob *t = realloc(s->top, (size_t)nc * (size_t)ev->n_top * sizeof *t);
                if (!t) {
                    g->oom = true;
                    return;
                }
                s->top = t;
                g->top_cap[ev->index] = nc;
            }
            memcpy(s->top + (size_t)k * (size_t)ev->n_top, ev->top, (size_t)ev->n_top * sizeof *ev->top);
            s->n_top = ev->n_top;
        }
        s->n_output++;
        return;
    }
    s->finish = ev->finish;
    s->matched_token = ev->matched_token;
    s->matched_stop = ev->matched_stop ? dup_str(ev->matched_stop, strlen(ev->matched_stop), &g->oom) : NULL;
    s->error = ev->error ? dup_str(ev->error, strlen(ev->error), &g->oom) : NULL;
    s->n_output = ev->completion_tokens;
    s->cached_tokens = ev->cached_tokens;
    s->output_ids = malloc(((size_t)ev->completion_tokens + 1) * sizeof *s->output_ids);
    if (s->output_ids)
        memcpy(s->output_ids, ev->output_ids, (size_t)ev->completion_tokens * sizeof *s->output_ids);
    else
        g->oom = true;
    if (ev->output_logprobs) {
        s->output_logprobs = malloc(((size_t)ev->completion_tokens + 1) * sizeof *s->output_logprobs);
        if (s->output_logprobs)
            memcpy(s->output_logprobs, ev->output_logprobs, (size_t)ev->completion_tokens * sizeof(float));
        else
            g->oom = true;
    }
    s->text = dup_str(ev->output_text, ev->output_text_len, &g->oom);
    s->text_len = ev->output_text_len;
    res->prompt_tokens = ev->prompt_tokens;
    if (ev->prompt_logprobs && !res->prompt_logprobs) {
        res->prompt_logprobs = malloc((size_t)ev->prompt_tokens * sizeof(float));
        if (res->prompt_logprobs)
            memcpy(res->prompt_logprobs, ev->prompt_logprobs, (size_t)ev->prompt_tokens * sizeof(float));
        else
            g->oom = true;
    }
    if (ev->last) {
        pthread_mutex_lock(&g->mu);
        g->done = true;
        pthread_cond_signal(&g->cv);
        pthread_mutex_unlock(&g->mu);
    }
}

void sgl_gen_result_free(SglGenResult *r)
{
    if (!r)
        return;
    for (int32_t i = 0; r->samples && i < r->n_samples; i++) {
        SglGenSample *s = &r->samples[i];
        free(s->matched_stop);
        free(s->error);
        free(s->output_ids);
        free(s->output_logprobs);
        free(s->top);
        free(s->text);
    }
    free(r->samples);
    free(r->prompt_logprobs);
    memset(r, 0, sizeof *r);
}

SglStatus sgl_engine_generate(SglEngine *e, const SglRequest *req, SglGenResult *res, SglErr *err)
{
    memset(res, 0, sizeof *res);
    int32_t n = req->params.n > 0 ? req->params.n : 1;
    GenWait g = {.res = res};
    res->n_samples = n;
    res->samples = calloc((size_t)n, sizeof *res->samples);
    g.top_cap = calloc((size_t)n, sizeof *g.top_cap);
    if (!res->samples || !g.top_cap) {
        free(g.top_cap);
        sgl_gen_result_free(res);
        return sgl_err(err, SGL_E_NOMEM, "out of memory");
    }
    pthread_mutex_init(&g.mu, NULL);
    pthread_cond_init(&g.cv, NULL);
    SglRequest r = *req;
    r.on_event = gen_event;
    r.user = &g;
    SglStatus st = sgl_engine_submit(e, &r, &res->id, err);
    if (st == SGL_OK) {
        pthread_mutex_lock(&g.mu);
        while (!g.done)
            pthread_cond_wait(&g.cv, &g.mu);
        pthread_mutex_unlock(&g.mu);
        if (g.oom)
            st = sgl_err(err, SGL_E_NOMEM, "out of memory collecting the result");
    }
    pthread_cond_destroy(&g.cv);
    pthread_mutex_destroy(&g.mu);
    free(g.top_cap);
    if (st != SGL_OK)
        sgl_gen_result_free(res);
    return st;
}

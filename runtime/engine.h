/* engine.h -- the public C API of the runtime: one model, one loop thread.
 *
 * An SglEngine owns the model, tokenizer, runner (executor), KV pool, radix
 * cache and scheduler, and runs them on its own thread: each loop iteration
 * drains the submission inbox once, then does one scheduler step
 * (schedule -> forward -> sample/postprocess; with a runner that samples
 * asynchronously, the CPU work of step N+1 overlaps step N on the device:
 * see scheduler.h). Any thread may submit, abort
 * and read stats. Results come back as SglEvents through the request's
 * callback, called on the engine thread (it must not block); sgl_engine_generate
 * is a blocking convenience on top. Event types live in runtime/request.h.
 */
#ifndef SGL_ENGINE_H
#define SGL_ENGINE_H

#include "runtime/model.h"
#include "runtime/request.h"
#include "runtime/tokenizer.h"

/* AUTO: CUDA when built in and a device is present, else CPU. */
typedef enum { SGL_DEVICE_CPU, SGL_DEVICE_CUDA, SGL_DEVICE_AUTO } SglDevice;

typedef struct {
    const char *model_dir;         /* required */
    SglLoadFormat load_format;     /* SGL_LOAD_DUMMY: random weights of the config's shape */
    SglDevice device;              /* cpu (default), cuda, auto */
    int64_t max_total_tokens;      /* KV capacity in tokens; 0 = kv_mem_bytes / bytes per token */
    int64_t kv_mem_bytes;          /* 0 = 512 MiB, capped at 65536 tokens (cpu); on cuda
                                    * 0 = mem_fraction_static of the free GPU memory */
    double mem_fraction_static;    /* cuda: fraction of the GPU memory left free after the
                                    * weights and workspace that the KV pool takes; 0 = 0.9 */
    int32_t cuda_graph_max_bs;     /* cuda: decode batches up to this size replay CUDA
                                    * graphs; 0 = 160 */
    bool disable_cuda_graph;       /* cuda: launch every kernel on every step */
    int32_t page_size;             /* tokens per KV page; 0 = 1 */
    SglSchedOpts sched;            /* queues, chunking, policy (0 fields = defaults) */
    int n_threads;                 /* runner threads; 0 = auto */
    const char *trace_path;        /* write a Chrome trace-event JSON of every step's phases
                                    * (open in Perfetto); NULL: $SGL_TRACE when set */
    /* tensor parallelism (runtime/runner_tp.h): tp_size ranks, one thread per
     * rank within a host, nnodes hosts; node 0 runs the engine, the others
     * sgl_engine_run_worker. 0 fields = 1 rank, 1 node. */
    int tp_size;
    int nnodes, node_rank;
    const char *dist_init_addr;    /* HOST:PORT of node 0 (nnodes > 1; CPU ranks also use PORT+1) */
    int dist_timeout_ms;           /* connect and collective waits; 0 = 60 s */
} SglEngineOpts;

typedef struct SglEngine SglEngine;

/* Defaults for every field (model_dir NULL). */
void sgl_engine_opts_default(SglEngineOpts *o);

/* Loads the model and tokenizer, sizes the pool, starts the loop thread.
 * SGL_E_IO/FORMAT/UNSUPPORTED (model files, with err naming them),
 * SGL_E_INVAL (bad option), SGL_E_NOMEM. On success *out is owned by the
 * caller (sgl_engine_close); on failure *out is NULL and nothing leaks. */
SglStatus sgl_engine_open(const SglEngineOpts *o, SglEngine **out, SglErr *err);

/* A node with node_rank > 0 of a multi-host tensor-parallel group: loads the
 * model as sgl_engine_open would and runs node 0's steps on this host's ranks
 * until node 0 closes its engine (SGL_OK). Blocks. The open errors, and
 * SGL_E_IO when node 0 is unreachable or goes away. */
SglStatus sgl_engine_run_worker(const SglEngineOpts *o, SglErr *err);

/* Aborts every queued and running request (each gets its "abort" final
 * event), joins the loop thread and frees everything. NULL is a no-op. */
void sgl_engine_close(SglEngine *e);

/* Queues a request (thread-safe). The engine copies input ids, stop strings
 * and stop ids; req->constraint.ctx stays owned by the caller until its
 * release hook is called. *id (may be NULL) gets the request id.
 * SGL_E_INVAL (bad params or a prompt that cannot fit: err says which),
 * SGL_E_FULL (max_queued_requests reached), SGL_E_CLOSED (closing),
 * SGL_E_NOMEM. On any error no event will ever be delivered for it. */
SglStatus sgl_engine_submit(SglEngine *e, const SglRequest *req, uint64_t *id, SglErr *err);

/* Queues n requests atomically: the loop sees all of them in the same step
 * (benchmarks, batch endpoints). All or nothing: on error none was queued
 * and err names the failing index. ids (may be NULL) gets n ids. */
SglStatus sgl_engine_submit_batch(SglEngine *e, const SglRequest *reqs, int32_t n, uint64_t *ids,
                                  SglErr *err);

/* Aborts request id wherever it is (queued, prefilling, decoding): its pages
 * are released and each unfinished sample gets a final "abort" event. An id
 * already finished is ignored. SGL_E_NOTFOUND for an id never issued. */
SglStatus sgl_engine_abort(SglEngine *e, uint64_t id);

/* Submits and waits for all samples; fills *res (free with
 * sgl_gen_result_free). Returns the submit status; a request that ran but
 * failed returns SGL_OK with finish SGL_FINISH_ERROR in the sample. */
SglStatus sgl_engine_generate(SglEngine *e, const SglRequest *req, SglGenResult *res, SglErr *err);

/* A consistent snapshot (copied under a lock), refreshed after each step
 * and by sgl_engine_flush_cache, which also acts as a barrier: a snapshot
 * taken after it reflects every event delivered before it was called. */
SglEngineStats sgl_engine_stats(SglEngine *e);

/* Drops every unlocked radix-cache entry (waits for the loop thread). False
 * when requests are running (nothing is dropped then). */
bool sgl_engine_flush_cache(SglEngine *e);

/* Borrowed; valid until close. The tokenizer is immutable and thread-safe. */
const SglTokenizer *sgl_engine_tokenizer(const SglEngine *e);
const SglModelConfig *sgl_engine_model_config(const SglEngine *e);
/* Encodes text as HF does (BOS when the tokenizer config adds it and
 * add_special). *ids malloc'd, owned by the caller. */
SglStatus sgl_engine_encode(const SglEngine *e, const char *text, size_t len, bool add_special,
                            int32_t **ids, int32_t *n);

#endif

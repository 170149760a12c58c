/* runner_tp.c -- the tensor-parallel runner and the multi-host worker (runner_tp.h).
 *
 * TpHost holds one host's local ranks: an inner runner, a comm endpoint and
 * a thread each. A step is a job (op + arguments) published under mu with a
 * generation number; every rank thread runs it on its own runner and counts
 * itself out of pending. Ranks > 0 write logits/ids into their own scratch
 * (grown to the largest n_logits seen: no allocation in steady state). A
 * rank that fails aborts a "threads" group so its peers stop waiting; the
 * group is reset once all ranks are back.
 *
 * Node 0 -> node k messages over the bootstrap (sgl_comm_tcp_bcast_bytes):
 *   HELLO  runner options and a config fingerprint, answered by an
 *          all_gather of each node's status (and again after the runners exist)
 *   STEP   op (forward, forward_sample, forward_sample_begin or _end: one
 *          message each), then the batch arrays (and sampling rows / masks): MsgHdr
 *          followed by int32 arrays in the order of SglBatch, then (sample
 *          steps) the SglRowSampling rows at the next 8-byte boundary and
 *          the mask words
 *   EXIT   node 0's runner is being freed
 */
#include "runtime/runner_tp.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/comm_host.h"
#include "runtime/comm_nccl.h"
#ifdef SGL_HAVE_CUDA
#include "runtime/runner_cuda.h"
#endif

#define DEFAULT_TIMEOUT_MS 60000
#define MSG_MAGIC 0x53475450u   /* "SGTP" */
#define ALIGN8(n) (((n) + 7) / 8 * 8)

enum { OP_FORWARD = 1, OP_SAMPLE = 2, OP_BEGIN = 3, OP_END = 4, OP_EXIT = 5, OP_HELLO = 6 };

typedef struct {
    uint32_t magic, op;
    int32_t tp, nnodes;
    int64_t n_slots;
    int32_t max_batch_tokens, max_seqs, n_threads, graph_max_bs;
    int32_t fp[8];               /* config fingerprint */
} HelloMsg;

typedef struct {
    uint32_t magic, op;
    int32_t n_seqs, n_tokens, n_logits, n_slot_ids;
    int32_t has_masks, has_logprobs;
} MsgHdr;

typedef struct TpHost TpHost;

typedef struct {
    TpHost *h;
    int local;
    pthread_t th;
    bool started;
    SglRunner *inner;
    SglComm *comm;
    float *logits;               /* ranks > 0: (cap_rows, V) scratch */
    int32_t *ids;                /* ranks > 0: (cap_rows) */
    float *logprobs;             /* ranks > 0: (cap_rows) */
    int64_t cap_rows;
    SglStatus st;
    SglErr err;
} TpRank;

struct TpHost {
    SglRunner base;              /* used on node 0 only */
    SglRunnerOps ops;            /* forward_sample only when the inner runner has it */
    const SglModel *m;
    const SglTpFactory *f;
    SglTpDist d;
    int tp, n_local, first_rank;
    SglRunnerOpts iopts;         /* inner options, tp/comm/device_id filled per rank */
    SglComm *boot;               /* node-level tcp comm, nnodes > 1 */
    TpRank *ranks;               /* (n_local) */
    pthread_mutex_t mu;
    pthread_cond_t cv_go, cv_done;
    bool sync_init;
    unsigned long gen;
    int pending;
    bool stop;
    /* the job in flight */
    int op;
    const SglBatch *b;
    float *logits;
    const SglRowSampling *rows;
    const uint32_t *masks;
    int32_t *ids;
    float *logprobs;             /* rank 0's; NULL on other nodes */
    bool want_lp;                /* log-probs asked for */
    /* bootstrap messages */
    char *msg;
    int64_t msg_cap;
};

/* Grows rank scratch to n rows (only when a batch has more logits rows than any before). */
static SglStatus rank_scratch(TpRank *k, int64_t n, SglErr *err)
{
    if (n <= k->cap_rows)
        return SGL_OK;
    int64_t V = k->h->m->cfg.vocab_size;
    float *l = realloc(k->logits, (size_t)(n * V) * sizeof *l);
    if (l)
        k->logits = l;
    int32_t *ids = realloc(k->ids, (size_t)n * sizeof *ids);
    if (ids)
        k->ids = ids;
    float *lp = realloc(k->logprobs, (size_t)n * sizeof *lp);
    if (lp)
        k->logprobs = lp;
    if (!l || !ids || !lp)
        return sgl_err(err, SGL_E_NOMEM, "tp: out of memory for %lld logits rows", (long long)n);
    k->cap_rows = n;
    return SGL_OK;
}

static void run_job(TpRank *k)
{
    TpHost *h = k->h;
    const SglBatch *b = h->b;
    bool mine = k->local == 0 && h->first_rank == 0;   /* global rank 0 answers */
    k->st = mine ? SGL_OK : rank_scratch(k, b->n_logits, &k->err);
    if (k->st != SGL_OK)
        return;
    const SglRunnerOps *o = k->inner->ops;
    float *lp = h->want_lp ? (mine ? h->logprobs : k->logprobs) : NULL;
    switch (h->op) {
    case OP_FORWARD: k->st = o->forward(k->inner, b, mine ? h->logits : k->logits, &k->err); break;
    case OP_SAMPLE:
        k->st = o->forward_sample(k->inner, b, h->rows, h->masks, mine ? h->ids : k->ids, lp, &k->err);
        break;
    /* the inner begin/end pair is asynchronous itself: begin returns once it
     * has copied the batch, so these come back at once too */
    case OP_BEGIN: k->st = o->forward_sample_begin(k->inner, b, h->rows, &k->err); break;
    default: k->st = o->forward_sample_end(k->inner, mine ? h->ids : k->ids, lp, &k->err); break;
    }
}

/* forward and forward_sample run their collectives on the rank threads; a
 * begun batch runs them inside the rank's runner, which must not be
 * disturbed by an abort or reset from here. */
static bool sync_op(int op) { return op == OP_FORWARD || op == OP_SAMPLE; }

static void *rank_main(void *p)
{
    TpRank *k = p;
    TpHost *h = k->h;
    SglRunnerOpts o = h->iopts;
    o.tp = (SglTp){h->first_rank + k->local, h->tp};
    o.comm = k->comm;
    o.device_id = k->local;
    k->st = h->f->runner_new(h->f->ctx, h->m, &o, &k->inner, &k->err);
    unsigned long seen = 0;
    pthread_mutex_lock(&h->mu);
    for (;;) {
        if (--h->pending == 0)
            pthread_cond_signal(&h->cv_done);
        while (h->gen == seen && !h->stop)
            pthread_cond_wait(&h->cv_go, &h->mu);
        if (h->stop)
            break;
        seen = h->gen;
        pthread_mutex_unlock(&h->mu);
        run_job(k);
        if (k->st != SGL_OK && k->st != SGL_E_UNSUPPORTED && sync_op(h->op))
            sgl_comm_threads_abort(k->comm);
        pthread_mutex_lock(&h->mu);
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

/* Runs the job set in h on every local rank; the first failing rank's status. */
static SglStatus dispatch(TpHost *h, SglErr *err)
{
    pthread_mutex_lock(&h->mu);
    h->pending = h->n_local;
    h->gen++;
    pthread_cond_broadcast(&h->cv_go);
    while (h->pending > 0)
        pthread_cond_wait(&h->cv_done, &h->mu);
    pthread_mutex_unlock(&h->mu);
    SglStatus st = SGL_OK;
    for (int i = 0; i < h->n_local; i++)
        if (h->ranks[i].st != SGL_OK) {
            if (st == SGL_OK) {
                st = h->ranks[i].st;
                if (err)
                    snprintf(err->msg, sizeof err->msg, "tp rank %d: %.490s", h->first_rank + i, h->ranks[i].err.msg);
            }
            if (sync_op(h->op))
                sgl_comm_threads_reset(h->ranks[i].comm);
        }
    return st;
}

static void host_free(TpHost *h)
{
    if (!h)
        return;
    if (h->ranks) {
        pthread_mutex_lock(&h->mu);
        h->stop = true;
        pthread_cond_broadcast(&h->cv_go);
        pthread_mutex_unlock(&h->mu);
        for (int i = 0; i < h->n_local; i++) {
            TpRank *k = &h->ranks[i];
            if (k->started)
                pthread_join(k->th, NULL);
            sgl_runner_free(k->inner);
        }
        for (int i = 0; i < h->n_local; i++) {
            sgl_comm_free(h->ranks[i].comm);
            free(h->ranks[i].logits);
            free(h->ranks[i].ids);
            free(h->ranks[i].logprobs);
        }
        free(h->ranks);
    }
    sgl_comm_free(h->boot);
    if (h->sync_init) {
        pthread_cond_destroy(&h->cv_go);
        pthread_cond_destroy(&h->cv_done);
        pthread_mutex_destroy(&h->mu);
    }
    free(h->msg);
    free(h);
}

/* ---- bootstrap messages ---- */

static SglStatus msg_room(TpHost *h, int64_t n, SglErr *err)
{
    if (n <= h->msg_cap)
        return SGL_OK;
    char *p = realloc(h->msg, (size_t)n);
    if (!p)
        return sgl_err(err, SGL_E_NOMEM, "tp: out of memory for a %lld-byte step message", (long long)n);
    h->msg = p;
    h->msg_cap = n;
    return SGL_OK;
}

static void fingerprint(const SglModelConfig *c, int32_t fp[8])
{
    int32_t v[8] = {c->vocab_size, c->hidden_size, c->intermediate_size, c->n_layers, c->n_heads,
                    c->n_kv_heads, c->head_dim, (int32_t)c->arch};
    memcpy(fp, v, sizeof v);
}

/* Every node contributes its status; SGL_OK when all are OK, else the first
 * failing node's status (err names it when it is another node). */
static SglStatus agree(TpHost *h, SglStatus mine, SglErr *err)
{
    if (!h->boot)
        return mine;
    float me = (float)mine, all[64];
    int n = h->d.nnodes;
    float *v = n <= 64 ? all : malloc((size_t)n * sizeof *v);
    SglErr e2;
    SglStatus st = v ? h->boot->ops->all_gather(h->boot, &me, v, 1, SGL_COMM_F32, NULL, &e2) : SGL_E_NOMEM;
    if (st != SGL_OK) {
        if (mine == SGL_OK)
            sgl_err(err, st, "tp: node %d: %s", h->d.node_rank, v ? e2.msg : "out of memory");
        if (v != all)
            free(v);
        return mine != SGL_OK ? mine : st;
    }
    for (int i = 0; i < n && mine == SGL_OK; i++)
        if (v[i] != 0) {
            mine = (SglStatus)(int)v[i];
            sgl_err(err, mine, "tp: node %d failed to set up its ranks (%s; see its log)", i,
                    sgl_status_str(mine));
        }
    if (v != all)
        free(v);
    return mine;
}

/* Packs the job into h->msg; *len gets its size. */
static SglStatus pack_step(TpHost *h, int op, const SglBatch *b, const SglRowSampling *rows, const uint32_t *masks,
                           bool logprobs, int64_t *len, SglErr *err)
{
    int32_t n_slot_ids = b->n_seqs > 0 ? b->slot_off[b->n_seqs] : 0;
    int64_t W = ((int64_t)h->m->cfg.vocab_size + 31) / 32;
    int64_t words = 2 * (int64_t)b->n_tokens + 3 * (int64_t)b->n_seqs + 2 + n_slot_ids + b->n_logits;
    int64_t n = (int64_t)sizeof(MsgHdr) + 4 * words;
    if (rows)   /* the rows start 8-byte aligned */
        n = ALIGN8(n) + (int64_t)b->n_logits * (int64_t)sizeof(SglRowSampling) + (masks ? 4 * W * b->n_logits : 0);
    SglStatus st = msg_room(h, n, err);
    if (st != SGL_OK)
        return st;
    MsgHdr hd = {MSG_MAGIC, (uint32_t)op, b->n_seqs, b->n_tokens, b->n_logits, n_slot_ids, masks != NULL, logprobs};
    char *p = h->msg;
    memcpy(p, &hd, sizeof hd);
    p += sizeof hd;
#define PUT(src, cnt) do { size_t z_ = (size_t)(cnt) * sizeof *(src); if (z_) memcpy(p, (src), z_); p += z_; } while (0)
    PUT(b->tokens, b->n_tokens);
    PUT(b->positions, b->n_tokens);
    if (b->n_seqs > 0) {
        PUT(b->seq_off, b->n_seqs + 1);
        PUT(b->kv_len, b->n_seqs);
        PUT(b->slot_off, b->n_seqs + 1);
    } else {
        memset(p, 0, 8);   /* seq_off[0], slot_off[0] */
        p += 8;
    }
    PUT(b->slots, n_slot_ids);
    PUT(b->logit_rows, b->n_logits);
    if (rows) {
        while ((p - h->msg) % 8)
            *p++ = 0;
        PUT(rows, b->n_logits);
        if (masks)
            PUT(masks, W * b->n_logits);
    }
#undef PUT
    *len = p - h->msg;
    return SGL_OK;
}

/* Node k: points the job at the arrays inside h->msg (len bytes), checking
 * every count against the length (the inner runner checks the values). */
static SglStatus unpack_step(TpHost *h, int64_t len, SglBatch *b, int *op, SglErr *err)
{
    MsgHdr hd;
    if (len < (int64_t)sizeof hd)
        return sgl_err(err, SGL_E_FORMAT, "tp: short step message (%lld bytes)", (long long)len);
    memcpy(&hd, h->msg, sizeof hd);
    if (hd.magic != MSG_MAGIC || hd.op < OP_FORWARD || hd.op > OP_EXIT ||
        (hd.op == OP_BEGIN && hd.has_masks))
        return sgl_err(err, SGL_E_FORMAT, "tp: bad step message (magic %#x op %u)", hd.magic, hd.op);
    *op = (int)hd.op;
    if (hd.op == OP_EXIT)
        return SGL_OK;
    int64_t W = ((int64_t)h->m->cfg.vocab_size + 31) / 32;
    if (hd.n_seqs < 0 || hd.n_tokens < 0 || hd.n_logits < 0 || hd.n_slot_ids < 0)
        return sgl_err(err, SGL_E_FORMAT, "tp: step message with negative counts");
    int64_t seqs = hd.n_seqs;
    int64_t need = (int64_t)sizeof hd + 4 * (2 * (int64_t)hd.n_tokens + (seqs > 0 ? 3 * seqs + 2 : 2) +
                                             hd.n_slot_ids + hd.n_logits);
    bool has_rows = hd.op == OP_SAMPLE || hd.op == OP_BEGIN;
    if (has_rows)
        need = ALIGN8(need) + (int64_t)hd.n_logits * (int64_t)sizeof(SglRowSampling) + (hd.has_masks ? 4 * W * hd.n_logits : 0);
    if (need != len)
        return sgl_err(err, SGL_E_FORMAT, "tp: step message of %lld bytes, its counts say %lld",
                       (long long)len, (long long)need);
    const char *p = h->msg + sizeof hd;
#define TAKE(dst, cnt) do { (dst) = (const void *)p; p += (size_t)(cnt) * 4; } while (0)
    *b = (SglBatch){.n_seqs = hd.n_seqs, .n_tokens = hd.n_tokens, .n_logits = hd.n_logits};
    TAKE(b->tokens, hd.n_tokens);
    TAKE(b->positions, hd.n_tokens);
    if (seqs > 0) {
        TAKE(b->seq_off, seqs + 1);
        TAKE(b->kv_len, seqs);
        TAKE(b->slot_off, seqs + 1);
    } else {
        TAKE(b->seq_off, 1);
        TAKE(b->slot_off, 1);
        b->kv_len = b->seq_off;
    }
    TAKE(b->slots, hd.n_slot_ids);
    TAKE(b->logit_rows, hd.n_logits);
#undef TAKE
    for (int64_t s = 0; s < seqs; s++)
        if (b->slot_off[s] < 0 || b->slot_off[s + 1] < b->slot_off[s] || b->slot_off[s + 1] > hd.n_slot_ids)
            return sgl_err(err, SGL_E_FORMAT, "tp: step message: slot_off[%lld] out of range", (long long)s);
    h->rows = NULL;
    h->masks = NULL;
    if (has_rows) {
        p = h->msg + ALIGN8(p - h->msg);
        h->rows = (const SglRowSampling *)p;
        p += (size_t)hd.n_logits * sizeof(SglRowSampling);
        h->masks = hd.has_masks ? (const uint32_t *)p : NULL;
    }
    h->want_lp = hd.has_logprobs != 0;
    return SGL_OK;
}

/* Sends the job to the other nodes (node 0) before running it here. */
static SglStatus send_step(TpHost *h, int op, const SglBatch *b, const SglRowSampling *rows, const uint32_t *masks,
                           bool logprobs, SglErr *err)
{
    if (!h->boot)
        return SGL_OK;
    int64_t len = 0;
    SglStatus st = pack_step(h, op, b, rows, masks, logprobs, &len, err);
    if (st == SGL_OK)
        st = sgl_comm_tcp_bcast_bytes(h->boot, h->msg, &len, h->msg_cap, 0, err);
    return st;
}

/* ---- the runner (node 0) ---- */

static SglStatus tp_forward(SglRunner *r, const SglBatch *b, float *logits, SglErr *err)
{
    TpHost *h = (TpHost *)r;
    SglStatus st = send_step(h, OP_FORWARD, b, NULL, NULL, false, err);
    if (st != SGL_OK)
        return st;
    h->op = OP_FORWARD;
    h->b = b;
    h->logits = logits;
    return dispatch(h, err);
}

static SglStatus tp_forward_sample(SglRunner *r, const SglBatch *b, const SglRowSampling *rows,
                                   const uint32_t *masks, int32_t *ids, float *logprobs, SglErr *err)
{
    TpHost *h = (TpHost *)r;
    SglStatus st = send_step(h, OP_SAMPLE, b, rows, masks, logprobs != NULL, err);
    if (st != SGL_OK)
        return st;
    h->op = OP_SAMPLE;
    h->b = b;
    h->rows = rows;
    h->masks = masks;
    h->ids = ids;
    h->logprobs = logprobs;
    h->want_lp = logprobs != NULL;
    return dispatch(h, err);
}

static SglStatus tp_begin(SglRunner *r, const SglBatch *b, const SglRowSampling *rows, SglErr *err)
{
    TpHost *h = (TpHost *)r;
    SglStatus st = send_step(h, OP_BEGIN, b, rows, NULL, false, err);
    if (st != SGL_OK)
        return st;
    h->op = OP_BEGIN;
    h->b = b;
    h->rows = rows;
    return dispatch(h, err);
}

static SglStatus tp_end(SglRunner *r, int32_t *ids, float *logprobs, SglErr *err)
{
    TpHost *h = (TpHost *)r;
    static const SglBatch none = {0};
    SglStatus st = send_step(h, OP_END, &none, NULL, NULL, logprobs != NULL, err);
    if (st != SGL_OK)
        return st;
    h->op = OP_END;
    h->b = &none;
    h->ids = ids;
    h->logprobs = logprobs;
    h->want_lp = logprobs != NULL;
    return dispatch(h, err);
}

static void tp_free(SglRunner *r)
{
    TpHost *h = (TpHost *)r;
    if (h->boot) {   /* tell the workers; a dead one is no reason to hang */
        MsgHdr hd = {.magic = MSG_MAGIC, .op = OP_EXIT};
        int64_t len = sizeof hd;
        SglErr e2;
        sgl_comm_tcp_bcast_bytes(h->boot, &hd, &len, len, 5000, &e2);
    }
    host_free(h);
}

/* Shared by node 0 and the workers: checks, bootstrap, comms, rank threads. */
static SglStatus host_new(const SglModel *m, const SglRunnerOpts *opts, int tp, const SglTpDist *d,
                          const SglTpFactory *f, TpHost **out, SglErr *err)
{
    *out = NULL;
    SglTpDist dd = d ? *d : (SglTpDist){.nnodes = 1};
    if (dd.nnodes < 1)
        dd.nnodes = 1;
    if (dd.timeout_ms <= 0)
        dd.timeout_ms = DEFAULT_TIMEOUT_MS;
    if (tp < 1 || tp > 4096)
        return sgl_err(err, SGL_E_INVAL, "tp size %d is out of range [1, 4096]", tp);
    if (dd.node_rank < 0 || dd.node_rank >= dd.nnodes)
        return sgl_err(err, SGL_E_INVAL, "node_rank %d must be in [0, nnodes %d)", dd.node_rank, dd.nnodes);
    if (tp % dd.nnodes != 0)
        return sgl_err(err, SGL_E_INVAL, "tp %d is not a multiple of nnodes %d", tp, dd.nnodes);
    if (dd.nnodes > 1 && (!dd.dist_init_addr || !*dd.dist_init_addr))
        return sgl_err(err, SGL_E_INVAL, "nnodes %d needs dist_init_addr (HOST:PORT of node 0)", dd.nnodes);
    SglTpShard sh;
    SglStatus st = SGL_OK;
    for (int r = 0; r < tp && st == SGL_OK; r++)
        st = sgl_tp_shard(&m->cfg, (SglTp){r, tp}, &sh, err);
    if (st != SGL_OK)
        return st;
    TpHost *h = calloc(1, sizeof *h);
    if (!h)
        return sgl_err(err, SGL_E_NOMEM, "tp: out of memory");
    h->m = m;
    h->f = f;
    h->d = dd;
    h->tp = tp;
    h->n_local = tp / dd.nnodes;
    h->first_rank = dd.node_rank * h->n_local;
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cv_go, NULL);
    pthread_cond_init(&h->cv_done, NULL);
    h->sync_init = true;
    if (dd.nnodes > 1) {
        if ((st = sgl_comm_tcp_new(dd.dist_init_addr, dd.node_rank, dd.nnodes, dd.timeout_ms, &h->boot, err)) != SGL_OK)
            goto fail;
        HelloMsg hello = {0};
        int64_t len = sizeof hello;
        if (dd.node_rank == 0) {
            hello = (HelloMsg){.magic = MSG_MAGIC, .op = OP_HELLO, .tp = tp, .nnodes = dd.nnodes,
                               .n_slots = opts->n_slots, .max_batch_tokens = opts->max_batch_tokens,
                               .max_seqs = opts->max_seqs, .n_threads = opts->n_threads,
                               .graph_max_bs = opts->graph_max_bs};
            fingerprint(&m->cfg, hello.fp);
        }
        if ((st = sgl_comm_tcp_bcast_bytes(h->boot, &hello, &len, len, 0, err)) != SGL_OK)
            goto fail;
        SglStatus mine = SGL_OK;
        int32_t fp[8];
        fingerprint(&m->cfg, fp);
        if (hello.magic != MSG_MAGIC || hello.op != OP_HELLO || len != sizeof hello)
            mine = sgl_err(err, SGL_E_FORMAT, "tp: node %d: bad hello from node 0", dd.node_rank);
        else if (hello.tp != tp || hello.nnodes != dd.nnodes)
            mine = sgl_err(err, SGL_E_INVAL, "tp: node %d has tp %d / nnodes %d, node 0 has tp %d / nnodes %d",
                           dd.node_rank, tp, dd.nnodes, hello.tp, hello.nnodes);
        else if (memcmp(fp, hello.fp, sizeof fp) != 0)
            mine = sgl_err(err, SGL_E_INVAL, "tp: node %d's model config differs from node 0's", dd.node_rank);
        if ((st = agree(h, mine, err)) != SGL_OK)
            goto fail;
        h->iopts = (SglRunnerOpts){.n_slots = hello.n_slots, .max_batch_tokens = hello.max_batch_tokens,
                                   .max_seqs = hello.max_seqs, .n_threads = hello.n_threads,
                                   .graph_max_bs = hello.graph_max_bs};
    } else {
        h->iopts = *opts;
    }
    /* each rank gets a share of the CPU threads asked for (0 = auto stays auto) */
    if (h->iopts.n_threads > 0)
        h->iopts.n_threads = h->iopts.n_threads / h->n_local > 0 ? h->iopts.n_threads / h->n_local : 1;
    h->ranks = calloc((size_t)h->n_local, sizeof *h->ranks);
    SglComm **comms = calloc((size_t)h->n_local, sizeof *comms);
    int *devs = calloc((size_t)h->n_local, sizeof *devs);
    if (!h->ranks || !comms || !devs) {
        free(comms);
        free(devs);
        st = sgl_err(err, SGL_E_NOMEM, "tp: out of memory");
        goto fail;
    }
    for (int i = 0; i < h->n_local; i++)
        devs[i] = i;
    st = f->comm_new(f->ctx, &h->d, h->boot, h->first_rank, h->n_local, tp, devs, comms, err);
    for (int i = 0; i < h->n_local; i++)
        h->ranks[i] = (TpRank){.h = h, .local = i, .comm = st == SGL_OK ? comms[i] : NULL};
    free(comms);
    free(devs);
    if ((st = agree(h, st, err)) != SGL_OK)
        goto fail;
    /* the rank threads make their runners concurrently (NCCL-backed runners may need it) */
    pthread_mutex_lock(&h->mu);
    h->pending = h->n_local;
    for (int i = 0; i < h->n_local; i++)
        if (pthread_create(&h->ranks[i].th, NULL, rank_main, &h->ranks[i]) == 0)
            h->ranks[i].started = true;
        else
            h->pending--;
    while (h->pending > 0)
        pthread_cond_wait(&h->cv_done, &h->mu);
    pthread_mutex_unlock(&h->mu);
    for (int i = 0; i < h->n_local && st == SGL_OK; i++)
        if (!h->ranks[i].started)
            st = sgl_err(err, SGL_E_NOMEM, "tp: cannot start the thread of rank %d", h->first_rank + i);
        else if (h->ranks[i].st != SGL_OK) {
            st = h->ranks[i].st;
            if (err)
                snprintf(err->msg, sizeof err->msg, "tp rank %d: %.490s", h->first_rank + i, h->ranks[i].err.msg);
        }
    if ((st = agree(h, st, err)) != SGL_OK)
        goto fail;
    *out = h;
    return SGL_OK;
fail:
    host_free(h);
    return st;
}

SglStatus sgl_runner_tp_new(const SglModel *m, const SglRunnerOpts *opts, int tp, const SglTpDist *d,
                            const SglTpFactory *f, SglRunner **out, SglErr *err)
{
    *out = NULL;
    if (!opts || !f)
        return sgl_err(err, SGL_E_INVAL, "tp: no runner options or factory");
    if (d && d->node_rank != 0)
        return sgl_err(err, SGL_E_INVAL, "tp: node_rank %d runs sgl_tp_worker_run, not a runner", d->node_rank);
    TpHost *h = NULL;
    SglStatus st = host_new(m, opts, tp, d, f, &h, err);
    if (st != SGL_OK)
        return st;
    h->ops = (SglRunnerOps){.name = h->ranks[0].inner->ops->name, .forward = tp_forward, .free = tp_free};
    if (h->ranks[0].inner->ops->forward_sample)
        h->ops.forward_sample = tp_forward_sample;
    if (h->ranks[0].inner->ops->forward_sample_begin && h->ranks[0].inner->ops->forward_sample_end) {
        h->ops.forward_sample_begin = tp_begin;
        h->ops.forward_sample_end = tp_end;
    }
    h->base.ops = &h->ops;
    h->base.cfg = &m->cfg;
    h->base.opts = *opts;
    h->base.opts.tp = (SglTp){0, tp};
    h->base.opts.comm = NULL;
    *out = &h->base;
    return SGL_OK;
}

SglStatus sgl_tp_worker_run(const SglModel *m, int tp, const SglTpDist *d, const SglTpFactory *f, SglErr *err)
{
    if (!d || !f || d->node_rank < 1)
        return sgl_err(err, SGL_E_INVAL, "tp worker: needs node_rank >= 1 (node 0 runs the engine)");
    TpHost *h = NULL;
    SglRunnerOpts none = {0};
    SglStatus st = host_new(m, &none, tp, d, f, &h, err);
    if (st != SGL_OK)
        return st;
    for (;;) {
        int64_t len = 0;
        if ((st = sgl_comm_tcp_peek_len(h->boot, &len, -1, err)) != SGL_OK ||
            (st = msg_room(h, len > (int64_t)sizeof(MsgHdr) ? len : (int64_t)sizeof(MsgHdr), err)) != SGL_OK ||
            (st = sgl_comm_tcp_bcast_bytes(h->boot, h->msg, &len, h->msg_cap, -1, err)) != SGL_OK)
            break;
        SglBatch b;
        int op = 0;
        if ((st = unpack_step(h, len, &b, &op, err)) != SGL_OK || op == OP_EXIT)
            break;
        h->op = op;
        h->b = &b;
        SglErr e2;
        /* a failed step fails on node 0 too (its collectives see this node's error
         * or timeout); the worker keeps serving what comes next */
        dispatch(h, &e2);
    }
    host_free(h);
    return st;
}

/* ---- plug-ins ---- */

/* addr with its port + 1 (the CPU ranks' group beside the bootstrap). */
static SglStatus next_port(const char *addr, char *out, size_t cap, SglErr *err)
{
    const char *colon = addr ? strrchr(addr, ':') : NULL;
    char *end;
    long p = colon ? strtol(colon + 1, &end, 10) : 0;
    if (!colon || colon[1] == '\0' || *end != '\0' || p < 1 || p >= 65535 || (size_t)(colon - addr) + 8 > cap)
        return sgl_err(err, SGL_E_INVAL, "dist_init_addr '%.200s' must be HOST:PORT with PORT in [1, 65534] "
                       "(PORT + 1 carries the CPU ranks' collectives)", addr ? addr : "(null)");
    snprintf(out, cap, "%.*s:%ld", (int)(colon - addr), addr, p + 1);
    return SGL_OK;
}

static SglStatus cpu_comm_new(void *ctx, const SglTpDist *d, SglComm *boot, int first_rank, int n_local, int size,
                              const int *device_ids, SglComm **out, SglErr *err)
{
    (void)ctx, (void)boot, (void)device_ids;
    if (d->nnodes <= 1)
        return sgl_comm_threads_new(size, d->timeout_ms, out, err);
    char addr[300];
    SglStatus st = next_port(d->dist_init_addr, addr, sizeof addr, err);
    if (st != SGL_OK)
        return st;
    return sgl_comm_tcp_group_new(addr, first_rank, n_local, size, d->timeout_ms, out, err);
}

static SglStatus cpu_runner_new(void *ctx, const SglModel *m, const SglRunnerOpts *o, SglRunner **out, SglErr *err)
{
    (void)ctx;
    return sgl_runner_cpu_new(m, o, out, err);
}

const SglTpFactory sgl_tp_cpu_factory = {.comm_new = cpu_comm_new, .runner_new = cpu_runner_new};

#ifdef SGL_HAVE_CUDA
/* Global rank 0 makes the NCCL id; other nodes get it over the bootstrap. */
static SglStatus nccl_comm_new(void *ctx, const SglTpDist *d, SglComm *boot, int first_rank, int n_local, int size,
                               const int *device_ids, SglComm **out, SglErr *err)
{
    (void)ctx, (void)d;
    uint8_t id[SGL_NCCL_ID_BYTES] = {0};
    SglStatus st = first_rank == 0 ? sgl_comm_nccl_unique_id(id, err) : SGL_OK;
    if (boot) {   /* an empty message when node 0 has no id: the others fail at once */
        int64_t len = st == SGL_OK ? (int64_t)sizeof id : 0;
        SglErr e2;
        SglStatus st2 = sgl_comm_tcp_bcast_bytes(boot, id, &len, sizeof id, 0, st == SGL_OK ? err : &e2);
        if (st == SGL_OK && st2 == SGL_OK && len != (int64_t)sizeof id)
            st2 = sgl_err(err, SGL_E_IO, "tp: node 0 could not make the NCCL id");
        if (st == SGL_OK)
            st = st2;
    }
    if (st != SGL_OK)
        return st;
    return sgl_comm_nccl_new(id, size, first_rank, n_local, device_ids, out, err);
}

static SglStatus cuda_runner_new(void *ctx, const SglModel *m, const SglRunnerOpts *o, SglRunner **out, SglErr *err)
{
    (void)ctx;
    return sgl_runner_cuda_new(m, o, out, err);
}

const SglTpFactory sgl_tp_cuda_factory = {.comm_new = nccl_comm_new, .runner_new = cuda_runner_new};
#endif

/* runner_cpu.c -- the CPU reference runner: fp32 forward pass of the Llama family.
 *
 * At creation the model's weights are converted to fp32 owned copies with
 * row strides padded to CPU_PAD floats (zero padding), q/k/v are fused into
 * one matrix and gate/up into another, the KV storage for opts.n_slots
 * positions per layer is allocated, and one workspace is sized for
 * max_batch_tokens. forward then allocates nothing.
 *
 * Per layer: RMSNorm -> fused qkv matmul (+bias) -> RoPE (HF rotate_half) ->
 * K/V stored at each token's slot -> causal GQA attention over the sequence's
 * slots -> o_proj + residual -> RMSNorm -> fused gate/up -> SiLU*up ->
 * down_proj + residual. Logits only for the batch's logit_rows.
 *
 * Matrix products use the hand-written kernels of cpu_ops.c for small batches
 * and small matrices, and OpenBLAS sgemm for large ones (see matmul()). With
 * n_threads > 1 a small pool splits each large product by output rows (in
 * blocks of 8) and attention by tokens; every element is computed by the same
 * code either way, so results do not depend on the thread count. n_threads 0
 * starts one worker per CPU but uses them only for passes of at least
 * AUTO_MIN_MACS multiply-adds (batch-1 decode of a tiny model stays on the
 * caller); idle workers sleep outside a forward pass. The KV
 * layout is (n_layers, n_slots, n_kv_heads * head_dim) for K and for V.
 * forward_sample_begin/end run forward + the device sampler's C reference on
 * a step thread of their own (the section at the end), which is what lets
 * the overlap scheduler work on CPU.
 *
 * Tensor parallelism (opts.tp.size > 1, runtime/tp.h): the runner holds one
 * shard -- its query/KV heads' rows of q/k/v (+bias) and columns of o_proj,
 * its slice of gate/up rows and down columns, its vocabulary block of the
 * embedding and lm_head -- and KV storage for its KV heads only; every
 * dimension above is then the local one. opts.comm sums the partial o_proj
 * and down outputs and the vocab-parallel embedding, and gathers the logits
 * blocks (TP_LOGIT_ROWS rows at a time). tp.size 1 runs the code above
 * unchanged.
 */
#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sched.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "kernels/ref/ref.h"
#include "runtime/cpu_ops.h"
#include "runtime/runner.h"

/* sgemm pays for packing the weights only when they do not stay in L2
 * between the hand-written kernel's passes: from SGEMM_MIN_TOKENS rows on and
 * for matrices of at least SGEMM_MIN_WEIGHT_BYTES (measured with bench_runner:
 * stories260K's <= 128 KiB matrices are faster by hand even for a 3072-token
 * prefill; SmolLM2-135M's are 1.6x faster through sgemm at batch 32). */
#define SGEMM_MIN_TOKENS 16
#define SGEMM_MIN_WEIGHT_BYTES (512 * 1024)

/* Work below this many multiply-adds stays on the calling thread: handing
 * a job to a worker costs about a microsecond. */
#define PAR_MIN_MACS (256 * 1024)
/* n_threads 0 (auto): the pool has one thread per CPU this process may run
 * on, up to AUTO_MAX_THREADS, and a forward pass may use it only when its
 * multiply-adds reach AUTO_MIN_MACS (stories260K: batch 1 is ~0.4 M, batch
 * 32 ~11 M; SmolLM2-135M: ~0.1 G per token). Whether such a pass does use it
 * is measured, not assumed: on a machine busy with other work a worker that
 * is not scheduled stalls every step, so the runner keeps a running average
 * of wall time per multiply-add with and without the pool, takes the faster,
 * and retries the other one pass in AUTO_RETRY. */
#define AUTO_MIN_MACS (4L * 1024 * 1024)
#define AUTO_MAX_THREADS 8
#define AUTO_RETRY 64
#define MAX_THREADS 64
/* Polls a thread makes before it sleeps (well under a microsecond). The
 * polls are plain loads, not PAUSE: under KVM a PAUSE loop can trap to the
 * host (pause-loop exiting), and on the shared 2-vCPU machine spinning with
 * PAUSE for ~4000 iterations made a stories260K batch-32 step with 2 threads
 * 10 ms instead of ~1.5 ms with no spin at all (bench_runner). */
#define SPIN_LIMIT 256
/* Tensor parallelism: logits rows gathered per all_gather (bounds the
 * gather buffers to tp * TP_LOGIT_ROWS * vocab_block floats). */
#define TP_LOGIT_ROWS 64

/* A fixed set of worker threads for one runner. pool_run(fn, ctx) calls
 * fn(ctx, t, n) on every thread t < n (t = 0 on the caller) and returns when
 * all are done. Between pool_begin and pool_end (one forward pass) idle
 * workers spin for the next job, since jobs come microseconds apart; outside
 * them, or after SPIN_LIMIT, they sleep on a condition variable and cost
 * nothing. */
typedef void (*PoolFn)(void *ctx, int t, int n);

typedef struct {
    int n;                 /* threads including the caller */
    pthread_t *th;         /* (n - 1) workers */
    pthread_mutex_t mu;
    pthread_cond_t cv_go, cv_done;
    unsigned long gen;     /* bumped for each job (atomic; written under mu) */
    int pending;           /* workers still running the job (atomic) */
    int active;            /* inside pool_begin/pool_end (atomic) */
    bool stop;
    PoolFn fn;
    void *ctx;
} Pool;

typedef struct {
    Pool *pool;
    int t;
} PoolArg;

typedef struct {
    float *attn_norm;      /* (H) */
    float *wqkv;           /* (QKV, ld_h): q rows, then k rows, then v rows */
    float *bqkv;           /* (QKV) or NULL */
    float *wo;             /* (H, ld_q) */
    float *mlp_norm;       /* (H) */
    float *wgu;            /* (2*F, ld_h): gate rows, then up rows */
    float *wdown;          /* (H, ld_i) */
} CpuLayer;

typedef struct {
    SglRunner base;
    const CpuKernels *k;
    int H, F, Q, KV, QKV, V, hd, n_heads, n_kv, n_layers;   /* local (shard) sizes, V the whole vocabulary */
    int ld_h, ld_q, ld_i, ld_qkv, ld_gu;   /* padded row strides (floats) */
    float eps;
    int sgemm_min_tokens;  /* see matmul() */
    int64_t sgemm_min_bytes;
    CpuLayer *layers;      /* (n_layers) */
    float *embed;          /* (V, ld_h) */
    float *lm_head;        /* (V, ld_h); == embed when tied */
    float *final_norm;     /* (H) */
    float *inv_freq;       /* (hd/2) rotary frequencies, scaling applied */
    float *kcache, *vcache;/* (n_layers, n_slots, KV) each */
    /* workspace, T = max_batch_tokens */
    float *x;              /* (T, ld_h) residual stream */
    float *xn;             /* (T, ld_h) normed input / matmul output */
    float *qkv;            /* (T, ld_qkv) */
    float *att;            /* (T, ld_q) attention output */
    float *gu;             /* (T, ld_gu) */
    float *act;            /* (T, ld_i) */
    float *rope_cos, *rope_sin; /* (T, hd/2) */
    float *scratch;        /* (n_threads, CPU_ATTN_SCRATCH(n_heads, KV)) attention scratch */
    int64_t scratch_len;   /* floats per thread */
    int32_t *tok_seq;      /* (T) sequence of each token */
    void *wmem, *wsmem;    /* heap blocks (sanitizers see overruns) */
    void *kvmem;           /* anonymous mapping of kv_bytes, see map_zeroed */
    size_t kv_bytes;
    Pool pool;             /* n_threads - 1 workers; pool.n == 1 without threads */
    PoolArg *pool_args;
    bool auto_threads;     /* n_threads was 0: use the pool only for large passes */
    bool par;              /* this forward pass splits work over the pool */
    double ns_per_mac[2];  /* auto: running average without [0] / with [1] the pool; 0 = none yet */
    unsigned n_large;      /* auto: passes of at least AUTO_MIN_MACS so far */
    const SglBatch *batch; /* the batch in flight, for the parallel regions */
    int layer;
    /* tensor parallelism; comm NULL without it */
    SglComm *comm;         /* borrowed (opts.comm) */
    int tp_size;
    int64_t vocab0, n_vocab, vocab_block; /* this rank's embedding / lm_head rows (n_vocab == V without tp) */
    float *lg_local;       /* (TP_LOGIT_ROWS, vocab_block) this rank's logits block */
    float *lg_all;         /* (tp_size, TP_LOGIT_ROWS, vocab_block) every rank's */
    struct CpuAsync *as;   /* forward_sample_begin/end state, created by the first begin */
} CpuRunner;

static int pad(int n) { return (n + CPU_PAD - 1) / CPU_PAD * CPU_PAD; }

/* Converts rows x cols of t (starting at row r0) into dst with stride ld. */
static void convert(const SglTensor *t, int64_t r0, int64_t rows, int64_t cols, float *dst, int64_t ld)
{
    int esz = t->dtype == SGL_DT_F32 ? 4 : 2;
    const char *src = (const char *)t->data + r0 * cols * esz;
    for (int64_t r = 0; r < rows; r++) {
        const char *s = src + r * cols * esz;
        float *d = dst + r * ld;
        switch (t->dtype) {
        case SGL_DT_F32: memcpy(d, s, (size_t)cols * 4); break;
        case SGL_DT_F16: cpu_f16_to_f32(cols, s, d); break;
        case SGL_DT_BF16: cpu_bf16_to_f32(cols, s, d); break;
        }
    }
}

/* Columns [c0, c0 + cols) of rows [r0, r0 + rows) of t (row length t's
 * last dimension) into dst with stride ld: the row-parallel shards. */
static void convert_cols(const SglTensor *t, int64_t r0, int64_t rows, int64_t c0, int64_t cols, float *dst,
                         int64_t ld)
{
    int esz = t->dtype == SGL_DT_F32 ? 4 : 2;
    int64_t row_len = t->ndim == 2 ? t->shape[1] : t->shape[0];
    for (int64_t r = 0; r < rows; r++) {
        SglTensor one = *t;
        one.data = (const char *)t->data + ((r0 + r) * row_len + c0) * esz;
        convert(&one, 0, 1, cols, dst + r * ld, ld);
    }
}

static void rope_freqs(const SglModelConfig *c, float *inv_freq)
{
    int h = c->head_dim / 2;
    for (int i = 0; i < h; i++) {
        /* as HF: 1 / base^(2i/d), computed in float */
        float f = 1.0f / powf(c->rope_theta, (float)(2 * i) / (float)c->head_dim);
        if (c->rope_type == SGL_ROPE_LLAMA3) {
            /* HF _compute_llama3_parameters: long wavelengths are divided by
             * factor, short ones kept, the band between interpolated. */
            float old = (float)c->rope_original_max_pos;
            float low_wl = old / c->rope_low_freq_factor, high_wl = old / c->rope_high_freq_factor;
            float wl = 2.0f * (float)M_PI / f;
            if (wl > low_wl)
                f = f / c->rope_factor;
            else if (!(wl < high_wl)) {
                float sm = (old / wl - c->rope_low_freq_factor) /
                           (c->rope_high_freq_factor - c->rope_low_freq_factor);
                f = (1 - sm) * f / c->rope_factor + sm * f;
            }
        }
        inv_freq[i] = f;
    }
}

static inline void cpu_relax(void) { __asm__ volatile("" ::: "memory"); }

/* A job's fn and ctx are written before gen is bumped (release) and are
 * not touched again until every worker has counted itself out of pending, so
 * a worker that saw the new gen (acquire) may read them without the lock. */
static void *pool_main(void *p)
{
    PoolArg *a = p;
    Pool *pl = a->pool;
    unsigned long seen = 0;
    for (;;) {
        for (int spin = 0; spin < SPIN_LIMIT && __atomic_load_n(&pl->active, __ATOMIC_RELAXED) &&
                           __atomic_load_n(&pl->gen, __ATOMIC_ACQUIRE) == seen; spin++)
            cpu_relax();
        if (__atomic_load_n(&pl->gen, __ATOMIC_ACQUIRE) == seen) {
            pthread_mutex_lock(&pl->mu);
            while (__atomic_load_n(&pl->gen, __ATOMIC_ACQUIRE) == seen && !pl->stop)
                pthread_cond_wait(&pl->cv_go, &pl->mu);
            bool stop = pl->stop;
            pthread_mutex_unlock(&pl->mu);
            if (stop)
                return NULL;
        }
        seen = __atomic_load_n(&pl->gen, __ATOMIC_ACQUIRE);
        pl->fn(pl->ctx, a->t, pl->n);
        if (__atomic_sub_fetch(&pl->pending, 1, __ATOMIC_ACQ_REL) == 0) {
            pthread_mutex_lock(&pl->mu);   /* the caller may be asleep on cv_done */
            pthread_cond_signal(&pl->cv_done);
            pthread_mutex_unlock(&pl->mu);
        }
    }
}

static void pool_run(Pool *pl, PoolFn fn, void *ctx)
{
    if (pl->n <= 1) {
        fn(ctx, 0, 1);
        return;
    }
    pl->fn = fn;
    pl->ctx = ctx;
    __atomic_store_n(&pl->pending, pl->n - 1, __ATOMIC_RELAXED);
    pthread_mutex_lock(&pl->mu);
    __atomic_store_n(&pl->gen, pl->gen + 1, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&pl->cv_go);
    pthread_mutex_unlock(&pl->mu);
    fn(ctx, 0, pl->n);
    for (int spin = 0; spin < SPIN_LIMIT && __atomic_load_n(&pl->pending, __ATOMIC_ACQUIRE) > 0; spin++)
        cpu_relax();
    if (__atomic_load_n(&pl->pending, __ATOMIC_ACQUIRE) > 0) {
        pthread_mutex_lock(&pl->mu);
        while (__atomic_load_n(&pl->pending, __ATOMIC_ACQUIRE) > 0)
            pthread_cond_wait(&pl->cv_done, &pl->mu);
        pthread_mutex_unlock(&pl->mu);
    }
}

/* Workers spin between the jobs of one forward pass and sleep outside. */
static void pool_begin(Pool *pl) { __atomic_store_n(&pl->active, 1, __ATOMIC_RELAXED); }
static void pool_end(Pool *pl) { __atomic_store_n(&pl->active, 0, __ATOMIC_RELAXED); }

/* Starts n - 1 workers. On failure the pool runs everything on the caller. */
static void pool_init(Pool *pl, PoolArg *args, int n)
{
    memset(pl, 0, sizeof *pl);
    pl->n = 1;
    if (n <= 1 || !args)
        return;
    pl->th = calloc((size_t)(n - 1), sizeof *pl->th);
    if (!pl->th)
        return;
    pthread_mutex_init(&pl->mu, NULL);
    pthread_cond_init(&pl->cv_go, NULL);
    pthread_cond_init(&pl->cv_done, NULL);
    pl->n = n;   /* workers read n only after a job is posted */
    int started = 0;
    for (int t = 1; t < n; t++) {
        args[t] = (PoolArg){.pool = pl, .t = t};
        if (pthread_create(&pl->th[t - 1], NULL, pool_main, &args[t]) != 0)
            break;
        started++;
    }
    if (started < n - 1) {   /* could not start them all: stop those that did */
        pthread_mutex_lock(&pl->mu);
        pl->stop = true;
        pthread_cond_broadcast(&pl->cv_go);
        pthread_mutex_unlock(&pl->mu);
        for (int t = 0; t < started; t++)
            pthread_join(pl->th[t], NULL);
        pthread_mutex_destroy(&pl->mu);
        pthread_cond_destroy(&pl->cv_go);
        pthread_cond_destroy(&pl->cv_done);
        free(pl->th);
        memset(pl, 0, sizeof *pl);
        pl->n = 1;
    }
}

static void pool_deinit(Pool *pl)
{
    if (pl->n <= 1)
        return;
    pthread_mutex_lock(&pl->mu);
    pl->stop = true;
    pthread_cond_broadcast(&pl->cv_go);
    pthread_mutex_unlock(&pl->mu);
    for (int t = 0; t < pl->n - 1; t++)
        pthread_join(pl->th[t], NULL);
    pthread_mutex_destroy(&pl->mu);
    pthread_cond_destroy(&pl->cv_go);
    pthread_cond_destroy(&pl->cv_done);
    free(pl->th);
    pl->n = 1;
}

static void async_free(CpuRunner *r);

static void cpu_free(SglRunner *base)
{
    CpuRunner *r = (CpuRunner *)base;
    async_free(r);
    pool_deinit(&r->pool);
    free(r->pool_args);
    free(r->wmem);
    if (r->kvmem)
        munmap(r->kvmem, r->kv_bytes);
    free(r->wsmem);
    free(r->layers);
    free(r);
}

/* Checks the batch against the layout contract of runner.h and the sizes
 * given at creation. */
static SglStatus check_batch(const CpuRunner *r, const SglBatch *b, SglErr *err)
{
    const SglRunnerOpts *o = &r->base.opts;
    if (b->n_seqs < 0 || b->n_seqs > o->max_seqs || b->n_tokens < 0 || b->n_tokens > o->max_batch_tokens ||
        b->n_logits < 0 || b->n_logits > o->max_batch_tokens)
        return sgl_err(err, SGL_E_INVAL, "runner: batch of %d seqs / %d tokens / %d logits exceeds "
                       "max_seqs %d / max_batch_tokens %d", b->n_seqs, b->n_tokens, b->n_logits,
                       o->max_seqs, o->max_batch_tokens);
    if (b->n_seqs == 0)
        return b->n_tokens == 0 && b->n_logits == 0 ? SGL_OK
               : sgl_err(err, SGL_E_INVAL, "runner: tokens without sequences");
    if (b->seq_off[0] != 0 || b->seq_off[b->n_seqs] != b->n_tokens || b->slot_off[0] < 0)
        return sgl_err(err, SGL_E_INVAL, "runner: seq_off must run from 0 to n_tokens");
    for (int s = 0; s < b->n_seqs; s++) {
        int n_new = b->seq_off[s + 1] - b->seq_off[s], kv = b->kv_len[s];
        if (n_new < 0 || kv < n_new || b->slot_off[s + 1] - b->slot_off[s] < kv)
            return sgl_err(err, SGL_E_INVAL, "runner: sequence %d: %d new tokens, kv_len %d, %d slots",
                           s, n_new, kv, b->slot_off[s + 1] - b->slot_off[s]);
        for (int j = 0; j < kv; j++) {
            int32_t sl = b->slots[b->slot_off[s] + j];
            if (sl < 0 || sl >= o->n_slots)
                return sgl_err(err, SGL_E_INVAL, "runner: sequence %d: slot %d out of range [0, %lld)",
                               s, sl, (long long)o->n_slots);
        }
        for (int j = 0; j < n_new; j++) {
            int i = b->seq_off[s] + j;
            if (b->positions[i] != kv - n_new + j)
                return sgl_err(err, SGL_E_INVAL, "runner: token %d: position %d, expected %d",
                               i, b->positions[i], kv - n_new + j);
            if (b->tokens[i] < 0 || b->tokens[i] >= r->V)
                return sgl_err(err, SGL_E_INVAL, "runner: token %d: id %d outside the vocabulary",
                               i, b->tokens[i]);
        }
    }
    for (int i = 0; i < b->n_logits; i++)
        if (b->logit_rows[i] < 0 || b->logit_rows[i] >= b->n_tokens)
            return sgl_err(err, SGL_E_INVAL, "runner: logit_rows[%d] = %d outside [0, %d)",
                           i, b->logit_rows[i], b->n_tokens);
    return SGL_OK;
}

typedef struct {
    const CpuRunner *r;
    int n, out, in, ldx, ldw, ldy;
    const float *X, *W;
    float *Y;
} MatmulJob;

/* Rows [o0, o1) of the output, through sgemm or the hand-written kernels. */
static void matmul_rows(const MatmulJob *j, int o0, int o1)
{
    const CpuRunner *r = j->r;
    if (o1 <= o0)
        return;
    if (j->n >= r->sgemm_min_tokens && (int64_t)j->out * j->in * 4 >= r->sgemm_min_bytes)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, j->n, o1 - o0, j->in, 1.0f, j->X, j->ldx,
                    j->W + (int64_t)o0 * j->ldw, j->ldw, 0.0f, j->Y + o0, j->ldy);
    else
        r->k->matmul(j->n, o1 - o0, j->in, j->X, j->ldx, j->W + (int64_t)o0 * j->ldw, j->ldw, j->Y + o0, j->ldy);
}

/* Thread t's share of the output rows, in blocks of 8 so that each element
 * is computed by the same kernel path whatever the thread count. */
static void matmul_part(void *ctx, int t, int nt)
{
    const MatmulJob *j = ctx;
    int blocks = (j->out + 7) / 8;
    int b0 = (int)((int64_t)blocks * t / nt), b1 = (int)((int64_t)blocks * (t + 1) / nt);
    matmul_rows(j, b0 * 8, b1 * 8 < j->out ? b1 * 8 : j->out);
}

/* Y (n, out; ldy) = X (n, in; ldx) W^T, W (out, in; ldw). in is padded. */
static void matmul(CpuRunner *r, int n, int out, int in, const float *X, int ldx, const float *W,
                   int ldw, float *Y, int ldy)
{
    MatmulJob j = {r, n, out, in, ldx, ldw, ldy, X, W, Y};
    if (r->par && (int64_t)n * out * in >= PAR_MIN_MACS)
        pool_run(&r->pool, matmul_part, &j);
    else
        matmul_rows(&j, 0, out);
}

/* Attention of tokens [i0, i1) of the batch in flight, on layer r->layer. */
static void attend_tokens(CpuRunner *r, int i0, int i1, float *scratch)
{
    const SglBatch *b = r->batch;
    const int64_t n_slots = r->base.opts.n_slots;
    const float *kc = r->kcache + (int64_t)r->layer * n_slots * r->KV;
    const float *vc = r->vcache + (int64_t)r->layer * n_slots * r->KV;
    const int win = r->base.cfg->sliding_window;
    for (int i = i0; i < i1; i++) {
        /* keys first..pos; with a sliding window only the last win positions */
        int pos = b->positions[i], first = win > 0 && pos >= win ? pos - win + 1 : 0;
        CpuAttnArgs a = {
            .n_heads = r->n_heads, .n_kv_heads = r->n_kv, .head_dim = r->hd,
            .n_keys = pos + 1 - first, .q = r->qkv + (int64_t)i * r->ld_qkv,
            .k = kc, .v = vc, .kv_stride = r->KV, .slots = b->slots + b->slot_off[r->tok_seq[i]] + first,
            .scale = 1.0f / sqrtf((float)r->hd), .out = r->att + (int64_t)i * r->ld_q, .scratch = scratch,
        };
        r->k->attend(&a);
    }
}

/* Thread t's share of the tokens, balanced by the number of keys attended. */
static void attend_part(void *ctx, int t, int nt)
{
    CpuRunner *r = ctx;
    const SglBatch *b = r->batch;
    int64_t total = 0, acc = 0;
    for (int i = 0; i < b->n_tokens; i++)
        total += b->positions[i] + 1;
    int i0 = -1, i1 = b->n_tokens;
    for (int i = 0; i < b->n_tokens; i++) {
        if (i0 < 0 && acc >= total * t / nt)
            i0 = i;
        if (acc >= total * (t + 1) / nt) {
            i1 = i;
            break;
        }
        acc += b->positions[i] + 1;
    }
    if (i0 < 0)
        return;
    attend_tokens(r, i0, i1, r->scratch + r->scratch_len * t);
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return 1e9 * (double)ts.tv_sec + (double)ts.tv_nsec;
}

/* Multiply-adds of one forward pass (matmuls and attention), for the
 * n_threads = 0 decision. */
static int64_t pass_macs(const CpuRunner *r, const SglBatch *b)
{
    int64_t per_tok = (int64_t)r->ld_h * (r->QKV + 2 * r->F) + (int64_t)r->H * (r->ld_q + r->ld_i), keys = 0;
    for (int i = 0; i < b->n_tokens; i++)
        keys += b->positions[i] + 1;
    return r->n_layers * (per_tok * b->n_tokens + 2 * (int64_t)r->Q * keys) +
           (int64_t)b->n_logits * r->n_vocab * r->ld_h;
}

static bool async_busy(const CpuRunner *r);

/* The forward pass proper (caller's thread or the async step thread). */
static SglStatus forward_pass(CpuRunner *r, const SglBatch *b, float *logits, SglErr *err);

static SglStatus cpu_forward(SglRunner *base, const SglBatch *b, float *logits, SglErr *err)
{
    CpuRunner *r = (CpuRunner *)base;
    if (async_busy(r))
        return sgl_err(err, SGL_E_INVAL, "runner: forward called while a forward_sample_begin is outstanding");
    return forward_pass(r, b, logits, err);
}

/* Tensor parallelism: row id of the embedding, zeros outside this rank's block. */
static void tp_embed_row(const CpuRunner *r, int32_t id, float *x)
{
    if (id >= r->vocab0 && id < r->vocab0 + r->n_vocab)
        memcpy(x, r->embed + (int64_t)(id - r->vocab0) * r->ld_h, sizeof(float) * (size_t)r->H);
    else
        memset(x, 0, sizeof(float) * (size_t)r->H);
}

/* Sums rows (T, ld_h) over the ranks (the padding columns are zeros on every rank). */
static SglStatus tp_sum_rows(CpuRunner *r, float *rows, int T, SglErr *err)
{
    return r->comm->ops->all_reduce_sum(r->comm, rows, (int64_t)T * r->ld_h, SGL_COMM_F32, NULL, err);
}

/* Logits of the normed rows in r->xn: this rank's vocabulary block, gathered
 * from every rank TP_LOGIT_ROWS rows at a time into (n, V). */
static SglStatus tp_logits(CpuRunner *r, int n, float *logits, SglErr *err)
{
    const int64_t vb = r->vocab_block;
    for (int c0 = 0; c0 < n; c0 += TP_LOGIT_ROWS) {
        int rows = n - c0 < TP_LOGIT_ROWS ? n - c0 : TP_LOGIT_ROWS;
        matmul(r, rows, (int)r->n_vocab, r->ld_h, r->xn + (int64_t)c0 * r->ld_h, r->ld_h, r->lm_head, r->ld_h,
               r->lg_local, (int)vb);
        SglStatus st = r->comm->ops->all_gather(r->comm, r->lg_local, r->lg_all, rows * vb, SGL_COMM_F32, NULL, err);
        if (st != SGL_OK)
            return st;
        for (int q = 0; q < r->tp_size; q++) {
            int64_t v0 = q * vb, cols = r->V - v0 < vb ? r->V - v0 : vb;
            for (int i = 0; cols > 0 && i < rows; i++)
                memcpy(logits + (int64_t)(c0 + i) * r->V + v0, r->lg_all + ((int64_t)q * rows + i) * vb,
                       sizeof(float) * (size_t)cols);
        }
    }
    return SGL_OK;
}

static SglStatus forward_pass(CpuRunner *r, const SglBatch *b, float *logits, SglErr *err)
{
    SglStatus st = check_batch(r, b, err);
    if (st != SGL_OK || b->n_tokens == 0)
        return st;
    const int T = b->n_tokens, H = r->H, hd = r->hd, h2 = hd / 2, KV = r->KV;
    const int64_t n_slots = r->base.opts.n_slots;

    r->batch = b;
    int64_t macs = 0;
    double t_start = 0;
    r->par = r->pool.n > 1 && !r->auto_threads;
    if (r->pool.n > 1 && r->auto_threads && (macs = pass_macs(r, b)) >= AUTO_MIN_MACS) {
        const double *ns = r->ns_per_mac;
        bool best = ns[1] == 0 || (ns[0] != 0 && ns[1] < ns[0]);
        r->par = ns[0] == 0 && ns[1] != 0 ? false : r->n_large++ % AUTO_RETRY == AUTO_RETRY - 1 ? !best : best;
        t_start = now_ns();
    }
    if (r->par)
        pool_begin(&r->pool);
    for (int s = 0; s < b->n_seqs; s++)
        for (int i = b->seq_off[s]; i < b->seq_off[s + 1]; i++)
            r->tok_seq[i] = s;
    for (int i = 0; i < T; i++) {
        if (!r->comm)
            memcpy(r->x + (int64_t)i * r->ld_h, r->embed + (int64_t)b->tokens[i] * r->ld_h, sizeof(float) * (size_t)H);
        else   /* vocab-parallel: ids outside this rank's block embed to zeros */
            tp_embed_row(r, b->tokens[i], r->x + (int64_t)i * r->ld_h);
        float *c = r->rope_cos + (int64_t)i * h2, *s = r->rope_sin + (int64_t)i * h2;
        for (int j = 0; j < h2; j++) {
            float ang = (float)b->positions[i] * r->inv_freq[j];   /* float product, as HF */
            c[j] = (float)cos((double)ang);
            s[j] = (float)sin((double)ang);
        }
    }
    if (r->comm && (st = tp_sum_rows(r, r->x, T, err)) != SGL_OK)
        goto out;

    for (int l = 0; l < r->n_layers; l++) {
        const CpuLayer *w = &r->layers[l];
        float *kc = r->kcache + (int64_t)l * n_slots * KV, *vc = r->vcache + (int64_t)l * n_slots * KV;
        for (int i = 0; i < T; i++)
            r->k->rmsnorm(H, r->x + (int64_t)i * r->ld_h, w->attn_norm, r->eps, r->xn + (int64_t)i * r->ld_h);
        matmul(r, T, r->QKV, r->ld_h, r->xn, r->ld_h, w->wqkv, r->ld_h, r->qkv, r->ld_qkv);
        for (int s = 0; s < b->n_seqs; s++) {
            const int32_t *slots = b->slots + b->slot_off[s];
            for (int i = b->seq_off[s]; i < b->seq_off[s + 1]; i++) {
                float *q = r->qkv + (int64_t)i * r->ld_qkv, *k = q + r->Q, *v = k + KV;
                if (w->bqkv)
                    for (int j = 0; j < r->QKV; j++)
                        q[j] += w->bqkv[j];
                r->k->rope(r->n_heads, hd, q, r->rope_cos + (int64_t)i * h2, r->rope_sin + (int64_t)i * h2);
                r->k->rope(r->n_kv, hd, k, r->rope_cos + (int64_t)i * h2, r->rope_sin + (int64_t)i * h2);
                int64_t slot = slots[b->positions[i]];
                memcpy(kc + slot * KV, k, sizeof(float) * (size_t)KV);
                memcpy(vc + slot * KV, v, sizeof(float) * (size_t)KV);
            }
        }
        r->layer = l;
        int64_t work = 0;   /* multiply-adds of the attention */
        for (int i = 0; i < T; i++)
            work += (int64_t)(b->positions[i] + 1) * 2 * r->Q;
        if (r->par && work >= PAR_MIN_MACS)
            pool_run(&r->pool, attend_part, r);
        else
            attend_tokens(r, 0, T, r->scratch);
        matmul(r, T, H, r->ld_q, r->att, r->ld_q, w->wo, r->ld_q, r->xn, r->ld_h);
        if (r->comm && (st = tp_sum_rows(r, r->xn, T, err)) != SGL_OK)   /* row-parallel o_proj */
            goto out;
        for (int i = 0; i < T; i++) {
            float *x = r->x + (int64_t)i * r->ld_h, *y = r->xn + (int64_t)i * r->ld_h;
            for (int j = 0; j < H; j++)
                x[j] += y[j];
            r->k->rmsnorm(H, x, w->mlp_norm, r->eps, y);
        }
        matmul(r, T, 2 * r->F, r->ld_h, r->xn, r->ld_h, w->wgu, r->ld_h, r->gu, r->ld_gu);
        for (int i = 0; i < T; i++) {
            const float *g = r->gu + (int64_t)i * r->ld_gu;
            r->k->silu_mul(r->F, g, g + r->F, r->act + (int64_t)i * r->ld_i);
        }
        matmul(r, T, H, r->ld_i, r->act, r->ld_i, w->wdown, r->ld_i, r->xn, r->ld_h);
        if (r->comm && (st = tp_sum_rows(r, r->xn, T, err)) != SGL_OK)   /* row-parallel down */
            goto out;
        for (int i = 0; i < T; i++) {
            float *x = r->x + (int64_t)i * r->ld_h, *y = r->xn + (int64_t)i * r->ld_h;
            for (int j = 0; j < H; j++)
                x[j] += y[j];
        }
    }
    for (int i = 0; i < b->n_logits; i++)
        r->k->rmsnorm(H, r->x + (int64_t)b->logit_rows[i] * r->ld_h, r->final_norm, r->eps,
                    r->xn + (int64_t)i * r->ld_h);
    if (b->n_logits > 0 && !r->comm)
        matmul(r, b->n_logits, r->V, r->ld_h, r->xn, r->ld_h, r->lm_head, r->ld_h, logits, r->V);
    else if (b->n_logits > 0)
        st = tp_logits(r, b->n_logits, logits, err);
out:
    if (r->par)
        pool_end(&r->pool);
    if (t_start > 0 && st == SGL_OK) {   /* auto: fold this pass into its mode's average */
        double v = (now_ns() - t_start) / (double)macs, *avg = &r->ns_per_mac[r->par];
        *avg = *avg == 0 ? v : 0.5 * (*avg + v);
    }
    return st;
}

/* ---- forward_sample_begin / forward_sample_end ----------------------------
 *
 * One step thread, started by the first begin, runs the begun batches in
 * order: forward_pass into its own logits rows, then sgl_ref_sample (the C
 * reference of the device sampler, so the CPU and CUDA runners draw the same
 * tokens for the same (seed, step)). Two job slots: begin copies the batch
 * into the slot after the newest (slot slots are compacted: only each
 * sequence's kv_len entries), end waits for the oldest. A token t < 0 of job
 * k+1 is replaced, on the step thread, by ids[-(t+1)] of job k, whose slot is
 * not reused before job k+2 is begun, which the contract (two outstanding)
 * orders after end(k). The logits buffer (max_seqs rows) and the slots are
 * allocated by the first begin; later begins allocate only when a batch needs
 * more slot entries than any before it. */

#define ASYNC_JOBS 2
/* The step thread polls (plain loads, see SPIN_LIMIT) for up to this long
 * for the next batch before sleeping: a futex wake-up costs 5-10 us under
 * virtualization, as long as a whole stories260K batch-1 step. The caller
 * sleeps in end() instead: the next batch is already queued then, so its
 * wake-up is off the step thread's path, and a second polling thread on a
 * busy 2-vCPU machine took the core from the one computing (measured:
 * batch-32 steps 0.6-0.66 ms without it, 0.54-0.96 ms with it). */
#define ASYNC_SPIN_NS 50000.0

typedef struct {
    SglBatch b;                /* points into the arrays below */
    int32_t *tokens, *positions, *logit_rows;  /* (max_batch_tokens) */
    int32_t *seq_off, *kv_len, *slot_off;      /* (max_seqs + 1) */
    int32_t *slots;            /* (cap_slots) compacted */
    int64_t cap_slots;
    int32_t *res_row, *res_tok; /* (max_batch_tokens) tokens to resolve: row of the previous job */
    int32_t n_res;
    SglKSampleRow *rows;       /* (max_seqs) */
    int32_t *ids;              /* (max_seqs) */
    float *lp;                 /* (max_seqs) */
    SglStatus st;
    SglErr err;
    int done;                  /* set (release) by the step thread under mu */
} CpuJob;

typedef struct CpuAsync {
    pthread_t th;
    bool th_started;
    pthread_mutex_t mu;
    pthread_cond_t cv_job, cv_done;
    bool stop;
    CpuJob job[ASYNC_JOBS];
    int head, n_out;           /* oldest outstanding job, outstanding count (caller's thread) */
    int n_queued;              /* begun, not yet run (under mu) */
    int run_next;              /* next job the step thread runs (under mu) */
    int32_t prev_logits;       /* n_logits of the newest begun job, -1 before the first */
    float *logits;             /* (max_seqs, V) */
} CpuAsync;

static bool async_busy(const CpuRunner *r) { return r->as && r->as->n_out > 0; }

/* Polls *flag (nonzero: ready) for up to ASYNC_SPIN_NS; its last value. */
static int spin_until(const int *flag)
{
    double t0 = 0;
    for (unsigned i = 1;; i++) {
        int v = __atomic_load_n(flag, __ATOMIC_ACQUIRE);
        if (v)
            return v;
        if ((i & 255) == 0) {
            double t = now_ns();
            if (t0 == 0)
                t0 = t;
            else if (t - t0 > ASYNC_SPIN_NS)
                return 0;
        }
        cpu_relax();
    }
}

static void *async_main(void *p)
{
    CpuRunner *r = p;
    CpuAsync *a = r->as;
    for (;;) {
        spin_until(&a->n_queued);
        pthread_mutex_lock(&a->mu);
        while (a->n_queued == 0 && !a->stop)
            pthread_cond_wait(&a->cv_job, &a->mu);
        if (a->n_queued == 0) {
            pthread_mutex_unlock(&a->mu);
            return NULL;
        }
        int k = a->run_next;
        pthread_mutex_unlock(&a->mu);

        CpuJob *j = &a->job[k], *prev = &a->job[(k + ASYNC_JOBS - 1) % ASYNC_JOBS];
        for (int32_t i = 0; i < j->n_res; i++) {
            int32_t t = prev->ids[j->res_row[i]];
            j->tokens[j->res_tok[i]] = t >= 0 && t < r->V ? t : 0; /* -1: no token was allowed */
        }
        j->st = forward_pass(r, &j->b, a->logits, &j->err);
        if (j->st == SGL_OK && j->b.n_logits > 0)
            sgl_ref_sample(a->logits, j->b.n_logits, r->V, j->rows, NULL, j->ids, j->lp);

        pthread_mutex_lock(&a->mu);
        __atomic_store_n(&j->done, 1, __ATOMIC_RELEASE);
        __atomic_store_n(&a->n_queued, a->n_queued - 1, __ATOMIC_RELEASE);
        a->run_next = (k + 1) % ASYNC_JOBS;
        pthread_cond_signal(&a->cv_done);
        pthread_mutex_unlock(&a->mu);
    }
}

static void async_free(CpuRunner *r)
{
    CpuAsync *a = r->as;
    if (!a)
        return;
    if (a->th_started) {
        pthread_mutex_lock(&a->mu);
        a->stop = true; /* outstanding jobs still run first */
        pthread_cond_signal(&a->cv_job);
        pthread_mutex_unlock(&a->mu);
        pthread_join(a->th, NULL);
    }
    pthread_cond_destroy(&a->cv_done);
    pthread_cond_destroy(&a->cv_job);
    pthread_mutex_destroy(&a->mu);
    for (int k = 0; k < ASYNC_JOBS; k++) {
        CpuJob *j = &a->job[k];
        free(j->tokens);
        free(j->seq_off);
        free(j->slots);
        free(j->res_row);
        free(j->rows);
        free(j->ids);
    }
    free(a->logits);
    free(a);
    r->as = NULL;
}

/* Creates the step thread and the job buffers; false without memory. */
static bool async_init(CpuRunner *r)
{
    const SglRunnerOpts *o = &r->base.opts;
    CpuAsync *a = calloc(1, sizeof *a);
    if (!a)
        return false;
    r->as = a;
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv_job, NULL);
    pthread_cond_init(&a->cv_done, NULL);
    a->prev_logits = -1;
    size_t T = (size_t)o->max_batch_tokens, S = (size_t)o->max_seqs + 1;
    a->logits = malloc((size_t)o->max_seqs * (size_t)r->V * sizeof *a->logits);
    bool ok = a->logits != NULL;
    for (int k = 0; k < ASYNC_JOBS && ok; k++) {
        CpuJob *j = &a->job[k];
        j->tokens = malloc(3 * T * sizeof *j->tokens);
        j->seq_off = malloc(3 * S * sizeof *j->seq_off);
        j->res_row = malloc(2 * T * sizeof *j->res_row);
        j->rows = malloc(S * sizeof *j->rows);
        j->ids = calloc(2 * S, sizeof *j->ids);
        ok = j->tokens && j->seq_off && j->res_row && j->rows && j->ids;
        if (ok) {
            j->positions = j->tokens + T;
            j->logit_rows = j->tokens + 2 * T;
            j->kv_len = j->seq_off + S;
            j->slot_off = j->seq_off + 2 * S;
            j->res_tok = j->res_row + T;
            j->lp = (float *)(j->ids + S);
        }
    }
    if (ok)
        ok = a->th_started = pthread_create(&a->th, NULL, async_main, r) == 0;
    if (!ok)
        async_free(r);
    return ok;
}

static SglStatus cpu_begin(SglRunner *base, const SglBatch *b, const SglRowSampling *rows, SglErr *err)
{
    CpuRunner *r = (CpuRunner *)base;
    const SglRunnerOpts *o = &r->base.opts;
    if (b->n_logits > o->max_seqs)
        return sgl_err(err, SGL_E_UNSUPPORTED, "runner: %d logit rows exceed the %d sampled in one pass",
                       b->n_logits, o->max_seqs);
    if (!r->as && !async_init(r))
        return sgl_err(err, SGL_E_UNSUPPORTED, "runner: cannot start the step thread (out of memory)");
    CpuAsync *a = r->as;
    if (a->n_out >= ASYNC_JOBS)
        return sgl_err(err, SGL_E_INVAL, "runner: %d batches are already outstanding", a->n_out);
    if (b->n_seqs < 0 || b->n_seqs > o->max_seqs || b->n_tokens < 0 || b->n_tokens > o->max_batch_tokens ||
        b->n_logits < 0)
        return check_batch(r, b, err);
    CpuJob *j = &a->job[(a->head + a->n_out) % ASYNC_JOBS];
    /* copy, compacting each sequence's slots to its kv_len entries */
    int64_t need = 0;
    for (int s = 0; s < b->n_seqs; s++)
        need += b->kv_len[s] > 0 ? b->kv_len[s] : 0;
    if (need > j->cap_slots) {
        int32_t *ns = realloc(j->slots, (size_t)need * sizeof *ns);
        if (!ns)
            return sgl_err(err, SGL_E_NOMEM, "runner: out of memory copying %lld slot entries", (long long)need);
        j->slots = ns;
        j->cap_slots = need;
    }
    int64_t off = 0;
    for (int s = 0; s < b->n_seqs; s++) {
        int32_t kv = b->kv_len[s] > 0 ? b->kv_len[s] : 0;
        if (b->slot_off[s] < 0 || b->slot_off[s + 1] - b->slot_off[s] < kv)
            return check_batch(r, b, err); /* reports the bad layout */
        memcpy(j->slots + off, b->slots + b->slot_off[s], (size_t)kv * sizeof *j->slots);
        j->slot_off[s] = (int32_t)off;
        off += kv;
    }
    j->slot_off[b->n_seqs] = (int32_t)off;
    memcpy(j->seq_off, b->seq_off, ((size_t)b->n_seqs + 1) * sizeof *j->seq_off);
    memcpy(j->kv_len, b->kv_len, (size_t)b->n_seqs * sizeof *j->kv_len);
    memcpy(j->positions, b->positions, (size_t)b->n_tokens * sizeof *j->positions);
    memcpy(j->logit_rows, b->logit_rows, (size_t)b->n_logits * sizeof *j->logit_rows);
    j->n_res = 0;
    for (int32_t i = 0; i < b->n_tokens; i++) {
        int32_t t = b->tokens[i];
        if (t < 0) {
            if (-(int64_t)t - 1 >= a->prev_logits)
                return sgl_err(err, SGL_E_INVAL, "runner: token %d refers to row %lld of the previous batch, "
                               "which has %d", (int)i, -(long long)t - 1, (int)(a->prev_logits > 0 ? a->prev_logits : 0));
            j->res_row[j->n_res] = -t - 1;
            j->res_tok[j->n_res++] = i;
            t = 0; /* resolved on the step thread */
        }
        j->tokens[i] = t;
    }
    j->b = (SglBatch){.n_seqs = b->n_seqs, .n_tokens = b->n_tokens, .tokens = j->tokens,
                      .positions = j->positions, .seq_off = j->seq_off, .kv_len = j->kv_len,
                      .slot_off = j->slot_off, .slots = j->slots, .n_logits = b->n_logits,
                      .logit_rows = j->logit_rows};
    SglStatus st = check_batch(r, &j->b, err);
    if (st != SGL_OK)
        return st;
    for (int32_t i = 0; i < b->n_logits; i++)
        j->rows[i] = (SglKSampleRow){.seed = rows[i].seed, .step = rows[i].step,
                                     .temperature = rows[i].temperature, .top_k = rows[i].top_k,
                                     .top_p = rows[i].top_p, .min_p = rows[i].min_p, .use_mask = 0,
                                     .want_logprob = rows[i].want_logprob};
    j->done = 0;
    j->st = SGL_OK;
    a->prev_logits = b->n_logits;
    a->n_out++;
    pthread_mutex_lock(&a->mu);
    __atomic_store_n(&a->n_queued, a->n_queued + 1, __ATOMIC_RELEASE);
    pthread_cond_signal(&a->cv_job);
    pthread_mutex_unlock(&a->mu);
    return SGL_OK;
}

static SglStatus cpu_end(SglRunner *base, int32_t *ids, float *logprobs, SglErr *err)
{
    CpuRunner *r = (CpuRunner *)base;
    CpuAsync *a = r->as;
    if (!a || a->n_out == 0)
        return sgl_err(err, SGL_E_INVAL, "runner: forward_sample_end without an outstanding batch");
    CpuJob *j = &a->job[a->head];
    pthread_mutex_lock(&a->mu);
    while (!j->done)
        pthread_cond_wait(&a->cv_done, &a->mu);
    pthread_mutex_unlock(&a->mu);
    a->head = (a->head + 1) % ASYNC_JOBS;
    a->n_out--;
    if (j->st != SGL_OK) {
        if (err)
            *err = j->err;
        return j->st;
    }
    memcpy(ids, j->ids, (size_t)j->b.n_logits * sizeof *ids);
    if (logprobs)
        for (int32_t i = 0; i < j->b.n_logits; i++)
            if (j->rows[i].want_logprob)
                logprobs[i] = j->lp[i];
    return SGL_OK;
}

static const SglRunnerOps cpu_ops = {.name = "cpu", .forward = cpu_forward, .free = cpu_free,
                                     .forward_sample_begin = cpu_begin, .forward_sample_end = cpu_end};

/* Bump allocator over one block: returns the cursor and advances it by n
 * 4-byte elements (floats or int32), keeping 64-byte alignment. */
static void *take(char **cur, int64_t n)
{
    void *p = *cur;
    *cur += (n * 4 + 63) / 64 * 64;
    return p;
}

static int64_t rounded(int64_t n) { return (n * 4 + 63) / 64 * 64; }

/* CPUs in this process's affinity mask (at least 1). */
static int online_cpus(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
        return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)(n < 1024 ? n : 1024) : 1;
}

static void *zalloc(int64_t bytes)
{
    void *p = NULL;
    if (bytes <= 0 || posix_memalign(&p, 64, (size_t)bytes) != 0)
        return NULL;
    memset(p, 0, (size_t)bytes);
    return p;
}

/* A zeroed, page-aligned block of `bytes` as an anonymous mapping, or NULL
 * (*len gets the size to unmap). The kernel hands out zero pages on first
 * touch, so a large KV store costs nothing until used. MADV_HUGEPAGE asks for
 * 2 MiB pages: the decode step of a small model streams its whole KV store
 * every step, and with 4 KiB pages TLB misses (costly under virtualization)
 * took ~10% of a stories260K batch-32 step (measured with bench_runner). */
static void *map_zeroed(int64_t bytes, size_t *len)
{
    if (bytes <= 0)
        return NULL;
    void *p = mmap(NULL, (size_t)bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    madvise(p, (size_t)bytes, MADV_HUGEPAGE);   /* a hint: failure only means 4 KiB pages */
    *len = (size_t)bytes;
    return p;
}

SglStatus sgl_runner_cpu_new(const SglModel *m, const SglRunnerOpts *opts, SglRunner **out, SglErr *err)
{
    SglStatus st = SGL_OK;
    const SglModelConfig *c = &m->cfg;
    *out = NULL;
    if (!opts || opts->n_slots < 1 || opts->n_slots > INT32_MAX || opts->max_batch_tokens < 1 ||
        opts->max_seqs < 1)
        return sgl_err(err, SGL_E_INVAL, "runner: need 1 <= n_slots <= 2^31-1, max_batch_tokens >= 1, "
                       "max_seqs >= 1");
    CpuRunner *r = calloc(1, sizeof *r);
    if (!r)
        return sgl_err(err, SGL_E_NOMEM, "runner: out of memory");
    r->base.ops = &cpu_ops;
    r->base.cfg = c;
    r->base.opts = *opts;
    /* "auto": one thread per CPU we may run on (up to AUTO_MAX_THREADS);
     * forward passes below AUTO_MIN_MACS still run on the caller alone. */
    if (r->base.opts.n_threads <= 0) {
        r->auto_threads = true;
        r->base.opts.n_threads = online_cpus() < AUTO_MAX_THREADS ? online_cpus() : AUTO_MAX_THREADS;
    }
    if (r->base.opts.n_threads > MAX_THREADS)
        r->base.opts.n_threads = MAX_THREADS;
    /* SGL_CPU_KERNELS=generic|avx2 overrides the choice (debugging, tests) */
    const char *kname = getenv("SGL_CPU_KERNELS");
    r->k = cpu_kernels_get(kname && kname[0] ? kname : NULL);
    if (!r->k) {
        st = sgl_err(err, SGL_E_INVAL, "runner: SGL_CPU_KERNELS=%.32s is unknown or unsupported on this CPU",
                     kname);
        goto fail;
    }
    r->sgemm_min_tokens = SGEMM_MIN_TOKENS;
    r->sgemm_min_bytes = SGEMM_MIN_WEIGHT_BYTES;
    /* this runner's shard; tp.size <= 1 (or {0, 0}): the whole model */
    SglTp tp = opts->tp.size > 1 ? opts->tp : (SglTp){0, 1};
    SglTpShard sh;
    if (tp.size > 1 && (!opts->comm || opts->comm->size != tp.size || opts->comm->rank != tp.rank)) {
        st = sgl_err(err, SGL_E_INVAL, "runner: tp rank %d of %d needs a comm endpoint of that rank and size",
                     tp.rank, tp.size);
        goto fail;
    }
    if ((st = sgl_tp_shard(c, tp, &sh, err)) != SGL_OK)
        goto fail;
    if (tp.size > 1) {
        r->comm = opts->comm;
        r->tp_size = tp.size;
    }
    r->vocab0 = sh.vocab0;
    r->n_vocab = sh.n_vocab;
    r->vocab_block = sh.vocab_block;
    r->H = c->hidden_size;
    r->F = (int)sh.inter;
    r->hd = c->head_dim;
    r->n_heads = sh.n_heads;
    r->n_kv = sh.n_kv_heads;
    r->n_layers = c->n_layers;
    r->Q = sh.n_heads * c->head_dim;
    r->KV = sh.n_kv_heads * c->head_dim;
    r->QKV = r->Q + 2 * r->KV;
    r->V = c->vocab_size;
    r->eps = c->rms_norm_eps;
    r->ld_h = pad(r->H);
    r->ld_q = pad(r->Q);
    r->ld_i = pad(r->F);
    r->ld_qkv = pad(r->QKV);
    r->ld_gu = pad(2 * r->F);
    const int64_t H = r->H, ldh = r->ld_h, T = opts->max_batch_tokens;

    /* weights */
    int64_t per_layer = rounded(H) * 2 + rounded(r->QKV * ldh) + rounded(r->QKV) + rounded(H * r->ld_q) +
                        rounded(2 * r->F * ldh) + rounded(H * r->ld_i);
    int64_t wbytes = rounded(r->n_vocab * ldh) * (c->tie_word_embeddings ? 1 : 2) + rounded(H) +
                     rounded(r->hd / 2) + per_layer * r->n_layers;
    r->layers = calloc((size_t)r->n_layers, sizeof *r->layers);
    r->wmem = zalloc(wbytes);
    int64_t kvbytes = 2 * rounded((int64_t)r->n_layers * opts->n_slots * r->KV);
    /* The KV store can be large (every slot of every layer): map it so the
     * kernel hands out zero pages on first touch instead of memset here. */
    r->kvmem = map_zeroed(kvbytes, &r->kv_bytes);
    int64_t wsbytes = rounded(T * ldh) * 2 + rounded(T * r->ld_qkv) + rounded(T * r->ld_q) +
                      rounded(T * r->ld_gu) + rounded(T * r->ld_i) + 2 * rounded(T * (r->hd / 2)) +
                      rounded(CPU_ATTN_SCRATCH(r->n_heads, r->KV)) * r->base.opts.n_threads + rounded(T);
    if (r->comm)
        wsbytes += rounded(TP_LOGIT_ROWS * r->vocab_block) * (1 + r->tp_size);
    r->wsmem = zalloc(wsbytes);
    if (!r->layers || !r->wmem || !r->kvmem || !r->wsmem) {
        st = sgl_err(err, SGL_E_NOMEM, "runner: cannot allocate %lld bytes of weights, %lld of KV storage "
                     "and %lld of workspace", (long long)wbytes, (long long)kvbytes, (long long)wsbytes);
        goto fail;
    }
    char *cur = r->wmem;
    r->embed = take(&cur, r->n_vocab * ldh);
    convert(&m->embed, r->vocab0, r->n_vocab, H, r->embed, ldh);
    if (c->tie_word_embeddings)
        r->lm_head = r->embed;
    else {
        r->lm_head = take(&cur, r->n_vocab * ldh);
        convert(&m->lm_head, r->vocab0, r->n_vocab, H, r->lm_head, ldh);
    }
    r->final_norm = take(&cur, H);
    convert(&m->final_norm, 0, 1, H, r->final_norm, H);
    r->inv_freq = take(&cur, r->hd / 2);
    rope_freqs(c, r->inv_freq);
    for (int l = 0; l < r->n_layers; l++) {
        const SglLayerWeights *lw = &m->layers[l];
        CpuLayer *w = &r->layers[l];
        w->attn_norm = take(&cur, H);
        convert(&lw->attn_norm, 0, 1, H, w->attn_norm, H);
        w->mlp_norm = take(&cur, H);
        convert(&lw->mlp_norm, 0, 1, H, w->mlp_norm, H);
        w->wqkv = take(&cur, r->QKV * ldh);
        /* column-parallel q/k/v and gate/up (rows), row-parallel o_proj and down (columns) */
        int64_t q0 = (int64_t)sh.head0 * r->hd, kv0 = (int64_t)sh.kv_head0 * r->hd;
        convert(&lw->wq, q0, r->Q, H, w->wqkv, ldh);
        convert(&lw->wk, kv0, r->KV, H, w->wqkv + r->Q * ldh, ldh);
        convert(&lw->wv, kv0, r->KV, H, w->wqkv + (r->Q + r->KV) * ldh, ldh);
        float *bq = take(&cur, r->QKV);
        if (c->qkv_bias && lw->bq.data && lw->bk.data && lw->bv.data) {
            w->bqkv = bq;
            convert_cols(&lw->bq, 0, 1, q0, r->Q, bq, r->Q);
            convert_cols(&lw->bk, 0, 1, kv0, r->KV, bq + r->Q, r->KV);
            convert_cols(&lw->bv, 0, 1, kv0, r->KV, bq + r->Q + r->KV, r->KV);
        }
        w->wo = take(&cur, H * r->ld_q);
        convert_cols(&lw->wo, 0, H, q0, r->Q, w->wo, r->ld_q);
        w->wgu = take(&cur, 2 * r->F * ldh);
        convert(&lw->w_gate, sh.inter0, r->F, H, w->wgu, ldh);
        convert(&lw->w_up, sh.inter0, r->F, H, w->wgu + r->F * ldh, ldh);
        w->wdown = take(&cur, H * r->ld_i);
        convert_cols(&lw->w_down, 0, H, sh.inter0, r->F, w->wdown, r->ld_i);
    }
    cur = r->kvmem;
    r->kcache = take(&cur, (int64_t)r->n_layers * opts->n_slots * r->KV);
    r->vcache = take(&cur, (int64_t)r->n_layers * opts->n_slots * r->KV);
    cur = r->wsmem;
    r->x = take(&cur, T * ldh);
    r->xn = take(&cur, T * ldh);
    r->qkv = take(&cur, T * r->ld_qkv);
    r->att = take(&cur, T * r->ld_q);
    r->gu = take(&cur, T * r->ld_gu);
    r->act = take(&cur, T * r->ld_i);
    r->rope_cos = take(&cur, T * (r->hd / 2));
    r->rope_sin = take(&cur, T * (r->hd / 2));
    r->scratch_len = rounded(CPU_ATTN_SCRATCH(r->n_heads, r->KV)) / 4;
    r->scratch = take(&cur, r->scratch_len * r->base.opts.n_threads);
    r->tok_seq = take(&cur, T);
    if (r->comm) {
        r->lg_local = take(&cur, TP_LOGIT_ROWS * r->vocab_block);
        r->lg_all = take(&cur, TP_LOGIT_ROWS * r->vocab_block * r->tp_size);
    }
    /* OpenBLAS keeps a process-wide thread count. The runner splits work
     * over its own threads, so OpenBLAS runs single-threaded inside each:
     * results and timings stay deterministic. */
    openblas_set_num_threads(1);
    r->pool_args = calloc((size_t)r->base.opts.n_threads, sizeof *r->pool_args);
    pool_init(&r->pool, r->pool_args, r->base.opts.n_threads);
    *out = &r->base;
    return SGL_OK;
fail:
    cpu_free(&r->base);
    return st;
}

void sgl_runner_cpu_set_sgemm_cutoff(SglRunner *base, int min_tokens, int64_t min_weight_bytes)
{
    CpuRunner *r = (CpuRunner *)base;
    if (base->ops == &cpu_ops) {
        r->sgemm_min_tokens = min_tokens;
        r->sgemm_min_bytes = min_weight_bytes;
    }
}

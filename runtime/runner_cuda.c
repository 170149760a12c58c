/* runner_cuda.c -- the CUDA runner (runner.h contract; see runner_cuda.h).
 *
 * Device memory is three allocations made at creation and pointed into
 * (llm.c's malloc_and_point): weights (bf16, qkv and gate|up merged, biases
 * fp32), the KV pool (n_layers, n_slots, n_kv*hd) bf16 for K and for V, and
 * one workspace for max_batch_tokens rows. forward validates the batch on the
 * host, packs its metadata into pinned memory, uploads it with one async copy,
 * and then only launches. Per layer:
 *   xn = rmsnorm(x)                  x: fp32 residual stream (T, hidden)
 *   qkv = xn Wqkv^T                  cuBLAS, bf16 in, fp32 out
 *   qkv = rope(qkv + b)              bias fused into RoPE
 *   pool[slot] = k, v                kv_store
 *   att = attention(q, pool)         decode (split-K) or prefill (query tiles)
 *   x += att Wo^T                    the residual add is the GEMM's beta = 1
 *   xn = rmsnorm(x); gu = xn Wgu^T; act = silu(g) * u; x += act Wdown^T
 * then the final norm runs only on the logit rows (row map), in chunks of
 * logit_chunk rows, each chunk's lm_head GEMM copied back through pinned memory.
 * Fused forms (SGL_FUSED=0 turns them off): rope + kv_store are one kernel
 * (sgl_k_rope_kv_store) at every size; at <= GEMV_ROWS rows each norm is
 * fused into the product it feeds (sgl_k_norm_gemv: qkv, gate|up with the
 * SiLU-mul epilogue writing act directly, lm_head), so a batch-1 layer is
 * norm_qkv, rope_kv_store, attention, o_proj, norm_gate_up_silu, down. The
 * sgl_k_* decode kernels are launched with PDL (kernels/pdl.cuh; SGL_PDL=0
 * turns it off), also inside the captured graphs. Decode products of more
 * rows use the cuBLASLt algorithm timed fastest for their shape the first
 * time the batch size is seen (runtime/gemm_lt.h; SGL_LT_TUNE=0: cuBLAS's
 * default choice).
 */
#include "runtime/runner_cuda.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "kernels/cuda_check.h"
#include "kernels/kernels.h"
#include "kernels/ref/ref.h"
#include "runtime/gemm_lt.h"

#define ALIGN_BYTES 256
#define CUBLAS_WS_BYTES ((size_t)32 << 20)
#define LOGIT_CHUNK_BYTES ((int64_t)64 << 20)  /* device fp32 logits per chunk */
#define SLOTS_CAP_MAX ((int64_t)1 << 25)       /* slot-list entries per batch */
/* Products of at most this many rows go to sgl_k_gemv. Measured on the H100
 * (test_k_gemv --bench, Llama-3-8B layer shapes): 1 row 1.04-1.22x faster than
 * cublasGemmEx, 2 rows even, 4 and 8 rows cuBLAS 1.1-1.8x faster. */
#define GEMV_ROWS 2
#define LOGIT_PIPE 8   /* pieces the logits' copy to the host is cut into */

typedef struct {
    uint16_t *wqkv;        /* (qkv_dim, hidden) q rows, then k, then v */
    float *bqkv;           /* (qkv_dim) or NULL */
    uint16_t *wo;          /* (hidden, q_dim) */
    uint16_t *attn_norm;   /* (hidden) */
    uint16_t *mlp_norm;    /* (hidden) */
    uint16_t *wgu;         /* (2*inter, hidden) gate rows, then up */
    uint16_t *wdown;       /* (hidden, inter) */
} CuLayer;

/* Sizes derived from config + opts; shared by sgl_runner_cuda_bytes and new.
 * With tensor parallelism (opts.tp.size > 1) the head, KV and intermediate
 * sizes are this rank's shard (runtime/tp.h); vocab stays the whole
 * vocabulary (the logits' width) and vocab_rows is the embedding / lm_head
 * rows held (vocab_block, zero rows past the vocabulary's end). */
typedef struct {
    int64_t T, hidden, inter, vocab, q_dim, kv_dim, qkv_dim;
    int tp;                /* ranks (1: the whole model) */
    SglTpShard sh;         /* this rank's part (the whole model when tp == 1) */
    int64_t vocab_rows;    /* vocab (tp 1) or sh.vocab_block */
    int64_t weight_bytes, kv_bytes, work_bytes;
    int64_t slots_cap, meta_ints, ws_floats;
    int64_t logit_chunk;
    int64_t per_seq;       /* longest context one sequence can have */
} Plan;

typedef struct {
    SglRunner base;
    Plan p;
    int n_layers, n_heads, n_kv, hd;
    int prefill_tile;                 /* sgl_k_attn_prefill_tile(hd) */
    int graph_max_bs;                 /* opts.graph_max_bs, capped at max_seqs */
    cudaGraphExec_t *graphs;          /* (graph_max_bs + 1) decode graphs by batch size, lazily */
    int64_t n_graph_replays;
    bool use_gemv;                    /* few-row products through sgl_k_gemv */
    bool fuse;                        /* fused kernels: norm_gemv at <= GEMV_ROWS rows, rope_kv_store */
    GemmLt *lt;                       /* tuned cuBLASLt algorithms for decode batches, or NULL */
    bool graphs_on;                   /* sgl_runner_cuda_set_graphs */
    cudaEvent_t pipe_ev[LOGIT_PIPE];  /* ends of the pieces of the logits' copy */
    float eps;
    cudaStream_t stream;
    cublasHandle_t blas;
    char *weights_d, *kv_d, *work_d;
    CuLayer *layers;                  /* (n_layers) host array of device pointers */
    uint16_t *embed_d, *lm_head_d;    /* (vocab, hidden); may alias */
    uint16_t *final_norm_d;           /* (hidden) */
    float *inv_freq_d;                /* (hd/2) */
    uint16_t *k_pool_d, *v_pool_d;    /* (n_layers, n_slots, kv_dim) */
    /* workspace */
    float *x_d;                       /* (T, hidden) residual stream */
    uint16_t *xn_d;                   /* (T, hidden) normalised, GEMM input */
    float *big_d;                     /* (T, max(qkv_dim, 2*inter)): qkv, later gate|up */
    uint16_t *mid_d;                  /* (T, max(q_dim, inter)): attention out, later act */
    uint16_t *lnorm_d;                /* (logit_chunk, hidden) */
    float *logits_d;                  /* (logit_chunk, vocab) */
    float *attn_ws_d;                 /* (ws_floats) split-K partials */
    void *blas_ws_d;                  /* cuBLAS workspace */
    int32_t *meta_d;                  /* (meta_ints) */
    /* pinned host */
    int32_t *meta_h;                  /* (meta_ints) */
    int32_t *perm_h;                  /* (T) packed index of each batch token (mixed batches) */
    float *logits_h;                  /* (logit_chunk, vocab) */
    /* device sampling (forward_sample): one allocation each side; ids and
     * log-probs adjacent so one copy brings both back */
    char *samp_d, *samp_h;
    SglKSampleRow *samp_rows_d, *samp_rows_h; /* (logit_chunk) */
    uint32_t *samp_masks_d, *samp_masks_h;    /* (logit_chunk, (vocab+31)/32) */
    int32_t *samp_ids_d, *samp_ids_h;         /* (logit_chunk), then (logit_chunk) float log-probs */
    float *samp_lp_d, *samp_lp_h;
    /* tensor parallelism (p.tp > 1): comm borrowed from opts */
    SglComm *comm;
    float *tp_logits_d;               /* (logit_chunk, vocab_rows) this rank's vocab block */
    float *tp_gather_d;               /* (tp, logit_chunk, vocab_rows) every rank's, rank order */
    /* forward_sample_begin/end: two job slots (see cuda_begin) */
    int32_t *async_meta_h[2];         /* (meta_ints) pinned meta of each slot */
    SglKSampleRow *async_rows_h[2];   /* (logit_chunk) */
    int32_t *async_out_h[2];          /* (logit_chunk) ids, then (logit_chunk) float log-probs */
    cudaEvent_t async_ev[2];          /* the slot's ids are in async_out_h */
    int async_nl[2];                  /* the slot's logit rows */
    int async_head, async_n;          /* oldest outstanding slot, outstanding count */
    int async_prev_nl;                /* rows of the newest begun batch (-1: none) */
    bool async_ready, async_off, async_resolve;
} CudaRunner;

static int64_t align_up(int64_t n) { return (n + ALIGN_BYTES - 1) / ALIGN_BYTES * ALIGN_BYTES; }

static void make_plan(const SglModelConfig *c, const SglRunnerOpts *o, Plan *p)
{
    memset(p, 0, sizeof *p);
    int64_t H = c->hidden_size, hd = c->head_dim;
    p->tp = o->tp.size > 1 ? o->tp.size : 1;
    if (p->tp == 1 || sgl_tp_shard(c, o->tp, &p->sh, NULL) != SGL_OK) { /* (new checks the shard) */
        p->tp = 1;
        sgl_tp_shard(c, (SglTp){0, 1}, &p->sh, NULL);
    }
    p->T = o->max_batch_tokens;
    p->hidden = H;
    p->inter = p->sh.inter;
    p->vocab = c->vocab_size;
    p->vocab_rows = p->tp > 1 ? p->sh.vocab_block : p->vocab;
    p->q_dim = (int64_t)p->sh.n_heads * hd;
    p->kv_dim = (int64_t)p->sh.n_kv_heads * hd;
    p->qkv_dim = p->q_dim + 2 * p->kv_dim;
    int64_t per_layer = align_up(p->qkv_dim * H * 2) + align_up(H * p->q_dim * 2) +
                        2 * align_up(H * 2) + align_up(2 * p->inter * H * 2) +
                        align_up(H * p->inter * 2) + (c->qkv_bias ? align_up(p->qkv_dim * 4) : 0);
    int64_t embed = align_up(p->vocab_rows * H * 2);
    p->weight_bytes = per_layer * c->n_layers + embed * (c->tie_word_embeddings ? 1 : 2) +
                      align_up(H * 2) + align_up(hd / 2 * 4);
    p->kv_bytes = 2 * (int64_t)c->n_layers * o->n_slots * p->kv_dim * 2;

    int64_t per_seq = o->n_slots;
    int64_t ctx = c->max_position_embeddings > p->T ? c->max_position_embeddings : p->T;
    if (per_seq > ctx) per_seq = ctx;
    p->per_seq = per_seq;
    p->slots_cap = (int64_t)o->max_seqs * per_seq;
    if (p->slots_cap < o->n_slots && p->slots_cap < SLOTS_CAP_MAX) p->slots_cap = o->n_slots;
    if (p->slots_cap > SLOTS_CAP_MAX) p->slots_cap = SLOTS_CAP_MAX;
    /* tokens, positions, slot_base, store_slot, tiles, tile_len, logit_rows, slots */
    p->meta_ints = 7 * p->T + p->slots_cap;

    p->logit_chunk = LOGIT_CHUNK_BYTES / 4 / p->vocab;
    if (p->logit_chunk < o->max_seqs) p->logit_chunk = o->max_seqs;
    if (p->logit_chunk > p->T) p->logit_chunk = p->T;
    if (p->logit_chunk < 1) p->logit_chunk = 1;

    int max_n = o->max_seqs < p->T ? o->max_seqs : (int)p->T;
    for (int n = 1; n <= max_n; n++) {
        int64_t f = sgl_k_attn_decode_ws_floats(n, p->sh.n_heads, c->head_dim, (int)per_seq);
        if (f > p->ws_floats) p->ws_floats = f;
    }
    int64_t big = p->qkv_dim > 2 * p->inter ? p->qkv_dim : 2 * p->inter;
    int64_t mid = p->q_dim > p->inter ? p->q_dim : p->inter;
    p->work_bytes = align_up(p->T * H * 4) + align_up(p->T * H * 2) + align_up(p->T * big * 4) +
                    align_up(p->T * mid * 2) + align_up(p->logit_chunk * H * 2) +
                    align_up(p->logit_chunk * p->vocab * 4) + align_up(p->ws_floats * 4) +
                    align_up(p->meta_ints * 4) + (int64_t)CUBLAS_WS_BYTES;
    if (p->tp > 1) /* local logits (logit_chunk, vocab_rows), then all ranks' (tp, logit_chunk, vocab_rows) */
        p->work_bytes += align_up(p->logit_chunk * p->vocab_rows * 4) +
                         align_up(p->tp * p->logit_chunk * p->vocab_rows * 4);
}

int64_t sgl_runner_cuda_bytes(const SglModelConfig *cfg, const SglRunnerOpts *opts)
{
    Plan p;
    make_plan(cfg, opts, &p);
    return p.weight_bytes + p.kv_bytes + p.work_bytes;
}

int64_t sgl_runner_cuda_kv_bytes_per_token(const SglModelConfig *cfg)
{
    return 2ll * cfg->n_layers * cfg->n_kv_heads * cfg->head_dim * 2;
}

int64_t sgl_runner_cuda_kv_bytes_per_token_tp(const SglModelConfig *cfg, int tp)
{
    int per = tp > 1 && cfg->n_kv_heads % tp == 0 ? cfg->n_kv_heads / tp : cfg->n_kv_heads;
    return 2ll * cfg->n_layers * per * cfg->head_dim * 2;
}

SglStatus sgl_runner_cuda_mem_info(int64_t *free_bytes, int64_t *total_bytes, SglErr *err)
{
    size_t f = 0, t = 0;
    SglStatus st = sgl_runner_cuda_available(err);
    if (st != SGL_OK)
        return st;
    cudaError_t e = cudaMemGetInfo(&f, &t);
    if (e != cudaSuccess)
        return sgl_err(err, SGL_E_DEVICE, "cuda runner: cudaMemGetInfo: %s: %s", cudaGetErrorName(e),
                       cudaGetErrorString(e));
    *free_bytes = (int64_t)f;
    *total_bytes = (int64_t)t;
    return SGL_OK;
}

/* Carves n bytes off *cur (aligned). */
static void *take(char **cur, int64_t n)
{
    void *p = *cur;
    *cur += align_up(n);
    return p;
}

/* IEEE half -> float, for fp16 checkpoints. */
static float f16_to_f32(uint16_t h)
{
    uint32_t s = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 0x1f, m = h & 0x3ff, u;
    if (e == 0) {
        if (m == 0) {
            u = s;
        } else { /* subnormal: renormalise */
            int k = -1;
            do { m <<= 1; k++; } while (!(m & 0x400));
            u = s | (uint32_t)(127 - 15 - k) << 23 | (m & 0x3ff) << 13;
        }
    } else if (e == 31) {
        u = s | 0x7f800000u | m << 13;
    } else {
        u = s | (e + 127 - 15) << 23 | m << 13;
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static float tensor_f32(const SglTensor *t, int64_t i)
{
    switch (t->dtype) {
    case SGL_DT_F32: return ((const float *)t->data)[i];
    case SGL_DT_F16: return f16_to_f32(((const uint16_t *)t->data)[i]);
    case SGL_DT_BF16: return sgl_bf16_to_f32(((const uint16_t *)t->data)[i]);
    }
    return 0.0f;
}

/* Checks t is (rows, cols) (or a vector of rows when cols == 0). */
/* (a shapes-only dummy model's tensors have no data: they are generated) */
static SglStatus check_shape(const SglModel *m, const SglTensor *t, const char *name, int layer, int64_t rows,
                             int64_t cols, SglErr *err)
{
    bool ok = (t->data || m->dummy_shapes) && (cols ? (t->ndim == 2 && t->shape[0] == rows && t->shape[1] == cols)
                               : (t->ndim == 1 && t->shape[0] == rows));
    if (ok) return SGL_OK;
    return sgl_err(err, SGL_E_FORMAT, "cuda runner: layer %d %s: expected shape (%lld%s%lld%s)",
                   layer, name, (long long)rows, cols ? ", " : "", (long long)cols, cols ? "" : "");
}

typedef struct {
    CudaRunner *r;
    uint16_t *stage;   /* host bf16 staging, stage_elems */
    int64_t stage_elems;
    SglErr *err;
    uint64_t seed;     /* shapes-only dummy model: its seed */
    void *scratch_d;   /* dummy fill of a whole tensor whose shard is not contiguous (tp > 1) */
    int64_t scratch_bytes;
} Upload;

/* One part of a checkpoint tensor t, seen as a (R, C) row-major matrix
 * (vectors: C = 1): rows [row0, row0 + rows) x columns [col0, col0 + cols).
 * goff is where the part starts in the tp = 1 weight buffer (bytes): the
 * dummy fill's seed, so every rank generates exactly the values the whole
 * model would have there. */
typedef struct {
    const SglTensor *t;
    int64_t goff, C, row0, rows, col0, cols;
} Part;

#define FILL_LANE_STEP 0x9E3779B97F4A7C15ull /* fill_value's per-4-elements seed step (fill.cu) */

/* Shapes-only dummy tensor part: sgl_k_fill_* on the device, seeded by the
 * model seed and the part's tp = 1 offset (so every tensor differs and the
 * same model gives the same bytes at any tp). Matrices and biases uniform in
 * +-0.02*sqrt(3) (std 0.02), vectors of bf16 (norms) ones: the host dummy's
 * family. Element i of a tensor depends on (seed, i) only, and on i through
 * (i/4, i%4), so a contiguous part starting at a multiple of 4 is the same
 * fill with the seed advanced by i0/4 steps; other parts fill the whole
 * tensor into scratch and copy the part out. */
static SglStatus fill_dummy(Upload *u, const Part *pt, void *dst, bool f32)
{
    char msg[400];
    int64_t es = f32 ? 4 : 2, i0 = pt->row0 * pt->C + pt->col0;
    float a = pt->t->ndim == 1 && !f32 ? 0.0f : 0.02f * 1.7320508f;
    uint64_t seed = u->seed ^ ((uint64_t)pt->goff * 0x9E3779B97F4A7C15ull);
    cudaStream_t s = u->r->stream;
    int rc;
    if (pt->cols == pt->C && i0 % 4 == 0) {
        uint64_t sk = seed + FILL_LANE_STEP * (uint64_t)(i0 / 4);
        int64_t n = pt->rows * pt->C;
        rc = f32 ? sgl_k_fill_f32(dst, n, a, sk, s) : sgl_k_fill_bf16(dst, n, a, sk, s);
    } else {
        int64_t R = pt->row0 + pt->rows, need = R * pt->C * es;
        if (need > u->scratch_bytes) {
            cudaFree(u->scratch_d);
            u->scratch_d = NULL;
            u->scratch_bytes = 0;
            if (SGL_CUDA_REPORT(cudaMalloc(&u->scratch_d, (size_t)need), msg, sizeof msg))
                return sgl_err(u->err, SGL_E_NOMEM, "cuda runner: dummy weight scratch: %s", msg);
            u->scratch_bytes = need;
        }
        rc = f32 ? sgl_k_fill_f32(u->scratch_d, R * pt->C, a, seed, s)
                 : sgl_k_fill_bf16(u->scratch_d, R * pt->C, a, seed, s);
        if (rc == 0 &&
            SGL_CUDA_REPORT(cudaMemcpy2DAsync(dst, (size_t)(pt->cols * es), (char *)u->scratch_d + i0 * es,
                                              (size_t)(pt->C * es), (size_t)(pt->cols * es), (size_t)pt->rows,
                                              cudaMemcpyDeviceToDevice, s), msg, sizeof msg))
            return sgl_err(u->err, SGL_E_DEVICE, "cuda runner: dummy weight slice: %s", msg);
    }
    if (rc == 0) return SGL_OK;
    return sgl_err(u->err, SGL_E_DEVICE, "cuda runner: dummy weight fill: %s",
                   rc == SGL_K_EINVAL ? "rejected" : cudaGetErrorString((cudaError_t)rc));
}

/* Uploads a part as bf16 (rows x cols, row-major) to dst: bf16 checkpoint
 * rows that are whole go up as they are, anything else through the staging
 * buffer (converted and gathered there). */
static SglStatus upload_bf16(Upload *u, const Part *pt, uint16_t *dst)
{
    const SglTensor *t = pt->t;
    if (!t->data) return fill_dummy(u, pt, dst, false);
    int64_t n = pt->rows * pt->cols, i0 = pt->row0 * pt->C + pt->col0;
    const void *src = (const uint16_t *)t->data + i0;
    if (t->dtype != SGL_DT_BF16 || pt->cols != pt->C) {
        for (int64_t r = 0; r < pt->rows; r++)
            for (int64_t c = 0; c < pt->cols; c++) {
                int64_t g = (pt->row0 + r) * pt->C + pt->col0 + c;
                u->stage[r * pt->cols + c] = t->dtype == SGL_DT_BF16 ? ((const uint16_t *)t->data)[g]
                                                                     : sgl_f32_to_bf16(tensor_f32(t, g));
            }
        src = u->stage;
    }
    char msg[400];
    if (SGL_CUDA_REPORT(cudaMemcpy(dst, src, (size_t)n * 2, cudaMemcpyHostToDevice), msg,
                        sizeof msg))
        return sgl_err(u->err, SGL_E_DEVICE, "cuda runner: weight upload: %s", msg);
    return SGL_OK;
}

/* A contiguous part of a vector (biases) as fp32. */
static SglStatus upload_f32(Upload *u, const Part *pt, float *dst)
{
    if (!pt->t->data) return fill_dummy(u, pt, dst, true);
    int64_t n = pt->rows * pt->cols, i0 = pt->row0 * pt->C + pt->col0;
    float *f = (float *)u->stage; /* stage holds >= 2n bf16 = n floats */
    for (int64_t i = 0; i < n; i++) f[i] = tensor_f32(pt->t, i0 + i);
    char msg[400];
    if (SGL_CUDA_REPORT(cudaMemcpy(dst, f, (size_t)n * 4, cudaMemcpyHostToDevice), msg, sizeof msg))
        return sgl_err(u->err, SGL_E_DEVICE, "cuda runner: weight upload: %s", msg);
    return SGL_OK;
}

/* Parts: whole tensor; rows [row0, +rows) of a (R, C) matrix; columns. */
static Part whole(const SglTensor *t, int64_t goff, int64_t n) { return (Part){t, goff, n, 0, 1, 0, n}; }
static Part row_part(const SglTensor *t, int64_t goff, int64_t C, int64_t row0, int64_t rows)
{
    return (Part){t, goff, C, row0, rows, 0, C};
}
static Part col_part(const SglTensor *t, int64_t goff, int64_t R, int64_t C, int64_t col0, int64_t cols)
{
    return (Part){t, goff, C, 0, R, col0, cols};
}

/* Advances the tp = 1 layout cursor as take() would for the whole model. */
static int64_t gtake(int64_t *g, int64_t n)
{
    int64_t o = *g;
    *g += align_up(n);
    return o;
}

/* Uploads the weights (this rank's shard when tp > 1: q/k/v rows and biases
 * of its heads, o_proj columns, gate/up rows and down columns of its
 * intermediate block, embedding / lm_head rows of its vocab block, zero rows
 * past the vocabulary; norms whole) into the layout take() carves. Shapes are
 * checked against the whole model's config. */
static SglStatus upload_weights(CudaRunner *r, const SglModel *m, SglErr *err)
{
    const SglModelConfig *c = &m->cfg;
    const Plan *p = &r->p;
    const SglTpShard *sh = &p->sh;
    int64_t H = p->hidden, I = p->inter, hd = c->head_dim;
    /* whole-model sizes (the checkpoint's shapes) */
    int64_t gq = (int64_t)c->n_heads * hd, gkv = (int64_t)c->n_kv_heads * hd, gI = c->intermediate_size;
    int64_t V = p->vocab, g = 0;
    SglStatus st = SGL_OK;
    Upload u = {r, NULL, 0, err, m->dummy_seed, NULL, 0};
    /* the largest single tensor bounds the staging buffer */
    int64_t big = V * H;
    if (gq * H > big) big = gq * H;
    if (gI * H > big) big = gI * H;
    if ((gq + 2 * gkv) * 2 > big) big = (gq + 2 * gkv) * 2;
    u.stage_elems = big;
    u.stage = malloc((size_t)big * 2);
    if (!u.stage) return sgl_err(err, SGL_E_NOMEM, "cuda runner: no host memory for weight staging");

    char *cur = r->weights_d;
    char msg[400];
    int64_t pad_rows = p->vocab_rows - sh->n_vocab; /* lm_head rows past the vocabulary: zero logits, dropped */
    r->embed_d = take(&cur, p->vocab_rows * H * 2);
    int64_t g_embed = gtake(&g, V * H * 2);
    Part pt = row_part(&m->embed, g_embed, H, sh->vocab0, sh->n_vocab);
    if ((st = check_shape(m, &m->embed, "embed_tokens", -1, V, H, err)) ||
        (sh->n_vocab > 0 && (st = upload_bf16(&u, &pt, r->embed_d))))
        goto out;
    if (pad_rows > 0 && SGL_CUDA_REPORT(cudaMemset(r->embed_d + sh->n_vocab * H, 0, (size_t)(pad_rows * H * 2)),
                                        msg, sizeof msg)) {
        st = sgl_err(err, SGL_E_DEVICE, "cuda runner: %s", msg);
        goto out;
    }
    if (c->tie_word_embeddings || (!m->dummy_shapes && m->lm_head.data == m->embed.data)) {
        r->lm_head_d = r->embed_d;
    } else {
        r->lm_head_d = take(&cur, p->vocab_rows * H * 2);
        pt = row_part(&m->lm_head, gtake(&g, V * H * 2), H, sh->vocab0, sh->n_vocab);
        if ((st = check_shape(m, &m->lm_head, "lm_head", -1, V, H, err)) ||
            (sh->n_vocab > 0 && (st = upload_bf16(&u, &pt, r->lm_head_d))))
            goto out;
        if (pad_rows > 0 && SGL_CUDA_REPORT(cudaMemset(r->lm_head_d + sh->n_vocab * H, 0,
                                                       (size_t)(pad_rows * H * 2)), msg, sizeof msg)) {
            st = sgl_err(err, SGL_E_DEVICE, "cuda runner: %s", msg);
            goto out;
        }
    }
    r->final_norm_d = take(&cur, H * 2);
    pt = whole(&m->final_norm, gtake(&g, H * 2), H);
    if ((st = check_shape(m, &m->final_norm, "norm", -1, H, 0, err)) ||
        (st = upload_bf16(&u, &pt, r->final_norm_d)))
        goto out;
    int64_t q0 = (int64_t)sh->head0 * hd, kv0 = (int64_t)sh->kv_head0 * hd;
    for (int l = 0; l < c->n_layers; l++) {
        const SglLayerWeights *w = &m->layers[l];
        CuLayer *d = &r->layers[l];
        d->wqkv = take(&cur, p->qkv_dim * H * 2);
        d->wo = take(&cur, H * p->q_dim * 2);
        d->attn_norm = take(&cur, H * 2);
        d->mlp_norm = take(&cur, H * 2);
        d->wgu = take(&cur, 2 * I * H * 2);
        d->wdown = take(&cur, H * I * 2);
        int64_t g_qkv = gtake(&g, (gq + 2 * gkv) * H * 2), g_wo = gtake(&g, H * gq * 2);
        int64_t g_an = gtake(&g, H * 2), g_mn = gtake(&g, H * 2);
        int64_t g_gu = gtake(&g, 2 * gI * H * 2), g_down = gtake(&g, H * gI * 2);
        Part pq = row_part(&w->wq, g_qkv, H, q0, p->q_dim);
        Part pk = row_part(&w->wk, g_qkv + gq * H * 2, H, kv0, p->kv_dim);
        Part pv = row_part(&w->wv, g_qkv + (gq + gkv) * H * 2, H, kv0, p->kv_dim);
        Part po = col_part(&w->wo, g_wo, H, gq, q0, p->q_dim);
        Part pan = whole(&w->attn_norm, g_an, H), pmn = whole(&w->mlp_norm, g_mn, H);
        Part pg = row_part(&w->w_gate, g_gu, H, sh->inter0, I);
        Part pu = row_part(&w->w_up, g_gu + gI * H * 2, H, sh->inter0, I);
        Part pd = col_part(&w->w_down, g_down, H, gI, sh->inter0, I);
        if ((st = check_shape(m, &w->wq, "q_proj", l, gq, H, err)) ||
            (st = check_shape(m, &w->wk, "k_proj", l, gkv, H, err)) ||
            (st = check_shape(m, &w->wv, "v_proj", l, gkv, H, err)) ||
            (st = check_shape(m, &w->wo, "o_proj", l, H, gq, err)) ||
            (st = check_shape(m, &w->attn_norm, "input_layernorm", l, H, 0, err)) ||
            (st = check_shape(m, &w->mlp_norm, "post_attention_layernorm", l, H, 0, err)) ||
            (st = check_shape(m, &w->w_gate, "gate_proj", l, gI, H, err)) ||
            (st = check_shape(m, &w->w_up, "up_proj", l, gI, H, err)) ||
            (st = check_shape(m, &w->w_down, "down_proj", l, H, gI, err)) ||
            (st = upload_bf16(&u, &pq, d->wqkv)) ||
            (st = upload_bf16(&u, &pk, d->wqkv + p->q_dim * H)) ||
            (st = upload_bf16(&u, &pv, d->wqkv + (p->q_dim + p->kv_dim) * H)) ||
            (st = upload_bf16(&u, &po, d->wo)) ||
            (st = upload_bf16(&u, &pan, d->attn_norm)) ||
            (st = upload_bf16(&u, &pmn, d->mlp_norm)) ||
            (st = upload_bf16(&u, &pg, d->wgu)) ||
            (st = upload_bf16(&u, &pu, d->wgu + I * H)) ||
            (st = upload_bf16(&u, &pd, d->wdown)))
            goto out;
        d->bqkv = NULL;
        if (c->qkv_bias) {
            d->bqkv = take(&cur, p->qkv_dim * 4);
            int64_t g_b = gtake(&g, (gq + 2 * gkv) * 4);
            Part bq = row_part(&w->bq, g_b, 1, q0, p->q_dim);
            Part bk = row_part(&w->bk, g_b + gq * 4, 1, kv0, p->kv_dim);
            Part bv = row_part(&w->bv, g_b + (gq + gkv) * 4, 1, kv0, p->kv_dim);
            if ((st = check_shape(m, &w->bq, "q_proj.bias", l, gq, 0, err)) ||
                (st = check_shape(m, &w->bk, "k_proj.bias", l, gkv, 0, err)) ||
                (st = check_shape(m, &w->bv, "v_proj.bias", l, gkv, 0, err)) ||
                (st = upload_f32(&u, &bq, d->bqkv)) ||
                (st = upload_f32(&u, &bk, d->bqkv + p->q_dim)) ||
                (st = upload_f32(&u, &bv, d->bqkv + p->q_dim + p->kv_dim)))
                goto out;
        }
    }
    {
        float inv[SGL_K_MAX_HEAD_DIM / 2];
        bool llama3 = c->rope_type == SGL_ROPE_LLAMA3;
        sgl_rope_inv_freq(c->head_dim, c->rope_theta, llama3 ? c->rope_factor : 0,
                          c->rope_low_freq_factor, c->rope_high_freq_factor,
                          c->rope_original_max_pos, inv);
        r->inv_freq_d = take(&cur, c->head_dim / 2 * 4);
        if (SGL_CUDA_REPORT(cudaMemcpy(r->inv_freq_d, inv, (size_t)c->head_dim / 2 * 4,
                                       cudaMemcpyHostToDevice), msg, sizeof msg))
            st = sgl_err(err, SGL_E_DEVICE, "cuda runner: %s", msg);
    }
out:
    if (u.scratch_d) { /* the fills and copies from it are queued on the stream */
        cudaStreamSynchronize(r->stream);
        cudaFree(u.scratch_d);
    }
    free(u.stage);
    return st;
}

static void async_free(CudaRunner *r);

static void cuda_free(SglRunner *base)
{
    CudaRunner *r = (CudaRunner *)base;
    if (!r) return;
    /* teardown: errors here cannot be acted on, so they are not reported */
    if (r->p.tp > 1) cudaSetDevice(r->base.opts.device_id);
    if (r->stream) cudaStreamSynchronize(r->stream);
    for (int k = 0; k < LOGIT_PIPE; k++)
        if (r->pipe_ev[k]) cudaEventDestroy(r->pipe_ev[k]);
    if (r->graphs)
        for (int i = 0; i <= r->graph_max_bs; i++)
            if (r->graphs[i]) cudaGraphExecDestroy(r->graphs[i]);
    free(r->graphs);
    gemm_lt_free(r->lt);
    if (r->blas) cublasDestroy(r->blas);
    if (r->stream) cudaStreamDestroy(r->stream);
    cudaFree(r->weights_d);
    cudaFree(r->kv_d);
    cudaFree(r->work_d);
    cudaFreeHost(r->meta_h);
    free(r->perm_h);
    cudaFreeHost(r->logits_h);
    cudaFree(r->samp_d);
    cudaFreeHost(r->samp_h);
    async_free(r);
    free(r->layers);
    free(r);
}

/* Maps a launcher's int result to a status. */
static SglStatus kcheck(int rc, const char *op, int layer, SglErr *err)
{
    if (rc == 0) return SGL_OK;
    if (rc == SGL_K_EINVAL)
        return sgl_err(err, SGL_E_INVAL, "cuda runner: %s (layer %d): shape rejected by kernel", op, layer);
    return sgl_err(err, SGL_E_DEVICE, "cuda runner: %s (layer %d): %s: %s", op, layer,
                   cudaGetErrorName((cudaError_t)rc), cudaGetErrorString((cudaError_t)rc));
}

/* Y (n, out) [+]= X (n, in) W^T with W (out, in) row-major: in cuBLAS's
 * column-major terms Y^T = op_T(W) X^T. bf16 inputs, fp32 output and compute. */
static SglStatus gemm(CudaRunner *r, const uint16_t *X, const uint16_t *W, float *Y, int64_t n,
                      int64_t in, int64_t out, float beta, const char *what, SglErr *err)
{
    if (r->use_gemv && n <= GEMV_ROWS && in % 8 == 0)
        return kcheck(sgl_k_gemv(X, W, Y, (int)n, (int)in, (int)out, beta, r->stream), what, -1, err);
    int bad = 0;
    if (r->lt && gemm_lt_run(r->lt, X, W, Y, (int)n, (int)in, (int)out, beta, &bad)) return SGL_OK;
    if (bad)
        return sgl_err(err, SGL_E_DEVICE, "%s:%d: cublasLtMatmul (%s, %lldx%lldx%lld): %s", __FILE__, __LINE__, what,
                       (long long)n, (long long)in, (long long)out, cublasGetStatusString((cublasStatus_t)bad));
    const float alpha = 1.0f;
    cublasStatus_t s = cublasGemmEx(r->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)out, (int)n, (int)in,
                                    &alpha, W, CUDA_R_16BF, (int)in, X, CUDA_R_16BF, (int)in, &beta,
                                    Y, CUDA_R_32F, (int)out, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    if (s != CUBLAS_STATUS_SUCCESS)
        return sgl_err(err, SGL_E_DEVICE, "%s:%d: cublasGemmEx (%s, %lldx%lldx%lld): %s", __FILE__,
                       __LINE__, what, (long long)n, (long long)in, (long long)out,
                       cublasGetStatusString(s));
    return SGL_OK;
}

/* Checks the batch against the contract and the creation sizes and packs its
 * metadata into meta_h. Touches no device state.
 *   A mixed batch (decode sequences and prefill chunks) is packed with the
 * decode tokens first (*n_dec of them; perm_h maps batch token -> packed
 * row; logit rows follow it): their attention runs in the decode kernel, the
 * prefill tiles cover only the other tokens. Everything else in the forward
 * is per token, so the order does not matter to it. In the prefill kernel a
 * decode row would be a one-row tile that reads the sequence's K/V once per
 * query head, several times the decode kernel's traffic (measured: a batch
 * of ~220 decodes at ~2.2k context with a prefill chunk took ~140 ms). */
static SglStatus pack_batch(CudaRunner *r, const SglBatch *b, int *n_tiles, int *max_kv,
                            bool *decode_only, int *n_dec, int64_t *n_entries, SglErr *err)
{
    const Plan *p = &r->p;
    int n = b->n_tokens;
    if (b->n_seqs < 0 || b->n_seqs > r->base.opts.max_seqs || n < 0 || n > p->T ||
        b->n_logits < 0 || b->n_logits > n)
        return sgl_err(err, SGL_E_INVAL,
                       "cuda runner: batch of %d seqs / %d tokens / %d logit rows exceeds the "
                       "creation sizes (%d seqs, %lld tokens)",
                       b->n_seqs, n, b->n_logits, r->base.opts.max_seqs, (long long)p->T);
    if (b->seq_off[0] != 0 || b->seq_off[b->n_seqs] != n)
        return sgl_err(err, SGL_E_INVAL, "cuda runner: seq_off must run from 0 to n_tokens (%d)", n);
    /* packed layout; cuda_forward derives the device pointers the same way */
    int32_t *tok = r->meta_h, *pos = tok + n, *base = pos + n, *store = base + n;
    int32_t *tiles = store + n, *tlen = tiles + n, *lrows = tlen + n;
    int32_t *slots = lrows + b->n_logits;
    int64_t off = 0;
    int nt = 0, mk = 1, nd = 0;
    bool dec = true;
    for (int s = 0; s < b->n_seqs; s++) {
        int t0 = b->seq_off[s], t1 = b->seq_off[s + 1];
        if (t1 - t0 > 1) dec = false;
        else if (t1 - t0 == 1) nd++;
    }
    /* packed row of each token: identity unless mixed */
    int next_dec = 0, next_pre = dec ? 0 : nd;
    if (dec) nd = 0;
    for (int s = 0; s < b->n_seqs; s++) {
        int t0 = b->seq_off[s], t1 = b->seq_off[s + 1];
        if (t1 < t0 || t0 < 0 || t1 > n)
            return sgl_err(err, SGL_E_INVAL, "cuda runner: sequence %d: seq_off %d..%d not within 0..%d",
                           s, t0, t1, n);
        for (int t = t0; t < t1; t++)
            r->perm_h[t] = nd > 0 && t1 - t0 == 1 ? next_dec++ : next_pre++;
    }
    for (int s = 0; s < b->n_seqs; s++) {
        int t0 = b->seq_off[s], t1 = b->seq_off[s + 1], kv = b->kv_len[s];
        int64_t so = b->slot_off[s];
        if (t1 < t0 || kv < t1 - t0 || so < 0 || b->slot_off[s + 1] < so + kv)
            return sgl_err(err, SGL_E_INVAL, "cuda runner: sequence %d: inconsistent offsets "
                           "(tokens %d..%d, kv_len %d, slots %lld..%lld)", s, t0, t1, kv,
                           (long long)so, (long long)b->slot_off[s + 1]);
        if (off + kv > p->slots_cap)
            return sgl_err(err, SGL_E_INVAL, "cuda runner: batch uses more than %lld KV slot "
                           "entries (the capacity set at creation)", (long long)p->slots_cap);
        for (int j = 0; j < kv; j++) {
            int32_t sl = b->slots[so + j];
            if (sl < 0 || sl >= r->base.opts.n_slots)
                return sgl_err(err, SGL_E_INVAL, "cuda runner: sequence %d: slot %d out of range "
                               "[0, %lld)", s, sl, (long long)r->base.opts.n_slots);
            slots[off + j] = sl;
        }
        int first = kv - (t1 - t0);
        for (int t = t0; t < t1; t++) {
            if (b->positions[t] != first + (t - t0))
                return sgl_err(err, SGL_E_INVAL, "cuda runner: token %d: position %d, expected %d "
                               "(kv_len - n_new + index)", t, b->positions[t], first + (t - t0));
            int u = r->perm_h[t];
            tok[u] = b->tokens[t];
            pos[u] = b->positions[t];
            base[u] = (int32_t)off;
            store[u] = slots[off + b->positions[t]];
        }
        if (!(nd > 0 && t1 - t0 == 1)) /* mixed: the decode kernel takes the decode rows */
            for (int t = t0; t < t1; t += r->prefill_tile) {
                tiles[nt] = r->perm_h[t];
                tlen[nt++] = t1 - t < r->prefill_tile ? t1 - t : r->prefill_tile;
            }
        if (t1 > t0 && kv > mk) mk = kv;
        off += kv;
    }
    for (int i = 0; i < b->n_logits; i++) {
        if (b->logit_rows[i] < 0 || b->logit_rows[i] >= n)
            return sgl_err(err, SGL_E_INVAL, "cuda runner: logit_rows[%d] = %d outside the batch "
                           "(%d tokens)", i, b->logit_rows[i], n);
        lrows[i] = r->perm_h[b->logit_rows[i]];
    }
    *n_tiles = nt;
    *n_dec = nd;
    *max_kv = mk;
    *decode_only = dec;
    *n_entries = off;
    return SGL_OK;
}

static const SglRunnerOps cuda_ops;

/* One forward's launch parameters: the device metadata pointers (packed by
 * pack_batch, uploaded to meta_d) and the attention choice. For a replayed
 * graph they must depend on n alone: n_logits == n and max_kv = the creation
 * cap, which the decode kernel's split count ignores (each token cuts its own
 * keys on the device). */
typedef struct {
    int n, n_logits, n_tiles, max_kv;
    bool decode_only;
    int n_dec;                        /* mixed batch: rows 0..n_dec-1 are decodes (pack_batch) */
    const int32_t *tok_d, *pos_d, *base_d, *store_d, *tiles_d, *tlen_d, *lrows_d, *slots_d;
} Fwd;

static Fwd make_fwd(const CudaRunner *r, int n, int n_logits, int n_tiles, int max_kv, bool dec)
{
    Fwd f = {n, n_logits, n_tiles, max_kv, dec, 0, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    f.tok_d = r->meta_d;
    f.pos_d = f.tok_d + n;
    f.base_d = f.pos_d + n;
    f.store_d = f.base_d + n;
    f.tiles_d = f.store_d + n;
    f.tlen_d = f.tiles_d + n;
    f.lrows_d = f.tlen_d + n;
    f.slots_d = f.lrows_d + n_logits;
    return f;
}

/* Sums buf (n floats) over the ranks in place, on the stream (tp 1: nothing). */
static SglStatus tp_all_reduce(CudaRunner *r, float *buf, int64_t n, SglErr *err)
{
    if (r->p.tp == 1) return SGL_OK;
    return r->comm->ops->all_reduce_sum(r->comm, buf, n, SGL_COMM_F32, r->stream, err);
}

/* A runner of a tensor-parallel group is called from its rank's worker
 * thread: each call first makes the runner's device current there. */
static SglStatus use_device(CudaRunner *r, SglErr *err)
{
    char msg[400];
    if (r->p.tp > 1 && SGL_CUDA_REPORT(cudaSetDevice(r->base.opts.device_id), msg, sizeof msg))
        return sgl_err(err, SGL_E_DEVICE, "cuda runner: %s", msg);
    return SGL_OK;
}

/* Enqueues the embedding and every layer on the stream (no sync). */
static SglStatus enqueue_layers(CudaRunner *r, const Fwd *f, SglErr *err)
{
    const Plan *p = &r->p;
    cudaStream_t s = r->stream;
    int n = f->n;
    int64_t H = p->hidden, I = p->inter;
    SglStatus st;
    if (p->tp > 1) /* vocab-parallel: rows of other ranks' blocks are zeros until the sum */
        st = kcheck(sgl_k_embedding_range(r->embed_d, (int)p->sh.vocab0, (int)p->sh.n_vocab, (int)H, f->tok_d,
                                          n, r->x_d, s), "embedding", -1, err);
    else
        st = kcheck(sgl_k_embedding(r->embed_d, (int)p->vocab, (int)H, f->tok_d, n, r->x_d, s),
                    "embedding", -1, err);
    if (st || (st = tp_all_reduce(r, r->x_d, n * H, err)))
        return st;
    /* o_proj and down are row-parallel: each rank's product is a partial sum.
     * The residual x (the same on every rank) is added by rank 0 only, so the
     * all-reduce of x gives x + the whole product (tp 1: beta 1, no reduce). */
    float rbeta = r->base.opts.tp.rank == 0 || p->tp == 1 ? 1.0f : 0.0f;
    bool few = r->fuse && r->use_gemv && n <= GEMV_ROWS; /* decode at batch 1-2: norm_gemv */
    for (int l = 0; l < r->n_layers; l++) {
        const CuLayer *w = &r->layers[l];
        int64_t pool_off = (int64_t)l * r->base.opts.n_slots * p->kv_dim;
        SglAttnArgs a = {r->big_d, (int)p->qkv_dim, r->k_pool_d + pool_off, r->v_pool_d + pool_off,
                         f->slots_d, f->base_d, f->pos_d, n, r->n_heads, r->n_kv, r->hd,
                         1.0f / sqrtf((float)r->hd), r->mid_d};
        if (few) /* norm fused into the product */
            st = kcheck(sgl_k_norm_gemv(r->x_d, NULL, w->attn_norm, r->eps, n, (int)H, w->wqkv, (int)p->qkv_dim,
                                        r->big_d, NULL, s), "norm_qkv", l, err);
        else if (!(st = kcheck(sgl_k_rmsnorm(r->x_d, NULL, w->attn_norm, (int)H, r->eps, NULL, n, r->xn_d, s),
                               "rmsnorm", l, err)))
            st = gemm(r, r->xn_d, w->wqkv, r->big_d, n, H, p->qkv_dim, 0.0f, "qkv", err);
        if (st) return st;
        if (r->fuse) /* bias + rope + KV store in one pass */
            st = kcheck(sgl_k_rope_kv_store(r->big_d, (int)p->qkv_dim, n, r->n_heads, r->n_kv, r->hd, w->bqkv,
                                            f->pos_d, r->inv_freq_d, f->store_d, r->base.opts.n_slots,
                                            r->k_pool_d + pool_off, r->v_pool_d + pool_off, s), "rope_kv_store", l, err);
        else if (!(st = kcheck(sgl_k_rope(r->big_d, (int)p->qkv_dim, n, r->n_heads, r->n_kv, r->hd, w->bqkv,
                                          f->pos_d, r->inv_freq_d, s), "rope", l, err)))
            st = kcheck(sgl_k_kv_store(r->big_d, (int)p->qkv_dim, n, (int)p->q_dim,
                                       (int)(p->q_dim + p->kv_dim), (int)p->kv_dim, f->store_d,
                                       r->base.opts.n_slots, r->k_pool_d + pool_off,
                                       r->v_pool_d + pool_off, s), "kv_store", l, err);
        if (st) return st;
        if (f->decode_only) {
            st = kcheck(sgl_k_attn_decode(&a, f->max_kv, r->attn_ws_d, p->ws_floats, s), "attn_decode", l, err);
        } else {
            SglAttnArgs ad = a;
            ad.n = f->n_dec;
            if (f->n_dec > 0)
                st = kcheck(sgl_k_attn_decode(&ad, f->max_kv, r->attn_ws_d, p->ws_floats, s), "attn_decode", l, err);
            if (!st && f->n_tiles > 0)
                st = kcheck(sgl_k_attn_prefill(&a, f->tiles_d, f->tlen_d, f->n_tiles, s), "attn_prefill", l, err);
        }
        if (st ||
            (st = gemm(r, r->mid_d, w->wo, r->x_d, n, p->q_dim, H, rbeta, "o_proj", err)) ||
            (st = tp_all_reduce(r, r->x_d, n * H, err)))
            return st;
        if (few) /* norm and SiLU-mul fused into the gate|up product: act straight to mid_d */
            st = kcheck(sgl_k_norm_gemv(r->x_d, NULL, w->mlp_norm, r->eps, n, (int)H, w->wgu, (int)(2 * I), NULL,
                                        r->mid_d, s), "norm_gate_up_silu", l, err);
        else if (!(st = kcheck(sgl_k_rmsnorm(r->x_d, NULL, w->mlp_norm, (int)H, r->eps, NULL, n, r->xn_d, s),
                               "rmsnorm", l, err)) &&
                 !(st = gemm(r, r->xn_d, w->wgu, r->big_d, n, H, 2 * I, 0.0f, "gate_up", err)))
            st = kcheck(sgl_k_silu_mul(r->big_d, n, (int)I, r->mid_d, s), "silu_mul", l, err);
        if (st ||
            (st = gemm(r, r->mid_d, w->wdown, r->x_d, n, I, H, rbeta, "down", err)) ||
            (st = tp_all_reduce(r, r->x_d, n * H, err)))
            return st;
    }
    return SGL_OK;
}

/* Enqueues the final norm and lm_head for logit rows [c0, c0 + nc) into logits_d. */
static SglStatus enqueue_logits(CudaRunner *r, const Fwd *f, int c0, int nc, SglErr *err)
{
    const Plan *p = &r->p;
    SglStatus st;
    if (p->tp == 1 && r->fuse && r->use_gemv && nc <= GEMV_ROWS) /* final norm fused into lm_head */
        return kcheck(sgl_k_norm_gemv(r->x_d, f->lrows_d + c0, r->final_norm_d, r->eps, nc, (int)p->hidden,
                                      r->lm_head_d, (int)p->vocab, r->logits_d, NULL, r->stream),
                      "norm_lm_head", -1, err);
    if ((st = kcheck(sgl_k_rmsnorm(r->x_d, NULL, r->final_norm_d, (int)p->hidden, r->eps, f->lrows_d + c0,
                                   nc, r->lnorm_d, r->stream), "final norm", -1, err)))
        return st;
    if (p->tp == 1)
        return gemm(r, r->lnorm_d, r->lm_head_d, r->logits_d, nc, p->hidden, p->vocab, 0.0f, "lm_head", err);
    /* vocab-parallel lm_head: (nc, vocab_rows) here, all-gathered to
     * (tp, nc, vocab_rows), then each rank's block copied into its columns
     * of (nc, vocab), the zero rows past the vocabulary left out */
    int64_t vb = p->vocab_rows;
    if ((st = gemm(r, r->lnorm_d, r->lm_head_d, r->tp_logits_d, nc, p->hidden, vb, 0.0f, "lm_head", err)) ||
        (st = r->comm->ops->all_gather(r->comm, r->tp_logits_d, r->tp_gather_d, nc * vb, SGL_COMM_F32, r->stream,
                                       err)))
        return st;
    for (int q = 0; q < p->tp; q++) {
        int64_t v0 = q * vb, w = p->vocab - v0 < vb ? p->vocab - v0 : vb;
        char msg[400];
        if (w > 0 && SGL_CUDA_REPORT(cudaMemcpy2DAsync(r->logits_d + v0, (size_t)p->vocab * 4,
                                                       r->tp_gather_d + (int64_t)q * nc * vb, (size_t)vb * 4,
                                                       (size_t)w * 4, (size_t)nc, cudaMemcpyDeviceToDevice,
                                                       r->stream), msg, sizeof msg))
            return sgl_err(err, SGL_E_DEVICE, "cuda runner: logits re-layout: %s", msg);
    }
    return SGL_OK;
}

/* Picks the cuBLASLt algorithm of each product of a decode step of n rows
 * (gemm_lt_tune: timed on layer 0's weights) the first time n is seen. Runs
 * before the step's kernels: the buffers it scribbles on (xn, mid, big, x,
 * lnorm, logits) hold nothing live then (the embedding rewrites x). */
static SglStatus lt_tune_batch(CudaRunner *r, int n, SglErr *err)
{
    const Plan *p = &r->p;
    const CuLayer *w = &r->layers[0];
    int64_t H = p->hidden, I = p->inter;
    float rbeta = r->base.opts.tp.rank == 0 || p->tp == 1 ? 1.0f : 0.0f;
    if (!r->lt || (r->use_gemv && n <= GEMV_ROWS)) return SGL_OK;
    SglStatus st;
    if ((st = gemm_lt_tune(r->lt, r->xn_d, w->wqkv, r->big_d, n, (int)H, (int)p->qkv_dim, 0.0f, err)) ||
        (st = gemm_lt_tune(r->lt, r->mid_d, w->wo, r->x_d, n, (int)p->q_dim, (int)H, rbeta, err)) ||
        (st = gemm_lt_tune(r->lt, r->xn_d, w->wgu, r->big_d, n, (int)H, (int)(2 * I), 0.0f, err)) ||
        (st = gemm_lt_tune(r->lt, r->mid_d, w->wdown, r->x_d, n, (int)I, (int)H, rbeta, err)))
        return st;
    if (n > p->logit_chunk) return SGL_OK;
    return p->tp == 1 ? gemm_lt_tune(r->lt, r->lnorm_d, r->lm_head_d, r->logits_d, n, (int)H, (int)p->vocab, 0.0f, err)
                      : gemm_lt_tune(r->lt, r->lnorm_d, r->lm_head_d, r->tp_logits_d, n, (int)H, (int)p->vocab_rows,
                                     0.0f, err);
}

/* Captures the decode forward for batch size n into r->graphs[n]. */
static SglStatus capture_graph(CudaRunner *r, const Fwd *f, SglErr *err)
{
    char msg[400];
    cudaGraph_t g = NULL;
    SglStatus st = SGL_OK;
    if (SGL_CUDA_REPORT(cudaStreamBeginCapture(r->stream, cudaStreamCaptureModeThreadLocal), msg,
                        sizeof msg))
        return sgl_err(err, SGL_E_DEVICE, "cuda runner: graph capture: %s", msg);
    SglStatus est = enqueue_layers(r, f, err);
    if (est == SGL_OK) est = enqueue_logits(r, f, 0, f->n_logits, err);
    cudaError_t ce = cudaStreamEndCapture(r->stream, &g);
    if (est != SGL_OK) {
        st = est;
    } else if (SGL_CUDA_REPORT(ce, msg, sizeof msg) ||
               SGL_CUDA_REPORT(cudaGraphInstantiate(&r->graphs[f->n], g, 0), msg, sizeof msg)) {
        r->graphs[f->n] = NULL;
        st = sgl_err(err, SGL_E_DEVICE, "cuda runner: graph capture (batch %d): %s", f->n, msg);
    }
    if (g) cudaGraphDestroy(g);
    return st;
}

/* cuda_begin: tokens t < 0 take the id the previous batch sampled for row
 * -(t+1), copied on the stream into the uploaded tokens (meta_d[0, n)); runs
 * of consecutive rows go in one copy (a decode batch is usually one run). */
static SglStatus resolve_placeholders(CudaRunner *r, const SglBatch *b, SglErr *err)
{
    char msg[400];
    for (int i = 0; i < b->n_tokens;) {
        if (b->tokens[i] >= 0) {
            i++;
            continue;
        }
        int j0 = -b->tokens[i] - 1, len = 1;
        while (i + len < b->n_tokens && b->tokens[i + len] == -(j0 + len) - 1 &&
               r->perm_h[i + len] == r->perm_h[i] + len) /* rows packed as pack_batch did */
            len++;
        if (SGL_CUDA_REPORT(cudaMemcpyAsync(r->meta_d + r->perm_h[i], r->samp_ids_d + j0, (size_t)len * 4,
                                            cudaMemcpyDeviceToDevice, r->stream), msg, sizeof msg))
            return sgl_err(err, SGL_E_DEVICE, "cuda runner: %s", msg);
        i += len;
    }
    return SGL_OK;
}

/* Packs and uploads the batch, then enqueues its layers (or replays the
 * decode graph, which also computes every row's logits: *graph true). */
static SglStatus launch_forward(CudaRunner *r, const SglBatch *b, Fwd *f, bool *graph, SglErr *err)
{
    const Plan *p = &r->p;
    int n_tiles = 0, max_kv = 1;
    bool decode_only = false;
    int n_dec = 0;
    int64_t n_entries = 0;
    SglStatus st = pack_batch(r, b, &n_tiles, &max_kv, &decode_only, &n_dec, &n_entries, err);
    if (st) return st;
    int n = b->n_tokens;
    *graph = false;
    f->n = 0;
    if (n == 0) return SGL_OK; /* f->n 0: nothing enqueued */
    cudaStream_t s = r->stream;
    char msg[400];
    /* tokens, positions, slot_base, store_slot, tiles, tile_len (n each),
     * logit_rows (n_logits), slots (n_entries): as packed by pack_batch */
    size_t meta_bytes = (size_t)(6 * (int64_t)n + b->n_logits + n_entries) * 4;
    if (SGL_CUDA_REPORT(cudaMemcpyAsync(r->meta_d, r->meta_h, meta_bytes, cudaMemcpyHostToDevice, s),
                        msg, sizeof msg))
        return sgl_err(err, SGL_E_DEVICE, "cuda runner: %s", msg);
    if (r->async_resolve && (st = resolve_placeholders(r, b, err)))
        return st;
    if (decode_only && (st = lt_tune_batch(r, n, err))) /* once per batch size */
        return st;
    *graph = r->graphs_on && decode_only && n <= r->graph_max_bs && b->n_logits == n && n <= p->logit_chunk;
    *f = make_fwd(r, n, b->n_logits, n_tiles, *graph ? (int)p->per_seq : max_kv, decode_only);
    f->n_dec = n_dec;
    if (*graph) {
        if (!r->graphs[n] && (st = capture_graph(r, f, err)))
            return st;
        if (SGL_CUDA_REPORT(cudaGraphLaunch(r->graphs[n], s), msg, sizeof msg))
            return sgl_err(err, SGL_E_DEVICE, "cuda runner: graph launch (batch %d): %s", n, msg);
        r->n_graph_replays++;
        return SGL_OK;
    }
    return enqueue_layers(r, f, err);
}

static SglStatus cuda_forward(SglRunner *base, const SglBatch *b, float *logits, SglErr *err)
{
    CudaRunner *r = (CudaRunner *)base;
    const Plan *p = &r->p;
    cudaStream_t s = r->stream;
    char msg[400];
    Fwd f;
    bool graph = false;
    SglStatus st = use_device(r, err);
    if (st == SGL_OK) st = launch_forward(r, b, &f, &graph, err);
    if (st || f.n == 0) return st;
    int c0 = 0;
    for (; c0 < b->n_logits; c0 += (int)p->logit_chunk) {
        int nc = b->n_logits - c0 < p->logit_chunk ? b->n_logits - c0 : (int)p->logit_chunk;
        if (!graph && (st = enqueue_logits(r, &f, c0, nc, err)))
            return st;
        /* pipelined: the copy of piece k+1 to pinned memory runs while the
         * host copies piece k out (at batch 64 x 128k vocab both take ms) */
        int per = (nc + LOGIT_PIPE - 1) / LOGIT_PIPE, n_pieces = (nc + per - 1) / per;
        for (int k = 0; k < n_pieces; k++) {
            int r0 = k * per, rn = nc - r0 < per ? nc - r0 : per;
            size_t off = (size_t)r0 * p->vocab, bytes = (size_t)rn * p->vocab * 4;
            if (SGL_CUDA_REPORT(cudaMemcpyAsync(r->logits_h + off, r->logits_d + off, bytes,
                                                cudaMemcpyDeviceToHost, s), msg, sizeof msg) ||
                SGL_CUDA_REPORT(cudaEventRecord(r->pipe_ev[k], s), msg, sizeof msg))
                return sgl_err(err, SGL_E_DEVICE, "cuda runner: %s", msg);
        }
        for (int k = 0; k < n_pieces; k++) {
            int r0 = k * per, rn = nc - r0 < per ? nc - r0 : per;
            size_t off = (size_t)r0 * p->vocab, bytes = (size_t)rn * p->vocab * 4;
            if (SGL_CUDA_REPORT(cudaEventSynchronize(r->pipe_ev[k]), msg, sizeof msg))
                return sgl_err(err, SGL_E_DEVICE, "cuda runner: %s", msg);
            memcpy(logits + (int64_t)c0 * p->vocab + (int64_t)off, r->logits_h + off, bytes);
        }
    }
    /* without logit rows, still finish the step so the KV writes are complete */
    if (SGL_CUDA_REPORT(cudaStreamSynchronize(s), msg, sizeof msg))
        return sgl_err(err, SGL_E_DEVICE, "cuda runner: %s", msg);
    return SGL_OK;
}

/* forward + sgl_k_sample on the device: only ids (and log-probs) come back. */
static SglStatus cuda_forward_sample(SglRunner *base, const SglBatch *b, const SglRowSampling *rows,
                                     const uint32_t *masks, int32_t *ids, float *logprobs, SglErr *err)
{
    CudaRunner *r = (CudaRunner *)base;
    const Plan *p = &r->p;
    if (b->n_logits > p->logit_chunk)
        return sgl_err(err, SGL_E_UNSUPPORTED, "cuda runner: %d logit rows exceed the %lld sampled "
                       "in one pass", b->n_logits, (long long)p->logit_chunk);
    cudaStream_t s = r->stream;
    char msg[400];
    Fwd f;
    bool graph = false;
    SglStatus st = use_device(r, err);
    if (st == SGL_OK) st = launch_forward(r, b, &f, &graph, err);
    if (st || f.n == 0) return st;
    int nl = b->n_logits, words = (int)((p->vocab + 31) / 32);
    bool any_mask = false;
    for (int i = 0; i < nl; i++) {
        SglKSampleRow *k = &r->samp_rows_h[i];
        k->seed = rows[i].seed;
        k->step = rows[i].step;
        k->temperature = rows[i].temperature;
        k->top_k = rows[i].top_k;
        k->top_p = rows[i].top_p;
        k->min_p = rows[i].min_p;
        k->use_mask = masks && rows[i].use_mask;
        k->want_logprob = rows[i].want_logprob;
        any_mask |= k->use_mask != 0;
    }
    if (any_mask) memcpy(r->samp_masks_h, masks, (size_t)nl * words * 4);
    int rc = 0;
    if (nl > 0) {
        if (!graph && (st = enqueue_logits(r, &f, 0, nl, err)))
            return st;
        if (SGL_CUDA_REPORT(cudaMemcpyAsync(r->samp_rows_d, r->samp_rows_h, (size_t)nl * sizeof *r->samp_rows_h,
                                            cudaMemcpyHostToDevice, s), msg, sizeof msg) ||
            (any_mask && SGL_CUDA_REPORT(cudaMemcpyAsync(r->samp_masks_d, r->samp_masks_h,
                                                         (size_t)nl * words * 4, cudaMemcpyHostToDevice, s),
                                         msg, sizeof msg)))
            return sgl_err(err, SGL_E_DEVICE, "cuda runner: %s", msg);
        rc = sgl_k_sample(r->logits_d, nl, (int)p->vocab, r->samp_rows_d, any_mask ? r->samp_masks_d : NULL,
                          r->samp_ids_d, r->samp_lp_d, s);
        if (rc) return kcheck(rc, "sample", -1, err);
        if (SGL_CUDA_REPORT(cudaMemcpyAsync(r->samp_ids_h, r->samp_ids_d, ((size_t)p->logit_chunk + (size_t)nl) * 4,
                                            cudaMemcpyDeviceToHost, s), msg, sizeof msg))
            return sgl_err(err, SGL_E_DEVICE, "cuda runner: %s", msg);
    }
    if (SGL_CUDA_REPORT(cudaStreamSynchronize(s), msg, sizeof msg))
        return sgl_err(err, SGL_E_DEVICE, "cuda runner: %s", msg);
    memcpy(ids, r->samp_ids_h, (size_t)nl * 4);
    if (logprobs)
        for (int i = 0; i < nl; i++)
            if (rows[i].want_logprob) logprobs[i] = r->samp_lp_h[i];
    return SGL_OK;
}

void sgl_runner_cuda_set_gemv(SglRunner *base, bool on)
{
    if (!base || base->ops != &cuda_ops) return;
    CudaRunner *r = (CudaRunner *)base;
    if (r->use_gemv == on) return;
    r->use_gemv = on;
    if (r->p.tp > 1) cudaSetDevice(r->base.opts.device_id);
    cudaStreamSynchronize(r->stream);
    for (int i = 0; i <= r->graph_max_bs; i++) /* captured with the other choice */
        if (r->graphs[i]) {
            cudaGraphExecDestroy(r->graphs[i]);
            r->graphs[i] = NULL;
        }
}

void sgl_runner_cuda_set_graphs(SglRunner *base, bool on)
{
    if (base && base->ops == &cuda_ops) ((CudaRunner *)base)->graphs_on = on;
}

int64_t sgl_runner_cuda_graph_replays(const SglRunner *base)
{
    return base && base->ops == &cuda_ops ? ((const CudaRunner *)base)->n_graph_replays : 0;
}

/* ---- forward_sample_begin / forward_sample_end ------------------------------
 * The overlap scheduler's pair (runner.h): begin enqueues upload, forward,
 * sampling and the copy of the ids into pinned memory, records an event and
 * returns; end waits on that event. Each of the two job slots has its own
 * pinned meta, sampling rows and ids buffers (allocated by the first begin),
 * so begin N+1 never rewrites what N's copies may still read: slot k is
 * reused by begin N+2 only after end N waited for its event. Placeholder
 * tokens (t < 0: id of row -(t+1) of the previous begun batch) are resolved
 * on the stream by device-to-device copies from samp_ids_d, which the
 * previous batch's sampling wrote and nothing has rewritten since (no
 * forward/forward_sample may run while a batch is outstanding). */

static void async_free(CudaRunner *r)
{
    for (int k = 0; k < 2; k++) {
        if (r->async_ev[k]) cudaEventDestroy(r->async_ev[k]);
        cudaFreeHost(r->async_meta_h[k]);
        cudaFreeHost(r->async_rows_h[k]);
        cudaFreeHost(r->async_out_h[k]);
        r->async_ev[k] = NULL;
        r->async_meta_h[k] = r->async_out_h[k] = NULL;
        r->async_rows_h[k] = NULL;
    }
}

static SglStatus async_init(CudaRunner *r, SglErr *err)
{
    const Plan *p = &r->p;
    char msg[400];
    for (int k = 0; k < 2; k++)
        if (SGL_CUDA_REPORT(cudaHostAlloc((void **)&r->async_meta_h[k], (size_t)p->meta_ints * 4,
                                          cudaHostAllocDefault), msg, sizeof msg) ||
            SGL_CUDA_REPORT(cudaHostAlloc((void **)&r->async_rows_h[k],
                                          (size_t)p->logit_chunk * sizeof(SglKSampleRow), cudaHostAllocDefault),
                            msg, sizeof msg) ||
            SGL_CUDA_REPORT(cudaHostAlloc((void **)&r->async_out_h[k], (size_t)p->logit_chunk * 8,
                                          cudaHostAllocDefault), msg, sizeof msg) ||
            SGL_CUDA_REPORT(cudaEventCreateWithFlags(&r->async_ev[k], cudaEventDisableTiming), msg, sizeof msg)) {
            async_free(r);
            r->async_off = true; /* the synchronous path stays */
            return sgl_err(err, SGL_E_UNSUPPORTED, "cuda runner: async buffers: %s", msg);
        }
    r->async_prev_nl = -1;
    r->async_ready = true;
    return SGL_OK;
}

static SglStatus cuda_begin(SglRunner *base, const SglBatch *b, const SglRowSampling *rows, SglErr *err)
{
    CudaRunner *r = (CudaRunner *)base;
    const Plan *p = &r->p;
    if (r->async_off || p->tp > 1 || b->n_logits > p->logit_chunk)
        return sgl_err(err, SGL_E_UNSUPPORTED, "cuda runner: %d logit rows exceed the %lld sampled in one pass",
                       b->n_logits, (long long)p->logit_chunk);
    if (r->async_n >= 2)
        return sgl_err(err, SGL_E_INVAL, "cuda runner: two batches are already outstanding");
    for (int i = 0; i < b->n_tokens; i++)
        if (b->tokens[i] < 0 && -(int64_t)b->tokens[i] - 1 >= r->async_prev_nl)
            return sgl_err(err, SGL_E_INVAL, "cuda runner: token %d refers to row %lld of the previous batch, "
                           "which has %d", i, -(long long)b->tokens[i] - 1, r->async_prev_nl > 0 ? r->async_prev_nl : 0);
    SglStatus st = use_device(r, err);
    if (st == SGL_OK && !r->async_ready) st = async_init(r, err);
    if (st) return st;
    cudaStream_t s = r->stream;
    char msg[400];
    int k = (r->async_head + r->async_n) % 2, nl = b->n_logits;
    for (int i = 0; i < nl; i++)
        r->async_rows_h[k][i] = (SglKSampleRow){.seed = rows[i].seed, .step = rows[i].step,
                                                .temperature = rows[i].temperature, .top_k = rows[i].top_k,
                                                .top_p = rows[i].top_p, .min_p = rows[i].min_p, .use_mask = 0,
                                                .want_logprob = rows[i].want_logprob};
    /* rows first: the previous batch's sampling, earlier on the stream, has read samp_rows_d */
    if (nl > 0 && SGL_CUDA_REPORT(cudaMemcpyAsync(r->samp_rows_d, r->async_rows_h[k], (size_t)nl * sizeof(SglKSampleRow),
                                                  cudaMemcpyHostToDevice, s), msg, sizeof msg))
        return sgl_err(err, SGL_E_DEVICE, "cuda runner: %s", msg);
    Fwd f;
    bool graph = false;
    int32_t *meta_sync = r->meta_h;
    r->meta_h = r->async_meta_h[k];
    r->async_resolve = true;
    st = launch_forward(r, b, &f, &graph, err);
    r->async_resolve = false;
    r->meta_h = meta_sync;
    if (st) return st;
    if (nl > 0 && f.n > 0) {
        if (!graph && (st = enqueue_logits(r, &f, 0, nl, err)))
            return st;
        int rc = sgl_k_sample(r->logits_d, nl, (int)p->vocab, r->samp_rows_d, NULL, r->samp_ids_d, r->samp_lp_d, s);
        if (rc) return kcheck(rc, "sample", -1, err);
        /* ids [0, logit_chunk) then log-probs: samp_lp_d follows samp_ids_d */
        if (SGL_CUDA_REPORT(cudaMemcpyAsync(r->async_out_h[k], r->samp_ids_d, ((size_t)p->logit_chunk + (size_t)nl) * 4,
                                            cudaMemcpyDeviceToHost, s), msg, sizeof msg))
            return sgl_err(err, SGL_E_DEVICE, "cuda runner: %s", msg);
    }
    if (SGL_CUDA_REPORT(cudaEventRecord(r->async_ev[k], s), msg, sizeof msg))
        return sgl_err(err, SGL_E_DEVICE, "cuda runner: %s", msg);
    r->async_nl[k] = f.n > 0 ? nl : 0;
    r->async_prev_nl = r->async_nl[k];
    r->async_n++;
    return SGL_OK;
}

static SglStatus cuda_end(SglRunner *base, int32_t *ids, float *logprobs, SglErr *err)
{
    CudaRunner *r = (CudaRunner *)base;
    if (r->async_n == 0)
        return sgl_err(err, SGL_E_INVAL, "cuda runner: forward_sample_end without an outstanding batch");
    int k = r->async_head;
    r->async_head = (k + 1) % 2;
    r->async_n--;
    char msg[400];
    SglStatus st = use_device(r, err);
    if (st) return st;
    if (SGL_CUDA_REPORT(cudaEventSynchronize(r->async_ev[k]), msg, sizeof msg))
        return sgl_err(err, SGL_E_DEVICE, "cuda runner: %s", msg);
    int nl = r->async_nl[k];
    memcpy(ids, r->async_out_h[k], (size_t)nl * 4);
    const float *lp = (const float *)(r->async_out_h[k] + r->p.logit_chunk);
    if (logprobs)
        for (int i = 0; i < nl; i++)
            if (r->async_rows_h[k][i].want_logprob) logprobs[i] = lp[i];
    return SGL_OK;
}

static const SglRunnerOps cuda_ops = {"cuda", cuda_forward, cuda_free, cuda_forward_sample, cuda_begin, cuda_end};

SglStatus sgl_runner_cuda_available(SglErr *err)
{
    int n_dev = 0;
    cudaError_t e = cudaGetDeviceCount(&n_dev);
    if (e != cudaSuccess || n_dev == 0)
        return sgl_err(err, SGL_E_DEVICE, "cuda runner: no usable CUDA device (%s)",
                       e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
    return SGL_OK;
}

#define CU_TRY(expr)                                                                   \
    do {                                                                               \
        char m_[400];                                                                  \
        int rc_ = SGL_CUDA_REPORT(expr, m_, sizeof m_);                                \
        if (rc_) {                                                                     \
            st = sgl_err(err, rc_ == cudaErrorMemoryAllocation ? SGL_E_NOMEM : SGL_E_DEVICE, \
                         "cuda runner: %s", m_);                                       \
            goto fail;                                                                 \
        }                                                                              \
    } while (0)

SglStatus sgl_runner_cuda_new(const SglModel *m, const SglRunnerOpts *opts, SglRunner **out,
                              SglErr *err)
{
    SglStatus st = SGL_OK;
    CudaRunner *r = NULL;
    *out = NULL;
    const SglModelConfig *c = &m->cfg;
    if (!opts || opts->n_slots < 1 || opts->n_slots > INT32_MAX || opts->max_batch_tokens < 1 ||
        opts->max_seqs < 1)
        return sgl_err(err, SGL_E_INVAL, "cuda runner: n_slots (1..2^31-1), max_batch_tokens and "
                       "max_seqs must be positive");
    if (c->head_dim <= 0 || (c->head_dim & 1) || c->head_dim > SGL_K_MAX_HEAD_DIM ||
        c->n_kv_heads <= 0 || c->n_heads % c->n_kv_heads)
        return sgl_err(err, SGL_E_UNSUPPORTED, "cuda runner: head_dim %d / %d heads / %d kv heads "
                       "not supported (head_dim even and <= %d, heads a multiple of kv heads)",
                       c->head_dim, c->n_heads, c->n_kv_heads, SGL_K_MAX_HEAD_DIM);
    if ((st = sgl_runner_cuda_available(err))) return st;
    if (opts->tp.size > 1) {
        SglTpShard sh;
        if ((st = sgl_tp_shard(c, opts->tp, &sh, err))) return st;
        if (!opts->comm || opts->comm->size != opts->tp.size || opts->comm->rank != opts->tp.rank)
            return sgl_err(err, SGL_E_INVAL, "cuda runner: tensor-parallel rank %d of %d needs a comm of "
                           "that rank and size", opts->tp.rank, opts->tp.size);
        char m_[400];
        if (SGL_CUDA_REPORT(cudaSetDevice(opts->device_id), m_, sizeof m_))
            return sgl_err(err, SGL_E_DEVICE, "cuda runner: device %d: %s", opts->device_id, m_);
    }

    r = calloc(1, sizeof *r);
    if (!r || !(r->layers = calloc((size_t)c->n_layers, sizeof *r->layers))) {
        st = sgl_err(err, SGL_E_NOMEM, "cuda runner: out of host memory");
        goto fail;
    }
    r->base.ops = &cuda_ops;
    r->base.cfg = c;
    r->base.opts = *opts;
    r->n_layers = c->n_layers;
    r->comm = opts->tp.size > 1 ? opts->comm : NULL;
    r->hd = c->head_dim;
    r->prefill_tile = sgl_k_attn_prefill_tile(c->head_dim);
    r->use_gemv = true;
    {
        /* fused kernels (SGL_FUSED=0: the unfused chain) and PDL (SGL_PDL=0:
         * plain launches), both for A/B measurements; norm_gemv stages
         * GEMV_ROWS input rows of hidden bf16 in shared memory */
        const char *fe = getenv("SGL_FUSED"), *pe = getenv("SGL_PDL");
        r->fuse = !(fe && !strcmp(fe, "0")) && c->hidden_size % 8 == 0 &&
                  (int64_t)GEMV_ROWS * c->hidden_size <= SGL_K_NORM_GEMV_MAX_ELEMS;
        if (pe) sgl_k_set_pdl(strcmp(pe, "0") != 0);
    }
    r->graphs_on = true;
    r->graph_max_bs = opts->graph_max_bs < 0 ? 0 : opts->graph_max_bs;
    if (r->graph_max_bs > opts->max_seqs) r->graph_max_bs = opts->max_seqs;
    if (!(r->graphs = calloc((size_t)r->graph_max_bs + 1, sizeof *r->graphs))) {
        st = sgl_err(err, SGL_E_NOMEM, "cuda runner: out of host memory");
        goto fail;
    }
    r->eps = c->rms_norm_eps;
    make_plan(c, opts, &r->p);
    const Plan *p = &r->p;
    r->n_heads = p->sh.n_heads;      /* this rank's heads (all of them at tp 1) */
    r->n_kv = p->sh.n_kv_heads;

    size_t free_b = 0, total_b = 0;
    CU_TRY(cudaMemGetInfo(&free_b, &total_b));
    int64_t need = p->weight_bytes + p->kv_bytes + p->work_bytes;
    if (need > (int64_t)free_b) {
        st = sgl_err(err, SGL_E_NOMEM, "cuda runner: needs %.2f GiB (weights %.2f, KV pool %.2f for "
                     "%lld slots, workspace %.2f) but the GPU has %.2f GiB free of %.2f",
                     need / 1073741824.0, p->weight_bytes / 1073741824.0, p->kv_bytes / 1073741824.0,
                     (long long)opts->n_slots, p->work_bytes / 1073741824.0, free_b / 1073741824.0,
                     total_b / 1073741824.0);
        goto fail;
    }
    CU_TRY(cudaStreamCreateWithFlags(&r->stream, cudaStreamNonBlocking));
    for (int k = 0; k < LOGIT_PIPE; k++)
        CU_TRY(cudaEventCreateWithFlags(&r->pipe_ev[k], cudaEventDisableTiming));
    {
        cublasStatus_t bs = cublasCreate(&r->blas);
        if (bs == CUBLAS_STATUS_SUCCESS) bs = cublasSetStream(r->blas, r->stream);
        if (bs != CUBLAS_STATUS_SUCCESS) {
            st = sgl_err(err, SGL_E_DEVICE, "%s:%d: cuBLAS init: %s", __FILE__, __LINE__,
                         cublasGetStatusString(bs));
            goto fail;
        }
    }
    CU_TRY(cudaMalloc((void **)&r->weights_d, (size_t)p->weight_bytes));
    CU_TRY(cudaMalloc((void **)&r->kv_d, (size_t)p->kv_bytes));
    CU_TRY(cudaMalloc((void **)&r->work_d, (size_t)p->work_bytes));
    CU_TRY(cudaHostAlloc((void **)&r->meta_h, (size_t)p->meta_ints * 4, cudaHostAllocDefault));
    if (!(r->perm_h = malloc((size_t)p->T * sizeof *r->perm_h))) {
        st = sgl_err(err, SGL_E_NOMEM, "cuda runner: out of host memory");
        goto fail;
    }
    CU_TRY(cudaHostAlloc((void **)&r->logits_h, (size_t)(p->logit_chunk * p->vocab * 4),
                         cudaHostAllocDefault));
    /* zeroed pool: slots never written read as finite zeros, not garbage */
    CU_TRY(cudaMemset(r->kv_d, 0, (size_t)p->kv_bytes));
    r->k_pool_d = (uint16_t *)r->kv_d;
    r->v_pool_d = r->k_pool_d + (int64_t)c->n_layers * opts->n_slots * p->kv_dim;
    {
        char *cur = r->work_d;
        int64_t big = p->qkv_dim > 2 * p->inter ? p->qkv_dim : 2 * p->inter;
        int64_t mid = p->q_dim > p->inter ? p->q_dim : p->inter;
        r->x_d = take(&cur, p->T * p->hidden * 4);
        r->xn_d = take(&cur, p->T * p->hidden * 2);
        r->big_d = take(&cur, p->T * big * 4);
        r->mid_d = take(&cur, p->T * mid * 2);
        r->lnorm_d = take(&cur, p->logit_chunk * p->hidden * 2);
        r->logits_d = take(&cur, p->logit_chunk * p->vocab * 4);
        r->attn_ws_d = p->ws_floats ? take(&cur, p->ws_floats * 4) : NULL;
        r->meta_d = take(&cur, p->meta_ints * 4);
        r->blas_ws_d = take(&cur, CUBLAS_WS_BYTES);
        if (p->tp > 1) {
            r->tp_logits_d = take(&cur, p->logit_chunk * p->vocab_rows * 4);
            r->tp_gather_d = take(&cur, p->tp * p->logit_chunk * p->vocab_rows * 4);
        }
    }
    {
        cublasStatus_t bs = cublasSetWorkspace(r->blas, r->blas_ws_d, CUBLAS_WS_BYTES);
        if (bs != CUBLAS_STATUS_SUCCESS) {
            st = sgl_err(err, SGL_E_DEVICE, "%s:%d: cublasSetWorkspace: %s", __FILE__, __LINE__,
                         cublasGetStatusString(bs));
            goto fail;
        }
    }
    {
        /* per-shape algorithms for decode batches up to graph_max_bs
         * (SGL_LT_TUNE=0: cublasGemmEx's default choice everywhere) */
        const char *te = getenv("SGL_LT_TUNE");
        if (!(te && !strcmp(te, "0")) && (st = gemm_lt_new(r->graph_max_bs, 6, r->blas_ws_d, CUBLAS_WS_BYTES,
                                                          r->stream, &r->lt, err)))
            goto fail;
    }
    {
        size_t nl = (size_t)p->logit_chunk, words = (size_t)(p->vocab + 31) / 32;
        size_t rows_b = (nl * sizeof(SglKSampleRow) + 255) / 256 * 256, masks_b = (nl * words * 4 + 255) / 256 * 256;
        size_t total = rows_b + masks_b + nl * 8;
        CU_TRY(cudaMalloc((void **)&r->samp_d, total));
        CU_TRY(cudaHostAlloc((void **)&r->samp_h, total, cudaHostAllocDefault));
        r->samp_rows_d = (SglKSampleRow *)r->samp_d;
        r->samp_rows_h = (SglKSampleRow *)r->samp_h;
        r->samp_masks_d = (uint32_t *)(r->samp_d + rows_b);
        r->samp_masks_h = (uint32_t *)(r->samp_h + rows_b);
        r->samp_ids_d = (int32_t *)(r->samp_d + rows_b + masks_b);
        r->samp_ids_h = (int32_t *)(r->samp_h + rows_b + masks_b);
        r->samp_lp_d = (float *)(r->samp_ids_d + nl);
        r->samp_lp_h = (float *)(r->samp_ids_h + nl);
    }
    if ((st = upload_weights(r, m, err))) goto fail;
    CU_TRY(cudaDeviceSynchronize());
    *out = &r->base;
    return SGL_OK;
fail:
    cuda_free(r ? &r->base : NULL);
    return st;
}

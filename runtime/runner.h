/* runner.h -- the executor interface: one forward pass over a batch.
 *
 * A runner owns the device-side state of a model: converted weights, the KV
 * storage for n_slots token positions per layer, and workspace sized up front
 * for max_batch_tokens. The scheduler decides which slots a sequence uses (via
 * the KV pool); the runner only reads and writes the slots it is given. The
 * CPU runner is the reference; the CUDA runner implements the same contract.
 *
 * Batch layout (all arrays borrowed for the duration of forward):
 *   sequence s has new tokens tokens[seq_off[s] .. seq_off[s+1]) at positions
 *   positions[...] (consecutive, starting at kv_len[s] - n_new), and its whole
 *   KV (cached prefix + new) lives at slots[slot_off[s] .. slot_off[s]+kv_len[s]),
 *   one slot per position. forward writes K/V of the new tokens into their
 *   slots, attends causally over 0..pos, and writes next-token logits for each
 *   row listed in logit_rows (indices into tokens[]) into logits, in that order.
 */
#ifndef SGL_RUNNER_H
#define SGL_RUNNER_H

#include <stdbool.h>
#include <stdint.h>

#include "runtime/model.h"
#include "runtime/status.h"
#include "runtime/tp.h"

typedef struct {
    int32_t n_seqs;
    int32_t n_tokens;
    const int32_t *tokens;      /* (n_tokens) */
    const int32_t *positions;   /* (n_tokens) */
    const int32_t *seq_off;     /* (n_seqs + 1) */
    const int32_t *kv_len;      /* (n_seqs) */
    const int32_t *slot_off;    /* (n_seqs + 1) */
    const int32_t *slots;       /* (slot_off[n_seqs]) */
    int32_t n_logits;
    const int32_t *logit_rows;  /* (n_logits) */
} SglBatch;

typedef struct {
    int64_t n_slots;            /* KV capacity in tokens */
    int32_t max_batch_tokens;   /* largest n_tokens forward will be given */
    int32_t max_seqs;           /* largest n_seqs */
    int n_threads;              /* CPU threads (0 = auto) */
    int32_t graph_max_bs;       /* CUDA: pure-decode batches of up to this many sequences
                                 * replay a captured CUDA graph (0 = never; CPU: ignored) */
    int32_t device_id;          /* CUDA: the device this runner uses (its threads set it) */
    SglTp tp;                   /* this runner's shard ({0, 0} or size 1: the whole model) */
    SglComm *comm;              /* borrowed, required when tp.size > 1 (runtime/tp.h) */
} SglRunnerOpts;

typedef struct SglRunner SglRunner;

/* How forward_sample picks the token of one logits row (the subset of
 * SglSamplingParams a device sampler supports: no penalties, no banned ids,
 * no top-n log-probs). The draw is a pure function of (seed, step, token id)
 * (kernels/sample_row.h), not the CPU sampler's RNG stream: same-seed samples
 * differ between the paths, greedy rows (temperature 0) are identical. */
typedef struct {
    float temperature;          /* 0: greedy */
    int32_t top_k;              /* <= 0: off */
    float top_p;                /* 1: off */
    float min_p;                /* 0: off */
    uint64_t seed, step;        /* the sequence's seed; step = tokens it has output */
    bool use_mask;              /* the row of masks applies */
    bool want_logprob;          /* logprobs[i] is written */
} SglRowSampling;

typedef struct {
    const char *name;           /* "cpu", "cuda" */
    /* logits: (n_logits, vocab) fp32 host memory. SGL_E_INVAL if the batch
     * exceeds the sizes given at creation; SGL_E_DEVICE on a device fault. */
    SglStatus (*forward)(SglRunner *r, const SglBatch *b, float *logits, SglErr *err);
    void (*free)(SglRunner *r);
    /* Optional (NULL when the runner has none): forward, then sample on the
     * device so only ids come back. rows: (n_logits); masks: NULL or
     * (n_logits, (vocab+31)/32) words, bit j = token j allowed, read for
     * rows with use_mask; ids: (n_logits), -1 where the mask (and NaN/-inf
     * logits) leave no token; logprobs: (n_logits) raw log_softmax of the
     * chosen token for rows with want_logprob, or NULL. SGL_E_UNSUPPORTED
     * (nothing run, no state changed: call forward instead) when n_logits
     * exceeds what one pass samples; otherwise as forward. */
    SglStatus (*forward_sample)(SglRunner *r, const SglBatch *b, const SglRowSampling *rows,
                                const uint32_t *masks, int32_t *ids, float *logprobs, SglErr *err);
    /* Optional asynchronous pair (both NULL or both set), used by the overlap
     * scheduler: begin enqueues forward + sampling (no masks) and returns at
     * once; end waits for the oldest begun batch and delivers its ids and
     * log-probs as forward_sample does. Contract:
     *  - begin copies what it reads of b and rows: they may be reused as soon
     *    as it returns;
     *  - a token t < 0 in b->tokens is the id sampled for logits row -(t+1)
     *    of the previous begun batch, read on the device (no host round trip);
     *  - batches run one after another in begin order, so KV slots released
     *    by the caller after a begin may be handed to a later batch;
     *  - at most two batches are outstanding, and forward/forward_sample must
     *    not be called while one is.
     * begin: SGL_E_UNSUPPORTED (nothing enqueued, no state changed) when the
     * batch has more rows than one pass samples; SGL_E_INVAL (bad batch, a
     * negative token without such a row, two outstanding); SGL_E_DEVICE.
     * end: SGL_E_INVAL when nothing is outstanding, else the batch's status. */
    SglStatus (*forward_sample_begin)(SglRunner *r, const SglBatch *b, const SglRowSampling *rows,
                                      SglErr *err);
    SglStatus (*forward_sample_end)(SglRunner *r, int32_t *ids, float *logprobs, SglErr *err);
} SglRunnerOps;

struct SglRunner {
    const SglRunnerOps *ops;
    const SglModelConfig *cfg;  /* borrowed from the model */
    SglRunnerOpts opts;
};

/* The CPU reference runner: fp32 compute, hand-written AVX2 kernels (plain C
 * elsewhere) and OpenBLAS sgemm for large products. Weights are converted to
 * owned fp32 copies; the model must still outlive the runner (cfg is
 * borrowed). n_threads 1: everything on the caller's thread; n > 1 starts
 * n - 1 workers that split large matmuls by rows and attention by tokens,
 * with results bit-identical to one thread; 0 (auto) starts one worker per
 * CPU but uses them only for large passes, and only while that measures
 * faster than one thread. OpenBLAS is set to one thread (process-wide).
 * SGL_CPU_KERNELS=generic|avx2 in the environment forces a kernel set.
 * SGL_E_INVAL (bad opts, unknown kernel set) or SGL_E_NOMEM, *out NULL.
 * Its forward checks the whole batch layout (positions, slot and token
 * ranges, logit rows) and returns SGL_E_INVAL before writing any state; it
 * never allocates. It has forward_sample_begin/end (a step thread and job
 * buffers created by the first begin; sampling as sgl_ref_sample), not
 * forward_sample: the synchronous path keeps the host sampler. */
SglStatus sgl_runner_cpu_new(const SglModel *m, const SglRunnerOpts *opts,
                             SglRunner **out, SglErr *err);

/* Tuning and test knob of the CPU runner (ignored for other runners): matrix
 * products of at least min_tokens rows whose weights take at least
 * min_weight_bytes go to OpenBLAS sgemm, the others to the hand-written
 * kernels. Defaults 16 rows and 512 KiB; results agree to fp32 rounding. */
void sgl_runner_cpu_set_sgemm_cutoff(SglRunner *r, int min_tokens, int64_t min_weight_bytes);

static inline SglStatus sgl_runner_forward(SglRunner *r, const SglBatch *b, float *logits, SglErr *err)
{
    return r->ops->forward(r, b, logits, err);
}
static inline void sgl_runner_free(SglRunner *r) { if (r) r->ops->free(r); }

#endif

/* runner_cuda.h -- the CUDA runner: the runner.h contract on one NVIDIA GPU.
 *
 * Built only with -Dcuda=enabled (then SGL_HAVE_CUDA is defined for users of
 * the runtime library). At creation it converts every weight to bf16 and
 * uploads it once, allocates the KV pool for opts->n_slots tokens per layer
 * (bf16 K and V) and all workspace for opts->max_batch_tokens and
 * opts->max_seqs; forward then allocates nothing, uploads the batch metadata
 * with one async copy from pinned memory, runs on one stream (kernels/ +
 * cuBLAS, bf16 in, fp32 accumulate, fp32 residual stream) and copies back the
 * fp32 logits of the requested rows. Pure-decode batches of up to
 * opts->graph_max_bs sequences replay a CUDA graph of the whole step instead
 * of ~11 launches per layer; each batch size is captured at its first use
 * (the only host allocation after creation). Products of at most 8 rows use
 * the bandwidth-bound sgl_k_gemv, larger ones cuBLAS. Thread-compatible, not
 * thread-safe.
 *
 * Tensor parallelism (opts->tp.size > 1, runtime/tp.h): the runner holds
 * rank tp.rank's shard on device opts->device_id (made current at creation
 * and at the start of every call, so each rank may run on its own thread)
 * and meets the other ranks in opts->comm's collectives on its stream (an
 * NCCL group, runtime/comm_nccl.h; they are part of the decode graphs): one
 * all-reduce after the embedding, after o_proj and after down_proj, and an
 * all-gather of the logits. Every rank returns the whole logits rows. A
 * shapes-only dummy model gives every rank exactly its slice of the tp = 1
 * weights, so tp = n computes what tp = 1 does up to summation order.
 */
#ifndef SGL_RUNNER_CUDA_H
#define SGL_RUNNER_CUDA_H

#include <stdbool.h>

#include "runtime/runner.h"

/* Creates a CUDA runner for m on the current CUDA device. The model must
 * outlive the runner; its host weights are only read here.
 *   SGL_OK           *out owned by the caller (sgl_runner_free).
 *   SGL_E_INVAL      opts out of range (n_slots < 1 or > INT32_MAX, ...).
 *   SGL_E_FORMAT     a weight's shape does not match the config.
 *   SGL_E_UNSUPPORTED head_dim odd or > 256.
 *   SGL_E_NOMEM      weights + KV pool + workspace exceed free GPU memory
 *                    (err gives both sizes), or a host/pinned allocation failed.
 *   SGL_E_DEVICE     no usable CUDA device, or a CUDA/cuBLAS call failed
 *                    (err: file:line, call, CUDA error name and text).
 * On failure *out is NULL and everything allocated is released.
 * forward returns SGL_E_INVAL (nothing launched, pool unchanged) for a batch
 * beyond the creation sizes, inconsistent offsets, non-consecutive positions,
 * a slot outside [0, n_slots) or a logit row outside the batch; SGL_E_DEVICE
 * after a device fault (the runner is then unusable: free it). */
SglStatus sgl_runner_cuda_new(const SglModel *m, const SglRunnerOpts *opts, SglRunner **out,
                              SglErr *err);

/* SGL_OK when a usable CUDA device is present (cheap: no context work beyond
 * the driver query); otherwise SGL_E_DEVICE with the reason in err. For
 * `--device auto` and for skipping GPU work before loading a model. */
SglStatus sgl_runner_cuda_available(SglErr *err);

/* Bytes of device memory sgl_runner_cuda_new would allocate, for sizing
 * n_slots from a memory fraction before creating the runner. */
int64_t sgl_runner_cuda_bytes(const SglModelConfig *cfg, const SglRunnerOpts *opts);

/* Test and tuning knobs (ignored for other runners). set_gemv: products of
 * at most 8 rows go to the hand-written sgl_k_gemv (default) or, off, to
 * cuBLAS. set_graphs: off, every forward launches its kernels (graphs already
 * captured are kept for when it is back on). graph_replays: decode forwards served by a captured CUDA graph so
 * far (pure-decode batches of n <= opts.graph_max_bs sequences, one logit row
 * each; each size is captured on first use, then replayed). */
void sgl_runner_cuda_set_gemv(SglRunner *r, bool on);
void sgl_runner_cuda_set_graphs(SglRunner *r, bool on);
int64_t sgl_runner_cuda_graph_replays(const SglRunner *r);

/* KV pool bytes per token slot (all layers, K and V, bf16). */
int64_t sgl_runner_cuda_kv_bytes_per_token(const SglModelConfig *cfg);
/* The same for one rank of tp (its KV heads only); tp <= 1 as above.
 * (sgl_runner_cuda_bytes already counts the shard of opts->tp.) */
int64_t sgl_runner_cuda_kv_bytes_per_token_tp(const SglModelConfig *cfg, int tp);

/* Free and total device memory of the current device (cudaMemGetInfo).
 * SGL_E_DEVICE (err says why) when no device answers. */
SglStatus sgl_runner_cuda_mem_info(int64_t *free_bytes, int64_t *total_bytes, SglErr *err);

#endif

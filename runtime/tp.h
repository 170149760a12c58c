/* tp.h -- tensor parallelism: how a Llama-family model is sharded over
 * `size` ranks, and the collectives the shards use.
 *
 * Megatron-style sharding (every rank holds 1/size of each large matrix):
 *   q/k/v rows and their biases: column-parallel by head (rank r has query
 *     heads [r*H/size, (r+1)*H/size) and KV heads likewise); o_proj columns:
 *     row-parallel -> each rank has a partial sum, then all_reduce_sum.
 *   gate/up rows: column-parallel over intermediate; down columns:
 *     row-parallel -> all_reduce_sum.
 *   embedding rows: vocab-parallel (rank r has vocab block r, rows outside
 *     it embed to zeros) -> all_reduce_sum.
 *   lm_head rows: vocab-parallel -> local logits (n, block) -> all_gather
 *     (size, n, block) -> the full (n, vocab) rows, padding dropped.
 *   norms: replicated. KV cache: each rank stores its own KV heads in the same
 *     slots (page ids are identical on every rank; the radix cache lives once,
 *     with the scheduler, on rank 0).
 * The vocabulary block is ceil(vocab/size) rows; the last block may be short
 * (its missing rows act as -inf logits and zero embeddings).
 *
 * Ranks run in lockstep: every rank's runner gets the same batch and calls
 * the same collectives in the same order. Within a host ranks are threads
 * (one per device) of one process; across hosts each host is one process
 * with its local ranks as threads (runtime/runner_tp.h). */
#ifndef SGL_TP_H
#define SGL_TP_H

#include <stdint.h>

#include "runtime/model.h"
#include "runtime/status.h"

typedef struct {
    int rank, size;              /* 0 <= rank < size; size 1 = no parallelism */
} SglTp;

/* The part of each dimension rank owns, for one config. */
typedef struct {
    int n_heads, n_kv_heads;     /* local head counts */
    int head0, kv_head0;         /* first global query / KV head */
    int64_t inter, inter0;       /* local intermediate size, first column */
    int64_t vocab_block;         /* ceil(vocab / size): rows per vocab block */
    int64_t vocab0, n_vocab;     /* first row and row count of this rank's block (n_vocab <= vocab_block) */
} SglTpShard;

/* Fills *sh for rank tp.rank. SGL_E_INVAL, with err naming the config field,
 * when size does not divide num_attention_heads, num_key_value_heads or
 * intermediate_size, or tp is out of range. */
SglStatus sgl_tp_shard(const SglModelConfig *c, SglTp tp, SglTpShard *sh, SglErr *err);

typedef enum { SGL_COMM_F32, SGL_COMM_BF16 } SglCommType;

typedef struct SglComm SglComm;

typedef struct {
    const char *name;            /* "threads", "tcp", "nccl" */
    /* In place: buf (n elements) becomes the elementwise sum over all ranks.
     * stream: the cudaStream_t to enqueue on (NCCL), NULL for host comms
     * (which complete before returning). */
    SglStatus (*all_reduce_sum)(SglComm *c, void *buf, int64_t n, SglCommType t, void *stream,
                                SglErr *err);
    /* out (size * n elements) = every rank's in (n elements), in rank order. */
    SglStatus (*all_gather)(SglComm *c, const void *in, void *out, int64_t n, SglCommType t,
                            void *stream, SglErr *err);
    void (*free)(SglComm *c);
} SglCommOps;

/* One rank's endpoint of a communicator. Owned by whoever created it; a
 * runner given one (SglRunnerOpts.comm) borrows it for its lifetime. */
struct SglComm {
    const SglCommOps *ops;
    int rank, size;
};

static inline void sgl_comm_free(SglComm *c) { if (c) c->ops->free(c); }

#endif

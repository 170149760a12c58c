/* runner_tp.h -- tensor parallelism as an SglRunner: one inner runner per rank.
 *
 * Decision: one thread per device within a host, one process per host.
 * sgl_runner_tp_new makes this host's local ranks (one inner runner each,
 * opts.tp = {global rank, size}, opts.comm = that rank's endpoint,
 * opts.device_id = local index) and one worker thread per local rank; forward,
 * forward_sample and forward_sample_begin/end (each offered when the inner
 * runners have it) run every local rank on the same batch concurrently (the
 * inner runners meet in their collectives) and return rank 0's result.
 * Global rank = node_rank * local_size + local index, local_size = tp / nnodes.
 *
 * Multi-host: node 0 runs the engine (scheduler, radix cache: page ids are the
 * same on every rank). It listens on dist_init_addr (the bootstrap, a "tcp"
 * comm of one endpoint per node, comm_host.h); nodes > 0 call
 * sgl_tp_worker_run, which connects, receives the runner options, and then
 * each step's batch (op, batch arrays, sampling rows) until node 0 sends the
 * exit message (sgl_runner_free on node 0) or closes. CPU ranks on several
 * nodes talk over a second tcp group at dist_init_addr's PORT + 1.
 */
#ifndef SGL_RUNNER_TP_H
#define SGL_RUNNER_TP_H

#include "runtime/runner.h"

typedef struct {
    int nnodes, node_rank;         /* 1 and 0 on one host */
    const char *dist_init_addr;    /* HOST:PORT of node 0; required when nnodes > 1 */
    int timeout_ms;                /* connect and collective waits; 0 = 60 s */
} SglTpDist;

/* How the inner runners and their comms are made (the CPU and CUDA plug-ins).
 * comm_new makes this host's n_local endpoints out[i] = global rank
 * first_rank + i of a size-rank group, on the calling thread before any
 * runner exists; bootstrap is the node-level tcp comm (NULL on one host), for
 * sending e.g. an NCCL unique id with sgl_comm_tcp_bcast_bytes (node 0 sends,
 * every node calls it at the same point). runner_new makes one rank's
 * runner; it is called on that rank's worker thread, all ranks at once. */
typedef struct {
    SglStatus (*comm_new)(void *ctx, const SglTpDist *d, SglComm *bootstrap, int first_rank, int n_local,
                          int size, const int *device_ids, SglComm **out, SglErr *err);
    SglStatus (*runner_new)(void *ctx, const SglModel *m, const SglRunnerOpts *o, SglRunner **out,
                            SglErr *err);
    void *ctx;
} SglTpFactory;

/* The CPU plug-in: sgl_runner_cpu_new; a "threads" group on one host, a
 * "tcp" group at PORT + 1 across hosts. */
extern const SglTpFactory sgl_tp_cpu_factory;

/* The CUDA plug-in (CUDA builds only, SGL_HAVE_CUDA): sgl_runner_cuda_new
 * on device_id = local index; an NCCL group (runtime/comm_nccl.h) whose
 * unique id global rank 0 makes and sends over the bootstrap. */
#ifdef SGL_HAVE_CUDA
extern const SglTpFactory sgl_tp_cuda_factory;
#endif

/* Node 0's runner over tp ranks (tp >= 1, dividable by d->nnodes). opts are
 * the whole model's options (opts->tp and opts->comm ignored). For d->nnodes
 * > 1 this waits (up to the timeout) for every other node to connect and
 * make its ranks. The model must outlive the runner. SGL_E_INVAL (tp does
 * not divide the heads etc.: err names the field; bad dist), SGL_E_IO
 * (bootstrap), an inner runner's error; on success the caller owns *out
 * (sgl_runner_free; on node 0 it also tells the workers to exit). */
SglStatus sgl_runner_tp_new(const SglModel *m, const SglRunnerOpts *opts, int tp, const SglTpDist *d,
                            const SglTpFactory *f, SglRunner **out, SglErr *err);

/* A node > 0: connects to node 0, makes its local ranks and runs each step
 * node 0 sends until it sends exit (SGL_OK) or the connection fails
 * (SGL_E_IO). Blocks; the model must be the same as node 0's (its config is
 * checked). Other errors as sgl_runner_tp_new. */
SglStatus sgl_tp_worker_run(const SglModel *m, int tp, const SglTpDist *d, const SglTpFactory *f,
                            SglErr *err);

#endif

/* comm_nccl.h -- SglComm (runtime/tp.h) over NCCL, for CUDA tensor parallelism.
 *
 * Collectives are enqueued on the caller's cudaStream_t and return at once;
 * they may be captured into a CUDA graph (the CUDA runner's decode graphs
 * contain them). Every endpoint of a group must call the same collectives in
 * the same order. Creation sets NCCL_NVLS_ENABLE=0 in the environment when it
 * is unset (NVLink multicast stays off on shared hosts).
 *
 * Group creation: one rank (rank 0) makes a unique id; every process of the
 * group gets the same bytes (within a process: passed directly; across hosts:
 * over the TCP bootstrap of runtime/runner_tp.h) and creates its local
 * endpoints with sgl_comm_nccl_new. Built with NCCL only when meson finds it
 * (SGL_HAVE_NCCL); otherwise every function returns SGL_E_UNSUPPORTED.
 */
#ifndef SGL_COMM_NCCL_H
#define SGL_COMM_NCCL_H

#include <stdbool.h>
#include <stdint.h>

#include "runtime/status.h"
#include "runtime/tp.h"

#define SGL_NCCL_ID_BYTES 128  /* sizeof(ncclUniqueId) */

/* True when this build has NCCL (it may still fail at run time: no GPU). */
bool sgl_comm_nccl_built(void);

/* A fresh unique id for a new group (ncclGetUniqueId), on the rank that will
 * be rank 0. SGL_E_DEVICE with NCCL's message on failure; SGL_E_UNSUPPORTED
 * without NCCL. */
SglStatus sgl_comm_nccl_unique_id(uint8_t id[SGL_NCCL_ID_BYTES], SglErr *err);

/* Creates this process's n_local endpoints of a group of size ranks: out[i]
 * is global rank rank0 + i on CUDA device devices[i] (all inits inside one
 * ncclGroupStart/End, so one thread may create several). Blocks until every
 * rank of the group has joined. On success, ownership of out[0..n_local)
 * passes to the caller (sgl_comm_free each, after every user is done);
 * on failure out[0..n_local) is all NULL. Leaves the current device as it
 * found it.
 *   SGL_E_INVAL       size < 1, rank0/n_local out of range, NULL args.
 *   SGL_E_DEVICE      a CUDA or NCCL call failed (err: call and NCCL message).
 *   SGL_E_NOMEM       no host memory.
 *   SGL_E_UNSUPPORTED built without NCCL. */
SglStatus sgl_comm_nccl_new(const uint8_t id[SGL_NCCL_ID_BYTES], int size, int rank0, int n_local,
                            const int *devices, SglComm **out, SglErr *err);

/* Shorthand for one process holding every rank: ranks 0..n-1 on
 * devices[0..n) (a fresh id, then sgl_comm_nccl_new). As sgl_comm_nccl_new. */
SglStatus sgl_comm_nccl_new_local(int n, const int *devices, SglComm **out, SglErr *err);

#endif

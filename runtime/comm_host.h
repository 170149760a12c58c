/* comm_host.h -- host (CPU) communicators for tensor parallelism (tp.h).
 *
 * "threads": ranks are threads of one process. Each collective is a barrier
 *   over a shared slot table; the result is summed in rank order
 *   (rank 0 + rank 1 + ...), so it does not depend on timing. bf16 is summed
 *   in f32 and rounded once (round to nearest even).
 * "tcp": ranks are anywhere (other processes, other hosts). Rank 0 listens at
 *   HOST:PORT, the others connect (retrying until the timeout). Collectives
 *   are a star through rank 0: every rank sends its buffer, rank 0 sums in
 *   rank order (bit-identical to "threads") or concatenates, and sends the
 *   result back. Simple rather than bandwidth-optimal: for multi-host CPU
 *   runs, tests and the bootstrap of other communicators (NCCL).
 * Every wait is bounded by the group's timeout: a peer that never comes, dies
 * (EOF) or answers with a mismatched message gives SGL_E_IO with err saying
 * which rank and what; the endpoint is then broken (every later call fails
 * at once) and must be freed. Endpoints are used by one thread at a time.
 */
#ifndef SGL_COMM_HOST_H
#define SGL_COMM_HOST_H

#include <stdint.h>

#include "runtime/tp.h"

/* An in-process group of size endpoints: ranks[i] is rank i, each to be
 * called from its own thread. timeout_ms bounds each collective's wait for
 * the other ranks (<= 0: wait without a limit). On success the caller owns
 * the size endpoints (free each with sgl_comm_free; the shared state goes
 * with the last). SGL_E_INVAL (size < 1), SGL_E_NOMEM. */
SglStatus sgl_comm_threads_new(int size, int timeout_ms, SglComm **ranks, SglErr *err);

/* Threads group only (no-op for other comms): wakes every rank waiting in a
 * collective of c's group with SGL_E_IO ("aborted"), and makes later calls
 * fail until sgl_comm_threads_reset. Called by the rank that failed so its
 * peers do not wait out the timeout. reset must only be called while no
 * rank is inside a collective (e.g. after every rank has returned). */
void sgl_comm_threads_abort(SglComm *c);
void sgl_comm_threads_reset(SglComm *c);

/* The tcp endpoint of rank for a group of size ranks at addr ("HOST:PORT";
 * HOST a name or IPv4/IPv6 address, [v6]:PORT accepted). Rank 0 binds and
 * listens there and accepts size - 1 peers; the others connect, retrying
 * until timeout_ms (> 0) passes. timeout_ms also bounds every later wait.
 * SGL_E_INVAL (bad addr, rank or size), SGL_E_IO (cannot bind/connect,
 * timeout, handshake from a different group), SGL_E_NOMEM. On success the
 * caller owns *out (sgl_comm_free); on failure *out is NULL. */
SglStatus sgl_comm_tcp_new(const char *addr, int rank, int size, int timeout_ms, SglComm **out,
                           SglErr *err);

/* n_local endpoints of one tcp group made together by one thread: out[i] is
 * rank first_rank + i. When first_rank is 0 this thread listens, connects
 * its own other ranks and accepts everyone (a single thread could not make
 * them one by one). Errors as sgl_comm_tcp_new; on failure no endpoint is
 * left. */
SglStatus sgl_comm_tcp_group_new(const char *addr, int first_rank, int n_local, int size, int timeout_ms,
                                 SglComm **out, SglErr *err);

/* Small messages over a tcp endpoint (the multi-host bootstrap: an NCCL
 * unique id, each step's batch). Rank 0 sends buf[0, *len) to every other
 * rank; the others receive into buf (cap bytes) and get *len. timeout_ms
 * < 0 waits without a limit (a worker idle between steps) but still fails
 * at once if the peer closes, and within about a minute if its host
 * vanishes (TCP keepalive); 0 uses the group's timeout. SGL_E_INVAL (not
 * a tcp comm, or a message larger than cap: it is consumed and dropped),
 * SGL_E_IO as above. */
SglStatus sgl_comm_tcp_bcast_bytes(SglComm *c, void *buf, int64_t *len, int64_t cap, int timeout_ms,
                                   SglErr *err);

/* Length of the next bcast_bytes message without consuming it (ranks > 0),
 * so a receiver can grow its buffer first. Waits as bcast_bytes. */
SglStatus sgl_comm_tcp_peek_len(SglComm *c, int64_t *len, int timeout_ms, SglErr *err);

#endif

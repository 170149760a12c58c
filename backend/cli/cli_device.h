/* cli_device.h -- the device and parallelism flags of the commands that open an engine.
 *
 *   --device cpu|cuda|auto      the forward pass runs on the CPU (default) or
 *                               one CUDA GPU; auto = cuda when built in and present
 *   --mem-fraction-static F     cuda: KV pool = F x (free GPU memory after the
 *                               weights and workspace); default 0.9
 *   --cuda-graph-max-bs N       cuda: decode batches up to N replay CUDA graphs
 *   --disable-cuda-graph        cuda: plain kernel launches every step
 *   --tp N (--tp-size N)        tensor parallelism over N ranks (threads of
 *                               this process; cuda: one GPU each, NCCL)
 *   --nnodes N --node-rank R    N hosts; R = 0 runs the command, R > 0 serves
 *   --dist-init-addr HOST:PORT  node 0's steps (cli_tp_worker) until it exits
 *   --dist-timeout S            connect/collective wait limit (default 60)
 *   --disable-overlap-schedule  every engine step synchronous (no CPU/device overlap)
 *   --enable-overlap-schedule   overlap on the CPU runner too (default there: off)
 *   --trace FILE                Chrome trace-event JSON of the engine's step phases
 *
 * Deliberately a header of small static functions: the commands that open an
 * engine (generate, bench, serve, run) use it and it only maps words onto
 * SglEngineOpts fields. Errors (a cuda request on a build
 * or machine without it) come from sgl_engine_open, with the reason.
 */
#ifndef SGL_CLI_DEVICE_H
#define SGL_CLI_DEVICE_H

#include <stdio.h>
#include <string.h>

#include "backend/cli/cli.h"
#include "runtime/engine.h"

#define CLI_DEVICE_HELP                                                                   \
    "  --device cpu|cuda|auto   where the forward pass runs (default cpu; auto = cuda\n"  \
    "                           when built in and a GPU is present)\n"                    \
    "  --mem-fraction-static F  cuda: KV pool share of the GPU memory left after the\n"   \
    "                           weights and workspace (default 0.9)\n"                    \
    "  --cuda-graph-max-bs N    cuda: decode batches up to N replay CUDA graphs (160)\n"  \
    "  --disable-cuda-graph     cuda: no CUDA graphs\n"                                   \
    "  --tp N, --tp-size N      tensor parallelism over N ranks (cpu: threads; cuda:\n"   \
    "                           one GPU each over NCCL)\n"                                \
    "  --nnodes N               hosts of the tp group (N divides --tp)\n"                \
    "  --node-rank R            this host: 0 runs the command, R > 0 only serves\n"      \
    "                           node 0's forward passes until node 0 exits\n"           \
    "  --dist-init-addr H:P     node 0's address (cpu ranks also use port P+1)\n"        \
    "  --dist-timeout S         seconds to wait for hosts and collectives (60)\n"        \
    "  --disable-overlap-schedule  run every step synchronously (default: the CPU\n"    \
    "                           work of step N+1 overlaps step N on the device)\n"      \
    "  --enable-overlap-schedule  overlap on the cpu runner too (a step thread; default\n" \
    "                           off there: it costs more than it hides on small models)\n" \
    "  --trace FILE             write the engine's step phases as Chrome trace-event\n" \
    "                           JSON (open in Perfetto); also $SGL_TRACE=FILE\n"

typedef struct {
    const char *device;
    double mem_fraction;
    long graph_max_bs;
    bool no_graph;
    long tp, nnodes, node_rank, dist_timeout_s;
    const char *dist_addr;
    bool no_overlap, overlap;
    const char *trace;
} CliDevice;

/* Consumes one device flag at the cursor; false when the word is not one. */
static inline bool cli_device_arg(SglArgs *a, CliDevice *d)
{
    if (args_flag(a, "--disable-cuda-graph")) {
        d->no_graph = true;
        return true;
    }
    if (args_flag(a, "--disable-overlap-schedule")) {
        d->no_overlap = true;
        return true;
    }
    if (args_flag(a, "--enable-overlap-schedule")) {
        d->overlap = true;
        return true;
    }
    if (args_str(a, "--trace", &d->trace))
        return true;
    return args_str(a, "--device", &d->device) ||
           args_double(a, "--mem-fraction-static", 1e-3, 1.0, &d->mem_fraction) ||
           args_long(a, "--cuda-graph-max-bs", 1, 4096, &d->graph_max_bs) ||
           args_long(a, "--tp", 1, 4096, &d->tp) || args_long(a, "--tp-size", 1, 4096, &d->tp) ||
           args_long(a, "--nnodes", 1, 4096, &d->nnodes) || args_long(a, "--node-rank", 0, 4095, &d->node_rank) ||
           args_str(a, "--dist-init-addr", &d->dist_addr) ||
           args_long(a, "--dist-timeout", 1, 86400, &d->dist_timeout_s);
}

/* Copies the flags into eo; prints a usage error and returns 2 for a bad
 * --device word, else 0. */
static inline int cli_device_apply(SglArgs *a, const CliDevice *d, SglEngineOpts *eo)
{
    if (!d->device || strcmp(d->device, "cpu") == 0)
        eo->device = SGL_DEVICE_CPU;
    else if (strcmp(d->device, "cuda") == 0)
        eo->device = SGL_DEVICE_CUDA;
    else if (strcmp(d->device, "auto") == 0)
        eo->device = SGL_DEVICE_AUTO;
    else
        return args_usage_error(a, "--device must be cpu, cuda or auto, got '%s'", d->device);
    eo->mem_fraction_static = d->mem_fraction;
    eo->cuda_graph_max_bs = (int32_t)d->graph_max_bs;
    eo->disable_cuda_graph = d->no_graph;
    eo->sched.disable_overlap_schedule = d->no_overlap;
    eo->sched.enable_overlap_schedule = d->overlap;
    eo->trace_path = d->trace;
    long nn = d->nnodes > 0 ? d->nnodes : 1;
    if (d->node_rank >= nn)
        return args_usage_error(a, "--node-rank %ld must be below --nnodes %ld", d->node_rank, nn);
    if (nn > 1 && !d->dist_addr)
        return args_usage_error(a, "--nnodes %ld needs --dist-init-addr HOST:PORT (node 0's address)", nn);
    eo->tp_size = (int)d->tp;
    eo->nnodes = (int)nn;
    eo->node_rank = (int)d->node_rank;
    eo->dist_init_addr = d->dist_addr;
    eo->dist_timeout_ms = (int)(d->dist_timeout_s * 1000);
    return 0;
}

/* A host with --node-rank > 0 does not run the command: it serves node 0's
 * forward passes on its tensor-parallel ranks until node 0 exits. Prints
 * one line (prefixed with cmd, e.g. "sglc generate") saying so; returns the
 * exit status (0 when node 0 closed it). */
static inline int cli_tp_worker(const char *cmd, const SglEngineOpts *eo)
{
    fprintf(stderr, "%s: node %d of %d: serving tp ranks %d..%d for node 0 at %s\n", cmd, eo->node_rank,
            eo->nnodes, eo->node_rank * (eo->tp_size > 0 ? eo->tp_size : 1) / eo->nnodes,
            (eo->node_rank + 1) * (eo->tp_size > 0 ? eo->tp_size : 1) / eo->nnodes - 1, eo->dist_init_addr);
    SglErr err = {{0}};
    if (sgl_engine_run_worker(eo, &err) != SGL_OK) {
        fprintf(stderr, "%s: node %d: %s\n", cmd, eo->node_rank, err.msg);
        return 1;
    }
    return 0;
}

#endif

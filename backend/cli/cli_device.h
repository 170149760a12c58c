/* cli_device.h -- the device flags that `sglc generate` and `sglc bench` share.
 *
 *   --device cpu|cuda|auto      the forward pass runs on the CPU (default) or
 *                               one CUDA GPU; auto = cuda when built in and present
 *   --mem-fraction-static F     cuda: KV pool = F x (free GPU memory after the
 *                               weights and workspace); default 0.9
 *   --cuda-graph-max-bs N       cuda: decode batches up to N replay CUDA graphs
 *   --disable-cuda-graph        cuda: plain kernel launches every step
 *
 * Deliberately a header of small static functions: two commands use it and it
 * only maps words onto SglEngineOpts fields. Errors (a cuda request on a build
 * or machine without it) come from sgl_engine_open, with the reason.
 */
#ifndef SGL_CLI_DEVICE_H
#define SGL_CLI_DEVICE_H

#include <string.h>

#include "backend/cli/cli.h"
#include "runtime/engine.h"

#define CLI_DEVICE_HELP                                                                   \
    "  --device cpu|cuda|auto   where the forward pass runs (default cpu; auto = cuda\n"  \
    "                           when built in and a GPU is present)\n"                    \
    "  --mem-fraction-static F  cuda: KV pool share of the GPU memory left after the\n"   \
    "                           weights and workspace (default 0.9)\n"                    \
    "  --cuda-graph-max-bs N    cuda: decode batches up to N replay CUDA graphs (160)\n"  \
    "  --disable-cuda-graph     cuda: no CUDA graphs\n"

typedef struct {
    const char *device;
    double mem_fraction;
    long graph_max_bs;
    bool no_graph;
} CliDevice;

/* Consumes one device flag at the cursor; false when the word is not one. */
static inline bool cli_device_arg(SglArgs *a, CliDevice *d)
{
    if (args_flag(a, "--disable-cuda-graph")) {
        d->no_graph = true;
        return true;
    }
    return args_str(a, "--device", &d->device) ||
           args_double(a, "--mem-fraction-static", 1e-3, 1.0, &d->mem_fraction) ||
           args_long(a, "--cuda-graph-max-bs", 1, 4096, &d->graph_max_bs);
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
    return 0;
}

#endif

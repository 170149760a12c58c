/* pdl.cuh -- programmatic dependent launch (PDL, Hopper) for the decode chain.
 *
 * A kernel launched through pdl_launch() may start while the kernel before it
 * on the stream is still running (cudaLaunchAttributeProgrammaticStream-
 * Serialization; kept as a programmatic edge inside captured CUDA graphs).
 * Contract for every kernel launched this way: before its first access to
 * memory that an earlier kernel writes or reads (activations, the KV pool,
 * outputs it overwrites), every thread that makes such an access calls
 * pdl_wait(), which returns once the previous grid has completed and its
 * writes are visible. Work before pdl_wait() may only read memory no kernel
 * of the step writes (weights). Since each such kernel waits before it can
 * finish, "previous grid complete" implies every earlier grid is complete.
 * pdl_trigger() lets the next kernel's blocks be scheduled once every block
 * of this grid has issued it; kernels call it first thing, so the next
 * kernel's blocks fill the SMs during this one's last wave.
 * Without the attribute (sgl_k_set_pdl(0), pre-Hopper) both are no-ops.
 */
#ifndef SGL_KERNELS_PDL_CUH
#define SGL_KERNELS_PDL_CUH

#include <string.h>

#include <cuda_runtime.h>

#include "kernels/kernels.h"

static __device__ __forceinline__ void pdl_wait(void)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

static __device__ __forceinline__ void pdl_trigger(void)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

/* Launches fn(args) on st, with the PDL attribute when sgl_k_pdl() is on.
 * args: one pointer per kernel parameter (cudaLaunchKernelExC). */
static inline cudaError_t pdl_launch(const void *fn, dim3 grid, dim3 block, size_t smem,
                                     cudaStream_t st, void **args)
{
    cudaLaunchConfig_t cfg;
    cudaLaunchAttribute at[1];
    memset(&cfg, 0, sizeof cfg);
    memset(at, 0, sizeof at);
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = st;
    at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    at[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = at;
    cfg.numAttrs = sgl_k_pdl() ? 1 : 0;
    return cudaLaunchKernelExC(&cfg, fn, args);
}

#endif

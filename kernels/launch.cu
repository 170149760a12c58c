/* launch.cu -- the process-wide launch policy of the decode-chain kernels:
 * whether they are launched with programmatic dependent launch (pdl.cuh).
 * One atomic flag, set by the runner at creation (SGL_PDL=0 turns it off for
 * A/B measurements) and read at each launch; captured graphs keep the choice
 * they were captured with. Off on devices below sm_90, where the attribute
 * has no effect. */
#include <cuda_runtime.h>

#include "kernels/kernels.h"

static int pdl_flag = -1; /* -1: not yet decided (on for sm_90+) */

extern "C" void sgl_k_set_pdl(int on)
{
    __atomic_store_n(&pdl_flag, on ? 1 : 0, __ATOMIC_RELAXED);
}

extern "C" int sgl_k_pdl(void)
{
    int v = __atomic_load_n(&pdl_flag, __ATOMIC_RELAXED);
    if (v >= 0) return v;
    int dev = 0, major = 0;
    v = cudaGetDevice(&dev) == cudaSuccess &&
        cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) == cudaSuccess &&
        major >= 9;
    __atomic_store_n(&pdl_flag, v, __ATOMIC_RELAXED);
    return v;
}

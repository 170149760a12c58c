/* cuda_check.h -- status-returning CUDA checks that capture file:line.
 *
 * Nothing here exits or aborts: a failed call becomes a value the caller
 * returns. Launchers (kernels/<op>.cu) use SGL_K_LAUNCHED() after each launch
 * to return the launch error as int (kernels.h contract). Host code that
 * wants a message uses sgl_cuda_report(), which formats
 * "file:line: expr: cudaErrorName: description" into a caller-owned buffer.
 */
#ifndef SGL_CUDA_CHECK_H
#define SGL_CUDA_CHECK_H

#include <stdio.h>

#include <cuda_runtime_api.h>

/* Returns 0 for cudaSuccess; otherwise writes msg (if non-NULL) and returns e. */
static inline int sgl_cuda_report(cudaError_t e, const char *expr, const char *file, int line,
                                  char *msg, size_t cap)
{
    if (e == cudaSuccess) return 0;
    if (msg && cap)
        snprintf(msg, cap, "%s:%d: %s: %s: %s", file, line, expr, cudaGetErrorName(e),
                 cudaGetErrorString(e));
    return (int)e;
}

#define SGL_CUDA_REPORT(expr, msg, cap) \
    sgl_cuda_report((expr), #expr, __FILE__, __LINE__, (msg), (cap))

/* After a <<<>>> launch: return the launch error, if any, from the launcher.
 * With SGL_K_SYNC_CHECK defined (debug builds), also synchronize the stream so
 * an execution fault is reported by the launch that caused it. */
#ifdef SGL_K_SYNC_CHECK
#define SGL_K_LAUNCHED(stream)                                        \
    do {                                                              \
        cudaError_t e_ = cudaGetLastError();                          \
        cudaStreamCaptureStatus c_ = cudaStreamCaptureStatusNone;     \
        if (e_ == cudaSuccess) e_ = cudaStreamIsCapturing(stream, &c_); \
        if (e_ == cudaSuccess && c_ == cudaStreamCaptureStatusNone)   \
            e_ = cudaStreamSynchronize(stream); /* not while capturing a graph */ \
        if (e_ != cudaSuccess) return (int)e_;                        \
    } while (0)
#else
#define SGL_K_LAUNCHED(stream)                                        \
    do {                                                              \
        cudaError_t e_ = cudaGetLastError();                          \
        (void)(stream);                                               \
        if (e_ != cudaSuccess) return (int)e_;                        \
    } while (0)
#endif

#endif

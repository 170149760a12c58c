/* gemm_lt.h -- per-shape cuBLASLt algorithm choice for the CUDA runner's
 * decode-step products (Y (n, out) [+]= X (n, in) W^T, bf16 in, fp32 out).
 *
 * cublasGemmEx's default choice is tuned for square-ish products; the decode
 * products are skinny (n = batch rows, 3..256) and bandwidth-bound. At first
 * use of a batch size (before its CUDA graph is captured) the runner calls
 * gemm_lt_tune for each of its product shapes: the heuristic's candidates are
 * timed on the real weights and the fastest is kept, with its descriptors,
 * in a table sized at creation (no allocation afterwards). gemm_lt_run then
 * launches with that algorithm (graph-capturable: no sync, no allocation).
 * Owned by the runner; borrows its stream and cuBLAS workspace.
 */
#ifndef SGL_GEMM_LT_H
#define SGL_GEMM_LT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#include "runtime/status.h"

typedef struct GemmLt GemmLt;

/* Table for batch sizes 1..max_rows with up to per_rows shapes each.
 * SGL_E_NOMEM / SGL_E_DEVICE (cuBLASLt init), *out NULL. ws_d (ws_bytes) and
 * st are borrowed for the table's life. */
SglStatus gemm_lt_new(int max_rows, int per_rows, void *ws_d, size_t ws_bytes, cudaStream_t st, GemmLt **out,
                      SglErr *err);
void gemm_lt_free(GemmLt *g);

/* Times the candidates for this shape (synchronizes the stream; not while
 * capturing) and records the fastest. Overwrites Y (garbage: call it where
 * X and Y hold nothing live). SGL_OK also when the shape is already tuned,
 * out of the table's range or has no candidate (gemm_lt_run then declines);
 * SGL_E_DEVICE on a CUDA error. */
SglStatus gemm_lt_tune(GemmLt *g, const uint16_t *X, const uint16_t *W, float *Y, int n, int in, int out,
                       float beta, SglErr *err);

/* Launches the tuned algorithm on the stream; false (nothing launched) when
 * the shape has no tuned entry or the launch failed (*bad set to the cuBLAS
 * status then, 0 otherwise). */
bool gemm_lt_run(GemmLt *g, const uint16_t *X, const uint16_t *W, float *Y, int n, int in, int out, float beta,
                 int *bad);

#endif

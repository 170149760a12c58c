/* safetensors.h -- read-only access to one .safetensors file.
 *
 * Format: an 8-byte little-endian header length N, then N bytes of JSON
 * {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
 * "__metadata__": {...}}, then the data region; offsets are relative to its
 * start. The whole file is mmap'd read-only; every offset, shape and byte
 * count is checked against the file size before any tensor is handed out, so
 * a corrupt file yields SGL_E_FORMAT and never an out-of-bounds read.
 * Only F32, F16 and BF16 tensors are accepted (others: SGL_E_UNSUPPORTED).
 * Used by model.c; the model loader owns the SglStFile values.
 */
#ifndef SGL_SAFETENSORS_H
#define SGL_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/model.h"
#include "runtime/status.h"

#define SGL_ST_MAX_DIMS 4

typedef struct {
    char *name;                      /* owned by the SglStFile */
    SglDType dtype;
    int ndim;
    int64_t shape[SGL_ST_MAX_DIMS];
    const void *data;                /* inside the mapping; may be unaligned */
    int64_t n_bytes;
} SglStTensor;

/* Caller-provided storage; zero it or let sgl_st_init fill it. */
typedef struct {
    char *path;                      /* owned copy */
    void *map;                       /* (map_len) bytes, PROT_READ */
    size_t map_len;
    SglStTensor *tensors;            /* (n_tensors), sorted by name */
    int n_tensors;
} SglStFile;

/* Opens and validates path. SGL_E_IO (cannot open/map), SGL_E_FORMAT (bad
 * header, offsets out of range, size mismatch), SGL_E_UNSUPPORTED (dtype),
 * each with err naming the file (and tensor). On failure f holds nothing and
 * needs no deinit; on success release it with sgl_st_deinit. */
SglStatus sgl_st_init(SglStFile *f, const char *path, SglErr *err);
void sgl_st_deinit(SglStFile *f);

/* The tensor called name, or NULL. Pure lookup (binary search). */
const SglStTensor *sgl_st_find(const SglStFile *f, const char *name);

/* Bytes per element of a dtype (4, 2, 2). */
int sgl_dtype_size(SglDType dt);

#endif

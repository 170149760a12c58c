/* comm_nccl.c -- SglComm over NCCL (comm_nccl.h).
 *
 * Each endpoint wraps one ncclComm_t and the CUDA device it was created on.
 * all_reduce_sum is ncclAllReduce(sum) in place; all_gather is ncclAllGather
 * (rank order). Both only enqueue on the given stream, so they are legal
 * inside CUDA graph capture. Without SGL_HAVE_NCCL (no NCCL found at build
 * time) the file still compiles and every entry point says so.
 */
#include "runtime/comm_nccl.h"

#include <stdlib.h>
#include <string.h>

#ifdef SGL_HAVE_NCCL

#include <cuda_runtime_api.h>
#include <nccl.h>

_Static_assert(sizeof(ncclUniqueId) == SGL_NCCL_ID_BYTES, "SGL_NCCL_ID_BYTES is sizeof(ncclUniqueId)");

typedef struct {
    SglComm base;
    ncclComm_t nc;
    int device;
} NcclComm;

static ncclDataType_t nccl_type(SglCommType t) { return t == SGL_COMM_BF16 ? ncclBfloat16 : ncclFloat32; }

static SglStatus nccl_error(SglErr *err, const char *call, ncclResult_t r, ncclComm_t c)
{
    const char *last = ncclGetLastError(c);
    return sgl_err(err, SGL_E_DEVICE, "nccl: %s: %s%s%s", call, ncclGetErrorString(r),
                   last && *last ? ": " : "", last ? last : "");
}

static SglStatus nccl_all_reduce_sum(SglComm *c, void *buf, int64_t n, SglCommType t, void *stream,
                                     SglErr *err)
{
    NcclComm *k = (NcclComm *)c;
    if (n < 0) return sgl_err(err, SGL_E_INVAL, "nccl: all_reduce_sum of %lld elements", (long long)n);
    if (n == 0) return SGL_OK;
    ncclResult_t r = ncclAllReduce(buf, buf, (size_t)n, nccl_type(t), ncclSum, k->nc, (cudaStream_t)stream);
    return r == ncclSuccess ? SGL_OK : nccl_error(err, "ncclAllReduce", r, k->nc);
}

static SglStatus nccl_all_gather(SglComm *c, const void *in, void *out, int64_t n, SglCommType t,
                                 void *stream, SglErr *err)
{
    NcclComm *k = (NcclComm *)c;
    if (n < 0) return sgl_err(err, SGL_E_INVAL, "nccl: all_gather of %lld elements", (long long)n);
    if (n == 0) return SGL_OK;
    ncclResult_t r = ncclAllGather(in, out, (size_t)n, nccl_type(t), k->nc, (cudaStream_t)stream);
    return r == ncclSuccess ? SGL_OK : nccl_error(err, "ncclAllGather", r, k->nc);
}

/* Destroys on the endpoint's own device (NCCL frees device buffers there)
 * and puts the caller's device back. */
static void nccl_free(SglComm *c)
{
    NcclComm *k = (NcclComm *)c;
    if (!k) return;
    if (k->nc) {
        int prev = -1;
        bool have_prev = cudaGetDevice(&prev) == cudaSuccess;
        cudaSetDevice(k->device);
        ncclCommDestroy(k->nc);
        if (have_prev) cudaSetDevice(prev);
    }
    free(k);
}

static const SglCommOps nccl_ops = {"nccl", nccl_all_reduce_sum, nccl_all_gather, nccl_free};

bool sgl_comm_nccl_built(void) { return true; }

SglStatus sgl_comm_nccl_unique_id(uint8_t id[SGL_NCCL_ID_BYTES], SglErr *err)
{
    ncclUniqueId u;
    setenv("NCCL_NVLS_ENABLE", "0", 0); /* the bootstrap reads the environment too */
    ncclResult_t r = ncclGetUniqueId(&u);
    if (r != ncclSuccess) return nccl_error(err, "ncclGetUniqueId", r, NULL);
    memcpy(id, &u, sizeof u);
    return SGL_OK;
}

SglStatus sgl_comm_nccl_new(const uint8_t id[SGL_NCCL_ID_BYTES], int size, int rank0, int n_local,
                            const int *devices, SglComm **out, SglErr *err)
{
    if (out)
        for (int i = 0; i < n_local; i++) out[i] = NULL;
    if (!id || !devices || !out || size < 1 || n_local < 1 || rank0 < 0 || rank0 > size - n_local)
        return sgl_err(err, SGL_E_INVAL, "nccl: bad group (size %d, first rank %d, %d local ranks)",
                       size, rank0, n_local);
    /* NVLink multicast (NVLS) stays off on shared hosts unless the user set it */
    setenv("NCCL_NVLS_ENABLE", "0", 0);
    ncclUniqueId u;
    memcpy(&u, id, sizeof u);
    SglStatus st = SGL_OK;
    int prev = -1;
    bool have_prev = cudaGetDevice(&prev) == cudaSuccess;
    for (int i = 0; i < n_local; i++) {
        NcclComm *k = calloc(1, sizeof *k);
        if (!k) {
            st = sgl_err(err, SGL_E_NOMEM, "nccl: out of host memory");
            goto fail;
        }
        k->base.ops = &nccl_ops;
        k->base.rank = rank0 + i;
        k->base.size = size;
        k->device = devices[i];
        out[i] = &k->base;
    }
    ncclResult_t r = ncclGroupStart();
    if (r != ncclSuccess) {
        st = nccl_error(err, "ncclGroupStart", r, NULL);
        goto fail;
    }
    for (int i = 0; i < n_local && st == SGL_OK; i++) {
        NcclComm *k = (NcclComm *)out[i];
        cudaError_t ce = cudaSetDevice(k->device);
        if (ce != cudaSuccess) {
            st = sgl_err(err, SGL_E_DEVICE, "nccl: cudaSetDevice(%d) for rank %d: %s", k->device,
                         k->base.rank, cudaGetErrorString(ce));
            break;
        }
        r = ncclCommInitRank(&k->nc, size, u, k->base.rank);
        if (r != ncclSuccess) st = nccl_error(err, "ncclCommInitRank", r, NULL);
    }
    r = ncclGroupEnd(); /* the group must be closed even after a failure inside it */
    if (st == SGL_OK && r != ncclSuccess) st = nccl_error(err, "ncclGroupEnd (communicator init)", r, NULL);
    if (st != SGL_OK) goto fail;
    if (have_prev) cudaSetDevice(prev);
    return SGL_OK;
fail:
    for (int i = 0; i < n_local; i++) {
        NcclComm *k = (NcclComm *)out[i];
        if (k && k->nc) ncclCommAbort(k->nc); /* a half-made group: do not wait for the others */
        free(k);
        out[i] = NULL;
    }
    if (have_prev) cudaSetDevice(prev);
    return st;
}

#else /* !SGL_HAVE_NCCL */

bool sgl_comm_nccl_built(void) { return false; }

SglStatus sgl_comm_nccl_unique_id(uint8_t id[SGL_NCCL_ID_BYTES], SglErr *err)
{
    (void)id;
    return sgl_err(err, SGL_E_UNSUPPORTED, "nccl: this build has no NCCL (configure with -Dcuda=enabled "
                   "where libnccl and nccl.h are installed)");
}

SglStatus sgl_comm_nccl_new(const uint8_t id[SGL_NCCL_ID_BYTES], int size, int rank0, int n_local,
                            const int *devices, SglComm **out, SglErr *err)
{
    (void)id, (void)size, (void)rank0, (void)devices;
    if (out)
        for (int i = 0; i < n_local; i++) out[i] = NULL;
    return sgl_comm_nccl_unique_id(NULL, err);
}

#endif

SglStatus sgl_comm_nccl_new_local(int n, const int *devices, SglComm **out, SglErr *err)
{
    uint8_t id[SGL_NCCL_ID_BYTES];
    if (out)
        for (int i = 0; i < n; i++) out[i] = NULL;
    if (n < 1 || !devices || !out)
        return sgl_err(err, SGL_E_INVAL, "nccl: a local group needs at least one device");
    SglStatus st = sgl_comm_nccl_unique_id(id, err);
    if (st != SGL_OK) return st;
    return sgl_comm_nccl_new(id, n, 0, n, devices, out, err);
}

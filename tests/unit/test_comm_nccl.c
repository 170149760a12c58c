/* test_comm_nccl.c -- the NCCL communicator's contract on any machine:
 * bad groups are SGL_E_INVAL with nothing made; a build without NCCL says so
 * (SGL_E_UNSUPPORTED); with NCCL but no usable GPU creation fails with a
 * status and leaves no endpoint; with a GPU a one-rank group sums and
 * gathers (identity) on a stream, which is the path every rank takes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "runtime/comm_nccl.h"

#ifdef SGL_HAVE_NCCL
#include <cuda_runtime_api.h>
#endif

static void test_bad_groups(void **state)
{
    (void)state;
    uint8_t id[SGL_NCCL_ID_BYTES] = {0};
    int dev[2] = {0, 1};
    SglComm *out[2] = {(SglComm *)&out, (SglComm *)&out};
    SglErr err = {{0}};
#ifdef SGL_HAVE_NCCL
    SglStatus want = SGL_E_INVAL;
#else
    SglStatus want = SGL_E_UNSUPPORTED;
#endif
    assert_int_equal(sgl_comm_nccl_new(id, 0, 0, 1, dev, out, &err), want);
    assert_null(out[0]);
    assert_int_equal(sgl_comm_nccl_new(id, 2, 1, 2, dev, out, &err), want); /* ranks 1..2 of 2 */
    assert_int_equal(sgl_comm_nccl_new(id, 2, -1, 1, dev, out, &err), want);
    assert_int_equal(sgl_comm_nccl_new(id, 2, 0, 0, dev, out, &err), want);
    assert_int_equal(sgl_comm_nccl_new_local(0, dev, out, &err), SGL_E_INVAL);
    assert_true(strlen(err.msg) > 0);
}

static void test_built_flag(void **state)
{
    (void)state;
#ifdef SGL_HAVE_NCCL
    assert_true(sgl_comm_nccl_built());
#else
    SglErr err = {{0}};
    uint8_t id[SGL_NCCL_ID_BYTES];
    assert_false(sgl_comm_nccl_built());
    assert_int_equal(sgl_comm_nccl_unique_id(id, &err), SGL_E_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "no NCCL"));
#endif
}

#ifdef SGL_HAVE_NCCL
static int have_gpu(void)
{
    int n = 0;
    return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

/* No GPU: an error status, no endpoint, no crash. One GPU: a one-rank group
 * whose all-reduce and all-gather return their input, on a stream. */
static void test_one_rank(void **state)
{
    (void)state;
    int dev = 0;
    SglComm *c = (SglComm *)&dev;
    SglErr err = {{0}};
    SglStatus st = sgl_comm_nccl_new_local(1, &dev, &c, &err);
    if (!have_gpu()) {
        assert_int_not_equal(st, SGL_OK);
        assert_null(c);
        assert_true(strlen(err.msg) > 0);
        return;
    }
    assert_int_equal(st, SGL_OK);
    assert_non_null(c);
    assert_int_equal(c->rank, 0);
    assert_int_equal(c->size, 1);
    assert_string_equal(c->ops->name, "nccl");
    float h[5] = {1.5f, -2.0f, 3.25f, 0.0f, 7.0f}, back[5] = {0}, *d = NULL, *g = NULL;
    cudaStream_t s = NULL;
    assert_int_equal(cudaSetDevice(0), cudaSuccess);
    assert_int_equal(cudaStreamCreate(&s), cudaSuccess);
    assert_int_equal(cudaMalloc((void **)&d, sizeof h), cudaSuccess);
    assert_int_equal(cudaMalloc((void **)&g, sizeof h), cudaSuccess);
    assert_int_equal(cudaMemcpy(d, h, sizeof h, cudaMemcpyHostToDevice), cudaSuccess);
    assert_int_equal(c->ops->all_reduce_sum(c, d, 5, SGL_COMM_F32, s, &err), SGL_OK);
    assert_int_equal(c->ops->all_gather(c, d, g, 5, SGL_COMM_F32, s, &err), SGL_OK);
    assert_int_equal(c->ops->all_reduce_sum(c, d, -1, SGL_COMM_F32, s, &err), SGL_E_INVAL);
    assert_int_equal(cudaStreamSynchronize(s), cudaSuccess);
    assert_int_equal(cudaMemcpy(back, g, sizeof h, cudaMemcpyDeviceToHost), cudaSuccess);
    assert_memory_equal(back, h, sizeof h);
    cudaFree(d);
    cudaFree(g);
    cudaStreamDestroy(s);
    sgl_comm_free(c);
}
#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_groups),
        cmocka_unit_test(test_built_flag),
#ifdef SGL_HAVE_NCCL
        cmocka_unit_test(test_one_rank),
#endif
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

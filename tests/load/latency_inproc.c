/* latency_inproc.c -- the in-process side of the batch-1 server overhead
 * measurement: the same greedy request as `http_load latency` (prompt
 * "Once upon a time" with BOS, N tokens, ignore_eos), through
 * sgl_engine_encode + sgl_engine_generate in this process, timed end to end.
 *
 *   latency_inproc MODEL_DIR [N_REQUESTS=200] [MAX_NEW_TOKENS=32]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime/engine.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: latency_inproc MODEL_DIR [N] [MAX_NEW_TOKENS]\n");
        return 2;
    }
    int n = argc > 2 ? atoi(argv[2]) : 200, max_new = argc > 3 ? atoi(argv[3]) : 32;
    if (n < 1 || n > 100000 || max_new < 1 || max_new > 4096) {
        fprintf(stderr, "latency_inproc: bad N or MAX_NEW_TOKENS\n");
        return 2;
    }
    SglEngineOpts o;
    sgl_engine_opts_default(&o);
    o.model_dir = argv[1];
    SglEngine *e = NULL;
    SglErr err = {{0}};
    if (sgl_engine_open(&o, &e, &err) != SGL_OK) {
        fprintf(stderr, "latency_inproc: %s\n", err.msg);
        return 1;
    }
    double *t = calloc((size_t)n, sizeof *t), sum = 0;
    const char *prompt = "Once upon a time";
    int rc = 0;
    for (int i = -5; t && i < n; i++) {
        double t0 = now();
        int32_t *ids = NULL, n_ids = 0;
        SglRequest rq = {0};
        sgl_sampling_params_default(&rq.params);
        rq.params.max_new_tokens = max_new;
        rq.params.temperature = 0;
        rq.params.ignore_eos = true;
        SglGenResult res;
        if (sgl_engine_encode(e, prompt, strlen(prompt), true, &ids, &n_ids) != SGL_OK) {
            rc = 1;
            break;
        }
        rq.input_ids = ids;
        rq.n_input = n_ids;
        SglStatus st = sgl_engine_generate(e, &rq, &res, &err);
        free(ids);
        if (st != SGL_OK) {
            fprintf(stderr, "latency_inproc: %s\n", err.msg);
            rc = 1;
            break;
        }
        sgl_gen_result_free(&res);
        if (i >= 0) {
            t[i] = now() - t0;
            sum += t[i];
        }
    }
    if (rc == 0 && t) {
        qsort(t, (size_t)n, sizeof *t, cmp_double);
        printf("inproc: %d requests of %d tokens at batch 1: median %.3f ms (mean %.3f)\n", n, max_new,
               t[n / 2] * 1e3, sum / n * 1e3);
    }
    free(t);
    sgl_engine_close(e);
    return rc;
}

/* gpu_decode_bench.c -- time the CUDA runner's decode step at batch B with C
 * tokens of context, apart from the engine, to split a step's cost into GPU
 * work and the logits' trip to the host.
 *
 *   gpu_decode_bench --model DIR [--dummy] [--batch B] [--ctx C] [--steps S]
 *
 * Prefills B random prompts of C tokens (chunks of at most 8192 tokens), then
 * times S decode steps (host clock, median) in three ways:
 *   nologits_nograph: no logit rows (the step still ends with a stream sync):
 *                     the GPU work of the layers alone, kernels launched;
 *   logits_nograph:   plus final norm, lm_head and the copy of B x vocab fp32
 *                     logits to the host;
 *   logits_graph:     the same replayed as a CUDA graph (what the engine runs).
 * --dummy: shapes only, weights generated on the device (sgl_model_dummy_shapes).
 * Prints one JSON object. Exit 0 ok, 1 error, 77 no GPU.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime/model.h"
#include "runtime/runner.h"
#include "runtime/runner_cuda.h"

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    const char *dir = NULL;
    int B = 64, C = 1024, S = 16, dummy = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--dummy")) dummy = 1;
        else if (i + 1 < argc && !strcmp(argv[i], "--model")) dir = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--batch")) B = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--ctx")) C = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--steps")) S = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: gpu_decode_bench --model DIR [--dummy] [--batch B] [--ctx C] [--steps S]\n");
            return 2;
        }
    }
    if (!dir || B < 1 || B > 1024 || C < 1 || C > 32768 || S < 1 || S > 1000) {
        fprintf(stderr, "gpu_decode_bench: need --model; 1 <= B <= 1024, 1 <= C <= 32768, 1 <= S <= 1000\n");
        return 2;
    }
    SglErr err = {{0}};
    if (sgl_runner_cuda_available(&err) != SGL_OK) {
        fprintf(stderr, "gpu_decode_bench: %s\n", err.msg);
        return 77;
    }
    SglModel *m = NULL;
    SglRunner *r = NULL;
    int rc = 1;
    int64_t L = (int64_t)C + 3 * S + 1, n_slots = (int64_t)B * L;
    int T = 8192 > B ? 8192 : B;
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)T), *pos = malloc(sizeof(int32_t) * (size_t)T);
    int32_t *slots = malloc(sizeof(int32_t) * (size_t)n_slots);
    int32_t *seq_off = malloc(sizeof(int32_t) * (size_t)(B + 1)), *slot_off = malloc(sizeof(int32_t) * (size_t)(B + 1));
    int32_t *kv = malloc(sizeof(int32_t) * (size_t)B), *rows = malloc(sizeof(int32_t) * (size_t)B);
    float *logits = NULL;
    double *t = malloc(sizeof(double) * (size_t)S);
    if (!tok || !pos || !slots || !seq_off || !slot_off || !kv || !rows || !t) goto oom;
    SglStatus st = sgl_model_load(dir, dummy ? SGL_LOAD_DUMMY_SHAPES : SGL_LOAD_AUTO, &m, &err);
    if (st) goto fail;
    int V = m->cfg.vocab_size;
    if (!(logits = malloc(sizeof(float) * (size_t)B * (size_t)V))) goto oom;
    SglRunnerOpts o = {n_slots, T, B, 0, B};
    if ((st = sgl_runner_cuda_new(m, &o, &r, &err))) goto fail;
    for (int64_t i = 0; i < n_slots; i++) slots[i] = (int32_t)i; /* sequence s owns [s*L, (s+1)*L) */
    uint64_t rng = 12345;
    /* prefill: each sequence in chunks of up to T tokens, one sequence per forward */
    for (int s = 0; s < B; s++)
        for (int c0 = 0; c0 < C; c0 += T) {
            int n = C - c0 < T ? C - c0 : T;
            for (int k = 0; k < n; k++) {
                rng = rng * 6364136223846793005ull + 1442695040888963407ull;
                tok[k] = 3 + (int32_t)((rng >> 33) % (uint64_t)(V - 3));
                pos[k] = c0 + k;
            }
            int32_t so[2] = {0, n}, kl[1] = {c0 + n}, sl[2] = {0, (int32_t)L};
            SglBatch b = {1, n, tok, pos, so, kl, sl, slots + (int64_t)s * L, 0, rows};
            if ((st = sgl_runner_forward(r, &b, NULL, &err))) goto fail;
        }
    double res[3];
    for (int mode = 0; mode < 3; mode++) {
        sgl_runner_cuda_set_graphs(r, mode == 2);
        for (int i = 0; i <= S; i++) { /* step 0 warms up (graph capture) */
            int ctx = C + mode * S + i; /* tokens cached before this step */
            for (int s = 0; s < B; s++) {
                tok[s] = 3 + (s * 7 + i) % (V - 3);
                pos[s] = ctx;
                seq_off[s] = s;
                kv[s] = ctx + 1;
                slot_off[s] = (int32_t)(s * L);
                rows[s] = s;
            }
            seq_off[B] = B;
            slot_off[B] = (int32_t)(B * L);
            SglBatch b = {B, B, tok, pos, seq_off, kv, slot_off, slots, mode ? B : 0, rows};
            double t0 = now_ms();
            if ((st = sgl_runner_forward(r, &b, mode ? logits : NULL, &err))) goto fail;
            if (i > 0) t[i - 1] = now_ms() - t0;
        }
        qsort(t, (size_t)S, sizeof *t, cmp_d);
        res[mode] = t[S / 2];
    }
    printf("{\"batch\": %d, \"ctx\": %d, \"steps\": %d, \"nologits_nograph_ms\": %.4f, "
           "\"logits_nograph_ms\": %.4f, \"logits_graph_ms\": %.4f}\n", B, C, S, res[0], res[1], res[2]);
    rc = 0;
    goto out;
oom:
    fprintf(stderr, "gpu_decode_bench: out of memory\n");
    goto out;
fail:
    fprintf(stderr, "gpu_decode_bench: %s: %s\n", sgl_status_str(st), err.msg);
out:
    sgl_runner_free(r);
    sgl_model_free(m);
    free(tok); free(pos); free(slots); free(seq_off); free(slot_off); free(kv); free(rows);
    free(logits); free(t);
    return rc;
}

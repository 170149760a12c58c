/* bench_runner.c -- runner-only decode throughput (no scheduler, no sampler).
 *
 * For stories260K (from $SGL_SHARED_DIR, default ../shared) and a dummy-weight
 * model of SmolLM2-135M's shape: prefill B sequences of CTX0 tokens, then time
 * decode steps of one token per sequence, so the context runs from CTX0 to
 * CTX0 + steps (average ~128 with the defaults). Prints the best of R repeats,
 * in wall time and in the thread's CPU time (robust on a shared machine).
 *
 *   bench_runner [--steps N] [--repeats R] [--threads T] [--batch B] [--shuffle]
 *                [--only stories|smollm]
 * (--batch B runs only batch size B instead of 1 and 32.)
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime/model.h"
#include "runtime/runner.h"

enum { CTX0 = 96 };

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* CPU time of the calling thread: on a shared machine this is what the
 * runner itself spent, whoever else is running (threads=1 only). */
static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct {
    int32_t *tokens, *positions, *seq_off, *kv_len, *slot_off, *slots, *logit_rows;
} Bufs;

/* Fills a batch of B sequences that each add n_new tokens to kv_before cached
 * ones; sequence s owns slots perm[s*per .. s*per+per). */
static SglBatch make_batch(Bufs *b, int B, int n_new, int kv_before, const int32_t *perm, int per, int V,
                           uint64_t *rng)
{
    int t = 0, sl = 0;
    b->seq_off[0] = b->slot_off[0] = 0;
    for (int s = 0; s < B; s++) {
        for (int j = 0; j < n_new; j++, t++) {
            *rng = *rng * 6364136223846793005ull + 1442695040888963407ull;
            b->tokens[t] = (int32_t)((*rng >> 33) % (uint64_t)V);
            b->positions[t] = kv_before + j;
        }
        b->logit_rows[s] = t - 1;
        for (int j = 0; j < kv_before + n_new; j++)
            b->slots[sl++] = perm[s * per + j];
        b->kv_len[s] = kv_before + n_new;
        b->seq_off[s + 1] = t;
        b->slot_off[s + 1] = sl;
    }
    return (SglBatch){.n_seqs = B, .n_tokens = t, .tokens = b->tokens, .positions = b->positions,
                      .seq_off = b->seq_off, .kv_len = b->kv_len, .slot_off = b->slot_off,
                      .slots = b->slots, .n_logits = B, .logit_rows = b->logit_rows};
}

static int bench(const char *label, const SglModel *m, int B, int steps, int repeats, int threads, bool shuffle)
{
    const int per = CTX0 + steps, V = m->cfg.vocab_size;
    SglRunnerOpts o = {.n_slots = (int64_t)B * per, .max_batch_tokens = B * CTX0, .max_seqs = B,
                       .n_threads = threads};
    SglRunner *r = NULL;
    SglErr err = {{0}};
    if (sgl_runner_cpu_new(m, &o, &r, &err) != SGL_OK) {
        fprintf(stderr, "bench_runner: %s\n", err.msg);
        return 1;
    }
    Bufs b;
    int64_t nt = (int64_t)B * CTX0;
    b.tokens = malloc(sizeof(int32_t) * (size_t)nt);
    b.positions = malloc(sizeof(int32_t) * (size_t)nt);
    b.seq_off = malloc(sizeof(int32_t) * (size_t)(B + 1));
    b.kv_len = malloc(sizeof(int32_t) * (size_t)B);
    b.slot_off = malloc(sizeof(int32_t) * (size_t)(B + 1));
    b.slots = malloc(sizeof(int32_t) * (size_t)B * (size_t)per);
    b.logit_rows = malloc(sizeof(int32_t) * (size_t)B);
    int32_t *perm = malloc(sizeof(int32_t) * (size_t)B * (size_t)per);
    float *logits = malloc(sizeof(float) * (size_t)B * (size_t)V);
    uint64_t rng = 42;
    /* Slots as a fresh page-size-1 KV pool hands them out: each prompt gets a
     * contiguous run, then every decode step gives each sequence the next
     * free slot (so a sequence's decode slots are B apart). --shuffle instead
     * scatters every slot at random (a long-running, fragmented pool). */
    for (int s = 0; s < B; s++)
        for (int j = 0; j < per; j++)
            perm[s * per + j] = j < CTX0 ? s * CTX0 + j : B * CTX0 + (j - CTX0) * B + s;
    if (shuffle)
        for (int i = B * per - 1; i > 0; i--) {
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            int j = (int)((rng >> 33) % (uint64_t)(i + 1));
            int32_t t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
        }
    double best = 1e30, best_cpu = 1e30, prefill = 0;
    int rc = 0;
    for (int rep = 0; rep < repeats && rc == 0; rep++) {
        SglBatch pb = make_batch(&b, B, CTX0, 0, perm, per, V, &rng);
        double t0 = now_s();
        rc |= sgl_runner_forward(r, &pb, logits, &err) != SGL_OK;
        prefill = now_s() - t0;
        t0 = now_s();
        double c0 = cpu_s();
        for (int s = 0; s < steps && rc == 0; s++) {
            SglBatch db = make_batch(&b, B, 1, CTX0 + s, perm, per, V, &rng);
            rc |= sgl_runner_forward(r, &db, logits, &err) != SGL_OK;
        }
        double dt = now_s() - t0, dc = cpu_s() - c0;
        best = dt < best ? dt : best;
        best_cpu = dc < best_cpu ? dc : best_cpu;
    }
    if (rc)
        fprintf(stderr, "bench_runner: forward: %s\n", err.msg);
    else
        printf("%-12s batch %2d  ctx %d..%d  prefill %8.2f ms  decode %8.1f us/step %9.0f tok/s"
               "  (cpu time: %8.1f us/step %9.0f tok/s)\n", label, B, CTX0, CTX0 + steps, prefill * 1e3,
               best / steps * 1e6, (double)B * steps / best, best_cpu / steps * 1e6,
               (double)B * steps / best_cpu);
    free(b.tokens); free(b.positions); free(b.seq_off); free(b.kv_len); free(b.slot_off);
    free(b.slots); free(b.logit_rows); free(perm); free(logits);
    sgl_runner_free(r);
    return rc;
}

int main(int argc, char **argv)
{
    int steps = 64, repeats = 5, threads = 1, batch = 0;
    bool shuffle = false;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--steps") && i + 1 < argc) steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--repeats") && i + 1 < argc) repeats = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc) batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--shuffle")) shuffle = true;
        else {
            fprintf(stderr, "usage: bench_runner [--steps N] [--repeats R] [--threads T] "
                            "[--batch B] [--shuffle] [--only stories|smollm]\n");
            return 2;
        }
    }
    if (steps < 1 || repeats < 1) {
        fprintf(stderr, "bench_runner: --steps and --repeats must be >= 1\n");
        return 2;
    }
    const char *shared = getenv("SGL_SHARED_DIR");
    if (!shared)
        shared = "../shared";
    char dir[4096];
    int rc = 0;
    SglErr err = {{0}};
    if (!only || !strcmp(only, "stories")) {
        SglModel *m = NULL;
        snprintf(dir, sizeof dir, "%s/models/stories260K-hf", shared);
        if (sgl_model_load(dir, SGL_LOAD_AUTO, &m, &err) != SGL_OK) {
            fprintf(stderr, "bench_runner: %s\n", err.msg);
            return 1;
        }
        for (int bs = 1; bs <= 32; bs += 31)
            if (!batch || batch == bs)
                rc |= bench("stories260K", m, batch ? batch : bs, steps, repeats, threads, shuffle);
        sgl_model_free(m);
    }
    if (!only || !strcmp(only, "smollm")) {
        SglModel *m = NULL;
        snprintf(dir, sizeof dir, "%s/models/smollm2-135m-tokenizer", shared);
        if (sgl_model_load(dir, SGL_LOAD_DUMMY, &m, &err) != SGL_OK) {
            fprintf(stderr, "bench_runner: %s\n", err.msg);
            return 1;
        }
        int s = steps < 16 ? steps : 16;
        for (int bs = 1; bs <= 32; bs += 31)
            if (!batch || batch == bs)
                rc |= bench("smollm2-135M", m, batch ? batch : bs, s, repeats < 3 ? repeats : 3, threads, shuffle);
        sgl_model_free(m);
    }
    return rc;
}

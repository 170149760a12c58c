/* gpu_forward.c -- drive a runner (CUDA by default, --cpu for the reference)
 * on a model directory and print the results as one JSON object, for
 * tests/gpu/check_transformers.py and run_all.sh.
 *
 *   gpu_forward [--cpu] --model DIR --prompt-ids 1,2,3 [--steps N] [--chunk K]
 *               [--batch B] [--no-logits] [--dummy] [--no-graph] [--no-gemv] [--variants]
 *
 * Runs (1) the prompt as one prefill, then N greedy decode steps, one
 * sequence, slots taken from a shuffled pool; (2) the same prompt prefilled in
 * two pieces (K tokens, then the rest: the extend path reading a cached prefix);
 * (3) the prompt batched with B-1 other random prompts of mixed lengths (one of
 * them sharing the prompt's first half via the same slots), then N greedy steps
 * of all B together (batched decode); (4) logits for every prompt row in one
 * forward; (5, CUDA only) the runner's error contract. Prints
 *   {"runner", "prompt_len", "logits": [last prompt position, fp32],
 *    "greedy_ids": [...], "chunked_max_abs": d2, "batched_max_abs": d3,
 *    "batched_greedy_ids": [...], "margins": [top1 - top2 logit per greedy step],
 *    "decode_ms": mean ms per single-seq step (host clock, includes the copy back),
 *    "errors_ok": (CUDA only) the error contract held: see check_errors,
 *    "extend_logits", "extend_max_abs": (CUDA only) the last prompt token re-run
 *      as a 1-token extend over the cached prefix (decode kernels), and its max
 *      abs difference from "logits"; "extend_repeat_max_abs": the same extend
 *      after the error probes vs before them (0 unless state was corrupted),
 *    "prefill_ms": the single prefill, "init_ms": model load + runner creation,
 *    "all_rows_max_abs": logits of every prompt row in one forward, last row vs (1)}
 * --dummy: DIR needs only config.json; weights are random (SGL_LOAD_DUMMY_SHAPES on
 * the GPU: generated there; SGL_LOAD_DUMMY with --cpu), for timing.
 * CUDA graphs are on for decode batches up to B (--no-graph: off, "graph_replays"
 * counts them); --no-gemv sends the few-row products to cuBLAS instead;
 * --variants re-times the decode steps in all four combinations.
 * Exit 0 on success, 1 on any error (message on stderr), 77 when no GPU.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime/model.h"
#include "runtime/runner.h"
#include "runtime/runner_cuda.h"

#define MAX_SEQS 16

typedef struct {
    int32_t tokens[8192], positions[8192], seq_off[MAX_SEQS + 1], kv_len[MAX_SEQS];
    int32_t slot_off[MAX_SEQS + 1], logit_rows[MAX_SEQS];
    int32_t *slots; /* (slot_cap) */
} Batch;

static uint64_t rng = 88172645463325252ull;
static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)rng;
}

static int argmax(const float *x, int n)
{
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

/* Gap between the largest and second-largest logit: how close greedy was to a tie. */
static float margin(const float *x, int n)
{
    int b = argmax(x, n);
    float second = -INFINITY;
    for (int i = 0; i < n; i++)
        if (i != b && x[i] > second) second = x[i];
    return n > 1 ? x[b] - second : INFINITY;
}

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

/* One sequence's state: its full token list and its slot list. */
typedef struct {
    int32_t ids[8192];
    int32_t slots[8192];
    int len;      /* tokens whose KV is cached */
    int n_ids;    /* tokens known (cached + pending) */
} Seq;

/* Runs one forward step over seqs[0..ns): each sequence feeds its pending
 * tokens (ids[len..n_ids)) and gets logits for its last one. */
static int step(SglRunner *r, Batch *b, Seq **seqs, int ns, float *logits)
{
    int n = 0, so = 0;
    b->seq_off[0] = 0;
    b->slot_off[0] = 0;
    for (int s = 0; s < ns; s++) {
        Seq *q = seqs[s];
        for (int t = q->len; t < q->n_ids; t++, n++) {
            b->tokens[n] = q->ids[t];
            b->positions[n] = t;
        }
        b->seq_off[s + 1] = n;
        b->kv_len[s] = q->n_ids;
        memcpy(b->slots + so, q->slots, sizeof(int32_t) * (size_t)q->n_ids);
        so += q->n_ids;
        b->slot_off[s + 1] = so;
        b->logit_rows[s] = n - 1;
    }
    SglBatch sb = {ns, n, b->tokens, b->positions, b->seq_off, b->kv_len, b->slot_off, b->slots,
                   logits ? ns : 0, b->logit_rows};
    SglErr err = {{0}};
    SglStatus st = sgl_runner_forward(r, &sb, logits, &err);
    if (st) {
        fprintf(stderr, "gpu_forward: forward: %s: %s\n", sgl_status_str(st), err.msg);
        return -1;
    }
    for (int s = 0; s < ns; s++) seqs[s]->len = seqs[s]->n_ids;
    return 0;
}

/* Runs one forward over a hand-made batch; returns its status. */
static SglStatus raw_forward(SglRunner *r, int n, const int32_t *tok, const int32_t *pos,
                             int32_t kv, const int32_t *slots, float *logits, SglErr *err)
{
    int32_t seq_off[2] = {0, n}, kv_len[1] = {kv}, slot_off[2] = {0, kv}, row[1] = {n - 1};
    SglBatch sb = {1, n, tok, pos, seq_off, kv_len, slot_off, slots, logits ? 1 : 0, row};
    return sgl_runner_forward(r, &sb, logits, err);
}

/* The error contract of sgl_runner_cuda_new / forward. Returns 1 when every
 * check behaves as documented, 0 when one does not (printed on stderr), -1
 * on an unexpected failure of a valid call. The prompt's KV (main_seq's first
 * P slots) must be intact afterwards: its last token re-run as a 1-token
 * extend over the cached prefix (the decode path) gives logits ext[] before
 * the probes, and the same call after them must give bit-identical logits (a
 * rejected batch wrote nothing). ext[] itself differs from the prefill logits
 * by bf16 rounding only (another attention kernel and GEMM shape); the callers
 * judge it against the fp32 reference. */
static int check_errors(SglRunner *r, const SglModel *m, Batch *b, const Seq *q, int P,
                        float *ext, int V, float *logits, double *repeat_diff)
{
    int ok = 1;
    SglErr err = {{0}};
    int32_t last_tok = q->ids[P - 1], last_pos = P - 1;
    SglStatus st0 = raw_forward(r, 1, &last_tok, &last_pos, P, q->slots, ext, &err);
    if (st0) {
        fprintf(stderr, "gpu_forward: extend before the error probes failed: %s\n", err.msg);
        return -1;
    }
    int32_t tok[2] = {q->ids[0], q->ids[0]}, pos[2] = {0, 1}, bad_slots[2] = {-5, 1 << 30};
    SglStatus st = raw_forward(r, 1, tok, pos, 1, bad_slots, logits, &err);
    fprintf(stderr, "gpu_forward: bad slot -> %s: %s\n", sgl_status_str(st), err.msg);
    if (st != SGL_E_INVAL) ok = 0;
    pos[0] = 7; /* not kv_len - n_new */
    st = raw_forward(r, 1, tok, pos, 1, q->slots, logits, &err);
    fprintf(stderr, "gpu_forward: bad position -> %s: %s\n", sgl_status_str(st), err.msg);
    if (st != SGL_E_INVAL) ok = 0;
    st = raw_forward(r, r->opts.max_batch_tokens + 1, tok, pos, 1, q->slots, logits, &err);
    fprintf(stderr, "gpu_forward: oversized batch -> %s: %s\n", sgl_status_str(st), err.msg);
    if (st != SGL_E_INVAL) ok = 0;
    /* the cached prompt must be untouched: the same extend, the same bits */
    st = raw_forward(r, 1, &last_tok, &last_pos, P, q->slots, logits, &err);
    if (st) {
        fprintf(stderr, "gpu_forward: valid extend after errors failed: %s\n", err.msg);
        return -1;
    }
    double d = 0;
    for (int v = 0; v < V; v++) d = fmax(d, fabs(logits[v] - ext[v]));
    *repeat_diff = d;
    fprintf(stderr, "gpu_forward: extend over the cached prompt, after vs before the errors: "
                    "max abs %.3g (must be 0)\n", d);
    if (d != 0) ok = 0;
    SglRunnerOpts huge = r->opts;
    huge.n_slots = INT32_MAX; /* KV pool of ~2^31 tokens: more than any GPU has */
    SglRunner *r2 = NULL;
    st = sgl_runner_cuda_new(m, &huge, &r2, &err);
    fprintf(stderr, "gpu_forward: huge KV pool -> %s: %s\n", sgl_status_str(st), err.msg);
    if (st != SGL_E_NOMEM || r2) ok = 0;
    sgl_runner_free(r2);
    (void)b;
    return ok;
}

static void print_ids(const char *key, const int32_t *ids, int n)
{
    printf(", \"%s\": [", key);
    for (int i = 0; i < n; i++) printf("%s%d", i ? ", " : "", ids[i]);
    printf("]");
}

int main(int argc, char **argv)
{
    const char *dir = NULL, *ids_arg = NULL;
    int steps = 16, chunk = -1, nb = 4, use_cpu = 0, print_logits = 1, dummy = 0, no_graph = 0;
    int no_gemv = 0, variants = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--cpu")) use_cpu = 1;
        else if (!strcmp(argv[i], "--no-logits")) print_logits = 0;
        else if (!strcmp(argv[i], "--dummy")) dummy = 1;
        else if (!strcmp(argv[i], "--no-graph")) no_graph = 1;
        else if (!strcmp(argv[i], "--no-gemv")) no_gemv = 1;
        else if (!strcmp(argv[i], "--variants")) variants = 1;
        else if (i + 1 < argc && !strcmp(argv[i], "--model")) dir = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--prompt-ids")) ids_arg = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--steps")) steps = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--chunk")) chunk = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--batch")) nb = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: gpu_forward [--cpu] --model DIR --prompt-ids 1,2,3 [--steps N] "
                            "[--chunk K] [--batch B] [--no-logits] [--dummy] [--no-graph] [--no-gemv] [--variants]\n");
            return 2;
        }
    }
    if (!dir || !ids_arg || steps < 0 || steps > 4000 || nb < 1 || nb > MAX_SEQS) {
        fprintf(stderr, "gpu_forward: need --model and --prompt-ids; steps <= 4000, 1 <= batch <= %d\n",
                MAX_SEQS);
        return 2;
    }
    static Seq main_seq, chunk_seq, others[MAX_SEQS];
    int P = 0;
    for (const char *c = ids_arg; *c && P < 4000;) {
        main_seq.ids[P++] = (int32_t)strtol(c, (char **)&c, 10);
        while (*c == ',' || *c == ' ') c++;
    }
    if (P < 1) {
        fprintf(stderr, "gpu_forward: empty --prompt-ids\n");
        return 2;
    }
    if ((int64_t)nb * (P + steps) > 8192) {
        fprintf(stderr, "gpu_forward: batch x (prompt + steps) must stay <= 8192 tokens\n");
        return 2;
    }
    if (chunk < 0) chunk = P / 2;
    if (chunk >= P) chunk = P - 1;

    SglErr err = {{0}};
    SglModel *m = NULL;
    if (!use_cpu && sgl_runner_cuda_available(&err) != SGL_OK) {
        fprintf(stderr, "gpu_forward: %s\n", err.msg);
        return 77;
    }
    double t_load = now_ms();
    /* --dummy on the GPU: shapes only, the runner fills the weights on the device */
    SglStatus st = sgl_model_load(dir, dummy ? (use_cpu ? SGL_LOAD_DUMMY : SGL_LOAD_DUMMY_SHAPES) : SGL_LOAD_AUTO, &m, &err);
    if (st) {
        fprintf(stderr, "gpu_forward: %s: %s\n", sgl_status_str(st), err.msg);
        return 1;
    }
    int V = m->cfg.vocab_size, L = P + steps;
    /* every sequence gets its own slot range of L, shuffled over the pool */
    int64_t n_slots = (int64_t)(nb + 3) * L;
    int32_t *perm = malloc(sizeof(int32_t) * (size_t)n_slots);
    Batch *b = calloc(1, sizeof *b);
    float *logits = malloc(sizeof(float) * (size_t)V * (P > MAX_SEQS ? P : MAX_SEQS));
    float *first = malloc(sizeof(float) * (size_t)V);
    float *ext = malloc(sizeof(float) * (size_t)V);
    int32_t *greedy = malloc(sizeof(int32_t) * (size_t)(steps + 1));
    int32_t *bgreedy = malloc(sizeof(int32_t) * (size_t)(steps + 1));
    float *margins = malloc(sizeof(float) * (size_t)(steps + 1));
    if (b) b->slots = malloc(sizeof(int32_t) * (size_t)n_slots);
    int rc = 1;
    SglRunner *r = NULL;
    if (!perm || !b || !b->slots || !logits || !first || !ext || !greedy || !bgreedy || !margins) {
        fprintf(stderr, "gpu_forward: out of memory\n");
        goto out;
    }
    for (int64_t i = 0; i < n_slots; i++) perm[i] = (int32_t)i;
    for (int64_t i = n_slots - 1; i > 0; i--) {
        int64_t j = rnd() % (uint64_t)(i + 1);
        int32_t t = perm[i]; perm[i] = perm[j]; perm[j] = t;
    }
    SglRunnerOpts opts = {n_slots, nb * L > P ? nb * L : P, nb, 0, no_graph ? 0 : nb};
    if (opts.max_batch_tokens > 8192) opts.max_batch_tokens = 8192;
    st = use_cpu ? sgl_runner_cpu_new(m, &opts, &r, &err) : sgl_runner_cuda_new(m, &opts, &r, &err);
    if (st) {
        fprintf(stderr, "gpu_forward: runner: %s: %s\n", sgl_status_str(st), err.msg);
        rc = (!use_cpu && st == SGL_E_DEVICE && strstr(err.msg, "no usable CUDA device")) ? 77 : 1;
        goto out;
    }

    double init_ms = now_ms() - t_load;
    if (!use_cpu && no_gemv) sgl_runner_cuda_set_gemv(r, false);

    /* (1) one prefill + greedy decode */
    Seq *one[MAX_SEQS];
    main_seq.n_ids = P;
    memcpy(main_seq.slots, perm, sizeof(int32_t) * (size_t)L);
    one[0] = &main_seq;
    double t_pre = now_ms();
    if (step(r, b, one, 1, logits)) goto out;
    double prefill_ms = now_ms() - t_pre;
    memcpy(first, logits, sizeof(float) * (size_t)V);
    double t0 = now_ms();
    for (int i = 0; i <= steps; i++) {
        greedy[i] = argmax(logits, V);
        margins[i] = margin(logits, V);
        if (i == steps) break;
        main_seq.ids[main_seq.n_ids++] = greedy[i];
        if (step(r, b, one, 1, logits)) goto out;
    }
    double decode_ms = steps ? (now_ms() - t0) / steps : 0;

    /* --variants (CUDA): the same decode steps again (positions P.., same
     * slots, same tokens) with CUDA graphs on/off x sgl_k_gemv/cuBLAS */
    double var_ms[4] = {0, 0, 0, 0};
    if (variants && !use_cpu && steps > 0) {
        for (int v = 0; v < 4; v++) {
            sgl_runner_cuda_set_graphs(r, v < 2);
            sgl_runner_cuda_set_gemv(r, v % 2 == 0);
            for (int rep = 0; rep < 2; rep++) { /* first pass warms up (graph capture) */
                main_seq.len = P;
                main_seq.n_ids = P + 1;
                double tv = now_ms();
                for (int i = 0; i < steps; i++) {
                    if (step(r, b, one, 1, logits)) goto out;
                    main_seq.n_ids++;
                }
                var_ms[v] = (now_ms() - tv) / steps;
            }
        }
        sgl_runner_cuda_set_graphs(r, !no_graph);
        sgl_runner_cuda_set_gemv(r, !no_gemv);
        main_seq.len = main_seq.n_ids = P + steps;
    }

    /* (2) chunked prefill: chunk tokens, then the rest over the cached prefix */
    double chunk_diff = 0;
    memcpy(chunk_seq.ids, main_seq.ids, sizeof(int32_t) * (size_t)P);
    memcpy(chunk_seq.slots, perm + L, sizeof(int32_t) * (size_t)L);
    one[0] = &chunk_seq;
    chunk_seq.n_ids = chunk;
    if (chunk > 0 && step(r, b, one, 1, NULL)) goto out;
    chunk_seq.n_ids = P;
    if (step(r, b, one, 1, logits)) goto out;
    for (int v = 0; v < V; v++) chunk_diff = fmax(chunk_diff, fabs(logits[v] - first[v]));

    /* (3) batched: the prompt with nb-1 others; others[1] shares the first half
     * of the prompt through the same slots (a radix-cache hit) */
    double batch_diff = 0;
    Seq *all[MAX_SEQS];
    for (int s = 0; s < nb; s++) {
        Seq *q = &others[s];
        all[s] = q;
        memcpy(q->slots, perm + (int64_t)(2 + s) * L, sizeof(int32_t) * (size_t)L);
        q->len = 0;
        if (s == 0) {
            memcpy(q->ids, main_seq.ids, sizeof(int32_t) * (size_t)P);
            q->n_ids = P;
        } else {
            q->n_ids = 1 + (int)(rnd() % (uint32_t)P);
            for (int t = 0; t < q->n_ids; t++) q->ids[t] = (int32_t)(rnd() % (uint32_t)V);
        }
    }
    if (nb > 1 && P / 2 > 0 && others[1].n_ids > P / 2) {
        /* the shared half is cached already: it was written by (1) */
        int h = P / 2;
        memcpy(others[1].ids, main_seq.ids, sizeof(int32_t) * (size_t)h);
        memcpy(others[1].slots, main_seq.slots, sizeof(int32_t) * (size_t)h);
        others[1].len = h;
    }
    if (step(r, b, all, nb, logits)) goto out;
    for (int v = 0; v < V; v++) batch_diff = fmax(batch_diff, fabs(logits[v] - first[v]));
    for (int i = 0; i <= steps; i++) {
        for (int s = 0; s < nb; s++) {
            int id = argmax(logits + (int64_t)s * V, V);
            if (s == 0) bgreedy[i] = id;
            if (i < steps) all[s]->ids[all[s]->n_ids++] = id;
        }
        if (i == steps) break;
        if (step(r, b, all, nb, logits)) goto out;
    }

    /* (4) logits for every prompt row at once (what prompt log-probs need; on
     * a large vocabulary this spans several of the runner's logit chunks):
     * the last row must equal the single prefill's */
    double rows_diff = 0;
    {
        int32_t *rows = malloc(sizeof(int32_t) * (size_t)P);
        if (!rows) goto out;
        for (int i = 0; i < P; i++) rows[i] = i;
        int32_t seq_off[2] = {0, P}, kv_len[1] = {P}, slot_off[2] = {0, P};
        SglBatch sb = {1, P, main_seq.ids, b->positions, seq_off, kv_len, slot_off,
                       perm + (int64_t)(nb + 2) * L, P, rows};
        for (int i = 0; i < P; i++) b->positions[i] = i;
        st = sgl_runner_forward(r, &sb, logits, &err);
        free(rows);
        if (st) {
            fprintf(stderr, "gpu_forward: all-rows forward: %s: %s\n", sgl_status_str(st), err.msg);
            goto out;
        }
        for (int v = 0; v < V; v++)
            rows_diff = fmax(rows_diff, fabs(logits[(int64_t)(P - 1) * V + v] - first[v]));
    }

    /* (5) CUDA runner error contract: bad batches are rejected with
     * SGL_E_INVAL and leave the runner usable; an oversized pool is SGL_E_NOMEM */
    int errors_ok = -1;
    double repeat_diff = 0, ext_diff = 0, mixed_dec = -1, mixed_pre = -1;
    if (!use_cpu) {
        errors_ok = check_errors(r, m, b, &main_seq, P, ext, V, logits, &repeat_diff);
        if (errors_ok < 0) goto out;
        for (int v = 0; v < V; v++) ext_diff = fmax(ext_diff, fabs(ext[v] - first[v]));
    }

    /* (6, CUDA only) a mixed batch: a prefill of the prompt's first Q tokens
     * (scratch slots) and, second, the prompt's last token as a 1-token
     * extend over its cached prefix, in one forward (the runner takes the
     * decode row to the decode kernel). Each row vs the same row run alone.
     * Skipped with --batch 1 (the runner is sized for one sequence). */
    if (!use_cpu && P >= 3 && nb >= 2) { /* two sequences: needs --batch >= 2 */
        int Q = P - 1 < 48 ? P - 1 : 48;
        int32_t *ms = perm + (int64_t)(nb + 2) * L, *msl = malloc(sizeof(int32_t) * (size_t)(Q + P));
        if (!msl) goto out;
        memcpy(msl, ms, sizeof(int32_t) * (size_t)Q);
        memcpy(msl + Q, main_seq.slots, sizeof(int32_t) * (size_t)P);
        for (int i = 0; i < Q; i++) {
            b->tokens[i] = main_seq.ids[i];
            b->positions[i] = i;
        }
        b->tokens[Q] = main_seq.ids[P - 1];
        b->positions[Q] = P - 1;
        int32_t so[3] = {0, Q, Q + 1}, kl[2] = {Q, P}, sl[3] = {0, Q, Q + P}, lr[2] = {Q - 1, Q};
        SglBatch mb = {2, Q + 1, b->tokens, b->positions, so, kl, sl, msl, 2, lr};
        SglErr merr = {{0}};
        SglStatus mst = sgl_runner_forward(r, &mb, logits, &merr);
        float *alone = mst ? NULL : malloc(sizeof(float) * (size_t)V);
        if (!mst && alone) {
            mixed_dec = 0;
            for (int v = 0; v < V; v++) mixed_dec = fmax(mixed_dec, fabs(logits[(int64_t)V + v] - ext[v]));
            SglBatch pb = {1, Q, b->tokens, b->positions, so, kl, sl, msl, 1, lr};
            mst = sgl_runner_forward(r, &pb, alone, &merr);
            mixed_pre = 0;
            for (int v = 0; !mst && v < V; v++) mixed_pre = fmax(mixed_pre, fabs(logits[v] - alone[v]));
        }
        free(alone);
        free(msl);
        if (mst) {
            fprintf(stderr, "gpu_forward: mixed batch: %s: %s\n", sgl_status_str(mst), merr.msg);
            goto out;
        }
        fprintf(stderr, "gpu_forward: mixed batch vs alone: decode row max abs %.3g, prefill row %.3g\n",
                mixed_dec, mixed_pre);
    }

    printf("{\"runner\": \"%s\", \"prompt_len\": %d, \"steps\": %d, \"batch\": %d",
           r->ops->name, P, steps, nb);
    if (errors_ok >= 0)
        printf(", \"errors_ok\": %s, \"extend_repeat_max_abs\": %.6g, \"extend_max_abs\": %.6g",
               errors_ok ? "true" : "false", repeat_diff, ext_diff);
    if (mixed_dec >= 0)
        printf(", \"mixed_decode_max_abs\": %.6g, \"mixed_prefill_max_abs\": %.6g", mixed_dec, mixed_pre);
    printf(", \"chunked_max_abs\": %.6g, \"batched_max_abs\": %.6g, \"decode_ms\": %.4f", chunk_diff,
           batch_diff, decode_ms);
    printf(", \"prefill_ms\": %.3f, \"init_ms\": %.1f, \"all_rows_max_abs\": %.6g", prefill_ms,
           init_ms, rows_diff);
    if (!use_cpu) printf(", \"graph_replays\": %lld", (long long)sgl_runner_cuda_graph_replays(r));
    if (variants)
        printf(", \"decode_ms_graph_gemv\": %.4f, \"decode_ms_graph_cublas\": %.4f, "
               "\"decode_ms_nograph_gemv\": %.4f, \"decode_ms_nograph_cublas\": %.4f",
               var_ms[0], var_ms[1], var_ms[2], var_ms[3]);
    print_ids("greedy_ids", greedy, steps + 1);
    print_ids("batched_greedy_ids", bgreedy, steps + 1);
    printf(", \"margins\": [");
    for (int i = 0; i <= steps; i++) printf("%s%.5g", i ? ", " : "", margins[i]);
    printf("]");
    if (print_logits) {
        printf(", \"logits\": [");
        for (int v = 0; v < V; v++) printf("%s%.7g", v ? ", " : "", first[v]);
        printf("]");
        if (errors_ok >= 0) {
            printf(", \"extend_logits\": [");
            for (int v = 0; v < V; v++) printf("%s%.7g", v ? ", " : "", ext[v]);
            printf("]");
        }
    }
    printf("}\n");
    rc = 0;
out:
    sgl_runner_free(r);
    sgl_model_free(m);
    free(perm);
    if (b) free(b->slots);
    free(b);
    free(logits);
    free(first);
    free(ext);
    free(greedy);
    free(bgreedy);
    free(margins);
    return rc;
}

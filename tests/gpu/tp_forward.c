/* tp_forward.c -- the CUDA runner at tensor parallelism tp (NCCL), one thread
 * per local GPU, for tests/gpu/check_tp.py and tests/gpu/tp.sh.
 *
 *   tp_forward --model DIR [--dummy] [--tp N] [--nnodes K --node-rank R --dist-init-addr H:P]
 *              [--prompt-ids 1,2,3 --steps S --batch B]        greedy run, JSON with logits
 *              [--bench --ctx C --batches 1,64 --bench-steps K] decode-step timing
 *              [--prefill SEQSxLEN]                            with --bench: one prefill timed
 *              [--membw]                                      HBM copy bandwidth per local GPU
 *
 * Every local rank runs the same program on its own thread (the runners meet
 * in their collectives): (1) the prompt's first half as one prefill, the
 * rest as an extend over the cached half, then S greedy steps
 * (argmax on the host of the whole logits row every rank gets back); (2) B
 * sequences (the prompt and B-1 random ones) prefilled in one batch, then S
 * greedy batched decode steps through forward_sample (device greedy; CUDA
 * graphs with NCCL inside for batches <= B). tp 1 is the plain runner. Node 0
 * prints one JSON object: {"tp", "logits" (last prompt position), "greedy_ids",
 * "margins", "last_logits" (the logits after the last greedy step),
 * "batched_ids" (B x S, row-major), "batched_margins" (top1 - top2 of each
 * row's logits, host forward of the same step), "argmax_mismatch" (device
 * greedy ids that were not that argmax), "ranks_agree" (every local rank saw the
 * same ids), "init_ms", "decode_ms"}; with --bench, "bench": [{"batch", "ctx",
 * "step_ms"}] (decode steps of batch sequences whose KV holds ctx tokens: the
 * slots are assigned, their content is whatever the pool holds, which costs
 * the same reads); --prefill 8x1024 adds "prefill": {"tokens", "ms"} (the
 * second of two identical prefills); with --membw, "membw_gbs": [per local device].
 * Multi-node: node 0 and the others each run this with their --node-rank; node
 * 0 makes the NCCL id and sends it over the tcp bootstrap (runtime/comm_host.h).
 * Exit 0 on success, 1 on error, 77 when no GPU (or too few for tp).
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cuda_runtime_api.h>

#include "runtime/comm_host.h"
#include "runtime/comm_nccl.h"
#include "runtime/model.h"
#include "runtime/runner.h"
#include "runtime/runner_cuda.h"

#define MAX_LOCAL 8
#define MAX_B 256
#define MAX_P 2048

typedef struct {
    /* shared, read-only */
    const SglModel *m;
    int P, S, B, bench, ctx, bench_steps, n_batches, pf_seqs, pf_len;
    int batches[8];
    const int32_t *prompt;
    /* per rank */
    SglRunnerOpts opts;
    SglRunner *r;
    int status;
    double init_ms, decode_ms;
    float *logits0, *last_logits, *margins;   /* (V), (V), (S+1) */
    int32_t *greedy, *batched;                /* (S+1), (B*S) */
    float *bmargins;                          /* (B*S) top1 - top2 of the rows batched[] came from */
    int argmax_mismatch;                      /* device greedy ids != host argmax of forward's logits */
    double bench_ms[8], prefill_ms;
    char err[600];
} Rank;

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static int argmax(const float *x, int n)
{
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

/* Gap between the largest and the second-largest entry. */
static float margin(const float *x, int n, int best)
{
    float second = -INFINITY;
    for (int v = 0; v < n; v++)
        if (v != best && x[v] > second) second = x[v];
    return x[best] - second;
}

/* Batch arrays for up to MAX_B sequences of up to len_cap tokens each. */
typedef struct {
    int32_t *tokens, *positions, *slots;
    int32_t seq_off[MAX_B + 1], kv_len[MAX_B], slot_off[MAX_B + 1], rows[MAX_B];
} Arr;

/* Sequence s of a batch has its own slot range [s*len_cap, (s+1)*len_cap):
 * kv tokens cached + new; fills the slot list and offsets for n_seqs. */
static void layout(Arr *a, int n_seqs, const int *kv, const int *n_new, int len_cap)
{
    int t = 0, so = 0;
    a->seq_off[0] = a->slot_off[0] = 0;
    for (int s = 0; s < n_seqs; s++) {
        for (int j = 0; j < kv[s]; j++) a->slots[so + j] = s * len_cap + j;
        for (int j = 0; j < n_new[s]; j++, t++) a->positions[t] = kv[s] - n_new[s] + j;
        so += kv[s];
        a->seq_off[s + 1] = t;
        a->kv_len[s] = kv[s];
        a->slot_off[s + 1] = so;
        a->rows[s] = t - 1;
    }
}

#define FAIL(...) do { snprintf(k->err, sizeof k->err, __VA_ARGS__); goto out; } while (0)

static void *run_rank(void *arg)
{
    Rank *k = arg;
    const SglModel *m = k->m;
    int V = m->cfg.vocab_size, P = k->P, S = k->S, B = k->B;
    SglErr err = {{0}};
    SglStatus st;
    Arr a = {0};
    float *logits = NULL;
    int len_cap = P + S + 1, maxb = B;
    int64_t max_tokens = (int64_t)B * (P + 1);
    if (k->bench) {
        len_cap = k->ctx + k->bench_steps + 8;
        if (k->pf_len > len_cap) len_cap = k->pf_len;
        maxb = k->pf_seqs;
        for (int i = 0; i < k->n_batches; i++) maxb = k->batches[i] > maxb ? k->batches[i] : maxb;
        max_tokens = (int64_t)k->pf_seqs * k->pf_len > maxb ? (int64_t)k->pf_seqs * k->pf_len : maxb;
    }
    int64_t cap_tokens = (int64_t)maxb * len_cap;
    k->status = 1;
    a.tokens = malloc(sizeof(int32_t) * (size_t)max_tokens);
    a.positions = malloc(sizeof(int32_t) * (size_t)max_tokens);
    a.slots = malloc(sizeof(int32_t) * (size_t)cap_tokens);
    logits = malloc(sizeof(float) * (size_t)V * (size_t)(B > 0 ? B : 1));
    if (!a.tokens || !a.positions || !a.slots || !logits) FAIL("out of host memory");
    k->opts.n_slots = cap_tokens;
    k->opts.max_batch_tokens = k->bench ? (int32_t)max_tokens : B * P > P + S ? B * P : P + S;
    k->opts.max_seqs = maxb;
    k->opts.graph_max_bs = maxb;
    double t0 = now_ms();
    if ((st = sgl_runner_cuda_new(m, &k->opts, &k->r, &err)))
        FAIL("runner (rank %d): %s: %s", k->opts.tp.rank, sgl_status_str(st), err.msg);
    k->init_ms = now_ms() - t0;
    SglRowSampling greedy_row = {0.0f, 0, 1.0f, 0.0f, 0, 0, false, false};
    SglRowSampling rows[MAX_B];
    for (int i = 0; i < MAX_B; i++) rows[i] = greedy_row;
    int32_t ids[MAX_B];
    int kv[MAX_B], nn[MAX_B];

    if (k->bench) {
        if (k->pf_len > 0) {
            uint32_t x = 999;
            for (int s = 0; s < k->pf_seqs; s++) kv[s] = nn[s] = k->pf_len;
            for (int64_t t = 0; t < (int64_t)k->pf_seqs * k->pf_len; t++) {
                x = x * 1664525u + 1013904223u;
                a.tokens[t] = (int32_t)(x % (uint32_t)V);
            }
            layout(&a, k->pf_seqs, kv, nn, len_cap);
            int nt = k->pf_seqs * k->pf_len;
            SglBatch b = {k->pf_seqs, nt, a.tokens, a.positions, a.seq_off, a.kv_len, a.slot_off, a.slots,
                          k->pf_seqs, a.rows};
            for (int rep = 0; rep < 2; rep++) {
                double tp0 = now_ms();
                if ((st = k->r->ops->forward_sample(k->r, &b, rows, NULL, ids, NULL, &err)))
                    FAIL("bench prefill: %s: %s", sgl_status_str(st), err.msg);
                k->prefill_ms = now_ms() - tp0;
            }
        }
        for (int bi = 0; bi < k->n_batches; bi++) {
            int nb = k->batches[bi];
            uint32_t x = 12345;
            for (int s = 0; s < nb; s++) {
                x = x * 1664525u + 1013904223u;
                a.tokens[s] = (int32_t)(x % (uint32_t)V);
            }
            double tb = 0;
            int warm = 3;
            for (int it = 0; it < warm + k->bench_steps; it++) {
                for (int s = 0; s < nb; s++) kv[s] = k->ctx + it + 1, nn[s] = 1;
                layout(&a, nb, kv, nn, len_cap);
                SglBatch b = {nb, nb, a.tokens, a.positions, a.seq_off, a.kv_len, a.slot_off, a.slots, nb, a.rows};
                if (it == warm) tb = now_ms();
                if ((st = k->r->ops->forward_sample(k->r, &b, rows, NULL, ids, NULL, &err)))
                    FAIL("bench forward_sample: %s: %s", sgl_status_str(st), err.msg);
                memcpy(a.tokens, ids, sizeof(int32_t) * (size_t)nb);
            }
            k->bench_ms[bi] = (now_ms() - tb) / k->bench_steps;
        }
        k->status = 0;
        goto out;
    }

    /* (1) prefill + S greedy steps, host argmax over the full rows */
    {
        int32_t seq[MAX_P + 4096];
        memcpy(seq, k->prompt, sizeof(int32_t) * (size_t)P);
        int n = P, c = P / 2;
        if (c > 0) { /* first half without logits, then the rest over the cached half (extend) */
            kv[0] = c, nn[0] = c;
            memcpy(a.tokens, seq, sizeof(int32_t) * (size_t)c);
            layout(&a, 1, kv, nn, len_cap);
            SglBatch h = {1, c, a.tokens, a.positions, a.seq_off, a.kv_len, a.slot_off, a.slots, 0, a.rows};
            if ((st = sgl_runner_forward(k->r, &h, NULL, &err)))
                FAIL("prefill (first half): %s: %s", sgl_status_str(st), err.msg);
        }
        kv[0] = P, nn[0] = P - c;
        memcpy(a.tokens, seq + c, sizeof(int32_t) * (size_t)(P - c));
        layout(&a, 1, kv, nn, len_cap);
        SglBatch b = {1, P - c, a.tokens, a.positions, a.seq_off, a.kv_len, a.slot_off, a.slots, 1, a.rows};
        if ((st = sgl_runner_forward(k->r, &b, logits, &err)))
            FAIL("prefill: %s: %s", sgl_status_str(st), err.msg);
        memcpy(k->logits0, logits, sizeof(float) * (size_t)V);
        double td = now_ms();
        for (int i = 0; i <= S; i++) {
            int g = argmax(logits, V);
            k->greedy[i] = g;
            k->margins[i] = margin(logits, V, g);
            if (i == S) break;
            seq[n++] = g;
            kv[0] = n, nn[0] = 1;
            a.tokens[0] = g;
            layout(&a, 1, kv, nn, len_cap);
            SglBatch d = {1, 1, a.tokens, a.positions, a.seq_off, a.kv_len, a.slot_off, a.slots, 1, a.rows};
            if ((st = sgl_runner_forward(k->r, &d, logits, &err)))
                FAIL("decode step %d: %s: %s", i, sgl_status_str(st), err.msg);
        }
        k->decode_ms = S ? (now_ms() - td) / S : 0;
        memcpy(k->last_logits, logits, sizeof(float) * (size_t)V);
    }

    /* (2) B sequences: one batched prefill, then S device-greedy batched
     * steps. Each step also runs as forward (the same K/V rewritten to the
     * same slots) for the host's argmax and margin of every row: the device
     * ids must be that argmax, and the margins tell a near-tie from a bug
     * when two runs part. */
    {
        uint32_t x = 777;
        int t = 0;
        for (int s = 0; s < B; s++) {
            int len = s == 0 ? P : 1 + (int)((x = x * 1664525u + 1013904223u) % (uint32_t)P);
            for (int j = 0; j < len; j++) {
                x = x * 1664525u + 1013904223u;
                a.tokens[t++] = s == 0 ? k->prompt[j] : (int32_t)(x % (uint32_t)V);
            }
            kv[s] = nn[s] = len;
        }
        layout(&a, B, kv, nn, len_cap);
        SglBatch b = {B, t, a.tokens, a.positions, a.seq_off, a.kv_len, a.slot_off, a.slots, B, a.rows};
        if ((st = k->r->ops->forward_sample(k->r, &b, rows, NULL, ids, NULL, &err)) ||
            (st = sgl_runner_forward(k->r, &b, logits, &err)))
            FAIL("batched prefill: %s: %s", sgl_status_str(st), err.msg);
        for (int i = 0; i < S; i++) {
            for (int s = 0; s < B; s++) {
                int g = argmax(logits + (int64_t)s * V, V);
                k->argmax_mismatch += g != ids[s];
                k->bmargins[s * S + i] = margin(logits + (int64_t)s * V, V, g);
                k->batched[s * S + i] = ids[s];
                a.tokens[s] = ids[s];
                kv[s]++, nn[s] = 1;
            }
            layout(&a, B, kv, nn, len_cap);
            SglBatch d = {B, B, a.tokens, a.positions, a.seq_off, a.kv_len, a.slot_off, a.slots, B, a.rows};
            if ((st = k->r->ops->forward_sample(k->r, &d, rows, NULL, ids, NULL, &err)) ||
                (st = sgl_runner_forward(k->r, &d, logits, &err)))
                FAIL("batched decode step %d: %s: %s", i, sgl_status_str(st), err.msg);
        }
    }
    k->status = 0;
out:
    free(a.tokens);
    free(a.positions);
    free(a.slots);
    free(logits);
    return NULL;
}

/* Device-to-device copy bandwidth (read + write bytes per second) of device d. */
static double membw(int d)
{
    size_t bytes = (size_t)2 << 30;
    void *x = NULL, *y = NULL;
    cudaEvent_t e0, e1;
    float ms = 0;
    double gbs = -1;
    if (cudaSetDevice(d) || cudaMalloc(&x, bytes) || cudaMalloc(&y, bytes)) goto out;
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    cudaMemcpy(y, x, bytes, cudaMemcpyDeviceToDevice);
    cudaEventRecord(e0, 0);
    for (int i = 0; i < 10; i++) cudaMemcpyAsync(y, x, bytes, cudaMemcpyDeviceToDevice, 0);
    cudaEventRecord(e1, 0);
    if (cudaEventSynchronize(e1) == cudaSuccess && cudaEventElapsedTime(&ms, e0, e1) == cudaSuccess)
        gbs = 10.0 * 2 * bytes / (ms * 1e6);
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
out:
    cudaFree(x);
    cudaFree(y);
    return gbs;
}

static void print_floats(const char *key, const float *x, int n)
{
    printf(", \"%s\": [", key);
    for (int i = 0; i < n; i++) printf("%s%.6g", i ? ", " : "", x[i]);
    printf("]");
}

static void print_ids(const char *key, const int32_t *x, int n)
{
    printf(", \"%s\": [", key);
    for (int i = 0; i < n; i++) printf("%s%d", i ? ", " : "", x[i]);
    printf("]");
}

static int parse_list(const char *s, int *out, int cap)
{
    int n = 0;
    while (*s && n < cap) {
        out[n++] = (int)strtol(s, (char **)&s, 10);
        while (*s == ',' || *s == ' ') s++;
    }
    return n;
}

int main(int argc, char **argv)
{
    const char *dir = NULL, *ids_arg = NULL, *addr = NULL, *batches = "1,64";
    int tp = 1, nnodes = 1, node_rank = 0, S = 16, B = 4, dummy = 0, bench = 0, ctx = 1024, bsteps = 20;
    int do_membw = 0, pf_seqs = 0, pf_len = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--dummy")) dummy = 1;
        else if (!strcmp(argv[i], "--bench")) bench = 1;
        else if (!strcmp(argv[i], "--membw")) do_membw = 1;
        else if (i + 1 < argc && !strcmp(argv[i], "--model")) dir = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--prompt-ids")) ids_arg = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--steps")) S = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--batch")) B = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--tp")) tp = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--nnodes")) nnodes = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--node-rank")) node_rank = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--dist-init-addr")) addr = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--ctx")) ctx = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--batches")) batches = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--bench-steps")) bsteps = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--prefill") &&
                 sscanf(argv[i + 1], "%dx%d", &pf_seqs, &pf_len) == 2 && pf_seqs >= 1 && pf_seqs <= MAX_B &&
                 pf_len >= 1 && (int64_t)pf_seqs * pf_len <= 65536)
            i++;
        else {
            fprintf(stderr, "tp_forward: unknown or incomplete argument %s (see the file comment)\n", argv[i]);
            return 2;
        }
    }
    int n_local = nnodes > 0 ? tp / nnodes : 0;
    if (!dir || tp < 1 || nnodes < 1 || n_local < 1 || n_local * nnodes != tp || n_local > MAX_LOCAL ||
        node_rank < 0 || node_rank >= nnodes || (nnodes > 1 && !addr) || S < 0 || S > 4000 || B < 1 ||
        B > MAX_B || ctx < 1 || bsteps < 1 || (!bench && !ids_arg)) {
        fprintf(stderr, "tp_forward: need --model, --prompt-ids (or --bench); tp a multiple of nnodes "
                        "(<= %d GPUs per node); --dist-init-addr with --nnodes > 1; 1 <= batch <= %d\n",
                MAX_LOCAL, MAX_B);
        return 2;
    }
    static int32_t prompt[MAX_P];
    int P = ids_arg ? parse_list(ids_arg, prompt, MAX_P) : 1;
    if (P < 1) return fprintf(stderr, "tp_forward: empty --prompt-ids\n"), 2;
    int n_dev = 0;
    if (cudaGetDeviceCount(&n_dev) != cudaSuccess || n_dev < n_local) {
        printf("tp_forward: skipped: %d GPUs, %d needed\n", n_dev, n_local);
        return 77;
    }
    SglErr err = {{0}};
    SglModel *m = NULL;
    SglComm *boot = NULL, *comms[MAX_LOCAL] = {0};
    static Rank ranks[MAX_LOCAL];
    double gbs[MAX_LOCAL] = {0};
    int rc = 1;
    if (do_membw)
        for (int i = 0; i < n_local; i++) gbs[i] = membw(i);
    SglStatus st = sgl_model_load(dir, dummy ? SGL_LOAD_DUMMY_SHAPES : SGL_LOAD_AUTO, &m, &err);
    if (st) {
        fprintf(stderr, "tp_forward: %s: %s\n", sgl_status_str(st), err.msg);
        return 1;
    }
    int V = m->cfg.vocab_size;
    double t_comm = now_ms();
    if (tp > 1) {
        uint8_t id[SGL_NCCL_ID_BYTES];
        int devices[MAX_LOCAL];
        for (int i = 0; i < n_local; i++) devices[i] = i;
        if (nnodes > 1) {
            int64_t len = sizeof id;
            if ((st = sgl_comm_tcp_new(addr, node_rank, nnodes, 120000, &boot, &err)) ||
                (node_rank == 0 && (st = sgl_comm_nccl_unique_id(id, &err))) ||
                (st = sgl_comm_tcp_bcast_bytes(boot, id, &len, sizeof id, 0, &err)))
                goto fail;
        } else if ((st = sgl_comm_nccl_unique_id(id, &err))) {
            goto fail;
        }
        if ((st = sgl_comm_nccl_new(id, tp, node_rank * n_local, n_local, devices, comms, &err)))
            goto fail;
    }
    t_comm = now_ms() - t_comm;
    pthread_t th[MAX_LOCAL];
    for (int i = 0; i < n_local; i++) {
        Rank *k = &ranks[i];
        k->m = m;
        k->P = P, k->S = S, k->B = B, k->bench = bench, k->ctx = ctx, k->bench_steps = bsteps;
        k->pf_seqs = pf_seqs, k->pf_len = pf_len;
        k->n_batches = parse_list(batches, k->batches, 8);
        for (int j = 0; j < k->n_batches; j++)
            if (k->batches[j] < 1 || k->batches[j] > MAX_B) k->batches[j] = 1;
        k->prompt = prompt;
        k->opts.device_id = i;
        k->opts.tp = (SglTp){node_rank * n_local + i, tp};
        k->opts.comm = comms[i];
        k->logits0 = calloc((size_t)V, sizeof(float));
        k->last_logits = calloc((size_t)V, sizeof(float));
        k->margins = calloc((size_t)S + 1, sizeof(float));
        k->greedy = calloc((size_t)S + 1, sizeof(int32_t));
        k->batched = calloc((size_t)B * (S ? S : 1), sizeof(int32_t));
        k->bmargins = calloc((size_t)B * (S ? S : 1), sizeof(float));
        if (!k->logits0 || !k->last_logits || !k->margins || !k->greedy || !k->batched || !k->bmargins) {
            fprintf(stderr, "tp_forward: out of host memory\n");
            goto out;
        }
    }
    if (tp == 1) {
        run_rank(&ranks[0]);
    } else {
        for (int i = 0; i < n_local; i++) pthread_create(&th[i], NULL, run_rank, &ranks[i]);
        for (int i = 0; i < n_local; i++) pthread_join(th[i], NULL);
    }
    for (int i = 0; i < n_local; i++)
        if (ranks[i].status) {
            fprintf(stderr, "tp_forward: local rank %d: %s\n", i, ranks[i].err);
            goto out;
        }
    bool agree = true;
    for (int i = 1; i < n_local; i++)
        agree = agree && !memcmp(ranks[i].greedy, ranks[0].greedy, sizeof(int32_t) * (size_t)(S + 1)) &&
                !memcmp(ranks[i].batched, ranks[0].batched, sizeof(int32_t) * (size_t)B * S);
    Rank *k = &ranks[0];
    printf("{\"tp\": %d, \"nnodes\": %d, \"node_rank\": %d, \"vocab\": %d, \"prompt_len\": %d, \"steps\": %d, "
           "\"batch\": %d, \"ranks_agree\": %s, \"comm_ms\": %.1f, \"init_ms\": %.1f",
           tp, nnodes, node_rank, V, P, S, B, agree ? "true" : "false", t_comm, k->init_ms);
    if (do_membw) {
        printf(", \"membw_gbs\": [");
        for (int i = 0; i < n_local; i++) printf("%s%.1f", i ? ", " : "", gbs[i]);
        printf("]");
    }
    if (bench) {
        printf(", \"bench\": [");
        for (int j = 0; j < k->n_batches; j++)
            printf("%s{\"batch\": %d, \"ctx\": %d, \"step_ms\": %.4f}", j ? ", " : "", k->batches[j], ctx,
                   k->bench_ms[j]);
        printf("]");
        if (pf_len > 0)
            printf(", \"prefill\": {\"seqs\": %d, \"len\": %d, \"tokens\": %d, \"ms\": %.3f}", pf_seqs, pf_len,
                   pf_seqs * pf_len, k->prefill_ms);
    } else {
        printf(", \"decode_ms\": %.4f", k->decode_ms);
        print_ids("greedy_ids", k->greedy, S + 1);
        print_floats("margins", k->margins, S + 1);
        print_ids("batched_ids", k->batched, B * S);
        print_floats("batched_margins", k->bmargins, B * S);
        printf(", \"argmax_mismatch\": %d", k->argmax_mismatch);
        print_floats("logits", k->logits0, V);
        print_floats("last_logits", k->last_logits, V);
    }
    printf("}\n");
    rc = agree ? 0 : 1;
    goto out;
fail:
    fprintf(stderr, "tp_forward: communicator: %s: %s\n", sgl_status_str(st), err.msg);
out:
    for (int i = 0; i < n_local; i++) {
        sgl_runner_free(ranks[i].r);
        free(ranks[i].logits0);
        free(ranks[i].last_logits);
        free(ranks[i].margins);
        free(ranks[i].greedy);
        free(ranks[i].batched);
        free(ranks[i].bmargins);
    }
    for (int i = 0; i < n_local; i++) sgl_comm_free(comms[i]);
    sgl_comm_free(boot);
    sgl_model_free(m);
    return rc;
}

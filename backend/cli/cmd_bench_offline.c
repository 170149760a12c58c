/* cmd_bench_offline.c -- `sglc bench offline`: SGLang's bench_offline_throughput
 * through the engine C API.
 *
 *   sglc bench offline --model DIR --dataset random --num-prompts N
 *       --random-input-len I --random-output-len O [--random-range-ratio R]
 *   sglc bench offline --model DIR --dataset shared-prefix --num-groups G
 *       --prompts-per-group M --system-prompt-len S --question-len Q --output-len O
 *       [--no-shuffle]
 *   ... [engine flags] [--json FILE]
 *
 * The workload is random token ids from a fixed seed (ids >= 3, as one-batch).
 * random: request i has an input length uniform in [max(1, R*I), I] and an
 * output length uniform in [max(1, R*O), O] (R = 1: fixed lengths).
 * shared-prefix: G system prompts of S tokens, each followed by M questions
 * of Q tokens; the G*M requests are shuffled (seeded) unless --no-shuffle.
 * Every request is greedy with ignore_eos, so it produces its output length.
 * After an untimed warmup (the first --warmup-requests prompts, 4 new tokens
 * each, then the prefix cache is flushed), all requests are submitted in one
 * sgl_engine_submit_batch and continuous batching does the rest. Reported:
 * wall time, request/s, input/output/total tok/s, TTFT and TPOT (mean, p50,
 * p99, from the event times), the prefix-cache hit rate (cached prompt tokens
 * / prompt tokens) and the best hit rate the workload allows (every distinct
 * prompt prefix computed once: see optimal_cached), and the engine's
 * counters over the run. Exit 0 ok, 1 model/engine/request error, 2 usage.
 */
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/cli/cli.h"
#include "backend/cli/cli_device.h"
#include "runtime/engine.h"

#define MAX_PROMPTS (1 << 20)
#define MAX_WORKLOAD_TOKENS (1L << 28)   /* all prompts together */

static void help(FILE *f)
{
    fprintf(f,
            "usage: sglc bench offline --model DIR --dataset random|shared-prefix [dataset flags]\n"
            "                          [engine flags] [--json FILE]\n\n"
            "Offline throughput: every request submitted at once, continuous batching does\n"
            "the rest (SGLang's bench_offline_throughput). Greedy, ignore_eos.\n\n"
            "  --dataset random         random token ids:\n"
            "    --num-prompts N          requests (default 1000)\n"
            "    --random-input-len I     prompt tokens (default 1024)\n"
            "    --random-output-len O    new tokens (default 1024)\n"
            "    --random-range-ratio R   lengths uniform in [R*len, len] (default 1: fixed)\n"
            "  --dataset shared-prefix  G groups of M prompts = system prompt + question:\n"
            "    --num-groups G           (default 64)\n"
            "    --prompts-per-group M    (default 16)\n"
            "    --system-prompt-len S    tokens shared inside a group (default 2048)\n"
            "    --question-len Q         tokens unique to a prompt (default 128)\n"
            "    --output-len O           new tokens per request (default 128)\n"
            "    --no-shuffle             submit group by group (default: shuffled, seeded;\n"
            "                             --shuffle says so explicitly)\n"
            "  --seed S                 seed of the workload (default 1)\n"
            "  --warmup-requests K      untimed warmup with the first K prompts (default 16)\n"
            "  --json FILE              also write the results as one JSON object\n\n"
            "engine flags:\n"
            "  --model DIR              Hugging Face model directory\n"
            "  --load-format auto|dummy dummy: random weights of the config's shape\n"
            "  --disable-radix-cache    no prefix caching\n"
            "  --schedule-policy P      lpm (default), fcfs, lof, random, dfs-weight\n"
            "  --init-new-token-ratio R admission keeps room for R x each running request's\n"
            "                           remaining output (decays to 0.1; 0: 0.7; -1: none)\n"
            "  --max-running-requests N sequences decoding at once (default 256)\n"
            "  --chunked-prefill-size N max prompt tokens of one sequence per step (2048)\n"
            "  --max-prefill-tokens N   max prompt tokens per step (default: chunk size)\n"
            "  --max-total-tokens N     KV cache capacity in tokens\n"
            "  --page-size N            tokens per KV page (default 1)\n"
            "  --threads N              CPU threads for the forward pass\n"
            CLI_DEVICE_HELP);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double process_cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- workload ------------------------------------------------------------ */

/* Prompts back to back: request i is ids[off[i], off[i+1]) and asks for
 * out_len[i] new tokens. Owned by the caller (workload_free). */
typedef struct {
    int32_t n;
    int32_t *ids;
    int64_t *off;                  /* (n + 1) */
    int32_t *out_len;              /* (n) */
} Workload;

typedef struct {
    const char *dataset;           /* "random" or "shared-prefix" */
    long n_prompts, in_len, out_len;
    double range_ratio;
    long groups, per_group, sys_len, q_len, sp_out_len;
    bool shuffle;
    long seed;
} WorkloadSpec;

static uint64_t rng_next(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 33;
}

/* A token id in [3, vocab): past the usual unk/bos/eos ids. */
static int32_t rand_id(uint64_t *s, int32_t vocab)
{
    return 3 + (int32_t)(rng_next(s) % (uint64_t)(vocab > 3 ? vocab - 3 : 1));
}

/* Uniform in [max(1, floor(ratio * len)), len]. */
static int32_t rand_len(uint64_t *s, long len, double ratio)
{
    long lo = (long)floor(ratio * (double)len);
    if (lo < 1)
        lo = 1;
    if (lo >= len)
        return (int32_t)len;
    return (int32_t)(lo + (long)(rng_next(s) % (uint64_t)(len - lo + 1)));
}

static void workload_free(Workload *w)
{
    free(w->ids);
    free(w->off);
    free(w->out_len);
    memset(w, 0, sizeof *w);
}

/* Builds the requests of sp for a vocabulary of vocab ids. False (message
 * printed) when out of memory. */
static bool workload_make(const WorkloadSpec *sp, int32_t vocab, Workload *w)
{
    uint64_t rng = (uint64_t)sp->seed * 0x9E3779B97F4A7C15ull + 7;
    bool shared = strcmp(sp->dataset, "shared-prefix") == 0;
    int32_t n = (int32_t)(shared ? sp->groups * sp->per_group : sp->n_prompts);
    int32_t *order = NULL, *sys = NULL;
    memset(w, 0, sizeof *w);
    w->n = n;
    w->off = malloc(((size_t)n + 1) * sizeof *w->off);
    w->out_len = malloc((size_t)n * sizeof *w->out_len);
    if (!w->off || !w->out_len)
        goto oom;
    if (!shared) {
        w->off[0] = 0;
        for (int32_t i = 0; i < n; i++) {
            w->off[i + 1] = w->off[i] + rand_len(&rng, sp->in_len, sp->range_ratio);
            w->out_len[i] = rand_len(&rng, sp->out_len, sp->range_ratio);
        }
        if (!(w->ids = malloc((size_t)w->off[n] * sizeof *w->ids)))
            goto oom;
        for (int64_t k = 0; k < w->off[n]; k++)
            w->ids[k] = rand_id(&rng, vocab);
        return true;
    }
    /* shared-prefix: request j of the submission order is (group, question)
     * order[j] = g * M + m; system prompts drawn first, then the questions */
    int32_t M = (int32_t)sp->per_group, S = (int32_t)sp->sys_len, Q = (int32_t)sp->q_len;
    order = malloc((size_t)n * sizeof *order);
    sys = malloc(((size_t)sp->groups * (size_t)S + 1) * sizeof *sys); /* + 1: S may be 0 */
    w->ids = malloc((size_t)n * (size_t)(S + Q) * sizeof *w->ids);
    if (!order || !sys || !w->ids)
        goto oom;
    for (size_t k = 0; k < (size_t)sp->groups * (size_t)S; k++)
        sys[k] = rand_id(&rng, vocab);
    for (int32_t j = 0; j < n; j++)
        order[j] = j;
    if (sp->shuffle)
        for (int32_t j = n - 1; j > 0; j--) {
            int32_t k = (int32_t)(rng_next(&rng) % (uint64_t)(j + 1)), t = order[j];
            order[j] = order[k];
            order[k] = t;
        }
    for (int32_t j = 0; j < n; j++) {
        int32_t g = order[j] / M;
        int32_t *p = w->ids + (size_t)j * (size_t)(S + Q);
        memcpy(p, sys + (size_t)g * (size_t)S, (size_t)S * sizeof *p);
        for (int32_t k = 0; k < Q; k++)
            p[S + k] = rand_id(&rng, vocab);
        w->off[j] = (int64_t)j * (S + Q);
        w->out_len[j] = (int32_t)sp->sp_out_len;
    }
    w->off[n] = (int64_t)n * (S + Q);
    free(order);
    free(sys);
    return true;
oom:
    free(order);
    free(sys);
    workload_free(w);
    fprintf(stderr, "sglc bench offline: out of memory for the workload\n");
    return false;
}

typedef struct {
    const int32_t *p;
    int32_t len;
} PromptRef;

static int cmp_prompt(const void *a, const void *b)
{
    const PromptRef *x = a, *y = b;
    int32_t n = x->len < y->len ? x->len : y->len;
    for (int32_t k = 0; k < n; k++)
        if (x->p[k] != y->p[k])
            return x->p[k] < y->p[k] ? -1 : 1;
    return (x->len > y->len) - (x->len < y->len);
}

/* The most prompt tokens a prefix cache of unlimited size can serve for w:
 * every distinct prefix computed once. Sorted lexicographically, a prompt's
 * longest common prefix with any earlier prompt is the one with its
 * predecessor; a hit always leaves >= 1 token to compute (the engine needs
 * the last token's logits) and covers whole pages of page_size tokens.
 * -1 when out of memory. */
static int64_t optimal_cached(const Workload *w, int32_t page_size)
{
    PromptRef *r = malloc((size_t)w->n * sizeof *r);
    if (!r)
        return -1;
    for (int32_t i = 0; i < w->n; i++)
        r[i] = (PromptRef){w->ids + w->off[i], (int32_t)(w->off[i + 1] - w->off[i])};
    qsort(r, (size_t)w->n, sizeof *r, cmp_prompt);
    int64_t cached = 0;
    for (int32_t i = 1; i < w->n; i++) {
        int32_t n = r[i].len < r[i - 1].len ? r[i].len : r[i - 1].len, l = 0;
        while (l < n && r[i].p[l] == r[i - 1].p[l])
            l++;
        if (l > r[i].len - 1)
            l = r[i].len - 1;
        cached += l / page_size * page_size;
    }
    free(r);
    return cached;
}

/* ---- the run ------------------------------------------------------------- */

typedef struct Run Run;

/* One request's view, written only by the engine thread until done. */
typedef struct {
    Run *run;
    double t_first, t_last, t_final;  /* wall: first / last TOKEN event, FINAL */
    int32_t n_tokens;                 /* TOKEN events */
    int32_t prompt, completion, cached;
    int32_t want;                     /* requested new tokens */
} Slot;

struct Run {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int32_t n_left;
    int32_t n_failed;
    char error[256];                  /* the first failure */
};

/* Engine thread: stamps tokens; the FINAL event checks the request. */
static void on_event(void *user, const SglEvent *ev)
{
    Slot *sl = user;
    double t = now_s();
    if (ev->kind == SGL_EV_TOKEN) {
        if (sl->n_tokens++ == 0)
            sl->t_first = t;
        sl->t_last = t;
        return;
    }
    sl->t_final = t;
    sl->prompt = ev->prompt_tokens;
    sl->completion = ev->completion_tokens;
    sl->cached = ev->cached_tokens;
    Run *r = sl->run;
    pthread_mutex_lock(&r->mu);
    if (ev->finish == SGL_FINISH_ERROR || ev->finish == SGL_FINISH_ABORT || ev->completion_tokens != sl->want) {
        if (r->n_failed++ == 0)
            snprintf(r->error, sizeof r->error, "a request ended with %s after %d of %d tokens%s%s",
                     sgl_finish_name(ev->finish), (int)ev->completion_tokens, (int)sl->want,
                     ev->error ? ": " : "", ev->error ? ev->error : "");
    }
    if (--r->n_left == 0)
        pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

/* Submits requests [0, n) of w at once (out_cap caps the new tokens: the
 * warmup) and waits for all. *t0 = submit time. 0 ok, 1 error (printed). */
static int run_requests(SglEngine *e, const Workload *w, int32_t n, int32_t out_cap, Slot *slots, double *t0)
{
    SglRequest *rq = calloc((size_t)n, sizeof *rq);
    Run r = {.n_left = n};
    int rc = 1;
    pthread_mutex_init(&r.mu, NULL);
    pthread_cond_init(&r.cv, NULL);
    if (!rq) {
        fprintf(stderr, "sglc bench offline: out of memory\n");
        goto out;
    }
    for (int32_t i = 0; i < n; i++) {
        int32_t want = out_cap > 0 && w->out_len[i] > out_cap ? out_cap : w->out_len[i];
        slots[i] = (Slot){.run = &r, .want = want};
        rq[i].input_ids = w->ids + w->off[i];
        rq[i].n_input = (int32_t)(w->off[i + 1] - w->off[i]);
        sgl_sampling_params_default(&rq[i].params);
        rq[i].params.temperature = 0.0f;
        rq[i].params.max_new_tokens = want;
        rq[i].params.ignore_eos = true;
        rq[i].on_event = on_event;
        rq[i].user = &slots[i];
    }
    SglErr err = {{0}};
    *t0 = now_s();
    if (sgl_engine_submit_batch(e, rq, n, NULL, &err) != SGL_OK) {
        fprintf(stderr, "sglc bench offline: %s\n", err.msg);
        goto out;
    }
    pthread_mutex_lock(&r.mu);
    while (r.n_left > 0)
        pthread_cond_wait(&r.cv, &r.mu);
    pthread_mutex_unlock(&r.mu);
    if (r.n_failed > 0) {
        fprintf(stderr, "sglc bench offline: %d of %d requests failed; %s\n", (int)r.n_failed, (int)n, r.error);
        goto out;
    }
    rc = 0;
out:
    free(rq);
    pthread_cond_destroy(&r.cv);
    pthread_mutex_destroy(&r.mu);
    return rc;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct {
    double mean, p50, p99;
    int32_t n;
} Dist;

/* Mean and percentiles (linear interpolation between ranks, as numpy) of
 * v[0..n); sorts v. All zero when n == 0. */
static Dist dist_of(double *v, int32_t n)
{
    Dist d = {.n = n};
    if (n == 0)
        return d;
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    double sum = 0;
    for (int32_t i = 0; i < n; i++)
        sum += v[i];
    d.mean = sum / n;
    double pct[2] = {50, 99}, *outp[2] = {&d.p50, &d.p99};
    for (int k = 0; k < 2; k++) {
        double x = pct[k] / 100.0 * (n - 1);
        int32_t lo = (int32_t)x;
        int32_t hi = lo + 1 < n ? lo + 1 : lo;
        *outp[k] = v[lo] + (x - lo) * (v[hi] - v[lo]);
    }
    return d;
}

typedef struct {
    int32_t n;
    int64_t in_tokens, out_tokens, cached, optimal;
    double duration_s, cpu_s;
    Dist ttft_ms, tpot_ms;
    SglEngineStats d;                 /* counters over the timed run */
} Result;

static json_t *dist_json(Dist d)
{
    return json_pack("{s:f, s:f, s:f, s:I}", "mean", d.mean, "p50", d.p50, "p99", d.p99, "n", (json_int_t)d.n);
}

static bool write_json(const char *path, const WorkloadSpec *sp, const SglEngineOpts *eo, const char *device,
                       const Result *r)
{
    json_t *o = json_object(), *wl = json_object(), *eng = json_object();
    bool shared = strcmp(sp->dataset, "shared-prefix") == 0;
    json_object_set_new(wl, "dataset", json_string(sp->dataset));
    if (shared) {
        json_object_set_new(wl, "num_groups", json_integer(sp->groups));
        json_object_set_new(wl, "prompts_per_group", json_integer(sp->per_group));
        json_object_set_new(wl, "system_prompt_len", json_integer(sp->sys_len));
        json_object_set_new(wl, "question_len", json_integer(sp->q_len));
        json_object_set_new(wl, "output_len", json_integer(sp->sp_out_len));
        json_object_set_new(wl, "shuffle", json_boolean(sp->shuffle));
    } else {
        json_object_set_new(wl, "num_prompts", json_integer(sp->n_prompts));
        json_object_set_new(wl, "random_input_len", json_integer(sp->in_len));
        json_object_set_new(wl, "random_output_len", json_integer(sp->out_len));
        json_object_set_new(wl, "random_range_ratio", json_real(sp->range_ratio));
    }
    json_object_set_new(wl, "seed", json_integer(sp->seed));
    json_object_set_new(o, "workload", wl);
    json_object_set_new(o, "model", json_string(eo->model_dir));
    json_object_set_new(o, "device", json_string(device));
    json_object_set_new(o, "disable_radix_cache", json_boolean(eo->sched.disable_radix_cache));
    json_object_set_new(o, "schedule_policy", json_string(sgl_policy_name(eo->sched.policy)));
    json_object_set_new(o, "num_requests", json_integer(r->n));
    json_object_set_new(o, "total_input_tokens", json_integer(r->in_tokens));
    json_object_set_new(o, "total_output_tokens", json_integer(r->out_tokens));
    json_object_set_new(o, "duration_s", json_real(r->duration_s));
    json_object_set_new(o, "process_cpu_s", json_real(r->cpu_s));
    json_object_set_new(o, "request_throughput", json_real(r->n / r->duration_s));
    json_object_set_new(o, "input_throughput", json_real((double)r->in_tokens / r->duration_s));
    json_object_set_new(o, "output_throughput", json_real((double)r->out_tokens / r->duration_s));
    json_object_set_new(o, "total_throughput", json_real((double)(r->in_tokens + r->out_tokens) / r->duration_s));
    json_object_set_new(o, "ttft_ms", dist_json(r->ttft_ms));
    json_object_set_new(o, "tpot_ms", dist_json(r->tpot_ms));
    json_object_set_new(o, "cached_tokens", json_integer(r->cached));
    json_object_set_new(o, "cache_hit_rate", json_real((double)r->cached / (double)r->in_tokens));
    json_object_set_new(o, "optimal_cached_tokens", json_integer(r->optimal));
    json_object_set_new(o, "optimal_cache_hit_rate", json_real((double)r->optimal / (double)r->in_tokens));
    json_object_set_new(eng, "steps", json_integer(r->d.steps));
    json_object_set_new(eng, "forward_tokens", json_integer(r->d.forward_tokens));
    json_object_set_new(eng, "prefill_tokens", json_integer(r->d.prefill_tokens));
    json_object_set_new(eng, "decode_tokens", json_integer(r->d.decode_tokens));
    json_object_set_new(eng, "generated_tokens", json_integer(r->d.generated_tokens));
    json_object_set_new(eng, "cached_tokens", json_integer(r->d.cached_tokens));
    json_object_set_new(eng, "retractions", json_integer(r->d.retractions));
    json_object_set_new(o, "engine", eng);
    int bad = json_dump_file(o, path, JSON_INDENT(2) | JSON_ENSURE_ASCII);
    json_decref(o);
    if (bad)
        fprintf(stderr, "sglc bench offline: --json: cannot write '%s'\n", path);
    return !bad;
}

static void print_result(const WorkloadSpec *sp, const char *device, const Result *r)
{
    double dur = r->duration_s;
    printf("\n====== Offline Throughput Benchmark Result =======\n");
    printf("%-40s %s\n", "Backend:", "sglc engine");
    printf("%-40s %s\n", "Device:", device);
    if (strcmp(sp->dataset, "shared-prefix") == 0)
        printf("%-40s shared-prefix (%ld groups x %ld, system %ld + question %ld, output %ld%s)\n",
               "Dataset:", sp->groups, sp->per_group, sp->sys_len, sp->q_len, sp->sp_out_len,
               sp->shuffle ? ", shuffled" : "");
    else
        printf("%-40s random (input %ld, output %ld, range ratio %g)\n", "Dataset:", sp->in_len, sp->out_len,
               sp->range_ratio);
    printf("%-40s %d\n", "Successful requests:", (int)r->n);
    printf("%-40s %.3f\n", "Benchmark duration (s):", dur);
    printf("%-40s %.3f\n", "Process CPU time (s):", r->cpu_s);
    printf("%-40s %lld\n", "Total input tokens:", (long long)r->in_tokens);
    printf("%-40s %lld\n", "Total generated tokens:", (long long)r->out_tokens);
    printf("%-40s %.2f\n", "Request throughput (req/s):", r->n / dur);
    printf("%-40s %.2f\n", "Input token throughput (tok/s):", (double)r->in_tokens / dur);
    printf("%-40s %.2f\n", "Output token throughput (tok/s):", (double)r->out_tokens / dur);
    printf("%-40s %.2f\n", "Total token throughput (tok/s):", (double)(r->in_tokens + r->out_tokens) / dur);
    printf("%-40s %.3f / %.3f / %.3f\n", "TTFT mean / p50 / p99 (ms):", r->ttft_ms.mean, r->ttft_ms.p50,
           r->ttft_ms.p99);
    printf("%-40s %.4f / %.4f / %.4f\n", "TPOT mean / p50 / p99 (ms):", r->tpot_ms.mean, r->tpot_ms.p50,
           r->tpot_ms.p99);
    printf("%-40s %.4f (%lld tokens)\n", "Cache hit rate:", (double)r->cached / (double)r->in_tokens,
           (long long)r->cached);
    printf("%-40s %.4f (%lld tokens)\n", "Optimal cache hit rate:", (double)r->optimal / (double)r->in_tokens,
           (long long)r->optimal);
    printf("%-40s %lld\n", "Engine steps:", (long long)r->d.steps);
    printf("%-40s %lld\n", "Prefill tokens computed:", (long long)r->d.prefill_tokens);
    printf("%-40s %lld\n", "Decode tokens computed:", (long long)r->d.decode_tokens);
    printf("%-40s %lld\n", "Retractions:", (long long)r->d.retractions);
    printf("==================================================\n");
}

/* The timed run's figures from the slots and the engine counters. */
static bool summarize(const Workload *w, const Slot *slots, double t0, Result *r)
{
    double *ttft = malloc((size_t)w->n * sizeof *ttft), *tpot = malloc((size_t)w->n * sizeof *tpot);
    if (!ttft || !tpot) {
        free(ttft);
        free(tpot);
        fprintf(stderr, "sglc bench offline: out of memory\n");
        return false;
    }
    int32_t n_tpot = 0;
    double t_end = t0;
    r->n = w->n;
    for (int32_t i = 0; i < w->n; i++) {
        const Slot *s = &slots[i];
        r->in_tokens += s->prompt;
        r->out_tokens += s->completion;
        r->cached += s->cached;
        if (s->t_final > t_end)
            t_end = s->t_final;
        ttft[i] = 1e3 * (s->t_first - t0);
        if (s->n_tokens > 1)
            tpot[n_tpot++] = 1e3 * (s->t_last - s->t_first) / (s->n_tokens - 1);
    }
    r->duration_s = t_end - t0;
    r->ttft_ms = dist_of(ttft, w->n);
    r->tpot_ms = dist_of(tpot, n_tpot);
    free(ttft);
    free(tpot);
    return true;
}

static SglEngineStats stats_diff(SglEngineStats a, SglEngineStats b)
{
    SglEngineStats d = b;
    d.steps -= a.steps;
    d.forward_tokens -= a.forward_tokens;
    d.prefill_tokens -= a.prefill_tokens;
    d.decode_tokens -= a.decode_tokens;
    d.generated_tokens -= a.generated_tokens;
    d.cached_tokens -= a.cached_tokens;
    d.retractions -= a.retractions;
    return d;
}

int cmd_bench_offline(int argc, char **argv)
{
    SglArgs a;
    const char *model = NULL, *fmt = NULL, *json_path = NULL, *policy = NULL;
    WorkloadSpec sp = {.dataset = NULL, .n_prompts = 1000, .in_len = 1024, .out_len = 1024, .range_ratio = 1.0,
                       .groups = 64, .per_group = 16, .sys_len = 2048, .q_len = 128, .sp_out_len = 128,
                       .shuffle = true, .seed = 1};
    long max_total = 0, page = 1, threads = 0, max_running = 0, chunk = 0, max_prefill = 0, warmup = 16;
    bool no_cache = false, random_flag = false, shared_flag = false;
    double ratio = 0.0;
    CliDevice dev = {0};
    if (args_wants_help(argc, argv)) {
        help(stdout);
        return 0;
    }
    args_init(&a, argc, argv);
    a.cmd = "bench offline";
    while (args_more(&a)) {
        int before = a.i;
        if (args_str(&a, "--model", &model) || args_str(&a, "--load-format", &fmt) ||
            args_str(&a, "--dataset", &sp.dataset) || args_str(&a, "--json", &json_path) ||
            args_str(&a, "--schedule-policy", &policy) || cli_device_arg(&a, &dev))
            ;
        else if (args_flag(&a, "--disable-radix-cache"))
            no_cache = true;
        else if (args_double(&a, "--init-new-token-ratio", -1.0, 1.0, &ratio))
            ;
        else if (args_long(&a, "--num-prompts", 1, MAX_PROMPTS, &sp.n_prompts) ||
                 args_long(&a, "--random-input-len", 1, 1 << 20, &sp.in_len) ||
                 args_long(&a, "--random-output-len", 1, 1 << 20, &sp.out_len) ||
                 args_double(&a, "--random-range-ratio", 0.0, 1.0, &sp.range_ratio))
            random_flag = true;
        else if (args_flag(&a, "--shuffle") || args_flag(&a, "--no-shuffle")) {
            sp.shuffle = strcmp(argv[before], "--shuffle") == 0;
            shared_flag = true;
        } else if (args_long(&a, "--num-groups", 1, MAX_PROMPTS, &sp.groups) ||
                   args_long(&a, "--prompts-per-group", 1, MAX_PROMPTS, &sp.per_group) ||
                   args_long(&a, "--system-prompt-len", 0, 1 << 20, &sp.sys_len) ||
                   args_long(&a, "--question-len", 0, 1 << 20, &sp.q_len) ||
                   args_long(&a, "--output-len", 1, 1 << 20, &sp.sp_out_len))
            shared_flag = true;
        else if (args_long(&a, "--seed", 0, 1L << 62, &sp.seed) ||
                 args_long(&a, "--warmup-requests", 0, MAX_PROMPTS, &warmup) ||
                 args_long(&a, "--max-total-tokens", 0, 1 << 30, &max_total) ||
                 args_long(&a, "--page-size", 1, 4096, &page) || args_long(&a, "--threads", 0, 1024, &threads) ||
                 args_long(&a, "--max-running-requests", 1, 1 << 16, &max_running) ||
                 args_long(&a, "--chunked-prefill-size", 1, 1 << 20, &chunk) ||
                 args_long(&a, "--max-prefill-tokens", 1, 1 << 24, &max_prefill))
            ;
        else
            return args_unknown(&a);
    }
    if (a.bad)
        return 2;
    if (!model)
        return args_usage_error(&a, "--model DIR is required");
    if (!sp.dataset)
        return args_usage_error(&a, "--dataset random|shared-prefix is required");
    bool shared = strcmp(sp.dataset, "shared-prefix") == 0;
    if (!shared && strcmp(sp.dataset, "random") != 0)
        return args_usage_error(&a, "--dataset must be random or shared-prefix, got '%s'", sp.dataset);
    if (shared && random_flag)
        return args_usage_error(&a, "--num-prompts and --random-* apply to --dataset random only");
    if (!shared && shared_flag)
        return args_usage_error(&a, "--num-groups, --prompts-per-group, --system-prompt-len, --question-len, "
                                    "--output-len and --[no-]shuffle apply to --dataset shared-prefix only");
    if (shared && sp.sys_len + sp.q_len < 1)
        return args_usage_error(&a, "--system-prompt-len + --question-len must be at least 1");
    if (shared && sp.groups * sp.per_group > MAX_PROMPTS)
        return args_usage_error(&a, "--num-groups x --prompts-per-group must be at most %d", MAX_PROMPTS);
    long total = shared ? sp.groups * sp.per_group * (sp.sys_len + sp.q_len) : sp.n_prompts * sp.in_len;
    if (total > MAX_WORKLOAD_TOKENS)
        return args_usage_error(&a, "the workload has %ld prompt tokens; at most %ld", total, MAX_WORKLOAD_TOKENS);
    SglLoadFormat lf = SGL_LOAD_AUTO;
    if (fmt && strcmp(fmt, "dummy") == 0)
        lf = SGL_LOAD_DUMMY;
    else if (fmt && strcmp(fmt, "auto") != 0)
        return args_usage_error(&a, "--load-format must be auto or dummy, got '%s'", fmt);
    int pol = -1;
    if (policy && (pol = sgl_policy_parse(policy)) < 0)
        return args_usage_error(&a, "--schedule-policy: unknown policy '%s' (lpm, fcfs, lof, random, dfs-weight)",
                                policy);

    SglEngineOpts eo;
    sgl_engine_opts_default(&eo);
    eo.model_dir = model;
    eo.load_format = lf;
    eo.max_total_tokens = max_total;
    eo.page_size = (int32_t)page;
    eo.n_threads = (int)threads;
    eo.sched.disable_radix_cache = no_cache;
    eo.sched.init_new_token_ratio = (float)ratio;
    eo.sched.max_running_requests = (int32_t)max_running;
    eo.sched.chunked_prefill_size = (int32_t)chunk;
    eo.sched.max_prefill_tokens = (int32_t)max_prefill;
    if (pol >= 0)
        eo.sched.policy = (SglPolicy)pol;
    long n_req = shared ? sp.groups * sp.per_group : sp.n_prompts;
    if (n_req > 4096)
        eo.sched.max_queued_requests = (int32_t)n_req;
    if (cli_device_apply(&a, &dev, &eo))
        return 2;
    if (eo.node_rank > 0)   /* a worker host of --nnodes */
        return cli_tp_worker("sglc bench offline", &eo);
    const char *device = dev.device ? dev.device : "cpu";

    SglEngine *e = NULL;
    SglErr err = {{0}};
    Workload w = {0};
    Slot *slots = NULL;
    Result res = {0};
    int rc = 1;
    if (sgl_engine_open(&eo, &e, &err) != SGL_OK) {
        fprintf(stderr, "sglc bench offline: %s\n", err.msg);
        goto out;
    }
    const SglModelConfig *mc = sgl_engine_model_config(e);
    if (!workload_make(&sp, mc->vocab_size, &w))
        goto out;
    for (int32_t i = 0; i < w.n; i++)
        if (mc->max_position_embeddings > 0 && w.off[i + 1] - w.off[i] + w.out_len[i] > mc->max_position_embeddings) {
            fprintf(stderr, "sglc bench offline: request %d needs %lld + %d tokens of context; the model has %d "
                    "(max_position_embeddings)\n", (int)i, (long long)(w.off[i + 1] - w.off[i]), (int)w.out_len[i],
                    (int)mc->max_position_embeddings);
            goto out;
        }
    if (!(slots = calloc((size_t)w.n, sizeof *slots))) {
        fprintf(stderr, "sglc bench offline: out of memory\n");
        goto out;
    }
    double t0;
    int32_t n_warm = (int32_t)(warmup < w.n ? warmup : w.n);
    if (n_warm > 0) {
        printf("Warmup: %d requests ...\n", (int)n_warm);
        fflush(stdout);
        if (run_requests(e, &w, n_warm, 4, slots, &t0) != 0)
            goto out;
    }
    sgl_engine_flush_cache(e); /* also a barrier: the counters below include the warmup */
    SglEngineStats st0 = sgl_engine_stats(e);
    printf("Benchmark: %d requests ...\n", (int)w.n);
    fflush(stdout);
    double c0 = process_cpu_s();
    if (run_requests(e, &w, w.n, 0, slots, &t0) != 0)
        goto out;
    res.cpu_s = process_cpu_s() - c0;
    sgl_engine_flush_cache(e); /* barrier: every step of the run is counted */
    res.d = stats_diff(st0, sgl_engine_stats(e));
    if (!summarize(&w, slots, t0, &res))
        goto out;
    if ((res.optimal = optimal_cached(&w, (int32_t)page)) < 0) {
        fprintf(stderr, "sglc bench offline: out of memory\n");
        goto out;
    }
    print_result(&sp, device, &res);
    if (json_path && !write_json(json_path, &sp, &eo, device, &res))
        goto out;
    rc = 0;
out:
    sgl_engine_close(e);
    workload_free(&w);
    free(slots);
    return rc;
}

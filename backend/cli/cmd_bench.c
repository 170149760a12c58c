/* cmd_bench.c -- `sglc bench`: engine benchmarks printing SGLang's figures.
 *
 *   sglc bench one-batch --model DIR [--load-format dummy] --batch-size B
 *                        --input-len I --output-len O
 *                        [--json-schema FILE|JSON | --regex RE] [--dump FILE]
 *   sglc bench offline ...   (cmd_bench_offline.c)
 *   sglc bench program ...   (cmd_bench_program.c)
 *
 * one-batch (SGLang's bench_one_batch) submits B requests of I random token
 * ids at once (ignore_eos, greedy, O new tokens each) through the full engine
 * (scheduler, radix cache, sampler, detokenizer) and times the events as the
 * caller sees them: prefill = submit -> every request's first token; decode
 * step k = the k-th token of the last request -> its (k+1)-th. Prints
 *   Prefill. latency: ... s, throughput: ... token/s
 *   Decode k. Batch size: B, latency: ... s, throughput: ... token/s   (k < 5)
 *   Decode.  median latency: ... s, median throughput: ... token/s
 *   Total. latency: ... s, throughput: ... token/s
 * plus the median decode step in the engine thread's CPU time (robust on a
 * shared machine; with --threads > 1 the runner's workers are not in it), and
 * the median engine-loop period of the steps that decode the whole batch
 * (scheduler on_step hook: schedule + forward + sample + postprocess).
 * With --json-schema/--regex every request is constrained (one token mask per
 * step from runtime/tokmask); a request then also ends when its output is
 * complete, so only the loop-period figure compares with an unconstrained
 * run (the per-token event lines are left out); prefill then ends at each
 * request's first sampled token (jump-forward text comes without a forward
 * pass) and the total at the last request's final event. --dump writes each output of
 * the last run as a JSON line. A warmup run with the same shapes (4 new
 * tokens) comes first. Exit 0 ok, 1 model/engine error, 2 usage.
 */
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/cli/cli.h"
#include "backend/cli/cli_constraint.h"
#include "backend/cli/cli_device.h"
#include "runtime/engine.h"
#include "runtime/tokmask.h"

static void help(FILE *f)
{
    fprintf(f,
            "usage: sglc bench one-batch --model DIR [--load-format dummy] [--batch-size B]\n"
            "                            [--input-len I] [--output-len O] [options]\n"
            "       sglc bench offline --help\n"
            "       sglc bench program --help\n\n"
            "Times one static batch through the engine, as SGLang's bench_one_batch does.\n\n"
            "  --model DIR              Hugging Face model directory (config.json is enough\n"
            "                           with --load-format dummy, plus the tokenizer)\n"
            "  --load-format auto|dummy dummy: random weights of the config's shape\n"
            "  --batch-size B           requests in the batch (default 1)\n"
            "  --input-len I            random prompt tokens per request (default 256)\n"
            "  --output-len O           new tokens per request (default 32)\n"
            "  --runs N                 timed runs after the warmup (default 1)\n"
            "  --max-total-tokens N     KV cache capacity in tokens\n"
            "  --page-size N            tokens per KV page (default 1)\n"
            "  --threads N              CPU threads for the forward pass\n"
            "  --seed S                 seed of the random prompts (default 42)\n"
            "  --shared-prefix-len S    the first S prompt tokens are the same in every\n"
            "                           request\n"
            "  --keep-cache             keep the prefix cache after the warmup and between\n"
            "                           runs (warm: shared prefixes hit); default cold\n"
            "  --profile                time the engine's step phases (schedule, build, launch,\n"
            "                           wait, postprocess, emit) and print the mean per step\n"
            CLI_CONSTRAINT_HELP
            "                           (every request of the batch; it may end early once\n"
            "                           its output is complete)\n"
            "  --no-jump-forward        constrained: decode forced text token by token\n"
            "  --dump FILE              write each output of the last run as a JSON line:\n"
            "                           {\"index\", \"finish\", \"completion_tokens\", \"text\"}\n"
            "  --json FILE              also write the figures of every run as one JSON object\n"
            CLI_DEVICE_HELP);
}

/* Engine-loop periods, written by the scheduler's on_step hook on the engine
 * thread. Each hook call comes before that step's events, so everything a
 * run wrote is visible to the thread its last event woke. */
typedef struct {
    double *t, *c;                 /* (cap) wall / engine-thread CPU time at each step */
    int32_t *n_prefill, *n_decode; /* (cap) sequences of each kind in the step */
    int32_t n, cap;                /* steps logged; later ones are dropped */
} StepLog;

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int32_t n_left;
    int32_t out_len;
    bool constrained;              /* a request may end before out_len */
    double *t;                     /* (B, out_len) event times (wall) */
    double *c;                     /* (B, out_len) engine-thread CPU times */
    bool failed;
    char error[256];
} Run;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* CPU time of the calling thread (events come on the engine thread): what
 * the engine itself spent, whoever else shares the machine. */
static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void on_step(void *user, int32_t n_prefill, int32_t n_decode, int32_t n_tokens)
{
    (void)n_tokens;
    StepLog *l = user;
    if (l->n >= l->cap)
        return;
    l->t[l->n] = now_s();
    l->c[l->n] = cpu_s();
    l->n_prefill[l->n] = n_prefill;
    l->n_decode[l->n++] = n_decode;
}

typedef struct {
    Run *run;
    int32_t i;                     /* request index in the batch */
    int32_t n;                     /* tokens seen */
    int32_t completion;            /* FINAL: completion tokens */
    double t_final;                /* FINAL: wall time */
    SglFinishKind finish;
    bool keep_text;                /* --dump: copy the output text at FINAL */
    char *text;                    /* FINAL: output text, malloc'd (NULL without memory) */
    size_t text_len;
} Slot;

/* Engine thread: stamps each token; counts finished requests. */
static void on_event(void *user, const SglEvent *ev)
{
    Slot *sl = user;
    Run *r = sl->run;
    size_t i = (size_t)sl->i;
    if (ev->kind == SGL_EV_TOKEN) {
        /* constrained: jump-forward appends forced tokens before and between
         * forward passes; only sampled ones time the steps */
        if (sl->n < r->out_len && !(r->constrained && ev->forced)) {
            r->c[i * (size_t)r->out_len + (size_t)sl->n] = cpu_s();
            r->t[i * (size_t)r->out_len + (size_t)sl->n++] = now_s();
        }
        return;
    }
    sl->t_final = now_s();
    sl->completion = ev->completion_tokens;
    sl->finish = ev->finish;
    if (sl->keep_text && (sl->text = malloc(ev->output_text_len + 1))) {
        memcpy(sl->text, ev->output_text, ev->output_text_len);
        sl->text[ev->output_text_len] = '\0';
        sl->text_len = ev->output_text_len;
    }
    pthread_mutex_lock(&r->mu);
    bool ok = ev->finish == SGL_FINISH_LENGTH && ev->completion_tokens == r->out_len;
    if (r->constrained) /* the constraint completes the output (stop) or the length runs out */
        ok = ev->finish == SGL_FINISH_STOP || ev->finish == SGL_FINISH_LENGTH;
    if (!ok && !r->failed) {
        r->failed = true;
        snprintf(r->error, sizeof r->error, "request %d ended with %s after %d tokens%s%s", (int)i,
                 sgl_finish_name(ev->finish), (int)ev->completion_tokens, ev->error ? ": " : "",
                 ev->error ? ev->error : "");
    }
    if (--r->n_left == 0)
        pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sorts v[0..n) and returns its median. */
static double median(double *v, int32_t n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* What one batch needs besides its shapes: the constraint (dfa NULL: none)
 * and whether outputs are kept for --dump. */
typedef struct {
    const SglDfa *dfa;
    TokRegistry *reg;
    bool keep_text;
} BatchOpts;

/* One batch; fills r (B x O stamps), slots (B) and t0. The first S prompt
 * tokens of every request come from one fixed stream (--shared-prefix-len),
 * the rest from rng. */
static int run_batch(SglEngine *e, int32_t B, int32_t I, int32_t S, int32_t O, uint64_t *rng, const BatchOpts *bo,
                     Run *r, Slot *slots, double *t0)
{
    int32_t vocab = sgl_engine_model_config(e)->vocab_size;
    int32_t *ids = malloc((size_t)B * (size_t)I * sizeof *ids);
    SglRequest *rq = calloc((size_t)B, sizeof *rq);
    int rc = 1;
    SglErr err = {{0}};
    if (!ids || !rq) {
        fprintf(stderr, "sglc bench: out of memory\n");
        goto out;
    }
    for (size_t k = 0; k < (size_t)B * (size_t)I; k++) {
        *rng = *rng * 6364136223846793005ull + 1442695040888963407ull;
        ids[k] = 3 + (int32_t)((*rng >> 33) % (uint64_t)(vocab > 3 ? vocab - 3 : 1));
    }
    for (int32_t i = 0; i < B; i++) { /* the same first S ids in every prompt */
        uint64_t srng = 0x5A17ED;
        for (int32_t k = 0; k < S && k < I; k++) {
            srng = srng * 6364136223846793005ull + 1442695040888963407ull;
            ids[(size_t)i * (size_t)I + (size_t)k] = 3 + (int32_t)((srng >> 33) % (uint64_t)(vocab > 3 ? vocab - 3 : 1));
        }
    }
    memset(r->t, 0, (size_t)B * (size_t)O * sizeof *r->t);
    memset(r->c, 0, (size_t)B * (size_t)O * sizeof *r->c);
    r->n_left = B;
    r->out_len = O;
    r->constrained = bo->dfa != NULL;
    r->failed = false;
    for (int32_t i = 0; i < B; i++) {
        free(slots[i].text);
        slots[i] = (Slot){.run = r, .i = i, .keep_text = bo->keep_text};
        rq[i].input_ids = ids + (size_t)i * (size_t)I;
        rq[i].n_input = I;
        sgl_sampling_params_default(&rq[i].params);
        rq[i].params.temperature = 0.0f;
        rq[i].params.max_new_tokens = O;
        rq[i].params.ignore_eos = true;
        rq[i].on_event = on_event;
        rq[i].user = &slots[i];
        if (bo->dfa &&
            tokmask_constraint_new(bo->reg, bo->dfa, sgl_engine_tokenizer(e), 1, &rq[i].constraint, &err) != SGL_OK) {
            fprintf(stderr, "sglc bench: constraint: %s\n", err.msg);
            goto out;
        }
    }
    *t0 = now_s();
    if (sgl_engine_submit_batch(e, rq, B, NULL, &err) != SGL_OK) {
        fprintf(stderr, "sglc bench: %s\n", err.msg);
        goto out;
    }
    free(rq);
    rq = NULL; /* the engine owns the constraints now */
    pthread_mutex_lock(&r->mu);
    while (r->n_left > 0)
        pthread_cond_wait(&r->cv, &r->mu);
    pthread_mutex_unlock(&r->mu);
    if (r->failed) {
        fprintf(stderr, "sglc bench: %s\n", r->error);
        goto out;
    }
    rc = 0;
out:
    /* the engine never saw these: their constraints are ours to release */
    for (int32_t i = 0; rq && i < B; i++)
        if (rq[i].constraint.release)
            rq[i].constraint.release(rq[i].constraint.ctx);
    free(ids);
    free(rq);
    return rc;
}

/* Median wall and engine-thread CPU period of the logged steps that decode
 * all B sequences and prefill none (the period ending at such a step: the
 * previous step's postprocess, this step's schedule and forward). */
static int32_t full_batch_steps(const StepLog *l, int32_t B, double *scratch, double *wall, double *cpu)
{
    int32_t n = 0;
    for (int32_t k = 1; k < l->n; k++)
        if (l->n_prefill[k] == 0 && l->n_decode[k] == B)
            scratch[n++] = l->t[k] - l->t[k - 1];
    if (n == 0)
        return 0;
    *wall = median(scratch, n);
    n = 0;
    for (int32_t k = 1; k < l->n; k++)
        if (l->n_prefill[k] == 0 && l->n_decode[k] == B)
            scratch[n++] = l->c[k] - l->c[k - 1];
    *cpu = median(scratch, n);
    return n;
}

/* --dump: one JSON line per request of the last run. */
static bool dump_outputs(const char *path, const Slot *slots, int32_t B)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "sglc bench: --dump: cannot write '%s'\n", path);
        return false;
    }
    bool ok = true;
    for (int32_t i = 0; i < B && ok; i++) {
        /* text: null when it is not valid UTF-8 (or was not kept: no memory) */
        json_t *text = slots[i].text ? json_stringn(slots[i].text, slots[i].text_len) : NULL;
        json_t *o = json_pack("{s:I, s:s, s:I, s:o}", "index", (json_int_t)i, "finish",
                              sgl_finish_name(slots[i].finish), "completion_tokens",
                              (json_int_t)slots[i].completion, "text", text ? text : json_null());
        char *line = o ? json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
        ok = line && fprintf(f, "%s\n", line) > 0;
        free(line);
        json_decref(o);
    }
    if (fclose(f) != 0)
        ok = false;
    if (!ok)
        fprintf(stderr, "sglc bench: --dump: cannot write '%s'\n", path);
    return ok;
}

/* --json: the shapes, every timed run's figures (runs: taken over) and the
 * engine counters. */
static bool write_json(const char *path, json_t *runs, long B, long I, long O, long S, const char *constraint,
                       bool jump_forward, const char *device, const SglEngineStats *st)
{
    json_t *o = json_pack("{s:I, s:I, s:I, s:I, s:s, s:O, s:{s:I, s:I, s:I, s:I, s:I, s:I}}", "batch_size",
                          (json_int_t)B, "input_len", (json_int_t)I, "output_len", (json_int_t)O, "shared_prefix_len",
                          (json_int_t)S, "device", device, "runs", runs, "engine", "steps", (json_int_t)st->steps,
                          "forward_tokens", (json_int_t)st->forward_tokens, "generated_tokens",
                          (json_int_t)st->generated_tokens, "retractions", (json_int_t)st->retractions,
                          "jump_forwards", (json_int_t)st->jump_forwards, "jump_forward_tokens",
                          (json_int_t)st->jump_forward_tokens);
    if (o) {
        json_object_set_new(o, "constraint", constraint ? json_string(constraint) : json_null());
        json_object_set_new(o, "jump_forward", json_boolean(jump_forward));
    }
    bool ok = o && json_dump_file(o, path, JSON_INDENT(2) | JSON_ENSURE_ASCII) == 0;
    json_decref(o);
    if (!ok)
        fprintf(stderr, "sglc bench: --json: cannot write '%s'\n", path);
    return ok;
}

static int one_batch(int argc, char **argv)
{
    SglArgs a;
    const char *model = NULL, *fmt = NULL, *regex = NULL, *schema = NULL, *dump = NULL, *json_path = NULL;
    long B = 1, I = 256, O = 32, runs = 1, max_total = 0, page = 1, threads = 0, seed = 42, shared = 0;
    CliDevice dev = {0};
    bool keep_cache = false, no_jump = false, profile = false;
    args_init(&a, argc, argv);
    a.cmd = "bench one-batch";
    while (args_more(&a)) {
        if (args_str(&a, "--model", &model) || args_str(&a, "--load-format", &fmt) ||
            args_str(&a, "--regex", &regex) || args_str(&a, "--json-schema", &schema) ||
            args_str(&a, "--dump", &dump) || args_str(&a, "--json", &json_path) || cli_device_arg(&a, &dev))
            ;
        else if (args_flag(&a, "--keep-cache"))
            keep_cache = true;
        else if (args_flag(&a, "--no-jump-forward"))
            no_jump = true;
        else if (args_flag(&a, "--profile"))
            profile = true;
        else if (args_long(&a, "--batch-size", 1, 4096, &B) || args_long(&a, "--input-len", 1, 1 << 20, &I) ||
                 args_long(&a, "--output-len", 1, 1 << 20, &O) || args_long(&a, "--runs", 1, 1000, &runs) ||
                 args_long(&a, "--max-total-tokens", 0, 1 << 30, &max_total) ||
                 args_long(&a, "--page-size", 1, 4096, &page) || args_long(&a, "--threads", 0, 1024, &threads) ||
                 args_long(&a, "--seed", 0, 1L << 62, &seed) ||
                 args_long(&a, "--shared-prefix-len", 0, 1 << 20, &shared))
            ;
        else
            return args_unknown(&a);
    }
    if (a.bad)
        return 2;
    if (!model)
        return args_usage_error(&a, "--model DIR is required");
    if (regex && schema)
        return args_usage_error(&a, "give only one of --regex, --json-schema");
    SglLoadFormat lf = SGL_LOAD_AUTO;
    if (fmt && strcmp(fmt, "dummy") == 0)
        lf = SGL_LOAD_DUMMY;
    else if (fmt && strcmp(fmt, "auto") != 0)
        return args_usage_error(&a, "--load-format must be auto or dummy, got '%s'", fmt);
    if (B * I > (1L << 24))
        return args_usage_error(&a, "--batch-size x --input-len must be at most %ld", 1L << 24);

    SglEngineOpts eo;
    sgl_engine_opts_default(&eo);
    eo.model_dir = model;
    eo.load_format = lf;
    eo.max_total_tokens = max_total;
    eo.page_size = (int32_t)page;
    eo.n_threads = (int)threads;
    eo.sched.max_running_requests = (int32_t)B;
    eo.sched.chunked_prefill_size = (int32_t)I;
    eo.sched.max_prefill_tokens = (int32_t)(B * I);
    eo.sched.max_queued_requests = (int32_t)B;
    eo.sched.disable_jump_forward = no_jump;
    eo.sched.profile = profile;
    if (cli_device_apply(&a, &dev, &eo))
        return 2;
    int32_t S = (int32_t)(shared < I ? shared : I);
    SglEngine *e = NULL;
    SglErr err = {{0}};
    Run r = {0};
    StepLog log = {.cap = 4 * (int32_t)O + 4096};
    Slot *slots = NULL;
    SglDfa *dfa = NULL;
    BatchOpts bo = {.keep_text = dump != NULL};
    double *lat = NULL;
    json_t *jruns = json_path ? json_array() : NULL; /* one object per timed run */
    int rc = 1;
    pthread_mutex_init(&r.mu, NULL);
    pthread_cond_init(&r.cv, NULL);
    if ((regex || schema) && !(dfa = cli_compile_output_constraint("bench one-batch", regex, schema)))
        goto out;
    if (dfa && !(bo.reg = tokreg_new())) {
        fprintf(stderr, "sglc bench: out of memory\n");
        goto out;
    }
    bo.dfa = dfa;
    log.t = malloc((size_t)log.cap * sizeof *log.t);
    log.c = malloc((size_t)log.cap * sizeof *log.c);
    log.n_prefill = malloc((size_t)log.cap * sizeof *log.n_prefill);
    log.n_decode = malloc((size_t)log.cap * sizeof *log.n_decode);
    r.t = calloc((size_t)B * (size_t)O, sizeof *r.t);
    r.c = calloc((size_t)B * (size_t)O, sizeof *r.c);
    slots = calloc((size_t)B, sizeof *slots);
    lat = malloc(((size_t)2 * (size_t)O + (size_t)log.cap) * sizeof *lat);
    if (!log.t || !log.c || !log.n_prefill || !log.n_decode || !r.t || !r.c || !slots || !lat) {
        fprintf(stderr, "sglc bench: out of memory\n");
        goto out;
    }
    if (eo.node_rank > 0) {   /* a worker host of --nnodes */
        rc = cli_tp_worker("sglc bench one-batch", &eo);
        goto out;
    }
    eo.sched.on_step = on_step;
    eo.sched.on_step_user = &log;
    if (sgl_engine_open(&eo, &e, &err) != SGL_OK) {
        fprintf(stderr, "sglc bench: %s\n", err.msg);
        goto out;
    }
    SglEngineStats st0 = sgl_engine_stats(e);
    if ((int64_t)st0.pool_pages * st0.page_size < B * (I + O)) {
        fprintf(stderr, "sglc bench: the batch needs %ld KV tokens but the pool holds %lld (see --max-total-tokens)\n",
                B * (I + O), (long long)st0.pool_pages * st0.page_size);
        goto out;
    }
    uint64_t rng = (uint64_t)seed * 0x9E3779B97F4A7C15ull + 1;
    double t0;
    printf("Warmup ...\n");
    if (run_batch(e, (int32_t)B, (int32_t)I, S, O < 4 ? (int32_t)O : 4, &rng, &bo, &r, slots, &t0) != 0)
        goto out;
    if (!keep_cache)
        sgl_engine_flush_cache(e);
    printf("Benchmark ...\n");
    SglEngineStats prof0 = sgl_engine_stats(e); /* --profile: the timed runs only */
    for (long run = 0; run < runs; run++) {
        log.n = 0;
        if (run_batch(e, (int32_t)B, (int32_t)I, S, (int32_t)O, &rng, &bo, &r, slots, &t0) != 0)
            goto out;
        if (!keep_cache)
            sgl_engine_flush_cache(e);
        int64_t n_out = 0;
        int32_t o_min = INT32_MAX, o_max = 0;
        for (int32_t i = 0; i < B; i++) {
            n_out += slots[i].completion;
            o_min = slots[i].completion < o_min ? slots[i].completion : o_min;
            o_max = slots[i].completion > o_max ? slots[i].completion : o_max;
        }
        double *last = lat; /* last[k] = time the k-th token of every request is out */
        for (int32_t k = 0; k < O; k++) {
            last[k] = 0.0;
            for (int32_t i = 0; i < B; i++)
                if (r.t[(size_t)i * (size_t)O + (size_t)k] > last[k])
                    last[k] = r.t[(size_t)i * (size_t)O + (size_t)k];
        }
        double prefill = last[0] - t0, total = 0.0, med = -1, cmed = -1;
        for (int32_t k = 0; k < O; k++)
            if (last[k] - t0 > total)
                total = last[k] - t0;
        for (int32_t i = 0; dfa && i < B; i++) /* forced text may come last */
            if (slots[i].t_final - t0 > total)
                total = slots[i].t_final - t0;
        if (last[0] > 0.0)
            printf("Prefill. latency: %6.5f s, throughput: %9.2f token/s\n", prefill, (double)(B * I) / prefill);
        else /* constrained: every token was forced */
            prefill = 0.0;
        if (!dfa) {
            for (int32_t k = O - 1; k >= 1; k--)
                last[k] -= last[k - 1];
            for (int32_t k = 1; k < O && k < 6; k++)
                printf("Decode %d. Batch size: %ld, latency: %6.5f s, throughput: %9.2f token/s\n", (int)(k - 1),
                       B, last[k], (double)B / last[k]);
            /* the same from the engine thread's CPU clock (its events are
             * stamped in order, so the last request's stamp is the step's end) */
            double *cl = lat + O;
            for (int32_t k = 0; k < O; k++) {
                cl[k] = 0.0;
                for (int32_t i = 0; i < B; i++)
                    if (r.c[(size_t)i * (size_t)O + (size_t)k] > cl[k])
                        cl[k] = r.c[(size_t)i * (size_t)O + (size_t)k];
            }
            for (int32_t k = O - 1; k >= 1; k--)
                cl[k] -= cl[k - 1];
            if (O > 1) {
                med = median(last + 1, O - 1);
                cmed = median(cl + 1, O - 1);
                printf("Decode.  median latency: %6.5f s, median throughput: %9.2f token/s\n", med,
                       (double)B / med);
                printf("Decode.  median engine-thread cpu time: %8.6f s, throughput: %9.2f token/s%s\n", cmed,
                       (double)B / cmed, threads > 1 ? " (runner workers not counted)" : "");
            }
        } else {
            printf("Constrained. outputs: %lld tokens (%d to %d per request, at most %ld)\n", (long long)n_out,
                   (int)o_min, (int)o_max, O);
        }
        double sw = 0, sc = 0;
        int32_t ns = full_batch_steps(&log, (int32_t)B, lat + 2 * O, &sw, &sc);
        if (ns > 0)
            printf("Steps.   full-batch decode steps: %d, median period: %8.6f s wall, %8.6f s engine-thread "
                   "cpu, throughput: %9.2f token/s\n", (int)ns, sw, sc, (double)B / sw);
        else
            printf("Steps.   full-batch decode steps: 0 (every step had a prefill or a finished request)\n");
        printf("Total. latency: %6.3f s, throughput: %9.2f token/s\n", total, (double)(B * I + n_out) / total);
        if (jruns) {
            json_t *jr = json_pack("{s:f, s:f, s:f, s:f, s:I, s:f, s:f, s:I, s:I, s:I}", "prefill_latency_s", prefill,
                                   "prefill_throughput", (double)(B * I) / prefill, "total_latency_s", total,
                                   "total_throughput", (double)(B * I + n_out) / total, "full_batch_steps",
                                   (json_int_t)ns, "step_median_s", sw, "step_median_cpu_s", sc, "output_tokens",
                                   (json_int_t)n_out, "min_output_tokens", (json_int_t)o_min, "max_output_tokens",
                                   (json_int_t)o_max);
            if (jr && med >= 0) {
                json_object_set_new(jr, "decode_median_s", json_real(med));
                json_object_set_new(jr, "decode_median_cpu_s", json_real(cmed));
            }
            json_array_append_new(jruns, jr);
        }
    }
    SglEngineStats st = sgl_engine_stats(e);
    printf("Engine. steps: %lld, forward tokens: %lld, generated: %lld, retractions: %lld, jump-forwards: %lld\n",
           (long long)st.steps, (long long)st.forward_tokens, (long long)st.generated_tokens,
           (long long)st.retractions, (long long)st.jump_forwards);
    if (profile && st.profiled_steps > prof0.profiled_steps) {
        double n = (double)(st.profiled_steps - prof0.profiled_steps), step = (st.step_us - prof0.step_us) / n;
        double wait = (st.phase_us[SGL_PHASE_WAIT] - prof0.phase_us[SGL_PHASE_WAIT]) / n;
        printf("Profile. steps: %.0f (overlapped: %lld), mean step: %.1f us; per step:", n,
               (long long)(st.overlap_steps - prof0.overlap_steps), step);
        for (int ph = 0; ph < SGL_PHASE_COUNT_; ph++)
            printf(" %s %.1f us%s", sgl_phase_name((SglPhase)ph),
                   (st.phase_us[ph] - prof0.phase_us[ph]) / n, ph + 1 < SGL_PHASE_COUNT_ ? "," : "\n");
        printf("Profile. loop thread busy (not waiting on the runner): %.1f us = %.1f%% of the step\n",
               step - wait, step > 0 ? 100.0 * (step - wait) / step : 0.0);
    }
    if (dump && !dump_outputs(dump, slots, (int32_t)B))
        goto out;
    if (json_path && !write_json(json_path, jruns, B, I, O, S, regex ? "regex" : schema ? "json-schema" : NULL,
                                 !no_jump, dev.device ? dev.device : "cpu", &st))
        goto out;
    rc = 0;
out:
    json_decref(jruns);
    sgl_engine_close(e); /* releases the constraints: before the registry */
    tokreg_free(bo.reg);
    sgl_dfa_free(dfa);
    for (int32_t i = 0; slots && i < B; i++)
        free(slots[i].text);
    free(slots);
    free(lat);
    free(log.t);
    free(log.c);
    free(log.n_prefill);
    free(log.n_decode);
    free(r.t);
    free(r.c);
    pthread_cond_destroy(&r.cv);
    pthread_mutex_destroy(&r.mu);
    return rc;
}

int cmd_bench(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        help(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "one-batch") == 0) {
        if (args_wants_help(argc - 1, argv + 1)) {
            help(stdout);
            return 0;
        }
        return one_batch(argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "offline") == 0)   /* cmd_bench_offline.c */
        return cmd_bench_offline(argc - 1, argv + 1);
    if (strcmp(argv[1], "program") == 0)   /* cmd_bench_program.c */
        return cmd_bench_program(argc - 1, argv + 1);
    fprintf(stderr, "sglc bench: unknown benchmark '%s' (known: one-batch, offline, program)\n", argv[1]);
    return 2;
}

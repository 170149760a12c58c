/* cmd_bench_program.c -- `sglc bench program`: a .sgl program over a batch
 * of inputs, timed, with the SGLang paper's ablations.
 *
 *   sglc bench program FILE.sgl --batch DATA.jsonl [--parallel N] [--model DIR]
 *       [--ablations] [--disable-radix-cache] [--no-prefix-hoist] [--no-parallel]
 *       [--schedule-policy P] [--no-jump-forward] [--temperature T] [--max-tokens N]
 *       [--max-tokens-cap N] [--seed S] [--threads N] [--repeat R]
 *       [--num-programs N] [--json]
 *
 * One configuration = compile FILE (passes as the flags say), open a fresh
 * engine (empty radix cache), issue the program's start-up prefills, then run
 * main once per DATA line with N runs in flight (as `sglc run --batch`), and
 * stop the clocks (wall, and process CPU time: robust on a busy machine)
 * when every run has finished. An untimed warmup run of the
 * first configuration comes first; --repeat R keeps the fastest of R timed
 * runs (each on a fresh engine). Prints one result line with
 * SGLang's fields: latency, throughput (programs/s, prompt+completion and
 * output token/s), cache hit rate (cached / prompt tokens of the programs'
 * requests), requests, prompt/completion/cached tokens, errors, jump-forwards.
 * --ablations runs the full configuration and then each ablation alone and
 * prints a table. Exit: 0 ok, 1 compile/model/runtime error, 2 usage.
 */
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend/chat_template.h"
#include "backend/cli/cli.h"
#include "backend/interp.h"

#define MAX_CONFIGS 8

typedef struct {
    const char *name;           /* table row label */
    bool no_cache, no_hoist, no_par, no_jf;
    int policy;                 /* -1: engine default (lpm) */
} BenchConfig;

typedef struct {
    double latency_s;
    double cpu_s;               /* process CPU time over the run, all threads */
    int64_t programs, errors, requests, prompt_tokens, completion_tokens, cached_tokens;
    int64_t jump_forwards;
} BenchResult;

typedef struct {
    const char *file, *data, *model;
    long parallel, threads, repeat;
    long n_programs;            /* --num-programs: runs per configuration (0 = one per line) */
    SglExecOpts xo;
    bool json;
} BenchArgs;

/* Lines of DATA: each a JSON object of main's parameters (owned). */
typedef struct {
    json_t **lines;
    int32_t n;
} BenchData;

/* One timed batch: workers take the next line until none is left. */
typedef struct {
    SglExec *x;
    Value ***args;              /* (n) main's arguments per line */
    SglRunResult *res;          /* (n) */
    int32_t n, next;
    pthread_mutex_t mu;
} BenchBatch;

static void help(FILE *f)
{
    fprintf(f,
            "usage: sglc bench program FILE.sgl --batch DATA.jsonl [--parallel N] [--model DIR]\n"
            "                          [--ablations | ablation flags] [options]\n\n"
            "Runs main once per line of DATA.jsonl (as `sglc run --batch`) on a fresh engine\n"
            "and prints latency, throughput, cache hit rate and token counts.\n\n"
            "  --model DIR              model directory (default $SGL_MODEL)\n"
            "  --parallel N             program runs in flight at once (default 16)\n"
            "  --ablations              run the full configuration, then each ablation alone,\n"
            "                           and print a table\n"
            "  --disable-radix-cache    no prefix caching in the engine\n"
            "  --no-prefix-hoist        disable the prefix_hoist pass (no start-up prefills)\n"
            "  --no-parallel            forks and calls run one after another\n"
            "  --schedule-policy P      lpm (default), fcfs, lof, random, dfs-weight\n"
            "  --no-jump-forward        constrained gens decode forced text token by token\n"
            "  --temperature T, --max-tokens N, --max-tokens-cap N, --seed S   gen defaults\n"
            "                           (default seed 0: sampled runs are reproducible)\n"
            "  --threads N              CPU threads for the forward pass (0 = auto)\n"
            "  --repeat R               keep the fastest of R runs (default 1)\n"
            "  --num-programs N         N runs per configuration, cycling through the lines\n"
            "                           (default: one per line)\n"
            "  --json                   one JSON object per configuration instead of text\n");
}

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Reads DATA: one JSON object per non-blank line; false (message printed). */
static bool data_load(const char *path, BenchData *d)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "sglc bench program: --batch: cannot read '%s'\n", path);
        return false;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int line_no = 0;
    int32_t cap_lines = 0;
    bool ok = true;
    while (ok && (len = getline(&line, &cap, f)) >= 0) {
        line_no++;
        size_t i = 0;
        while (i < (size_t)len && strchr(" \t\r\n", line[i]))
            i++;
        if (i == (size_t)len)
            continue;
        json_error_t je;
        json_t *j = json_loadb(line, (size_t)len, 0, &je);
        if (!j || !json_is_object(j)) {
            fprintf(stderr, "sglc bench program: %s:%d: %s\n", path, line_no,
                    j ? "expected a JSON object of main's parameters" : je.text);
            json_decref(j);
            ok = false;
            break;
        }
        if (d->n == cap_lines) {
            cap_lines = cap_lines ? cap_lines * 2 : 64;
            json_t **nl = realloc(d->lines, (size_t)cap_lines * sizeof *nl);
            if (!nl) {
                json_decref(j);
                ok = false;
                break;
            }
            d->lines = nl;
        }
        d->lines[d->n++] = j;
    }
    free(line);
    fclose(f);
    if (ok && d->n == 0) {
        fprintf(stderr, "sglc bench program: %s: no input lines\n", path);
        ok = false;
    }
    return ok;
}

static void data_free(BenchData *d)
{
    for (int32_t i = 0; i < d->n; i++)
        json_decref(d->lines[i]);
    free(d->lines);
}

/* main's arguments from one line (all parameters, no unknown key). */
static bool line_values(SglExec *x, const IrFunc *fn, const json_t *obj, Value **vals, char *msg,
                        size_t cap)
{
    const char *key;
    json_t *jv;
    json_object_foreach((json_t *)obj, key, jv) {
        bool known = false;
        for (uint32_t k = 0; k < fn->n_params && !known; k++)
            known = strcmp(fn->slots[k].name, key) == 0;
        if (!known) {
            snprintf(msg, cap, "unknown parameter '%s'", key);
            return false;
        }
    }
    for (uint32_t k = 0; k < fn->n_params; k++) {
        const json_t *j = json_object_get(obj, fn->slots[k].name);
        const ValType *vt = exec_vtype(x, fn->slots[k].type);
        char m[300];
        if (!j) {
            snprintf(msg, cap, "missing parameter '%s'", fn->slots[k].name);
            return false;
        }
        if (!vt || !val_from_json(j, vt, &vals[k], m, sizeof m)) {
            snprintf(msg, cap, "parameter '%s': %s", fn->slots[k].name, vt ? m : "unsupported type");
            return false;
        }
    }
    return true;
}

static void *batch_worker(void *arg)
{
    BenchBatch *b = arg;
    for (;;) {
        pthread_mutex_lock(&b->mu);
        int32_t i = b->next < b->n ? b->next++ : -1;
        pthread_mutex_unlock(&b->mu);
        if (i < 0)
            return NULL;
        sgl_exec_run_main(b->x, b->args[i], &b->res[i]);
    }
}

/* One timed run of configuration c on a fresh engine; false on a setup
 * error (message printed). Program runtime errors are counted in r->errors
 * and the first one is printed. */
static bool run_once(const BenchArgs *a, const BenchConfig *c, const IrProgram *p,
                     const BenchData *d, BenchResult *r)
{
    bool ok = false;
    SglEngine *e = NULL;
    SglExec *x = NULL;
    int32_t n = a->n_programs > 0 ? (int32_t)a->n_programs : d->n;
    BenchBatch b = {.n = n};
    pthread_t *th = NULL;
    const IrFunc *fn = p->main >= 0 && (uint32_t)p->main < p->n_funcs ? p->funcs[p->main] : NULL;
    char msg[1024];
    memset(r, 0, sizeof *r);
    if (!fn) {
        fprintf(stderr, "%s: error: the program has no `main` function to run\n", a->file);
        return false;
    }
    SglEngineOpts eo;
    sgl_engine_opts_default(&eo);
    eo.model_dir = a->model;
    eo.n_threads = (int)a->threads;
    eo.sched.disable_radix_cache = c->no_cache;
    eo.sched.disable_jump_forward = c->no_jf;
    if (c->policy >= 0)
        eo.sched.policy = (SglPolicy)c->policy;
    eo.sched.seed = a->xo.seed >= 0 ? (uint64_t)a->xo.seed : 0;
    SglErr err = {{0}};
    if (sgl_engine_open(&eo, &e, &err) != SGL_OK) {
        fprintf(stderr, "sglc bench program: %s\n", err.msg);
        goto out;
    }
    SglExecOpts xo = a->xo;
    xo.no_parallel = c->no_par;
    xo.stream = NULL;
    if (!sgl_exec_new(p, e, chat_template_detect(a->model, sgl_engine_tokenizer(e)), &xo, &x, msg,
                      sizeof msg)) {
        fprintf(stderr, "%s\n", msg);
        goto out;
    }
    b.x = x;
    b.args = calloc((size_t)n, sizeof *b.args);
    b.res = calloc((size_t)n, sizeof *b.res);
    if (!b.args || !b.res) {
        fprintf(stderr, "sglc bench program: out of memory\n");
        goto out;
    }
    for (int32_t i = 0; i < n; i++) {
        if (!(b.args[i] = calloc(fn->n_params + 1, sizeof(Value *)))) {
            fprintf(stderr, "sglc bench program: out of memory\n");
            goto out;
        }
        if (!line_values(x, fn, d->lines[i % d->n], b.args[i], msg, sizeof msg)) {
            fprintf(stderr, "sglc bench program: %s: line %d: %s\n", a->data, (int)(i % d->n) + 1, msg);
            goto out;
        }
    }
    pthread_mutex_init(&b.mu, NULL);
    int nt = (int)(a->parallel < n ? a->parallel : n), started = 0;
    double t0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
    if (!c->no_hoist)
        sgl_exec_warm(x);
    if ((th = calloc((size_t)nt, sizeof *th)))
        for (int i = 0; i < nt; i++)
            if (pthread_create(&th[i], NULL, batch_worker, &b) == 0)
                started++;
    if (started == 0)
        batch_worker(&b);
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    r->latency_s = clock_s(CLOCK_MONOTONIC) - t0;
    r->cpu_s = clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
    pthread_mutex_destroy(&b.mu);
    r->programs = n;
    for (int32_t i = 0; i < n; i++) {
        const SglRunResult *s = &b.res[i];
        if (s->error && r->errors++ == 0)
            fprintf(stderr, "sglc bench program: [%s] line %d: %s\n", c->name, (int)(i % d->n) + 1, s->error);
        r->requests += s->c.requests;
        r->prompt_tokens += s->c.prompt_tokens;
        r->completion_tokens += s->c.completion_tokens;
        r->cached_tokens += s->c.cached_tokens;
    }
    SglEngineStats st = sgl_engine_stats(e);
    r->jump_forwards = st.jump_forwards;
    ok = true;
out:
    sgl_engine_close(e);   /* first: it releases constraints that point into x */
    for (int32_t i = 0; b.res && i < n; i++)
        sgl_run_result_free(&b.res[i]);
    for (int32_t i = 0; b.args && i < n; i++) {
        for (uint32_t k = 0; b.args[i] && fn && k < fn->n_params; k++)
            val_unref(b.args[i][k]);
        free(b.args[i]);
    }
    free(b.args);
    free(b.res);
    free(th);
    sgl_exec_free(x);
    return ok;
}

/* Compiles FILE for configuration c and keeps the fastest of a->repeat runs. */
static bool run_config(const BenchArgs *a, const BenchConfig *c, const BenchData *d, BenchResult *best)
{
    SglRunLoadOpts lo = {.no_prefix_hoist = c->no_hoist, .no_parallel = c->no_par};
    IrProgram *p = cli_compile_program(a->file, &lo);
    if (!p)
        return false;
    bool ok = true;
    for (long k = 0; ok && k < a->repeat; k++) {
        BenchResult r;
        ok = run_once(a, c, p, d, &r);
        if (ok && (k == 0 || r.latency_s < best->latency_s))
            *best = r;
    }
    ir_program_free(p);
    return ok;
}

static double hit_rate(const BenchResult *r)
{
    return r->prompt_tokens > 0 ? (double)r->cached_tokens / (double)r->prompt_tokens : 0.0;
}

static void print_result(const BenchArgs *a, const BenchConfig *c, const BenchResult *r)
{
    double lat = r->latency_s > 0 ? r->latency_s : 1e-9;
    double tok = (double)(r->prompt_tokens + r->completion_tokens);
    if (a->json) {
        json_t *o = json_pack("{s:s, s:s, s:f, s:f, s:f, s:f, s:f, s:f, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
                              "config", c->name, "program", a->file, "latency", r->latency_s,
                              "cpu_time", r->cpu_s,
                              "throughput_programs", (double)r->programs / lat,
                              "throughput_tokens", tok / lat,
                              "output_throughput", (double)r->completion_tokens / lat,
                              "cache_hit_rate", hit_rate(r), "num_programs", (json_int_t)r->programs,
                              "num_requests", (json_int_t)r->requests,
                              "prompt_tokens", (json_int_t)r->prompt_tokens,
                              "completion_tokens", (json_int_t)r->completion_tokens,
                              "cached_tokens", (json_int_t)r->cached_tokens,
                              "errors", (json_int_t)r->errors,
                              "jump_forwards", (json_int_t)r->jump_forwards);
        char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
        if (s)
            printf("%s\n", s);
        free(s);
        json_decref(o);
    } else {
        printf("[%s] Latency: %.3f s, CPU time: %.3f s, Throughput: %.2f programs/s, %.1f token/s, "
               "Output throughput: %.1f token/s, Cache hit rate: %.3f, Requests: %lld, "
               "Prompt tokens: %lld, Completion tokens: %lld, Cached tokens: %lld, "
               "Errors: %lld, Jump-forwards: %lld\n",
               c->name, r->latency_s, r->cpu_s, (double)r->programs / lat, tok / lat,
               (double)r->completion_tokens / lat, hit_rate(r), (long long)r->requests,
               (long long)r->prompt_tokens, (long long)r->completion_tokens,
               (long long)r->cached_tokens, (long long)r->errors, (long long)r->jump_forwards);
    }
    fflush(stdout);
}

int cmd_bench_program(int argc, char **argv)
{
    if (args_wants_help(argc, argv)) {
        help(stdout);
        return 0;
    }
    BenchArgs a = {.parallel = 16, .repeat = 1};
    sgl_exec_opts_default(&a.xo);
    a.xo.seed = 0;
    BenchConfig one = {.name = "full sglc", .policy = -1};
    bool ablations = false;
    const char *policy = NULL, *sv;
    long lv;
    SglArgs g;
    args_init(&g, argc, argv);
    g.cmd = "bench program";    /* messages read "sglc bench program: ..." */
    while (args_more(&g)) {
        if (args_flag(&g, "--ablations"))
            ablations = true;
        else if (args_flag(&g, "--disable-radix-cache"))
            one.no_cache = true;
        else if (args_flag(&g, "--no-prefix-hoist"))
            one.no_hoist = true;
        else if (args_flag(&g, "--no-parallel"))
            one.no_par = true;
        else if (args_flag(&g, "--no-jump-forward"))
            one.no_jf = true;
        else if (args_flag(&g, "--json"))
            a.json = true;
        else if (args_str(&g, "--model", &a.model) || args_str(&g, "--batch", &a.data) ||
                 args_str(&g, "--schedule-policy", &policy) ||
                 args_long(&g, "--parallel", 1, 4096, &a.parallel) ||
                 args_long(&g, "--threads", 0, 1024, &a.threads) ||
                 args_long(&g, "--repeat", 1, 1000, &a.repeat) ||
                 args_long(&g, "--num-programs", 1, 1 << 20, &a.n_programs) ||
                 args_double(&g, "--temperature", 0.0, 1e6, &a.xo.temperature))
            ;
        else if (args_long(&g, "--max-tokens", 0, 1 << 24, &lv))
            a.xo.max_tokens = (int32_t)lv;
        else if (args_long(&g, "--max-tokens-cap", 1, 1 << 24, &lv))
            a.xo.max_tokens_cap = (int32_t)lv;
        else if (args_long(&g, "--seed", 0, 0x7fffffffffffffffL, &lv))
            a.xo.seed = lv;
        else if (args_positional(&g, &sv)) {
            if (a.file)
                return args_usage_error(&g, "only one program file, got '%s' and '%s'", a.file, sv);
            a.file = sv;
        } else
            return args_unknown(&g);
    }
    if (g.bad)
        return 2;
    if (!a.file)
        return args_usage_error(&g, "missing FILE.sgl (see 'sglc bench program --help')");
    if (!a.data)
        return args_usage_error(&g, "missing --batch DATA.jsonl");
    if (policy && (one.policy = sgl_policy_parse(policy)) < 0)
        return args_usage_error(&g, "--schedule-policy: unknown policy '%s'", policy);
    if (ablations && (one.no_cache || one.no_hoist || one.no_par || one.no_jf || policy))
        return args_usage_error(&g, "--ablations runs every ablation itself; give no ablation flag");
    if (!a.model)
        a.model = getenv("SGL_MODEL");
    if (!a.model || !*a.model)
        return args_usage_error(&g, "no --model and no $SGL_MODEL");

    BenchConfig cfg[MAX_CONFIGS];
    int n_cfg = 0;
    if (!ablations) {
        if (one.no_cache || one.no_hoist || one.no_par || one.no_jf || policy)
            one.name = "ablation";
        cfg[n_cfg++] = one;
    } else {
        cfg[n_cfg++] = (BenchConfig){.name = "full sglc", .policy = -1};
        cfg[n_cfg++] = (BenchConfig){.name = "no radix cache", .no_cache = true, .policy = -1};
        cfg[n_cfg++] = (BenchConfig){.name = "no prefix hoist", .no_hoist = true, .policy = -1};
        cfg[n_cfg++] = (BenchConfig){.name = "no parallel", .no_par = true, .policy = -1};
        cfg[n_cfg++] = (BenchConfig){.name = "fcfs", .policy = sgl_policy_parse("fcfs")};
        cfg[n_cfg++] = (BenchConfig){.name = "random", .policy = sgl_policy_parse("random")};
        cfg[n_cfg++] = (BenchConfig){.name = "no jump-forward", .no_jf = true, .policy = -1};
    }
    BenchData d = {0};
    BenchResult res[MAX_CONFIGS];
    int rc = 1;
    if (!data_load(a.data, &d))
        goto out;
    /* warmup (untimed): the first configuration once, so that loading the
     * model files and starting threads is not charged to the first row */
    if (!run_config(&a, &cfg[0], &d, &res[0]))
        goto out;
    for (int i = 0; i < n_cfg; i++) {
        if (!run_config(&a, &cfg[i], &d, &res[i]))
            goto out;
        print_result(&a, &cfg[i], &res[i]);
    }
    if (ablations && !a.json) {
        printf("\n%-16s %10s %8s %12s %10s %10s %9s %9s\n", "configuration", "latency s", "cpu s",
               "programs/s", "token/s", "cache hit", "requests", "vs full");
        for (int i = 0; i < n_cfg; i++) {
            double lat = res[i].latency_s > 0 ? res[i].latency_s : 1e-9;
            printf("%-16s %10.3f %8.3f %12.2f %10.1f %10.3f %9lld %8.2fx\n", cfg[i].name,
                   res[i].latency_s, res[i].cpu_s,
                   (double)res[i].programs / lat,
                   (double)(res[i].prompt_tokens + res[i].completion_tokens) / lat,
                   hit_rate(&res[i]), (long long)res[i].requests, res[0].latency_s / lat);
        }
    }
    rc = 0;
    for (int i = 0; i < n_cfg; i++)
        if (res[i].errors)
            rc = 1;
out:
    data_free(&d);
    return rc;
}

/* bench_jump.c -- tokens per second of a JSON-extraction request with and
 * without jump-forward, against unconstrained decoding of the same length.
 *
 *   bench_jump --model DIR [--load-format dummy] [--runs N] [--threads N]
 *
 * One greedy request: a short extraction prompt and a 7-field JSON schema
 * (strings bounded by maxLength so random weights finish). Three cases, each
 * run N times with the radix cache flushed before every run (so each pays
 * the same prompt prefill):
 *   constrained, jump-forward on   (engine A)
 *   constrained, jump-forward off  (engine B, --no-jump-forward)
 *   unconstrained, ignore_eos, max_new_tokens = the output length of the
 *   first case (engine A): decoding the same number of tokens freely.
 * Prints per case the output tokens, engine steps, and the median wall and
 * process-CPU time (all threads of this process: robust on a loaded
 * machine) with tokens/s = output tokens / time.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ir/fsm/jsonschema.h"
#include "runtime/engine.h"
#include "runtime/tokmask.h"

static const char *const PROMPT =
    "Extract the person described below as JSON.\n"
    "Alice Smith is a 34 year old engineer at Acme in Paris. She knows C, Rust and SQL.\n";
static const char *const SCHEMA =
    "{\"type\": \"object\", \"properties\": {"
    "\"name\": {\"type\": \"string\", \"maxLength\": 16},"
    "\"age\": {\"type\": \"integer\"},"
    "\"job\": {\"type\": \"string\", \"maxLength\": 12},"
    "\"company\": {\"type\": \"string\", \"maxLength\": 10},"
    "\"city\": {\"type\": \"string\", \"maxLength\": 10},"
    "\"skills\": {\"type\": \"array\", \"items\": {\"type\": \"string\", \"maxLength\": 8}, \"maxItems\": 3},"
    "\"employed\": {\"type\": \"boolean\"}},"
    "\"required\": [\"name\", \"age\", \"job\", \"company\", \"city\", \"skills\", \"employed\"]}";

static double now_s(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct {
    int32_t out_tokens;
    int64_t steps, jumps, jump_tokens;
    double wall, cpu;                  /* medians */
    char text[512];
} Case;

/* Runs the request `runs` times on e (constrained when dfa). */
static int run_case(SglEngine *e, TokRegistry *reg, const SglDfa *dfa, int32_t max_new, int runs, Case *c)
{
    int32_t *ids = NULL, n = 0;
    if (sgl_engine_encode(e, PROMPT, strlen(PROMPT), true, &ids, &n) != SGL_OK)
        return 1;
    double wall[64], cpu[64];
    int rc = 0;
    for (int r = 0; r < runs && r < 64 && rc == 0; r++) {
        sgl_engine_flush_cache(e);
        SglEngineStats s0 = sgl_engine_stats(e);
        SglRequest rq = {.input_ids = ids, .n_input = n};
        sgl_sampling_params_default(&rq.params);
        rq.params.temperature = 0.0f;
        rq.params.max_new_tokens = max_new;
        rq.params.ignore_eos = dfa == NULL;
        SglErr err = {0};
        if (dfa && tokmask_constraint_new(reg, dfa, sgl_engine_tokenizer(e), 1, &rq.constraint, &err) != SGL_OK) {
            fprintf(stderr, "bench_jump: %s\n", err.msg);
            rc = 1;
            break;
        }
        SglGenResult res = {0};
        double w0 = now_s(CLOCK_MONOTONIC), c0 = now_s(CLOCK_PROCESS_CPUTIME_ID);
        if (sgl_engine_generate(e, &rq, &res, &err) != SGL_OK || res.samples[0].finish == SGL_FINISH_ERROR) {
            fprintf(stderr, "bench_jump: %s\n", err.msg[0] ? err.msg : res.samples[0].error);
            rc = 1;
        }
        wall[r] = now_s(CLOCK_MONOTONIC) - w0;
        cpu[r] = now_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
        sgl_engine_flush_cache(e); /* a barrier: the stats below include this request */
        SglEngineStats s1 = sgl_engine_stats(e);
        if (rc == 0) {
            c->out_tokens = res.samples[0].n_output;
            snprintf(c->text, sizeof c->text, "%.*s", (int)res.samples[0].text_len, res.samples[0].text);
        }
        c->steps = s1.steps - s0.steps;
        c->jumps = s1.jump_forwards - s0.jump_forwards;
        c->jump_tokens = s1.jump_forward_tokens - s0.jump_forward_tokens;
        sgl_gen_result_free(&res);
    }
    qsort(wall, (size_t)runs, sizeof *wall, cmp_d);
    qsort(cpu, (size_t)runs, sizeof *cpu, cmp_d);
    c->wall = wall[runs / 2];
    c->cpu = cpu[runs / 2];
    free(ids);
    return rc;
}

static void print_case(const char *name, const Case *c)
{
    printf("%-32s %4d tokens  %4lld steps  %3lld jumps (%3lld tokens)  wall %8.3f s (%7.1f tok/s)"
           "  cpu %8.3f s (%7.1f tok/s)\n",
           name, (int)c->out_tokens, (long long)c->steps, (long long)c->jumps, (long long)c->jump_tokens,
           c->wall, c->out_tokens / c->wall, c->cpu, c->out_tokens / c->cpu);
}

int main(int argc, char **argv)
{
    const char *model = NULL;
    bool dummy = false;
    int runs = 3, threads = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--model") == 0 && i + 1 < argc)
            model = argv[++i];
        else if (strcmp(argv[i], "--load-format") == 0 && i + 1 < argc)
            dummy = strcmp(argv[++i], "dummy") == 0;
        else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc)
            runs = atoi(argv[++i]);
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_jump --model DIR [--load-format dummy] [--runs N] [--threads N]\n");
            return 2;
        }
    }
    if (!model || runs < 1 || runs > 64) {
        fprintf(stderr, "usage: bench_jump --model DIR [--load-format dummy] [--runs N<=64] [--threads N]\n");
        return 2;
    }
    json_error_t je;
    json_t *schema = json_loads(SCHEMA, 0, &je);
    SglDfa *dfa = NULL;
    FsmErr fe;
    if (!schema || jsonschema_compile(schema, NULL, NULL, &dfa, &fe) != SGL_OK) {
        fprintf(stderr, "bench_jump: schema: %s\n", fe.msg);
        return 1;
    }
    json_decref(schema);
    SglEngine *a = NULL, *b = NULL;
    TokRegistry *reg = tokreg_new();
    SglEngineOpts eo;
    sgl_engine_opts_default(&eo);
    eo.model_dir = model;
    eo.load_format = dummy ? SGL_LOAD_DUMMY : SGL_LOAD_AUTO;
    eo.n_threads = threads;
    SglErr err = {0};
    int rc = 1;
    Case on = {0}, off = {0}, free_ = {0};
    if (sgl_engine_open(&eo, &a, &err) != SGL_OK)
        goto out;
    eo.sched.disable_jump_forward = true;
    if (sgl_engine_open(&eo, &b, &err) != SGL_OK)
        goto out;
    if (run_case(a, reg, dfa, 256, runs, &on) || run_case(b, reg, dfa, 256, runs, &off) ||
        run_case(a, reg, NULL, on.out_tokens, runs, &free_))
        goto out;
    printf("model %s%s, %d runs (medians), output: %s\n", model, dummy ? " (dummy weights)" : "", runs, on.text);
    print_case("constrained, jump-forward", &on);
    print_case("constrained, no jump-forward", &off);
    print_case("unconstrained, same length", &free_);
    rc = 0;
out:
    if (rc && err.msg[0])
        fprintf(stderr, "bench_jump: %s\n", err.msg);
    sgl_engine_close(a);
    sgl_engine_close(b);
    tokreg_free(reg);
    sgl_dfa_free(dfa);
    return rc;
}

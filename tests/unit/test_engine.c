/* test_engine.c -- the whole engine on the real stories260K checkpoint.
 *
 * Goldens (transformers greedy ids and top-5 logprobs) through the C API, one
 * by one and all at once, and through `sglc generate --json`; prompt
 * logprobs against the goldens' logprobs; 64 requests sharing a 200-token
 * prefix (computed once, outputs equal to cache-disabled sequential runs);
 * 500 random requests with aborts under a tiny KV budget with integrity
 * checks after every step and a fully free pool at the end; close with work
 * in flight; queue limits; stop strings with the real tokenizer; overlap
 * scheduling equal to synchronous steps (EOS, stop strings, max tokens 1,
 * n = 3, retraction); the step trace (valid Chrome trace JSON) and profile.
 * Needs ../shared (SGL_SHARED_DIR): skipped (77) without it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/engine.h"

static char model_dir[1024], goldens_path[1024];
static json_t *goldens;

/* Admission reserve for open_engine (SglSchedOpts.init_new_token_ratio): the
 * tests that exercise retraction turn it off (-1) so that it happens. */
static float g_ratio;

static SglEngine *open_engine(int64_t max_total, bool no_cache, int32_t max_running, int32_t max_queued)
{
    SglEngineOpts o;
    sgl_engine_opts_default(&o);
    o.sched.init_new_token_ratio = g_ratio;
    o.model_dir = model_dir;
    o.max_total_tokens = max_total;
    o.sched.disable_radix_cache = no_cache;
    o.sched.check_integrity = true;
    if (max_running)
        o.sched.max_running_requests = max_running;
    if (max_queued)
        o.sched.max_queued_requests = max_queued;
    SglEngine *e = NULL;
    SglErr err = {{0}};
    if (sgl_engine_open(&o, &e, &err) != SGL_OK)
        fail_msg("open: %s", err.msg);
    return e;
}

/* The pool is fully free once the cache is flushed; no integrity failure. */
static void check_clean(SglEngine *e)
{
    assert_true(sgl_engine_flush_cache(e));
    SglEngineStats st = sgl_engine_stats(e);
    for (int i = 0; i < 200 && (st.running || st.queued); i++) {
        usleep(1000);
        st = sgl_engine_stats(e);
    }
    assert_int_equal(st.integrity_failures, 0);
    assert_int_equal(st.pool_free_pages, st.pool_pages);
    assert_int_equal(st.cache_tokens, 0);
}

static int32_t json_ids(json_t *arr, int32_t *out, int32_t cap)
{
    int32_t n = (int32_t)json_array_size(arr);
    assert_true(n <= cap);
    for (int32_t i = 0; i < n; i++)
        out[i] = (int32_t)json_integer_value(json_array_get(arr, (size_t)i));
    return n;
}

static SglRequest golden_request(json_t *c, int32_t *ids, int32_t *n)
{
    *n = json_ids(json_object_get(c, "prompt_ids"), ids, 64);
    SglRequest rq = {.input_ids = ids, .n_input = *n};
    sgl_sampling_params_default(&rq.params);
    rq.params.temperature = 0.0f;
    rq.params.ignore_eos = true;
    rq.params.max_new_tokens = 96;
    rq.params.return_logprob = true;
    rq.params.top_logprobs_num = 5;
    return rq;
}

/* greedy ids exactly; top-5 logprobs within 1e-3 (ids compared where the
 * neighbours are not within the tolerance of each other) */
static void check_golden_sample(json_t *c, const SglGenSample *s)
{
    int32_t want[128];
    int32_t n = json_ids(json_object_get(c, "greedy_ids"), want, 128);
    assert_int_equal(s->n_output, n);
    assert_memory_equal(s->output_ids, want, (size_t)n * sizeof *want);
    assert_int_equal(s->n_top, 5);
    json_t *tids = json_object_get(c, "top5_ids"), *tlp = json_object_get(c, "top5_logprobs");
    int32_t n_top = (int32_t)json_array_size(tlp); /* the goldens give the first steps */
    assert_true(n_top >= 1 && n_top <= n);
    for (int32_t i = 0; i < n_top; i++) {
        for (int32_t k = 0; k < 5; k++) {
            const SglTopLogprob *t = &s->top[i * 5 + k];
            double lp = json_number_value(json_array_get(json_array_get(tlp, (size_t)i), (size_t)k));
            int32_t id = (int32_t)json_integer_value(json_array_get(json_array_get(tids, (size_t)i), (size_t)k));
            if (fabs(t->logprob - lp) > 1e-3)
                fail_msg("step %d top %d: logprob %f, want %f", i, k, t->logprob, lp);
            double prev = k > 0 ? json_number_value(json_array_get(json_array_get(tlp, (size_t)i), (size_t)k - 1)) : 1e9;
            double next = k < 4 ? json_number_value(json_array_get(json_array_get(tlp, (size_t)i), (size_t)k + 1)) : -1e9;
            if (prev - lp > 1e-3 && lp - next > 1e-3 && t->id != id)
                fail_msg("step %d top %d: id %d, want %d", i, k, t->id, id);
        }
        assert_true(fabs(s->output_logprobs[i] - s->top[i * 5].logprob) < 1e-6);
    }
}

static void test_goldens_api(void **state)
{
    (void)state;
    SglEngine *e = open_engine(0, false, 0, 0);
    json_t *cases = json_object_get(goldens, "cases");
    size_t nc = json_array_size(cases);
    assert_true(nc >= 10);
    /* one by one */
    for (size_t i = 0; i < nc; i++) {
        int32_t ids[64], n;
        SglRequest rq = golden_request(json_array_get(cases, i), ids, &n);
        SglGenResult res;
        SglErr err;
        assert_int_equal(sgl_engine_generate(e, &rq, &res, &err), SGL_OK);
        assert_int_equal(res.samples[0].finish, SGL_FINISH_LENGTH);
        check_golden_sample(json_array_get(cases, i), &res.samples[0]);
        sgl_gen_result_free(&res);
    }
    /* all at once, from as many threads: batched decoding gives the same */
    check_clean(e);
    sgl_engine_close(e);
}

typedef struct {
    SglEngine *e;
    json_t *c;
    SglGenResult res;
    SglStatus st;
} GenJob;

static void *gen_thread(void *arg)
{
    GenJob *j = arg;
    int32_t ids[64], n;
    SglRequest rq = golden_request(j->c, ids, &n);
    SglErr err;
    j->st = sgl_engine_generate(j->e, &rq, &j->res, &err);
    return NULL;
}

static void test_goldens_concurrent(void **state)
{
    (void)state;
    SglEngine *e = open_engine(0, false, 0, 0);
    json_t *cases = json_object_get(goldens, "cases");
    size_t nc = json_array_size(cases);
    GenJob jobs[32];
    pthread_t th[32];
    assert_true(nc <= 32);
    for (size_t i = 0; i < nc; i++) {
        jobs[i] = (GenJob){.e = e, .c = json_array_get(cases, i)};
        assert_int_equal(pthread_create(&th[i], NULL, gen_thread, &jobs[i]), 0);
    }
    for (size_t i = 0; i < nc; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(jobs[i].st, SGL_OK);
        check_golden_sample(jobs[i].c, &jobs[i].res.samples[0]);
        sgl_gen_result_free(&jobs[i].res);
    }
    check_clean(e);
    SglEngineStats st = sgl_engine_stats(e);
    assert_true(st.generated_tokens == (int64_t)nc * 96);
    sgl_engine_close(e);
}

/* prompt logprobs of prompt + greedy continuation equal the goldens' top-1 */
static void test_prompt_logprobs(void **state)
{
    (void)state;
    SglEngine *e = open_engine(0, false, 0, 0);
    json_t *c = json_array_get(json_object_get(goldens, "cases"), 1);
    int32_t ids[200], n = json_ids(json_object_get(c, "prompt_ids"), ids, 64);
    int32_t g[128], ng = json_ids(json_object_get(c, "greedy_ids"), g, 128);
    int32_t K = (int32_t)json_array_size(json_object_get(c, "top5_logprobs"));
    assert_true(K >= 1 && K <= ng);
    memcpy(ids + n, g, (size_t)K * sizeof *g);
    for (int pass = 0; pass < 2; pass++) { /* the second pass hits the cache */
        SglRequest rq = {.input_ids = ids, .n_input = n + K};
        sgl_sampling_params_default(&rq.params);
        rq.params.max_new_tokens = 0;
        rq.params.logprob_start_len = n;
        SglGenResult res;
        SglErr err;
        assert_int_equal(sgl_engine_generate(e, &rq, &res, &err), SGL_OK);
        assert_non_null(res.prompt_logprobs);
        assert_int_equal(res.samples[0].n_output, 0);
        for (int32_t j = 0; j < K; j++) {
            double want = json_number_value(json_array_get(json_array_get(json_object_get(c, "top5_logprobs"), (size_t)j), 0));
            if (fabs(res.prompt_logprobs[n + j] - want) > 1e-3)
                fail_msg("pass %d position %d: %f, want %f", pass, n + j, res.prompt_logprobs[n + j], want);
        }
        for (int32_t j = 0; j < n; j++)
            assert_true(isnan(res.prompt_logprobs[j]));
        sgl_gen_result_free(&res);
    }
    check_clean(e);
    sgl_engine_close(e);
}

static char *run_cmd(const char *cmd, int *rc)
{
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n - 1, p)) > 0) {
        n += got;
        if (n + 1 == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
    }
    buf[n] = '\0';
    int st = pclose(p);
    *rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return buf;
}

static void test_goldens_cli(void **state)
{
    (void)state;
    const char *sglc = getenv("SGLC");
    if (!sglc || access(sglc, X_OK) != 0) {
        print_message("skipped: SGLC not set\n");
        skip();
    }
    json_t *cases = json_object_get(goldens, "cases");
    for (size_t i = 0; i < json_array_size(cases); i++) {
        json_t *c = json_array_get(cases, i);
        const char *prompt = json_string_value(json_object_get(c, "prompt"));
        /* the prompt as text: tokenized as HF does (BOS added) */
        char qprompt[512];
        size_t k = 0;
        qprompt[k++] = '\'';
        for (const char *p = prompt; *p && k < sizeof qprompt - 8; p++) {
            if (*p == '\'') {
                memcpy(qprompt + k, "'\\''", 4);
                k += 4;
            } else {
                qprompt[k++] = *p;
            }
        }
        qprompt[k++] = '\'';
        qprompt[k] = '\0';
        char cmd[2048];
        snprintf(cmd, sizeof cmd,
                 "'%s' generate --model '%s' --temperature 0 --ignore-eos --max-tokens 96 --json --prompt %s",
                 sglc, model_dir, qprompt);
        int rc;
        char *out = run_cmd(cmd, &rc);
        assert_int_equal(rc, 0);
        json_error_t je;
        json_t *o = json_loads(out, 0, &je);
        if (!o)
            fail_msg("bad JSON from sglc generate: %s\n%s", je.text, out);
        int32_t got[128], want[128];
        int32_t ng = json_ids(json_object_get(o, "prompt_ids"), got, 128);
        int32_t nw = json_ids(json_object_get(c, "prompt_ids"), want, 128);
        assert_int_equal(ng, nw);
        assert_memory_equal(got, want, (size_t)nw * sizeof *want);
        ng = json_ids(json_object_get(o, "output_ids"), got, 128);
        nw = json_ids(json_object_get(c, "greedy_ids"), want, 128);
        assert_int_equal(ng, nw);
        assert_memory_equal(got, want, (size_t)nw * sizeof *want);
        json_t *meta = json_object_get(o, "meta_info");
        assert_int_equal(json_integer_value(json_object_get(meta, "completion_tokens")), 96);
        assert_int_equal(json_integer_value(json_object_get(meta, "prompt_tokens")),
                         json_array_size(json_object_get(c, "prompt_ids")));
        assert_non_null(json_object_get(meta, "cached_tokens"));
        assert_string_equal(json_string_value(json_object_get(json_object_get(meta, "finish_reason"), "type")), "length");
        assert_string_equal(json_string_value(json_object_get(o, "text")),
                            json_string_value(json_object_get(c, "greedy_text")));
        json_decref(o);
        free(out);
    }
    /* usage and model errors */
    char cmd[2048];
    int rc;
    snprintf(cmd, sizeof cmd, "'%s' generate --model '%s' --max-tokens abc 2>/dev/null", sglc, model_dir);
    free(run_cmd(cmd, &rc));
    assert_int_equal(rc, 2);
    snprintf(cmd, sizeof cmd, "'%s' generate --model /nonexistent/model 2>&1", sglc);
    char *out = run_cmd(cmd, &rc);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "/nonexistent/model"));
    free(out);
    snprintf(cmd, sizeof cmd, "'%s' generate --help", sglc);
    out = run_cmd(cmd, &rc);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "--max-tokens"));
    free(out);
    snprintf(cmd, sizeof cmd, "'%s' bench one-batch --model '%s' --batch-size 2 --input-len 16 --output-len 8",
             sglc, model_dir);
    out = run_cmd(cmd, &rc);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "Prefill. latency: "));
    assert_non_null(strstr(out, "Decode.  median latency: "));
    assert_non_null(strstr(out, "Total. latency: "));
    free(out);
}

/* Collector of test_shared_prefix (callback on the engine thread). */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int left;
    int32_t out[64][16];
    int32_t n_out[64];
    int32_t cached[64];
} Col;

typedef struct {
    Col *col;
    int i;
} ColCtx;

static void col_event(void *user, const SglEvent *ev)
{
    ColCtx *c = user;
    Col *col = c->col;
    if (ev->kind == SGL_EV_TOKEN) {
        if (col->n_out[c->i] < 16)
            col->out[c->i][col->n_out[c->i]++] = ev->token;
        return;
    }
    pthread_mutex_lock(&col->mu);
    col->cached[c->i] = ev->cached_tokens;
    if (--col->left == 0)
        pthread_cond_signal(&col->cv);
    pthread_mutex_unlock(&col->mu);
}

/* 64 requests sharing a 200-token prefix, submitted together. */
static void test_shared_prefix(void **state)
{
    (void)state;
    enum { N = 64, PRE = 200, UNIQ = 10, OUT = 16 };
    static int32_t ids[N][PRE + UNIQ];
    uint32_t x = 12345;
    for (int j = 0; j < PRE; j++) {
        x = x * 1664525u + 1013904223u;
        ids[0][j] = j == 0 ? 1 : 3 + (int32_t)((x >> 8) % 500);
    }
    for (int i = 0; i < N; i++) {
        memcpy(ids[i], ids[0], PRE * sizeof(int32_t));
        for (int j = 0; j < UNIQ; j++) {
            x = x * 1664525u + 1013904223u;
            ids[i][PRE + j] = 3 + (int32_t)((x >> 8) % 500);
        }
    }
    SglEngine *e = open_engine(0, false, 0, 0);
    /* all together, through the batch submit */
    SglRequest rq[N];
    static Col col;
    memset(&col, 0, sizeof col);
    pthread_mutex_init(&col.mu, NULL);
    pthread_cond_init(&col.cv, NULL);
    col.left = N;
    uint64_t first_id[N];
    ColCtx ctx[N];
    for (int i = 0; i < N; i++) {
        rq[i] = (SglRequest){.input_ids = ids[i], .n_input = PRE + UNIQ};
        sgl_sampling_params_default(&rq[i].params);
        rq[i].params.temperature = 0.0f;
        rq[i].params.ignore_eos = true;
        rq[i].params.max_new_tokens = OUT;
        ctx[i] = (ColCtx){&col, i};
        rq[i].on_event = col_event;
        rq[i].user = &ctx[i];
    }
    SglErr err;
    assert_int_equal(sgl_engine_submit_batch(e, rq, N, first_id, &err), SGL_OK);
    pthread_mutex_lock(&col.mu);
    while (col.left > 0)
        pthread_cond_wait(&col.cv, &col.mu);
    pthread_mutex_unlock(&col.mu);
    sgl_engine_flush_cache(e); /* barrier: stats of the last step */
    SglEngineStats st = sgl_engine_stats(e);
    /* the prefix was computed once: one request missed, 63 hit all 200 */
    int n_cold = 0;
    for (int i = 0; i < N; i++) {
        if (col.cached[i] == 0)
            n_cold++;
        else
            assert_int_equal(col.cached[i], PRE);
    }
    assert_int_equal(n_cold, 1);
    assert_int_equal(st.prefill_tokens, PRE + N * UNIQ);
    assert_int_equal(st.cached_tokens, (N - 1) * PRE);
    check_clean(e);
    sgl_engine_close(e);

    /* the same requests one by one without the cache */
    SglEngine *e2 = open_engine(0, true, 0, 0);
    for (int i = 0; i < N; i++) {
        SglRequest r1 = rq[i];
        r1.on_event = NULL;
        SglGenResult res;
        assert_int_equal(sgl_engine_generate(e2, &r1, &res, &err), SGL_OK);
        assert_int_equal(res.samples[0].n_output, OUT);
        assert_int_equal(res.samples[0].cached_tokens, 0);
        assert_memory_equal(res.samples[0].output_ids, col.out[i], OUT * sizeof(int32_t));
        sgl_gen_result_free(&res);
    }
    check_clean(e2);
    st = sgl_engine_stats(e2);
    assert_int_equal(st.prefill_tokens, N * (PRE + UNIQ));
    sgl_engine_close(e2);
    pthread_cond_destroy(&col.cv);
    pthread_mutex_destroy(&col.mu);
}

/* ---- stress: 500 random requests, aborts, tiny KV budget ------------------ */

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int finals_left;               /* requests whose last event has not come */
    int aborted, finished;
    int bad;                       /* events after the last one, or out of order */
    bool last_seen[600];
} Stress;

typedef struct {
    Stress *s;
    int i;
} StressCtx;

static void stress_ev(void *user, const SglEvent *ev)
{
    StressCtx *c = user;
    Stress *s = c->s;
    if (ev->kind == SGL_EV_TOKEN)
        return;
    pthread_mutex_lock(&s->mu);
    if (s->last_seen[c->i])
        s->bad++;
    if (ev->finish == SGL_FINISH_ABORT)
        s->aborted++;
    else if (ev->finish == SGL_FINISH_ERROR)
        s->bad++;
    else
        s->finished++;
    if (ev->last) {
        s->last_seen[c->i] = true;
        if (--s->finals_left == 0)
            pthread_cond_signal(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
}

static void test_stress(void **state)
{
    (void)state;
    enum { N = 500 };
    g_ratio = -1.0f; /* no admission reserve: the small pool must retract */
    SglEngine *e = open_engine(1500, false, 32, 1000);
    g_ratio = 0.0f;
    static Stress s;
    memset(&s, 0, sizeof s);
    pthread_mutex_init(&s.mu, NULL);
    pthread_cond_init(&s.cv, NULL);
    s.finals_left = N;
    static StressCtx ctx[N];
    uint64_t ids[N];
    int32_t prefixes[6][80];
    uint32_t x = 777;
#define RND(n) ((x = x * 1103515245u + 12345u), (int32_t)((x >> 8) % (uint32_t)(n)))
    for (int k = 0; k < 6; k++)
        for (int j = 0; j < 80; j++)
            prefixes[k][j] = j == 0 ? 1 : 3 + RND(500);
    for (int i = 0; i < N; i++) {
        int32_t p[160];
        int32_t pre = RND(81), len = pre + 1 + RND(60);
        memcpy(p, prefixes[RND(6)], (size_t)pre * sizeof *p);
        for (int j = pre; j < len; j++)
            p[j] = 3 + RND(500);
        SglRequest rq = {.input_ids = p, .n_input = len, .on_event = stress_ev};
        sgl_sampling_params_default(&rq.params);
        rq.params.max_new_tokens = RND(48);
        rq.params.temperature = RND(2) ? 0.0f : 0.9f;
        rq.params.seed = (uint64_t)i;
        rq.params.has_seed = true;
        if (RND(6) == 0)
            rq.params.n = 2 + RND(3);
        if (RND(8) == 0) {
            rq.params.stop[0] = "the";
            rq.params.n_stop = 1;
        }
        ctx[i] = (StressCtx){&s, i};
        rq.user = &ctx[i];
        SglErr err;
        SglStatus st = sgl_engine_submit(e, &rq, &ids[i], &err);
        if (st != SGL_OK)
            fail_msg("submit %d: %s", i, err.msg);
        if (RND(5) == 0) {
            /* abort something submitted earlier, at whatever stage it is */
            int v = RND(i + 1);
            assert_int_equal(sgl_engine_abort(e, ids[v]), SGL_OK);
        }
        if (RND(4) == 0)
            usleep((useconds_t)RND(2000));
    }
#undef RND
    pthread_mutex_lock(&s.mu);
    while (s.finals_left > 0)
        pthread_cond_wait(&s.cv, &s.mu);
    pthread_mutex_unlock(&s.mu);
    assert_int_equal(s.bad, 0);
    assert_true(s.aborted > 0);
    assert_true(s.finished > N / 2);
    sgl_engine_flush_cache(e); /* barrier: stats of the last step */
    SglEngineStats st = sgl_engine_stats(e);
    assert_int_equal(st.integrity_failures, 0);
    assert_true(st.retractions > 0);
    assert_true(st.cached_tokens > 0);
    print_message("stress: %d finished samples, %d aborted, %lld retractions, %lld steps, hit rate %.2f\n",
                  s.finished, s.aborted, (long long)st.retractions, (long long)st.steps, st.cache_hit_rate);
    check_clean(e);
    sgl_engine_close(e);
    pthread_cond_destroy(&s.cv);
    pthread_mutex_destroy(&s.mu);
}

/* Closing with work queued and running: every request gets its abort. */
static void test_close_in_flight(void **state)
{
    (void)state;
    SglEngine *e = open_engine(0, false, 2, 0);
    static Stress s;
    memset(&s, 0, sizeof s);
    pthread_mutex_init(&s.mu, NULL);
    pthread_cond_init(&s.cv, NULL);
    s.finals_left = 6;
    static StressCtx ctx[6];
    int32_t p[20];
    for (int j = 0; j < 20; j++)
        p[j] = 3 + j;
    for (int i = 0; i < 6; i++) {
        SglRequest rq = {.input_ids = p, .n_input = 20, .on_event = stress_ev};
        sgl_sampling_params_default(&rq.params);
        rq.params.max_new_tokens = 400;
        rq.params.ignore_eos = true;
        ctx[i] = (StressCtx){&s, i};
        rq.user = &ctx[i];
        SglErr err;
        assert_int_equal(sgl_engine_submit(e, &rq, NULL, &err), SGL_OK);
    }
    usleep(2000);
    sgl_engine_close(e);
    assert_int_equal(s.finals_left, 0);
    assert_int_equal(s.bad, 0);
    assert_true(s.aborted >= 4);
    pthread_cond_destroy(&s.cv);
    pthread_mutex_destroy(&s.mu);
}

static void test_queue_limit_and_errors(void **state)
{
    (void)state;
    SglEngine *e = open_engine(0, false, 1, 4);
    int32_t p[8] = {1, 5, 6, 7, 8, 9, 10, 11};
    SglRequest rq = {.input_ids = p, .n_input = 8};
    sgl_sampling_params_default(&rq.params);
    rq.params.max_new_tokens = 300;
    rq.params.ignore_eos = true;
    SglErr err;
    int full = 0;
    uint64_t ids[50];
    int n_ok = 0;
    for (int i = 0; i < 50; i++) {
        SglStatus st = sgl_engine_submit(e, &rq, &ids[n_ok], &err);
        if (st == SGL_E_FULL)
            full++;
        else if (st == SGL_OK)
            n_ok++;
        else
            fail_msg("submit: %s", err.msg);
    }
    assert_true(full > 0);
    for (int i = 0; i < n_ok; i++)
        assert_int_equal(sgl_engine_abort(e, ids[i]), SGL_OK);
    assert_int_equal(sgl_engine_abort(e, 1u << 30), SGL_E_NOTFOUND);
    /* bad requests are refused synchronously with a message */
    SglRequest bad = rq;
    bad.params.top_p = 2.0f;
    assert_int_equal(sgl_engine_submit(e, &bad, NULL, &err), SGL_E_INVAL);
    assert_non_null(strstr(err.msg, "top_p"));
    int32_t big[600];
    for (int i = 0; i < 600; i++)
        big[i] = 5;
    bad = rq;
    bad.input_ids = big;
    bad.n_input = 600; /* longer than the 512-token context */
    assert_int_equal(sgl_engine_submit(e, &bad, NULL, &err), SGL_E_INVAL);
    bad.input_ids = p;
    bad.n_input = 0;
    assert_int_equal(sgl_engine_submit(e, &bad, NULL, &err), SGL_E_INVAL);
    SglEngineStats st = sgl_engine_stats(e);
    for (int i = 0; i < 2000 && (st.running || st.queued); i++) {
        usleep(1000);
        st = sgl_engine_stats(e);
    }
    check_clean(e);
    sgl_engine_close(e);
}

static void test_stop_string_text(void **state)
{
    (void)state;
    SglEngine *e = open_engine(0, false, 0, 0);
    int32_t *ids = NULL, n = 0;
    assert_int_equal(sgl_engine_encode(e, "Lily and Tom", 12, true, &ids, &n), SGL_OK);
    SglRequest rq = {.input_ids = ids, .n_input = n};
    sgl_sampling_params_default(&rq.params);
    rq.params.temperature = 0.0f;
    rq.params.max_new_tokens = 200;
    SglGenResult full, cut;
    SglErr err;
    assert_int_equal(sgl_engine_generate(e, &rq, &full, &err), SGL_OK);
    const char *hit = strstr(full.samples[0].text, "park");
    assert_non_null(hit);
    rq.params.stop[0] = "park";
    rq.params.n_stop = 1;
    assert_int_equal(sgl_engine_generate(e, &rq, &cut, &err), SGL_OK);
    assert_int_equal(cut.samples[0].finish, SGL_FINISH_STOP);
    assert_string_equal(cut.samples[0].matched_stop, "park");
    assert_int_equal(cut.samples[0].text_len, (size_t)(hit - full.samples[0].text));
    assert_memory_equal(cut.samples[0].text, full.samples[0].text, cut.samples[0].text_len);
    assert_true(cut.samples[0].cached_tokens > 0);
    sgl_gen_result_free(&full);
    sgl_gen_result_free(&cut);
    free(ids);
    check_clean(e);
    sgl_engine_close(e);
}

/* The polling queue: several requests (one with n = 2) into one queue. */
static void test_event_queue(void **state)
{
    (void)state;
    SglEngine *e = open_engine(0, false, 0, 0);
    SglEventQueue *q = sgl_evq_new();
    assert_non_null(q);
    SglEvent *ev = NULL;
    assert_int_equal(sgl_evq_get(q, 0, &ev), SGL_E_AGAIN);
    assert_int_equal(sgl_evq_get(q, 5, &ev), SGL_E_AGAIN);
    const char *prompts[3] = {"Once upon a time", "Tom had a dog", "The sky"};
    uint64_t ids[3];
    for (int i = 0; i < 3; i++) {
        int32_t *tok = NULL, n = 0;
        assert_int_equal(sgl_engine_encode(e, prompts[i], strlen(prompts[i]), true, &tok, &n), SGL_OK);
        SglRequest rq = {.input_ids = tok, .n_input = n, .on_event = sgl_evq_on_event, .user = q};
        sgl_sampling_params_default(&rq.params);
        rq.params.max_new_tokens = 20 + 10 * i;
        rq.params.temperature = 0.7f;
        rq.params.seed = 3;
        rq.params.has_seed = true;
        rq.params.n = i == 1 ? 2 : 1;
        rq.params.logprob_start_len = i == 2 ? 1 : -1;
        SglErr err;
        assert_int_equal(sgl_engine_submit(e, &rq, &ids[i], &err), SGL_OK);
        free(tok);
    }
    char streamed[3][2][4096] = {{{0}}};
    int n_tok[3][2] = {{0}}, lasts = 0, finals = 0;
    while (lasts < 3) {
        assert_int_equal(sgl_evq_get(q, -1, &ev), SGL_OK);
        int r = ev->id == ids[0] ? 0 : ev->id == ids[1] ? 1 : 2;
        assert_true(ev->id == ids[r] && ev->index >= 0 && ev->index < 2);
        strncat(streamed[r][ev->index], ev->text, ev->text_len);
        if (ev->kind == SGL_EV_TOKEN) {
            n_tok[r][ev->index]++;
        } else {
            finals++;
            lasts += ev->last;
            assert_int_equal(ev->completion_tokens, n_tok[r][ev->index]);
            assert_string_equal(ev->output_text, streamed[r][ev->index]);
            assert_true(ev->output_ids != NULL || ev->completion_tokens == 0);
            if (r == 2) {
                assert_non_null(ev->prompt_logprobs);
                assert_true(isnan(ev->prompt_logprobs[0]));
                assert_true(ev->prompt_logprobs[1] < 0.0f);
            } else {
                assert_null(ev->prompt_logprobs);
            }
        }
        free(ev);
    }
    assert_int_equal(finals, 4);
    assert_int_equal(sgl_evq_dropped(q), 0);
    assert_int_equal(sgl_evq_get(q, 0, &ev), SGL_E_AGAIN);
    check_clean(e);
    sgl_engine_close(e);
    sgl_evq_free(q);
}

/* ---- overlap scheduling and the step trace -------------------------------- */

#define OV_REQ 24

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int32_t n_left;                /* requests without their last event */
    int32_t out[OV_REQ][3][200], n_out[OV_REQ][3];
    SglFinishKind finish[OV_REQ][3];
    int32_t matched[OV_REQ][3];
    char text[OV_REQ][3][1024];
} OvCol;

typedef struct {
    OvCol *c;
    int32_t i;
} OvSlot;

static void ov_event(void *user, const SglEvent *ev)
{
    OvSlot *sl = user;
    OvCol *c = sl->c;
    int32_t i = sl->i, k = ev->index;
    if (ev->kind == SGL_EV_TOKEN)
        return;
    c->n_out[i][k] = ev->completion_tokens;
    memcpy(c->out[i][k], ev->output_ids, (size_t)ev->completion_tokens * sizeof(int32_t));
    c->finish[i][k] = ev->finish;
    c->matched[i][k] = ev->matched_token;
    snprintf(c->text[i][k], sizeof c->text[i][k], "%.*s", (int)ev->output_text_len, ev->output_text);
    if (ev->last) {
        pthread_mutex_lock(&c->mu);
        if (--c->n_left == 0)
            pthread_cond_signal(&c->cv);
        pthread_mutex_unlock(&c->mu);
    }
}

/* OV_REQ requests at once through a small KV pool: EOS, stop strings, max
 * tokens 1, n = 3, long ignore_eos runs. Fills c; returns the stats. */
static SglEngineStats ov_run(bool overlap, OvCol *c)
{
    SglEngineOpts o;
    sgl_engine_opts_default(&o);
    o.model_dir = model_dir;
    o.max_total_tokens = 700;
    o.sched.check_integrity = true;
    o.sched.disable_overlap_schedule = !overlap;
    o.sched.init_new_token_ratio = -1.0f; /* no admission reserve: retraction happens */
    o.sched.enable_overlap_schedule = overlap; /* the CPU runner's default is synchronous */
    SglEngine *e = NULL;
    SglErr err = {{0}};
    if (sgl_engine_open(&o, &e, &err) != SGL_OK)
        fail_msg("open: %s", err.msg);
    static const char *const prompts[] = {"Once upon a time", "Lily and Tom", "The dog", "One day, a little",
                                          "Sam was sad"};
    static const char *const stops[] = {".", " the", "!", "ed"};
    SglRequest rq[OV_REQ];
    OvSlot slots[OV_REQ];
    int32_t *ids[OV_REQ];
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    c->n_left = OV_REQ;
    /* stop ids take the EOS path (stories260K's greedy stories rarely end in
     * 150 tokens): the last id of "," and of "." */
    static int32_t stop_ids[2];
    for (int k = 0; k < 2; k++) {
        int32_t *t = NULL, m = 0;
        assert_int_equal(sgl_engine_encode(e, k ? "." : ",", 1, false, &t, &m), SGL_OK);
        assert_true(m > 0);
        stop_ids[k] = t[m - 1];
        free(t);
    }
    for (int32_t i = 0; i < OV_REQ; i++) {
        const char *p = prompts[i % 5];
        int32_t n = 0;
        assert_int_equal(sgl_engine_encode(e, p, strlen(p), true, &ids[i], &n), SGL_OK);
        memset(&rq[i], 0, sizeof rq[i]);
        rq[i].input_ids = ids[i];
        rq[i].n_input = n;
        sgl_sampling_params_default(&rq[i].params);
        SglSamplingParams *sp = &rq[i].params;
        sp->temperature = 0.0f;
        sp->max_new_tokens = 150 + i;
        switch (i % 6) {
        case 1: sp->stop[0] = stops[i % 4]; sp->n_stop = 1; break;
        case 2: sp->max_new_tokens = 1; break;
        case 3: sp->n = 3; sp->max_new_tokens = 30; break;
        case 4: sp->ignore_eos = true; sp->max_new_tokens = 90; break;
        case 0: sp->stop_token_ids = &stop_ids[i % 4 == 0]; sp->n_stop_token_ids = 1; break;
        default: break; /* EOS or length */
        }
        slots[i] = (OvSlot){c, i};
        rq[i].on_event = ov_event;
        rq[i].user = &slots[i];
    }
    assert_int_equal(sgl_engine_submit_batch(e, rq, OV_REQ, NULL, &err), SGL_OK);
    pthread_mutex_lock(&c->mu);
    while (c->n_left > 0)
        pthread_cond_wait(&c->cv, &c->mu);
    pthread_mutex_unlock(&c->mu);
    check_clean(e);
    SglEngineStats st = sgl_engine_stats(e);
    sgl_engine_close(e);
    for (int32_t i = 0; i < OV_REQ; i++)
        free(ids[i]);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    return st;
}

/* Greedy outputs, texts and finish reasons are the same with and without
 * overlap scheduling, including requests that finish at step N while step
 * N+1 already holds them, and under retraction. */
static void test_overlap_matches_sync(void **state)
{
    (void)state;
    static OvCol a, b;
    SglEngineStats sa = ov_run(false, &a), sb = ov_run(true, &b);
    int32_t eos = 0, strings = 0; /* stops on an id (EOS path), on a string */
    for (int32_t i = 0; i < OV_REQ; i++)
        for (int k = 0; k < (i % 6 == 3 ? 3 : 1); k++) {
            assert_int_equal(a.n_out[i][k], b.n_out[i][k]);
            assert_memory_equal(a.out[i][k], b.out[i][k], (size_t)a.n_out[i][k] * sizeof(int32_t));
            assert_int_equal(a.finish[i][k], b.finish[i][k]);
            assert_int_equal(a.matched[i][k], b.matched[i][k]);
            assert_string_equal(a.text[i][k], b.text[i][k]);
            eos += a.matched[i][k] >= 0;
            strings += a.finish[i][k] == SGL_FINISH_STOP && a.matched[i][k] < 0;
        }
    if (eos == 0 || strings == 0)
        fail_msg("the workload should stop on ids (%d) and on stop strings (%d)", eos, strings);
    assert_true(sa.retractions > 0 && sb.retractions > 0);
    assert_int_equal(sa.overlap_steps, 0);
    assert_true(sb.overlap_steps > sb.steps / 2);
    assert_int_equal(sa.generated_tokens, sb.generated_tokens);
}

/* SglEngineOpts.trace_path (and $SGL_TRACE) write valid Chrome trace JSON
 * with one complete event per phase of each step; profile fills the stats. */
static void check_trace(const char *path, int64_t steps)
{
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root)
        fail_msg("%s: line %d: %s", path, je.line, je.text);
    json_t *evs = json_object_get(root, "traceEvents");
    assert_true(json_is_array(evs));
    int64_t count[SGL_PHASE_COUNT_] = {0}, batches = 0;
    double last_ts = 0;
    size_t i;
    json_t *ev;
    json_array_foreach(evs, i, ev) {
        const char *ph = json_string_value(json_object_get(ev, "ph"));
        assert_non_null(ph);
        if (strcmp(ph, "X") != 0)
            continue;
        const char *name = json_string_value(json_object_get(ev, "name"));
        double ts = json_number_value(json_object_get(ev, "ts")), dur = json_number_value(json_object_get(ev, "dur"));
        assert_true(json_is_number(json_object_get(ev, "ts")) && json_is_number(json_object_get(ev, "dur")));
        assert_true(dur >= 0 && ts > 0);
        assert_true(json_is_integer(json_object_get(json_object_get(ev, "args"), "step")));
        if (strcmp(name, "batch") == 0) { /* tid 2: a batch between its begin and end */
            assert_int_equal(json_integer_value(json_object_get(ev, "tid")), 2);
            batches++;
            continue;
        }
        int k = 0;
        while (k < SGL_PHASE_COUNT_ && strcmp(name, sgl_phase_name((SglPhase)k)) != 0)
            k++;
        assert_true(k < SGL_PHASE_COUNT_);
        count[k]++;
        if (k != SGL_PHASE_EMIT) { /* emit is drawn after its postprocess */
            assert_true(ts >= last_ts - 1e-3);
            last_ts = ts;
        }
    }
    assert_true(count[SGL_PHASE_LAUNCH] == steps && batches == steps); /* overlap: one per step */
    assert_true(count[SGL_PHASE_SCHEDULE] >= steps && count[SGL_PHASE_WAIT] >= steps - 1);
    assert_true(count[SGL_PHASE_POSTPROCESS] >= steps - 1 && count[SGL_PHASE_EMIT] > 0);
    json_decref(root);
}

static void test_trace_and_profile(void **state)
{
    (void)state;
    char path[] = "/tmp/sgl_trace_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    for (int env = 0; env < 2; env++) {
        SglEngineOpts o;
        sgl_engine_opts_default(&o);
        o.model_dir = model_dir;
        o.sched.enable_overlap_schedule = true;
        if (env)
            setenv("SGL_TRACE", path, 1);
        else
            o.trace_path = path;
        SglEngine *e = NULL;
        SglErr err = {{0}};
        if (sgl_engine_open(&o, &e, &err) != SGL_OK)
            fail_msg("open: %s", err.msg);
        unsetenv("SGL_TRACE");
        int32_t *ids = NULL, n = 0;
        assert_int_equal(sgl_engine_encode(e, "Lily and Tom", 12, true, &ids, &n), SGL_OK);
        SglRequest rq = {.input_ids = ids, .n_input = n};
        sgl_sampling_params_default(&rq.params);
        rq.params.temperature = 0.0f;
        rq.params.max_new_tokens = 40;
        rq.params.ignore_eos = true;
        rq.params.n = 2;
        SglGenResult res;
        assert_int_equal(sgl_engine_generate(e, &rq, &res, &err), SGL_OK);
        assert_int_equal(res.samples[1].n_output, 40);
        sgl_gen_result_free(&res);
        free(ids);
        assert_true(sgl_engine_flush_cache(e)); /* a barrier: the stats below are final */
        SglEngineStats st = sgl_engine_stats(e);
        sgl_engine_close(e);
        assert_true(st.profiled_steps == st.steps && st.steps > 0);
        double sum = 0;
        for (int k = 0; k < SGL_PHASE_COUNT_; k++) {
            assert_true(st.phase_us[k] >= 0);
            sum += st.phase_us[k];
        }
        assert_true(st.phase_us[SGL_PHASE_WAIT] > 0 && st.phase_us[SGL_PHASE_EMIT] > 0);
        assert_true(sum <= st.step_us * 1.001 + 1.0);
        check_trace(path, st.steps);
    }
    /* an unwritable trace path is a clear open error */
    SglEngineOpts o;
    sgl_engine_opts_default(&o);
    o.model_dir = model_dir;
    o.trace_path = "/nonexistent-dir/trace.json";
    SglEngine *e = NULL;
    SglErr err = {{0}};
    assert_int_equal(sgl_engine_open(&o, &e, &err), SGL_E_IO);
    assert_null(e);
    assert_non_null(strstr(err.msg, "/nonexistent-dir/trace.json"));
    unlink(path);
}

int main(void)
{
    const char *shared = getenv("SGL_SHARED_DIR");
    if (!shared) {
        printf("skipped: SGL_SHARED_DIR is not set\n");
        return 77;
    }
    snprintf(model_dir, sizeof model_dir, "%s/models/stories260K-hf", shared);
    snprintf(goldens_path, sizeof goldens_path, "%s/goldens/stories260K_goldens.json", shared);
    if (access(model_dir, R_OK) != 0 || access(goldens_path, R_OK) != 0) {
        printf("skipped: %s or %s is missing\n", model_dir, goldens_path);
        return 77;
    }
    json_error_t je;
    goldens = json_load_file(goldens_path, 0, &je);
    if (!goldens) {
        printf("%s: %s\n", goldens_path, je.text);
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_goldens_api),
        cmocka_unit_test(test_goldens_concurrent),
        cmocka_unit_test(test_prompt_logprobs),
        cmocka_unit_test(test_goldens_cli),
        cmocka_unit_test(test_shared_prefix),
        cmocka_unit_test(test_stress),
        cmocka_unit_test(test_close_in_flight),
        cmocka_unit_test(test_queue_limit_and_errors),
        cmocka_unit_test(test_stop_string_text),
        cmocka_unit_test(test_event_queue),
        cmocka_unit_test(test_overlap_matches_sync),
        cmocka_unit_test(test_trace_and_profile),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    json_decref(goldens);
    return rc;
}

/* test_scheduler.c -- the scheduler against a fake deterministic runner.
 *
 * The fake runner really keeps a KV store: forward writes (token, position)
 * into the slots it is given and computes each requested logits row from a
 * hash of the tokens it reads back through the slot table for positions
 * 0..pos, after checking every slot was written for that position. So a
 * wrong page table, a page freed while in use, or a stale cache entry
 * changes the logits, and the outputs stop matching the reference
 * (ref_generate: the same logits function over the plain token list).
 * Every test runs the scheduler's integrity checks after every step and
 * ends with the pool fully free after a cache reset.
 *   The whole suite runs twice: with a synchronous fake, and with one that
 * also has forward_sample_begin/end (the overlap scheduler: batches begun
 * before the previous one's ids are back, placeholder tokens resolved by the
 * fake from its previous batch's ids). Greedy outputs must be the same.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/ref/ref.h"
#include "runtime/scheduler.h"

#define V 64
#define EOS 1
#define MAX_CTX 512
#define MAX_REQ 1200
#define MAX_OUT 128

/* ---- fake runner ---------------------------------------------------------- */

#define FAKE_ROWS 2048            /* logits rows the async fake samples per batch */

typedef struct {
    SglRunner base;
    int32_t *kv_tok, *kv_pos;      /* (n_slots) */
    float eos_bias;                /* added to EOS's logit */
    int64_t forwards;
    /* async: begun batches run at begin (the contract's order), ids wait for end */
    int32_t ids[2][FAKE_ROWS];
    float lp[2][FAKE_ROWS];
    int32_t n_ids[2], head, n_out, prev;  /* prev: slot of the newest begun batch, -1 none */
    SglStatus st[2];
    int64_t begins, resolved;      /* batches begun, placeholder tokens resolved */
} Fake;

static bool g_overlap;             /* this pass of the suite uses the async fake */

static uint64_t mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* logits of the next token after tokens[0..n) */
static void fake_logits(const int32_t *tokens, int32_t n, float eos_bias, float *out)
{
    uint64_t h = 0x1234;
    for (int32_t i = 0; i < n; i++)
        h = mix(h ^ (uint64_t)(tokens[i] + 1) * 0x9E3779B97F4A7C15ull);
    for (int32_t v = 0; v < V; v++)
        out[v] = (float)(mix(h + (uint64_t)v) >> 40) / (float)(1u << 24) * 8.0f;
    out[EOS] += eos_bias;
}

static SglStatus fake_forward(SglRunner *r, const SglBatch *b, float *logits, SglErr *err)
{
    Fake *f = (Fake *)r;
    f->forwards++;
    if (b->n_tokens > r->opts.max_batch_tokens || b->n_seqs > r->opts.max_seqs || b->seq_off[0] != 0 ||
        b->seq_off[b->n_seqs] != b->n_tokens)
        return sgl_err(err, SGL_E_INVAL, "fake: batch too big or malformed");
    for (int32_t s = 0; s < b->n_seqs; s++) {
        int32_t n_new = b->seq_off[s + 1] - b->seq_off[s], kv = b->kv_len[s];
        if (n_new < 1 || kv < n_new || b->slot_off[s + 1] - b->slot_off[s] < kv)
            return sgl_err(err, SGL_E_INVAL, "fake: seq %d bad lengths", s);
        const int32_t *sl = b->slots + b->slot_off[s];
        for (int32_t j = 0; j < n_new; j++) {
            int32_t t = b->seq_off[s] + j, pos = kv - n_new + j;
            if (b->positions[t] != pos || sl[pos] < 0 || sl[pos] >= r->opts.n_slots)
                return sgl_err(err, SGL_E_INVAL, "fake: seq %d pos %d bad slot %d", s, pos, sl[pos]);
            f->kv_tok[sl[pos]] = b->tokens[t];
            f->kv_pos[sl[pos]] = pos;
        }
    }
    int32_t buf[MAX_CTX];
    for (int32_t k = 0; k < b->n_logits; k++) {
        int32_t row = b->logit_rows[k], s = 0;
        while (s + 1 < b->n_seqs && b->seq_off[s + 1] <= row)
            s++;
        int32_t pos = b->positions[row];
        const int32_t *sl = b->slots + b->slot_off[s];
        for (int32_t p = 0; p <= pos; p++) {
            if (f->kv_pos[sl[p]] != p)
                return sgl_err(err, SGL_E_INVAL, "fake: slot %d holds position %d, want %d", sl[p],
                               f->kv_pos[sl[p]], p);
            buf[p] = f->kv_tok[sl[p]];
        }
        fake_logits(buf, pos + 1, f->eos_bias, logits + (size_t)k * V);
    }
    return SGL_OK;
}

static void fake_free(SglRunner *r)
{
    Fake *f = (Fake *)r;
    free(f->kv_tok);
    free(f->kv_pos);
    free(f);
}

static const SglRunnerOps fake_ops = {"fake", fake_forward, fake_free};

/* begin: resolves placeholder tokens from the previous batch's ids, runs
 * fake_forward on the copy, samples with the device sampler's reference. */
static SglStatus fake_begin(SglRunner *r, const SglBatch *b, const SglRowSampling *rows, SglErr *err)
{
    Fake *f = (Fake *)r;
    if (f->n_out >= 2)
        return sgl_err(err, SGL_E_INVAL, "fake: two batches outstanding");
    if (b->n_logits > FAKE_ROWS)
        return sgl_err(err, SGL_E_UNSUPPORTED, "fake: too many rows");
    static int32_t tok[4096];
    static float logits[FAKE_ROWS * V];
    static SglKSampleRow kr[FAKE_ROWS];
    assert_true(b->n_tokens <= 4096);
    for (int32_t i = 0; i < b->n_tokens; i++) {
        tok[i] = b->tokens[i];
        if (tok[i] < 0) {
            int32_t row = -tok[i] - 1;
            if (f->prev < 0 || row >= f->n_ids[f->prev])
                return sgl_err(err, SGL_E_INVAL, "fake: placeholder %d without such a row", tok[i]);
            tok[i] = f->ids[f->prev][row];
            f->resolved++;
        }
    }
    SglBatch c = *b;
    c.tokens = tok;
    int slot = (f->head + f->n_out) % 2;
    f->st[slot] = fake_forward(r, &c, logits, err);
    if (f->st[slot] != SGL_OK)
        return f->st[slot];
    for (int32_t i = 0; i < b->n_logits; i++)
        kr[i] = (SglKSampleRow){.seed = rows[i].seed, .step = rows[i].step, .temperature = rows[i].temperature,
                                .top_k = rows[i].top_k, .top_p = rows[i].top_p, .min_p = rows[i].min_p,
                                .want_logprob = rows[i].want_logprob};
    sgl_ref_sample(logits, b->n_logits, V, kr, NULL, f->ids[slot], f->lp[slot]);
    f->n_ids[slot] = b->n_logits;
    f->prev = slot;
    f->n_out++;
    f->begins++;
    return SGL_OK;
}

static SglStatus fake_end(SglRunner *r, int32_t *ids, float *lp, SglErr *err)
{
    Fake *f = (Fake *)r;
    if (f->n_out == 0)
        return sgl_err(err, SGL_E_INVAL, "fake: nothing outstanding");
    int slot = f->head;
    f->head = (f->head + 1) % 2;
    f->n_out--;
    memcpy(ids, f->ids[slot], (size_t)f->n_ids[slot] * sizeof *ids);
    memcpy(lp, f->lp[slot], (size_t)f->n_ids[slot] * sizeof *lp);
    return SGL_OK;
}

static const SglRunnerOps fake_async_ops = {"fake-async", fake_forward, fake_free, NULL, fake_begin, fake_end};

/* ---- harness -------------------------------------------------------------- */

static const char *const texts[V] = {
    "<unk>", "</s>", "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n",
    "o", "p", "q", "r", "s", "t", "u", "v", "w", "x", "y", "z", " ", ".", ",", "!",
    "ab", "cd", "ef", "gh", "ij", "kl", "mn", "op", "qr", "st", "uv", "wx", "yz", "the", " a", "is",
    "A", "B", "C", "D", "E", "F", "G", "H", "I", "J", "K", "L", "M", "N", "O", "P",
};

static const char *tok_text(void *u, int32_t id, size_t *len)
{
    (void)u;
    *len = strlen(texts[id]);
    return texts[id];
}

typedef struct {
    bool used, done[8];
    int32_t n_final, n_events;
    int32_t out[8][MAX_OUT + 1], n_out[8];
    SglFinishKind finish[8];
    int32_t matched_token[8];
    char matched_stop[8][16];
    char text[8][512], streamed[8][512];
    int32_t cached[8];
    float prompt_lp[MAX_CTX];
    int32_t n_prompt;
    bool last_seen;
} Result;

typedef struct {
    Sched *s;
    KvPool *pool;
    RadixCache *cache;
    Fake *fake;
    Result res[MAX_REQ];
    uint64_t next_id;
    int32_t order[MAX_REQ];        /* request ids in order of their first event */
    int32_t n_order;
    int32_t steps_prefill_decode_mixed, max_batch_seqs, n_steps;
    int32_t max_step_prefill_tokens;
} H;

static void on_event(void *user, const SglEvent *ev)
{
    H *h = user;
    Result *r = &h->res[ev->id];
    int32_t i = ev->index;
    assert_true(i >= 0 && i < 8);
    assert_false(r->done[i]);
    assert_false(r->last_seen);
    if (r->n_events++ == 0)
        h->order[h->n_order++] = (int32_t)ev->id;
    strncat(r->streamed[i], ev->text, ev->text_len);
    if (ev->kind == SGL_EV_TOKEN) {
        assert_true(r->n_out[i] < MAX_OUT + 1);
        r->out[i][r->n_out[i]++] = ev->token;
        return;
    }
    r->done[i] = true;
    r->n_final++;
    r->finish[i] = ev->finish;
    r->matched_token[i] = ev->matched_token;
    snprintf(r->matched_stop[i], sizeof r->matched_stop[i], "%s", ev->matched_stop ? ev->matched_stop : "");
    snprintf(r->text[i], sizeof r->text[i], "%.*s", (int)ev->output_text_len, ev->output_text);
    r->cached[i] = ev->cached_tokens;
    assert_int_equal(ev->completion_tokens, r->n_out[i]);
    for (int32_t k = 0; k < ev->completion_tokens; k++)
        assert_int_equal(ev->output_ids[k], r->out[i][k]);
    if (ev->prompt_logprobs) {
        r->n_prompt = ev->prompt_tokens;
        memcpy(r->prompt_lp, ev->prompt_logprobs, (size_t)ev->prompt_tokens * sizeof(float));
    }
    r->last_seen = ev->last;
}

static void on_step(void *user, int32_t n_prefill, int32_t n_decode, int32_t n_tokens)
{
    H *h = user;
    h->n_steps++;
    if (n_prefill > 0 && n_decode > 0)
        h->steps_prefill_decode_mixed++;
    if (n_prefill + n_decode > h->max_batch_seqs)
        h->max_batch_seqs = n_prefill + n_decode;
    if (n_tokens - n_decode > h->max_step_prefill_tokens)
        h->max_step_prefill_tokens = n_tokens - n_decode;
}

static H *h_new(int32_t n_pages, int32_t page_size, const SglSchedOpts *o)
{
    H *h = calloc(1, sizeof *h);
    assert_non_null(h);
    h->next_id = 1;
    SchedConfig cfg = {0};
    if (o)
        cfg.o = *o;
    cfg.o.check_integrity = true;
    cfg.o.on_step = on_step;
    cfg.o.on_step_user = h;
    sched_opts_defaults(&cfg.o);
    cfg.vocab_size = V;
    cfg.max_ctx = MAX_CTX;
    cfg.eos_ids[0] = EOS;
    cfg.n_eos = 1;
    cfg.token_text = tok_text;
    h->pool = kvpool_new(n_pages, page_size);
    h->cache = radix_new(h->pool, cfg.o.disable_radix_cache);
    h->fake = calloc(1, sizeof *h->fake);
    assert_non_null(h->pool);
    assert_non_null(h->cache);
    assert_non_null(h->fake);
    h->fake->base.ops = g_overlap ? &fake_async_ops : &fake_ops;
    h->fake->prev = -1;
    h->fake->base.opts.n_slots = (int64_t)n_pages * page_size;
    h->fake->base.opts.max_batch_tokens = cfg.o.max_prefill_tokens + cfg.o.max_running_requests;
    h->fake->base.opts.max_seqs = cfg.o.max_running_requests;
    h->fake->kv_tok = calloc((size_t)n_pages * (size_t)page_size, sizeof(int32_t));
    h->fake->kv_pos = malloc((size_t)n_pages * (size_t)page_size * sizeof(int32_t));
    memset(h->fake->kv_pos, 0xff, (size_t)n_pages * (size_t)page_size * sizeof(int32_t));
    SglErr err = {{0}};
    h->s = sched_new(&cfg, &h->fake->base, h->pool, h->cache, &err);
    assert_non_null(h->s);
    return h;
}

/* Frees everything; first checks the pool is fully free after a cache reset. */
static void h_free(H *h)
{
    assert_true(sched_idle(h->s));
    assert_true(sched_flush_cache(h->s));
    assert_int_equal(kvpool_n_free(h->pool), kvpool_n_pages(h->pool));
    char why[256];
    assert_true(sched_check_integrity(h->s, why, sizeof why));
    assert_int_equal(h->fake->n_out, 0); /* nothing left on the async fake */
    sched_free(h->s);
    radix_free(h->cache);
    kvpool_free(h->pool);
    fake_free(&h->fake->base);
    free(h);
}

static SglSamplingParams greedy(int32_t max_new)
{
    SglSamplingParams p;
    sgl_sampling_params_default(&p);
    p.temperature = 0.0f;
    p.max_new_tokens = max_new;
    p.ignore_eos = true;
    return p;
}

static uint64_t submit(H *h, const int32_t *ids, int32_t n, const SglSamplingParams *p)
{
    SglRequest rq = {.input_ids = ids, .n_input = n, .params = *p, .on_event = on_event, .user = h};
    SchedReq *r = NULL;
    SglErr err = {{0}};
    uint64_t id = h->next_id++;
    assert_true(id < MAX_REQ);
    SglStatus st = sched_req_new(h->s, &rq, id, &r, &err);
    if (st != SGL_OK)
        fail_msg("submit: %s", err.msg);
    h->res[id].used = true;
    sched_add(h->s, r);
    return id;
}

static void step(H *h)
{
    SglErr err = {{0}};
    SglStatus st = sched_step(h->s, &err);
    if (st != SGL_OK && st != SGL_E_AGAIN)
        fail_msg("step: %s", err.msg);
}

static void run_all(H *h)
{
    for (int i = 0; i < 100000 && !sched_idle(h->s); i++)
        step(h);
    assert_true(sched_idle(h->s));
}

/* Greedy reference: the fake logits over the plain token list. */
static int32_t ref_generate(const int32_t *prompt, int32_t n, int32_t max_new, bool ignore_eos, float eos_bias,
                            int32_t *out)
{
    int32_t buf[MAX_CTX];
    float lg[V];
    memcpy(buf, prompt, (size_t)n * sizeof *buf);
    int32_t k = 0;
    while (k < max_new) {
        fake_logits(buf, n + k, eos_bias, lg);
        int32_t best = 0;
        for (int32_t v = 1; v < V; v++)
            if (lg[v] > lg[best])
                best = v;
        out[k++] = best;
        buf[n + k - 1] = best;
        if (!ignore_eos && best == EOS)
            break;
    }
    return k;
}

static void check_ref(H *h, uint64_t id, const int32_t *prompt, int32_t n, int32_t max_new)
{
    int32_t ref[MAX_OUT];
    int32_t k = ref_generate(prompt, n, max_new, true, 0.0f, ref);
    Result *r = &h->res[id];
    assert_true(r->done[0]);
    if (r->n_out[0] != k || memcmp(r->out[0], ref, (size_t)k * sizeof *ref) != 0) {
        fprintf(stderr, "request %llu (prompt %d, max_new %d, cached %d): got", (unsigned long long)id, n, max_new,
                r->cached[0]);
        for (int32_t i = 0; i < r->n_out[0]; i++)
            fprintf(stderr, " %d", r->out[0][i]);
        fprintf(stderr, "\n  want");
        for (int32_t i = 0; i < k; i++)
            fprintf(stderr, " %d", ref[i]);
        fprintf(stderr, "\n");
    }
    assert_int_equal(r->n_out[0], k);
    assert_memory_equal(r->out[0], ref, (size_t)k * sizeof *ref);
}

static void fill_prompt(int32_t *p, int32_t n, uint32_t seed)
{
    for (int32_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = 2 + (int32_t)((seed >> 16) % (V - 2));
    }
}

/* ---- tests ------------------------------------------------------------------ */

static void test_single_greedy(void **state)
{
    (void)state;
    H *h = h_new(256, 1, NULL);
    int32_t p[10];
    fill_prompt(p, 10, 1);
    SglSamplingParams sp = greedy(20);
    uint64_t id = submit(h, p, 10, &sp);
    run_all(h);
    check_ref(h, id, p, 10, 20);
    assert_int_equal(h->res[id].finish[0], SGL_FINISH_LENGTH);
    assert_true(h->res[id].last_seen);
    /* text = concatenation of token texts, streamed == final */
    char want[512] = "";
    for (int32_t i = 0; i < h->res[id].n_out[0]; i++)
        strcat(want, texts[h->res[id].out[0][i]]);
    assert_string_equal(h->res[id].text[0], want);
    assert_string_equal(h->res[id].streamed[0], want);
    h_free(h);
}

static void test_continuous_batching(void **state)
{
    (void)state;
    H *h = h_new(512, 1, NULL);
    int32_t a[12], b[7], c[9];
    fill_prompt(a, 12, 2);
    fill_prompt(b, 7, 3);
    fill_prompt(c, 9, 4);
    SglSamplingParams pa = greedy(30), pb = greedy(5), pc = greedy(10);
    uint64_t ia = submit(h, a, 12, &pa);
    for (int i = 0; i < 4; i++)
        step(h);
    assert_int_equal(sched_n_running(h->s), 1);
    uint64_t ib = submit(h, b, 7, &pb); /* joins while a decodes */
    step(h);
    assert_int_equal(sched_n_running(h->s), 2);
    assert_int_equal(h->steps_prefill_decode_mixed, 1);
    for (int i = 0; i < 5; i++)
        step(h);
    assert_true(h->res[ib].done[0]); /* b left, a keeps going */
    assert_int_equal(sched_n_running(h->s), 1);
    uint64_t ic = submit(h, c, 9, &pc);
    run_all(h);
    check_ref(h, ia, a, 12, 30);
    check_ref(h, ib, b, 7, 5);
    check_ref(h, ic, c, 9, 10);
    assert_int_equal(h->max_batch_seqs, 2);
    h_free(h);
}

static void run_chunked(int32_t chunk, int32_t page, int32_t out[4][MAX_OUT], int32_t *n_steps)
{
    SglSchedOpts o = {0};
    o.chunked_prefill_size = chunk;
    o.max_prefill_tokens = chunk;
    H *h = h_new(1024, page, &o);
    int32_t p[4][150];
    uint64_t ids[4];
    for (int k = 0; k < 4; k++) {
        fill_prompt(p[k], 150, 10 + (uint32_t)k);
        SglSamplingParams sp = greedy(12);
        ids[k] = submit(h, p[k], 150 - k * 20, &sp);
    }
    run_all(h);
    for (int k = 0; k < 4; k++) {
        check_ref(h, ids[k], p[k], 150 - k * 20, 12);
        memcpy(out[k], h->res[ids[k]].out[0], 12 * sizeof(int32_t));
    }
    assert_true(h->max_step_prefill_tokens <= chunk);
    *n_steps = h->n_steps;
    h_free(h);
}

static void test_chunked_prefill(void **state)
{
    (void)state;
    int32_t a[4][MAX_OUT] = {{0}}, b[4][MAX_OUT] = {{0}}, c[4][MAX_OUT] = {{0}};
    int32_t sa, sb, sc;
    run_chunked(4096, 1, a, &sa);
    run_chunked(7, 1, b, &sb);
    run_chunked(16, 4, c, &sc);
    assert_memory_equal(a, b, sizeof a);
    assert_memory_equal(a, c, sizeof a);
    assert_true(sb > sa + 50); /* 540 prompt tokens at 7 per step */
}

/* Admission order with one running request at a time. */
static void policy_order(SglPolicy pol, uint64_t seed, int32_t *order, int32_t n_req,
                         int32_t prompts[][40], const int32_t *lens, const int32_t *max_new, bool warm)
{
    SglSchedOpts o = {0};
    o.policy = pol;
    o.max_running_requests = 1;
    o.seed = seed;
    H *h = h_new(512, 1, &o);
    if (warm) {
        SglSamplingParams sp = greedy(0);
        submit(h, prompts[0], 40, &sp); /* the cache now holds prompts[0] */
        run_all(h);
        h->n_order = 0;
    }
    uint64_t first = h->next_id;
    for (int32_t k = 0; k < n_req; k++) {
        SglSamplingParams sp = greedy(max_new[k]);
        submit(h, prompts[k + (warm ? 1 : 0)], lens[k], &sp);
    }
    run_all(h);
    for (int32_t k = 0; k < n_req; k++)
        order[k] = h->order[k] - (int32_t)first;
    h_free(h);
}

static void test_policies(void **state)
{
    (void)state;
    int32_t pr[6][40];
    for (int k = 0; k < 6; k++)
        fill_prompt(pr[k], 40, 100 + (uint32_t)k);
    int32_t lens[5] = {10, 10, 10, 10, 10}, mx[5] = {2, 9, 4, 7, 1}, ord[5];

    policy_order(SGL_POLICY_FCFS, 1, ord, 5, pr, lens, mx, false);
    for (int k = 0; k < 5; k++)
        assert_int_equal(ord[k], k);

    policy_order(SGL_POLICY_LOF, 1, ord, 5, pr, lens, mx, false);
    int32_t lof[5] = {1, 3, 2, 0, 4};
    assert_memory_equal(ord, lof, sizeof lof);

    /* lpm: after warming with pr[0], requests share 5, 30, 0, 20 tokens of it */
    int32_t lp[5][40];
    int32_t share[4] = {5, 30, 0, 20};
    memcpy(lp[0], pr[0], sizeof lp[0]);
    for (int k = 0; k < 4; k++) {
        memcpy(lp[k + 1], pr[k + 1], sizeof lp[0]);
        memcpy(lp[k + 1], pr[0], (size_t)share[k] * sizeof(int32_t));
    }
    int32_t l4[4] = {40, 40, 40, 40}, m4[4] = {2, 2, 2, 2};
    policy_order(SGL_POLICY_LPM, 1, ord, 4, lp, l4, m4, true);
    int32_t lpm[4] = {1, 3, 0, 2};
    assert_memory_equal(ord, lpm, sizeof lpm);

    /* random: a permutation, the same for the same seed */
    int32_t r1[5], r2[5];
    policy_order(SGL_POLICY_RANDOM, 7, r1, 5, pr, lens, mx, false);
    policy_order(SGL_POLICY_RANDOM, 7, r2, 5, pr, lens, mx, false);
    assert_memory_equal(r1, r2, sizeof r1);
    int seen = 0;
    for (int k = 0; k < 5; k++)
        seen |= 1 << r1[k];
    assert_int_equal(seen, 31);

    /* dfs-weight: {1,2,3,4} share a first token, {0} has another; inside the
     * big group 2 splits off at the second token. The order is re-evaluated
     * at each admission over what is still waiting: 1,3,4 (the heaviest
     * branch, ties in token order), then {0} and {2} are single-member
     * groups tied on weight, so token order decides: 0 before 2. */
    int32_t dp[5][40];
    for (int k = 0; k < 5; k++) {
        memcpy(dp[k], pr[5], sizeof dp[0]);
        dp[k][0] = k == 0 ? 3 : 4;
        dp[k][1] = k == 2 ? 20 : 10;
        dp[k][39] = 2 + k;
    }
    int32_t l5[5] = {40, 40, 40, 40, 40}, m5[5] = {1, 1, 1, 1, 1};
    policy_order(SGL_POLICY_DFS_WEIGHT, 1, ord, 5, dp, l5, m5, false);
    int32_t dfs[5] = {1, 3, 4, 0, 2};
    assert_memory_equal(ord, dfs, sizeof dfs);
}

/* 4 x (10 + 25) tokens needed, 48 available. Without the admission reserve
 * all four start and outputs outgrow the pool (retraction); with it
 * (init_new_token_ratio, default) admission leaves room and none is
 * retracted. Outputs are the same either way. */
static void test_retraction(void **state)
{
    (void)state;
    for (int reserve = 0; reserve < 2; reserve++) {
        SglSchedOpts o = {0};
        o.init_new_token_ratio = reserve ? 0.0f : -1.0f;
        H *h = h_new(48, 1, &o);
        int32_t p[4][10];
        uint64_t ids[4];
        for (int k = 0; k < 4; k++) {
            fill_prompt(p[k], 10, 200 + (uint32_t)k);
            SglSamplingParams sp = greedy(25);
            ids[k] = submit(h, p[k], 10, &sp);
        }
        run_all(h);
        SglEngineStats st;
        sched_stats(h->s, &st);
        if (reserve)
            assert_int_equal(st.retractions, 0);
        else
            assert_true(st.retractions > 0);
        for (int k = 0; k < 4; k++)
            check_ref(h, ids[k], p[k], 10, 25);
        h_free(h);
    }
}

static void test_abort_every_stage(void **state)
{
    (void)state;
    SglSchedOpts o = {0};
    o.chunked_prefill_size = 8;
    o.max_prefill_tokens = 8;
    H *h = h_new(256, 1, &o);
    int32_t p[60];
    fill_prompt(p, 60, 300);
    SglSamplingParams sp = greedy(50);
    /* queued */
    uint64_t q1 = submit(h, p, 60, &sp);
    assert_true(sched_abort(h->s, q1));
    assert_int_equal(h->res[q1].finish[0], SGL_FINISH_ABORT);
    assert_true(h->res[q1].last_seen);
    /* mid chunked prefill */
    uint64_t q2 = submit(h, p, 60, &sp);
    step(h);
    step(h);
    assert_int_equal(sched_n_running(h->s), 1);
    assert_true(sched_abort(h->s, q2));
    assert_int_equal(h->res[q2].finish[0], SGL_FINISH_ABORT);
    /* decoding, with n = 3 samples some of which are not forked yet */
    SglSamplingParams s3 = sp;
    s3.n = 3;
    s3.temperature = 1.0f;
    s3.seed = 5;
    s3.has_seed = true;
    uint64_t q3 = submit(h, p, 20, &s3);
    for (int i = 0; i < 6; i++)
        step(h);
    assert_true(h->res[q3].n_out[0] > 0);
    assert_true(sched_abort(h->s, q3));
    assert_int_equal(h->res[q3].n_final, 3);
    assert_true(h->res[q3].last_seen);
    /* n = 3 aborted before the fork */
    uint64_t q4 = submit(h, p, 60, &s3);
    step(h);
    assert_true(sched_abort(h->s, q4));
    assert_int_equal(h->res[q4].n_final, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(h->res[q4].finish[i], SGL_FINISH_ABORT);
    /* finished: not found */
    SglSamplingParams s1 = greedy(2);
    uint64_t q5 = submit(h, p, 5, &s1);
    run_all(h);
    assert_false(sched_abort(h->s, q5));
    /* abort everything while running */
    submit(h, p, 30, &sp);
    submit(h, p + 10, 30, &sp);
    step(h);
    step(h);
    sched_abort_all(h->s, SGL_FINISH_ABORT, "test");
    h_free(h);
}

static void test_prefill_only_and_cache(void **state)
{
    (void)state;
    H *h = h_new(256, 1, NULL);
    int32_t p[50];
    fill_prompt(p, 50, 400);
    SglSamplingParams s0 = greedy(0);
    uint64_t a = submit(h, p, 50, &s0);
    run_all(h);
    assert_int_equal(h->res[a].finish[0], SGL_FINISH_LENGTH);
    assert_int_equal(h->res[a].n_out[0], 0);
    assert_int_equal(radix_total_tokens(h->cache), 50);
    SglSamplingParams s1 = greedy(8);
    uint64_t b = submit(h, p, 50, &s1);
    run_all(h);
    assert_int_equal(h->res[b].cached[0], 49);
    check_ref(h, b, p, 50, 8);
    h_free(h);
}

static void test_n_samples(void **state)
{
    (void)state;
    H *h = h_new(512, 1, NULL);
    int32_t p[40];
    fill_prompt(p, 40, 500);
    SglSamplingParams sp = greedy(10);
    sp.n = 4;
    uint64_t id = submit(h, p, 40, &sp);
    run_all(h);
    Result *r = &h->res[id];
    assert_int_equal(r->n_final, 4);
    assert_true(r->last_seen);
    int32_t ref[MAX_OUT];
    ref_generate(p, 40, 10, true, 0.0f, ref);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(r->n_out[i], 10);
        assert_memory_equal(r->out[i], ref, 10 * sizeof(int32_t)); /* greedy: identical */
    }
    SglEngineStats st;
    sched_stats(h->s, &st);
    assert_int_equal(st.prefill_tokens, 40);  /* the prompt once */
    assert_int_equal(st.forward_tokens, 40 + 3 + 4 * 9); /* + the last prompt token per fork + decodes */
    assert_int_equal(r->cached[1], 39);
    /* sampled, seeded: reproducible */
    SglSamplingParams ss = sp;
    ss.temperature = 1.0f;
    ss.seed = 11;
    ss.has_seed = true;
    uint64_t x = submit(h, p, 40, &ss);
    run_all(h);
    uint64_t y = submit(h, p, 40, &ss);
    run_all(h);
    for (int i = 0; i < 4; i++)
        assert_memory_equal(h->res[x].out[i], h->res[y].out[i], 10 * sizeof(int32_t));
    /* unseeded: every request and sample draws its own stream */
    ss.has_seed = false;
    uint64_t u = submit(h, p, 40, &ss);
    uint64_t v = submit(h, p, 40, &ss);
    run_all(h);
    assert_memory_not_equal(h->res[u].out[0], h->res[v].out[0], 10 * sizeof(int32_t));
    assert_memory_not_equal(h->res[u].out[0], h->res[u].out[1], 10 * sizeof(int32_t));
    h_free(h);
}

typedef struct {
    int32_t accepted;
    int32_t released;
} MaskCtx;

static bool mask_fn(void *ctx, int32_t index, uint32_t *allowed, int32_t vocab)
{
    (void)ctx;
    (void)index;
    assert_int_equal(vocab, V);
    for (int t = 5; t <= 7; t++)
        allowed[t / 32] |= 1u << (t % 32);
    return true;
}

static bool accept_fn(void *ctx, int32_t index, int32_t tok)
{
    MaskCtx *m = ctx;
    assert_true(tok >= 5 && tok <= 7);
    return ++m->accepted == 4;
}

static void release_fn(void *ctx) { ((MaskCtx *)ctx)->released++; }

static void test_mask_hook(void **state)
{
    (void)state;
    H *h = h_new(256, 1, NULL);
    int32_t p[12];
    fill_prompt(p, 12, 600);
    MaskCtx m = {0};
    SglRequest rq = {.input_ids = p, .n_input = 12, .params = greedy(20), .on_event = on_event, .user = h};
    rq.constraint = (SglConstraint){&m, mask_fn, accept_fn, release_fn};
    SchedReq *r;
    SglErr err;
    uint64_t id = h->next_id++;
    assert_int_equal(sched_req_new(h->s, &rq, id, &r, &err), SGL_OK);
    sched_add(h->s, r);
    run_all(h);
    assert_int_equal(h->res[id].n_out[0], 4);
    assert_int_equal(h->res[id].finish[0], SGL_FINISH_STOP);
    assert_int_equal(m.accepted, 4);
    assert_int_equal(m.released, 1);
    /* greedy within the mask = argmax over {5,6,7} of the fake logits */
    int32_t buf[40];
    memcpy(buf, p, sizeof p);
    for (int k = 0; k < 4; k++) {
        float lg[V];
        fake_logits(buf, 12 + k, 0.0f, lg);
        int32_t best = 5;
        for (int t = 6; t <= 7; t++)
            if (lg[t] > lg[best])
                best = t;
        assert_int_equal(h->res[id].out[0][k], best);
        buf[12 + k] = best;
    }
    h_free(h);
}

/* A runner whose every row prefers EOS: stops, min_new_tokens, stop ids. */
static void test_stops_and_min_new(void **state)
{
    (void)state;
    H *h = h_new(256, 1, NULL);
    h->fake->eos_bias = 100.0f;
    int32_t p[8];
    fill_prompt(p, 8, 700);
    SglSamplingParams sp = greedy(20);
    sp.ignore_eos = false;
    uint64_t a = submit(h, p, 8, &sp);
    sp.min_new_tokens = 5;
    uint64_t b = submit(h, p, 8, &sp);
    run_all(h);
    assert_int_equal(h->res[a].n_out[0], 1);
    assert_int_equal(h->res[a].finish[0], SGL_FINISH_STOP);
    assert_int_equal(h->res[a].matched_token[0], EOS);
    assert_int_equal(h->res[b].n_out[0], 6);
    assert_int_equal(h->res[b].out[0][5], EOS);
    for (int k = 0; k < 5; k++)
        assert_int_not_equal(h->res[b].out[0][k], EOS);
    assert_string_equal(h->res[b].text[0], h->res[b].streamed[0]);
    h->fake->eos_bias = 0.0f;

    /* stop string spanning tokens: find two consecutive output tokens of a
     * greedy run and stop on the last char of the first + first of the second */
    int32_t q[8], ref[MAX_OUT];
    fill_prompt(q, 8, 701);
    ref_generate(q, 8, 30, true, 0.0f, ref);
    char full[512] = "";
    for (int k = 0; k < 30; k++)
        strcat(full, texts[ref[k]]);
    int k1 = -1;
    size_t off = 0;
    for (int k = 0; k + 1 < 30 && k1 < 0; k++) {
        off += strlen(texts[ref[k]]);
        if (k >= 3)
            k1 = k;
    }
    char stop[3] = {full[off - 1], full[off], 0};
    char *hit = strstr(full, stop);
    SglSamplingParams ss = greedy(30);
    ss.stop[0] = stop;
    ss.n_stop = 1;
    uint64_t c = submit(h, q, 8, &ss);
    run_all(h);
    assert_int_equal(h->res[c].finish[0], SGL_FINISH_STOP);
    assert_string_equal(h->res[c].matched_stop[0], stop);
    assert_int_equal(strlen(h->res[c].text[0]), (size_t)(hit - full));
    assert_memory_equal(h->res[c].text[0], full, (size_t)(hit - full));
    assert_string_equal(h->res[c].streamed[0], h->res[c].text[0]);

    /* stop token id */
    SglSamplingParams st = greedy(30);
    int32_t stop_id = ref[6];
    st.stop_token_ids = &stop_id;
    st.n_stop_token_ids = 1;
    uint64_t d = submit(h, q, 8, &st);
    run_all(h);
    assert_int_equal(h->res[d].finish[0], SGL_FINISH_STOP);
    assert_int_equal(h->res[d].matched_token[0], stop_id);
    int first = 0;
    while (ref[first] != stop_id)
        first++;
    assert_int_equal(h->res[d].n_out[0], first + 1);
    h_free(h);
}

static void test_prompt_logprobs(void **state)
{
    (void)state;
    H *h = h_new(256, 1, NULL);
    int32_t p[30];
    fill_prompt(p, 30, 800);
    SglSamplingParams s0 = greedy(0);
    submit(h, p, 30, &s0); /* warm the cache: the next match must be capped */
    run_all(h);
    SglSamplingParams sp = greedy(0);
    sp.logprob_start_len = 10;
    uint64_t id = submit(h, p, 30, &sp);
    run_all(h);
    Result *r = &h->res[id];
    assert_int_equal(r->n_prompt, 30);
    for (int32_t i = 0; i < 30; i++) {
        if (i < 10) {
            assert_true(isnan(r->prompt_lp[i]));
            continue;
        }
        float lg[V];
        fake_logits(p, i, 0.0f, lg);
        double m = lg[0], z = 0;
        for (int v = 1; v < V; v++)
            m = lg[v] > m ? lg[v] : m;
        for (int v = 0; v < V; v++)
            z += exp(lg[v] - m);
        double want = lg[p[i]] - m - log(z);
        assert_true(fabs(r->prompt_lp[i] - want) < 1e-4);
    }
    assert_int_equal(r->cached[0], 9); /* capped: position 9's logits score token 10 */
    h_free(h);
}

static void test_bad_requests(void **state)
{
    (void)state;
    H *h = h_new(64, 1, NULL);
    int32_t p[100];
    fill_prompt(p, 100, 900);
    SglSamplingParams sp = greedy(4);
    SglRequest rq = {.input_ids = p, .n_input = 100, .params = sp};
    SchedReq *r = NULL;
    SglErr err = {{0}};
    assert_int_equal(sched_req_new(h->s, &rq, 1, &r, &err), SGL_E_INVAL); /* > KV capacity */
    assert_non_null(strstr(err.msg, "does not fit"));
    rq.n_input = 0;
    assert_int_equal(sched_req_new(h->s, &rq, 1, &r, &err), SGL_E_INVAL);
    rq.n_input = 5;
    p[2] = V + 3;
    assert_int_equal(sched_req_new(h->s, &rq, 1, &r, &err), SGL_E_INVAL);
    assert_null(r);
    h_free(h);
}

/* Many random requests under a tiny KV budget: shared prefixes, n > 1,
 * aborts at random times; integrity after every step (check_integrity). */
static void stress(int32_t page_size, int32_t n_pages, uint32_t seed, int32_t n_req)
{
    SglSchedOpts o = {0};
    o.chunked_prefill_size = 32;
    o.max_prefill_tokens = 64;
    o.max_running_requests = 16;
    H *h = h_new(n_pages, page_size, &o);
    int32_t prefixes[8][64];
    for (int k = 0; k < 8; k++)
        fill_prompt(prefixes[k], 64, seed * 31 + (uint32_t)k);
    static int32_t prompts[MAX_REQ][128];
    int32_t plen[MAX_REQ] = {0}, maxn[MAX_REQ] = {0};
    bool greedy1[MAX_REQ] = {0};
    uint32_t x = seed;
#define RND(n) ((x = x * 1103515245u + 12345u), (int32_t)((x >> 8) % (uint32_t)(n)))
    int32_t submitted = 0;
    while (submitted < n_req || !sched_idle(h->s)) {
        int32_t burst = submitted < n_req ? RND(4) : 0;
        for (int32_t j = 0; j < burst && submitted < n_req; j++) {
            int32_t pre = RND(65), len = pre + 1 + RND(60);
            uint64_t id = h->next_id;
            fill_prompt(prompts[id], len, x);
            memcpy(prompts[id], prefixes[RND(8)], (size_t)pre * sizeof(int32_t));
            SglSamplingParams sp = greedy(RND(40));
            if (RND(5) == 0) {
                sp.n = 1 + RND(3);
                sp.temperature = 0.8f;
            }
            plen[id] = len;
            maxn[id] = sp.max_new_tokens;
            greedy1[id] = sp.n == 1 && sp.temperature == 0.0f;
            submit(h, prompts[id], len, &sp);
            submitted++;
        }
        if (RND(10) == 0 && h->next_id > 1) {
            uint64_t victim = 1 + (uint64_t)RND((int32_t)h->next_id - 1);
            sched_abort(h->s, victim);
        }
        step(h);
    }
#undef RND
    SglEngineStats st;
    sched_stats(h->s, &st);
    assert_int_equal(st.integrity_failures, 0);
    assert_true(st.retractions > 0);
    assert_true(st.cached_tokens > 0);
    int32_t n_done = 0, n_aborted = 0;
    for (uint64_t id = 1; id < h->next_id; id++) {
        Result *r = &h->res[id];
        assert_true(r->last_seen);
        bool aborted = false;
        for (int i = 0; i < r->n_final; i++)
            aborted |= r->finish[i] == SGL_FINISH_ABORT;
        n_aborted += aborted;
        if (!aborted && greedy1[id]) {
            check_ref(h, id, prompts[id], plen[id], maxn[id]);
            n_done++;
        }
    }
    assert_true(n_done > n_req / 3);
    assert_true(n_aborted > 0);
    if (g_overlap) {
        assert_true(st.overlap_steps > st.steps / 2);
        assert_true(h->fake->resolved > 0);
    }
    h_free(h);
}

/* The finish-at-step-N cases of the overlap scheduler (a request that ends
 * at step N is already in step N+1): EOS, stop ids, stop strings, max_tokens
 * 1 and 0, n = 3, under a pool small enough to retract. The same workload
 * runs on the synchronous and the async fake; every event must agree. */
static void finish_workload(H *h, uint64_t *ids, int32_t *n_ids)
{
    static const char *const stops[] = {"e", "ab", " a", "z"};
    int32_t p[48];
    *n_ids = 0;
    for (int i = 0; i < 40; i++) {
        fill_prompt(p, 48, 1300 + (uint32_t)i);
        SglSamplingParams sp = greedy(1 + (i * 7) % 30);
        switch (i % 8) {
        case 0: sp.ignore_eos = false; break;                       /* EOS (biased, see below) */
        case 1: sp.stop[0] = stops[i % 4]; sp.n_stop = 1; break;    /* stop string */
        case 2: sp.max_new_tokens = 1; break;
        case 3: sp.n = 3; sp.ignore_eos = false; break;
        case 4: sp.stop_token_ids = &p[47 - i % 5]; sp.n_stop_token_ids = 1; break;
        case 5: sp.max_new_tokens = 0; break;
        case 6: sp.stop[0] = stops[(i + 1) % 4]; sp.n_stop = 1; sp.ignore_eos = false; break;
        default: break;
        }
        ids[(*n_ids)++] = submit(h, p, 20 + i % 29, &sp);
        if (i % 3 == 0)
            step(h);
    }
    run_all(h);
}

static void test_overlap_matches_sync(void **state)
{
    (void)state;
    bool saved = g_overlap;
    SglSchedOpts o = {0};
    o.max_running_requests = 12;
    o.chunked_prefill_size = 24;
    o.init_new_token_ratio = -1.0f; /* no admission reserve: retraction happens */
    H *h[2];
    uint64_t ids[2][64];
    int32_t n[2];
    SglEngineStats st[2];
    for (int m = 0; m < 2; m++) {
        g_overlap = m == 1;
        h[m] = h_new(160, 1, &o);
        h[m]->fake->eos_bias = 2.5f; /* EOS wins now and then */
        finish_workload(h[m], ids[m], &n[m]);
        sched_stats(h[m]->s, &st[m]);
    }
    g_overlap = saved;
    assert_int_equal(n[0], n[1]);
    int32_t eos_stops = 0, string_stops = 0, lengths = 0;
    for (int32_t i = 0; i < n[0]; i++) {
        Result *a = &h[0]->res[ids[0][i]], *b = &h[1]->res[ids[1][i]];
        assert_int_equal(a->n_final, b->n_final);
        assert_true(b->last_seen);
        for (int k = 0; k < a->n_final; k++) {
            assert_int_equal(a->n_out[k], b->n_out[k]);
            assert_memory_equal(a->out[k], b->out[k], (size_t)a->n_out[k] * sizeof(int32_t));
            assert_int_equal(a->finish[k], b->finish[k]);
            assert_int_equal(a->matched_token[k], b->matched_token[k]);
            assert_string_equal(a->matched_stop[k], b->matched_stop[k]);
            assert_string_equal(a->text[k], b->text[k]);
            assert_string_equal(a->streamed[k], b->streamed[k]);
            eos_stops += a->matched_token[k] == EOS;
            string_stops += a->matched_stop[k][0] != 0;
            lengths += a->finish[k] == SGL_FINISH_LENGTH;
        }
    }
    /* the workload reaches each case */
    assert_true(eos_stops > 0 && string_stops > 0 && lengths > 0);
    assert_true(st[0].retractions > 0 && st[1].retractions > 0);
    assert_int_equal(st[0].overlap_steps, 0);
    assert_true(st[1].overlap_steps > 0);
    assert_true(h[1]->fake->resolved > 0);
    assert_int_equal(st[0].generated_tokens, st[1].generated_tokens);
    h_free(h[0]);
    h_free(h[1]);
}

static void test_stress_page1(void **state)
{
    (void)state;
    stress(1, 300, 1, 500);
}

static void test_stress_page4(void **state)
{
    (void)state;
    stress(4, 80, 2, 300);
}

/* Two chunked prefills that together need more than the pool: one is
 * requeued instead of both waiting for pages forever. */
static void test_prefill_deadlock(void **state)
{
    (void)state;
    SglSchedOpts o = {0};
    o.chunked_prefill_size = 8;
    o.max_prefill_tokens = 16;
    H *h = h_new(64, 1, &o);
    int32_t p[2][50];
    uint64_t ids[2];
    for (int k = 0; k < 2; k++) {
        fill_prompt(p[k], 50, 1200 + (uint32_t)k);
        SglSamplingParams sp = greedy(6);
        ids[k] = submit(h, p[k], 50, &sp);
    }
    for (int i = 0; i < 400 && !sched_idle(h->s); i++)
        step(h);
    assert_true(sched_idle(h->s));
    for (int k = 0; k < 2; k++)
        check_ref(h, ids[k], p[k], 50, 6);
    SglEngineStats st;
    sched_stats(h->s, &st);
    assert_true(st.retractions > 0);
    h_free(h);
}

/* A big pool: decoding sequences take pages ahead (lookahead runs). */
static void test_lookahead_big_pool(void **state)
{
    (void)state;
    for (int32_t page = 1; page <= 4; page *= 4) {
        H *h = h_new(8192 / page, page, NULL);
        int32_t p[6][30];
        uint64_t ids[6];
        for (int k = 0; k < 6; k++) {
            fill_prompt(p[k], 30, 1100 + (uint32_t)k);
            SglSamplingParams sp = greedy(37 + k);
            ids[k] = submit(h, p[k], 30, &sp);
        }
        for (int i = 0; i < 5; i++)
            step(h);
        /* 6 sequences decoding: each holds more pages than its KV needs */
        int32_t used = kvpool_n_pages(h->pool) - kvpool_n_free(h->pool);
        assert_true(used * page > 6 * (30 + 4) + 6 * 8);
        run_all(h);
        for (int k = 0; k < 6; k++)
            check_ref(h, ids[k], p[k], 30, 37 + k);
        h_free(h);
    }
}

static void test_disabled_cache(void **state)
{
    (void)state;
    SglSchedOpts o = {0};
    o.disable_radix_cache = true;
    H *h = h_new(256, 1, &o);
    int32_t p[40];
    fill_prompt(p, 40, 1000);
    SglSamplingParams sp = greedy(6);
    sp.n = 2;
    uint64_t a = submit(h, p, 40, &sp);
    run_all(h);
    uint64_t b = submit(h, p, 40, &sp);
    run_all(h);
    assert_int_equal(h->res[b].cached[0], 0);
    assert_memory_equal(h->res[a].out[1], h->res[b].out[1], 6 * sizeof(int32_t));
    check_ref(h, a, p, 40, 6);
    assert_int_equal(radix_total_tokens(h->cache), 0);
    h_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_greedy),
        cmocka_unit_test(test_continuous_batching),
        cmocka_unit_test(test_chunked_prefill),
        cmocka_unit_test(test_policies),
        cmocka_unit_test(test_retraction),
        cmocka_unit_test(test_abort_every_stage),
        cmocka_unit_test(test_prefill_only_and_cache),
        cmocka_unit_test(test_n_samples),
        cmocka_unit_test(test_mask_hook),
        cmocka_unit_test(test_stops_and_min_new),
        cmocka_unit_test(test_prompt_logprobs),
        cmocka_unit_test(test_bad_requests),
        cmocka_unit_test(test_disabled_cache),
        cmocka_unit_test(test_lookahead_big_pool),
        cmocka_unit_test(test_prefill_deadlock),
        cmocka_unit_test(test_stress_page1),
        cmocka_unit_test(test_stress_page4),
        cmocka_unit_test(test_overlap_matches_sync),
    };
    int fails = cmocka_run_group_tests_name("synchronous", tests, NULL, NULL);
    g_overlap = true;
    return fails + cmocka_run_group_tests_name("overlap", tests, NULL, NULL);
}

/* test_jumpfwd.c -- compressed-FSM jump-forward in the scheduler, against a
 * fake runner with a real KV store (the style of test_scheduler.c).
 *
 * The runner writes (token, position) into the slots it is given and
 * computes each logits row from a hash of the tokens it reads back through
 * the slot table, so KV left stale by a rollback changes the logits. The
 * harness replays every event: it drops n_rollback ids, and for each sampled
 * (not forced) id checks it is the masked argmax of the fake logits over the
 * current token list, i.e. what a correct KV would give. The constraint is a
 * real DFA from ir/fsm/regex.c behind small test hooks; the "tokenizer" is a
 * greedy longest-match encoder over the test vocabulary (canonical by
 * definition), which contains merges across the forced boundary ("c\"",
 * "\", ") so that re-tokenization rolls tokens back. Integrity checks run
 * after every step; every test ends with the pool fully free.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/fsm/regex.h"
#include "runtime/scheduler.h"

#define EOS 1
#define MAX_CTX 256
#define MAX_REQ 64
#define MAX_OUT 96

static const char *const texts[] = {
    "<unk>", "</s>", "{", "}", "\"", ":", ",", " ", "a", "b", "c", "0", "1", "2", "3", "4",
    "5", "6", "7", "8", "9", "n", "m", "e", "g", "q0", "{\"", "\":", "\", ", " \"", "\"}", "c\"",
    "ab", "name", "age", "\": ", ", \"", "bc", "a\"", "7}",
};
#define V ((int32_t)(sizeof texts / sizeof texts[0]))

static const char *const RE = "\\{\"name\": \"[abc]{1,8}\", \"age\": [0-9]{1,2}\\}";

/* ---- fake runner ---------------------------------------------------------- */

typedef struct {
    SglRunner base;
    int32_t *kv_tok, *kv_pos;      /* (n_slots) */
} Fake;

static uint64_t mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void fake_logits(const int32_t *tokens, int32_t n, float *out)
{
    uint64_t h = 0x1234;
    for (int32_t i = 0; i < n; i++)
        h = mix(h ^ (uint64_t)(tokens[i] + 1) * 0x9E3779B97F4A7C15ull);
    for (int32_t v = 0; v < V; v++)
        out[v] = (float)(mix(h + (uint64_t)v) >> 40) / (float)(1u << 24) * 8.0f;
}

static SglStatus fake_forward(SglRunner *r, const SglBatch *b, float *logits, SglErr *err)
{
    Fake *f = (Fake *)r;
    if (b->n_tokens > r->opts.max_batch_tokens || b->n_seqs > r->opts.max_seqs)
        return sgl_err(err, SGL_E_INVAL, "fake: batch too big");
    for (int32_t s = 0; s < b->n_seqs; s++) {
        int32_t n_new = b->seq_off[s + 1] - b->seq_off[s], kv = b->kv_len[s];
        const int32_t *sl = b->slots + b->slot_off[s];
        for (int32_t j = 0; j < n_new; j++) {
            int32_t t = b->seq_off[s] + j, pos = kv - n_new + j;
            if (b->positions[t] != pos || sl[pos] < 0 || sl[pos] >= r->opts.n_slots)
                return sgl_err(err, SGL_E_INVAL, "fake: seq %d pos %d bad slot", s, pos);
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
        fake_logits(buf, pos + 1, logits + (size_t)k * V);
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

/* ---- vocabulary: texts and a greedy longest-match encoder ------------------ */

static const char *tok_text(void *u, int32_t id, size_t *len)
{
    (void)u;
    *len = id >= 2 && id < V ? strlen(texts[id]) : 0;
    return id >= 2 && id < V ? texts[id] : "";
}

static SglStatus tok_encode(void *u, const char *text, size_t len, int32_t **ids, int32_t *n)
{
    (void)u;
    *ids = malloc((len + 1) * sizeof **ids);
    *n = 0;
    if (!*ids)
        return SGL_E_NOMEM;
    for (size_t off = 0; off < len;) {
        int32_t best = -1;
        size_t bl = 0;
        for (int32_t t = 2; t < V; t++) {
            size_t tl = strlen(texts[t]);
            if (tl > bl && tl <= len - off && memcmp(text + off, texts[t], tl) == 0) {
                best = t;
                bl = tl;
            }
        }
        if (best < 0) {
            (*ids)[(*n)++] = 0; /* <unk>: does not spell the text */
            off++;
        } else {
            (*ids)[(*n)++] = best;
            off += bl;
        }
    }
    return SGL_OK;
}

/* ---- constraint hooks over a DFA ------------------------------------------ */

typedef struct {
    const SglDfa *d;
    int32_t state[8];
    bool done[8];
    bool empty_mask_after[8];      /* test: the mask becomes empty after this many tokens */
    int32_t n_taken[8], empty_after;
    char forced[256];
    int32_t released;
} Con;

static bool complete(const SglDfa *d, int32_t st)
{
    if (!d->accept[st])
        return false;
    for (int32_t k = 0; k < d->n_classes; k++)
        if (d->trans[(size_t)st * (size_t)d->n_classes + (size_t)k] >= 0)
            return false;
    return true;
}

static void dfa_mask(const SglDfa *d, int32_t st, uint32_t *allowed)
{
    for (int32_t t = 2; t < V; t++) {
        size_t l = strlen(texts[t]);
        if (sgl_dfa_walk(d, st, texts[t], l) >= 0)
            allowed[t / 32] |= 1u << (t % 32);
    }
    if (d->accept[st])
        allowed[EOS / 32] |= 1u << (EOS % 32);
}

static bool con_mask(void *ctx, int32_t i, uint32_t *allowed, int32_t vocab)
{
    Con *c = ctx;
    assert_int_equal(vocab, V);
    if (c->empty_after > 0 && c->n_taken[i] >= c->empty_after)
        return true; /* nothing allowed */
    if (!c->done[i])
        dfa_mask(c->d, c->state[i], allowed);
    return true;
}

static bool con_accept(void *ctx, int32_t i, int32_t tok)
{
    Con *c = ctx;
    c->n_taken[i]++;
    if (tok == EOS) {
        c->done[i] = true;
        return true;
    }
    c->state[i] = sgl_dfa_walk(c->d, c->state[i], texts[tok], strlen(texts[tok]));
    assert_true(c->state[i] >= 0);
    return complete(c->d, c->state[i]);
}

static bool con_forced(void *ctx, int32_t i, const char **bytes, size_t *len)
{
    Con *c = ctx;
    *len = c->done[i] ? 0 : sgl_dfa_forced(c->d, c->state[i], c->forced, sizeof c->forced);
    if (*len > sizeof c->forced)
        *len = 0;
    *bytes = c->forced;
    return *len > 0;
}

static bool con_accept_bytes(void *ctx, int32_t i, const char *bytes, size_t len)
{
    Con *c = ctx;
    assert_memory_equal(bytes, c->forced, len);
    c->state[i] = sgl_dfa_walk(c->d, c->state[i], bytes, len);
    assert_true(c->state[i] >= 0);
    return complete(c->d, c->state[i]);
}

static void con_release(void *ctx) { ((Con *)ctx)->released++; }

/* ---- harness -------------------------------------------------------------- */

typedef struct {
    int32_t list[8][MAX_CTX];      /* prompt + outputs as the events tell them */
    int32_t n_list[8];
    int32_t n_prompt;
    bool greedy, done[8];
    SglFinishKind finish[8];
    char text[8][512], streamed[8][512], error[8][256], matched_stop[8][32];
    int32_t n_forced_events, n_rollback_events;
} Res;

typedef struct {
    Sched *s;
    KvPool *pool;
    RadixCache *cache;
    Fake *fake;
    SglDfa *dfa;
    Res res[MAX_REQ];
    Con con[MAX_REQ];
    uint64_t next_id;
    int32_t n_steps, first_prefill_tokens;
} H;

static void on_step(void *user, int32_t n_prefill, int32_t n_decode, int32_t n_tokens)
{
    H *h = user;
    if (h->n_steps++ == 0)
        h->first_prefill_tokens = n_prefill > 0 ? n_tokens - n_decode : 0;
}

/* Masked argmax of the fake logits after list[0..n), over the DFA state of
 * the output text list[n_prompt..n). */
static int32_t ref_next(const H *h, const int32_t *list, int32_t n, int32_t n_prompt)
{
    int32_t st = h->dfa->start;
    for (int32_t k = n_prompt; k < n; k++)
        st = sgl_dfa_walk(h->dfa, st, texts[list[k]], strlen(texts[list[k]]));
    assert_true(st >= 0);
    uint32_t allowed[(V + 31) / 32] = {0};
    dfa_mask(h->dfa, st, allowed);
    float lg[V];
    fake_logits(list, n, lg);
    int32_t best = -1;
    for (int32_t t = 0; t < V; t++)
        if ((allowed[t / 32] >> (t % 32) & 1u) && (best < 0 || lg[t] > lg[best]))
            best = t;
    return best;
}

static void on_event(void *user, const SglEvent *ev)
{
    H *h = user;
    Res *r = &h->res[ev->id];
    int32_t i = ev->index;
    assert_false(r->done[i]);
    strncat(r->streamed[i], ev->text, ev->text_len);
    if (ev->kind == SGL_EV_TOKEN) {
        assert_true(ev->n_rollback >= 0 && ev->n_rollback <= r->n_list[i] - r->n_prompt);
        if (ev->n_rollback > 0)
            r->n_rollback_events++;
        r->n_list[i] -= ev->n_rollback;
        if (ev->forced)
            r->n_forced_events++;
        else if (r->greedy)
            assert_int_equal(ev->token, ref_next(h, r->list[i], r->n_list[i], r->n_prompt));
        assert_true(r->n_list[i] < MAX_CTX);
        r->list[i][r->n_list[i]++] = ev->token;
        return;
    }
    r->done[i] = true;
    r->finish[i] = ev->finish;
    snprintf(r->text[i], sizeof r->text[i], "%.*s", (int)ev->output_text_len, ev->output_text);
    snprintf(r->error[i], sizeof r->error[i], "%s", ev->error ? ev->error : "");
    snprintf(r->matched_stop[i], sizeof r->matched_stop[i], "%s", ev->matched_stop ? ev->matched_stop : "");
    assert_int_equal(ev->completion_tokens, r->n_list[i] - r->n_prompt);
    assert_memory_equal(ev->output_ids, r->list[i] + r->n_prompt,
                        (size_t)ev->completion_tokens * sizeof(int32_t));
}

static H *h_new(int32_t n_pages, int32_t page_size, bool jump)
{
    H *h = calloc(1, sizeof *h);
    assert_non_null(h);
    h->next_id = 1;
    SchedConfig cfg = {0};
    cfg.o.check_integrity = true;
    cfg.o.disable_jump_forward = !jump;
    cfg.o.max_running_requests = 8;
    cfg.o.chunked_prefill_size = 64;
    cfg.o.init_new_token_ratio = -1.0f; /* no admission reserve: small pools retract */
    cfg.o.on_step = on_step;
    cfg.o.on_step_user = h;
    sched_opts_defaults(&cfg.o);
    cfg.vocab_size = V;
    cfg.max_ctx = MAX_CTX;
    cfg.eos_ids[0] = EOS;
    cfg.n_eos = 1;
    cfg.token_text = tok_text;
    cfg.token_encode = tok_encode;
    h->pool = kvpool_new(n_pages, page_size);
    h->cache = radix_new(h->pool, false);
    h->fake = calloc(1, sizeof *h->fake);
    assert_true(h->pool && h->cache && h->fake);
    h->fake->base.ops = &fake_ops;
    h->fake->base.opts.n_slots = (int64_t)n_pages * page_size;
    h->fake->base.opts.max_batch_tokens = cfg.o.max_prefill_tokens + cfg.o.max_running_requests;
    h->fake->base.opts.max_seqs = cfg.o.max_running_requests;
    h->fake->kv_tok = calloc((size_t)n_pages * (size_t)page_size, sizeof(int32_t));
    h->fake->kv_pos = malloc((size_t)n_pages * (size_t)page_size * sizeof(int32_t));
    memset(h->fake->kv_pos, 0xff, (size_t)n_pages * (size_t)page_size * sizeof(int32_t));
    SglErr err = {0};
    h->s = sched_new(&cfg, &h->fake->base, h->pool, h->cache, &err);
    assert_non_null(h->s);
    FsmErr fe;
    assert_int_equal(regex_compile(RE, strlen(RE), NULL, &h->dfa, NULL, &fe), SGL_OK);
    return h;
}

static void h_free(H *h)
{
    assert_true(sched_idle(h->s));
    assert_true(sched_flush_cache(h->s));
    assert_int_equal(kvpool_n_free(h->pool), kvpool_n_pages(h->pool));
    char why[256];
    assert_true(sched_check_integrity(h->s, why, sizeof why));
    sched_free(h->s);
    radix_free(h->cache);
    kvpool_free(h->pool);
    fake_free(&h->fake->base);
    sgl_dfa_free(h->dfa);
    free(h);
}

static uint64_t submit(H *h, uint32_t seed, int32_t n_prompt, int32_t max_new, int32_t n, float temp,
                       const char *stop)
{
    uint64_t id = h->next_id++;
    assert_true(id < MAX_REQ);
    Res *r = &h->res[id];
    r->n_prompt = n_prompt;
    r->greedy = temp == 0.0f;
    for (int32_t i = 0; i < n; i++) {
        for (int32_t k = 0; k < n_prompt; k++)
            r->list[i][k] = 2 + (int32_t)(mix(seed * 977u + (uint32_t)k) % (uint64_t)(V - 2));
        r->n_list[i] = n_prompt;
    }
    Con *c = &h->con[id];
    c->d = h->dfa;
    for (int32_t i = 0; i < 8; i++)
        c->state[i] = h->dfa->start;
    SglSamplingParams p;
    sgl_sampling_params_default(&p);
    p.temperature = temp;
    p.max_new_tokens = max_new;
    p.n = n;
    p.has_seed = true;
    p.seed = seed;
    if (stop) {
        p.stop[0] = stop;
        p.n_stop = 1;
    }
    SglRequest rq = {.input_ids = r->list[0], .n_input = n_prompt, .params = p, .on_event = on_event, .user = h};
    rq.constraint = (SglConstraint){c, con_mask, con_accept, con_release, con_forced, con_accept_bytes};
    SchedReq *sr = NULL;
    SglErr err = {0};
    if (sched_req_new(h->s, &rq, id, &sr, &err) != SGL_OK)
        fail_msg("submit: %s", err.msg);
    sched_add(h->s, sr);
    return id;
}

static void run_all(H *h)
{
    for (int i = 0; i < 100000 && !sched_idle(h->s); i++) {
        SglErr err = {0};
        SglStatus st = sched_step(h->s, &err);
        if (st != SGL_OK && st != SGL_E_AGAIN)
            fail_msg("step: %s", err.msg);
    }
    assert_true(sched_idle(h->s));
}

/* The output is complete and valid: accepted by the DFA, spelled by its ids,
 * streamed text == final text. */
static void check_valid(const H *h, uint64_t id, int32_t i)
{
    const Res *r = &h->res[id];
    assert_true(r->done[i]);
    assert_int_equal(r->finish[i], SGL_FINISH_STOP);
    if (!sgl_dfa_accepts(h->dfa, r->text[i], strlen(r->text[i])))
        fail_msg("request %llu/%d: '%s' does not match", (unsigned long long)id, i, r->text[i]);
    char spelled[512] = "";
    for (int32_t k = r->n_prompt; k < r->n_list[i]; k++)
        if (r->list[i][k] != EOS)
            strcat(spelled, texts[r->list[i][k]]);
    assert_string_equal(spelled, r->text[i]);
    assert_string_equal(r->streamed[i], r->text[i]);
}

/* ---- tests ---------------------------------------------------------------- */

static void run_greedy(int32_t page_size, bool jump, int64_t *steps, SglEngineStats *st)
{
    H *h = h_new(512, page_size, jump);
    for (uint32_t k = 0; k < 16; k++)
        submit(h, 100 + k, 5 + (int32_t)k % 7, MAX_OUT, 1, 0.0f, NULL);
    run_all(h);
    int32_t rollbacks = 0, forced = 0;
    for (uint64_t id = 1; id < h->next_id; id++) {
        check_valid(h, id, 0);
        rollbacks += h->res[id].n_rollback_events;
        forced += h->res[id].n_forced_events;
        assert_int_equal(h->con[id].released, 1);
    }
    sched_stats(h->s, st);
    *steps = st->steps;
    if (jump) {
        assert_true(st->jump_forwards >= 16 * 2);  /* the start, after the name, after the age */
        assert_int_equal(st->jump_forward_tokens, forced);
        assert_true(rollbacks > 0);                 /* "c\"" / "\", " merges across the boundary */
        assert_true(st->jump_forward_rollbacks >= rollbacks);
    } else {
        assert_int_equal(st->jump_forwards, 0);
        assert_int_equal(forced, 0);
    }
    h_free(h);
}

static void test_greedy_jump_vs_token_by_token(void **state)
{
    (void)state;
    for (int32_t ps = 1; ps <= 4; ps *= 4) {
        int64_t with = 0, without = 0;
        SglEngineStats a, b;
        run_greedy(ps, true, &with, &a);
        run_greedy(ps, false, &without, &b);
        /* forced text costs one extend instead of a decode step per token */
        assert_true(with < without);
        assert_true(a.decode_tokens < b.decode_tokens);
    }
}

/* The start state's forced prefix is prefilled with the prompt in one step. */
static void test_start_prefix_one_extend(void **state)
{
    (void)state;
    H *h = h_new(256, 1, true);
    uint64_t id = submit(h, 7, 6, MAX_OUT, 1, 0.0f, NULL);
    run_all(h);
    check_valid(h, id, 0);
    int32_t *ids = NULL, n = 0;
    assert_int_equal(tok_encode(NULL, "{\"name\": \"", 10, &ids, &n), SGL_OK);
    assert_int_equal(h->first_prefill_tokens, 6 + n);
    assert_memory_equal(h->res[id].list[0] + 6, ids, (size_t)n * sizeof *ids);
    free(ids);
    h_free(h);
}

/* A constraint that forces its whole text finishes before any forward. */
static void test_fully_forced(void **state)
{
    (void)state;
    H *h = h_new(64, 1, true);
    sgl_dfa_free(h->dfa);
    FsmErr fe;
    assert_int_equal(regex_compile("\\{\"q0\"\\}", 8, NULL, &h->dfa, NULL, &fe), SGL_OK);
    uint64_t a = submit(h, 3, 5, MAX_OUT, 2, 1.0f, NULL);
    run_all(h);
    for (int32_t i = 0; i < 2; i++) {
        check_valid(h, a, i);
        assert_string_equal(h->res[a].text[i], "{\"q0\"}");
    }
    assert_int_equal(h->n_steps, 0); /* nothing to compute: every sample was forced whole */
    h_free(h);
}

/* max_new_tokens, stop strings inside forced text, n samples at temperature
 * 1 with a pool small enough to retract. */
static void test_limits_stops_samples(void **state)
{
    (void)state;
    H *h = h_new(26, 2, true);
    uint64_t a = submit(h, 11, 4, 6, 1, 0.0f, NULL);
    uint64_t b = submit(h, 12, 4, MAX_OUT, 1, 0.0f, "\"age\"");
    run_all(h);
    assert_int_equal(h->res[a].finish[0], SGL_FINISH_LENGTH);
    assert_true(h->res[a].n_list[0] - 4 <= 6);
    assert_string_equal(h->res[a].streamed[0], h->res[a].text[0]);
    assert_int_equal(h->res[b].finish[0], SGL_FINISH_STOP);
    assert_string_equal(h->res[b].matched_stop[0], "\"age\"");
    const char *t = h->res[b].text[0];
    assert_int_equal(strncmp(t, "{\"name\": \"", 10), 0);
    assert_int_equal(strcmp(t + strlen(t) - 3, "\", "), 0);
    assert_string_equal(h->res[b].streamed[0], t);
    uint64_t ids[6];
    for (int k = 0; k < 6; k++)
        ids[k] = submit(h, 30 + (uint32_t)k, 12, MAX_OUT, 3, 1.0f, NULL);
    run_all(h);
    SglEngineStats st;
    sched_stats(h->s, &st);
    assert_true(st.retractions > 0);
    for (int k = 0; k < 6; k++)
        for (int32_t i = 0; i < 3; i++)
            check_valid(h, ids[k], i);
    h_free(h);
}

/* A state no token can continue ends the request with a clear error. */
static void test_unsatisfiable_state(void **state)
{
    (void)state;
    for (int jump = 0; jump < 2; jump++) {
        H *h = h_new(128, 1, jump);
        /* "q" alone is no token ("q0" is, but '0' may not follow): after the
         * forced "{\"" nothing fits */
        sgl_dfa_free(h->dfa);
        FsmErr fe;
        assert_int_equal(regex_compile("\\{\"q1", 5, NULL, &h->dfa, NULL, &fe), SGL_OK);
        uint64_t a = submit(h, 5, 4, MAX_OUT, 1, 1.0f, NULL);
        run_all(h);
        assert_int_equal(h->res[a].finish[0], SGL_FINISH_ERROR);
        assert_non_null(strstr(h->res[a].error[0], "constraint"));
        assert_string_equal(h->res[a].streamed[0], h->res[a].text[0]);
        /* a hook whose mask runs empty after two tokens */
        sgl_dfa_free(h->dfa);
        assert_int_equal(regex_compile(RE, strlen(RE), NULL, &h->dfa, NULL, &fe), SGL_OK);
        h->con[h->next_id].empty_after = 2;
        uint64_t b = submit(h, 6, 4, MAX_OUT, 2, 0.0f, NULL);
        run_all(h);
        for (int32_t i = 0; i < 2; i++) {
            assert_int_equal(h->res[b].finish[i], SGL_FINISH_ERROR);
            assert_non_null(strstr(h->res[b].error[i], "no token"));
        }
        assert_int_equal(h->con[b].released, 1);
        h_free(h);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greedy_jump_vs_token_by_token),
        cmocka_unit_test(test_start_prefix_one_extend),
        cmocka_unit_test(test_fully_forced),
        cmocka_unit_test(test_limits_stops_samples),
        cmocka_unit_test(test_unsatisfiable_state),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

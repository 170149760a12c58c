/* test_tokmask.c -- token masks over real vocabularies, checked by brute force.
 *
 * With the stories260K (SentencePiece, byte fallback) and SmolLM2 (49k
 * byte-level BPE) tokenizers from $SGL_SHARED_DIR (skipped with exit 77 when
 * absent), for regex and JSON-schema constraints:
 *  - every DFA state's mask equals a token-by-token brute-force walk (EOS
 *    exactly in accepting states, special tokens never), first from the trie
 *    walk and then from the cache (counted);
 *  - forced strings are exactly the singular paths, and every allowed token
 *    agrees with the forced text;
 *  - random constrained generations (uniform among allowed tokens, sometimes
 *    taking the jump-forward text at once) always keep the text a live
 *    prefix, decode to that text, and end accepted;
 *  - the registry shares one TokFsm per (DFA, vocab), and concurrent fills
 *    from several threads give the brute-force masks.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "fsm_walk.h"
#include "ir/fsm/jsonschema.h"
#include "ir/fsm/regex.h"
#include "runtime/tokenizer.h"
#include "runtime/tokmask.h"

static SglTokenizer *g_tok[2];
static const char *const TOK_DIRS[2] = {"stories260K-hf", "smollm2-135m-tokenizer"};

static const char *const REGEXES[] = {
    "-?\\d+(\\.\\d+)?",
    "(yes|no|maybe)",
    "[a-z ]{1,20}\\.",
    "\"[^\"]{0,8}\"",
    "The (cat|dog) sat on the (mat|log)\\.",
    "é+€?[😀-😃]{1,2}",
};

static const char *const SCHEMAS[] = {
    "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\",\"maxLength\":10},"
    "\"age\":{\"type\":\"integer\"},\"tags\":{\"type\":\"array\",\"items\":{\"enum\":[\"a\",\"bc\"]},"
    "\"maxItems\":3},\"pet\":{\"type\":\"object\",\"properties\":{\"kind\":{\"enum\":[\"cat\",\"dog\"]},"
    "\"ok\":{\"type\":\"boolean\"}},\"required\":[\"kind\"]}},\"required\":[\"name\",\"age\",\"pet\"]}",
};

/* DFA number i: the regexes, then the schemas. */
static SglDfa *make_dfa(size_t i)
{
    FsmErr err;
    SglDfa *d = NULL;
    size_t nr = sizeof REGEXES / sizeof *REGEXES;
    if (i < nr) {
        assert_int_equal(regex_compile(REGEXES[i], strlen(REGEXES[i]), NULL, &d, NULL, &err), SGL_OK);
    } else {
        json_error_t jerr;
        json_t *s = json_loads(SCHEMAS[i - nr], 0, &jerr);
        assert_non_null(s);
        assert_int_equal(jsonschema_compile(s, NULL, NULL, &d, &err), SGL_OK);
        json_decref(s);
    }
    return d;
}

static size_t n_dfas(void)
{
    return sizeof REGEXES / sizeof *REGEXES + sizeof SCHEMAS / sizeof *SCHEMAS;
}

/* Brute force: token by token, from the tokenizer itself (not the vocab). */
static void brute_mask(const SglDfa *d, const SglTokenizer *t, int32_t s, uint32_t *mask)
{
    int32_t n = sgl_tokenizer_vocab_size(t), eos = sgl_tokenizer_eos(t);
    memset(mask, 0, (size_t)(n + 31) / 32 * 4);
    for (int32_t id = 0; id < n; id++) {
        bool ok;
        if (id == eos) {
            ok = d->accept[s];
        } else if (sgl_tokenizer_is_special(t, id)) {
            ok = false;
        } else {
            size_t len;
            const char *b = sgl_tokenizer_token_bytes(t, id, &len);
            ok = len > 0 && sgl_dfa_walk(d, s, b, len) >= 0;
        }
        if (ok)
            mask[id >> 5] |= 1u << (id & 31);
    }
}

static int live_bytes(const SglDfa *d, int32_t s, int *only)
{
    int n = 0;
    for (int b = 0; b < 256; b++)
        if (sgl_dfa_step(d, s, (uint8_t)b) >= 0)
            n++, *only = b;
    return n;
}

static void test_masks_equal_brute_force(void **state)
{
    (void)state;
    for (int ti = 0; ti < 2; ti++) {
        if (!g_tok[ti])
            continue;
        const SglTokenizer *t = g_tok[ti];
        TokVocab *v;
        SglErr err;
        assert_int_equal(tokvocab_new(t, &v, &err), SGL_OK);
        int32_t nw = (sgl_tokenizer_vocab_size(t) + 31) / 32;
        uint32_t *got = malloc((size_t)nw * 4), *want = malloc((size_t)nw * 4);
        assert_non_null(got);
        assert_non_null(want);
        int64_t n_states = 0, n_allowed = 0;
        for (size_t di = 0; di < n_dfas(); di++) {
            SglDfa *d = make_dfa(di);
            TokFsm *f;
            assert_int_equal(tokfsm_new(d, v, &f, &err), SGL_OK);
            assert_int_equal(tokfsm_n_words(f), nw);
            for (int32_t s = 0; s < d->n_states; s++) {
                TokCursor c = {f, s, false};
                brute_mask(d, t, s, want);
                assert_false(tokfsm_cached(f, s));
                tokmask_fill(&c, got);
                assert_true(tokfsm_cached(f, s));
                for (int32_t w = 0; w < nw; w++)
                    if (got[w] != want[w])
                        fprintf(stderr, "%s dfa %zu state %d word %d: %08x vs %08x\n",
                                TOK_DIRS[ti], di, s, w, got[w], want[w]);
                assert_memory_equal(got, want, (size_t)nw * 4);
                memset(got, 0xA5, (size_t)nw * 4);
                tokmask_fill(&c, got); /* from the cache now */
                assert_memory_equal(got, want, (size_t)nw * 4);
                int32_t eos = sgl_tokenizer_eos(t);
                if (eos >= 0)
                    assert_int_equal((got[eos >> 5] >> (eos & 31)) & 1, d->accept[s]);
                for (int32_t w = 0; w < nw; w++)
                    n_allowed += __builtin_popcount(got[w]);
                n_states++;

                /* forced string of s: exactly the singular path */
                const char *fb;
                size_t fl;
                bool forced = tokmask_forced(&c, &fb, &fl);
                int32_t u = s;
                size_t i = 0;
                for (;;) {
                    int only = -1;
                    if (d->accept[u] || live_bytes(d, u, &only) != 1)
                        break;
                    assert_true(i < fl);
                    assert_int_equal((uint8_t)fb[i], only);
                    u = sgl_dfa_step(d, u, (uint8_t)only);
                    i++;
                }
                assert_int_equal(i, fl);
                assert_int_equal(forced, fl > 0);
                char fbuf[512];
                size_t dl = sgl_dfa_forced(d, s, fbuf, sizeof fbuf);
                assert_int_equal(dl, fl);
                assert_memory_equal(fbuf, fb, fl < sizeof fbuf ? fl : sizeof fbuf);
            }
            uint64_t hits, walks;
            tokfsm_counters(f, &hits, &walks);
            assert_int_equal(walks, (uint64_t)d->n_states); /* each state walked once */
            assert_int_equal(hits, (uint64_t)d->n_states);
            tokfsm_free(f);
            sgl_dfa_free(d);
        }
        printf("%s: %lld states checked against brute force, %lld allowed (state, token) pairs\n",
               TOK_DIRS[ti], (long long)n_states, (long long)n_allowed);
        free(got);
        free(want);
        tokvocab_free(v);
    }
}

static void test_random_constrained_generations(void **state)
{
    (void)state;
    for (int ti = 0; ti < 2; ti++) {
        if (!g_tok[ti])
            continue;
        const SglTokenizer *t = g_tok[ti];
        TokRegistry *reg = tokreg_new();
        assert_non_null(reg);
        int32_t n = sgl_tokenizer_vocab_size(t), eos = sgl_tokenizer_eos(t), nw = (n + 31) / 32;
        uint32_t *mask = malloc((size_t)nw * 4);
        int32_t *allowed = malloc((size_t)n * sizeof *allowed), *ids = malloc(4096 * sizeof *ids);
        assert_non_null(mask);
        assert_non_null(allowed);
        assert_non_null(ids);
        uint64_t rng = 1234 + (uint64_t)ti;
        int n_gen = 0, n_jumps = 0;
        for (size_t di = 0; di < n_dfas(); di++) {
            SglDfa *d = make_dfa(di);
            int32_t *dist = dfa_dist_to_accept(d);
            TokFsm *f;
            SglErr err;
            assert_int_equal(tokreg_lock(reg, d, t, &f, &err), SGL_OK);
            for (int g = 0; g < 25; g++, n_gen++) {
                TokCursor c;
                tokmask_init(&c, f);
                char text[8192];
                size_t tl = 0;
                int32_t n_ids = 0;
                bool ended = false, jumped = false;
                for (int step = 0; step < 400 && !ended; step++) {
                    const char *fb;
                    size_t fl;
                    if (tokmask_forced(&c, &fb, &fl) && rng_below(&rng, 2)) {
                        /* jump-forward: every allowed token agrees with fb */
                        tokmask_fill(&c, mask);
                        for (int32_t id = 0; id < n; id++) {
                            if (!((mask[id >> 5] >> (id & 31)) & 1))
                                continue;
                            size_t len;
                            const char *b = sgl_tokenizer_token_bytes(t, id, &len);
                            size_t m = len < fl ? len : fl;
                            assert_memory_equal(b, fb, m);
                        }
                        assert_int_equal(tokmask_advance_bytes(&c, fb, fl), SGL_OK);
                        memcpy(text + tl, fb, fl);
                        tl += fl;
                        n_jumps++;
                        jumped = true;
                        continue;
                    }
                    tokmask_fill(&c, mask);
                    int32_t na = 0;
                    for (int32_t w = 0; w < nw; w++)
                        for (uint32_t bits = mask[w]; bits; bits &= bits - 1)
                            allowed[na++] = w * 32 + __builtin_ctz(bits);
                    if (na == 0) {
                        assert_true(eos < 0 && tokmask_is_accepting(&c));
                        break;
                    }
                    int32_t tok = allowed[rng_below(&rng, (uint32_t)na)];
                    if (step > 60) {
                        /* steer home: EOS when allowed, else of up to 256 random
                         * allowed tokens the one that gets closest to acceptance */
                        int32_t best = INT32_MAX, n_try = na < 256 ? na : 256;
                        if (eos >= 0 && ((mask[eos >> 5] >> (eos & 31)) & 1))
                            best = -1, tok = eos;
                        for (int32_t k = 0; k < n_try && best > -1; k++) {
                            int32_t id = na <= 256 ? allowed[k]
                                                   : allowed[rng_below(&rng, (uint32_t)na)];
                            if (id == eos)
                                continue;
                            size_t len;
                            const char *b = sgl_tokenizer_token_bytes(t, id, &len);
                            int32_t dd = dist[sgl_dfa_walk(d, c.state, b, len)];
                            if (dd < best)
                                best = dd, tok = id;
                        }
                    }
                    if (eos < 0 && tokmask_is_accepting(&c) && rng_below(&rng, 4) == 0)
                        break;
                    assert_int_equal(tokmask_advance(&c, tok), SGL_OK);
                    if (tok == eos) {
                        ended = true;
                        assert_true(c.done);
                        break;
                    }
                    size_t len;
                    const char *b = sgl_tokenizer_token_bytes(t, tok, &len);
                    assert_true(tl + len < sizeof text);
                    memcpy(text + tl, b, len);
                    tl += len;
                    ids[n_ids++] = tok;
                    /* the text so far is a live prefix and the cursor agrees */
                    assert_int_equal(sgl_dfa_walk(d, d->start, text, tl), c.state);
                }
                assert_true(sgl_dfa_accepts(d, text, tl));
                /* a token outside the mask is refused and changes nothing */
                TokCursor before = c;
                if (!c.done) {
                    tokmask_fill(&c, mask);
                    for (int32_t id = 0; id < n; id++)
                        if (!((mask[id >> 5] >> (id & 31)) & 1)) {
                            assert_int_equal(tokmask_advance(&c, id), SGL_E_INVAL);
                            break;
                        }
                    assert_memory_equal(&c, &before, sizeof c);
                }
                /* the tokens decode to the text (no jump-forward text mixed in) */
                if (!jumped) {
                    size_t dl;
                    char *dec = sgl_tokenizer_decode(t, ids, n_ids, true, &dl);
                    assert_non_null(dec);
                    /* SentencePiece decoding drops the leading space of the text */
                    bool same = (dl == tl && memcmp(dec, text, tl) == 0) ||
                                (tl > 0 && text[0] == ' ' && dl + 1 == tl &&
                                 memcmp(dec, text + 1, dl) == 0);
                    assert_true(same);
                    free(dec);
                }
            }
            tokreg_unlock(reg, f);
            free(dist);
            sgl_dfa_free(d);
        }
        printf("%s: %d constrained generations, %d jump-forward appends\n", TOK_DIRS[ti], n_gen,
               n_jumps);
        assert_int_equal(tokreg_n_fsms(reg), (int32_t)n_dfas());
        tokreg_free(reg);
        free(mask);
        free(allowed);
        free(ids);
    }
}

static void test_registry_shares_and_trims(void **state)
{
    (void)state;
    /* stories260K first: reloading it below is cheap */
    const SglTokenizer *t = g_tok[0] ? g_tok[0] : g_tok[1];
    TokRegistry *reg = tokreg_new();
    SglErr err;
    SglDfa *a = make_dfa(0), *a2 = make_dfa(0), *b = make_dfa(1);
    TokFsm *fa, *fa2, *fb;
    assert_int_equal(tokreg_lock(reg, a, t, &fa, &err), SGL_OK);
    assert_int_equal(tokreg_lock(reg, a2, t, &fa2, &err), SGL_OK); /* equal DFA, other object */
    assert_ptr_equal(fa, fa2);
    assert_int_equal(tokreg_lock(reg, b, t, &fb, &err), SGL_OK);
    assert_ptr_not_equal(fa, fb);
    assert_int_equal(tokreg_n_fsms(reg), 2);
    /* the same tokenizer loaded again shares the vocab and the TokFsm */
    char path[1024];
    const char *shared = getenv("SGL_SHARED_DIR");
    snprintf(path, sizeof path, "%s/models/%s", shared, t == g_tok[0] ? TOK_DIRS[0] : TOK_DIRS[1]);
    SglTokenizer *t2;
    assert_int_equal(sgl_tokenizer_load(path, &t2, &err), SGL_OK);
    TokFsm *fa3;
    assert_int_equal(tokreg_lock(reg, a, t2, &fa3, &err), SGL_OK);
    assert_ptr_equal(fa, fa3);
    sgl_tokenizer_free(t2); /* the registry copied what it needs */
    tokreg_unlock(reg, fa3);
    tokreg_unlock(reg, fa2);
    tokreg_unlock(reg, fb);
    tokreg_trim(reg);
    assert_int_equal(tokreg_n_fsms(reg), 1); /* fa is still locked once */
    TokCursor c;
    tokmask_init(&c, fa);
    assert_int_equal(tokmask_advance_bytes(&c, "-12", 3), SGL_OK);
    assert_true(tokmask_is_accepting(&c));
    assert_int_equal(tokmask_advance_bytes(&c, "x", 1), SGL_E_INVAL);
    tokreg_unlock(reg, fa);
    tokreg_trim(reg);
    assert_int_equal(tokreg_n_fsms(reg), 0);
    tokreg_free(reg);
    sgl_dfa_free(a);
    sgl_dfa_free(a2);
    sgl_dfa_free(b);
}

typedef struct {
    const TokFsm *f;
    const SglDfa *d;
    const SglTokenizer *t;
    uint64_t seed;
    int bad;
} ThreadArg;

static void *fill_thread(void *p)
{
    ThreadArg *a = p;
    int32_t nw = tokfsm_n_words(a->f);
    uint32_t *got = malloc((size_t)nw * 4), *want = malloc((size_t)nw * 4);
    for (int i = 0; i < 200 && got && want; i++) {
        int32_t s = (int32_t)rng_below(&a->seed, (uint32_t)a->d->n_states);
        TokCursor c = {a->f, s, false};
        tokmask_fill(&c, got);
        brute_mask(a->d, a->t, s, want);
        a->bad += memcmp(got, want, (size_t)nw * 4) != 0;
    }
    free(got);
    free(want);
    return NULL;
}

static void test_concurrent_fills(void **state)
{
    (void)state;
    const SglTokenizer *t = g_tok[0] ? g_tok[0] : g_tok[1];
    SglDfa *d = make_dfa(n_dfas() - 1);
    TokVocab *v;
    TokFsm *f;
    SglErr err;
    assert_int_equal(tokvocab_new(t, &v, &err), SGL_OK);
    assert_int_equal(tokfsm_new(d, v, &f, &err), SGL_OK);
    pthread_t th[4];
    ThreadArg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (ThreadArg){f, d, t, 100 + (uint64_t)i, 0};
        assert_int_equal(pthread_create(&th[i], NULL, fill_thread, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].bad, 0);
    }
    tokfsm_free(f);
    tokvocab_free(v);
    sgl_dfa_free(d);
}

static void test_engine_constraint_hooks(void **state)
{
    (void)state;
    for (int ti = 0; ti < 2; ti++) {
        if (!g_tok[ti])
            continue;
        const SglTokenizer *t = g_tok[ti];
        int32_t n = sgl_tokenizer_vocab_size(t), nw = (n + 31) / 32;
        TokRegistry *reg = tokreg_new();
        SglErr err;
        SglDfa *d = make_dfa(1); /* (yes|no|maybe) */
        SglConstraint con;
        assert_int_equal(tokmask_constraint_new(reg, d, t, 2, &con, &err), SGL_OK);
        uint32_t *m = calloc((size_t)nw + 4, 4), *want = calloc((size_t)nw + 4, 4);
        assert_non_null(m);
        assert_non_null(want);
        /* sample 0 spells a choice with the longest allowed tokens */
        char text[64];
        size_t tl = 0;
        bool complete = false;
        for (int step = 0; step < 10 && !complete; step++) {
            memset(m, 0, ((size_t)nw + 4) * 4);
            assert_true(con.mask(con.ctx, 0, m, n));
            brute_mask(d, t, tokmask_constraint_cursor(con.ctx, 0)->state, want);
            assert_memory_equal(m, want, (size_t)nw * 4);
            int32_t best = -1;
            size_t best_len = 0;
            for (int32_t id = 0; id < n; id++) {
                size_t len;
                sgl_tokenizer_token_bytes(t, id, &len);
                if (((m[id >> 5] >> (id & 31)) & 1) && id != sgl_tokenizer_eos(t) && len > best_len)
                    best = id, best_len = len;
            }
            assert_true(best >= 0);
            const char *b = sgl_tokenizer_token_bytes(t, best, &best_len);
            memcpy(text + tl, b, best_len);
            tl += best_len;
            complete = con.accept(con.ctx, 0, best);
        }
        assert_true(complete); /* "yes", "no" and "maybe" have nothing after them */
        assert_true(sgl_dfa_accepts(d, text, tl));
        /* sample 1 is independent; a smaller engine vocab clips the mask */
        memset(m, 0, ((size_t)nw + 4) * 4);
        assert_true(con.mask(con.ctx, 1, m, n - 3));
        brute_mask(d, t, d->start, want);
        for (int32_t id = n - 3; id < n; id++)
            want[id >> 5] &= ~(1u << (id & 31));
        assert_memory_equal(m, want, (size_t)nw * 4);
        /* a token outside the mask stops the sample */
        for (int32_t id = 0; id < n; id++)
            if (!((m[id >> 5] >> (id & 31)) & 1) && id < n - 3) {
                assert_true(con.accept(con.ctx, 1, id));
                break;
            }
        con.release(con.ctx);
        assert_int_equal(tokreg_n_fsms(reg), 1);
        tokreg_trim(reg);
        assert_int_equal(tokreg_n_fsms(reg), 0); /* release unlocked it */
        tokreg_free(reg);
        sgl_dfa_free(d);
        free(m);
        free(want);
    }
}

int main(void)
{
    const char *shared = getenv("SGL_SHARED_DIR");
    int found = 0;
    for (int i = 0; i < 2; i++) {
        char path[1024];
        SglErr err;
        snprintf(path, sizeof path, "%s/models/%s", shared ? shared : "../shared", TOK_DIRS[i]);
        if (sgl_tokenizer_load(path, &g_tok[i], &err) == SGL_OK) {
            found++;
        } else {
            g_tok[i] = NULL;
            printf("note: %s not loaded (%s); testing without it\n", TOK_DIRS[i], err.msg);
        }
    }
    if (found == 0) {
        printf("skipped: no tokenizer under %s/models (stories260K-hf, smollm2-135m-tokenizer)\n",
               shared ? shared : "../shared");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_masks_equal_brute_force),
        cmocka_unit_test(test_random_constrained_generations),
        cmocka_unit_test(test_registry_shares_and_trims),
        cmocka_unit_test(test_concurrent_fills),
        cmocka_unit_test(test_engine_constraint_hooks),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    for (int i = 0; i < 2; i++)
        sgl_tokenizer_free(g_tok[i]);
    return rc;
}

/* test_select.c -- `select` scoring (backend/select.h).
 *
 * 1. select_score on hand-made logprobs (the three methods, padding and
 *    ties of greedy_token).
 * 2. select_run through the engine on stories260K agrees with a brute-force
 *    computation: the CPU runner's full forward over prompt+choice, log-softmax
 *    of every row, then each method's formula written out again here.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "backend/select.h"
#include "runtime/runner.h"

static void test_score_pure(void **st)
{
    (void)st;
    /* organ / organism / antidisestablishmentarianism, as in SGLang's tests */
    const float a[] = {-0.1f}, b[] = {-0.1f, -0.3f}, c[] = {-0.4f, -0.25f, -0.1f};
    const float ua[] = {NAN}, ub[] = {NAN, -2.0f}, uc[] = {NAN, -0.5f, -3.0f};
    SelTokens t[3] = {{a, ua, 1}, {b, ub, 2}, {c, uc, 3}};
    double s[3];
    assert_int_equal(select_score(IR_SEL_TOKEN_LENGTH_NORMALIZED, t, 3, s), 0);
    assert_true(fabs(s[1] + 0.2) < 1e-6);
    /* greedy: column 0 ties a and b (-0.1); column 1: a padded with its mean
     * -0.1 beats b's -0.3 */
    assert_int_equal(select_score(IR_SEL_GREEDY_TOKEN, t, 3, s), 0);
    /* unconditional: a: -0.1 - 0; b: (-0.1 + (-0.3 + 2)) / 2 = 0.8; c: (-0.4 + 0.25 + 2.9) / 3 */
    assert_int_equal(select_score(IR_SEL_UNCONDITIONAL_LIKELIHOOD_NORMALIZED, t, 3, s), 2);
    assert_true(fabs(s[1] - 0.8) < 1e-6);
    assert_true(fabs(s[2] - (-0.4 + 0.25 + 2.9) / 3) < 1e-6);
    /* greedy where the second column decides against the mean */
    const float d[] = {-1.0f, -0.1f}, e[] = {-1.0f, -0.5f};
    SelTokens t2[2] = {{e, NULL, 2}, {d, NULL, 2}};
    assert_int_equal(select_score(IR_SEL_GREEDY_TOKEN, t2, 2, s), 1);
    /* ties go to the first choice; an empty choice scores -inf */
    SelTokens t3[3] = {{a, ua, 0}, {a, ua, 1}, {a, ua, 1}};
    assert_int_equal(select_score(IR_SEL_TOKEN_LENGTH_NORMALIZED, t3, 3, s), 1);
    assert_true(isinf(s[0]) && s[0] < 0);
    assert_int_equal(select_score(IR_SEL_GREEDY_TOKEN, t3, 3, s), 1);
    assert_int_equal(select_heal_boundary((int32_t[]){1, 2, 3}, 3, (int32_t[]){1, 2, 4, 5}, 4), 2);
}

typedef struct {
    SglEngine *e;
    SglModel *m;
    SglRunner *r;
    float *logits;            /* (512, vocab) */
    int32_t V;
} Ctx;

/* Log-probs lp[j] (j >= 1) of ids[j] after ids[0..j), by one full forward. */
static void brute_logprobs(Ctx *c, const int32_t *ids, int32_t n, float *lp)
{
    int32_t pos[512], rows[512], slots[512];
    for (int32_t i = 0; i < n; i++)
        pos[i] = rows[i] = slots[i] = i;
    int32_t seq_off[2] = {0, n}, kv_len[1] = {n}, slot_off[2] = {0, n};
    SglBatch b = {1, n, ids, pos, seq_off, kv_len, slot_off, slots, n, rows};
    SglErr err;
    assert_int_equal(sgl_runner_forward(c->r, &b, c->logits, &err), SGL_OK);
    lp[0] = NAN;
    for (int32_t j = 1; j < n; j++)
        sgl_logprobs_of(c->logits + (size_t)(j - 1) * (size_t)c->V, c->V, &ids[j], 1, &lp[j]);
}

static int32_t encode(Ctx *c, const char *text, int32_t **ids)
{
    int32_t n;
    assert_int_equal(sgl_engine_encode(c->e, text, strlen(text), true, ids, &n), SGL_OK);
    return n;
}

static void check_case(Ctx *c, const char *prompt, const char *const *choices, int32_t nc)
{
    int32_t *pids;
    int32_t np = encode(c, prompt, &pids);
    double tln[8], unc[8], mean_lp[8];
    float lps[8][256];
    int32_t nlp[8];
    for (int32_t i = 0; i < nc; i++) {
        char full[1024];
        snprintf(full, sizeof full, "%s%s", prompt, choices[i]);
        int32_t *f;
        int32_t nf = encode(c, full, &f);
        int32_t k = 0;
        while (k < np && k < nf && pids[k] == f[k])
            k++;
        float *all = malloc((size_t)nf * sizeof *all);
        brute_logprobs(c, f, nf, all);
        nlp[i] = nf - k;
        double sum = 0, usum = 0;
        float *u = malloc((size_t)nlp[i] * sizeof *u);
        brute_logprobs(c, f + k, nlp[i], u);
        for (int32_t j = 0; j < nlp[i]; j++) {
            lps[i][j] = all[k + j];
            sum += all[k + j];
            usum += all[k + j] - (j == 0 ? 0.0 : u[j]);
        }
        tln[i] = mean_lp[i] = sum / nlp[i];
        unc[i] = usum / nlp[i];
        free(u);
        free(all);
        free(f);
    }
    free(pids);
    /* brute-force winners */
    int32_t want_tln = 0, want_unc = 0;
    for (int32_t i = 1; i < nc; i++) {
        if (tln[i] > tln[want_tln])
            want_tln = i;
        if (unc[i] > unc[want_unc])
            want_unc = i;
    }
    int32_t max_n = 0;
    bool alive[8];
    for (int32_t i = 0; i < nc; i++) {
        max_n = nlp[i] > max_n ? nlp[i] : max_n;
        alive[i] = true;
    }
    for (int32_t j = 0, left = nc; j < max_n && left > 1; j++) {
        double top = -INFINITY;
        for (int32_t i = 0; i < nc; i++)
            if (alive[i])
                top = fmax(top, j < nlp[i] ? lps[i][j] : mean_lp[i]);
        left = 0;
        for (int32_t i = 0; i < nc; i++)
            if (alive[i])
                left += alive[i] = (j < nlp[i] ? lps[i][j] : mean_lp[i]) == top;
    }
    int32_t want_greedy = 0;
    while (!alive[want_greedy])
        want_greedy++;
    size_t lens[8];
    for (int32_t i = 0; i < nc; i++)
        lens[i] = strlen(choices[i]);
    IrSelectMethod ms[3] = {IR_SEL_TOKEN_LENGTH_NORMALIZED, IR_SEL_GREEDY_TOKEN,
                            IR_SEL_UNCONDITIONAL_LIKELIHOOD_NORMALIZED};
    int32_t want[3] = {want_tln, want_greedy, want_unc};
    double want_score[3] = {tln[want_tln], mean_lp[want_greedy], unc[want_unc]};
    for (int k = 0; k < 3; k++) {
        SelectResult sr;
        char msg[256];
        assert_true(select_run(c->e, NULL, prompt, strlen(prompt), choices, lens, nc, ms[k], &sr, msg,
                               sizeof msg));
        if (sr.best != want[k])
            printf("method %d prompt '%s': got %d want %d\n", k, prompt, sr.best, want[k]);
        assert_int_equal(sr.best, want[k]);
        /* engine batches vs one full forward: fp32 sums in another order */
        assert_true(fabs(sr.score - want_score[k]) < 1e-4 + 1e-4 * fabs(want_score[k]));
        assert_int_equal(sr.requests, k == 2 ? 1 + 2 * nc : 1 + nc);
    }
}

static void test_against_brute_force(void **st)
{
    (void)st;
    const char *shared = getenv("SGL_SHARED_DIR");
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/models/stories260K-hf", shared ? shared : "");
    FILE *probe = fopen(strcat(strcpy((char[1100]){0}, dir), "/config.json"), "r");
    if (!shared || !probe) {
        printf("skipped: no ../shared/models/stories260K-hf\n");
        skip();
    }
    fclose(probe);
    Ctx c = {0};
    SglErr err;
    SglEngineOpts eo;
    sgl_engine_opts_default(&eo);
    eo.model_dir = dir;
    assert_int_equal(sgl_engine_open(&eo, &c.e, &err), SGL_OK);
    assert_int_equal(sgl_model_load(dir, SGL_LOAD_AUTO, &c.m, &err), SGL_OK);
    SglRunnerOpts ro = {.n_slots = 512, .max_batch_tokens = 512, .max_seqs = 1, .n_threads = 1};
    assert_int_equal(sgl_runner_cpu_new(c.m, &ro, &c.r, &err), SGL_OK);
    c.V = c.m->cfg.vocab_size;
    c.logits = malloc((size_t)512 * (size_t)c.V * sizeof(float));
    const char *c1[] = {"and played with her ball.", "and the sky.", "happy", "the dog ran away."};
    check_case(&c, "Lily went to the park ", c1, 4);          /* trailing space: healed */
    check_case(&c, "Lily went to the park", c1, 4);
    const char *c2[] = {" cat", " dog", " big red ball", " tree"};
    check_case(&c, "Once upon a time, there was a little", c2, 4);
    const char *c3[] = {"yes", "no"};
    check_case(&c, "Is the sun hot? Answer:", c3, 2);
    /* the prefix is prefilled once: a repeated select hits the cache */
    SelectResult sr;
    char msg[256];
    size_t lens[2] = {3, 2};
    assert_true(select_run(c.e, NULL, "Is the sun hot? Answer:", 23, c3, lens, 2,
                           IR_SEL_TOKEN_LENGTH_NORMALIZED, &sr, msg, sizeof msg));
    assert_true(sr.cached_tokens > 0);
    free(c.logits);
    sgl_runner_free(c.r);
    sgl_model_free(c.m);
    sgl_engine_close(c.e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_score_pure),
        cmocka_unit_test(test_against_brute_force),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_fsm_e2e.c -- constrained generation end to end: 500 generations.
 *
 * Real models through the engine (scheduler, token masks, jump-forward):
 *   stories260K (SentencePiece BPE, 512 tokens): 250 generations, half
 *     with jump-forward and half without;
 *   random weights of SmolLM2-135M's shape with its real 49,152-token
 *     byte-level BPE tokenizer: 250 generations with jump-forward. To keep
 *     CI time reasonable on a CPU this model is built with 2 layers instead
 *     of 30 (config.json rewritten into a temporary directory; the vocabulary,
 *     hidden size, heads and the LM head are the real shape). Weights are
 *     random (--load-format dummy), so the outputs are as adversarial as
 *     sampling gets.
 * Every generation samples at temperature 1.0 and must finish with "stop"
 * (the constraint completed), and its text must pass an independent check:
 * regexes with PCRE2 in full-match mode; JSON schemas with jansson plus the
 * small validator below (written from the JSON Schema spec, not from
 * ir/fsm); typed records additionally with the executor's val_from_json into
 * the typed value. Strings in the schemas and typed records carry maxLength
 * (and lists maxItems) so that random weights finish within max_tokens;
 * generation length is otherwise whatever the model samples.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "backend/value.h"
#include "ir/fsm/jsonschema.h"
#include "ir/fsm/regex.h"
#include "ir/fsm/typed.h"
#include "runtime/engine.h"
#include "runtime/tokmask.h"

#define MAX_TOKENS 200
#define CHUNK 50

/* ---- the constraints ------------------------------------------------------ */

static const char *const regexes[] = {
    "[a-z]{1,8}@[a-z]{1,6}\\.(com|org)",
    "\\+[0-9]{1,3} [0-9]{3}-[0-9]{4}",
    "(yes|no|maybe)",
    "[0-9]{4}-[0-9]{2}-[0-9]{2}",
    "(red|green|blue)( (car|bike)){0,2}",
    "[A-Z][a-z]{0,6}( [A-Z][a-z]{0,6}){0,2}",
    "-?(0|[1-9][0-9]{0,5})(\\.[0-9]{1,3})?",
    "\\{\"id\": [0-9]{1,4}\\}",
    "(\xc3\xa9|\xc3\xbc|\xe6\x97\xa5\xe6\x9c\xac){1,3}",
    "[^\"\\\\\\n]{1,5}!",
};

static const char *const schemas[] = {
    "{\"type\": \"object\", \"properties\": {\"name\": {\"type\": \"string\", \"maxLength\": 8},"
    " \"age\": {\"type\": \"integer\"}, \"ok\": {\"type\": \"boolean\"}},"
    " \"required\": [\"name\", \"age\", \"ok\"]}",
    /* nested object with an array */
    "{\"type\": \"object\", \"properties\": {\"person\": {\"type\": \"object\", \"properties\":"
    " {\"name\": {\"type\": \"string\", \"maxLength\": 6}, \"tags\": {\"type\": \"array\","
    " \"items\": {\"type\": \"string\", \"maxLength\": 5}, \"maxItems\": 3}},"
    " \"required\": [\"name\", \"tags\"]}, \"score\": {\"type\": \"number\"}},"
    " \"required\": [\"person\", \"score\"]}",
    /* enums and const */
    "{\"type\": \"object\", \"properties\": {\"color\": {\"enum\": [\"red\", \"green\", \"blue\"]},"
    " \"size\": {\"enum\": [1, 2, 3]}, \"flag\": {\"const\": true}},"
    " \"required\": [\"color\", \"size\", \"flag\"]}",
    /* array of objects */
    "{\"type\": \"array\", \"items\": {\"type\": \"object\", \"properties\": {\"x\": {\"type\":"
    " \"integer\"}, \"y\": {\"type\": \"null\"}}, \"required\": [\"x\", \"y\"]},"
    " \"minItems\": 1, \"maxItems\": 3}",
    /* $ref and anyOf */
    "{\"$defs\": {\"pt\": {\"type\": \"object\", \"properties\": {\"k\": {\"type\": \"string\","
    " \"maxLength\": 4}}, \"required\": [\"k\"]}}, \"type\": \"object\", \"properties\":"
    " {\"a\": {\"$ref\": \"#/$defs/pt\"}, \"b\": {\"anyOf\": [{\"type\": \"integer\"},"
    " {\"type\": \"string\", \"maxLength\": 3}]}}, \"required\": [\"a\", \"b\"]}",
    /* an optional property and a pattern */
    "{\"type\": \"object\", \"properties\": {\"code\": {\"type\": \"string\", \"pattern\":"
    " \"^[A-Z]{2}[0-9]{1,3}$\"}, \"note\": {\"type\": \"string\", \"minLength\": 1,"
    " \"maxLength\": 4}}, \"required\": [\"code\"], \"additionalProperties\": false}",
};

/* typed records: {name: str, age: int, score: float, ok: bool};
 * {tags: list[str], pts: list[int]}; {inner: {a: int, b: list[bool]}, c: str} */
static const TypedType ty_int = {TYPED_INT, NULL, 0, NULL, NULL};
static const TypedType ty_float = {TYPED_FLOAT, NULL, 0, NULL, NULL};
static const TypedType ty_bool = {TYPED_BOOL, NULL, 0, NULL, NULL};
static const TypedType ty_str = {TYPED_STR, NULL, 0, NULL, NULL};
static const TypedType ty_lstr = {TYPED_LIST, &ty_str, 0, NULL, NULL};
static const TypedType ty_lint = {TYPED_LIST, &ty_int, 0, NULL, NULL};
static const TypedType ty_lbool = {TYPED_LIST, &ty_bool, 0, NULL, NULL};
static const char *const r1n[] = {"name", "age", "score", "ok"};
static const TypedType *const r1f[] = {&ty_str, &ty_int, &ty_float, &ty_bool};
static const TypedType ty_r1 = {TYPED_RECORD, NULL, 4, r1n, r1f};
static const char *const r2n[] = {"tags", "pts"};
static const TypedType *const r2f[] = {&ty_lstr, &ty_lint};
static const TypedType ty_r2 = {TYPED_RECORD, NULL, 2, r2n, r2f};
static const char *const r3in[] = {"a", "b"};
static const TypedType *const r3if[] = {&ty_int, &ty_lbool};
static const TypedType ty_r3i = {TYPED_RECORD, NULL, 2, r3in, r3if};
static const char *const r3n[] = {"inner", "c"};
static const TypedType *const r3f[] = {&ty_r3i, &ty_str};
static const TypedType ty_r3 = {TYPED_RECORD, NULL, 2, r3n, r3f};
static const TypedType *const typeds[] = {&ty_r1, &ty_r2, &ty_r3};

/* The executor's view of the same types (backend/value.h). */
static const ValType vt_int = {VAL_INT, NULL, NULL, 0, NULL, NULL};
static const ValType vt_float = {VAL_FLOAT, NULL, NULL, 0, NULL, NULL};
static const ValType vt_bool = {VAL_BOOL, NULL, NULL, 0, NULL, NULL};
static const ValType vt_str = {VAL_STR, NULL, NULL, 0, NULL, NULL};
static const ValType vt_lstr = {VAL_LIST, &vt_str, NULL, 0, NULL, NULL};
static const ValType vt_lint = {VAL_LIST, &vt_int, NULL, 0, NULL, NULL};
static const ValType vt_lbool = {VAL_LIST, &vt_bool, NULL, 0, NULL, NULL};
static const ValType *const v1f[] = {&vt_str, &vt_int, &vt_float, &vt_bool};
static const ValType vt_r1 = {VAL_RECORD, NULL, "R1", 4, r1n, v1f};
static const ValType *const v2f[] = {&vt_lstr, &vt_lint};
static const ValType vt_r2 = {VAL_RECORD, NULL, "R2", 2, r2n, v2f};
static const ValType *const v3if[] = {&vt_int, &vt_lbool};
static const ValType vt_r3i = {VAL_RECORD, NULL, "R3i", 2, r3in, v3if};
static const ValType *const v3f[] = {&vt_r3i, &vt_str};
static const ValType vt_r3 = {VAL_RECORD, NULL, "R3", 2, r3n, v3f};
static const ValType *const vtypes[] = {&vt_r1, &vt_r2, &vt_r3};

#define N_RE ((int)(sizeof regexes / sizeof regexes[0]))
#define N_SC ((int)(sizeof schemas / sizeof schemas[0]))
#define N_TY ((int)(sizeof typeds / sizeof typeds[0]))
#define N_CASES (N_RE + N_SC + N_TY)

/* ---- independent checks --------------------------------------------------- */

static bool pcre_match(const char *pat, const char *s, size_t len, bool full)
{
    int code;
    PCRE2_SIZE eoff;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | (full ? PCRE2_ANCHORED | PCRE2_ENDANCHORED : 0), &code,
                                   &eoff, NULL);
    assert_non_null(re);
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    int rc = pcre2_match(re, (PCRE2_SPTR)s, len, 0, 0, md, NULL);
    pcre2_match_data_free(md);
    pcre2_code_free(re);
    return rc >= 0;
}

static size_t utf8_len(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

static bool has_type(const json_t *v, const char *t)
{
    if (strcmp(t, "object") == 0) return json_is_object(v);
    if (strcmp(t, "array") == 0) return json_is_array(v);
    if (strcmp(t, "string") == 0) return json_is_string(v);
    if (strcmp(t, "integer") == 0) return json_is_integer(v);
    if (strcmp(t, "number") == 0) return json_is_number(v);
    if (strcmp(t, "boolean") == 0) return json_is_boolean(v);
    if (strcmp(t, "null") == 0) return json_is_null(v);
    return false;
}

/* JSON Schema validation of the keywords the schemas above use. */
static bool valid(const json_t *v, const json_t *sc, const json_t *root, int depth)
{
    if (depth > 32)
        return false;
    const json_t *k;
    if ((k = json_object_get(sc, "$ref"))) {
        const char *ref = json_string_value(k);
        if (strncmp(ref, "#/$defs/", 8) != 0)
            return false;
        return valid(v, json_object_get(json_object_get(root, "$defs"), ref + 8), root, depth + 1);
    }
    if ((k = json_object_get(sc, "type")) && !has_type(v, json_string_value(k)))
        return false;
    if ((k = json_object_get(sc, "const")) && !json_equal(v, k))
        return false;
    if ((k = json_object_get(sc, "enum"))) {
        bool any = false;
        size_t i;
        json_t *e;
        json_array_foreach(k, i, e)
            any |= json_equal(v, e) != 0;
        if (!any)
            return false;
    }
    if ((k = json_object_get(sc, "anyOf"))) {
        bool any = false;
        size_t i;
        json_t *e;
        json_array_foreach(k, i, e)
            any |= valid(v, e, root, depth + 1);
        if (!any)
            return false;
    }
    if (json_is_string(v)) {
        size_t n = utf8_len(json_string_value(v));
        if ((k = json_object_get(sc, "maxLength")) && n > (size_t)json_integer_value(k))
            return false;
        if ((k = json_object_get(sc, "minLength")) && n < (size_t)json_integer_value(k))
            return false;
        if ((k = json_object_get(sc, "pattern")) &&
            !pcre_match(json_string_value(k), json_string_value(v), json_string_length(v), false))
            return false;
    }
    if (json_is_array(v)) {
        if ((k = json_object_get(sc, "maxItems")) && json_array_size(v) > (size_t)json_integer_value(k))
            return false;
        if ((k = json_object_get(sc, "minItems")) && json_array_size(v) < (size_t)json_integer_value(k))
            return false;
        const json_t *it = json_object_get(sc, "items");
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e)
            if (it && !valid(e, it, root, depth + 1))
                return false;
    }
    if (json_is_object(v)) {
        const json_t *props = json_object_get(sc, "properties"), *req = json_object_get(sc, "required");
        size_t i;
        json_t *e;
        json_array_foreach(req, i, e)
            if (!json_object_get(v, json_string_value(e)))
                return false;
        const char *key;
        json_t *val;
        json_object_foreach((json_t *)v, key, val) {
            const json_t *ps = props ? json_object_get(props, key) : NULL;
            if (!ps && json_is_false(json_object_get(sc, "additionalProperties")))
                return false;
            if (ps && !valid(val, ps, root, depth + 1))
                return false;
        }
    }
    return true;
}

/* Adds maxLength to every string schema and maxItems to every array one
 * (typed records, so that random weights finish). */
static void bound_schema(json_t *sc)
{
    if (!json_is_object(sc))
        return;
    const json_t *t = json_object_get(sc, "type");
    if (t && json_is_string(t) && strcmp(json_string_value(t), "string") == 0 &&
        !json_object_get(sc, "maxLength"))
        json_object_set_new(sc, "maxLength", json_integer(8));
    if (t && json_is_string(t) && strcmp(json_string_value(t), "array") == 0 &&
        !json_object_get(sc, "maxItems"))
        json_object_set_new(sc, "maxItems", json_integer(4));
    const char *key;
    json_t *val;
    json_object_foreach(sc, key, val) {
        if (json_is_object(val))
            bound_schema(val);
        if (strcmp(key, "properties") == 0) {
            const char *k2;
            json_t *v2;
            json_object_foreach(val, k2, v2)
                bound_schema(v2);
        }
    }
}

/* ---- per-model run ------------------------------------------------------- */

typedef struct {
    SglDfa *dfa[N_CASES];
    json_t *schema[N_CASES];       /* schema and typed cases */
    int n_checked, n_jumped_runs;
} Cases;

static void cases_init(Cases *c)
{
    memset(c, 0, sizeof *c);
    FsmErr fe;
    for (int i = 0; i < N_CASES; i++) {
        char *re = NULL;
        if (i < N_RE) {
            re = strdup(regexes[i]);
        } else if (i < N_RE + N_SC) {
            json_error_t je;
            c->schema[i] = json_loads(schemas[i - N_RE], 0, &je);
            assert_non_null(c->schema[i]);
            assert_int_equal(jsonschema_to_regex(c->schema[i], NULL, &re, &fe), SGL_OK);
        } else {
            assert_int_equal(typed_to_schema(typeds[i - N_RE - N_SC], &c->schema[i], &fe), SGL_OK);
            bound_schema(c->schema[i]);
            assert_int_equal(jsonschema_to_regex(c->schema[i], NULL, &re, &fe), SGL_OK);
        }
        if (regex_compile(re, strlen(re), NULL, &c->dfa[i], NULL, &fe) != SGL_OK)
            fail_msg("case %d: %s", i, fe.msg);
        free(re);
    }
}

static void cases_free(Cases *c)
{
    for (int i = 0; i < N_CASES; i++) {
        sgl_dfa_free(c->dfa[i]);
        json_decref(c->schema[i]);
    }
}

static void check_output(Cases *c, int ci, const SglEvent *ev, const char *model)
{
    const char *t = ev->output_text;
    size_t n = ev->output_text_len;
    if (ev->finish != SGL_FINISH_STOP)
        fail_msg("%s case %d: finish %s (%s) after %d tokens: '%.*s'", model, ci,
                 sgl_finish_name(ev->finish), ev->error ? ev->error : "", ev->completion_tokens, (int)n, t);
    if (ci < N_RE) {
        if (!pcre_match(regexes[ci], t, n, true))
            fail_msg("%s regex %d: '%.*s' does not fully match %s", model, ci, (int)n, t, regexes[ci]);
    } else {
        json_error_t je;
        json_t *j = json_loadb(t, n, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
        if (!j)
            fail_msg("%s case %d: not JSON (%s): '%.*s'", model, ci, je.text, (int)n, t);
        if (!valid(j, c->schema[ci], c->schema[ci], 0))
            fail_msg("%s case %d: '%.*s' does not validate", model, ci, (int)n, t);
        if (ci >= N_RE + N_SC) {
            Value *v = NULL;
            char msg[256];
            if (!val_from_json(j, vtypes[ci - N_RE - N_SC], &v, msg, sizeof msg))
                fail_msg("%s typed %d: '%.*s': %s", model, ci, (int)n, t, msg);
            val_unref(v);
        }
        json_decref(j);
    }
    c->n_checked++;
}

/* n generations on the model in dir (dummy weights when dummy). */
static void run_model(Cases *c, const char *dir, bool dummy, bool jump, int n, int seed0, const char *name,
                      SglEngineStats *out)
{
    SglEngineOpts eo;
    sgl_engine_opts_default(&eo);
    eo.model_dir = dir;
    eo.load_format = dummy ? SGL_LOAD_DUMMY : SGL_LOAD_AUTO;
    eo.n_threads = 2;
    eo.sched.disable_jump_forward = !jump;
    SglEngine *e = NULL;
    SglErr err = {0};
    if (sgl_engine_open(&eo, &e, &err) != SGL_OK)
        fail_msg("%s: %s", name, err.msg);
    TokRegistry *reg = tokreg_new();
    SglEventQueue *q = sgl_evq_new();
    assert_non_null(reg);
    assert_non_null(q);
    static const char *const prompts[] = {"Answer: ", "Once upon a time", "The data is", "Output:\n"};
    int32_t *ids[4], n_ids[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(sgl_engine_encode(e, prompts[i], strlen(prompts[i]), true, &ids[i], &n_ids[i]), SGL_OK);
    for (int base = 0; base < n; base += CHUNK) {
        int m = n - base < CHUNK ? n - base : CHUNK;
        SglRequest rq[CHUNK];
        int ci_of[CHUNK];
        uint64_t rid[CHUNK];
        /* the stream as a client sees it: text pieces and ids (n_rollback applied) */
        static char streamed[CHUNK][4096];
        static int32_t sids[CHUNK][MAX_TOKENS + 8];
        int32_t n_sids[CHUNK] = {0};
        size_t n_streamed[CHUNK] = {0};
        for (int k = 0; k < m; k++) {
            int g = base + k, ci = g % N_CASES;
            ci_of[k] = ci;
            memset(&rq[k], 0, sizeof rq[k]);
            rq[k].input_ids = ids[g % 4];
            rq[k].n_input = n_ids[g % 4];
            sgl_sampling_params_default(&rq[k].params);
            rq[k].params.temperature = 1.0f;
            rq[k].params.max_new_tokens = MAX_TOKENS;
            rq[k].params.has_seed = true;
            rq[k].params.seed = (uint64_t)(seed0 + g);
            rq[k].on_event = sgl_evq_on_event;
            rq[k].user = q;
            if (tokmask_constraint_new(reg, c->dfa[ci], sgl_engine_tokenizer(e), 1, &rq[k].constraint, &err) != SGL_OK)
                fail_msg("%s: %s", name, err.msg);
        }
        if (sgl_engine_submit_batch(e, rq, m, rid, &err) != SGL_OK)
            fail_msg("%s: %s", name, err.msg);
        for (int done = 0; done < m;) {
            SglEvent *ev = NULL;
            assert_int_equal(sgl_evq_get(q, 600000, &ev), SGL_OK);
            int k = 0;
            while (k < m && rid[k] != ev->id)
                k++;
            assert_true(k < m);
            assert_true(n_streamed[k] + ev->text_len < sizeof streamed[k]);
            memcpy(streamed[k] + n_streamed[k], ev->text, ev->text_len);
            n_streamed[k] += ev->text_len;
            if (ev->kind == SGL_EV_TOKEN) {
                assert_true(ev->n_rollback >= 0 && ev->n_rollback <= n_sids[k]);
                n_sids[k] -= ev->n_rollback;
                assert_true(n_sids[k] < MAX_TOKENS + 8);
                sids[k][n_sids[k]++] = ev->token;
            } else {
                check_output(c, ci_of[k], ev, name);
                /* streaming, detokenization and jump-forward agree */
                if (n_streamed[k] != ev->output_text_len ||
                    memcmp(streamed[k], ev->output_text, n_streamed[k]) != 0)
                    fail_msg("%s: streamed '%.*s' != final '%.*s'", name, (int)n_streamed[k], streamed[k],
                             (int)ev->output_text_len, ev->output_text);
                assert_int_equal(n_sids[k], ev->completion_tokens);
                assert_memory_equal(sids[k], ev->output_ids, (size_t)n_sids[k] * sizeof(int32_t));
                char *dec = sgl_tokenizer_decode(sgl_engine_tokenizer(e), ev->output_ids,
                                                 ev->completion_tokens, true, NULL);
                assert_non_null(dec);
                if (strlen(dec) != ev->output_text_len || memcmp(dec, ev->output_text, strlen(dec)) != 0)
                    fail_msg("%s: decode(output_ids) '%s' != text '%.*s'", name, dec,
                             (int)ev->output_text_len, ev->output_text);
                free(dec);
                done++;
            }
            free(ev);
        }
    }
    sgl_engine_flush_cache(e); /* a barrier: the snapshot below covers every step so far */
    *out = sgl_engine_stats(e);
    for (int i = 0; i < 4; i++)
        free(ids[i]);
    sgl_engine_close(e);
    sgl_evq_free(q);
    tokreg_free(reg);
}

static const char *shared_dir(void)
{
    const char *d = getenv("SGL_SHARED_DIR");
    return d ? d : "../shared";
}

static void test_stories260k(void **state)
{
    (void)state;
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/models/stories260K-hf", shared_dir());
    if (access(dir, R_OK) != 0) {
        printf("skipped: %s is absent\n", dir);
        skip();
    }
    Cases c;
    cases_init(&c);
    SglEngineStats a, b;
    run_model(&c, dir, false, true, 125, 1000, "stories260K", &a);
    run_model(&c, dir, false, false, 125, 1000, "stories260K (no jump-forward)", &b);
    assert_int_equal(c.n_checked, 250);
    assert_int_equal(b.jump_forwards, 0);
    assert_true(a.jump_forwards > 0);
    assert_true(a.steps < b.steps); /* forced text in extends, not one step per token */
    printf("stories260K: 250 valid; jump-forward %lld jumps / %lld tokens, engine steps %lld vs %lld without\n",
           (long long)a.jump_forwards, (long long)a.jump_forward_tokens, (long long)a.steps, (long long)b.steps);
    cases_free(&c);
}

static void test_smollm2_shape(void **state)
{
    (void)state;
    char src[1024], tmpl[] = "/tmp/sgl_fsm_e2e_XXXXXX", path[1200];
    snprintf(src, sizeof src, "%s/models/smollm2-135m-tokenizer", shared_dir());
    snprintf(path, sizeof path, "%s/config.json", src);
    json_error_t je;
    json_t *cfg = json_load_file(path, 0, &je);
    if (!cfg) {
        printf("skipped: %s is absent\n", path);
        skip();
    }
    /* 2 layers instead of 30: the vocabulary and widths stay real */
    json_object_set_new(cfg, "num_hidden_layers", json_integer(2));
    assert_non_null(mkdtemp(tmpl));
    snprintf(path, sizeof path, "%s/config.json", tmpl);
    assert_int_equal(json_dump_file(cfg, path, 0), 0);
    json_decref(cfg);
    char tok_rel[1200], tok_src[PATH_MAX], tok_dst[1200];
    snprintf(tok_rel, sizeof tok_rel, "%s/tokenizer.json", src);
    assert_non_null(realpath(tok_rel, tok_src));
    snprintf(tok_dst, sizeof tok_dst, "%s/tokenizer.json", tmpl);
    assert_int_equal(symlink(tok_src, tok_dst), 0);
    Cases c;
    cases_init(&c);
    SglEngineStats a;
    run_model(&c, tmpl, true, true, 250, 3000, "SmolLM2-135M shape", &a);
    assert_int_equal(c.n_checked, 250);
    assert_true(a.jump_forwards > 0);
    printf("SmolLM2 shape: 250 valid; jump-forward %lld jumps / %lld tokens (%lld rolled back)\n",
           (long long)a.jump_forwards, (long long)a.jump_forward_tokens, (long long)a.jump_forward_rollbacks);
    cases_free(&c);
    unlink(tok_dst);
    unlink(path);
    rmdir(tmpl);
}

/* Runs cmd, returns its exit status and stdout+stderr in out. */
static int run_cmd(const char *cmd, char *out, size_t cap)
{
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    size_t n = fread(out, 1, cap - 1, f);
    out[n] = '\0';
    int st = pclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* sglc generate --regex / --json-schema, and sglc check --emit=fsm. */
static void test_cli(void **state)
{
    (void)state;
    const char *sglc = getenv("SGLC"), *root = getenv("SGL_SOURCE_ROOT");
    char model[1024], cmd[4096], out[16384];
    snprintf(model, sizeof model, "%s/models/stories260K-hf", shared_dir());
    if (!sglc || !root || access(model, R_OK) != 0) {
        printf("skipped: needs SGLC, SGL_SOURCE_ROOT and %s\n", model);
        skip();
    }
    for (int jump = 0; jump < 2; jump++) {
        snprintf(cmd, sizeof cmd, "%s generate --model %s --prompt 'Phone: ' --temperature 1 --seed 5 "
                 "--max-tokens 40 --regex '\\+[0-9]{1,3} [0-9]{3}-[0-9]{4}' %s 2>&1", sglc, model,
                 jump ? "" : "--no-jump-forward");
        assert_int_equal(run_cmd(cmd, out, sizeof out), 0);
        out[strcspn(out, "\n")] = '\0';
        if (!pcre_match("\\+[0-9]{1,3} [0-9]{3}-[0-9]{4}", out, strlen(out), true))
            fail_msg("generate --regex printed '%s'", out);
    }
    snprintf(cmd, sizeof cmd, "%s generate --model %s --temperature 1 --seed 9 --max-tokens 120 --json "
             "--json-schema '%s' 2>&1", sglc, model, schemas[2]);
    assert_int_equal(run_cmd(cmd, out, sizeof out), 0);
    json_error_t je;
    json_t *o = json_loads(out, 0, &je), *sc = json_loads(schemas[2], 0, &je);
    assert_non_null(o);
    json_t *j = json_loads(json_string_value(json_object_get(o, "text")), 0, &je);
    assert_non_null(j);
    assert_true(valid(j, sc, sc, 0));
    json_decref(j);
    json_decref(sc);
    json_decref(o);
    /* bad constraints: a clear message, exit 1, no engine work */
    snprintf(cmd, sizeof cmd, "%s generate --model %s --regex '(ab' 2>&1", sglc, model);
    assert_int_equal(run_cmd(cmd, out, sizeof out), 1);
    assert_non_null(strstr(out, "--regex: regex: missing ')'"));
    snprintf(cmd, sizeof cmd, "%s generate --model %s --json-schema '{\"type\": \"integer\", \"minimum\": 1}' 2>&1",
             sglc, model);
    assert_int_equal(run_cmd(cmd, out, sizeof out), 1);
    assert_non_null(strstr(out, "unsupported keyword 'minimum'"));
    snprintf(cmd, sizeof cmd, "%s generate --model %s --json-schema /nonexistent/schema.json 2>&1", sglc, model);
    assert_int_equal(run_cmd(cmd, out, sizeof out), 1);
    assert_non_null(strstr(out, "cannot read the file"));
    /* sglc check --emit=fsm */
    snprintf(cmd, sizeof cmd, "%s check --emit=fsm %s/examples/json_extract.sgl 2>&1", sglc, root);
    assert_int_equal(run_cmd(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "json_extract.sgl:21:17: gen info: type, "));
    assert_non_null(strstr(out, "forced: \"{\\\"name\\\": \\\"\" (start)"));
    assert_non_null(strstr(out, "gen capital: choices, "));
    assert_non_null(strstr(out, "gen record: json_schema, "));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stories260k),
        cmocka_unit_test(test_smollm2_shape),
        cmocka_unit_test(test_cli),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

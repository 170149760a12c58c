/* test_run.c -- `sglc run` end to end on stories260K (the built sglc, $SGLC).
 *
 * Checks the STRUCTURE of each result (vars bound, list lengths after forks,
 * role markers, select picks a choice, constraints hold), never the story
 * text: every example in examples/, the programs in tests/e2e/programs/,
 * runtime errors (location, exit status), usage errors, --batch order, the
 * demo model, prefix hoisting by the engine's counters, and parallelism by
 * the engine's step log (a fork of 8 gens = one batch of 8 decodes).
 */
#include <jansson.h>
#include <regex.h>
#include <stdbool.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

static const char *sglc, *root;
static char model[1024];

typedef struct {
    int rc;
    char *out, *err;
    json_t *j;                 /* stdout parsed as JSON, or NULL */
} Res;

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return strdup("");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    size_t got = fread(b, 1, (size_t)n, f);
    b[got] = '\0';
    fclose(f);
    return b;
}

/* Runs `sglc run ARGS` (ARGS is shell text) and collects its output. */
static Res run(const char *fmt, ...)
{
    char args[8192], cmd[9000];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' run %s >/tmp/sglc_e2e_out.$PPID 2>/tmp/sglc_e2e_err.$PPID",
             root, sglc, args);
    int st = system(cmd);
    Res r = {.rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1};
    char p[64];
    snprintf(p, sizeof p, "/tmp/sglc_e2e_out.%d", (int)getpid());
    r.out = slurp(p);
    remove(p);
    snprintf(p, sizeof p, "/tmp/sglc_e2e_err.%d", (int)getpid());
    r.err = slurp(p);
    remove(p);
    r.j = json_loads(r.out, JSON_DECODE_ANY, NULL);
    if (r.rc != 0)
        fprintf(stderr, "sglc run %s\n  -> exit %d, stderr: %s\n", args, r.rc, r.err);
    return r;
}

static void res_free(Res *r)
{
    free(r->out);
    free(r->err);
    json_decref(r->j);
}

static const json_t *var(const Res *r, const char *name)
{
    const json_t *v = json_object_get(json_object_get(r->j, "vars"), name);
    if (!v)
        fprintf(stderr, "missing var '%s' in %s\n", name, r->out);
    assert_non_null(v);
    return v;
}

static const char *text(const Res *r)
{
    const json_t *t = json_object_get(r->j, "text");
    assert_true(json_is_string(t));
    return json_string_value(t);
}

static bool in_list(const json_t *list, const char *s)
{
    size_t i;
    json_t *e;
    json_array_foreach(list, i, e) if (json_is_string(e) && strcmp(json_string_value(e), s) == 0) return true;
    return false;
}

static void check_meta(const Res *r, int min_requests)
{
    const json_t *m = json_object_get(r->j, "meta");
    assert_true(json_is_object(m));
    const char *keys[] = {"prompt_tokens", "completion_tokens", "cached_tokens", "requests"};
    for (int i = 0; i < 4; i++)
        assert_true(json_is_integer(json_object_get(m, keys[i])));
    assert_true(json_is_real(json_object_get(m, "seconds")));
    assert_true(json_integer_value(json_object_get(m, "requests")) >= min_requests);
}

static bool matches(const char *re, const char *s)
{
    regex_t rx;
    assert_int_equal(regcomp(&rx, re, REG_EXTENDED | REG_NOSUB), 0);
    bool ok = regexec(&rx, s, 0, NULL, 0) == 0;
    regfree(&rx);
    return ok;
}

/* ---------------------------------------------------------------- examples */

static void test_few_shot_qa(void **st)
{
    (void)st;
    Res r = run("examples/few_shot_qa.sgl --model '%s' --arg question='What is 2+2?' --json", model);
    assert_int_equal(r.rc, 0);
    assert_true(json_is_string(var(&r, "answer")));
    assert_string_equal(json_string_value(var(&r, "question")), "What is 2+2?");
    assert_true(json_is_string(json_object_get(r.j, "return")));
    assert_non_null(strstr(text(&r), "Question: What is 2+2?\nAnswer:"));
    assert_null(strchr(json_string_value(var(&r, "answer")), '\n'));   /* stop "\n" */
    check_meta(&r, 1);
    res_free(&r);
}

static void test_hellaswag_select(void **st)
{
    (void)st;
    const char *endings = "[\"and played with her ball.\", \"and the sky.\", \"happy\"]";
    Res r = run("examples/hellaswag_select.sgl --model '%s' --arg context='Lily went to the park'"
                " --arg endings='%s' --json", model, endings);
    assert_int_equal(r.rc, 0);
    const json_t *ends = var(&r, "endings");
    assert_true(in_list(ends, json_string_value(var(&r, "a"))));
    assert_true(in_list(ends, json_string_value(var(&r, "b"))));
    const char *c = json_string_value(var(&r, "c"));
    assert_true(matches("^(and played with her ball\\.|and the sky\\.|happy) \\(score -?[0-9.e+-]+\\)$", c));
    assert_true(json_is_boolean(var(&r, "agree")));
    /* three selects of 3 choices: (1 + 3) + (1 + 3) + (1 + 3 + 3) requests */
    assert_int_equal(json_integer_value(json_object_get(json_object_get(r.j, "meta"), "requests")), 15);
    res_free(&r);
}

static void test_nested_calls(void **st)
{
    (void)st;
    Res r = run("examples/nested_calls.sgl --model '%s' --arg topic=cooking --json", model);
    assert_int_equal(r.rc, 0);
    assert_true(json_is_string(var(&r, "summary")));
    assert_int_equal(json_array_size(var(&r, "t")), 2);
    assert_true(matches("^Tip 1: .*\n\nTip 2: ", text(&r)) || strstr(text(&r), "Tip 2: "));
    assert_non_null(strstr(text(&r), "In summary, "));
    check_meta(&r, 5);
    res_free(&r);
}

static void test_parallel_judge(void **st)
{
    (void)st;
    /* the judge asks for 256 tokens per dimension: cap them to fit stories260K's 512 context */
    Res r = run("examples/parallel_judge.sgl --model '%s' --arg article='Tom had a dog.' --json"
                " --max-tokens-cap 40", model);
    assert_int_equal(r.rc, 0);
    assert_true(json_is_integer(var(&r, "score")));
    assert_int_equal(json_array_size(var(&r, "ideas")), 4 + 1 + 3);  /* fork 4 + best + n: 3 */
    assert_true(matches("^Score: -?[0-9]+\nIdeas: ", text(&r)));
    res_free(&r);
}

static void test_multi_turn_chat(void **st)
{
    (void)st;
    Res r = run("examples/multi_turn_chat.sgl --model '%s' --arg first=Hi --arg second='Who are you?'"
                " --json --max-tokens 24", model);
    assert_int_equal(r.rc, 0);
    assert_int_equal(json_array_size(var(&r, "replies")), 2);
    assert_true(matches("^Turn 1: .*Turn 2: ", text(&r)));
    res_free(&r);
}

static void test_extern_capture(void **st)
{
    (void)st;
    Res r = run("examples/extern_capture.sgl --model '%s' --arg goal='a walk' --arg budget=200 --json", model);
    assert_int_equal(r.rc, 0);
    json_int_t steps = json_integer_value(var(&r, "steps"));
    assert_true(steps >= 1 && steps <= 5);
    const char *cap = json_string_value(var(&r, "step_text"));
    assert_true(matches("^Step [1-5] towards a walk: ", cap));
    assert_int_equal(json_integer_value(var(&r, "n")), (json_int_t)strlen(cap));  /* strlen via libffi */
    assert_true(json_integer_value(var(&r, "used")) <= 200);
    assert_true(matches("Used [0-9]+ of 200 bytes in [1-5] steps \\([0-9.]+%\\)", text(&r)));
    res_free(&r);
}

static void test_json_extract(void **st)
{
    (void)st;
    /* City's free-text strings are decoded greedily by a 260K-parameter story
     * model: it may not close them within 256 tokens. Either the typed JSON
     * parses (and then the record has its fields), or the run fails with the
     * typed-output error at the gen, never anything else. */
    Res r = run("examples/json_extract.sgl --model '%s' --arg doc='Paris is a city in France.' --json", model);
    if (r.rc == 0) {
        assert_non_null(strstr(text(&r), "landmarks"));
    } else {
        assert_int_equal(r.rc, 1);
        assert_true(matches("^examples/json_extract.sgl:21:17: runtime error: gen info: the output "
                            "\"\\{\"name\": \"", r.err));
        assert_non_null(strstr(r.err, "is not valid JSON (finish: length)"));
    }
    res_free(&r);
}

/* ---------------------------------------------------------------- programs */

static void test_fork_gather_roles(void **st)
{
    (void)st;
    Res r = run("tests/e2e/programs/fork_gather.sgl --model '%s' --arg topic=dogs --json --chat-template chatml",
                model);
    assert_int_equal(r.rc, 0);
    const json_t *line = var(&r, "line");
    assert_int_equal(json_array_size(line), 3);
    assert_int_equal(json_array_size(var(&r, "extra")), 2);
    const char *t = text(&r);
    assert_true(matches("^<\\|im_start\\|>system\nYou tell short stories\\.<\\|im_end\\|>\n"
                        "<\\|im_start\\|>user\nTell me about dogs\\.<\\|im_end\\|>\n"
                        "<\\|im_start\\|>assistant\nHere are three friends\\.\nTom was", t));
    /* join concat: the branches' text in branch order, inside the assistant block */
    const char *p = t;
    const char *names[] = {"Tom was", "Lily was", "Sam was"};
    for (int i = 0; i < 3; i++) {
        const char *l = json_string_value(json_array_get(line, (size_t)i));
        assert_true(strncmp(l, names[i], strlen(names[i])) == 0);
        assert_non_null(p = strstr(p, l));
        p += strlen(l);
    }
    assert_string_equal(p, "<|im_end|>\n");
    assert_true(json_equal(json_object_get(r.j, "return"), line));
    res_free(&r);
    /* the same program through the plain template */
    r = run("tests/e2e/programs/fork_gather.sgl --model '%s' --arg topic=dogs --json", model);
    assert_int_equal(r.rc, 0);
    assert_true(matches("^System: You tell short stories\\.\nUser: Tell me about dogs\\.\nAssistant: ", text(&r)));
    res_free(&r);
}

static void test_constraints(void **st)
{
    (void)st;
    Res r = run("tests/e2e/programs/constraints.sgl --model '%s' --json --seed 3", model);
    assert_int_equal(r.rc, 0);
    assert_true(matches("^\\+[0-9]{1,3} [0-9]{3}-[0-9]{4}$", json_string_value(var(&r, "phone"))));
    const char *mood = json_string_value(var(&r, "mood"));
    assert_true(!strcmp(mood, "yes") || !strcmp(mood, "no") || !strcmp(mood, "maybe"));
    assert_true(json_is_integer(var(&r, "age")));
    assert_true(json_is_boolean(var(&r, "flag")));
    json_t *code = json_loads(json_string_value(var(&r, "code")), 0, NULL);
    assert_non_null(code);
    assert_true(json_is_integer(json_object_get(code, "id")));
    json_decref(code);
    res_free(&r);
}

static void test_runtime_errors(void **st)
{
    (void)st;
    Res r = run("tests/e2e/programs/runtime_error.sgl --model '%s' --arg i=5", model);
    assert_int_equal(r.rc, 1);
    assert_true(matches("^tests/e2e/programs/runtime_error.sgl:7:[0-9]+: runtime error: index 5 out of "
                        "range for a list of length 2\n$", r.err));
    assert_string_equal(r.out, "");
    res_free(&r);
    r = run("tests/e2e/programs/runtime_error.sgl --model '%s' --arg i=1", model);
    assert_int_equal(r.rc, 0);
    res_free(&r);
    r = run("tests/e2e/programs/parse_error.sgl --model '%s' --arg s=twelve", model);
    assert_int_equal(r.rc, 1);
    assert_true(matches("^tests/e2e/programs/parse_error.sgl:4:12: runtime error: parse_int: not an "
                        "integer: \"twelve\"", r.err));
    res_free(&r);
    r = run("tests/e2e/programs/bad_extern.sgl --model '%s'", model);
    assert_int_equal(r.rc, 1);
    assert_true(matches("^tests/e2e/programs/bad_extern.sgl:1:[0-9]+: error: cannot open library "
                        "'libdoesnotexist.so.9'", r.err));
    res_free(&r);
}

static void test_usage_errors(void **st)
{
    (void)st;
    const char *bad[] = {
        "examples/few_shot_qa.sgl --model '%s'",                                   /* missing arg */
        "examples/few_shot_qa.sgl --model '%s' --arg question=x --arg nope=1",     /* unknown arg */
        "examples/extern_capture.sgl --model '%s' --arg goal=x --arg budget=lots", /* bad int */
        "examples/few_shot_qa.sgl --model '%s' --arg question=@/nonexistent/file",
        "examples/few_shot_qa.sgl --model '%s' --chat-template vicuna --arg question=x",
        "examples/few_shot_qa.sgl --model '%s' --frobnicate",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        Res r = run(bad[i], model);
        assert_int_equal(r.rc, 2);
        assert_true(strlen(r.err) > 0);
        res_free(&r);
    }
    Res r = run("/nonexistent.sgl --model '%s'", model);
    assert_int_equal(r.rc, 1);
    res_free(&r);
}

static void test_batch(void **st)
{
    (void)st;
    char in[64], out[64], log[64];
    snprintf(in, sizeof in, "/tmp/sglc_e2e_in.%d.jsonl", (int)getpid());
    snprintf(out, sizeof out, "/tmp/sglc_e2e_res.%d.jsonl", (int)getpid());
    snprintf(log, sizeof log, "/tmp/sglc_e2e_steps.%d.txt", (int)getpid());
    FILE *f = fopen(in, "w");
    for (int i = 0; i < 50; i++)
        fprintf(f, "{\"question\": \"Question number %d?\"}\n", i);
    fclose(f);
    Res r = run("examples/few_shot_qa.sgl --model '%s' --batch %s --out %s --parallel 8 --step-log %s",
                model, in, out, log);
    assert_int_equal(r.rc, 0);
    /* results in input order */
    FILE *o = fopen(out, "r");
    char line[65536];
    int n = 0;
    while (fgets(line, sizeof line, o)) {
        json_t *j = json_loads(line, 0, NULL);
        assert_non_null(j);
        char want[64];
        snprintf(want, sizeof want, "Question number %d?", n);
        assert_string_equal(json_string_value(json_object_get(json_object_get(j, "vars"), "question")), want);
        json_decref(j);
        n++;
    }
    fclose(o);
    assert_int_equal(n, 50);
    /* the few-shot prefix (~160 tokens) is computed once, not 50 times:
     * prefill tokens = prefix + 50 short tails */
    FILE *lf = fopen(log, "r");
    long prefill = 0, a, b, c;
    while (fscanf(lf, "%ld %ld %ld", &a, &b, &c) == 3)
        prefill += c - b;
    fclose(lf);
    fprintf(stderr, "batch of 50: %ld prefill tokens\n", prefill);
    assert_true(prefill > 150);
    assert_true(prefill < 160 * 2 + 50 * 20);
    remove(in);
    remove(out);
    remove(log);
    res_free(&r);
}

static json_int_t engine_stat(const Res *r, const char *k)
{
    const json_t *v = json_object_get(json_object_get(r->j, "engine"), k);
    assert_true(json_is_integer(v));
    return json_integer_value(v);
}

static void test_prefix_hoisting(void **st)
{
    (void)st;
    /* a 5-way fork over a ~300-token prefix: the prefix is prefilled once */
    Res r = run("tests/e2e/programs/prefix_fork.sgl --model '%s' --arg who=Lily --json --stats", model);
    assert_int_equal(r.rc, 0);
    assert_int_equal(json_array_size(var(&r, "answer")), 5);
    json_int_t prefill = engine_stat(&r, "prefill_tokens");
    fprintf(stderr, "5-way fork over the prefix: %lld prefill tokens\n", (long long)prefill);
    assert_true(prefill >= 300);
    assert_true(prefill < 300 + 5 * 30);
    res_free(&r);
    /* without the radix cache the prefix is computed by every branch */
    r = run("tests/e2e/programs/prefix_fork.sgl --model '%s' --arg who=Lily --json --stats"
            " --disable-radix-cache --no-prefix-hoist", model);
    assert_int_equal(r.rc, 0);
    assert_true(engine_stat(&r, "prefill_tokens") >= 5 * 300);
    res_free(&r);
}

static void test_parallelism(void **st)
{
    (void)st;
    Res par = run("tests/e2e/programs/parallel8.sgl --model '%s' --json --stats", model);
    assert_int_equal(par.rc, 0);
    assert_int_equal(json_array_size(var(&par, "story")), 8);
    /* one batch of 8 decodes: 15 decode steps of 8 sequences, not 8 x 15 */
    assert_int_equal(engine_stat(&par, "max_decode_batch"), 8);
    assert_true(engine_stat(&par, "steps") <= 20);
    Res seq = run("tests/e2e/programs/parallel8.sgl --model '%s' --json --stats --no-parallel", model);
    assert_int_equal(seq.rc, 0);
    assert_int_equal(engine_stat(&seq, "max_decode_batch"), 1);
    assert_true(engine_stat(&seq, "steps") >= 8 * 15);
    /* same variables at temperature 0 */
    assert_true(json_equal(json_object_get(par.j, "vars"), json_object_get(seq.j, "vars")));
    res_free(&par);
    res_free(&seq);
}

static void test_demo_model(void **st)
{
    (void)st;
    /* SGL_MODEL unset and no --model: the demo model with a notice */
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cd '%s' && env -u SGL_MODEL '%s' run examples/nested_calls.sgl --arg topic=x "
             "--json >/tmp/sglc_demo_out.%d 2>/tmp/sglc_demo_err.%d", root, sglc, (int)getpid(), (int)getpid());
    int st2 = system(cmd);
    assert_true(WIFEXITED(st2) && WEXITSTATUS(st2) == 0);
    char p[64];
    snprintf(p, sizeof p, "/tmp/sglc_demo_err.%d", (int)getpid());
    char *err = slurp(p);
    remove(p);
    assert_non_null(strstr(err, "built-in demo model"));
    assert_non_null(strstr(err, "meaningless"));
    free(err);
    snprintf(p, sizeof p, "/tmp/sglc_demo_out.%d", (int)getpid());
    char *out = slurp(p);
    remove(p);
    json_t *j = json_loads(out, JSON_ALLOW_NUL, NULL);
    assert_non_null(j);
    assert_int_equal(json_array_size(json_object_get(json_object_get(j, "vars"), "t")), 2);
    json_decref(j);
    free(out);
}

static void test_stream(void **st)
{
    (void)st;
    Res plain = run("examples/few_shot_qa.sgl --model '%s' --arg question=Hi --temperature 0", model);
    Res streamed = run("examples/few_shot_qa.sgl --model '%s' --arg question=Hi --temperature 0 --stream", model);
    assert_int_equal(plain.rc, 0);
    assert_int_equal(streamed.rc, 0);
    assert_string_equal(plain.out, streamed.out);
    res_free(&plain);
    res_free(&streamed);
}

int main(void)
{
    sglc = getenv("SGLC");
    root = getenv("SGL_SOURCE_ROOT");
    const char *shared = getenv("SGL_SHARED_DIR");
    if (!sglc || !root) {
        printf("skipped: SGLC and SGL_SOURCE_ROOT must be set (run through meson test)\n");
        return 77;
    }
    snprintf(model, sizeof model, "%s/models/stories260K-hf", shared ? shared : "/nonexistent");
    char probe[1100];
    snprintf(probe, sizeof probe, "%s/config.json", model);
    FILE *f = fopen(probe, "r");
    if (!f) {
        printf("skipped: no stories260K model at %s\n", model);
        return 77;
    }
    fclose(f);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_few_shot_qa),
        cmocka_unit_test(test_hellaswag_select),
        cmocka_unit_test(test_nested_calls),
        cmocka_unit_test(test_parallel_judge),
        cmocka_unit_test(test_multi_turn_chat),
        cmocka_unit_test(test_extern_capture),
        cmocka_unit_test(test_json_extract),
        cmocka_unit_test(test_fork_gather_roles),
        cmocka_unit_test(test_constraints),
        cmocka_unit_test(test_runtime_errors),
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_batch),
        cmocka_unit_test(test_prefix_hoisting),
        cmocka_unit_test(test_parallelism),
        cmocka_unit_test(test_demo_model),
        cmocka_unit_test(test_stream),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

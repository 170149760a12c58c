/* test_parser.c -- the Bison parser through the compile pipeline: tree shape,
 * error messages and recovery (several errors per run), limits, the arena's
 * fail-the-Nth-allocation mode, and diagnostic rendering. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "frontend/compile.h"
#include "frontend/parse.h"

/* Parses text with the parser alone (no semantic check). */
typedef struct {
    SglSource *src;
    SglArena arena;
    SglDiags diags;
    AstNode *prog;
    bool incomplete;
} Parsed;

static Parsed *parse_n(const char *text, size_t len, bool partial)
{
    Parsed *p = calloc(1, sizeof *p);
    assert_non_null(p);
    p->src = sgl_source_new("t.sgl", text, len);
    assert_non_null(p->src);
    sgl_arena_init(&p->arena);
    sgl_diags_init(&p->diags, 0);
    p->prog = sgl_parse(p->src, &p->arena, &p->diags, partial, &p->incomplete);
    return p;
}

static Parsed *parse(const char *text)
{
    return parse_n(text, strlen(text), false);
}

static void parsed_free(Parsed *p)
{
    sgl_diags_deinit(&p->diags);
    sgl_arena_deinit(&p->arena);
    sgl_source_free(p->src);
    free(p);
}

static char *render(const SglDiags *d)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    sgl_diags_render(d, f);
    fclose(f);
    return buf;
}

static void expect_msgs(const Parsed *p, const char *const *want, uint32_t n)
{
    for (uint32_t i = 0; i < n && i < p->diags.n; i++)
        if (strcmp(p->diags.items[i].msg, want[i]) != 0)
            fail_msg("diagnostic %u: got \"%s\", want \"%s\"", i, p->diags.items[i].msg, want[i]);
    assert_int_equal(p->diags.n_errors, n);
}

static const AstNode *first_stmt(const Parsed *p, uint32_t decl)
{
    const AstNode *fn = p->prog->prog.decls->items[decl];
    assert_int_equal(fn->kind, AST_FN);
    return fn->fn.body->block.stmts->items[0];
}

static void test_shapes(void **state)
{
    (void)state;
    Parsed *p = parse("fn f() -> int {\n  return 1 + 2 * -3 == 4 and not x\n}\n");
    assert_int_equal(p->diags.n_errors, 0);
    assert_non_null(p->prog);
    const AstNode *r = first_stmt(p, 0);
    assert_int_equal(r->kind, AST_RETURN);
    const AstNode *e = r->ret.value; /* (((1 + (2 * (-3))) == 4) and (not x)) */
    assert_int_equal(e->kind, AST_BINARY);
    assert_int_equal(e->binary.op, AST_OP_AND);
    assert_int_equal(e->binary.rhs->unary.op, AST_OP_NOT);
    const AstNode *eq = e->binary.lhs;
    assert_int_equal(eq->binary.op, AST_OP_EQ);
    const AstNode *add = eq->binary.lhs;
    assert_int_equal(add->binary.op, AST_OP_ADD);
    assert_int_equal(add->binary.rhs->binary.op, AST_OP_MUL);
    assert_int_equal(add->binary.rhs->binary.rhs->kind, AST_UNARY);
    /* locations: the return statement spans "return ... x" on line 2 */
    assert_int_equal(r->loc.off, 18);
    assert_int_equal(r->loc.len, strlen("return 1 + 2 * -3 == 4 and not x"));
    parsed_free(p);

    p = parse("fn g(xs: list[str]) {\n select a from xs\n fork 3 { gen b: int } join concat\n"
              " gen c: list[int](max_tokens: 5, stop: [\"x\"],)\n}");
    assert_int_equal(p->diags.n_errors, 0);
    const AstList *s = p->prog->prog.decls->items[0]->fn.body->block.stmts;
    assert_int_equal(s->n, 3);
    assert_int_equal(s->items[0]->kind, AST_SELECT);
    assert_string_equal(s->items[0]->gen.options->items[0]->option.name.s, "choices");
    assert_int_equal(s->items[1]->kind, AST_FORK);
    assert_null(s->items[1]->fork.name.s);
    assert_int_equal(s->items[1]->fork.join, AST_JOIN_CONCAT);
    assert_int_equal(s->items[2]->gen.type->kind, AST_TYPE_LIST);
    assert_int_equal(s->items[2]->gen.options->n, 2);
    parsed_free(p);
}

static void test_error_messages(void **state)
{
    (void)state;
    Parsed *p = parse("fn f() {\n  g(a b)\n}\n");
    const char *const want[] = {"expected ')' or ',' before identifier"};
    expect_msgs(p, want, 1);
    parsed_free(p);

    p = parse("fn f() {\n  let x = \n}\n");
    const char *const want2[] = {"expected expression before '}'"};
    expect_msgs(p, want2, 1);
    parsed_free(p);

    /* a missing '}' at end of input gets a note pointing at the block */
    p = parse("fn main() {\n  fork x in xs {\n    gen y\n}\n");
    assert_int_equal(p->diags.n_errors, 1);
    assert_string_equal(p->diags.items[0].msg, "expected statement, newline or '}' at end of input");
    assert_int_equal(p->diags.items[0].n_notes, 1);
    assert_string_equal(p->diags.items[0].notes[0].msg, "to close `fn` block opened at line 1");
    parsed_free(p);

    p = parse("fn f() {\n  fork 2 { gen x }\n  join concat\n}\n");
    assert_int_equal(p->diags.n_errors, 1);
    assert_int_equal(p->diags.items[0].n_notes, 1);
    assert_null(p->diags.items[0].notes[0].loc.src);
    assert_string_equal(p->diags.items[0].notes[0].msg,
                        "`join MODE` must follow the fork's closing `}` on the same line");
    parsed_free(p);

    p = parse("fn f() { fork 2 { } join merge\n f() = 3 }\nfn h() -> map[int] { }");
    const char *const want3[] = {
        "unknown join mode 'merge' (expected 'gather' or 'concat')",
        "cannot assign to this expression (expected a variable, an element xs[i] or a field r.f)",
        "unknown generic type 'map' (only list[T] exists)",
    };
    expect_msgs(p, want3, 3);
    parsed_free(p);
}

/* Several independent syntax errors are all reported, and declarations after
 * them are still parsed. */
static void test_recovery(void **state)
{
    (void)state;
    Parsed *p = parse("fn a() {\n"
                      "  let = 1\n"
                      "  gen x(max_tokens 3)\n"
                      "  \"ok\"\n"
                      "  if { }\n"
                      "}\n"
                      "fn b( {\n"
                      "}\n"
                      "const C = 3 4\n"
                      "fn good() { \"fine\" }\n");
    const char *const want[] = {
        "expected identifier before '='",
        "expected ':' before integer",
        "expected '{' before end of line",          /* `if { }`: `{ }` is a record */
        "expected identifier or ')' before '{'",
        "expected newline before integer",
    };
    expect_msgs(p, want, 5);
    assert_non_null(p->prog);
    const AstList *d = p->prog->prog.decls;
    assert_string_equal(d->items[d->n - 1]->fn.name.s, "good");
    /* the good statement in the broken function survived too */
    const AstList *s = d->items[0]->fn.body->block.stmts;
    assert_int_equal(s->n, 1);
    assert_int_equal(s->items[0]->kind, AST_EXPR_STMT);
    parsed_free(p);
}

static void test_limits(void **state)
{
    (void)state;
    /* bracket nesting */
    size_t n = 300;
    char *t = malloc(3 * n + 64);
    assert_non_null(t);
    int len = sprintf(t, "const X = ");
    for (size_t i = 0; i < n; i++)
        t[len++] = '(';
    t[len++] = '1';
    for (size_t i = 0; i < n; i++)
        t[len++] = ')';
    t[len] = '\0';
    Parsed *p = parse(t);
    assert_null(p->prog);
    assert_int_equal(p->diags.n_errors, 1);
    assert_non_null(strstr(p->diags.items[0].msg, "200"));
    parsed_free(p);
    free(t);

    /* tree depth: a long operator chain */
    n = 2000;
    t = malloc(4 * n + 64);
    assert_non_null(t);
    len = sprintf(t, "const X = 1");
    for (size_t i = 0; i < n; i++)
        len += sprintf(t + len, " + 1");
    p = parse(t);
    assert_int_equal(p->diags.n_errors, 1);
    assert_non_null(strstr(p->diags.items[0].msg, "limit of 1000 levels"));
    parsed_free(p);
    free(t);

    /* parser stack: a long prefix-operator chain */
    n = 30000;
    t = malloc(n + 64);
    assert_non_null(t);
    len = sprintf(t, "const X = ");
    memset(t + len, '-', n);
    strcpy(t + len + n, "1");
    p = parse(t);
    assert_null(p->prog);
    assert_int_equal(p->diags.n_errors, 1);
    assert_non_null(strstr(p->diags.items[0].msg, "parser stack limit of 10000"));
    parsed_free(p);
    free(t);
}

/* The node limit: a list literal with more elements than SGL_MAX_AST_NODES. */
static void test_node_limit(void **state)
{
    (void)state;
    size_t n = SGL_MAX_AST_NODES + 10;
    char *t = malloc(2 * n + 64);
    assert_non_null(t);
    size_t len = (size_t)sprintf(t, "const X = [");
    for (size_t i = 0; i < n; i++) {
        t[len++] = '1';
        t[len++] = ',';
    }
    strcpy(t + len, "]\n");
    Parsed *p = parse(t);
    assert_null(p->prog);
    assert_int_equal(p->diags.n_errors, 1);
    char want[96];
    snprintf(want, sizeof want, "program too large: more than %u syntax nodes", SGL_MAX_AST_NODES);
    assert_string_equal(p->diags.items[0].msg, want);
    parsed_free(p);
    free(t);
}

static void test_partial(void **state)
{
    (void)state;
    const char *more[] = {"fn f() {", "fn f() { \"\"\"abc", "const X = [1,", "/* c", "fn f()",
                          "const X ="};
    for (size_t i = 0; i < sizeof more / sizeof more[0]; i++) {
        Parsed *p = parse_n(more[i], strlen(more[i]), true);
        assert_true(p->incomplete);
        assert_int_equal(p->diags.n_errors, 0);
        parsed_free(p);
    }
    Parsed *p = parse_n("fn f() { }\n", 11, true);
    assert_false(p->incomplete);
    assert_non_null(p->prog);
    parsed_free(p);
}

/* Every allocation point of the frontend fails cleanly: a diagnostic, no
 * crash, no leak (ASan checks the latter). */
static void test_arena_fail_nth(void **state)
{
    (void)state;
    const char *text = "type R = { a: str, b: list[int] }\n"
                       "fn main(x: str) -> R {\n  \"hi {x}\"\n  fork i in 0..3 { gen y(n: 2) }\n"
                       "  return {a: \"v\", b: [1, 2]}\n}\n";
    uint64_t n;
    int failures = 0;
    for (n = 1; n < 10000; n++) {
        SglCompile c;
        sgl_compile_init(&c);
        sgl_arena_fail_at(&c.arena, n);
        bool ok = sgl_compile_buffer(&c, "t.sgl", text, strlen(text));
        bool exhausted = c.arena.fail_at && c.arena.n_allocs >= c.arena.fail_at;
        if (!exhausted) {
            assert_true(ok);
            sgl_compile_deinit(&c);
            break;
        }
        assert_false(ok);
        assert_true(c.diags.n_errors >= 1);
        char *out = render(&c.diags);
        assert_non_null(strstr(out, "out of memory"));
        free(out);
        failures++;
        sgl_compile_deinit(&c);
    }
    assert_true(failures > 20);
    assert_true(n < 10000);
}

static void test_render(void **state)
{
    (void)state;
    SglSource *src = sgl_source_new("x.sgl", "fn f() {\n\tlet é = g(1\n}\n", 25);
    assert_non_null(src);
    SglDiags d;
    sgl_diags_init(&d, 2);
    SglDiag *g = sgl_diag_error(&d, sgl_loc(src, 19, 3), "bad %s", "call");
    sgl_diag_note(&d, g, sgl_loc(src, 7, 1), "to close `fn` block opened at line %d", 1);
    sgl_diag_add(&d, SGL_SEV_WARNING, sgl_loc(src, 25, 0), "at end");
    sgl_diag_error(&d, sgl_loc(NULL, 0, 0), "no location");
    sgl_diag_error(&d, sgl_loc(src, 0, 2), "over the cap");
    char *out = render(&d);
    assert_string_equal(out,
        "x.sgl:2:10: error: bad call\n"
        "    2 | \tlet é = g(1\n"
        "      | \t        ^~~\n"
        "x.sgl:1:8: note: to close `fn` block opened at line 1\n"
        "    1 | fn f() {\n"
        "      |        ^\n"
        "x.sgl:4:1: warning: at end\n"
        "    4 | \n"
        "      | ^\n"
        "sglc: error: no location\n"
        "sglc: error: too many errors (3), stopped after 2\n");
    free(out);
    sgl_diags_deinit(&d);
    sgl_source_free(src);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shapes),
        cmocka_unit_test(test_error_messages),
        cmocka_unit_test(test_recovery),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_node_limit),
        cmocka_unit_test(test_partial),
        cmocka_unit_test(test_arena_fail_nth),
        cmocka_unit_test(test_render),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

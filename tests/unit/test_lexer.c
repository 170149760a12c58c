/* test_lexer.c -- the re2c lexer: tokens, automatic semicolons, locations,
 * string decoding, lexical errors and "need more input" (partial mode). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "frontend/parse.h"

#define MAX_TOKS 256

typedef struct {
    SglSource *src;
    SglArena arena;
    SglDiags diags;
    AstBuilder b;
    SglLexer lx;
    int tok[MAX_TOKS];
    SglLoc loc[MAX_TOKS];
    SGLYYSTYPE val[MAX_TOKS];
    int n;
} Lexed;

/* Lexes all of text (length len) until EOF, NEED_MORE or MAX_TOKS. */
static Lexed *lex_n(const char *text, size_t len, bool partial)
{
    Lexed *l = calloc(1, sizeof *l);
    assert_non_null(l);
    l->src = sgl_source_new("t.sgl", text, len);
    assert_non_null(l->src);
    sgl_arena_init(&l->arena);
    sgl_diags_init(&l->diags, 0);
    ast_builder_init(&l->b, &l->arena, &l->diags);
    sgl_lexer_init(&l->lx, l->src, &l->b, &l->diags, partial);
    while (l->n < MAX_TOKS) {
        int t = sgl_lex(&l->lx, &l->val[l->n], &l->loc[l->n]);
        l->tok[l->n++] = t;
        if (t == TOK_YYEOF || t == TOK_NEED_MORE || l->lx.fatal)
            break;
    }
    return l;
}

static Lexed *lex(const char *text, bool partial)
{
    return lex_n(text, strlen(text), partial);
}

static void lexed_free(Lexed *l)
{
    sgl_lexer_deinit(&l->lx);
    sgl_diags_deinit(&l->diags);
    sgl_arena_deinit(&l->arena);
    sgl_source_free(l->src);
    free(l);
}

static void expect_tokens(const Lexed *l, const int *want, int n_want)
{
    for (int i = 0; i < n_want && i < l->n; i++)
        if (l->tok[i] != want[i])
            fail_msg("token %d: got %d, want %d", i, l->tok[i], want[i]);
    assert_int_equal(l->n, n_want);
}

static void test_tokens_and_semicolons(void **state)
{
    (void)state;
    Lexed *l = lex("fn main() {\n  gen x(max_tokens: 5)\n  let y = a +\n b\n}\n", false);
    const int want[] = {
        TOK_FN, TOK_IDENT, '(', ')', '{',
        TOK_GEN, TOK_IDENT, '(', TOK_IDENT, ':', TOK_INT, ')', ';',
        TOK_LET, TOK_IDENT, '=', TOK_IDENT, '+', TOK_IDENT, ';',
        '}', ';', TOK_YYEOF,
    };
    expect_tokens(l, want, (int)(sizeof want / sizeof want[0]));
    assert_int_equal(l->diags.n_errors, 0);
    /* the inserted ';' sits, empty, right after `)` of line 2 */
    assert_int_equal(l->loc[12].len, 0);
    assert_int_equal(l->loc[12].off, l->loc[11].off + 1);
    assert_int_equal(l->val[10].ival, 5);
    assert_string_equal(l->val[1].ident.name.s, "main");
    /* identifiers are interned: the same name gives the same pointer */
    lexed_free(l);

    l = lex("if a { b }\nelse { c } join concat\n(x\n)", false);
    const int want2[] = {
        TOK_IF, TOK_IDENT, '{', TOK_IDENT, ';', '}', TOK_ELSE, '{', TOK_IDENT, ';', '}',
        TOK_JOIN, TOK_IDENT, ';', '(', TOK_IDENT, ')', ';', TOK_YYEOF,
    };
    expect_tokens(l, want2, (int)(sizeof want2 / sizeof want2[0]));
    lexed_free(l);
}

static void test_bom_and_comments(void **state)
{
    (void)state;
    /* a BOM is skipped; a newline inside a block comment ends a statement like
     * a real one; a line comment at EOF needs no newline */
    Lexed *l = lex("\xEF\xBB\xBFx /* a\n b */ y // end", false);
    const int want[] = {TOK_IDENT, ';', TOK_IDENT, ';', TOK_YYEOF};
    expect_tokens(l, want, (int)(sizeof want / sizeof want[0]));
    assert_int_equal(l->loc[0].off, 3);
    assert_int_equal(l->diags.n_errors, 0);
    lexed_free(l);
}

static void test_interning(void **state)
{
    (void)state;
    Lexed *l = lex("abc x abc", false);
    assert_int_equal(l->tok[0], TOK_IDENT);
    assert_ptr_equal(l->val[0].ident.name.s, l->val[2].ident.name.s);
    assert_ptr_not_equal(l->val[0].ident.name.s, l->val[1].ident.name.s);
    lexed_free(l);
}

static void test_locations_utf8(void **state)
{
    (void)state;
    /* "é" and "日" are 2 and 3 bytes but one column each */
    const char *text = "// é日\n  \"é\" foo";
    Lexed *l = lex(text, false);
    assert_int_equal(l->tok[0], TOK_STR_BEGIN);
    uint32_t line, col;
    sgl_source_line_col(l->src, l->loc[0].off, &line, &col);
    assert_int_equal(line, 2);
    assert_int_equal(col, 3);
    assert_int_equal(l->tok[3], TOK_IDENT);
    sgl_source_line_col(l->src, l->loc[3].off, &line, &col);
    assert_int_equal(col, 7); /* after `"é" ` : 3 + 3 chars + 1 space */
    assert_int_equal(l->loc[3].len, 3);
    lexed_free(l);
}

static void test_strings(void **state)
{
    (void)state;
    Lexed *l = lex("\"a{x}b{{c}}\\u{e9}\\n\\\"\"", false);
    const int want[] = {
        TOK_STR_BEGIN, TOK_STR_TEXT, TOK_INTERP_BEGIN, TOK_IDENT, TOK_INTERP_END,
        TOK_STR_TEXT, TOK_STR_END, ';', TOK_YYEOF,
    };
    expect_tokens(l, want, (int)(sizeof want / sizeof want[0]));
    assert_string_equal(l->val[1].str.s, "a");
    assert_string_equal(l->val[5].str.s, "b{c}\xc3\xa9\n\"");
    assert_false(l->val[0].triple);
    assert_int_equal(l->diags.n_errors, 0);
    lexed_free(l);

    /* triple: first newline dropped, quotes and newlines kept; nested string
     * inside an interpolation */
    l = lex("\"\"\"\nline \"q\"\n{f(\"x\")}\"\"\"", false);
    const int want2[] = {
        TOK_STR_BEGIN, TOK_STR_TEXT, TOK_INTERP_BEGIN, TOK_IDENT, '(', TOK_STR_BEGIN,
        TOK_STR_TEXT, TOK_STR_END, ')', TOK_INTERP_END, TOK_STR_END, ';', TOK_YYEOF,
    };
    expect_tokens(l, want2, (int)(sizeof want2 / sizeof want2[0]));
    assert_true(l->val[0].triple);
    assert_string_equal(l->val[1].str.s, "line \"q\"\n");
    lexed_free(l);

    /* raw strings: no escapes, no interpolation */
    l = lex("r\"\\d+{1,3}\" r\"\"\"{\"a\": 1}\"\"\"", false);
    const int want3[] = {
        TOK_STR_BEGIN, TOK_STR_TEXT, TOK_STR_END, TOK_STR_BEGIN, TOK_STR_TEXT, TOK_STR_END,
        ';', TOK_YYEOF,
    };
    expect_tokens(l, want3, (int)(sizeof want3 / sizeof want3[0]));
    assert_string_equal(l->val[1].str.s, "\\d+{1,3}");
    assert_string_equal(l->val[4].str.s, "{\"a\": 1}");
    lexed_free(l);
}

static void test_numbers(void **state)
{
    (void)state;
    Lexed *l = lex("0..5 1.5 2e3 9223372036854775807 007", false);
    const int want[] = {TOK_INT, TOK_DOTDOT, TOK_INT, TOK_FLOAT, TOK_FLOAT, TOK_INT, TOK_INT,
                        ';', TOK_YYEOF};
    expect_tokens(l, want, (int)(sizeof want / sizeof want[0]));
    assert_true(l->val[3].fval == 1.5);
    assert_true(l->val[4].fval == 2000.0);
    assert_true(l->val[5].ival == INT64_MAX);
    assert_int_equal(l->val[6].ival, 7);
    assert_int_equal(l->diags.n_errors, 0);
    lexed_free(l);

    l = lex("9223372036854775808 1e999", false);
    assert_int_equal(l->diags.n_errors, 2);
    assert_non_null(strstr(l->diags.items[0].msg, "integer literal too large"));
    assert_int_equal(l->diags.items[0].loc.off, 0);
    assert_int_equal(l->diags.items[0].loc.len, 19);
    assert_non_null(strstr(l->diags.items[1].msg, "float literal out of range"));
    lexed_free(l);
}

static void test_errors(void **state)
{
    (void)state;
    /* invalid UTF-8 in a string, a stray byte in code, NUL, bad escape */
    const char text[] = "\"ok \xff\" @ \xc3\x28 \"\\q\" x\0y";
    Lexed *l = lex_n(text, sizeof text - 1, false);
    assert_int_equal(l->diags.n_errors, 5);
    assert_string_equal(l->diags.items[0].msg, "invalid UTF-8 byte 0xFF in string");
    assert_int_equal(l->diags.items[0].loc.off, 4);
    assert_string_equal(l->diags.items[1].msg, "unexpected character '@'");
    assert_int_equal(l->diags.items[1].loc.off, 7);
    assert_string_equal(l->diags.items[2].msg, "invalid UTF-8 byte 0xC3");
    assert_non_null(strstr(l->diags.items[3].msg, "invalid escape sequence"));
    assert_string_equal(l->diags.items[4].msg, "NUL byte");
    assert_int_equal(l->diags.items[4].loc.off, sizeof text - 3);
    /* bad characters become the parser's error token */
    bool saw_error_tok = false;
    for (int i = 0; i < l->n; i++)
        saw_error_tok |= l->tok[i] == TOK_SGLYYerror;
    assert_true(saw_error_tok);
    lexed_free(l);

    /* unterminated comment and string point at their openers */
    l = lex("x /* open\n", false);
    assert_int_equal(l->diags.n_errors, 1);
    assert_string_equal(l->diags.items[0].msg, "unterminated comment");
    assert_int_equal(l->diags.items[0].loc.off, 2);
    lexed_free(l);
    l = lex("let s = \"abc\nlet t = 1", false);
    assert_int_equal(l->diags.n_errors, 1);
    assert_non_null(strstr(l->diags.items[0].msg, "unterminated string"));
    assert_int_equal(l->diags.items[0].loc.off, 8);
    lexed_free(l);
    l = lex("\"\"\"abc", false);
    assert_int_equal(l->diags.n_errors, 1);
    assert_string_equal(l->diags.items[0].msg, "unterminated string");
    lexed_free(l);
    l = lex("\"\\u{0} \\u{D800} \\u{1234567} }\"", false);
    assert_int_equal(l->diags.n_errors, 4);
    assert_non_null(strstr(l->diags.items[3].msg, "single '}'"));
    lexed_free(l);
}

static void test_need_more(void **state)
{
    (void)state;
    const char *incomplete[] = {
        "\"\"\"abc", "\"abc", "x /* comment", "fn f() {", "let x = (1 +", "\"{a",
        "r\"\"\"raw",
    };
    for (size_t i = 0; i < sizeof incomplete / sizeof incomplete[0]; i++) {
        Lexed *l = lex(incomplete[i], true);
        assert_int_equal(l->tok[l->n - 1], TOK_NEED_MORE);
        assert_true(l->lx.need_more);
        assert_int_equal(l->diags.n_errors, 0);
        lexed_free(l);
        /* the same text in a file is an error or a clean EOF, never NEED_MORE */
        l = lex(incomplete[i], false);
        assert_int_not_equal(l->tok[l->n - 1], TOK_NEED_MORE);
        lexed_free(l);
    }
    Lexed *l = lex("let x = 1\n", true);
    assert_int_equal(l->tok[l->n - 1], TOK_YYEOF);
    lexed_free(l);
}

static void test_nesting_limit(void **state)
{
    (void)state;
    char text[SGL_MAX_NESTING + 8];
    memset(text, '[', sizeof text - 1);
    text[sizeof text - 1] = '\0';
    Lexed *l = lex(text, false);
    assert_true(l->lx.fatal);
    assert_int_equal(l->diags.n_errors, 1);
    char want[128];
    snprintf(want, sizeof want, "more than %d open", SGL_MAX_NESTING);
    assert_non_null(strstr(l->diags.items[0].msg, want));
    lexed_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tokens_and_semicolons),
        cmocka_unit_test(test_bom_and_comments),
        cmocka_unit_test(test_interning),
        cmocka_unit_test(test_locations_utf8),
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_need_more),
        cmocka_unit_test(test_nesting_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

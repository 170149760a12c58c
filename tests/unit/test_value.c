/* test_value.c -- runtime values (backend/value.h) and the built-ins
 * (backend/builtins.c): text and JSON forms, parsing, every built-in's
 * results and runtime errors. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "backend/ops.h"
#include "backend/value.h"
#include "runtime/textfmt.h"

static const ValType T_STR = {.kind = VAL_STR}, T_INT = {.kind = VAL_INT},
                     T_FLOAT = {.kind = VAL_FLOAT}, T_BOOL = {.kind = VAL_BOOL};
static const ValType T_LSTR = {.kind = VAL_LIST, .elem = &T_STR};
static const ValType T_LINT = {.kind = VAL_LIST, .elem = &T_INT};
static const char *const CITY_NAMES[] = {"name", "pop", "tags"};
static const ValType *const CITY_FIELDS[] = {&T_STR, &T_INT, &T_LSTR};
static const ValType T_CITY = {.kind = VAL_RECORD, .name = "City", .n_fields = 3,
                               .names = CITY_NAMES, .fields = CITY_FIELDS};

static Value *S(const char *s) { return val_str(s, strlen(s)); }

static Value *strs(int n, ...)
{
    va_list ap;
    va_start(ap, n);
    Value *items[16];
    for (int i = 0; i < n; i++)
        items[i] = S(va_arg(ap, const char *));
    va_end(ap);
    return val_list_take(items, (uint32_t)n);
}

static void expect_text(const Value *v, const char *want)
{
    size_t len;
    char *t = val_to_text(v, &len);
    assert_non_null(t);
    assert_string_equal(t, want);
    assert_int_equal(len, strlen(want));
    free(t);
}

static void test_text_forms(void **st)
{
    (void)st;
    struct { double f; const char *s; } fl[] = {
        {0.1, "0.1"}, {80.0, "80.0"}, {1.5, "1.5"}, {-2.0, "-2.0"}, {1e16, "1e+16"},
        {1e-5, "1e-05"}, {0.0001, "0.0001"}, {123456789.125, "123456789.125"}, {1.0 / 3, "0.3333333333333333"},
    };
    for (size_t i = 0; i < sizeof fl / sizeof fl[0]; i++) {
        char buf[64];
        sgl_format_float(fl[i].f, buf, sizeof buf);
        assert_string_equal(buf, fl[i].s);
        assert_true(strtod(buf, NULL) == fl[i].f);
    }
    Value *v = val_int(-42);
    expect_text(v, "-42");
    val_unref(v);
    v = val_bool(true);
    expect_text(v, "true");
    val_unref(v);
    v = strs(3, "a", "b\"c", "\n");
    expect_text(v, "[\"a\",\"b\\\"c\",\"\\n\"]");
    Value *f[3] = {S("Paris"), val_int(2100000), val_ref(v)};
    Value *city = val_record_take(&T_CITY, f);
    expect_text(city, "{\"name\":\"Paris\",\"pop\":2100000,\"tags\":[\"a\",\"b\\\"c\",\"\\n\"]}");
    val_unref(v);
    val_unref(city);
}

static void test_json_roundtrip(void **st)
{
    (void)st;
    const char *txt = "{\"name\": \"Oslo\", \"pop\": 700000, \"tags\": [\"fjord\", \"cold\"]}";
    json_t *j = json_loads(txt, 0, NULL);
    Value *v = NULL;
    char msg[256];
    assert_true(val_from_json(j, &T_CITY, &v, msg, sizeof msg));
    json_t *back = val_to_json(v);
    assert_true(json_equal(j, back));
    json_decref(back);
    json_decref(j);
    val_unref(v);
    /* wrong shapes name the path */
    struct { const char *j; const char *err; } bad[] = {
        {"{\"name\": 1, \"pop\": 1, \"tags\": []}", "at $.name: expected a string"},
        {"{\"name\": \"x\", \"pop\": 1, \"tags\": [\"a\", 2]}", "at $.tags[1]: expected a string"},
        {"{\"name\": \"x\", \"tags\": []}", "missing field 'pop'"},
        {"{\"name\": \"x\", \"pop\": 1, \"tags\": [], \"zip\": 3}", "unknown field 'zip'"},
        {"[1]", "expected an object"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        j = json_loads(bad[i].j, 0, NULL);
        assert_non_null(j);
        v = (Value *)1;
        assert_false(val_from_json(j, &T_CITY, &v, msg, sizeof msg));
        assert_null(v);
        assert_non_null(strstr(msg, bad[i].err));
        json_decref(j);
    }
}

static void test_parse_and_args(void **st)
{
    (void)st;
    int64_t i;
    double d;
    char msg[256];
    assert_true(val_parse_int("  42\n", 5, &i, msg, sizeof msg));
    assert_int_equal(i, 42);
    assert_true(val_parse_int("-9223372036854775808", 20, &i, msg, sizeof msg));
    assert_true(i == INT64_MIN);
    const char *bad_ints[] = {"", "  ", "4 2", "0x10", "12a", "-", "+", "99999999999999999999", "1.0"};
    for (size_t k = 0; k < sizeof bad_ints / sizeof bad_ints[0]; k++)
        assert_false(val_parse_int(bad_ints[k], strlen(bad_ints[k]), &i, msg, sizeof msg));
    assert_non_null(strstr(msg, "parse_int"));
    assert_true(val_parse_float(" 2.5e3 ", 7, &d, msg, sizeof msg));
    assert_true(d == 2500.0);
    const char *bad_floats[] = {"", "abc", "inf", "nan", "0x1p3", "1e999", "1.2.3"};
    for (size_t k = 0; k < sizeof bad_floats / sizeof bad_floats[0]; k++)
        assert_false(val_parse_float(bad_floats[k], strlen(bad_floats[k]), &d, msg, sizeof msg));
    Value *v;
    assert_true(val_from_arg("hi there", 8, &T_STR, &v, msg, sizeof msg));
    assert_string_equal(v->str.s, "hi there");
    val_unref(v);
    assert_true(val_from_arg("true", 4, &T_BOOL, &v, msg, sizeof msg));
    assert_true(v->b);
    val_unref(v);
    assert_false(val_from_arg("yes", 3, &T_BOOL, &v, msg, sizeof msg));
    assert_true(val_from_arg("[1, 2, 3]", 9, &T_LINT, &v, msg, sizeof msg));
    assert_int_equal(v->list.n, 3);
    assert_int_equal(v->list.items[2]->i, 3);
    val_unref(v);
    assert_false(val_from_arg("[1, 2", 5, &T_LINT, &v, msg, sizeof msg));
    assert_non_null(strstr(msg, "invalid JSON"));
    assert_true(val_from_arg("3", 1, &T_FLOAT, &v, msg, sizeof msg));
    assert_true(v->f == 3.0);
    val_unref(v);
}

static void test_equality(void **st)
{
    (void)st;
    Value *a = strs(2, "x", "y"), *b = strs(2, "x", "y"), *c = strs(2, "x", "z");
    assert_true(val_equal(a, b));
    assert_false(val_equal(a, c));
    assert_true(val_compare(b->list.items[1], c->list.items[1]) < 0);
    Value *s1 = S("ab"), *s2 = S("abc");
    assert_true(val_compare(s1, s2) < 0);
    val_unref(a);
    val_unref(b);
    val_unref(c);
    val_unref(s1);
    val_unref(s2);
}

/* Calls a built-in and returns its result (NULL plus msg on error). */
static Value *call(IrBuiltin b, const ValType *ret, char *msg, int n, ...)
{
    va_list ap;
    va_start(ap, n);
    Value *args[8];
    for (int i = 0; i < n; i++)
        args[i] = va_arg(ap, Value *);
    va_end(ap);
    Value *out = NULL;
    bool ok = sgl_builtin_call(b, args, (uint32_t)n, ret, &out, msg, 256);
    for (int i = 0; i < n; i++)
        val_unref(args[i]);
    assert_true(ok == (out != NULL));
    return out;
}

static void expect(Value *v, const char *text)
{
    assert_non_null(v);
    expect_text(v, text);
    val_unref(v);
}

static void test_builtins(void **st)
{
    (void)st;
    char m[256];
    expect(call(IR_BI_LEN, &T_INT, m, 1, S("h\xc3\xa9llo")), "5");
    expect(call(IR_BI_LEN, &T_INT, m, 1, strs(3, "a", "b", "c")), "3");
    expect(call(IR_BI_STRIP, &T_STR, m, 1, S(" \t x y \n")), "x y");
    expect(call(IR_BI_LOWER, &T_STR, m, 1, S("AbC\xc3\x89")), "abc\xc3\x89");
    expect(call(IR_BI_UPPER, &T_STR, m, 1, S("abc")), "ABC");
    expect(call(IR_BI_SPLIT, &T_LSTR, m, 2, S("a,b,,c"), S(",")), "[\"a\",\"b\",\"\",\"c\"]");
    expect(call(IR_BI_SPLIT, &T_LSTR, m, 2, S(""), S(",")), "[\"\"]");
    assert_null(call(IR_BI_SPLIT, &T_LSTR, m, 2, S("abc"), S("")));
    assert_non_null(strstr(m, "separator is empty"));
    expect(call(IR_BI_JOIN, &T_STR, m, 2, strs(3, "a", "b", "c"), S(", ")), "a, b, c");
    expect(call(IR_BI_REPLACE, &T_STR, m, 3, S("aXbXc"), S("X"), S("--")), "a--b--c");
    expect(call(IR_BI_CONTAINS, &T_BOOL, m, 2, S("hello"), S("ell")), "true");
    expect(call(IR_BI_CONTAINS, &T_BOOL, m, 2, strs(2, "a", "b"), S("c")), "false");
    expect(call(IR_BI_FIND, &T_INT, m, 2, S("\xc3\xa9t\xc3\xa9"), S("t")), "1");
    expect(call(IR_BI_FIND, &T_INT, m, 2, S("abc"), S("z")), "-1");
    expect(call(IR_BI_INDEX, &T_INT, m, 2, strs(3, "a", "b", "c"), S("c")), "2");
    expect(call(IR_BI_SLICE, &T_STR, m, 3, S("h\xc3\xa9llo"), val_int(1), val_int(3)), "\xc3\xa9l");
    expect(call(IR_BI_SLICE, &T_LSTR, m, 3, strs(3, "a", "b", "c"), val_int(-5), val_int(99)),
           "[\"a\",\"b\",\"c\"]");
    expect(call(IR_BI_APPEND, &T_LSTR, m, 2, strs(1, "a"), S("b")), "[\"a\",\"b\"]");
    expect(call(IR_BI_RANGE, &T_LINT, m, 2, val_int(2), val_int(5)), "[2,3,4]");
    expect(call(IR_BI_RANGE, &T_LINT, m, 2, val_int(5), val_int(2)), "[]");
    expect(call(IR_BI_FORMAT, &T_STR, m, 3, S("{} + {} = 3"), val_int(1), val_float(2.0)), "1 + 2.0 = 3");
    assert_null(call(IR_BI_FORMAT, &T_STR, m, 2, S("{} {}"), val_int(1)));
    assert_null(call(IR_BI_FORMAT, &T_STR, m, 3, S("{}"), val_int(1), val_int(2)));
    expect(call(IR_BI_PARSE_INT, &T_INT, m, 1, S(" 17 ")), "17");
    assert_null(call(IR_BI_PARSE_INT, &T_INT, m, 1, S("seventeen")));
    assert_non_null(strstr(m, "parse_int: not an integer: \"seventeen\""));
    expect(call(IR_BI_PARSE_FLOAT, &T_FLOAT, m, 1, S("0.25")), "0.25");
    expect(call(IR_BI_PARSE_JSON, &T_CITY, m, 1, S("{\"name\":\"A\",\"pop\":1,\"tags\":[]}")),
           "{\"name\":\"A\",\"pop\":1,\"tags\":[]}");
    assert_null(call(IR_BI_PARSE_JSON, &T_CITY, m, 1, S("{\"name\":\"A\"}")));
    assert_non_null(strstr(m, "missing field 'pop'"));
    assert_null(call(IR_BI_PARSE_JSON, &T_LINT, m, 1, S("[1,")));
    expect(call(IR_BI_TO_JSON, &T_STR, m, 1, strs(1, "q\"")), "[\"q\\\"\"]");
    expect(call(IR_BI_TO_JSON, &T_STR, m, 1, S("x")), "\"x\"");
    expect(call(IR_BI_STR, &T_STR, m, 1, val_float(0.5)), "0.5");
    expect(call(IR_BI_INT, &T_INT, m, 1, val_float(-2.9)), "-2");
    expect(call(IR_BI_INT, &T_INT, m, 1, S("12")), "12");
    assert_null(call(IR_BI_INT, &T_INT, m, 1, val_float(1e300)));
    expect(call(IR_BI_FLOAT, &T_FLOAT, m, 1, val_int(3)), "3.0");
    expect(call(IR_BI_MIN, &T_INT, m, 2, val_int(3), val_int(-1)), "-1");
    expect(call(IR_BI_MAX, &T_FLOAT, m, 2, val_int(3), val_float(2.5)), "3.0");
    expect(call(IR_BI_ABS, &T_INT, m, 1, val_int(-7)), "7");
    assert_null(call(IR_BI_ABS, &T_INT, m, 1, val_int(INT64_MIN)));
    assert_non_null(strstr(m, "overflows"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_forms),
        cmocka_unit_test(test_json_roundtrip),
        cmocka_unit_test(test_parse_and_args),
        cmocka_unit_test(test_equality),
        cmocka_unit_test(test_builtins),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_ffi.c -- externs through libffi (backend/ffi.h), compiled from real
 * .sgl text: libc and libm functions, every parameter/return type through
 * the test library tests/ffi/libsgltest.c ($SGL_TEST_FFI_LIB), the error
 * convention (NULL str + errno), and the failure diagnostics: missing
 * library, missing symbol, bad signature types (at compile time), and an
 * extern failing at run time (`sglc run` with the built-in demo model: a
 * runtime error with the call's location).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "backend/ffi.h"
#include "frontend/compile.h"
#include "frontend/lower.h"

static const char *testlib(void)
{
    const char *l = getenv("SGL_TEST_FFI_LIB");
    return l && *l ? l : "libsgltest.so";
}

/* Compiles and lowers src (named prog.sgl); NULL with the rendered
 * diagnostics in diag (owned by the caller) on a compile error. */
static IrProgram *compile(const char *src, char **diag)
{
    SglCompile c;
    sgl_compile_init(&c);
    IrProgram *p = NULL;
    if (sgl_compile_buffer(&c, "prog.sgl", src, strlen(src)))
        p = sgl_lower(c.program, &c.diags);
    if (diag) {
        size_t len;
        FILE *f = open_memstream(diag, &len);
        assert_non_null(f);
        sgl_diags_render(&c.diags, f);
        fclose(f);
    }
    sgl_compile_deinit(&c);
    return p;
}

/* src with every %s replaced by the test library's path. */
static char *with_lib(const char *fmt)
{
    const char *l = testlib();
    size_t n = strlen(fmt) + 8 * strlen(l) + 1;
    char *s = malloc(n), *o = s;
    assert_non_null(s);
    for (const char *p = fmt; *p; p++) {
        if (p[0] == '%' && p[1] == 's') {
            o += sprintf(o, "%s", l);
            p++;
        } else {
            *o++ = *p;
        }
    }
    *o = '\0';
    return s;
}

static int32_t ext_index(const IrProgram *p, const char *name)
{
    for (uint32_t i = 0; i < p->n_externs; i++)
        if (strcmp(p->externs[i].name, name) == 0)
            return (int32_t)i;
    fail_msg("no extern %s", name);
    return -1;
}

/* Calls extern `name` with n values (taken: unref'd here); the result. */
static Value *call(SglFfi *f, const IrProgram *p, const char *name, int n, ...)
{
    Value *args[8] = {0};
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++)
        assert_non_null(args[i] = va_arg(ap, Value *));
    va_end(ap);
    Value *out = NULL;
    char msg[400];
    bool ok = sgl_ffi_call(f, (uint32_t)ext_index(p, name), args, &out, msg, sizeof msg);
    for (int i = 0; i < n; i++)
        val_unref(args[i]);
    if (!ok)
        fail_msg("%s: %s", name, msg);
    return out;
}

static void test_libc_libm(void **st)
{
    (void)st;
    IrProgram *p = compile("extern fn strlen(s: str) -> int from \"libc.so.6\"\n"
                           "extern fn labs(x: int) -> int from \"libc.so.6\"\n"
                           "extern fn sqrt(x: float) -> float from \"libm.so.6\"\n"
                           "extern fn pow(x: float, y: float) -> float from \"libm.so.6\"\n"
                           "fn main() { \"{strlen(\"ab\")} {labs(1)} {sqrt(1.0)} {pow(1.0, 2.0)}\" }\n",
                           NULL);   /* lowering keeps the externs that are called */
    assert_non_null(p);
    SglFfi *f = NULL;
    char msg[400];
    assert_true(sgl_ffi_load(p, &f, msg, sizeof msg));
    Value *v = call(f, p, "strlen", 1, val_str("h\xc3\xa9llo", 6));
    assert_int_equal(v->kind, VAL_INT);
    assert_int_equal(v->i, 6);       /* bytes, as C counts them */
    val_unref(v);
    /* `abs` is a built-in name in .sgl (not redefinable): C's long labs stands in */
    v = call(f, p, "labs", 1, val_int(-42));
    assert_int_equal(v->i, 42);
    val_unref(v);
    v = call(f, p, "labs", 1, val_int(-5000000000LL));   /* needs all 64 bits */
    assert_int_equal(v->i, 5000000000LL);
    val_unref(v);
    v = call(f, p, "sqrt", 1, val_float(2.0));
    assert_int_equal(v->kind, VAL_FLOAT);
    assert_true(fabs(v->f - 1.4142135623730951) < 1e-15);
    val_unref(v);
    v = call(f, p, "pow", 2, val_float(2.0), val_float(10.0));
    assert_true(v->f == 1024.0);
    val_unref(v);
    sgl_ffi_free(f);
    ir_program_free(p);
}

static void test_testlib_types(void **st)
{
    (void)st;
    char *src = with_lib("extern fn sgltest_add(a: int, b: int) -> int from \"%s\"\n"
                         "extern fn sgltest_scale(x: float, k: float) -> float from \"%s\"\n"
                         "extern fn sgltest_not(b: bool) -> bool from \"%s\"\n"
                         "extern fn sgltest_is_even(n: int) -> bool from \"%s\"\n"
                         "extern fn sgltest_count(s: str, sub: str) -> int from \"%s\"\n"
                         "extern fn sgltest_greet(name: str) -> str from \"%s\"\n"
                         "extern fn sgltest_describe(name: str, n: int, x: float, flag: bool) -> str from \"%s\"\n"
                         "extern fn sgltest_touch() from \"%s\"\n"
                         "fn main() {\n"
                         "    \"{sgltest_add(1, 2)} {sgltest_scale(1.0, 2.0)} {sgltest_not(true)}\"\n"
                         "    \"{sgltest_is_even(2)} {sgltest_count(\"a\", \"a\")} {sgltest_greet(\"a\")}\"\n"
                         "    \"{sgltest_describe(\"a\", 1, 1.0, true)}\"\n"
                         "    sgltest_touch()\n"
                         "}\n");
    IrProgram *p = compile(src, NULL);
    free(src);
    assert_non_null(p);
    SglFfi *f = NULL;
    char msg[400];
    if (!sgl_ffi_load(p, &f, msg, sizeof msg))
        fail_msg("%s", msg);
    Value *v = call(f, p, "sgltest_add", 2, val_int(40), val_int(-2));
    assert_int_equal(v->i, 38);
    val_unref(v);
    v = call(f, p, "sgltest_scale", 2, val_float(1.5), val_float(-4.0));
    assert_true(v->f == -6.0);
    val_unref(v);
    v = call(f, p, "sgltest_not", 1, val_bool(true));
    assert_int_equal(v->kind, VAL_BOOL);
    assert_false(v->b);
    val_unref(v);
    v = call(f, p, "sgltest_not", 1, val_bool(false));
    assert_true(v->b);
    val_unref(v);
    v = call(f, p, "sgltest_is_even", 1, val_int(7));
    assert_false(v->b);
    val_unref(v);
    v = call(f, p, "sgltest_count", 2, val_str("abcabcab", 8), val_str("ab", 2));
    assert_int_equal(v->i, 3);
    val_unref(v);
    v = call(f, p, "sgltest_greet", 1, val_str("sgl", 3));
    assert_int_equal(v->kind, VAL_STR);
    assert_string_equal(v->str.s, "hello, sgl");
    val_unref(v);
    v = call(f, p, "sgltest_describe", 4, val_str("x", 1), val_int(-3), val_float(0.25), val_bool(true));
    assert_string_equal(v->str.s, "x/-3/0.250/yes");
    val_unref(v);
    v = call(f, p, "sgltest_touch", 0);
    assert_int_equal(v->kind, VAL_VOID);
    val_unref(v);
    sgl_ffi_free(f);
    ir_program_free(p);
}

static void test_error_convention(void **st)
{
    (void)st;
    char *src = with_lib("extern fn sgltest_lookup(key: str) -> str from \"%s\"\n"
                         "fn main() { sgltest_lookup(\"k\") }\n");
    IrProgram *p = compile(src, NULL);
    free(src);
    assert_non_null(p);
    SglFfi *f = NULL;
    char msg[400];
    assert_true(sgl_ffi_load(p, &f, msg, sizeof msg));
    Value *v = call(f, p, "sgltest_lookup", 1, val_str("k", 1));
    assert_string_equal(v->str.s, "value of k");
    val_unref(v);
    Value *arg = val_str("fail", 4), *out = NULL;
    assert_false(sgl_ffi_call(f, 0, &arg, &out, msg, sizeof msg));
    assert_null(out);
    assert_string_equal(msg, "extern 'sgltest_lookup' failed: No such file or directory (it returned NULL, errno 2)");
    val_unref(arg);
    arg = val_str("", 0);
    assert_false(sgl_ffi_call(f, 0, &arg, &out, msg, sizeof msg));
    assert_non_null(strstr(msg, "Invalid argument"));
    val_unref(arg);
    sgl_ffi_free(f);
    ir_program_free(p);
}

static void test_missing_library_and_symbol(void **st)
{
    (void)st;
    IrProgram *p = compile("fn main() { \"{f(1)}\" }\n\nextern fn f(x: int) -> int from \"libsgl-no-such-lib.so.1\"\n",
                           NULL);
    assert_non_null(p);
    SglFfi *f = (SglFfi *)p;   /* must be reset to NULL on failure */
    char msg[600];
    assert_false(sgl_ffi_load(p, &f, msg, sizeof msg));
    assert_null(f);
    const char *lib_err = "prog.sgl:3:11: error: cannot open library 'libsgl-no-such-lib.so.1' for extern 'f': ";
    if (strncmp(msg, lib_err, strlen(lib_err)) != 0)
        fail_msg("got: %s", msg);
    ir_program_free(p);

    char *src = with_lib("extern fn sgltest_add(a: int, b: int) -> int from \"%s\"\n"
                         "  extern fn sgltest_missing(a: int) -> int from \"%s\"\n"
                         "fn main() { \"{sgltest_add(1, sgltest_missing(2))}\" }\n");
    assert_non_null(p = compile(src, NULL));
    free(src);
    assert_false(sgl_ffi_load(p, &f, msg, sizeof msg));
    assert_null(f);
    char want[600];
    snprintf(want, sizeof want, "prog.sgl:2:13: error: symbol 'sgltest_missing' not found in '%s'", testlib());
    assert_string_equal(msg, want);
    ir_program_free(p);
}

static void test_bad_signatures(void **st)
{
    (void)st;
    char *diag = NULL;
    IrProgram *p = compile("type R = { a: int }\n"
                           "extern fn f(xs: list[str]) -> int from \"libc.so.6\"\n"
                           "extern fn g(x: int) -> R from \"libc.so.6\"\n"
                           "fn main() { }\n", &diag);
    assert_null(p);
    assert_non_null(strstr(diag, "prog.sgl:2:17: error: extern parameter type must be str, int, float or bool, not list[str]"));
    assert_non_null(strstr(diag, "prog.sgl:3:24: error: extern return type must be str, int, float or bool, not R"));
    free(diag);
    p = compile("extern fn h(x: int) -> int from \"\"\nfn main() { }\n", &diag);
    assert_null(p);
    assert_non_null(strstr(diag, "prog.sgl:1:33: error: an extern library name must not be empty"));
    free(diag);
}

/* Runs `$SGLC run FILE` (built-in demo model); returns the exit status,
 * stdout and stderr in out/err (owned by the caller). */
static int sglc_run(const char *file, char **out, char **err)
{
    const char *sglc = getenv("SGLC");
    char errpath[] = "/tmp/sgl-test-ffi-err-XXXXXX";
    int fd = mkstemp(errpath);
    assert_true(fd >= 0);
    close(fd);
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "env -u SGL_MODEL '%s' run '%s' 2>'%s'", sglc, file, errpath);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t len = 0;
    FILE *o = open_memstream(out, &len);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0)
        fwrite(buf, 1, n, o);
    fclose(o);
    int st = pclose(p);
    FILE *e = fopen(errpath, "r");
    FILE *eo = open_memstream(err, &len);
    while (e && (n = fread(buf, 1, sizeof buf, e)) > 0)
        fwrite(buf, 1, n, eo);
    fclose(eo);
    if (e)
        fclose(e);
    unlink(errpath);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_run_end_to_end(void **st)
{
    (void)st;
    if (!getenv("SGLC")) {
        skip();
        return;
    }
    char path[] = "/tmp/sgl-test-ffi-XXXXXX.sgl";
    int fd = mkstemps(path, 4);
    assert_true(fd >= 0);
    char *src = with_lib("extern fn sgltest_describe(name: str, n: int, x: float, flag: bool) -> str from \"%s\"\n"
                         "extern fn sgltest_lookup(key: str) -> str from \"%s\"\n"
                         "extern fn pow(x: float, y: float) -> float from \"libm.so.6\"\n"
                         "fn main(key: str) {\n"
                         "    \"{sgltest_describe(\"a\", 2, pow(2.0, 3.0), true)};\"\n"
                         "    \"{sgltest_lookup(key)}\"\n"
                         "}\n");
    FILE *f = fdopen(fd, "w");
    fputs(src, f);
    fclose(f);
    free(src);
    char *out = NULL, *err = NULL;
    /* main's parameter is missing: a usage error before anything runs */
    assert_int_equal(sglc_run(path, &out, &err), 2);
    free(out);
    free(err);
    char cmdfile[600];
    snprintf(cmdfile, sizeof cmdfile, "%s' --arg 'key=k", path);
    if (sglc_run(cmdfile, &out, &err) != 0)
        fail_msg("sglc run failed: %s", err);
    assert_string_equal(out, "a/2/8.000/yes;value of k\n");
    free(out);
    free(err);
    snprintf(cmdfile, sizeof cmdfile, "%s' --arg 'key=fail", path);
    assert_int_equal(sglc_run(cmdfile, &out, &err), 1);
    char want[700];
    snprintf(want, sizeof want, "%s:6:7: runtime error: extern 'sgltest_lookup' failed: No such file "
                                "or directory (it returned NULL, errno 2)", path);
    if (!strstr(err, want))
        fail_msg("stderr: %s\nwanted: %s", err, want);
    free(out);
    free(err);
    /* and the missing library is a located error before the run */
    FILE *g = fopen(path, "w");
    fputs("extern fn f(x: int) -> int from \"libsgl-no-such-lib.so.1\"\nfn main() { \"{f(1)}\" }\n", g);
    fclose(g);
    assert_int_equal(sglc_run(path, &out, &err), 1);
    snprintf(want, sizeof want, "%s:1:11: error: cannot open library 'libsgl-no-such-lib.so.1'", path);
    assert_non_null(strstr(err, want));
    free(out);
    free(err);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_libc_libm),
        cmocka_unit_test(test_testlib_types),
        cmocka_unit_test(test_error_convention),
        cmocka_unit_test(test_missing_library_and_symbol),
        cmocka_unit_test(test_bad_signatures),
        cmocka_unit_test(test_run_end_to_end),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

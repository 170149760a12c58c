/* test_status.c -- status names and the SglErr formatter. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "runtime/status.h"

static void test_names(void **state)
{
    (void)state;
    for (int s = 0; s > SGL_STATUS_MIN_; s--)
        assert_string_not_equal(sgl_status_str((SglStatus)s), "unknown status");
    assert_string_equal(sgl_status_str((SglStatus)-100), "unknown status");
}

static void test_err_format(void **state)
{
    (void)state;
    SglErr e = {{0}};
    assert_int_equal(sgl_err(&e, SGL_E_FORMAT, "%s: bad %d", "x.json", 3), SGL_E_FORMAT);
    assert_string_equal(e.msg, "x.json: bad 3");
    assert_int_equal(sgl_err(NULL, SGL_E_IO, "ignored"), SGL_E_IO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_err_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

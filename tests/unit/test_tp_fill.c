/* test_tp_fill.c -- the identity the CUDA runner's tensor-parallel dummy
 * weights rely on (runtime/runner_cuda.c fill_dummy): element i of a device
 * dummy fill depends on (seed, i/4, i%4) only, so a rank that holds the
 * elements [i0, i0 + n) of a tensor, i0 a multiple of 4, gets exactly the
 * tp = 1 values by filling n elements with the seed advanced by i0/4 lane
 * steps. Checked on the fill's C reference (kernels/ref/fill_ref.c, bit-exact
 * with kernels/fill.cu); the GPU side is tests/gpu/check_tp.py's dummy run. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "kernels/ref/ref.h"

#define LANE_STEP 0x9E3779B97F4A7C15ull /* as runner_cuda.c's FILL_LANE_STEP */

static void test_seed_advance_is_an_offset(void **state)
{
    (void)state;
    static const uint64_t seeds[] = {0, 1, 0x1234567890abcdefull, ~0ull};
    static const int64_t offs[] = {0, 4, 256, 1501 * 512, 4096ll * 14336, (1ll << 40) + 8};
    for (size_t s = 0; s < sizeof seeds / sizeof seeds[0]; s++)
        for (size_t o = 0; o < sizeof offs / sizeof offs[0]; o++)
            for (int64_t i = 0; i < 67; i++) {
                uint64_t adv = seeds[s] + LANE_STEP * (uint64_t)(offs[o] / 4);
                float whole = sgl_ref_fill_value(seeds[s], offs[o] + i, 0.0346f);
                float part = sgl_ref_fill_value(adv, i, 0.0346f);
                if (memcmp(&whole, &part, 4))
                    fail_msg("seed %zu, offset %lld, element %lld: %g vs %g", s, (long long)offs[o],
                             (long long)i, whole, part);
            }
}

/* Offsets that are not multiples of 4 shift the lane: the runner fills those
 * parts through a whole-tensor scratch copy instead (this is why). */
static void test_odd_offset_needs_scratch(void **state)
{
    (void)state;
    int differ = 0;
    for (int64_t i = 0; i < 64; i++) {
        float whole = sgl_ref_fill_value(7, 2 + i, 1.0f), part = sgl_ref_fill_value(7, i, 1.0f);
        differ += whole != part;
    }
    assert_true(differ > 32);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seed_advance_is_an_offset),
        cmocka_unit_test(test_odd_offset_needs_scratch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_stop.c -- stop-string matcher: matches across pushes, earliest stop
 * wins, hold-back of possible stop prefixes, release at finish, and a
 * randomized check against a naive reference over many chunkings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "runtime/sampler.h"

/* Everything streamed so far, as a caller would assemble it. */
typedef struct {
    char out[4096];
    size_t len;
} Stream;

/* Pushes one piece, appends the released bytes to st, checks that the released
 * text is a prefix of buf and that held-back bytes never exceed max_len - 1. */
static size_t push(SglStopMatcher *m, Stream *st, const char *piece)
{
    size_t before = m->emitted, safe = 99999;
    assert_int_equal(sgl_stop_push(m, piece, strlen(piece), &safe), SGL_OK);
    assert_int_equal(m->emitted, before + safe);
    assert_true(st->len + safe < sizeof st->out);
    memcpy(st->out + st->len, m->buf + before, safe);
    st->len += safe;
    st->out[st->len] = '\0';
    assert_true(m->emitted <= m->len);
    assert_memory_equal(st->out, m->buf, st->len);
    if (!m->matched && m->max_len > 0) assert_true(m->len - m->emitted <= m->max_len - 1);
    return safe;
}

static void finish(SglStopMatcher *m, Stream *st)
{
    size_t before = m->emitted, n = sgl_stop_finish(m);
    memcpy(st->out + st->len, m->buf + before, n);
    st->len += n;
    st->out[st->len] = '\0';
}

static void test_split_over_three_pushes(void **state)
{
    (void)state;
    const char *stops[] = {"<|end|>"};
    SglStopMatcher m;
    Stream st = {{0}, 0};
    assert_int_equal(sgl_stop_init(&m, stops, 1), SGL_OK);
    assert_int_equal(push(&m, &st, "Hello <|"), 6);  /* "<|" held back */
    assert_false(m.matched);
    assert_int_equal(push(&m, &st, "en"), 0);
    assert_false(m.matched);
    assert_int_equal(push(&m, &st, "d|> more"), 0);
    assert_true(m.matched);
    assert_string_equal(m.buf, "Hello ");
    assert_string_equal(st.out, "Hello ");
    assert_int_equal(sgl_stop_finish(&m), 0);
    /* text after a match is ignored */
    size_t safe = 7;
    assert_int_equal(sgl_stop_push(&m, "xyz", 3, &safe), SGL_OK);
    assert_int_equal(safe, 0);
    assert_string_equal(m.buf, "Hello ");
    sgl_stop_deinit(&m);
}

static void test_overlapping_candidates(void **state)
{
    (void)state;
    SglStopMatcher m;
    Stream st = {{0}, 0};
    /* "ab" completes one byte before "abc" would: it wins */
    const char *s1[] = {"abc", "ab"};
    assert_int_equal(sgl_stop_init(&m, s1, 2), SGL_OK);
    push(&m, &st, "xa");
    assert_string_equal(st.out, "x");
    push(&m, &st, "bc");
    assert_true(m.matched);
    assert_string_equal(m.buf, "x");
    sgl_stop_deinit(&m);

    /* a failed partial match of "abc" restarts correctly (KMP fallback) */
    const char *s2[] = {"abc"};
    st = (Stream){{0}, 0};
    assert_int_equal(sgl_stop_init(&m, s2, 1), SGL_OK);
    assert_int_equal(push(&m, &st, "ab"), 0);
    assert_int_equal(push(&m, &st, "ab"), 2);       /* first "ab" can no longer start "abc" */
    push(&m, &st, "c!");
    assert_true(m.matched);
    assert_string_equal(m.buf, "ab");
    sgl_stop_deinit(&m);

    /* both complete on the same byte: the longer one (earlier start) wins */
    const char *s3[] = {"bc", "abc"};
    st = (Stream){{0}, 0};
    assert_int_equal(sgl_stop_init(&m, s3, 2), SGL_OK);
    push(&m, &st, "zab");
    push(&m, &st, "c");
    assert_true(m.matched);
    assert_int_equal(m.matched_stop, 1);   /* "abc" */
    assert_string_equal(m.buf, "z");
    sgl_stop_deinit(&m);

    /* self-overlapping stop "aab" inside "aaab" */
    const char *s4[] = {"aab"};
    st = (Stream){{0}, 0};
    assert_int_equal(sgl_stop_init(&m, s4, 1), SGL_OK);
    push(&m, &st, "a");
    push(&m, &st, "a");
    push(&m, &st, "a");
    assert_string_equal(st.out, "a");
    push(&m, &st, "b");
    assert_true(m.matched);
    assert_string_equal(m.buf, "a");
    sgl_stop_deinit(&m);
}

static void test_multiple_stops_earliest_wins(void **state)
{
    (void)state;
    const char *stops[] = {"STOP", "END", "\n\n"};
    SglStopMatcher m;
    Stream st = {{0}, 0};
    assert_int_equal(sgl_stop_init(&m, stops, 3), SGL_OK);
    assert_int_equal(m.max_len, 4);
    push(&m, &st, "foo EN");
    assert_string_equal(st.out, "foo ");
    assert_int_equal(m.matched_stop, -1);
    push(&m, &st, "D bar STOP\n\n");
    assert_true(m.matched);
    assert_int_equal(m.matched_stop, 1);
    assert_string_equal(m.buf, "foo ");
    assert_string_equal(st.out, "foo ");
    sgl_stop_deinit(&m);
}

static void test_stop_at_start(void **state)
{
    (void)state;
    const char *stops[] = {"STOP"};
    SglStopMatcher m;
    Stream st = {{0}, 0};
    assert_int_equal(sgl_stop_init(&m, stops, 1), SGL_OK);
    assert_int_equal(push(&m, &st, "STOPxyz"), 0);
    assert_true(m.matched);
    assert_int_equal(m.len, 0);
    assert_string_equal(m.buf, "");
    sgl_stop_deinit(&m);
}

static void test_no_stop_and_finish_releases_tail(void **state)
{
    (void)state;
    const char *stops[] = {"</s>"};
    SglStopMatcher m;
    Stream st = {{0}, 0};
    assert_int_equal(sgl_stop_init(&m, stops, 1), SGL_OK);
    assert_int_equal(push(&m, &st, "abc<"), 3);
    assert_int_equal(push(&m, &st, "/"), 0);
    assert_string_equal(st.out, "abc");
    finish(&m, &st);
    assert_false(m.matched);
    assert_string_equal(st.out, "abc</");
    assert_string_equal(m.buf, "abc</");
    sgl_stop_deinit(&m);

    /* zero stops: everything streams at once */
    st = (Stream){{0}, 0};
    assert_int_equal(sgl_stop_init(&m, NULL, 0), SGL_OK);
    assert_int_equal(push(&m, &st, "plain text"), 10);
    assert_int_equal(sgl_stop_finish(&m), 0);
    sgl_stop_deinit(&m);
}

static void test_utf8(void **state)
{
    (void)state;
    const char *stops[] = {"\xe2\x80\x94", "ñandú"};  /* em dash, "ñandú" */
    SglStopMatcher m;
    Stream st = {{0}, 0};
    assert_int_equal(sgl_stop_init(&m, stops, 2), SGL_OK);
    push(&m, &st, "héllo piña ");
    assert_string_equal(st.out, "héllo piña ");
    push(&m, &st, "ñan");                /* could be the start of "ñandú": held */
    assert_string_equal(st.out, "héllo piña ");
    push(&m, &st, "a wörld");            /* not after all: released */
    assert_string_equal(st.out, "héllo piña ñana wörld");
    push(&m, &st, "\xe2\x80");           /* half an em dash held */
    assert_string_equal(st.out, "héllo piña ñana wörld");
    push(&m, &st, "\x94rest");
    assert_true(m.matched);
    assert_string_equal(m.buf, "héllo piña ñana wörld");
    sgl_stop_deinit(&m);
}

static void test_init_errors(void **state)
{
    (void)state;
    SglStopMatcher m;
    const char *empty[] = {""};
    const char *null1[] = {NULL};
    char longs[SGL_MAX_STOP_LEN + 2];
    memset(longs, 'x', sizeof longs - 1);
    longs[sizeof longs - 1] = '\0';
    const char *toolong[] = {"ok", longs};
    const char *many[SGL_MAX_STOP + 1];
    for (int i = 0; i <= SGL_MAX_STOP; i++) many[i] = "x";
    assert_int_equal(sgl_stop_init(&m, empty, 1), SGL_E_INVAL);
    assert_int_equal(sgl_stop_init(&m, null1, 1), SGL_E_INVAL);
    assert_int_equal(sgl_stop_init(&m, toolong, 2), SGL_E_INVAL);
    assert_int_equal(sgl_stop_init(&m, many, SGL_MAX_STOP + 1), SGL_E_INVAL);
    assert_int_equal(sgl_stop_init(&m, many, -1), SGL_E_INVAL);
    assert_int_equal(sgl_stop_init(&m, NULL, 2), SGL_E_INVAL);
    longs[SGL_MAX_STOP_LEN] = '\0';   /* exactly the limit is fine */
    assert_int_equal(sgl_stop_init(&m, toolong, 2), SGL_OK);
    assert_int_equal(m.max_len, SGL_MAX_STOP_LEN);
    sgl_stop_deinit(&m);
}

/* Naive reference: the first byte position at which some stop ends; on a tie
 * the longest stop. Returns the cut (start of the stop) or -1. */
static long naive_cut(const char *text, size_t len, const char *const *stops, int n)
{
    for (size_t end = 1; end <= len; end++) {
        long best = -1;
        for (int i = 0; i < n; i++) {
            size_t l = strlen(stops[i]);
            if (l <= end && memcmp(text + end - l, stops[i], l) == 0 &&
                (best < 0 || (long)(end - l) < best))
                best = (long)(end - l);
        }
        if (best >= 0) return best;
    }
    return -1;
}

/* Random texts over {a,b,c}, random stops, random chunkings: the result and
 * the streamed text must equal the naive reference, and the held-back tail
 * must be exactly the longest suffix that is a proper prefix of a stop. */
static void test_random_against_naive(void **state)
{
    (void)state;
    uint64_t rs = 12345;
    for (int iter = 0; iter < 3000; iter++) {
        char stop_store[4][8];
        const char *stops[4];
        rs = rs * 6364136223846793005ull + 1442695040888963407ull;
        int n_stops = 1 + (int)((rs >> 33) % 3);
        for (int i = 0; i < n_stops; i++) {
            rs = rs * 6364136223846793005ull + 1442695040888963407ull;
            int l = 1 + (int)((rs >> 33) % 4);
            for (int k = 0; k < l; k++) {
                rs = rs * 6364136223846793005ull + 1442695040888963407ull;
                stop_store[i][k] = (char)('a' + (rs >> 33) % 3);
            }
            stop_store[i][l] = '\0';
            stops[i] = stop_store[i];
        }
        char text[64];
        rs = rs * 6364136223846793005ull + 1442695040888963407ull;
        size_t tlen = 1 + (rs >> 33) % 40;
        for (size_t k = 0; k < tlen; k++) {
            rs = rs * 6364136223846793005ull + 1442695040888963407ull;
            text[k] = (char)('a' + (rs >> 33) % 3);
        }
        text[tlen] = '\0';
        long cut = naive_cut(text, tlen, stops, n_stops);

        SglStopMatcher m;
        Stream st = {{0}, 0};
        assert_int_equal(sgl_stop_init(&m, stops, n_stops), SGL_OK);
        size_t off = 0;
        while (off < tlen && !m.matched) {
            rs = rs * 6364136223846793005ull + 1442695040888963407ull;
            size_t piece = 1 + (rs >> 33) % 5;
            if (piece > tlen - off) piece = tlen - off;
            char buf[8];
            memcpy(buf, text + off, piece);
            buf[piece] = '\0';
            push(&m, &st, buf);
            off += piece;
            if (!m.matched) {
                /* held = longest suffix of text[0..off) that is a proper prefix of a stop */
                size_t held = 0;
                for (int i = 0; i < n_stops; i++) {
                    size_t l = strlen(stops[i]);
                    for (size_t h = l - 1; h > held; h--)
                        if (h <= off && memcmp(text + off - h, stops[i], h) == 0) { held = h; break; }
                }
                assert_int_equal(m.len - m.emitted, held);
            }
        }
        if (cut >= 0) {
            assert_true(m.matched);
            size_t ml = strlen(stops[m.matched_stop]);
            assert_memory_equal(text + cut, stops[m.matched_stop], ml);
            assert_int_equal(m.len, (size_t)cut);
            assert_memory_equal(m.buf, text, (size_t)cut);
        } else {
            assert_false(m.matched);
            finish(&m, &st);
            assert_int_equal(st.len, tlen);
            assert_memory_equal(st.out, text, tlen);
        }
        sgl_stop_deinit(&m);
    }
}

/* A long generation: the buffer grows and the per-push work stays local. */
static void test_long_text(void **state)
{
    (void)state;
    const char *stops[] = {"the end."};
    SglStopMatcher m;
    assert_int_equal(sgl_stop_init(&m, stops, 1), SGL_OK);
    size_t total = 0, safe;
    for (int i = 0; i < 20000; i++) {
        assert_int_equal(sgl_stop_push(&m, "the en", 6, &safe), SGL_OK);
        total += safe;
    }
    assert_false(m.matched);
    assert_int_equal(total + 6, 6 * 20000);   /* only the last "the en" held */
    assert_int_equal(sgl_stop_push(&m, "d.", 2, &safe), SGL_OK);
    assert_int_equal(safe, 0);
    assert_true(m.matched);
    assert_int_equal(m.len, 6 * 19999);
    sgl_stop_deinit(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_over_three_pushes),
        cmocka_unit_test(test_overlapping_candidates),
        cmocka_unit_test(test_multiple_stops_earliest_wins),
        cmocka_unit_test(test_stop_at_start),
        cmocka_unit_test(test_no_stop_and_finish_releases_tail),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_init_errors),
        cmocka_unit_test(test_random_against_naive),
        cmocka_unit_test(test_long_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

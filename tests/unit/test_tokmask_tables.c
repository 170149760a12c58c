/* test_tokmask_tables.c -- precomputed token tables (sglc build --model).
 *
 * With the stories260K (SentencePiece) and SmolLM2 (49k byte-level BPE)
 * tokenizers from $SGL_SHARED_DIR (skipped with exit 77 when both are
 * absent), for regex and JSON-schema constraints:
 *  - serialize -> load gives, for every reachable state, the mask and the
 *    forced string a lazily computed TokFsm gives, with no mask computed
 *    (walk counter 0), also through the registry (tokreg_load_tables, then
 *    tokreg_lock finds the loaded TokFsm);
 *  - tables for another vocabulary or another DFA are refused (SGL_E_INVAL,
 *    message naming both hashes); over the cap nothing is produced;
 *  - damaged tables are refused with SGL_E_FORMAT, never read out of bounds
 *    (run under ASan): every truncation, every single-byte flip, and
 *    checksum-fixed mutations (a version change, a trailing byte, entry and
 *    mask counts, random bytes) that the structure checks must catch.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "ir/fsm/jsonschema.h"
#include "ir/fsm/regex.h"
#include "runtime/tokenizer.h"
#include "runtime/tokmask.h"

static SglTokenizer *g_tok[2];
static const char *const TOK_DIRS[2] = {"stories260K-hf", "smollm2-135m-tokenizer"};

static const char *const REGEXES[] = {
    "\\+[0-9]{1,3} [0-9]{3}-[0-9]{4}",
    "(yes|no|maybe)",
    "-?(0|[1-9][0-9]*)",
    "\"[^\"]{0,8}\"",
    "The (cat|dog) sat on the (mat|log)\\.",
};

static const char *const SCHEMAS[] = {
    "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\",\"maxLength\":10},"
    "\"age\":{\"type\":\"integer\"},\"tags\":{\"type\":\"array\",\"items\":{\"enum\":[\"a\",\"bc\"]},"
    "\"maxItems\":3},\"pet\":{\"type\":\"object\",\"properties\":{\"kind\":{\"enum\":[\"cat\",\"dog\"]},"
    "\"ok\":{\"type\":\"boolean\"}},\"required\":[\"kind\"]}},\"required\":[\"name\",\"age\",\"pet\"]}",
};

#define N_REGEX (sizeof REGEXES / sizeof *REGEXES)
#define N_DFAS (N_REGEX + sizeof SCHEMAS / sizeof *SCHEMAS)

static SglDfa *make_dfa(size_t i)
{
    FsmErr err;
    SglDfa *d = NULL;
    if (i < N_REGEX) {
        assert_int_equal(regex_compile(REGEXES[i], strlen(REGEXES[i]), NULL, &d, NULL, &err), SGL_OK);
    } else {
        json_error_t jerr;
        json_t *s = json_loads(SCHEMAS[i - N_REGEX], 0, &jerr);
        assert_non_null(s);
        assert_int_equal(jsonschema_compile(s, NULL, NULL, &d, &err), SGL_OK);
        json_decref(s);
    }
    return d;
}

/* reach[s] = 1 for states reachable from the start; returns how many. */
static int32_t reachable(const SglDfa *d, uint8_t *reach)
{
    int32_t *q = malloc((size_t)d->n_states * sizeof *q), qh = 0, qt = 0;
    assert_non_null(q);
    memset(reach, 0, (size_t)d->n_states);
    reach[d->start] = 1;
    q[qt++] = d->start;
    while (qh < qt) {
        int32_t s = q[qh++];
        for (int32_t c = 0; c < d->n_classes; c++) {
            int32_t u = d->trans[(size_t)s * d->n_classes + c];
            if (u >= 0 && !reach[u]) {
                reach[u] = 1;
                q[qt++] = u;
            }
        }
    }
    free(q);
    return qt;
}

/* Every reachable state of `loaded` has lazy's mask and forced string,
 * served from the cache (no walk). */
static void check_same(const SglDfa *d, const TokFsm *lazy, const TokFsm *loaded)
{
    int32_t nw = tokfsm_n_words(lazy);
    assert_int_equal(tokfsm_n_words(loaded), nw);
    uint32_t *a = malloc((size_t)nw * 4), *b = malloc((size_t)nw * 4);
    uint8_t *reach = malloc((size_t)d->n_states);
    assert_true(a && b && reach);
    int32_t n_reach = reachable(d, reach), n_checked = 0;
    for (int32_t s = 0; s < d->n_states; s++) {
        if (!reach[s])
            continue;
        assert_true(tokfsm_cached(loaded, s));
        TokCursor ca = {lazy, s, false}, cb = {loaded, s, false};
        tokmask_fill(&ca, a);
        tokmask_fill(&cb, b);
        if (memcmp(a, b, (size_t)nw * 4) != 0)
            fail_msg("state %d: the loaded mask differs from the computed one", s);
        const char *fa, *fb;
        size_t la, lb;
        assert_int_equal(tokmask_forced(&ca, &fa, &la), tokmask_forced(&cb, &fb, &lb));
        assert_int_equal(la, lb);
        assert_memory_equal(fa, fb, la);
        n_checked++;
    }
    assert_int_equal(n_checked, n_reach);
    uint64_t hits, walks;
    tokfsm_counters(loaded, &hits, &walks);
    assert_int_equal(walks, 0);
    assert_int_equal(hits, (uint64_t)n_reach);
    free(a);
    free(b);
    free(reach);
}

static void test_round_trip(void **state)
{
    (void)state;
    for (int ti = 0; ti < 2; ti++) {
        if (!g_tok[ti])
            continue;
        TokVocab *v;
        SglErr err;
        assert_int_equal(tokvocab_new(g_tok[ti], &v, &err), SGL_OK);
        for (size_t di = 0; di < N_DFAS; di++) {
            SglDfa *d = make_dfa(di);
            uint8_t *buf;
            size_t len;
            TokTablesInfo info;
            assert_int_equal(tokmask_tables_serialize(d, v, (size_t)64 << 20, &buf, &len, &info, &err),
                             SGL_OK);
            assert_int_equal(info.n_bytes, len);
            uint8_t reach[4096];
            assert_true(d->n_states <= 4096);
            assert_int_equal(info.n_states, reachable(d, reach));
            assert_true(info.n_masks >= 1 && info.n_masks <= info.n_states);
            printf("  %s, constraint %zu: %d states, %d distinct masks, %zu bytes (bitmaps: %zu)\n",
                   TOK_DIRS[ti], di, info.n_states, info.n_masks, len,
                   (size_t)info.n_states * (size_t)tokvocab_size(v) / 8);
            TokFsm *lazy, *loaded;
            assert_int_equal(tokfsm_new(d, v, &lazy, &err), SGL_OK);
            assert_int_equal(tokfsm_new_from_tables(d, v, buf, len, &loaded, &err), SGL_OK);
            check_same(d, lazy, loaded);
            /* through the registry: the loaded TokFsm is the one lock finds */
            TokRegistry *reg = tokreg_new();
            assert_non_null(reg);
            assert_int_equal(tokreg_load_tables(reg, d, g_tok[ti], buf, len, &err), SGL_OK);
            assert_int_equal(tokreg_load_tables(reg, d, g_tok[ti], buf, len, &err), SGL_OK);
            assert_int_equal(tokreg_n_fsms(reg), 1);
            TokFsm *f;
            assert_int_equal(tokreg_lock(reg, d, g_tok[ti], &f, &err), SGL_OK);
            assert_int_equal(tokreg_n_fsms(reg), 1);
            check_same(d, lazy, f);
            uint64_t hits, walks;
            tokreg_counters(reg, &hits, &walks);
            assert_int_equal(walks, 0);
            assert_true(hits > 0);
            tokreg_unlock(reg, f);
            /* a constraint without tables in the same registry: its masks
             * are computed (the registry's vocab gets its trie then) */
            SglDfa *d2 = make_dfa((di + 1) % N_DFAS);
            TokFsm *lazy2, *f2;
            assert_int_equal(tokfsm_new(d2, v, &lazy2, &err), SGL_OK);
            assert_int_equal(tokreg_lock(reg, d2, g_tok[ti], &f2, &err), SGL_OK);
            assert_int_equal(tokreg_n_fsms(reg), 2);
            int32_t nw = tokfsm_n_words(lazy2);
            uint32_t *m1 = malloc((size_t)nw * 4), *m2 = malloc((size_t)nw * 4);
            uint8_t reach2[4096];
            assert_true(m1 && m2 && d2->n_states <= 4096);
            reachable(d2, reach2);
            for (int32_t s2 = 0; s2 < d2->n_states; s2++) {
                if (!reach2[s2])
                    continue;
                TokCursor c1 = {lazy2, s2, false}, c2 = {f2, s2, false};
                tokmask_fill(&c1, m1);
                tokmask_fill(&c2, m2);
                assert_memory_equal(m1, m2, (size_t)nw * 4);
            }
            tokfsm_counters(f2, &hits, &walks);
            assert_true(walks > 0);
            free(m1);
            free(m2);
            tokreg_unlock(reg, f2);
            tokfsm_free(lazy2);
            sgl_dfa_free(d2);
            tokreg_free(reg);
            /* the cap: nothing comes back */
            uint8_t *none = (uint8_t *)"x";
            size_t nlen = 1;
            assert_int_equal(tokmask_tables_serialize(d, v, 80, &none, &nlen, &info, &err),
                             SGL_E_UNSUPPORTED);
            assert_null(none);
            assert_int_equal(nlen, 0);
            assert_non_null(strstr(err.msg, "cap"));
            tokfsm_free(lazy);
            tokfsm_free(loaded);
            free(buf);
            sgl_dfa_free(d);
        }
        tokvocab_free(v);
    }
}

static void test_mismatch_refused(void **state)
{
    (void)state;
    if (!g_tok[0] || !g_tok[1]) {
        printf("  (needs both tokenizers)\n");
        return;
    }
    TokVocab *v0, *v1;
    SglErr err;
    assert_int_equal(tokvocab_new(g_tok[0], &v0, &err), SGL_OK);
    assert_int_equal(tokvocab_new(g_tok[1], &v1, &err), SGL_OK);
    SglDfa *a = make_dfa(0), *b = make_dfa(1);
    uint8_t *buf;
    size_t len;
    TokTablesInfo info;
    assert_int_equal(tokmask_tables_serialize(a, v0, (size_t)64 << 20, &buf, &len, &info, &err), SGL_OK);
    TokFsm *f = (TokFsm *)&err;
    assert_int_equal(tokfsm_new_from_tables(a, v1, buf, len, &f, &err), SGL_E_INVAL);
    assert_null(f);
    assert_non_null(strstr(err.msg, "another tokenizer"));
    char want[32];
    snprintf(want, sizeof want, "%016llx", (unsigned long long)tokvocab_hash(v1));
    assert_non_null(strstr(err.msg, want));
    assert_int_equal(tokfsm_new_from_tables(b, v0, buf, len, &f, &err), SGL_E_INVAL);
    assert_non_null(strstr(err.msg, "another constraint automaton"));
    /* through the registry: nothing registered */
    TokRegistry *reg = tokreg_new();
    assert_int_equal(tokreg_load_tables(reg, a, g_tok[1], buf, len, &err), SGL_E_INVAL);
    assert_int_equal(tokreg_n_fsms(reg), 0);
    tokreg_free(reg);
    free(buf);
    sgl_dfa_free(a);
    sgl_dfa_free(b);
    tokvocab_free(v0);
    tokvocab_free(v1);
}

/* The checksum as tokmask.c defines it: FNV-1a 64 of [0, 56) and [64, len). */
static void fix_checksum(uint8_t *p, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++)
        if (i < 56 || i >= 64)
            h = (h ^ p[i]) * 0x100000001b3ull;
    for (int i = 0; i < 8; i++)
        p[56 + i] = (uint8_t)(h >> (8 * i));
}

static SglStatus load(const SglDfa *d, const TokVocab *v, const uint8_t *p, size_t len, SglErr *err)
{
    /* an exact-size copy, so ASan sees any read past the end */
    uint8_t *c = malloc(len ? len : 1);
    assert_non_null(c);
    memcpy(c, p, len);
    TokFsm *f = NULL;
    SglStatus st = tokfsm_new_from_tables(d, v, c, len, &f, err);
    assert_true((st == SGL_OK) == (f != NULL));
    tokfsm_free(f);
    free(c);
    return st;
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void test_corruption_refused(void **state)
{
    (void)state;
    int ti = g_tok[0] ? 0 : 1;
    TokVocab *v;
    SglErr err;
    assert_int_equal(tokvocab_new(g_tok[ti], &v, &err), SGL_OK);
    for (size_t di = 0; di < N_DFAS; di++) {
        SglDfa *d = make_dfa(di);
        uint8_t *buf;
        size_t len;
        TokTablesInfo info;
        assert_int_equal(tokmask_tables_serialize(d, v, (size_t)64 << 20, &buf, &len, &info, &err),
                         SGL_OK);
        assert_int_equal(load(d, v, buf, len, &err), SGL_OK);
        /* every truncation */
        for (size_t n = 0; n < len; n++)
            if (load(d, v, buf, n, &err) != SGL_E_FORMAT)
                fail_msg("constraint %zu: truncated to %zu of %zu bytes: not refused", di, n, len);
        /* every single-byte flip (the checksum catches it) */
        uint8_t *m = malloc(len + 1);
        assert_non_null(m);
        size_t stride = len > 4096 ? len / 4096 : 1;
        for (size_t i = 0; i < len; i += stride) {
            memcpy(m, buf, len);
            m[i] ^= 0x5a;
            if (load(d, v, m, len, &err) != SGL_E_FORMAT)
                fail_msg("constraint %zu: byte %zu flipped: not refused", di, i);
        }
        /* checksum-fixed structural damage */
        memcpy(m, buf, len);
        put32(m + 8, 2);
        fix_checksum(m, len);
        assert_int_equal(load(d, v, m, len, &err), SGL_E_FORMAT);
        assert_non_null(strstr(err.msg, "version"));
        memcpy(m, buf, len);
        m[len] = 0;
        fix_checksum(m, len + 1);
        assert_int_equal(load(d, v, m, len + 1, &err), SGL_E_FORMAT);
        for (int field = 44; field <= 48; field += 4)
            for (int delta = -1; delta <= 1; delta += 2) {
                memcpy(m, buf, len);
                uint32_t x = (uint32_t)m[field] | (uint32_t)m[field + 1] << 8 |
                             (uint32_t)m[field + 2] << 16 | (uint32_t)m[field + 3] << 24;
                put32(m + field, x + (uint32_t)delta);
                fix_checksum(m, len);
                if (load(d, v, m, len, &err) != SGL_E_FORMAT)
                    fail_msg("constraint %zu: header field at %d changed by %d: not refused", di,
                             field, delta);
            }
        /* random body bytes with a valid checksum: refused or, where the
         * result is still well-formed, loaded; never a crash */
        srand(1234 + (unsigned)di);
        int refused = 0;
        for (int it = 0; it < 300 && len > 64; it++) {
            memcpy(m, buf, len);
            for (int k = 0; k < 1 + it % 3; k++)
                m[64 + (size_t)rand() % (len - 64)] = (uint8_t)rand();
            fix_checksum(m, len);
            SglStatus st = load(d, v, m, len, &err);
            assert_true(st == SGL_OK || st == SGL_E_FORMAT);
            refused += st == SGL_E_FORMAT;
        }
        printf("  constraint %zu (%zu bytes): %d of 300 random checksum-fixed mutations refused\n",
               di, len, refused);
        free(m);
        free(buf);
        sgl_dfa_free(d);
    }
    tokvocab_free(v);
}

int main(void)
{
    const char *shared = getenv("SGL_SHARED_DIR");
    int found = 0;
    for (int i = 0; i < 2; i++) {
        char path[1024];
        SglErr err;
        snprintf(path, sizeof path, "%s/models/%s", shared ? shared : "../shared", TOK_DIRS[i]);
        if (sgl_tokenizer_load(path, &g_tok[i], &err) == SGL_OK) {
            found++;
        } else {
            g_tok[i] = NULL;
            printf("note: %s not loaded (%s); testing without it\n", TOK_DIRS[i], err.msg);
        }
    }
    if (found == 0) {
        printf("skipped: no tokenizer under %s/models (stories260K-hf, smollm2-135m-tokenizer)\n",
               shared ? shared : "../shared");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_mismatch_refused),
        cmocka_unit_test(test_corruption_refused),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    for (int i = 0; i < 2; i++)
        sgl_tokenizer_free(g_tok[i]);
    return rc;
}

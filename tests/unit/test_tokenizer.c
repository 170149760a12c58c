/* test_tokenizer.c -- the tokenizer against Hugging Face / sentencepiece goldens.
 *
 * Reads $SGL_SHARED_DIR/goldens/tokenizer_goldens.json (skips with 77 when
 * ../shared is absent) and checks, for each of the three tokenizers, every
 * case's ids and decoded text exactly, streaming detokenization token by
 * token and on random id sequences, token bytes, BOS handling, robustness on
 * truncated and mutated tokenizer files, arbitrary input bytes, and the
 * `sglc tokenize` command line.
 *   test_tokenizer --bench [MB [FILE]]   encode speed on a generated text, or on FILE
 *                                        repeated up to MB (not a test)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "runtime/tokenizer.h"

static const char *shared;
static json_t *goldens;

typedef struct {
    const char *name;       /* key in the goldens */
    const char *path;       /* relative to shared */
    const char *prefix;     /* what token bytes add before the text (dummy prefix) */
} Case;

static const Case CASES[3] = {
    {"stories260K", "models/stories260K-hf", " "},
    {"smollm2", "models/smollm2-135m-tokenizer", ""},
    {"llama2_sentencepiece", "models/llama2c-tokenizer32k/tokenizer.model", " "},
};

static SglTokenizer *load_case(const Case *c)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", shared, c->path);
    SglTokenizer *t = NULL;
    SglErr err = {{0}};
    SglStatus st = sgl_tokenizer_load(path, &t, &err);
    if (st != SGL_OK)
        fprintf(stderr, "load %s: %s\n", path, err.msg);
    assert_int_equal(st, SGL_OK);
    return t;
}

static bool valid_utf8(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        unsigned c = u[i];
        size_t l = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (l == 0 || i + l > n)
            return false;
        for (size_t k = 1; k < l; k++)
            if ((u[i + k] & 0xC0) != 0x80)
                return false;
        i += l;
    }
    return true;
}

/* Streams ids through a detokenizer and checks that the pieces are whole
 * UTF-8 and concatenate to the full decode. */
static void check_stream(const SglTokenizer *t, const int32_t *ids, int32_t n, bool skip)
{
    size_t flen;
    char *full = sgl_tokenizer_decode(t, ids, n, skip, &flen);
    assert_non_null(full);
    assert_true(valid_utf8(full, flen));
    SglDetok d;
    sgl_detok_init(&d, t, skip);
    char *acc = malloc(flen + 1);
    size_t alen = 0;
    assert_non_null(acc);
    for (int32_t i = 0; i <= n; i++) {
        char *piece;
        size_t plen;
        SglStatus st = i < n ? sgl_detok_push(&d, ids[i], &piece, &plen)
                             : sgl_detok_flush(&d, &piece, &plen);
        assert_int_equal(st, SGL_OK);
        assert_true(valid_utf8(piece, plen));
        assert_true(alen + plen <= flen);
        memcpy(acc + alen, piece, plen);
        alen += plen;
        free(piece);
    }
    if (alen != flen || memcmp(acc, full, flen) != 0) {
        fprintf(stderr, "stream '%.*s'\n  full '%s'\n", (int)alen, acc, full);
        fail();
    }
    sgl_detok_deinit(&d);
    free(acc);
    free(full);
}

static void run_goldens(const Case *c)
{
    SglTokenizer *t = load_case(c);
    json_t *arr = json_object_get(json_object_get(goldens, "tokenizers"), c->name);
    assert_true(json_array_size(arr) > 0);
    int bad = 0;
    for (size_t i = 0; i < json_array_size(arr); i++) {
        json_t *cs = json_array_get(arr, i), *gids = json_object_get(cs, "ids");
        const char *text = json_string_value(json_object_get(cs, "text"));
        size_t tlen = json_string_length(json_object_get(cs, "text"));
        const char *want = json_string_value(json_object_get(cs, "decoded"));
        int32_t *ids, n;
        assert_int_equal(sgl_tokenizer_encode(t, text, tlen, false, &ids, &n), SGL_OK);
        bool same = (size_t)n == json_array_size(gids);
        for (int32_t k = 0; same && k < n; k++)
            same = ids[k] == json_integer_value(json_array_get(gids, (size_t)k));
        if (!same) {
            fprintf(stderr, "%s case %zu '%s': ids differ; got", c->name, i, text);
            for (int32_t k = 0; k < n; k++)
                fprintf(stderr, " %d", ids[k]);
            fprintf(stderr, "\n");
            bad++;
        }
        free(ids);
        /* decode the golden ids */
        n = (int32_t)json_array_size(gids);
        ids = malloc(((size_t)n + 1) * sizeof *ids);
        assert_non_null(ids);
        bool special = false;
        for (int32_t k = 0; k < n; k++) {
            ids[k] = (int32_t)json_integer_value(json_array_get(gids, (size_t)k));
            special |= sgl_tokenizer_is_special(t, ids[k]);
        }
        size_t dlen;
        char *dec = sgl_tokenizer_decode(t, ids, n, false, &dlen);
        assert_non_null(dec);
        if (strlen(want) != dlen || memcmp(dec, want, dlen) != 0) {
            fprintf(stderr, "%s case %zu: decoded '%s', want '%s'\n", c->name, i, dec, want);
            bad++;
        }
        free(dec);
        check_stream(t, ids, n, false);
        check_stream(t, ids, n, true);
        /* token bytes of a text without special tokens spell the text */
        if (!special && n > 0) {
            size_t plen = strlen(c->prefix), cap = plen + tlen + 64, len = 0;
            char *cat = malloc(cap);
            assert_non_null(cat);
            for (int32_t k = 0; k < n; k++) {
                size_t bl;
                const char *b = sgl_tokenizer_token_bytes(t, ids[k], &bl);
                if (len + bl <= cap)
                    memcpy(cat + len, b, bl);
                len += bl;
            }
            if (len != plen + tlen || memcmp(cat, c->prefix, plen) != 0 ||
                memcmp(cat + plen, text, tlen) != 0) {
                fprintf(stderr, "%s case %zu: token bytes do not spell the text\n", c->name, i);
                bad++;
            }
            free(cat);
        }
        free(ids);
    }
    assert_int_equal(bad, 0);
    sgl_tokenizer_free(t);
}

static void test_goldens_stories(void **state) { (void)state; run_goldens(&CASES[0]); }
static void test_goldens_smollm2(void **state) { (void)state; run_goldens(&CASES[1]); }
static void test_goldens_llama2(void **state) { (void)state; run_goldens(&CASES[2]); }

/* Random id sequences, byte tokens and specials included, stream exactly. */
static void test_stream_random(void **state)
{
    (void)state;
    srand(1234);
    for (int c = 0; c < 3; c++) {
        SglTokenizer *t = load_case(&CASES[c]);
        int32_t V = sgl_tokenizer_vocab_size(t);
        int32_t bytes[256], nb = 0;
        char name[8];
        for (int b = 0; b < 256; b++) {
            snprintf(name, sizeof name, "<0x%02X>", b);
            int32_t id = sgl_tokenizer_token_id(t, name);
            if (id >= 0)
                bytes[nb++] = id;
        }
        for (int it = 0; it < 300; it++) {
            int32_t ids[40];
            int32_t n = rand() % 40;
            for (int32_t k = 0; k < n; k++) {
                int r = rand() % 10;
                ids[k] = r < 4 && nb ? bytes[rand() % nb] : r == 4 ? rand() % 20
                       : r == 5 ? V + rand() % 5 : rand() % V;
            }
            check_stream(t, ids, n, it & 1);
        }
        sgl_tokenizer_free(t);
    }
}

static void test_special_and_bos(void **state)
{
    (void)state;
    SglTokenizer *s = load_case(&CASES[0]), *m = load_case(&CASES[1]), *l = load_case(&CASES[2]);
    int32_t *ids, n;
    /* stories260K: tokenizer_config add_bos_token -> BOS 1 */
    assert_int_equal(sgl_tokenizer_bos(s), 1);
    assert_int_equal(sgl_tokenizer_eos(s), 2);
    assert_true(sgl_tokenizer_add_bos(s));
    assert_int_equal(sgl_tokenizer_encode(s, "Hello", 5, true, &ids, &n), SGL_OK);
    assert_true(n >= 2);
    assert_int_equal(ids[0], 1);
    free(ids);
    /* SmolLM2: no BOS added; eos from config.json; specials matched in text */
    assert_false(sgl_tokenizer_add_bos(m));
    assert_int_equal(sgl_tokenizer_eos(m), 2);
    assert_int_equal(sgl_tokenizer_token_id(m, "<|im_start|>"), 1);
    assert_true(sgl_tokenizer_is_special(m, 1));
    assert_false(sgl_tokenizer_is_special(m, 100));
    assert_int_equal(sgl_tokenizer_encode(m, "<|im_end|>", 10, true, &ids, &n), SGL_OK);
    assert_int_equal(n, 1);
    assert_int_equal(ids[0], 2);
    char *dec = sgl_tokenizer_decode(m, ids, n, true, NULL);
    assert_string_equal(dec, "");
    free(dec);
    free(ids);
    /* sentencepiece: BOS from trainer_spec, control pieces not matched in text */
    assert_int_equal(sgl_tokenizer_bos(l), 1);
    assert_int_equal(sgl_tokenizer_encode(l, "<s>", 3, true, &ids, &n), SGL_OK);
    assert_true(n > 2);
    assert_int_equal(ids[0], 1);
    assert_int_not_equal(ids[1], 1);
    int32_t two[2] = {1, ids[1]};
    dec = sgl_tokenizer_decode(l, two, 2, true, NULL);
    assert_string_equal(dec, "<");
    free(dec);
    free(ids);
    sgl_tokenizer_free(s);
    sgl_tokenizer_free(m);
    sgl_tokenizer_free(l);
}

/* Arbitrary bytes never crash and always decode to valid UTF-8. */
static void test_arbitrary_bytes(void **state)
{
    (void)state;
    srand(99);
    for (int c = 0; c < 3; c++) {
        SglTokenizer *t = load_case(&CASES[c]);
        for (int it = 0; it < 200; it++) {
            char buf[300];
            size_t n = (size_t)(rand() % (int)sizeof buf);
            for (size_t i = 0; i < n; i++) {
                int r = rand() % 8;
                buf[i] = r == 0 ? 0 : r == 1 ? (char)(0x80 + rand() % 0x80)
                       : r == 2 ? ' ' : (char)(rand() % 256);
            }
            int32_t *ids, m;
            assert_int_equal(sgl_tokenizer_encode(t, buf, n, it & 1, &ids, &m), SGL_OK);
            size_t dl;
            char *d = sgl_tokenizer_decode(t, ids, m, false, &dl);
            assert_non_null(d);
            assert_true(valid_utf8(d, dl));
            check_stream(t, ids, m, false);
            free(d);
            free(ids);
        }
        /* a long text goes through the heap-based merge loop quickly */
        size_t big = 200000;
        char *s = malloc(big);
        assert_non_null(s);
        for (size_t i = 0; i < big; i++)
            s[i] = "ab "[i % 3 == 2 ? 2 : (i / 3) % 2];
        int32_t *ids, m;
        assert_int_equal(sgl_tokenizer_encode(t, s, big, false, &ids, &m), SGL_OK);
        assert_true(m > 0);
        free(ids);
        memset(s, 'a', big);   /* one enormous word */
        assert_int_equal(sgl_tokenizer_encode(t, s, big, false, &ids, &m), SGL_OK);
        assert_true(m > 0 && m <= (int32_t)big + 1);
        free(ids);
        free(s);
        sgl_tokenizer_free(t);
    }
}

/* ---- robustness: broken files ---------------------------------------- */

static char tmpdir[256];

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *p = malloc((size_t)n + 1);
    assert_non_null(p);
    assert_int_equal(fread(p, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    p[n] = 0;
    *len = (size_t)n;
    return p;
}

static void spit(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

/* Loads path; an error must name the file; a success must still work. */
static SglStatus try_load(const char *path)
{
    SglTokenizer *t = NULL;
    SglErr err = {{0}};
    SglStatus st = sgl_tokenizer_load_file(path, &t, &err);
    if (st != SGL_OK) {
        assert_null(t);
        assert_true(st == SGL_E_IO || st == SGL_E_FORMAT || st == SGL_E_UNSUPPORTED);
        if (!strstr(err.msg, path)) {
            fprintf(stderr, "error without the file name: %s\n", err.msg);
            fail();
        }
        return st;
    }
    int32_t *ids, n;
    const char *txt = "Hello, wörld! 123 <s> \xff\xfe";
    assert_int_equal(sgl_tokenizer_encode(t, txt, strlen(txt), true, &ids, &n), SGL_OK);
    char *d = sgl_tokenizer_decode(t, ids, n, false, NULL);
    assert_non_null(d);
    free(d);
    free(ids);
    sgl_tokenizer_free(t);
    return st;
}

static void mutate_file(const char *src, const char *name, bool text, int n_cut, int n_mut)
{
    size_t len;
    char *orig = slurp(src, &len), *buf = malloc(len + 1);
    char path[512];
    assert_non_null(buf);
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    srand(7);
    int n_err = 0;
    /* truncations at many lengths */
    for (int k = 0; k < n_cut; k++) {
        size_t cut = k == 0 ? 0 : (size_t)((double)len * k / n_cut) + (size_t)(rand() % 7);
        if (cut > len)
            cut = len;
        spit(path, orig, cut);
        n_err += try_load(path) != SGL_OK;
    }
    assert_true(n_err >= n_cut - n_cut / 8);   /* nearly every cut is an error */
    /* random byte mutations */
    for (int k = 0; k < n_mut; k++) {
        memcpy(buf, orig, len);
        int m = 1 + rand() % 4;
        for (int j = 0; j < m; j++) {
            size_t at = (size_t)rand() % len;
            buf[at] = text ? "{}[]\",:0a\\ -"[rand() % 12] : (char)(rand() % 256);
        }
        spit(path, buf, len);
        (void)try_load(path);
    }
    unlink(path);
    free(buf);
    free(orig);
}

static void test_broken_files(void **state)
{
    (void)state;
    char src[4096];
    snprintf(tmpdir, sizeof tmpdir, "/tmp/sgl_tok_test_XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    snprintf(src, sizeof src, "%s/models/stories260K-hf/tokenizer.json", shared);
    mutate_file(src, "tokenizer.json", true, 40, 60);
    snprintf(src, sizeof src, "%s/models/llama2c-tokenizer32k/tokenizer.model", shared);
    mutate_file(src, "tokenizer.model", false, 24, 24);

    /* missing file / directory */
    SglTokenizer *t = NULL;
    SglErr err = {{0}};
    assert_int_equal(sgl_tokenizer_load(tmpdir, &t, &err), SGL_E_IO);
    assert_non_null(strstr(err.msg, tmpdir));
    char path[512];
    snprintf(path, sizeof path, "%s/nope.json", tmpdir);
    assert_int_equal(sgl_tokenizer_load_file(path, &t, &err), SGL_E_IO);

    /* an unsupported normalizer is named */
    size_t len;
    snprintf(src, sizeof src, "%s/models/stories260K-hf/tokenizer.json", shared);
    char *orig = slurp(src, &len);
    json_t *root = json_loads(orig, 0, NULL);
    assert_non_null(root);
    json_object_set_new(root, "normalizer", json_pack("{s:s}", "type", "BertNormalizer"));
    snprintf(path, sizeof path, "%s/tokenizer.json", tmpdir);
    assert_int_equal(json_dump_file(root, path, 0), 0);
    assert_int_equal(sgl_tokenizer_load_file(path, &t, &err), SGL_E_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "normalizer"));
    assert_non_null(strstr(err.msg, "BertNormalizer"));
    json_object_set_new(root, "normalizer", json_null());
    json_object_set_new(root, "pre_tokenizer", json_pack("{s:s}", "type", "BertPreTokenizer"));
    assert_int_equal(json_dump_file(root, path, 0), 0);
    assert_int_equal(sgl_tokenizer_load_file(path, &t, &err), SGL_E_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "pre_tokenizer"));
    json_object_set_new(root, "pre_tokenizer", json_null());
    json_object_set_new(json_object_get(root, "model"), "merges",
                        json_pack("[s]", "zz qq"));
    assert_int_equal(json_dump_file(root, path, 0), 0);
    assert_int_equal(sgl_tokenizer_load_file(path, &t, &err), SGL_E_FORMAT);
    assert_non_null(strstr(err.msg, "merges"));
    json_decref(root);
    free(orig);

    /* a bad tokenizer_config.json next to a good tokenizer is named */
    snprintf(src, sizeof src, "%s/models/stories260K-hf/tokenizer.json", shared);
    orig = slurp(src, &len);
    spit(path, orig, len);
    free(orig);
    char cfg[600];
    snprintf(cfg, sizeof cfg, "%s/tokenizer_config.json", tmpdir);
    spit(cfg, "{\"add_bos_token\": 3}", 20);
    assert_int_equal(sgl_tokenizer_load(tmpdir, &t, &err), SGL_E_FORMAT);
    assert_non_null(strstr(err.msg, "add_bos_token"));
    spit(cfg, "{\"add_bos_token\": false, \"bos_token\": \"<s>\"}", 44);
    assert_int_equal(sgl_tokenizer_load(tmpdir, &t, &err), SGL_OK);
    assert_false(sgl_tokenizer_add_bos(t));
    assert_int_equal(sgl_tokenizer_bos(t), 1);
    sgl_tokenizer_free(t);
    unlink(cfg);
    unlink(path);
    rmdir(tmpdir);
}

/* ---- variants of the real files: other pre-tokenizers and decoders --- */

/* Writes root to dir/tokenizer.json and loads it. */
static SglTokenizer *load_variant(json_t *root, const char *dir)
{
    char path[512];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    assert_int_equal(json_dump_file(root, path, 0), 0);
    SglTokenizer *t = NULL;
    SglErr err = {{0}};
    SglStatus st = sgl_tokenizer_load_file(path, &t, &err);
    if (st != SGL_OK)
        fprintf(stderr, "variant: %s\n", err.msg);
    assert_int_equal(st, SGL_OK);
    unlink(path);
    return t;
}

/* Encodes text with both tokenizers and expects the same ids. */
static void same_ids(const SglTokenizer *a, const SglTokenizer *b, const char *text, size_t len)
{
    int32_t *x, *y, nx, ny;
    assert_int_equal(sgl_tokenizer_encode(a, text, len, false, &x, &nx), SGL_OK);
    assert_int_equal(sgl_tokenizer_encode(b, text, len, false, &y, &ny), SGL_OK);
    if (nx != ny || memcmp(x, y, (size_t)nx * sizeof *x) != 0) {
        fprintf(stderr, "variant ids differ on '%.*s'\n", (int)len, text);
        fail();
    }
    free(x);
    free(y);
}

/* SmolLM2 rebuilt as Llama-3 spells its pipeline: Split(regex, Isolated) then
 * ByteLevel(use_regex=false). Same ids on every golden text. */
static void test_variant_split(void **state)
{
    (void)state;
    char dir[] = "/tmp/sgl_tok_var_XXXXXX", src[4096];
    assert_non_null(mkdtemp(dir));
    snprintf(src, sizeof src, "%s/%s/tokenizer.json", shared, CASES[1].path);
    json_t *root = json_load_file(src, 0, NULL);
    assert_non_null(root);
    json_t *pre = json_pack("{s:s,s:[{s:s,s:b},{s:s,s:{s:s},s:s,s:b},{s:s,s:b,s:b}]}",
        "type", "Sequence", "pretokenizers",
        "type", "Digits", "individual_digits", 1,
        "type", "Split", "pattern", "Regex",
        "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+",
        "behavior", "Isolated", "invert", 0,
        "type", "ByteLevel", "add_prefix_space", 0, "use_regex", 0);
    assert_non_null(pre);
    json_object_set_new(root, "pre_tokenizer", pre);
    SglTokenizer *v = load_variant(root, dir), *o = load_case(&CASES[1]);
    json_t *arr = json_object_get(json_object_get(goldens, "tokenizers"), "smollm2");
    for (size_t i = 0; i < json_array_size(arr); i++) {
        json_t *tx = json_object_get(json_array_get(arr, i), "text");
        same_ids(o, v, json_string_value(tx), json_string_length(tx));
    }
    sgl_tokenizer_free(v);
    sgl_tokenizer_free(o);
    json_decref(root);
    rmdir(dir);
}

/* stories260K with Metaspace (prepend always, split) instead of the Prepend +
 * Replace normalizers, and ByteFallback + Metaspace decoders: same ids for
 * ASCII texts that do not start with a space, and the same text back. */
static void test_variant_metaspace(void **state)
{
    (void)state;
    char dir[] = "/tmp/sgl_tok_var_XXXXXX", src[4096];
    assert_non_null(mkdtemp(dir));
    snprintf(src, sizeof src, "%s/%s/tokenizer.json", shared, CASES[0].path);
    json_t *root = json_load_file(src, 0, NULL);
    assert_non_null(root);
    json_object_set_new(root, "normalizer", json_null());
    json_object_set_new(root, "pre_tokenizer", json_pack("{s:s,s:s,s:s,s:b}", "type", "Metaspace",
                        "replacement", "\xE2\x96\x81", "prepend_scheme", "always", "split", 1));
    json_object_set_new(root, "decoder", json_pack("{s:s,s:[{s:s},{s:s,s:s,s:s}]}",
                        "type", "Sequence", "decoders", "type", "ByteFallback", "type",
                        "Metaspace", "replacement", "\xE2\x96\x81", "prepend_scheme", "always"));
    SglTokenizer *v = load_variant(root, dir), *o = load_case(&CASES[0]);
    json_t *arr = json_object_get(json_object_get(goldens, "tokenizers"), "stories260K");
    int n_ascii = 0;
    for (size_t i = 0; i < json_array_size(arr); i++) {
        json_t *tx = json_object_get(json_array_get(arr, i), "text");
        const char *s = json_string_value(tx);
        size_t len = json_string_length(tx);
        bool ascii = len > 0 && !strchr(" \t\n", s[0]) && !strstr(s, "<s>") && !strstr(s, "</s>");
        for (size_t k = 0; k < len; k++)
            ascii &= (unsigned char)s[k] < 0x80 && (unsigned char)s[k] >= 0x20;
        if (!ascii)
            continue;
        same_ids(o, v, s, len);
        int32_t *ids, n;
        assert_int_equal(sgl_tokenizer_encode(v, s, len, false, &ids, &n), SGL_OK);
        char *d = sgl_tokenizer_decode(v, ids, n, false, NULL);
        assert_string_equal(d, s);
        check_stream(v, ids, n, false);
        free(d);
        free(ids);
        n_ascii++;
    }
    assert_true(n_ascii > 10);
    sgl_tokenizer_free(v);
    sgl_tokenizer_free(o);
    json_decref(root);
    rmdir(dir);
}

/* Decoder chains the real files do not use: Replace after Fuse (streamed with
 * a held-back partial match), Strip at both ends, and no decoder at all. */
static void test_variant_decoders(void **state)
{
    (void)state;
    char dir[] = "/tmp/sgl_tok_var_XXXXXX", src[4096];
    assert_non_null(mkdtemp(dir));
    snprintf(src, sizeof src, "%s/%s/tokenizer.json", shared, CASES[0].path);
    json_t *root = json_load_file(src, 0, NULL);
    assert_non_null(root);
    SglTokenizer *o = load_case(&CASES[0]);
    /* 1. the same decoder with Replace moved after Fuse: same text */
    json_object_set_new(root, "decoder", json_pack(
        "{s:s,s:[{s:s},{s:s},{s:s,s:{s:s},s:s},{s:s,s:s,s:i,s:i}]}", "type", "Sequence",
        "decoders", "type", "ByteFallback", "type", "Fuse", "type", "Replace", "pattern",
        "String", "\xE2\x96\x81", "content", " ", "type", "Strip", "content", " ", "start", 1,
        "stop", 0));
    SglTokenizer *v1 = load_variant(root, dir);
    /* 2. a two-character pattern and a trailing Strip: streaming == full decode */
    json_object_set_new(root, "decoder", json_pack(
        "{s:s,s:[{s:s},{s:s},{s:s,s:{s:s},s:s},{s:s,s:s,s:i,s:i}]}", "type", "Sequence",
        "decoders", "type", "ByteFallback", "type", "Fuse", "type", "Replace", "pattern",
        "String", "\xE2\x96\x81t", "content", "#", "type", "Strip", "content",
        "\xE2\x96\x81", "start", 2, "stop", 2));
    SglTokenizer *v2 = load_variant(root, dir);
    /* 3. no decoder: tokens joined with spaces */
    json_object_set_new(root, "decoder", json_null());
    SglTokenizer *v3 = load_variant(root, dir);
    json_t *arr = json_object_get(json_object_get(goldens, "tokenizers"), "stories260K");
    for (size_t i = 0; i < json_array_size(arr); i++) {
        json_t *gids = json_object_get(json_array_get(arr, i), "ids");
        int32_t n = (int32_t)json_array_size(gids), ids[512];
        assert_true(n < 512);
        for (int32_t k = 0; k < n; k++)
            ids[k] = (int32_t)json_integer_value(json_array_get(gids, (size_t)k));
        char *a = sgl_tokenizer_decode(o, ids, n, false, NULL);
        char *b = sgl_tokenizer_decode(v1, ids, n, false, NULL);
        assert_string_equal(a, b);
        free(a);
        free(b);
        check_stream(v1, ids, n, false);
        check_stream(v2, ids, n, false);
        check_stream(v2, ids, n, true);
        check_stream(v3, ids, n, false);
    }
    srand(77);
    for (int it = 0; it < 300; it++) {   /* random ids, byte tokens included */
        int32_t ids[30], n = rand() % 30;
        for (int32_t k = 0; k < n; k++)
            ids[k] = rand() % 3 ? rand() % sgl_tokenizer_vocab_size(o) : 3 + rand() % 256;
        check_stream(v2, ids, n, it & 1);
        check_stream(v3, ids, n, false);
    }
    int32_t two[2] = {sgl_tokenizer_token_id(o, "he"), sgl_tokenizer_token_id(o, "ll")};
    char *j = sgl_tokenizer_decode(v3, two, 2, false, NULL);
    assert_string_equal(j, "he ll");
    free(j);
    sgl_tokenizer_free(v1);
    sgl_tokenizer_free(v2);
    sgl_tokenizer_free(v3);
    sgl_tokenizer_free(o);
    json_decref(root);
    rmdir(dir);
}

/* NFC (Qwen2's normalizer): decomposed input tokenizes as the composed one.
 * Without ICU the file must be refused with a message naming NFC. */
static void test_variant_nfc(void **state)
{
    (void)state;
    char dir[] = "/tmp/sgl_tok_var_XXXXXX", src[4096], path[512];
    assert_non_null(mkdtemp(dir));
    snprintf(src, sizeof src, "%s/%s/tokenizer.json", shared, CASES[1].path);
    json_t *root = json_load_file(src, 0, NULL);
    assert_non_null(root);
    json_object_set_new(root, "normalizer", json_pack("{s:s}", "type", "NFC"));
#ifdef SGL_HAVE_ICU
    SglTokenizer *v = load_variant(root, dir), *o = load_case(&CASES[1]);
    const char *composed = "caf\xC3\xA9 na\xC3\xAFve \xEC\x95\x88";        /* café naïve 안 */
    const char *decomposed = "cafe\xCC\x81 nai\xCC\x88ve \xE1\x84\x8B\xE1\x85\xA1\xE1\x86\xAB";
    same_ids(o, v, composed, strlen(composed));
    int32_t *x, *y, nx, ny;
    assert_int_equal(sgl_tokenizer_encode(v, decomposed, strlen(decomposed), false, &x, &nx), 0);
    assert_int_equal(sgl_tokenizer_encode(o, composed, strlen(composed), false, &y, &ny), 0);
    assert_int_equal(nx, ny);
    assert_memory_equal(x, y, (size_t)nx * sizeof *x);
    free(x);
    free(y);
    sgl_tokenizer_free(v);
    sgl_tokenizer_free(o);
#else
    SglTokenizer *t = NULL;
    SglErr err = {{0}};
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    assert_int_equal(json_dump_file(root, path, 0), 0);
    assert_int_equal(sgl_tokenizer_load_file(path, &t, &err), SGL_E_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "NFC"));
    unlink(path);
#endif
    (void)path;
    json_decref(root);
    rmdir(dir);
}

/* ---- the command line ------------------------------------------------- */

static int run_cmd(const char *cmd, char *out, size_t cap)
{
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = 0;
    int rc = pclose(p);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static void test_cli(void **state)
{
    (void)state;
    const char *sglc = getenv("SGLC");
    if (!sglc || access(sglc, X_OK) != 0) {
        fprintf(stderr, "skipped: SGLC not set\n");
        skip();
    }
    char cmd[8192], out[8192];
    snprintf(cmd, sizeof cmd, "%s tokenize --model %s/models/smollm2-135m-tokenizer "
             "'Hello, world!'", sglc, shared);
    assert_int_equal(run_cmd(cmd, out, sizeof out), 0);
    assert_string_equal(out, "19556 28 905 17\n");
    snprintf(cmd, sizeof cmd, "printf 'a\\000b\\n' | %s tokenize --json --model "
             "%s/models/stories260K-hf --add-special-tokens -", sglc, shared);
    assert_int_equal(run_cmd(cmd, out, sizeof out), 0);
    json_t *j = json_loads(out, JSON_ALLOW_NUL, NULL);
    assert_non_null(j);
    assert_int_equal(json_integer_value(json_array_get(json_object_get(j, "ids"), 0)), 1);
    json_t *dj = json_object_get(j, "decoded");
    assert_int_equal(json_string_length(dj), 8);   /* "<s> a\0b\n" */
    assert_memory_equal(json_string_value(dj), "<s> a\0b\n", 8);
    json_decref(j);
    snprintf(cmd, sizeof cmd, "%s tokenize --model %s/models/llama2c-tokenizer32k/tokenizer.model"
             " 'Hello, world!'", sglc, shared);
    assert_int_equal(run_cmd(cmd, out, sizeof out), 0);
    assert_string_equal(out, "15043 29892 3186 29991\n");
    snprintf(cmd, sizeof cmd, "%s tokenize --help", sglc);
    assert_int_equal(run_cmd(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "--add-special-tokens"));
    snprintf(cmd, sizeof cmd, "%s tokenize 'x' 2>&1", sglc);
    assert_int_equal(run_cmd(cmd, out, sizeof out), 2);
    assert_non_null(strstr(out, "--model"));
    snprintf(cmd, sizeof cmd, "%s tokenize --model /nonexistent/dir 'x' 2>&1", sglc);
    assert_int_equal(run_cmd(cmd, out, sizeof out), 1);
    assert_non_null(strstr(out, "/nonexistent/dir"));
    snprintf(cmd, sizeof cmd, "%s tokenize --model . --bogus 'x' 2>&1", sglc);
    assert_int_equal(run_cmd(cmd, out, sizeof out), 2);
}

/* ---- bench ------------------------------------------------------------ */

static int bench(double mb, const char *file)
{
    size_t n = (size_t)(mb * 1e6);
    char *s = malloc(n + 1);
    if (!s)
        return 1;
    if (file) {   /* a real text, repeated up to mb */
        size_t flen;
        char *f = slurp(file, &flen);
        for (size_t i = 0; flen && i < n; i += flen)
            memcpy(s + i, f, n - i < flen ? n - i : flen);
        free(f);
    } else {   /* English-like words with digits, punctuation and non-ASCII */
        static const char *words[] = {"the", "quick", "brown", "fox", "jumps", "over", "lazy",
                                      "dog", "Once", "upon", "a", "time,", "there", "was",
                                      "little", "girl", "named", "Lily.", "She", "loved", "1234",
                                      "café", "naïve", "日本語", "\n", "(x)", "don't", "42.5%"};
        srand(5);
        size_t i = 0;
        while (i < n) {
            const char *w = words[rand() % (int)(sizeof words / sizeof *words)];
            size_t l = strlen(w);
            if (i + l + 1 > n)
                break;
            memcpy(s + i, w, l);
            i += l;
            s[i++] = ' ';
        }
        n = i;
    }
    const char *only = getenv("SGL_TOK_BENCH_ONLY");   /* a case name */
    for (int c = 0; c < 3; c++) {
        char path[4096];
        if (only && strcmp(only, CASES[c].name) != 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", shared, CASES[c].path);
        SglTokenizer *t;
        SglErr err;
        if (sgl_tokenizer_load(path, &t, &err) != SGL_OK) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        struct timespec a, b, ca, cb;
        clock_gettime(CLOCK_MONOTONIC, &a);
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ca);
        int32_t *ids, m;
        if (sgl_tokenizer_encode(t, s, n, false, &ids, &m) != SGL_OK)
            return 1;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cb);
        clock_gettime(CLOCK_MONOTONIC, &b);
        double sec = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) * 1e-9;
        double cpu = (double)(cb.tv_sec - ca.tv_sec) + (double)(cb.tv_nsec - ca.tv_nsec) * 1e-9;
        printf("%-22s %.1f MB, %d tokens: wall %.3f s (%.2f MB/s), cpu %.3f s (%.2f MB/s, "
               "%.2f M tokens/s)\n", CASES[c].name, (double)n / 1e6, m, sec,
               (double)n / 1e6 / sec, cpu, (double)n / 1e6 / cpu, m / cpu / 1e6);
        free(ids);
        sgl_tokenizer_free(t);
    }
    free(s);
    return 0;
}

int main(int argc, char **argv)
{
    shared = getenv("SGL_SHARED_DIR");
    char gpath[4096];
    snprintf(gpath, sizeof gpath, "%s/goldens/tokenizer_goldens.json", shared ? shared : "");
    struct stat st;
    if (!shared || stat(gpath, &st) != 0) {
        printf("skipped: tokenizer goldens not found (SGL_SHARED_DIR=%s)\n",
               shared ? shared : "(unset)");
        return 77;
    }
    if (argc > 1 && strcmp(argv[1], "--bench") == 0)
        return bench(argc > 2 ? atof(argv[2]) : 20.0, argc > 3 ? argv[3] : NULL);
    goldens = json_load_file(gpath, 0, NULL);
    if (!goldens) {
        fprintf(stderr, "%s: cannot parse\n", gpath);
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_goldens_stories),
        cmocka_unit_test(test_goldens_smollm2),
        cmocka_unit_test(test_goldens_llama2),
        cmocka_unit_test(test_stream_random),
        cmocka_unit_test(test_special_and_bos),
        cmocka_unit_test(test_arbitrary_bytes),
        cmocka_unit_test(test_broken_files),
        cmocka_unit_test(test_variant_split),
        cmocka_unit_test(test_variant_metaspace),
        cmocka_unit_test(test_variant_decoders),
        cmocka_unit_test(test_variant_nfc),
        cmocka_unit_test(test_cli),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    json_decref(goldens);
    return rc;
}

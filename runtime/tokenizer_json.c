/* tokenizer_json.c -- reads a Hugging Face tokenizer.json (jansson).
 *
 * Supported: model BPE (vocab, merges as "a b" strings or ["a","b"] pairs,
 * unk_token, byte_fallback, fuse_unk, ignore_merges); added_tokens with their
 * flags; normalizers Sequence/Prepend/Replace/Strip; pre-tokenizers
 * Sequence/ByteLevel/Split/Metaspace/Digits/Whitespace/WhitespaceSplit;
 * post-processors TemplateProcessing/ByteLevel/Bert/Roberta/Sequence; decoders
 * Sequence/Replace/ByteFallback/Fuse/Strip/ByteLevel/Metaspace. Anything else
 * is SGL_E_UNSUPPORTED with the JSON path of the field ("normalizer.type 'NFC'"),
 * malformed content is SGL_E_FORMAT with the same kind of path, so a person
 * knows which part of which file to look at.
 */
#include "runtime/tokenizer_int.h"

#include <jansson.h>
#include <stdio.h>
#ifdef SGL_HAVE_ICU
#include <unicode/unorm2.h>
#endif
#include <stdlib.h>
#include <string.h>

/* GPT-2's ByteLevel alphabet: printable bytes stand for themselves, the others
 * are moved to U+0100 onwards in byte order. */
static uint32_t byte_to_cp(int b)
{
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255))
        return (uint32_t)b;
    int n = 0;
    for (int x = 0; x < b; x++)
        if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255)))
            n++;
    return 256u + (uint32_t)n;
}

static size_t put_cp(char *o, uint32_t c)
{
    if (c < 0x80) {
        o[0] = (char)c;
        return 1;
    }
    if (c < 0x800) {
        o[0] = (char)(0xC0 | (c >> 6));
        o[1] = (char)(0x80 | (c & 0x3F));
        return 2;
    }
    o[0] = (char)(0xE0 | (c >> 12));
    o[1] = (char)(0x80 | ((c >> 6) & 0x3F));
    o[2] = (char)(0x80 | (c & 0x3F));
    return 3;
}

/* GPT-2's split regex, what ByteLevel(use_regex=true) applies. */
static const char GPT2_RE[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

typedef struct {
    SglTokenizer *t;
    const char *file;
    SglErr *err;
    char path[160];             /* JSON path of the object being read */
} Rd;

static SglStatus fail(Rd *r, SglStatus st, const char *fmt, const char *a, const char *b)
{
    char msg[300];
    snprintf(msg, sizeof msg, fmt, a ? a : "", b ? b : "");
    return sgl_err(r->err, st, "%s: %s%s%s", r->file, r->path, r->path[0] ? ": " : "", msg);
}

static const char *type_of(json_t *o)
{
    json_t *ty = json_object_get(o, "type");
    return json_is_string(ty) ? json_string_value(ty) : NULL;
}

static bool get_bool(json_t *o, const char *k, bool dflt)
{
    json_t *v = json_object_get(o, k);
    return json_is_boolean(v) ? json_is_true(v) : dflt;
}

/* Optional string field; SGL_E_FORMAT when present with another type. */
static SglStatus get_str(Rd *r, json_t *o, const char *k, bool required, const char **s, size_t *len)
{
    json_t *v = json_object_get(o, k);
    *s = NULL;
    *len = 0;
    if (!v || json_is_null(v))
        return required ? fail(r, SGL_E_FORMAT, "missing string field '%s'", k, NULL) : SGL_OK;
    if (!json_is_string(v))
        return fail(r, SGL_E_FORMAT, "field '%s' must be a string", k, NULL);
    *s = json_string_value(v);
    *len = json_string_length(v);
    return SGL_OK;
}

static char *dup_n(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p) {
        if (n)
            memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

/* {"String": "x"} or {"Regex": "x"}: *re is set for Regex. */
static SglStatus get_pattern(Rd *r, json_t *o, const char **s, size_t *len, bool *is_regex)
{
    json_t *p = json_object_get(o, "pattern");
    json_t *v = json_object_get(p, "String");
    *is_regex = false;
    if (!v) {
        v = json_object_get(p, "Regex");
        *is_regex = true;
    }
    if (!json_is_string(v))
        return fail(r, SGL_E_FORMAT, "pattern must be {\"String\": ...} or {\"Regex\": ...}",
                    NULL, NULL);
    *s = json_string_value(v);
    *len = json_string_length(v);
    return SGL_OK;
}

static void path_push(Rd *r, size_t *saved, const char *fmt, const char *a, long i)
{
    *saved = strlen(r->path);
    snprintf(r->path + *saved, sizeof r->path - *saved, fmt, a, i);
}

typedef SglStatus (*StepReader)(Rd *r, json_t *o, int depth);

/* A `Sequence` step: each element of o[key] read by `read`, with the JSON
 * path extended per element; nesting is bounded (depth > 4 is refused). */
static SglStatus read_sequence(Rd *r, json_t *o, const char *key, int depth, StepReader read)
{
    json_t *arr = json_object_get(o, key);
    if (!json_is_array(arr) || depth > 4)
        return fail(r, SGL_E_FORMAT, "Sequence needs a '%s' array", key, NULL);
    for (size_t i = 0; i < json_array_size(arr); i++) {
        size_t sv;
        path_push(r, &sv, ".%s[%ld]", key, (long)i);
        SglStatus st = read(r, json_array_get(arr, i), depth + 1);
        if (st != SGL_OK)
            return st;
        r->path[sv] = '\0';
    }
    return SGL_OK;
}

/* ---- normalizers ------------------------------------------------------ */

static SglStatus read_normalizer(Rd *r, json_t *o, int depth)
{
    SglTokenizer *t = r->t;
    const char *ty = type_of(o);
    SglStatus st;
    if (!ty)
        return fail(r, SGL_E_FORMAT, "missing 'type'", NULL, NULL);
    if (strcmp(ty, "Sequence") == 0)
        return read_sequence(r, o, "normalizers", depth, read_normalizer);
    if (t->n_norm >= TOK_MAX_STEPS)
        return fail(r, SGL_E_UNSUPPORTED, "more than %s normalizers", "32", NULL);
    NormStep *n = &t->norm[t->n_norm];
    memset(n, 0, sizeof *n);
    const char *s;
    size_t len;
    if (strcmp(ty, "Prepend") == 0) {
        if ((st = get_str(r, o, "prepend", true, &s, &len)) != SGL_OK)
            return st;
        n->kind = NORM_PREPEND;
        if (!(n->a = dup_n(s, len)))
            return SGL_E_NOMEM;
        n->a_len = len;
    } else if (strcmp(ty, "Replace") == 0) {
        bool is_re;
        const char *c;
        size_t clen;
        if ((st = get_pattern(r, o, &s, &len, &is_re)) != SGL_OK ||
            (st = get_str(r, o, "content", true, &c, &clen)) != SGL_OK)
            return st;
        n->kind = is_re ? NORM_REPLACE_RE : NORM_REPLACE;
        if (is_re && !(n->re = tok_regex(s, len, false, r->err, r->file, r->path)))
            return SGL_E_UNSUPPORTED;
        if (!(n->a = dup_n(s, len)) || !(n->b = dup_n(c, clen))) {
            t->n_norm++;   /* so that free() sees the partial step */
            return SGL_E_NOMEM;
        }
        n->a_len = len;
        n->b_len = clen;
    } else if (strcmp(ty, "Strip") == 0) {
        n->kind = NORM_STRIP;
        n->left = get_bool(o, "strip_left", true);
        n->right = get_bool(o, "strip_right", true);
    } else if (strcmp(ty, "NFC") == 0 || strcmp(ty, "NFD") == 0 || strcmp(ty, "NFKC") == 0 ||
               strcmp(ty, "NFKD") == 0) {
#ifdef SGL_HAVE_ICU
        UErrorCode ec = U_ZERO_ERROR;
        const UNormalizer2 *u = strcmp(ty, "NFC") == 0 ? unorm2_getNFCInstance(&ec)
                              : strcmp(ty, "NFD") == 0 ? unorm2_getNFDInstance(&ec)
                              : strcmp(ty, "NFKC") == 0 ? unorm2_getNFKCInstance(&ec)
                                                        : unorm2_getNFKDInstance(&ec);
        if (U_FAILURE(ec) || !u)
            return fail(r, SGL_E_UNSUPPORTED, "normalizer '%s': ICU has no data for it", ty, NULL);
        n->kind = NORM_UNICODE;
        n->unorm = u;
#else
        return fail(r, SGL_E_UNSUPPORTED, "normalizer type '%s' needs Unicode tables: this build "
                    "has no ICU (install libicu-dev and rebuild)", ty, NULL);
#endif
    } else {
        return fail(r, SGL_E_UNSUPPORTED, "normalizer type '%s' is not supported "
                    "(supported: Sequence, Prepend, Replace, Strip, NFC, NFD, NFKC, NFKD)", ty, NULL);
    }
    t->n_norm++;
    return SGL_OK;
}

/* ---- pre-tokenizers --------------------------------------------------- */

static SglStatus add_split(Rd *r, const char *pat, size_t len, bool literal, SplitBehavior beh,
                           bool invert)
{
    SglTokenizer *t = r->t;
    if (t->n_pre >= TOK_MAX_STEPS)
        return fail(r, SGL_E_UNSUPPORTED, "more than %s pre-tokenizers", "32", NULL);
    PreStep *p = &t->pre[t->n_pre];
    memset(p, 0, sizeof *p);
    p->kind = PRE_SPLIT;
    p->behavior = beh;
    p->invert = invert;
    if (!(p->re = tok_regex(pat, len, literal, r->err, r->file, r->path)))
        return SGL_E_UNSUPPORTED;
    t->n_pre++;
    return SGL_OK;
}

static SglStatus read_pretok(Rd *r, json_t *o, int depth)
{
    SglTokenizer *t = r->t;
    const char *ty = type_of(o);
    SglStatus st;
    if (!ty)
        return fail(r, SGL_E_FORMAT, "missing 'type'", NULL, NULL);
    if (t->n_pre > 0 && t->pre[t->n_pre - 1].kind == PRE_BYTELEVEL)
        return fail(r, SGL_E_UNSUPPORTED, "a pre-tokenizer after ByteLevel is not supported",
                    NULL, NULL);
    if (strcmp(ty, "Sequence") == 0)
        return read_sequence(r, o, "pretokenizers", depth, read_pretok);
    if (strcmp(ty, "Split") == 0) {
        const char *s, *b;
        size_t len, blen;
        bool is_re;
        if ((st = get_pattern(r, o, &s, &len, &is_re)) != SGL_OK ||
            (st = get_str(r, o, "behavior", true, &b, &blen)) != SGL_OK)
            return st;
        static const char *names[5] = {"Removed", "Isolated", "MergedWithPrevious",
                                       "MergedWithNext", "Contiguous"};   /* ORDER SplitBehavior */
        int beh = -1;
        for (int i = 0; i < 5; i++)
            if (strcmp(b, names[i]) == 0)
                beh = i;
        if (beh < 0)
            return fail(r, SGL_E_UNSUPPORTED, "Split behavior '%s' is not supported", b, NULL);
        return add_split(r, s, len, !is_re, (SplitBehavior)beh, get_bool(o, "invert", false));
    }
    if (strcmp(ty, "Digits") == 0) {
        const char *re = get_bool(o, "individual_digits", false) ? "\\p{N}" : "\\p{N}+";
        return add_split(r, re, strlen(re), false, SPLIT_ISOLATED, false);
    }
    if (strcmp(ty, "WhitespaceSplit") == 0)
        return add_split(r, "\\s+", 4, false, SPLIT_REMOVED, false);
    if (strcmp(ty, "Whitespace") == 0)
        return add_split(r, "\\w+|[^\\w\\s]+", 13, false, SPLIT_REMOVED, true);
    if (t->n_pre >= TOK_MAX_STEPS)
        return fail(r, SGL_E_UNSUPPORTED, "more than %s pre-tokenizers", "32", NULL);
    PreStep *p = &t->pre[t->n_pre];
    memset(p, 0, sizeof *p);
    if (strcmp(ty, "ByteLevel") == 0) {
        p->kind = PRE_BYTELEVEL;
        p->add_prefix_space = get_bool(o, "add_prefix_space", true);
        if (get_bool(o, "use_regex", true) &&
            !(p->re = tok_regex(GPT2_RE, sizeof GPT2_RE - 1, false, r->err, r->file, r->path)))
            return SGL_E_UNSUPPORTED;
        t->byte_level = true;
    } else if (strcmp(ty, "Metaspace") == 0) {
        const char *s, *ps;
        size_t len, pslen;
        if ((st = get_str(r, o, "replacement", false, &s, &len)) != SGL_OK ||
            (st = get_str(r, o, "prepend_scheme", false, &ps, &pslen)) != SGL_OK)
            return st;
        if (!s) {
            s = "\xE2\x96\x81";
            len = 3;
        }
        if (len == 0 || len >= sizeof p->repl)
            return fail(r, SGL_E_FORMAT, "Metaspace replacement must be one character", NULL, NULL);
        p->kind = PRE_METASPACE;
        memcpy(p->repl, s, len);
        p->repl_len = len;
        p->split = get_bool(o, "split", true);
        p->prepend = get_bool(o, "add_prefix_space", true) ? PREPEND_ALWAYS : PREPEND_NEVER;
        if (ps && strcmp(ps, "first") == 0)
            p->prepend = PREPEND_FIRST;
        else if (ps && strcmp(ps, "never") == 0)
            p->prepend = PREPEND_NEVER;
        else if (ps && strcmp(ps, "always") == 0)
            p->prepend = PREPEND_ALWAYS;
        else if (ps)
            return fail(r, SGL_E_UNSUPPORTED, "Metaspace prepend_scheme '%s' is not supported",
                        ps, NULL);
    } else {
        return fail(r, SGL_E_UNSUPPORTED, "pre-tokenizer type '%s' is not supported (supported: "
                    "Sequence, ByteLevel, Split, Metaspace, Digits, Whitespace, WhitespaceSplit)",
                    ty, NULL);
    }
    t->n_pre++;
    return SGL_OK;
}

/* ---- decoders --------------------------------------------------------- */

static SglStatus read_decoder(Rd *r, json_t *o, int depth)
{
    SglTokenizer *t = r->t;
    const char *ty = type_of(o);
    SglStatus st;
    if (!ty)
        return fail(r, SGL_E_FORMAT, "missing 'type'", NULL, NULL);
    if (strcmp(ty, "Sequence") == 0)
        return read_sequence(r, o, "decoders", depth, read_decoder);
    if (t->n_dec >= TOK_MAX_STEPS)
        return fail(r, SGL_E_UNSUPPORTED, "more than %s decoders", "32", NULL);
    DecStep *d = &t->dec[t->n_dec];
    memset(d, 0, sizeof *d);
    const char *s = NULL, *c = NULL;
    size_t len = 0, clen = 0;
    if (strcmp(ty, "Replace") == 0) {
        bool is_re;
        if ((st = get_pattern(r, o, &s, &len, &is_re)) != SGL_OK ||
            (st = get_str(r, o, "content", true, &c, &clen)) != SGL_OK)
            return st;
        if (is_re)
            return fail(r, SGL_E_UNSUPPORTED, "a Replace decoder with a Regex pattern is not "
                        "supported", NULL, NULL);
        if (len == 0)
            return fail(r, SGL_E_FORMAT, "Replace pattern is empty", NULL, NULL);
        d->kind = DEC_REPLACE;
    } else if (strcmp(ty, "ByteFallback") == 0) {
        d->kind = DEC_BYTEFALLBACK;
    } else if (strcmp(ty, "Fuse") == 0) {
        d->kind = DEC_FUSE;
    } else if (strcmp(ty, "ByteLevel") == 0) {
        d->kind = DEC_BYTELEVEL;
    } else if (strcmp(ty, "Strip") == 0) {
        if ((st = get_str(r, o, "content", true, &s, &len)) != SGL_OK)
            return st;
        json_t *a = json_object_get(o, "start"), *b = json_object_get(o, "stop");
        if (!json_is_integer(a) || !json_is_integer(b) || json_integer_value(a) < 0 ||
            json_integer_value(b) < 0 || json_integer_value(a) > 1000000 ||
            json_integer_value(b) > 1000000)
            return fail(r, SGL_E_FORMAT, "Strip needs integer 'start' and 'stop' >= 0", NULL, NULL);
        int kind;
        if (len == 0 || tok_utf8_scan((const unsigned char *)s, len, &kind) != len)
            return fail(r, SGL_E_FORMAT, "Strip content must be one character", NULL, NULL);
        d->kind = DEC_STRIP;
        d->start = (int32_t)json_integer_value(a);
        d->stop = (int32_t)json_integer_value(b);
    } else if (strcmp(ty, "Metaspace") == 0) {
        const char *ps;
        size_t pslen;
        if ((st = get_str(r, o, "replacement", false, &s, &len)) != SGL_OK ||
            (st = get_str(r, o, "prepend_scheme", false, &ps, &pslen)) != SGL_OK)
            return st;
        if (!s) {
            s = "\xE2\x96\x81";
            len = 3;
        }
        d->kind = DEC_METASPACE;
        d->prepend = get_bool(o, "add_prefix_space", true);
        if (ps)
            d->prepend = strcmp(ps, "never") != 0;
    } else {
        return fail(r, SGL_E_UNSUPPORTED, "decoder type '%s' is not supported (supported: "
                    "Sequence, Replace, ByteFallback, Fuse, Strip, ByteLevel, Metaspace)", ty, NULL);
    }
    if ((s && !(d->a = dup_n(s, len))) || (c && !(d->b = dup_n(c, clen)))) {
        t->n_dec++;
        return SGL_E_NOMEM;
    }
    d->a_len = len;
    d->b_len = clen;
    t->n_dec++;
    return SGL_OK;
}

/* ---- post-processor --------------------------------------------------- */

static SglStatus add_special_ids(Rd *r, json_t *ids, bool before)
{
    SglTokenizer *t = r->t;
    for (size_t i = 0; i < json_array_size(ids); i++) {
        json_t *v = json_array_get(ids, i);
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= t->n_tok ||
            t->tok[json_integer_value(v)].kind == TOKK_NONE)
            return fail(r, SGL_E_FORMAT, "special token id out of the vocabulary", NULL, NULL);
        int *n = before ? &t->n_prefix : &t->n_suffix;
        if (*n >= 8)
            return fail(r, SGL_E_UNSUPPORTED, "more than 8 special tokens around the text",
                        NULL, NULL);
        (before ? t->prefix : t->suffix)[(*n)++] = (int32_t)json_integer_value(v);
    }
    return SGL_OK;
}

static SglStatus read_post(Rd *r, json_t *o, int depth)
{
    SglTokenizer *t = r->t;
    const char *ty = type_of(o);
    SglStatus st;
    if (!ty)
        return fail(r, SGL_E_FORMAT, "missing 'type'", NULL, NULL);
    if (strcmp(ty, "ByteLevel") == 0)
        return SGL_OK;   /* only adjusts offsets */
    if (strcmp(ty, "Sequence") == 0)
        return read_sequence(r, o, "processors", depth, read_post);
    if (strcmp(ty, "BertProcessing") == 0 || strcmp(ty, "RobertaProcessing") == 0) {
        json_t *cls = json_object_get(o, "cls"), *sep = json_object_get(o, "sep");
        json_t *a = json_array_get(cls, 1), *b = json_array_get(sep, 1);
        if (!json_is_integer(a) || !json_is_integer(b))
            return fail(r, SGL_E_FORMAT, "'cls' and 'sep' must be [token, id]", NULL, NULL);
        int64_t ca = json_integer_value(a), sb = json_integer_value(b);
        if (ca < 0 || ca >= t->n_tok || sb < 0 || sb >= t->n_tok)
            return fail(r, SGL_E_FORMAT, "'cls' / 'sep' id out of the vocabulary", NULL, NULL);
        t->n_prefix = t->n_suffix = 1;
        t->prefix[0] = (int32_t)ca;
        t->suffix[0] = (int32_t)sb;
        return SGL_OK;
    }
    if (strcmp(ty, "TemplateProcessing") != 0)
        return fail(r, SGL_E_UNSUPPORTED, "post-processor type '%s' is not supported "
                    "(supported: TemplateProcessing, ByteLevel, Bert, Roberta, Sequence)", ty, NULL);
    json_t *single = json_object_get(o, "single"), *specials = json_object_get(o, "special_tokens");
    if (!json_is_array(single))
        return fail(r, SGL_E_FORMAT, "TemplateProcessing needs a 'single' array", NULL, NULL);
    t->n_prefix = t->n_suffix = 0;
    bool before = true;
    for (size_t i = 0; i < json_array_size(single); i++) {
        json_t *it = json_array_get(single, i);
        if (json_object_get(it, "Sequence")) {
            before = false;
            continue;
        }
        json_t *sp = json_object_get(json_object_get(it, "SpecialToken"), "id");
        if (!json_is_string(sp))
            return fail(r, SGL_E_FORMAT, "single[] items must be Sequence or SpecialToken",
                        NULL, NULL);
        json_t *ids = json_object_get(json_object_get(specials, json_string_value(sp)), "ids");
        if (!json_is_array(ids))
            return fail(r, SGL_E_FORMAT, "special_tokens has no ids for '%s'",
                        json_string_value(sp), NULL);
        if ((st = add_special_ids(r, ids, before)) != SGL_OK)
            return st;
    }
    if (t->n_prefix > 0)
        t->bos = t->prefix[0];
    return SGL_OK;
}

/* ---- model and added tokens ------------------------------------------- */

static SglStatus set_token(Rd *r, int64_t id, const char *s, size_t len, const char *what)
{
    SglTokenizer *t = r->t;
    SglStatus st;
    char num[32];
    snprintf(num, sizeof num, "%lld", (long long)id);
    if (id < 0 || id >= TOK_MAX_VOCAB)
        return fail(r, SGL_E_FORMAT, "%s: id %s is out of range", what, num);
    if ((st = tok_reserve(r->t, (int32_t)id + 1)) != SGL_OK)
        return st;
    TokEntry *e = &t->tok[id];
    if ((st = tok_blob_add(t, s, len, &e->off)) != SGL_OK)
        return st;
    e->len = (uint32_t)len;
    e->kind = TOKK_NORMAL;
    unsigned hx;
    char tail;
    if (len == 6 && memcmp(s, "<0x", 3) == 0 && sscanf(s + 3, "%2x%c", &hx, &tail) == 2 &&
        tail == '>') {
        e->kind = TOKK_BYTE;
        e->byte = (uint8_t)hx;
    }
    return SGL_OK;
}

static SglStatus read_model(Rd *r, json_t *m)
{
    SglTokenizer *t = r->t;
    SglStatus st;
    strcpy(r->path, "model");
    if (!json_is_object(m))
        return fail(r, SGL_E_FORMAT, "missing or not an object", NULL, NULL);
    const char *ty = type_of(m);
    if (ty && strcmp(ty, "BPE") != 0)
        return fail(r, SGL_E_UNSUPPORTED, "model type '%s' is not supported (only BPE)", ty, NULL);
    json_t *vocab = json_object_get(m, "vocab"), *merges = json_object_get(m, "merges");
    if (!json_is_object(vocab))
        return fail(r, SGL_E_FORMAT, "'vocab' must be an object of token -> id", NULL, NULL);
    if (merges && !json_is_array(merges))
        return fail(r, SGL_E_FORMAT, "'merges' must be an array", NULL, NULL);
    const char *s;
    size_t len;
    json_t *dv = json_object_get(m, "dropout");
    if (json_is_number(dv) && json_number_value(dv) > 0)
        return fail(r, SGL_E_UNSUPPORTED, "BPE dropout is not supported", NULL, NULL);
    if ((st = get_str(r, m, "continuing_subword_prefix", false, &s, &len)) != SGL_OK)
        return st;
    if (s && len)
        return fail(r, SGL_E_UNSUPPORTED, "continuing_subword_prefix is not supported", NULL, NULL);
    if ((st = get_str(r, m, "end_of_word_suffix", false, &s, &len)) != SGL_OK)
        return st;
    if (s && len)
        return fail(r, SGL_E_UNSUPPORTED, "end_of_word_suffix is not supported", NULL, NULL);
    t->byte_fallback = get_bool(m, "byte_fallback", false);
    t->fuse_unk = get_bool(m, "fuse_unk", false);
    t->ignore_merges = get_bool(m, "ignore_merges", false);
    for (void *it = json_object_iter(vocab); it; it = json_object_iter_next(vocab, it)) {
        const char *key = json_object_iter_key(it);
        json_t *v = json_object_iter_value(it);
        if (!json_is_integer(v))
            return fail(r, SGL_E_FORMAT, "vocab['%.60s'] must be an integer id", key, NULL);
        if ((st = set_token(r, json_integer_value(v), key, json_object_iter_key_len(it),
                            "vocab")) != SGL_OK)
            return st;
    }
    return SGL_OK;
}

static SglStatus read_added(Rd *r, json_t *arr)
{
    SglTokenizer *t = r->t;
    SglStatus st;
    strcpy(r->path, "added_tokens");
    if (!arr || json_is_null(arr))
        return SGL_OK;
    if (!json_is_array(arr))
        return fail(r, SGL_E_FORMAT, "must be an array", NULL, NULL);
    size_t n = json_array_size(arr);
    t->added = calloc(n ? n : 1, sizeof *t->added);
    if (!t->added)
        return SGL_E_NOMEM;
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(arr, i), *id = json_object_get(o, "id");
        snprintf(r->path, sizeof r->path, "added_tokens[%zu]", i);
        const char *s;
        size_t len;
        if ((st = get_str(r, o, "content", true, &s, &len)) != SGL_OK)
            return st;
        if (!json_is_integer(id))
            return fail(r, SGL_E_FORMAT, "'id' must be an integer", NULL, NULL);
        if (len == 0)
            continue;
        int64_t x = json_integer_value(id);
        if (x >= 0 && x < t->n_tok && t->tok[x].kind != TOKK_NONE &&
            (t->tok[x].len != len || memcmp(tok_text(t, (int32_t)x), s, len) != 0))
            return fail(r, SGL_E_FORMAT, "its id is already the vocab token '%.60s'%s",
                        tok_text(t, (int32_t)x), NULL);
        if ((st = set_token(r, x, s, len, "added token")) != SGL_OK)
            return st;
        TokAdded *a = &t->added[t->n_added++];
        a->id = (int32_t)x;
        a->single_word = get_bool(o, "single_word", false);
        a->lstrip = get_bool(o, "lstrip", false);
        a->rstrip = get_bool(o, "rstrip", false);
        a->special = get_bool(o, "special", false);
        a->normalized = get_bool(o, "normalized", !a->special);
        a->off = t->tok[x].off;
        a->len = (uint32_t)len;
        t->tok[x].added = 1;
        t->tok[x].special = a->special;
        if (a->special)
            t->tok[x].kind = TOKK_CONTROL;
    }
    return SGL_OK;
}

static SglStatus read_merges(Rd *r, json_t *merges)
{
    SglTokenizer *t = r->t;
    SglStatus st;
    size_t n = json_array_size(merges);   /* 0 when there are none */
    strcpy(r->path, "model.merges");
    if ((st = pairmap_init(&t->merges, n)) != SGL_OK)
        return st;
    t->ws_split = true;
    char *tmp = NULL;
    size_t tmp_cap = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *m = json_array_get(merges, i);
        const char *a, *b;
        size_t al, bl;
        char idx[24];
        snprintf(idx, sizeof idx, "%zu", i);
        if (json_is_string(m)) {
            const char *s = json_string_value(m);
            const char *sp = memchr(s, ' ', json_string_length(m));
            if (!sp) {
                free(tmp);
                return fail(r, SGL_E_FORMAT, "merge %s is not \"left right\"", idx, NULL);
            }
            a = s;
            al = (size_t)(sp - s);
            b = sp + 1;
            bl = json_string_length(m) - al - 1;
        } else if (json_is_array(m) && json_array_size(m) == 2 &&
                   json_is_string(json_array_get(m, 0)) && json_is_string(json_array_get(m, 1))) {
            a = json_string_value(json_array_get(m, 0));
            al = json_string_length(json_array_get(m, 0));
            b = json_string_value(json_array_get(m, 1));
            bl = json_string_length(json_array_get(m, 1));
        } else {
            free(tmp);
            return fail(r, SGL_E_FORMAT, "merge %s must be \"a b\" or [\"a\", \"b\"]", idx, NULL);
        }
        if (al + bl + 1 > tmp_cap) {
            tmp_cap = (al + bl + 1) * 2;
            char *p = realloc(tmp, tmp_cap);
            if (!p) {
                free(tmp);
                return SGL_E_NOMEM;
            }
            tmp = p;
        }
        memcpy(tmp, a, al);
        memcpy(tmp + al, b, bl);
        int32_t ia = strmap_get(t, &t->vocab, a, al, false);
        int32_t ib = strmap_get(t, &t->vocab, b, bl, false);
        int32_t im = strmap_get(t, &t->vocab, tmp, al + bl, false);
        if (ia < 0 || ib < 0 || im < 0) {
            free(tmp);
            return fail(r, SGL_E_FORMAT, "merge %s uses a token that is not in the vocab%s",
                        idx, ia < 0 ? " (left)" : ib < 0 ? " (right)" : " (merged)");
        }
        if (i >= (1u << 24)) {
            free(tmp);
            return fail(r, SGL_E_UNSUPPORTED, "more than 2^24 merges", NULL, NULL);
        }
        pairmap_put(&t->merges, ia, ib, (float)i, im);
        bool a_ws = al >= 3 && memcmp(a + al - 3, "\xE2\x96\x81", 3) == 0;
        bool b_ws = bl >= 3 && memcmp(b, "\xE2\x96\x81", 3) == 0;
        if (!a_ws && b_ws)
            t->ws_split = false;   /* this merge glues a word to the next '▁' */
    }
    free(tmp);
    return SGL_OK;
}

static int cmp_added_len(const void *a, const void *b, void *ctx)
{
    const SglTokenizer *t = ctx;
    const TokAdded *x = &t->added[*(const int32_t *)a], *y = &t->added[*(const int32_t *)b];
    unsigned char cx = (unsigned char)t->blob[x->off], cy = (unsigned char)t->blob[y->off];
    if (cx != cy)
        return cx < cy ? -1 : 1;
    if (x->len != y->len)
        return x->len > y->len ? -1 : 1;
    return 0;
}

static SglStatus build_matcher(SglTokenizer *t, TokMatcher *m, bool normalized)
{
    m->idx = malloc(((size_t)t->n_added + 1) * sizeof *m->idx);
    if (!m->idx)
        return SGL_E_NOMEM;
    m->n = 0;
    for (int32_t i = 0; i < t->n_added; i++)
        if (t->added[i].normalized == normalized && t->added[i].len > 0)
            m->idx[m->n++] = i;
    qsort_r(m->idx, (size_t)m->n, sizeof *m->idx, cmp_added_len, t);
    int32_t k = 0;
    for (int b = 0; b <= 256; b++) {
        while (k < m->n && (unsigned char)t->blob[t->added[m->idx[k]].off] < b)
            k++;
        m->start[b] = b == 256 ? m->n : k;
    }
    return SGL_OK;
}

/* Normalized added tokens are matched in normalized text, so their content is
 * normalized once here (HF's refresh_added_tokens). */
static SglStatus normalize_added(SglTokenizer *t)
{
    SglStatus st = SGL_OK;
    TokBuf out = {0};
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    if (!md)
        return SGL_E_NOMEM;
    for (int32_t i = 0; i < t->n_added && st == SGL_OK; i++) {
        TokAdded *a = &t->added[i];
        if (!a->normalized || t->n_norm == 0)
            continue;
        char *copy = dup_n(t->blob + a->off, a->len);
        if (!copy) {
            st = SGL_E_NOMEM;
            break;
        }
        st = tok_normalize(t, copy, a->len, &out, md);
        free(copy);
        if (st == SGL_OK && (st = tok_blob_add(t, out.buf, out.len, &a->off)) == SGL_OK)
            a->len = (uint32_t)out.len;
    }
    free(out.buf);
    pcre2_match_data_free(md);
    return st;
}

SglStatus tok_read_json(SglTokenizer *t, const char *path, SglErr *err)
{
    SglStatus st;
    Rd r = {.t = t, .file = path, .err = err};
    json_error_t je;
    json_t *root = json_load_file(path, JSON_ALLOW_NUL, &je);
    if (!root) {
        bool io = je.line < 0 || strstr(je.text, "unable to open") != NULL;
        return sgl_err(err, io ? SGL_E_IO : SGL_E_FORMAT, "%s:%d:%d: %s", path, je.line,
                       je.column, je.text);
    }
    if (!json_is_object(root)) {
        st = sgl_err(err, SGL_E_FORMAT, "%s: expected a JSON object at the top", path);
        goto out;
    }
    if ((st = read_model(&r, json_object_get(root, "model"))) != SGL_OK ||
        (st = read_added(&r, json_object_get(root, "added_tokens"))) != SGL_OK)
        goto out;
    /* Holes in the id space stay TOKK_NONE; decode skips them as HF does. */
    if ((st = strmap_build(t, &t->vocab, false)) != SGL_OK)
        goto out;
    if ((st = read_merges(&r, json_object_get(json_object_get(root, "model"), "merges"))))
        goto out;
    const char *unk;
    size_t unk_len;
    strcpy(r.path, "model");
    if ((st = get_str(&r, json_object_get(root, "model"), "unk_token", false, &unk, &unk_len)))
        goto out;
    if (unk && (t->unk_id = strmap_get(t, &t->vocab, unk, unk_len, false)) < 0) {
        st = fail(&r, SGL_E_FORMAT, "unk_token '%.60s' is not in the vocab", unk, NULL);
        goto out;
    }
    json_t *o;
    if ((o = json_object_get(root, "normalizer")) && !json_is_null(o)) {
        strcpy(r.path, "normalizer");
        if ((st = read_normalizer(&r, o, 0)) != SGL_OK)
            goto out;
    }
    if ((o = json_object_get(root, "pre_tokenizer")) && !json_is_null(o)) {
        strcpy(r.path, "pre_tokenizer");
        if ((st = read_pretok(&r, o, 0)) != SGL_OK)
            goto out;
    }
    if ((o = json_object_get(root, "post_processor")) && !json_is_null(o)) {
        strcpy(r.path, "post_processor");
        if ((st = read_post(&r, o, 0)) != SGL_OK)
            goto out;
    }
    if ((o = json_object_get(root, "decoder")) && !json_is_null(o)) {
        strcpy(r.path, "decoder");
        t->has_decoder = true;
        if ((st = read_decoder(&r, o, 0)) != SGL_OK)
            goto out;
    }
    if ((st = tok_check_decoder(t, err)) != SGL_OK)
        goto out;
    /* Cutting before '▁' is only an optimization for pre-tokenizer-less
     * SentencePiece-style models; it never changes the result. */
    t->ws_split = t->ws_split && t->n_pre == 0 && !t->ignore_merges;
    if ((st = normalize_added(t)) != SGL_OK || (st = build_matcher(t, &t->match_raw, false)) ||
        (st = build_matcher(t, &t->match_norm, true)))
        goto out;
    if (!(t->re_word_start = tok_regex("\\w", 2, false, err, path, "added_tokens"))) {
        st = SGL_E_UNSUPPORTED;
        goto out;
    }
    for (int b = 0; b < 256; b++) {
        char buf[8];
        snprintf(buf, sizeof buf, "<0x%02X>", b);
        t->byte_tok[b] = strmap_get(t, &t->vocab, buf, 6, false);
        size_t l = put_cp(buf, byte_to_cp(b));
        t->byte_sym[b] = strmap_get(t, &t->vocab, buf, l, false);
        if (b < 128) {
            buf[0] = (char)b;
            t->ascii_sym[b] = strmap_get(t, &t->vocab, buf, 1, false);
        }
    }
out:
    if (st == SGL_E_NOMEM)
        sgl_err(err, st, "%s: out of memory", path);
    json_decref(root);
    return st;
}

/* tokenizer.c -- loading, lookups and the encode driver.
 *
 * Encode for tokenizer.json follows Hugging Face `tokenizers`:
 *   raw text --(invalid UTF-8 -> U+FFFD)--> split on added tokens that are not
 *   normalized --> normalize each remaining segment --> split on normalized
 *   added tokens --> pre-tokenize into words --> BPE per word --> template
 *   (BOS/EOS) when add_special.
 * For a SentencePiece .model the whole text is normalized (dummy prefix,
 * spaces -> U+2581) and BPE runs over it by piece score, as sentencepiece does.
 * The readers live in tokenizer_json.c / tokenizer_spm.c; this file owns the
 * lifecycle, the string and pair hash maps, tokenizer_config.json and the
 * added-token matcher. Nothing here keeps state between calls.
 */
#include "runtime/tokenizer_int.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

SglStatus idvec_push(IdVec *v, int32_t id)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 64;
        int32_t *p = realloc(v->v, cap * sizeof *p);
        if (!p)
            return SGL_E_NOMEM;
        v->v = p;
        v->cap = cap;
    }
    v->v[v->n++] = id;
    return SGL_OK;
}

SglStatus tok_blob_add(SglTokenizer *t, const char *s, size_t len, uint32_t *off)
{
    if (t->blob_len + len + 1 > UINT32_MAX)
        return SGL_E_NOMEM;
    if (t->blob_len + len + 1 > t->blob_cap) {
        size_t cap = t->blob_cap ? t->blob_cap : 4096;
        while (cap < t->blob_len + len + 1)
            cap *= 2;
        char *p = realloc(t->blob, cap);
        if (!p)
            return SGL_E_NOMEM;
        t->blob = p;
        t->blob_cap = cap;
    }
    if (len)
        memcpy(t->blob + t->blob_len, s, len);
    t->blob[t->blob_len + len] = '\0';
    *off = (uint32_t)t->blob_len;
    t->blob_len += len + 1;
    return SGL_OK;
}

/* Grows the id space to n_tok entries (new ones TOKK_NONE); capacity doubles,
 * so reading a vocab id by id stays linear. */
SglStatus tok_reserve(SglTokenizer *t, int32_t n_tok)
{
    if (n_tok <= t->n_tok)
        return SGL_OK;
    if (n_tok > t->tok_cap) {
        int64_t cap = t->tok_cap ? t->tok_cap : 1024;
        while (cap < n_tok)
            cap *= 2;
        TokEntry *p = realloc(t->tok, (size_t)cap * sizeof *p);
        if (!p)
            return SGL_E_NOMEM;
        t->tok = p;
        t->tok_cap = (int32_t)cap;
    }
    memset(t->tok + t->n_tok, 0, (size_t)(n_tok - t->n_tok) * sizeof *t->tok);
    t->n_tok = n_tok;
    return SGL_OK;
}

static uint32_t hash_bytes(const char *s, size_t len)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h ^ (h >> 15);
}

static void entry_str(const SglTokenizer *t, int32_t id, bool raw, const char **s, size_t *len)
{
    const TokEntry *e = &t->tok[id];
    *s = t->blob + (raw ? e->raw_off : e->off);
    *len = raw ? e->raw_len : e->len;
}

/* Builds a map over every present token's text (raw: its token bytes). When two
 * ids share a text the lower id wins for the model vocab, except that added
 * tokens are inserted first so that they shadow model tokens (as HF does). */
SglStatus strmap_build(SglTokenizer *t, StrMap *m, bool raw)
{
    uint32_t cap = 16;
    while (cap < (uint32_t)t->n_tok * 2u + 16u)
        cap *= 2;
    m->slots = malloc(cap * sizeof *m->slots);
    if (!m->slots)
        return SGL_E_NOMEM;
    memset(m->slots, 0xff, cap * sizeof *m->slots);
    m->mask = cap - 1;
    for (int pass = 0; pass < 2; pass++) {
        for (int32_t id = 0; id < t->n_tok; id++) {
            const TokEntry *e = &t->tok[id];
            if (e->kind == TOKK_NONE || (pass == 0) != (e->added != 0))
                continue;
            const char *s;
            size_t len;
            entry_str(t, id, raw, &s, &len);
            uint32_t h = hash_bytes(s, len) & m->mask;
            for (;;) {
                int32_t o = m->slots[h];
                if (o < 0) {
                    m->slots[h] = id;
                    break;
                }
                const char *os;
                size_t olen;
                entry_str(t, o, raw, &os, &olen);
                if (olen == len && memcmp(os, s, len) == 0)
                    break;   /* first one wins */
                h = (h + 1) & m->mask;
            }
        }
    }
    return SGL_OK;
}

int32_t strmap_get(const SglTokenizer *t, const StrMap *m, const char *s, size_t len, bool raw)
{
    if (!m->slots)
        return -1;
    uint32_t h = hash_bytes(s, len) & m->mask;
    for (;;) {
        int32_t o = m->slots[h];
        if (o < 0)
            return -1;
        const char *os;
        size_t olen;
        entry_str(t, o, raw, &os, &olen);
        if (olen == len && memcmp(os, s, len) == 0)
            return o;
        h = (h + 1) & m->mask;
    }
}

SglStatus pairmap_init(PairMap *m, size_t n)
{
    uint32_t cap = 16;
    while (cap < n * 2 + 16)
        cap *= 2;
    m->slots = malloc(cap * sizeof *m->slots);
    if (!m->slots)
        return SGL_E_NOMEM;
    for (uint32_t i = 0; i < cap; i++)
        m->slots[i].key = UINT64_MAX;
    m->mask = cap - 1;
    m->n = 0;
    return SGL_OK;
}

static uint32_t hash_pair(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return (uint32_t)k;
}

/* The first insertion of a pair wins (HF keeps the lowest merge rank). */
void pairmap_put(PairMap *m, int32_t a, int32_t b, float prio, int32_t merged)
{
    uint64_t k = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    uint32_t h = hash_pair(k) & m->mask;
    while (m->slots[h].key != UINT64_MAX) {
        if (m->slots[h].key == k)
            return;
        h = (h + 1) & m->mask;
    }
    m->slots[h] = (PairSlot){k, prio, merged};
    m->n++;
}

bool pairmap_get(const PairMap *m, int32_t a, int32_t b, float *prio, int32_t *merged)
{
    if (!m->slots || a < 0 || b < 0)
        return false;
    uint64_t k = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    for (uint32_t h = hash_pair(k) & m->mask;; h = (h + 1) & m->mask) {
        const PairSlot *s = &m->slots[h];
        if (s->key == k) {
            *prio = s->prio;
            *merged = s->merged;
            return true;
        }
        if (s->key == UINT64_MAX)
            return false;
    }
}

pcre2_code *tok_regex(const char *pat, size_t len, bool literal, SglErr *err, const char *file,
                      const char *field)
{
    int ec;
    PCRE2_SIZE eoff;
    uint32_t opts = PCRE2_UTF | PCRE2_UCP | (literal ? PCRE2_LITERAL : 0);
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, len, opts, &ec, &eoff, NULL);
    if (!re) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(ec, msg, sizeof msg);
        sgl_err(err, SGL_E_UNSUPPORTED, "%s: %s: regex not supported at offset %zu: %s",
                file, field, (size_t)eoff, (const char *)msg);
        return NULL;
    }
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);   /* falls back to the interpreter */
    return re;
}

/* ---- lifecycle -------------------------------------------------------- */

void sgl_tokenizer_free(SglTokenizer *t)
{
    if (!t)
        return;
    for (int i = 0; i < t->n_norm; i++) {
        free(t->norm[i].a);
        free(t->norm[i].b);
        pcre2_code_free(t->norm[i].re);
    }
    for (int i = 0; i < t->n_pre; i++)
        pcre2_code_free(t->pre[i].re);
    for (int i = 0; i < t->n_dec; i++) {
        free(t->dec[i].a);
        free(t->dec[i].b);
    }
    pcre2_code_free(t->re_word_start);
    pcre2_code_free(t->re_word_end);
    free(t->match_raw.idx);
    free(t->match_norm.idx);
    free(t->added);
    free(t->user_syms);
    free(t->vocab.slots);
    free(t->raw_vocab.slots);
    free(t->merges.slots);
    free(t->tok);
    free(t->blob);
    free(t->path);
    free(t);
}

static bool is_file(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static char *path_join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p)
        return NULL;
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return strdup(".");
    size_t n = slash == path ? 1 : (size_t)(slash - path);
    char *d = malloc(n + 1);
    if (!d)
        return NULL;
    memcpy(d, path, n);
    d[n] = '\0';
    return d;
}

/* A token given in tokenizer_config.json: "text", {"content": "text"} or null. */
static SglStatus config_token(SglTokenizer *t, json_t *root, const char *key, const char *file,
                              int32_t *id, SglErr *err)
{
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v))
        return SGL_OK;
    if (json_is_object(v))
        v = json_object_get(v, "content");
    if (!json_is_string(v))
        return sgl_err(err, SGL_E_FORMAT, "%s: %s: expected a string or {\"content\": ...}",
                       file, key);
    int32_t x = strmap_get(t, &t->vocab, json_string_value(v), json_string_length(v), false);
    if (x < 0)
        return sgl_err(err, SGL_E_FORMAT, "%s: %s: token '%.80s' is not in the vocabulary",
                       file, key, json_string_value(v));
    *id = x;
    return SGL_OK;
}

/* tokenizer_config.json next to the tokenizer: bos/eos and add_bos/add_eos,
 * which override the post-processor as transformers' Llama tokenizers do. */
static SglStatus read_config(SglTokenizer *t, const char *dir, SglErr *err)
{
    SglStatus st = SGL_OK;
    char *p = path_join(dir, "tokenizer_config.json");
    json_t *root = NULL;
    if (!p)
        return SGL_E_NOMEM;
    if (!is_file(p))
        goto out;
    json_error_t je;
    root = json_load_file(p, 0, &je);
    if (!root) {
        st = sgl_err(err, SGL_E_FORMAT, "%s:%d:%d: %s", p, je.line, je.column, je.text);
        goto out;
    }
    if (!json_is_object(root)) {
        st = sgl_err(err, SGL_E_FORMAT, "%s: expected a JSON object", p);
        goto out;
    }
    if ((st = config_token(t, root, "bos_token", p, &t->bos, err)) != SGL_OK ||
        (st = config_token(t, root, "eos_token", p, &t->eos, err)) != SGL_OK)
        goto out;
    json_t *ab = json_object_get(root, "add_bos_token");
    json_t *ae = json_object_get(root, "add_eos_token");
    if ((ab && !json_is_boolean(ab)) || (ae && !json_is_boolean(ae))) {
        st = sgl_err(err, SGL_E_FORMAT, "%s: %s: expected true or false", p,
                     ab && !json_is_boolean(ab) ? "add_bos_token" : "add_eos_token");
        goto out;
    }
    if (ab || ae) {
        t->n_prefix = t->n_suffix = 0;
        if (ab ? json_is_true(ab) : t->is_spm) {
            if (t->bos < 0) {
                st = sgl_err(err, SGL_E_FORMAT, "%s: add_bos_token is set but no bos_token", p);
                goto out;
            }
            t->prefix[t->n_prefix++] = t->bos;
        }
        if (ae && json_is_true(ae)) {
            if (t->eos < 0) {
                st = sgl_err(err, SGL_E_FORMAT, "%s: add_eos_token is set but no eos_token", p);
                goto out;
            }
            t->suffix[t->n_suffix++] = t->eos;
        }
    }
out:
    json_decref(root);
    free(p);
    return st;
}

/* config.json's bos_token_id / eos_token_id fill in ids the tokenizer files do
 * not name (SmolLM2 ships no tokenizer_config.json). A missing or unreadable
 * config.json is not an error: it belongs to the model loader. */
static void read_model_config(SglTokenizer *t, const char *dir)
{
    char *p = path_join(dir, "config.json");
    json_t *root = p && is_file(p) ? json_load_file(p, 0, NULL) : NULL;
    if (json_is_object(root)) {
        const char *keys[2] = {"bos_token_id", "eos_token_id"};
        int32_t *dst[2] = {&t->bos, &t->eos};
        for (int i = 0; i < 2; i++) {
            json_t *v = json_object_get(root, keys[i]);
            if (json_is_array(v))
                v = json_array_get(v, 0);
            if (*dst[i] < 0 && json_is_integer(v) && json_integer_value(v) >= 0 &&
                json_integer_value(v) < t->n_tok && t->tok[json_integer_value(v)].kind != TOKK_NONE)
                *dst[i] = (int32_t)json_integer_value(v);
        }
    }
    json_decref(root);
    free(p);
}

static SglStatus load_path(const char *path, const char *cfg_dir, SglTokenizer **out, SglErr *err)
{
    SglStatus st;
    SglTokenizer *t = calloc(1, sizeof *t);
    *out = NULL;
    if (!t)
        return sgl_err(err, SGL_E_NOMEM, "%s: out of memory", path);
    t->path = strdup(path);
    t->unk_id = t->bos = t->eos = -1;
    if (!t->path) {
        st = sgl_err(err, SGL_E_NOMEM, "%s: out of memory", path);
        goto fail;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        st = sgl_err(err, SGL_E_IO, "%s: cannot open: %s", path, strerror(errno));
        goto fail;
    }
    int c0 = fgetc(f);
    while (c0 == ' ' || c0 == '\n' || c0 == '\r' || c0 == '\t')
        c0 = fgetc(f);
    fclose(f);
    /* A JSON document starts with '{'; a ModelProto starts with field 1 (0x0a). */
    size_t plen = strlen(path);
    bool json = c0 == '{' || (plen >= 5 && strcmp(path + plen - 5, ".json") == 0);
    st = json ? tok_read_json(t, path, err) : tok_read_spm(t, path, err);
    if (st != SGL_OK)
        goto fail;
    if ((st = tok_compute_token_bytes(t)) != SGL_OK)
        goto nomem;
    if (t->ignore_merges && (st = strmap_build(t, &t->raw_vocab, true)) != SGL_OK)
        goto nomem;
    if (cfg_dir) {
        if ((st = read_config(t, cfg_dir, err)) != SGL_OK)
            goto fail;
        read_model_config(t, cfg_dir);
    }
    *out = t;
    return SGL_OK;
nomem:
    sgl_err(err, st, "%s: out of memory", path);
fail:
    sgl_tokenizer_free(t);
    return st;
}

SglStatus sgl_tokenizer_load_file(const char *path, SglTokenizer **out, SglErr *err)
{
    char *dir = dir_of(path);
    if (!dir)
        return sgl_err(err, SGL_E_NOMEM, "%s: out of memory", path);
    SglStatus st = load_path(path, dir, out, err);
    free(dir);
    return st;
}

SglStatus sgl_tokenizer_load(const char *dir, SglTokenizer **out, SglErr *err)
{
    *out = NULL;
    struct stat sb;
    if (stat(dir, &sb) != 0)
        return sgl_err(err, SGL_E_IO, "%s: cannot open: %s", dir, strerror(errno));
    if (S_ISREG(sb.st_mode))
        return sgl_tokenizer_load_file(dir, out, err);
    const char *names[2] = {"tokenizer.json", "tokenizer.model"};
    for (int i = 0; i < 2; i++) {
        char *p = path_join(dir, names[i]);
        if (!p)
            return sgl_err(err, SGL_E_NOMEM, "%s: out of memory", dir);
        if (is_file(p)) {
            SglStatus st = load_path(p, dir, out, err);
            free(p);
            return st;
        }
        free(p);
    }
    return sgl_err(err, SGL_E_IO, "%s: no tokenizer.json or tokenizer.model there", dir);
}

/* ---- queries ---------------------------------------------------------- */

int32_t sgl_tokenizer_vocab_size(const SglTokenizer *t) { return t->n_tok; }
int32_t sgl_tokenizer_bos(const SglTokenizer *t) { return t->bos; }
int32_t sgl_tokenizer_eos(const SglTokenizer *t) { return t->eos; }
bool sgl_tokenizer_add_bos(const SglTokenizer *t) { return t->n_prefix > 0; }

int32_t sgl_tokenizer_token_id(const SglTokenizer *t, const char *text)
{
    return strmap_get(t, &t->vocab, text, strlen(text), false);
}

bool sgl_tokenizer_is_special(const SglTokenizer *t, int32_t id)
{
    return id >= 0 && id < t->n_tok && t->tok[id].special;
}

const char *sgl_tokenizer_token_bytes(const SglTokenizer *t, int32_t id, size_t *len)
{
    if (id < 0 || id >= t->n_tok || t->tok[id].kind == TOKK_NONE) {
        *len = 0;
        return "";
    }
    *len = t->tok[id].raw_len;
    return t->blob + t->tok[id].raw_off;
}

/* ---- added tokens ----------------------------------------------------- */

static uint32_t decode_cp(const unsigned char *s, size_t n, size_t *adv)
{
    int kind;
    size_t l = tok_utf8_scan(s, n, &kind);
    if (kind != U8_OK) {
        *adv = 1;
        return 0xFFFD;
    }
    *adv = l;
    if (l == 1)
        return s[0];
    if (l == 2)
        return ((uint32_t)(s[0] & 0x1f) << 6) | (s[1] & 0x3f);
    if (l == 3)
        return ((uint32_t)(s[0] & 0x0f) << 12) | ((uint32_t)(s[1] & 0x3f) << 6) | (s[2] & 0x3f);
    return ((uint32_t)(s[0] & 0x07) << 18) | ((uint32_t)(s[1] & 0x3f) << 12) |
           ((uint32_t)(s[2] & 0x3f) << 6) | (s[3] & 0x3f);
}

/* Unicode White_Space (what Rust's regex \s matches). */
static bool is_space_cp(uint32_t c)
{
    return (c >= 9 && c <= 13) || c == 32 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

static size_t char_start_before(const char *s, size_t pos)
{
    size_t i = pos;
    while (i > 0 && ((unsigned char)s[i - 1] & 0xC0) == 0x80 && pos - i < 3)
        i--;
    return i > 0 ? i - 1 : 0;
}

static bool word_char_at(const SglTokenizer *t, const char *s, size_t len, size_t at,
                         pcre2_match_data *md)
{
    return pcre2_match(t->re_word_start, (PCRE2_SPTR)s, len, at,
                       PCRE2_ANCHORED | PCRE2_NO_UTF_CHECK, md, NULL) >= 0;
}

typedef SglStatus (*SegFn)(const SglTokenizer *t, const char *s, size_t len, bool first,
                           void *ctx);

/* Splits s on the matcher's added tokens, as HF's find_matches: leftmost-longest
 * matches, single_word matches dropped when glued to a word character, lstrip /
 * rstrip swallowing the whitespace around the token. Tokens go to out, the
 * text between them to seg(). base: offset of s in the original text. */
static SglStatus split_added(const SglTokenizer *t, const TokMatcher *m, const char *s, size_t len,
                             size_t base, pcre2_match_data *md, IdVec *out, SegFn seg, void *ctx)
{
    SglStatus st;
    size_t start_off = 0, pos = 0;
    if (m->n > 0) {
        while (pos < len) {
            unsigned char c = (unsigned char)s[pos];
            int32_t a = m->start[c], b = m->start[c + 1], hit = -1;
            for (int32_t k = a; k < b; k++) {
                const TokAdded *ad = &t->added[m->idx[k]];
                if (ad->len <= len - pos && memcmp(t->blob + ad->off, s + pos, ad->len) == 0) {
                    hit = m->idx[k];
                    break;
                }
            }
            if (hit < 0) {
                pos++;
                continue;
            }
            const TokAdded *ad = &t->added[hit];
            size_t ms = pos, me = pos + ad->len;
            pos = me;
            if (ad->single_word) {
                bool glued = (ms > 0 && word_char_at(t, s, len, char_start_before(s, ms), md)) ||
                             (me < len && word_char_at(t, s, len, me, md));
                if (glued)
                    continue;
            }
            if (ad->lstrip) {
                size_t ns = ms;
                while (ns > 0) {
                    size_t cs = char_start_before(s, ns), adv;
                    if (!is_space_cp(decode_cp((const unsigned char *)s + cs, ns - cs, &adv)))
                        break;
                    ns = cs;
                }
                ms = ns > start_off ? ns : start_off;
            }
            if (ad->rstrip) {
                size_t adv;
                while (me < len && is_space_cp(decode_cp((const unsigned char *)s + me, len - me,
                                                         &adv)))
                    me += adv;
                if (me > pos)
                    pos = me;
            }
            if (start_off < ms && (st = seg(t, s + start_off, ms - start_off,
                                            base + start_off == 0, ctx)) != SGL_OK)
                return st;
            if ((st = idvec_push(out, ad->id)) != SGL_OK)
                return st;
            start_off = me;
        }
    }
    if (start_off < len)
        return seg(t, s + start_off, len - start_off, base + start_off == 0, ctx);
    return SGL_OK;
}

typedef struct {
    IdVec *out;
    TokBuf norm;
    PreScratch ps;
    BpeScratch bs;
    pcre2_match_data *md;
} EncCtx;

static SglStatus seg_words(const SglTokenizer *t, const char *s, size_t len, bool first, void *vctx)
{
    EncCtx *c = vctx;
    TokBuf *wbuf;
    TokSpans *words;
    SglStatus st = tok_pretokenize(t, s, len, first, &c->ps, c->md, &wbuf, &words);
    for (size_t i = 0; st == SGL_OK && i < words->n; i++)
        st = bpe_encode_word(t, wbuf->buf + words->off[i], words->len[i], &c->bs, c->out);
    return st;
}

static SglStatus seg_normalize(const SglTokenizer *t, const char *s, size_t len, bool first,
                               void *vctx)
{
    EncCtx *c = vctx;
    SglStatus st = tok_normalize(t, s, len, &c->norm, c->md);
    if (st != SGL_OK)
        return st;
    /* seg_words only touches c->ps and c->bs, so c->norm stays valid here. */
    st = split_added(t, &t->match_norm, c->norm.buf, c->norm.len, first ? 0 : 1, c->md, c->out,
                     seg_words, c);
    return st;
}

SglStatus sgl_tokenizer_encode(const SglTokenizer *t, const char *text, size_t len,
                               bool add_special, int32_t **ids, int32_t *n)
{
    SglStatus st = SGL_OK;
    IdVec out = {0};
    TokBuf clean = {0};
    EncCtx c = {.out = &out};
    *ids = NULL;
    *n = 0;
    if (!text && len)
        return SGL_E_INVAL;
    c.md = pcre2_match_data_create(1, NULL);
    if (!c.md) {
        st = SGL_E_NOMEM;
        goto out;
    }
    if (add_special)
        for (int i = 0; i < t->n_prefix && st == SGL_OK; i++)
            st = idvec_push(&out, t->prefix[i]);
    if (st != SGL_OK)
        goto out;
    if (t->is_spm) {
        if ((st = tok_spm_normalize(t, text, len, &c.norm)) == SGL_OK)
            st = bpe_encode_spm(t, c.norm.buf, c.norm.len, &c.bs, &out);
    } else {
        bool changed;
        if ((st = tok_utf8_sanitize(text, len, &clean, &changed)) != SGL_OK)
            goto out;
        const char *s = changed ? clean.buf : text;
        size_t sl = changed ? clean.len : len;
        st = split_added(t, &t->match_raw, s, sl, 0, c.md, &out, seg_normalize, &c);
    }
    if (st != SGL_OK)
        goto out;
    if (add_special)
        for (int i = 0; i < t->n_suffix && st == SGL_OK; i++)
            st = idvec_push(&out, t->suffix[i]);
    if (st != SGL_OK)
        goto out;
    if (out.n > INT32_MAX) {
        st = SGL_E_INVAL;
        goto out;
    }
    if (!out.v && (st = idvec_push(&out, 0)) == SGL_OK)
        out.n = 0;   /* a valid (empty) array even for empty text */
    *ids = out.v;
    *n = (int32_t)out.n;
    out.v = NULL;
out:
    free(out.v);
    free(clean.buf);
    free(c.norm.buf);
    pre_scratch_free(&c.ps);
    bpe_scratch_free(&c.bs);
    pcre2_match_data_free(c.md);
    return st;
}

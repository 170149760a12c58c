/* tokenizer_decode.c -- ids back to text, in one pass that can also stream.
 *
 * Decoding is a streaming machine (TokDec) fed one id at a time; a full
 * decode is "push every id, then finish", and SglDetok hands out whatever the
 * machine has produced after each push. So streamed text concatenates to the
 * full decode by construction, and the machine only holds back what a later
 * id can still change.
 *
 * tokenizer.json decoders (HF decode_chain semantics) run as three stages:
 *   per-token steps (Replace, Strip, Metaspace; ByteFallback grouping runs of
 *   <0xXX> tokens: a run that is valid UTF-8 becomes its text, otherwise one
 *   U+FFFD per byte, as HF does)  ->  the fuse point (Fuse: concatenate;
 *   ByteLevel: chars -> bytes, then lossy UTF-8 with one U+FFFD per maximal
 *   invalid subpart; no decoder: join with " ")  ->  whole-text steps
 *   (Replace with a held-back partial match, Strip at the start and end,
 *   Metaspace as HF's first token).
 * SentencePiece .model decoding follows sentencepiece: '▁' -> ' ', the first
 * visible piece loses one leading '▁', byte pieces form UTF-8 characters with
 * one U+FFFD per invalid byte, <unk> shows as " ⁇ ".
 */
#include "runtime/tokenizer_int.h"

#include <stdlib.h>
#include <string.h>

static const char REPL_CHAR[3] = {(char)0xEF, (char)0xBF, (char)0xBD};   /* U+FFFD */
static const char SPM_WS[3] = {(char)0xE2, (char)0x96, (char)0x81};     /* U+2581 */

struct TokDec {
    const SglTokenizer *t;
    bool skip_special;
    TokBuf out;                         /* produced, not yet handed out */
    int32_t seen[TOK_MAX_STEPS];        /* elements that passed per-token step k */
    TokBuf tmp[TOK_MAX_STEPS];          /* per-step scratch */
    TokBuf run;                         /* ByteFallback / SentencePiece byte run */
    TokBuf u8;                          /* ByteLevel: incomplete UTF-8 tail */
    int64_t n_joined;                   /* no decoder: elements joined so far */
    TokBuf hold[TOK_MAX_STEPS];         /* whole-text steps: held-back text */
    int32_t lead[TOK_MAX_STEPS];        /* Strip: leading chars removed; -1 once done */
    bool bos_ws;                        /* SentencePiece: next piece may lose its '▁' */
};

static uint32_t cp_at(const char *s, size_t n, size_t *adv)
{
    const unsigned char *u = (const unsigned char *)s;
    int kind;
    size_t l = tok_utf8_scan(u, n, &kind);
    *adv = kind == U8_OK ? l : 1;
    if (kind != U8_OK)
        return 0xFFFD;
    switch (l) {
    case 1: return u[0];
    case 2: return ((uint32_t)(u[0] & 0x1f) << 6) | (u[1] & 0x3f);
    case 3: return ((uint32_t)(u[0] & 0x0f) << 12) | ((uint32_t)(u[1] & 0x3f) << 6) | (u[2] & 0x3f);
    default:
        return ((uint32_t)(u[0] & 0x07) << 18) | ((uint32_t)(u[1] & 0x3f) << 12) |
               ((uint32_t)(u[2] & 0x3f) << 6) | (u[3] & 0x3f);
    }
}

SglStatus tok_check_decoder(SglTokenizer *t, SglErr *err)
{
    t->dec_fuse = t->n_dec;
    t->dec_bf = -1;
    for (int k = 0; k < t->n_dec; k++) {
        DecKind kind = t->dec[k].kind;
        bool after = k > t->dec_fuse;
        if (kind == DEC_BYTEFALLBACK) {
            if (t->dec_bf >= 0 || after || t->dec_fuse < k)
                return sgl_err(err, SGL_E_UNSUPPORTED, "%s: decoder: ByteFallback after Fuse/"
                               "ByteLevel or twice is not supported", t->path);
            t->dec_bf = k;
        } else if (kind == DEC_BYTELEVEL && t->dec_fuse < k) {
            return sgl_err(err, SGL_E_UNSUPPORTED, "%s: decoder: ByteLevel after Fuse/ByteLevel "
                           "is not supported", t->path);
        } else if ((kind == DEC_FUSE || kind == DEC_BYTELEVEL) && t->dec_fuse == t->n_dec) {
            t->dec_fuse = k;
        }
    }
    /* GPT-2 ByteLevel alphabet, inverted. */
    for (int i = 0; i < 324; i++)
        t->bl_byte[i] = -1;
    int n = 0;
    for (int b = 0; b < 256; b++) {
        bool self = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
        t->bl_byte[self ? b : 256 + n++] = (int16_t)b;
    }
    return SGL_OK;
}

/* ByteLevel: a token whose chars are all in the alphabet stands for those
 * bytes; any other token (an added token with other chars) for its own UTF-8. */
static SglStatus bytelevel_bytes(const SglTokenizer *t, const char *s, size_t len, TokBuf *out)
{
    size_t start = out->len;
    for (size_t i = 0; i < len;) {
        size_t adv;
        uint32_t c = cp_at(s + i, len - i, &adv);
        if (c >= 324 || t->bl_byte[c] < 0) {
            out->len = start;
            return tokbuf_put(out, s, len);
        }
        char b = (char)t->bl_byte[c];
        SglStatus st = tokbuf_put(out, &b, 1);
        if (st != SGL_OK)
            return st;
        i += adv;
    }
    return SGL_OK;
}

static SglStatus replace_str(const char *s, size_t len, const char *pat, size_t plen,
                             const char *rep, size_t rlen, TokBuf *out)
{
    SglStatus st = SGL_OK;
    size_t i = 0;
    while (st == SGL_OK && i < len) {
        const char *p = plen && len - i >= plen ? memmem(s + i, len - i, pat, plen) : NULL;
        if (!p)
            break;
        size_t at = (size_t)(p - s);
        if ((st = tokbuf_put(out, s + i, at - i)) == SGL_OK)
            st = tokbuf_put(out, rep, rlen);
        i = at + plen;
    }
    return st == SGL_OK ? tokbuf_put(out, s + i, len - i) : st;
}

/* Metaspace on one element: the replacement becomes ' ', or vanishes in the
 * first element when the scheme prepends (HF's decode_chain). */
static SglStatus metaspace(const DecStep *d, bool first, const char *s, size_t len, TokBuf *out)
{
    SglStatus st = SGL_OK;
    for (size_t i = 0; i < len && st == SGL_OK;) {
        if (d->a_len && len - i >= d->a_len && memcmp(s + i, d->a, d->a_len) == 0) {
            if (!(first && d->prepend))
                st = tokbuf_put(out, " ", 1);
            i += d->a_len;
        } else {
            st = tokbuf_put(out, s + i, 1);
            i++;
        }
    }
    return st;
}

/* ---- whole-text stage ------------------------------------------------- */

static SglStatus post_feed(TokDec *d, int k, const char *s, size_t len);

static SglStatus post_feed(TokDec *d, int k, const char *s, size_t len)
{
    const SglTokenizer *t = d->t;
    SglStatus st = SGL_OK;
    while (k < t->n_dec && t->dec[k].kind == DEC_FUSE)
        k++;
    if (k >= t->n_dec)
        return tokbuf_put(&d->out, s, len);
    if (len == 0)
        return SGL_OK;
    const DecStep *ds = &t->dec[k];
    TokBuf *tmp = &d->tmp[k];
    tmp->len = 0;
    if (ds->kind == DEC_REPLACE) {
        TokBuf *h = &d->hold[k];
        if ((st = tokbuf_put(h, s, len)) != SGL_OK)
            return st;
        /* Replace full matches left to right; hold the tail from the earliest
         * place where a match could still start once more text comes. */
        size_t i = 0;
        const char *p;
        while (h->len - i >= ds->a_len && (p = memmem(h->buf + i, h->len - i, ds->a, ds->a_len))) {
            size_t at = (size_t)(p - h->buf);
            if ((st = tokbuf_put(tmp, h->buf + i, at - i)) != SGL_OK ||
                (st = tokbuf_put(tmp, ds->b, ds->b_len)) != SGL_OK)
                return st;
            i = at + ds->a_len;
        }
        size_t j = h->len - i >= ds->a_len ? h->len - ds->a_len + 1 : i;
        while (j < h->len && memcmp(h->buf + j, ds->a, h->len - j) != 0)
            j++;
        if ((st = tokbuf_put(tmp, h->buf + i, j - i)) != SGL_OK)
            return st;
        if (h->len > j)
            memmove(h->buf, h->buf + j, h->len - j);
        h->len -= j;
        return post_feed(d, k + 1, tmp->buf, tmp->len);
    }
    if (ds->kind == DEC_METASPACE) {
        if ((st = metaspace(ds, true, s, len, tmp)) != SGL_OK)
            return st;
        return post_feed(d, k + 1, tmp->buf, tmp->len);
    }
    /* DEC_STRIP over the whole text: drop up to start leading chars, hold back
     * a trailing run of the char (at most stop of it is dropped at the end). */
    TokBuf *h = &d->hold[k];
    for (size_t i = 0; i < len && st == SGL_OK;) {
        size_t adv;
        cp_at(s + i, len - i, &adv);
        bool is_c = adv == ds->a_len && memcmp(s + i, ds->a, adv) == 0;
        if (d->lead[k] >= 0) {
            if (is_c && d->lead[k] < ds->start) {
                d->lead[k]++;
                i += adv;
                continue;
            }
            d->lead[k] = -1;
        }
        if (is_c && ds->stop > 0) {
            st = tokbuf_put(h, s + i, adv);
        } else {
            if (h->len && (st = tokbuf_put(tmp, h->buf, h->len)) == SGL_OK)
                h->len = 0;
            if (st == SGL_OK)
                st = tokbuf_put(tmp, s + i, adv);
        }
        i += adv;
    }
    if (st != SGL_OK)
        return st;
    return post_feed(d, k + 1, tmp->buf, tmp->len);
}

static SglStatus post_finish(TokDec *d)
{
    const SglTokenizer *t = d->t;
    SglStatus st = SGL_OK;
    for (int k = t->dec_fuse + 1; k < t->n_dec && st == SGL_OK; k++) {
        const DecStep *ds = &t->dec[k];
        TokBuf *h = &d->hold[k];
        if (ds->kind == DEC_REPLACE && h->len) {
            TokBuf copy = *h;
            *h = (TokBuf){0};
            st = post_feed(d, k + 1, copy.buf, copy.len);
            free(copy.buf);
        } else if (ds->kind == DEC_STRIP && h->len) {
            size_t n_c = h->len / ds->a_len, drop = (size_t)ds->stop < n_c ? (size_t)ds->stop : n_c;
            h->len = 0;
            TokBuf copy = {0};
            for (size_t i = 0; i < n_c - drop && st == SGL_OK; i++)
                st = tokbuf_put(&copy, ds->a, ds->a_len);
            if (st == SGL_OK && copy.len)
                st = post_feed(d, k + 1, copy.buf, copy.len);
            free(copy.buf);
        }
        d->lead[k] = 0;
    }
    return st;
}

/* ---- fuse point ------------------------------------------------------- */

/* Lossy UTF-8 over the ByteLevel byte stream: complete characters go on,
 * invalid subparts become U+FFFD, an incomplete tail waits (or, at the end,
 * becomes one U+FFFD). */
static SglStatus u8_drain(TokDec *d, bool final)
{
    SglStatus st = SGL_OK;
    TokBuf *u = &d->u8;
    size_t i = 0, emit_from = 0;
    TokBuf *tmp = &d->tmp[d->t->dec_fuse];
    tmp->len = 0;
    while (i < u->len && st == SGL_OK) {
        int kind;
        size_t l = tok_utf8_scan((const unsigned char *)u->buf + i, u->len - i, &kind);
        if (kind == U8_INCOMPLETE && !final)
            break;
        if (kind == U8_OK) {
            i += l;
            continue;
        }
        if ((st = tokbuf_put(tmp, u->buf + emit_from, i - emit_from)) == SGL_OK)
            st = tokbuf_put(tmp, REPL_CHAR, 3);
        i += l;
        emit_from = i;
    }
    if (st == SGL_OK)
        st = tokbuf_put(tmp, u->buf + emit_from, i - emit_from);
    if (st != SGL_OK)
        return st;
    if (u->len > i)
        memmove(u->buf, u->buf + i, u->len - i);
    u->len -= i;
    /* tmp is d->tmp[dec_fuse]; post steps use their own (k > dec_fuse). */
    return post_feed(d, d->t->dec_fuse + 1, tmp->buf, tmp->len);
}

static SglStatus fuse_feed(TokDec *d, const char *s, size_t len)
{
    const SglTokenizer *t = d->t;
    SglStatus st;
    if (t->dec_fuse < t->n_dec && t->dec[t->dec_fuse].kind == DEC_BYTELEVEL) {
        if ((st = bytelevel_bytes(t, s, len, &d->u8)) != SGL_OK)
            return st;
        return u8_drain(d, false);
    }
    if (!t->has_decoder && d->n_joined++ > 0 && (st = post_feed(d, t->n_dec, " ", 1)) != SGL_OK)
        return st;
    return post_feed(d, t->dec_fuse + 1, s, len);
}

/* ---- per-token stage -------------------------------------------------- */

static SglStatus tok_feed(TokDec *d, int k, const char *s, size_t len);

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
         : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Ends a ByteFallback run: valid UTF-8 goes on as one element, otherwise one
 * U+FFFD element per byte (HF). */
static SglStatus run_flush(TokDec *d)
{
    SglStatus st = SGL_OK;
    int k = d->t->dec_bf;
    if (k < 0 || d->run.len == 0)
        return SGL_OK;
    bool ok = true;
    for (size_t i = 0; i < d->run.len && ok;) {
        int kind;
        i += tok_utf8_scan((const unsigned char *)d->run.buf + i, d->run.len - i, &kind);
        ok = kind == U8_OK;
    }
    TokBuf run = d->run;
    d->run = (TokBuf){0};
    if (ok)
        st = tok_feed(d, k + 1, run.buf, run.len);
    else
        for (size_t i = 0; i < run.len && st == SGL_OK; i++)
            st = tok_feed(d, k + 1, REPL_CHAR, 3);
    run.len = 0;
    d->run = run;   /* keep the allocation */
    return st;
}

static SglStatus tok_feed(TokDec *d, int k, const char *s, size_t len)
{
    const SglTokenizer *t = d->t;
    SglStatus st;
    if (k >= t->dec_fuse)
        return fuse_feed(d, s, len);
    const DecStep *ds = &t->dec[k];
    if (ds->kind == DEC_BYTEFALLBACK) {
        if (len == 6 && memcmp(s, "<0x", 3) == 0 && s[5] == '>' && hexval(s[3]) >= 0 &&
            hexval(s[4]) >= 0) {
            char b = (char)(hexval(s[3]) * 16 + hexval(s[4]));
            return tokbuf_put(&d->run, &b, 1);
        }
        if ((st = run_flush(d)) != SGL_OK)
            return st;
        return tok_feed(d, k + 1, s, len);
    }
    TokBuf *tmp = &d->tmp[k];
    bool first = d->seen[k]++ == 0;
    tmp->len = 0;
    switch (ds->kind) {
    case DEC_REPLACE:
        st = replace_str(s, len, ds->a, ds->a_len, ds->b, ds->b_len, tmp);
        break;
    case DEC_METASPACE:
        st = metaspace(ds, first, s, len, tmp);
        break;
    case DEC_STRIP: {
        size_t a = 0, b = len;
        for (int32_t i = 0; i < ds->start && b - a >= ds->a_len &&
                            memcmp(s + a, ds->a, ds->a_len) == 0; i++)
            a += ds->a_len;
        for (int32_t i = 0; i < ds->stop && b - a >= ds->a_len &&
                            memcmp(s + b - ds->a_len, ds->a, ds->a_len) == 0; i++)
            b -= ds->a_len;
        st = tokbuf_put(tmp, s + a, b - a);
        break;
    }
    default:   /* DEC_FUSE / DEC_BYTELEVEL are the fuse point */
        st = tokbuf_put(tmp, s, len);
        break;
    }
    if (st != SGL_OK)
        return st;
    /* tmp[k] stays untouched while later steps run: they use tmp[j > k]. */
    return tok_feed(d, k + 1, tmp->buf, tmp->len);
}

/* ---- SentencePiece ---------------------------------------------------- */

static SglStatus spm_run_drain(TokDec *d, bool final)
{
    SglStatus st = SGL_OK;
    TokBuf *r = &d->run;
    size_t i = 0;
    while (i < r->len && st == SGL_OK) {
        int kind;
        size_t l = tok_utf8_scan((const unsigned char *)r->buf + i, r->len - i, &kind);
        if (kind == U8_INCOMPLETE && !final)
            break;
        if (kind == U8_OK) {
            st = tokbuf_put(&d->out, r->buf + i, l);
            i += l;
        } else {
            st = tokbuf_put(&d->out, REPL_CHAR, 3);
            i += 1;
        }
    }
    if (r->len > i)
        memmove(r->buf, r->buf + i, r->len - i);
    r->len -= i;
    return st;
}

static SglStatus spm_push(TokDec *d, int32_t id)
{
    const SglTokenizer *t = d->t;
    const TokEntry *e = &t->tok[id];
    SglStatus st;
    if (e->kind == TOKK_BYTE) {
        char b = (char)e->byte;
        d->bos_ws = false;
        if ((st = tokbuf_put(&d->run, &b, 1)) != SGL_OK)
            return st;
        return spm_run_drain(d, false);
    }
    if ((st = spm_run_drain(d, true)) != SGL_OK)
        return st;
    d->bos_ws = false;
    if (e->kind == TOKK_CONTROL)
        return tokbuf_put(&d->out, tok_text(t, id), e->len);
    if (e->kind == TOKK_UNKNOWN)
        return tokbuf_put(&d->out, t->unk_surface, strlen(t->unk_surface));
    return replace_str(tok_text(t, id), e->len, SPM_WS, 3, " ", 1, &d->out);
}

/* ---- machine ---------------------------------------------------------- */

static void dec_reset(TokDec *d)
{
    for (int k = 0; k < TOK_MAX_STEPS; k++) {
        d->seen[k] = 0;
        d->lead[k] = 0;
        d->hold[k].len = 0;
    }
    d->run.len = d->u8.len = 0;
    d->n_joined = 0;
    d->bos_ws = true;
}

static TokDec *dec_new(const SglTokenizer *t, bool skip_special)
{
    TokDec *d = calloc(1, sizeof *d);
    if (d) {
        d->t = t;
        d->skip_special = skip_special;
        dec_reset(d);
    }
    return d;
}

static void dec_free(TokDec *d)
{
    if (!d)
        return;
    for (int k = 0; k < TOK_MAX_STEPS; k++) {
        free(d->tmp[k].buf);
        free(d->hold[k].buf);
    }
    free(d->out.buf);
    free(d->run.buf);
    free(d->u8.buf);
    free(d);
}

static SglStatus dec_push(TokDec *d, int32_t id)
{
    const SglTokenizer *t = d->t;
    if (id < 0 || id >= t->n_tok || t->tok[id].kind == TOKK_NONE)
        return SGL_OK;   /* unknown ids are skipped, as HF's id_to_token filter does */
    const TokEntry *e = &t->tok[id];
    if (d->skip_special && e->special)
        return SGL_OK;
    if (t->is_spm) {
        if (d->bos_ws && (e->kind == TOKK_NORMAL || e->kind == TOKK_USER ||
                          e->kind == TOKK_UNUSED)) {
            d->bos_ws = false;
            const char *s = tok_text(t, id);
            size_t len = e->len;
            SglStatus st = spm_run_drain(d, true);
            if (st != SGL_OK)
                return st;
            if ((t->add_dummy_prefix || t->remove_extra_ws) && len >= 3 &&
                memcmp(s, SPM_WS, 3) == 0) {
                s += 3;
                len -= 3;
            }
            return replace_str(s, len, SPM_WS, 3, " ", 1, &d->out);
        }
        return spm_push(d, id);
    }
    return tok_feed(d, 0, tok_text(t, id), t->tok[id].len);
}

static SglStatus dec_finish(TokDec *d)
{
    SglStatus st;
    if (d->t->is_spm)
        st = spm_run_drain(d, true);
    else if ((st = run_flush(d)) == SGL_OK && d->u8.len)
        st = u8_drain(d, true);
    if (st == SGL_OK && !d->t->is_spm)
        st = post_finish(d);
    return st;
}

char *sgl_tokenizer_decode(const SglTokenizer *t, const int32_t *ids, int32_t n,
                           bool skip_special, size_t *len)
{
    char *res = NULL;
    TokDec *d = dec_new(t, skip_special);
    if (!d)
        goto out;
    SglStatus st = tokbuf_put(&d->out, "", 0);
    for (int32_t i = 0; i < n && st == SGL_OK; i++)
        st = dec_push(d, ids[i]);
    if (st == SGL_OK)
        st = dec_finish(d);
    if (st != SGL_OK)
        goto out;
    res = d->out.buf;
    if (len)
        *len = d->out.len;
    d->out.buf = NULL;
out:
    dec_free(d);
    return res;
}

/* ---- token bytes ------------------------------------------------------ */

/* What each id stands for inside a longer text: the per-token decoder steps
 * without the start-of-text rules (first-token Metaspace, a leading Strip). */
SglStatus tok_compute_token_bytes(SglTokenizer *t)
{
    SglStatus st = SGL_OK;
    TokBuf a = {0}, b = {0};
    for (int32_t id = 0; id < t->n_tok && st == SGL_OK; id++) {
        TokEntry *e = &t->tok[id];
        if (e->kind == TOKK_NONE)
            continue;
        a.len = 0;
        if ((st = tokbuf_put(&a, tok_text(t, id), e->len)) != SGL_OK)
            break;
        if (t->is_spm) {
            b.len = 0;
            if (e->kind == TOKK_BYTE) {
                char c = (char)e->byte;
                st = tokbuf_put(&b, &c, 1);
            } else if (e->kind == TOKK_UNKNOWN) {
                st = tokbuf_put(&b, t->unk_surface, strlen(t->unk_surface));
            } else if (e->kind == TOKK_CONTROL) {
                st = tokbuf_put(&b, a.buf, a.len);
            } else {
                st = replace_str(a.buf, a.len, SPM_WS, 3, " ", 1, &b);
            }
            TokBuf x = a;
            a = b;
            b = x;
        } else {
            for (int k = 0; k < t->n_dec && st == SGL_OK; k++) {
                const DecStep *ds = &t->dec[k];
                b.len = 0;
                switch (ds->kind) {
                case DEC_REPLACE:
                    st = replace_str(a.buf, a.len, ds->a, ds->a_len, ds->b, ds->b_len, &b);
                    break;
                case DEC_METASPACE:
                    st = metaspace(ds, false, a.buf, a.len, &b);
                    break;
                case DEC_BYTEFALLBACK:
                    if (e->kind == TOKK_BYTE && a.len == 6 && memcmp(a.buf, "<0x", 3) == 0) {
                        char c = (char)e->byte;
                        st = tokbuf_put(&b, &c, 1);
                    } else {
                        st = tokbuf_put(&b, a.buf, a.len);
                    }
                    break;
                case DEC_BYTELEVEL:
                    st = bytelevel_bytes(t, a.buf, a.len, &b);
                    break;
                case DEC_STRIP:
                    if (k < t->dec_fuse) {   /* per-token strip applies everywhere */
                        size_t lo = 0, hi = a.len;
                        for (int32_t i = 0; i < ds->start && hi - lo >= ds->a_len &&
                                            memcmp(a.buf + lo, ds->a, ds->a_len) == 0; i++)
                            lo += ds->a_len;
                        for (int32_t i = 0; i < ds->stop && hi - lo >= ds->a_len &&
                                            memcmp(a.buf + hi - ds->a_len, ds->a, ds->a_len) == 0;
                             i++)
                            hi -= ds->a_len;
                        st = tokbuf_put(&b, a.buf + lo, hi - lo);
                    } else {
                        st = tokbuf_put(&b, a.buf, a.len);
                    }
                    break;
                case DEC_FUSE:
                    st = tokbuf_put(&b, a.buf, a.len);
                    break;
                }
                TokBuf x = a;
                a = b;
                b = x;
            }
        }
        if (st == SGL_OK && (st = tok_blob_add(t, a.buf ? a.buf : "", a.len, &e->raw_off)) == SGL_OK)
            e->raw_len = (uint32_t)a.len;
    }
    free(a.buf);
    free(b.buf);
    return st;
}

/* ---- SglDetok --------------------------------------------------------- */

void sgl_detok_init(SglDetok *d, const SglTokenizer *t, bool skip_special)
{
    memset(d, 0, sizeof *d);
    d->t = t;
    d->skip_special = skip_special;
}

void sgl_detok_deinit(SglDetok *d)
{
    free(d->ids);
    dec_free(d->st);
    memset(d, 0, sizeof *d);
}

static SglStatus take_out(TokDec *st, char **text, size_t *len)
{
    char *p = malloc(st->out.len + 1);
    if (!p)
        return SGL_E_NOMEM;
    if (st->out.len)
        memcpy(p, st->out.buf, st->out.len);
    p[st->out.len] = '\0';
    *text = p;
    if (len)
        *len = st->out.len;
    st->out.len = 0;
    return SGL_OK;
}

SglStatus sgl_detok_push(SglDetok *d, int32_t id, char **text, size_t *len)
{
    *text = NULL;
    if (!d->st && !(d->st = dec_new(d->t, d->skip_special)))
        return SGL_E_NOMEM;
    if (d->n == d->cap) {
        int32_t cap = d->cap ? d->cap * 2 : 64;
        int32_t *p = realloc(d->ids, (size_t)cap * sizeof *p);
        if (!p)
            return SGL_E_NOMEM;
        d->ids = p;
        d->cap = cap;
    }
    SglStatus st = dec_push(d->st, id);
    if (st != SGL_OK)
        return st;
    d->ids[d->n++] = id;
    return take_out(d->st, text, len);
}

SglStatus sgl_detok_flush(SglDetok *d, char **text, size_t *len)
{
    *text = NULL;
    if (!d->st && !(d->st = dec_new(d->t, d->skip_special)))
        return SGL_E_NOMEM;
    SglStatus st = dec_finish(d->st);
    if (st == SGL_OK)
        st = take_out(d->st, text, len);
    dec_reset(d->st);
    d->st->out.len = 0;
    d->n = 0;
    return st;
}

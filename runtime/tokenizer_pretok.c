/* tokenizer_pretok.c -- text before the model: UTF-8 checks, normalizers,
 * pre-tokenizers, and the SentencePiece normalizer.
 *
 * Each function reads its input and writes caller-owned scratch buffers that
 * grow as needed (one encode call reuses them for every segment), so nothing is
 * allocated per word once the buffers are warm. Regex splitting uses PCRE2
 * with UTF + UCP (\p{L}, \p{N}, lookahead) on text already made valid UTF-8.
 * Pre-tokenizer splits keep the text and only cut new spans; Metaspace and
 * ByteLevel's add_prefix_space rewrite the text into the other buffer.
 */
#include "runtime/tokenizer_int.h"

#include <stdlib.h>
#include <string.h>
#ifdef SGL_HAVE_ICU
#include <unicode/unorm2.h>
#include <unicode/ustring.h>
#endif

static const char REPL_CHAR[3] = {(char)0xEF, (char)0xBF, (char)0xBD};   /* U+FFFD */

size_t tok_utf8_scan(const unsigned char *s, size_t n, int *kind)
{
    unsigned c = s[0], lo = 0x80, hi = 0xBF;
    size_t need;
    if (c < 0x80) {
        *kind = U8_OK;
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF)
        need = 1;
    else if (c == 0xE0)
        need = 2, lo = 0xA0;
    else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF)
        need = 2;
    else if (c == 0xED)
        need = 2, hi = 0x9F;
    else if (c == 0xF0)
        need = 3, lo = 0x90;
    else if (c >= 0xF1 && c <= 0xF3)
        need = 3;
    else if (c == 0xF4)
        need = 3, hi = 0x8F;
    else {
        *kind = U8_BAD;
        return 1;
    }
    for (size_t i = 1; i <= need; i++) {
        if (i >= n) {
            *kind = U8_INCOMPLETE;
            return n;
        }
        if (s[i] < lo || s[i] > hi) {
            *kind = U8_BAD;
            return i;
        }
        lo = 0x80;
        hi = 0xBF;
    }
    *kind = U8_OK;
    return need + 1;
}

SglStatus tokbuf_put(TokBuf *b, const char *s, size_t len)
{
    if (b->len + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + len + 1)
            cap *= 2;
        char *p = realloc(b->buf, cap);
        if (!p)
            return SGL_E_NOMEM;
        b->buf = p;
        b->cap = cap;
    }
    if (len)
        memcpy(b->buf + b->len, s, len);
    b->len += len;
    b->buf[b->len] = '\0';
    return SGL_OK;
}

SglStatus tok_utf8_sanitize(const char *s, size_t len, TokBuf *out, bool *changed)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    int kind = U8_OK;
    *changed = false;
    while (i < len) {
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        size_t l = tok_utf8_scan(u + i, len - i, &kind);
        if (kind != U8_OK)
            break;
        i += l;
    }
    if (i == len)
        return SGL_OK;
    *changed = true;
    out->len = 0;
    SglStatus st = tokbuf_put(out, s, i);
    while (st == SGL_OK && i < len) {
        size_t l = tok_utf8_scan(u + i, len - i, &kind);
        st = kind == U8_OK ? tokbuf_put(out, s + i, l) : tokbuf_put(out, REPL_CHAR, 3);
        i += l;
    }
    return st;
}

/* Replaces every non-overlapping occurrence of pat (or regex re) in s by rep. */
static SglStatus replace_all(const char *s, size_t len, const char *pat, size_t pat_len,
                             pcre2_code *re, const char *rep, size_t rep_len, TokBuf *out,
                             pcre2_match_data *md)
{
    SglStatus st = SGL_OK;
    size_t i = 0, last = 0;
    out->len = 0;
    while (st == SGL_OK && i <= len) {
        size_t ms, me;
        if (re) {
            int rc = pcre2_match(re, (PCRE2_SPTR)s, len, i, PCRE2_NO_UTF_CHECK, md, NULL);
            if (rc == PCRE2_ERROR_NOMATCH)
                break;
            if (rc < 0)
                return SGL_E_INVAL;
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            ms = ov[0];
            me = ov[1];
        } else {
            if (pat_len == 0 || len - i < pat_len)
                break;
            const char *p = memmem(s + i, len - i, pat, pat_len);
            if (!p)
                break;
            ms = (size_t)(p - s);
            me = ms + pat_len;
        }
        if ((st = tokbuf_put(out, s + last, ms - last)) == SGL_OK)
            st = tokbuf_put(out, rep, rep_len);
        last = me;
        if (me == ms) {   /* empty match: step over one character */
            if (me >= len)
                break;
            size_t step = 1;
            while (me + step < len && ((unsigned char)s[me + step] & 0xC0) == 0x80)
                step++;
            if (st == SGL_OK)
                st = tokbuf_put(out, s + me, step);
            last = me + step;
            i = me + step;
        } else {
            i = me;
        }
    }
    if (st == SGL_OK)
        st = tokbuf_put(out, s + last, len - last);
    return st;
}

/* NFC/NFD/NFKC/NFKD through ICU (UTF-8 -> UTF-16 -> normalize -> UTF-8).
 * ASCII is its own normal form in all four, so it skips the round trip. */
static SglStatus unicode_norm(const NormStep *n, const char *s, size_t len, TokBuf *out)
{
    size_t i = 0;
    while (i < len && (unsigned char)s[i] < 0x80)
        i++;
    if (i == len)
        return tokbuf_put(out, s, len);
#ifdef SGL_HAVE_ICU
    SglStatus st = SGL_E_NOMEM;
    UErrorCode ec = U_ZERO_ERROR;
    int32_t n16 = 0, cap = 0;
    UChar *a = NULL, *b = NULL;
    if (len > INT32_MAX / 4)
        return SGL_E_INVAL;
    a = malloc((len + 1) * sizeof *a);
    if (!a)
        goto out;
    u_strFromUTF8WithSub(a, (int32_t)len + 1, &n16, s, (int32_t)len, 0xFFFD, NULL, &ec);
    if (U_FAILURE(ec)) {
        st = SGL_E_INVAL;
        goto out;
    }
    cap = n16 * 4 + 16;   /* rarely too small (NFKD of some ligatures); grown below */
    for (int tries = 0; tries < 3; tries++) {
        free(b);
        if (!(b = malloc((size_t)cap * sizeof *b)))
            goto out;
        ec = U_ZERO_ERROR;
        int32_t m = unorm2_normalize(n->unorm, a, n16, b, cap, &ec);
        if (ec == U_BUFFER_OVERFLOW_ERROR) {
            cap = m + 1;
            continue;
        }
        if (U_FAILURE(ec)) {
            st = SGL_E_INVAL;
            goto out;
        }
        int32_t n8 = 0;
        ec = U_ZERO_ERROR;
        u_strToUTF8(NULL, 0, &n8, b, m, &ec);   /* preflight: the UTF-8 length */
        char *tmp = malloc((size_t)n8 + 1);
        if (!tmp) {
            st = SGL_E_NOMEM;
            goto out;
        }
        ec = U_ZERO_ERROR;
        u_strToUTF8(tmp, n8 + 1, NULL, b, m, &ec);
        st = U_FAILURE(ec) ? SGL_E_INVAL : tokbuf_put(out, tmp, (size_t)n8);
        free(tmp);
        goto out;
    }
    st = SGL_E_INVAL;
out:
    free(a);
    free(b);
    return st;
#else
    (void)n;
    return SGL_E_INVAL;   /* unreachable: the reader rejects these steps without ICU */
#endif
}

SglStatus tok_normalize(const SglTokenizer *t, const char *s, size_t len, TokBuf *out,
                        pcre2_match_data *md)
{
    SglStatus st = SGL_OK;
    TokBuf tmp = {0};
    out->len = 0;
    if ((st = tokbuf_put(out, s, len)) != SGL_OK)
        return st;
    for (int i = 0; i < t->n_norm && st == SGL_OK; i++) {
        const NormStep *n = &t->norm[i];
        tmp.len = 0;
        switch (n->kind) {
        case NORM_PREPEND:
            if (out->len == 0)
                continue;
            if ((st = tokbuf_put(&tmp, n->a, n->a_len)) == SGL_OK)
                st = tokbuf_put(&tmp, out->buf, out->len);
            break;
        case NORM_REPLACE:
        case NORM_REPLACE_RE:
            st = replace_all(out->buf, out->len, n->a, n->a_len, n->re, n->b, n->b_len, &tmp, md);
            break;
        case NORM_STRIP: {
            size_t a = 0, b = out->len;
            if (n->left)
                while (a < b && (out->buf[a] == ' ' || (out->buf[a] >= 9 && out->buf[a] <= 13)))
                    a++;
            if (n->right)
                while (b > a && (out->buf[b - 1] == ' ' ||
                                 (out->buf[b - 1] >= 9 && out->buf[b - 1] <= 13)))
                    b--;
            st = tokbuf_put(&tmp, out->buf + a, b - a);
            break;
        }
        case NORM_UNICODE:
            st = unicode_norm(n, out->buf, out->len, &tmp);
            break;
        }
        if (st == SGL_OK) {
            TokBuf x = *out;
            *out = tmp;
            tmp = x;
        }
    }
    free(tmp.buf);
    return st;
}

static SglStatus spans_push(TokSpans *sp, size_t off, size_t len)
{
    if (sp->n == sp->cap) {
        size_t cap = sp->cap ? sp->cap * 2 : 64;
        uint32_t *o = realloc(sp->off, cap * sizeof *o);
        if (!o)
            return SGL_E_NOMEM;
        sp->off = o;
        uint32_t *l = realloc(sp->len, cap * sizeof *l);
        if (!l)
            return SGL_E_NOMEM;
        sp->len = l;
        sp->cap = cap;
    }
    sp->off[sp->n] = (uint32_t)off;
    sp->len[sp->n] = (uint32_t)len;
    sp->n++;
    return SGL_OK;
}

void pre_scratch_free(PreScratch *p)
{
    free(p->a.buf);
    free(p->b.buf);
    free(p->sa.off);
    free(p->sa.len);
    free(p->sb.off);
    free(p->sb.len);
    free(p->ms);
    free(p->me);
    free(p->mf);
    memset(p, 0, sizeof *p);
}

static SglStatus marks_push(PreScratch *p, size_t *n, size_t s, size_t e, bool f)
{
    if (*n == p->m_cap) {
        size_t cap = p->m_cap ? p->m_cap * 2 : 64;
        uint32_t *a = realloc(p->ms, cap * sizeof *a);
        if (!a)
            return SGL_E_NOMEM;
        p->ms = a;
        uint32_t *b = realloc(p->me, cap * sizeof *b);
        if (!b)
            return SGL_E_NOMEM;
        p->me = b;
        uint8_t *c = realloc(p->mf, cap);
        if (!c)
            return SGL_E_NOMEM;
        p->mf = c;
        p->m_cap = cap;
    }
    p->ms[*n] = (uint32_t)s;
    p->me[*n] = (uint32_t)e;
    p->mf[*n] = f;
    (*n)++;
    return SGL_OK;
}

/* Splits the word buf[off..off+len) by regex re with HF's delimiter behavior
 * (SplitDelimiterBehavior), appending the pieces to out. Empty pieces vanish. */
static SglStatus split_word(PreScratch *p, const char *buf, size_t off, size_t len,
                            pcre2_code *re, SplitBehavior beh, bool invert, pcre2_match_data *md,
                            TokSpans *out)
{
    SglStatus st;
    size_t n = 0, prev = 0, i = 0;
    const char *s = buf + off;
    while (i < len) {
        int rc = pcre2_match(re, (PCRE2_SPTR)s, len, i, PCRE2_NO_UTF_CHECK, md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH)
            break;
        if (rc < 0)
            return SGL_E_INVAL;   /* match limit or JIT stack exhausted */
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t ms = ov[0], me = ov[1];
        if (me == ms) {   /* empty match: no split there */
            i = ms + 1;
            while (i < len && ((unsigned char)s[i] & 0xC0) == 0x80)
                i++;
            continue;
        }
        if (prev != ms && (st = marks_push(p, &n, prev, ms, invert)) != SGL_OK)
            return st;
        if ((st = marks_push(p, &n, ms, me, !invert)) != SGL_OK)
            return st;
        prev = i = me;
    }
    if (prev != len && (st = marks_push(p, &n, prev, len, invert)) != SGL_OK)
        return st;

    /* Apply the behavior in place over marks[0..n): result pieces in marks[0..k). */
    size_t k = 0;
    bool prev_match = false;
    switch (beh) {
    case SPLIT_REMOVED:
        for (size_t j = 0; j < n; j++)
            if (!p->mf[j]) {
                p->ms[k] = p->ms[j];
                p->me[k++] = p->me[j];
            }
        break;
    case SPLIT_ISOLATED:
        k = n;
        break;
    case SPLIT_MERGED_PREV:
        for (size_t j = 0; j < n; j++) {
            if (p->mf[j] && !prev_match && k > 0)
                p->me[k - 1] = p->me[j];
            else {
                p->ms[k] = p->ms[j];
                p->me[k++] = p->me[j];
            }
            prev_match = p->mf[j];
        }
        break;
    case SPLIT_MERGED_NEXT: {
        /* Walk backwards, then the pieces are in reverse at the end of the array. */
        size_t w = n;
        for (size_t j = n; j-- > 0;) {
            if (p->mf[j] && !prev_match && w < n)
                p->ms[w] = p->ms[j];
            else {
                w--;
                p->ms[w] = p->ms[j];
                p->me[w] = p->me[j];
            }
            prev_match = p->mf[j];
        }
        for (size_t j = w; j < n; j++) {
            p->ms[k] = p->ms[j];
            p->me[k++] = p->me[j];
        }
        break;
    }
    case SPLIT_CONTIGUOUS:
        for (size_t j = 0; j < n; j++) {
            if (k > 0 && (bool)p->mf[j] == prev_match)
                p->me[k - 1] = p->me[j];
            else {
                p->ms[k] = p->ms[j];
                p->me[k++] = p->me[j];
            }
            prev_match = p->mf[j];
        }
        break;
    }
    for (size_t j = 0; j < k; j++)
        if (p->me[j] > p->ms[j] && (st = spans_push(out, off + p->ms[j], p->me[j] - p->ms[j])))
            return st;
    return SGL_OK;
}

/* Metaspace on one word: ' ' -> replacement, optional prepend, optional split
 * before each replacement (MergedWithNext). Writes text to nb, spans to out. */
static SglStatus metaspace_word(const PreStep *ps, const char *s, size_t len, bool first,
                                TokBuf *nb, TokSpans *out)
{
    SglStatus st = SGL_OK;
    size_t start = nb->len;
    bool starts = (len > 0 && s[0] == ' ') ||
                  (len >= ps->repl_len && memcmp(s, ps->repl, ps->repl_len) == 0);
    if (ps->prepend == PREPEND_ALWAYS || (ps->prepend == PREPEND_FIRST && first))
        if (!starts)
            st = tokbuf_put(nb, ps->repl, ps->repl_len);
    for (size_t i = 0; i < len && st == SGL_OK; i++)
        st = s[i] == ' ' ? tokbuf_put(nb, ps->repl, ps->repl_len) : tokbuf_put(nb, s + i, 1);
    if (st != SGL_OK)
        return st;
    size_t end = nb->len;
    if (!ps->split)
        return end > start ? spans_push(out, start, end - start) : SGL_OK;
    size_t piece = start;
    for (size_t i = start; i + ps->repl_len <= end; i++) {
        if (i > piece && memcmp(nb->buf + i, ps->repl, ps->repl_len) == 0) {
            if ((st = spans_push(out, piece, i - piece)) != SGL_OK)
                return st;
            piece = i;
        }
    }
    return end > piece ? spans_push(out, piece, end - piece) : SGL_OK;
}

SglStatus tok_pretokenize(const SglTokenizer *t, const char *s, size_t len, bool first,
                          PreScratch *ps, pcre2_match_data *md, TokBuf **wbuf, TokSpans **words)
{
    SglStatus st;
    TokBuf *cb = &ps->a, *nb = &ps->b;
    TokSpans *cs = &ps->sa, *ns = &ps->sb;
    cb->len = 0;
    cs->n = 0;
    if ((st = tokbuf_put(cb, s, len)) != SGL_OK)
        return st;
    if (len > 0 && (st = spans_push(cs, 0, len)) != SGL_OK)
        return st;
    for (int k = 0; k < t->n_pre; k++) {
        const PreStep *p = &t->pre[k];
        ns->n = 0;
        bool rewrote = false;
        if (p->kind == PRE_SPLIT) {
            for (size_t i = 0; i < cs->n; i++)
                if ((st = split_word(ps, cb->buf, cs->off[i], cs->len[i], p->re, p->behavior,
                                     p->invert, md, ns)) != SGL_OK)
                    return st;
        } else if (p->kind == PRE_BYTELEVEL) {
            if (p->add_prefix_space) {   /* rewrite into nb/ns, then make that current */
                nb->len = 0;
                for (size_t i = 0; i < cs->n; i++) {
                    size_t o = nb->len;
                    const char *w = cb->buf + cs->off[i];
                    if (w[0] != ' ' && (st = tokbuf_put(nb, " ", 1)) != SGL_OK)
                        return st;
                    if ((st = tokbuf_put(nb, w, cs->len[i])) != SGL_OK ||
                        (st = spans_push(ns, o, nb->len - o)) != SGL_OK)
                        return st;
                }
                TokBuf xb = *cb;
                *cb = *nb;
                *nb = xb;
                TokSpans xs = *cs;
                *cs = *ns;
                *ns = xs;
                ns->n = 0;
            }
            for (size_t i = 0; i < cs->n; i++) {
                st = p->re ? split_word(ps, cb->buf, cs->off[i], cs->len[i], p->re,
                                        SPLIT_ISOLATED, false, md, ns)
                           : spans_push(ns, cs->off[i], cs->len[i]);
                if (st != SGL_OK)
                    return st;
            }
        } else {   /* PRE_METASPACE */
            nb->len = 0;
            rewrote = true;
            for (size_t i = 0; i < cs->n; i++)
                if ((st = metaspace_word(p, cb->buf + cs->off[i], cs->len[i], first && i == 0 &&
                                         cs->off[i] == 0, nb, ns)) != SGL_OK)
                    return st;
        }
        if (rewrote) {
            TokBuf xb = *cb;
            *cb = *nb;
            *nb = xb;
        }
        TokSpans xs = *cs;
        *cs = *ns;
        *ns = xs;
    }
    *wbuf = cb;
    *words = cs;
    return SGL_OK;
}

/* SentencePiece's normalizer for an identity rule set: invalid UTF-8 bytes
 * become U+FFFD one byte at a time, optional removal of extra spaces, the
 * dummy prefix, and ' ' -> U+2581. */
SglStatus tok_spm_normalize(const SglTokenizer *t, const char *s, size_t len, TokBuf *out)
{
    static const char WS[3] = {(char)0xE2, (char)0x96, (char)0x81};
    SglStatus st = SGL_OK;
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    out->len = 0;
    if ((st = tokbuf_put(out, "", 0)) != SGL_OK)
        return st;
    if (t->remove_extra_ws)
        while (i < len && s[i] == ' ')
            i++;
    if (i >= len)
        return SGL_OK;
    const char *sp = t->escape_ws ? WS : " ";
    size_t sp_len = t->escape_ws ? 3 : 1;
    if (t->add_dummy_prefix && (st = tokbuf_put(out, sp, sp_len)) != SGL_OK)
        return st;
    bool prev_space = t->remove_extra_ws;
    while (i < len && st == SGL_OK) {
        if (s[i] == ' ') {
            if (!(t->remove_extra_ws && prev_space))
                st = tokbuf_put(out, sp, sp_len);
            prev_space = true;
            i++;
            continue;
        }
        prev_space = false;
        int kind;
        size_t l = tok_utf8_scan(u + i, len - i, &kind);
        if (kind == U8_OK) {
            st = tokbuf_put(out, s + i, l);
            i += l;
        } else {
            st = tokbuf_put(out, REPL_CHAR, 3);
            i += 1;
        }
    }
    if (st == SGL_OK && t->remove_extra_ws)
        while (out->len >= sp_len && memcmp(out->buf + out->len - sp_len, sp, sp_len) == 0)
            out->len -= sp_len;
    return st;
}

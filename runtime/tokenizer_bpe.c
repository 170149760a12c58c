/* tokenizer_bpe.c -- the BPE merge loop shared by both tokenizer kinds.
 *
 * Symbols form a doubly linked list over an array; candidate merges sit in a
 * binary min-heap ordered by (priority, left position). Popping a candidate
 * checks that its pair is still the current one (HF's Word::merge_all; the
 * same test as sentencepiece's length check), merges, and pushes the two new
 * neighbour pairs, so a word of n symbols costs O(n log n), never O(n^2).
 * Priority is the merge rank for tokenizer.json and -score for SentencePiece,
 * where every (left, right) split of each piece was put in t->merges at load.
 * Scratch arrays belong to the encode call and are reused for every word.
 */
#include "runtime/tokenizer_int.h"

#include <stdlib.h>
#include <string.h>

void bpe_scratch_free(BpeScratch *s)
{
    BpeCache *c = &s->cache;
    free(s->sym);
    free(s->heap);
    free(c->key_off);
    free(c->key_len);
    free(c->ids_off);
    free(c->ids_n);
    free(c->keys.buf);
    free(c->ids.v);
    memset(s, 0, sizeof *s);
}

/* ---- word cache --------------------------------------------------------
 * Long texts repeat words; a per-call map word -> ids skips their merge loop.
 * Open addressing, grown by doubling up to BPE_CACHE_MAX entries, then full. */

static uint32_t word_hash(const char *w, size_t len)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)w[i]) * 16777619u;
    return h;
}

static int32_t cache_find(const BpeCache *c, const char *w, size_t len, uint32_t h)
{
    if (!c->key_len)
        return -1;
    for (uint32_t i = h & c->mask;; i = (i + 1) & c->mask) {
        if (c->key_len[i] == 0)
            return -(int32_t)i - 2;
        if (c->key_len[i] == len && memcmp(c->keys.buf + c->key_off[i], w, len) == 0)
            return (int32_t)i;
    }
}

static SglStatus cache_grow(BpeCache *c)
{
    uint32_t cap = c->key_len ? (c->mask + 1) * 2 : 1024;
    uint32_t *ko = calloc(cap, 4), *kl = calloc(cap, 4), *io = calloc(cap, 4), *in = calloc(cap, 4);
    if (!ko || !kl || !io || !in) {
        free(ko);
        free(kl);
        free(io);
        free(in);
        return SGL_E_NOMEM;
    }
    for (uint32_t i = 0; c->key_len && i <= c->mask; i++) {
        if (c->key_len[i] == 0)
            continue;
        uint32_t j = word_hash(c->keys.buf + c->key_off[i], c->key_len[i]) & (cap - 1);
        while (kl[j])
            j = (j + 1) & (cap - 1);
        ko[j] = c->key_off[i];
        kl[j] = c->key_len[i];
        io[j] = c->ids_off[i];
        in[j] = c->ids_n[i];
    }
    free(c->key_off);
    free(c->key_len);
    free(c->ids_off);
    free(c->ids_n);
    c->key_off = ko;
    c->key_len = kl;
    c->ids_off = io;
    c->ids_n = in;
    c->mask = cap - 1;
    return SGL_OK;
}

static void cache_put(BpeCache *c, const char *w, size_t len, const int32_t *ids, size_t n)
{
    if (c->n >= BPE_CACHE_MAX || len == 0 || len > BPE_CACHE_WORD)
        return;
    if ((!c->key_len || 2 * (c->n + 1) > c->mask + 1) && cache_grow(c) != SGL_OK)
        return;   /* the cache is an optimization: no memory, no caching */
    int32_t slot = cache_find(c, w, len, word_hash(w, len));
    if (slot >= 0)
        return;
    uint32_t i = (uint32_t)(-slot - 2);
    size_t koff = c->keys.len, ioff = c->ids.n;
    if (tokbuf_put(&c->keys, w, len) != SGL_OK)
        return;
    for (size_t k = 0; k < n; k++)
        if (idvec_push(&c->ids, ids[k]) != SGL_OK) {
            c->ids.n = ioff;
            return;
        }
    c->key_off[i] = (uint32_t)koff;
    c->key_len[i] = (uint32_t)len;
    c->ids_off[i] = (uint32_t)ioff;
    c->ids_n[i] = (uint32_t)n;
    c->n++;
}

/* Appends the cached ids of w to out; false when w is not cached. */
static bool cache_get(const BpeCache *c, const char *w, size_t len, IdVec *out, SglStatus *st)
{
    if (len == 0 || len > BPE_CACHE_WORD)
        return false;
    int32_t slot = cache_find(c, w, len, word_hash(w, len));
    if (slot < 0)
        return false;
    *st = SGL_OK;
    for (uint32_t k = 0; k < c->ids_n[slot] && *st == SGL_OK; k++)
        *st = idvec_push(out, c->ids.v[c->ids_off[slot] + k]);
    return true;
}

static SglStatus reserve(BpeScratch *s, size_t n_sym)
{
    if (n_sym > s->sym_cap) {
        size_t cap = s->sym_cap ? s->sym_cap : 64;
        while (cap < n_sym)
            cap *= 2;
        BpeSym *p = realloc(s->sym, cap * sizeof *p);
        if (!p)
            return SGL_E_NOMEM;
        s->sym = p;
        s->sym_cap = cap;
    }
    /* Each merge pushes at most two candidates: n - 1 + 2 (n - 1) in all. */
    size_t need = 3 * n_sym + 4;
    if (need > s->heap_cap) {
        BpeHeapEnt *p = realloc(s->heap, need * sizeof *p);
        if (!p)
            return SGL_E_NOMEM;
        s->heap = p;
        s->heap_cap = need;
    }
    return SGL_OK;
}

static inline bool heap_less(const BpeHeapEnt *a, const BpeHeapEnt *b)
{
    return a->prio < b->prio || (a->prio == b->prio && a->pos < b->pos);
}

static void heap_push(BpeHeapEnt *h, size_t *n, BpeHeapEnt e)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!heap_less(&e, &h[p]))
            break;
        h[i] = h[p];
        i = p;
    }
    h[i] = e;
}

static BpeHeapEnt heap_pop(BpeHeapEnt *h, size_t *n)
{
    BpeHeapEnt top = h[0], last = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n)
            break;
        if (c + 1 < *n && heap_less(&h[c + 1], &h[c]))
            c++;
        if (!heap_less(&h[c], &last))
            break;
        h[i] = h[c];
        i = c;
    }
    if (*n > 0)
        h[i] = last;
    return top;
}

static void push_pair(const SglTokenizer *t, BpeScratch *s, size_t *nh, int32_t left)
{
    BpeSym *sym = s->sym;
    int32_t right = sym[left].next;
    float prio;
    int32_t merged;
    if (right >= 0 && pairmap_get(&t->merges, sym[left].id, sym[right].id, &prio, &merged))
        heap_push(s->heap, nh, (BpeHeapEnt){prio, left, merged});
}

/* Runs the merges over s->sym[0..n) (a list linked through prev/next). */
static void merge_all(const SglTokenizer *t, BpeScratch *s, size_t n)
{
    size_t nh = 0;
    BpeSym *sym = s->sym;
    for (size_t i = 0; i + 1 < n; i++)
        push_pair(t, s, &nh, (int32_t)i);
    while (nh > 0) {
        BpeHeapEnt top = heap_pop(s->heap, &nh);
        BpeSym *l = &sym[top.pos];
        if (l->len == 0 || l->next < 0)
            continue;
        BpeSym *r = &sym[l->next];
        float prio;
        int32_t merged;
        if (!pairmap_get(&t->merges, l->id, r->id, &prio, &merged) || merged != top.merged)
            continue;   /* stale candidate */
        l->id = merged;
        l->len += r->len;
        r->len = 0;
        l->next = r->next;
        if (l->next >= 0)
            sym[l->next].prev = top.pos;
        if (l->prev >= 0)
            push_pair(t, s, &nh, l->prev);
        push_pair(t, s, &nh, top.pos);
    }
}

static void add_sym(BpeSym *sym, size_t *n, int32_t id, uint32_t off, uint32_t len)
{
    size_t i = (*n)++;
    sym[i] = (BpeSym){id, (int32_t)i - 1, -1, off, len};
    if (i > 0)
        sym[i - 1].next = (int32_t)i;
}

/* An unknown piece: HF adds unk (fused with a preceding unk when fuse_unk), or
 * drops the text when the model has no unk token. */
static void add_unk(const SglTokenizer *t, BpeSym *sym, size_t *n, bool *last_unk, uint32_t off,
                    uint32_t len)
{
    if (t->unk_id < 0)
        return;
    if (t->fuse_unk && *last_unk) {
        sym[*n - 1].len += len;
        return;
    }
    add_sym(sym, n, t->unk_id, off, len);
    *last_unk = true;
}

static SglStatus encode_word(const SglTokenizer *t, const char *w, size_t len, BpeScratch *s,
                             IdVec *out)
{
    SglStatus st;
    if (len == 0)
        return SGL_OK;
    if (len > UINT32_MAX / 4)
        return SGL_E_INVAL;
    if (t->ignore_merges) {
        int32_t id = t->byte_level ? strmap_get(t, &t->raw_vocab, w, len, true)
                                   : strmap_get(t, &t->vocab, w, len, false);
        if (id >= 0)
            return idvec_push(out, id);
    }
    /* Byte fallback can turn one character into up to 4 symbols. */
    if ((st = reserve(s, t->byte_level ? len : len * 4)) != SGL_OK)
        return st;
    BpeSym *sym = s->sym;
    size_t n = 0;
    bool last_unk = false;
    const unsigned char *u = (const unsigned char *)w;
    for (size_t i = 0; i < len;) {
        if (t->byte_level) {
            int32_t id = t->byte_sym[u[i]];
            if (id >= 0) {
                add_sym(sym, &n, id, (uint32_t)i, 1);
                last_unk = false;
            } else {
                add_unk(t, sym, &n, &last_unk, (uint32_t)i, 1);
            }
            i++;
            continue;
        }
        int kind;
        size_t cl = tok_utf8_scan(u + i, len - i, &kind);
        if (kind != U8_OK)
            cl = 1;
        int32_t id = cl == 1 && u[i] < 128 ? t->ascii_sym[u[i]]
                                           : strmap_get(t, &t->vocab, w + i, cl, false);
        if (id >= 0) {
            add_sym(sym, &n, id, (uint32_t)i, (uint32_t)cl);
            last_unk = false;
        } else {
            bool all = t->byte_fallback;
            for (size_t k = 0; all && k < cl; k++)
                all = t->byte_tok[u[i + k]] >= 0;
            if (all) {
                for (size_t k = 0; k < cl; k++)
                    add_sym(sym, &n, t->byte_tok[u[i + k]], (uint32_t)(i + k), 1);
                last_unk = false;
            } else {
                add_unk(t, sym, &n, &last_unk, (uint32_t)i, (uint32_t)cl);
            }
        }
        i += cl;
    }
    merge_all(t, s, n);
    for (int32_t i = n > 0 ? 0 : -1; i >= 0; i = sym[i].next)
        if ((st = idvec_push(out, sym[i].id)) != SGL_OK)
            return st;
    return SGL_OK;
}

static SglStatus encode_spm(const SglTokenizer *t, const char *str, size_t len, BpeScratch *s,
                            IdVec *out)
{
    SglStatus st;
    if (len == 0)
        return SGL_OK;
    if (len > UINT32_MAX / 4)
        return SGL_E_INVAL;
    if ((st = reserve(s, len)) != SGL_OK)
        return st;
    BpeSym *sym = s->sym;
    size_t n = 0;
    const unsigned char *u = (const unsigned char *)str;
    for (size_t i = 0; i < len;) {
        int32_t id = -1;
        size_t cl = 0;
        for (int32_t k = 0; k < t->n_user_syms; k++) {   /* user symbols, longest first */
            const TokEntry *e = &t->tok[t->user_syms[k]];
            if (e->len <= len - i && memcmp(t->blob + e->off, str + i, e->len) == 0) {
                id = t->user_syms[k];
                cl = e->len;
                break;
            }
        }
        if (cl == 0) {
            int kind;
            cl = tok_utf8_scan(u + i, len - i, &kind);
            if (kind != U8_OK)
                cl = 1;
            id = strmap_get(t, &t->vocab, str + i, cl, false);
            if (id >= 0 && t->tok[id].kind != TOKK_NORMAL && t->tok[id].kind != TOKK_USER &&
                t->tok[id].kind != TOKK_UNUSED)
                id = -1;
        }
        add_sym(sym, &n, id, (uint32_t)i, (uint32_t)cl);
        i += cl;
    }
    merge_all(t, s, n);
    for (int32_t i = 0; i >= 0; i = sym[i].next) {
        const BpeSym *y = &sym[i];
        if (y->id >= 0) {
            st = idvec_push(out, y->id);
        } else if (t->byte_fallback) {
            st = SGL_OK;
            for (uint32_t k = 0; k < y->len && st == SGL_OK; k++) {
                int32_t b = t->byte_tok[u[y->off + k]];
                st = idvec_push(out, b >= 0 ? b : t->unk_id);
            }
        } else {
            st = t->unk_id >= 0 ? idvec_push(out, t->unk_id) : SGL_OK;
        }
        if (st != SGL_OK)
            return st;
    }
    return SGL_OK;
}

typedef SglStatus (*EncFn)(const SglTokenizer *, const char *, size_t, BpeScratch *, IdVec *);

/* One piece through the cache (when short) or the merge loop. */
static SglStatus encode_cached(const SglTokenizer *t, const char *w, size_t len, BpeScratch *s,
                               IdVec *out, EncFn fn)
{
    SglStatus st;
    if (cache_get(&s->cache, w, len, out, &st))
        return st;
    size_t n0 = out->n;
    if ((st = fn(t, w, len, s, out)) != SGL_OK)
        return st;
    cache_put(&s->cache, w, len, out->v + n0, out->n - n0);
    return SGL_OK;
}

/* Cuts s before each U+2581 that follows another character; only called
 * when t->ws_split says no merge or piece spans such a cut. */
static SglStatus encode_split(const SglTokenizer *t, const char *str, size_t len, BpeScratch *s,
                              IdVec *out, EncFn fn)
{
    SglStatus st = SGL_OK;
    size_t start = 0;
    for (size_t i = 1; i + 3 <= len && st == SGL_OK; i++) {
        if (str[i] == (char)0xE2 && str[i + 1] == (char)0x96 && str[i + 2] == (char)0x81 &&
            !(i >= 3 && memcmp(str + i - 3, "\xE2\x96\x81", 3) == 0)) {
            st = encode_cached(t, str + start, i - start, s, out, fn);
            start = i;
        }
    }
    if (st == SGL_OK && start < len)
        st = encode_cached(t, str + start, len - start, s, out, fn);
    return st;
}

SglStatus bpe_encode_word(const SglTokenizer *t, const char *w, size_t len, BpeScratch *s, IdVec *out)
{
    if (t->ws_split)
        return encode_split(t, w, len, s, out, encode_word);
    return encode_cached(t, w, len, s, out, encode_word);
}

SglStatus bpe_encode_spm(const SglTokenizer *t, const char *str, size_t len, BpeScratch *s,
                         IdVec *out)
{
    if (t->ws_split)
        return encode_split(t, str, len, s, out, encode_spm);
    return encode_spm(t, str, len, s, out);
}

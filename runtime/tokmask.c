/* tokmask.c -- vocab trie, lazily cached per-state token masks, forced
 * strings for jump-forward, and the registry that shares them.
 *
 * The trie is stored in pre-order: node i has its byte, its depth and skip =
 * the index just past its subtree, so a mask is one linear scan that jumps
 * over every subtree whose prefix already left the language. A subtree whose
 * bytes all loop on the state reached (string contents, digit runs) is
 * allowed whole: its tokens are one contiguous run of trie_toks. Mask cache:
 * one zeroed allocation of n_states x n_words made up front (untouched pages
 * cost nothing), plus a per-state atomic flag 0 = empty, 1 = being computed,
 * 2 = ready. A filler that finds 0 claims the slot and computes into it; one
 * that finds 1 computes straight into the caller's buffer, so nobody waits
 * and nothing is allocated while decoding.
 */
#include "runtime/tokmask.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define MASK_CACHE_MAX_BYTES ((size_t)8 << 30)

typedef struct {
    uint8_t byte;
    uint16_t depth;       /* 1.. (root: 0) */
    int32_t skip;         /* index just past this node's subtree */
    int32_t tok_first;    /* trie_toks[tok_first .. tok_first + tok_n) end here */
    int32_t tok_n;
} TrieNode;

struct TokVocab {
    int32_t n, eos;
    char *blob;                   /* every token's bytes */
    size_t *off;                  /* (n + 1) */
    uint8_t *excluded;            /* (n) */
    TrieNode *nodes;              /* (n_nodes) pre-order, node 0 = root */
    int32_t n_nodes;
    uint64_t (*desc_bytes)[4];    /* (n_nodes) bytes occurring below each node */
    int32_t *tok_at;              /* (n_nodes + 1) trie_toks before node i (pre-order) */
    int32_t *trie_toks;
    int32_t max_depth;
    uint64_t hash;
};

struct TokFsm {
    SglDfa *dfa;                  /* owned copy */
    const TokVocab *vocab;        /* borrowed */
    int32_t n_words;
    uint64_t (*loop)[4];          /* (n_states) bytes b with step(s, b) == s */
    uint32_t *masks;              /* (n_states, n_words) */
    atomic_uchar *ready;          /* (n_states) */
    char *forced;                 /* forced-string blob */
    int32_t *forced_off, *forced_len;  /* (n_states) */
    atomic_ullong hits, walks;
};

/* ---- vocab ------------------------------------------------------------ */

typedef struct { const uint8_t *p; size_t len; int32_t id; } SortTok;

static int cmp_tok(const void *a, const void *b)
{
    const SortTok *x = a, *y = b;
    size_t m = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->p, y->p, m);
    if (c)
        return c;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

/* The hash a vocab built from these strings would have (also used by the
 * registry to find a vocab without building its trie). */
static uint64_t vocab_hash(const char *const *toks, const size_t *lens, const uint8_t *excl,
                           int32_t n, int32_t eos)
{
    int32_t hdr[2] = {n, eos};
    uint64_t h = fnv(0xcbf29ce484222325ull, hdr, sizeof hdr);
    for (int32_t i = 0; i < n; i++) {
        uint64_t len = excl[i] ? UINT64_MAX : lens[i];
        h = fnv(h, &len, sizeof len);
        if (!excl[i])
            h = fnv(h, toks[i], lens[i]);
    }
    return h;
}

/* Builds the vocab; excl[i] marks never-allowed ids (extended here with
 * empty and over-long tokens). */
static SglStatus vocab_build_trie(TokVocab *v, SglErr *err);

static SglStatus vocab_build(const char *const *toks, const size_t *lens, const uint8_t *excl_in,
                             int32_t n, int32_t eos, bool trie, TokVocab **out, SglErr *err)
{
    SglStatus st = SGL_E_NOMEM;
    TokVocab *v = calloc(1, sizeof *v);
    *out = NULL;
    if (!v)
        goto fail;
    v->n = n;
    v->eos = eos;
    size_t total = 0;
    v->off = malloc(((size_t)n + 1) * sizeof *v->off);
    v->excluded = malloc((size_t)n + 1);
    if (!v->off || !v->excluded)
        goto fail;
    for (int32_t i = 0; i < n; i++) {
        v->excluded[i] = excl_in[i] || lens[i] == 0 || lens[i] > TOKMASK_MAX_TOKEN_BYTES ||
                         i == eos;
        v->off[i] = total;
        total += lens[i];
    }
    v->off[n] = total;
    v->blob = malloc(total + 1);
    if (!v->blob)
        goto fail;
    for (int32_t i = 0; i < n; i++)
        memcpy(v->blob + v->off[i], toks[i], lens[i]);
    v->hash = vocab_hash(toks, lens, v->excluded, n, eos);
    if (trie && (st = vocab_build_trie(v, err)) != SGL_OK)
        goto fail;
    *out = v;
    return SGL_OK;
fail:
    if (st == SGL_E_NOMEM)
        sgl_err(err, st, "tokmask: out of memory building the vocabulary");
    tokvocab_free(v);
    return st;
}

/* The trie and its summaries, from v's own token bytes (compute_mask needs
 * them; a vocab that only serves tables-loaded TokFsms goes without). On
 * failure the trie fields stay NULL. */
static SglStatus vocab_build_trie(TokVocab *v, SglErr *err)
{
    SglStatus st = SGL_E_NOMEM;
    int32_t *path = NULL, n = v->n;
    SortTok *sorted = malloc(((size_t)n + 1) * sizeof *sorted);
    if (!sorted)
        goto fail;
    int32_t m = 0;
    for (int32_t i = 0; i < n; i++)
        if (!v->excluded[i])
            sorted[m++] = (SortTok){(const uint8_t *)v->blob + v->off[i],
                                    v->off[i + 1] - v->off[i], i};
    qsort(sorted, (size_t)m, sizeof *sorted, cmp_tok);
    /* pre-order trie: at most one node per token byte, plus the root */
    size_t cap_nodes = 1;
    for (int32_t i = 0; i < m; i++)
        cap_nodes += sorted[i].len;
    if (cap_nodes > INT32_MAX) {
        st = sgl_err(err, SGL_E_UNSUPPORTED, "tokmask: vocabulary too large");
        goto fail;
    }
    v->nodes = malloc(cap_nodes * sizeof *v->nodes);
    v->trie_toks = malloc(((size_t)m + 1) * sizeof *v->trie_toks);
    path = malloc((TOKMASK_MAX_TOKEN_BYTES + 1) * sizeof *path);
    if (!v->nodes || !v->trie_toks || !path)
        goto fail;
    v->nodes[0] = (TrieNode){0, 0, 0, 0, 0};
    path[0] = 0;
    int32_t nn = 1;
    const SortTok *prev = NULL;
    for (int32_t i = 0; i < m; i++) {
        const SortTok *t = &sorted[i];
        size_t l = 0;
        if (prev)
            while (l < prev->len && l < t->len && prev->p[l] == t->p[l])
                l++;
        for (size_t d = l + 1; d <= t->len; d++) {
            v->nodes[nn] = (TrieNode){t->p[d - 1], (uint16_t)d, 0, i, 0};
            path[d] = nn++;
            if ((int32_t)d > v->max_depth)
                v->max_depth = (int32_t)d;
        }
        TrieNode *end = &v->nodes[path[t->len]];
        if (end->tok_n == 0)
            end->tok_first = i;
        end->tok_n++;
        v->trie_toks[i] = t->id;
        prev = t;
    }
    v->n_nodes = nn;
    /* skip pointers: a node's subtree ends at the next node not deeper than it */
    int32_t top = 0;
    for (int32_t i = 0; i <= nn; i++) {
        int32_t d = i < nn ? v->nodes[i].depth : -1;
        while (top > 0 && v->nodes[path[top - 1]].depth >= d)
            v->nodes[path[--top]].skip = i;
        if (i < nn)
            path[top++] = i;
    }
    /* subtree summaries for the self-loop shortcut of compute_mask */
    v->desc_bytes = calloc((size_t)nn, sizeof *v->desc_bytes);
    v->tok_at = malloc(((size_t)nn + 1) * sizeof *v->tok_at);
    if (!v->desc_bytes || !v->tok_at)
        goto fail;
    v->tok_at[0] = 0;
    for (int32_t i = 0; i < nn; i++)
        v->tok_at[i + 1] = v->tok_at[i] + v->nodes[i].tok_n;
    /* desc_bytes[p] |= byte(c) | desc_bytes[c] for each child c: children come
     * after parents in pre-order, so one backward pass with parent links */
    int32_t *parent = malloc((size_t)nn * sizeof *parent);
    if (!parent)
        goto fail;
    parent[0] = -1;
    path[0] = 0;
    for (int32_t i = 1; i < nn; i++) {
        path[v->nodes[i].depth] = i;
        parent[i] = path[v->nodes[i].depth - 1];
    }
    for (int32_t i = nn - 1; i > 0; i--) {
        int32_t p = parent[i];
        uint8_t b = v->nodes[i].byte;
        v->desc_bytes[p][b >> 6] |= 1ull << (b & 63);
        for (int w = 0; w < 4; w++)
            v->desc_bytes[p][w] |= v->desc_bytes[i][w];
    }
    free(parent);
    free(sorted);
    free(path);
    return SGL_OK;
fail:
    if (st == SGL_E_NOMEM)
        sgl_err(err, st, "tokmask: out of memory building the vocabulary");
    free(sorted);
    free(path);
    free(v->nodes);
    free(v->trie_toks);
    free(v->desc_bytes);
    free(v->tok_at);
    v->nodes = NULL;
    v->trie_toks = NULL;
    v->desc_bytes = NULL;
    v->tok_at = NULL;
    v->n_nodes = 0;
    return st;
}

/* Byte strings and exclusion flags of a tokenizer's vocabulary (pointers
 * borrowed from t). */
static SglStatus tokenizer_arrays(const SglTokenizer *t, const char ***toks, size_t **lens,
                                  uint8_t **excl, int32_t *n)
{
    *n = sgl_tokenizer_vocab_size(t);
    *toks = malloc(((size_t)*n + 1) * sizeof **toks);
    *lens = malloc(((size_t)*n + 1) * sizeof **lens);
    *excl = malloc((size_t)*n + 1);
    if (!*toks || !*lens || !*excl) {
        free(*toks);
        free(*lens);
        free(*excl);
        return SGL_E_NOMEM;
    }
    for (int32_t i = 0; i < *n; i++) {
        (*toks)[i] = sgl_tokenizer_token_bytes(t, i, &(*lens)[i]);
        (*excl)[i] = sgl_tokenizer_is_special(t, i);
    }
    return SGL_OK;
}

SglStatus tokvocab_new(const SglTokenizer *t, TokVocab **out, SglErr *err)
{
    const char **toks;
    size_t *lens;
    uint8_t *excl;
    int32_t n;
    *out = NULL;
    if (tokenizer_arrays(t, &toks, &lens, &excl, &n) != SGL_OK)
        return sgl_err(err, SGL_E_NOMEM, "tokmask: out of memory");
    SglStatus st = vocab_build(toks, lens, excl, n, sgl_tokenizer_eos(t), true, out, err);
    free(toks);
    free(lens);
    free(excl);
    return st;
}

SglStatus tokvocab_new_from_bytes(const char *const *toks, const size_t *lens, int32_t n,
                                  int32_t eos, TokVocab **out, SglErr *err)
{
    *out = NULL;
    if (n < 1 || eos >= n)
        return sgl_err(err, SGL_E_INVAL, "tokmask: bad vocabulary (n = %d, eos = %d)", n, eos);
    uint8_t *excl = calloc((size_t)n, 1);
    if (!excl)
        return sgl_err(err, SGL_E_NOMEM, "tokmask: out of memory");
    SglStatus st = vocab_build(toks, lens, excl, n, eos, true, out, err);
    free(excl);
    return st;
}

void tokvocab_free(TokVocab *v)
{
    if (!v)
        return;
    free(v->blob);
    free(v->off);
    free(v->excluded);
    free(v->nodes);
    free(v->trie_toks);
    free(v->desc_bytes);
    free(v->tok_at);
    free(v);
}

int32_t tokvocab_size(const TokVocab *v) { return v->n; }
int32_t tokvocab_eos(const TokVocab *v) { return v->eos; }
uint64_t tokvocab_hash(const TokVocab *v) { return v->hash; }

const char *tokvocab_bytes(const TokVocab *v, int32_t id, size_t *len, bool *excluded)
{
    if (id < 0 || id >= v->n) {
        *len = 0;
        *excluded = true;
        return "";
    }
    *len = v->off[id + 1] - v->off[id];
    *excluded = v->excluded[id];
    return v->blob + v->off[id];
}

/* ---- TokFsm ---------------------------------------------------------------- */

/* The mask of DFA state s, computed by one scan of the trie. */
static void compute_mask(const TokFsm *f, int32_t s, uint32_t *mask)
{
    const TokVocab *v = f->vocab;
    const SglDfa *d = f->dfa;
    const TrieNode *nodes = v->nodes;
    const int32_t *trans = d->trans;
    const uint8_t *cls = d->byte_class;
    size_t k = (size_t)d->n_classes;
    int32_t st[TOKMASK_MAX_TOKEN_BYTES + 1];
    memset(mask, 0, (size_t)f->n_words * sizeof *mask);
    st[0] = s;
    /* v->n_nodes is 0 for a tables-only vocab: tokfsm_new_from_tables
     * checked that every reachable state's mask is loaded, so no cursor
     * gets here with one */
    for (int32_t i = 1; i < v->n_nodes;) {
        const TrieNode *nd = &nodes[i];
        int32_t t = trans[(size_t)st[nd->depth - 1] * k + cls[nd->byte]];
        if (t < 0) {
            i = nd->skip;
            continue;
        }
        st[nd->depth] = t;
        const uint64_t *db = v->desc_bytes[i], *lp = f->loop[t];
        if (nd->skip > i + 1 && !(db[0] & ~lp[0]) && !(db[1] & ~lp[1]) && !(db[2] & ~lp[2]) &&
            !(db[3] & ~lp[3])) {
            /* every byte below loops on t: the whole subtree stays in t */
            for (int32_t j = v->tok_at[i]; j < v->tok_at[nd->skip]; j++) {
                int32_t id = v->trie_toks[j];
                mask[id >> 5] |= 1u << (id & 31);
            }
            i = nd->skip;
            continue;
        }
        for (int32_t j = 0; j < nd->tok_n; j++) {
            int32_t id = v->trie_toks[nd->tok_first + j];
            mask[id >> 5] |= 1u << (id & 31);
        }
        i++;
    }
    if (d->accept[s] && v->eos >= 0)
        mask[v->eos >> 5] |= 1u << (v->eos & 31);
}

/* Forced strings. A state is singular when it is not accepting and exactly
 * one byte leads to a live state. Chains of singular states are walked from
 * their heads (no singular predecessor) so each chain is written once; every
 * state on a chain points at its suffix of the chain's string. */
static SglStatus compute_forced(TokFsm *f)
{
    const SglDfa *d = f->dfa;
    int32_t n = d->n_states, k = d->n_classes;
    SglStatus st = SGL_E_NOMEM;
    int32_t *next = malloc((size_t)n * sizeof *next), *indeg = calloc((size_t)n, sizeof *indeg);
    int16_t *byte = malloc((size_t)n * sizeof *byte);
    uint8_t *on_path = calloc((size_t)n, 1);
    int32_t *path = malloc((size_t)n * sizeof *path);
    int32_t class_n[256] = {0}, class_byte[256];
    size_t cap = 0, len = 0;
    f->forced_off = malloc((size_t)n * sizeof *f->forced_off);
    f->forced_len = calloc((size_t)n, sizeof *f->forced_len);
    if (!next || !indeg || !byte || !on_path || !path || !f->forced_off || !f->forced_len)
        goto out;
    for (int b = 255; b >= 0; b--) {
        class_n[d->byte_class[b]]++;
        class_byte[d->byte_class[b]] = b;
    }
    for (int32_t s = 0; s < n; s++) {
        int32_t live_bytes = 0, t = -1, b = -1;
        for (int32_t c = 0; c < k; c++) {
            int32_t u = d->trans[(size_t)s * k + c];
            if (u >= 0) {
                live_bytes += class_n[c];
                t = u;
                b = class_byte[c];
            }
        }
        bool singular = !d->accept[s] && live_bytes == 1;
        next[s] = singular ? t : -1;
        byte[s] = (int16_t)(singular ? b : -1);
        f->forced_off[s] = -1;
    }
    for (int32_t s = 0; s < n; s++)
        if (next[s] >= 0 && next[next[s]] >= 0)
            indeg[next[s]]++;
    for (int pass = 0; pass < 2; pass++) {
        for (int32_t h = 0; h < n; h++) {
            if (next[h] < 0 || f->forced_off[h] >= 0 || (pass == 0 && indeg[h] > 0))
                continue;
            size_t base = len;
            int32_t np = 0, s = h;
            while (s >= 0 && next[s] >= 0 && f->forced_off[s] < 0 && !on_path[s]) {
                on_path[s] = 1;
                path[np++] = s;
                if (len + 1 > cap) {
                    size_t nc = cap ? cap * 2 : 256;
                    char *q = realloc(f->forced, nc);
                    if (!q)
                        goto out;
                    f->forced = q;
                    cap = nc;
                }
                f->forced[len++] = (char)byte[s];
                s = next[s];
            }
            if (s >= 0 && next[s] >= 0 && f->forced_off[s] >= 0) { /* joins a written chain */
                size_t tail = (size_t)f->forced_len[s];
                if (len + tail > cap) {
                    size_t nc = (len + tail) * 2;
                    char *q = realloc(f->forced, nc);
                    if (!q)
                        goto out;
                    f->forced = q;
                    cap = nc;
                }
                memmove(f->forced + len, f->forced + f->forced_off[s], tail);
                len += tail;
            }
            if (len > INT32_MAX) {
                st = SGL_E_UNSUPPORTED;
                goto out;
            }
            for (int32_t i = 0; i < np; i++) {
                f->forced_off[path[i]] = (int32_t)(base + (size_t)i);
                f->forced_len[path[i]] = (int32_t)(len - base - (size_t)i);
                on_path[path[i]] = 0;
            }
        }
    }
    st = SGL_OK;
out:
    free(next);
    free(indeg);
    free(byte);
    free(on_path);
    free(path);
    return st;
}

SglStatus tokfsm_new(const SglDfa *dfa, const TokVocab *vocab, TokFsm **out, SglErr *err)
{
    SglStatus st = SGL_E_NOMEM;
    *out = NULL;
    TokFsm *f = calloc(1, sizeof *f);
    if (!f)
        goto fail;
    f->vocab = vocab;
    f->n_words = (vocab->n + 31) / 32;
    size_t bytes = (size_t)dfa->n_states * (size_t)f->n_words * sizeof *f->masks;
    if (bytes / (size_t)dfa->n_states != (size_t)f->n_words * sizeof *f->masks ||
        bytes > MASK_CACHE_MAX_BYTES) {
        st = sgl_err(err, SGL_E_UNSUPPORTED,
                     "tokmask: %d DFA states x %d tokens exceed the mask cache limit of %zu bytes",
                     dfa->n_states, vocab->n, MASK_CACHE_MAX_BYTES);
        goto fail;
    }
    f->dfa = sgl_dfa_clone(dfa);
    f->masks = calloc(1, bytes);
    f->ready = calloc((size_t)dfa->n_states, sizeof *f->ready);
    f->loop = calloc((size_t)dfa->n_states, sizeof *f->loop);
    if (!f->dfa || !f->masks || !f->ready || !f->loop)
        goto fail;
    for (int32_t s = 0; s < dfa->n_states; s++)
        for (int b = 0; b < 256; b++)
            if (sgl_dfa_step(dfa, s, (uint8_t)b) == s)
                f->loop[s][b >> 6] |= 1ull << (b & 63);
    atomic_init(&f->hits, 0);
    atomic_init(&f->walks, 0);
    if ((st = compute_forced(f)) != SGL_OK) {
        if (st == SGL_E_UNSUPPORTED)
            sgl_err(err, st, "tokmask: forced strings exceed 2 GiB");
        goto fail;
    }
    *out = f;
    return SGL_OK;
fail:
    if (st == SGL_E_NOMEM)
        sgl_err(err, st, "tokmask: out of memory");
    tokfsm_free(f);
    return st;
}

void tokfsm_free(TokFsm *f)
{
    if (!f)
        return;
    sgl_dfa_free(f->dfa);
    free(f->loop);
    free(f->masks);
    free((void *)f->ready);
    free(f->forced);
    free(f->forced_off);
    free(f->forced_len);
    free(f);
}

const SglDfa *tokfsm_dfa(const TokFsm *f) { return f->dfa; }
int32_t tokfsm_n_words(const TokFsm *f) { return f->n_words; }

bool tokfsm_cached(const TokFsm *f, int32_t state)
{
    return state >= 0 && state < f->dfa->n_states &&
           atomic_load_explicit(&((TokFsm *)f)->ready[state], memory_order_acquire) == 2;
}

void tokfsm_counters(const TokFsm *f, uint64_t *hits, uint64_t *walks)
{
    TokFsm *m = (TokFsm *)f;
    *hits = atomic_load_explicit(&m->hits, memory_order_relaxed);
    *walks = atomic_load_explicit(&m->walks, memory_order_relaxed);
}

/* ---- cursor ------------------------------------------------------------------ */

void tokmask_init(TokCursor *c, const TokFsm *fsm)
{
    c->fsm = fsm;
    c->state = fsm->dfa->start;
    c->done = false;
}

void tokmask_fill(const TokCursor *c, uint32_t *mask)
{
    TokFsm *f = (TokFsm *)c->fsm; /* the cache is internally synchronized */
    size_t nw = (size_t)f->n_words;
    if (c->done) {
        memset(mask, 0, nw * sizeof *mask);
        return;
    }
    int32_t s = c->state;
    uint32_t *slot = f->masks + (size_t)s * nw;
    unsigned char r = atomic_load_explicit(&f->ready[s], memory_order_acquire);
    if (r == 2) {
        atomic_fetch_add_explicit(&f->hits, 1, memory_order_relaxed);
        memcpy(mask, slot, nw * sizeof *mask);
        return;
    }
    atomic_fetch_add_explicit(&f->walks, 1, memory_order_relaxed);
    unsigned char expect = 0;
    if (r == 0 && atomic_compare_exchange_strong_explicit(&f->ready[s], &expect, 1,
                                                          memory_order_acq_rel,
                                                          memory_order_acquire)) {
        compute_mask(f, s, slot);
        atomic_store_explicit(&f->ready[s], 2, memory_order_release);
        memcpy(mask, slot, nw * sizeof *mask);
        return;
    }
    compute_mask(f, s, mask); /* another thread is filling the slot */
}

SglStatus tokmask_advance(TokCursor *c, int32_t token)
{
    const TokVocab *v = c->fsm->vocab;
    if (c->done || token < 0 || token >= v->n)
        return SGL_E_INVAL;
    if (token == v->eos) {
        if (!c->fsm->dfa->accept[c->state])
            return SGL_E_INVAL;
        c->done = true;
        return SGL_OK;
    }
    if (v->excluded[token])
        return SGL_E_INVAL;
    return tokmask_advance_bytes(c, v->blob + v->off[token], v->off[token + 1] - v->off[token]);
}

SglStatus tokmask_advance_bytes(TokCursor *c, const void *bytes, size_t len)
{
    if (c->done)
        return len ? SGL_E_INVAL : SGL_OK;
    int32_t s = sgl_dfa_walk(c->fsm->dfa, c->state, bytes, len);
    if (s < 0)
        return SGL_E_INVAL;
    c->state = s;
    return SGL_OK;
}

bool tokmask_is_accepting(const TokCursor *c)
{
    return !c->done && c->fsm->dfa->accept[c->state];
}

bool tokmask_forced(const TokCursor *c, const char **bytes, size_t *len)
{
    const TokFsm *f = c->fsm;
    if (c->done || f->forced_len[c->state] == 0) {
        *bytes = "";
        *len = 0;
        return false;
    }
    *bytes = f->forced + f->forced_off[c->state];
    *len = (size_t)f->forced_len[c->state];
    return true;
}

/* ---- registry ------------------------------------------------------------------ */

typedef struct {
    TokFsm *fsm;
    int32_t refs;
} RegFsm;

struct TokRegistry {
    pthread_mutex_t mu;
    TokVocab **vocabs;
    int32_t n_vocabs, cap_vocabs;
    RegFsm *fsms;
    int32_t n_fsms, cap_fsms;
};

TokRegistry *tokreg_new(void)
{
    TokRegistry *r = calloc(1, sizeof *r);
    if (r && pthread_mutex_init(&r->mu, NULL) != 0) {
        free(r);
        return NULL;
    }
    return r;
}

void tokreg_free(TokRegistry *r)
{
    if (!r)
        return;
    for (int32_t i = 0; i < r->n_fsms; i++)
        tokfsm_free(r->fsms[i].fsm);
    for (int32_t i = 0; i < r->n_vocabs; i++)
        tokvocab_free(r->vocabs[i]);
    free(r->fsms);
    free(r->vocabs);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

/* Finds or builds the vocab of t (called with the lock held), without its
 * trie: tokreg_lock builds that when it makes a TokFsm that computes masks. */
static SglStatus reg_vocab(TokRegistry *r, const SglTokenizer *t, TokVocab **out, SglErr *err)
{
    const char **toks;
    size_t *lens;
    uint8_t *excl;
    int32_t n;
    if (tokenizer_arrays(t, &toks, &lens, &excl, &n) != SGL_OK)
        return sgl_err(err, SGL_E_NOMEM, "tokmask: out of memory");
    int32_t eos = sgl_tokenizer_eos(t);
    uint8_t *excl2 = malloc((size_t)n + 1);
    SglStatus st = SGL_E_NOMEM;
    if (!excl2) {
        sgl_err(err, st, "tokmask: out of memory");
        goto out;
    }
    for (int32_t i = 0; i < n; i++) /* the exclusion rule of vocab_build */
        excl2[i] = excl[i] || lens[i] == 0 || lens[i] > TOKMASK_MAX_TOKEN_BYTES || i == eos;
    uint64_t h = vocab_hash(toks, lens, excl2, n, eos);
    for (int32_t i = 0; i < r->n_vocabs; i++)
        if (r->vocabs[i]->hash == h && r->vocabs[i]->n == n && r->vocabs[i]->eos == eos) {
            *out = r->vocabs[i];
            st = SGL_OK;
            goto out;
        }
    if (r->n_vocabs == r->cap_vocabs) {
        int32_t nc = r->cap_vocabs ? r->cap_vocabs * 2 : 4;
        TokVocab **q = realloc(r->vocabs, (size_t)nc * sizeof *q);
        if (!q) {
            sgl_err(err, st, "tokmask: out of memory");
            goto out;
        }
        r->vocabs = q;
        r->cap_vocabs = nc;
    }
    if ((st = vocab_build(toks, lens, excl, n, eos, false, out, err)) == SGL_OK)
        r->vocabs[r->n_vocabs++] = *out;
out:
    free(toks);
    free(lens);
    free(excl);
    free(excl2);
    return st;
}

SglStatus tokvocab_hash_of(const SglTokenizer *t, uint64_t *out)
{
    const char **toks;
    size_t *lens;
    uint8_t *excl;
    int32_t n;
    if (tokenizer_arrays(t, &toks, &lens, &excl, &n) != SGL_OK)
        return SGL_E_NOMEM;
    int32_t eos = sgl_tokenizer_eos(t);
    for (int32_t i = 0; i < n; i++) /* the exclusion rule of vocab_build */
        excl[i] = excl[i] || lens[i] == 0 || lens[i] > TOKMASK_MAX_TOKEN_BYTES || i == eos;
    *out = vocab_hash(toks, lens, excl, n, eos);
    free(toks);
    free(lens);
    free(excl);
    return SGL_OK;
}

SglStatus tokreg_lock(TokRegistry *r, const SglDfa *dfa, const SglTokenizer *t, TokFsm **out,
                      SglErr *err)
{
    TokVocab *v = NULL;
    SglStatus st;
    *out = NULL;
    pthread_mutex_lock(&r->mu);
    if ((st = reg_vocab(r, t, &v, err)) != SGL_OK)
        goto out;
    for (int32_t i = 0; i < r->n_fsms; i++) {
        TokFsm *f = r->fsms[i].fsm;
        if (f->vocab == v && f->dfa->hash == dfa->hash && sgl_dfa_equal(f->dfa, dfa)) {
            r->fsms[i].refs++;
            *out = f;
            goto out;
        }
    }
    if (r->n_fsms == r->cap_fsms) {
        int32_t nc = r->cap_fsms ? r->cap_fsms * 2 : 8;
        RegFsm *q = realloc(r->fsms, (size_t)nc * sizeof *q);
        if (!q) {
            st = sgl_err(err, SGL_E_NOMEM, "tokmask: out of memory");
            goto out;
        }
        r->fsms = q;
        r->cap_fsms = nc;
    }
    /* a new TokFsm computes masks: the vocab needs its trie (one that only
     * served tables-loaded TokFsms so far is built without) */
    if (!v->nodes && (st = vocab_build_trie(v, err)) != SGL_OK)
        goto out;
    if ((st = tokfsm_new(dfa, v, out, err)) == SGL_OK)
        r->fsms[r->n_fsms++] = (RegFsm){*out, 1};
out:
    pthread_mutex_unlock(&r->mu);
    return st;
}

void tokreg_unlock(TokRegistry *r, TokFsm *f)
{
    pthread_mutex_lock(&r->mu);
    for (int32_t i = 0; i < r->n_fsms; i++)
        if (r->fsms[i].fsm == f && r->fsms[i].refs > 0) {
            r->fsms[i].refs--;
            break;
        }
    pthread_mutex_unlock(&r->mu);
}

void tokreg_trim(TokRegistry *r)
{
    pthread_mutex_lock(&r->mu);
    int32_t m = 0;
    for (int32_t i = 0; i < r->n_fsms; i++) {
        if (r->fsms[i].refs == 0)
            tokfsm_free(r->fsms[i].fsm);
        else
            r->fsms[m++] = r->fsms[i];
    }
    r->n_fsms = m;
    m = 0;
    for (int32_t i = 0; i < r->n_vocabs; i++) {
        bool used = false;
        for (int32_t j = 0; j < r->n_fsms && !used; j++)
            used = r->fsms[j].fsm->vocab == r->vocabs[i];
        if (used)
            r->vocabs[m++] = r->vocabs[i];
        else
            tokvocab_free(r->vocabs[i]);
    }
    r->n_vocabs = m;
    pthread_mutex_unlock(&r->mu);
}

int32_t tokreg_n_fsms(const TokRegistry *r)
{
    pthread_mutex_lock((pthread_mutex_t *)&r->mu);
    int32_t n = r->n_fsms;
    pthread_mutex_unlock((pthread_mutex_t *)&r->mu);
    return n;
}

/* ---- SglConstraint adapter ------------------------------------------------------ */

typedef struct {
    TokRegistry *reg;
    TokFsm *fsm;               /* locked in reg */
    int32_t n_samples;
    uint32_t *scratch;         /* (n_words): masks for an engine vocab smaller than ours */
    TokCursor cur[];           /* (n_samples) */
} ConstraintCtx;

static bool constraint_mask(void *ctx, int32_t index, uint32_t *allowed, int32_t vocab)
{
    ConstraintCtx *c = ctx;
    if (index < 0 || index >= c->n_samples)
        return false;
    int32_t nw = c->fsm->n_words, engine_nw = (vocab + 31) / 32;
    if (engine_nw >= nw) {
        tokmask_fill(&c->cur[index], allowed);
        return true;
    }
    tokmask_fill(&c->cur[index], c->scratch);
    memcpy(allowed, c->scratch, (size_t)engine_nw * sizeof *allowed);
    if (vocab % 32)
        allowed[engine_nw - 1] &= (1u << (vocab % 32)) - 1;
    return true;
}

static bool constraint_accept(void *ctx, int32_t index, int32_t token)
{
    ConstraintCtx *c = ctx;
    if (index < 0 || index >= c->n_samples)
        return true;
    TokCursor *cur = &c->cur[index];
    if (tokmask_advance(cur, token) != SGL_OK || cur->done)
        return true;
    if (!tokmask_is_accepting(cur))
        return false;
    const SglDfa *d = c->fsm->dfa;
    const int32_t *row = d->trans + (size_t)cur->state * (size_t)d->n_classes;
    for (int32_t k = 0; k < d->n_classes; k++)
        if (row[k] >= 0)
            return false;
    return true; /* accepted and nothing can follow */
}

static bool constraint_forced(void *ctx, int32_t index, const char **bytes, size_t *len)
{
    ConstraintCtx *c = ctx;
    *bytes = NULL;
    *len = 0;
    if (index < 0 || index >= c->n_samples || c->cur[index].done)
        return false;
    return tokmask_forced(&c->cur[index], bytes, len);
}

/* Advances over jump-forward bytes; true when the text is then complete
 * (accepting with no possible continuation) or the bytes were refused. */
static bool constraint_accept_bytes(void *ctx, int32_t index, const char *bytes, size_t len)
{
    ConstraintCtx *c = ctx;
    if (index < 0 || index >= c->n_samples)
        return true;
    TokCursor *cur = &c->cur[index];
    if (tokmask_advance_bytes(cur, bytes, len) != SGL_OK)
        return true;
    if (!tokmask_is_accepting(cur))
        return false;
    const SglDfa *d = c->fsm->dfa;
    const int32_t *row = d->trans + (size_t)cur->state * (size_t)d->n_classes;
    for (int32_t k = 0; k < d->n_classes; k++)
        if (row[k] >= 0)
            return false;
    return true;
}

static void constraint_release(void *ctx)
{
    ConstraintCtx *c = ctx;
    tokreg_unlock(c->reg, c->fsm);
    free(c->scratch);
    free(c);
}

SglStatus tokmask_constraint_new(TokRegistry *reg, const SglDfa *dfa, const SglTokenizer *t,
                                 int32_t n_samples, SglConstraint *out, SglErr *err)
{
    memset(out, 0, sizeof *out);
    if (n_samples < 1 || n_samples > SGL_MAX_N)
        return sgl_err(err, SGL_E_INVAL, "tokmask: n_samples %d outside [1, %d]", n_samples,
                       SGL_MAX_N);
    ConstraintCtx *c = calloc(1, sizeof *c + (size_t)n_samples * sizeof c->cur[0]);
    if (!c)
        return sgl_err(err, SGL_E_NOMEM, "tokmask: out of memory");
    SglStatus st = tokreg_lock(reg, dfa, t, &c->fsm, err);
    if (st != SGL_OK) {
        free(c);
        return st;
    }
    c->scratch = malloc((size_t)c->fsm->n_words * sizeof *c->scratch);
    if (!c->scratch) {
        tokreg_unlock(reg, c->fsm);
        free(c);
        return sgl_err(err, SGL_E_NOMEM, "tokmask: out of memory");
    }
    c->reg = reg;
    c->n_samples = n_samples;
    for (int32_t i = 0; i < n_samples; i++)
        tokmask_init(&c->cur[i], c->fsm);
    *out = (SglConstraint){c, constraint_mask, constraint_accept, constraint_release,
                           constraint_forced, constraint_accept_bytes};
    return SGL_OK;
}

TokCursor *tokmask_constraint_cursor(void *ctx, int32_t index)
{
    ConstraintCtx *c = ctx;
    return index >= 0 && index < c->n_samples ? &c->cur[index] : NULL;
}

/* ---- precomputed tables (sglc build --model) -------------------------------------
 *
 * Layout, little-endian, written byte by byte (no struct images):
 *   header (64 bytes)   "SGLTOKT\0", u32 version, u32 header bytes (64),
 *                       u64 DFA hash, u64 vocab hash, i32 vocab size, i32 EOS,
 *                       i32 DFA states, i32 entries, i32 unique masks,
 *                       u32 flags (0), u64 checksum (FNV-1a of bytes [0, 56)
 *                       and [64, len))
 *   masks (n_masks)     u8 kind; kind 0: varint n_runs, then per run varint
 *                       gap (from the previous run's end) and varint len - 1;
 *                       kind 1: n_words u32 words. Whichever is shorter.
 *   entries (n_entries) varint state delta (state - previous state - 1, states
 *                       ascending), varint mask index, varint forced length,
 *                       the forced bytes.
 * Entries cover every state reachable from the start state. Equal masks are
 * stored once (JSON and string states share most of theirs).
 */

#define TABLES_MAGIC "SGLTOKT"
#define TABLES_VERSION 1u
#define TABLES_HEADER 64

typedef struct {
    uint8_t *p;
    size_t len, cap;
    bool oom;
} Buf;

static void buf_put(Buf *b, const void *src, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n > b->cap) {
        size_t nc = b->cap ? b->cap : 4096;
        while (nc < b->len + n)
            nc *= 2;
        uint8_t *q = realloc(b->p, nc);
        if (!q) {
            b->oom = true;
            return;
        }
        b->p = q;
        b->cap = nc;
    }
    memcpy(b->p + b->len, src, n);
    b->len += n;
}

static void buf_varint(Buf *b, uint64_t v)
{
    uint8_t t[10];
    size_t n = 0;
    do {
        t[n++] = (uint8_t)((v & 0x7f) | (v >= 0x80 ? 0x80 : 0));
        v >>= 7;
    } while (v);
    buf_put(b, t, n);
}

static void put_le(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static uint64_t tables_checksum(const uint8_t *p, size_t len)
{
    return fnv(fnv(0xcbf29ce484222325ull, p, 56), p + TABLES_HEADER, len - TABLES_HEADER);
}

/* Appends mask's encoding (the shorter of runs and bitmap) to b. */
static void encode_mask(Buf *b, const uint32_t *mask, int32_t n_words, int32_t vocab, Buf *runs)
{
    uint64_t n_runs = 0;
    int32_t prev_end = 0;
    runs->len = 0;
    for (int32_t id = 0; id < vocab;) {
        if (!(mask[id >> 5] >> (id & 31) & 1)) {
            id = mask[id >> 5] >> (id & 31) ? id + 1 : (id | 31) + 1;
            continue;
        }
        int32_t end = id + 1;
        while (end < vocab && (mask[end >> 5] >> (end & 31) & 1))
            end++;
        buf_varint(runs, (uint64_t)(id - prev_end));
        buf_varint(runs, (uint64_t)(end - id - 1));
        n_runs++;
        prev_end = end;
        id = end;
    }
    uint8_t t[10];
    size_t nv = 0;
    for (uint64_t v = n_runs;; v >>= 7) {
        t[nv++] = (uint8_t)((v & 0x7f) | (v >= 0x80 ? 0x80 : 0));
        if (v < 0x80)
            break;
    }
    if (1 + nv + runs->len <= 1 + (size_t)n_words * 4) {
        buf_put(b, "\0", 1);
        buf_put(b, t, nv);
        buf_put(b, runs->p, runs->len);
        if (runs->oom)
            b->oom = true;
        return;
    }
    buf_put(b, "\1", 1);
    for (int32_t w = 0; w < n_words; w++) {
        uint8_t le[4];
        put_le(le, mask[w], 4);
        buf_put(b, le, 4);
    }
}

SglStatus tokmask_tables_serialize(const SglDfa *dfa, const TokVocab *v, size_t cap_bytes,
                                   uint8_t **out, size_t *len, TokTablesInfo *info, SglErr *err)
{
    SglStatus st = SGL_E_NOMEM;
    TokFsm *f = NULL;
    Buf masks = {0}, ents = {0}, runs = {0}, all = {0};
    int32_t *queue = NULL, *seen = NULL;
    size_t *mask_off = NULL;
    uint64_t *mask_hash = NULL;
    int32_t *slots = NULL;
    uint32_t *mask = NULL;
    *out = NULL;
    *len = 0;
    memset(info, 0, sizeof *info);
    if (!v->nodes)
        return sgl_err(err, SGL_E_INVAL, "tokmask: token tables need a vocab with its trie");
    if ((st = tokfsm_new(dfa, v, &f, err)) != SGL_OK)
        return st;
    st = SGL_E_NOMEM;
    int32_t n = dfa->n_states, k = dfa->n_classes, nw = f->n_words;
    size_t n_slots = 64;
    while (n_slots < 2 * (size_t)n)
        n_slots *= 2;
    queue = malloc((size_t)n * sizeof *queue);
    seen = malloc((size_t)n * sizeof *seen);   /* -1, or the state's mask index */
    mask_off = malloc(((size_t)n + 1) * sizeof *mask_off);
    mask_hash = malloc((size_t)n * sizeof *mask_hash);
    slots = malloc(n_slots * sizeof *slots);
    mask = malloc((size_t)nw * sizeof *mask);
    if (!queue || !seen || !mask_off || !mask_hash || !slots || !mask)
        goto fail;
    for (int32_t s = 0; s < n; s++)
        seen[s] = -1;
    for (size_t i = 0; i < n_slots; i++)
        slots[i] = -1;
    /* reachable states, breadth first; each state's mask deduplicated */
    int32_t qh = 0, qt = 0, n_masks = 0;
    queue[qt++] = dfa->start;
    seen[dfa->start] = 0;
    while (qh < qt) {
        int32_t s = queue[qh++];
        for (int32_t c = 0; c < k; c++) {
            int32_t u = dfa->trans[(size_t)s * k + c];
            if (u >= 0 && seen[u] < 0) {
                seen[u] = 0;
                queue[qt++] = u;
            }
        }
        compute_mask(f, s, mask);
        size_t at = masks.len;
        encode_mask(&masks, mask, nw, v->n, &runs);
        if (masks.oom || runs.oom)
            goto fail;
        uint64_t h = fnv(0xcbf29ce484222325ull, masks.p + at, masks.len - at);
        size_t slot = h & (n_slots - 1);
        int32_t idx = -1;
        for (; slots[slot] >= 0; slot = (slot + 1) & (n_slots - 1)) {
            int32_t m = slots[slot];
            if (mask_hash[m] == h && mask_off[m + 1] - mask_off[m] == masks.len - at &&
                !memcmp(masks.p + mask_off[m], masks.p + at, masks.len - at)) {
                idx = m;
                break;
            }
        }
        if (idx >= 0) {
            masks.len = at;          /* a repeat: drop the copy */
        } else {
            idx = n_masks++;
            mask_off[idx] = at;
            mask_off[idx + 1] = masks.len;
            mask_hash[idx] = h;
            slots[slot] = idx;
        }
        seen[s] = idx;
        if (masks.len + TABLES_HEADER > cap_bytes) {
            st = sgl_err(err, SGL_E_UNSUPPORTED,
                         "token tables exceed the cap of %zu bytes (%d DFA states x %d tokens)",
                         cap_bytes, n, v->n);
            goto fail;
        }
    }
    /* entries in state order */
    int32_t prev = -1;
    for (int32_t s = 0; s < n; s++) {
        if (seen[s] < 0)
            continue;
        buf_varint(&ents, (uint64_t)(s - prev - 1));
        buf_varint(&ents, (uint64_t)seen[s]);
        buf_varint(&ents, (uint64_t)f->forced_len[s]);
        if (f->forced_len[s])
            buf_put(&ents, f->forced + f->forced_off[s], (size_t)f->forced_len[s]);
        prev = s;
    }
    if (ents.oom)
        goto fail;
    if (TABLES_HEADER + masks.len + ents.len > cap_bytes) {
        st = sgl_err(err, SGL_E_UNSUPPORTED, "token tables exceed the cap of %zu bytes", cap_bytes);
        goto fail;
    }
    uint8_t h[TABLES_HEADER] = {0};
    memcpy(h, TABLES_MAGIC, 8);
    put_le(h + 8, TABLES_VERSION, 4);
    put_le(h + 12, TABLES_HEADER, 4);
    put_le(h + 16, dfa->hash, 8);
    put_le(h + 24, v->hash, 8);
    put_le(h + 32, (uint32_t)v->n, 4);
    put_le(h + 36, (uint32_t)v->eos, 4);
    put_le(h + 40, (uint32_t)n, 4);
    put_le(h + 44, (uint32_t)qt, 4);
    put_le(h + 48, (uint32_t)n_masks, 4);
    buf_put(&all, h, sizeof h);
    buf_put(&all, masks.p, masks.len);
    buf_put(&all, ents.p, ents.len);
    if (all.oom)
        goto fail;
    put_le(all.p + 56, tables_checksum(all.p, all.len), 8);
    *out = all.p;
    *len = all.len;
    all.p = NULL;
    *info = (TokTablesInfo){qt, n_masks, *len};
    st = SGL_OK;
    goto out;
fail:
    if (st == SGL_E_NOMEM)
        sgl_err(err, st, "tokmask: out of memory serializing token tables");
out:
    tokfsm_free(f);
    free(masks.p);
    free(ents.p);
    free(runs.p);
    free(all.p);
    free(queue);
    free(seen);
    free(mask_off);
    free(mask_hash);
    free(slots);
    free(mask);
    return st;
}

/* A bounds-checked reader: every get fails (ok = false) past the end. */
typedef struct {
    const uint8_t *p;
    size_t len, off;
    bool ok;
} Rd;

static uint64_t rd_varint(Rd *r)
{
    uint64_t v = 0;
    for (int shift = 0; r->ok; shift += 7) {
        if (r->off >= r->len || shift > 63) {
            r->ok = false;
            break;
        }
        uint8_t b = r->p[r->off++];
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return v;
    }
    return 0;
}

/* Decodes one mask at r into mask (n_words words) and checks it against the
 * vocab: ids in range, no never-allowed token (EOS aside), bits past the
 * vocab clear. false: corrupt. */
static bool decode_mask(Rd *r, const TokVocab *v, int32_t nw, uint32_t *mask)
{
    memset(mask, 0, (size_t)nw * sizeof *mask);
    if (r->off >= r->len)
        return false;
    uint8_t kind = r->p[r->off++];
    if (kind == 1) {
        if (r->len - r->off < (size_t)nw * 4)
            return false;
        for (int32_t w = 0; w < nw; w++)
            mask[w] = (uint32_t)get_le(r->p + r->off + (size_t)w * 4, 4);
        r->off += (size_t)nw * 4;
        if (v->n % 32 && (mask[nw - 1] >> (v->n % 32)))
            return false;
    } else if (kind == 0) {
        uint64_t n_runs = rd_varint(r), pos = 0;
        if (!r->ok || n_runs > (uint64_t)v->n)
            return false;
        for (uint64_t i = 0; i < n_runs; i++) {
            uint64_t gap = rd_varint(r), l = rd_varint(r);
            if (!r->ok || gap > (uint64_t)v->n || l >= (uint64_t)v->n ||
                pos + gap + l + 1 > (uint64_t)v->n)
                return false;
            for (uint64_t id = pos + gap; id < pos + gap + l + 1; id++)
                mask[id >> 5] |= 1u << (id & 31);
            pos += gap + l + 1;
        }
    } else {
        return false;
    }
    for (int32_t w = 0; w < nw; w++)
        for (uint32_t m = mask[w]; m; m &= m - 1) {
            int32_t id = w * 32 + __builtin_ctz(m);
            if (v->excluded[id] && id != v->eos)
                return false;
        }
    return true;
}

SglStatus tokfsm_new_from_tables(const SglDfa *dfa, const TokVocab *v, const void *bytes,
                                 size_t len, TokFsm **out, SglErr *err)
{
    const uint8_t *p = bytes;
    TokFsm *f = NULL;
    int32_t *mask_at = NULL, *first = NULL, *queue = NULL;
    uint8_t *reach = NULL;
    SglStatus st;
    *out = NULL;
    if (len < TABLES_HEADER || memcmp(p, TABLES_MAGIC, 8) != 0)
        return sgl_err(err, SGL_E_FORMAT, "token tables: not token tables (bad magic or %zu bytes)",
                       len);
    if (get_le(p + 8, 4) != TABLES_VERSION || get_le(p + 12, 4) != TABLES_HEADER)
        return sgl_err(err, SGL_E_FORMAT, "token tables: format version %u, expected %u",
                       (unsigned)get_le(p + 8, 4), TABLES_VERSION);
    if (get_le(p + 56, 8) != tables_checksum(p, len))
        return sgl_err(err, SGL_E_FORMAT, "token tables: checksum mismatch (damaged data)");
    int32_t vn = (int32_t)get_le(p + 32, 4), veos = (int32_t)get_le(p + 36, 4);
    int32_t ns = (int32_t)get_le(p + 40, 4), n_ent = (int32_t)get_le(p + 44, 4);
    int32_t n_masks = (int32_t)get_le(p + 48, 4);
    if (get_le(p + 24, 8) != v->hash || vn != v->n || veos != v->eos)
        return sgl_err(err, SGL_E_INVAL,
                       "token tables were made for another tokenizer: vocabulary hash %016llx, "
                       "%d tokens, EOS %d; this tokenizer has %016llx, %d tokens, EOS %d",
                       (unsigned long long)get_le(p + 24, 8), vn, veos,
                       (unsigned long long)v->hash, v->n, v->eos);
    if (get_le(p + 16, 8) != dfa->hash || ns != dfa->n_states)
        return sgl_err(err, SGL_E_INVAL,
                       "token tables were made for another constraint automaton: hash %016llx "
                       "with %d states; this one has %016llx with %d states",
                       (unsigned long long)get_le(p + 16, 8), ns, (unsigned long long)dfa->hash,
                       dfa->n_states);
    if (n_ent < 1 || n_ent > ns || n_masks < 1 || n_masks > n_ent)
        return sgl_err(err, SGL_E_FORMAT, "token tables: %d entries and %d masks for %d states",
                       n_ent, n_masks, ns);
    if ((st = tokfsm_new(dfa, v, &f, err)) != SGL_OK)
        return st;
    st = SGL_E_NOMEM;
    mask_at = malloc((size_t)n_masks * sizeof *mask_at);
    first = malloc((size_t)n_masks * sizeof *first);
    queue = malloc((size_t)ns * sizeof *queue);
    reach = calloc((size_t)ns, 1);
    if (!mask_at || !first || !queue || !reach)
        goto fail;
    /* the entries must be exactly the reachable states: then no cursor ever
     * meets a state without its mask (a tables-only vocab has no trie) */
    int32_t qh = 0, qt = 0;
    queue[qt++] = dfa->start;
    reach[dfa->start] = 1;
    while (qh < qt) {
        int32_t q = queue[qh++];
        for (int32_t c = 0; c < dfa->n_classes; c++) {
            int32_t u = dfa->trans[(size_t)q * (size_t)dfa->n_classes + c];
            if (u >= 0 && !reach[u]) {
                reach[u] = 1;
                queue[qt++] = u;
            }
        }
    }
    if (qt != n_ent) {
        st = sgl_err(err, SGL_E_FORMAT, "token tables: %d entries for %d reachable states",
                     n_ent, qt);
        goto fail;
    }
    /* first pass: where each mask starts (each is validated when decoded) */
    Rd r = {p, len, TABLES_HEADER, true};
    for (int32_t m = 0; m < n_masks; m++) {
        mask_at[m] = (int32_t)(r.off < INT32_MAX ? r.off : INT32_MAX);
        if (r.off >= len || r.off >= INT32_MAX)
            goto corrupt;
        uint8_t kind = p[r.off++];
        if (kind == 1) {
            if (len - r.off < (size_t)f->n_words * 4)
                goto corrupt;
            r.off += (size_t)f->n_words * 4;
        } else if (kind == 0) {
            uint64_t nr = rd_varint(&r);
            if (!r.ok || nr > (uint64_t)v->n)
                goto corrupt;
            for (uint64_t i = 0; i < 2 * nr && r.ok; i++)
                rd_varint(&r);
            if (!r.ok)
                goto corrupt;
        } else {
            goto corrupt;
        }
    }
    /* entries: each mask decoded (and validated) once, into the slot of the
     * first state using it, then copied; forced strings checked against the
     * DFA's own */
    for (int32_t m = 0; m < n_masks; m++)
        first[m] = -1;
    int32_t s = -1;
    size_t nwb = (size_t)f->n_words * sizeof *f->masks;
    bool has_eos = v->eos >= 0 && v->eos < v->n;
    for (int32_t e = 0; e < n_ent; e++) {
        uint64_t ds = rd_varint(&r), mi = rd_varint(&r), fl = rd_varint(&r);
        if (!r.ok || ds >= (uint64_t)(ns - s - 1) || mi >= (uint64_t)n_masks ||
            fl > len - r.off)
            goto corrupt;
        s += (int32_t)ds + 1;
        if (!reach[s])
            goto corrupt;
        if (fl != (uint64_t)f->forced_len[s] ||
            (fl && memcmp(p + r.off, f->forced + f->forced_off[s], (size_t)fl) != 0)) {
            st = sgl_err(err, SGL_E_FORMAT,
                         "token tables: the forced string of state %d differs from the "
                         "automaton's", s);
            goto fail;
        }
        r.off += (size_t)fl;
        uint32_t *slot = f->masks + (size_t)s * (size_t)f->n_words;
        if (first[mi] < 0) {
            Rd mr = {p, len, (size_t)mask_at[mi], true};
            if (!decode_mask(&mr, v, f->n_words, slot))
                goto corrupt;
            first[mi] = s;
        } else {
            memcpy(slot, f->masks + (size_t)first[mi] * (size_t)f->n_words, nwb);
        }
        bool eos_set = has_eos && (slot[v->eos >> 5] >> (v->eos & 31) & 1);
        if (has_eos && eos_set != (dfa->accept[s] != 0)) {
            st = sgl_err(err, SGL_E_FORMAT,
                         "token tables: EOS %s in state %d, which is %saccepting",
                         eos_set ? "allowed" : "not allowed", s, dfa->accept[s] ? "" : "not ");
            goto fail;
        }
        atomic_store_explicit(&f->ready[s], 2, memory_order_release);
    }
    if (r.off != len || s < 0 || !atomic_load(&f->ready[dfa->start]))
        goto corrupt;
    free(mask_at);
    free(first);
    free(queue);
    free(reach);
    *out = f;
    return SGL_OK;
corrupt:
    st = sgl_err(err, SGL_E_FORMAT, "token tables: malformed data near byte %zu of %zu", r.off,
                 len);
fail:
    if (st == SGL_E_NOMEM)
        sgl_err(err, st, "tokmask: out of memory loading token tables");
    free(mask_at);
    free(first);
    free(queue);
    free(reach);
    tokfsm_free(f);
    return st;
}

SglStatus tokreg_load_tables(TokRegistry *r, const SglDfa *dfa, const SglTokenizer *t,
                             const void *bytes, size_t len, SglErr *err)
{
    TokVocab *v = NULL;
    TokFsm *f = NULL;
    SglStatus st;
    pthread_mutex_lock(&r->mu);
    if ((st = reg_vocab(r, t, &v, err)) != SGL_OK)
        goto out;
    if ((st = tokfsm_new_from_tables(dfa, v, bytes, len, &f, err)) != SGL_OK)
        goto out;
    for (int32_t i = 0; i < r->n_fsms; i++) {
        TokFsm *g = r->fsms[i].fsm;
        if (g->vocab == v && g->dfa->hash == dfa->hash && sgl_dfa_equal(g->dfa, dfa)) {
            tokfsm_free(f);   /* already there (an equal constraint loaded before) */
            goto out;
        }
    }
    if (r->n_fsms == r->cap_fsms) {
        int32_t nc = r->cap_fsms ? r->cap_fsms * 2 : 8;
        RegFsm *q = realloc(r->fsms, (size_t)nc * sizeof *q);
        if (!q) {
            tokfsm_free(f);
            st = sgl_err(err, SGL_E_NOMEM, "tokmask: out of memory");
            goto out;
        }
        r->fsms = q;
        r->cap_fsms = nc;
    }
    r->fsms[r->n_fsms++] = (RegFsm){f, 0};
out:
    pthread_mutex_unlock(&r->mu);
    return st;
}

void tokreg_counters(const TokRegistry *r, uint64_t *hits, uint64_t *walks)
{
    pthread_mutex_lock((pthread_mutex_t *)&r->mu);
    *hits = *walks = 0;
    for (int32_t i = 0; i < r->n_fsms; i++) {
        uint64_t h, w;
        tokfsm_counters(r->fsms[i].fsm, &h, &w);
        *hits += h;
        *walks += w;
    }
    pthread_mutex_unlock((pthread_mutex_t *)&r->mu);
}

/* tokenizer_spm.c -- reads a SentencePiece tokenizer.model (a ModelProto).
 *
 * The protobuf is parsed by hand; only these fields are used:
 *   ModelProto      1: pieces (repeated)  2: trainer_spec  3: normalizer_spec
 *   SentencePiece   1: piece  2: score (float)  3: type (1 NORMAL, 2 UNKNOWN,
 *                   3 CONTROL, 4 USER_DEFINED, 5 UNUSED, 6 BYTE)
 *   TrainerSpec     3: model_type (2 = BPE)  24: treat_whitespace_as_suffix
 *                   35: byte_fallback  40/41/42: unk/bos/eos id  44: unk_surface
 *   NormalizerSpec  1: name  2: precompiled_charsmap  3: add_dummy_prefix
 *                   4: remove_extra_whitespaces  5: escape_whitespaces
 * Every length is checked against the bytes left, so a truncated or mutated
 * file is SGL_E_FORMAT naming the message and field, never an overread.
 * Models that need a precompiled normalization map or are Unigram are
 * SGL_E_UNSUPPORTED. Merges are derived from the pieces: every split of a
 * NORMAL piece into two NORMAL pieces is a candidate with priority -score.
 */
#include "runtime/tokenizer_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SPM_MAX_FILE (1u << 30)

typedef struct {
    const uint8_t *p, *end;
} Pb;

typedef struct {
    uint32_t field, wire;
    uint64_t v;                 /* varint / fixed value */
    const uint8_t *data;        /* wire 2 payload */
    size_t len;
} PbField;

static bool pb_varint(Pb *b, uint64_t *v)
{
    uint64_t x = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (b->p >= b->end)
            return false;
        uint8_t c = *b->p++;
        x |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) {
            *v = x;
            return true;
        }
    }
    return false;
}

/* Reads the next field; returns 1 on success, 0 at the end, -1 if malformed. */
static int pb_next(Pb *b, PbField *f)
{
    uint64_t key;
    if (b->p >= b->end)
        return 0;
    if (!pb_varint(b, &key) || (key >> 3) == 0 || (key >> 3) > UINT32_MAX)
        return -1;
    f->field = (uint32_t)(key >> 3);
    f->wire = (uint32_t)(key & 7);
    f->data = NULL;
    f->len = 0;
    switch (f->wire) {
    case 0:
        return pb_varint(b, &f->v) ? 1 : -1;
    case 1:
        if (b->end - b->p < 8)
            return -1;
        memcpy(&f->v, b->p, 8);
        b->p += 8;
        return 1;
    case 5: {
        uint32_t x;
        if (b->end - b->p < 4)
            return -1;
        memcpy(&x, b->p, 4);
        f->v = x;
        b->p += 4;
        return 1;
    }
    case 2: {
        uint64_t n;
        if (!pb_varint(b, &n) || n > (uint64_t)(b->end - b->p))
            return -1;
        f->data = b->p;
        f->len = (size_t)n;
        b->p += n;
        return 1;
    }
    default:
        return -1;
    }
}

static SglStatus read_file(const char *path, uint8_t **data, size_t *len, SglErr *err)
{
    SglStatus st = SGL_OK;
    FILE *f = fopen(path, "rb");
    *data = NULL;
    if (!f)
        return sgl_err(err, SGL_E_IO, "%s: cannot open: %s", path, strerror(errno));
    if (fseek(f, 0, SEEK_END) != 0) {
        st = sgl_err(err, SGL_E_IO, "%s: cannot seek: %s", path, strerror(errno));
        goto out;
    }
    long n = ftell(f);
    if (n < 0 || (unsigned long)n > SPM_MAX_FILE) {
        st = sgl_err(err, n < 0 ? SGL_E_IO : SGL_E_FORMAT, "%s: size %ld is not readable "
                     "(limit %u bytes)", path, n, SPM_MAX_FILE);
        goto out;
    }
    rewind(f);
    *data = malloc((size_t)n + 1);
    if (!*data) {
        st = sgl_err(err, SGL_E_NOMEM, "%s: out of memory", path);
        goto out;
    }
    if (fread(*data, 1, (size_t)n, f) != (size_t)n) {
        st = sgl_err(err, SGL_E_IO, "%s: read error", path);
        free(*data);
        *data = NULL;
        goto out;
    }
    *len = (size_t)n;
out:
    fclose(f);
    return st;
}

static SglStatus read_piece(SglTokenizer *t, const char *path, int32_t id, const uint8_t *d,
                            size_t len, SglErr *err)
{
    SglStatus st;
    Pb b = {d, d + len};
    PbField f;
    int rc;
    const uint8_t *piece = NULL;
    size_t plen = 0;
    float score = 0;
    uint64_t type = 1;
    while ((rc = pb_next(&b, &f)) > 0) {
        if (f.field == 1 && f.wire == 2) {
            piece = f.data;
            plen = f.len;
        } else if (f.field == 2 && f.wire == 5) {
            uint32_t x = (uint32_t)f.v;
            memcpy(&score, &x, 4);
        } else if (f.field == 3 && f.wire == 0) {
            type = f.v;
        }
    }
    if (rc < 0)
        return sgl_err(err, SGL_E_FORMAT, "%s: pieces[%d]: malformed protobuf", path, id);
    if (!piece || plen == 0)
        return sgl_err(err, SGL_E_FORMAT, "%s: pieces[%d].piece: missing or empty", path, id);
    for (size_t i = 0; i < plen;) {
        int kind;
        size_t l = tok_utf8_scan(piece + i, plen - i, &kind);
        if (kind != U8_OK)
            return sgl_err(err, SGL_E_FORMAT, "%s: pieces[%d].piece: invalid UTF-8", path, id);
        i += l;
    }
    if (type < 1 || type > 6)
        return sgl_err(err, SGL_E_FORMAT, "%s: pieces[%d].type: unknown type %llu", path, id,
                       (unsigned long long)type);
    if ((st = tok_reserve(t, id + 1)) != SGL_OK)
        return st;
    TokEntry *e = &t->tok[id];
    if ((st = tok_blob_add(t, (const char *)piece, plen, &e->off)) != SGL_OK)
        return st;
    static const uint8_t kinds[7] = {0, TOKK_NORMAL, TOKK_UNKNOWN, TOKK_CONTROL, TOKK_USER,
                                     TOKK_UNUSED, TOKK_BYTE};
    e->len = (uint32_t)plen;
    e->score = score;
    e->kind = kinds[type];
    e->special = e->kind == TOKK_CONTROL || e->kind == TOKK_UNKNOWN;
    if (e->kind == TOKK_BYTE) {
        unsigned hx;
        char tail;
        if (plen != 6 || memcmp(piece, "<0x", 3) != 0 ||
            sscanf((const char *)tok_text(t, id) + 3, "%2x%c", &hx, &tail) != 2 || tail != '>')
            return sgl_err(err, SGL_E_FORMAT, "%s: pieces[%d]: BYTE piece '%.20s' is not <0xXX>",
                           path, id, tok_text(t, id));
        e->byte = (uint8_t)hx;
        t->byte_tok[hx] = id;
    }
    return SGL_OK;
}

static int cmp_user_len(const void *a, const void *b, void *ctx)
{
    const SglTokenizer *t = ctx;
    uint32_t x = t->tok[*(const int32_t *)a].len, y = t->tok[*(const int32_t *)b].len;
    return x == y ? 0 : x > y ? -1 : 1;
}

/* Candidate merges: each NORMAL piece split at every character boundary into
 * two NORMAL pieces. */
static SglStatus build_merges(SglTokenizer *t)
{
    SglStatus st;
    size_t n = 0;
    for (int32_t id = 0; id < t->n_tok; id++)
        if (t->tok[id].kind == TOKK_NORMAL)
            n += t->tok[id].len;
    if ((st = pairmap_init(&t->merges, n)) != SGL_OK)
        return st;
    for (int32_t id = 0; id < t->n_tok; id++) {
        const TokEntry *e = &t->tok[id];
        if (e->kind != TOKK_NORMAL)
            continue;
        const char *s = tok_text(t, id);
        for (uint32_t k = 1; k < e->len; k++) {
            if (((unsigned char)s[k] & 0xC0) == 0x80)
                continue;
            int32_t a = strmap_get(t, &t->vocab, s, k, false);
            int32_t b = strmap_get(t, &t->vocab, s + k, e->len - k, false);
            if (a >= 0 && b >= 0 && t->tok[a].kind == TOKK_NORMAL && t->tok[b].kind == TOKK_NORMAL)
                pairmap_put(&t->merges, a, b, -e->score, id);
        }
    }
    return SGL_OK;
}

static int32_t spec_id(uint64_t v)
{
    return (int32_t)(int64_t)v;   /* int32 fields: -1 arrives as a 10-byte varint */
}

SglStatus tok_read_spm(SglTokenizer *t, const char *path, SglErr *err)
{
    SglStatus st = SGL_OK;
    uint8_t *data;
    size_t len = 0;
    if ((st = read_file(path, &data, &len, err)) != SGL_OK)
        return st;
    Pb b = {data, data + len};
    PbField f;
    int rc;
    int32_t n_pieces = 0;
    uint64_t model_type = 1;
    bool byte_fallback = false, ws_suffix = false, have_trainer = false;
    int32_t unk = 0, bos = 1, eos = 2;
    t->is_spm = true;
    t->add_dummy_prefix = t->remove_extra_ws = t->escape_ws = true;
    strcpy(t->unk_surface, " \xE2\x81\x87 ");
    for (int i = 0; i < 256; i++)
        t->byte_tok[i] = t->byte_sym[i] = -1;
    for (int i = 0; i < 128; i++)
        t->ascii_sym[i] = -1;
    while ((rc = pb_next(&b, &f)) > 0) {
        if (f.field == 1 && f.wire == 2) {
            if (n_pieces >= TOK_MAX_VOCAB) {
                st = sgl_err(err, SGL_E_FORMAT, "%s: more than %d pieces", path, TOK_MAX_VOCAB);
                goto out;
            }
            if ((st = read_piece(t, path, n_pieces, f.data, f.len, err)) != SGL_OK)
                goto out;
            n_pieces++;
        } else if ((f.field == 2 || f.field == 3) && f.wire == 2) {
            Pb sb = {f.data, f.data + f.len};
            PbField g;
            int rc2;
            bool trainer = f.field == 2;
            have_trainer |= trainer;
            while ((rc2 = pb_next(&sb, &g)) > 0) {
                if (trainer) {
                    if (g.field == 3 && g.wire == 0)
                        model_type = g.v;
                    else if (g.field == 24 && g.wire == 0)
                        ws_suffix = g.v != 0;
                    else if (g.field == 35 && g.wire == 0)
                        byte_fallback = g.v != 0;
                    else if (g.field == 40 && g.wire == 0)
                        unk = spec_id(g.v);
                    else if (g.field == 41 && g.wire == 0)
                        bos = spec_id(g.v);
                    else if (g.field == 42 && g.wire == 0)
                        eos = spec_id(g.v);
                    else if (g.field == 44 && g.wire == 2 && g.len < sizeof t->unk_surface) {
                        memcpy(t->unk_surface, g.data, g.len);
                        t->unk_surface[g.len] = '\0';
                    }
                } else {
                    if (g.field == 2 && g.wire == 2 && g.len > 0) {
                        st = sgl_err(err, SGL_E_UNSUPPORTED, "%s: normalizer_spec."
                                     "precompiled_charsmap: normalization rules are not supported "
                                     "(only the identity normalizer)", path);
                        goto out;
                    } else if (g.field == 3 && g.wire == 0)
                        t->add_dummy_prefix = g.v != 0;
                    else if (g.field == 4 && g.wire == 0)
                        t->remove_extra_ws = g.v != 0;
                    else if (g.field == 5 && g.wire == 0)
                        t->escape_ws = g.v != 0;
                }
            }
            if (rc2 < 0) {
                st = sgl_err(err, SGL_E_FORMAT, "%s: %s: malformed protobuf", path,
                             trainer ? "trainer_spec" : "normalizer_spec");
                goto out;
            }
        }
    }
    if (rc < 0) {
        st = sgl_err(err, SGL_E_FORMAT, "%s: malformed protobuf after piece %d (truncated or not "
                     "a SentencePiece model)", path, n_pieces);
        goto out;
    }
    if (n_pieces == 0) {
        st = sgl_err(err, SGL_E_FORMAT, "%s: pieces: none (not a SentencePiece model)", path);
        goto out;
    }
    if (!have_trainer || model_type != 2) {
        st = sgl_err(err, SGL_E_UNSUPPORTED, "%s: trainer_spec.model_type %llu is not supported "
                     "(only 2 = BPE)", path, (unsigned long long)model_type);
        goto out;
    }
    if (ws_suffix) {
        st = sgl_err(err, SGL_E_UNSUPPORTED, "%s: trainer_spec.treat_whitespace_as_suffix is not "
                     "supported", path);
        goto out;
    }
    int n_bytes = 0;
    for (int i = 0; i < 256; i++)
        n_bytes += t->byte_tok[i] >= 0;
    t->byte_fallback = byte_fallback || n_bytes == 256;
    if (t->byte_fallback && n_bytes != 256) {
        st = sgl_err(err, SGL_E_FORMAT, "%s: trainer_spec.byte_fallback is set but only %d of 256 "
                     "BYTE pieces exist", path, n_bytes);
        goto out;
    }
    t->unk_id = unk >= 0 && unk < n_pieces ? unk : -1;
    t->bos = bos >= 0 && bos < n_pieces ? bos : -1;
    t->eos = eos >= 0 && eos < n_pieces ? eos : -1;
    if (t->bos >= 0)
        t->prefix[t->n_prefix++] = t->bos;
    if ((st = strmap_build(t, &t->vocab, false)) != SGL_OK)
        goto nomem;
    for (int32_t id = 0; id < n_pieces; id++) {
        if (strmap_get(t, &t->vocab, tok_text(t, id), t->tok[id].len, false) != id) {
            st = sgl_err(err, SGL_E_FORMAT, "%s: pieces[%d].piece '%.40s' is defined twice", path,
                         id, tok_text(t, id));
            goto out;
        }
        if (t->tok[id].kind == TOKK_USER)
            t->n_user_syms++;
    }
    t->user_syms = malloc(((size_t)t->n_user_syms + 1) * sizeof *t->user_syms);
    if (!t->user_syms)
        goto nomem;
    t->n_user_syms = 0;
    for (int32_t id = 0; id < n_pieces; id++)
        if (t->tok[id].kind == TOKK_USER)
            t->user_syms[t->n_user_syms++] = id;
    qsort_r(t->user_syms, (size_t)t->n_user_syms, sizeof *t->user_syms, cmp_user_len, t);
    if ((st = build_merges(t)) != SGL_OK)
        goto nomem;
    /* Text may be cut before a '▁' that follows another character when no
     * piece holds such a pair (true of whitespace-split training, as Llama's). */
    t->ws_split = true;
    for (int32_t id = 0; id < n_pieces && t->ws_split; id++) {
        const TokEntry *e = &t->tok[id];
        const char *s = tok_text(t, id);
        if (e->kind != TOKK_NORMAL && e->kind != TOKK_USER && e->kind != TOKK_UNUSED)
            continue;
        for (uint32_t k = 1; k + 3 <= e->len; k++)
            if (memcmp(s + k, "\xE2\x96\x81", 3) == 0 &&
                !(k >= 3 && memcmp(s + k - 3, "\xE2\x96\x81", 3) == 0))
                t->ws_split = false;
    }
    goto out;
nomem:
    st = sgl_err(err, SGL_E_NOMEM, "%s: out of memory", path);
out:
    free(data);
    return st;
}

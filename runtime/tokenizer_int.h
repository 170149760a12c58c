/* tokenizer_int.h -- internals shared by the runtime/tokenizer*.c files.
 *
 * One SglTokenizer describes either a Hugging Face tokenizer.json pipeline
 * (added tokens -> normalizers -> pre-tokenizers -> BPE by merge rank ->
 * post-processor; decoders on the way back) or a SentencePiece .model
 * (normalizer spec -> BPE by piece score with byte fallback). The readers
 * (tokenizer_json.c, tokenizer_spm.c) fill it, tokenizer.c finishes it
 * (token bytes, lookups) and then it is immutable: encode/decode only read it,
 * and every scratch buffer lives in the caller's call frame.
 * All token strings live in one blob; entries point into it by offset.
 */
#ifndef SGL_TOKENIZER_INT_H
#define SGL_TOKENIZER_INT_H

#ifndef PCRE2_CODE_UNIT_WIDTH
#define PCRE2_CODE_UNIT_WIDTH 8
#endif
#include <pcre2.h>

#include "runtime/tokenizer.h"

#define TOK_MAX_VOCAB (1 << 22)      /* ids above this are rejected as corrupt */
#define TOK_MAX_STEPS 32             /* normalizer / pre-tokenizer / decoder steps */

typedef enum { TOKK_NONE, TOKK_NORMAL, TOKK_BYTE, TOKK_CONTROL, TOKK_UNKNOWN,
               TOKK_USER, TOKK_UNUSED } TokKind;

typedef struct {
    uint32_t off, len;          /* token text (vocab form: "Ġa", "▁a", "<0x41>") in blob */
    uint32_t raw_off, raw_len;  /* sgl_tokenizer_token_bytes, in blob */
    float score;                /* SentencePiece score */
    uint8_t kind;               /* TokKind */
    uint8_t byte;               /* TOKK_BYTE: the byte */
    uint8_t special;            /* skipped by decode(skip_special) */
    uint8_t added;              /* an added token (matched in raw text) */
} TokEntry;

/* An added token of tokenizer.json, matched before the model runs. */
typedef struct {
    int32_t id;
    uint32_t off, len;          /* content to match (normalized form if normalized) */
    bool single_word, lstrip, rstrip, normalized, special;
} TokAdded;

/* Leftmost-longest matcher over a set of added tokens (by first byte). */
typedef struct {
    int32_t *idx;               /* indices into t->added, grouped by first byte, longest first */
    int32_t start[257];         /* group b is idx[start[b]..start[b+1]) */
    int32_t n;
} TokMatcher;

typedef enum { NORM_PREPEND, NORM_REPLACE, NORM_REPLACE_RE, NORM_STRIP, NORM_UNICODE } NormKind;
typedef struct {
    NormKind kind;
    char *a; size_t a_len;      /* prepend text / replace pattern */
    char *b; size_t b_len;      /* replace content */
    pcre2_code *re;
    bool left, right;           /* NORM_STRIP */
    const void *unorm;          /* NORM_UNICODE: an ICU UNormalizer2 (NFC, NFD, NFKC, NFKD) */
} NormStep;

typedef enum { SPLIT_REMOVED, SPLIT_ISOLATED, SPLIT_MERGED_PREV, SPLIT_MERGED_NEXT,
               SPLIT_CONTIGUOUS } SplitBehavior;
typedef enum { PRE_SPLIT, PRE_BYTELEVEL, PRE_METASPACE } PreKind;
typedef enum { PREPEND_ALWAYS, PREPEND_FIRST, PREPEND_NEVER } PrependScheme;
typedef struct {
    PreKind kind;
    pcre2_code *re;             /* PRE_SPLIT; PRE_BYTELEVEL with use_regex */
    SplitBehavior behavior;
    bool invert;
    bool add_prefix_space;      /* PRE_BYTELEVEL */
    char repl[8]; size_t repl_len;   /* PRE_METASPACE replacement (UTF-8) */
    PrependScheme prepend;
    bool split;
} PreStep;

typedef enum { DEC_REPLACE, DEC_BYTEFALLBACK, DEC_FUSE, DEC_STRIP, DEC_BYTELEVEL,
               DEC_METASPACE } DecKind;
typedef struct {
    DecKind kind;
    char *a; size_t a_len;      /* replace pattern / strip char / metaspace replacement */
    char *b; size_t b_len;      /* replace content */
    int32_t start, stop;        /* DEC_STRIP */
    bool prepend;               /* DEC_METASPACE: prepend_scheme != never */
} DecStep;

/* (left id, right id) -> merged id with a priority (lower merges first).
 * One 16-byte slot per pair so that a lookup touches one cache line. */
typedef struct {
    uint64_t key;               /* UINT64_MAX = empty */
    float prio;
    int32_t merged;
} PairSlot;
typedef struct {
    PairSlot *slots;
    uint32_t mask, n;
} PairMap;

/* token string -> id, open addressing over ids (-1 = empty). */
typedef struct {
    int32_t *slots;
    uint32_t mask;
} StrMap;

struct SglTokenizer {
    bool is_spm;                /* SentencePiece .model semantics */
    char *path;                 /* the file it was read from (messages) */
    char *blob; size_t blob_len, blob_cap;
    TokEntry *tok; int32_t n_tok, tok_cap;
    StrMap vocab;               /* token text -> id (model vocab and added tokens) */
    StrMap raw_vocab;           /* token bytes -> id (built only for ignore_merges) */
    PairMap merges;

    /* model */
    int32_t unk_id;             /* -1 if none */
    bool byte_fallback, fuse_unk, ignore_merges;
    bool byte_level;            /* pre-tokenizer ends with ByteLevel: symbols are bytes */
    bool ws_split;              /* no merge joins "x" + "▁...": text may be cut before '▁' */
    int32_t byte_tok[256];      /* <0xXX> ids (-1 if missing) */
    int32_t byte_sym[256];      /* byte-level: id of the char that stands for byte b */
    int32_t ascii_sym[128];     /* id of the one-char token for ASCII c, or -1 */

    /* tokenizer.json pipeline */
    TokAdded *added; int32_t n_added;
    TokMatcher match_raw, match_norm;
    NormStep norm[TOK_MAX_STEPS]; int n_norm;
    PreStep pre[TOK_MAX_STEPS]; int n_pre;
    DecStep dec[TOK_MAX_STEPS]; int n_dec;
    bool has_decoder;
    int dec_fuse;               /* index of the first Fuse/ByteLevel step (n_dec: none) */
    int dec_bf;                 /* index of the ByteFallback step, -1 if none */
    int16_t bl_byte[324];       /* ByteLevel: code point -> byte (-1: not in the alphabet) */
    pcre2_code *re_word_start, *re_word_end;   /* single_word checks */

    /* SentencePiece */
    bool add_dummy_prefix, remove_extra_ws, escape_ws;
    int32_t *user_syms; int32_t n_user_syms;   /* USER_DEFINED ids, longest first */
    char unk_surface[32];

    /* special tokens and post-processing */
    int32_t bos, eos;
    int32_t prefix[8]; int n_prefix;           /* ids added before the text */
    int32_t suffix[8]; int n_suffix;           /* ids added after it */
};

/* A growable byte buffer (always NUL-terminated once used). */
typedef struct { char *buf; size_t len, cap; } TokBuf;

/* A growable id vector (encode output). */
typedef struct { int32_t *v; size_t n, cap; } IdVec;
SglStatus idvec_push(IdVec *v, int32_t id);

/* blob and lookup helpers (tokenizer.c) */
SglStatus tok_blob_add(SglTokenizer *t, const char *s, size_t len, uint32_t *off);
static inline const char *tok_text(const SglTokenizer *t, int32_t id) { return t->blob + t->tok[id].off; }
SglStatus tok_reserve(SglTokenizer *t, int32_t n_tok);   /* grows t->tok to n_tok entries */
int32_t strmap_get(const SglTokenizer *t, const StrMap *m, const char *s, size_t len, bool raw);
SglStatus strmap_build(SglTokenizer *t, StrMap *m, bool raw);
SglStatus pairmap_init(PairMap *m, size_t n);
void pairmap_put(PairMap *m, int32_t a, int32_t b, float prio, int32_t merged);
bool pairmap_get(const PairMap *m, int32_t a, int32_t b, float *prio, int32_t *merged);
pcre2_code *tok_regex(const char *pat, size_t len, bool literal, SglErr *err, const char *file,
                      const char *field);

/* readers */
SglStatus tok_read_json(SglTokenizer *t, const char *path, SglErr *err);
SglStatus tok_read_spm(SglTokenizer *t, const char *path, SglErr *err);

/* BPE core (tokenizer_bpe.c). Scratch grows as needed; freed by bpe_scratch_free. */
typedef struct { int32_t id, prev, next; uint32_t off, len; } BpeSym;
typedef struct { float prio; int32_t pos, merged; } BpeHeapEnt;
/* Per-call cache of word -> ids (words up to BPE_CACHE_WORD bytes). */
#define BPE_CACHE_WORD 128
#define BPE_CACHE_MAX (1u << 18)
typedef struct {
    uint32_t *key_off, *key_len, *ids_off, *ids_n;   /* per slot; key_len 0 = empty */
    uint32_t mask, n;
    TokBuf keys;
    IdVec ids;
} BpeCache;
typedef struct {
    BpeSym *sym; size_t sym_cap; BpeHeapEnt *heap; size_t heap_cap;
    BpeCache cache;
} BpeScratch;
void bpe_scratch_free(BpeScratch *s);
/* HF BPE over one pre-token word (bytes of the word; byte-level mapping applied here). */
SglStatus bpe_encode_word(const SglTokenizer *t, const char *w, size_t len, BpeScratch *s, IdVec *out);
/* SentencePiece BPE over a whole normalized string. */
SglStatus bpe_encode_spm(const SglTokenizer *t, const char *s, size_t len, BpeScratch *sc, IdVec *out);

/* normalizers and pre-tokenizers (tokenizer_pretok.c) */
typedef struct { uint32_t *off, *len; size_t n, cap; } TokSpans;
SglStatus tokbuf_put(TokBuf *b, const char *s, size_t len);
SglStatus tok_normalize(const SglTokenizer *t, const char *s, size_t len, TokBuf *out,
                        pcre2_match_data *md);
/* Splits s into pre-token words (appended to *words as spans of *wbuf). */
typedef struct {
    TokBuf a, b;                /* text buffers (ping-pong) */
    TokSpans sa, sb;            /* word spans (ping-pong) */
    uint32_t *ms, *me; uint8_t *mf; size_t m_cap;   /* one word's regex splits */
} PreScratch;
void pre_scratch_free(PreScratch *p);
SglStatus tok_pretokenize(const SglTokenizer *t, const char *s, size_t len, bool first,
                          PreScratch *ps, pcre2_match_data *md, TokBuf **wbuf, TokSpans **words);
SglStatus tok_spm_normalize(const SglTokenizer *t, const char *s, size_t len, TokBuf *out);
/* Replaces invalid UTF-8 with U+FFFD (maximal subparts, as Rust's from_utf8_lossy). */
SglStatus tok_utf8_sanitize(const char *s, size_t len, TokBuf *out, bool *changed);
/* Classifies the UTF-8 sequence at s[0..n), n >= 1: U8_OK (returns its length),
 * U8_INCOMPLETE (a valid prefix cut by the end; returns n), U8_BAD (returns the
 * length of the maximal invalid subpart that one U+FFFD replaces). */
enum { U8_OK, U8_INCOMPLETE, U8_BAD };
size_t tok_utf8_scan(const unsigned char *s, size_t n, int *kind);

/* decode (tokenizer_decode.c) */
SglStatus tok_check_decoder(SglTokenizer *t, SglErr *err);
SglStatus tok_compute_token_bytes(SglTokenizer *t);

#endif

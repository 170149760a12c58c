/* tokmask.h -- token-level constraint masks over a byte DFA, and jump-forward.
 *
 * A TokVocab holds every token's byte string (sgl_tokenizer_token_bytes) in a
 * trie. A TokFsm pairs a DFA with a vocab: the allowed-token bitmask of a DFA
 * state ((vocab+31)/32 words, bit i = token i; EOS only in accepting states;
 * special tokens never) is computed on first use by walking the trie through
 * the DFA (shared prefixes walked once, dead subtrees skipped) and cached;
 * filling is lock-free and thread-safe. A TokRegistry shares one TokFsm among
 * every request with the same constraint (key: DFA content hash + vocab hash).
 *
 * Engine wiring (per request, on the engine thread):
 *   TokFsm *f; tokreg_lock(reg, dfa, tok, &f, &err);  TokCursor c; tokmask_init(&c, f);
 *   each step:  tokmask_fill(&c, allowed)        -> the mask for the current state
 *               tokmask_advance(&c, token)       -> after sampling (SGL_E_INVAL: not allowed)
 *   jump-forward: tokmask_forced(&c, &b, &n)     -> bytes every accepted output must
 *               continue with here; append them, then tokmask_advance_bytes(&c, b, n)
 *   release:    tokreg_unlock(reg, f)
 * The cursor is plain data owned by the request; the TokFsm by the registry.
 * Or in one call: tokmask_constraint_new fills an SglConstraint (request.h)
 * whose hooks do all of the above per sample. Precomputed tables (`sglc
 * build --model`) serialize every reachable state's mask and forced string;
 * tokreg_load_tables fills a registry from them, so no mask is computed
 * (and the registry's vocab never builds its trie). Only the tokenizer's EOS is
 * ever set in a mask; an engine that also stops on other ids (a chat
 * template's end token) sets those bits itself when tokmask_is_accepting.
 */
#ifndef SGL_TOKMASK_H
#define SGL_TOKMASK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/dfa.h"
#include "runtime/request.h"
#include "runtime/status.h"
#include "runtime/tokenizer.h"

#define TOKMASK_MAX_TOKEN_BYTES 1024   /* longer tokens are never allowed */

typedef struct TokVocab TokVocab;
typedef struct TokFsm TokFsm;
typedef struct TokRegistry TokRegistry;

/* Vocab of a tokenizer (copied: t may be freed afterwards). Special tokens
 * and empty tokens are excluded; EOS is the tokenizer's. *out owned by caller. */
SglStatus tokvocab_new(const SglTokenizer *t, TokVocab **out, SglErr *err);
/* Vocab from raw byte strings (benchmarks, synthetic vocabularies): token i
 * is toks[i][0..lens[i]); lens[i] == 0 excludes it; eos may be -1. */
SglStatus tokvocab_new_from_bytes(const char *const *toks, const size_t *lens, int32_t n,
                                  int32_t eos, TokVocab **out, SglErr *err);
void tokvocab_free(TokVocab *v);
int32_t tokvocab_size(const TokVocab *v);
int32_t tokvocab_eos(const TokVocab *v);
uint64_t tokvocab_hash(const TokVocab *v);
/* tokvocab_hash of the vocab t would give, without building it (a start-up
 * check). SGL_E_NOMEM only. */
SglStatus tokvocab_hash_of(const SglTokenizer *t, uint64_t *out);
/* Token bytes as the vocab sees them; *excluded set for never-allowed ids. */
const char *tokvocab_bytes(const TokVocab *v, int32_t id, size_t *len, bool *excluded);

/* DFA (copied) x vocab (borrowed: must outlive the TokFsm). Precomputes the
 * forced strings; masks are computed lazily. SGL_E_UNSUPPORTED when the mask
 * cache would exceed its size limit (message gives it). */
SglStatus tokfsm_new(const SglDfa *dfa, const TokVocab *vocab, TokFsm **out, SglErr *err);
void tokfsm_free(TokFsm *f);
const SglDfa *tokfsm_dfa(const TokFsm *f);
int32_t tokfsm_n_words(const TokFsm *f);       /* (vocab + 31) / 32 */
bool tokfsm_cached(const TokFsm *f, int32_t state);
/* Test counters: masks served from the cache / computed by a trie walk. */
void tokfsm_counters(const TokFsm *f, uint64_t *hits, uint64_t *walks);

/* Registry: owns vocabs and TokFsms. lock returns a shared TokFsm for (dfa,
 * tokenizer), building it on first use; every lock needs one unlock. Unused
 * entries stay cached until tokreg_trim or tokreg_free. Thread-safe. */
TokRegistry *tokreg_new(void);
void tokreg_free(TokRegistry *r);              /* every TokFsm must be unlocked */
SglStatus tokreg_lock(TokRegistry *r, const SglDfa *dfa, const SglTokenizer *t, TokFsm **out,
                      SglErr *err);
void tokreg_unlock(TokRegistry *r, TokFsm *f);
void tokreg_trim(TokRegistry *r);              /* frees entries nobody holds */
int32_t tokreg_n_fsms(const TokRegistry *r);

/* Precomputed tables (`sglc build --model`; format in tokmask.c): every
 * state reachable from dfa's start, its mask and forced string, for one
 * vocab, with the DFA and vocab hashes, sizes, EOS and a checksum.
 * serialize: on SGL_OK *out (malloc'd) passes to the caller; SGL_E_UNSUPPORTED
 * when the tables would exceed cap_bytes (nothing is returned). */
typedef struct {
    int32_t n_states;      /* entries: reachable states */
    int32_t n_masks;       /* distinct masks stored */
    size_t n_bytes;
} TokTablesInfo;
SglStatus tokmask_tables_serialize(const SglDfa *dfa, const TokVocab *v, size_t cap_bytes,
                                   uint8_t **out, size_t *len, TokTablesInfo *info, SglErr *err);
/* A TokFsm whose masks are already cached from tables (bytes borrowed, not
 * kept); v needs no trie. The entries must be exactly dfa's reachable states
 * and their forced strings the DFA's own. SGL_E_INVAL: made for another
 * vocab or DFA (message names both hashes/sizes); SGL_E_FORMAT: damaged or
 * malformed (checksum, every id, offset and length checked; nothing read out
 * of bounds). *out NULL on failure. */
SglStatus tokfsm_new_from_tables(const SglDfa *dfa, const TokVocab *v, const void *bytes,
                                 size_t len, TokFsm **out, SglErr *err);
/* Registers such a TokFsm for (dfa, t) unlocked (kept until trim/free), so
 * later tokreg_lock calls compute no masks. Statuses as above; on failure
 * the registry is unchanged (apart from a cached vocab). */
SglStatus tokreg_load_tables(TokRegistry *r, const SglDfa *dfa, const SglTokenizer *t,
                             const void *bytes, size_t len, SglErr *err);
/* Sums of tokfsm_counters over the registry's TokFsms. */
void tokreg_counters(const TokRegistry *r, uint64_t *hits, uint64_t *walks);

/* Per-request cursor (caller-provided storage, no deinit needed). */
typedef struct {
    const TokFsm *fsm;     /* borrowed */
    int32_t state;         /* current DFA state */
    bool done;             /* EOS was accepted */
} TokCursor;

void tokmask_init(TokCursor *c, const TokFsm *fsm);
/* Writes the allowed mask of the current state into mask (n_words words; a
 * caller with a larger model vocab zeroes the rest). Never allocates. After
 * EOS the mask is all zero. */
void tokmask_fill(const TokCursor *c, uint32_t *mask);
/* Moves past token. SGL_OK; SGL_E_INVAL when the token is not allowed here
 * (its bytes leave the language, a special token, or EOS outside an accepting
 * state): the cursor is unchanged. EOS in an accepting state sets done. */
SglStatus tokmask_advance(TokCursor *c, int32_t token);
/* Moves past raw bytes (jump-forward text). SGL_E_INVAL leaves c unchanged. */
SglStatus tokmask_advance_bytes(TokCursor *c, const void *bytes, size_t len);
bool tokmask_is_accepting(const TokCursor *c);
/* Jump-forward: the bytes forced from the current state along singular
 * transitions (non-accepting states with exactly one live byte). Returns
 * false (and *len 0) when nothing is forced. *bytes is borrowed from the
 * TokFsm. */
bool tokmask_forced(const TokCursor *c, const char **bytes, size_t *len);

/* A ready-made SglConstraint (runtime/request.h) with one cursor per sample
 * (n_samples = the request's n) over the registry's TokFsm for (dfa, t).
 * Hooks: mask fills the current state's mask (clipped to the engine's
 * vocab); accept advances and returns true once EOS was taken, the text is
 * complete (accepting with no possible continuation), or the token was not
 * allowed (the sample is then stopped rather than left dead); release unlocks
 * the TokFsm and frees ctx; forced/accept_bytes serve the engine's
 * jump-forward (tokmask_forced / tokmask_advance_bytes). On SGL_OK ownership of the context passes to
 * *out (freed by its release hook); on failure nothing is held. */
SglStatus tokmask_constraint_new(TokRegistry *reg, const SglDfa *dfa, const SglTokenizer *t,
                                 int32_t n_samples, SglConstraint *out, SglErr *err);
/* The cursor of sample index inside such a constraint's ctx (jump-forward). */
TokCursor *tokmask_constraint_cursor(void *ctx, int32_t index);

#endif

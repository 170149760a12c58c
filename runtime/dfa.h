/* dfa.h -- a byte-level deterministic finite automaton as plain data.
 *
 * The constraint compiler (ir/fsm) produces an SglDfa; the runtime (token
 * masks, jump-forward) only reads it. Bytes map to byte classes
 * (byte_class[b] < n_classes); trans[s * n_classes + c] is the next state or
 * -1 (dead: no continuation can be accepted). Matching is whole-input: a byte
 * string is accepted when walking it from start ends in an accepting state.
 * Invariants of a DFA from ir/fsm (checked by sgl_dfa_check): every state is
 * reachable from start and, except a lone non-accepting start of an empty
 * language, can reach an accepting state, so "not dead" means "a prefix of
 * some accepted string". An SglDfa is immutable once built and may be shared
 * read-only between threads.
 */
#ifndef SGL_DFA_H
#define SGL_DFA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/status.h"

#define SGL_DFA_MAX_STATES (1 << 24)

typedef struct {
    int32_t n_states;
    int32_t n_classes;           /* 1..256 */
    int32_t start;
    uint8_t byte_class[256];
    int32_t *trans;              /* (n_states, n_classes), -1 = dead; owned */
    uint8_t *accept;             /* (n_states) 0/1; owned */
    uint64_t hash;               /* content hash, set by sgl_dfa_finish */
} SglDfa;

/* A DFA with every transition dead and no accepting state; the caller fills
 * it in and then calls sgl_dfa_finish. NULL on allocation failure or sizes
 * out of range (n_states in [1, SGL_DFA_MAX_STATES], n_classes in [1, 256]). */
SglDfa *sgl_dfa_new(int32_t n_states, int32_t n_classes);
void sgl_dfa_free(SglDfa *d);
/* A deep copy (NULL on allocation failure). */
SglDfa *sgl_dfa_clone(const SglDfa *d);
/* Computes the content hash (call after the last edit). */
void sgl_dfa_finish(SglDfa *d);

static inline int32_t sgl_dfa_step(const SglDfa *d, int32_t s, uint8_t byte)
{
    return d->trans[(size_t)s * (size_t)d->n_classes + d->byte_class[byte]];
}
/* The state after bytes[0..len) from state s, or -1 once dead. */
int32_t sgl_dfa_walk(const SglDfa *d, int32_t s, const void *bytes, size_t len);
bool sgl_dfa_accepts(const SglDfa *d, const void *bytes, size_t len);
/* True when the language is empty (start is not accepting and has no live
 * transition). */
bool sgl_dfa_is_empty(const SglDfa *d);
/* The bytes forced from state s: while the state is not accepting and
 * exactly one byte keeps it live, that byte. Writes at most cap bytes into
 * buf and returns the full length (stops after n_states bytes, which only a
 * DFA breaking the invariant above could reach). For printers (--emit=fsm);
 * the decoding loop uses the precomputed strings of tokmask.h. */
size_t sgl_dfa_forced(const SglDfa *d, int32_t s, char *buf, size_t cap);
/* Same states, classes, transitions and accepting set (same numbering). */
bool sgl_dfa_equal(const SglDfa *a, const SglDfa *b);
/* Structure in range and the reachability invariant above; the first
 * violation goes into why. */
bool sgl_dfa_check(const SglDfa *d, char *why, size_t why_len);

/* Serialization to a self-contained little-endian byte buffer (for embedding
 * in ahead-of-time program binaries). On SGL_OK *buf (malloc'd) is owned by
 * the caller. Deserialize validates everything (sizes, ranges, hash) and
 * never trusts the buffer: SGL_E_FORMAT with err saying what is wrong; on
 * success *out is owned by the caller. */
SglStatus sgl_dfa_serialize(const SglDfa *d, uint8_t **buf, size_t *len);
SglStatus sgl_dfa_deserialize(const uint8_t *buf, size_t len, SglDfa **out, SglErr *err);

#endif

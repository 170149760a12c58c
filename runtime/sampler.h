/* sampler.h -- sampling parameters, per-sequence sampler state, stop strings.
 *
 * sgl_sample turns one row of next-token logits into a token: it applies the
 * constraint mask, penalties, temperature, top-k, top-p and min-p, then draws
 * from the sequence's own RNG (reproducible for a given seed). Log-probs it
 * reports are log_softmax of the raw logits (before penalties, temperature and
 * masks), as SGLang and HF report them. No allocation after sgl_sampler_new.
 * Order: penalties (repetition, then frequency/presence) -> banned + mask ->
 * temperature -> top-k -> top-p (on the renormalized top-k set) -> min-p.
 * Ties rank the lower token id first everywhere (argmax, top-k, top-p cut).
 */
#ifndef SGL_SAMPLER_H
#define SGL_SAMPLER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/status.h"

#define SGL_MAX_STOP 16
#define SGL_MAX_TOP_LOGPROBS 32
#define SGL_MAX_STOP_LEN 256     /* bytes per stop string */
#define SGL_MAX_N 128            /* samples per request (OpenAI's limit) */

typedef struct {
    int32_t max_new_tokens;      /* default 128; 0 = prefill only */
    int32_t min_new_tokens;      /* EOS/stop tokens masked until reached */
    float temperature;           /* 0 = greedy (argmax); default 1.0 */
    int32_t top_k;               /* -1 or 0: off (>= vocab: off); default -1 */
    float top_p;                 /* (0, 1]; 1 = off */
    float min_p;                 /* [0, 1]; 0 = off */
    float frequency_penalty;     /* [-2, 2], OpenAI semantics */
    float presence_penalty;      /* [-2, 2] */
    float repetition_penalty;    /* (0, 2]; 1 = off (CTRL/HF semantics, over prompt + output) */
    uint64_t seed;
    bool has_seed;               /* false: seeded from the engine's RNG */
    int32_t n;                   /* samples sharing the prompt, [1, SGL_MAX_N] */
    bool ignore_eos;
    const char *stop[SGL_MAX_STOP];  /* borrowed; the engine copies them; non-empty UTF-8 */
    int32_t n_stop;
    const int32_t *stop_token_ids;   /* borrowed; the engine copies them */
    int32_t n_stop_token_ids;
    bool return_logprob;         /* per output token logprobs */
    int32_t top_logprobs_num;    /* 0..SGL_MAX_TOP_LOGPROBS */
    int32_t logprob_start_len;   /* >= 0: also prompt logprobs from this position; -1 off */
} SglSamplingParams;

void sgl_sampling_params_default(SglSamplingParams *p);
/* SGL_E_INVAL with err naming the field ("top_p must be in (0, 1], got 1.5");
 * checks every field, stop strings and stop ids against vocab_size. */
SglStatus sgl_sampling_params_check(const SglSamplingParams *p, int32_t vocab_size, SglErr *err);

typedef struct { int32_t id; float logprob; } SglTopLogprob;

/* Per-sequence sampler state. Owns its scratch (sized for vocab at init):
 * 8 bytes/token unless greedy, 12 more when a penalty is on. */
typedef struct SglSampler SglSampler;

/* Copies what it needs from p (no pointer kept). seed is the RNG seed used as
 * is: the engine passes p->seed when p->has_seed (distinct per sample for
 * n > 1), else a value from its own RNG. NULL when p fails
 * sgl_sampling_params_check or on allocation failure. */
SglSampler *sgl_sampler_new(const SglSamplingParams *p, int32_t vocab_size, uint64_t seed);
void sgl_sampler_free(SglSampler *s);
/* Record prompt tokens (for repetition_penalty) and each accepted output token
 * (for all penalties); sgl_sample does not record by itself. Ids outside
 * [0, vocab) are ignored; no-ops when no penalty is on. */
void sgl_sampler_observe_prompt(SglSampler *s, const int32_t *ids, int32_t n);
void sgl_sampler_accept(SglSampler *s, int32_t token);

/* Samples from logits (vocab floats; may be modified in place). allowed: NULL
 * or a bitmask of (vocab+31)/32 words, bit i set = token i allowed. banned:
 * extra token ids masked out (EOS/stop ids before min_new_tokens), may be NULL.
 * On SGL_OK *token is set, *logprob is its raw log-prob, and top[0..n_top)
 * (n_top = params top_logprobs_num) the raw top log-probs, best first.
 * logprob and top may be NULL: that skips an exp pass over the vocab.
 * SGL_E_NOTFOUND when the mask leaves no token with a logit > -inf (NaN
 * logits count as -inf); *token is then unchanged, logits and top clobbered. */
SglStatus sgl_sample(SglSampler *s, float *logits, const uint32_t *allowed,
                     const int32_t *banned, int32_t n_banned,
                     int32_t *token, float *logprob, SglTopLogprob *top);

/* log_softmax of raw logits for token ids (prompt logprobs); ids outside
 * [0, vocab) give -inf. sgl_top_logprobs: the n (<= vocab) best, best first. */
void sgl_logprobs_of(const float *logits, int32_t vocab, const int32_t *ids, int32_t n_ids,
                     float *out);
void sgl_top_logprobs(const float *logits, int32_t vocab, int32_t n, SglTopLogprob *top);

/* Stop strings matched across token boundaries on the decoded output text.
 * Feed each newly decoded piece; the matcher says how much text is safe to
 * stream (text that could start a stop string is held back) and whether a
 * stop string completed (the output is then cut before it). The first stop
 * to complete wins (longest on a tie), whatever the chunking of the text.
 * One KMP automaton per stop: each push costs O(new bytes x n_stops). */
typedef struct {
    char *stops[SGL_MAX_STOP];   /* owned copies */
    int32_t n_stops;
    size_t max_len;
    char *buf;                   /* owned: all output text so far */
    size_t len, cap;
    size_t emitted;              /* bytes of buf already released to the caller */
    bool matched;
    int32_t matched_stop;        /* index in stops of the stop that matched; -1 before */
    int32_t lens[SGL_MAX_STOP];  /* strlen of each stop */
    int32_t *fail[SGL_MAX_STOP]; /* owned: KMP failure function of each stop */
    int32_t state[SGL_MAX_STOP]; /* bytes of stop i matched at the end of buf */
} SglStopMatcher;

/* SGL_E_INVAL for n outside [0, SGL_MAX_STOP], NULL/empty stops or one
 * longer than SGL_MAX_STOP_LEN; SGL_E_NOMEM. On failure m owns nothing. */
SglStatus sgl_stop_init(SglStopMatcher *m, const char *const *stops, int32_t n);
void sgl_stop_deinit(SglStopMatcher *m);
/* Appends text. On return *safe_len bytes starting at buf+emitted_before may be
 * streamed (emitted advances by *safe_len). If a stop string completed,
 * m->matched is true, buf is truncated before it, and the final *safe_len
 * covers everything up to the cut. After a match further text is ignored.
 * buf grows geometrically (amortized O(1)); SGL_E_NOMEM leaves m unchanged. */
SglStatus sgl_stop_push(SglStopMatcher *m, const char *text, size_t len, size_t *safe_len);
/* At the end of generation (no stop matched): releases the held-back tail and
 * returns its length (bytes from buf+emitted before the call); 0 after a match. */
size_t sgl_stop_finish(SglStopMatcher *m);

#endif

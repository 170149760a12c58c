/* sampler.h -- sampling parameters, per-sequence sampler state, stop strings.
 *
 * sgl_sample turns one row of next-token logits into a token: it applies the
 * constraint mask, penalties, temperature, top-k, top-p and min-p, then draws
 * from the sequence's own RNG (reproducible for a given seed). Log-probs it
 * reports are log_softmax of the raw logits (before penalties, temperature and
 * masks), as SGLang and HF report them. No allocation after sgl_sampler_init.
 */
#ifndef SGL_SAMPLER_H
#define SGL_SAMPLER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/status.h"

#define SGL_MAX_STOP 16
#define SGL_MAX_TOP_LOGPROBS 32

typedef struct {
    int32_t max_new_tokens;      /* default 128; 0 = prefill only */
    int32_t min_new_tokens;      /* EOS/stop tokens masked until reached */
    float temperature;           /* 0 = greedy (argmax); default 1.0 */
    int32_t top_k;               /* <= 0: off */
    float top_p;                 /* (0, 1]; 1 = off */
    float min_p;                 /* [0, 1]; 0 = off */
    float frequency_penalty;     /* [-2, 2], OpenAI semantics */
    float presence_penalty;      /* [-2, 2] */
    float repetition_penalty;    /* > 0; 1 = off (CTRL/HF semantics, over prompt + output) */
    uint64_t seed;
    bool has_seed;               /* false: seeded from the engine's RNG */
    int32_t n;                   /* samples sharing the prompt (>= 1) */
    bool ignore_eos;
    const char *stop[SGL_MAX_STOP];  /* borrowed; the engine copies them */
    int32_t n_stop;
    const int32_t *stop_token_ids;   /* borrowed; the engine copies them */
    int32_t n_stop_token_ids;
    bool return_logprob;         /* per output token logprobs */
    int32_t top_logprobs_num;    /* 0..SGL_MAX_TOP_LOGPROBS */
    int32_t logprob_start_len;   /* >= 0: also prompt logprobs from this position; -1 off */
} SglSamplingParams;

void sgl_sampling_params_default(SglSamplingParams *p);
/* SGL_E_INVAL with err naming the field ("top_p must be in (0, 1], got 1.5"). */
SglStatus sgl_sampling_params_check(const SglSamplingParams *p, int32_t vocab_size, SglErr *err);

typedef struct { int32_t id; float logprob; } SglTopLogprob;

/* Per-sequence sampler state. Owns its scratch (sized for vocab at init). */
typedef struct SglSampler SglSampler;

SglSampler *sgl_sampler_new(const SglSamplingParams *p, int32_t vocab_size, uint64_t seed);
void sgl_sampler_free(SglSampler *s);
/* Record prompt tokens (for repetition_penalty) and each accepted output token
 * (for all penalties); sgl_sample does not record by itself. */
void sgl_sampler_observe_prompt(SglSampler *s, const int32_t *ids, int32_t n);
void sgl_sampler_accept(SglSampler *s, int32_t token);

/* Samples from logits (vocab floats; may be modified in place). allowed: NULL
 * or a bitmask of (vocab+31)/32 words, bit i set = token i allowed. banned:
 * extra token ids masked out (EOS/stop ids before min_new_tokens), may be NULL.
 * On SGL_OK *token is set, *logprob is its raw log-prob, and top[0..n_top)
 * (n_top = params top_logprobs_num) the raw top log-probs, best first.
 * SGL_E_NOTFOUND when the mask leaves no token. */
SglStatus sgl_sample(SglSampler *s, float *logits, const uint32_t *allowed,
                     const int32_t *banned, int32_t n_banned,
                     int32_t *token, float *logprob, SglTopLogprob *top);

/* log_softmax of raw logits for token ids (prompt logprobs) and the top n. */
void sgl_logprobs_of(const float *logits, int32_t vocab, const int32_t *ids, int32_t n_ids,
                     float *out);

/* Stop strings matched across token boundaries on the decoded output text.
 * Feed each newly decoded piece; the matcher says how much text is safe to
 * stream (text that could start a stop string is held back) and whether a
 * stop string completed (the output is then cut before it). */
typedef struct {
    char *stops[SGL_MAX_STOP];   /* owned copies */
    int32_t n_stops;
    size_t max_len;
    char *buf;                   /* owned: all output text so far */
    size_t len, cap;
    size_t emitted;              /* bytes of buf already released to the caller */
    bool matched;
} SglStopMatcher;

SglStatus sgl_stop_init(SglStopMatcher *m, const char *const *stops, int32_t n);
void sgl_stop_deinit(SglStopMatcher *m);
/* Appends text. On return *safe_len bytes starting at buf+emitted_before may be
 * streamed (emitted advances by *safe_len). If a stop string completed,
 * m->matched is true, buf is truncated before it, and the final *safe_len
 * covers everything up to the cut. */
SglStatus sgl_stop_push(SglStopMatcher *m, const char *text, size_t len, size_t *safe_len);
/* At the end of generation (no stop matched): releases the held-back tail. */
size_t sgl_stop_finish(SglStopMatcher *m);

#endif

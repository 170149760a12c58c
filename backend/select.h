/* select.h -- `select`: score choices by their log-probability as continuations.
 *
 * The prompt is prefilled once (a prefill-only request, so it lands in the
 * radix cache); then one prefill-only request per choice, all submitted
 * together, asks for prompt logprobs (logprob_start_len) of prompt + choice.
 * Token healing: prompt and prompt+choice are tokenized separately and the
 * choice is scored from their first differing token, so a prompt token that
 * merges with the start of the choice (" " + "Paris" -> "▁Paris") is scored
 * as part of the choice instead of forcing the prompt's tokenization.
 * Scoring follows SGLang (sglang/lang/choices.py):
 *   token_length_normalized   mean of the choice's token logprobs
 *   greedy_token              walk positions; keep the choices whose logprob
 *                             is highest there (shorter ones padded with their
 *                             mean) until one is left
 *   unconditional_likelihood_normalized
 *                             mean of (logprob - logprob of the same tokens
 *                             without the prompt; the first one counts 0)
 * Ties go to the first choice.
 */
#ifndef SGL_SELECT_H
#define SGL_SELECT_H

#include <stdint.h>

#include "ir/ir.h"
#include "runtime/engine.h"

struct SglRun;

/* One choice's scored tokens (lp and, for the unconditional method, uncond:
 * (n) each, owned by whoever filled them). */
typedef struct {
    const float *lp;
    const float *uncond;
    int32_t n;
} SelTokens;

/* Pure scoring: scores[i] (n_choices) by method; returns the winner's index.
 * A choice with no tokens scores -inf. greedy_token's score is the mean. */
int32_t select_score(IrSelectMethod m, const SelTokens *c, int32_t n_choices, double *scores);

/* First position where a and b differ (the healed boundary). */
int32_t select_heal_boundary(const int32_t *prompt, int32_t n_prompt, const int32_t *full,
                             int32_t n_full);

typedef struct {
    int32_t best;
    double score;                    /* the winner's score */
    int32_t prompt_tokens, completion_tokens, cached_tokens;  /* summed over requests */
    int32_t requests;
} SelectResult;

/* Runs a select against the engine. run may be NULL (no cancellation
 * tracking). false with msg when a request failed or was cancelled. */
bool select_run(SglEngine *e, struct SglRun *run, const char *prompt, size_t prompt_len,
                const char *const *choices, const size_t *lens, int32_t n_choices,
                IrSelectMethod m, SelectResult *out, char *msg, size_t cap);

#endif

/* remote.h -- the HTTP backend: a program's requests sent to a server that
 * speaks SGLang's native API (`sglc serve`, or SGLang itself).
 *
 * The interpreter's requests leave through three doors: generate (GEN),
 * score (SELECT) and prefill (PREFILL, fork prefix warming). In-process,
 * they are ops_generate / select_run / a prefill-only engine submit
 * (ops.h, select.h); with `sglc run --backend URL` (SglExec.remote set) they
 * are the functions below, which work on text as SGLang's frontend does:
 *   generate  POST /generate {text, sampling_params (+ regex for constraints)}
 *   score     POST /generate prefill-only (max_new_tokens 0) with prompt
 *             logprobs (logprob_start_len 0) for the prompt and for each
 *             prompt + choice; the choice is scored from the first token
 *             where the two tokenizations differ (select.h's token healing)
 *   prefill   POST /generate {text, max_new_tokens 0} (warms the radix cache)
 * Blocking libcurl calls, one handle per call (thread-safe); a run that
 * fails meanwhile cancels the transfer. Server errors come back as messages.
 * $SGLC_API_KEY, when set, is sent as "Authorization: Bearer KEY".
 */
#ifndef SGL_REMOTE_H
#define SGL_REMOTE_H

#include <stdbool.h>
#include <stddef.h>

#include "backend/select.h"
#include "runtime/request.h"

typedef struct SglRemote SglRemote;
struct SglRun;

/* Connects to url ("http://HOST:PORT", no trailing path) and reads
 * /get_model_info. false with msg (unreachable, not an SGLang server). On
 * success *out is owned by the caller (remote_free). */
bool remote_open(const char *url, SglRemote **out, char *msg, size_t cap);
void remote_free(SglRemote *rm);
int32_t remote_vocab(const SglRemote *rm);    /* vocab_size, or 0 when not reported */
const char *remote_model(const SglRemote *rm);

/* One GEN: text[0..len) with p (n samples; stop strings, seeds...) and an
 * optional regex constraint. On true, *res is filled as sgl_engine_generate
 * fills it (free with sgl_gen_result_free). */
bool remote_generate(SglRemote *rm, struct SglRun *run, const char *text, size_t len,
                     const SglSamplingParams *p, const char *regex, SglGenResult *res,
                     char *msg, size_t cap);
/* One SELECT (same contract as select_run). */
bool remote_select(SglRemote *rm, struct SglRun *run, const char *prompt, size_t prompt_len,
                   const char *const *choices, const size_t *lens, int32_t n_choices,
                   IrSelectMethod m, SelectResult *out, char *msg, size_t cap);
/* A prefill-only request; true when the server accepted it. */
bool remote_prefill(SglRemote *rm, const char *text, size_t len, int32_t *prompt_tokens);

#endif

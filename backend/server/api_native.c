/* api_native.c -- SGLang's native endpoints.
 *
 *   POST /generate          {text | input_ids, sampling_params, return_logprob,
 *                            logprob_start_len, top_logprobs_num, stream, rid}
 *                           -> {text, output_ids, meta_info{id, finish_reason,
 *                            prompt_tokens, completion_tokens, cached_tokens,
 *                            e2e_latency, [logprobs]}} (a list for batches or n > 1);
 *                           stream: SSE "data: {...}" with cumulative text, then
 *                           "data: [DONE]"
 *   GET  /health, /health_generate, /get_model_info
 *   POST /flush_cache, /abort_request {rid | abort_all}
 * Logprob entries are [logprob, token_id, null] as SGLang writes them
 * (null logprob where there is none, e.g. the first prompt position).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/server/srv_int.h"

static json_t *lp_entry(float lp, int32_t id)
{
    return json_pack("[o, i, n]", isfinite(lp) ? json_real(lp) : json_null(), (int)id);
}

static json_t *finish_json(const SrvSample *m)
{
    if (!m->done)
        return json_null();
    switch (m->finish) {
    case SGL_FINISH_STOP:
        if (m->matched_stop)
            return json_pack("{s:s, s:o}", "type", "stop", "matched", jstr(m->matched_stop, strlen(m->matched_stop)));
        return json_pack("{s:s, s:i}", "type", "stop", "matched", (int)m->matched_token);
    case SGL_FINISH_LENGTH:
        return json_pack("{s:s, s:i}", "type", "length", "length", (int)m->completion_tokens);
    default: {
        const char *msg = m->error ? m->error : "aborted";
        return json_pack("{s:s, s:o}", "type", "abort", "message", jstr(msg, strlen(msg)));
    }
    }
}

/* The response object of sample idx (r = request index). */
static json_t *sample_json(const SrvJob *j, int32_t r, int32_t idx, int32_t start)
{
    const SrvSample *m = &j->smp[idx];
    json_t *ids = json_array();
    for (int32_t k = 0; k < m->n; k++)
        json_array_append_new(ids, json_integer(m->ids[k]));
    char id[64];
    if (j->n_req * j->n > 1)
        snprintf(id, sizeof id, "%s-%d", j->rid, (int)idx);
    else
        snprintf(id, sizeof id, "%s", j->rid);
    int32_t pt = m->done ? m->prompt_tokens : j->n_prompt[r];
    json_t *meta = json_pack("{s:s, s:o, s:i, s:i, s:i, s:f}", "id", id, "finish_reason",
                             finish_json(m), "prompt_tokens", (int)pt, "completion_tokens",
                             (int)(m->done ? m->completion_tokens : m->n), "cached_tokens",
                             (int)m->cached_tokens, "e2e_latency", srv_now() - j->t0);
    if (j->p.return_logprob && meta) {
        json_t *out = json_array(), *otop = json_array();
        for (int32_t k = 0; k < m->n; k++) {
            json_array_append_new(out, lp_entry(m->lps[k], m->ids[k]));
            if (m->n_top > 0) {
                json_t *t = json_array();
                for (int32_t q = 0; q < m->n_top; q++) {
                    const SglTopLogprob *tp = &m->top[(size_t)k * (size_t)m->n_top + (size_t)q];
                    if (tp->id >= 0)
                        json_array_append_new(t, lp_entry(tp->logprob, tp->id));
                }
                json_array_append_new(otop, t);
            }
        }
        json_object_set_new(meta, "output_token_logprobs", out);
        if (m->n_top > 0)
            json_object_set_new(meta, "output_top_logprobs", otop);
        else
            json_decref(otop);
        if (start >= 0 && j->prompt_lps[r]) {
            json_t *in = json_array();
            for (int32_t k = start; k < j->n_prompt[r]; k++)
                json_array_append_new(in, lp_entry(j->prompt_lps[r][k], j->prompt[r][k]));
            json_object_set_new(meta, "input_token_logprobs", in);
        }
    }
    json_t *o = json_pack("{s:o, s:o, s:o}", "text", jstr(m->text, m->len), "output_ids", ids,
                          "meta_info", meta ? meta : json_object());
    if (o && j->n_req * j->n > 1)
        json_object_set_new(o, "index", json_integer(idx));
    return o;
}

typedef struct {
    SrvJob *j;
    int32_t start;
    bool finished;
} NativeStream;

static int native_produce(void *ctx, SseOut *o)
{
    NativeStream *g = ctx;
    if (g->finished)
        return 0;
    for (;;) {
        int idx = job_step(g->j, 50);
        if (idx == -2) {
            job_count(g->j);
            sse_done(o);
            g->finished = true;
            return 0;
        }
        if (idx == -1) {
            if (sse_gone(o)) {
                job_abort(g->j);
                return -1;
            }
            continue;
        }
        sse_json(o, sample_json(g->j, idx / g->j->n, idx, g->start));
        return 1;
    }
}

static void native_free(void *ctx)
{
    NativeStream *g = ctx;
    job_free(g->j);
    free(g);
}

void api_generate(SrvCall *c, json_t *req)
{
    static const char *known[] = {"text", "input_ids", "sampling_params", "return_logprob",
                                  "logprob_start_len", "top_logprobs_num", "stream", "rid",
                                  "return_text_in_logprobs", "log_metrics", NULL};
    Srv *s = c->s;
    SrvJob *j = NULL;
    SrvErr e = {{0}};
    const char *key;
    json_t *v;
    json_object_foreach(req, key, v) {
        bool ok = false;
        for (int i = 0; known[i] && !ok; i++)
            ok = strcmp(known[i], key) == 0;
        if (!ok) {
            call_error(c, 400, key, "/generate: unknown field '%.200s'", key);
            return;
        }
    }
    const json_t *text = json_object_get(req, "text"), *ids = json_object_get(req, "input_ids");
    if (json_is_null(text))
        text = NULL;
    if (json_is_null(ids))
        ids = NULL;
    if (!!text == !!ids) {
        call_error(c, 400, "text", "/generate needs exactly one of text and input_ids");
        return;
    }
    bool batch = text ? json_is_array(text) : json_is_array(json_array_get(ids, 0));
    size_t n_req = batch ? json_array_size(text ? text : ids) : 1;
    if (text && !batch && !json_is_string(text)) {
        call_error(c, 400, "text", "text must be a string or a list of strings");
        return;
    }
    if (n_req == 0 || n_req > 1024) {
        call_error(c, 400, text ? "text" : "input_ids", "a batch must have 1 to 1024 prompts, got %zu", n_req);
        return;
    }
    if (!(j = job_new(s, (int32_t)n_req))) {
        call_error(c, 500, NULL, "out of memory");
        return;
    }
    const json_t *rid = json_object_get(req, "rid");
    if (rid && !json_is_null(rid)) {
        if (!json_is_string(rid) || json_string_length(rid) == 0 || json_string_length(rid) >= sizeof j->rid) {
            perr(&e, "rid", "rid must be a non-empty string of at most %zu bytes", sizeof j->rid - 1);
            goto bad;
        }
        memcpy(j->rid, json_string_value(rid), json_string_length(rid) + 1);
    }
    for (size_t i = 0; i < n_req; i++) {
        if (text) {
            const json_t *t = batch ? json_array_get(text, i) : text;
            if (!json_is_string(t)) {
                perr(&e, "text", "text[%zu] must be a string", i);
                goto bad;
            }
            if (!prompt_text(j, (int32_t)i, json_string_value(t), json_string_length(t), true, &e))
                goto bad;
        } else if (!prompt_ids(j, (int32_t)i, batch ? json_array_get(ids, i) : ids, "input_ids", &e))
            goto bad;
    }
    if (!params_native(j, json_object_get(req, "sampling_params"), &e))
        goto bad;
    const json_t *rl = json_object_get(req, "return_logprob");
    if (rl && !json_is_null(rl) && !json_is_boolean(rl)) {
        perr(&e, "return_logprob", "return_logprob must be a boolean");
        goto bad;
    }
    j->p.return_logprob = json_is_true(rl);
    long long start = -1, top = 0;
    const json_t *ls = json_object_get(req, "logprob_start_len"), *tn = json_object_get(req, "top_logprobs_num");
    if (ls && !json_is_null(ls)) {
        if (!json_is_integer(ls) || json_integer_value(ls) < -1 || json_integer_value(ls) > s->context_len) {
            perr(&e, "logprob_start_len", "logprob_start_len must be an integer in [-1, %d]", s->context_len);
            goto bad;
        }
        start = json_integer_value(ls);
    }
    if (tn && !json_is_null(tn)) {
        if (!json_is_integer(tn) || json_integer_value(tn) < 0 || json_integer_value(tn) > SGL_MAX_TOP_LOGPROBS) {
            perr(&e, "top_logprobs_num", "top_logprobs_num must be an integer in [0, %d]", SGL_MAX_TOP_LOGPROBS);
            goto bad;
        }
        top = json_integer_value(tn);
    }
    if (j->p.return_logprob) {
        j->p.top_logprobs_num = (int32_t)top;
        /* SGLang's default start: the prompt's last position */
        if (start < 0)
            start = 0x7fffffff;
        int32_t st = (int32_t)start;
        for (size_t i = 0; i < n_req; i++)
            if (st >= j->n_prompt[i])
                st = j->n_prompt[i] - 1;
        j->p.logprob_start_len = st;
        start = st;
    } else
        start = -1;
    const json_t *stream = json_object_get(req, "stream");
    if (stream && !json_is_null(stream) && !json_is_boolean(stream)) {
        perr(&e, "stream", "stream must be a boolean");
        goto bad;
    }
    char msg[600];
    j->direct = !json_is_true(stream);
    int st = job_submit(j, msg, sizeof msg);
    if (st) {
        call_error(c, st, NULL, "%s", msg);
        job_free(j);
        return;
    }
    if (json_is_true(stream)) {
        NativeStream *g = calloc(1, sizeof *g);
        if (!g) {
            job_free(j);
            call_error(c, 500, NULL, "out of memory");
            return;
        }
        g->j = j;
        g->start = (int32_t)start;
        call_sse(c, native_produce, g, native_free);
        return;
    }
    if (!job_wait(j, c)) {
        job_free(j);
        call_error(c, 499, NULL, "client closed the request");
        return;
    }
    job_count(j);
    json_t *out;
    if (!batch && j->n == 1)
        out = sample_json(j, 0, 0, (int32_t)start);
    else {
        out = json_array();
        for (int32_t i = 0; i < j->n_req * j->n; i++)
            json_array_append_new(out, sample_json(j, i / j->n, i, (int32_t)start));
    }
    job_free(j);
    call_json(c, 200, out);
    return;
bad:
    job_free(j);
    call_error(c, 400, e.param, "%s", e.msg);
}

void api_health_generate(SrvCall *c)
{
    SrvJob *j = job_new(c->s, 1);
    SrvErr e = {{0}};
    char msg[600] = "";
    int32_t bos = sgl_tokenizer_bos(c->s->tok);
    if (!j || !(j->prompt[0] = malloc(sizeof(int32_t)))) {
        job_free(j);
        call_error(c, 503, NULL, "out of memory");
        return;
    }
    j->prompt[0][0] = bos >= 0 ? bos : 0;
    j->n_prompt[0] = 1;
    j->p.max_new_tokens = 1;
    j->p.temperature = 0;
    j->direct = true;
    (void)e;
    int st = job_submit(j, msg, sizeof msg);
    if (st || !job_wait(j, c) || j->smp[0].finish == SGL_FINISH_ERROR) {
        call_error(c, 503, NULL, "health_generate failed: %s", st ? msg : "the request did not finish");
        job_free(j);
        return;
    }
    job_count(j);
    job_free(j);
    call_text(c, 200, "text/plain", "");
}

void api_model_info(SrvCall *c)
{
    Srv *s = c->s;
    const char *dir = s->o.model_dir ? s->o.model_dir : "";
    call_json(c, 200,
              json_pack("{s:s, s:s, s:b, s:s, s:i, s:i, s:n}", "model_path", dir, "tokenizer_path",
                        dir, "is_generation", 1, "served_model_name", s->model_name,
                        "context_length", (int)s->context_len, "vocab_size", (int)s->vocab,
                        "preferred_sampling_params"));
}

void api_flush_cache(SrvCall *c)
{
    if (sgl_engine_flush_cache(c->s->engine))
        call_text(c, 200, "text/plain", "Cache flushed.\n");
    else
        call_error(c, 400, NULL, "cache not flushed: requests are running");
}

void api_abort_request(SrvCall *c, json_t *req)
{
    const json_t *rid = json_object_get(req, "rid"), *all = json_object_get(req, "abort_all");
    if (all && !json_is_boolean(all)) {
        call_error(c, 400, "abort_all", "abort_all must be a boolean");
        return;
    }
    if (!json_is_true(all) && !json_is_string(rid)) {
        call_error(c, 400, "rid", "abort_request needs rid (a string) or abort_all: true");
        return;
    }
    int n = job_abort_rid(c->s, json_is_true(all) ? NULL : json_string_value(rid));
    call_json(c, 200, json_pack("{s:i}", "aborted", n));
}

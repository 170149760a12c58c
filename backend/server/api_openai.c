/* api_openai.c -- OpenAI-compatible endpoints.
 *
 *   POST /v1/completions       prompt: string | [string] | [id] | [[id]]; echo;
 *                              logprobs: N (tokens, token_logprobs, top_logprobs)
 *   POST /v1/chat/completions  messages rendered with the server's chat template
 *                              (backend/chat_template.h) + the assistant opener;
 *                              logprobs: bool + top_logprobs; response_format
 *   GET  /v1/models
 * Both take n, stop, seed, stream (+ stream_options.include_usage) and the
 * SGLang extras regex, json_schema, top_k, min_p, ignore_eos (params.c).
 * Choice i of a multi-prompt completion is prompt i / n, sample i % n.
 * usage.prompt_tokens_details.cached_tokens reports the radix-cache hit.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/server/srv_int.h"

static const char *finish_name(const SrvSample *m)
{
    if (!m->done)
        return NULL;
    return m->finish == SGL_FINISH_STOP ? "stop" : m->finish == SGL_FINISH_LENGTH ? "length" : "abort";
}

static json_t *finish_val(const SrvSample *m)
{
    const char *f = finish_name(m);
    return f ? json_string(f) : json_null();
}

static json_t *tok_text(Srv *s, int32_t id)
{
    size_t len = 0;
    char *t = sgl_tokenizer_decode(s->tok, &id, 1, false, &len);
    json_t *j = jstr(t ? t : "", t ? len : 0);
    free(t);
    return j;
}

static json_t *usage_json(const SrvJob *j)
{
    int64_t pt = 0, ct = 0, cached = 0;
    for (int32_t r = 0; r < j->n_req; r++) {
        pt += j->smp[r * j->n].done ? j->smp[r * j->n].prompt_tokens : j->n_prompt[r];
        cached += j->smp[r * j->n].cached_tokens;
        for (int32_t k = 0; k < j->n; k++)
            ct += j->smp[r * j->n + k].done ? j->smp[r * j->n + k].completion_tokens : j->smp[r * j->n + k].n;
    }
    return json_pack("{s:I, s:I, s:I, s:{s:I}}", "prompt_tokens", (json_int_t)pt,
                     "completion_tokens", (json_int_t)ct, "total_tokens", (json_int_t)(pt + ct),
                     "prompt_tokens_details", "cached_tokens", (json_int_t)cached);
}

/* Completions logprobs of tokens [from, to) of sample m. */
static json_t *cmpl_logprobs(Srv *s, const SrvSample *m, int32_t from, int32_t to, size_t off0)
{
    json_t *toks = json_array(), *lps = json_array(), *tops = json_array(), *offs = json_array();
    size_t off = off0;
    for (int32_t k = from; k < to; k++) {
        json_t *t = tok_text(s, m->ids[k]);
        json_array_append_new(offs, json_integer((json_int_t)off));
        off += json_string_length(t);
        json_array_append_new(toks, t);
        json_array_append_new(lps, json_real(m->lps[k]));
        json_t *top = json_object();
        for (int32_t q = 0; q < m->n_top; q++) {
            const SglTopLogprob *tp = &m->top[(size_t)k * (size_t)m->n_top + (size_t)q];
            if (tp->id < 0)
                continue;
            json_t *tt = tok_text(s, tp->id);
            json_object_set_new(top, json_string_value(tt), json_real(tp->logprob));
            json_decref(tt);
        }
        json_array_append_new(tops, m->n_top > 0 ? top : json_null());
        if (m->n_top == 0)
            json_decref(top);
    }
    return json_pack("{s:o, s:o, s:o, s:o}", "tokens", toks, "token_logprobs", lps,
                     "top_logprobs", tops, "text_offset", offs);
}

static json_t *bytes_of(const json_t *t)
{
    json_t *b = json_array();
    const unsigned char *p = (const unsigned char *)json_string_value(t);
    for (size_t i = 0; p && i < json_string_length(t); i++)
        json_array_append_new(b, json_integer(p[i]));
    return b;
}

/* Chat logprobs ({"content": [...]}) of tokens [from, to). */
static json_t *chat_logprobs(Srv *s, const SrvSample *m, int32_t from, int32_t to)
{
    json_t *content = json_array();
    for (int32_t k = from; k < to; k++) {
        json_t *t = tok_text(s, m->ids[k]), *top = json_array();
        for (int32_t q = 0; q < m->n_top; q++) {
            const SglTopLogprob *tp = &m->top[(size_t)k * (size_t)m->n_top + (size_t)q];
            if (tp->id < 0)
                continue;
            json_t *tt = tok_text(s, tp->id);
            json_array_append_new(top, json_pack("{s:O, s:f, s:o}", "token", tt, "logprob",
                                                 (double)tp->logprob, "bytes", bytes_of(tt)));
            json_decref(tt);
        }
        json_array_append_new(content, json_pack("{s:o, s:f, s:o, s:o}", "token", t, "logprob",
                                                 (double)m->lps[k], "bytes", bytes_of(t),
                                                 "top_logprobs", top));
    }
    return json_pack("{s:o}", "content", content);
}

typedef struct {
    SrvJob *j;
    bool chat, include_usage, echo, finished;
    char id[64];
    long created;
    char **echo_text;              /* (n_req) completions echo: the prompt text */
    int32_t *lp_sent;              /* (n_req * n) tokens whose logprobs were streamed */
    bool *role_sent;               /* (n_req * n) */
} OaStream;

static void oa_free(void *ctx)
{
    OaStream *g = ctx;
    for (int32_t i = 0; g->echo_text && i < g->j->n_req; i++)
        free(g->echo_text[i]);
    free(g->echo_text);
    job_free(g->j);
    free(g->lp_sent);
    free(g->role_sent);
    free(g);
}

static json_t *chunk_base(OaStream *g, json_t *choices)
{
    json_t *o = json_pack("{s:s, s:s, s:I, s:s, s:o}", "id", g->id, "object",
                          g->chat ? "chat.completion.chunk" : "text_completion", "created", (json_int_t)g->created,
                          "model", g->j->s->model_name, "choices", choices);
    if (o && g->include_usage)
        json_object_set_new(o, "usage", json_null());
    return o;
}

/* One chunk with the news of sample idx since the last one. */
static json_t *stream_chunk(OaStream *g, int32_t idx)
{
    SrvJob *j = g->j;
    SrvSample *m = &j->smp[idx];
    json_t *delta_text = jstr(m->text ? m->text + m->sent : "", m->len - m->sent);
    size_t off0 = m->sent;
    m->sent = m->len;
    json_t *lp = json_null();
    if (j->p.return_logprob && g->lp_sent[idx] < m->n) {
        json_decref(lp);
        lp = g->chat ? chat_logprobs(j->s, m, g->lp_sent[idx], m->n)
                     : cmpl_logprobs(j->s, m, g->lp_sent[idx], m->n, off0);
        g->lp_sent[idx] = m->n;
    }
    json_t *ch;
    if (g->chat) {
        json_t *delta = json_object();
        if (!g->role_sent[idx]) {
            json_object_set_new(delta, "role", json_string("assistant"));
            g->role_sent[idx] = true;
        }
        if (json_string_length(delta_text) > 0 || !m->done)
            json_object_set(delta, "content", delta_text);
        json_decref(delta_text);
        ch = json_pack("{s:i, s:o, s:o, s:o}", "index", (int)idx, "delta", delta, "logprobs", lp,
                       "finish_reason", finish_val(m));
    } else
        ch = json_pack("{s:i, s:o, s:o, s:o}", "index", (int)idx, "text", delta_text, "logprobs",
                       lp, "finish_reason", finish_val(m));
    if (ch && m->done && m->matched_stop)
        json_object_set_new(ch, "matched_stop", json_string(m->matched_stop));
    return chunk_base(g, json_pack("[o]", ch ? ch : json_object()));
}

static int oa_produce(void *ctx, SseOut *o)
{
    OaStream *g = ctx;
    if (g->finished)
        return 0;
    if (g->echo) {
        for (int32_t i = 0; i < g->j->n_req * g->j->n; i++) {
            const char *t = g->echo_text[i / g->j->n];
            sse_json(o, chunk_base(g, json_pack("[{s:i, s:o, s:n, s:n}]", "index", (int)i, "text",
                                               jstr(t, strlen(t)), "logprobs", "finish_reason")));
        }
        g->echo = false;
        return 1;
    }
    for (;;) {
        int idx = job_step(g->j, 50);
        if (idx == -2) {
            job_count(g->j);
            if (g->include_usage) {
                json_t *u = chunk_base(g, json_array());
                json_object_set_new(u, "usage", usage_json(g->j));
                sse_json(o, u);
            }
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
        SrvSample *m = &g->j->smp[idx];
        if (m->len == m->sent && !m->done && g->role_sent[idx] &&
            !(g->j->p.return_logprob && g->lp_sent[idx] < m->n))
            continue;      /* a token whose text is held back: nothing to send yet */
        sse_json(o, stream_chunk(g, idx));
        return 1;
    }
}

/* Shared tail of both endpoints: submit, then stream or wait and answer. */
static void finish_request(SrvCall *c, SrvJob *j, const json_t *req, bool chat, char **echo_text)
{
    Srv *s = c->s;
    char msg[600];
    j->direct = !json_is_true(json_object_get(req, "stream"));
    int st = job_submit(j, msg, sizeof msg);
    if (st) {
        call_error(c, st, NULL, "%s", msg);
        goto free_all;
    }
    const json_t *so = json_object_get(req, "stream_options");
    OaStream *g = calloc(1, sizeof *g);
    if (!g || !(g->lp_sent = calloc((size_t)(j->n_req * j->n), sizeof *g->lp_sent)) ||
        !(g->role_sent = calloc((size_t)(j->n_req * j->n), sizeof *g->role_sent))) {
        if (g)
            free(g->lp_sent);
        free(g);
        call_error(c, 500, NULL, "out of memory");
        goto free_all;
    }
    g->j = j;
    g->chat = chat;
    g->created = (long)time(NULL);
    g->echo_text = echo_text;
    g->echo = echo_text != NULL;
    g->include_usage = json_is_true(json_object_get(so, "include_usage"));
    snprintf(g->id, sizeof g->id, "%s-%s", chat ? "chatcmpl" : "cmpl", j->rid);
    if (json_is_true(json_object_get(req, "stream"))) {
        call_sse(c, oa_produce, g, oa_free);
        return;
    }
    if (!job_wait(j, c)) {
        oa_free(g);
        call_error(c, 499, NULL, "client closed the request");
        return;
    }
    job_count(j);
    json_t *choices = json_array();
    for (int32_t i = 0; i < j->n_req * j->n; i++) {
        SrvSample *m = &j->smp[i];
        json_t *lp = json_null();
        if (j->p.return_logprob) {
            json_decref(lp);
            lp = chat ? chat_logprobs(s, m, 0, m->n) : cmpl_logprobs(s, m, 0, m->n, 0);
        }
        json_t *ch;
        if (chat)
            ch = json_pack("{s:i, s:{s:s, s:o}, s:o, s:o}", "index", (int)i, "message", "role",
                           "assistant", "content", jstr(m->text, m->len), "logprobs", lp,
                           "finish_reason", finish_val(m));
        else {
            json_t *t;
            if (echo_text) {
                const char *e = echo_text[i / j->n];
                size_t el = strlen(e);
                char *b = malloc(el + m->len + 1);
                if (b) {
                    memcpy(b, e, el);
                    if (m->len)
                        memcpy(b + el, m->text, m->len);
                }
                t = b ? jstr(b, el + m->len) : json_string("");
                free(b);
            } else
                t = jstr(m->text, m->len);
            ch = json_pack("{s:i, s:o, s:o, s:o}", "index", (int)i, "text", t, "logprobs", lp,
                           "finish_reason", finish_val(m));
        }
        if (ch && m->matched_stop)
            json_object_set_new(ch, "matched_stop", json_string(m->matched_stop));
        else if (ch && m->done && m->finish == SGL_FINISH_STOP)
            json_object_set_new(ch, "matched_stop", json_integer(m->matched_token));
        json_array_append_new(choices, ch);
    }
    json_t *out = json_pack("{s:s, s:s, s:I, s:s, s:o, s:o}", "id", g->id, "object",
                            chat ? "chat.completion" : "text_completion", "created", (json_int_t)g->created,
                            "model", s->model_name, "choices", choices, "usage", usage_json(j));
    oa_free(g);
    call_json(c, 200, out);
    return;
free_all:
    for (int32_t i = 0; echo_text && i < j->n_req; i++)
        free(echo_text[i]);
    free(echo_text);
    job_free(j);
}

static bool check_stream(const json_t *req, SrvErr *e)
{
    const json_t *v = json_object_get(req, "stream");
    if (v && !json_is_null(v) && !json_is_boolean(v))
        return perr(e, "stream", "stream must be a boolean");
    return true;
}

void api_completions(SrvCall *c, json_t *req)
{
    Srv *s = c->s;
    SrvErr e = {{0}};
    const json_t *pr = json_object_get(req, "prompt");
    if (!pr || json_is_null(pr)) {
        call_error(c, 400, "prompt", "prompt is required");
        return;
    }
    /* shapes: "s" | ["s", ...] | [id, ...] | [[id, ...], ...] */
    bool list = json_is_array(pr);
    const json_t *first = list ? json_array_get(pr, 0) : pr;
    bool ids_one = list && json_is_integer(first);
    size_t n_req = list && !ids_one ? json_array_size(pr) : 1;
    if (!json_is_string(pr) && !list) {
        call_error(c, 400, "prompt", "prompt must be a string, a list of strings or token ids");
        return;
    }
    if (n_req == 0 || n_req > 1024) {
        call_error(c, 400, "prompt", "prompt must hold 1 to 1024 prompts, got %zu", n_req);
        return;
    }
    SrvJob *j = job_new(s, (int32_t)n_req);
    char **echo_text = NULL;
    if (!j) {
        call_error(c, 500, NULL, "out of memory");
        return;
    }
    j->p.max_new_tokens = 16;     /* OpenAI's default for completions */
    for (size_t i = 0; i < n_req; i++) {
        const json_t *p = ids_one ? pr : list ? json_array_get(pr, i) : pr;
        if (json_is_string(p)) {
            if (!prompt_text(j, (int32_t)i, json_string_value(p), json_string_length(p), true, &e))
                goto bad;
        } else if (!prompt_ids(j, (int32_t)i, p, "prompt", &e))
            goto bad;
    }
    if (!check_stream(req, &e) || !params_openai(j, req, false, &e))
        goto bad;
    if (json_is_true(json_object_get(req, "echo"))) {
        if (!(echo_text = calloc(n_req, sizeof *echo_text)))
            goto oom;
        for (size_t i = 0; i < n_req; i++) {
            const json_t *p = ids_one ? pr : list ? json_array_get(pr, i) : pr;
            size_t len;
            echo_text[i] = json_is_string(p) ? strdup(json_string_value(p))
                                              : sgl_tokenizer_decode(s->tok, j->prompt[i], j->n_prompt[i], true, &len);
            if (!echo_text[i])
                goto oom;
        }
    }
    finish_request(c, j, req, false, echo_text);
    return;
oom:
    perr(&e, NULL, "out of memory");
bad:
    for (size_t i = 0; echo_text && i < n_req; i++)
        free(echo_text[i]);
    free(echo_text);
    job_free(j);
    call_error(c, 400, e.param, "%s", e.msg);
}

typedef struct {
    char *b;
    size_t len, cap;
    bool oom;
} Buf;

static void buf_put(Buf *b, const char *s, size_t n)
{
    if (b->oom || n == 0)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 1024;
        while (nc < b->len + n + 1)
            nc *= 2;
        char *q = realloc(b->b, nc);
        if (!q) {
            b->oom = true;
            return;
        }
        b->b = q;
        b->cap = nc;
    }
    memcpy(b->b + b->len, s, n);
    b->len += n;
    b->b[b->len] = '\0';
}

/* messages -> prompt text with the chat template; false + e on a bad message. */
static bool render_chat(Srv *s, const json_t *msgs, Buf *out, SrvErr *e)
{
    const ChatTemplate *t = s->o.tmpl;
    if (!json_is_array(msgs) || json_array_size(msgs) == 0)
        return perr(e, "messages", "messages must be a non-empty list");
    bool after_sys = false;
    for (size_t i = 0; i < json_array_size(msgs); i++) {
        const json_t *m = json_array_get(msgs, i);
        if (!json_is_object(m))
            return perr(e, "messages", "messages[%zu] must be an object", i);
        const char *role = json_string_value(json_object_get(m, "role"));
        if (!role)
            return perr(e, "messages", "messages[%zu].role must be a string", i);
        ChatRole r;
        if (strcmp(role, "system") == 0 || strcmp(role, "developer") == 0)
            r = CHAT_SYSTEM;
        else if (strcmp(role, "user") == 0)
            r = CHAT_USER;
        else if (strcmp(role, "assistant") == 0)
            r = CHAT_ASSISTANT;
        else
            return perr(e, "messages", "messages[%zu].role must be system, developer, user or assistant, got '%.100s'", i, role);
        const json_t *content = json_object_get(m, "content");
        const char *b = chat_template_begin(t, r, after_sys);
        buf_put(out, b, strlen(b));
        if (json_is_string(content))
            buf_put(out, json_string_value(content), json_string_length(content));
        else if (json_is_array(content)) {
            for (size_t k = 0; k < json_array_size(content); k++) {
                const json_t *part = json_array_get(content, k);
                const char *type = json_string_value(json_object_get(part, "type"));
                const json_t *txt = json_object_get(part, "text");
                if (!type || strcmp(type, "text") != 0 || !json_is_string(txt))
                    return perr(e, "messages", "messages[%zu].content[%zu] must be {\"type\": \"text\", \"text\": STRING}", i, k);
                buf_put(out, json_string_value(txt), json_string_length(txt));
            }
        } else if (!(json_is_null(content) && r == CHAT_ASSISTANT))
            return perr(e, "messages", "messages[%zu].content must be a string or a list of text parts", i);
        const char *en = chat_template_end(t, r);
        buf_put(out, en, strlen(en));
        after_sys = r == CHAT_SYSTEM;
    }
    const char *b = chat_template_begin(t, CHAT_ASSISTANT, after_sys);
    buf_put(out, b, strlen(b));
    if (out->oom)
        return perr(e, NULL, "out of memory");
    return true;
}

void api_chat(SrvCall *c, json_t *req)
{
    Srv *s = c->s;
    SrvErr e = {{0}};
    Buf text = {0};
    SrvJob *j = job_new(s, 1);
    if (!j) {
        call_error(c, 500, NULL, "out of memory");
        return;
    }
    bool max_given = json_is_integer(json_object_get(req, "max_tokens")) ||
                     json_is_integer(json_object_get(req, "max_completion_tokens"));
    if (!render_chat(s, json_object_get(req, "messages"), &text, &e) ||
        !prompt_text(j, 0, text.b, text.len, true, &e) || !check_stream(req, &e) ||
        !params_openai(j, req, true, &e))
        goto bad;
    if (!max_given)
        j->p.max_new_tokens = s->context_len - j->n_prompt[0];
    /* the template's end-of-turn marker ends the answer */
    const char *end = chat_template_end(s->o.tmpl, CHAT_ASSISTANT);
    char marker[128];
    size_t ml = 0;
    while (*end == ' ' || *end == '\n')
        end++;
    ml = strlen(end);
    while (ml > 0 && (end[ml - 1] == ' ' || end[ml - 1] == '\n'))
        ml--;
    if (ml > 0 && ml < sizeof marker && j->p.n_stop < SGL_MAX_STOP) {
        memcpy(marker, end, ml);
        marker[ml] = '\0';
        if (!(j->stop_buf[j->p.n_stop] = strdup(marker)))
            goto bad;
        j->p.stop[j->p.n_stop] = j->stop_buf[j->p.n_stop];
        j->p.n_stop++;
    }
    free(text.b);
    finish_request(c, j, req, true, NULL);
    return;
bad:
    free(text.b);
    job_free(j);
    call_error(c, 400, e.param, "%s", e.msg[0] ? e.msg : "out of memory");
}

void api_models(SrvCall *c)
{
    Srv *s = c->s;
    call_json(c, 200,
              json_pack("{s:s, s:[{s:s, s:s, s:I, s:s, s:s, s:i}]}", "object", "list", "data", "id",
                        s->model_name, "object", "model", "created", (json_int_t)time(NULL),
                        "owned_by", "sglc", "root", s->model_name, "max_model_len",
                        (int)s->context_len));
}

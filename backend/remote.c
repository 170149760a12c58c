/* remote.c -- the HTTP backend (remote.h): libcurl + jansson against the
 * SGLang native API. Every call is one blocking POST on its own easy handle;
 * responses are bounded (64 MiB) and parsed field by field, so a server
 * answering something unexpected gives a message, never a crash.
 */
#include <curl/curl.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/ops.h"
#include "backend/remote.h"
#include "runtime/textbuf.h"

#define MAX_RESPONSE (64u << 20)

struct SglRemote {
    char *base;                      /* "http://host:port" without a trailing '/' */
    int32_t vocab, context;
    char model[256];
    char *auth;                      /* "Authorization: Bearer $SGLC_API_KEY", or NULL */
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

typedef struct {
    char *buf;
    size_t len, cap;
    bool too_big;
} Sink;

static size_t on_data(char *p, size_t sz, size_t nm, void *u)
{
    Sink *s = u;
    size_t n = sz * nm;
    if (s->len + n + 1 > MAX_RESPONSE) {
        s->too_big = true;
        return 0;
    }
    return sgl_text_append(&s->buf, &s->len, &s->cap, p, n) ? n : 0;
}

static int on_progress(void *u, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    (void)a, (void)b, (void)c, (void)d;
    struct SglRun *run = u;
    return run && run_failed(run) ? 1 : 0;
}

/* GET (body NULL) or POST body (stolen) to path; *out the parsed answer. */
static bool call(const SglRemote *rm, struct SglRun *run, const char *path, json_t *body,
                 json_t **out, char *msg, size_t cap)
{
    *out = NULL;
    pthread_once(&curl_once, curl_init_once);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    CURL *h = curl_easy_init();
    struct curl_slist *hd = curl_slist_append(NULL, "Content-Type: application/json");
    if (hd && rm->auth)
        hd = curl_slist_append(hd, rm->auth);
    Sink s = {0};
    bool ok = false;
    if (!h || !hd || (body && !text)) {
        snprintf(msg, cap, "out of memory");
        goto out;
    }
    char url[1200];
    snprintf(url, sizeof url, "%s%s", rm->base, path);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
    if (text)
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, text);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, run);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
    CURLcode rc = curl_easy_perform(h);
    if (rc != CURLE_OK) {
        snprintf(msg, cap, "%s%s: %s", rm->base, path,
                 rc == CURLE_ABORTED_BY_CALLBACK ? "cancelled" : s.too_big ? "response too large"
                                                                           : curl_easy_strerror(rc));
        goto out;
    }
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    json_error_t je;
    json_t *j = s.buf ? json_loadb(s.buf, s.len, 0, &je) : NULL;
    if (status != 200) {
        const char *m = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
        if (!m)
            m = json_string_value(json_object_get(j, "message"));
        snprintf(msg, cap, "%s%s: HTTP %ld: %.300s", rm->base, path, status,
                 m ? m : s.buf ? s.buf : "");
        json_decref(j);
        goto out;
    }
    if (!j) {
        snprintf(msg, cap, "%s%s: the answer is not JSON", rm->base, path);
        goto out;
    }
    *out = j;
    ok = true;
out:
    curl_slist_free_all(hd);
    if (h)
        curl_easy_cleanup(h);
    free(text);
    free(s.buf);
    return ok;
}

bool remote_open(const char *url, SglRemote **out, char *msg, size_t cap)
{
    *out = NULL;
    if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) {
        snprintf(msg, cap, "--backend must be an http:// or https:// URL, got '%s'", url);
        return false;
    }
    SglRemote *rm = calloc(1, sizeof *rm);
    if (!rm || !(rm->base = strdup(url))) {
        free(rm);
        snprintf(msg, cap, "out of memory");
        return false;
    }
    const char *key = getenv("SGLC_API_KEY");
    if (key && *key && asprintf(&rm->auth, "Authorization: Bearer %s", key) < 0)
        rm->auth = NULL;
    size_t n = strlen(rm->base);
    while (n > 0 && rm->base[n - 1] == '/')
        rm->base[--n] = '\0';
    json_t *j;
    if (!call(rm, NULL, "/get_model_info", NULL, &j, msg, cap)) {
        remote_free(rm);
        return false;
    }
    rm->vocab = (int32_t)json_integer_value(json_object_get(j, "vocab_size"));
    rm->context = (int32_t)json_integer_value(json_object_get(j, "context_length"));
    const char *m = json_string_value(json_object_get(j, "model_path"));
    snprintf(rm->model, sizeof rm->model, "%s", m ? m : "?");
    json_decref(j);
    *out = rm;
    return true;
}

void remote_free(SglRemote *rm)
{
    if (!rm)
        return;
    free(rm->base);
    free(rm->auth);
    free(rm);
}

int32_t remote_vocab(const SglRemote *rm)
{
    return rm->vocab;
}

const char *remote_model(const SglRemote *rm)
{
    return rm->model;
}

static json_t *sampling_json(const SglSamplingParams *p, const char *regex)
{
    json_t *o = json_pack("{s:i, s:f, s:f, s:f, s:i, s:b}", "max_new_tokens", (int)p->max_new_tokens,
                          "temperature", (double)p->temperature, "top_p", (double)p->top_p, "min_p",
                          (double)p->min_p, "n", (int)p->n, "ignore_eos", p->ignore_eos);
    if (!o)
        return NULL;
    if (p->min_new_tokens > 0)
        json_object_set_new(o, "min_new_tokens", json_integer(p->min_new_tokens));
    if (p->top_k > 0)
        json_object_set_new(o, "top_k", json_integer(p->top_k));
    if (p->frequency_penalty != 0)
        json_object_set_new(o, "frequency_penalty", json_real(p->frequency_penalty));
    if (p->presence_penalty != 0)
        json_object_set_new(o, "presence_penalty", json_real(p->presence_penalty));
    if (p->repetition_penalty != 1)
        json_object_set_new(o, "repetition_penalty", json_real(p->repetition_penalty));
    if (p->has_seed)
        json_object_set_new(o, "sampling_seed", json_integer((json_int_t)(p->seed & 0x7fffffffffffffffull)));
    if (p->n_stop > 0) {
        json_t *a = json_array();
        for (int32_t i = 0; i < p->n_stop; i++)
            json_array_append_new(a, json_string(p->stop[i]));
        json_object_set_new(o, "stop", a);
    }
    if (p->n_stop_token_ids > 0) {
        json_t *a = json_array();
        for (int32_t i = 0; i < p->n_stop_token_ids; i++)
            json_array_append_new(a, json_integer(p->stop_token_ids[i]));
        json_object_set_new(o, "stop_token_ids", a);
    }
    if (regex)
        json_object_set_new(o, "regex", json_string(regex));
    return o;
}

/* One response object -> sample. */
static bool fill_sample(const json_t *o, SglGenSample *sm, int32_t *prompt_tokens)
{
    const json_t *meta = json_object_get(o, "meta_info"), *ids = json_object_get(o, "output_ids");
    const char *text = json_string_value(json_object_get(o, "text"));
    if (!json_is_object(meta) || !text)
        return false;
    *prompt_tokens = (int32_t)json_integer_value(json_object_get(meta, "prompt_tokens"));
    sm->cached_tokens = (int32_t)json_integer_value(json_object_get(meta, "cached_tokens"));
    sm->text_len = json_string_length(json_object_get(o, "text"));
    if (!(sm->text = malloc(sm->text_len + 1)))
        return false;
    memcpy(sm->text, text, sm->text_len + 1);
    size_t n = json_array_size(ids);
    sm->n_output = (int32_t)n;
    sm->output_ids = malloc((n + 1) * sizeof *sm->output_ids);
    if (!sm->output_ids)
        return false;
    for (size_t i = 0; i < n; i++)
        sm->output_ids[i] = (int32_t)json_integer_value(json_array_get(ids, i));
    const json_t *olp = json_object_get(meta, "output_token_logprobs");
    if (json_array_size(olp) == n && n > 0 && (sm->output_logprobs = malloc(n * sizeof(float)))) {
        for (size_t i = 0; i < n; i++) {
            const json_t *v = json_array_get(json_array_get(olp, i), 0);
            sm->output_logprobs[i] = json_is_number(v) ? (float)json_number_value(v) : NAN;
        }
    }
    const json_t *fr = json_object_get(meta, "finish_reason");
    const char *type = json_string_value(json_object_get(fr, "type"));
    const json_t *matched = json_object_get(fr, "matched");
    sm->matched_token = json_is_integer(matched) ? (int32_t)json_integer_value(matched) : -1;
    if (json_is_string(matched))
        sm->matched_stop = strdup(json_string_value(matched));
    if (!type || strcmp(type, "stop") == 0)
        sm->finish = SGL_FINISH_STOP;
    else if (strcmp(type, "length") == 0)
        sm->finish = SGL_FINISH_LENGTH;
    else {
        const char *m = json_string_value(json_object_get(fr, "message"));
        sm->finish = SGL_FINISH_ERROR;   /* the program did not abort it: the server did */
        sm->error = strdup(m ? m : type);
    }
    return true;
}

bool remote_generate(SglRemote *rm, struct SglRun *run, const char *text, size_t len,
                     const SglSamplingParams *p, const char *regex, SglGenResult *res,
                     char *msg, size_t cap)
{
    memset(res, 0, sizeof *res);
    json_t *sp = sampling_json(p, regex);
    json_t *body = sp ? json_pack("{s:s%, s:o, s:b}", "text", text, len, "sampling_params", sp,
                                  "return_logprob", p->return_logprob) : NULL;
    json_t *j;
    if (!body) {
        snprintf(msg, cap, "out of memory (or the prompt is not valid UTF-8)");
        return false;
    }
    if (!call(rm, run, "/generate", body, &j, msg, cap))
        return false;
    size_t n = json_is_array(j) ? json_array_size(j) : 1;
    bool ok = n == (size_t)p->n && (res->samples = calloc(n, sizeof *res->samples));
    res->n_samples = ok ? (int32_t)n : 0;
    for (size_t i = 0; ok && i < n; i++)
        ok = fill_sample(json_is_array(j) ? json_array_get(j, i) : j, &res->samples[i], &res->prompt_tokens);
    json_decref(j);
    if (!ok) {
        sgl_gen_result_free(res);
        memset(res, 0, sizeof *res);
        snprintf(msg, cap, "%s/generate: unexpected answer (expected %d sample(s))", rm->base, (int)p->n);
    }
    return ok;
}

bool remote_prefill(SglRemote *rm, const char *text, size_t len, int32_t *prompt_tokens)
{
    char msg[256];
    json_t *j, *body = json_pack("{s:s%, s:{s:i}}", "text", text, len, "sampling_params",
                                 "max_new_tokens", 0);
    if (!body || !call(rm, NULL, "/generate", body, &j, msg, sizeof msg))
        return false;
    if (prompt_tokens)
        *prompt_tokens = (int32_t)json_integer_value(json_object_get(json_object_get(j, "meta_info"), "prompt_tokens"));
    json_decref(j);
    return true;
}

/* Token ids and logprobs of a prefill-only answer's input_token_logprobs. */
static bool prompt_lps(const json_t *o, int32_t **ids, float **lps, int32_t *n, int32_t *cached)
{
    const json_t *meta = json_object_get(o, "meta_info");
    const json_t *in = json_object_get(meta, "input_token_logprobs");
    size_t k = json_array_size(in);
    *cached = (int32_t)json_integer_value(json_object_get(meta, "cached_tokens"));
    *ids = malloc((k + 1) * sizeof **ids);
    *lps = malloc((k + 1) * sizeof **lps);
    if (!*ids || !*lps || k == 0)
        return false;
    for (size_t i = 0; i < k; i++) {
        const json_t *e = json_array_get(in, i);
        const json_t *lp = json_array_get(e, 0);
        (*ids)[i] = (int32_t)json_integer_value(json_array_get(e, 1));
        (*lps)[i] = json_is_number(lp) ? (float)json_number_value(lp) : NAN;
    }
    *n = (int32_t)k;
    return true;
}

bool remote_select(SglRemote *rm, struct SglRun *run, const char *prompt, size_t prompt_len,
                   const char *const *choices, const size_t *lens, int32_t n_choices,
                   IrSelectMethod m, SelectResult *out, char *msg, size_t cap)
{
    memset(out, 0, sizeof *out);
    if (cap > 0)
        msg[0] = '\0';
    bool ok = false;
    json_t *pj = NULL, *cj = NULL;
    int32_t *pids = NULL, np = 0, cached = 0;
    float *plps = NULL;
    int32_t **fids = calloc((size_t)n_choices, sizeof *fids);
    float **flps = calloc((size_t)n_choices, sizeof *flps);
    int32_t *nf = calloc((size_t)n_choices, sizeof *nf);
    SelTokens *st = calloc((size_t)n_choices, sizeof *st);
    double *scores = calloc((size_t)n_choices, sizeof *scores);
    json_t *texts = json_array();
    if (!fids || !flps || !nf || !st || !scores || !texts) {
        snprintf(msg, cap, "out of memory");
        goto out;
    }
    /* the prompt first (it lands in the server's radix cache), then all choices at once */
    json_t *b1 = json_pack("{s:s%, s:{s:i}, s:b, s:i}", "text", prompt, prompt_len, "sampling_params",
                           "max_new_tokens", 0, "return_logprob", 1, "logprob_start_len", 0);
    if (!b1 || !call(rm, run, "/generate", b1, &pj, msg, cap))
        goto out;
    if (!prompt_lps(json_is_array(pj) ? json_array_get(pj, 0) : pj, &pids, &plps, &np, &cached)) {
        snprintf(msg, cap, "%s/generate: no input_token_logprobs in the answer", rm->base);
        goto out;
    }
    out->prompt_tokens += np;
    out->cached_tokens += cached;
    for (int32_t i = 0; i < n_choices; i++) {
        char *full = malloc(prompt_len + lens[i] + 1);
        if (!full) {
            snprintf(msg, cap, "out of memory");
            goto out;
        }
        memcpy(full, prompt, prompt_len);
        memcpy(full + prompt_len, choices[i], lens[i]);
        json_array_append_new(texts, json_stringn(full, prompt_len + lens[i]));
        free(full);
    }
    json_t *b2 = json_pack("{s:O, s:{s:i}, s:b, s:i}", "text", texts, "sampling_params",
                           "max_new_tokens", 0, "return_logprob", 1, "logprob_start_len", 0);
    if (!b2 || !call(rm, run, "/generate", b2, &cj, msg, cap))
        goto out;
    if (json_array_size(cj) != (size_t)n_choices) {
        snprintf(msg, cap, "%s/generate: expected %d answers", rm->base, (int)n_choices);
        goto out;
    }
    for (int32_t i = 0; i < n_choices; i++) {
        int32_t c2 = 0;
        if (!prompt_lps(json_array_get(cj, (size_t)i), &fids[i], &flps[i], &nf[i], &c2)) {
            snprintf(msg, cap, "%s/generate: no input_token_logprobs for choice %d", rm->base, (int)i);
            goto out;
        }
        int32_t b = select_heal_boundary(pids, np, fids[i], nf[i]);
        if (b < 1)
            b = 1;                  /* position 0 has no logprob */
        st[i].lp = flps[i] + b;
        st[i].n = nf[i] > b ? nf[i] - b : 0;
        out->prompt_tokens += nf[i];
        out->cached_tokens += c2;
    }
    /* unconditional: the choice's tokens alone (select.h), as input_ids */
    float **ulps = NULL;
    if (m == IR_SEL_UNCONDITIONAL_LIKELIHOOD_NORMALIZED) {
        json_t *ids = json_array();
        for (int32_t i = 0; ids && i < n_choices; i++) {
            json_t *one = json_array();
            int32_t b = (int32_t)(st[i].lp - flps[i]), k = st[i].n > 0 ? st[i].n : 1;
            for (int32_t q = 0; q < k && b + q < nf[i]; q++)
                json_array_append_new(one, json_integer(fids[i][b + q]));
            json_array_append_new(ids, one);
        }
        json_t *b3 = json_pack("{s:o, s:{s:i}, s:b, s:i}", "input_ids", ids, "sampling_params",
                               "max_new_tokens", 0, "return_logprob", 1, "logprob_start_len", 0);
        json_t *uj = NULL;
        ulps = calloc((size_t)n_choices, sizeof *ulps);
        bool uok = b3 && ulps && call(rm, run, "/generate", b3, &uj, msg, cap) &&
                   json_array_size(uj) == (size_t)n_choices;
        for (int32_t i = 0; uok && i < n_choices; i++) {
            int32_t *uids = NULL, nu = 0, c3 = 0;
            uok = prompt_lps(json_array_get(uj, (size_t)i), &uids, &ulps[i], &nu, &c3) && nu >= st[i].n;
            free(uids);
            st[i].uncond = uok ? ulps[i] : NULL;
            out->prompt_tokens += nu;
            out->requests++;
        }
        json_decref(uj);
        if (!uok) {
            for (int32_t i = 0; ulps && i < n_choices; i++)
                free(ulps[i]);
            free(ulps);
            if (!msg[0])
                snprintf(msg, cap, "%s/generate: no unconditional logprobs", rm->base);
            goto out;
        }
    }
    out->best = select_score(m, st, n_choices, scores);
    for (int32_t i = 0; ulps && i < n_choices; i++)
        free(ulps[i]);
    free(ulps);
    out->score = scores[out->best];
    out->requests += 1 + n_choices;
    ok = true;
out:
    for (int32_t i = 0; fids && flps && i < n_choices; i++) {
        free(fids[i]);
        free(flps[i]);
    }
    free(fids);
    free(flps);
    free(nf);
    free(st);
    free(scores);
    free(pids);
    free(plps);
    json_decref(texts);
    json_decref(pj);
    json_decref(cj);
    return ok;
}

/* params.c -- request JSON -> sampling parameters, constraints and prompts.
 *
 * Every field is checked for its JSON type and range here, and the message
 * names it ("sampling_params.top_p must be a number in [0, 1], got \"x\"");
 * sgl_sampling_params_check then checks the combination. Native
 * sampling_params rejects unknown keys (as SGLang's SamplingParams does);
 * OpenAI requests ignore fields they do not know, as SGLang and vLLM do.
 * Constraints (regex, JSON schema, json_object) compile to one DFA per job.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/server/srv_int.h"
#include "ir/fsm/jsonschema.h"
#include "ir/fsm/regex.h"

bool perr(SrvErr *e, const char *param, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    e->param = param;
    return false;
}

static const char *jtype(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE: case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

/* Absent or null: *out unchanged, true. */
static bool get_num(const json_t *o, const char *pre, const char *key, double lo, double hi,
                    float *out, bool *given, SrvErr *e)
{
    const json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return true;
    if (!json_is_number(v))
        return perr(e, key, "%s%s must be a number, got %s", pre, key, jtype(v));
    double d = json_number_value(v);
    if (!(d >= lo && d <= hi))
        return perr(e, key, "%s%s must be in [%g, %g], got %g", pre, key, lo, hi, d);
    *out = (float)d;
    if (given)
        *given = true;
    return true;
}

static bool get_int(const json_t *o, const char *pre, const char *key, long long lo, long long hi,
                    long long *out, bool *given, SrvErr *e)
{
    const json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return true;
    if (!json_is_integer(v))
        return perr(e, key, "%s%s must be an integer, got %s", pre, key, jtype(v));
    long long d = json_integer_value(v);
    if (d < lo || d > hi)
        return perr(e, key, "%s%s must be in [%lld, %lld], got %lld", pre, key, lo, hi, d);
    *out = d;
    if (given)
        *given = true;
    return true;
}

static bool get_i32(const json_t *o, const char *pre, const char *key, long long lo, long long hi,
                    int32_t *out, bool *given, SrvErr *e)
{
    long long v = *out;
    if (!get_int(o, pre, key, lo, hi, &v, given, e))
        return false;
    *out = (int32_t)v;
    return true;
}

static bool get_bool(const json_t *o, const char *pre, const char *key, bool *out, SrvErr *e)
{
    const json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return true;
    if (!json_is_boolean(v))
        return perr(e, key, "%s%s must be a boolean, got %s", pre, key, jtype(v));
    *out = json_is_true(v);
    return true;
}

static bool get_stop(SrvJob *j, const json_t *o, const char *pre, const char *key, SrvErr *e)
{
    const json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return true;
    const json_t *one[1] = {v};
    size_t n = 1;
    if (json_is_array(v))
        n = json_array_size(v);
    else if (!json_is_string(v))
        return perr(e, key, "%s%s must be a string or a list of strings, got %s", pre, key, jtype(v));
    if (n > SGL_MAX_STOP)
        return perr(e, key, "%s%s: at most %d stop strings, got %zu", pre, key, SGL_MAX_STOP, n);
    for (size_t i = 0; i < n; i++) {
        const json_t *s = json_is_array(v) ? json_array_get(v, i) : one[0];
        if (!json_is_string(s))
            return perr(e, key, "%s%s[%zu] must be a string, got %s", pre, key, i, jtype(s));
        size_t len = json_string_length(s);
        if (len == 0 || len > SGL_MAX_STOP_LEN || memchr(json_string_value(s), 0, len))
            return perr(e, key, "%s%s[%zu] must have 1 to %d bytes and no NUL", pre, key, i,
                        SGL_MAX_STOP_LEN);
        free(j->stop_buf[i]);
        if (!(j->stop_buf[i] = strdup(json_string_value(s))))
            return perr(e, key, "out of memory");
        j->p.stop[i] = j->stop_buf[i];
    }
    j->p.n_stop = (int32_t)n;
    return true;
}

static bool get_stop_ids(SrvJob *j, const json_t *o, const char *pre, const char *key, SrvErr *e)
{
    const json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return true;
    if (!json_is_array(v))
        return perr(e, key, "%s%s must be a list of token ids, got %s", pre, key, jtype(v));
    size_t n = json_array_size(v);
    if (n > 64)
        return perr(e, key, "%s%s: at most 64 ids, got %zu", pre, key, n);
    free(j->stop_ids);
    if (!(j->stop_ids = malloc((n + 1) * sizeof *j->stop_ids)))
        return perr(e, key, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const json_t *x = json_array_get(v, i);
        if (!json_is_integer(x) || json_integer_value(x) < 0 ||
            json_integer_value(x) >= j->s->vocab)
            return perr(e, key, "%s%s[%zu] must be a token id in [0, %d)", pre, key, i, j->s->vocab);
        j->stop_ids[i] = (int32_t)json_integer_value(x);
    }
    j->p.stop_token_ids = j->stop_ids;
    j->p.n_stop_token_ids = (int32_t)n;
    return true;
}

bool params_regex(SrvJob *j, const char *re, size_t len, const char *field, SrvErr *e)
{
    if (j->dfa)
        return perr(e, field, "%s: only one of regex, json_schema and response_format may be given", field);
    FsmErr fe = {0};
    SglStatus st = regex_compile(re, len, NULL, &j->dfa, NULL, &fe);
    if (st != SGL_OK)
        return perr(e, field, "%s: %s", field, fe.msg[0] ? fe.msg : sgl_status_str(st));
    if (sgl_dfa_is_empty(j->dfa))
        return perr(e, field, "%s: the pattern matches no text", field);
    return true;
}

bool params_schema(SrvJob *j, const json_t *schema, const char *field, SrvErr *e)
{
    json_t *owned = NULL;
    if (json_is_string(schema)) {
        json_error_t je;
        if (!(owned = json_loadb(json_string_value(schema), json_string_length(schema), 0, &je)))
            return perr(e, field, "%s: invalid JSON at line %d column %d: %s", field, je.line,
                        je.column, je.text);
        schema = owned;
    }
    if (!json_is_object(schema) && !json_is_boolean(schema)) {
        json_decref(owned);
        return perr(e, field, "%s must be a JSON schema object, got %s", field, jtype(schema));
    }
    char *re = NULL;
    FsmErr fe = {0};
    SglStatus st = jsonschema_to_regex(schema, NULL, &re, &fe);
    json_decref(owned);
    if (st != SGL_OK)
        return perr(e, field, "%s: %s", field, fe.msg[0] ? fe.msg : sgl_status_str(st));
    bool ok = params_regex(j, re, strlen(re), field, e);
    free(re);
    return ok;
}

/* json_object mode: any JSON object, values nested two levels deep, written
 * with ", " and ": " as jsonschema.h's default whitespace policy. */
#define RX_STR "\"([^\"\\\\\\x00-\\x1f]|\\\\[\"\\\\/bfnrt])*\""
#define RX_NUM "-?(0|[1-9][0-9]{0,15})(\\.[0-9]{1,15})?([eE][+-]?[0-9]{1,2})?"
#define RX_V0 "(" RX_STR "|" RX_NUM "|true|false|null)"
#define RX_A0 "\\[(" RX_V0 "(, " RX_V0 ")*)?\\]"
#define RX_O0 "\\{(" RX_STR ": " RX_V0 "(, " RX_STR ": " RX_V0 ")*)?\\}"
#define RX_V1 "(" RX_V0 "|" RX_A0 "|" RX_O0 ")"
#define RX_OBJ "\\{(" RX_STR ": " RX_V1 "(, " RX_STR ": " RX_V1 ")*)?\\}"

static bool response_format(SrvJob *j, const json_t *rf, SrvErr *e)
{
    if (!rf || json_is_null(rf))
        return true;
    if (!json_is_object(rf))
        return perr(e, "response_format", "response_format must be an object, got %s", jtype(rf));
    const char *type = json_string_value(json_object_get(rf, "type"));
    if (!type)
        return perr(e, "response_format", "response_format.type must be a string");
    if (strcmp(type, "text") == 0)
        return true;
    if (strcmp(type, "json_object") == 0)
        return params_regex(j, RX_OBJ, strlen(RX_OBJ), "response_format", e);
    if (strcmp(type, "json_schema") == 0) {
        const json_t *js = json_object_get(rf, "json_schema");
        if (!json_is_object(js))
            return perr(e, "response_format", "response_format.json_schema must be an object");
        const json_t *schema = json_object_get(js, "schema");
        if (!schema)
            return perr(e, "response_format", "response_format.json_schema.schema is required");
        return params_schema(j, schema, "response_format.json_schema.schema", e);
    }
    return perr(e, "response_format",
                "response_format.type must be text, json_object or json_schema, got '%s'", type);
}

static bool finish_params(SrvJob *j, SrvErr *e)
{
    SglErr err = {{0}};
    if (sgl_sampling_params_check(&j->p, j->s->vocab, &err) != SGL_OK)
        return perr(e, NULL, "%s", err.msg);
    return true;
}

bool params_native(SrvJob *j, const json_t *sp, SrvErr *e)
{
    static const char *known[] = {
        "max_new_tokens", "min_new_tokens", "temperature", "top_p", "top_k", "min_p",
        "frequency_penalty", "presence_penalty", "repetition_penalty", "stop", "stop_token_ids",
        "ignore_eos", "n", "seed", "sampling_seed", "regex", "json_schema", "skip_special_tokens",
        "spaces_between_special_tokens", "no_stop_trim", "ebnf", NULL};
    if (!sp || json_is_null(sp))
        return finish_params(j, e);
    if (!json_is_object(sp))
        return perr(e, "sampling_params", "sampling_params must be an object, got %s", jtype(sp));
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)sp, key, v) {
        bool ok = false;
        for (int i = 0; known[i] && !ok; i++)
            ok = strcmp(known[i], key) == 0;
        if (!ok)
            return perr(e, "sampling_params", "sampling_params: unknown field '%.200s'", key);
    }
    const char *pre = "sampling_params.";
    SglSamplingParams *p = &j->p;
    long long seed = 0;
    bool has_seed = false, skip = true;
    if (!get_i32(sp, pre, "max_new_tokens", 0, j->s->context_len, &p->max_new_tokens, NULL, e) ||
        !get_i32(sp, pre, "min_new_tokens", 0, j->s->context_len, &p->min_new_tokens, NULL, e) ||
        !get_num(sp, pre, "temperature", 0, 1e6, &p->temperature, NULL, e) ||
        !get_num(sp, pre, "top_p", 0, 1, &p->top_p, NULL, e) ||
        !get_i32(sp, pre, "top_k", -1, 1 << 30, &p->top_k, NULL, e) ||
        !get_num(sp, pre, "min_p", 0, 1, &p->min_p, NULL, e) ||
        !get_num(sp, pre, "frequency_penalty", -2, 2, &p->frequency_penalty, NULL, e) ||
        !get_num(sp, pre, "presence_penalty", -2, 2, &p->presence_penalty, NULL, e) ||
        !get_num(sp, pre, "repetition_penalty", 0, 2, &p->repetition_penalty, NULL, e) ||
        !get_i32(sp, pre, "n", 1, SGL_MAX_N, &p->n, NULL, e) ||
        !get_int(sp, pre, "seed", 0, INT64_MAX, &seed, &has_seed, e) ||
        !get_int(sp, pre, "sampling_seed", 0, INT64_MAX, &seed, &has_seed, e) ||
        !get_bool(sp, pre, "ignore_eos", &p->ignore_eos, e) ||
        !get_bool(sp, pre, "skip_special_tokens", &skip, e) ||
        !get_bool(sp, pre, "spaces_between_special_tokens", &skip, e) ||
        !get_bool(sp, pre, "no_stop_trim", &skip, e) || !get_stop(j, sp, pre, "stop", e) ||
        !get_stop_ids(j, sp, pre, "stop_token_ids", e))
        return false;
    if (p->top_k == 0)
        p->top_k = -1;
    p->seed = (uint64_t)seed;
    p->has_seed = has_seed;
    const json_t *re = json_object_get(sp, "regex"), *js = json_object_get(sp, "json_schema");
    if (json_object_get(sp, "ebnf") && !json_is_null(json_object_get(sp, "ebnf")))
        return perr(e, "ebnf", "sampling_params.ebnf: EBNF grammars are not supported (use regex or json_schema)");
    if (re && !json_is_null(re)) {
        if (!json_is_string(re))
            return perr(e, "regex", "sampling_params.regex must be a string, got %s", jtype(re));
        if (!params_regex(j, json_string_value(re), json_string_length(re), "sampling_params.regex", e))
            return false;
    }
    if (js && !json_is_null(js)) {
        if (!json_is_string(js))
            return perr(e, "json_schema", "sampling_params.json_schema must be a string, got %s", jtype(js));
        if (!params_schema(j, js, "sampling_params.json_schema", e))
            return false;
    }
    return finish_params(j, e);
}

bool params_openai(SrvJob *j, const json_t *req, bool chat, SrvErr *e)
{
    SglSamplingParams *p = &j->p;
    const char *pre = "";
    long long seed = 0;
    bool has_seed = false, stream = false, echo = false;
    p->temperature = 1.0f;
    const json_t *model = json_object_get(req, "model");
    if (model && !json_is_string(model))
        return perr(e, "model", "model must be a string, got %s", jtype(model));
    if (!get_i32(req, pre, "max_tokens", 0, j->s->context_len, &p->max_new_tokens, NULL, e) ||
        !get_i32(req, pre, "max_completion_tokens", 0, j->s->context_len, &p->max_new_tokens, NULL, e) ||
        !get_i32(req, pre, "min_tokens", 0, j->s->context_len, &p->min_new_tokens, NULL, e) ||
        !get_num(req, pre, "temperature", 0, 2, &p->temperature, NULL, e) ||
        !get_num(req, pre, "top_p", 0, 1, &p->top_p, NULL, e) ||
        !get_i32(req, pre, "top_k", -1, 1 << 30, &p->top_k, NULL, e) ||
        !get_num(req, pre, "min_p", 0, 1, &p->min_p, NULL, e) ||
        !get_num(req, pre, "frequency_penalty", -2, 2, &p->frequency_penalty, NULL, e) ||
        !get_num(req, pre, "presence_penalty", -2, 2, &p->presence_penalty, NULL, e) ||
        !get_num(req, pre, "repetition_penalty", 0, 2, &p->repetition_penalty, NULL, e) ||
        !get_i32(req, pre, "n", 1, SGL_MAX_N, &p->n, NULL, e) ||
        !get_int(req, pre, "seed", 0, INT64_MAX, &seed, &has_seed, e) ||
        !get_bool(req, pre, "ignore_eos", &p->ignore_eos, e) ||
        !get_bool(req, pre, "stream", &stream, e) || !get_bool(req, pre, "echo", &echo, e) ||
        !get_stop(j, req, pre, "stop", e) || !get_stop_ids(j, req, pre, "stop_token_ids", e))
        return false;
    if (p->top_k == 0)
        p->top_k = -1;
    p->seed = (uint64_t)seed;
    p->has_seed = has_seed;
    const json_t *so = json_object_get(req, "stream_options");
    if (so && !json_is_null(so)) {
        bool iu = false;
        if (!json_is_object(so))
            return perr(e, "stream_options", "stream_options must be an object, got %s", jtype(so));
        if (!get_bool(so, "stream_options.", "include_usage", &iu, e))
            return false;
    }
    const json_t *lb = json_object_get(req, "logit_bias");
    if (lb && !json_is_null(lb) && !(json_is_object(lb) && json_object_size(lb) == 0))
        return perr(e, "logit_bias", "logit_bias is not supported");
    const json_t *bo = json_object_get(req, "best_of");
    if (bo && !json_is_null(bo) && !(json_is_integer(bo) && json_integer_value(bo) == p->n))
        return perr(e, "best_of", "best_of is not supported (must equal n or be absent)");
    if (chat) {
        bool lp = false;
        int32_t top = 0;
        if (!get_bool(req, pre, "logprobs", &lp, e) ||
            !get_i32(req, pre, "top_logprobs", 0, 20, &top, NULL, e))
            return false;
        if (top > 0 && !lp)
            return perr(e, "top_logprobs", "top_logprobs needs logprobs: true");
        p->return_logprob = lp;
        p->top_logprobs_num = top;
    } else {
        int32_t lp = -1;
        if (!get_i32(req, pre, "logprobs", 0, 20, &lp, NULL, e))
            return false;
        p->return_logprob = lp >= 0;
        p->top_logprobs_num = lp > 0 ? lp : 0;
    }
    const json_t *re = json_object_get(req, "regex"), *js = json_object_get(req, "json_schema");
    if (re && !json_is_null(re)) {
        if (!json_is_string(re))
            return perr(e, "regex", "regex must be a string, got %s", jtype(re));
        if (!params_regex(j, json_string_value(re), json_string_length(re), "regex", e))
            return false;
    }
    if (js && !json_is_null(js) && !params_schema(j, js, "json_schema", e))
        return false;
    if (!response_format(j, json_object_get(req, "response_format"), e))
        return false;
    return finish_params(j, e);
}

bool prompt_text(SrvJob *j, int32_t i, const char *text, size_t len, bool add_special, SrvErr *e)
{
    int32_t *ids = NULL, n = 0;
    if (sgl_engine_encode(j->s->engine, text, len, add_special, &ids, &n) != SGL_OK)
        return perr(e, "prompt", "the prompt could not be tokenized");
    free(j->prompt[i]);
    j->prompt[i] = ids;
    j->n_prompt[i] = n;
    if (n == 0)
        return perr(e, "prompt", "the prompt is empty");
    if (n >= j->s->context_len)
        return perr(e, "prompt", "the prompt has %d tokens; the model's context is %d", n,
                    j->s->context_len);
    return true;
}

bool prompt_ids(SrvJob *j, int32_t i, const json_t *arr, const char *field, SrvErr *e)
{
    if (!json_is_array(arr))
        return perr(e, field, "%s must be a list of token ids, got %s", field, jtype(arr));
    size_t n = json_array_size(arr);
    if (n == 0)
        return perr(e, field, "%s is empty", field);
    if (n >= (size_t)j->s->context_len)
        return perr(e, field, "%s has %zu tokens; the model's context is %d", field, n, j->s->context_len);
    int32_t *ids = malloc(n * sizeof *ids);
    if (!ids)
        return perr(e, field, "out of memory");
    for (size_t k = 0; k < n; k++) {
        const json_t *x = json_array_get(arr, k);
        if (!json_is_integer(x) || json_integer_value(x) < 0 || json_integer_value(x) >= j->s->vocab) {
            free(ids);
            return perr(e, field, "%s[%zu] must be a token id in [0, %d)", field, k, j->s->vocab);
        }
        ids[k] = (int32_t)json_integer_value(x);
    }
    free(j->prompt[i]);
    j->prompt[i] = ids;
    j->n_prompt[i] = (int32_t)n;
    return true;
}

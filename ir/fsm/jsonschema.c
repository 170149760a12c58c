/* jsonschema.c -- JSON Schema -> regex, one emitter per JSON type.
 *
 * A recursive walk over the schema appends regex text to one buffer; the
 * context carries the root (for $ref), the options, the JSON Pointer of the
 * current schema (for diagnostics) and the nesting/ref depths, both bounded.
 * Every keyword of a schema object is checked against the supported and
 * ignored lists first, so nothing is silently dropped.
 */
#include "ir/fsm/jsonschema.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One JSON string character (see the header for the exact set). */
#define STR_CHAR                                                                             \
    "(?:[^\"\\\\\\x00-\\x1F]|\\\\[\"\\\\/bfnrt]|\\\\u(?:[1-9A-Ca-cEeFf][0-9A-Fa-f]{3}"      \
    "|[Dd][0-7][0-9A-Fa-f]{2}|0(?:[1-9A-Fa-f][0-9A-Fa-f]{2}|0(?:[1-9A-Fa-f][0-9A-Fa-f]"     \
    "|0[1-9A-Fa-f]))))"
#define INT_RE "-?(?:0|[1-9][0-9]{0,17})"
#define NUM_RE "-?(?:0|[1-9][0-9]{0,17})(?:\\.[0-9]+)?(?:[eE][+-]?[0-9]{1,2})?"

#define DATE_RE "[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
#define TIME_RE \
    "(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\\.[0-9]{1,9})?(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
#define EMAIL_RE "[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\\.[A-Za-z0-9-]{1,63}){0,4}\\.[A-Za-z]{2,24}"
#define UUID_RE "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"

typedef struct {
    const json_t *root;
    JsonWs ws;
    int32_t max_ref_depth, ref_depth, depth;
    char *buf;
    size_t len, cap;
    char path[512];
    SglStatus st;
    FsmErr *err;
} Ctx;

static bool fail(Ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static bool fail(Ctx *c, const char *fmt, ...)
{
    if (c->st != SGL_OK)
        return false;
    c->st = SGL_E_INVAL;
    if (c->err) {
        char what[400];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(what, sizeof what, fmt, ap);
        va_end(ap);
        c->err->col = 0;
        snprintf(c->err->msg, sizeof c->err->msg, "jsonschema: %.300s at %.190s", what,
                 c->path[0] ? c->path : "#");
    }
    return false;
}

static bool nomem(Ctx *c)
{
    if (c->st == SGL_OK) {
        c->st = SGL_E_NOMEM;
        if (c->err)
            c->err->col = 0, snprintf(c->err->msg, sizeof c->err->msg, "jsonschema: out of memory");
    }
    return false;
}

static bool put(Ctx *c, const char *s)
{
    size_t n = strlen(s);
    if (c->len + n > JSONSCHEMA_MAX_REGEX_BYTES)
        return fail(c, "the schema expands to a regex larger than %d bytes",
                    JSONSCHEMA_MAX_REGEX_BYTES);
    if (c->len + n + 1 > c->cap) {
        size_t nc = c->cap ? c->cap : 256;
        while (nc < c->len + n + 1)
            nc *= 2;
        char *q = realloc(c->buf, nc);
        if (!q)
            return nomem(c);
        c->buf = q;
        c->cap = nc;
    }
    memcpy(c->buf + c->len, s, n + 1);
    c->len += n;
    return true;
}

static bool put_lit(Ctx *c, const char *s, size_t n)
{
    if (c->len + n > JSONSCHEMA_MAX_REGEX_BYTES)
        return fail(c, "the schema expands to a regex larger than %d bytes",
                    JSONSCHEMA_MAX_REGEX_BYTES);
    return regex_escape_append(&c->buf, &c->len, &c->cap, s, n) == SGL_OK || nomem(c);
}

static const char *sep(const Ctx *c)
{
    return c->ws == JSON_WS_SPACE ? ", " : c->ws == JSON_WS_COMPACT ? "," : ",[ ]?";
}

static const char *colon(const Ctx *c)
{
    return c->ws == JSON_WS_SPACE ? ": " : c->ws == JSON_WS_COMPACT ? ":" : ":[ ]?";
}

/* Appends "/seg" to the JSON Pointer; returns the old length to restore. */
static size_t path_push(Ctx *c, const char *seg)
{
    size_t old = strlen(c->path);
    snprintf(c->path + old, sizeof c->path - old, "%s%s", old ? "/" : "#/", seg);
    return old;
}

static void path_pop(Ctx *c, size_t old)
{
    c->path[old] = '\0';
}

/* A JSON value written as text, escaped into the regex. */
static bool put_value(Ctx *c, const json_t *v)
{
    size_t flags = JSON_ENCODE_ANY | (c->ws == JSON_WS_SPACE ? 0 : JSON_COMPACT);
    char *s = json_dumps(v, flags);
    if (!s)
        return nomem(c);
    bool ok = put_lit(c, s, strlen(s));
    free(s);
    return ok;
}

static bool emit(Ctx *c, const json_t *schema);

static const char *const IGNORED[] = {
    "title", "description", "examples", "default", "$schema", "$id", "$comment", "$defs",
    "definitions", "deprecated", "readOnly", "writeOnly", "$anchor", NULL};
static const char *const SUPPORTED[] = {
    "type", "enum", "const", "properties", "required", "additionalProperties", "items",
    "minItems", "maxItems", "minLength", "maxLength", "pattern", "format", "anyOf", "$ref", NULL};

static bool in_list(const char *const *list, const char *k)
{
    for (; *list; list++)
        if (strcmp(*list, k) == 0)
            return true;
    return false;
}

/* A non-negative integer keyword, or -1 when absent. */
static bool get_count(Ctx *c, const json_t *schema, const char *key, int64_t *out)
{
    const json_t *v = json_object_get(schema, key);
    *out = -1;
    if (!v)
        return true;
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return fail(c, "'%s' must be a non-negative integer", key);
    if (json_integer_value(v) > REGEX_MAX_REPEAT)
        return fail(c, "'%s' %lld exceeds the limit %d", key, (long long)json_integer_value(v),
                    REGEX_MAX_REPEAT);
    *out = json_integer_value(v);
    return true;
}

/* Appends "{m,n}" for counts (n < 0: unbounded). */
static bool put_range(Ctx *c, int64_t m, int64_t n)
{
    char q[64];
    if (n < 0)
        snprintf(q, sizeof q, "{%lld,}", (long long)m);
    else
        snprintf(q, sizeof q, "{%lld,%lld}", (long long)m, (long long)n);
    return put(c, q);
}

/* pattern: see the header. The pattern must compile on its own and its DFA
 * must not use '"', '\\' or control bytes. */
static bool emit_pattern(Ctx *c, const char *pat)
{
    size_t n = strlen(pat);
    bool head = n > 0 && pat[0] == '^', tail = false;
    if (n > (size_t)head && pat[n - 1] == '$') {
        size_t bs = 0;
        for (size_t i = n - 1; i > (size_t)head && pat[i - 1] == '\\'; i--)
            bs++;
        tail = bs % 2 == 0;
    }
    const char *core = pat + head;
    size_t core_len = n - head - tail;
    FsmErr rerr;
    SglDfa *d = NULL;
    SglStatus st = regex_compile(core, core_len, NULL, &d, NULL, &rerr);
    if (st != SGL_OK)
        return fail(c, "bad 'pattern': %s", rerr.msg);
    bool bad = false;
    for (int b = 0; b < 256 && !bad; b++) {
        if (b != '"' && b != '\\' && b >= 0x20)
            continue;
        for (int32_t s = 0; s < d->n_states && !bad; s++)
            bad = sgl_dfa_step(d, s, (uint8_t)b) >= 0;
    }
    sgl_dfa_free(d);
    if (bad)
        return fail(c, "'pattern' can match '\"', '\\' or a control character, which JSON "
                       "must escape (not supported)");
    char *text = malloc(core_len + 1);
    if (!text)
        return nomem(c);
    memcpy(text, core, core_len);
    text[core_len] = '\0';
    bool ok = put(c, "\"") && (head || put(c, STR_CHAR "*")) && put(c, "(?:") && put(c, text) &&
              put(c, ")") && (tail || put(c, STR_CHAR "*")) && put(c, "\"");
    free(text);
    return ok;
}

static bool emit_string(Ctx *c, const json_t *schema)
{
    const json_t *fmt = json_object_get(schema, "format"), *pat = json_object_get(schema, "pattern");
    int64_t mn, mx;
    if (!get_count(c, schema, "minLength", &mn) || !get_count(c, schema, "maxLength", &mx))
        return false;
    if ((fmt || pat) && (mn >= 0 || mx >= 0))
        return fail(c, "minLength/maxLength together with %s are not supported",
                    fmt ? "format" : "pattern");
    if (fmt && pat)
        return fail(c, "format together with pattern is not supported");
    if (fmt) {
        const char *f = json_is_string(fmt) ? json_string_value(fmt) : "";
        const char *re = strcmp(f, "date") == 0        ? DATE_RE
                         : strcmp(f, "time") == 0      ? TIME_RE
                         : strcmp(f, "date-time") == 0 ? DATE_RE "T" TIME_RE
                         : strcmp(f, "email") == 0     ? EMAIL_RE
                         : strcmp(f, "uuid") == 0      ? UUID_RE
                                                       : NULL;
        if (!re)
            return fail(c, "unsupported format '%s'", f);
        return put(c, "\"") && put(c, re) && put(c, "\"");
    }
    if (pat) {
        if (!json_is_string(pat))
            return fail(c, "'pattern' must be a string");
        return emit_pattern(c, json_string_value(pat));
    }
    if (mx >= 0 && mn > mx)
        return fail(c, "unsatisfiable: minLength %lld > maxLength %lld", (long long)mn,
                    (long long)mx);
    if (mn < 0 && mx < 0)
        return put(c, "\"" STR_CHAR "*\"");
    return put(c, "\"" STR_CHAR) && put_range(c, mn < 0 ? 0 : mn, mx) && put(c, "\"");
}

static bool emit_array(Ctx *c, const json_t *schema)
{
    const json_t *items = json_object_get(schema, "items");
    int64_t mn, mx;
    if (!get_count(c, schema, "minItems", &mn) || !get_count(c, schema, "maxItems", &mx))
        return false;
    if (mn < 0)
        mn = 0;
    if (mx >= 0 && mn > mx)
        return fail(c, "unsatisfiable: minItems %lld > maxItems %lld", (long long)mn, (long long)mx);
    if (mx == 0)
        return put(c, "\\[\\]");
    if (!items)
        return fail(c, "array without 'items' is not supported");
    if (!json_is_object(items))
        return fail(c, "'items' must be a schema object (tuple forms are not supported)");
    /* I: the item regex, emitted once into a scratch copy and repeated */
    size_t start = c->len, old = path_push(c, "items");
    bool ok = emit(c, items);
    path_pop(c, old);
    if (!ok)
        return false;
    size_t ilen = c->len - start;
    char *item = malloc(ilen + 1);
    if (!item)
        return nomem(c);
    memcpy(item, c->buf + start, ilen + 1);
    c->len = start;
    c->buf[start] = '\0';
    ok = put(c, "\\[");
    if (mn == 0)
        ok = ok && put(c, "(?:");
    ok = ok && put(c, "(?:") && put(c, item) && put(c, ")(?:") && put(c, sep(c)) && put(c, "(?:") &&
         put(c, item) && put(c, "))") &&
         put_range(c, mn == 0 ? 0 : mn - 1, mx < 0 ? -1 : mx - 1);
    if (mn == 0)
        ok = ok && put(c, ")?");
    ok = ok && put(c, "\\]");
    free(item);
    return ok;
}

/* One member: "key": value. */
static bool emit_member(Ctx *c, const char *key, const json_t *sub)
{
    json_t *k = json_string(key);
    if (!k)
        return nomem(c);
    bool ok = put_value(c, k) && put(c, colon(c));
    json_decref(k);
    if (!ok)
        return false;
    size_t old = path_push(c, "properties/");
    snprintf(c->path + strlen(c->path), sizeof c->path - strlen(c->path), "%s", key);
    ok = emit(c, sub);
    path_pop(c, old);
    return ok;
}

static bool emit_object(Ctx *c, const json_t *schema)
{
    const json_t *props = json_object_get(schema, "properties"),
                 *req = json_object_get(schema, "required"),
                 *addl = json_object_get(schema, "additionalProperties");
    if (addl && !json_is_false(addl))
        return fail(c, "additionalProperties other than false is not supported");
    if (props && !json_is_object(props))
        return fail(c, "'properties' must be an object");
    if (req && !json_is_array(req))
        return fail(c, "'required' must be an array");
    size_t n = props ? json_object_size(props) : 0, i = 0, ri;
    const char **keys = calloc(n + 1, sizeof *keys);
    const json_t **subs = calloc(n + 1, sizeof *subs);
    bool *required = calloc(n + 1, sizeof *required), ok = false;
    if (!keys || !subs || !required) {
        nomem(c);
        goto out;
    }
    const char *key;
    json_t *sub;
    if (props)
        json_object_foreach((json_t *)props, key, sub) {
            keys[i] = key;
            subs[i++] = sub;
        }
    json_t *r;
    if (req)
        json_array_foreach((json_t *)req, ri, r) {
            bool found = false;
            if (!json_is_string(r)) {
                fail(c, "'required' entries must be strings");
                goto out;
            }
            for (size_t j = 0; j < n; j++)
                if (strcmp(keys[j], json_string_value(r)) == 0)
                    required[j] = found = true;
            if (!found) {
                fail(c, "required property '%s' is not in 'properties'", json_string_value(r));
                goto out;
            }
        }
    size_t first_req = n;
    for (size_t j = 0; j < n && first_req == n; j++)
        if (required[j])
            first_req = j;
    if (!put(c, "\\{"))
        goto out;
    if (first_req < n) {
        /* optional members before the first required one carry their comma
         * after them; every later member carries its comma before it */
        for (size_t j = 0; j < first_req; j++)
            if (!put(c, "(?:") || !emit_member(c, keys[j], subs[j]) || !put(c, sep(c)) ||
                !put(c, ")?"))
                goto out;
        if (!emit_member(c, keys[first_req], subs[first_req]))
            goto out;
        for (size_t j = first_req + 1; j < n; j++)
            if (!put(c, required[j] ? "(?:" : "(?:") || !put(c, sep(c)) ||
                !emit_member(c, keys[j], subs[j]) || !put(c, required[j] ? ")" : ")?"))
                goto out;
    } else if (n > 0) {
        /* all optional: empty, or a first present member then any later ones */
        if (!put(c, "(?:"))
            goto out;
        for (size_t j = 0; j < n; j++) {
            if ((j > 0 && !put(c, "|")) || !emit_member(c, keys[j], subs[j]))
                goto out;
            for (size_t l = j + 1; l < n; l++)
                if (!put(c, "(?:") || !put(c, sep(c)) || !emit_member(c, keys[l], subs[l]) ||
                    !put(c, ")?"))
                    goto out;
        }
        if (!put(c, ")?"))
            goto out;
    }
    ok = put(c, "\\}");
out:
    free(keys);
    free(subs);
    free(required);
    return ok;
}

static bool emit_type(Ctx *c, const json_t *schema, const char *t)
{
    if (strcmp(t, "null") == 0)
        return put(c, "null");
    if (strcmp(t, "boolean") == 0)
        return put(c, "(?:true|false)");
    if (strcmp(t, "integer") == 0)
        return put(c, INT_RE);
    if (strcmp(t, "number") == 0)
        return put(c, NUM_RE);
    if (strcmp(t, "string") == 0)
        return emit_string(c, schema);
    if (strcmp(t, "array") == 0)
        return emit_array(c, schema);
    if (strcmp(t, "object") == 0)
        return emit_object(c, schema);
    return fail(c, "unknown type '%s'", t);
}

/* $ref "#/$defs/NAME" or "#/definitions/NAME", resolved against the root. */
static bool emit_ref(Ctx *c, const json_t *ref)
{
    const char *r = json_is_string(ref) ? json_string_value(ref) : "";
    const char *name = NULL, *section = NULL;
    if (strncmp(r, "#/$defs/", 8) == 0)
        section = "$defs", name = r + 8;
    else if (strncmp(r, "#/definitions/", 14) == 0)
        section = "definitions", name = r + 14;
    if (!name || !*name || strchr(name, '/') || strchr(name, '~'))
        return fail(c, "unsupported $ref '%s' (only #/$defs/NAME and #/definitions/NAME)", r);
    const json_t *target = json_object_get(json_object_get(c->root, section), name);
    if (!target)
        return fail(c, "$ref '%s' not found", r);
    if (c->ref_depth >= c->max_ref_depth)
        return fail(c, "$ref '%s' nested deeper than %d (recursive schema?)", r, c->max_ref_depth);
    char saved[sizeof c->path];
    memcpy(saved, c->path, sizeof saved);
    snprintf(c->path, sizeof c->path, "%s", r);
    c->ref_depth++;
    bool ok = emit(c, target);
    c->ref_depth--;
    memcpy(c->path, saved, sizeof saved);
    return ok;
}

/* schema := true | false | { keyword: value, ... } */
static bool emit(Ctx *c, const json_t *schema)
{
    if (json_is_true(schema))
        return fail(c, "a schema that allows any value is not supported");
    if (json_is_false(schema))
        return fail(c, "unsatisfiable: schema 'false'");
    if (!json_is_object(schema))
        return fail(c, "a schema must be an object");
    if (c->depth >= JSONSCHEMA_MAX_DEPTH)
        return fail(c, "schema nested deeper than %d", JSONSCHEMA_MAX_DEPTH);
    const char *key;
    json_t *v;
    int n_constraining = 0;
    json_object_foreach((json_t *)schema, key, v) {
        if (in_list(IGNORED, key))
            continue;
        if (!in_list(SUPPORTED, key))
            return fail(c, "unsupported keyword '%s'", key);
        n_constraining++;
    }
    const json_t *ref = json_object_get(schema, "$ref"), *en = json_object_get(schema, "enum"),
                 *cn = json_object_get(schema, "const"), *any = json_object_get(schema, "anyOf"),
                 *type = json_object_get(schema, "type");
    bool ok = false;
    c->depth++;
    if (ref) {
        if (n_constraining > 1)
            fail(c, "keywords beside $ref are not supported");
        else
            ok = emit_ref(c, ref);
    } else if (cn) {
        ok = put(c, "(?:") && put_value(c, cn) && put(c, ")");
    } else if (en) {
        size_t i;
        if (!json_is_array(en) || json_array_size(en) == 0) {
            fail(c, "'enum' must be a non-empty array");
        } else {
            ok = put(c, "(?:");
            json_array_foreach((json_t *)en, i, v) ok = ok && (i == 0 || put(c, "|")) && put_value(c, v);
            ok = ok && put(c, ")");
        }
    } else if (any) {
        size_t i;
        if (!json_is_array(any) || json_array_size(any) == 0) {
            fail(c, "'anyOf' must be a non-empty array");
        } else if (n_constraining > 1) {
            fail(c, "keywords beside anyOf are not supported (move them into each branch)");
        } else {
            ok = put(c, "(?:");
            json_array_foreach((json_t *)any, i, v) {
                char seg[32];
                snprintf(seg, sizeof seg, "anyOf/%zu", i);
                size_t old = path_push(c, seg);
                ok = ok && (i == 0 || put(c, "|")) && emit(c, v);
                path_pop(c, old);
            }
            ok = ok && put(c, ")");
        }
    } else if (json_is_string(type)) {
        ok = emit_type(c, schema, json_string_value(type));
    } else if (json_is_array(type) && json_array_size(type) > 0) {
        size_t i;
        ok = put(c, "(?:");
        json_array_foreach((json_t *)type, i, v) {
            if (!json_is_string(v)) {
                ok = fail(c, "'type' entries must be strings");
                break;
            }
            ok = ok && (i == 0 || put(c, "|")) && emit_type(c, schema, json_string_value(v));
        }
        ok = ok && put(c, ")");
    } else if (type) {
        fail(c, "'type' must be a string or a non-empty array of strings");
    } else if (json_object_get(schema, "properties")) {
        ok = emit_type(c, schema, "object");
    } else if (json_object_get(schema, "items")) {
        ok = emit_type(c, schema, "array");
    } else {
        fail(c, "schema without 'type' (a schema that allows any value is not supported)");
    }
    c->depth--;
    return ok && c->st == SGL_OK;
}

SglStatus jsonschema_to_regex(const json_t *schema, const JsonSchemaOpts *opts, char **regex,
                              FsmErr *err)
{
    Ctx c = {.root = schema, .err = err};
    *regex = NULL;
    if (err)
        err->col = 0, err->msg[0] = '\0';
    c.ws = opts ? opts->ws : JSON_WS_SPACE;
    c.max_ref_depth = opts && opts->max_ref_depth > 0 ? opts->max_ref_depth
                                                      : JSONSCHEMA_DEFAULT_REF_DEPTH;
    if (!put(&c, "") || !emit(&c, schema)) {
        free(c.buf);
        return c.st != SGL_OK ? c.st : SGL_E_NOMEM;
    }
    *regex = c.buf;
    return SGL_OK;
}

SglStatus jsonschema_text_to_regex(const char *text, size_t len, const JsonSchemaOpts *opts,
                                   char **regex, FsmErr *err)
{
    json_error_t jerr;
    *regex = NULL;
    json_t *schema = json_loadb(text, len, 0, &jerr);
    if (!schema) {
        if (err) {
            err->col = jerr.column > 0 ? jerr.column : 0;
            snprintf(err->msg, sizeof err->msg, "jsonschema: invalid JSON at line %d, column %d: %s",
                     jerr.line, jerr.column, jerr.text);
        }
        return SGL_E_INVAL;
    }
    SglStatus st = jsonschema_to_regex(schema, opts, regex, err);
    json_decref(schema);
    return st;
}

SglStatus jsonschema_compile(const json_t *schema, const JsonSchemaOpts *opts,
                             const RegexLimits *lim, SglDfa **out, FsmErr *err)
{
    char *re = NULL;
    *out = NULL;
    SglStatus st = jsonschema_to_regex(schema, opts, &re, err);
    if (st != SGL_OK)
        return st;
    FsmErr rerr;
    st = regex_compile(re, strlen(re), lim, out, NULL, &rerr);
    if (st != SGL_OK && err) {
        err->col = 0;
        snprintf(err->msg, sizeof err->msg, "jsonschema: %.490s", rerr.msg);
    }
    free(re);
    return st;
}

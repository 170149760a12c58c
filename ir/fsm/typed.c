/* typed.c -- typed output and choices -> JSON Schema / regex (see typed.h).
 * Deliberately a thin layer: building the schema keeps one definition of
 * what each JSON type's text looks like (jsonschema.c). */
#include "ir/fsm/typed.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static SglStatus fail(FsmErr *err, SglStatus st, const char *msg, const char *arg)
{
    if (err) {
        err->col = 0;
        snprintf(err->msg, sizeof err->msg, "typed: %s%s", msg, arg ? arg : "");
    }
    return st;
}

static SglStatus to_schema(const TypedType *t, int depth, json_t **out, FsmErr *err)
{
    *out = NULL;
    if (!t)
        return fail(err, SGL_E_INVAL, "missing type", NULL);
    if (depth > TYPED_MAX_DEPTH)
        return fail(err, SGL_E_INVAL, "type nested deeper than the limit of 32", NULL);
    static const char *const names[] = {"integer", "number", "boolean", "string", "array",
                                        "object"};  /* ORDER TypedKind */
    _Static_assert(sizeof names / sizeof *names == TYPED_RECORD + 1, "names follow TypedKind");
    if ((int)t->kind < 0 || t->kind > TYPED_RECORD)
        return fail(err, SGL_E_INVAL, "unknown type kind", NULL);
    json_t *s = json_pack("{s:s}", "type", names[t->kind]), *sub = NULL;
    SglStatus st = SGL_E_NOMEM;
    if (!s)
        goto nomem;
    if (t->kind == TYPED_LIST) {
        if ((st = to_schema(t->elem, depth + 1, &sub, err)) != SGL_OK)
            goto fail;
        if (json_object_set_new(s, "items", sub) != 0)
            goto nomem;
    } else if (t->kind == TYPED_RECORD) {
        json_t *props = json_object(), *req = json_array();
        if (!props || !req || json_object_set_new(s, "properties", props) != 0 ||
            json_object_set_new(s, "required", req) != 0) {
            json_decref(props);
            json_decref(req);
            goto nomem;
        }
        for (int32_t i = 0; i < t->n_fields; i++) {
            const char *name = t->names[i];
            if (!name || !*name) {
                st = fail(err, SGL_E_INVAL, "empty field name", NULL);
                goto fail;
            }
            if (json_object_get(props, name)) {
                st = fail(err, SGL_E_INVAL, "duplicate field ", name);
                goto fail;
            }
            if ((st = to_schema(t->fields[i], depth + 1, &sub, err)) != SGL_OK)
                goto fail;
            if (json_object_set_new(props, name, sub) != 0 ||
                json_array_append_new(req, json_string(name)) != 0)
                goto nomem;
        }
    }
    *out = s;
    return SGL_OK;
nomem:
    st = fail(err, SGL_E_NOMEM, "out of memory", NULL);
fail:
    json_decref(s);
    return st;
}

SglStatus typed_to_schema(const TypedType *t, json_t **out, FsmErr *err)
{
    return to_schema(t, 0, out, err);
}

SglStatus typed_to_regex(const TypedType *t, const JsonSchemaOpts *opts, char **regex,
                         FsmErr *err)
{
    json_t *schema;
    *regex = NULL;
    SglStatus st = typed_to_schema(t, &schema, err);
    if (st != SGL_OK)
        return st;
    st = jsonschema_to_regex(schema, opts, regex, err);
    json_decref(schema);
    return st;
}

/* Appends one raw byte, growing the buffer as regex_escape_append does. */
static bool append_byte(char **buf, size_t *len, size_t *cap, char b)
{
    if (*len + 2 > *cap) {
        size_t nc = *cap ? *cap * 2 : 64;
        char *q = realloc(*buf, nc);
        if (!q)
            return false;
        *buf = q;
        *cap = nc;
    }
    (*buf)[(*len)++] = b;
    (*buf)[*len] = '\0';
    return true;
}

SglStatus typed_choices_regex(const char *const *choices, int32_t n, char **regex, FsmErr *err)
{
    char *buf = NULL;
    size_t len = 0, cap = 0;
    *regex = NULL;
    if (n < 1)
        return fail(err, SGL_E_INVAL, "choices must not be empty", NULL);
    for (int32_t i = 0; i < n; i++) {
        if (!choices[i] || !*choices[i]) {
            free(buf);
            return fail(err, SGL_E_INVAL, "empty choice", NULL);
        }
        if ((i > 0 && !append_byte(&buf, &len, &cap, '|')) ||
            regex_escape_append(&buf, &len, &cap, choices[i], strlen(choices[i])) != SGL_OK) {
            free(buf);
            return fail(err, SGL_E_NOMEM, "out of memory", NULL);
        }
    }
    *regex = buf;
    return SGL_OK;
}

/* value.c -- runtime values: construction, refcounts, text and JSON forms. */
#include "backend/value.h"

#include "runtime/textfmt.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static Value *alloc_val(ValKind k)
{
    Value *v = calloc(1, sizeof *v);
    if (v) {
        v->refs = 1;
        v->kind = k;
    }
    return v;
}

Value *val_ref(Value *v)
{
    if (v)
        __atomic_add_fetch(&v->refs, 1, __ATOMIC_RELAXED);
    return v;
}

void val_unref(Value *v)
{
    if (!v || __atomic_sub_fetch(&v->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    switch (v->kind) {
    case VAL_STR:
        free(v->str.s);
        break;
    case VAL_LIST:
        for (uint32_t i = 0; i < v->list.n; i++)
            val_unref(v->list.items[i]);
        free(v->list.items);
        break;
    case VAL_RECORD:
        for (int32_t i = 0; i < v->rec.type->n_fields; i++)
            val_unref(v->rec.fields[i]);
        free(v->rec.fields);
        break;
    default:
        break;
    }
    free(v);
}

Value *val_void(void) { return alloc_val(VAL_VOID); }

Value *val_str_take(char *s, size_t len)
{
    Value *v = alloc_val(VAL_STR);
    if (!v) {
        free(s);
        return NULL;
    }
    v->str.s = s;
    v->str.len = len;
    return v;
}

Value *val_str(const char *s, size_t len)
{
    char *c = malloc(len + 1);
    if (!c)
        return NULL;
    if (len)
        memcpy(c, s, len);
    c[len] = '\0';
    return val_str_take(c, len);
}

Value *val_int(int64_t i)
{
    Value *v = alloc_val(VAL_INT);
    if (v)
        v->i = i;
    return v;
}

Value *val_float(double f)
{
    Value *v = alloc_val(VAL_FLOAT);
    if (v)
        v->f = f;
    return v;
}

Value *val_bool(bool b)
{
    Value *v = alloc_val(VAL_BOOL);
    if (v)
        v->b = b;
    return v;
}

Value *val_list_take(Value **items, uint32_t n)
{
    Value *v = alloc_val(VAL_LIST);
    Value **copy = n ? malloc(n * sizeof *copy) : NULL;
    if (!v || (n && !copy)) {
        for (uint32_t i = 0; i < n; i++)
            val_unref(items[i]);
        free(v);
        free(copy);
        return NULL;
    }
    if (n)
        memcpy(copy, items, n * sizeof *copy);
    v->list.items = copy;
    v->list.n = n;
    return v;
}

Value *val_record_take(const ValType *t, Value **fields)
{
    uint32_t n = (uint32_t)t->n_fields;
    Value *v = alloc_val(VAL_RECORD);
    Value **copy = malloc((n ? n : 1) * sizeof *copy);
    if (!v || !copy) {
        for (uint32_t i = 0; i < n; i++)
            val_unref(fields[i]);
        free(v);
        free(copy);
        return NULL;
    }
    if (n)
        memcpy(copy, fields, n * sizeof *copy);
    v->rec.type = t;
    v->rec.fields = copy;
    return v;
}

bool val_equal(const Value *a, const Value *b)
{
    if (a == b)
        return true;
    if (a->kind != b->kind) {
        if ((a->kind == VAL_INT || a->kind == VAL_FLOAT) && (b->kind == VAL_INT || b->kind == VAL_FLOAT))
            return val_compare(a, b) == 0;
        return false;
    }
    switch (a->kind) {
    case VAL_VOID:
        return true;
    case VAL_STR:
        return a->str.len == b->str.len && memcmp(a->str.s, b->str.s, a->str.len) == 0;
    case VAL_INT:
        return a->i == b->i;
    case VAL_FLOAT:
        return a->f == b->f;
    case VAL_BOOL:
        return a->b == b->b;
    case VAL_LIST:
        if (a->list.n != b->list.n)
            return false;
        for (uint32_t i = 0; i < a->list.n; i++)
            if (!val_equal(a->list.items[i], b->list.items[i]))
                return false;
        return true;
    case VAL_RECORD:
        if (a->rec.type->n_fields != b->rec.type->n_fields)
            return false;
        for (int32_t i = 0; i < a->rec.type->n_fields; i++)
            if (!val_equal(a->rec.fields[i], b->rec.fields[i]))
                return false;
        return true;
    }
    return false;
}

int val_compare(const Value *a, const Value *b)
{
    if (a->kind == VAL_STR && b->kind == VAL_STR) {
        size_t n = a->str.len < b->str.len ? a->str.len : b->str.len;
        int c = memcmp(a->str.s, b->str.s, n);
        if (c)
            return c < 0 ? -1 : 1;
        return a->str.len < b->str.len ? -1 : a->str.len > b->str.len;
    }
    if (a->kind == VAL_INT && b->kind == VAL_INT)
        return a->i < b->i ? -1 : a->i > b->i;
    if (a->kind == VAL_BOOL && b->kind == VAL_BOOL)
        return (int)a->b - (int)b->b;
    double x = a->kind == VAL_INT ? (double)a->i : a->f;
    double y = b->kind == VAL_INT ? (double)b->i : b->f;
    return x < y ? -1 : x > y;
}

/* Floats in JSON use the same text as str(), so `--json` and interpolation agree. */
static json_t *float_json(double f)
{
    if (!isfinite(f))
        return json_null();
    return json_real(f);
}

json_t *val_to_json(const Value *v)
{
    switch (v->kind) {
    case VAL_VOID:
        return json_null();
    case VAL_STR:
        return json_stringn(v->str.s, v->str.len);
    case VAL_INT:
        return json_integer(v->i);
    case VAL_FLOAT:
        return float_json(v->f);
    case VAL_BOOL:
        return json_boolean(v->b);
    case VAL_LIST: {
        json_t *a = json_array();
        for (uint32_t i = 0; a && i < v->list.n; i++)
            if (json_array_append_new(a, val_to_json(v->list.items[i])) != 0) {
                json_decref(a);
                return NULL;
            }
        return a;
    }
    case VAL_RECORD: {
        json_t *o = json_object();
        for (int32_t i = 0; o && i < v->rec.type->n_fields; i++)
            if (json_object_set_new(o, v->rec.type->names[i], val_to_json(v->rec.fields[i])) != 0) {
                json_decref(o);
                return NULL;
            }
        return o;
    }
    }
    return NULL;
}

typedef struct {
    char *buf;
    size_t len, cap;
    bool oom;
} Buf;

static void buf_put(Buf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->buf, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->buf = p;
        b->cap = cap;
    }
    memcpy(b->buf + b->len, s, n);
    b->len += n;
    b->buf[b->len] = '\0';
}

static void put_json_string(Buf *b, const char *s, size_t n)
{
    json_t *j = json_stringn(s, n);
    char *t = j ? json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
    if (!t)
        b->oom = true;
    else
        buf_put(b, t, strlen(t));
    free(t);
    json_decref(j);
}

static void put_text(Buf *b, const Value *v, bool nested)
{
    char tmp[64];
    switch (v->kind) {
    case VAL_VOID:
        buf_put(b, "null", 4);
        break;
    case VAL_STR:
        if (nested)
            put_json_string(b, v->str.s, v->str.len);
        else
            buf_put(b, v->str.s, v->str.len);
        break;
    case VAL_INT:
        snprintf(tmp, sizeof tmp, "%lld", (long long)v->i);
        buf_put(b, tmp, strlen(tmp));
        break;
    case VAL_FLOAT:
        if (nested && !isfinite(v->f))
            snprintf(tmp, sizeof tmp, "null");
        else
            sgl_format_float(v->f, tmp, sizeof tmp);
        buf_put(b, tmp, strlen(tmp));
        break;
    case VAL_BOOL:
        buf_put(b, v->b ? "true" : "false", v->b ? 4 : 5);
        break;
    case VAL_LIST:
        buf_put(b, "[", 1);
        for (uint32_t i = 0; i < v->list.n; i++) {
            if (i)
                buf_put(b, ",", 1);
            put_text(b, v->list.items[i], true);
        }
        buf_put(b, "]", 1);
        break;
    case VAL_RECORD:
        buf_put(b, "{", 1);
        for (int32_t i = 0; i < v->rec.type->n_fields; i++) {
            if (i)
                buf_put(b, ",", 1);
            put_json_string(b, v->rec.type->names[i], strlen(v->rec.type->names[i]));
            buf_put(b, ":", 1);
            put_text(b, v->rec.fields[i], true);
        }
        buf_put(b, "}", 1);
        break;
    }
}

char *val_to_text(const Value *v, size_t *len)
{
    Buf b = {0};
    buf_put(&b, "", 0);
    put_text(&b, v, false);
    if (b.oom) {
        free(b.buf);
        return NULL;
    }
    if (len)
        *len = b.len;
    return b.buf;
}

/* Compact JSON with floats written the shortest way (jansson's default
 * precision would print 0.1 as 0.10000000000000001). */
char *val_to_json_text(const Value *v, size_t *len)
{
    Buf b = {0};
    buf_put(&b, "", 0);
    put_text(&b, v, true);
    if (b.oom) {
        free(b.buf);
        return NULL;
    }
    *len = b.len;
    return b.buf;
}

static bool fail(char *msg, size_t cap, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static bool fail(char *msg, size_t cap, const char *path, const char *fmt, ...)
{
    char m[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m, sizeof m, fmt, ap);
    va_end(ap);
    snprintf(msg, cap, "at %s: %s", path, m);
    return false;
}

#define MAX_JSON_DEPTH 64

static bool from_json(const json_t *j, const ValType *t, Value **out, char *path, size_t plen,
                      int depth, char *msg, size_t cap)
{
    *out = NULL;
    if (depth > MAX_JSON_DEPTH)
        return fail(msg, cap, path, "nesting deeper than %d", MAX_JSON_DEPTH);
    switch (t->kind) {
    case VAL_VOID:
        *out = val_void();
        break;
    case VAL_STR:
        if (!json_is_string(j))
            return fail(msg, cap, path, "expected a string");
        *out = val_str(json_string_value(j), json_string_length(j));
        break;
    case VAL_INT:
        if (!json_is_integer(j))
            return fail(msg, cap, path, "expected an integer");
        *out = val_int((int64_t)json_integer_value(j));
        break;
    case VAL_FLOAT:
        if (!json_is_number(j))
            return fail(msg, cap, path, "expected a number");
        *out = val_float(json_number_value(j));
        break;
    case VAL_BOOL:
        if (!json_is_boolean(j))
            return fail(msg, cap, path, "expected true or false");
        *out = val_bool(json_is_true(j));
        break;
    case VAL_LIST: {
        if (!json_is_array(j))
            return fail(msg, cap, path, "expected an array");
        size_t n = json_array_size(j);
        if (n > UINT32_MAX / 2)
            return fail(msg, cap, path, "array too long");
        Value **items = calloc(n ? n : 1, sizeof *items);
        if (!items)
            return fail(msg, cap, path, "out of memory");
        size_t base = strlen(path);
        for (size_t i = 0; i < n; i++) {
            snprintf(path + base, plen - base, "[%zu]", i);
            if (!from_json(json_array_get(j, i), t->elem, &items[i], path, plen, depth + 1, msg,
                           cap)) {
                for (size_t k = 0; k < i; k++)
                    val_unref(items[k]);
                free(items);
                return false;
            }
        }
        path[base] = '\0';
        *out = val_list_take(items, (uint32_t)n);
        free(items);
        break;
    }
    case VAL_RECORD: {
        if (!json_is_object(j))
            return fail(msg, cap, path, "expected an object");
        int32_t n = t->n_fields;
        const char *key;
        json_t *jv;
        json_object_foreach((json_t *)j, key, jv) {
            bool known = false;
            for (int32_t i = 0; i < n && !known; i++)
                known = strcmp(t->names[i], key) == 0;
            if (!known)
                return fail(msg, cap, path, "unknown field '%s'", key);
        }
        Value **fields = calloc(n ? (size_t)n : 1, sizeof *fields);
        if (!fields)
            return fail(msg, cap, path, "out of memory");
        size_t base = strlen(path);
        for (int32_t i = 0; i < n; i++) {
            json_t *f = json_object_get(j, t->names[i]);
            bool ok = false;
            if (!f) {
                fail(msg, cap, path, "missing field '%s'", t->names[i]);
            } else {
                snprintf(path + base, plen - base, ".%s", t->names[i]);
                ok = from_json(f, t->fields[i], &fields[i], path, plen, depth + 1, msg, cap);
                path[base] = '\0';
            }
            if (!ok) {
                for (int32_t k = 0; k < i; k++)
                    val_unref(fields[k]);
                free(fields);
                return false;
            }
        }
        *out = val_record_take(t, fields);
        free(fields);
        break;
    }
    }
    if (!*out)
        return fail(msg, cap, path, "out of memory");
    return true;
}

bool val_from_json(const json_t *j, const ValType *t, Value **out, char *msg, size_t cap)
{
    char path[1024] = "$";
    return from_json(j, t, out, path, sizeof path, 0, msg, cap);
}

static bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

/* Strips ASCII whitespace into a NUL-terminated copy in buf. */
static bool stripped(const char *s, size_t len, char *buf, size_t cap)
{
    while (len && is_ws(*s)) {
        s++;
        len--;
    }
    while (len && is_ws(s[len - 1]))
        len--;
    if (len + 1 > cap)
        return false;
    memcpy(buf, s, len);
    buf[len] = '\0';
    return true;
}

static void quote_snip(const char *s, size_t len, char *q, size_t cap)
{
    size_t n = len < 40 ? len : 40;
    size_t k = 0;
    for (size_t i = 0; i < n && k + 5 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n') { q[k++] = '\\'; q[k++] = 'n'; }
        else if (c < 0x20) q[k++] = '?';
        else q[k++] = (char)c;
    }
    if (len > n && k + 4 < cap) { memcpy(q + k, "...", 3); k += 3; }
    q[k] = '\0';
}

bool val_parse_int(const char *s, size_t len, int64_t *out, char *msg, size_t cap)
{
    char buf[64], q[64];
    quote_snip(s, len, q, sizeof q);
    if (!stripped(s, len, buf, sizeof buf) || buf[0] == '\0') {
        snprintf(msg, cap, "parse_int: not an integer: \"%s\"", q);
        return false;
    }
    const char *p = buf;
    if (*p == '-' || *p == '+')
        p++;
    for (const char *c = p; *c; c++)
        if (*c < '0' || *c > '9' || p[0] == '\0') {
            snprintf(msg, cap, "parse_int: not an integer: \"%s\"", q);
            return false;
        }
    if (*p == '\0') {
        snprintf(msg, cap, "parse_int: not an integer: \"%s\"", q);
        return false;
    }
    errno = 0;
    long long v = strtoll(buf, NULL, 10);
    if (errno == ERANGE) {
        snprintf(msg, cap, "parse_int: \"%s\" does not fit in 64 bits", q);
        return false;
    }
    *out = v;
    return true;
}

bool val_parse_float(const char *s, size_t len, double *out, char *msg, size_t cap)
{
    char buf[128], q[64];
    quote_snip(s, len, q, sizeof q);
    if (!stripped(s, len, buf, sizeof buf) || buf[0] == '\0') {
        snprintf(msg, cap, "parse_float: not a number: \"%s\"", q);
        return false;
    }
    /* decimal forms only: no hex floats, no inf/nan words */
    for (const char *c = buf; *c; c++)
        if (!strchr("0123456789+-.eE", *c)) {
            snprintf(msg, cap, "parse_float: not a number: \"%s\"", q);
            return false;
        }
    char *end;
    errno = 0;
    double v = strtod(buf, &end);
    if (end == buf || *end != '\0') {
        snprintf(msg, cap, "parse_float: not a number: \"%s\"", q);
        return false;
    }
    if (errno == ERANGE && isinf(v)) {
        snprintf(msg, cap, "parse_float: \"%s\" is out of range", q);
        return false;
    }
    *out = v;
    return true;
}

bool val_from_arg(const char *text, size_t len, const ValType *t, Value **out, char *msg,
                  size_t cap)
{
    *out = NULL;
    switch (t->kind) {
    case VAL_STR:
        *out = val_str(text, len);
        break;
    case VAL_INT: {
        int64_t i;
        if (!val_parse_int(text, len, &i, msg, cap))
            return false;
        *out = val_int(i);
        break;
    }
    case VAL_FLOAT: {
        double f;
        if (!val_parse_float(text, len, &f, msg, cap))
            return false;
        *out = val_float(f);
        break;
    }
    case VAL_BOOL: {
        char buf[16];
        if (stripped(text, len, buf, sizeof buf) && (!strcmp(buf, "true") || !strcmp(buf, "false"))) {
            *out = val_bool(buf[0] == 't');
            break;
        }
        snprintf(msg, cap, "expected true or false");
        return false;
    }
    case VAL_LIST:
    case VAL_RECORD: {
        json_error_t je;
        json_t *j = json_loadb(text, len, JSON_DECODE_ANY, &je);
        if (!j) {
            snprintf(msg, cap, "invalid JSON at line %d column %d: %s", je.line, je.column, je.text);
            return false;
        }
        bool ok = val_from_json(j, t, out, msg, cap);
        json_decref(j);
        return ok;
    }
    case VAL_VOID:
        snprintf(msg, cap, "a parameter cannot have no type");
        return false;
    }
    if (!*out) {
        snprintf(msg, cap, "out of memory");
        return false;
    }
    return true;
}

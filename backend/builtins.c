/* builtins.c -- the built-in functions of docs/language.md section 6.
 *
 * One function per built-in, dispatched by IrBuiltin. Arguments are borrowed
 * values already checked by sema for type and arity; `ret` is the static
 * result type (parse_json needs it). A failure that the program can cause at
 * run time (bad text for parse_int, an empty split separator, int overflow)
 * returns false with a one-line message; the interpreter adds the location.
 * meta() and text() need the prompt state and live in ops.c.
 */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/ops.h"
#include "runtime/textfmt.h"

#define ERR(...) (snprintf(msg, cap, __VA_ARGS__), false)

static bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

/* Code points in s[0..len) (continuation bytes are not counted). */
static int64_t cp_count(const char *s, size_t len)
{
    int64_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += ((unsigned char)s[i] & 0xC0) != 0x80;
    return n;
}

/* Byte offset of code point k (clamped to len). */
static size_t cp_offset(const char *s, size_t len, int64_t k)
{
    size_t i = 0;
    while (i < len && k > 0) {
        i++;
        while (i < len && ((unsigned char)s[i] & 0xC0) == 0x80)
            i++;
        k--;
    }
    return i;
}

static const char *memfind(const char *h, size_t hl, const char *n, size_t nl)
{
    if (nl == 0)
        return h;
    if (nl > hl)
        return NULL;
    return memmem(h, hl, n, nl);
}

typedef struct {
    char *buf;
    size_t len, cap;
    bool oom;
} Sb;

static void sb_put(Sb *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t c = b->cap ? b->cap : 32;
        while (c < b->len + n + 1)
            c *= 2;
        char *p = realloc(b->buf, c);
        if (!p) {
            b->oom = true;
            return;
        }
        b->buf = p;
        b->cap = c;
    }
    if (n)
        memcpy(b->buf + b->len, s, n);
    b->len += n;
    b->buf[b->len] = '\0';
}

static Value *sb_value(Sb *b)
{
    sb_put(b, "", 0);
    if (b->oom) {
        free(b->buf);
        return NULL;
    }
    return val_str_take(b->buf, b->len);
}

static Value *ascii_case(const Value *s, bool up)
{
    Value *v = val_str(s->str.s, s->str.len);
    if (v)
        for (size_t i = 0; i < v->str.len; i++) {
            char c = v->str.s[i];
            if (up && c >= 'a' && c <= 'z')
                v->str.s[i] = (char)(c - 32);
            else if (!up && c >= 'A' && c <= 'Z')
                v->str.s[i] = (char)(c + 32);
        }
    return v;
}

static Value *split(const Value *s, const Value *sep)
{
    uint32_t n = 0, cap = 8;
    Value **items = malloc(cap * sizeof *items);
    const char *p = s->str.s, *end = s->str.s + s->str.len;
    bool ok = items != NULL;
    while (ok) {
        const char *hit = memfind(p, (size_t)(end - p), sep->str.s, sep->str.len);
        const char *stop = hit ? hit : end;
        if (n == cap) {
            Value **q = realloc(items, 2 * cap * sizeof *items);
            if (!q) {
                ok = false;
                break;
            }
            items = q;
            cap *= 2;
        }
        if (!(items[n] = val_str(p, (size_t)(stop - p)))) {
            ok = false;
            break;
        }
        n++;
        if (!hit)
            break;
        p = hit + sep->str.len;
    }
    if (!ok) {
        for (uint32_t i = 0; i < n; i++)
            val_unref(items[i]);
        free(items);
        return NULL;
    }
    Value *v = val_list_take(items, n);
    free(items);
    return v;
}

static Value *list_plus(const Value *xs, Value *x)
{
    uint32_t n = xs->list.n;
    Value **items = malloc((n + 1) * sizeof *items);
    if (!items)
        return NULL;
    for (uint32_t i = 0; i < n; i++)
        items[i] = val_ref(xs->list.items[i]);
    items[n] = val_ref(x);
    Value *v = val_list_take(items, n + 1);
    free(items);
    return v;
}

static Value *range(int64_t a, int64_t b, char *msg, size_t cap, bool *too_big)
{
    int64_t n = b > a ? b - a : 0;
    if (b > a && (b - a < 0 || n > (int64_t)1 << 26)) {
        *too_big = true;
        snprintf(msg, cap, "range(%lld, %lld) has more than %d elements", (long long)a,
                 (long long)b, 1 << 26);
        return NULL;
    }
    Value **items = malloc((size_t)(n ? n : 1) * sizeof *items);
    if (!items)
        return NULL;
    for (int64_t i = 0; i < n; i++)
        if (!(items[i] = val_int(a + i))) {
            for (int64_t k = 0; k < i; k++)
                val_unref(items[k]);
            free(items);
            return NULL;
        }
    Value *v = val_list_take(items, (uint32_t)n);
    free(items);
    return v;
}

static bool format(Value **args, uint32_t n, Value **out, char *msg, size_t cap)
{
    const Value *t = args[0];
    Sb b = {0};
    uint32_t used = 0;
    for (size_t i = 0; i < t->str.len; i++) {
        if (t->str.s[i] == '{' && i + 1 < t->str.len && t->str.s[i + 1] == '}') {
            if (1 + used >= n) {
                free(b.buf);
                return ERR("format: the template has more {} than the %u value(s) given", n - 1);
            }
            size_t l;
            char *s = val_to_text(args[1 + used++], &l);
            if (!s) {
                free(b.buf);
                return ERR("out of memory");
            }
            sb_put(&b, s, l);
            free(s);
            i++;
        } else {
            sb_put(&b, t->str.s + i, 1);
        }
    }
    if (1 + used != n) {
        free(b.buf);
        return ERR("format: %u value(s) given but the template has %u {}", n - 1, used);
    }
    *out = sb_value(&b);
    return true;
}

static bool float_to_int(double f, int64_t *out, char *msg, size_t cap)
{
    if (!isfinite(f) || f >= 9223372036854775808.0 || f < -9223372036854775808.0) {
        char t[40];
        sgl_format_float(f, t, sizeof t);
        return ERR("int(%s) does not fit in 64 bits", t);
    }
    *out = (int64_t)f;
    return true;
}

static double num(const Value *v) { return v->kind == VAL_INT ? (double)v->i : v->f; }

bool sgl_builtin_call(IrBuiltin bi, Value **args, uint32_t n, const ValType *ret, Value **out,
                      char *msg, size_t cap)
{
    *out = NULL;
    Value *a = n > 0 ? args[0] : NULL, *b = n > 1 ? args[1] : NULL, *c = n > 2 ? args[2] : NULL;
    switch (bi) {
    case IR_BI_LEN:
        *out = val_int(a->kind == VAL_STR ? cp_count(a->str.s, a->str.len) : (int64_t)a->list.n);
        break;
    case IR_BI_STRIP: {
        const char *s = a->str.s;
        size_t l = a->str.len;
        while (l && is_ws(*s)) {
            s++;
            l--;
        }
        while (l && is_ws(s[l - 1]))
            l--;
        *out = val_str(s, l);
        break;
    }
    case IR_BI_LOWER:
    case IR_BI_UPPER:
        *out = ascii_case(a, bi == IR_BI_UPPER);
        break;
    case IR_BI_SPLIT:
        if (b->str.len == 0)
            return ERR("split: the separator is empty");
        *out = split(a, b);
        break;
    case IR_BI_JOIN: {
        Sb s = {0};
        for (uint32_t i = 0; i < a->list.n; i++) {
            if (i)
                sb_put(&s, b->str.s, b->str.len);
            sb_put(&s, a->list.items[i]->str.s, a->list.items[i]->str.len);
        }
        *out = sb_value(&s);
        break;
    }
    case IR_BI_REPLACE: {
        if (b->str.len == 0)
            return ERR("replace: the text to replace is empty");
        Sb s = {0};
        const char *p = a->str.s, *end = a->str.s + a->str.len;
        for (;;) {
            const char *hit = memfind(p, (size_t)(end - p), b->str.s, b->str.len);
            if (!hit) {
                sb_put(&s, p, (size_t)(end - p));
                break;
            }
            sb_put(&s, p, (size_t)(hit - p));
            sb_put(&s, c->str.s, c->str.len);
            p = hit + b->str.len;
        }
        *out = sb_value(&s);
        break;
    }
    case IR_BI_CONTAINS:
        if (a->kind == VAL_STR) {
            *out = val_bool(memfind(a->str.s, a->str.len, b->str.s, b->str.len) != NULL);
        } else {
            bool found = false;
            for (uint32_t i = 0; i < a->list.n && !found; i++)
                found = val_equal(a->list.items[i], b);
            *out = val_bool(found);
        }
        break;
    case IR_BI_FIND: {
        const char *hit = memfind(a->str.s, a->str.len, b->str.s, b->str.len);
        *out = val_int(hit ? cp_count(a->str.s, (size_t)(hit - a->str.s)) : -1);
        break;
    }
    case IR_BI_INDEX: {
        int64_t at = -1;
        for (uint32_t i = 0; i < a->list.n && at < 0; i++)
            if (val_equal(a->list.items[i], b))
                at = i;
        *out = val_int(at);
        break;
    }
    case IR_BI_SLICE: {
        int64_t total = a->kind == VAL_STR ? cp_count(a->str.s, a->str.len) : (int64_t)a->list.n;
        int64_t lo = b->i < 0 ? 0 : b->i > total ? total : b->i;
        int64_t hi = c->i < lo ? lo : c->i > total ? total : c->i;
        if (a->kind == VAL_STR) {
            size_t o1 = cp_offset(a->str.s, a->str.len, lo);
            size_t o2 = o1 + cp_offset(a->str.s + o1, a->str.len - o1, hi - lo);
            *out = val_str(a->str.s + o1, o2 - o1);
        } else {
            Value **items = malloc((size_t)(hi - lo + 1) * sizeof *items);
            if (!items)
                break;
            for (int64_t i = lo; i < hi; i++)
                items[i - lo] = val_ref(a->list.items[i]);
            *out = val_list_take(items, (uint32_t)(hi - lo));
            free(items);
        }
        break;
    }
    case IR_BI_APPEND:
        *out = list_plus(a, b);
        break;
    case IR_BI_RANGE: {
        bool too_big = false;
        *out = range(a->i, b->i, msg, cap, &too_big);
        if (too_big)
            return false;
        break;
    }
    case IR_BI_FORMAT:
        if (!format(args, n, out, msg, cap))
            return false;
        break;
    case IR_BI_PARSE_INT: {
        int64_t i;
        if (!val_parse_int(a->str.s, a->str.len, &i, msg, cap))
            return false;
        *out = val_int(i);
        break;
    }
    case IR_BI_PARSE_FLOAT: {
        double f;
        if (!val_parse_float(a->str.s, a->str.len, &f, msg, cap))
            return false;
        *out = val_float(f);
        break;
    }
    case IR_BI_PARSE_JSON: {
        json_error_t je;
        json_t *j = json_loadb(a->str.s, a->str.len, JSON_DECODE_ANY, &je);
        if (!j)
            return ERR("parse_json: invalid JSON at line %d column %d: %s", je.line, je.column,
                       je.text);
        char m[300];
        bool ok = val_from_json(j, ret, out, m, sizeof m);
        json_decref(j);
        if (!ok)
            return ERR("parse_json: %s", m);
        break;
    }
    case IR_BI_TO_JSON: {
        size_t l;
        char *s = val_to_json_text(a, &l);
        if (s)
            *out = val_str_take(s, l);
        break;
    }
    case IR_BI_STR: {
        size_t l;
        char *s = val_to_text(a, &l);
        if (s)
            *out = val_str_take(s, l);
        break;
    }
    case IR_BI_INT: {
        int64_t i = 0;
        if (a->kind == VAL_INT)
            i = a->i;
        else if (a->kind == VAL_BOOL)
            i = a->b;
        else if (a->kind == VAL_FLOAT) {
            if (!float_to_int(a->f, &i, msg, cap))
                return false;
        } else if (!val_parse_int(a->str.s, a->str.len, &i, msg, cap))
            return false;
        *out = val_int(i);
        break;
    }
    case IR_BI_FLOAT: {
        double f = 0;
        if (a->kind == VAL_STR) {
            if (!val_parse_float(a->str.s, a->str.len, &f, msg, cap))
                return false;
        } else if (a->kind == VAL_BOOL) {
            f = a->b;
        } else {
            f = num(a);
        }
        *out = val_float(f);
        break;
    }
    case IR_BI_MIN:
    case IR_BI_MAX: {
        bool lt = val_compare(a, b) < 0;
        Value *pick = (bi == IR_BI_MIN) == lt ? a : b;
        if (ret && ret->kind == VAL_FLOAT && pick->kind == VAL_INT)
            *out = val_float((double)pick->i);
        else
            *out = val_ref(pick);
        break;
    }
    case IR_BI_ABS:
        if (a->kind == VAL_INT) {
            if (a->i == INT64_MIN)
                return ERR("abs(%lld) overflows int", (long long)a->i);
            *out = val_int(a->i < 0 ? -a->i : a->i);
        } else {
            *out = val_float(fabs(a->f));
        }
        break;
    case IR_BI_COUNT_:
        return ERR("unknown built-in");
    }
    if (!*out)
        return ERR("out of memory");
    return true;
}

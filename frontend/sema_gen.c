/* sema_gen.c -- gen and select: options, constraints, regex and JSON schema.
 *
 * Each gen option has a row in gen_opts (docs/language.md section 5.1): its
 * value type and its range. Values are checked as expressions, folded when
 * constant, and range-checked when they fold. Constraints (a type other than
 * str, regex, json_schema, choices) are exclusive and must be constants;
 * regexes are compiled with PCRE2 and JSON schemas parsed with jansson, and
 * an error inside a pattern or schema is reported at its own column in the
 * string literal (sema_literal_loc maps decoded offsets back to source).
 * What PCRE2 accepts is then checked against the dialect the runtime
 * decodes with (ir/fsm: regex_check, an empty language, jsonschema_to_regex),
 * so a constraint that passes the checker is one the FSM compiler takes.
 */
#include "frontend/sema_int.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "ir/fsm/jsonschema.h"
#include "ir/fsm/regex.h"
#include "ir/fsm/typed.h"

typedef enum { OT_INT, OT_FLOAT, OT_BOOL, OT_STR, OT_STOP, OT_INT_LIST, OT_STR_LIST } OptType;
typedef enum { R_NONE, R_GE0, R_GE1, R_TOP_K, R_TOP_P, R_UNIT, R_PM2, R_GT0 } OptRange;

typedef struct {
    const char *name;
    OptType type;
    OptRange range;
} OptSpec;

static const OptSpec gen_opts[] = {
    {"max_tokens", OT_INT, R_GE1},       {"min_tokens", OT_INT, R_GE0},
    {"stop", OT_STOP, R_NONE},           {"stop_token_ids", OT_INT_LIST, R_NONE},
    {"temperature", OT_FLOAT, R_GE0},    {"top_p", OT_FLOAT, R_TOP_P},
    {"top_k", OT_INT, R_TOP_K},          {"min_p", OT_FLOAT, R_UNIT},
    {"frequency_penalty", OT_FLOAT, R_PM2}, {"presence_penalty", OT_FLOAT, R_PM2},
    {"repetition_penalty", OT_FLOAT, R_GT0}, {"ignore_eos", OT_BOOL, R_NONE},
    {"seed", OT_INT, R_NONE},            {"n", OT_INT, R_GE1},
    {"regex", OT_STR, R_NONE},           {"json_schema", OT_STR, R_NONE},
    {"choices", OT_STR_LIST, R_NONE},    {NULL, OT_INT, R_NONE},
};

static const OptSpec select_opts[] = {
    {"choices", OT_STR_LIST, R_NONE}, {"method", OT_STR, R_NONE},
    {"temperature", OT_FLOAT, R_GE0}, {NULL, OT_INT, R_NONE},
};

static const char *const select_methods[] = {
    "token_length_normalized", "greedy_token", "unconditional_likelihood_normalized", NULL,
};

static const OptSpec *find_opt(const OptSpec *tab, AstStr name)
{
    for (const OptSpec *o = tab; o->name; o++)
        if (str_eq_c(name, o->name))
            return o;
    return NULL;
}

/* ------------------------------------------------------ literal mapping */

/* Source bytes one decoded unit takes at raw[0..n), and its decoded bytes. */
static uint32_t raw_unit(const unsigned char *raw, uint32_t n, uint32_t *dec)
{
    *dec = 1;
    if (n >= 2 && raw[0] == '\\' && raw[1] == 'u') {
        uint32_t i = 2, cp = 0;
        if (i < n && raw[i] == '{')
            i++;
        while (i < n && raw[i] != '}') {
            unsigned char ch = raw[i++];
            cp = cp * 16 + (uint32_t)(ch <= '9' ? ch - '0' : (ch | 0x20) - 'a' + 10);
            if (cp > 0x10FFFF)
                cp = 0x10FFFF;
        }
        *dec = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
        return i < n ? i + 1 : n;
    }
    if (n >= 2 && (raw[0] == '\\' || (raw[0] == '{' && raw[1] == '{') ||
                   (raw[0] == '}' && raw[1] == '}')))
        return 2;
    return 1;
}

SglLoc sema_literal_loc(const AstNode *lit, uint32_t off)
{
    if (!lit || lit->kind != AST_STRING || !lit->string.parts || !lit->loc.src)
        return lit ? lit->loc : (SglLoc){0};
    const AstList *ps = lit->string.parts;
    /* r"..." raw strings have no escapes: decoded bytes are source bytes */
    bool is_raw = lit->loc.off < lit->loc.src->len && lit->loc.src->text[lit->loc.off] == 'r';
    uint32_t base = 0;
    for (uint32_t i = 0; i < ps->n; i++) {
        const AstNode *p = ps->items[i];
        if (!p || p->kind != AST_STR_TEXT)
            return lit->loc;
        uint32_t len = p->text.text.len;
        if (off < base + len || (off == base + len && i + 1 == ps->n)) {
            const unsigned char *raw = (const unsigned char *)p->loc.src->text + p->loc.off;
            uint32_t r = 0, d = base;
            while (r < p->loc.len && d < off) {
                uint32_t dec = 1, k = is_raw ? 1 : raw_unit(raw + r, p->loc.len - r, &dec);
                if (d + dec > off)
                    break;
                r += k;
                d += dec;
            }
            uint32_t dec = 1, k = r < p->loc.len && !is_raw ? raw_unit(raw + r, p->loc.len - r, &dec)
                                                            : 1;
            /* one character: extend over UTF-8 continuation bytes */
            while (r + k < p->loc.len && (raw[r + k] & 0xC0) == 0x80)
                k++;
            return sgl_loc(p->loc.src, p->loc.off + r, k);
        }
        base += len;
    }
    return lit->loc;
}

/* Location of decoded offset `off` of the constant string v, and a note at
 * the use site when the literal is elsewhere (a const). */
static SglDiag *error_in_string(SemaCtx *c, const SemaValue *v, uint32_t off,
                                const AstNode *use, const char *what, const char *msg)
{
    SglLoc at = v->literal ? sema_literal_loc(v->literal, off) : use->loc;
    SglDiag *d = sgl_diag_error(c->diags, at, "%s", msg);
    if (v->literal && use && !(use->loc.src == v->literal->loc.src &&
                               use->loc.off <= v->literal->loc.off &&
                               v->literal->loc.off < use->loc.off + use->loc.len))
        sgl_diag_note(c->diags, d, use->loc, "used as `%s` here", what);
    return d;
}

/* ----------------------------------------------------------------- regex */

/* The pattern in the constrained-decoding dialect (ir/fsm/regex.h): a
 * construct it lacks, a size limit, or a language no output can be in. */
static void check_regex_fsm(SemaCtx *c, const SemaValue *v, const AstNode *use)
{
    FsmErr fe = {0};
    char msg[600];
    if (regex_check(v->s.s, v->s.len, &fe) != SGL_OK) {
        snprintf(msg, sizeof msg, "constrained decoding does not support this regex: %s", fe.msg);
        uint32_t off = fe.col > 0 ? (uint32_t)fe.col - 1 : 0;
        error_in_string(c, v, off > v->s.len ? v->s.len : off, use, "regex", msg);
        return;
    }
    SglDfa *d = NULL;
    SglStatus st = regex_compile(v->s.s, v->s.len, NULL, &d, NULL, &fe);
    if (st == SGL_OK && sgl_dfa_is_empty(d))
        error_in_string(c, v, 0, use, "regex",
                        "this regex matches no text at all: no output can satisfy it");
    else if (st == SGL_E_UNSUPPORTED || st == SGL_E_INVAL) {
        snprintf(msg, sizeof msg, "cannot compile this regex for constrained decoding: %s", fe.msg);
        error_in_string(c, v, 0, use, "regex", msg);
    }
    sgl_dfa_free(d);
}

static void check_regex(SemaCtx *c, const SemaValue *v, const AstNode *use)
{
    int code;
    PCRE2_SIZE eoff;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)v->s.s, v->s.len, PCRE2_UTF, &code, &eoff,
                                   NULL);
    char msg[320], em[256];
    if (!re) {
        if (pcre2_get_error_message(code, (PCRE2_UCHAR *)em, sizeof em) < 0)
            snprintf(em, sizeof em, "error %d", code);
        snprintf(msg, sizeof msg, "invalid regex: %s", em);
        error_in_string(c, v, (uint32_t)(eoff > v->s.len ? v->s.len : eoff), use, "regex", msg);
        return;
    }
    uint32_t backref = 0;
    pcre2_pattern_info(re, PCRE2_INFO_BACKREFMAX, &backref);
    if (backref) {
        uint32_t off = 0;
        for (uint32_t i = 0; i + 1 < v->s.len; i++) {
            if (v->s.s[i] != '\\')
                continue;
            if (v->s.s[i + 1] >= '1' && v->s.s[i + 1] <= '9') {
                off = i;
                break;
            }
            i++;
        }
        error_in_string(c, v, off, use, "regex",
                        "a gen regex cannot use backreferences (constrained decoding needs "
                        "a regular language)");
        pcre2_code_free(re);
        return;
    }
    pcre2_code_free(re);
    check_regex_fsm(c, v, use);
}

/* ----------------------------------------------------------- JSON schema */

typedef enum { K_SCHEMA, K_SCHEMA_MAP, K_SCHEMA_LIST, K_TYPE, K_ANY, K_NUMBER, K_COUNT,
               K_STRING, K_STRING_LIST, K_SCHEMA_OR_BOOL, K_LIST, K_REF } KwKind;

static const struct {
    const char *name;
    KwKind kind;
} schema_kws[] = {
    {"type", K_TYPE}, {"properties", K_SCHEMA_MAP}, {"required", K_STRING_LIST},
    {"items", K_SCHEMA_OR_BOOL}, {"prefixItems", K_SCHEMA_LIST},
    {"additionalProperties", K_SCHEMA_OR_BOOL}, {"enum", K_LIST}, {"const", K_ANY},
    {"anyOf", K_SCHEMA_LIST}, {"oneOf", K_SCHEMA_LIST}, {"allOf", K_SCHEMA_LIST},
    {"$ref", K_REF}, {"$defs", K_SCHEMA_MAP}, {"definitions", K_SCHEMA_MAP},
    {"minItems", K_COUNT}, {"maxItems", K_COUNT}, {"minLength", K_COUNT},
    {"maxLength", K_COUNT}, {"pattern", K_STRING}, {"format", K_STRING},
    {"minimum", K_NUMBER}, {"maximum", K_NUMBER}, {"exclusiveMinimum", K_NUMBER},
    {"exclusiveMaximum", K_NUMBER}, {"title", K_STRING}, {"description", K_STRING},
    {"default", K_ANY}, {"examples", K_LIST}, {"$schema", K_STRING}, {"$id", K_STRING},
    {"$comment", K_STRING}, {NULL, K_ANY},
};

/* Real JSON Schema keywords that the constraint compiler does not handle. */
static const char *const schema_unsupported[] = {
    "not", "if", "then", "else", "dependentRequired", "dependentSchemas", "dependencies",
    "patternProperties", "propertyNames", "unevaluatedProperties", "unevaluatedItems",
    "uniqueItems", "contains", "minContains", "maxContains", "multipleOf", "minProperties",
    "maxProperties", "additionalItems", "contentMediaType", "contentEncoding", "$anchor",
    "$dynamicRef", "$dynamicAnchor", "$recursiveRef", NULL,
};

static const char *const schema_types[] = {
    "string", "number", "integer", "boolean", "array", "object", "null", NULL,
};

typedef struct {
    SemaCtx *c;
    const SemaValue *v;
    const AstNode *use;
    json_t *root;
    uint32_t n_errors;
} SchemaCheck;

/* Offset of `"key"` in the schema text (first occurrence), for locations. */
static uint32_t key_offset(const SchemaCheck *sc, const char *key)
{
    size_t kl = strlen(key);
    const char *s = sc->v->s.s;
    for (uint32_t i = 0; i + kl + 2 <= sc->v->s.len; i++)
        if (s[i] == '"' && memcmp(s + i + 1, key, kl) == 0 && s[i + 1 + kl] == '"')
            return i + 1;
    return 0;
}

static void schema_error(SchemaCheck *sc, const char *key, const char *fmt, const char *a,
                         const char *b)
{
    char msg[512];
    if (++sc->n_errors > 10)
        return;
    snprintf(msg, sizeof msg, fmt, a, b);
    SglDiag *d = error_in_string(sc->c, sc->v, key ? key_offset(sc, key) : 0, sc->use,
                                 "json_schema", msg);
    (void)d;
}

static bool is_schema_type(const char *s)
{
    for (int i = 0; schema_types[i]; i++)
        if (strcmp(s, schema_types[i]) == 0)
            return true;
    return false;
}

/* JSON pointer "#/a/b" inside the root document. */
static json_t *resolve_ref(json_t *root, const char *ref)
{
    if (ref[0] != '#')
        return NULL;
    json_t *cur = root;
    const char *p = ref + 1;
    char seg[256];
    while (*p == '/' && cur) {
        p++;
        size_t n = 0;
        while (*p && *p != '/' && n + 1 < sizeof seg) {
            if (p[0] == '~' && p[1] == '1') {
                seg[n++] = '/';
                p += 2;
            } else if (p[0] == '~' && p[1] == '0') {
                seg[n++] = '~';
                p += 2;
            } else {
                seg[n++] = *p++;
            }
        }
        seg[n] = '\0';
        cur = json_is_object(cur) ? json_object_get(cur, seg) : NULL;
    }
    return *p ? NULL : cur;
}

static void walk_schema(SchemaCheck *sc, json_t *s, uint32_t depth);

static void walk_keyword(SchemaCheck *sc, const char *key, json_t *val, KwKind kind,
                         uint32_t depth)
{
    switch (kind) {
    case K_SCHEMA:
    case K_SCHEMA_OR_BOOL:
        walk_schema(sc, val, depth + 1);
        break;
    case K_SCHEMA_MAP: {
        if (!json_is_object(val)) {
            schema_error(sc, key, "JSON schema: `%s` must be an object%s", key, "");
            break;
        }
        const char *k;
        json_t *x;
        json_object_foreach(val, k, x) walk_schema(sc, x, depth + 1);
        break;
    }
    case K_SCHEMA_LIST: {
        if (!json_is_array(val) || json_array_size(val) == 0) {
            schema_error(sc, key, "JSON schema: `%s` must be a non-empty array of schemas%s",
                         key, "");
            break;
        }
        size_t i;
        json_t *x;
        json_array_foreach(val, i, x) walk_schema(sc, x, depth + 1);
        break;
    }
    case K_TYPE: {
        if (json_is_string(val)) {
            if (!is_schema_type(json_string_value(val)))
                schema_error(sc, key, "JSON schema: unknown type \"%s\"%s",
                             json_string_value(val), "");
        } else if (json_is_array(val)) {
            size_t i;
            json_t *x;
            json_array_foreach(val, i, x) {
                if (!json_is_string(x) || !is_schema_type(json_string_value(x))) {
                    schema_error(sc, key, "JSON schema: `%s` lists an unknown type%s", key, "");
                    break;
                }
            }
        } else {
            schema_error(sc, key, "JSON schema: `%s` must be a string or an array of "
                         "strings%s", key, "");
        }
        break;
    }
    case K_NUMBER:
        if (!json_is_number(val))
            schema_error(sc, key, "JSON schema: `%s` must be a number%s", key, "");
        break;
    case K_COUNT:
        if (!json_is_integer(val) || json_integer_value(val) < 0)
            schema_error(sc, key, "JSON schema: `%s` must be a non-negative integer%s", key, "");
        break;
    case K_STRING:
        if (!json_is_string(val)) {
            schema_error(sc, key, "JSON schema: `%s` must be a string%s", key, "");
        } else if (strcmp(key, "pattern") == 0) {
            int code;
            PCRE2_SIZE eoff;
            pcre2_code *re = pcre2_compile((PCRE2_SPTR)json_string_value(val),
                                           json_string_length(val), PCRE2_UTF, &code, &eoff,
                                           NULL);
            if (re) {
                pcre2_code_free(re);
            } else {
                char em[256];
                if (pcre2_get_error_message(code, (PCRE2_UCHAR *)em, sizeof em) < 0)
                    snprintf(em, sizeof em, "error %d", code);
                schema_error(sc, key, "JSON schema: invalid `pattern` regex: %s%s", em, "");
            }
        }
        break;
    case K_STRING_LIST: {
        bool ok = json_is_array(val);
        size_t i;
        json_t *x;
        if (ok)
            json_array_foreach(val, i, x) ok = ok && json_is_string(x);
        if (!ok)
            schema_error(sc, key, "JSON schema: `%s` must be an array of strings%s", key, "");
        break;
    }
    case K_LIST:
        if (!json_is_array(val))
            schema_error(sc, key, "JSON schema: `%s` must be an array%s", key, "");
        else if (strcmp(key, "enum") == 0 && json_array_size(val) == 0)
            schema_error(sc, key, "JSON schema: `%s` must not be empty%s", key, "");
        break;
    case K_REF:
        if (!json_is_string(val))
            schema_error(sc, key, "JSON schema: `%s` must be a string%s", key, "");
        else if (!resolve_ref(sc->root, json_string_value(val)))
            schema_error(sc, key, "JSON schema: `$ref` target \"%s\" is not in this schema%s",
                         json_string_value(val), "");
        break;
    case K_ANY:
        break;
    }
}

static void walk_schema(SchemaCheck *sc, json_t *s, uint32_t depth)
{
    if (json_is_boolean(s))
        return;
    if (!json_is_object(s)) {
        schema_error(sc, NULL, "JSON schema: a schema must be an object or a boolean%s%s", "",
                     "");
        return;
    }
    if (depth > 64) {
        schema_error(sc, NULL, "JSON schema nested more than %s levels deep%s", "64", "");
        return;
    }
    const char *key;
    json_t *val;
    json_object_foreach(s, key, val) {
        int k = -1;
        for (int i = 0; schema_kws[i].name; i++)
            if (strcmp(key, schema_kws[i].name) == 0)
                k = i;
        if (k >= 0) {
            walk_keyword(sc, key, val, schema_kws[k].kind, depth);
            continue;
        }
        bool unsup = false;
        for (int i = 0; schema_unsupported[i]; i++)
            unsup |= strcmp(key, schema_unsupported[i]) == 0;
        if (unsup) {
            schema_error(sc, key, "JSON schema keyword `%s` is not supported%s", key, "");
            continue;
        }
        if (++sc->n_errors > 10)
            continue;
        char msg[512];
        snprintf(msg, sizeof msg, "unknown JSON schema keyword `%s`", key);
        SglDiag *d = error_in_string(sc->c, sc->v, key_offset(sc, key), sc->use, "json_schema",
                                     msg);
        Suggest sg;
        suggest_init(&sg, (AstStr){key, (uint32_t)strlen(key)});
        for (int i = 0; schema_kws[i].name; i++)
            suggest_try(&sg, schema_kws[i].name, (uint32_t)strlen(schema_kws[i].name));
        if (sg.best) {
            SglLoc at = sc->v->literal ? sema_literal_loc(sc->v->literal, key_offset(sc, key))
                                       : sc->use->loc;
            suggest_note(sc->c, d, &sg, at);
        }
    }
}

void sema_json_schema(SemaCtx *c, const SemaValue *v, const AstNode *use)
{
    json_error_t err;
    json_t *root = json_loadb(v->s.s, v->s.len, JSON_REJECT_DUPLICATES, &err);
    if (!root) {
        char msg[320];
        snprintf(msg, sizeof msg, "invalid JSON in json_schema: %s", err.text);
        uint32_t off = err.position < 0 ? 0 : (uint32_t)err.position;
        /* jansson reports the position after the offending character */
        if (off > 0 && off <= v->s.len)
            off--;
        if (off > v->s.len)
            off = v->s.len;
        error_in_string(c, v, off, use, "json_schema", msg);
        return;
    }
    SchemaCheck sc = {c, v, use, root, 0};
    walk_schema(&sc, root, 0);
    if (sc.n_errors == 0) {
        /* what the FSM compiler takes (ir/fsm/jsonschema.h); its message
         * names the keyword in quotes: point at that key */
        FsmErr fe = {0};
        char *re = NULL;
        if (jsonschema_to_regex(root, NULL, &re, &fe) == SGL_E_INVAL) {
            char key[128] = "", msg[640];
            const char *q = strchr(fe.msg, '\'');
            const char *e = q ? strchr(q + 1, '\'') : NULL;
            if (e && (size_t)(e - q - 1) < sizeof key)
                snprintf(key, sizeof key, "%.*s", (int)(e - q - 1), q + 1);
            snprintf(msg, sizeof msg, "constrained decoding does not support this schema: %s", fe.msg);
            error_in_string(c, v, key[0] ? key_offset(&sc, key) : 0, use, "json_schema", msg);
        }
        free(re);
    }
    json_decref(root);
}

/* ------------------------------------------------------------- options */

static AstType *opt_type(SemaCtx *c, OptType t)
{
    switch (t) {
    case OT_INT: return c->ts->t_int;
    case OT_FLOAT: return c->ts->t_float;
    case OT_BOOL: return c->ts->t_bool;
    case OT_STR: return c->ts->t_str;
    case OT_INT_LIST: return types_list(c->ts, c->ts->t_int);
    case OT_STR_LIST: return types_list(c->ts, c->ts->t_str);
    default: return NULL;
    }
}

/* Checks the value of one option; returns its folded value or NULL. */
static const SemaValue *check_opt_value(SemaCtx *c, AstNode *o, const OptSpec *spec)
{
    char b1[TNAME_CAP], msg[64];
    AstNode *val = o->option.value;
    snprintf(msg, sizeof msg, "option `%s`", spec->name);
    if (spec->type == OT_STOP) {
        AstType *ls = types_list(c->ts, c->ts->t_str);
        AstType *t = sema_expr(c, val, val && val->kind == AST_LIST ? ls : NULL);
        if (!type_is_error(t) && t != c->ts->t_str && t != ls) {
            sgl_diag_error(c->diags, val->loc, "option `stop` must be str or list[str], not %s",
                           tname(t, b1));
            return NULL;
        }
        if (type_is_error(t))
            return NULL;
    } else {
        AstType *t = sema_expect(c, val, opt_type(c, spec->type), msg);
        if (type_is_error(t))
            return NULL;
    }
    const SemaValue *v = sema_coerce(c, sema_fold(c, val), opt_type(c, spec->type));
    o->sym = (void *)v;
    if (!v || (v->kind != SEMA_VAL_INT && v->kind != SEMA_VAL_FLOAT))
        return v;
    double x = v->kind == SEMA_VAL_INT ? (double)v->i : v->f;
    const char *rule = NULL;
    switch (spec->range) {
    case R_GE0: if (!(x >= 0)) rule = "must be >= 0"; break;
    case R_GE1: if (!(x >= 1)) rule = "must be >= 1"; break;
    case R_TOP_K: if (!(x == -1 || x >= 1)) rule = "must be -1 (off) or >= 1"; break;
    case R_TOP_P: if (!(x > 0 && x <= 1)) rule = "must be in (0, 1]"; break;
    case R_UNIT: if (!(x >= 0 && x <= 1)) rule = "must be in [0, 1]"; break;
    case R_PM2: if (!(x >= -2 && x <= 2)) rule = "must be in [-2, 2]"; break;
    case R_GT0: if (!(x > 0)) rule = "must be > 0"; break;
    case R_NONE: break;
    }
    if (rule) {
        char num[40];
        if (v->kind == SEMA_VAL_INT)
            snprintf(num, sizeof num, "%lld", (long long)v->i);
        else
            snprintf(num, sizeof num, "%g", v->f);
        sgl_diag_error(c->diags, val->loc, "`%s` %s, not %s", spec->name, rule, num);
    }
    return v;
}

static void unknown_option(SemaCtx *c, AstNode *o, const char *what, const OptSpec *tab,
                           const OptSpec *other, const char *other_what)
{
    AstStr n = o->option.name;
    SglDiag *d = sgl_diag_error(c->diags, o->option.name_loc, "`%s` has no option `%.*s`", what,
                                (int)n.len, n.s);
    if (find_opt(other, n)) {
        sgl_diag_note(c->diags, d, o->option.name_loc, "`%.*s` is an option of `%s`",
                      (int)n.len, n.s, other_what);
    } else {
        Suggest sg;
        suggest_init(&sg, n);
        for (const OptSpec *s = tab; s->name; s++)
            suggest_try(&sg, s->name, (uint32_t)strlen(s->name));
        suggest_note(c, d, &sg, o->option.name_loc);
    }
    sema_expr(c, o->option.value, NULL);
}

/* Finds duplicates; returns false (after a diagnostic) for a repeated option. */
static bool first_use(SemaCtx *c, AstList *opts, uint32_t i)
{
    AstNode *o = opts->items[i];
    if (i >= SEMA_MAX_OPTIONS) {
        if (i == SEMA_MAX_OPTIONS)
            sgl_diag_error(c->diags, o->loc, "more than %d options", SEMA_MAX_OPTIONS);
        return false;
    }
    for (uint32_t j = 0; j < i; j++) {
        AstNode *p = opts->items[j];
        if (p && p->kind == AST_OPTION && str_eq(p->option.name, o->option.name)) {
            SglDiag *d = sgl_diag_error(c->diags, o->option.name_loc, "option `%.*s` given twice",
                                        (int)o->option.name.len, o->option.name.s);
            sgl_diag_note(c->diags, d, p->option.name_loc, "first given here");
            sema_expr(c, o->option.value, NULL);
            return false;
        }
    }
    return true;
}

static void check_choices(SemaCtx *c, const SemaValue *v, AstNode *val, const char *what)
{
    if (!v || v->kind != SEMA_VAL_LIST)
        return;
    if (v->n_items == 0) {
        sgl_diag_error(c->diags, val->loc, "%s needs at least one choice", what);
        return;
    }
    for (uint32_t i = 0; i < v->n_items && strcmp(what, "`choices`") == 0; i++)
        if (v->items[i]->s.len == 0) {
            /* a gen's choices are decoded with a trie FSM (ir/fsm/typed.h) */
            sgl_diag_error(c->diags, val->loc, "gen choice %u is the empty string: constrained "
                           "decoding needs at least one character per choice", (unsigned)i);
            return;
        }
    for (uint32_t i = 0; i < v->n_items && v->n_items <= 1024; i++)  /* O(n^2): small lists */
        for (uint32_t j = 0; j < i; j++)
            if (str_eq(v->items[i]->s, v->items[j]->s)) {
                sgl_diag_add(c->diags, SGL_SEV_WARNING, val->loc, "choice \"%.*s\" is listed twice",
                             (int)v->items[i]->s.len, v->items[i]->s.s);
                return;
            }
}

void sema_gen(SemaCtx *c, AstNode *s)
{
    AstType *t = s->gen.type ? sema_resolve_type(c, s->gen.type) : c->ts->t_str;
    AstList *opts = s->gen.options;
    const AstNode *constraint = NULL;  /* the first constraint seen */
    const char *constraint_name = NULL;
    const SemaValue *max_tokens = NULL, *min_tokens = NULL;
    AstNode *min_node = NULL;
    bool has_n = false;
    if (!type_is_error(t) && t->kind != TY_STR) {
        constraint = s->gen.type;
        constraint_name = "the type annotation";
    }
    for (uint32_t i = 0; opts && i < opts->n; i++) {
        AstNode *o = opts->items[i];
        if (!o || o->kind != AST_OPTION || !first_use(c, opts, i))
            continue;
        const OptSpec *spec = find_opt(gen_opts, o->option.name);
        if (!spec) {
            unknown_option(c, o, "gen", gen_opts, select_opts, "select");
            continue;
        }
        const SemaValue *v = check_opt_value(c, o, spec);
        bool is_constraint = spec->type == OT_STR_LIST || strcmp(spec->name, "regex") == 0 ||
                             strcmp(spec->name, "json_schema") == 0;
        if (strcmp(spec->name, "max_tokens") == 0)
            max_tokens = v;
        if (strcmp(spec->name, "min_tokens") == 0) {
            min_tokens = v;
            min_node = o;
        }
        if (strcmp(spec->name, "n") == 0)
            has_n = true;
        if (!is_constraint)
            continue;
        if (constraint) {
            SglDiag *d = sgl_diag_error(c->diags, o->option.name_loc,
                                        "`%s` cannot be combined with %s", spec->name,
                                        constraint_name);
            sgl_diag_note(c->diags, d, constraint->loc, "a gen takes at most one constraint; "
                          "the other one is here");
            continue;
        }
        constraint = o;
        constraint_name = strcmp(spec->name, "regex") == 0 ? "`regex`"
                          : strcmp(spec->name, "json_schema") == 0 ? "`json_schema`"
                                                                   : "`choices`";
        if (type_is_error(o->option.value ? o->option.value->type : NULL))
            continue;
        if (!v) {
            sgl_diag_error(c->diags, o->option.value->loc,
                           "`%s` must be a compile-time constant", spec->name);
            continue;
        }
        if (strcmp(spec->name, "regex") == 0)
            check_regex(c, v, o->option.value);
        else if (strcmp(spec->name, "json_schema") == 0)
            sema_json_schema(c, v, o->option.value);
        else
            check_choices(c, v, o->option.value, "`choices`");
    }
    if (max_tokens && min_tokens && max_tokens->kind == SEMA_VAL_INT && min_tokens->kind == SEMA_VAL_INT &&
        min_tokens->i > max_tokens->i)
        sgl_diag_error(c->diags, min_node->option.value->loc,
                       "`min_tokens` (%lld) is larger than `max_tokens` (%lld)",
                       (long long)min_tokens->i, (long long)max_tokens->i);
    AstType *nt = has_n ? (type_is_error(t) ? t : types_list(c->ts, t)) : t;
    s->type = nt ? nt : c->ts->t_error;
    s->sym = sema_declare_local(c, s->gen.name, s->gen.name_loc, s, s->type, LOCAL_GEN);
}

void sema_select(SemaCtx *c, AstNode *s)
{
    char b1[TNAME_CAP];
    AstList *opts = s->gen.options;
    bool has_choices = false;
    for (uint32_t i = 0; opts && i < opts->n; i++) {
        AstNode *o = opts->items[i];
        if (!o || o->kind != AST_OPTION || !first_use(c, opts, i))
            continue;
        const OptSpec *spec = find_opt(select_opts, o->option.name);
        if (!spec) {
            unknown_option(c, o, "select", select_opts, gen_opts, "gen");
            continue;
        }
        AstNode *val = o->option.value;
        if (spec->type == OT_STR_LIST) {
            has_choices = true;
            AstType *ls = types_list(c->ts, c->ts->t_str);
            AstType *t = sema_expr(c, val, ls);
            if (!type_is_error(t) && t != ls) {
                SglDiag *d = sgl_diag_error(c->diags, val->loc,
                                            "select choices must be list[str], not %s",
                                            tname(t, b1));
                if (t->kind == TY_STR)
                    sgl_diag_note(c->diags, d, val->loc, "a single string is not a choice list; "
                                  "write [\"...\", \"...\"]");
                continue;
            }
            const SemaValue *v = type_is_error(t) ? NULL : sema_fold(c, val);
            o->sym = (void *)v;
            check_choices(c, v, val, "`select`");
            continue;
        }
        const SemaValue *v = check_opt_value(c, o, spec);
        if (strcmp(spec->name, "method") != 0 || type_is_error(val ? val->type : NULL))
            continue;
        if (!v || v->kind != SEMA_VAL_STR) {
            sgl_diag_error(c->diags, val->loc, "`method` must be a compile-time constant");
            continue;
        }
        bool ok = false;
        for (int k = 0; select_methods[k]; k++)
            ok |= str_eq_c(v->s, select_methods[k]);
        if (!ok) {
            SglDiag *d = sgl_diag_error(c->diags, val->loc, "unknown select method \"%.*s\"",
                                        (int)v->s.len, v->s.s);
            Suggest sg;
            suggest_init(&sg, v->s);
            sg.max = 8;
            sg.dist = sg.max + 1;
            for (int k = 0; select_methods[k]; k++)
                suggest_try(&sg, select_methods[k], (uint32_t)strlen(select_methods[k]));
            if (sg.best)
                suggest_note(c, d, &sg, val->loc);
            else
                sgl_diag_note(c->diags, d, val->loc, "the methods are token_length_normalized, "
                              "greedy_token and unconditional_likelihood_normalized");
        }
    }
    if (!has_choices)
        sgl_diag_error(c->diags, s->gen.name_loc, "`select %.*s` has no choices: write `select "
                       "%.*s from LIST` or `select %.*s(choices: LIST)`", (int)s->gen.name.len,
                       s->gen.name.s, (int)s->gen.name.len, s->gen.name.s, (int)s->gen.name.len,
                       s->gen.name.s);
    s->type = c->ts->t_str;
    s->sym = sema_declare_local(c, s->gen.name, s->gen.name_loc, s, s->type, LOCAL_SELECT);
}

/* sema_expr.c -- typing of expressions, built-in calls, constant folding.
 *
 * sema_expr is bidirectional in a small way: the caller may pass the type it
 * expects, which is what gives `[]`, record literals and parse_json their
 * type. Everything else is typed bottom-up. Rules follow docs/language.md
 * section 3: int widens to float, nothing else converts implicitly.
 * sema_fold evaluates constant expressions (literals, consts, operators,
 * interpolation, indexing and fields of constants) with overflow, division
 * and size checks; it is used for consts and for gen/select options.
 */
#include "frontend/sema_int.h"
#include "runtime/textfmt.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frontend/parse.h"

/* ------------------------------------------------------------ built-ins */

typedef enum {  /* ORDER BUILTIN */
    BI_LEN, BI_STRIP, BI_LOWER, BI_UPPER, BI_SPLIT, BI_JOIN, BI_REPLACE, BI_CONTAINS, BI_FIND,
    BI_INDEX, BI_SLICE, BI_APPEND, BI_RANGE, BI_FORMAT, BI_PARSE_INT, BI_PARSE_FLOAT,
    BI_PARSE_JSON, BI_TO_JSON, BI_STR, BI_INT, BI_FLOAT, BI_MIN, BI_MAX, BI_ABS, BI_META,
    BI_TEXT, BI_COUNT_
} Builtin;

static const struct {
    const char *name;
    uint8_t min_args, max_args;
} builtins[] = {  /* ORDER BUILTIN */
    {"len", 1, 1}, {"strip", 1, 1}, {"lower", 1, 1}, {"upper", 1, 1}, {"split", 2, 2},
    {"join", 2, 2}, {"replace", 3, 3}, {"contains", 2, 2}, {"find", 2, 2}, {"index", 2, 2},
    {"slice", 3, 3}, {"append", 2, 2}, {"range", 2, 2}, {"format", 1, SEMA_MAX_PARAMS},
    {"parse_int", 1, 1}, {"parse_float", 1, 1}, {"parse_json", 1, 1}, {"to_json", 1, 1},
    {"str", 1, 1}, {"int", 1, 1}, {"float", 1, 1}, {"min", 2, 2}, {"max", 2, 2},
    {"abs", 1, 1}, {"meta", 1, 1}, {"text", 0, 0},
};
_Static_assert(sizeof builtins / sizeof builtins[0] == BI_COUNT_, "builtins table");

int sema_builtin_find(AstStr name)
{
    for (int i = 0; i < BI_COUNT_; i++)
        if (str_eq_c(name, builtins[i].name))
            return i;
    return -1;
}

/* ---------------------------------------------------------------- helpers */

static AstType *err_t(SemaCtx *c)
{
    return c->ts->t_error;
}

static AstType *list_of(SemaCtx *c, AstType *elem)
{
    if (type_is_error(elem))
        return err_t(c);
    AstType *t = types_list(c->ts, elem);
    if (!t) {
        sema_alloc(c, (size_t)1 << 31);
        return err_t(c);
    }
    return t;
}

AstType *sema_expect(SemaCtx *c, AstNode *e, AstType *want, const char *what)
{
    char b1[TNAME_CAP], b2[TNAME_CAP];
    AstType *t = sema_expr(c, e, want);
    if (!type_assignable(want, t) || (t && t->kind == TY_VOID && want && want->kind != TY_VOID)) {
        if (t->kind == TY_VOID)
            sgl_diag_error(c->diags, e->loc, "%s: this call returns nothing; expected %s", what,
                           tname(want, b1));
        else
            sgl_diag_error(c->diags, e->loc, "%s has type %s, expected %s", what, tname(t, b2),
                           tname(want, b1));
        return err_t(c);
    }
    return t;
}

static bool is_void(const AstType *t)
{
    return t && t->kind == TY_VOID;
}

/* Reports use of a call without a value; true when it did. */
static bool check_value(SemaCtx *c, AstNode *e, AstType *t)
{
    if (!is_void(t))
        return false;
    sgl_diag_error(c->diags, e->loc, "this call returns nothing, so it has no value");
    return true;
}

const SemaValue *quiet_fold(SemaCtx *c, const AstNode *e)
{
    c->fold_quiet++;
    const SemaValue *v = sema_fold(c, e);
    c->fold_quiet--;
    return v;
}

/* ---------------------------------------------------------------- names */

static void suggest_value_names(SemaCtx *c, Suggest *sg)
{
    for (uint32_t i = 0; i < c->locals.cap; i++)
        if (c->locals.vals[i])
            suggest_try(sg, c->locals.keys[i].s, c->locals.keys[i].len);
    for (uint32_t i = 0; c->globals && i < c->globals->cap; i++) {
        SemaSym *g = c->globals->vals[i];
        if (g && g->kind == SYM_CONST)
            suggest_try(sg, g->name.s, g->name.len);
    }
}

static AstType *check_name(SemaCtx *c, AstNode *e)
{
    AstStr n = e->name.name;
    SemaSym *s = sema_lookup(c, n);
    if (!s) {
        if (sema_builtin_find(n) >= 0 && !str_eq_c(n, "str") && !str_eq_c(n, "int") &&
            !str_eq_c(n, "float")) {
            sgl_diag_error(c->diags, e->loc, "`%.*s` is a built-in function; call it: `%.*s(...)`",
                           (int)n.len, n.s, (int)n.len, n.s);
        } else if (str_eq_c(n, "str") || str_eq_c(n, "int") || str_eq_c(n, "float") ||
                   str_eq_c(n, "bool") || str_eq_c(n, "list")) {
            sgl_diag_error(c->diags, e->loc, "`%.*s` is a type, not a value", (int)n.len, n.s);
        } else if (!c->lenient) {
            SglDiag *d = sgl_diag_error(c->diags, e->loc, "unknown name `%.*s`", (int)n.len, n.s);
            if (d) {    /* past the error cap the search is skipped */
                Suggest sg;
                suggest_init(&sg, n);
                suggest_value_names(c, &sg);
                suggest_note(c, d, &sg, e->loc);
            }
        }
        return err_t(c);
    }
    e->sym = s;
    switch (s->kind) {
    case SYM_LOCAL:
        return s->type ? s->type : err_t(c);
    case SYM_CONST:
        return s->type ? s->type : err_t(c);
    case SYM_TYPE: {
        SglDiag *d = sgl_diag_error(c->diags, e->loc, "`%.*s` is a type, not a value", (int)n.len,
                                    n.s);
        sgl_diag_note(c->diags, d, s->loc, "`%.*s` is declared here", (int)n.len, n.s);
        return err_t(c);
    }
    default: {
        SglDiag *d = sgl_diag_error(c->diags, e->loc,
                                    "`%.*s` is a function; call it: `%.*s(...)`", (int)n.len,
                                    n.s, (int)n.len, n.s);
        if (s->loc.src)
            sgl_diag_note(c->diags, d, s->loc, "`%.*s` is declared here", (int)n.len, n.s);
        return err_t(c);
    }
    }
}

/* ------------------------------------------------------------- literals */

static AstType *check_string(SemaCtx *c, AstNode *e)
{
    char b1[TNAME_CAP];
    AstList *ps = e->string.parts;
    for (uint32_t i = 0; ps && i < ps->n; i++) {
        AstNode *p = ps->items[i];
        if (!p)
            continue;
        if (p->kind == AST_STR_TEXT) {
            p->type = c->ts->t_str;
            continue;
        }
        AstType *t = sema_expr(c, p, NULL);
        if (is_void(t))
            sgl_diag_error(c->diags, p->loc, "cannot interpolate %s: this call returns nothing",
                           tname(t, b1));
    }
    return c->ts->t_str;
}

static AstType *check_list(SemaCtx *c, AstNode *e, AstType *expected)
{
    char b1[TNAME_CAP], b2[TNAME_CAP];
    AstList *items = e->list.items;
    uint32_t n = items ? items->n : 0;
    AstType *want = expected && expected->kind == TY_LIST ? expected->elem : NULL;
    if (n == 0) {
        if (want)
            return expected;
        SglDiag *d = sgl_diag_error(c->diags, e->loc, "cannot tell the type of an empty list");
        sgl_diag_note(c->diags, d, e->loc, "give it one, as in `let xs: list[str] = []`");
        return err_t(c);
    }
    AstType *elem = NULL;
    AstNode *first = NULL;
    bool bad = false;
    for (uint32_t i = 0; i < n; i++) {
        AstNode *it = items->items[i];
        AstType *t = sema_expr(c, it, want);
        if (!it || type_is_error(t))
            continue;
        if (check_value(c, it, t)) {
            bad = true;
            continue;
        }
        if (want) {
            if (!type_assignable(want, t)) {
                sgl_diag_error(c->diags, it->loc, "list element has type %s, expected %s",
                               tname(t, b1), tname(want, b2));
                bad = true;
            }
            continue;
        }
        if (!elem) {
            elem = t;
            first = it;
        } else if (elem != t) {
            if (elem->kind == TY_INT && t->kind == TY_FLOAT) {
                elem = t;
            } else if (!(elem->kind == TY_FLOAT && t->kind == TY_INT)) {
                SglDiag *d = sgl_diag_error(c->diags, it->loc, "list element has type %s, but "
                                            "the first element is %s", tname(t, b1),
                                            tname(elem, b2));
                sgl_diag_note(c->diags, d, first->loc, "the first element");
                bad = true;
            }
        }
    }
    if (want)
        return expected;
    if (bad || !elem)
        return err_t(c);
    return list_of(c, elem);
}

static AstType *check_record(SemaCtx *c, AstNode *e, AstType *expected)
{
    char b1[TNAME_CAP];
    AstList *fs = e->record.fields;
    uint32_t n = fs ? fs->n : 0;
    if (!expected || expected->kind != TY_RECORD) {
        if (!type_is_error(expected) || !expected) {
            SglDiag *d = sgl_diag_error(c->diags, e->loc,
                                        expected ? "a record literal cannot have type %s"
                                                 : "cannot tell the record type of this literal%s",
                                        expected ? tname(expected, b1) : "");
            if (!expected)
                sgl_diag_note(c->diags, d, e->loc,
                              "give it one, as in `let c: City = {...}`");
        }
        for (uint32_t i = 0; i < n; i++)
            if (fs->items[i] && fs->items[i]->kind == AST_FIELD_INIT)
                sema_expr(c, fs->items[i]->option.value, NULL);
        return err_t(c);
    }
    AstType *r = expected;
    bool *seen = sema_alloc(c, (r->n_fields + 1) * sizeof *seen);
    AstNode **first = sema_alloc(c, (r->n_fields + 1) * sizeof *first);
    if (!seen || !first)
        return err_t(c);
    for (uint32_t i = 0; i < n; i++) {
        AstNode *f = fs->items[i];
        if (!f || f->kind != AST_FIELD_INIT)
            continue;
        const TyField *fd = type_field(r, f->option.name);
        if (!fd) {
            SglDiag *d = sgl_diag_error(c->diags, f->option.name_loc,
                                        "record `%.*s` has no field `%.*s`", (int)r->name.len,
                                        r->name.s, (int)f->option.name.len, f->option.name.s);
            Suggest sg;
            suggest_init(&sg, f->option.name);
            for (uint32_t j = 0; j < r->n_fields; j++)
                suggest_try(&sg, r->fields[j].name.s, r->fields[j].name.len);
            suggest_note(c, d, &sg, f->option.name_loc);
            sema_expr(c, f->option.value, NULL);
            continue;
        }
        uint32_t k = (uint32_t)(fd - r->fields);
        if (seen[k]) {
            SglDiag *d = sgl_diag_error(c->diags, f->option.name_loc, "field `%.*s` given twice",
                                        (int)fd->name.len, fd->name.s);
            sgl_diag_note(c->diags, d, first[k]->option.name_loc, "first given here");
            sema_expr(c, f->option.value, fd->type);
            continue;
        }
        seen[k] = true;
        first[k] = f;
        f->type = fd->type;
        sema_expect(c, f->option.value, fd->type, "field value");
    }
    for (uint32_t k = 0; k < r->n_fields; k++) {
        if (seen[k])
            continue;
        SglDiag *d = sgl_diag_error(c->diags, e->loc, "missing field `%.*s` of `%.*s`",
                                    (int)r->fields[k].name.len, r->fields[k].name.s,
                                    (int)r->name.len, r->name.s);
        if (r->fields[k].loc.src)
            sgl_diag_note(c->diags, d, r->fields[k].loc, "`%.*s` is declared here",
                          (int)r->fields[k].name.len, r->fields[k].name.s);
    }
    return r;
}

/* ------------------------------------------------------------ operators */

static AstType *check_unary(SemaCtx *c, AstNode *e)
{
    char b1[TNAME_CAP];
    AstType *t = sema_expr(c, e->unary.operand, NULL);
    if (type_is_error(t) || check_value(c, e->unary.operand, t))
        return err_t(c);
    if (e->unary.op == AST_OP_NOT) {
        if (t->kind == TY_BOOL)
            return t;
        sgl_diag_error(c->diags, e->loc, "`not` needs a bool, not %s", tname(t, b1));
        return err_t(c);
    }
    if (type_is_numeric(t))
        return t;
    sgl_diag_error(c->diags, e->loc, "unary `-` needs an int or float, not %s", tname(t, b1));
    return err_t(c);
}

static AstType *binary_error(SemaCtx *c, AstNode *e, AstType *l, AstType *r)
{
    char b1[TNAME_CAP], b2[TNAME_CAP];
    SglDiag *d = sgl_diag_error(c->diags, e->loc, "cannot apply `%s` to %s and %s",
                                ast_op_name(e->binary.op), tname(l, b1), tname(r, b2));
    if (e->binary.op == AST_OP_ADD && (l->kind == TY_STR || r->kind == TY_STR))
        sgl_diag_note(c->diags, d, e->loc, "to build text from values, use interpolation: "
                      "\"{a}{b}\"");
    return err_t(c);
}

static AstType *check_binary(SemaCtx *c, AstNode *e, AstType *expected)
{
    AstOp op = e->binary.op;
    AstType *l = sema_expr(c, e->binary.lhs,
                           op == AST_OP_ADD && expected && expected->kind == TY_LIST ? expected
                                                                                    : NULL);
    AstType *r = sema_expr(c, e->binary.rhs, l && l->kind == TY_LIST ? l : NULL);
    if (type_is_error(l) || type_is_error(r))
        return err_t(c);
    bool void_l = check_value(c, e->binary.lhs, l);
    bool void_r = check_value(c, e->binary.rhs, r);
    if (void_l || void_r)
        return err_t(c);
    switch (op) {
    case AST_OP_ADD:
        if (l->kind == TY_STR && r->kind == TY_STR)
            return l;
        if (l->kind == TY_LIST && l == r)
            return l;
        if (l->kind == TY_LIST && r->kind == TY_LIST && type_assignable(l, r))
            return type_is_error(l->elem) ? r : l;
        /* fall through */
    case AST_OP_SUB: case AST_OP_MUL: case AST_OP_DIV: case AST_OP_MOD:
        if (!type_is_numeric(l) || !type_is_numeric(r))
            return binary_error(c, e, l, r);
        if ((op == AST_OP_DIV || op == AST_OP_MOD) && l->kind == TY_INT && r->kind == TY_INT) {
            const SemaValue *v = quiet_fold(c, e->binary.rhs);
            if (v && v->kind == SEMA_VAL_INT && v->i == 0)
                sgl_diag_error(c->diags, e->binary.rhs->loc, "division by zero");
        }
        return l->kind == TY_FLOAT || r->kind == TY_FLOAT ? c->ts->t_float : c->ts->t_int;
    case AST_OP_EQ: case AST_OP_NE:
        if (type_assignable(l, r) || type_assignable(r, l))
            return c->ts->t_bool;
        return binary_error(c, e, l, r);
    case AST_OP_LT: case AST_OP_LE: case AST_OP_GT: case AST_OP_GE:
        if ((type_is_numeric(l) && type_is_numeric(r)) ||
            (l->kind == TY_STR && r->kind == TY_STR))
            return c->ts->t_bool;
        return binary_error(c, e, l, r);
    case AST_OP_AND: case AST_OP_OR:
        if (l->kind == TY_BOOL && r->kind == TY_BOOL)
            return l;
        return binary_error(c, e, l, r);
    default:
        return err_t(c);
    }
}

static AstType *check_range(SemaCtx *c, AstNode *e)
{
    char b1[TNAME_CAP];
    AstType *l = sema_expr(c, e->binary.lhs, c->ts->t_int);
    AstType *r = sema_expr(c, e->binary.rhs, c->ts->t_int);
    bool ok = true;
    if (!type_is_error(l) && l->kind != TY_INT) {
        sgl_diag_error(c->diags, e->binary.lhs->loc, "range bound must be int, not %s",
                       tname(l, b1));
        ok = false;
    }
    if (!type_is_error(r) && r->kind != TY_INT) {
        sgl_diag_error(c->diags, e->binary.rhs->loc, "range bound must be int, not %s",
                       tname(r, b1));
        ok = false;
    }
    return ok ? list_of(c, c->ts->t_int) : err_t(c);
}

static AstType *check_index(SemaCtx *c, AstNode *e)
{
    char b1[TNAME_CAP];
    AstType *b = sema_expr(c, e->index.base, NULL);
    AstType *i = sema_expr(c, e->index.index, c->ts->t_int);
    if (!type_is_error(i) && i->kind != TY_INT)
        sgl_diag_error(c->diags, e->index.index->loc, "list index must be int, not %s",
                       tname(i, b1));
    if (type_is_error(b))
        return err_t(c);
    if (b->kind != TY_LIST) {
        SglDiag *d = sgl_diag_error(c->diags, e->loc, "cannot index a value of type %s",
                                    tname(b, b1));
        if (b->kind == TY_STR)
            sgl_diag_note(c->diags, d, e->loc, "use slice(s, i, i + 1) for one character");
        return err_t(c);
    }
    const SemaValue *lv = quiet_fold(c, e->index.base);
    const SemaValue *iv = !type_is_error(i) && i->kind == TY_INT ? quiet_fold(c, e->index.index)
                                                                 : NULL;
    if (lv && iv && lv->kind == SEMA_VAL_LIST && iv->kind == SEMA_VAL_INT &&
        (iv->i < 0 || (uint64_t)iv->i >= lv->n_items))
        sgl_diag_error(c->diags, e->index.index->loc,
                       "index %lld is out of range for a list of %u elements", (long long)iv->i,
                       lv->n_items);
    return b->elem;
}

static AstType *check_field(SemaCtx *c, AstNode *e)
{
    char b1[TNAME_CAP];
    AstType *b = sema_expr(c, e->field.base, NULL);
    if (type_is_error(b) || check_value(c, e->field.base, b))
        return err_t(c);
    if (b->kind != TY_RECORD) {
        sgl_diag_error(c->diags, e->field.name_loc, "`.%.*s`: %s is not a record",
                       (int)e->field.name.len, e->field.name.s, tname(b, b1));
        return err_t(c);
    }
    const TyField *f = type_field(b, e->field.name);
    if (!f) {
        SglDiag *d = sgl_diag_error(c->diags, e->field.name_loc, "`%.*s` has no field `%.*s`",
                                    (int)b->name.len, b->name.s, (int)e->field.name.len,
                                    e->field.name.s);
        Suggest sg;
        suggest_init(&sg, e->field.name);
        for (uint32_t j = 0; j < b->n_fields; j++)
            suggest_try(&sg, b->fields[j].name.s, b->fields[j].name.len);
        suggest_note(c, d, &sg, e->field.name_loc);
        return err_t(c);
    }
    return f->type;
}

AstType *sema_expr(SemaCtx *c, AstNode *e, AstType *expected)
{
    if (!e)
        return err_t(c);
    AstType *t;
    switch (e->kind) {
    case AST_INT: t = c->ts->t_int; break;
    case AST_FLOAT: t = c->ts->t_float; break;
    case AST_BOOL: t = c->ts->t_bool; break;
    case AST_STR_TEXT: t = c->ts->t_str; break;
    case AST_STRING: t = check_string(c, e); break;
    case AST_NAME: t = check_name(c, e); break;
    case AST_LIST: t = check_list(c, e, expected); break;
    case AST_RECORD: t = check_record(c, e, expected); break;
    case AST_UNARY: t = check_unary(c, e); break;
    case AST_BINARY: t = check_binary(c, e, expected); break;
    case AST_RANGE: t = check_range(c, e); break;
    case AST_CALL: t = sema_call(c, e, expected); break;
    case AST_INDEX: t = check_index(c, e); break;
    case AST_FIELD: t = check_field(c, e); break;
    default: t = err_t(c); break;
    }
    if (!t)
        t = err_t(c);
    e->type = t;
    return t;
}

/* ---------------------------------------------------------------- calls */

static AstType *arg_t(SemaCtx *c, AstNode *e, uint32_t i, AstType *expected)
{
    AstNode *a = e->call.args->items[i];
    AstType *t = sema_expr(c, a, expected);
    if (check_value(c, a, t))
        return err_t(c);
    return t;
}

/* Reports an argument of the wrong type. Returns TY_ERROR. */
static AstType *bad_arg(SemaCtx *c, AstNode *e, uint32_t i, AstType *got, const char *want)
{
    char b1[TNAME_CAP];
    if (!type_is_error(got))
        sgl_diag_error(c->diags, e->call.args->items[i]->loc,
                       "argument %u of `%.*s` must be %s, not %s", i + 1,
                       (int)e->call.name.len, e->call.name.s, want, tname(got, b1));
    return err_t(c);
}

static bool want_kind(SemaCtx *c, AstNode *e, uint32_t i, TyKind k, const char *want)
{
    AstType *t = arg_t(c, e, i, k == TY_STR ? c->ts->t_str : k == TY_INT ? c->ts->t_int : NULL);
    if (type_is_error(t))
        return false;
    if (t->kind == k || (k == TY_FLOAT && t->kind == TY_INT))
        return true;
    bad_arg(c, e, i, t, want);
    return false;
}

/* Counts `{}` placeholders in a format template (docs/language.md section 6:
 * each `{}` takes the next value; nothing else is special). */
static int count_placeholders(AstStr s)
{
    int n = 0;
    for (uint32_t i = 0; i + 1 < s.len; i++)
        if (s.s[i] == '{' && s.s[i + 1] == '}') {
            n++;
            i++;
        }
    return n;
}

static AstType *check_builtin(SemaCtx *c, AstNode *e, int bi, AstType *expected)
{
    char b1[TNAME_CAP], b2[TNAME_CAP];
    AstList *args = e->call.args;
    uint32_t n = args ? args->n : 0;
    AstType *ts = c->ts->t_str, *ti = c->ts->t_int;
    if (n < builtins[bi].min_args || n > builtins[bi].max_args) {
        if (builtins[bi].min_args == builtins[bi].max_args)
            sgl_diag_error(c->diags, e->loc, "`%s` takes %u argument%s, but %u %s given",
                           builtins[bi].name, builtins[bi].min_args,
                           builtins[bi].min_args == 1 ? "" : "s", n, n == 1 ? "was" : "were");
        else
            sgl_diag_error(c->diags, e->loc, "`%s` takes %u to %u arguments, but %u %s given",
                           builtins[bi].name, builtins[bi].min_args, builtins[bi].max_args, n,
                           n == 1 ? "was" : "were");
        for (uint32_t i = 0; i < n; i++)
            sema_expr(c, args->items[i], NULL);
        return err_t(c);
    }
    if (c->in_const && (bi == BI_META || bi == BI_TEXT || bi == BI_PARSE_JSON)) {
        sgl_diag_error(c->diags, e->loc, "`%s` cannot be used in a const initializer",
                       builtins[bi].name);
        return err_t(c);
    }
    switch ((Builtin)bi) {
    case BI_LEN: {
        AstType *t = arg_t(c, e, 0, NULL);
        if (!type_is_error(t) && t->kind != TY_STR && t->kind != TY_LIST)
            bad_arg(c, e, 0, t, "str or a list");
        return ti;
    }
    case BI_STRIP: case BI_LOWER: case BI_UPPER:
        want_kind(c, e, 0, TY_STR, "str");
        return ts;
    case BI_SPLIT: {
        want_kind(c, e, 0, TY_STR, "str");
        if (want_kind(c, e, 1, TY_STR, "str")) {
            const SemaValue *v = quiet_fold(c, args->items[1]);
            if (v && v->kind == SEMA_VAL_STR && v->s.len == 0)
                sgl_diag_error(c->diags, args->items[1]->loc,
                               "the separator of `split` must not be empty");
        }
        return list_of(c, ts);
    }
    case BI_JOIN: {
        AstType *t = arg_t(c, e, 0, list_of(c, ts));
        if (!type_is_error(t) && !(t->kind == TY_LIST && t->elem == ts))
            bad_arg(c, e, 0, t, "list[str]");
        want_kind(c, e, 1, TY_STR, "str");
        return ts;
    }
    case BI_REPLACE:
        for (uint32_t i = 0; i < 3; i++)
            want_kind(c, e, i, TY_STR, "str");
        return ts;
    case BI_CONTAINS: case BI_INDEX: {
        AstType *t = arg_t(c, e, 0, NULL);
        if (type_is_error(t)) {
            arg_t(c, e, 1, NULL);
        } else if (t->kind == TY_LIST) {
            AstType *x = arg_t(c, e, 1, t->elem);
            if (!type_assignable(t->elem, x))
                sgl_diag_error(c->diags, args->items[1]->loc, "`%s` looks for %s in a %s",
                               builtins[bi].name, tname(x, b1), tname(t, b2));
        } else if (t->kind == TY_STR && bi == BI_CONTAINS) {
            want_kind(c, e, 1, TY_STR, "str");
        } else {
            bad_arg(c, e, 0, t, bi == BI_CONTAINS ? "str or a list" : "a list");
            arg_t(c, e, 1, NULL);
        }
        return bi == BI_CONTAINS ? c->ts->t_bool : ti;
    }
    case BI_FIND:
        want_kind(c, e, 0, TY_STR, "str");
        want_kind(c, e, 1, TY_STR, "str");
        return ti;
    case BI_SLICE: {
        AstType *t = arg_t(c, e, 0, NULL);
        want_kind(c, e, 1, TY_INT, "int");
        want_kind(c, e, 2, TY_INT, "int");
        if (type_is_error(t))
            return err_t(c);
        if (t->kind != TY_STR && t->kind != TY_LIST)
            return bad_arg(c, e, 0, t, "str or a list");
        return t;
    }
    case BI_APPEND: {
        AstType *t = arg_t(c, e, 0, expected && expected->kind == TY_LIST ? expected : NULL);
        if (type_is_error(t)) {
            arg_t(c, e, 1, NULL);
            return err_t(c);
        }
        if (t->kind != TY_LIST) {
            arg_t(c, e, 1, NULL);
            return bad_arg(c, e, 0, t, "a list");
        }
        AstType *x = arg_t(c, e, 1, t->elem);
        if (!type_assignable(t->elem, x)) {
            sgl_diag_error(c->diags, args->items[1]->loc, "cannot append %s to a %s",
                           tname(x, b1), tname(t, b2));
        }
        return t;
    }
    case BI_RANGE:
        want_kind(c, e, 0, TY_INT, "int");
        want_kind(c, e, 1, TY_INT, "int");
        return list_of(c, ti);
    case BI_FORMAT: {
        if (want_kind(c, e, 0, TY_STR, "str")) {
            const SemaValue *v = quiet_fold(c, args->items[0]);
            int k = v && v->kind == SEMA_VAL_STR ? count_placeholders(v->s) : -1;
            if (k >= 0 && (uint32_t)k != n - 1)
                sgl_diag_error(c->diags, e->loc, "the template has %d `{}` placeholder%s, but "
                               "%u value%s given", k, k == 1 ? "" : "s", n - 1,
                               n - 1 == 1 ? " is" : "s are");
        }
        for (uint32_t i = 1; i < n; i++)
            arg_t(c, e, i, NULL);
        return ts;
    }
    case BI_PARSE_INT: case BI_PARSE_FLOAT:
        want_kind(c, e, 0, TY_STR, "str");
        return bi == BI_PARSE_INT ? ti : c->ts->t_float;
    case BI_PARSE_JSON:
        want_kind(c, e, 0, TY_STR, "str");
        if (!expected || expected->kind == TY_VOID) {
            SglDiag *d = sgl_diag_error(c->diags, e->loc,
                                        "cannot tell what type `parse_json` should produce");
            sgl_diag_note(c->diags, d, e->loc, "give it one, as in `let c: City = parse_json(s)`");
            return err_t(c);
        }
        return expected;
    case BI_TO_JSON: case BI_STR:
        arg_t(c, e, 0, NULL);
        return ts;
    case BI_INT: case BI_FLOAT: {
        AstType *t = arg_t(c, e, 0, NULL);
        if (type_is_error(t))
            return bi == BI_INT ? ti : c->ts->t_float;
        bool ok = t->kind == TY_STR || t->kind == TY_INT || t->kind == TY_FLOAT ||
                  (bi == BI_INT && t->kind == TY_BOOL);
        if (!ok)
            bad_arg(c, e, 0, t, bi == BI_INT ? "float, bool, str or int" : "int, str or float");
        return bi == BI_INT ? ti : c->ts->t_float;
    }
    case BI_MIN: case BI_MAX: {
        AstType *a = arg_t(c, e, 0, NULL), *b = arg_t(c, e, 1, NULL);
        if (!type_is_error(a) && !type_is_numeric(a))
            return bad_arg(c, e, 0, a, "int or float");
        if (!type_is_error(b) && !type_is_numeric(b))
            return bad_arg(c, e, 1, b, "int or float");
        if (type_is_error(a) || type_is_error(b))
            return err_t(c);
        return a->kind == TY_FLOAT || b->kind == TY_FLOAT ? c->ts->t_float : ti;
    }
    case BI_ABS: {
        AstType *a = arg_t(c, e, 0, NULL);
        if (!type_is_error(a) && !type_is_numeric(a))
            return bad_arg(c, e, 0, a, "int or float");
        return a;
    }
    case BI_META: {
        AstNode *a = args->items[0];
        sema_expr(c, a, NULL);
        SemaSym *s = a && a->kind == AST_NAME ? a->sym : NULL;
        if (a && a->kind == AST_NAME && !s)
            return c->ts->meta;
        if (!s || s->kind != SYM_LOCAL || (s->local != LOCAL_GEN && s->local != LOCAL_SELECT) ||
            (s->type && s->type->kind == TY_LIST)) {
            SglDiag *d = sgl_diag_error(c->diags, a ? a->loc : e->loc,
                                        "`meta` takes the name of one `gen` or `select` result");
            if (s && s->loc.src)
                sgl_diag_note(c->diags, d, s->loc, "`%.*s` is declared here", (int)s->name.len,
                              s->name.s);
        }
        return c->ts->meta;
    }
    case BI_TEXT:
        if (!c->fn)
            sgl_diag_error(c->diags, e->loc, "`text()` is only available inside a function");
        return ts;
    default:
        return err_t(c);
    }
}

AstType *sema_call(SemaCtx *c, AstNode *e, AstType *expected)
{
    char b1[TNAME_CAP];
    AstStr n = e->call.name;
    AstList *args = e->call.args;
    uint32_t na = args ? args->n : 0;
    SemaSym *g = c->globals ? nmap_get(c->globals, n) : NULL;
    if (g && (g->kind == SYM_FN || g->kind == SYM_EXTERN)) {
        e->sym = g;
        if (c->in_const) {
            sgl_diag_error(c->diags, e->loc, "a const initializer cannot call `%.*s`",
                           (int)n.len, n.s);
            for (uint32_t i = 0; i < na; i++)
                sema_expr(c, args->items[i], NULL);
            return err_t(c);
        }
        if (!g->params) {    /* signature rejected (a limit): no second message */
            for (uint32_t i = 0; i < na; i++)
                sema_expr(c, args->items[i], NULL);
            return err_t(c);
        }
        if (na != g->n_params) {
            SglDiag *d = sgl_diag_error(c->diags, e->loc,
                                        "`%.*s` takes %u argument%s, but %u %s given",
                                        (int)n.len, n.s, g->n_params, g->n_params == 1 ? "" : "s",
                                        na, na == 1 ? "was" : "were");
            sgl_diag_note(c->diags, d, g->loc, "`%.*s` is declared here", (int)n.len, n.s);
            for (uint32_t i = 0; i < na; i++)
                sema_expr(c, args->items[i], i < g->n_params ? g->params[i] : NULL);
        } else {
            for (uint32_t i = 0; i < na; i++) {
                AstNode *a = args->items[i];
                AstType *t = sema_expr(c, a, g->params[i]);
                if (type_assignable(g->params[i], t) && !is_void(t))
                    continue;
                char b2[TNAME_CAP];
                SglDiag *d = sgl_diag_error(c->diags, a->loc, "argument %u of `%.*s` %s%s, "
                                            "expected %s", i + 1, (int)n.len, n.s,
                                            is_void(t) ? "returns nothing" : "has type ",
                                            is_void(t) ? "" : tname(t, b2),
                                            tname(g->params[i], b1));
                AstNode *p = g->decl && g->decl->fn.params && i < g->decl->fn.params->n
                                 ? g->decl->fn.params->items[i] : NULL;
                if (p && p->kind == AST_PARAM)
                    sgl_diag_note(c->diags, d, p->decl.name_loc, "parameter `%.*s` is declared "
                                  "here", (int)p->decl.name.len, p->decl.name.s);
            }
        }
        return g->type ? g->type : err_t(c);
    }
    int bi = sema_builtin_find(n);
    if (bi >= 0 && !g) {
        e->sym = NULL;
        return check_builtin(c, e, bi, expected);
    }
    for (uint32_t i = 0; i < na; i++)
        sema_expr(c, args->items[i], NULL);
    SemaSym *s = sema_lookup(c, n);
    if (s) {
        SglDiag *d = sgl_diag_error(c->diags, e->loc, "`%.*s` is %s, not a function", (int)n.len,
                                    n.s, s->kind == SYM_TYPE ? "a type" : s->kind == SYM_CONST
                                        ? "a const" : "a variable");
        if (s->loc.src)
            sgl_diag_note(c->diags, d, s->loc, "`%.*s` is declared here", (int)n.len, n.s);
        if (s->kind == SYM_TYPE)
            sgl_diag_note(c->diags, d, e->loc, "a %s value is written `{field: value, ...}`",
                          tname(s->type, b1));
        return err_t(c);
    }
    if (c->lenient)
        return err_t(c);
    SglDiag *d = sgl_diag_error(c->diags, e->loc, "unknown function `%.*s`", (int)n.len, n.s);
    if (!d)
        return err_t(c);
    Suggest sg;
    suggest_init(&sg, n);
    for (int i = 0; i < BI_COUNT_; i++)
        suggest_try(&sg, builtins[i].name, (uint32_t)strlen(builtins[i].name));
    for (uint32_t i = 0; c->globals && i < c->globals->cap; i++) {
        SemaSym *f = c->globals->vals[i];
        if (f && (f->kind == SYM_FN || f->kind == SYM_EXTERN))
            suggest_try(&sg, f->name.s, f->name.len);
    }
    suggest_note(c, d, &sg, e->loc);
    return err_t(c);
}

/* ------------------------------------------------------------- folding */

/* Folding errors are reported only by the callers that fold a construct
 * once (consts, options); probes (division by zero, list bounds, split
 * separators, format templates) fold quietly so nothing is reported twice. */
static void fold_error(SemaCtx *c, SglLoc loc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fold_error(SemaCtx *c, SglLoc loc, const char *fmt, ...)
{
    if (c->fold_quiet)
        return;
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    sgl_diag_error(c->diags, loc, "%s", msg);
}

typedef struct {
    char *p;
    size_t n, cap;
    bool oom;
} Buf;

static void buf_put(Buf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

/* Shortest round-trip text of a double, with ".0" when it reads as an
 * integer: the same text the runtime's str() gives (backend/value.c). */
/* A JSON string as jansson writes it (compact), like the runtime's to_json. */
static void json_str(Buf *b, AstStr s)
{
    json_t *j = json_stringn(s.s, s.len);
    char *t = j ? json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
    if (!t)
        b->oom = true;
    else
        buf_put(b, t, strlen(t));
    free(t);
    json_decref(j);
}

/* Appends v's text form; `json` quotes strings (inside lists/records). The
 * recursion follows the value's type depth (at most SEMA_MAX_TYPE_DEPTH). */
static void value_text(Buf *b, const SemaValue *v, bool json)
{
    char num[40];
    if (b->oom || b->n > SGL_MAX_STRING_BYTES)
        return;
    switch (v->kind) {
    case SEMA_VAL_STR:
        if (json)
            json_str(b, v->s);
        else
            buf_put(b, v->s.s, v->s.len);
        break;
    case SEMA_VAL_INT:
        snprintf(num, sizeof num, "%lld", (long long)v->i);
        buf_put(b, num, strlen(num));
        break;
    case SEMA_VAL_FLOAT:
        if (json && !isfinite(v->f))
            snprintf(num, sizeof num, "null");
        else
            sgl_format_float(v->f, num, sizeof num);
        buf_put(b, num, strlen(num));
        break;
    case SEMA_VAL_BOOL:
        buf_put(b, v->b ? "true" : "false", v->b ? 4 : 5);
        break;
    case SEMA_VAL_LIST:
        buf_put(b, "[", 1);
        for (uint32_t i = 0; i < v->n_items && !b->oom && b->n <= SGL_MAX_STRING_BYTES; i++) {
            if (i)
                buf_put(b, ",", 1);
            value_text(b, v->items[i], true);
        }
        buf_put(b, "]", 1);
        break;
    case SEMA_VAL_RECORD:
        buf_put(b, "{", 1);
        for (uint32_t i = 0; i < v->n_items && v->type && i < v->type->n_fields; i++) {
            if (i)
                buf_put(b, ",", 1);
            json_str(b, v->type->fields[i].name);
            buf_put(b, ":", 1);
            value_text(b, v->items[i], true);
        }
        buf_put(b, "}", 1);
        break;
    }
}

bool sema_value_text(SemaCtx *c, const SemaValue *v, AstStr *out, SglLoc at)
{
    Buf b = {0};
    value_text(&b, v, false);
    bool ok = false;
    if (b.oom) {
        sema_alloc(c, (size_t)1 << 31);
    } else if (b.n > SGL_MAX_STRING_BYTES) {
        sgl_diag_error(c->diags, at, "constant string longer than the limit of %u bytes",
                       SGL_MAX_STRING_BYTES);
    } else {
        char *s = sgl_arena_strndup(c->arena, b.p ? b.p : "", b.n);
        if (s) {
            out->s = s;
            out->len = (uint32_t)b.n;
            ok = true;
        } else {
            sema_alloc(c, (size_t)1 << 31);
        }
    }
    free(b.p);
    return ok;
}

static SemaValue *new_val(SemaCtx *c, SemaValKind k, AstType *t)
{
    SemaValue *v = sema_alloc(c, sizeof *v);
    if (v) {
        v->kind = k;
        v->type = t;
    }
    return v;
}

static const SemaValue *fold_string(SemaCtx *c, const AstNode *e)
{
    AstList *ps = e->string.parts;
    uint32_t n = ps ? ps->n : 0;
    bool plain = true;
    Buf b = {0};
    const SemaValue *res = NULL;
    for (uint32_t i = 0; i < n; i++) {
        const AstNode *p = ps->items[i];
        if (!p)
            goto out;
        if (p->kind == AST_STR_TEXT) {
            buf_put(&b, p->text.text.s, p->text.text.len);
            continue;
        }
        plain = false;
        const SemaValue *v = sema_fold(c, p);
        if (!v)
            goto out;
        value_text(&b, v, false);
    }
    if (b.oom) {
        sema_alloc(c, (size_t)1 << 31);
        goto out;
    }
    if (b.n > SGL_MAX_STRING_BYTES) {
        fold_error(c, e->loc, "constant string longer than the limit of %u bytes",
                   SGL_MAX_STRING_BYTES);
        goto out;
    }
    SemaValue *v = new_val(c, SEMA_VAL_STR, c->ts->t_str);
    char *s = v ? sgl_arena_strndup(c->arena, b.p ? b.p : "", b.n) : NULL;
    if (!s)
        goto out;
    v->s.s = s;
    v->s.len = (uint32_t)b.n;
    v->literal = plain ? e : NULL;
    res = v;
out:
    free(b.p);
    return res;
}

/* v converted to type t where int widens to float (also inside lists and
 * records), so folded values carry the representation their type says. */
const SemaValue *sema_coerce(SemaCtx *c, const SemaValue *v, const AstType *t)
{
    if (!v || type_is_error(t))
        return v;
    if (t->kind == TY_FLOAT && v->kind == SEMA_VAL_INT) {
        SemaValue *f = new_val(c, SEMA_VAL_FLOAT, (AstType *)t);
        if (f)
            f->f = (double)v->i;
        return f;
    }
    bool is_list = t->kind == TY_LIST && v->kind == SEMA_VAL_LIST;
    bool is_rec = t->kind == TY_RECORD && v->kind == SEMA_VAL_RECORD && v->n_items == t->n_fields;
    if (!is_list && !is_rec)
        return v;
    SemaValue **items = NULL;
    for (uint32_t i = 0; i < v->n_items; i++) {
        const SemaValue *x = sema_coerce(c, v->items[i], is_list ? t->elem : t->fields[i].type);
        if (!x)
            return NULL;
        if (x == v->items[i] && !items)
            continue;
        if (!items) {
            items = sema_alloc(c, (v->n_items + 1) * sizeof *items);
            if (!items)
                return NULL;
            memcpy(items, v->items, v->n_items * sizeof *items);
        }
        items[i] = (SemaValue *)x;
    }
    if (!items)
        return v;
    SemaValue *n = new_val(c, v->kind, (AstType *)t);
    if (!n)
        return NULL;
    n->items = items;
    n->n_items = v->n_items;
    return n;
}

static const SemaValue *fold_items(SemaCtx *c, const AstNode *e, const AstList *l,
                                   SemaValKind k)
{
    uint32_t n = l ? l->n : 0;
    SemaValue *v = new_val(c, k, e->type);
    if (!v)
        return NULL;
    v->items = sema_alloc(c, (n + 1) * sizeof *v->items);
    if (!v->items)
        return NULL;
    for (uint32_t i = 0; i < n; i++) {
        const AstNode *it = l->items[i];
        if (it && it->kind == AST_FIELD_INIT)
            it = it->option.value;
        const SemaValue *x = sema_fold(c, it);
        if (x && k == SEMA_VAL_LIST && e->type && e->type->kind == TY_LIST)
            x = sema_coerce(c, x, e->type->elem);
        if (!x)
            return NULL;
        v->items[i] = (SemaValue *)x;
    }
    v->n_items = n;
    return v;
}

static const SemaValue *fold_record(SemaCtx *c, const AstNode *e)
{
    const AstType *r = e->type;
    if (!r || r->kind != TY_RECORD)
        return NULL;
    SemaValue *v = new_val(c, SEMA_VAL_RECORD, e->type);
    if (!v)
        return NULL;
    v->items = sema_alloc(c, (r->n_fields + 1) * sizeof *v->items);
    if (!v->items)
        return NULL;
    AstList *fs = e->record.fields;
    for (uint32_t k = 0; k < r->n_fields; k++) {
        const SemaValue *x = NULL;
        for (uint32_t i = 0; fs && i < fs->n; i++) {
            const AstNode *f = fs->items[i];
            if (f && f->kind == AST_FIELD_INIT && str_eq(f->option.name, r->fields[k].name)) {
                x = sema_coerce(c, sema_fold(c, f->option.value), r->fields[k].type);
                break;
            }
        }
        if (!x)
            return NULL;
        v->items[k] = (SemaValue *)x;
    }
    v->n_items = r->n_fields;
    return v;
}

static double num(const SemaValue *v)
{
    return v->kind == SEMA_VAL_FLOAT ? v->f : (double)v->i;
}

static int cmp_vals(const SemaValue *a, const SemaValue *b, bool *ok)
{
    *ok = true;
    if (a->kind == SEMA_VAL_STR && b->kind == SEMA_VAL_STR) {
        uint32_t n = a->s.len < b->s.len ? a->s.len : b->s.len;
        int r = memcmp(a->s.s, b->s.s, n);
        return r ? r : (a->s.len > b->s.len) - (a->s.len < b->s.len);
    }
    if (a->kind == SEMA_VAL_BOOL && b->kind == SEMA_VAL_BOOL)
        return (a->b > b->b) - (a->b < b->b);
    if (a->kind == SEMA_VAL_INT && b->kind == SEMA_VAL_INT)
        return (a->i > b->i) - (a->i < b->i);
    if ((a->kind == SEMA_VAL_INT || a->kind == SEMA_VAL_FLOAT) && (b->kind == SEMA_VAL_INT || b->kind == SEMA_VAL_FLOAT))
        return (num(a) > num(b)) - (num(a) < num(b));
    *ok = false;
    return 0;
}

static const SemaValue *fold_binary(SemaCtx *c, const AstNode *e)
{
    const SemaValue *l = sema_fold(c, e->binary.lhs);
    if (!l)
        return NULL;
    AstOp op = e->binary.op;
    if (op == AST_OP_AND || op == AST_OP_OR) {
        if (l->kind != SEMA_VAL_BOOL)
            return NULL;
        if (l->b == (op == AST_OP_OR))
            return l;
        return sema_fold(c, e->binary.rhs);
    }
    const SemaValue *r = sema_fold(c, e->binary.rhs);
    if (!r)
        return NULL;
    AstType *t = e->type;
    SemaValue *v;
    bool ok;
    switch (op) {
    case AST_OP_EQ: case AST_OP_NE: case AST_OP_LT: case AST_OP_LE: case AST_OP_GT:
    case AST_OP_GE: {
        int k = cmp_vals(l, r, &ok);
        if (!ok)
            return NULL;
        v = new_val(c, SEMA_VAL_BOOL, c->ts->t_bool);
        if (v)
            v->b = op == AST_OP_EQ ? k == 0 : op == AST_OP_NE ? k != 0 : op == AST_OP_LT ? k < 0
                 : op == AST_OP_LE ? k <= 0 : op == AST_OP_GT ? k > 0 : k >= 0;
        return v;
    }
    case AST_OP_ADD:
        if (l->kind == SEMA_VAL_STR && r->kind == SEMA_VAL_STR) {
            if ((uint64_t)l->s.len + r->s.len > SGL_MAX_STRING_BYTES) {
                fold_error(c, e->loc,
                               "constant string longer than the limit of %u bytes",
                               SGL_MAX_STRING_BYTES);
                return NULL;
            }
            v = new_val(c, SEMA_VAL_STR, t);
            char *s = v ? sema_alloc(c, (size_t)l->s.len + r->s.len + 1) : NULL;
            if (!s)
                return NULL;
            memcpy(s, l->s.s, l->s.len);
            memcpy(s + l->s.len, r->s.s, r->s.len);
            v->s.s = s;
            v->s.len = l->s.len + r->s.len;
            return v;
        }
        if (l->kind == SEMA_VAL_LIST && r->kind == SEMA_VAL_LIST) {
            uint64_t n = (uint64_t)l->n_items + r->n_items;
            if (n > SEMA_MAX_CONST_LIST) {
                fold_error(c, e->loc, "constant list longer than the limit of %d "
                               "elements", SEMA_MAX_CONST_LIST);
                return NULL;
            }
            v = new_val(c, SEMA_VAL_LIST, t);
            SemaValue **items = v ? sema_alloc(c, (n + 1) * sizeof *items) : NULL;
            if (!items)
                return NULL;
            if (l->n_items)
                memcpy(items, l->items, l->n_items * sizeof *items);
            if (r->n_items)
                memcpy(items + l->n_items, r->items, r->n_items * sizeof *items);
            v->items = items;
            v->n_items = (uint32_t)n;
            return v;
        }
        /* fall through */
    case AST_OP_SUB: case AST_OP_MUL: case AST_OP_DIV: case AST_OP_MOD:
        if ((l->kind != SEMA_VAL_INT && l->kind != SEMA_VAL_FLOAT) ||
            (r->kind != SEMA_VAL_INT && r->kind != SEMA_VAL_FLOAT))
            return NULL;
        if (l->kind == SEMA_VAL_INT && r->kind == SEMA_VAL_INT) {
            int64_t x = 0;
            bool ovf = false;
            if (op == AST_OP_ADD)
                ovf = __builtin_add_overflow(l->i, r->i, &x);
            else if (op == AST_OP_SUB)
                ovf = __builtin_sub_overflow(l->i, r->i, &x);
            else if (op == AST_OP_MUL)
                ovf = __builtin_mul_overflow(l->i, r->i, &x);
            else if (r->i == 0)
                return NULL;    /* "division by zero" is reported by check_binary */
            else if (l->i == INT64_MIN && r->i == -1)
                ovf = true;
            else
                x = op == AST_OP_DIV ? l->i / r->i : l->i % r->i;
            if (ovf) {
                fold_error(c, e->loc, "integer overflow in constant expression");
                return NULL;
            }
            v = new_val(c, SEMA_VAL_INT, c->ts->t_int);
            if (v)
                v->i = x;
            return v;
        }
        v = new_val(c, SEMA_VAL_FLOAT, c->ts->t_float);
        if (!v)
            return NULL;
        double a = num(l), b = num(r);
        v->f = op == AST_OP_ADD ? a + b : op == AST_OP_SUB ? a - b : op == AST_OP_MUL ? a * b
             : op == AST_OP_DIV ? a / b : fmod(a, b);
        return v;
    default:
        return NULL;
    }
}

const SemaValue *sema_fold(SemaCtx *c, const AstNode *e)
{
    if (!e || type_is_error(e->type))
        return NULL;
    SemaValue *v;
    switch (e->kind) {
    case AST_INT:
        v = new_val(c, SEMA_VAL_INT, e->type);
        if (v)
            v->i = e->ival;
        return v;
    case AST_FLOAT:
        v = new_val(c, SEMA_VAL_FLOAT, e->type);
        if (v)
            v->f = e->fval;
        return v;
    case AST_BOOL:
        v = new_val(c, SEMA_VAL_BOOL, e->type);
        if (v)
            v->b = e->bval;
        return v;
    case AST_STRING:
        return fold_string(c, e);
    case AST_NAME: {
        const SemaSym *s = e->sym;
        return s && s->kind == SYM_CONST ? s->value : NULL;
    }
    case AST_LIST:
        return fold_items(c, e, e->list.items, SEMA_VAL_LIST);
    case AST_RECORD:
        return fold_record(c, e);
    case AST_UNARY: {
        const SemaValue *x = sema_fold(c, e->unary.operand);
        if (!x)
            return NULL;
        if (e->unary.op == AST_OP_NOT && x->kind == SEMA_VAL_BOOL) {
            v = new_val(c, SEMA_VAL_BOOL, e->type);
            if (v)
                v->b = !x->b;
            return v;
        }
        if (x->kind == SEMA_VAL_INT) {
            if (x->i == INT64_MIN) {
                fold_error(c, e->loc, "integer overflow in constant expression");
                return NULL;
            }
            v = new_val(c, SEMA_VAL_INT, e->type);
            if (v)
                v->i = -x->i;
            return v;
        }
        if (x->kind == SEMA_VAL_FLOAT) {
            v = new_val(c, SEMA_VAL_FLOAT, e->type);
            if (v)
                v->f = -x->f;
            return v;
        }
        return NULL;
    }
    case AST_BINARY:
        return fold_binary(c, e);
    case AST_INDEX: {
        const SemaValue *l = sema_fold(c, e->index.base);
        const SemaValue *i = l ? sema_fold(c, e->index.index) : NULL;
        if (!l || !i || l->kind != SEMA_VAL_LIST || i->kind != SEMA_VAL_INT || i->i < 0 ||
            (uint64_t)i->i >= l->n_items)
            return NULL;
        return l->items[i->i];
    }
    case AST_FIELD: {
        const SemaValue *r = sema_fold(c, e->field.base);
        if (!r || r->kind != SEMA_VAL_RECORD || !r->type)
            return NULL;
        const TyField *f = type_field(r->type, e->field.name);
        return f ? r->items[f - r->type->fields] : NULL;
    }
    default:
        return NULL;
    }
}

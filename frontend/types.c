/* types.c -- the type universe of one compilation (see types.h).
 *
 * Deliberately simple: a type points at its list type once that exists, so
 * list[T] is found in O(1); every function here is iterative, so list[list[...]] nested to the parser's depth limit
 * cannot overflow the stack.
 */
#include "frontend/types.h"

#include <stdio.h>
#include <string.h>

static const char *const kind_names[] = {  /* ORDER TY_KIND */
    "<error>", "void", "str", "int", "float", "bool", "list", "record",
};
_Static_assert(sizeof kind_names / sizeof kind_names[0] == TY_KIND_COUNT_, "kind_names");

static AstType *new_type(SglTypes *ts, TyKind k)
{
    AstType *t = sgl_arena_calloc(ts->arena, 1, sizeof *t);
    if (t)
        t->kind = k;
    return t;
}

/* The record meta(NAME) returns (docs/language.md section 5.5). */
static AstType *make_meta(SglTypes *ts)
{
    static const char *const names[] = {"prompt_tokens", "completion_tokens", "cached_tokens",
                                        "finish_reason", "logprob"};
    AstStr nm = {"Meta", 4};
    AstType *t = types_record(ts, nm, (SglLoc){0}, 5);
    if (!t)
        return NULL;
    AstType *tys[] = {ts->t_int, ts->t_int, ts->t_int, ts->t_str, ts->t_float};
    for (uint32_t i = 0; i < 5; i++) {
        t->fields[i].name.s = names[i];
        t->fields[i].name.len = (uint32_t)strlen(names[i]);
        t->fields[i].type = tys[i];
    }
    t->depth = 1;
    return t;
}

bool types_init(SglTypes *ts, SglArena *arena)
{
    memset(ts, 0, sizeof *ts);
    ts->arena = arena;
    ts->t_error = new_type(ts, TY_ERROR);
    ts->t_void = new_type(ts, TY_VOID);
    ts->t_str = new_type(ts, TY_STR);
    ts->t_int = new_type(ts, TY_INT);
    ts->t_float = new_type(ts, TY_FLOAT);
    ts->t_bool = new_type(ts, TY_BOOL);
    if (!ts->t_error || !ts->t_void || !ts->t_str || !ts->t_int || !ts->t_float || !ts->t_bool)
        return false;
    ts->meta = make_meta(ts);
    return ts->meta != NULL;
}

AstType *types_list(SglTypes *ts, AstType *elem)
{
    if (!elem)
        return NULL;
    if (elem->list_of)
        return elem->list_of;
    AstType *t = new_type(ts, TY_LIST);
    if (!t)
        return NULL;
    t->elem = elem;
    t->depth = elem->depth + 1;
    elem->list_of = t;
    return t;
}

AstType *types_record(SglTypes *ts, AstStr name, SglLoc loc, uint32_t n_fields)
{
    AstType *t = new_type(ts, TY_RECORD);
    if (!t)
        return NULL;
    t->name = name;
    t->loc = loc;
    t->n_fields = n_fields;
    t->depth = 1;
    if (n_fields) {
        t->fields = sgl_arena_calloc(ts->arena, n_fields, sizeof *t->fields);
        if (!t->fields)
            return NULL;
    }
    return t;
}

const char *type_kind_name(TyKind k)
{
    return (unsigned)k < TY_KIND_COUNT_ ? kind_names[k] : "?";
}

const char *type_name(const AstType *t, char *buf, size_t cap)
{
    if (!cap)
        return buf;
    buf[0] = '\0';
    size_t n = 0, depth = 0;
    const AstType *base = t;
    while (base && base->kind == TY_LIST) {
        depth++;
        base = base->elem;
    }
    for (size_t i = 0; i < depth && n + 6 < cap; i++) {
        memcpy(buf + n, "list[", 5);
        n += 5;
    }
    const char *s = !base ? "<error>" : base->kind == TY_RECORD ? base->name.s
                                                              : type_kind_name(base->kind);
    size_t len = strlen(s);
    if (n + len >= cap)
        len = cap - n - 1;
    memcpy(buf + n, s, len);
    n += len;
    for (size_t i = 0; i < depth && n + 1 < cap; i++)
        buf[n++] = ']';
    buf[n] = '\0';
    return buf;
}

const TyField *type_field(const AstType *record, AstStr name)
{
    if (!record || record->kind != TY_RECORD)
        return NULL;
    for (uint32_t i = 0; i < record->n_fields; i++)
        if (record->fields[i].name.len == name.len &&
            memcmp(record->fields[i].name.s, name.s, name.len) == 0)
            return &record->fields[i];
    return NULL;
}

bool type_is_error(const AstType *t)
{
    return !t || t->kind == TY_ERROR;
}

bool type_assignable(const AstType *to, const AstType *from)
{
    if (type_is_error(to) || type_is_error(from))
        return true;
    if (to == from)
        return true;
    if (to->kind == TY_FLOAT && from->kind == TY_INT)
        return true;
    /* list[<error>] matches any list of the same depth; no conversion of
     * elements (a list[int] is not a list[float]) */
    while (to->kind == TY_LIST && from->kind == TY_LIST) {
        to = to->elem;
        from = from->elem;
        if (type_is_error(to) || type_is_error(from) || to == from)
            return true;
    }
    return false;
}

bool type_is_numeric(const AstType *t)
{
    return t && (t->kind == TY_INT || t->kind == TY_FLOAT);
}

bool type_is_scalar(const AstType *t)
{
    return t && t->kind != TY_LIST && t->kind != TY_RECORD;
}

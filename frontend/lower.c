/* lower.c -- checked AST -> IR (see lower.h).
 *
 * One recursive walk per function: statements append nodes to the current
 * region (Lower.r), expressions return the node that defines their value.
 * Conversions sema leaves implicit (int where float is expected) become
 * BUILTIN float nodes here. `a and b` / `a or b` evaluate b only when needed
 * (an IF writing a temp slot) unless b is trivially safe (no call, index,
 * division or arithmetic that could fail), in which case a strict BINOP is
 * emitted. Recursion follows the tree, whose height the parser bounds
 * (SGL_MAX_TREE_DEPTH), so the C stack is bounded. Deliberately simple: no
 * optimization happens here; passes (ir/pass.h) do that.
 */
#include "frontend/lower.h"

#include <stdlib.h>
#include <string.h>

#include "frontend/sema.h"

typedef struct {
    const void *key;
    void *val;
} MapEnt;

typedef struct {
    IrProgram *p;
    SglDiags *diags;
    bool failed;
    /* functions: index i <-> SemaSym fns[i] (worklist: lowered in order) */
    const SemaSym **fns;
    uint32_t n_fns, cap_fns;
    const SemaSym **exts;
    uint32_t n_exts, cap_exts;
    MapEnt *types;            /* AstType* -> IrType* */
    uint32_t n_types, cap_types;
    const SglSource *last_src;
    const char *last_file;
    IrFunc *f;
    IrRegion *r;
} Lower;

static void fail(Lower *L, SglLoc at, const char *msg)
{
    if (!L->failed)
        sgl_diag_error(L->diags, at, "%s", msg);
    L->failed = true;
}

static IrLoc loc_of(Lower *L, SglLoc l)
{
    IrLoc r = {0};
    if (!l.src)
        return r;
    if (l.src != L->last_src) {
        L->last_src = l.src;
        L->last_file = ir_strdup(L->p, l.src->name, strlen(l.src->name));
    }
    r.file = L->last_file;
    r.off = l.off;
    r.len = l.len;
    sgl_source_line_col(l.src, l.off, &r.line, &r.col);
    return r;
}

static bool grow(Lower *L, void **arr, uint32_t n, uint32_t *cap, size_t elem)
{
    if (n < *cap)
        return true;
    uint32_t nc = *cap ? *cap * 2 : 16;
    void *a = realloc(*arr, nc * elem);
    if (!a) {
        L->p->oom = true;
        return false;
    }
    *arr = a;
    *cap = nc;
    return true;
}

/* ------------------------------------------------------------ types */

static const IrType *ty(Lower *L, const AstType *t)
{
    if (!t)
        return L->p->t_void;
    switch (t->kind) {
    case TY_VOID: return L->p->t_void;
    case TY_STR: return L->p->t_str;
    case TY_INT: return L->p->t_int;
    case TY_FLOAT: return L->p->t_float;
    case TY_BOOL: return L->p->t_bool;
    case TY_LIST: return ir_type_list(L->p, ty(L, t->elem));
    case TY_RECORD: break;
    default: return NULL;     /* TY_ERROR: never in a clean tree */
    }
    for (uint32_t i = 0; i < L->n_types; i++)
        if (L->types[i].key == t)
            return L->types[i].val;
    if (!t->loc.src && t->name.len == 4 && memcmp(t->name.s, "Meta", 4) == 0)
        return L->p->t_meta;                      /* types.c's meta record */
    IrType *r = ir_type_record(L->p, t->name.s ? t->name.s : "record", t->n_fields);
    if (!r || !grow(L, (void **)&L->types, L->n_types, &L->cap_types, sizeof *L->types))
        return NULL;
    L->types[L->n_types++] = (MapEnt){t, r};  /* before the fields: no cycles anyway */
    IrField *f = (IrField *)r->fields;
    for (uint32_t i = 0; i < t->n_fields; i++) {
        f[i].name = ir_strdup(L->p, t->fields[i].name.s, t->fields[i].name.len);
        f[i].type = ty(L, t->fields[i].type);
    }
    return r;
}

/* ------------------------------------------------------------ nodes */

static IrNode *emit(Lower *L, IrOp op, const IrType *t, uint32_t n_args, uint32_t n_regions,
                    SglLoc at)
{
    IrNode *n = ir_node_new(L->p, L->f, op, t, n_args, n_regions, loc_of(L, at));
    if (!n || !ir_region_push(L->p, L->r, n)) {
        L->p->oom = true;
        return NULL;
    }
    return n;
}

static IrNode *emit1(Lower *L, IrOp op, const IrType *t, IrNode *a, SglLoc at)
{
    IrNode *n = emit(L, op, t, 1, 0, at);
    if (n)
        n->args[0] = a;
    return n;
}

static IrConst *const_of(Lower *L, const SemaValue *v)
{
    IrConst *c = ir_const_new(L->p, ty(L, v->type));
    if (!c)
        return NULL;
    c->i = v->i;
    c->f = v->f;
    c->b = v->b;
    if (v->kind == SEMA_VAL_STR) {
        c->s = ir_strdup(L->p, v->s.s ? v->s.s : "", v->s.len);
        c->len = v->s.len;
    }
    if (v->kind == SEMA_VAL_LIST || v->kind == SEMA_VAL_RECORD) {
        const IrConst **items = ir_alloc(L->p, (v->n_items ? v->n_items : 1) * sizeof *items);
        if (!items)
            return NULL;
        for (uint32_t i = 0; i < v->n_items; i++)
            if (!(items[i] = const_of(L, v->items[i])))
                return NULL;
        c->items = items;
        c->n_items = v->n_items;
    }
    return c;
}

static IrNode *emit_const(Lower *L, IrConst *c, SglLoc at)
{
    if (!c)
        return NULL;
    IrNode *n = emit(L, IR_OP_CONST, c->type, 0, 0, at);
    if (n)
        n->cnst = c;
    return n;
}

static IrNode *const_str(Lower *L, const char *s, uint32_t len, SglLoc at)
{
    IrConst *c = ir_const_new(L->p, L->p->t_str);
    if (c) {
        c->s = ir_strdup(L->p, s, len);
        c->len = len;
    }
    return emit_const(L, c, at);
}

/* int value where a float is expected -> BUILTIN float */
static IrNode *conv(Lower *L, IrNode *v, const IrType *want, SglLoc at)
{
    if (!v || !want || want->kind != IR_TY_FLOAT || !v->type || v->type->kind != IR_TY_INT)
        return v;
    IrNode *n = emit1(L, IR_OP_BUILTIN, L->p->t_float, v, at);
    if (n)
        n->aop = IR_BI_FLOAT;
    return n;
}

static void set_slot(Lower *L, const SemaSym *s, IrSlotKind k)
{
    if (!s || s->slot >= L->f->n_slots)
        return;
    IrSlot *sl = &L->f->slots[s->slot];
    sl->name = ir_strdup(L->p, s->name.s, s->name.len);
    sl->type = ty(L, s->type);
    sl->kind = k;
}

static uint32_t fn_index(Lower *L, const SemaSym *s)
{
    for (uint32_t i = 0; i < L->n_fns; i++)
        if (L->fns[i] == s)
            return i;
    if (!grow(L, (void **)&L->fns, L->n_fns, &L->cap_fns, sizeof *L->fns))
        return UINT32_MAX;
    L->fns[L->n_fns] = s;
    return L->n_fns++;
}

static uint32_t ext_index(Lower *L, const SemaSym *s)
{
    for (uint32_t i = 0; i < L->n_exts; i++)
        if (L->exts[i] == s)
            return i;
    IrExtern e = {0};
    const AstNode *d = s->decl;
    e.name = ir_strdup(L->p, s->name.s, s->name.len);
    e.lib = ir_strdup(L->p, d->fn.lib.s ? d->fn.lib.s : "", d->fn.lib.len);
    e.n_params = s->n_params;
    e.params = ir_alloc(L->p, (s->n_params ? s->n_params : 1) * sizeof *e.params);
    for (uint32_t i = 0; e.params && i < s->n_params; i++)
        e.params[i] = ty(L, s->params[i]);
    e.ret = ty(L, s->type);
    e.loc = loc_of(L, d->fn.name_loc);
    if (L->p->oom || !grow(L, (void **)&L->exts, L->n_exts, &L->cap_exts, sizeof *L->exts))
        return UINT32_MAX;
    uint32_t ix = ir_extern_add(L->p, &e);
    if (ix != UINT32_MAX)
        L->exts[L->n_exts++] = s;
    return ix;
}

/* ------------------------------------------------------------ expressions */

static IrNode *expr(Lower *L, const AstNode *e);
static void stmts(Lower *L, const AstNode *block);

static IrNode *expr_to(Lower *L, const AstNode *e, const IrType *want)
{
    return conv(L, expr(L, e), want, e ? e->loc : (SglLoc){0});
}

/* True when evaluating e cannot fail or have an effect. */
static bool safe(const AstNode *e)
{
    if (!e)
        return true;
    switch (e->kind) {
    case AST_NAME: case AST_INT: case AST_FLOAT: case AST_BOOL: case AST_STR_TEXT:
        return true;
    case AST_STRING:
        for (uint32_t i = 0; i < e->string.parts->n; i++)
            if (!safe(e->string.parts->items[i]))
                return false;
        return true;
    case AST_UNARY:
        return e->unary.op == AST_OP_NOT && safe(e->unary.operand);
    case AST_BINARY:
        switch (e->binary.op) {
        case AST_OP_EQ: case AST_OP_NE: case AST_OP_LT: case AST_OP_LE: case AST_OP_GT:
        case AST_OP_GE: case AST_OP_AND: case AST_OP_OR:
            return safe(e->binary.lhs) && safe(e->binary.rhs);
        default:
            return false;
        }
    case AST_FIELD:
        return safe(e->field.base);
    default:
        return false;
    }
}

static IrArith arith_of(AstOp op)
{
    switch (op) {
    case AST_OP_ADD: return IR_ARITH_ADD;
    case AST_OP_SUB: return IR_ARITH_SUB;
    case AST_OP_MUL: return IR_ARITH_MUL;
    case AST_OP_DIV: return IR_ARITH_DIV;
    case AST_OP_MOD: return IR_ARITH_MOD;
    case AST_OP_EQ: return IR_ARITH_EQ;
    case AST_OP_NE: return IR_ARITH_NE;
    case AST_OP_LT: return IR_ARITH_LT;
    case AST_OP_LE: return IR_ARITH_LE;
    case AST_OP_GT: return IR_ARITH_GT;
    case AST_OP_GE: return IR_ARITH_GE;
    case AST_OP_AND: return IR_ARITH_AND;
    case AST_OP_OR: return IR_ARITH_OR;
    case AST_OP_NOT: return IR_ARITH_NOT;
    default: return IR_ARITH_NEG;
    }
}

static IrNode *binop(Lower *L, IrArith op, const IrType *t, IrNode *a, IrNode *b, SglLoc at)
{
    IrNode *n = emit(L, IR_OP_BINOP, t, 2, 0, at);
    if (n) {
        n->aop = op;
        n->args[0] = a;
        n->args[1] = b;
    }
    return n;
}

/* and/or with a right side that may fail: tmp := a; IF (a / not a) { tmp := b }. */
static IrNode *short_circuit(Lower *L, const AstNode *e)
{
    bool is_and = e->binary.op == AST_OP_AND;
    IrNode *a = expr(L, e->binary.lhs);
    uint32_t tmp = ir_slot_add(L->p, L->f, is_and ? "$and" : "$or", L->p->t_bool,
                               IR_SLOT_TEMP);
    IrNode *st = emit1(L, IR_OP_STORE, NULL, a, e->loc);
    if (st)
        st->slot = tmp;
    IrNode *cond = a;
    if (!is_and) {
        cond = emit1(L, IR_OP_UNOP, L->p->t_bool, a, e->loc);
        if (cond)
            cond->aop = IR_ARITH_NOT;
    }
    IrNode *iff = emit1(L, IR_OP_IF, NULL, cond, e->loc);
    if (!iff)
        return NULL;
    iff->n_regions = 2;
    iff->regions = ir_alloc(L->p, 2 * sizeof *iff->regions);
    if (!iff->regions)
        return NULL;
    IrRegion *saved = L->r;
    L->r = &iff->regions[0];
    IrNode *b = expr(L, e->binary.rhs);
    IrNode *st2 = emit1(L, IR_OP_STORE, NULL, b, e->loc);
    if (st2)
        st2->slot = tmp;
    L->r = saved;
    IrNode *ld = emit(L, IR_OP_LOAD, L->p->t_bool, 0, 0, e->loc);
    if (ld)
        ld->slot = tmp;
    return ld;
}

static IrNode *string(Lower *L, const AstNode *e)
{
    AstList *parts = e->string.parts;
    bool all_text = true;
    uint32_t total = 0;
    for (uint32_t i = 0; i < parts->n; i++) {
        if (parts->items[i]->kind != AST_STR_TEXT)
            all_text = false;
        else
            total += parts->items[i]->text.text.len;
    }
    if (all_text) {
        char *buf = ir_alloc(L->p, (size_t)total + 1);
        if (!buf)
            return NULL;
        uint32_t at = 0;
        for (uint32_t i = 0; i < parts->n; i++) {
            AstStr t = parts->items[i]->text.text;
            if (t.len)
                memcpy(buf + at, t.s, t.len);
            at += t.len;
        }
        IrConst *c = ir_const_new(L->p, L->p->t_str);
        if (c) {
            c->s = buf;
            c->len = total;
        }
        return emit_const(L, c, e->loc);
    }
    IrNode **vals = calloc(parts->n, sizeof *vals);
    if (!vals) {
        L->p->oom = true;
        return NULL;
    }
    for (uint32_t i = 0; i < parts->n; i++) {
        const AstNode *pt = parts->items[i];
        vals[i] = pt->kind == AST_STR_TEXT ? const_str(L, pt->text.text.s, pt->text.text.len,
                                                       pt->loc)
                                           : expr(L, pt);
    }
    IrNode *n = emit(L, IR_OP_CONCAT, L->p->t_str, parts->n, 0, e->loc);
    if (n)
        if (parts->n)
            memcpy(n->args, vals, parts->n * sizeof *vals);
    free(vals);
    return n;
}

static IrNode *call(Lower *L, const AstNode *e)
{
    const SemaSym *s = e->sym;
    AstList *args = e->call.args;
    uint32_t n = args ? args->n : 0;
    if (!s || s->kind == SYM_BUILTIN) {     /* sema leaves built-in calls without a sym */
        char name[32];
        snprintf(name, sizeof name, "%.*s", (int)e->call.name.len, e->call.name.s);
        if (strcmp(name, "meta") == 0) {
            const AstNode *a = args->items[0];
            const SemaSym *v = a->sym;
            IrNode *m = emit(L, IR_OP_META, L->p->t_meta, 0, 0, e->loc);
            if (m && v)
                m->slot = v->slot;
            return m;
        }
        if (strcmp(name, "text") == 0)
            return emit(L, IR_OP_TEXT, L->p->t_str, 0, 0, e->loc);
        int bi = ir_builtin_find(name);
        if (bi < 0) {
            fail(L, e->loc, "lowering: unknown built-in");
            return NULL;
        }
        const IrType *rt = ty(L, e->type);
        bool numeric = bi == IR_BI_MIN || bi == IR_BI_MAX;
        IrNode *vals[SEMA_MAX_PARAMS];
        for (uint32_t i = 0; i < n && i < SEMA_MAX_PARAMS; i++)
            vals[i] = numeric ? expr_to(L, args->items[i], rt) : expr(L, args->items[i]);
        IrNode *b = emit(L, IR_OP_BUILTIN, rt, n, 0, e->loc);
        if (b) {
            b->aop = bi;
            if (n)
                memcpy(b->args, vals, n * sizeof *vals);
        }
        return b;
    }
    if (s->kind != SYM_FN && s->kind != SYM_EXTERN) {
        fail(L, e->loc, "lowering: call of something that is not a function");
        return NULL;
    }
    IrNode *vals[SEMA_MAX_PARAMS];
    for (uint32_t i = 0; i < n && i < SEMA_MAX_PARAMS; i++)
        vals[i] = expr_to(L, args->items[i], i < s->n_params ? ty(L, s->params[i]) : NULL);
    uint32_t ix = s->kind == SYM_FN ? fn_index(L, s) : ext_index(L, s);
    IrNode *c = emit(L, s->kind == SYM_FN ? IR_OP_CALL : IR_OP_EXTERN_CALL, ty(L, s->type), n,
                     0, e->loc);
    if (c) {
        c->index = ix;
        if (n)
            memcpy(c->args, vals, n * sizeof *vals);
    }
    return c;
}

static IrNode *expr(Lower *L, const AstNode *e)
{
    if (!e || L->failed || L->p->oom)
        return NULL;
    switch (e->kind) {
    case AST_NAME: {
        const SemaSym *s = e->sym;
        if (s && s->kind == SYM_CONST) {
            if (s->value)
                return emit_const(L, const_of(L, s->value), e->loc);
            return expr(L, s->decl ? s->decl->decl.value : NULL);
        }
        if (!s || s->kind != SYM_LOCAL) {
            fail(L, e->loc, "lowering: name is not a value");
            return NULL;
        }
        IrNode *n = emit(L, IR_OP_LOAD, ty(L, s->type), 0, 0, e->loc);
        if (n)
            n->slot = s->slot;
        return n;
    }
    case AST_INT: case AST_FLOAT: case AST_BOOL: {
        IrConst *c = ir_const_new(L->p, ty(L, e->type));
        if (c) {
            c->i = e->kind == AST_INT ? e->ival : 0;
            c->f = e->kind == AST_FLOAT ? e->fval : 0;
            c->b = e->kind == AST_BOOL ? e->bval : false;
        }
        return emit_const(L, c, e->loc);
    }
    case AST_STRING:
        return string(L, e);
    case AST_LIST: {
        const IrType *lt = ty(L, e->type);
        uint32_t n = e->list.items->n;
        IrNode **vals = calloc(n ? n : 1, sizeof *vals);
        if (!vals || !lt) {
            free(vals);
            L->p->oom = true;
            return NULL;
        }
        for (uint32_t i = 0; i < n; i++)
            vals[i] = expr_to(L, e->list.items->items[i], lt->elem);
        IrNode *r = emit(L, IR_OP_LIST, lt, n, 0, e->loc);
        if (r)
            if (n)
                memcpy(r->args, vals, n * sizeof *vals);
        free(vals);
        return r;
    }
    case AST_RECORD: {
        const AstType *rt = e->type;
        const IrType *it = ty(L, rt);
        if (!rt || rt->kind != TY_RECORD || !it) {
            fail(L, e->loc, "lowering: record literal without a record type");
            return NULL;
        }
        IrNode **vals = calloc(rt->n_fields ? rt->n_fields : 1, sizeof *vals);
        if (!vals) {
            L->p->oom = true;
            return NULL;
        }
        for (uint32_t k = 0; k < rt->n_fields; k++)
            for (uint32_t i = 0; i < e->record.fields->n; i++) {
                const AstNode *fi = e->record.fields->items[i];
                if (fi->option.name.s == rt->fields[k].name.s ||
                    (fi->option.name.len == rt->fields[k].name.len &&
                     memcmp(fi->option.name.s, rt->fields[k].name.s, fi->option.name.len) == 0))
                    vals[k] = expr_to(L, fi->option.value, it->fields[k].type);
            }
        IrNode *r = emit(L, IR_OP_RECORD, it, rt->n_fields, 0, e->loc);
        if (r)
            if (rt->n_fields)
                memcpy(r->args, vals, rt->n_fields * sizeof *vals);
        free(vals);
        return r;
    }
    case AST_UNARY: {
        IrNode *a = expr(L, e->unary.operand);
        IrNode *n = emit1(L, IR_OP_UNOP, ty(L, e->type), a, e->loc);
        if (n)
            n->aop = e->unary.op == AST_OP_NOT ? IR_ARITH_NOT : IR_ARITH_NEG;
        return n;
    }
    case AST_BINARY: {
        if ((e->binary.op == AST_OP_AND || e->binary.op == AST_OP_OR) && !safe(e->binary.rhs))
            return short_circuit(L, e);
        const AstType *lt = e->binary.lhs->type, *rt = e->binary.rhs->type;
        const IrType *common = NULL;
        if (lt && rt && lt->kind != rt->kind &&
            (lt->kind == TY_FLOAT || rt->kind == TY_FLOAT))
            common = L->p->t_float;
        IrNode *a = conv(L, expr(L, e->binary.lhs), common, e->binary.lhs->loc);
        IrNode *b = conv(L, expr(L, e->binary.rhs), common, e->binary.rhs->loc);
        return binop(L, arith_of(e->binary.op), ty(L, e->type), a, b, e->loc);
    }
    case AST_RANGE: {
        IrNode *a = expr(L, e->binary.lhs), *b = expr(L, e->binary.rhs);
        IrNode *n = emit(L, IR_OP_BUILTIN, ty(L, e->type), 2, 0, e->loc);
        if (n) {
            n->aop = IR_BI_RANGE;
            n->args[0] = a;
            n->args[1] = b;
        }
        return n;
    }
    case AST_CALL:
        return call(L, e);
    case AST_INDEX: {
        IrNode *b = expr(L, e->index.base), *i = expr(L, e->index.index);
        IrNode *n = emit(L, IR_OP_INDEX, ty(L, e->type), 2, 0, e->loc);
        if (n) {
            n->args[0] = b;
            n->args[1] = i;
        }
        return n;
    }
    case AST_FIELD: {
        const AstType *bt = e->field.base->type;
        IrNode *b = expr(L, e->field.base);
        const TyField *fd = bt ? type_field(bt, e->field.name) : NULL;
        if (!fd) {
            fail(L, e->loc, "lowering: unknown field");
            return NULL;
        }
        IrNode *n = emit1(L, IR_OP_FIELD, ty(L, e->type), b, e->loc);
        if (n)
            n->index = (uint32_t)(fd - bt->fields);
        return n;
    }
    default:
        fail(L, e->loc, "lowering: unexpected expression");
        return NULL;
    }
}

/* ------------------------------------------------------------ statements */

/* target := v, rebuilding the enclosing lists/records (value semantics). */
static void assign_to(Lower *L, const AstNode *target, IrNode *v, SglLoc at)
{
    if (!target || L->failed)
        return;
    if (target->kind == AST_NAME) {
        const SemaSym *s = target->sym;
        IrNode *st = emit1(L, IR_OP_STORE, NULL, conv(L, v, ty(L, s ? s->type : NULL), at), at);
        if (st && s)
            st->slot = s->slot;
    } else if (target->kind == AST_INDEX) {
        IrNode *b = expr(L, target->index.base), *i = expr(L, target->index.index);
        IrNode *n = emit(L, IR_OP_SET_INDEX, ty(L, target->index.base->type), 3, 0, at);
        if (n) {
            n->args[0] = b;
            n->args[1] = i;
            n->args[2] = conv(L, v, ty(L, target->type), at);
        }
        assign_to(L, target->index.base, n, at);
    } else if (target->kind == AST_FIELD) {
        const AstType *bt = target->field.base->type;
        const TyField *fd = bt ? type_field(bt, target->field.name) : NULL;
        IrNode *b = expr(L, target->field.base);
        IrNode *n = emit(L, IR_OP_SET_FIELD, ty(L, bt), 2, 0, at);
        if (n && fd) {
            n->index = (uint32_t)(fd - bt->fields);
            n->args[0] = b;
            n->args[1] = conv(L, v, ty(L, fd->type), at);
        }
        assign_to(L, target->field.base, n, at);
    } else {
        fail(L, at, "lowering: bad assignment target");
    }
}

static IrGenKey gen_key(AstStr name, bool *ok)
{
    for (int k = 0; k < IR_GEN_KEY_COUNT_; k++) {
        const char *kn = ir_gen_key_name((IrGenKey)k);
        if (strlen(kn) == name.len && memcmp(kn, name.s, name.len) == 0) {
            *ok = true;
            return (IrGenKey)k;
        }
    }
    *ok = false;
    return IR_GEN_MAX_TOKENS;
}

static bool opt_is(const AstNode *o, const char *name)
{
    return strlen(name) == o->option.name.len && memcmp(name, o->option.name.s,
                                                        o->option.name.len) == 0;
}

static void gen_stmt(Lower *L, const AstNode *s)
{
    const AstList *opts = s->gen.options;
    uint32_t n_opts = opts ? opts->n : 0;
    IrGenInfo *gi = ir_alloc(L->p, sizeof *gi);
    IrNode *vals[IR_GEN_KEY_COUNT_];
    IrGenKey keys[IR_GEN_KEY_COUNT_];
    uint32_t n = 0;
    if (!gi)
        return;
    for (uint32_t i = 0; i < n_opts; i++) {
        const AstNode *o = opts->items[i];
        const SemaValue *v = o->sym;
        bool ok;
        IrGenKey k = gen_key(o->option.name, &ok);
        if (ok && n < IR_GEN_KEY_COUNT_) {
            const IrType *want = NULL;
            if (k == IR_GEN_TEMPERATURE || k == IR_GEN_TOP_P || k == IR_GEN_MIN_P ||
                k == IR_GEN_FREQUENCY_PENALTY || k == IR_GEN_PRESENCE_PENALTY ||
                k == IR_GEN_REPETITION_PENALTY)
                want = L->p->t_float;
            keys[n] = k;
            vals[n++] = expr_to(L, o->option.value, want);
            if (k == IR_GEN_N)
                gi->has_n = true;
        } else if (v && v->kind == SEMA_VAL_STR && opt_is(o, "regex")) {
            gi->con.kind = IR_CON_REGEX;
            gi->con.text = ir_strdup(L->p, v->s.s ? v->s.s : "", v->s.len);
            gi->con.len = v->s.len;
        } else if (v && v->kind == SEMA_VAL_STR && opt_is(o, "json_schema")) {
            gi->con.kind = IR_CON_JSON_SCHEMA;
            gi->con.text = ir_strdup(L->p, v->s.s ? v->s.s : "", v->s.len);
            gi->con.len = v->s.len;
        } else if (v && v->kind == SEMA_VAL_LIST && opt_is(o, "choices")) {
            gi->con.kind = IR_CON_CHOICES;
            gi->con.choices = const_of(L, v);
        } else {
            fail(L, o->loc, "lowering: gen option without a usable value");
            return;
        }
    }
    const AstNode *tn = s->gen.type;
    if (gi->con.kind == IR_CON_NONE && tn && tn->type && tn->type->kind != TY_STR) {
        gi->con.kind = IR_CON_TYPE;
        gi->con.type = ty(L, tn->type);
    }
    gi->keys = ir_alloc(L->p, (n ? n : 1) * sizeof *gi->keys);
    if (!gi->keys)
        return;
    memcpy(gi->keys, keys, n * sizeof *keys);
    const SemaSym *sym = s->sym;
    IrNode *g = emit(L, IR_OP_GEN, ty(L, s->type), n, 0, s->loc);
    if (!g)
        return;
    if (n)
        memcpy(g->args, vals, n * sizeof *vals);
    g->gen = gi;
    g->name = ir_strdup(L->p, s->gen.name.s, s->gen.name.len);
    set_slot(L, sym, IR_SLOT_GEN);
    IrNode *st = emit1(L, IR_OP_STORE, NULL, g, s->loc);
    if (st && sym)
        st->slot = sym->slot;
}

static void select_stmt(Lower *L, const AstNode *s)
{
    const AstList *opts = s->gen.options;
    IrNode *choices = NULL;
    int method = IR_SEL_TOKEN_LENGTH_NORMALIZED;
    for (uint32_t i = 0; opts && i < opts->n; i++) {
        const AstNode *o = opts->items[i];
        const SemaValue *v = o->sym;
        if (opt_is(o, "choices"))
            choices = expr(L, o->option.value);
        else if (opt_is(o, "method") && v && v->kind == SEMA_VAL_STR)
            for (int m = 0; m < 3; m++)
                if (strcmp(ir_select_method_name((IrSelectMethod)m), v->s.s) == 0)
                    method = m;
        /* temperature: accepted and ignored (docs/language.md 5.2) */
    }
    const SemaSym *sym = s->sym;
    IrNode *n = emit1(L, IR_OP_SELECT, L->p->t_str, choices, s->loc);
    if (!n)
        return;
    n->aop = method;
    n->name = ir_strdup(L->p, s->gen.name.s, s->gen.name.len);
    set_slot(L, sym, IR_SLOT_SELECT);
    IrNode *st = emit1(L, IR_OP_STORE, NULL, n, s->loc);
    if (st && sym)
        st->slot = sym->slot;
}

/* Lowers block's statements into region r (a new child region). */
static void region(Lower *L, IrRegion *r, const AstNode *block)
{
    IrRegion *saved = L->r;
    L->r = r;
    stmts(L, block);
    L->r = saved;
}

static IrNode *control(Lower *L, IrOp op, uint32_t n_args, uint32_t n_regions, SglLoc at)
{
    return emit(L, op, NULL, n_args, n_regions, at);
}

static void stmt(Lower *L, const AstNode *s);

static void if_stmt(Lower *L, const AstNode *s)
{
    IrNode *c = expr(L, s->if_.cond);
    IrNode *n = control(L, IR_OP_IF, 1, 2, s->loc);
    if (!n)
        return;
    n->args[0] = c;
    region(L, &n->regions[0], s->if_.then);
    if (s->if_.els && s->if_.els->kind == AST_IF) {
        IrRegion *saved = L->r;
        L->r = &n->regions[1];
        if_stmt(L, s->if_.els);
        L->r = saved;
    } else if (s->if_.els) {
        region(L, &n->regions[1], s->if_.els);
    }
}

/* The locals a statement declares at the level of its block, passed to
 * gather_pair: its own symbol, or for a nested fork the lists that fork
 * gathers into this block (found through its body, recursively; depth is
 * bounded by sema's fork-nesting limit). */
static void gather_pair(Lower *L, IrNode *n, const SemaSym *d, uint32_t *cnt)
{
    if (!d || d->kind != SYM_LOCAL || !d->gather)
        return;
    if (!n) {
        (*cnt)++;
        return;
    }
    set_slot(L, d->gather, IR_SLOT_GATHER);
    n->gather[n->n_gather++] = (IrGather){d->slot, d->gather->slot};
}

static void level_decls(Lower *L, IrNode *n, const AstNode *st, uint32_t lifts, uint32_t *cnt)
{
    if (!st)
        return;
    if (st->kind == AST_ROLE) {
        /* a role block opens no scope: its declarations belong to this level */
        const AstList *rb = st->role.body ? st->role.body->block.stmts : NULL;
        for (uint32_t i = 0; rb && i < rb->n; i++)
            level_decls(L, n, rb->items[i], lifts, cnt);
        return;
    }
    if (st->kind != AST_FORK) {
        /* a name `lifts` forks down: each enclosing fork re-declared it as a list */
        const SemaSym *d = st->sym;
        for (uint32_t k = 0; k < lifts && d; k++)
            d = d->kind == SYM_LOCAL ? d->gather : NULL;
        gather_pair(L, n, d, cnt);
        return;
    }
    if (lifts >= SEMA_MAX_FORK_DEPTH)
        return;
    const AstList *body = st->fork.body ? st->fork.body->block.stmts : NULL;
    for (uint32_t i = 0; body && i < body->n; i++)
        level_decls(L, n, body->items[i], lifts + 1, cnt);
}

/* Gather pairs of fork s: counted (n NULL) or filled into n->gather. */
static void fork_gathers(Lower *L, IrNode *n, const AstNode *s, uint32_t *cnt)
{
    const AstList *body = s->fork.body ? s->fork.body->block.stmts : NULL;
    for (uint32_t i = 0; body && i < body->n; i++)
        level_decls(L, n, body->items[i], 0, cnt);
}

static void fork_stmt(Lower *L, const AstNode *s)
{
    IrNode *it = expr(L, s->fork.iter);
    IrNode *n = control(L, IR_OP_FORK, 1, 1, s->loc);
    if (!n)
        return;
    n->args[0] = it;
    n->aop = s->fork.join == AST_JOIN_CONCAT ? IR_JOIN_CONCAT : IR_JOIN_GATHER;
    const SemaSym *var = s->sym;
    if (var) {
        set_slot(L, var, IR_SLOT_FORK_VAR);
        n->slot = var->slot;
    }
    region(L, &n->regions[0], s->fork.body);
    /* gather pairs: the body's top-level declarations, in order (including
     * the lists a nested fork gathered into this body) */
    uint32_t cnt = 0;
    fork_gathers(L, NULL, s, &cnt);
    n->gather = ir_alloc(L->p, (cnt ? cnt : 1) * sizeof *n->gather);
    if (n->gather)
        fork_gathers(L, n, s, &cnt);
}

/* True when the current region already ends in BREAK/CONTINUE/RETURN:
 * what follows in the same block is dead and is not lowered. */
static bool ended(const Lower *L)
{
    return L->r->n && ir_op_is_terminator(L->r->nodes[L->r->n - 1]->op);
}

static void stmt(Lower *L, const AstNode *s)
{
    if (!s || L->failed || L->p->oom || ended(L))
        return;
    switch (s->kind) {
    case AST_LET: {
        const SemaSym *sym = s->sym;
        IrNode *v = expr_to(L, s->decl.value, ty(L, sym ? sym->type : NULL));
        set_slot(L, sym, IR_SLOT_LET);
        IrNode *st = emit1(L, IR_OP_STORE, NULL, v, s->loc);
        if (st && sym)
            st->slot = sym->slot;
        break;
    }
    case AST_ASSIGN: {
        IrNode *v;
        if (s->assign.op == AST_OP_ADD) {
            const IrType *tt = ty(L, s->assign.target->type);
            IrNode *old = expr(L, s->assign.target);
            v = binop(L, IR_ARITH_ADD, tt, old, expr_to(L, s->assign.value, tt), s->loc);
        } else {
            v = expr(L, s->assign.value);
        }
        assign_to(L, s->assign.target, v, s->loc);
        break;
    }
    case AST_IF:
        if_stmt(L, s);
        break;
    case AST_FOR: {
        const AstNode *it = s->loop.iter;
        IrNode *n;
        if (it->kind == AST_RANGE) {
            IrNode *lo = expr(L, it->binary.lhs), *hi = expr(L, it->binary.rhs);
            if (!(n = control(L, IR_OP_FOR, 2, 1, s->loc)))
                return;
            n->args[0] = lo;
            n->args[1] = hi;
        } else {
            IrNode *xs = expr(L, it);
            if (!(n = control(L, IR_OP_FOR, 1, 1, s->loc)))
                return;
            n->args[0] = xs;
        }
        set_slot(L, s->sym, IR_SLOT_FOR);
        n->slot = s->sym ? ((const SemaSym *)s->sym)->slot : IR_NO_SLOT;
        region(L, &n->regions[0], s->loop.body);
        break;
    }
    case AST_WHILE: {
        IrNode *n = control(L, IR_OP_WHILE, 0, 2, s->loc);
        if (!n)
            return;
        IrRegion *saved = L->r;
        L->r = &n->regions[0];
        expr(L, s->loop.iter);
        L->r = saved;
        region(L, &n->regions[1], s->loop.body);
        break;
    }
    case AST_BREAK:
        control(L, IR_OP_BREAK, 0, 0, s->loc);
        break;
    case AST_CONTINUE:
        control(L, IR_OP_CONTINUE, 0, 0, s->loc);
        break;
    case AST_RETURN: {
        IrNode *v = s->ret.value ? expr_to(L, s->ret.value, L->f->ret) : NULL;
        IrNode *n = control(L, IR_OP_RETURN, v ? 1 : 0, 0, s->loc);
        if (n && v)
            n->args[0] = v;
        break;
    }
    case AST_EXPR_STMT: {
        IrNode *v = expr(L, s->expr_stmt.expr);
        if (v && v->type == L->p->t_str)
            emit1(L, IR_OP_APPEND, NULL, v, s->loc);
        break;
    }
    case AST_GEN:
        gen_stmt(L, s);
        break;
    case AST_SELECT:
        select_stmt(L, s);
        break;
    case AST_FORK:
        fork_stmt(L, s);
        break;
    case AST_CAPTURE: {
        IrNode *m = emit(L, IR_OP_CAPTURE_BEGIN, L->p->t_int, 0, 0, s->loc);
        stmts(L, s->capture.body);
        if (ended(L))
            break;             /* the body always leaves: nothing is bound */
        const SemaSym *sym = s->sym;
        IrNode *e = emit1(L, IR_OP_CAPTURE_END, L->p->t_str, m, s->loc);
        set_slot(L, sym, IR_SLOT_CAPTURE);
        if (e && sym)
            e->slot = sym->slot;
        IrNode *st = emit1(L, IR_OP_STORE, NULL, e, s->loc);
        if (st && sym)
            st->slot = sym->slot;
        break;
    }
    case AST_ROLE: {
        IrRole role = s->role.role == AST_ROLE_SYSTEM ? IR_ROLE_SYSTEM
                      : s->role.role == AST_ROLE_USER ? IR_ROLE_USER : IR_ROLE_ASSISTANT;
        IrNode *b = emit(L, IR_OP_ROLE_BEGIN, NULL, 0, 0, s->loc);
        if (b)
            b->aop = role;
        stmts(L, s->role.body);
        if (ended(L))
            break;             /* the body always leaves: no end marker */
        IrNode *e = emit(L, IR_OP_ROLE_END, NULL, 0, 0, s->loc);
        if (e)
            e->aop = role;
        break;
    }
    case AST_BLOCK:
        stmts(L, s);
        break;
    default:
        fail(L, s->loc, "lowering: unexpected statement");
        break;
    }
}

static void stmts(Lower *L, const AstNode *block)
{
    if (!block || block->kind != AST_BLOCK)
        return;
    for (uint32_t i = 0; i < block->block.stmts->n; i++)
        stmt(L, block->block.stmts->items[i]);
}

static void lower_fn(Lower *L, const SemaSym *s)
{
    const AstNode *d = s->decl;
    char name[SGL_MAX_IDENT_LEN + 1];
    snprintf(name, sizeof name, "%.*s", (int)s->name.len, s->name.s);
    IrFunc *f = ir_func_new(L->p, name, s->n_params, s->n_locals);
    if (!f)
        return;
    f->ret = ty(L, s->type);
    f->loc = loc_of(L, d->fn.name_loc);
    L->f = f;
    L->r = &f->body;
    for (uint32_t i = 0; d->fn.params && i < d->fn.params->n; i++)
        set_slot(L, d->fn.params->items[i]->sym, IR_SLOT_PARAM);
    stmts(L, d->fn.body);
    /* unnamed slots (should not happen) get a placeholder name for the printer */
    for (uint32_t i = 0; i < f->n_slots; i++)
        if (!f->slots[i].name) {
            f->slots[i].name = "$unused";
            f->slots[i].type = L->p->t_void;
            f->slots[i].kind = IR_SLOT_TEMP;
        }
}

IrProgram *sgl_lower(const AstNode *program, SglDiags *diags)
{
    Lower L = {0};
    L.diags = diags;
    if (!program || program->kind != AST_PROGRAM) {
        sgl_diag_error(diags, (SglLoc){0}, "lowering: no program");
        return NULL;
    }
    L.p = ir_program_new();
    if (!L.p) {
        sgl_diag_error(diags, program->loc, "out of memory while lowering");
        return NULL;
    }
    for (uint32_t i = 0; i < program->prog.decls->n; i++) {
        const AstNode *d = program->prog.decls->items[i];
        if (d && d->kind == AST_FN && d->sym) {
            uint32_t ix = fn_index(&L, d->sym);
            if (d->fn.name.len == 4 && memcmp(d->fn.name.s, "main", 4) == 0)
                L.p->main = (int32_t)ix;
        }
    }
    /* worklist: calls append the imported fns they reach */
    for (uint32_t i = 0; i < L.n_fns && !L.failed && !L.p->oom; i++)
        lower_fn(&L, L.fns[i]);
    free(L.fns);
    free(L.exts);
    free(L.types);
    if (L.p->oom && !L.failed)
        sgl_diag_error(diags, program->loc, "out of memory (or over %u IR nodes) while lowering",
                       IR_MAX_NODES);
    if (L.p->oom || L.failed) {
        ir_program_free(L.p);
        return NULL;
    }
    return L.p;
}

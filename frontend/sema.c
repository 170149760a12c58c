/* sema.c -- the semantic checker: modules, declarations, statements.
 *
 * Order of work per module (check_module): imports (each imported module is
 * checked completely first; a chain that comes back to a module still being
 * loaded is an import cycle), then top-level names, then type declarations
 * and then consts, each in dependency order (Kahn's algorithm, so chains of
 * thousands of declarations need no deep recursion and whatever is left over
 * is a cycle), then fn/extern signatures, then function bodies. Expressions
 * are in sema_expr.c, gen/select and constraint validation in sema_gen.c.
 * Every error is reported and checking goes on; a construct whose check
 * failed gets the poison type TY_ERROR so it causes no second message.
 */
#include "frontend/sema_int.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "frontend/parse.h"

/* ------------------------------------------------------------------ utils */

void *sema_alloc(SemaCtx *c, size_t n)
{
    void *p = sgl_arena_calloc(c->arena, 1, n ? n : 1);
    if (!p && !c->oom) {
        c->oom = true;
        sgl_diag_error(c->diags, sgl_loc(NULL, 0, 0), "out of memory");
    }
    return p;
}

bool str_eq(AstStr a, AstStr b)
{
    return a.len == b.len && (a.s == b.s || (a.s && b.s && memcmp(a.s, b.s, a.len) == 0));
}

bool str_eq_c(AstStr a, const char *s)
{
    size_t n = strlen(s);
    return a.s && a.len == n && memcmp(a.s, s, n) == 0;
}

static uint32_t hash_str(AstStr k)
{
    uint32_t h = 2166136261u;
    for (uint32_t i = 0; i < k.len; i++)
        h = (h ^ (unsigned char)k.s[i]) * 16777619u;
    return h;
}

void *nmap_get(const NameMap *m, AstStr k)
{
    if (!m->cap || !k.s)
        return NULL;
    for (uint32_t i = hash_str(k) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        if (!m->keys[i].s)
            return NULL;
        if (str_eq(m->keys[i], k))
            return m->vals[i];
    }
}

bool nmap_put(SemaCtx *c, NameMap *m, AstStr k, void *v)
{
    if (!k.s)
        return false;
    if ((m->n + 1) * 2 > m->cap) {
        uint32_t cap = m->cap ? m->cap * 2 : 16;
        AstStr *keys = sema_alloc(c, cap * sizeof *keys);
        void **vals = sema_alloc(c, cap * sizeof *vals);
        if (!keys || !vals)
            return false;
        for (uint32_t j = 0; j < m->cap; j++) {
            if (!m->keys[j].s)
                continue;
            uint32_t i = hash_str(m->keys[j]) & (cap - 1);
            while (keys[i].s)
                i = (i + 1) & (cap - 1);
            keys[i] = m->keys[j];
            vals[i] = m->vals[j];
        }
        m->keys = keys;
        m->vals = vals;
        m->cap = cap;
    }
    uint32_t i = hash_str(k) & (m->cap - 1);
    while (m->keys[i].s && !str_eq(m->keys[i], k))
        i = (i + 1) & (m->cap - 1);
    if (!m->keys[i].s) {
        m->keys[i] = k;
        m->n++;
    }
    m->vals[i] = v;
    return true;
}

/* Bounded Levenshtein distance (returns > max when further apart). */
static uint32_t edit_distance(const char *a, uint32_t na, const char *b, uint32_t nb,
                              uint32_t max)
{
    uint32_t row[64];
    if (na >= 63 || nb >= 63)
        return max + 1;
    if ((na > nb ? na - nb : nb - na) > max)
        return max + 1;
    for (uint32_t j = 0; j <= nb; j++)
        row[j] = j;
    for (uint32_t i = 1; i <= na; i++) {
        uint32_t prev = row[0], best = i;
        row[0] = i;
        for (uint32_t j = 1; j <= nb; j++) {
            uint32_t cur = row[j];
            uint32_t sub = prev + (a[i - 1] != b[j - 1]);
            uint32_t v = row[j] + 1 < row[j - 1] + 1 ? row[j] + 1 : row[j - 1] + 1;
            row[j] = sub < v ? sub : v;
            prev = cur;
            if (row[j] < best)
                best = row[j];
        }
        if (best > max)
            return max + 1;
    }
    return row[nb];
}

void suggest_init(Suggest *s, AstStr name)
{
    s->name = name;
    s->best = NULL;
    s->max = name.len <= 2 ? 1 : name.len <= 5 ? 2 : 3;
    s->dist = s->max + 1;
}

void suggest_try(Suggest *s, const char *cand, uint32_t len)
{
    if (!cand || !s->name.s || (len == s->name.len && memcmp(cand, s->name.s, len) == 0))
        return;
    uint32_t d = edit_distance(s->name.s, s->name.len, cand, len, s->max);
    if (d < s->dist) {
        s->dist = d;
        s->best = cand;
        s->best_len = len;
    }
}

void suggest_note(SemaCtx *c, SglDiag *d, const Suggest *s, SglLoc at)
{
    if (s->best)
        sgl_diag_note(c->diags, d, at, "did you mean `%.*s`?", (int)s->best_len, s->best);
}

const char *tname(const AstType *t, char *buf)
{
    return type_name(t, buf, TNAME_CAP);
}

/* ------------------------------------------------------------- built-ins */

static const char *const builtin_types[] = {"str", "int", "float", "bool", "list", NULL};

static bool is_builtin_name(AstStr n)
{
    for (int i = 0; builtin_types[i]; i++)
        if (str_eq_c(n, builtin_types[i]))
            return true;
    return sema_builtin_find(n) >= 0;
}

/* --------------------------------------------------------------- scopes */

typedef struct {
    uint32_t n_scope, block_id;
} ScopeMark;

static ScopeMark scope_push(SemaCtx *c)
{
    ScopeMark m = {c->n_scope, c->block_id};
    c->block_id = ++c->next_block_id;
    return m;
}

static void scope_pop(SemaCtx *c, ScopeMark m)
{
    while (c->n_scope > m.n_scope) {
        ScopeEntry *e = &c->scope[--c->n_scope];
        nmap_put(c, &c->locals, e->sym->name, e->shadowed);
    }
    c->block_id = m.block_id;
}

static ScopeEntry *entry_of(SemaCtx *c, void *v)
{
    uintptr_t i = (uintptr_t)v;
    return i ? &c->scope[i - 1] : NULL;
}

SemaSym *sema_lookup(SemaCtx *c, AstStr name)
{
    ScopeEntry *e = entry_of(c, nmap_get(&c->locals, name));
    if (e)
        return e->sym;
    return c->globals ? nmap_get(c->globals, name) : NULL;
}

static void redefinition(SemaCtx *c, AstStr name, SglLoc loc, const SemaSym *first)
{
    SglDiag *d = sgl_diag_error(c->diags, loc, "redefinition of `%.*s`", (int)name.len, name.s);
    if (first && first->loc.src)
        sgl_diag_note(c->diags, d, first->loc, "`%.*s` first defined here", (int)name.len,
                      name.s);
}

SemaSym *sema_declare_local(SemaCtx *c, AstStr name, SglLoc loc, AstNode *decl, AstType *t,
                            SemaLocalKind kind)
{
    if (!name.s || !c->fn)
        return NULL;
    void *prev = nmap_get(&c->locals, name);
    ScopeEntry *pe = entry_of(c, prev);
    if (pe && (pe->block == c->block_id || pe->block == c->param_block)) {
        if (pe->block == c->param_block && c->block_id != c->param_block) {
            SglDiag *d = sgl_diag_error(c->diags, loc, "`%.*s` shadows a parameter",
                                        (int)name.len, name.s);
            sgl_diag_note(c->diags, d, pe->sym->loc, "parameter `%.*s` declared here",
                          (int)name.len, name.s);
        } else {
            redefinition(c, name, loc, pe->sym);
        }
        return NULL;
    }
    SemaSym *s = sema_alloc(c, sizeof *s);
    if (!s)
        return NULL;
    s->kind = SYM_LOCAL;
    s->local = kind;
    s->name = name;
    s->loc = loc;
    s->decl = decl;
    s->type = t ? t : c->ts->t_error;
    s->module = c->mod;
    s->slot = c->fn->n_locals++;
    if (c->n_scope == c->cap_scope) {
        uint32_t cap = c->cap_scope ? c->cap_scope * 2 : 64;
        ScopeEntry *ns = malloc(cap * sizeof *ns);
        if (!ns) {
            sema_alloc(c, (size_t)1 << 31);    /* reports out of memory once */
            return NULL;
        }
        if (c->n_scope)
            memcpy(ns, c->scope, c->n_scope * sizeof *ns);
        free(c->scope);
        c->scope = ns;
        c->cap_scope = cap;
    }
    c->scope[c->n_scope] = (ScopeEntry){s, prev, c->block_id};
    c->n_scope++;
    if (!nmap_put(c, &c->locals, name, (void *)(uintptr_t)c->n_scope)) {
        c->n_scope--;
        return NULL;
    }
    return s;
}

/* ---------------------------------------------------------------- types */

static AstType *resolve_named(SemaCtx *c, AstNode *t)
{
    AstStr n = t->tname.name;
    if (str_eq_c(n, "str"))
        return c->ts->t_str;
    if (str_eq_c(n, "int"))
        return c->ts->t_int;
    if (str_eq_c(n, "float"))
        return c->ts->t_float;
    if (str_eq_c(n, "bool"))
        return c->ts->t_bool;
    if (str_eq_c(n, "list")) {
        sgl_diag_error(c->diags, t->loc, "`list` needs an element type, as in `list[str]`");
        return c->ts->t_error;
    }
    SemaSym *s = c->globals ? nmap_get(c->globals, n) : NULL;
    if (s && s->kind == SYM_TYPE)
        return s->type ? s->type : c->ts->t_error;
    if (s) {
        SglDiag *d = sgl_diag_error(c->diags, t->loc, "`%.*s` is not a type", (int)n.len, n.s);
        if (s->loc.src)
            sgl_diag_note(c->diags, d, s->loc, "`%.*s` is defined here", (int)n.len, n.s);
        return c->ts->t_error;
    }
    if (c->lenient)
        return c->ts->t_error;
    SglDiag *d = sgl_diag_error(c->diags, t->loc, "unknown type `%.*s`", (int)n.len, n.s);
    if (!d)
        return c->ts->t_error;    /* past the error cap: skip the search */
    Suggest sg;
    suggest_init(&sg, n);
    for (int i = 0; builtin_types[i]; i++)
        suggest_try(&sg, builtin_types[i], (uint32_t)strlen(builtin_types[i]));
    for (uint32_t i = 0; c->globals && i < c->globals->cap; i++) {
        SemaSym *g = c->globals->vals[i];
        if (g && g->kind == SYM_TYPE)
            suggest_try(&sg, g->name.s, g->name.len);
    }
    suggest_note(c, d, &sg, t->loc);
    return c->ts->t_error;
}

static AstType *resolve_record(SemaCtx *c, AstNode *t, AstStr name, SglLoc name_loc)
{
    AstList *fs = t->trecord.fields;
    uint32_t n = fs ? fs->n : 0;
    if (n > SEMA_MAX_FIELDS) {
        sgl_diag_error(c->diags, t->loc, "record type has %u fields; the limit is %d", n,
                       SEMA_MAX_FIELDS);
        return c->ts->t_error;
    }
    AstType *r = types_record(c->ts, name, name_loc, n);
    if (!r) {
        sema_alloc(c, (size_t)1 << 31);
        return c->ts->t_error;
    }
    uint32_t k = 0;
    for (uint32_t i = 0; i < n; i++) {
        AstNode *f = fs->items[i];
        if (!f || f->kind != AST_FIELD_DECL)
            continue;
        bool dup = false;
        for (uint32_t j = 0; j < k; j++) {
            if (str_eq(r->fields[j].name, f->decl.name)) {
                SglDiag *d = sgl_diag_error(c->diags, f->decl.name_loc,
                                            "duplicate field `%.*s`", (int)f->decl.name.len,
                                            f->decl.name.s);
                sgl_diag_note(c->diags, d, r->fields[j].loc, "`%.*s` first declared here",
                              (int)f->decl.name.len, f->decl.name.s);
                dup = true;
            }
        }
        AstType *ft = sema_resolve_type(c, f->decl.type);
        f->type = ft;
        if (dup)
            continue;
        r->fields[k].name = f->decl.name;
        r->fields[k].loc = f->decl.name_loc;
        r->fields[k].type = ft;
        if (ft && ft->depth + 1 > r->depth)
            r->depth = ft->depth + 1;
        k++;
    }
    r->n_fields = k;
    t->type = r;
    return r;
}

AstType *sema_resolve_type(SemaCtx *c, AstNode *t)
{
    AstType *r = c->ts->t_error;
    if (!t)
        return r;
    switch (t->kind) {
    case AST_TYPE_NAME:
        r = resolve_named(c, t);
        break;
    case AST_TYPE_LIST: {
        AstType *e = sema_resolve_type(c, t->tlist.elem);
        if (type_is_error(e))
            break;
        if (e->depth + 1 > SEMA_MAX_TYPE_DEPTH) {
            sgl_diag_error(c->diags, t->loc, "type nested more than %d deep",
                           SEMA_MAX_TYPE_DEPTH);
            break;
        }
        r = types_list(c->ts, e);
        if (!r) {
            sema_alloc(c, (size_t)1 << 31);
            r = c->ts->t_error;
        }
        break;
    }
    case AST_TYPE_RECORD:
        sgl_diag_error(c->diags, t->loc,
                       "a record type must be declared with a name: `type NAME = { ... }`");
        break;
    default:
        break;
    }
    t->type = r;
    return r;
}

/* --------------------------------------------------- dependency ordering */

/* Kahn's algorithm over n items; deps[i] lists the items i needs first.
 * Writes the order into `order` and returns how many were ordered; the
 * others (marked in `left`) are in or behind a cycle. */
static uint32_t topo_order(SemaCtx *c, uint32_t n, uint32_t **deps, uint32_t *n_deps,
                           uint32_t *order, bool *left)
{
    uint32_t *indeg = sema_alloc(c, (n + 1) * sizeof *indeg);
    uint32_t *n_rev = sema_alloc(c, (n + 1) * sizeof *n_rev);
    uint32_t **rev = sema_alloc(c, (n + 1) * sizeof *rev);
    if (!indeg || !n_rev || !rev)
        return 0;
    for (uint32_t i = 0; i < n; i++)
        for (uint32_t j = 0; j < n_deps[i]; j++)
            n_rev[deps[i][j]]++;
    for (uint32_t i = 0; i < n; i++) {
        rev[i] = sema_alloc(c, (n_rev[i] + 1) * sizeof **rev);
        if (!rev[i])
            return 0;
        n_rev[i] = 0;
    }
    for (uint32_t i = 0; i < n; i++) {
        indeg[i] = n_deps[i];
        for (uint32_t j = 0; j < n_deps[i]; j++) {
            uint32_t d = deps[i][j];
            rev[d][n_rev[d]++] = i;
        }
    }
    uint32_t head = 0, tail = 0;
    for (uint32_t i = 0; i < n; i++)
        if (indeg[i] == 0)
            order[tail++] = i;
    while (head < tail) {
        uint32_t i = order[head++];
        for (uint32_t j = 0; j < n_rev[i]; j++)
            if (--indeg[rev[i][j]] == 0)
                order[tail++] = rev[i][j];
    }
    for (uint32_t i = 0; i < n; i++)
        left[i] = indeg[i] != 0;
    return tail;
}

/* Dependency collection: names used by a type expression or a const
 * initializer that are declarations of the same kind in this module. */
typedef struct {
    SemaCtx *c;
    SemaSymKind kind;
    uint32_t *out, n, cap;
    uint32_t *mark;           /* per item: owner + 1 when already in out */
    uint32_t owner;
} DepSet;

static void dep_add(DepSet *ds, AstStr name)
{
    SemaSym *s = nmap_get(ds->c->globals, name);
    if (!s || s->kind != ds->kind || s->module != ds->c->mod || s->state < 0)
        return;
    uint32_t idx = (uint32_t)s->state;
    if (ds->mark[idx] == ds->owner + 1)
        return;
    ds->mark[idx] = ds->owner + 1;
    if (ds->n == ds->cap) {
        uint32_t cap = ds->cap ? ds->cap * 2 : 8;
        uint32_t *o = sema_alloc(ds->c, cap * sizeof *o);
        if (!o)
            return;
        if (ds->n)
            memcpy(o, ds->out, ds->n * sizeof *o);
        ds->out = o;
        ds->cap = cap;
    }
    ds->out[ds->n++] = idx;
}

static void collect_deps(DepSet *ds, const AstNode *n)
{
    if (!n)
        return;
    const AstList *l = NULL;
    switch (n->kind) {
    case AST_TYPE_NAME: dep_add(ds, n->tname.name); return;
    case AST_TYPE_LIST: collect_deps(ds, n->tlist.elem); return;
    case AST_TYPE_RECORD: l = n->trecord.fields; break;
    case AST_FIELD_DECL: collect_deps(ds, n->decl.type); return;
    case AST_NAME: dep_add(ds, n->name.name); return;
    case AST_STRING: l = n->string.parts; break;
    case AST_LIST: l = n->list.items; break;
    case AST_RECORD: l = n->record.fields; break;
    case AST_FIELD_INIT: collect_deps(ds, n->option.value); return;
    case AST_UNARY: collect_deps(ds, n->unary.operand); return;
    case AST_BINARY: case AST_RANGE:
        collect_deps(ds, n->binary.lhs);
        collect_deps(ds, n->binary.rhs);
        return;
    case AST_CALL: l = n->call.args; break;
    case AST_INDEX:
        collect_deps(ds, n->index.base);
        collect_deps(ds, n->index.index);
        return;
    case AST_FIELD: collect_deps(ds, n->field.base); return;
    default: return;
    }
    for (uint32_t i = 0; l && i < l->n; i++)
        collect_deps(ds, l->items[i]);
}

/* ---------------------------------------------------------- declarations */

static AstStr decl_name(const AstNode *d, SglLoc *loc)
{
    switch (d->kind) {
    case AST_CONST: case AST_TYPEDEF:
        *loc = d->decl.name_loc;
        return d->decl.name;
    case AST_FN: case AST_EXTERN:
        *loc = d->fn.name_loc;
        return d->fn.name;
    default:
        return (AstStr){NULL, 0};
    }
}

static SemaSymKind decl_kind(AstKind k)
{
    return k == AST_CONST ? SYM_CONST : k == AST_TYPEDEF ? SYM_TYPE
         : k == AST_FN    ? SYM_FN    : SYM_EXTERN;
}

typedef struct {
    SemaModule pub;
    NameMap globals;
    SemaSym **own;            /* this module's own top-level symbols */
    uint32_t n_own;
    char *canon;              /* realpath, for identity */
} ModState;

static void declare_globals(SemaCtx *c, ModState *ms, AstList *decls)
{
    ms->own = sema_alloc(c, (decls->n + 1) * sizeof *ms->own);
    if (!ms->own)
        return;
    for (uint32_t i = 0; i < decls->n; i++) {
        AstNode *d = decls->items[i];
        SglLoc loc = {0};
        if (!d || d->kind == AST_IMPORT || d->kind == AST_ERROR)
            continue;
        AstStr name = decl_name(d, &loc);
        if (!name.s)
            continue;
        if (is_builtin_name(name)) {
            sgl_diag_error(c->diags, loc, "cannot redefine the built-in `%.*s`", (int)name.len,
                           name.s);
            continue;
        }
        SemaSym *prev = nmap_get(&ms->globals, name);
        if (prev) {
            redefinition(c, name, loc, prev);
            continue;
        }
        SemaSym *s = sema_alloc(c, sizeof *s);
        if (!s)
            return;
        s->kind = decl_kind(d->kind);
        s->name = name;
        s->loc = loc;
        s->decl = d;
        s->module = &ms->pub;
        s->state = -1;
        d->sym = s;
        nmap_put(c, &ms->globals, name, s);
        ms->own[ms->n_own++] = s;
    }
}

/* The dependency graph of the module's own symbols of one kind (types on
 * their definitions, consts on their initializers), numbered through
 * SemaSym.state (0..n-1; the caller resets state to 0), and its
 * topological order: order[0..n_ok) is checkable first to last, left[i]
 * marks symbols on or behind a cycle. False when there are none (or on
 * allocation failure, which sema_alloc has reported). */
typedef struct {
    uint32_t n, n_ok;
    SemaSym **syms;
    uint32_t **deps, *n_deps, *order;
    bool *left;
} DepGraph;

static bool dep_graph(SemaCtx *c, ModState *ms, SemaSymKind kind, DepGraph *g)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < ms->n_own; i++)
        if (ms->own[i]->kind == kind)
            ms->own[i]->state = (int)n++;
    if (!n)
        return false;
    g->n = n;
    g->syms = sema_alloc(c, n * sizeof *g->syms);
    g->deps = sema_alloc(c, n * sizeof *g->deps);
    g->n_deps = sema_alloc(c, n * sizeof *g->n_deps);
    g->order = sema_alloc(c, n * sizeof *g->order);
    g->left = sema_alloc(c, n * sizeof *g->left);
    uint32_t *mark = sema_alloc(c, n * sizeof *mark);
    if (!g->syms || !g->deps || !g->n_deps || !g->order || !g->left || !mark)
        return false;
    for (uint32_t i = 0; i < ms->n_own; i++) {
        SemaSym *s = ms->own[i];
        if (s->kind != kind)
            continue;
        DepSet ds = {c, kind, NULL, 0, 0, mark, (uint32_t)s->state};
        collect_deps(&ds, kind == SYM_TYPE ? s->decl->decl.type : s->decl->decl.value);
        g->syms[s->state] = s;
        g->deps[s->state] = ds.out;
        g->n_deps[s->state] = ds.n;
    }
    g->n_ok = topo_order(c, n, g->deps, g->n_deps, g->order, g->left);
    return true;
}

/* Resolves the module's type declarations in dependency order. */
static void resolve_typedefs(SemaCtx *c, ModState *ms)
{
    DepGraph g;
    if (!dep_graph(c, ms, SYM_TYPE, &g))
        return;
    uint32_t n = g.n, n_ok = g.n_ok, *order = g.order, **deps = g.deps, *n_deps = g.n_deps;
    SemaSym **syms = g.syms;
    bool *left = g.left;
    for (uint32_t k = 0; k < n_ok; k++) {
        SemaSym *s = syms[order[k]];
        AstNode *te = s->decl->decl.type;
        AstType *t = te && te->kind == AST_TYPE_RECORD
                         ? resolve_record(c, te, s->name, s->loc)
                         : sema_resolve_type(c, te);
        if (!type_is_error(t) && t->depth > SEMA_MAX_TYPE_DEPTH) {
            sgl_diag_error(c->diags, s->loc, "type `%.*s` is nested %u deep; the limit is %d",
                           (int)s->name.len, s->name.s, t->depth, SEMA_MAX_TYPE_DEPTH);
            t = c->ts->t_error;
        }
        s->type = t;
        s->decl->type = t;
    }
    for (uint32_t i = 0; i < n; i++) {
        if (!left[i])
            continue;
        SemaSym *s = syms[i];
        SglDiag *d = sgl_diag_error(c->diags, s->loc, "type `%.*s` is recursive",
                                    (int)s->name.len, s->name.s);
        for (uint32_t j = 0; j < n_deps[i]; j++) {
            SemaSym *t = syms[deps[i][j]];
            if (left[deps[i][j]] && t != s) {
                sgl_diag_note(c->diags, d, t->loc, "`%.*s` refers to `%.*s`, declared here",
                              (int)s->name.len, s->name.s, (int)t->name.len, t->name.s);
                break;
            }
        }
        s->type = c->ts->t_error;
        s->decl->type = s->type;
    }
    for (uint32_t i = 0; i < n; i++)
        syms[i]->state = 0;
}

static bool main_param_ok(const AstType *t)
{
    while (t && t->kind == TY_LIST)
        t = t->elem;
    return t && (t->kind == TY_STR || t->kind == TY_INT || t->kind == TY_FLOAT ||
                 t->kind == TY_BOOL || t->kind == TY_ERROR);
}

static bool extern_type_ok(const AstType *t)
{
    return t && (t->kind == TY_STR || t->kind == TY_INT || t->kind == TY_FLOAT ||
                 t->kind == TY_BOOL || t->kind == TY_ERROR);
}

/* Parameter and return types of an fn or extern. */
static void resolve_signature(SemaCtx *c, SemaSym *s)
{
    AstNode *d = s->decl;
    AstList *ps = d->fn.params;
    uint32_t n = ps ? ps->n : 0;
    bool is_ext = d->kind == AST_EXTERN;
    bool is_main = !is_ext && str_eq_c(s->name, "main") && c->mod == c->root;
    char b1[TNAME_CAP];
    if (n > SEMA_MAX_PARAMS) {
        sgl_diag_error(c->diags, s->loc, "`%.*s` has %u parameters; the limit is %d",
                       (int)s->name.len, s->name.s, n, SEMA_MAX_PARAMS);
        n = 0;    /* checked no further; calls see a poisoned signature */
        s->type = c->ts->t_error;
        d->type = s->type;
        s->params = NULL;
        s->n_params = 0;
        s->state = 1;
        return;
    }
    s->params = sema_alloc(c, (n + 1) * sizeof *s->params);
    if (!s->params)
        return;
    s->n_params = n;
    for (uint32_t i = 0; i < n; i++) {
        AstNode *p = ps->items[i];
        if (!p || p->kind != AST_PARAM) {
            s->params[i] = c->ts->t_error;
            continue;
        }
        for (uint32_t j = 0; j < i; j++) {
            AstNode *q = ps->items[j];
            if (q && q->kind == AST_PARAM && str_eq(q->decl.name, p->decl.name)) {
                SglDiag *dg = sgl_diag_error(c->diags, p->decl.name_loc,
                                             "duplicate parameter `%.*s`",
                                             (int)p->decl.name.len, p->decl.name.s);
                sgl_diag_note(c->diags, dg, q->decl.name_loc, "`%.*s` first declared here",
                              (int)p->decl.name.len, p->decl.name.s);
                break;
            }
        }
        AstType *t = sema_resolve_type(c, p->decl.type);
        if (is_ext && !extern_type_ok(t)) {
            SglDiag *dg = sgl_diag_error(c->diags, p->decl.type->loc,
                                         "extern parameter type must be str, int, float or "
                                         "bool, not %s", tname(t, b1));
            (void)dg;
            t = c->ts->t_error;
        }
        if (is_main && !main_param_ok(t)) {
            SglDiag *dg = sgl_diag_error(c->diags, p->decl.type->loc,
                                         "parameter `%.*s` of `main` has type %s; `main` "
                                         "takes str, int, float, bool or lists of them",
                                         (int)p->decl.name.len, p->decl.name.s, tname(t, b1));
            sgl_diag_note(c->diags, dg, p->decl.type->loc,
                          "main's parameters come from the command line (--arg NAME=VALUE)");
        }
        s->params[i] = t;
        p->type = t;
    }
    AstType *rt = d->fn.ret ? sema_resolve_type(c, d->fn.ret) : c->ts->t_void;
    if (is_ext && d->fn.ret && !extern_type_ok(rt)) {
        sgl_diag_error(c->diags, d->fn.ret->loc,
                       "extern return type must be str, int, float or bool, not %s",
                       tname(rt, b1));
        rt = c->ts->t_error;
    }
    if (is_ext && d->fn.lib.s && d->fn.lib.len == 0)
        sgl_diag_error(c->diags, d->fn.lib_loc.src ? d->fn.lib_loc : s->loc,
                       "the library of an extern must not be empty");
    s->type = rt;
    d->type = rt;
}

/* Checks the module's consts in dependency order. */
static void check_consts(SemaCtx *c, ModState *ms)
{
    DepGraph g;
    if (!dep_graph(c, ms, SYM_CONST, &g))
        return;
    uint32_t n = g.n, n_ok = g.n_ok, *order = g.order, **deps = g.deps, *n_deps = g.n_deps;
    SemaSym **syms = g.syms;
    bool *left = g.left;
    for (uint32_t i = 0; i < n; i++) {
        if (!left[i])
            continue;
        SemaSym *s = syms[i];
        SglDiag *d = sgl_diag_error(c->diags, s->loc, "the value of const `%.*s` depends on "
                                    "itself", (int)s->name.len, s->name.s);
        for (uint32_t j = 0; j < n_deps[i]; j++) {
            SemaSym *t = syms[deps[i][j]];
            if (left[deps[i][j]]) {
                sgl_diag_note(c->diags, d, t->loc, "through `%.*s`, declared here",
                              (int)t->name.len, t->name.s);
                break;
            }
        }
        s->type = c->ts->t_error;
        s->decl->type = s->type;
        s->state = 0;
    }
    c->in_const = true;
    for (uint32_t k = 0; k < n_ok; k++) {
        SemaSym *s = syms[order[k]];
        AstNode *d = s->decl;
        AstType *want = d->decl.type ? sema_resolve_type(c, d->decl.type) : NULL;
        AstType *t = want ? sema_expect(c, d->decl.value, want, "const initializer")
                          : sema_expr(c, d->decl.value, NULL);
        if (t && t->kind == TY_VOID) {
            sgl_diag_error(c->diags, d->decl.value->loc, "this expression has no value");
            t = c->ts->t_error;
        }
        if (want)
            t = want;
        s->type = t ? t : c->ts->t_error;
        d->type = s->type;
        if (!type_is_error(s->type))
            s->value = sema_coerce(c, sema_fold(c, d->decl.value), s->type);
        s->state = 0;
    }
    c->in_const = false;
}

/* ----------------------------------------------------------- statements */

static void check_stmt(SemaCtx *c, AstNode *s);

static void check_stmts(SemaCtx *c, AstList *l)
{
    for (uint32_t i = 0; l && i < l->n; i++)
        check_stmt(c, l->items[i]);
}

void sema_check_block(SemaCtx *c, AstNode *block, bool new_scope)
{
    if (!block || block->kind != AST_BLOCK)
        return;
    if (!new_scope) {
        check_stmts(c, block->block.stmts);
        return;
    }
    ScopeMark m = scope_push(c);
    check_stmts(c, block->block.stmts);
    scope_pop(c, m);
}

static void check_cond(SemaCtx *c, AstNode *e, const char *what)
{
    char b[TNAME_CAP];
    AstType *t = sema_expr(c, e, c->ts->t_bool);
    if (!type_is_error(t) && t->kind != TY_BOOL)
        sgl_diag_error(c->diags, e->loc, "%s must be bool, not %s", what, tname(t, b));
}

static void check_let(SemaCtx *c, AstNode *s)
{
    AstType *want = s->decl.type ? sema_resolve_type(c, s->decl.type) : NULL;
    AstType *t = want ? sema_expect(c, s->decl.value, want, "initializer")
                      : sema_expr(c, s->decl.value, NULL);
    if (t && t->kind == TY_VOID) {
        sgl_diag_error(c->diags, s->decl.value->loc,
                       "this call returns nothing, so it cannot initialize `%.*s`",
                       (int)s->decl.name.len, s->decl.name.s);
        t = c->ts->t_error;
    }
    if (want)
        t = want;
    s->type = t;
    s->sym = sema_declare_local(c, s->decl.name, s->decl.name_loc, s, t, LOCAL_LET);
}

/* Type of an assignment target; reports targets that cannot be assigned. */
static AstType *check_target(SemaCtx *c, AstNode *t)
{
    if (!t)
        return c->ts->t_error;
    if (t->kind == AST_NAME) {
        SemaSym *s = sema_lookup(c, t->name.name);
        if (s && s->kind != SYM_LOCAL) {
            SglDiag *d = sgl_diag_error(c->diags, t->loc, "cannot assign to %s `%.*s`",
                                        s->kind == SYM_CONST ? "const" : s->kind == SYM_TYPE
                                            ? "type" : "function",
                                        (int)t->name.name.len, t->name.name.s);
            if (s->loc.src)
                sgl_diag_note(c->diags, d, s->loc, "`%.*s` is defined here",
                              (int)t->name.name.len, t->name.name.s);
            t->type = c->ts->t_error;
            return t->type;
        }
        return sema_expr(c, t, NULL);
    }
    if (t->kind == AST_INDEX || t->kind == AST_FIELD) {
        AstNode *root = t;
        while (root && (root->kind == AST_INDEX || root->kind == AST_FIELD))
            root = root->kind == AST_INDEX ? root->index.base : root->field.base;
        if (root && root->kind == AST_NAME) {
            SemaSym *s = sema_lookup(c, root->name.name);
            if (s && s->kind == SYM_CONST) {
                SglDiag *d = sgl_diag_error(c->diags, t->loc, "cannot assign into const `%.*s`",
                                            (int)s->name.len, s->name.s);
                sgl_diag_note(c->diags, d, s->loc, "`%.*s` is defined here", (int)s->name.len,
                              s->name.s);
                return c->ts->t_error;
            }
        }
        return sema_expr(c, t, NULL);
    }
    sgl_diag_error(c->diags, t->loc, "cannot assign to this expression");
    sema_expr(c, t, NULL);
    return c->ts->t_error;
}

static void check_assign(SemaCtx *c, AstNode *s)
{
    char b1[TNAME_CAP];
    AstType *tt = check_target(c, s->assign.target);
    if (s->assign.op == AST_OP_ADD && !type_is_error(tt) && tt->kind != TY_STR &&
        tt->kind != TY_INT && tt->kind != TY_FLOAT && tt->kind != TY_LIST) {
        sgl_diag_error(c->diags, s->loc, "`+=` needs a str, int, float or list target, not %s",
                       tname(tt, b1));
        sema_expr(c, s->assign.value, NULL);
        return;
    }
    if (s->assign.op == AST_OP_ADD && tt && tt->kind == TY_INT) {
        AstType *vt = sema_expr(c, s->assign.value, tt);
        if (!type_is_error(vt) && vt->kind != TY_INT)
            sgl_diag_error(c->diags, s->assign.value->loc,
                           "cannot add %s to an int variable", tname(vt, b1));
        return;
    }
    sema_expect(c, s->assign.value, tt, "assigned value");
    s->type = tt;
}

static void check_for(SemaCtx *c, AstNode *s)
{
    char b1[TNAME_CAP];
    AstType *it = sema_expr(c, s->loop.iter, NULL);
    AstType *et = c->ts->t_error;
    if (!type_is_error(it)) {
        if (it->kind == TY_LIST) {
            et = it->elem;
        } else {
            SglDiag *d = sgl_diag_error(c->diags, s->loop.iter->loc,
                                        "`for` needs a list or a range, not %s", tname(it, b1));
            if (it->kind == TY_INT)
                sgl_diag_note(c->diags, d, s->loop.iter->loc, "to count, write `0..n`");
        }
    }
    ScopeMark m = scope_push(c);
    s->type = et;
    s->sym = sema_declare_local(c, s->loop.name, s->loop.name_loc, s, et, LOCAL_FOR);
    c->loop_depth++;
    sema_check_block(c, s->loop.body, false);
    c->loop_depth--;
    scope_pop(c, m);
}

static void check_jump(SemaCtx *c, AstNode *s)
{
    const char *w = s->kind == AST_BREAK ? "break" : "continue";
    if (c->loop_depth > 0)
        return;
    if (c->fork_depth > 0 && c->loops_outside_fork > 0)
        sgl_diag_error(c->diags, s->loc, "`%s` cannot leave a fork body", w);
    else
        sgl_diag_error(c->diags, s->loc, "`%s` outside a loop", w);
}

static void check_return(SemaCtx *c, AstNode *s)
{
    char b1[TNAME_CAP];
    if (!c->fn) {
        sgl_diag_error(c->diags, s->loc, "`return` outside a function");
        return;
    }
    AstType *rt = c->fn->type;
    if (c->fork_depth > 0) {
        sgl_diag_error(c->diags, s->loc, "`return` inside a fork body");
        if (s->ret.value)
            sema_expr(c, s->ret.value, NULL);
        return;
    }
    if (s->ret.value) {
        if (rt && rt->kind == TY_VOID) {
            SglDiag *d = sgl_diag_error(c->diags, s->ret.value->loc,
                                        "`%.*s` has no return type, so `return` takes no value",
                                        (int)c->fn->name.len, c->fn->name.s);
            sgl_diag_note(c->diags, d, c->fn->loc, "declare one: `fn %.*s(...) -> TYPE`",
                          (int)c->fn->name.len, c->fn->name.s);
            sema_expr(c, s->ret.value, NULL);
            return;
        }
        sema_expect(c, s->ret.value, rt, "return value");
    } else if (rt && rt->kind != TY_VOID && rt->kind != TY_ERROR) {
        sgl_diag_error(c->diags, s->loc, "`return` needs a value of type %s", tname(rt, b1));
    }
}

static void check_expr_stmt(SemaCtx *c, AstNode *s)
{
    char b1[TNAME_CAP];
    AstNode *e = s->expr_stmt.expr;
    AstType *t = sema_expr(c, e, NULL);
    if (type_is_error(t) || t->kind == TY_STR)
        return;
    if (t->kind == TY_VOID && e && e->kind == AST_CALL)
        return;
    SglDiag *d = sgl_diag_error(c->diags, e ? e->loc : s->loc,
                                "a statement of type %s does nothing", tname(t, b1));
    sgl_diag_note(c->diags, d, e ? e->loc : s->loc,
                  "only str values are appended to the prompt; use `let` or \"{...}\"");
}

/* A fork body runs once per element (or count) on a copy of the state; the
 * names it declares at its top level are gathered into lists afterwards. */
static void check_fork(SemaCtx *c, AstNode *s)
{
    char b1[TNAME_CAP];
    AstNode *it = s->fork.iter;
    AstType *t = sema_expr(c, it, s->fork.name.s ? NULL : c->ts->t_int);
    AstType *et = c->ts->t_error;
    if (s->fork.name.s) {
        if (!type_is_error(t) && t->kind == TY_LIST) {
            et = t->elem;
        } else if (!type_is_error(t)) {
            SglDiag *d = sgl_diag_error(c->diags, it->loc, "`fork %.*s in` needs a list, not %s",
                                        (int)s->fork.name.len, s->fork.name.s, tname(t, b1));
            if (t->kind == TY_INT)
                sgl_diag_note(c->diags, d, it->loc,
                              "write `fork N { ... }` to run N copies, or `fork %.*s in 0..N`",
                              (int)s->fork.name.len, s->fork.name.s);
        }
    } else if (!type_is_error(t)) {
        if (t->kind != TY_INT) {
            SglDiag *d = sgl_diag_error(c->diags, it->loc, "fork count must be int, not %s",
                                        tname(t, b1));
            if (t->kind == TY_LIST)
                sgl_diag_note(c->diags, d, it->loc,
                              "to fork over the elements, write `fork NAME in LIST`");
        } else {
            const SemaValue *v = sema_fold(c, it);
            if (v && v->kind == SEMA_VAL_INT && v->i < 0)
                sgl_diag_error(c->diags, it->loc, "fork count must be >= 0, not %lld",
                               (long long)v->i);
        }
    }
    if (c->fork_depth >= SEMA_MAX_FORK_DEPTH) {
        sgl_diag_error(c->diags, s->loc, "forks nested more than %d deep", SEMA_MAX_FORK_DEPTH);
        return;
    }
    uint32_t saved_loops = c->loops_outside_fork, saved_depth = c->loop_depth;
    c->loops_outside_fork += c->loop_depth;
    c->loop_depth = 0;
    c->fork_depth++;
    ScopeMark m = scope_push(c);
    uint32_t body_block = c->block_id;
    if (s->fork.name.s) {
        s->sym = sema_declare_local(c, s->fork.name, s->fork.name_loc, s, et, LOCAL_FORK_VAR);
        s->type = et;
    }
    if (s->fork.body && s->fork.body->kind == AST_BLOCK)
        check_stmts(c, s->fork.body->block.stmts);
    /* gather: the body's own top-level names, in declaration order */
    uint32_t n_g = 0;
    SemaSym **g = sema_alloc(c, (c->n_scope - m.n_scope + 1) * sizeof *g);
    for (uint32_t i = m.n_scope; g && i < c->n_scope; i++)
        if (c->scope[i].block == body_block && c->scope[i].sym != s->sym)
            g[n_g++] = c->scope[i].sym;
    scope_pop(c, m);
    c->fork_depth--;
    c->loop_depth = saved_depth;
    c->loops_outside_fork = saved_loops;
    for (uint32_t i = 0; i < n_g; i++) {
        SemaSym *b = g[i];
        AstType *lt = type_is_error(b->type) ? c->ts->t_error : types_list(c->ts, b->type);
        b->gather = sema_declare_local(c, b->name, b->loc, b->decl, lt ? lt : c->ts->t_error,
                                       LOCAL_GATHER);
    }
}

static void check_stmt(SemaCtx *c, AstNode *s)
{
    if (!s)
        return;
    switch (s->kind) {
    case AST_LET: check_let(c, s); break;
    case AST_ASSIGN: check_assign(c, s); break;
    case AST_IF:
        check_cond(c, s->if_.cond, "`if` condition");
        sema_check_block(c, s->if_.then, true);
        if (s->if_.els && s->if_.els->kind == AST_IF)
            check_stmt(c, s->if_.els);
        else
            sema_check_block(c, s->if_.els, true);
        break;
    case AST_FOR: check_for(c, s); break;
    case AST_WHILE:
        check_cond(c, s->loop.iter, "`while` condition");
        c->loop_depth++;
        sema_check_block(c, s->loop.body, true);
        c->loop_depth--;
        break;
    case AST_BREAK: case AST_CONTINUE: check_jump(c, s); break;
    case AST_RETURN: check_return(c, s); break;
    case AST_EXPR_STMT: check_expr_stmt(c, s); break;
    case AST_GEN: sema_gen(c, s); break;
    case AST_SELECT: sema_select(c, s); break;
    case AST_FORK: check_fork(c, s); break;
    case AST_CAPTURE:
        sema_check_block(c, s->capture.body, true);
        s->type = c->ts->t_str;
        s->sym = sema_declare_local(c, s->capture.name, s->capture.name_loc, s, c->ts->t_str,
                                    LOCAL_CAPTURE);
        break;
    case AST_ROLE:
        if (c->role) {
            SglDiag *d = sgl_diag_error(c->diags, s->loc, "role blocks do not nest");
            uint32_t line, col;
            sgl_source_line_col(c->role->loc.src, c->role->loc.off, &line, &col);
            sgl_diag_note(c->diags, d, sgl_loc(c->role->loc.src, c->role->loc.off,
                                               (uint32_t)strlen(ast_role_name(c->role->role.role))),
                          "inside the `%s` block opened at line %u",
                          ast_role_name(c->role->role.role), line);
            sema_check_block(c, s->role.body, false);
            break;
        }
        /* Role blocks only wrap text; names declared inside stay visible
         * after them (`assistant { gen answer }` then `answer`). */
        c->role = s;
        sema_check_block(c, s->role.body, false);
        c->role = NULL;
        break;
    case AST_BLOCK: sema_check_block(c, s, true); break;
    default: break;
    }
}

/* Whether control can reach the end of s (conservative: loops other than
 * `while true` without `break` may fall through). */
static bool has_break(const AstNode *n);

static bool list_has_break(const AstList *l)
{
    for (uint32_t i = 0; l && i < l->n; i++)
        if (has_break(l->items[i]))
            return true;
    return false;
}

static bool has_break(const AstNode *n)
{
    if (!n)
        return false;
    switch (n->kind) {
    case AST_BREAK: return true;
    case AST_BLOCK: return list_has_break(n->block.stmts);
    case AST_IF: return has_break(n->if_.then) || has_break(n->if_.els);
    case AST_ROLE: return has_break(n->role.body);
    case AST_CAPTURE: return has_break(n->capture.body);
    default: return false;    /* loops and forks own their breaks */
    }
}

static bool terminates(const AstNode *s)
{
    if (!s)
        return false;
    switch (s->kind) {
    case AST_RETURN: return true;
    case AST_BLOCK:
        for (uint32_t i = 0; s->block.stmts && i < s->block.stmts->n; i++)
            if (terminates(s->block.stmts->items[i]))
                return true;
        return false;
    case AST_IF: return s->if_.els && terminates(s->if_.then) && terminates(s->if_.els);
    case AST_WHILE:
        return s->loop.iter && s->loop.iter->kind == AST_BOOL && s->loop.iter->bval &&
               !has_break(s->loop.body);
    case AST_ROLE: return terminates(s->role.body);
    case AST_CAPTURE: return terminates(s->capture.body);
    default: return false;
    }
}

static void check_fn_body(SemaCtx *c, SemaSym *fs)
{
    AstNode *d = fs->decl;
    char b1[TNAME_CAP];
    c->fn = fs;
    c->n_scope = 0;
    memset(&c->locals, 0, sizeof c->locals);
    c->loop_depth = c->fork_depth = c->loops_outside_fork = 0;
    c->role = NULL;
    ScopeMark m = scope_push(c);
    c->param_block = c->block_id;
    for (uint32_t i = 0; d->fn.params && i < d->fn.params->n; i++) {
        AstNode *p = d->fn.params->items[i];
        if (p && p->kind == AST_PARAM && !nmap_get(&c->locals, p->decl.name))
            p->sym = sema_declare_local(c, p->decl.name, p->decl.name_loc, p,
                                        i < fs->n_params ? fs->params[i] : NULL, LOCAL_PARAM);
    }
    sema_check_block(c, d->fn.body, true);
    scope_pop(c, m);
    AstType *rt = fs->type;
    if (rt && rt->kind != TY_VOID && rt->kind != TY_ERROR && d->fn.body &&
        !terminates(d->fn.body)) {
        SglLoc end = d->fn.body->loc;
        if (end.len) {
            end.off += end.len - 1;
            end.len = 1;
        }
        SglDiag *dg = sgl_diag_error(c->diags, end, "`%.*s` can reach its end without "
                                     "returning a %s", (int)fs->name.len, fs->name.s,
                                     tname(rt, b1));
        sgl_diag_note(c->diags, dg, d->fn.ret->loc, "the return type is declared here");
    }
    c->fn = NULL;
}

/* -------------------------------------------------------------- modules */

static char *arena_printf(SemaCtx *c, const char *fmt, const char *a, const char *b)
{
    int n = snprintf(NULL, 0, fmt, a, b);
    if (n < 0)
        return NULL;
    char *s = sema_alloc(c, (size_t)n + 1);
    if (s)
        snprintf(s, (size_t)n + 1, fmt, a, b);
    return s;
}

static bool is_dir(const char *p)
{
    return p && *p && access(p, F_OK) == 0;
}

/* The stdlib directory (see SemaOptions): the folder that holds the `std/`
 * modules, stdlib/std in the source tree, so "std/chat" is stdlib/std/chat.sgl. */
static const char *stdlib_dir(SemaCtx *c)
{
    if (c->opt && c->opt->stdlib_dir)
        return c->opt->stdlib_dir;
    const char *e = getenv("SGL_STDLIB");
    if (e && *e)
        return e;
    e = getenv("SGL_SOURCE_ROOT");
    if (e && *e) {
        char *p = arena_printf(c, "%s/%s", e, "stdlib/std");
        if (is_dir(p))
            return p;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash)
            *slash = '\0';
        const char *tries[] = {"%s/%s", "%s/../%s", "%s/../../%s", "%s/../share/sglc/%s"};
        for (size_t i = 0; i < sizeof tries / sizeof tries[0]; i++) {
            char *p = arena_printf(c, tries[i], exe, "stdlib/std");
            if (is_dir(p))
                return p;
        }
    }
    return NULL;
}

static bool add_source(SemaCtx *c, SglSource *src)
{
    const SemaOptions *o = c->opt;
    if (*o->n_sources == *o->cap_sources) {
        size_t cap = *o->cap_sources ? *o->cap_sources * 2 : 4;
        SglSource **s = realloc(*o->sources, cap * sizeof *s);
        if (!s) {
            sgl_source_free(src);
            sema_alloc(c, (size_t)1 << 31);
            return false;
        }
        *o->sources = s;
        *o->cap_sources = cap;
    }
    (*o->sources)[(*o->n_sources)++] = src;
    return true;
}

static void check_module(SemaCtx *c, ModState *ms, uint32_t depth);

/* Display path of an import: relative to the importing file's directory, or
 * in the stdlib directory for "std/NAME". ".sgl" is appended when missing. */
static char *import_path(SemaCtx *c, const AstNode *imp, const char *from, bool *is_std)
{
    AstStr p = imp->import.path;
    const char *ext = p.len >= 4 && memcmp(p.s + p.len - 4, ".sgl", 4) == 0 ? "" : ".sgl";
    char *rel = sema_alloc(c, p.len + 5);
    if (!rel)
        return NULL;
    memcpy(rel, p.s, p.len);
    strcpy(rel + p.len, ext);
    *is_std = p.len > 4 && memcmp(p.s, "std/", 4) == 0;
    if (*is_std) {
        const char *dir = stdlib_dir(c);
        return dir ? arena_printf(c, "%s/%s", dir, rel + 4) : NULL;
    }
    if (rel[0] == '/')
        return rel;
    const char *slash = strrchr(from, '/');
    if (!slash)
        return rel;
    char *dir = sema_alloc(c, (size_t)(slash - from) + 1);
    if (!dir)
        return NULL;
    memcpy(dir, from, (size_t)(slash - from));
    return arena_printf(c, "%s/%s", dir, rel);
}

/* Loads, parses and checks the module an import names; NULL when it could
 * not be loaded (after a diagnostic). */
static ModState *load_import(SemaCtx *c, AstNode *imp, uint32_t depth)
{
    AstStr ps = imp->import.path;
    SglLoc at = imp->import.path_loc.src ? imp->import.path_loc : imp->loc;
    if (!ps.s || ps.len == 0) {
        sgl_diag_error(c->diags, at, "empty import path");
        return NULL;
    }
    if (!c->opt || !c->opt->sources) {
        sgl_diag_error(c->diags, at, "imports are not available here");
        return NULL;
    }
    bool is_std = false;
    char *path = import_path(c, imp, c->mod->path, &is_std);
    if (!path) {
        if (is_std && !c->oom)
            sgl_diag_error(c->diags, at, "cannot find the standard library directory for `%.*s` "
                           "(set SGL_STDLIB)", (int)ps.len, ps.s);
        return NULL;
    }
    char canon_buf[PATH_MAX];
    const char *canon = realpath(path, canon_buf) ? canon_buf : path;
    ModState *ms = nmap_get(&c->modmap, (AstStr){canon, (uint32_t)strlen(canon)});
    if (ms) {
        if (ms->pub.loading) {
            SglDiag *d = sgl_diag_error(c->diags, at, "import cycle: `%s` imports itself",
                                        ms->pub.path);
            for (uint32_t i = 0; i < c->n_stack; i++) {
                if (c->stack[i] != &ms->pub)
                    continue;
                for (uint32_t j = i; j + 1 < c->n_stack; j++)
                    sgl_diag_note(c->diags, d, c->stack_at[j + 1], "`%s` imports `%s`",
                                  c->stack[j]->path, c->stack[j + 1]->path);
                break;
            }
            return NULL;
        }
        return ms;
    }
    if (depth + 1 > SEMA_MAX_IMPORT_DEPTH) {
        sgl_diag_error(c->diags, at, "imports nested more than %d deep", SEMA_MAX_IMPORT_DEPTH);
        return NULL;
    }
    if (c->n_modules_loaded >= SEMA_MAX_MODULES) {
        sgl_diag_error(c->diags, at, "more than %d modules imported", SEMA_MAX_MODULES);
        return NULL;
    }
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
        sgl_diag_error(c->diags, at, "cannot import `%.*s`: not a regular file", (int)ps.len,
                       ps.s);
        return NULL;
    }
    char err[PATH_MAX + 128];
    SglSource *src = sgl_source_read_file(path, err, sizeof err);
    if (!src) {
        const char *why = strstr(err, ": ");
        SglDiag *d = sgl_diag_error(c->diags, at, "cannot import `%.*s`%s", (int)ps.len, ps.s,
                                    why ? why : "");
        if (is_std)
            sgl_diag_note(c->diags, d, at, "`std/...` modules are looked up in the stdlib "
                          "directory (SGL_STDLIB)");
        return NULL;
    }
    if (!add_source(c, src))
        return NULL;
    ms = sema_alloc(c, sizeof *ms);
    char *key = ms ? sgl_arena_strndup(c->arena, canon, strlen(canon)) : NULL;
    if (!ms || !key)
        return NULL;
    ms->canon = key;
    ms->pub.path = path;
    ms->pub.src = src;
    nmap_put(c, &c->modmap, (AstStr){key, (uint32_t)strlen(key)}, ms);
    c->n_modules_loaded++;
    uint32_t before = c->diags->n_errors;
    ms->pub.program = sgl_parse(src, c->arena, c->diags, false, NULL);
    if (!ms->pub.program || c->diags->n_errors > before) {
        ms->pub.failed = true;
        ms->pub.done = true;
        return ms;
    }
    if (c->n_stack < SEMA_MAX_IMPORT_DEPTH + 1)
        c->stack_at[c->n_stack] = at;
    check_module(c, ms, depth + 1);
    return ms;
}

/* Makes an imported module's own top-level names visible in the current one. */
static void bind_import(SemaCtx *c, ModState *from, AstNode *imp)
{
    for (uint32_t i = 0; i < from->n_own; i++) {
        SemaSym *s = from->own[i];
        SemaSym *prev = nmap_get(c->globals, s->name);
        if (prev == s)
            continue;
        if (prev) {
            SglDiag *d = sgl_diag_error(c->diags, imp->loc, "`%.*s` from `%s` conflicts with "
                                        "another definition", (int)s->name.len, s->name.s,
                                        from->pub.path);
            sgl_diag_note(c->diags, d, prev->loc, "the other `%.*s` is defined here",
                          (int)s->name.len, s->name.s);
            continue;
        }
        nmap_put(c, c->globals, s->name, s);
    }
}

static void check_module(SemaCtx *c, ModState *ms, uint32_t depth)
{
    SemaModule *saved_mod = c->mod;
    NameMap *saved_globals = c->globals;
    bool saved_lenient = c->lenient;
    c->mod = &ms->pub;
    c->globals = &ms->globals;
    c->lenient = false;
    ms->pub.loading = true;
    if (c->n_stack < SEMA_MAX_IMPORT_DEPTH + 1)
        c->stack[c->n_stack] = &ms->pub;
    c->n_stack++;
    AstList *decls = ms->pub.program->prog.decls;
    AstList empty = {0};
    if (!decls)
        decls = &empty;
    /* imports first: their names are visible everywhere in this module */
    ModState **imps = sema_alloc(c, (decls->n + 1) * sizeof *imps);
    for (uint32_t i = 0; imps && i < decls->n; i++) {
        AstNode *d = decls->items[i];
        if (!d || d->kind != AST_IMPORT)
            continue;
        ModState *im = load_import(c, d, depth);
        if (!im || im->pub.failed) {
            c->lenient = true;
            continue;
        }
        imps[i] = im;
    }
    declare_globals(c, ms, decls);
    for (uint32_t i = 0; imps && i < decls->n; i++)
        if (imps[i])
            bind_import(c, imps[i], decls->items[i]);
    resolve_typedefs(c, ms);
    for (uint32_t i = 0; i < ms->n_own; i++)
        if (ms->own[i]->kind == SYM_FN || ms->own[i]->kind == SYM_EXTERN)
            resolve_signature(c, ms->own[i]);
    check_consts(c, ms);
    for (uint32_t i = 0; i < ms->n_own; i++)
        if (ms->own[i]->kind == SYM_FN)
            check_fn_body(c, ms->own[i]);
    ms->pub.loading = false;
    ms->pub.done = true;
    c->n_stack--;
    SemaModule **mods = sema_alloc(c, (c->res->n_modules + 1) * sizeof *mods);
    if (mods) {
        if (c->res->n_modules)
            memcpy(mods, c->res->modules, c->res->n_modules * sizeof *mods);
        mods[c->res->n_modules++] = &ms->pub;
        c->res->modules = mods;
    }
    c->mod = saved_mod;
    c->globals = saved_globals;
    c->lenient = saved_lenient;
}

bool sema_check(AstNode *program, const SglSource *src, SglArena *arena, SglDiags *diags,
                const SemaOptions *opt, SemaResult *res)
{
    uint32_t before = diags->n_errors;
    SemaCtx c;
    memset(&c, 0, sizeof c);
    memset(res, 0, sizeof *res);
    c.arena = arena;
    c.diags = diags;
    c.ts = &res->types;
    c.opt = opt;
    c.res = res;
    if (!types_init(&res->types, arena)) {
        sgl_diag_error(diags, sgl_loc(NULL, 0, 0), "out of memory");
        return false;
    }
    if (!program || program->kind != AST_PROGRAM)
        return diags->n_errors == before;
    ModState *root = sema_alloc(&c, sizeof *root);
    if (!root)
        return false;
    root->pub.path = src && src->name ? src->name : "<input>";
    root->pub.src = src;
    root->pub.program = program;
    c.root = &root->pub;
    char canon_buf[PATH_MAX];
    const char *canon = realpath(root->pub.path, canon_buf) ? canon_buf : root->pub.path;
    root->canon = sgl_arena_strndup(arena, canon, strlen(canon));
    if (root->canon)
        nmap_put(&c, &c.modmap, (AstStr){root->canon, (uint32_t)strlen(root->canon)}, root);
    c.n_modules_loaded = 1;
    check_module(&c, root, 0);
    SemaSym *m = nmap_get(&root->globals, (AstStr){"main", 4});
    res->main = m && m->kind == SYM_FN && m->module == &root->pub ? m : NULL;
    free(c.scope);
    return diags->n_errors == before;
}

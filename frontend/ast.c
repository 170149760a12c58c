/* ast.c -- AST constructors (called from parser.y actions) and name tables.
 *
 * Each constructor allocates one node in the arena, links its children,
 * computes its height, and checks the node-count and tree-depth limits. The
 * few purely syntactic checks that the grammar leaves open (assignment
 * targets, `list[...]`, join modes, constant library/import strings) are made
 * here so that actions stay one-line calls. After an allocation failure every
 * constructor returns NULL (see AstBuilder in ast.h).
 */
#include "frontend/ast.h"

#include <string.h>

static const char *const kind_names[] = { /* ORDER AST_KIND */
    "error", "program", "import", "const", "type", "extern", "fn", "param",
    "type-name", "type-list", "type-record", "field", "block", "let", "assign", "if",
    "for", "while", "break", "continue", "return", "expr", "gen", "select", "option",
    "fork", "capture", "role", "name", "int", "float", "bool", "string", "text", "list",
    "record", "field-init", "unary", "binary", "range", "call", "index", "field-access",
};
_Static_assert(sizeof kind_names / sizeof kind_names[0] == AST_KIND_COUNT_, "kind_names");

static const char *const op_names[] = { /* ORDER AST_OP */
    "", "+", "-", "*", "/", "%", "==", "!=", "<", "<=", ">", ">=", "and", "or", "not", "-", "..",
};
_Static_assert(sizeof op_names / sizeof op_names[0] == AST_OP_COUNT_, "op_names");

const char *ast_kind_name(AstKind k)
{
    return (unsigned)k < AST_KIND_COUNT_ ? kind_names[k] : "?";
}

const char *ast_op_name(AstOp op)
{
    return (unsigned)op < AST_OP_COUNT_ ? op_names[op] : "?";
}

const char *ast_role_name(AstRole r)
{
    switch (r) {
    case AST_ROLE_SYSTEM: return "system";
    case AST_ROLE_USER: return "user";
    case AST_ROLE_ASSISTANT: return "assistant";
    }
    return "?";
}

void ast_builder_init(AstBuilder *b, SglArena *arena, SglDiags *diags)
{
    memset(b, 0, sizeof *b);
    b->arena = arena;
    b->diags = diags;
}

static void out_of_memory(AstBuilder *b)
{
    if (!b->oom)
        sgl_diag_error(b->diags, sgl_loc(NULL, 0, 0), "out of memory while parsing");
    b->oom = true;
}

static uint32_t hash_bytes(const char *s, size_t n)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

AstStr ast_strdup(AstBuilder *b, const char *s, size_t len)
{
    AstStr r = {NULL, 0};
    if (b->oom)
        return r;
    r.s = sgl_arena_strndup(b->arena, s, len);
    if (!r.s)
        out_of_memory(b);
    else
        r.len = (uint32_t)len;
    return r;
}

/* Open addressing, load <= 1/2; the table doubles in the arena (the old one
 * is left behind, a bounded waste of at most the final table's size). */
AstStr ast_intern(AstBuilder *b, const char *s, size_t len)
{
    AstStr none = {NULL, 0};
    if (b->oom)
        return none;
    if (2 * (b->intern_n + 1) > b->intern_cap) {
        uint32_t cap = b->intern_cap ? b->intern_cap * 2 : 256;
        AstStr *t = sgl_arena_calloc(b->arena, cap, sizeof *t);
        if (!t) {
            out_of_memory(b);
            return none;
        }
        for (uint32_t i = 0; i < b->intern_cap; i++) {
            AstStr e = b->intern[i];
            if (!e.s)
                continue;
            uint32_t j = hash_bytes(e.s, e.len) & (cap - 1);
            while (t[j].s)
                j = (j + 1) & (cap - 1);
            t[j] = e;
        }
        b->intern = t;
        b->intern_cap = cap;
    }
    uint32_t j = hash_bytes(s, len) & (b->intern_cap - 1);
    while (b->intern[j].s) {
        AstStr e = b->intern[j];
        if (e.len == len && memcmp(e.s, s, len) == 0)
            return e;
        j = (j + 1) & (b->intern_cap - 1);
    }
    AstStr r = ast_strdup(b, s, len);
    if (r.s) {
        b->intern[j] = r;
        b->intern_n++;
    }
    return r;
}

AstList *ast_list_new(AstBuilder *b)
{
    if (b->oom)
        return NULL;
    AstList *l = sgl_arena_calloc(b->arena, 1, sizeof *l);
    if (!l)
        out_of_memory(b);
    return l;
}

AstList *ast_list_push(AstBuilder *b, AstList *l, AstNode *n)
{
    if (b->oom || !l)
        return l;
    if (l->n == l->cap) {
        uint32_t cap = l->cap ? l->cap * 2 : 4;
        AstNode **items = sgl_arena_alloc(b->arena, cap * sizeof *items);
        if (!items) {
            out_of_memory(b);
            return l;
        }
        if (l->n)
            memcpy(items, l->items, l->n * sizeof *items);
        l->items = items;
        l->cap = cap;
    }
    l->items[l->n++] = n;
    return l;
}

static AstNode *node(AstBuilder *b, AstKind kind, SglLoc loc)
{
    if (b->oom)
        return NULL;
    if (b->n_nodes >= SGL_MAX_AST_NODES) {
        if (!b->nodes_reported)
            sgl_diag_error(b->diags, loc, "program too large: more than %u syntax nodes",
                           SGL_MAX_AST_NODES);
        b->nodes_reported = true;
        b->oom = true; /* stops the parse like an allocation failure */
        return NULL;
    }
    AstNode *n = sgl_arena_calloc(b->arena, 1, sizeof *n);
    if (!n) {
        out_of_memory(b);
        return NULL;
    }
    b->n_nodes++;
    n->kind = kind;
    n->loc = loc;
    n->height = 1;
    return n;
}

static uint32_t h(const AstNode *c)
{
    return c ? c->height : 0;
}

static uint32_t hl(const AstList *l)
{
    uint32_t m = 0;
    for (uint32_t i = 0; l && i < l->n; i++)
        if (h(l->items[i]) > m)
            m = h(l->items[i]);
    return m;
}

/* Sets n's height from its children's; a node deeper than the limit is
 * replaced by an error node so no tree exceeds SGL_MAX_TREE_DEPTH + 1. */
static AstNode *fin(AstBuilder *b, AstNode *n, uint32_t child_height)
{
    if (!n)
        return NULL;
    n->height = child_height + 1;
    if (n->height <= SGL_MAX_TREE_DEPTH)
        return n;
    if (!b->depth_reported)
        sgl_diag_error(b->diags, n->loc, "nesting too deep: the syntax tree exceeds the limit "
                       "of %d levels", SGL_MAX_TREE_DEPTH);
    b->depth_reported = true;
    return ast_error(b, n->loc);
}

static uint32_t max2(uint32_t a, uint32_t c)
{
    return a > c ? a : c;
}

static uint32_t max3(uint32_t a, uint32_t c, uint32_t d)
{
    return max2(a, max2(c, d));
}

AstNode *ast_error(AstBuilder *b, SglLoc loc)
{
    return node(b, AST_ERROR, loc);
}

AstNode *ast_program(AstBuilder *b, SglLoc loc, AstList *decls)
{
    AstNode *n = node(b, AST_PROGRAM, loc);
    if (n)
        n->prog.decls = decls;
    return fin(b, n, hl(decls));
}

/* The text of a string literal without interpolation; reports otherwise. */
static bool plain_string(AstBuilder *b, AstNode *s, const char *what, AstStr *out, SglLoc *loc)
{
    out->s = "";
    out->len = 0;
    if (!s || s->kind != AST_STRING)
        return false;
    *loc = s->loc;
    AstList *p = s->string.parts;
    if (p && p->n == 1 && p->items[0] && p->items[0]->kind == AST_STR_TEXT) {
        *out = p->items[0]->text.text;
        return true;
    }
    if (p && p->n == 0)
        return true;
    sgl_diag_error(b->diags, s->loc, "%s must be a plain string (no interpolation)", what);
    return false;
}

AstNode *ast_import(AstBuilder *b, SglLoc loc, AstNode *path_string)
{
    AstNode *n = node(b, AST_IMPORT, loc);
    if (n)
        plain_string(b, path_string, "an import path", &n->import.path, &n->import.path_loc);
    return fin(b, n, 0);
}

static AstNode *decl(AstBuilder *b, AstKind k, SglLoc loc, AstIdent name, AstNode *type,
                     AstNode *value)
{
    AstNode *n = node(b, k, loc);
    if (!n)
        return NULL;
    n->decl.name = name.name;
    n->decl.name_loc = name.loc;
    n->decl.type = type;
    n->decl.value = value;
    return fin(b, n, max2(h(type), h(value)));
}

AstNode *ast_const(AstBuilder *b, SglLoc loc, AstIdent name, AstNode *type, AstNode *value)
{
    return decl(b, AST_CONST, loc, name, type, value);
}

AstNode *ast_typedef(AstBuilder *b, SglLoc loc, AstIdent name, AstNode *type)
{
    return decl(b, AST_TYPEDEF, loc, name, type, NULL);
}

AstNode *ast_param(AstBuilder *b, SglLoc loc, AstIdent name, AstNode *type)
{
    return decl(b, AST_PARAM, loc, name, type, NULL);
}

AstNode *ast_field_decl(AstBuilder *b, SglLoc loc, AstIdent name, AstNode *type)
{
    return decl(b, AST_FIELD_DECL, loc, name, type, NULL);
}

AstNode *ast_let(AstBuilder *b, SglLoc loc, AstIdent name, AstNode *type, AstNode *value)
{
    return decl(b, AST_LET, loc, name, type, value);
}

static AstNode *fn(AstBuilder *b, AstKind k, SglLoc loc, AstIdent name, AstList *params,
                   AstNode *ret, AstNode *body)
{
    AstNode *n = node(b, k, loc);
    if (!n)
        return NULL;
    n->fn.name = name.name;
    n->fn.name_loc = name.loc;
    n->fn.params = params;
    n->fn.ret = ret;
    n->fn.body = body;
    return fin(b, n, max3(hl(params), h(ret), h(body)));
}

AstNode *ast_extern(AstBuilder *b, SglLoc loc, AstIdent name, AstList *params, AstNode *ret,
                    AstNode *lib_string)
{
    AstNode *n = fn(b, AST_EXTERN, loc, name, params, ret, NULL);
    if (n && n->kind == AST_EXTERN) {
        plain_string(b, lib_string, "an extern library name", &n->fn.lib, &n->fn.lib_loc);
        if (n->fn.lib.len == 0 && lib_string && lib_string->kind == AST_STRING &&
            lib_string->string.parts && lib_string->string.parts->n == 0)
            sgl_diag_error(b->diags, lib_string->loc, "an extern library name must not be empty");
    }
    return n;
}

AstNode *ast_fn(AstBuilder *b, SglLoc loc, AstIdent name, AstList *params, AstNode *ret,
                AstNode *body)
{
    return fn(b, AST_FN, loc, name, params, ret, body);
}

AstNode *ast_type_name(AstBuilder *b, SglLoc loc, AstIdent name)
{
    AstNode *n = node(b, AST_TYPE_NAME, loc);
    if (n)
        n->tname.name = name.name;
    return n;
}

AstNode *ast_type_generic(AstBuilder *b, SglLoc loc, AstIdent name, AstNode *arg)
{
    if (!name.name.s || strcmp(name.name.s, "list") != 0) {
        sgl_diag_error(b->diags, name.loc, "unknown generic type '%s' (only list[T] exists)",
                       name.name.s ? name.name.s : "");
        return ast_error(b, loc);
    }
    AstNode *n = node(b, AST_TYPE_LIST, loc);
    if (n)
        n->tlist.elem = arg;
    return fin(b, n, h(arg));
}

AstNode *ast_type_record(AstBuilder *b, SglLoc loc, AstList *fields)
{
    AstNode *n = node(b, AST_TYPE_RECORD, loc);
    if (n)
        n->trecord.fields = fields;
    return fin(b, n, hl(fields));
}

AstNode *ast_block(AstBuilder *b, SglLoc loc, AstList *stmts)
{
    AstNode *n = node(b, AST_BLOCK, loc);
    if (n)
        n->block.stmts = stmts;
    return fin(b, n, hl(stmts));
}

AstNode *ast_assign(AstBuilder *b, SglLoc loc, AstNode *target, AstOp op, AstNode *value)
{
    if (target && target->kind != AST_NAME && target->kind != AST_INDEX &&
        target->kind != AST_FIELD && target->kind != AST_ERROR) {
        sgl_diag_error(b->diags, target->loc, "cannot assign to this expression (expected a "
                       "variable, an element xs[i] or a field r.f)");
        return ast_error(b, loc);
    }
    AstNode *n = node(b, AST_ASSIGN, loc);
    if (!n)
        return NULL;
    n->assign.target = target;
    n->assign.op = op;
    n->assign.value = value;
    return fin(b, n, max2(h(target), h(value)));
}

AstNode *ast_if(AstBuilder *b, SglLoc loc, AstNode *cond, AstNode *then, AstNode *els)
{
    AstNode *n = node(b, AST_IF, loc);
    if (!n)
        return NULL;
    n->if_.cond = cond;
    n->if_.then = then;
    n->if_.els = els;
    return fin(b, n, max3(h(cond), h(then), h(els)));
}

static AstNode *loop(AstBuilder *b, AstKind k, SglLoc loc, AstIdent name, AstNode *iter,
                     AstNode *body)
{
    AstNode *n = node(b, k, loc);
    if (!n)
        return NULL;
    n->loop.name = name.name;
    n->loop.name_loc = name.loc;
    n->loop.iter = iter;
    n->loop.body = body;
    return fin(b, n, max2(h(iter), h(body)));
}

AstNode *ast_for(AstBuilder *b, SglLoc loc, AstIdent name, AstNode *iter, AstNode *body)
{
    return loop(b, AST_FOR, loc, name, iter, body);
}

AstNode *ast_while(AstBuilder *b, SglLoc loc, AstNode *cond, AstNode *body)
{
    AstIdent none = {{NULL, 0}, {NULL, 0, 0}};
    return loop(b, AST_WHILE, loc, none, cond, body);
}

AstNode *ast_jump(AstBuilder *b, SglLoc loc, AstKind kind)
{
    return node(b, kind, loc);
}

AstNode *ast_return(AstBuilder *b, SglLoc loc, AstNode *value)
{
    AstNode *n = node(b, AST_RETURN, loc);
    if (n)
        n->ret.value = value;
    return fin(b, n, h(value));
}

AstNode *ast_expr_stmt(AstBuilder *b, SglLoc loc, AstNode *expr)
{
    AstNode *n = node(b, AST_EXPR_STMT, loc);
    if (n)
        n->expr_stmt.expr = expr;
    return fin(b, n, h(expr));
}

static AstNode *gen(AstBuilder *b, AstKind k, SglLoc loc, AstIdent name, AstNode *type,
                    AstList *options)
{
    AstNode *n = node(b, k, loc);
    if (!n)
        return NULL;
    n->gen.name = name.name;
    n->gen.name_loc = name.loc;
    n->gen.type = type;
    n->gen.options = options ? options : ast_list_new(b);
    return fin(b, n, max2(h(type), hl(options)));
}

AstNode *ast_gen(AstBuilder *b, SglLoc loc, AstIdent name, AstNode *type, AstList *options)
{
    return gen(b, AST_GEN, loc, name, type, options);
}

AstNode *ast_select(AstBuilder *b, SglLoc loc, AstIdent name, AstList *options)
{
    return gen(b, AST_SELECT, loc, name, NULL, options);
}

AstNode *ast_select_from(AstBuilder *b, SglLoc loc, AstIdent name, SglLoc from_loc,
                         AstNode *choices)
{
    AstIdent opt = {ast_intern(b, "choices", 7), from_loc};
    SglLoc oloc = choices ? sgl_loc_span(from_loc, choices->loc) : from_loc;
    AstList *l = ast_list_push(b, ast_list_new(b), ast_option(b, oloc, opt, choices));
    return gen(b, AST_SELECT, loc, name, NULL, l);
}

static AstNode *option(AstBuilder *b, AstKind k, SglLoc loc, AstIdent name, AstNode *value)
{
    AstNode *n = node(b, k, loc);
    if (!n)
        return NULL;
    n->option.name = name.name;
    n->option.name_loc = name.loc;
    n->option.value = value;
    return fin(b, n, h(value));
}

AstNode *ast_option(AstBuilder *b, SglLoc loc, AstIdent name, AstNode *value)
{
    return option(b, AST_OPTION, loc, name, value);
}

AstNode *ast_field_init(AstBuilder *b, SglLoc loc, AstIdent name, AstNode *value)
{
    return option(b, AST_FIELD_INIT, loc, name, value);
}

AstNode *ast_fork(AstBuilder *b, SglLoc loc, AstIdent name, AstNode *iter, AstNode *body)
{
    AstNode *n = node(b, AST_FORK, loc);
    if (!n)
        return NULL;
    n->fork.name = name.name;
    n->fork.name_loc = name.loc;
    n->fork.iter = iter;
    n->fork.body = body;
    n->fork.join = AST_JOIN_GATHER;
    return fin(b, n, max2(h(iter), h(body)));
}

AstNode *ast_fork_join(AstBuilder *b, SglLoc loc, AstNode *fork, AstIdent mode)
{
    if (!fork || fork->kind != AST_FORK)
        return fork;
    const char *m = mode.name.s ? mode.name.s : "";
    if (strcmp(m, "concat") == 0)
        fork->fork.join = AST_JOIN_CONCAT;
    else if (strcmp(m, "gather") == 0)
        fork->fork.join = AST_JOIN_GATHER;
    else
        sgl_diag_error(b->diags, mode.loc, "unknown join mode '%s' (expected 'gather' or "
                       "'concat')", m);
    fork->fork.join_loc = mode.loc;
    fork->loc = loc;
    return fork;
}

AstNode *ast_capture(AstBuilder *b, SglLoc loc, AstIdent name, AstNode *body)
{
    AstNode *n = node(b, AST_CAPTURE, loc);
    if (!n)
        return NULL;
    n->capture.name = name.name;
    n->capture.name_loc = name.loc;
    n->capture.body = body;
    return fin(b, n, h(body));
}

AstNode *ast_role(AstBuilder *b, SglLoc loc, AstRole role, AstNode *body)
{
    AstNode *n = node(b, AST_ROLE, loc);
    if (!n)
        return NULL;
    n->role.role = role;
    n->role.body = body;
    return fin(b, n, h(body));
}

AstNode *ast_name(AstBuilder *b, SglLoc loc, AstIdent name)
{
    AstNode *n = node(b, AST_NAME, loc);
    if (n)
        n->name.name = name.name;
    return n;
}

AstNode *ast_int(AstBuilder *b, SglLoc loc, int64_t v)
{
    AstNode *n = node(b, AST_INT, loc);
    if (n)
        n->ival = v;
    return n;
}

AstNode *ast_float(AstBuilder *b, SglLoc loc, double v)
{
    AstNode *n = node(b, AST_FLOAT, loc);
    if (n)
        n->fval = v;
    return n;
}

AstNode *ast_bool(AstBuilder *b, SglLoc loc, bool v)
{
    AstNode *n = node(b, AST_BOOL, loc);
    if (n)
        n->bval = v;
    return n;
}

AstNode *ast_string(AstBuilder *b, SglLoc loc, AstList *parts, bool triple)
{
    AstNode *n = node(b, AST_STRING, loc);
    if (!n)
        return NULL;
    n->string.parts = parts;
    n->string.triple = triple;
    return fin(b, n, hl(parts));
}

AstNode *ast_str_text(AstBuilder *b, SglLoc loc, AstStr text)
{
    AstNode *n = node(b, AST_STR_TEXT, loc);
    if (n)
        n->text.text = text;
    return n;
}

AstNode *ast_list(AstBuilder *b, SglLoc loc, AstList *items)
{
    AstNode *n = node(b, AST_LIST, loc);
    if (n)
        n->list.items = items;
    return fin(b, n, hl(items));
}

AstNode *ast_record(AstBuilder *b, SglLoc loc, AstList *fields)
{
    AstNode *n = node(b, AST_RECORD, loc);
    if (n)
        n->record.fields = fields;
    return fin(b, n, hl(fields));
}

AstNode *ast_unary(AstBuilder *b, SglLoc loc, AstOp op, AstNode *operand)
{
    AstNode *n = node(b, AST_UNARY, loc);
    if (!n)
        return NULL;
    n->unary.op = op;
    n->unary.operand = operand;
    return fin(b, n, h(operand));
}

static AstNode *binary(AstBuilder *b, AstKind k, SglLoc loc, AstOp op, AstNode *lhs,
                       AstNode *rhs)
{
    AstNode *n = node(b, k, loc);
    if (!n)
        return NULL;
    n->binary.op = op;
    n->binary.lhs = lhs;
    n->binary.rhs = rhs;
    return fin(b, n, max2(h(lhs), h(rhs)));
}

AstNode *ast_binary(AstBuilder *b, SglLoc loc, AstOp op, AstNode *lhs, AstNode *rhs)
{
    return binary(b, AST_BINARY, loc, op, lhs, rhs);
}

AstNode *ast_range(AstBuilder *b, SglLoc loc, AstNode *lo, AstNode *hi)
{
    return binary(b, AST_RANGE, loc, AST_OP_RANGE, lo, hi);
}

AstNode *ast_call(AstBuilder *b, SglLoc loc, AstIdent name, AstList *args)
{
    AstNode *n = node(b, AST_CALL, loc);
    if (!n)
        return NULL;
    n->call.name = name.name;
    n->call.name_loc = name.loc;
    n->call.args = args;
    return fin(b, n, hl(args));
}

AstNode *ast_index(AstBuilder *b, SglLoc loc, AstNode *base, AstNode *index)
{
    AstNode *n = node(b, AST_INDEX, loc);
    if (!n)
        return NULL;
    n->index.base = base;
    n->index.index = index;
    return fin(b, n, max2(h(base), h(index)));
}

AstNode *ast_field(AstBuilder *b, SglLoc loc, AstNode *base, AstIdent name)
{
    AstNode *n = node(b, AST_FIELD, loc);
    if (!n)
        return NULL;
    n->field.base = base;
    n->field.name = name.name;
    n->field.name_loc = name.loc;
    return fin(b, n, h(base));
}

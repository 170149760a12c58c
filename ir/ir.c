/* ir.c -- IrProgram storage, construction helpers, name tables (see ir.h).
 *
 * Everything a program holds comes from its own chunked bump arena (freed in
 * one call by ir_program_free), except region node arrays, which grow with
 * realloc and are freed by walking the functions. Allocation failure never
 * aborts: it sets p->oom and the helpers return NULL / false.
 */
#include "ir/ir.h"

#include <stdlib.h>
#include <string.h>

struct IrArenaChunk {
    IrArenaChunk *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
};

#define CHUNK_BYTES (64u * 1024u)

void *ir_alloc(IrProgram *p, size_t n)
{
    if (n > ((size_t)1 << 30)) {
        p->oom = true;
        return NULL;
    }
    n = (n + 15) & ~(size_t)15;
    IrArenaChunk *c = p->arena;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > CHUNK_BYTES ? n : CHUNK_BYTES;
        c = malloc(sizeof *c + cap);
        if (!c) {
            p->oom = true;
            return NULL;
        }
        c->used = 0;
        c->cap = cap;
        c->next = p->arena;
        p->arena = c;
    }
    void *r = c->data + c->used;
    c->used += n;
    memset(r, 0, n);
    return r;
}

const char *ir_strdup(IrProgram *p, const char *s, size_t len)
{
    char *r = ir_alloc(p, len + 1);
    if (!r)
        return NULL;
    if (len)
        memcpy(r, s, len);
    r[len] = 0;
    return r;
}

static IrType *prim(IrProgram *p, IrTyKind k)
{
    IrType *t = ir_alloc(p, sizeof *t);
    if (t)
        t->kind = k;
    return t;
}

IrProgram *ir_program_new(void)
{
    IrProgram *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->main = -1;
    p->next_group = 1;
    p->t_void = prim(p, IR_TY_VOID);
    p->t_str = prim(p, IR_TY_STR);
    p->t_int = prim(p, IR_TY_INT);
    p->t_float = prim(p, IR_TY_FLOAT);
    p->t_bool = prim(p, IR_TY_BOOL);
    /* meta(NAME): docs/language.md section 5.5 */
    IrType *m = ir_type_record(p, "meta", 5);
    if (m) {
        IrField *f = (IrField *)m->fields;
        f[0] = (IrField){"prompt_tokens", p->t_int};
        f[1] = (IrField){"completion_tokens", p->t_int};
        f[2] = (IrField){"cached_tokens", p->t_int};
        f[3] = (IrField){"finish_reason", p->t_str};
        f[4] = (IrField){"logprob", p->t_float};
    }
    p->t_meta = m;
    if (p->oom) {
        ir_program_free(p);
        return NULL;
    }
    return p;
}

static void free_region(IrRegion *r)
{
    for (uint32_t i = 0; i < r->n; i++)
        for (uint32_t k = 0; k < r->nodes[i]->n_regions; k++)
            free_region(&r->nodes[i]->regions[k]);
    free(r->nodes);
    r->nodes = NULL;
    r->n = r->cap = 0;
}

static void free_fsms(IrProgram *p, IrRegion *r)
{
    for (uint32_t i = 0; i < r->n; i++) {
        IrNode *n = r->nodes[i];
        if (n->gen && n->gen->con.fsm) {
            p->fsm_free(n->gen->con.fsm);
            n->gen->con.fsm = NULL;
        }
        for (uint32_t k = 0; k < n->n_regions; k++)
            free_fsms(p, &n->regions[k]);
    }
}

void ir_program_free(IrProgram *p)
{
    if (!p)
        return;
    for (uint32_t i = 0; i <= p->n_funcs; i++) {
        IrFunc *f = i < p->n_funcs ? p->funcs[i] : p->init;
        if (!f)
            continue;
        if (p->fsm_free)
            free_fsms(p, &f->body);
        free_region(&f->body);
    }
    free(p->funcs);
    free(p->externs);
    free(p->types);
    while (p->arena) {
        IrArenaChunk *n = p->arena->next;
        free(p->arena);
        p->arena = n;
    }
    free(p);
}

static bool add_type(IrProgram *p, IrType *t)
{
    if (p->n_types == p->cap_types) {
        uint32_t cap = p->cap_types ? p->cap_types * 2 : 16;
        IrType **a = realloc(p->types, cap * sizeof *a);
        if (!a) {
            p->oom = true;
            return false;
        }
        p->types = a;
        p->cap_types = cap;
    }
    p->types[p->n_types++] = t;
    return true;
}

const IrType *ir_type_list(IrProgram *p, const IrType *elem)
{
    if (!elem)
        return NULL;
    for (uint32_t i = 0; i < p->n_types; i++)
        if (p->types[i]->kind == IR_TY_LIST && p->types[i]->elem == elem)
            return p->types[i];
    IrType *t = prim(p, IR_TY_LIST);
    if (!t)
        return NULL;
    t->elem = elem;
    return add_type(p, t) ? t : NULL;
}

IrType *ir_type_record(IrProgram *p, const char *name, uint32_t n_fields)
{
    IrType *t = prim(p, IR_TY_RECORD);
    if (!t)
        return NULL;
    t->name = ir_strdup(p, name, strlen(name));
    t->n_fields = n_fields;
    t->fields = ir_alloc(p, (n_fields ? n_fields : 1) * sizeof(IrField));
    if (!t->name || !t->fields || !add_type(p, t))
        return NULL;
    return t;
}

IrFunc *ir_func_new(IrProgram *p, const char *name, uint32_t n_params, uint32_t n_slots)
{
    if (p->n_funcs + p->n_externs >= IR_MAX_FUNCS) {
        p->oom = true;
        return NULL;
    }
    IrFunc *f = ir_alloc(p, sizeof *f);
    if (!f)
        return NULL;
    f->name = ir_strdup(p, name, strlen(name));
    f->n_params = n_params;
    f->n_slots = n_slots;
    f->slots = ir_alloc(p, (n_slots ? n_slots : 1) * sizeof *f->slots);
    f->cap_slots = n_slots ? n_slots : 1;
    f->ret = p->t_void;
    if (!f->name || !f->slots)
        return NULL;
    if (p->n_funcs == p->cap_funcs) {
        uint32_t cap = p->cap_funcs ? p->cap_funcs * 2 : 8;
        IrFunc **a = realloc(p->funcs, cap * sizeof *a);
        if (!a) {
            p->oom = true;
            return NULL;
        }
        p->funcs = a;
        p->cap_funcs = cap;
    }
    p->funcs[p->n_funcs++] = f;
    return f;
}

uint32_t ir_extern_add(IrProgram *p, const IrExtern *e)
{
    if (p->n_funcs + p->n_externs >= IR_MAX_FUNCS) {
        p->oom = true;
        return UINT32_MAX;
    }
    if (p->n_externs == p->cap_externs) {
        uint32_t cap = p->cap_externs ? p->cap_externs * 2 : 4;
        IrExtern *a = realloc(p->externs, cap * sizeof *a);
        if (!a) {
            p->oom = true;
            return UINT32_MAX;
        }
        p->externs = a;
        p->cap_externs = cap;
    }
    p->externs[p->n_externs] = *e;
    return p->n_externs++;
}

uint32_t ir_slot_add(IrProgram *p, IrFunc *f, const char *name, const IrType *t, IrSlotKind k)
{
    if (f->n_slots >= f->cap_slots) {      /* doubling: amortized O(1) per slot */
        uint32_t cap = f->cap_slots ? f->cap_slots * 2 : 4;
        IrSlot *s = ir_alloc(p, (size_t)cap * sizeof *s);
        if (!s)
            return IR_NO_SLOT;
        memcpy(s, f->slots, f->n_slots * sizeof *s);
        f->slots = s;
        f->cap_slots = cap;
    }
    f->slots[f->n_slots] = (IrSlot){ir_strdup(p, name, strlen(name)), t, k};
    return f->n_slots++;
}

IrNode *ir_node_new(IrProgram *p, IrFunc *f, IrOp op, const IrType *type, uint32_t n_args,
                    uint32_t n_regions, IrLoc loc)
{
    if (p->n_nodes >= IR_MAX_NODES) {
        p->oom = true;
        return NULL;
    }
    IrNode *n = ir_alloc(p, sizeof *n);
    if (!n)
        return NULL;
    n->op = op;
    n->id = f->n_ids++;
    n->type = type;
    n->loc = loc;
    n->slot = IR_NO_SLOT;
    n->n_args = n_args;
    n->n_regions = n_regions;
    if (n_args && !(n->args = ir_alloc(p, n_args * sizeof *n->args)))
        return NULL;
    if (n_regions && !(n->regions = ir_alloc(p, n_regions * sizeof *n->regions)))
        return NULL;
    p->n_nodes++;
    return n;
}

bool ir_region_insert(IrProgram *p, IrRegion *r, uint32_t at, IrNode *n)
{
    if (!n || at > r->n)
        return false;
    if (r->n == r->cap) {
        uint32_t cap = r->cap ? r->cap * 2 : 8;
        IrNode **a = realloc(r->nodes, cap * sizeof *a);
        if (!a) {
            p->oom = true;
            return false;
        }
        r->nodes = a;
        r->cap = cap;
    }
    memmove(r->nodes + at + 1, r->nodes + at, (r->n - at) * sizeof *r->nodes);
    r->nodes[at] = n;
    r->n++;
    return true;
}

bool ir_region_push(IrProgram *p, IrRegion *r, IrNode *n)
{
    return ir_region_insert(p, r, r->n, n);
}

void ir_region_remove(IrRegion *r, uint32_t at)
{
    if (at >= r->n)
        return;
    memmove(r->nodes + at, r->nodes + at + 1, (r->n - at - 1) * sizeof *r->nodes);
    r->n--;
}

IrConst *ir_const_new(IrProgram *p, const IrType *t)
{
    IrConst *c = ir_alloc(p, sizeof *c);
    if (c)
        c->type = t;
    return c;
}

/* ------------------------------------------------------------ queries */

bool ir_has_value(const IrNode *n)
{
    return n->type && n->type->kind != IR_TY_VOID;
}

bool ir_op_touches_state(IrOp op)
{
    switch (op) {
    case IR_OP_TEXT: case IR_OP_APPEND: case IR_OP_GEN: case IR_OP_SELECT:
    case IR_OP_ROLE_BEGIN: case IR_OP_ROLE_END: case IR_OP_CAPTURE_BEGIN:
    case IR_OP_CAPTURE_END: case IR_OP_FORK: case IR_OP_PREFILL:
        return true;
    default:
        return false;
    }
}

bool ir_op_is_terminator(IrOp op)
{
    return op == IR_OP_BREAK || op == IR_OP_CONTINUE || op == IR_OP_RETURN;
}

static const char *const op_names[] = {  /* ORDER IR_OP */
    "CONST", "LOAD", "STORE", "UNOP", "BINOP", "CONCAT", "LIST", "RECORD", "INDEX", "FIELD",
    "SET_INDEX", "SET_FIELD", "BUILTIN", "META", "TEXT", "APPEND", "GEN", "SELECT",
    "ROLE_BEGIN", "ROLE_END", "CAPTURE_BEGIN", "CAPTURE_END", "CALL", "AWAIT", "EXTERN_CALL",
    "IF", "FOR", "WHILE", "BREAK", "CONTINUE", "RETURN", "FORK", "PREFILL",
};
_Static_assert(sizeof op_names / sizeof op_names[0] == IR_OP_COUNT_, "op_names");

static const char *const arith_names[] = {  /* ORDER IR_ARITH */
    "add", "sub", "mul", "div", "mod", "eq", "ne", "lt", "le", "gt", "ge", "and", "or",
    "not", "neg",
};
_Static_assert(sizeof arith_names / sizeof arith_names[0] == IR_ARITH_COUNT_, "arith_names");

static const char *const builtin_names[] = {  /* ORDER IR_BI */
    "len", "strip", "lower", "upper", "split", "join", "replace", "contains", "find", "index",
    "slice", "append", "range", "format", "parse_int", "parse_float", "parse_json",
    "to_json", "str", "int", "float", "min", "max", "abs",
};
_Static_assert(sizeof builtin_names / sizeof builtin_names[0] == IR_BI_COUNT_, "builtins");

static const char *const gen_key_names[] = {  /* ORDER IR_GEN_KEY */
    "max_tokens", "min_tokens", "stop", "stop_token_ids", "temperature", "top_p", "top_k",
    "min_p", "frequency_penalty", "presence_penalty", "repetition_penalty", "ignore_eos",
    "seed", "n",
};
_Static_assert(sizeof gen_key_names / sizeof gen_key_names[0] == IR_GEN_KEY_COUNT_, "keys");

const char *ir_op_name(IrOp op)
{
    return (unsigned)op < IR_OP_COUNT_ ? op_names[op] : "?";
}

const char *ir_arith_name(IrArith a)
{
    return (unsigned)a < IR_ARITH_COUNT_ ? arith_names[a] : "?";
}

const char *ir_builtin_name(IrBuiltin b)
{
    return (unsigned)b < IR_BI_COUNT_ ? builtin_names[b] : "?";
}

int ir_builtin_find(const char *name)
{
    for (int i = 0; i < IR_BI_COUNT_; i++)
        if (strcmp(name, builtin_names[i]) == 0)
            return i;
    return -1;
}

const char *ir_gen_key_name(IrGenKey k)
{
    return (unsigned)k < IR_GEN_KEY_COUNT_ ? gen_key_names[k] : "?";
}

const char *ir_role_name(IrRole r)
{
    switch (r) {
    case IR_ROLE_SYSTEM: return "system";
    case IR_ROLE_USER: return "user";
    case IR_ROLE_ASSISTANT: return "assistant";
    }
    return "?";
}

const char *ir_select_method_name(IrSelectMethod m)
{
    switch (m) {
    case IR_SEL_TOKEN_LENGTH_NORMALIZED: return "token_length_normalized";
    case IR_SEL_GREEDY_TOKEN: return "greedy_token";
    case IR_SEL_UNCONDITIONAL_LIKELIHOOD_NORMALIZED: return "unconditional_likelihood_normalized";
    }
    return "?";
}

/* Writes into buf[*at..cap) and advances *at (truncating safely). */
static void put(char *buf, size_t cap, size_t *at, const char *s)
{
    while (*s && *at + 1 < cap)
        buf[(*at)++] = *s++;
    buf[*at < cap ? *at : cap - 1] = 0;
}

static void type_name_rec(const IrType *t, char *buf, size_t cap, size_t *at, int depth)
{
    static const char *const names[] = {"void", "str", "int", "float", "bool", "list",
                                        "record"};  /* ORDER IR_TY */
    _Static_assert(sizeof names / sizeof names[0] == IR_TY_COUNT_, "type names");
    if (!t || (unsigned)t->kind >= IR_TY_COUNT_) {
        put(buf, cap, at, "?");
    } else if (t->kind == IR_TY_LIST && depth < 64) {
        put(buf, cap, at, "list[");
        type_name_rec(t->elem, buf, cap, at, depth + 1);
        put(buf, cap, at, "]");
    } else if (t->kind == IR_TY_RECORD && t->name) {
        put(buf, cap, at, t->name);
    } else {
        put(buf, cap, at, names[t->kind]);
    }
}

const char *ir_type_name(const IrType *t, char *buf, size_t cap)
{
    size_t at = 0;
    if (cap == 0)
        return buf;
    buf[0] = 0;
    type_name_rec(t, buf, cap, &at, 0);
    return buf;
}

bool ir_const_equal(const IrConst *a, const IrConst *b)
{
    if (a == b)
        return true;
    if (!a || !b || a->type != b->type || !a->type)
        return false;
    switch (a->type->kind) {
    case IR_TY_STR: return a->len == b->len && memcmp(a->s, b->s, a->len) == 0;
    case IR_TY_INT: return a->i == b->i;
    case IR_TY_FLOAT: return a->f == b->f;
    case IR_TY_BOOL: return a->b == b->b;
    case IR_TY_LIST:
    case IR_TY_RECORD:
        if (a->n_items != b->n_items)
            return false;
        for (uint32_t i = 0; i < a->n_items; i++)
            if (!ir_const_equal(a->items[i], b->items[i]))
                return false;
        return true;
    default: return true;
    }
}

/* pass_fold.c -- constant folding and string interpolation simplification.
 *
 * Per function, in one walk of the region tree:
 *  1. a node whose operands are all constants and whose op cannot fail is
 *     rewritten in place into a CONST (same id and type, so its uses need no
 *     rewriting): BINOP/UNOP on int/bool/str (int overflow and /0 stay for
 *     the run time to report), CONCAT of str/int/bool, FIELD/INDEX (in range)
 *     of constant records/lists, LIST/RECORD of constants, len/str;
 *  2. CONCAT operands: nested CONCATs flattened, adjacent constant texts
 *     merged, empty texts dropped; a CONCAT of a single str is that str;
 *  3. an IF on a constant condition is replaced by the taken region;
 *  4. adjacent APPENDs of constant text are merged into one APPEND, and
 *     APPEND "" is removed;
 *  5. CONST/LOAD/CONCAT/LIST/RECORD/FIELD nodes nobody uses are removed.
 * Also home of the shared evaluator (pass_int.h).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/pass.h"
#include "ir/pass_int.h"

/* ------------------------------------------------------------ evaluator */

IrConst *ir_const_str2(IrProgram *p, const char *a, uint32_t alen, const char *b,
                       uint32_t blen)
{
    if ((uint64_t)alen + blen > IR_FOLD_MAX_TEXT)
        return NULL;
    char *s = ir_alloc(p, (size_t)alen + blen + 1);
    IrConst *c = ir_const_new(p, p->t_str);
    if (!s || !c)
        return NULL;
    if (alen)
        memcpy(s, a, alen);
    if (blen)
        memcpy(s + alen, b, blen);
    c->s = s;
    c->len = alen + blen;
    return c;
}

bool ir_const_text(IrProgram *p, const IrConst *c, const char **s, uint32_t *len)
{
    if (!c || !c->type)
        return false;
    char buf[32];
    switch (c->type->kind) {
    case IR_TY_STR:
        *s = c->s ? c->s : "";
        *len = c->len;
        return true;
    case IR_TY_INT:
        snprintf(buf, sizeof buf, "%" PRId64, c->i);
        break;
    case IR_TY_BOOL:
        snprintf(buf, sizeof buf, "%s", c->b ? "true" : "false");
        break;
    default:
        return false;
    }
    *len = (uint32_t)strlen(buf);
    *s = ir_strdup(p, buf, *len);
    return *s != NULL;
}

static IrConst *mk(IrProgram *p, const IrType *t)
{
    return ir_const_new(p, t);
}

static const IrConst *fold_binop(IrProgram *p, const IrNode *n, const IrConst *a,
                                 const IrConst *b)
{
    const IrType *t = a->type;
    IrConst *r = NULL;
    int cmp;
    if (!t || t != b->type)
        return NULL;
    IrArith op = (IrArith)n->aop;
    if (op == IR_ARITH_EQ || op == IR_ARITH_NE) {
        if (t->kind == IR_TY_FLOAT)
            return NULL;           /* NaN rules: leave to the executor */
        if (!(r = mk(p, p->t_bool)))
            return NULL;
        r->b = ir_const_equal(a, b) == (op == IR_ARITH_EQ);
        return r;
    }
    switch (t->kind) {
    case IR_TY_INT: {
        int64_t x = a->i, y = b->i, z = 0;
        bool ok = true;
        switch (op) {
        case IR_ARITH_ADD: ok = !__builtin_add_overflow(x, y, &z); break;
        case IR_ARITH_SUB: ok = !__builtin_sub_overflow(x, y, &z); break;
        case IR_ARITH_MUL: ok = !__builtin_mul_overflow(x, y, &z); break;
        case IR_ARITH_DIV: case IR_ARITH_MOD:
            if (y == 0 || (x == INT64_MIN && y == -1))
                return NULL;
            z = op == IR_ARITH_DIV ? x / y : x % y;
            break;
        case IR_ARITH_LT: case IR_ARITH_LE: case IR_ARITH_GT: case IR_ARITH_GE:
            cmp = x < y ? -1 : x > y;
            goto compare;
        default: return NULL;
        }
        if (!ok || !(r = mk(p, p->t_int)))
            return NULL;
        r->i = z;
        return r;
    }
    case IR_TY_BOOL:
        if (op != IR_ARITH_AND && op != IR_ARITH_OR)
            return NULL;
        if (!(r = mk(p, p->t_bool)))
            return NULL;
        r->b = op == IR_ARITH_AND ? (a->b && b->b) : (a->b || b->b);
        return r;
    case IR_TY_STR:
        if (op == IR_ARITH_ADD)
            return ir_const_str2(p, a->s, a->len, b->s, b->len);
        if (op < IR_ARITH_LT || op > IR_ARITH_GE)
            return NULL;
        cmp = memcmp(a->s, b->s, a->len < b->len ? a->len : b->len);
        if (cmp == 0)
            cmp = a->len < b->len ? -1 : a->len > b->len;
        goto compare;
    default:
        return NULL;
    }
compare:
    if (!(r = mk(p, p->t_bool)))
        return NULL;
    r->b = op == IR_ARITH_LT ? cmp < 0 : op == IR_ARITH_LE ? cmp <= 0
           : op == IR_ARITH_GT ? cmp > 0 : cmp >= 0;
    return r;
}

static uint32_t utf8_len(const char *s, uint32_t len)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < len; i++)
        n += ((unsigned char)s[i] & 0xC0) != 0x80;
    return n;
}

const IrConst *ir_fold_eval(IrProgram *p, const IrNode *n, const IrConst *const *v)
{
    IrConst *r;
    switch (n->op) {
    case IR_OP_CONST:
        return n->cnst;
    case IR_OP_BINOP:
        return n->n_args == 2 ? fold_binop(p, n, v[0], v[1]) : NULL;
    case IR_OP_UNOP:
        if (n->n_args != 1 || !v[0]->type)
            return NULL;
        if (n->aop == IR_ARITH_NOT && v[0]->type->kind == IR_TY_BOOL) {
            if ((r = mk(p, p->t_bool)))
                r->b = !v[0]->b;
            return r;
        }
        if (n->aop == IR_ARITH_NEG && v[0]->type->kind == IR_TY_INT && v[0]->i != INT64_MIN) {
            if ((r = mk(p, p->t_int)))
                r->i = -v[0]->i;
            return r;
        }
        return NULL;
    case IR_OP_CONCAT: {
        const IrConst *acc = NULL;
        for (uint32_t i = 0; i < n->n_args; i++) {
            const char *s;
            uint32_t len;
            if (!ir_const_text(p, v[i], &s, &len))
                return NULL;
            acc = acc ? ir_const_str2(p, acc->s, acc->len, s, len) : ir_const_str2(p, s, len,
                                                                                    "", 0);
            if (!acc)
                return NULL;
        }
        return acc ? acc : ir_const_str2(p, "", 0, "", 0);
    }
    case IR_OP_FIELD:
        if (n->n_args == 1 && v[0]->type == n->args[0]->type && n->index < v[0]->n_items)
            return v[0]->items[n->index];
        return NULL;
    case IR_OP_INDEX:
        if (n->n_args == 2 && v[1]->i >= 0 && (uint64_t)v[1]->i < v[0]->n_items)
            return v[0]->items[v[1]->i];
        return NULL;
    case IR_OP_LIST:
    case IR_OP_RECORD: {
        if (!(r = mk(p, n->type)))
            return NULL;
        const IrConst **items = ir_alloc(p, (n->n_args ? n->n_args : 1) * sizeof *items);
        if (!items)
            return NULL;
        for (uint32_t i = 0; i < n->n_args; i++)
            items[i] = v[i];
        r->items = items;
        r->n_items = n->n_args;
        return r;
    }
    case IR_OP_BUILTIN:
        if (n->aop == IR_BI_LEN && n->n_args == 1 && v[0]->type) {
            if (!(r = mk(p, p->t_int)))
                return NULL;
            r->i = v[0]->type->kind == IR_TY_STR ? utf8_len(v[0]->s, v[0]->len) : v[0]->n_items;
            return r;
        }
        if (n->aop == IR_BI_FLOAT && n->n_args == 1 && v[0]->type == p->t_int &&
            v[0]->i >= -(INT64_C(1) << 53) && v[0]->i <= (INT64_C(1) << 53)) {
            if ((r = mk(p, p->t_float)))   /* exact: |i| <= 2^53 */
                r->f = (double)v[0]->i;
            return r;
        }
        if (n->aop == IR_BI_STR && n->n_args == 1) {
            const char *s;
            uint32_t len;
            return ir_const_text(p, v[0], &s, &len) ? ir_const_str2(p, s, len, "", 0) : NULL;
        }
        return NULL;
    default:
        return NULL;
    }
}

bool ir_node_uses(const IrNode *n, const IrNode *def)
{
    for (uint32_t i = 0; i < n->n_args; i++)
        if (n->args[i] == def)
            return true;
    for (uint32_t k = 0; k < n->n_regions; k++)
        for (uint32_t i = 0; i < n->regions[k].n; i++)
            if (ir_node_uses(n->regions[k].nodes[i], def))
                return true;
    return false;
}

bool ir_node_exits(const IrNode *n)
{
    if (ir_op_is_terminator(n->op))
        return true;
    for (uint32_t k = 0; k < n->n_regions; k++)
        for (uint32_t i = 0; i < n->regions[k].n; i++)
            if (ir_node_exits(n->regions[k].nodes[i]))
                return true;
    return false;
}

void ir_replace_uses(IrRegion *r, uint32_t from, const IrNode *old, IrNode *new)
{
    for (uint32_t i = from; i < r->n; i++) {
        IrNode *n = r->nodes[i];
        for (uint32_t a = 0; a < n->n_args; a++)
            if (n->args[a] == old)
                n->args[a] = new;
        for (uint32_t k = 0; k < n->n_regions; k++)
            ir_replace_uses(&n->regions[k], 0, old, new);
    }
}

/* ------------------------------------------------------------ the pass */

typedef struct {
    IrProgram *p;
    IrFunc *f;
    uint32_t *n_uses;         /* by node id */
} Fold;

static void count_uses(Fold *F, const IrRegion *r)
{
    for (uint32_t i = 0; i < r->n; i++) {
        const IrNode *n = r->nodes[i];
        for (uint32_t a = 0; a < n->n_args; a++)
            if (n->args[a] && n->args[a]->id < F->f->n_ids)
                F->n_uses[n->args[a]->id]++;
        for (uint32_t k = 0; k < n->n_regions; k++)
            count_uses(F, &n->regions[k]);
        /* a WHILE reads the last value of its condition region */
        if (n->op == IR_OP_WHILE && n->n_regions == 2 && n->regions[0].n)
            F->n_uses[n->regions[0].nodes[n->regions[0].n - 1]->id]++;
    }
}

static bool is_text(const IrNode *n)
{
    return n && n->op == IR_OP_CONST && n->type && n->type->kind == IR_TY_STR;
}

/* CONCAT operand list: flatten, merge constant neighbours, drop "". New
 * CONST nodes are created for merged texts (not placed in a region: they
 * are inserted right before the CONCAT by the caller). */
static bool simplify_concat(Fold *F, IrRegion *r, uint32_t *at, IrNode *n)
{
    IrProgram *p = F->p;
    uint32_t cap = n->n_args;
    for (uint32_t i = 0; i < n->n_args; i++)
        if (n->args[i]->op == IR_OP_CONCAT)
            cap += n->args[i]->n_args;
    IrNode **out = ir_alloc(p, (cap ? cap : 1) * sizeof *out);
    if (!out)
        return false;
    uint32_t m = 0;
    for (uint32_t i = 0; i < n->n_args; i++) {
        IrNode *a = n->args[i];
        uint32_t k_n = a->op == IR_OP_CONCAT ? a->n_args : 1;
        for (uint32_t k = 0; k < k_n; k++) {
            IrNode *x = a->op == IR_OP_CONCAT ? a->args[k] : a;
            if (is_text(x) && x->cnst->len == 0)
                continue;
            if (is_text(x) && m > 0 && is_text(out[m - 1])) {
                const IrConst *c0 = out[m - 1]->cnst;
                IrConst *c = ir_const_str2(p, c0->s, c0->len, x->cnst->s, x->cnst->len);
                if (!c)
                    return !p->oom;
                IrNode *nc = ir_node_new(p, F->f, IR_OP_CONST, p->t_str, 0, 0, x->loc);
                if (!nc || !ir_region_insert(p, r, *at, nc))
                    return false;
                nc->cnst = c;
                (*at)++;
                out[m - 1] = nc;
                continue;
            }
            out[m++] = x;
        }
    }
    n->args = out;
    n->n_args = m;
    return true;
}

static bool fold_region(Fold *F, IrRegion *r);

static bool fold_node(Fold *F, IrRegion *r, uint32_t *at)
{
    IrProgram *p = F->p;
    IrNode *n = r->nodes[*at];
    for (uint32_t k = 0; k < n->n_regions; k++)
        if (!fold_region(F, &n->regions[k]))
            return false;
    if (n->op == IR_OP_CONCAT && !simplify_concat(F, r, at, n))
        return false;
    /* all-constant operands: fold in place */
    bool all_const = n->op != IR_OP_CONST && ir_has_value(n);
    const IrConst *vals[64];
    for (uint32_t i = 0; all_const && i < n->n_args; i++) {
        if (i >= 64 || n->args[i]->op != IR_OP_CONST)
            all_const = false;
        else
            vals[i] = n->args[i]->cnst;
    }
    if (all_const) {
        const IrConst *c = ir_fold_eval(p, n, vals);
        if (c && c->type == n->type) {
            n->op = IR_OP_CONST;
            n->cnst = c;
            n->n_args = 0;
            n->aop = 0;
            return true;
        }
    }
    if (n->op == IR_OP_CONCAT && n->n_args == 1 && n->args[0]->type == p->t_str) {
        /* CONCAT(x) == x: make later users read x */
        ir_replace_uses(r, *at + 1, n, n->args[0]);
    }
    return true;
}

/* Frees the node arrays of a region that left the program. */
static void free_region(IrRegion *r)
{
    for (uint32_t i = 0; i < r->n; i++)
        for (uint32_t k = 0; k < r->nodes[i]->n_regions; k++)
            free_region(&r->nodes[i]->regions[k]);
    free(r->nodes);
    *r = (IrRegion){0};
}

/* Removes r->nodes[at] (an IF on a constant) and splices the taken region in. */
static bool inline_if(Fold *F, IrRegion *r, uint32_t at)
{
    IrNode *n = r->nodes[at];
    IrRegion *taken = &n->regions[n->args[0]->cnst->b ? 0 : 1];
    ir_region_remove(r, at);
    for (uint32_t i = 0; i < taken->n; i++)
        if (!ir_region_insert(F->p, r, at + i, taken->nodes[i]))
            return false;
    free(taken->nodes);
    *taken = (IrRegion){0};
    free_region(&n->regions[n->args[0]->cnst->b ? 1 : 0]);   /* the dropped branch */
    return true;
}

static bool fold_region(Fold *F, IrRegion *r)
{
    for (uint32_t i = 0; i < r->n; i++) {
        IrNode *n = r->nodes[i];
        if (n->op == IR_OP_IF && n->args[0] && n->args[0]->op == IR_OP_CONST) {
            if (!inline_if(F, r, i))
                return false;
            i--;               /* revisit the first spliced node (wraps at 0, then ++) */
            continue;
        }
        if (!fold_node(F, r, &i))
            return false;
    }
    return true;
}

/* Step 4: merge APPEND(const) APPEND(const) and drop APPEND "" */
static bool merge_appends(Fold *F, IrRegion *r)
{
    IrProgram *p = F->p;
    for (uint32_t i = 0; i < r->n; i++) {
        IrNode *n = r->nodes[i];
        for (uint32_t k = 0; k < n->n_regions; k++)
            if (!merge_appends(F, &n->regions[k]))
                return false;
        if (n->op != IR_OP_APPEND || !is_text(n->args[0]))
            continue;
        if (n->args[0]->cnst->len == 0) {
            ir_region_remove(r, i--);
            continue;
        }
        /* find the previous APPEND of a constant, skipping only pure nodes */
        for (uint32_t j = i; j-- > 0;) {
            IrNode *m = r->nodes[j];
            if (m->op == IR_OP_APPEND && is_text(m->args[0])) {
                const IrConst *a = m->args[0]->cnst, *b = n->args[0]->cnst;
                IrConst *c = ir_const_str2(p, a->s, a->len, b->s, b->len);
                if (!c)
                    return !p->oom;
                IrNode *nc = ir_node_new(p, F->f, IR_OP_CONST, p->t_str, 0, 0, m->args[0]->loc);
                if (!nc || !ir_region_insert(p, r, j, nc))
                    return false;
                nc->cnst = c;
                m->args[0] = nc;       /* m moved to j + 1 */
                ir_region_remove(r, i + 1);
                i--;
                break;
            }
            if (m->op != IR_OP_CONST && m->op != IR_OP_LOAD)
                break;
        }
    }
    return true;
}

static bool removable(const IrNode *n)
{
    switch (n->op) {
    case IR_OP_CONST: case IR_OP_LOAD: case IR_OP_CONCAT: case IR_OP_LIST:
    case IR_OP_RECORD: case IR_OP_FIELD:
        return true;
    default:
        return false;
    }
}

/* Step 5: repeat until nothing changes (a removed CONCAT frees its operands). */
static bool sweep(Fold *F, IrRegion *r)
{
    bool changed = false;
    for (uint32_t i = r->n; i-- > 0;) {
        IrNode *n = r->nodes[i];
        for (uint32_t k = 0; k < n->n_regions; k++)
            changed |= sweep(F, &n->regions[k]);
        if (removable(n) && F->n_uses[n->id] == 0) {
            for (uint32_t a = 0; a < n->n_args; a++)
                F->n_uses[n->args[a]->id]--;
            ir_region_remove(r, i);
            changed = true;
        }
    }
    return changed;
}

static bool fold_func(IrProgram *p, IrFunc *f)
{
    Fold F = {p, f, NULL};
    if (!fold_region(&F, &f->body) || !merge_appends(&F, &f->body))
        return false;
    /* the WHILE condition region's last value is used by its WHILE: keep it */
    F.n_uses = calloc(f->n_ids ? f->n_ids : 1, sizeof *F.n_uses);
    if (!F.n_uses) {
        p->oom = true;
        return false;
    }
    count_uses(&F, &f->body);
    while (sweep(&F, &f->body))
        ;
    free(F.n_uses);
    return true;
}

bool ir_pass_fold(IrProgram *p)
{
    for (uint32_t i = 0; i < p->n_funcs; i++)
        if (!fold_func(p, p->funcs[i]))
            return false;
    return !p->oom;
}

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

/* Every step below rebuilds a region into a fresh node array in one sweep
 * (no insert/remove in the middle), so the pass is linear in the program
 * size, whatever the input. */

typedef struct {
    IrProgram *p;
    IrFunc *f;
    uint32_t *n_uses;         /* by node id (sweep) */
    IrNode **fwd;             /* by node id: CONCAT(x) forwarded to x */
    uint32_t n_fwd;           /* ids below this have a fwd entry (older nodes) */
} Fold;

static IrNode *fwd_of(const Fold *F, const IrNode *n)
{
    return n && n->id < F->n_fwd ? F->fwd[n->id] : NULL;
}

static bool push(Fold *F, IrRegion *out, IrNode *n)
{
    return ir_region_push(F->p, out, n);
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

static bool is_text(const IrNode *n)
{
    return n && n->op == IR_OP_CONST && n->type && n->type->kind == IR_TY_STR;
}

static IrNode *new_text(Fold *F, const char *s, uint32_t len, IrLoc loc)
{
    IrConst *c = ir_const_str2(F->p, s, len, "", 0);
    IrNode *n = c ? ir_node_new(F->p, F->f, IR_OP_CONST, F->p->t_str, 0, 0, loc) : NULL;
    if (n)
        n->cnst = c;
    return n;
}

/* Growable text buffer for merging runs of constant text. */
typedef struct { char *s; uint32_t len, cap; bool over; } Buf;

static bool buf_add(Fold *F, Buf *b, const char *s, uint32_t len)
{
    if ((uint64_t)b->len + len > IR_FOLD_MAX_TEXT) {
        b->over = true;
        return true;
    }
    if (b->len + len + 1 > b->cap) {
        uint32_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + len + 1)
            cap *= 2;
        char *a = realloc(b->s, cap);
        if (!a) {
            F->p->oom = true;
            return false;
        }
        b->s = a;
        b->cap = cap;
    }
    if (len)
        memcpy(b->s + b->len, s, len);
    b->len += len;
    return true;
}

/* CONCAT operands: flatten nested CONCATs, merge constant neighbours into
 * new CONST nodes (pushed to `out` before the CONCAT), drop "". */
static bool simplify_concat(Fold *F, IrRegion *out, IrNode *n)
{
    IrProgram *p = F->p;
    uint32_t cap = n->n_args;
    for (uint32_t i = 0; i < n->n_args; i++)
        if (n->args[i]->op == IR_OP_CONCAT)
            cap += n->args[i]->n_args;
    IrNode **res = ir_alloc(p, (cap ? cap : 1) * sizeof *res);
    if (!res)
        return false;
    uint32_t m = 0, run = 0;     /* run: constant texts at the end of res */
    Buf b = {0};
    bool ok = true;
    for (uint32_t i = 0; ok && i <= n->n_args; i++) {
        IrNode *a = i < n->n_args ? n->args[i] : NULL;
        uint32_t k_n = a && a->op == IR_OP_CONCAT ? a->n_args : 1;
        for (uint32_t k = 0; ok && k < k_n; k++) {
            IrNode *x = !a ? NULL : a->op == IR_OP_CONCAT ? a->args[k] : a;
            if (x && is_text(x)) {
                if (x->cnst->len)
                    res[m + run++] = x;
                continue;
            }
            if (run > 1) {          /* merge res[m..m+run) into one constant */
                b.len = 0;
                for (uint32_t j = 0; ok && j < run; j++)
                    ok = buf_add(F, &b, res[m + j]->cnst->s, res[m + j]->cnst->len);
                IrNode *nc = ok && !b.over ? new_text(F, b.s ? b.s : "", b.len, res[m]->loc)
                                           : NULL;
                if (nc && push(F, out, nc)) {
                    res[m++] = nc;
                } else {
                    ok = ok && !p->oom;   /* over the limit: keep them apart */
                    m += run;
                }
            } else {
                m += run;
            }
            run = 0;
            if (x)
                res[m++] = x;
        }
    }
    free(b.s);
    if (!ok)
        return false;
    n->args = res;
    n->n_args = m;
    return true;
}

static bool fold_region(Fold *F, IrRegion *r);

/* Folds n (its regions first) and appends it to out. */
static bool fold_node(Fold *F, IrRegion *out, IrNode *n)
{
    IrProgram *p = F->p;
    for (uint32_t a = 0; a < n->n_args; a++)
        if (fwd_of(F, n->args[a]))
            n->args[a] = fwd_of(F, n->args[a]);
    for (uint32_t k = 0; k < n->n_regions; k++)
        if (!fold_region(F, &n->regions[k]))
            return false;
    if (n->op == IR_OP_CONCAT && !simplify_concat(F, out, n))
        return false;
    bool all_const = n->op != IR_OP_CONST && ir_has_value(n) && n->n_args <= 64;
    const IrConst *vals[64];
    for (uint32_t i = 0; all_const && i < n->n_args; i++) {
        if (n->args[i]->op != IR_OP_CONST)
            all_const = false;
        else
            vals[i] = n->args[i]->cnst;
    }
    if (all_const) {
        const IrConst *c = ir_fold_eval(p, n, vals);
        if (c && c->type == n->type) {   /* in place: same id, uses unchanged */
            n->op = IR_OP_CONST;
            n->cnst = c;
            n->n_args = 0;
            n->aop = 0;
        }
    }
    if (n->op == IR_OP_CONCAT && n->n_args == 1 && n->args[0]->type == p->t_str &&
        n->id < F->n_fwd)
        F->fwd[n->id] = n->args[0];       /* CONCAT(x) == x for later users */
    return push(F, out, n);
}

/* Steps 1-3: one sweep building the new node array. */
static bool fold_region(Fold *F, IrRegion *r)
{
    IrRegion out = {0};
    bool ok = true;
    for (uint32_t i = 0; ok && i < r->n; i++) {
        IrNode *n = r->nodes[i];
        if (n->op == IR_OP_IF && n->args[0] && n->args[0]->op == IR_OP_CONST) {
            bool cond = n->args[0]->cnst->b;
            IrRegion *taken = &n->regions[cond ? 0 : 1];
            ok = fold_region(F, taken);
            for (uint32_t k = 0; ok && k < taken->n; k++)
                ok = push(F, &out, taken->nodes[k]);
            free(taken->nodes);
            *taken = (IrRegion){0};
            free_region(&n->regions[cond ? 1 : 0]);   /* the dropped branch */
            continue;
        }
        ok = fold_node(F, &out, n);
    }
    free(r->nodes);
    *r = out;
    return ok;
}

/* Step 4: runs of APPEND(const), separated only by CONST/LOAD nodes, become
 * one APPEND of the merged text at the run's last APPEND; APPEND "" goes. */
static bool merge_appends(Fold *F, IrRegion *r)
{
    IrProgram *p = F->p;
    IrRegion out = {0};
    Buf b = {0};
    int64_t first = -1, last = -1;   /* indices in out of the run's APPENDs */
    uint32_t n_run = 0;
    bool ok = true;
    for (uint32_t i = 0; ok && i <= r->n; i++) {
        IrNode *n = i < r->n ? r->nodes[i] : NULL;
        bool const_append = n && n->op == IR_OP_APPEND && is_text(n->args[0]);
        if (n && !const_append && (n->op == IR_OP_CONST || n->op == IR_OP_LOAD)) {
            ok = push(F, &out, n);
            continue;
        }
        if (const_append && n->args[0]->cnst->len == 0)
            continue;
        if (const_append) {
            if (n_run == 0)
                b.len = 0;
            ok = buf_add(F, &b, n->args[0]->cnst->s, n->args[0]->cnst->len);
            if (n_run == 0)
                first = out.n;
            n_run++;
            last = out.n;
            ok = ok && push(F, &out, n);
            continue;
        }
        /* the run (if any) ends here */
        if (n_run > 1 && !b.over) {
            IrNode *nc = new_text(F, b.s ? b.s : "", b.len, out.nodes[first]->args[0]->loc);
            if (!nc) {
                ok = false;
                break;
            }
            /* keep only the last APPEND, reading nc placed just before it */
            IrNode *keep = out.nodes[last];
            keep->args[0] = nc;
            keep->loc = out.nodes[first]->loc;
            uint32_t w = (uint32_t)first;
            for (uint32_t j = (uint32_t)first; j < out.n; j++) {
                IrNode *m = out.nodes[j];
                if (m->op == IR_OP_APPEND && m != keep)
                    continue;
                if (m == keep)
                    out.nodes[w++] = nc;
                out.nodes[w++] = m;
            }
            out.n = w;
        }
        n_run = 0;
        if (n) {
            for (uint32_t k = 0; ok && k < n->n_regions; k++)
                ok = merge_appends(F, &n->regions[k]);
            ok = ok && push(F, &out, n);
        }
    }
    free(b.s);
    free(r->nodes);
    *r = out;
    return ok && !p->oom;
}

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

/* Step 5: backwards, so a removed CONCAT frees its operands in the same
 * sweep (operands always come before their users). */
static void sweep(Fold *F, IrRegion *r)
{
    uint32_t w = r->n;
    for (uint32_t i = r->n; i-- > 0;) {
        IrNode *n = r->nodes[i];
        if (removable(n) && F->n_uses[n->id] == 0) {
            for (uint32_t a = 0; a < n->n_args; a++)
                F->n_uses[n->args[a]->id]--;
            continue;
        }
        for (uint32_t k = 0; k < n->n_regions; k++)
            sweep(F, &n->regions[k]);
        r->nodes[--w] = n;
    }
    if (w > 0 && w < r->n)
        memmove(r->nodes, r->nodes + w, (r->n - w) * sizeof *r->nodes);
    r->n -= w;
}

static bool fold_func(IrProgram *p, IrFunc *f)
{
    Fold F = {p, f, NULL, NULL, f->n_ids};
    bool ok = false;
    F.fwd = calloc(f->n_ids ? f->n_ids : 1, sizeof *F.fwd);
    if (!F.fwd)
        goto out;
    if (!fold_region(&F, &f->body) || !merge_appends(&F, &f->body))
        goto out;
    /* fold and merge_appends made new nodes: size the use counts now */
    F.n_uses = calloc(f->n_ids ? f->n_ids : 1, sizeof *F.n_uses);
    if (!F.n_uses)
        goto out;
    count_uses(&F, &f->body);
    sweep(&F, &f->body);
    ok = true;
out:
    if (!ok)
        p->oom = true;
    free(F.fwd);
    free(F.n_uses);
    return ok;
}

bool ir_pass_fold(IrProgram *p)
{
    for (uint32_t i = 0; i < p->n_funcs; i++)
        if (!fold_func(p, p->funcs[i]))
            return false;
    return !p->oom;
}

/* pass_prefix_hoist.c -- explicit PREFILLs for prompt text known in advance.
 *
 * SGLang's frontend only precaches a leading constant string longer than 64
 * characters. Here the prefix is found by evaluating the start of a region
 * symbolically (ir_fold_eval on constants and on slots that hold known
 * values), following IFs whose condition is known and unrolling FORs over
 * known lists, so a few-shot loop over a constant list is part of the
 * prefix. The walk stops at the first state op whose text is not known (a
 * GEN, a SELECT, an APPEND of an unknown value -- after taking its known
 * leading CONCAT parts --, a FORK, TEXT) or at control flow it cannot
 * follow (WHILE, unknown IF/FOR, BREAK/CONTINUE/RETURN).
 *  - function prefix: every function reachable from `main` whose prefix is
 *    not empty gets a FRESH PREFILL in IrProgram.init (index = the
 *    function). The executor runs init once at start-up, before main's
 *    arguments are parsed, so every call -- in loops, in forks, in every
 *    --batch instance -- starts on a cached prefix.
 *  - fork prefix: before every FORK, a PREFILL of the current state plus
 *    the branches' common constant prefix (possibly empty: then it warms
 *    the fork-point state itself), so the branches share that KV.
 * The pass only adds PREFILL nodes; results never change.
 */
#include <stdlib.h>
#include <string.h>

#include "ir/pass.h"
#include "ir/pass_int.h"

#define MAX_UNROLL 4096u       /* loop iterations evaluated per prefix */
#define MAX_PREFIX (1u << 20)  /* bytes of one prefix */

/* Per-function scratch, reused by every prefix walk of the function: an
 * entry is valid only when its generation is the walk's (no clearing). */
typedef struct {
    const IrConst **slot, **val;
    uint32_t *sgen, *vgen;
    uint32_t n_slot, n_val, gen;
} Scratch;

typedef struct {
    IrProgram *p;
    const IrFunc *f;
    Scratch *s;
    IrSeg *segs;
    uint32_t n_segs, cap_segs, n_bytes, steps;
    bool stop;
} Pre;

static bool add_seg(Pre *P, IrSegKind k, IrRole role, const char *s, uint32_t len)
{
    if (k == IR_SEG_TEXT && len == 0)
        return true;
    if (k == IR_SEG_TEXT && P->n_bytes + (uint64_t)len > MAX_PREFIX) {
        P->stop = true;
        return true;
    }
    if (k == IR_SEG_TEXT && P->n_segs && P->segs[P->n_segs - 1].kind == IR_SEG_TEXT) {
        IrSeg *last = &P->segs[P->n_segs - 1];
        IrConst *c = ir_const_str2(P->p, last->text, last->len, s, len);
        if (!c)
            return false;
        last->text = c->s;
        last->len = c->len;
        P->n_bytes += len;
        return true;
    }
    if (P->n_segs == P->cap_segs) {
        uint32_t cap = P->cap_segs ? P->cap_segs * 2 : 8;
        IrSeg *a = realloc(P->segs, cap * sizeof *a);
        if (!a) {
            P->p->oom = true;
            return false;
        }
        P->segs = a;
        P->cap_segs = cap;
    }
    P->segs[P->n_segs++] = (IrSeg){k, role, s, len};
    if (k == IR_SEG_TEXT)
        P->n_bytes += len;
    return true;
}

static const IrConst *known(Pre *P, const IrNode *n)
{
    Scratch *s = P->s;
    return n && n->id < s->n_val && s->vgen[n->id] == s->gen ? s->val[n->id] : NULL;
}

static void set_val(Pre *P, const IrNode *n, const IrConst *c)
{
    Scratch *s = P->s;
    if (n->id < s->n_val) {
        s->val[n->id] = c;
        s->vgen[n->id] = s->gen;
    }
}

static const IrConst *slot_get(Pre *P, uint32_t slot)
{
    Scratch *s = P->s;
    return slot < s->n_slot && s->sgen[slot] == s->gen ? s->slot[slot] : NULL;
}

static void slot_set(Pre *P, uint32_t slot, const IrConst *c)
{
    Scratch *s = P->s;
    if (slot < s->n_slot) {
        s->slot[slot] = c;
        s->sgen[slot] = s->gen;
    }
}

static bool scratch_init(Scratch *s, const IrFunc *f)
{
    memset(s, 0, sizeof *s);
    s->n_slot = f->n_slots;
    s->n_val = f->n_ids;
    s->slot = calloc(s->n_slot ? s->n_slot : 1, sizeof *s->slot);
    s->val = calloc(s->n_val ? s->n_val : 1, sizeof *s->val);
    s->sgen = calloc(s->n_slot ? s->n_slot : 1, sizeof *s->sgen);
    s->vgen = calloc(s->n_val ? s->n_val : 1, sizeof *s->vgen);
    return s->slot && s->val && s->sgen && s->vgen;
}

static void scratch_deinit(Scratch *s)
{
    free(s->slot);
    free(s->val);
    free(s->sgen);
    free(s->vgen);
}

static bool walk(Pre *P, const IrRegion *r);

/* Evaluates node n; sets P->stop when the prefix ends here. */
static bool step(Pre *P, const IrNode *n)
{
    if (++P->steps > 1000000u) {
        P->stop = true;
        return true;
    }
    set_val(P, n, NULL);
    switch (n->op) {
    case IR_OP_LOAD:
        set_val(P, n, slot_get(P, n->slot));
        return true;
    case IR_OP_STORE:
        slot_set(P, n->slot, known(P, n->args[0]));
        return true;
    case IR_OP_APPEND: {
        const IrNode *a = n->args[0];
        const IrConst *c = known(P, a);
        if (c)
            return add_seg(P, IR_SEG_TEXT, 0, c->s, c->len);
        /* the known leading parts of an interpolation */
        for (uint32_t i = 0; a->op == IR_OP_CONCAT && i < a->n_args; i++) {
            const char *s;
            uint32_t len;
            if (!ir_const_text(P->p, known(P, a->args[i]), &s, &len))
                break;
            if (!add_seg(P, IR_SEG_TEXT, 0, s, len))
                return false;
        }
        P->stop = true;
        return true;
    }
    case IR_OP_ROLE_BEGIN: case IR_OP_ROLE_END:
        return add_seg(P, n->op == IR_OP_ROLE_BEGIN ? IR_SEG_ROLE_BEGIN : IR_SEG_ROLE_END,
                       (IrRole)n->aop, NULL, 0);
    case IR_OP_CAPTURE_BEGIN: case IR_OP_CAPTURE_END: case IR_OP_CALL: case IR_OP_AWAIT:
    case IR_OP_EXTERN_CALL: case IR_OP_META: case IR_OP_PREFILL:
        return true;           /* no effect on the state; value unknown */
    case IR_OP_IF: {
        const IrConst *c = known(P, n->args[0]);
        if (!c) {
            P->stop = true;
            return true;
        }
        return walk(P, &n->regions[c->b ? 0 : 1]);
    }
    case IR_OP_FOR: {
        const IrConst *xs = known(P, n->args[0]);
        const IrConst *hi = n->n_args == 2 ? known(P, n->args[1]) : NULL;
        if (!xs || (n->n_args == 2 && !hi)) {
            P->stop = true;
            return true;
        }
        uint64_t count = n->n_args == 2 ? (hi->i > xs->i ? (uint64_t)(hi->i - xs->i) : 0)
                                        : xs->n_items;
        if (count > MAX_UNROLL) {
            P->stop = true;
            return true;
        }
        for (uint64_t k = 0; k < count && !P->stop; k++) {
            const IrConst *e = NULL;
            if (n->n_args == 2) {
                IrConst *ic = ir_const_new(P->p, P->p->t_int);
                if (!ic)
                    return false;
                ic->i = xs->i + (int64_t)k;
                e = ic;
            } else {
                e = xs->items[k];
            }
            slot_set(P, n->slot, e);
            if (!walk(P, &n->regions[0]))
                return false;
        }
        return true;
    }
    default:
        break;
    }
    if (ir_op_touches_state(n->op) || n->n_regions || ir_op_is_terminator(n->op)) {
        P->stop = true;        /* GEN, SELECT, TEXT, FORK, WHILE, exits */
        return true;
    }
    const IrConst *vals[64];
    for (uint32_t i = 0; i < n->n_args; i++)
        if (i >= 64 || !(vals[i] = known(P, n->args[i])))
            return true;       /* a value we do not know; the walk goes on */
    set_val(P, n, ir_fold_eval(P->p, n, vals));
    return true;
}

static bool walk(Pre *P, const IrRegion *r)
{
    for (uint32_t i = 0; i < r->n && !P->stop; i++)
        if (!step(P, r->nodes[i]))
            return false;
    return true;
}

/* The constant prefix of region r of f (a fresh walk over scratch s);
 * false on allocation failure. */
static bool prefix_of(IrProgram *p, const IrFunc *f, Scratch *s, const IrRegion *r,
                      IrPrefix **out)
{
    Pre P = {p, f, s, NULL, 0, 0, 0, 0, false};
    s->gen++;
    bool ok = walk(&P, r);
    *out = NULL;
    if (ok) {
        IrPrefix *x = ir_alloc(p, sizeof *x);
        IrSeg *segs = ir_alloc(p, (P.n_segs ? P.n_segs : 1) * sizeof *segs);
        if (x && segs) {
            if (P.n_segs)
                memcpy(segs, P.segs, P.n_segs * sizeof *segs);
            x->segs = segs;
            x->n_segs = P.n_segs;
            x->n_bytes = P.n_bytes;
            *out = x;
        }
    }
    free(P.segs);
    return *out != NULL;
}

/* ------------------------------------------------------------ reachability */

static void mark_calls(const IrProgram *p, const IrRegion *r, uint8_t *reach, uint32_t *stack,
                       uint32_t *n_stack)
{
    for (uint32_t i = 0; i < r->n; i++) {
        const IrNode *n = r->nodes[i];
        if (n->op == IR_OP_CALL && n->index < p->n_funcs && !reach[n->index]) {
            reach[n->index] = 1;
            stack[(*n_stack)++] = n->index;
        }
        for (uint32_t k = 0; k < n->n_regions; k++)
            mark_calls(p, &n->regions[k], reach, stack, n_stack);
    }
}

/* ------------------------------------------------------------ fork prefixes */

static bool hoist_forks(IrProgram *p, IrFunc *f, Scratch *s, IrRegion *r)
{
    uint32_t n_forks = 0;
    for (uint32_t i = 0; i < r->n; i++) {
        IrNode *n = r->nodes[i];
        for (uint32_t k = 0; k < n->n_regions; k++)
            if (!hoist_forks(p, f, s, &n->regions[k]))
                return false;
        n_forks += n->op == IR_OP_FORK && !(i > 0 && r->nodes[i - 1]->op == IR_OP_PREFILL);
    }
    if (!n_forks)
        return true;
    /* rebuild the region once (linear however many forks it has) */
    IrNode **out = malloc(((size_t)r->n + n_forks) * sizeof *out);
    if (!out) {
        p->oom = true;
        return false;
    }
    uint32_t m = 0;
    bool ok = true;
    for (uint32_t i = 0; i < r->n; i++) {
        IrNode *n = r->nodes[i];
        if (ok && n->op == IR_OP_FORK && !(i > 0 && r->nodes[i - 1]->op == IR_OP_PREFILL)) {
            IrPrefix *x;
            IrNode *pf = NULL;
            ok = prefix_of(p, f, s, &n->regions[0], &x) &&
                 (pf = ir_node_new(p, f, IR_OP_PREFILL, NULL, 0, 0, n->loc)) != NULL;
            if (ok) {
                pf->prefix = x;
                pf->flags = IR_F_HOISTED;
                pf->index = UINT32_MAX;
                out[m++] = pf;
            }
        }
        out[m++] = n;
    }
    free(r->nodes);
    r->nodes = out;
    r->n = m;
    r->cap = m;
    return ok;
}

bool ir_pass_prefix_hoist(IrProgram *p)
{
    uint8_t *reach = calloc(p->n_funcs ? p->n_funcs : 1, 1);
    uint32_t *stack = calloc(p->n_funcs ? p->n_funcs : 1, sizeof *stack);
    uint32_t n_stack = 0;
    bool ok = reach && stack;
    if (ok && p->main >= 0) {
        reach[p->main] = 1;
        stack[n_stack++] = (uint32_t)p->main;
        while (n_stack)
            mark_calls(p, &p->funcs[stack[--n_stack]]->body, reach, stack, &n_stack);
    } else if (ok) {
        memset(reach, 1, p->n_funcs);   /* a library module: every function */
    }
    if (ok && !p->init) {
        uint32_t n_before = p->n_funcs;
        IrFunc *init = ir_func_new(p, "init", 0, 0);
        ok = init != NULL;
        if (ok) {
            p->n_funcs = n_before;          /* init is not a callable function */
            p->init = init;
        }
    }
    for (uint32_t i = 0; ok && i < p->n_funcs; i++) {
        IrFunc *f = p->funcs[i];
        IrPrefix *x;
        Scratch sc;
        if (!scratch_init(&sc, f) || !prefix_of(p, f, &sc, &f->body, &x)) {
            scratch_deinit(&sc);
            ok = false;
            break;
        }
        if (reach[i] && x->n_segs > 0) {
            IrNode *pf = ir_node_new(p, p->init, IR_OP_PREFILL, NULL, 0, 0, f->loc);
            ok = pf && ir_region_push(p, &p->init->body, pf);
            if (ok) {
                pf->prefix = x;
                pf->flags = IR_F_FRESH | IR_F_HOISTED;
                pf->index = i;
            }
        }
        ok = ok && hoist_forks(p, f, &sc, &f->body);
        scratch_deinit(&sc);
    }
    free(reach);
    free(stack);
    if (!ok)
        p->oom = true;
    return ok;
}

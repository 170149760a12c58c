/* pass_forkjoin.c -- mark what can be in flight at once.
 *
 * From data dependencies, per region:
 *  - FORK: IR_F_PARALLEL and a fresh group; the GEN/SELECT/CALL nodes at the
 *    top level of its body get the same group (one batch across branches).
 *  - CALL to a .sgl function (it runs on its own prompt state, so it never
 *    depends on the caller's state): first moved up to just after the last
 *    of its operands' definitions (not across a region-owning node or an
 *    exit), then made IR_F_ASYNC with an AWAIT placed as late as the data
 *    allows: right before the first node that uses the value, or -- when
 *    the value goes straight into a local (`let d = f(x)`) -- the STORE is
 *    moved down with the AWAIT to just before the first node that reads or
 *    writes that slot. Never past a node that may leave the region (BREAK,
 *    CONTINUE, RETURN, or a region containing one) or the region's end. A
 *    call with only CONST/LOAD nodes (and no other AWAIT) before its AWAIT
 *    stays synchronous.
 *    Each scan looks at most WINDOW nodes ahead (or back): past that, the
 *    AWAIT goes at the window's end -- still correct, only less overlap --
 *    and each region is rebuilt once, so the pass is linear in its size.
 *  - Async calls started with no AWAIT between them share a group: the
 *    executor submits them together (SGLang's tip_suggestion pipeline:
 *    expand(t[0]) and expand(t[1]) run while the caller goes on).
 * Results are unchanged: calls only read their arguments, and every future
 * is awaited before its value is used and before the region can be left.
 */
#include <stdlib.h>
#include <string.h>

#include "ir/pass.h"
#include "ir/pass_int.h"

#define WINDOW 512u            /* nodes scanned per call, each way */

typedef struct {
    IrProgram *p;
    IrFunc *f;
    uint32_t n_old;           /* ids below this existed before the pass */
    uint32_t *n_uses;         /* (n_old) uses of each node, nested ones included */
    uint8_t *skip;            /* (n_old) a STORE moved down with its AWAIT */
    IrNode **fwd;             /* (n_old) call id -> its AWAIT (uses to rewrite) */
} Fj;

typedef struct { uint32_t k, seq; IrNode *aw, *store; } Pend;

static void count_uses(Fj *F, const IrRegion *r)
{
    for (uint32_t i = 0; i < r->n; i++) {
        const IrNode *n = r->nodes[i];
        for (uint32_t a = 0; a < n->n_args; a++)
            if (n->args[a] && n->args[a]->id < F->n_old)
                F->n_uses[n->args[a]->id]++;
        for (uint32_t k = 0; k < n->n_regions; k++)
            count_uses(F, &n->regions[k]);
    }
}

/* Does n (or its regions) read or write slot s? */
static bool touches_slot(const IrNode *n, uint32_t s)
{
    if ((n->op == IR_OP_LOAD || n->op == IR_OP_STORE || n->op == IR_OP_META ||
         n->op == IR_OP_CAPTURE_END || n->op == IR_OP_FOR || n->op == IR_OP_FORK) &&
        n->slot == s)
        return true;
    for (uint32_t g = 0; g < n->n_gather; g++)
        if (n->gather[g].from == s || n->gather[g].to == s)
            return true;
    for (uint32_t k = 0; k < n->n_regions; k++)
        for (uint32_t i = 0; i < n->regions[k].n; i++)
            if (touches_slot(n->regions[k].nodes[i], s))
                return true;
    return false;
}

/* Moves the CALL at r->nodes[i] up past independent straight-line nodes
 * (at most WINDOW of them). */
static void move_up(IrRegion *r, uint32_t i)
{
    IrNode *c = r->nodes[i];
    uint32_t j = i;
    while (j > 0 && i - j < WINDOW) {
        const IrNode *m = r->nodes[j - 1];
        if (m->n_regions || ir_op_is_terminator(m->op) || m->op == IR_OP_PREFILL)
            break;
        bool dep = false;
        for (uint32_t a = 0; a < c->n_args && !dep; a++)
            dep = c->args[a] == m;
        if (dep)
            break;
        j--;
    }
    if (j < i) {
        memmove(r->nodes + j + 1, r->nodes + j, (i - j) * sizeof *r->nodes);
        r->nodes[j] = c;
    }
}

static int pend_cmp(const void *a, const void *b)
{
    const Pend *x = a, *y = b;
    if (x->k != y->k)
        return x->k < y->k ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Decides where the AWAIT of the call at r->nodes[i] goes; records it. */
static bool plan_call(Fj *F, IrRegion *r, uint32_t i, Pend **pend, uint32_t *n_pend,
                      uint32_t *cap_pend)
{
    IrNode *c = r->nodes[i];
    uint32_t lim = r->n - i - 1 > WINDOW ? i + 1 + WINDOW : r->n;
    uint32_t k = i + 1;
    while (k < lim && !ir_node_uses(r->nodes[k], c) && !ir_node_exits(r->nodes[k]))
        k++;
    IrNode *store = NULL;
    if (k < r->n && r->nodes[k]->op == IR_OP_STORE && r->nodes[k]->args[0] == c &&
        c->id < F->n_old && F->n_uses[c->id] == 1 && r->nodes[k]->id < F->n_old) {
        /* `let d = f(x)`: the store moves down to the slot's first use */
        store = r->nodes[k++];
        lim = r->n - k > WINDOW ? k + WINDOW : r->n;
        while (k < lim && !touches_slot(r->nodes[k], store->slot) &&
               !ir_node_exits(r->nodes[k]))
            k++;
    }
    uint32_t work = 0;         /* nodes in between that do more than name a value */
    for (uint32_t j = i + 1; j < k; j++)
        work += r->nodes[j] != store && r->nodes[j]->op != IR_OP_CONST &&
                r->nodes[j]->op != IR_OP_LOAD;
    for (uint32_t q = 0; q < *n_pend; q++)      /* an earlier call's AWAIT in between: */
        work += (*pend)[q].k > i && (*pend)[q].k <= k;  /* the caller waits there anyway */
    if (work == 0)
        return true;           /* nothing to overlap with: stay synchronous */
    IrNode *aw = ir_node_new(F->p, F->f, IR_OP_AWAIT, c->type, 1, 0, c->loc);
    if (!aw)
        return false;
    aw->args[0] = c;
    c->flags |= IR_F_ASYNC;
    if (store) {
        F->skip[store->id] = 1;
        store->args[0] = aw;
    } else if (c->id < F->n_old) {
        F->fwd[c->id] = aw;
    }
    if (*n_pend == *cap_pend) {
        uint32_t cap = *cap_pend ? *cap_pend * 2 : 16;
        Pend *a = realloc(*pend, cap * sizeof *a);
        if (!a) {
            F->p->oom = true;
            return false;
        }
        *pend = a;
        *cap_pend = cap;
    }
    (*pend)[*n_pend] = (Pend){k, *n_pend, aw, store};
    (*n_pend)++;
    return true;
}

static bool region(Fj *F, IrRegion *r, uint32_t fork_group)
{
    IrProgram *p = F->p;
    for (uint32_t i = 0; i < r->n; i++) {
        IrNode *n = r->nodes[i];
        if (n->op == IR_OP_FORK) {
            n->flags |= IR_F_PARALLEL;
            n->group = p->next_group++;
        }
        for (uint32_t k = 0; k < n->n_regions; k++)
            if (!region(F, &n->regions[k], n->op == IR_OP_FORK ? n->group : 0))
                return false;
    }
    /* 1: issue calls early; 2: plan the awaits; 3: rebuild the region once */
    for (uint32_t i = 0; i < r->n; i++)
        if (r->nodes[i]->op == IR_OP_CALL && !(r->nodes[i]->flags & IR_F_ASYNC))
            move_up(r, i);
    Pend *pend = NULL;
    uint32_t n_pend = 0, cap_pend = 0;
    bool ok = true;
    for (uint32_t i = 0; ok && i < r->n; i++)
        if (r->nodes[i]->op == IR_OP_CALL && !(r->nodes[i]->flags & IR_F_ASYNC))
            ok = plan_call(F, r, i, &pend, &n_pend, &cap_pend);
    if (ok && n_pend) {
        qsort(pend, n_pend, sizeof *pend, pend_cmp);
        IrNode **out = malloc(((size_t)r->n + 2 * (size_t)n_pend) * sizeof *out);
        if (!out) {
            p->oom = true;
            ok = false;
        } else {
            uint32_t m = 0, q = 0;
            for (uint32_t i = 0; i <= r->n; i++) {
                for (; q < n_pend && pend[q].k == i; q++) {
                    out[m++] = pend[q].aw;
                    if (pend[q].store)
                        out[m++] = pend[q].store;
                }
                if (i < r->n && !(r->nodes[i]->id < F->n_old && F->skip[r->nodes[i]->id]))
                    out[m++] = r->nodes[i];
            }
            free(r->nodes);
            r->nodes = out;
            r->n = m;
            r->cap = m ? m : 1;   /* out holds at least m entries */
        }
    }
    free(pend);
    if (!ok)
        return false;
    /* groups: async calls with no AWAIT between them; inside a parallel
     * fork body, gens/selects/sync calls join the fork's group */
    uint32_t open = 0;
    for (uint32_t i = 0; i < r->n; i++) {
        IrNode *n = r->nodes[i];
        if (fork_group && (n->op == IR_OP_GEN || n->op == IR_OP_SELECT ||
                           (n->op == IR_OP_CALL && !(n->flags & IR_F_ASYNC)))) {
            n->group = fork_group;
        } else if (n->op == IR_OP_CALL && (n->flags & IR_F_ASYNC)) {
            if (!open)
                open = p->next_group++;
            n->group = open;
        } else if (n->op == IR_OP_AWAIT) {
            open = 0;
        }
    }
    return true;
}

/* Uses of an async call's future (other than its AWAIT) read the AWAIT. */
static void forward_uses(Fj *F, IrRegion *r)
{
    for (uint32_t i = 0; i < r->n; i++) {
        IrNode *n = r->nodes[i];
        for (uint32_t a = 0; n->op != IR_OP_AWAIT && a < n->n_args; a++)
            if (n->args[a] && n->args[a]->id < F->n_old && F->fwd[n->args[a]->id])
                n->args[a] = F->fwd[n->args[a]->id];
        for (uint32_t k = 0; k < n->n_regions; k++)
            forward_uses(F, &n->regions[k]);
    }
}

static bool func(IrProgram *p, IrFunc *f)
{
    size_t n = f->n_ids ? f->n_ids : 1;
    Fj F = {p, f, f->n_ids, calloc(n, sizeof(uint32_t)), calloc(n, 1),
            calloc(n, sizeof(IrNode *))};
    bool ok = F.n_uses && F.skip && F.fwd;
    if (ok) {
        count_uses(&F, &f->body);
        ok = region(&F, &f->body, 0);
        if (ok)
            forward_uses(&F, &f->body);
    } else {
        p->oom = true;
    }
    free(F.n_uses);
    free(F.skip);
    free(F.fwd);
    return ok;
}

bool ir_pass_forkjoin(IrProgram *p)
{
    for (uint32_t i = 0; i < p->n_funcs; i++)
        if (!func(p, p->funcs[i]))
            return false;
    /* start-up prefills are independent of each other: one group */
    if (p->init && p->init->body.n) {
        uint32_t g = p->next_group++;
        for (uint32_t i = 0; i < p->init->body.n; i++)
            p->init->body.nodes[i]->group = g;
    }
    return !p->oom;
}

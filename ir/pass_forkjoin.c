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
 *    call whose AWAIT would follow it immediately stays synchronous.
 *  - Async calls started with no AWAIT between them share a group: the
 *    executor submits them together (SGLang's tip_suggestion pipeline:
 *    expand(t[0]) and expand(t[1]) run while the caller goes on).
 * Results are unchanged: calls only read their arguments, and every future
 * is awaited before its value is used and before the region can be left.
 */
#include <stdlib.h>

#include "ir/pass.h"
#include "ir/pass_int.h"

typedef struct {
    IrProgram *p;
    IrFunc *f;
} Fj;

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

/* Moves the CALL at r->nodes[i] up past independent straight-line nodes;
 * returns its new index. */
static uint32_t move_up(IrRegion *r, uint32_t i)
{
    IrNode *c = r->nodes[i];
    uint32_t j = i;
    while (j > 0) {
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
        for (uint32_t k = i; k > j; k--)
            r->nodes[k] = r->nodes[k - 1];
        r->nodes[j] = c;
    }
    return j;
}

static bool async_call(Fj *F, IrRegion *r, uint32_t *pi)
{
    IrProgram *p = F->p;
    uint32_t i = move_up(r, *pi);
    IrNode *c = r->nodes[i];
    /* the first node after the call that uses it or may leave the region */
    uint32_t k = i + 1;
    while (k < r->n && !ir_node_uses(r->nodes[k], c) && !ir_node_exits(r->nodes[k]))
        k++;
    IrNode *store = NULL;
    if (k < r->n && r->nodes[k]->op == IR_OP_STORE && r->nodes[k]->args[0] == c) {
        /* `let d = f(x)`: is the store the only use? */
        bool other = false;
        for (uint32_t j = k + 1; j < r->n && !other; j++)
            other = ir_node_uses(r->nodes[j], c);
        if (!other) {
            store = r->nodes[k];
            ir_region_remove(r, k);
            while (k < r->n && !touches_slot(r->nodes[k], store->slot) &&
                   !ir_node_exits(r->nodes[k]))
                k++;
        }
    }
    if (k == i + 1) {          /* nothing to overlap with: stay synchronous */
        if (store)
            ir_region_insert(p, r, k, store);
        *pi = i + (store ? 1 : 0);
        return !p->oom;
    }
    IrNode *aw = ir_node_new(p, F->f, IR_OP_AWAIT, c->type, 1, 0, c->loc);
    if (!aw || !ir_region_insert(p, r, k, aw))
        return false;
    aw->args[0] = c;
    c->flags |= IR_F_ASYNC;
    if (store) {
        store->args[0] = aw;
        if (!ir_region_insert(p, r, k + 1, store))
            return false;
    } else {
        ir_replace_uses(r, k + 1, c, aw);
    }
    *pi = i;
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
        if (n->op == IR_OP_CALL && !(n->flags & IR_F_ASYNC)) {
            if (!async_call(F, r, &i))
                return false;
        }
    }
    /* groups: async calls with no AWAIT between them; inside a parallel
     * fork body, gens/selects/calls join the fork's group */
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

bool ir_pass_forkjoin(IrProgram *p)
{
    for (uint32_t i = 0; i < p->n_funcs; i++) {
        Fj F = {p, p->funcs[i]};
        if (!region(&F, &p->funcs[i]->body, 0))
            return false;
    }
    /* start-up prefills are independent of each other: one group */
    if (p->init && p->init->body.n) {
        uint32_t g = p->next_group++;
        for (uint32_t i = 0; i < p->init->body.n; i++)
            p->init->body.nodes[i]->group = g;
    }
    return !p->oom;
}

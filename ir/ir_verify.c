/* ir_verify.c -- structural invariants of an IrProgram (see ir.h).
 *
 * Checked per function, walking the region tree once:
 *  - ids are unique and < n_ids; every operand is non-NULL, defines a value
 *    and is visible: defined earlier in the same region or an enclosing one
 *    (defs before uses, no use from a sibling/child region);
 *  - each op has its region count and operand types (APPEND str, IF bool,
 *    STORE matches the slot, CALL arguments match the callee's parameters,
 *    RETURN matches the function's return type, ...);
 *  - slots are in range; BREAK/CONTINUE sit inside a loop of the same fork
 *    branch; RETURN is not inside a FORK; ROLE_BEGIN/END and CAPTURE_BEGIN/
 *    END pair up within one region;
 *  - an async CALL is used only by AWAIT, awaited exactly once, later in
 *    its own region, before any node that may leave the region;
 *  - FRESH PREFILLs live only in IrProgram.init.
 * Problems are reported, never asserted: a broken graph gives lines on err
 * and `false`. Recursion follows region nesting, which lowering bounds by
 * the AST height.
 */
#include <stdarg.h>
#include <stdlib.h>

#include "ir/ir.h"

typedef struct {
    const IrProgram *p;
    const IrFunc *f;
    FILE *err;
    uint32_t n_err;
    uint8_t *seen;            /* id appeared */
    uint8_t *vis;             /* id currently visible */
    uint32_t *awaited;        /* id of an async call -> times awaited */
    bool is_init;
} V;

static void bad(V *v, const IrNode *n, const char *fmt, ...)
{
    v->n_err++;
    if (!v->err || v->n_err > 50)
        return;
    fprintf(v->err, "%s: %%%u %s: ", v->f->name, n ? n->id : 0, n ? ir_op_name(n->op) : "-");
    va_list ap;
    va_start(ap, fmt);
    vfprintf(v->err, fmt, ap);
    va_end(ap);
    fputc('\n', v->err);
}

static bool ty_is(const IrNode *n, IrTyKind k)
{
    return n && n->type && n->type->kind == k;
}

static bool contains_exit(const IrNode *n, int depth)
{
    if (ir_op_is_terminator(n->op))
        return true;
    if (depth > 4000)
        return true;
    for (uint32_t k = 0; k < n->n_regions; k++)
        for (uint32_t i = 0; i < n->regions[k].n; i++)
            if (contains_exit(n->regions[k].nodes[i], depth + 1))
                return true;
    return false;
}

static bool uses(const IrNode *n, const IrNode *def, int depth)
{
    for (uint32_t i = 0; i < n->n_args; i++)
        if (n->args[i] == def)
            return true;
    if (depth > 4000)
        return false;
    for (uint32_t k = 0; k < n->n_regions; k++)
        for (uint32_t i = 0; i < n->regions[k].n; i++)
            if (uses(n->regions[k].nodes[i], def, depth + 1))
                return true;
    return false;
}

static uint32_t want_regions(IrOp op)
{
    switch (op) {
    case IR_OP_IF: case IR_OP_WHILE: return 2;
    case IR_OP_FOR: case IR_OP_FORK: return 1;
    default: return 0;
    }
}

static void check_slot(V *v, const IrNode *n, uint32_t s)
{
    if (s >= v->f->n_slots)
        bad(v, n, "slot %u out of range (%u slots)", s, v->f->n_slots);
}

static void check_node(V *v, const IrNode *n, uint32_t loops, bool in_fork)
{
    const IrProgram *p = v->p;
    char b1[128], b2[128];
    if (n->n_regions != want_regions(n->op))
        bad(v, n, "has %u regions, expected %u", n->n_regions, want_regions(n->op));
    for (uint32_t i = 0; i < n->n_args; i++) {
        const IrNode *a = n->args[i];
        if (!a) {
            bad(v, n, "operand %u is null", i);
            continue;
        }
        if (!ir_has_value(a))
            bad(v, n, "operand %u (%%%u %s) defines no value", i, a->id, ir_op_name(a->op));
        if (a->id >= v->f->n_ids || !v->vis[a->id])
            bad(v, n, "operand %u (%%%u) is not defined before this use in an enclosing region",
                i, a->id);
        if (a->op == IR_OP_CALL && (a->flags & IR_F_ASYNC) && n->op != IR_OP_AWAIT)
            bad(v, n, "uses the future of async call %%%u without AWAIT", a->id);
    }
    const IrNode *a0 = n->n_args > 0 ? n->args[0] : NULL, *a1 = n->n_args > 1 ? n->args[1] : NULL;
    switch (n->op) {
    case IR_OP_CONST:
        if (!n->cnst || n->cnst->type != n->type)
            bad(v, n, "constant missing or of another type");
        break;
    case IR_OP_LOAD:
        check_slot(v, n, n->slot);
        if (n->slot < v->f->n_slots && v->f->slots[n->slot].type != n->type)
            bad(v, n, "type %s differs from slot type %s", ir_type_name(n->type, b1, 128),
                ir_type_name(v->f->slots[n->slot].type, b2, 128));
        break;
    case IR_OP_STORE:
        check_slot(v, n, n->slot);
        if (n->n_args != 1)
            bad(v, n, "needs 1 operand");
        else if (a0 && n->slot < v->f->n_slots && v->f->slots[n->slot].type != a0->type)
            bad(v, n, "stores %s into slot of type %s", ir_type_name(a0->type, b1, 128),
                ir_type_name(v->f->slots[n->slot].type, b2, 128));
        break;
    case IR_OP_BINOP:
        if (n->n_args != 2 || (a0 && a1 && a0->type != a1->type))
            bad(v, n, "operands must be two values of one type");
        break;
    case IR_OP_UNOP:
        if (n->n_args != 1)
            bad(v, n, "needs 1 operand");
        break;
    case IR_OP_CONCAT:
        if (!ty_is(n, IR_TY_STR))
            bad(v, n, "result must be str");
        break;
    case IR_OP_APPEND:
        if (n->n_args != 1 || !ty_is(a0, IR_TY_STR))
            bad(v, n, "needs one str operand");
        break;
    case IR_OP_LIST:
        if (!ty_is(n, IR_TY_LIST))
            bad(v, n, "result must be a list");
        for (uint32_t i = 0; ty_is(n, IR_TY_LIST) && i < n->n_args; i++)
            if (n->args[i] && n->args[i]->type != n->type->elem)
                bad(v, n, "element %u has the wrong type", i);
        break;
    case IR_OP_RECORD:
        if (!ty_is(n, IR_TY_RECORD) || n->n_args != n->type->n_fields)
            bad(v, n, "needs one operand per field of a record type");
        else
            for (uint32_t i = 0; i < n->n_args; i++)
                if (n->args[i] && n->args[i]->type != n->type->fields[i].type)
                    bad(v, n, "field %s has the wrong type", n->type->fields[i].name);
        break;
    case IR_OP_INDEX:
        if (n->n_args != 2 || !ty_is(a0, IR_TY_LIST) || !ty_is(a1, IR_TY_INT) ||
            n->type != a0->type->elem)
            bad(v, n, "needs (list[T], int) -> T");
        break;
    case IR_OP_FIELD:
        if (n->n_args != 1 || !ty_is(a0, IR_TY_RECORD) || n->index >= a0->type->n_fields ||
            n->type != a0->type->fields[n->index].type)
            bad(v, n, "field index or type mismatch");
        break;
    case IR_OP_SET_INDEX:
        if (n->n_args != 3 || !ty_is(a0, IR_TY_LIST) || n->type != a0->type)
            bad(v, n, "needs (list, int, elem) -> list");
        break;
    case IR_OP_SET_FIELD:
        if (n->n_args != 2 || !ty_is(a0, IR_TY_RECORD) || n->index >= a0->type->n_fields ||
            n->type != a0->type)
            bad(v, n, "needs (record, value) -> record");
        break;
    case IR_OP_BUILTIN:
        if ((unsigned)n->aop >= IR_BI_COUNT_)
            bad(v, n, "unknown built-in %d", n->aop);
        break;
    case IR_OP_META:
        check_slot(v, n, n->slot);
        if (n->type != p->t_meta)
            bad(v, n, "result must be the meta record");
        break;
    case IR_OP_GEN:
        if (!n->gen || !n->gen->keys)
            bad(v, n, "missing gen info");
        else if (n->gen->con.kind == IR_CON_REGEX || n->gen->con.kind == IR_CON_JSON_SCHEMA) {
            if (!n->gen->con.text)
                bad(v, n, "constraint without text");
        } else if (n->gen->con.kind == IR_CON_TYPE && !n->gen->con.type)
            bad(v, n, "type constraint without a type");
        else if (n->gen->con.kind == IR_CON_CHOICES && !n->gen->con.choices)
            bad(v, n, "choices constraint without choices");
        if (!ir_has_value(n))
            bad(v, n, "must define a value");
        break;
    case IR_OP_SELECT:
        if (n->n_args != 1 || !ty_is(a0, IR_TY_LIST) || a0->type->elem != p->t_str)
            bad(v, n, "needs one list[str] operand");
        break;
    case IR_OP_CAPTURE_END:
        if (n->n_args != 1 || !a0 || a0->op != IR_OP_CAPTURE_BEGIN)
            bad(v, n, "operand must be a CAPTURE_BEGIN");
        break;
    case IR_OP_CALL: {
        if (n->index >= p->n_funcs) {
            bad(v, n, "callee %u out of range", n->index);
            break;
        }
        const IrFunc *c = p->funcs[n->index];
        if (n->n_args != c->n_params)
            bad(v, n, "%u arguments for %u parameters of %s", n->n_args, c->n_params, c->name);
        for (uint32_t i = 0; i < n->n_args && i < c->n_params && i < c->n_slots; i++)
            if (n->args[i] && n->args[i]->type != c->slots[i].type)
                bad(v, n, "argument %u has the wrong type", i);
        if ((n->type ? n->type : p->t_void) != c->ret)
            bad(v, n, "result type differs from %s's return type", c->name);
        break;
    }
    case IR_OP_AWAIT:
        if (n->n_args != 1 || !a0 || a0->op != IR_OP_CALL || !(a0->flags & IR_F_ASYNC))
            bad(v, n, "operand must be an async CALL");
        else if (a0->type != n->type)
            bad(v, n, "type differs from the call's");
        break;
    case IR_OP_EXTERN_CALL: {
        if (n->index >= p->n_externs) {
            bad(v, n, "extern %u out of range", n->index);
            break;
        }
        const IrExtern *e = &p->externs[n->index];
        if (n->n_args != e->n_params)
            bad(v, n, "%u arguments for %u parameters", n->n_args, e->n_params);
        for (uint32_t i = 0; i < n->n_args && i < e->n_params; i++)
            if (n->args[i] && n->args[i]->type != e->params[i])
                bad(v, n, "argument %u has the wrong type", i);
        break;
    }
    case IR_OP_IF:
        if (n->n_args != 1 || !ty_is(a0, IR_TY_BOOL))
            bad(v, n, "condition must be bool");
        break;
    case IR_OP_FOR:
        check_slot(v, n, n->slot);
        if (!((n->n_args == 1 && ty_is(a0, IR_TY_LIST)) ||
              (n->n_args == 2 && ty_is(a0, IR_TY_INT) && ty_is(a1, IR_TY_INT))))
            bad(v, n, "iterates a list or an int range");
        break;
    case IR_OP_WHILE:
        if (n->n_regions == 2) {
            const IrRegion *c = &n->regions[0];
            if (c->n == 0 || !ty_is(c->nodes[c->n - 1], IR_TY_BOOL))
                bad(v, n, "condition region must end with a bool value");
        }
        break;
    case IR_OP_BREAK: case IR_OP_CONTINUE:
        if (loops == 0)
            bad(v, n, "outside a loop (of this fork branch)");
        break;
    case IR_OP_RETURN:
        if (in_fork)
            bad(v, n, "inside a fork branch");
        if (n->n_args == 0 ? v->f->ret != p->t_void : (a0 && a0->type != v->f->ret))
            bad(v, n, "value does not match the return type");
        break;
    case IR_OP_FORK:
        if (n->n_args != 1 || !(ty_is(a0, IR_TY_LIST) || ty_is(a0, IR_TY_INT)))
            bad(v, n, "iterates a list or a count");
        if (n->slot != IR_NO_SLOT)
            check_slot(v, n, n->slot);
        for (uint32_t i = 0; i < n->n_gather; i++) {
            const IrGather *g = &n->gather[i];
            check_slot(v, n, g->from);
            check_slot(v, n, g->to);
            if (g->from < v->f->n_slots && g->to < v->f->n_slots &&
                v->f->slots[g->to].type != ir_type_list((IrProgram *)p, v->f->slots[g->from].type))
                bad(v, n, "gather %u: list slot type does not match", i);
        }
        break;
    case IR_OP_PREFILL:
        if (!n->prefix)
            bad(v, n, "missing prefix");
        if ((n->flags & IR_F_FRESH) && !v->is_init)
            bad(v, n, "fresh prefill outside the init function");
        break;
    default:
        break;
    }
}

static void check_region(V *v, const IrRegion *r, uint32_t loops, bool in_fork, int depth)
{
    if (depth > 4000) {
        bad(v, NULL, "regions nested too deeply");
        return;
    }
    int role_open = -1;
    const IrNode *capture_open[64];
    uint32_t n_capture = 0;
    for (uint32_t i = 0; i < r->n; i++) {
        const IrNode *n = r->nodes[i];
        if (!n) {
            bad(v, NULL, "null node in a region");
            continue;
        }
        if (n->id >= v->f->n_ids) {
            bad(v, n, "id %u out of range (%u)", n->id, v->f->n_ids);
            continue;
        }
        if (v->seen[n->id])
            bad(v, n, "node appears twice");
        v->seen[n->id] = 1;
        if (i + 1 < r->n && ir_op_is_terminator(n->op))
            bad(v, n, "terminator is not the last node of its region");
        check_node(v, n, loops, in_fork);
        for (uint32_t k = 0; k < n->n_regions; k++) {
            bool loop_body = (n->op == IR_OP_FOR && k == 0) || (n->op == IR_OP_WHILE && k == 1);
            bool fork = n->op == IR_OP_FORK;
            check_region(v, &n->regions[k], fork ? 0 : loops + (loop_body ? 1 : 0),
                         in_fork || fork, depth + 1);
        }
        if (n->op == IR_OP_ROLE_BEGIN) {
            if (role_open >= 0)
                bad(v, n, "role blocks nest");
            role_open = n->aop;
        } else if (n->op == IR_OP_ROLE_END) {
            if (role_open != n->aop)
                bad(v, n, "ROLE_END without a matching ROLE_BEGIN in this region");
            role_open = -1;
        } else if (n->op == IR_OP_CAPTURE_BEGIN && n_capture < 64) {
            capture_open[n_capture++] = n;
        } else if (n->op == IR_OP_CAPTURE_END) {
            if (!n_capture || n->n_args != 1 || n->args[0] != capture_open[n_capture - 1])
                bad(v, n, "CAPTURE_END does not close the innermost CAPTURE_BEGIN");
            else
                n_capture--;
        } else if (n->op == IR_OP_AWAIT && n->n_args == 1 && n->args[0]) {
            const IrNode *c = n->args[0];
            bool here = false;
            for (uint32_t j = 0; j < i; j++)
                here |= r->nodes[j] == c;
            if (!here)
                bad(v, n, "awaits a call of another region");
            if (c->id < v->f->n_ids)
                v->awaited[c->id]++;
        }
        if (n->op == IR_OP_CALL && (n->flags & IR_F_ASYNC)) {
            /* its AWAIT comes later in this region, before any exit or use */
            bool found = false;
            for (uint32_t j = i + 1; j < r->n && !found; j++) {
                const IrNode *m = r->nodes[j];
                if (m->op == IR_OP_AWAIT && m->n_args == 1 && m->args[0] == n)
                    found = true;
                else if (contains_exit(m, 0) || (m->n_regions && uses(m, n, 0))) {
                    bad(v, n, "async call is not awaited before %%%u %s", m->id,
                        ir_op_name(m->op));
                    break;
                }
            }
            if (!found)
                bad(v, n, "async call is never awaited in its region");
        }
        if (ir_has_value(n))
            v->vis[n->id] = 1;
    }
    for (uint32_t i = 0; i < r->n; i++) {
        const IrNode *n = r->nodes[i];
        if (n && n->op == IR_OP_CALL && (n->flags & IR_F_ASYNC) && n->id < v->f->n_ids &&
            v->awaited[n->id] > 1)
            bad(v, n, "async call awaited %u times", v->awaited[n->id]);
    }
    if (role_open >= 0 && !(r->n && ir_op_is_terminator(r->nodes[r->n - 1]->op)))
        bad(v, r->n ? r->nodes[r->n - 1] : NULL, "role block not closed in its region");
    if (n_capture && !(r->n && ir_op_is_terminator(r->nodes[r->n - 1]->op)))
        bad(v, r->n ? r->nodes[r->n - 1] : NULL, "capture not closed in its region");
    /* leaving the region: its values go out of scope */
    for (uint32_t i = 0; i < r->n; i++)
        if (r->nodes[i] && r->nodes[i]->id < v->f->n_ids)
            v->vis[r->nodes[i]->id] = 0;
}

static uint32_t verify_func(const IrProgram *p, const IrFunc *f, FILE *err, bool is_init)
{
    V v = {p, f, err, 0, NULL, NULL, NULL, is_init};
    size_t n = f->n_ids ? f->n_ids : 1;
    v.seen = calloc(n, 1);
    v.vis = calloc(n, 1);
    v.awaited = calloc(n, sizeof *v.awaited);
    if (!v.seen || !v.vis || !v.awaited) {
        bad(&v, NULL, "out of memory while verifying");
    } else {
        if (f->n_params > f->n_slots)
            bad(&v, NULL, "%u params but %u slots", f->n_params, f->n_slots);
        for (uint32_t i = 0; i < f->n_slots; i++)
            if (!f->slots[i].name || !f->slots[i].type)
                bad(&v, NULL, "slot %u has no name or type", i);
        check_region(&v, &f->body, 0, false, 0);
    }
    free(v.seen);
    free(v.vis);
    free(v.awaited);
    return v.n_err;
}

bool ir_verify(const IrProgram *p, FILE *err)
{
    uint32_t n_err = 0;
    if (!p)
        return false;
    if (p->oom) {
        if (err)
            fputs("program: incomplete (out of memory while building)\n", err);
        return false;
    }
    if (p->main >= (int32_t)p->n_funcs) {
        if (err)
            fprintf(err, "program: main index %d out of range\n", p->main);
        n_err++;
    }
    for (uint32_t i = 0; i < p->n_funcs; i++)
        n_err += verify_func(p, p->funcs[i], err, false);
    if (p->init)
        n_err += verify_func(p, p->init, err, true);
    return n_err == 0;
}

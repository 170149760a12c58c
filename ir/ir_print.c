/* ir_print.c -- the stable text form of an IrProgram (our EXPLAIN).
 *
 * Used by `sglc check --emit=ir`, `--dump-after=PASS` and the golden tests
 * (tests/golden/ir/), so the format only changes together with the goldens.
 * Values are renumbered %0, %1, ... in print order per function, so node
 * ids (which passes allocate as they go) never show. Each node line is
 *   [%N = ]OP[.attr] operands [attributes] [: type]   @line:col
 * and region-owning nodes open `{`, print their regions indented, and close
 * with `}`. Slots print as name#slot. Strings are quoted with C escapes.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"

typedef struct {
    FILE *f;
    const IrProgram *p;
    const IrFunc *fn;
    uint32_t *num;            /* node id -> display number + 1 (0: not printed yet) */
    uint32_t next;
} Pr;

static void pstr(FILE *f, const char *s, uint32_t len)
{
    fputc('"', f);
    for (uint32_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '\n': fputs("\\n", f); break;
        case '\t': fputs("\\t", f); break;
        case '\r': fputs("\\r", f); break;
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        default:
            if (c < 0x20 || c == 0x7f)
                fprintf(f, "\\x%02x", c);
            else
                fputc(c, f);
        }
    }
    fputc('"', f);
}

/* Shortest %g form that reads back to the same double (stable goldens). */
static void pfloat(FILE *f, double x)
{
    char b[40];
    if (x == (double)(long long)x && x > -1e15 && x < 1e15) {
        snprintf(b, sizeof b, "%.1f", x);      /* integral: 100.0, not 1e+02 */
    } else {
        for (int prec = 1; prec <= 17; prec++) {
            snprintf(b, sizeof b, "%.*g", prec, x);
            if (strtod(b, NULL) == x)
                break;
        }
    }
    fputs(b, f);
    if (!strpbrk(b, ".eEn"))      /* keep floats visibly floats: 1 -> 1.0 (not inf/nan) */
        fputs(".0", f);
}

static void pconst(FILE *f, const IrConst *c, int depth)
{
    if (!c || !c->type || depth > 64) {
        fputs("?", f);
        return;
    }
    switch (c->type->kind) {
    case IR_TY_STR: pstr(f, c->s ? c->s : "", c->len); break;
    case IR_TY_INT: fprintf(f, "%" PRId64, c->i); break;
    case IR_TY_FLOAT: pfloat(f, c->f); break;
    case IR_TY_BOOL: fputs(c->b ? "true" : "false", f); break;
    case IR_TY_LIST:
    case IR_TY_RECORD:
        fputc(c->type->kind == IR_TY_LIST ? '[' : '{', f);
        for (uint32_t i = 0; i < c->n_items; i++) {
            if (i)
                fputs(", ", f);
            if (c->type->kind == IR_TY_RECORD && i < c->type->n_fields)
                fprintf(f, "%s: ", c->type->fields[i].name);
            pconst(f, c->items[i], depth + 1);
        }
        fputc(c->type->kind == IR_TY_LIST ? ']' : '}', f);
        break;
    default: fputs("void", f); break;
    }
}

static void pval(Pr *P, const IrNode *n)
{
    if (!n)
        fputs("%<null>", P->f);
    else if (n->id < P->fn->n_ids && P->num[n->id])
        fprintf(P->f, "%%%u", P->num[n->id] - 1);
    else
        fprintf(P->f, "%%?%u", n->id);
}

static void pslot(Pr *P, uint32_t s)
{
    if (s == IR_NO_SLOT)
        fputs("_", P->f);
    else if (s < P->fn->n_slots && P->fn->slots[s].name)
        fprintf(P->f, "%s#%u", P->fn->slots[s].name, s);
    else
        fprintf(P->f, "?#%u", s);
}

static void ptype(FILE *f, const IrType *t)
{
    char b[256];
    fputs(ir_type_name(t, b, sizeof b), f);
}

static void indent(FILE *f, int d)
{
    for (int i = 0; i < d; i++)
        fputs("  ", f);
}

static void pprefix(FILE *f, const IrPrefix *x)
{
    if (!x)
        return;
    fputc('[', f);
    for (uint32_t i = 0; i < x->n_segs; i++) {
        const IrSeg *s = &x->segs[i];
        if (i)
            fputs(", ", f);
        if (s->kind == IR_SEG_TEXT)
            pstr(f, s->text, s->len);
        else
            fprintf(f, "%s:%s", s->kind == IR_SEG_ROLE_BEGIN ? "begin" : "end",
                    ir_role_name(s->role));
    }
    fprintf(f, "] (%u bytes)", x->n_bytes);
}

static void pregion(Pr *P, const IrRegion *r, int depth);

static void pnode(Pr *P, const IrNode *n, int depth)
{
    FILE *f = P->f;
    indent(f, depth);
    if (ir_has_value(n) && n->id < P->fn->n_ids) {
        P->num[n->id] = ++P->next;
        fprintf(f, "%%%u = ", P->next - 1);
    }
    fputs(ir_op_name(n->op), f);
    switch (n->op) {
    case IR_OP_UNOP: case IR_OP_BINOP:
        fprintf(f, ".%s", ir_arith_name((IrArith)n->aop));
        break;
    case IR_OP_BUILTIN:
        fprintf(f, ".%s", ir_builtin_name((IrBuiltin)n->aop));
        break;
    case IR_OP_ROLE_BEGIN: case IR_OP_ROLE_END:
        fprintf(f, ".%s", ir_role_name((IrRole)n->aop));
        break;
    case IR_OP_SELECT:
        fprintf(f, ".%s", ir_select_method_name((IrSelectMethod)n->aop));
        break;
    default:
        break;
    }
    /* leading attribute */
    switch (n->op) {
    case IR_OP_CONST: fputc(' ', f); pconst(f, n->cnst, 0); break;
    case IR_OP_LOAD: case IR_OP_STORE: case IR_OP_META:
        fputc(' ', f);
        pslot(P, n->slot);
        break;
    case IR_OP_GEN: case IR_OP_SELECT: fprintf(f, " %s", n->name ? n->name : "?"); break;
    case IR_OP_CALL:
        fprintf(f, " %s", n->index < P->p->n_funcs ? P->p->funcs[n->index]->name : "?");
        break;
    case IR_OP_EXTERN_CALL:
        fprintf(f, " %s", n->index < P->p->n_externs ? P->p->externs[n->index].name : "?");
        break;
    case IR_OP_FIELD: case IR_OP_SET_FIELD:
        if (n->n_args && n->args[0] && n->args[0]->type &&
            n->args[0]->type->kind == IR_TY_RECORD && n->index < n->args[0]->type->n_fields)
            fprintf(f, " .%s", n->args[0]->type->fields[n->index].name);
        else
            fprintf(f, " .?%u", n->index);
        break;
    case IR_OP_FOR: case IR_OP_FORK:
        if (n->op == IR_OP_FORK || n->slot != IR_NO_SLOT) {
            fputc(' ', f);
            pslot(P, n->slot);
            fputs(" in", f);
        }
        break;
    default:
        break;
    }
    /* operands */
    if (n->op == IR_OP_GEN && n->gen) {
        fputc('(', f);
        for (uint32_t i = 0; i < n->n_args; i++) {
            fprintf(f, "%s%s=", i ? ", " : "", ir_gen_key_name(n->gen->keys[i]));
            pval(P, n->args[i]);
        }
        fputc(')', f);
    } else {
        for (uint32_t i = 0; i < n->n_args; i++) {
            fputs(i ? (n->op == IR_OP_FOR ? " .. " : ", ") : " ", f);
            pval(P, n->args[i]);
        }
    }
    /* trailing attributes */
    if (n->op == IR_OP_GEN && n->gen) {
        const IrConstraint *c = &n->gen->con;
        switch (c->kind) {
        case IR_CON_REGEX: fputs(" regex=", f); pstr(f, c->text, c->len); break;
        case IR_CON_JSON_SCHEMA: fputs(" json_schema=", f); pstr(f, c->text, c->len); break;
        case IR_CON_TYPE: fputs(" type=", f); ptype(f, c->type); break;
        case IR_CON_CHOICES: fputs(" choices=", f); pconst(f, c->choices, 0); break;
        default: break;
        }
        if (c->fsm)
            fputs(" fsm", f);
    }
    if (n->op == IR_OP_CAPTURE_END) {
        fputs(" -> ", f);
        pslot(P, n->slot);
    }
    if (n->op == IR_OP_FORK) {
        fprintf(f, " join=%s", n->aop == IR_JOIN_CONCAT ? "concat" : "gather");
        for (uint32_t i = 0; i < n->n_gather; i++) {
            fputs(i ? ", " : " gather(", f);
            pslot(P, n->gather[i].from);
            fputs(" -> ", f);
            pslot(P, n->gather[i].to);
        }
        if (n->n_gather)
            fputc(')', f);
    }
    if (n->op == IR_OP_PREFILL) {
        fputs(n->flags & IR_F_FRESH ? " fresh " : " state+", f);
        pprefix(f, n->prefix);
        if (n->index != UINT32_MAX && n->index < P->p->n_funcs && (n->flags & IR_F_FRESH))
            fprintf(f, " for %s", P->p->funcs[n->index]->name);
    }
    if (n->flags & IR_F_ASYNC)
        fputs(" async", f);
    if (n->flags & IR_F_PARALLEL)
        fputs(" parallel", f);
    if (n->group)
        fprintf(f, " group=%u", n->group);
    if (ir_has_value(n)) {
        fputs(" : ", f);
        ptype(f, n->type);
    }
    fprintf(f, "   @%u:%u", n->loc.line, n->loc.col);
    if (!n->n_regions) {
        fputc('\n', f);
        return;
    }
    for (uint32_t k = 0; k < n->n_regions; k++) {
        if (k == 0)
            fputs(" {\n", f);
        else {
            indent(f, depth);
            fputs(n->op == IR_OP_WHILE ? "} do {\n" : "} else {\n", f);
        }
        pregion(P, &n->regions[k], depth + 1);
    }
    indent(f, depth);
    fputs("}\n", f);
}

static void pregion(Pr *P, const IrRegion *r, int depth)
{
    for (uint32_t i = 0; i < r->n; i++)
        pnode(P, r->nodes[i], depth);
}

static const char *slot_kind(IrSlotKind k)
{
    static const char *const names[] = {"param", "let", "gen", "select", "capture", "for",
                                        "fork", "gather", "temp"};
    return (unsigned)k <= IR_SLOT_TEMP ? names[k] : "?";
}

void ir_print_func(FILE *f, const IrProgram *p, const IrFunc *fn)
{
    Pr P = {f, p, fn, calloc(fn->n_ids ? fn->n_ids : 1, sizeof(uint32_t)), 0};
    fprintf(f, "fn %s(", fn->name);
    for (uint32_t i = 0; i < fn->n_params && i < fn->n_slots; i++) {
        fprintf(f, "%s%s: ", i ? ", " : "", fn->slots[i].name);
        ptype(f, fn->slots[i].type);
    }
    fputs(") -> ", f);
    ptype(f, fn->ret);
    fprintf(f, "   @%u:%u\n", fn->loc.line, fn->loc.col);
    if (fn->n_slots > fn->n_params) {
        fputs("  slots:", f);
        for (uint32_t i = fn->n_params; i < fn->n_slots; i++) {
            fprintf(f, " %s#%u:", fn->slots[i].name, i);
            ptype(f, fn->slots[i].type);
            fprintf(f, "(%s)", slot_kind(fn->slots[i].kind));
        }
        fputc('\n', f);
    }
    if (!P.num) {
        fputs("  <out of memory>\n", f);
        return;
    }
    pregion(&P, &fn->body, 1);
    free(P.num);
}

void ir_print(FILE *f, const IrProgram *p)
{
    for (uint32_t i = 0; i < p->n_externs; i++) {
        const IrExtern *e = &p->externs[i];
        fprintf(f, "extern %s(", e->name);
        for (uint32_t k = 0; k < e->n_params; k++) {
            fputs(k ? ", " : "", f);
            ptype(f, e->params[k]);
        }
        fputs(") -> ", f);
        ptype(f, e->ret);
        fputs(" from ", f);
        pstr(f, e->lib, (uint32_t)strlen(e->lib));
        fputc('\n', f);
    }
    if (p->main >= 0 && (uint32_t)p->main < p->n_funcs)
        fprintf(f, "main %s\n", p->funcs[p->main]->name);
    if (p->init && p->init->body.n) {
        fputs("init: start-up prefills\n", f);
        Pr P = {f, p, p->init, calloc(p->init->n_ids ? p->init->n_ids : 1, sizeof(uint32_t)), 0};
        if (P.num)
            pregion(&P, &p->init->body, 1);
        free(P.num);
    }
    for (uint32_t i = 0; i < p->n_funcs; i++) {
        fputc('\n', f);
        ir_print_func(f, p, p->funcs[i]);
    }
}

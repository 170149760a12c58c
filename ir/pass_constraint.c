/* pass_constraint.c -- pass "constraint": every gen constraint -> DFA.
 *
 * Runs last (after forkjoin): it only attaches data to GEN nodes and never
 * changes the graph. Regex text is compiled as is; JSON schemas, typed
 * outputs and choices go through ir/fsm (jsonschema.c, typed.c) to a regex
 * first. The DFA is immutable and shared read-only by every execution of
 * the node (the runtime's token-mask registry keys on its content hash).
 */
#include "ir/pass_constraint.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/fsm/jsonschema.h"
#include "ir/fsm/typed.h"
#include "ir/pass.h"

const char *ir_con_kind_name(IrConKind k)
{
    switch (k) {
    case IR_CON_NONE: return "none";
    case IR_CON_REGEX: return "regex";
    case IR_CON_JSON_SCHEMA: return "json_schema";
    case IR_CON_TYPE: return "type";
    case IR_CON_CHOICES: return "choices";
    default: return "?";
    }
}

/* TypedType mirror of an IR type (malloc'd tree, freed by free_typed). */
static TypedType *to_typed(const IrType *t, int depth)
{
    if (depth > TYPED_MAX_DEPTH)
        return NULL;
    TypedType *tt = calloc(1, sizeof *tt);
    if (!tt)
        return NULL;
    switch (t->kind) {
    case IR_TY_INT: tt->kind = TYPED_INT; break;
    case IR_TY_FLOAT: tt->kind = TYPED_FLOAT; break;
    case IR_TY_BOOL: tt->kind = TYPED_BOOL; break;
    case IR_TY_LIST:
        tt->kind = TYPED_LIST;
        tt->elem = to_typed(t->elem, depth + 1);
        break;
    case IR_TY_RECORD: {
        tt->kind = TYPED_RECORD;
        tt->n_fields = (int32_t)t->n_fields;
        const char **names = calloc(t->n_fields + 1, sizeof *names);
        const TypedType **fs = calloc(t->n_fields + 1, sizeof *fs);
        tt->names = names;
        tt->fields = fs;
        for (uint32_t i = 0; names && fs && i < t->n_fields; i++) {
            names[i] = t->fields[i].name;
            fs[i] = to_typed(t->fields[i].type, depth + 1);
        }
        break;
    }
    default:
        tt->kind = TYPED_STR;
        break;
    }
    return tt;
}

static void free_typed(TypedType *t)
{
    if (!t)
        return;
    free_typed((TypedType *)t->elem);
    for (int32_t i = 0; t->kind == TYPED_RECORD && t->fields && i < t->n_fields; i++)
        free_typed((TypedType *)t->fields[i]);
    free((void *)t->names);
    free((void *)t->fields);
    free(t);
}

SglStatus ir_constraint_regex(const IrConstraint *c, char **out, FsmErr *err)
{
    char *re = NULL;
    SglStatus st = SGL_OK;
    *out = NULL;
    memset(err, 0, sizeof *err);
    switch (c->kind) {
    case IR_CON_REGEX:
        re = strndup(c->text, c->len);
        st = re ? SGL_OK : SGL_E_NOMEM;
        break;
    case IR_CON_JSON_SCHEMA:
        st = jsonschema_text_to_regex(c->text, c->len, NULL, &re, err);
        break;
    case IR_CON_TYPE: {
        TypedType *tt = to_typed(c->type, 0);
        st = tt ? typed_to_regex(tt, NULL, &re, err) : SGL_E_NOMEM;
        free_typed(tt);
        break;
    }
    case IR_CON_CHOICES: {
        uint32_t n = c->choices->n_items;
        const char **ch = calloc(n + 1, sizeof *ch);
        if (!ch)
            return SGL_E_NOMEM;
        for (uint32_t i = 0; i < n; i++)
            ch[i] = c->choices->items[i]->s;
        st = typed_choices_regex(ch, (int32_t)n, &re, err);
        free(ch);
        break;
    }
    default:
        snprintf(err->msg, sizeof err->msg, "no constraint");
        return SGL_E_INVAL;
    }
    if (st != SGL_OK) {
        free(re);
        return st;
    }
    *out = re;
    return SGL_OK;
}

SglStatus ir_constraint_compile(const IrConstraint *c, SglDfa **out, FsmErr *err)
{
    *out = NULL;
    if (c->kind == IR_CON_REGEX) {
        memset(err, 0, sizeof *err);
        return regex_compile(c->text, c->len, NULL, out, NULL, err);
    }
    char *re = NULL;
    SglStatus st = ir_constraint_regex(c, &re, err);
    if (st == SGL_OK)
        st = regex_compile(re, strlen(re), NULL, out, NULL, err);
    free(re);
    return st;
}

static void dfa_free_any(void *d) { sgl_dfa_free(d); }

/* Depth-first over a region; nesting is bounded by the checker's limits. */
static bool attach(IrProgram *p, IrRegion *r)
{
    for (uint32_t i = 0; i < r->n; i++) {
        IrNode *n = r->nodes[i];
        if (n->gen && n->gen->con.kind != IR_CON_NONE && !n->gen->con.fsm) {
            SglDfa *d = NULL;
            FsmErr fe;
            SglStatus st = ir_constraint_compile(&n->gen->con, &d, &fe);
            if (st == SGL_E_NOMEM) {
                p->oom = true;
                return false;
            }
            if (st == SGL_OK) {
                p->fsm_free = dfa_free_any;
                n->gen->con.fsm = d;
            }
        }
        for (uint32_t k = 0; k < n->n_regions; k++)
            if (!attach(p, &n->regions[k]))
                return false;
    }
    return true;
}

bool ir_pass_constraint(IrProgram *p)
{
    for (uint32_t i = 0; i < p->n_funcs; i++)
        if (!attach(p, &p->funcs[i]->body))
            return false;
    return true;
}

/* ---- --emit=fsm ------------------------------------------------------------ */

static void print_bytes(FILE *f, const char *s, size_t n)
{
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch == '\n')
            fputs("\\n", f);
        else if (ch < 0x20 || ch == 0x7f)
            fprintf(f, "\\x%02x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

/* The forced runs: forced(s) for states no singular transition enters. */
static void print_forced(FILE *f, const SglDfa *d)
{
    uint8_t *inside = calloc((size_t)d->n_states, 1);
    char buf[256];
    if (!inside)
        return;
    for (int32_t s = 0; s < d->n_states; s++) {
        if (d->accept[s])
            continue;
        int32_t next = -1, n_live = 0;
        for (int b = 0; b < 256 && n_live < 2; b++) {
            int32_t t = sgl_dfa_step(d, s, (uint8_t)b);
            if (t >= 0) {
                n_live++;
                next = t;
            }
        }
        if (n_live == 1)
            inside[next] = 1;
    }
    int shown = 0, total = 0;
    for (int32_t s = 0; s < d->n_states; s++) {
        size_t n = sgl_dfa_forced(d, s, buf, sizeof buf);
        if (n == 0 || (inside[s] && s != d->start))
            continue;
        total++;
        if (shown++ >= 32)
            continue;
        fputs("    forced: ", f);
        print_bytes(f, buf, n < sizeof buf ? n : sizeof buf);
        if (n > sizeof buf)
            fprintf(f, " ... (%zu bytes)", n);
        if (s == d->start)
            fputs(" (start)", f);
        fputc('\n', f);
    }
    if (total > 32)
        fprintf(f, "    ... %d more forced strings\n", total - 32);
    free(inside);
}

static void print_region(FILE *f, const IrRegion *r)
{
    for (uint32_t i = 0; i < r->n; i++) {
        const IrNode *n = r->nodes[i];
        if (n->gen && n->gen->con.kind != IR_CON_NONE) {
            const SglDfa *d = n->gen->con.fsm;
            fprintf(f, "%s:%u:%u: gen %s: %s, ", n->loc.file ? n->loc.file : "?", n->loc.line,
                    n->loc.col, n->name ? n->name : "?", ir_con_kind_name(n->gen->con.kind));
            if (d)
                fprintf(f, "%d DFA states, %d byte classes\n", (int)d->n_states, (int)d->n_classes);
            else
                fprintf(f, "not compiled\n");
            if (d)
                print_forced(f, d);
        }
        for (uint32_t k = 0; k < n->n_regions; k++)
            print_region(f, &n->regions[k]);
    }
}

void ir_fsm_print(FILE *f, const IrProgram *p)
{
    for (uint32_t i = 0; i < p->n_funcs; i++)
        print_region(f, &p->funcs[i]->body);
}

/* aot.c -- IrProgram -> C source -> executable (see aot.h).
 *
 * The emitted file is data, not code: every IR object becomes a static C
 * object initialized with the same field values, pointers becoming
 * addresses of other static objects. Names: T[] types, C<n> constants,
 * N[] all nodes of all functions (one array, global numbering), F[]
 * functions (the start-up function last), E[] externs. Objects are emitted
 * before their users except nodes, types and functions, which are arrays
 * declared first (tentative definitions) and defined at the end, so cycles
 * (a region holding its own FORK's siblings, recursive calls) need no order.
 * Deliberately simple: one pass over the program per object kind, linear
 * pointer -> index lookups (programs are small; build time, not run time).
 */
#include "backend/aot.h"

#include <errno.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend/interp.h"
#include "runtime/dfa.h"
#include "runtime/tokmask.h"

extern char **environ;

#ifndef SGL_AOT_BUILD_DIR
#define SGL_AOT_BUILD_DIR ""
#endif
#ifndef SGL_AOT_SOURCE_DIR
#define SGL_AOT_SOURCE_DIR ""
#endif
#ifndef SGL_AOT_EXTRA_LINK
#define SGL_AOT_EXTRA_LINK ""
#endif

/* ------------------------------------------------------------ tables */

typedef struct {
    const void **ptr;
    uint32_t n, cap;
    bool oom;
} PtrTab;

static int64_t tab_find(const PtrTab *t, const void *p)
{
    for (uint32_t i = 0; i < t->n; i++)
        if (t->ptr[i] == p)
            return i;
    return -1;
}

/* Index of p, adding it when new. */
static uint32_t tab_add(PtrTab *t, const void *p)
{
    int64_t i = tab_find(t, p);
    if (i >= 0)
        return (uint32_t)i;
    if (t->n == t->cap) {
        uint32_t nc = t->cap ? t->cap * 2 : 64;
        const void **np = realloc(t->ptr, nc * sizeof *np);
        if (!np) {
            t->oom = true;
            return 0;
        }
        t->ptr = np;
        t->cap = nc;
    }
    t->ptr[t->n] = p;
    return t->n++;
}

typedef struct {
    FILE *f;
    const IrProgram *p;
    PtrTab types, consts, nodes;
    /* token tables (o->tok): tab[i] = the node whose NT<n> array holds node
     * i's tables (equal DFAs share one), or -1: none */
    const SglAotOpts *o;
    TokVocab *vocab;
    int64_t *tab;
    uint32_t n_tables, n_left_out;
    uint64_t table_states, table_bytes;
} Emit;

/* ------------------------------------------------------------ text */

/* A C string literal for s[0..len) (octal escapes for everything unusual;
 * `?` escaped against trigraphs). NULL prints NULL. */
static void put_str(FILE *f, const char *s, size_t len)
{
    if (!s) {
        fputs("NULL", f);
        return;
    }
    fputc('"', f);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\' || c == '?')
            fprintf(f, "\\%c", c);
        else if (c >= 0x20 && c < 0x7f)
            fputc(c, f);
        else
            fprintf(f, "\\%03o", c);
        if (i % 120 == 119 && i + 1 < len)
            fputs("\"\n    \"", f);
    }
    fputc('"', f);
}

static void put_cstr(FILE *f, const char *s) { put_str(f, s, s ? strlen(s) : 0); }

static void put_loc(FILE *f, IrLoc l)
{
    fputs("{", f);
    put_cstr(f, l.file);
    fprintf(f, ", %uu, %uu, %uu, %uu}", l.line, l.col, l.off, l.len);
}

static void put_double(FILE *f, double d)
{
    if (d != d)
        fputs("(0.0/0.0)", f);
    else if (d == 1.0 / 0.0)
        fputs("(1.0/0.0)", f);
    else if (d == -1.0 / 0.0)
        fputs("(-1.0/0.0)", f);
    else
        fprintf(f, "%a", d);
}

/* ------------------------------------------------------------ types */

static void collect_type(Emit *e, const IrType *t)
{
    if (!t || tab_find(&e->types, t) >= 0)
        return;
    tab_add(&e->types, t);
    collect_type(e, t->elem);
    for (uint32_t i = 0; i < t->n_fields; i++)
        collect_type(e, t->fields[i].type);
}

static void put_type_ref(Emit *e, const IrType *t)
{
    int64_t i = t ? tab_find(&e->types, t) : -1;
    if (i < 0)
        fputs("NULL", e->f);
    else
        fprintf(e->f, "&T[%lld]", (long long)i);
}

static void emit_types(Emit *e)
{
    FILE *f = e->f;
    fprintf(f, "static IrType T[%u];\n", e->types.n ? e->types.n : 1);
    for (uint32_t i = 0; i < e->types.n; i++) {
        const IrType *t = e->types.ptr[i];
        if (!t->n_fields)
            continue;
        fprintf(f, "static const IrField TF%u[] = {", i);
        for (uint32_t k = 0; k < t->n_fields; k++) {
            fputs("{", f);
            put_cstr(f, t->fields[k].name);
            fputs(", ", f);
            put_type_ref(e, t->fields[k].type);
            fputs("}, ", f);
        }
        fputs("};\n", f);
    }
    fprintf(f, "static IrType T[%u] = {\n", e->types.n ? e->types.n : 1);
    for (uint32_t i = 0; i < e->types.n; i++) {
        const IrType *t = e->types.ptr[i];
        fprintf(f, "  {(IrTyKind)%d, ", (int)t->kind);
        put_type_ref(e, t->elem);
        fputs(", ", f);
        put_cstr(f, t->name);
        if (t->n_fields)
            fprintf(f, ", TF%u, %uu},\n", i, t->n_fields);
        else
            fputs(", NULL, 0},\n", f);
    }
    fputs("};\n", f);
}

/* ------------------------------------------------------------ constants */

/* Emits c (after its items) as `static const IrConst C<i>`; returns i. */
static uint32_t emit_const(Emit *e, const IrConst *c)
{
    int64_t have = tab_find(&e->consts, c);
    if (have >= 0)
        return (uint32_t)have;
    FILE *f = e->f;
    uint32_t *items = NULL;
    if (c->n_items && (items = calloc(c->n_items, sizeof *items)))
        for (uint32_t k = 0; k < c->n_items; k++)
            items[k] = emit_const(e, c->items[k]);
    if (c->n_items && !items) {
        e->consts.oom = true;
        return 0;
    }
    uint32_t i = tab_add(&e->consts, c);
    if (c->n_items) {
        fprintf(f, "static const IrConst *const CI%u[] = {", i);
        for (uint32_t k = 0; k < c->n_items; k++)
            fprintf(f, "&C%u, ", items[k]);
        fputs("};\n", f);
    }
    fprintf(f, "static const IrConst C%u = {", i);
    put_type_ref(e, c->type);
    fprintf(f, ", %lldLL, ", (long long)c->i);
    put_double(f, c->f);
    fprintf(f, ", %d, ", c->b ? 1 : 0);
    put_str(f, c->s, c->len);
    fprintf(f, ", %uu, ", c->len);
    if (c->n_items)
        fprintf(f, "CI%u, %uu};\n", i, c->n_items);
    else
        fputs("NULL, 0};\n", f);
    free(items);
    return i;
}

/* ------------------------------------------------------------ nodes */

static void collect_region(Emit *e, const IrRegion *r);

static void collect_node(Emit *e, const IrNode *n)
{
    tab_add(&e->nodes, n);
    for (uint32_t k = 0; k < n->n_regions; k++)
        collect_region(e, &n->regions[k]);
}

static void collect_region(Emit *e, const IrRegion *r)
{
    for (uint32_t i = 0; i < r->n; i++)
        collect_node(e, r->nodes[i]);
}

static void put_node_ref(Emit *e, const IrNode *n)
{
    int64_t i = tab_find(&e->nodes, n);
    if (i < 0)
        fputs("NULL", e->f);
    else
        fprintf(e->f, "&N[%lld]", (long long)i);
}

/* `static IrNode *<name>[] = {...}` for a region's node list. */
static void emit_region_nodes(Emit *e, const char *name, const IrRegion *r)
{
    if (!r->n)
        return;
    fprintf(e->f, "static IrNode *%s[] = {", name);
    for (uint32_t i = 0; i < r->n; i++) {
        put_node_ref(e, r->nodes[i]);
        fputs(", ", e->f);
    }
    fputs("};\n", e->f);
}

static void put_region(Emit *e, const char *name, const IrRegion *r)
{
    if (r->n)
        fprintf(e->f, "{%s, %uu, %uu}", name, r->n, r->n);
    else
        fputs("{NULL, 0, 0}", e->f);
}

/* Node i's token tables as `static const uint8_t NT<i>[]` (e->tab[i] = i),
 * or a reference to an earlier equal DFA's; tables over the cap are left
 * out with a note (that constraint's masks are then computed at run time). */
static void emit_tables(Emit *e, uint32_t i)
{
    const IrNode *n = e->nodes.ptr[i];
    const SglDfa *d = n->gen->con.fsm;
    for (uint32_t j = 0; j < i; j++) {
        const IrNode *m = e->nodes.ptr[j];
        const SglDfa *md = m->gen ? m->gen->con.fsm : NULL;
        if (e->tab[j] == (int64_t)j && md && md->hash == d->hash && sgl_dfa_equal(md, d)) {
            e->tab[i] = j;
            return;
        }
    }
    uint8_t *bytes = NULL;
    size_t nb = 0;
    TokTablesInfo info;
    SglErr err = {{0}};
    size_t cap = e->o->table_cap_bytes ? e->o->table_cap_bytes : (size_t)64 << 20;
    SglStatus st = tokmask_tables_serialize(d, e->vocab, cap, &bytes, &nb, &info, &err);
    if (st != SGL_OK) {
        if (st == SGL_E_NOMEM)
            e->consts.oom = true;
        else if (e->o->notes)
            fprintf(e->o->notes, "%s:%u:%u: note: no token tables embedded for this constraint "
                                 "(%s); its masks are computed at run time\n",
                    n->loc.file ? n->loc.file : "?", n->loc.line, n->loc.col, err.msg);
        e->n_left_out++;
        return;
    }
    fprintf(e->f, "static const uint8_t NT%u[] = {", i);
    for (size_t k = 0; k < nb; k++)
        fprintf(e->f, "%s%u,", k % 32 == 0 ? "\n  " : "", bytes[k]);
    fputs("\n};\n", e->f);
    free(bytes);
    e->tab[i] = i;
    e->n_tables++;
    e->table_states += (uint64_t)info.n_states;
    e->table_bytes += nb;
}

/* The side objects of node i (operands, regions, gen info, prefix, gather). */
static void emit_node_parts(Emit *e, uint32_t i)
{
    FILE *f = e->f;
    const IrNode *n = e->nodes.ptr[i];
    char name[64];
    if (n->n_args) {
        fprintf(f, "static IrNode *NA%u[] = {", i);
        for (uint32_t k = 0; k < n->n_args; k++) {
            put_node_ref(e, n->args[k]);
            fputs(", ", f);
        }
        fputs("};\n", f);
    }
    if (n->n_regions) {
        for (uint32_t k = 0; k < n->n_regions; k++) {
            snprintf(name, sizeof name, "NRN%u_%u", i, k);
            emit_region_nodes(e, name, &n->regions[k]);
        }
        fprintf(f, "static IrRegion NR%u[] = {", i);
        for (uint32_t k = 0; k < n->n_regions; k++) {
            snprintf(name, sizeof name, "NRN%u_%u", i, k);
            put_region(e, name, &n->regions[k]);
            fputs(", ", f);
        }
        fputs("};\n", f);
    }
    if (n->cnst)
        emit_const(e, n->cnst);
    if (n->gen) {
        const IrConstraint *c = &n->gen->con;
        int64_t ch = c->choices ? (int64_t)emit_const(e, c->choices) : -1;
        if (n->n_args) {
            fprintf(f, "static IrGenKey NGK%u[] = {", i);
            for (uint32_t k = 0; k < n->n_args; k++)
                fprintf(f, "(IrGenKey)%d, ", (int)n->gen->keys[k]);
            fputs("};\n", f);
        }
        if (c->fsm) {   /* the constraint pass's DFA, as bytes (aot.h) */
            uint8_t *bytes = NULL;
            size_t nb = 0;
            if (sgl_dfa_serialize(c->fsm, &bytes, &nb) != SGL_OK) {
                e->consts.oom = true;
                return;
            }
            fprintf(f, "static const uint8_t ND%u[] = {", i);
            for (size_t k = 0; k < nb; k++)
                fprintf(f, "%s%u,", k % 32 == 0 ? "\n  " : "", bytes[k]);
            fputs("\n};\n", f);
            free(bytes);
            if (e->vocab)
                emit_tables(e, i);
        }
        fprintf(f, "static IrGenInfo NG%u = {", i);
        if (n->n_args)
            fprintf(f, "NGK%u", i);
        else
            fputs("NULL", f);
        fprintf(f, ", {(IrConKind)%d, ", (int)c->kind);
        put_str(f, c->text, c->len);
        fprintf(f, ", %uu, ", c->len);
        put_type_ref(e, c->type);
        if (ch >= 0)
            fprintf(f, ", &C%lld, NULL}, %d};\n", (long long)ch, n->gen->has_n ? 1 : 0);
        else
            fprintf(f, ", NULL, NULL}, %d};\n", n->gen->has_n ? 1 : 0);
    }
    if (n->prefix) {
        const IrPrefix *px = n->prefix;
        if (px->n_segs) {
            fprintf(f, "static IrSeg NPS%u[] = {", i);
            for (uint32_t k = 0; k < px->n_segs; k++) {
                fprintf(f, "{(IrSegKind)%d, (IrRole)%d, ", (int)px->segs[k].kind, (int)px->segs[k].role);
                put_str(f, px->segs[k].text, px->segs[k].len);
                fprintf(f, ", %uu}, ", px->segs[k].len);
            }
            fputs("};\n", f);
        }
        fprintf(f, "static IrPrefix NP%u = {", i);
        if (px->n_segs)
            fprintf(f, "NPS%u", i);
        else
            fputs("NULL", f);
        fprintf(f, ", %uu, %uu};\n", px->n_segs, px->n_bytes);
    }
    if (n->n_gather) {
        fprintf(f, "static IrGather NGA%u[] = {", i);
        for (uint32_t k = 0; k < n->n_gather; k++)
            fprintf(f, "{%uu, %uu}, ", n->gather[k].from, n->gather[k].to);
        fputs("};\n", f);
    }
}

static void emit_node(Emit *e, uint32_t i)
{
    FILE *f = e->f;
    const IrNode *n = e->nodes.ptr[i];
    fprintf(f, "  [%u] = {(IrOp)%d, %uu, ", i, (int)n->op, n->id);
    put_type_ref(e, n->type);
    if (n->n_args)
        fprintf(f, ", NA%u, %uu, ", i, n->n_args);
    else
        fputs(", NULL, 0, ", f);
    if (n->n_regions)
        fprintf(f, "NR%u, %uu, ", i, n->n_regions);
    else
        fputs("NULL, 0, ", f);
    put_loc(f, n->loc);
    fprintf(f, ", %uu, %uu, %d, %uu, %uu, ", n->flags, n->group, n->aop, n->slot, n->index);
    if (n->cnst)
        fprintf(f, "&C%lld, ", (long long)tab_find(&e->consts, n->cnst));
    else
        fputs("NULL, ", f);
    put_cstr(f, n->name);
    fputs(n->gen ? ", " : ", NULL, ", f);
    if (n->gen)
        fprintf(f, "&NG%u, ", i);
    if (n->prefix)
        fprintf(f, "&NP%u, ", i);
    else
        fputs("NULL, ", f);
    if (n->n_gather)
        fprintf(f, "NGA%u, %uu},\n", i, n->n_gather);
    else
        fputs("NULL, 0},\n", f);
}

/* ------------------------------------------------------------ functions */

static void emit_func_parts(Emit *e, const IrFunc *fn, uint32_t fi)
{
    FILE *f = e->f;
    char name[64];
    if (fn->n_slots) {
        fprintf(f, "static IrSlot FS%u[] = {", fi);
        for (uint32_t k = 0; k < fn->n_slots; k++) {
            fputs("{", f);
            put_cstr(f, fn->slots[k].name);
            fputs(", ", f);
            put_type_ref(e, fn->slots[k].type);
            fprintf(f, ", (IrSlotKind)%d}, ", (int)fn->slots[k].kind);
        }
        fputs("};\n", f);
    }
    snprintf(name, sizeof name, "FB%u", fi);
    emit_region_nodes(e, name, &fn->body);
}

static void emit_func(Emit *e, const IrFunc *fn, uint32_t fi)
{
    FILE *f = e->f;
    char name[64];
    snprintf(name, sizeof name, "FB%u", fi);
    fputs("  {", f);
    put_cstr(f, fn->name);
    fputs(", ", f);
    put_type_ref(e, fn->ret);
    fprintf(f, ", %uu, ", fn->n_params);
    if (fn->n_slots)
        fprintf(f, "FS%u, %uu, ", fi, fn->n_slots);
    else
        fputs("NULL, 0, ", f);
    put_region(e, name, &fn->body);
    fprintf(f, ", %uu, ", fn->n_ids);
    put_loc(f, fn->loc);
    fputs("},\n", f);
}

/* ------------------------------------------------------------ program */

static const char *prelude =
    "/* Generated by `sglc build`: the IR of %s as static data, run by the\n"
    " * sglc run command line (backend/run_main.h). Do not edit. */\n"
    "#include <stddef.h>\n#include <stdint.h>\n#include <string.h>\n\n"
    "#include \"backend/aot.h\"\n#include \"backend/run_main.h\"\n\n";

bool sgl_aot_emit(const IrProgram *p, const SglAotOpts *o, FILE *f, char *msg, size_t cap)
{
    Emit e = {.f = f, .p = p};
    bool ok = false;
    const IrFunc *init = p->init;
    uint32_t n_funcs = p->n_funcs + (init ? 1 : 0);
    fprintf(f, prelude, o->source_name ? o->source_name : "a program");
    /* collect */
    const IrType *prim[] = {p->t_void, p->t_str, p->t_int, p->t_float, p->t_bool, p->t_meta};
    for (size_t i = 0; i < sizeof prim / sizeof prim[0]; i++)
        collect_type(&e, prim[i]);
    for (uint32_t i = 0; i < p->n_types; i++)
        collect_type(&e, p->types[i]);
    for (uint32_t i = 0; i < n_funcs; i++) {
        const IrFunc *fn = i < p->n_funcs ? p->funcs[i] : init;
        collect_type(&e, fn->ret);
        for (uint32_t k = 0; k < fn->n_slots; k++)
            collect_type(&e, fn->slots[k].type);
        collect_region(&e, &fn->body);
    }
    for (uint32_t i = 0; i < e.nodes.n; i++) {
        const IrNode *n = e.nodes.ptr[i];
        collect_type(&e, n->type);
        if (n->cnst)
            collect_type(&e, n->cnst->type);
        if (n->gen) {
            collect_type(&e, n->gen->con.type);
            if (n->gen->con.choices)
                collect_type(&e, n->gen->con.choices->type);
        }
    }
    for (uint32_t i = 0; i < p->n_externs; i++) {
        collect_type(&e, p->externs[i].ret);
        for (uint32_t k = 0; k < p->externs[i].n_params; k++)
            collect_type(&e, p->externs[i].params[k]);
    }
    if (e.types.oom || e.nodes.oom)
        goto oom;
    e.o = o;
    if (o->tok) {
        SglErr err = {{0}};
        if (tokvocab_new(o->tok, &e.vocab, &err) != SGL_OK) {
            snprintf(msg, cap, "cannot read the tokenizer's vocabulary: %s", err.msg);
            goto out;
        }
        if (!(e.tab = malloc(((size_t)e.nodes.n + 1) * sizeof *e.tab)))
            goto oom;
        for (uint32_t i = 0; i < e.nodes.n; i++)
            e.tab[i] = -1;
    }
    /* emit */
    emit_types(&e);
    fprintf(f, "static IrNode N[%u];\n", e.nodes.n ? e.nodes.n : 1);
    for (uint32_t i = 0; i < e.nodes.n; i++)
        emit_node_parts(&e, i);
    if (e.consts.oom)
        goto oom;
    fprintf(f, "static IrNode N[%u] = {\n", e.nodes.n ? e.nodes.n : 1);
    for (uint32_t i = 0; i < e.nodes.n; i++)
        emit_node(&e, i);
    fputs("};\n", f);
    for (uint32_t i = 0; i < n_funcs; i++)
        emit_func_parts(&e, i < p->n_funcs ? p->funcs[i] : init, i);
    fprintf(f, "static IrFunc F[%u] = {\n", n_funcs ? n_funcs : 1);
    for (uint32_t i = 0; i < n_funcs; i++)
        emit_func(&e, i < p->n_funcs ? p->funcs[i] : init, i);
    fputs("};\n", f);
    if (p->n_funcs) {
        fputs("static IrFunc *FP[] = {", f);
        for (uint32_t i = 0; i < p->n_funcs; i++)
            fprintf(f, "&F[%u], ", i);
        fputs("};\n", f);
    }
    for (uint32_t i = 0; i < p->n_externs; i++) {
        const IrExtern *x = &p->externs[i];
        if (!x->n_params)
            continue;
        fprintf(f, "static const IrType *EP%u[] = {", i);
        for (uint32_t k = 0; k < x->n_params; k++) {
            put_type_ref(&e, x->params[k]);
            fputs(", ", f);
        }
        fputs("};\n", f);
    }
    if (p->n_externs) {
        fputs("static IrExtern E[] = {\n", f);
        for (uint32_t i = 0; i < p->n_externs; i++) {
            const IrExtern *x = &p->externs[i];
            fputs("  {", f);
            put_cstr(f, x->name);
            fputs(", ", f);
            put_cstr(f, x->lib);
            if (x->n_params)
                fprintf(f, ", EP%u, %uu, ", i, x->n_params);
            else
                fputs(", NULL, 0, ", f);
            put_type_ref(&e, x->ret);
            fputs(", ", f);
            put_loc(f, x->loc);
            fputs("},\n", f);
        }
        fputs("};\n", f);
    }
    if (p->n_types) {
        fputs("static IrType *TP[] = {", f);
        for (uint32_t i = 0; i < p->n_types; i++)
            fprintf(f, "&T[%lld], ", (long long)tab_find(&e.types, p->types[i]));
        fputs("};\n", f);
    }
    fprintf(f, "static IrProgram PROG = {\n  .funcs = %s, .n_funcs = %uu, .cap_funcs = %uu,\n",
            p->n_funcs ? "FP" : "NULL", p->n_funcs, p->n_funcs);
    fprintf(f, "  .externs = %s, .n_externs = %uu, .cap_externs = %uu, .main = %d,\n",
            p->n_externs ? "E" : "NULL", p->n_externs, p->n_externs, (int)p->main);
    if (init)
        fprintf(f, "  .init = &F[%u],\n", p->n_funcs);
    const char *pn[] = {"t_void", "t_str", "t_int", "t_float", "t_bool", "t_meta"};
    for (size_t i = 0; i < sizeof prim / sizeof prim[0]; i++) {
        fprintf(f, "  .%s = ", pn[i]);
        put_type_ref(&e, prim[i]);
        fputs(",\n", f);
    }
    fprintf(f, "  .types = %s, .n_types = %uu, .cap_types = %uu, .next_group = %uu, .n_nodes = %uu,\n};\n\n",
            p->n_types ? "TP" : "NULL", p->n_types, p->n_types, p->next_group, p->n_nodes);
    /* the entry point */
    if (e.consts.oom)
        goto oom;
    fputs("static IrProgram *load(void *user, const char *file, const SglRunLoadOpts *o)\n"
          "{\n    (void)user; (void)file; (void)o;\n    return &PROG;\n}\n\n", f);
    if (o->model_dir) {
        fputs("static const char MODEL[] = ", f);
        put_cstr(f, o->model_dir);
        fprintf(f, ";\n\nstatic bool check(void *user, SglEngine *e, const char *dir, char *msg, size_t cap)\n"
                   "{\n    (void)user;\n    return sgl_aot_check_vocab(e, 0x%016llxULL, MODEL, dir, msg, cap);\n}\n\n",
                (unsigned long long)o->vocab_hash);
    }
    if (e.n_tables) {
        fputs("static const SglAotTables TABLES[] = {\n", f);
        for (uint32_t i = 0; i < e.nodes.n; i++)
            if (e.tab[i] >= 0)
                fprintf(f, "  {&N[%u], NT%lld, sizeof NT%lld},\n", i, (long long)e.tab[i],
                        (long long)e.tab[i]);
        fputs("};\n\nstatic bool prepare(void *user, struct SglExec *x, const char *dir, char *msg, size_t cap)\n"
              "{\n    (void)user;\n    return sgl_aot_load_tables(x, TABLES, sizeof TABLES / sizeof TABLES[0], "
              "MODEL, dir, msg, cap);\n}\n\n", f);
    }
    fputs("int main(int argc, char **argv)\n{\n"
          "    const char *name = strrchr(argv[0], '/');\n"
          "    SglRunMain m = {.cmd = name ? name + 1 : argv[0], .load = load};\n", f);
    for (uint32_t i = 0; i < e.nodes.n; i++) {
        const IrNode *n = e.nodes.ptr[i];
        if (n->gen && n->gen->con.fsm)
            fprintf(f, "    if (!sgl_aot_attach_dfa(&NG%u, ND%u, sizeof ND%u, m.cmd))\n"
                       "        return 1;\n", i, i, i);
    }
    if (o->model_dir)
        fputs("    m.model_default = MODEL;\n    m.check_model = check;\n", f);
    if (e.n_tables)
        fputs("    m.prepare_exec = prepare;\n", f);
    fputs("    return sgl_run_main(&m, argc, argv);\n}\n", f);
    if (ferror(f)) {
        snprintf(msg, cap, "cannot write the C file: %s", strerror(errno));
        goto out;
    }
    if (o->tok && o->notes) {
        bool mib = e.table_bytes >= (1u << 20);
        fprintf(o->notes, "embedded token tables: %u constraint%s, %llu states, %.1f %s",
                e.n_tables, e.n_tables == 1 ? "" : "s", (unsigned long long)e.table_states,
                (double)e.table_bytes / (mib ? 1 << 20 : 1 << 10), mib ? "MiB" : "KiB");
        if (e.n_left_out)
            fprintf(o->notes, " (%u left out: computed at run time)", e.n_left_out);
        fputc('\n', o->notes);
    }
    ok = true;
    goto out;
oom:
    snprintf(msg, cap, "out of memory");
out:
    tokvocab_free(e.vocab);
    free(e.tab);
    free(e.types.ptr);
    free(e.consts.ptr);
    free(e.nodes.ptr);
    return ok;
}

/* ------------------------------------------------------------ link */

/* Runs argv; true when it exited 0. *spawned false: it could not start. */
static bool run_cmd(char *const *argv, bool *spawned)
{
    pid_t pid;
    *spawned = posix_spawnp(&pid, argv[0], NULL, NULL, argv, environ) == 0;
    if (!*spawned)
        return false;
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return false;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

bool sgl_aot_link(const char *c_path, const char *out_path, char *msg, size_t cap)
{
    static const char *const libs[] = {"backend/libsglaot.a", "backend/libsglrunmain.a",
                                       "backend/libsglbackend.a", "ir/libsglir.a",
                                       "runtime/libsglrt.a", "kernels/libsglk.a"};
    const char *build = getenv("SGLC_LIB_DIR"), *src = getenv("SGLC_INCLUDE_DIR");
    const char *cc = getenv("CC");
    if (!build || !*build)
        build = SGL_AOT_BUILD_DIR;
    if (!src || !*src)
        src = SGL_AOT_SOURCE_DIR;
    if (!cc || !*cc)
        cc = "cc";
    enum { MAX_ARGV = 96 };
    char *argv[MAX_ARGV + 1] = {0};
    char *owned[MAX_ARGV] = {0};
    int n = 0, n_owned = 0;
    bool ok = false;
    char *ccdup = strdup(cc), *extra = strdup(SGL_AOT_EXTRA_LINK), *save = NULL;
    if (!ccdup || !extra) {
        snprintf(msg, cap, "out of memory");
        goto out;
    }
    for (char *w = strtok_r(ccdup, " ", &save); w && n < 8; w = strtok_r(NULL, " ", &save))
        argv[n++] = w;
    if (n == 0) {
        snprintf(msg, cap, "$CC is blank");
        goto out;
    }
    char inc[4200];
    snprintf(inc, sizeof inc, "%s/ir/ir.h", src);
    if (access(inc, R_OK) != 0) {
        snprintf(msg, cap, "sglc headers not found: %s is missing (set $SGLC_INCLUDE_DIR to the "
                           "sglc source directory)", inc);
        goto out;
    }
    snprintf(inc, sizeof inc, "-I%s", src);
    argv[n++] = "-std=gnu17";
    argv[n++] = "-O1";
    argv[n++] = "-w";
    argv[n++] = inc;
    argv[n++] = (char *)c_path;
    argv[n++] = "-o";
    argv[n++] = (char *)out_path;
    for (size_t i = 0; i < sizeof libs / sizeof libs[0]; i++) {
        char *path = malloc(strlen(build) + strlen(libs[i]) + 2);
        if (!path) {
            snprintf(msg, cap, "out of memory");
            goto out;
        }
        sprintf(path, "%s/%s", build, libs[i]);
        owned[n_owned++] = path;
        if (access(path, R_OK) != 0) {
            if (strstr(libs[i], "libsglk"))   /* only in CUDA builds */
                continue;
            snprintf(msg, cap, "sglc library not found: %s (set $SGLC_LIB_DIR to the meson build "
                               "directory sglc was built in)", path);
            goto out;
        }
        argv[n++] = path;
    }
    for (char *w = strtok_r(extra, " ", &save); w && n < MAX_ARGV; w = strtok_r(NULL, " ", &save))
        argv[n++] = w;
    bool spawned;
    if (run_cmd(argv, &spawned)) {
        ok = true;
    } else if (!spawned) {
        snprintf(msg, cap, "cannot run the C compiler '%s' (install cc, or set $CC)", argv[0]);
    } else {
        snprintf(msg, cap, "the C compiler '%s' failed on %s (its messages are above)", argv[0],
                 c_path);
    }
out:
    for (int i = 0; i < n_owned; i++)
        free(owned[i]);
    free(ccdup);
    free(extra);
    return ok;
}

/* ------------------------------------------------------------ model check */

bool sgl_aot_vocab_hash(const SglTokenizer *t, uint64_t *out, char *msg, size_t cap)
{
    if (tokvocab_hash_of(t, out) != SGL_OK) {
        snprintf(msg, cap, "cannot read the tokenizer's vocabulary: out of memory");
        return false;
    }
    return true;
}

bool sgl_aot_check_vocab(SglEngine *e, uint64_t want, const char *built_for,
                         const char *model_dir, char *msg, size_t cap)
{
    uint64_t have = 0;
    if (!sgl_aot_vocab_hash(sgl_engine_tokenizer(e), &have, msg, cap))
        return false;
    if (have != want) {
        snprintf(msg, cap, "the model %s has a different tokenizer than the one this program was "
                           "built for (%s): vocabulary hash %016llx, expected %016llx; rebuild with "
                           "`sglc build --model %s`", model_dir, built_for, (unsigned long long)have,
                 (unsigned long long)want, model_dir);
        return false;
    }
    return true;
}

bool sgl_aot_attach_dfa(IrGenInfo *g, const uint8_t *bytes, size_t len, const char *cmd)
{
    SglDfa *d = NULL;
    SglErr err = {{0}};
    if (sgl_dfa_deserialize(bytes, len, &d, &err) != SGL_OK) {
        fprintf(stderr, "%s: the embedded constraint automaton is damaged: %s\n", cmd, err.msg);
        return false;
    }
    g->con.fsm = d;
    return true;
}

bool sgl_aot_load_tables(struct SglExec *x, const SglAotTables *t, size_t n,
                         const char *built_for, const char *model_dir, char *msg, size_t cap)
{
    for (size_t i = 0; i < n; i++) {
        const IrNode *g = t[i].gen;
        SglErr err = {{0}};
        SglStatus st = tokreg_load_tables(x->tokreg, g->gen->con.fsm, x->tok, t[i].bytes,
                                          t[i].len, &err);
        if (st == SGL_E_INVAL) {
            snprintf(msg, cap, "the model %s has a different tokenizer than the one this program "
                               "was built for (%s): %s; rebuild with `sglc build --model %s`",
                     model_dir, built_for, err.msg, model_dir);
            return false;
        }
        if (st != SGL_OK) {
            snprintf(msg, cap, "%s:%u:%u: the embedded token tables of this constraint are "
                               "damaged: %s", g->loc.file ? g->loc.file : "?", g->loc.line,
                     g->loc.col, err.msg);
            return false;
        }
    }
    return true;
}

/* test_ir.c -- the IR: verifier, printer, pass manager, folding, prefix
 * hoisting, fork/join grouping (ir/, frontend/lower.c).
 *
 * Programs are compiled from .sgl text through the real frontend and
 * lowering; broken graphs for the verifier are built by hand with the
 * ir.h builder API. Every example in examples/ is lowered and run through
 * every pass with verification on.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>

#include <cmocka.h>

#include "frontend/compile.h"
#include "frontend/lower.h"
#include "ir/ir.h"
#include "ir/pass.h"

/* ------------------------------------------------------------ helpers */

static IrProgram *lower_src(const char *src)
{
    SglCompile c;
    sgl_compile_init(&c);
    bool ok = sgl_compile_buffer(&c, "t.sgl", src, strlen(src));
    if (!ok)
        sgl_diags_render(&c.diags, stderr);
    assert_true(ok);
    IrProgram *p = sgl_lower(c.program, &c.diags);
    sgl_compile_deinit(&c);      /* the IR must not point into the compilation */
    assert_non_null(p);
    assert_true(ir_verify(p, stderr));
    return p;
}

static IrProgram *compile_passes(const char *src, const char *disabled)
{
    IrProgram *p = lower_src(src);
    IrPassOptions o = {0};
    o.verify = true;
    if (disabled)
        o.disabled[o.n_disabled++] = disabled;
    assert_true(ir_passes_run(p, &o));
    return p;
}

static char *print_str(const IrProgram *p)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    ir_print(f, p);
    fclose(f);
    return buf;
}

static const IrFunc *func(const IrProgram *p, const char *name)
{
    for (uint32_t i = 0; i < p->n_funcs; i++)
        if (strcmp(p->funcs[i]->name, name) == 0)
            return p->funcs[i];
    fail_msg("no function %s", name);
    return NULL;
}

/* The i-th node of op `op` in region r and its sub-regions (pre-order). */
static IrNode *find_op(const IrRegion *r, IrOp op, int *nth)
{
    for (uint32_t i = 0; i < r->n; i++) {
        IrNode *n = r->nodes[i];
        if (n->op == op && (*nth)-- == 0)
            return n;
        for (uint32_t k = 0; k < n->n_regions; k++) {
            IrNode *m = find_op(&n->regions[k], op, nth);
            if (m)
                return m;
        }
    }
    return NULL;
}

static IrNode *nth_op(const IrFunc *f, IrOp op, int nth)
{
    return find_op(&f->body, op, &nth);
}

static int index_in(const IrRegion *r, const IrNode *n)
{
    for (uint32_t i = 0; i < r->n; i++)
        if (r->nodes[i] == n)
            return (int)i;
    return -1;
}

/* Text of a prefix (role markers as <user>...</user>). */
static void prefix_text(const IrPrefix *x, char *buf, size_t cap)
{
    size_t at = 0;
    buf[0] = 0;
    for (uint32_t i = 0; i < x->n_segs; i++) {
        const IrSeg *s = &x->segs[i];
        if (s->kind == IR_SEG_TEXT)
            at += (size_t)snprintf(buf + at, cap - at, "%.*s", (int)s->len, s->text);
        else
            at += (size_t)snprintf(buf + at, cap - at, "<%s%s>",
                                   s->kind == IR_SEG_ROLE_END ? "/" : "", ir_role_name(s->role));
        if (at >= cap)
            return;
    }
}

static const IrNode *init_prefill_for(const IrProgram *p, const char *fn)
{
    if (!p->init)
        return NULL;
    for (uint32_t i = 0; i < p->init->body.n; i++) {
        const IrNode *n = p->init->body.nodes[i];
        if (n->op == IR_OP_PREFILL && n->index < p->n_funcs &&
            strcmp(p->funcs[n->index]->name, fn) == 0)
            return n;
    }
    return NULL;
}

/* ------------------------------------------------------------ verifier */

/* A hand-built valid function: fn f(x: str) { APPEND x }. */
static IrProgram *tiny(IrFunc **out)
{
    IrProgram *p = ir_program_new();
    assert_non_null(p);
    IrFunc *f = ir_func_new(p, "f", 1, 1);
    assert_non_null(f);
    f->slots[0] = (IrSlot){"x", p->t_str, IR_SLOT_PARAM};
    IrLoc l = {"t", 1, 1, 0, 1};
    IrNode *ld = ir_node_new(p, f, IR_OP_LOAD, p->t_str, 0, 0, l);
    ld->slot = 0;
    IrNode *ap = ir_node_new(p, f, IR_OP_APPEND, NULL, 1, 0, l);
    ap->args[0] = ld;
    assert_true(ir_region_push(p, &f->body, ld));
    assert_true(ir_region_push(p, &f->body, ap));
    *out = f;
    return p;
}

static bool verify_quiet(const IrProgram *p)
{
    return ir_verify(p, NULL);
}

static void test_verify_valid_and_use_before_def(void **state)
{
    (void)state;
    IrFunc *f;
    IrProgram *p = tiny(&f);
    assert_true(verify_quiet(p));
    /* swap: APPEND before the LOAD it reads */
    IrNode *t = f->body.nodes[0];
    f->body.nodes[0] = f->body.nodes[1];
    f->body.nodes[1] = t;
    assert_false(verify_quiet(p));
    ir_program_free(p);
}

static void test_verify_types_and_slots(void **state)
{
    (void)state;
    IrFunc *f;
    IrProgram *p = tiny(&f);
    IrLoc l = {0};
    /* APPEND of an int */
    IrNode *c = ir_node_new(p, f, IR_OP_CONST, p->t_int, 0, 0, l);
    c->cnst = ir_const_new(p, p->t_int);
    IrNode *ap = ir_node_new(p, f, IR_OP_APPEND, NULL, 1, 0, l);
    ap->args[0] = c;
    ir_region_push(p, &f->body, c);
    ir_region_push(p, &f->body, ap);
    assert_false(verify_quiet(p));
    ir_region_remove(&f->body, 3);
    assert_true(verify_quiet(p));
    /* STORE of an int into the str slot */
    IrNode *st = ir_node_new(p, f, IR_OP_STORE, NULL, 1, 0, l);
    st->args[0] = c;
    st->slot = 0;
    ir_region_push(p, &f->body, st);
    assert_false(verify_quiet(p));
    st->slot = 7;              /* out of range */
    assert_false(verify_quiet(p));
    ir_region_remove(&f->body, 3);
    assert_true(verify_quiet(p));
    ir_program_free(p);
}

static void test_verify_region_scoping_and_exits(void **state)
{
    (void)state;
    IrFunc *f;
    IrProgram *p = tiny(&f);
    IrLoc l = {0};
    IrNode *b = ir_node_new(p, f, IR_OP_CONST, p->t_bool, 0, 0, l);
    b->cnst = ir_const_new(p, p->t_bool);
    IrNode *iff = ir_node_new(p, f, IR_OP_IF, NULL, 1, 2, l);
    iff->args[0] = b;
    IrNode *inner = ir_node_new(p, f, IR_OP_CONST, p->t_str, 0, 0, l);
    inner->cnst = ir_const_new(p, p->t_str);
    ((IrConst *)inner->cnst)->s = "";
    ir_region_push(p, &iff->regions[0], inner);
    ir_region_push(p, &f->body, b);
    ir_region_push(p, &f->body, iff);
    assert_true(verify_quiet(p));
    /* a use of the then-region's value after the IF */
    IrNode *ap = ir_node_new(p, f, IR_OP_APPEND, NULL, 1, 0, l);
    ap->args[0] = inner;
    ir_region_push(p, &f->body, ap);
    assert_false(verify_quiet(p));
    ir_region_remove(&f->body, f->body.n - 1);
    /* BREAK outside any loop */
    IrNode *br = ir_node_new(p, f, IR_OP_BREAK, NULL, 0, 0, l);
    ir_region_push(p, &iff->regions[1], br);
    assert_false(verify_quiet(p));
    ir_region_remove(&iff->regions[1], 0);
    /* an unclosed role */
    IrNode *rb = ir_node_new(p, f, IR_OP_ROLE_BEGIN, NULL, 0, 0, l);
    rb->aop = IR_ROLE_USER;
    ir_region_push(p, &f->body, rb);
    assert_false(verify_quiet(p));
    IrNode *re = ir_node_new(p, f, IR_OP_ROLE_END, NULL, 0, 0, l);
    re->aop = IR_ROLE_USER;
    ir_region_push(p, &f->body, re);
    assert_true(verify_quiet(p));
    /* wrong region count */
    iff->n_regions = 1;
    assert_false(verify_quiet(p));
    iff->n_regions = 2;
    assert_true(verify_quiet(p));
    ir_program_free(p);
}

static void test_verify_async_calls(void **state)
{
    (void)state;
    IrProgram *p = lower_src(
        "fn g(x: str) -> str { \"{x}\"\n gen y\n return y }\n"
        "fn main(a: str) { let r = g(a)\n \"x\"\n \"{r}\" }\n");
    IrPassOptions o = {0};
    o.verify = true;
    o.disabled[o.n_disabled++] = "prefix_hoist";
    assert_true(ir_passes_run(p, &o));
    const IrFunc *m = func(p, "main");
    IrNode *call = nth_op(m, IR_OP_CALL, 0);
    IrNode *aw = nth_op(m, IR_OP_AWAIT, 0);
    assert_non_null(call);
    assert_non_null(aw);
    assert_true(call->flags & IR_F_ASYNC);
    assert_true(verify_quiet(p));
    /* remove the AWAIT (and the STORE that reads it): the future is never awaited */
    IrRegion *body = (IrRegion *)&m->body;
    int ai = index_in(body, aw);
    ir_region_remove(body, (uint32_t)ai);
    assert_false(verify_quiet(p));
    ir_region_insert(p, body, (uint32_t)ai, aw);
    assert_true(verify_quiet(p));
    /* awaited twice */
    IrNode *aw2 = ir_node_new(p, (IrFunc *)m, IR_OP_AWAIT, call->type, 1, 0, call->loc);
    aw2->args[0] = call;
    ir_region_insert(p, body, (uint32_t)ai + 1, aw2);
    assert_false(verify_quiet(p));
    ir_region_remove(body, (uint32_t)ai + 1);
    assert_true(verify_quiet(p));
    /* a direct use of the future */
    IrNode *st = body->nodes[ai + 1];
    assert_int_equal(st->op, IR_OP_STORE);
    st->args[0] = call;
    assert_false(verify_quiet(p));
    st->args[0] = aw;
    /* arity mismatch */
    call->n_args = 0;
    assert_false(verify_quiet(p));
    call->n_args = 1;
    assert_true(verify_quiet(p));
    ir_program_free(p);
}

/* ------------------------------------------------------------ printer */

static const char *const SIMPLE =
    "fn main(q: str) {\n"
    "    \"Q: {q}\\n\"\n"
    "    gen a(max_tokens: 8, stop: \"\\n\")\n"
    "}\n";

static void test_print_stable(void **state)
{
    (void)state;
    IrProgram *p = lower_src(SIMPLE);
    char *a = print_str(p), *b = print_str(p);
    assert_string_equal(a, b);
    const char *want =
        "main main\n"
        "\n"
        "fn main(q: str) -> void   @1:4\n"
        "  slots: a#1:str(gen)\n"
        "  %0 = CONST \"Q: \" : str   @2:6\n"
        "  %1 = LOAD q#0 : str   @2:10\n"
        "  %2 = CONST \"\\n\" : str   @2:12\n"
        "  %3 = CONCAT %0, %1, %2 : str   @2:5\n"
        "  APPEND %3   @2:5\n"
        "  %4 = CONST 8 : int   @3:23\n"
        "  %5 = CONST \"\\n\" : str   @3:32\n"
        "  %6 = GEN a(max_tokens=%4, stop=%5) : str   @3:5\n"
        "  STORE a#1 %6   @3:5\n";
    assert_string_equal(a, want);
    free(a);
    free(b);
    ir_program_free(p);
}

/* ------------------------------------------------------------ pass manager */

static void test_pass_manager_options(void **state)
{
    (void)state;
    assert_true(ir_pass_known("fold"));
    assert_true(ir_pass_known("prefix_hoist"));
    assert_true(ir_pass_known("forkjoin"));
    assert_false(ir_pass_known("lower"));
    assert_false(ir_pass_known("nope"));
    const char *src =
        "fn f(x: str) -> str { \"Say {x}\"\n gen y\n return y }\n"
        "fn main(a: str, b: str) { let r = f(a)\n let s = f(b)\n \"{r} {s}\" }\n";
    /* forkjoin disabled: no async call, no init group */
    IrProgram *p = compile_passes(src, "forkjoin");
    assert_false(nth_op(func(p, "main"), IR_OP_CALL, 0)->flags & IR_F_ASYNC);
    assert_null(nth_op(func(p, "main"), IR_OP_AWAIT, 0));
    assert_non_null(p->init);
    ir_program_free(p);
    /* prefix_hoist disabled: no init */
    p = compile_passes(src, "prefix_hoist");
    assert_null(p->init);
    assert_true(nth_op(func(p, "main"), IR_OP_CALL, 0)->flags & IR_F_ASYNC);
    ir_program_free(p);
    /* dump-after: exactly one dump, of the named stage */
    p = lower_src(src);
    char *buf = NULL;
    size_t len = 0;
    FILE *d = open_memstream(&buf, &len);
    IrPassOptions o = {0};
    o.verify = true;
    o.dump_after = "prefix_hoist";
    o.dump = d;
    assert_true(ir_passes_run(p, &o));
    fclose(d);
    assert_non_null(strstr(buf, "PREFILL fresh"));     /* after prefix_hoist */
    assert_null(strstr(buf, "async"));                 /* before forkjoin */
    char *second = strstr(strstr(buf, "main main") + 1, "main main");
    assert_null(second);
    free(buf);
    ir_program_free(p);
}

/* ------------------------------------------------------------ fold */

static void test_fold_appends_and_interpolation(void **state)
{
    (void)state;
    IrProgram *p = compile_passes(
        "const N = 2\n"
        "fn main(q: str) {\n"
        "    \"a\"\n    \"b{N + 1}\"\n    \"{true} c\"\n"
        "    \"{q}{\"\"}!\"\n"
        "    gen x(temperature: 0)\n}\n", NULL);
    const IrFunc *m = func(p, "main");
    IrNode *a0 = nth_op(m, IR_OP_APPEND, 0);
    assert_int_equal(a0->args[0]->op, IR_OP_CONST);
    assert_string_equal(a0->args[0]->cnst->s, "ab3true c");
    IrNode *a1 = nth_op(m, IR_OP_APPEND, 1);   /* "{q}!" : empty text dropped */
    assert_int_equal(a1->args[0]->op, IR_OP_CONCAT);
    assert_int_equal(a1->args[0]->n_args, 2);
    assert_null(nth_op(m, IR_OP_APPEND, 2));
    IrNode *g = nth_op(m, IR_OP_GEN, 0);       /* temperature: 0 -> 0.0 folded */
    assert_int_equal(g->args[0]->op, IR_OP_CONST);
    assert_true(g->args[0]->cnst->type == p->t_float);
    assert_null(nth_op(m, IR_OP_BUILTIN, 0));
    ir_program_free(p);
    /* int overflow and division by zero are left to the run time (hand-built:
     * sema rejects them in constant expressions) */
    IrFunc *f;
    p = tiny(&f);
    IrLoc l = {0};
    IrNode *big = ir_node_new(p, f, IR_OP_CONST, p->t_int, 0, 0, l);
    IrConst *cb = ir_const_new(p, p->t_int);
    cb->i = INT64_MAX;
    big->cnst = cb;
    IrNode *zero = ir_node_new(p, f, IR_OP_CONST, p->t_int, 0, 0, l);
    zero->cnst = ir_const_new(p, p->t_int);
    IrNode *add = ir_node_new(p, f, IR_OP_BINOP, p->t_int, 2, 0, l);
    add->aop = IR_ARITH_ADD;
    add->args[0] = add->args[1] = big;
    IrNode *div = ir_node_new(p, f, IR_OP_BINOP, p->t_int, 2, 0, l);
    div->aop = IR_ARITH_DIV;
    div->args[0] = big;
    div->args[1] = zero;
    IrNode *sub = ir_node_new(p, f, IR_OP_BINOP, p->t_int, 2, 0, l);
    sub->aop = IR_ARITH_SUB;
    sub->args[0] = big;
    sub->args[1] = big;
    IrNode *nodes[] = {big, zero, add, div, sub};
    for (int i = 0; i < 5; i++)
        ir_region_push(p, &f->body, nodes[i]);
    /* keep them alive: a RECORD-free use each (STOREs into int temps) */
    for (int i = 2; i < 5; i++) {
        uint32_t s = ir_slot_add(p, f, "t", p->t_int, IR_SLOT_TEMP);
        IrNode *st = ir_node_new(p, f, IR_OP_STORE, NULL, 1, 0, l);
        st->slot = s;
        st->args[0] = nodes[i];
        ir_region_push(p, &f->body, st);
    }
    assert_true(ir_verify(p, stderr));
    assert_true(ir_pass_fold(p));
    assert_true(ir_verify(p, stderr));
    assert_int_equal(add->op, IR_OP_BINOP);
    assert_int_equal(div->op, IR_OP_BINOP);
    assert_int_equal(sub->op, IR_OP_CONST);    /* this one cannot fail */
    assert_int_equal(sub->cnst->i, 0);
    ir_program_free(p);
}

/* ------------------------------------------------------------ prefix hoisting */

static void test_prefix_program_with_loop(void **state)
{
    (void)state;
    IrProgram *p = compile_passes(
        "const SHOTS = [\"1+1=2\", \"2+2=4\"]\n"
        "fn main(q: str) {\n"
        "    system { \"Be brief.\" }\n"
        "    \"Examples:\\n\"\n"
        "    for s in SHOTS { \"{s}\\n\" }\n"
        "    if len(SHOTS) > 1 { \"Q: \" } else { \"never\" }\n"
        "    \"{q} = \"\n"
        "    gen a\n"
        "    \"after\"\n}\n", NULL);
    const IrNode *pf = init_prefill_for(p, "main");
    assert_non_null(pf);
    assert_true(pf->flags & IR_F_FRESH);
    char buf[512];
    prefix_text(pf->prefix, buf, sizeof buf);
    assert_string_equal(buf, "<system>Be brief.</system>Examples:\n1+1=2\n2+2=4\nQ: ");
    assert_int_equal(pf->prefix->n_bytes, strlen("Be brief.Examples:\n1+1=2\n2+2=4\nQ: "));
    ir_program_free(p);
}

static void test_prefix_stops_at_gen_and_unknowns(void **state)
{
    (void)state;
    IrProgram *p = compile_passes(
        "fn main(q: str, n: int) {\n"
        "    \"head \"\n    gen a\n    \"tail\"\n}\n", NULL);
    char buf[256];
    prefix_text(init_prefill_for(p, "main")->prefix, buf, sizeof buf);
    assert_string_equal(buf, "head ");
    ir_program_free(p);
    /* an unknown condition ends the prefix; nothing known: no prefill at all */
    p = compile_passes("fn main(n: int) {\n    if n > 0 { \"x\" }\n    gen a\n}\n", NULL);
    assert_null(init_prefill_for(p, "main"));
    ir_program_free(p);
}

static void test_prefix_called_function_and_fork(void **state)
{
    (void)state;
    IrProgram *p = compile_passes(
        "fn translate(x: str) -> str {\n"
        "    \"Translate to French: {x}\\n\"\n    gen y(stop: \"\\n\")\n    return y\n}\n"
        "fn unused(x: str) -> str { \"Never called {x}\"\n return x }\n"
        "fn main(xs: list[str]) {\n"
        "    \"Start.\\n\"\n"
        "    gen intro\n"
        "    for x in xs { let t = translate(x)\n \"{t}\\n\" }\n"
        "    fork k in [\"a\", \"b\", \"c\"] {\n"
        "        \"Option {k}: \"\n        gen opt\n    }\n"
        "}\n", NULL);
    char buf[256];
    const IrNode *tp = init_prefill_for(p, "translate");
    assert_non_null(tp);
    prefix_text(tp->prefix, buf, sizeof buf);
    assert_string_equal(buf, "Translate to French: ");
    assert_null(init_prefill_for(p, "unused"));     /* not reachable from main */
    /* the fork: PREFILL of the state + "Option " right before it */
    const IrFunc *m = func(p, "main");
    IrNode *fork = nth_op(m, IR_OP_FORK, 0);
    int fi = index_in(&m->body, fork);
    assert_true(fi > 0);
    IrNode *pf = m->body.nodes[fi - 1];
    assert_int_equal(pf->op, IR_OP_PREFILL);
    assert_false(pf->flags & IR_F_FRESH);
    prefix_text(pf->prefix, buf, sizeof buf);
    assert_string_equal(buf, "Option ");
    assert_true(fork->flags & IR_F_PARALLEL);
    assert_int_not_equal(fork->group, 0);
    assert_int_equal(nth_op(m, IR_OP_GEN, 1)->group, fork->group);  /* the branch gen */
    ir_program_free(p);
}

/* ------------------------------------------------------------ fork/join */

static void test_forkjoin_pipeline(void **state)
{
    (void)state;
    IrProgram *p = compile_passes(
        "fn expand(t: str) -> str { \"Expand: {t}\"\n gen d\n return d }\n"
        "fn tips(x: str) -> list[str] { \"Tips on {x}:\"\n gen a\n gen b\n return [a, b] }\n"
        "fn main(topic: str) {\n"
        "    let t = tips(topic)\n"
        "    let d0 = expand(t[0])\n"
        "    let d1 = expand(t[1])\n"
        "    \"Intro.\"\n"
        "    gen s\n"
        "    \"{d0} {d1}\"\n"
        "}\n", NULL);
    const IrFunc *m = func(p, "main");
    IrNode *c_tips = nth_op(m, IR_OP_CALL, 0);
    IrNode *c0 = nth_op(m, IR_OP_CALL, 1), *c1 = nth_op(m, IR_OP_CALL, 2);
    assert_false(c_tips->flags & IR_F_ASYNC);      /* its result is needed at once */
    assert_true(c0->flags & IR_F_ASYNC);
    assert_true(c1->flags & IR_F_ASYNC);
    assert_int_not_equal(c0->group, 0);
    assert_int_equal(c0->group, c1->group);        /* issued together */
    /* both awaited only after the gen: the calls overlap the caller's gen */
    IrNode *gen = nth_op(m, IR_OP_GEN, 0);
    IrNode *a0 = nth_op(m, IR_OP_AWAIT, 0);
    assert_ptr_equal(a0->args[0], c0);
    assert_true(index_in(&m->body, a0) > index_in(&m->body, gen));
    assert_true(index_in(&m->body, c1) < index_in(&m->body, gen));
    ir_program_free(p);
}

static void test_forkjoin_await_before_exit(void **state)
{
    (void)state;
    IrProgram *p = compile_passes(
        "fn f(x: int) -> int { \"{x}\"\n gen y: int\n return y }\n"
        "fn main(n: int) {\n"
        "    let i = 0\n"
        "    while i < n {\n"
        "        let r = f(i)\n"
        "        \"step\"\n"
        "        if i > 3 { break }\n"
        "        i += 1\n"
        "        \"{r}\"\n"
        "    }\n}\n", NULL);
    const IrFunc *m = func(p, "main");
    IrNode *c = nth_op(m, IR_OP_CALL, 0);
    IrNode *w = nth_op(m, IR_OP_WHILE, 0);
    const IrRegion *body = &w->regions[1];
    IrNode *aw = nth_op(m, IR_OP_AWAIT, 0);
    IrNode *iff = nth_op(m, IR_OP_IF, 0);
    assert_true(c->flags & IR_F_ASYNC);
    assert_true(index_in(body, aw) >= 0);
    assert_true(index_in(body, aw) < index_in(body, iff));  /* before the break */
    ir_program_free(p);
}

/* ------------------------------------------------------------ lowering */

static void test_lower_dead_code_after_exits(void **state)
{
    (void)state;
    /* statements after return/break/continue are not lowered; a role or
     * capture whose body always leaves gets no end marker */
    IrProgram *p = compile_passes(
        "fn f(x: str) -> str {\n"
        "    user { \"{x}\"\n return x\n \"dead\" }\n"
        "    \"dead too\"\n    return x\n}\n"
        "fn main(n: int) {\n"
        "    for i in 0..n { continue\n \"dead\" }\n"
        "    while n > 0 { capture c { break\n \"dead\" }\n \"dead\" }\n"
        "    let r = f(\"a\")\n"
        "}\n", NULL);
    const IrFunc *f = func(p, "f");
    assert_null(nth_op(f, IR_OP_ROLE_END, 0));
    assert_non_null(nth_op(f, IR_OP_RETURN, 0));
    assert_null(nth_op(f, IR_OP_RETURN, 1));
    char *txt = print_str(p);
    assert_null(strstr(txt, "dead"));
    free(txt);
    assert_null(nth_op(func(p, "main"), IR_OP_CAPTURE_END, 0));
    ir_program_free(p);
}

/* A role block opens no scope, so a gen inside `assistant { }` at the top
 * of a fork body is gathered into a list like any other declaration. */
static void test_fork_gathers_through_role_blocks(void **state)
{
    (void)state;
    IrProgram *p = compile_passes(
        "fn main() {\n"
        "    fork i in 0..2 {\n"
        "        assistant { gen x(max_tokens: 4) }\n"
        "        fork j in 0..2 { user { gen y(max_tokens: 2) } }\n"
        "    }\n"
        "    \"{len(x)} {len(y)}\"\n"
        "}\n", NULL);
    const IrNode *fork = nth_op(func(p, "main"), IR_OP_FORK, 0);
    assert_non_null(fork);
    assert_int_equal(fork->n_gather, 2);   /* x, and y re-gathered from the inner fork */
    ir_program_free(p);
}

/* ------------------------------------------------------------ examples */

static void test_examples_all_passes_verify(void **state)
{
    (void)state;
    const char *root = getenv("SGL_SOURCE_ROOT");
    if (!root)
        skip();
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/examples", root);
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 4, ".sgl") != 0)
            continue;
        char path[8192];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        SglCompile c;
        sgl_compile_init(&c);
        assert_true(sgl_compile_file(&c, path));
        IrProgram *p = sgl_lower(c.program, &c.diags);
        sgl_compile_deinit(&c);
        assert_non_null(p);
        IrPassOptions o = {0};
        o.verify = true;
        if (!ir_passes_run(p, &o))
            fail_msg("%s: passes or verification failed", e->d_name);
        ir_program_free(p);
        n++;
    }
    closedir(d);
    assert_true(n >= 6);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verify_valid_and_use_before_def),
        cmocka_unit_test(test_verify_types_and_slots),
        cmocka_unit_test(test_verify_region_scoping_and_exits),
        cmocka_unit_test(test_verify_async_calls),
        cmocka_unit_test(test_print_stable),
        cmocka_unit_test(test_pass_manager_options),
        cmocka_unit_test(test_fold_appends_and_interpolation),
        cmocka_unit_test(test_prefix_program_with_loop),
        cmocka_unit_test(test_prefix_stops_at_gen_and_unknowns),
        cmocka_unit_test(test_prefix_called_function_and_fork),
        cmocka_unit_test(test_forkjoin_pipeline),
        cmocka_unit_test(test_forkjoin_await_before_exit),
        cmocka_unit_test(test_lower_dead_code_after_exits),
        cmocka_unit_test(test_fork_gathers_through_role_blocks),
        cmocka_unit_test(test_examples_all_passes_verify),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

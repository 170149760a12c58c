/* interp.c -- walks an IrProgram: frames, regions, control flow, forks and
 * calls. The meaning of each op is in ops.c; this file only moves values
 * between SSA ids and slots and decides what runs where.
 *
 * A Frame is one activation of an IrFunc (or one fork branch of it): its
 * slots, the values of its nodes (indexed by node id, each a reference), the
 * meta records of its GEN/SELECT nodes and slots, and its prompt state.
 * Concurrency: an IR_F_PARALLEL fork runs its branches on worker threads
 * (the last one on the current thread); an IR_F_ASYNC call runs on a worker
 * thread until AWAIT joins it. Worker threads are counted per SglExec; when
 * max_workers are busy the work runs inline, so nothing can deadlock and
 * results are the same (only slower). A runtime error anywhere marks the
 * SglRun failed and aborts its requests; every frame then unwinds (FL_ERROR)
 * and joins its threads before freeing anything.
 */
#include "backend/interp.h"
#include "backend/remote.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/ffi.h"

#define MAX_CALL_DEPTH 200

struct ConCache *concache_new(void);
void concache_free(struct ConCache *c);

/* ------------------------------------------------------------ types */

struct ExecTypes {
    const IrType **ir;
    ValType *vt;
    uint32_t n;
};

const ValType *exec_vtype(const SglExec *x, const IrType *t)
{
    for (uint32_t i = 0; t && i < x->types->n; i++)
        if (x->types->ir[i] == t)
            return &x->types->vt[i];
    return NULL;
}

static ValKind vkind(IrTyKind k)
{
    switch (k) {
    case IR_TY_STR: return VAL_STR;
    case IR_TY_INT: return VAL_INT;
    case IR_TY_FLOAT: return VAL_FLOAT;
    case IR_TY_BOOL: return VAL_BOOL;
    case IR_TY_LIST: return VAL_LIST;
    case IR_TY_RECORD: return VAL_RECORD;
    default: return VAL_VOID;
    }
}

static void types_free(struct ExecTypes *t)
{
    if (!t)
        return;
    for (uint32_t i = 0; i < t->n; i++) {
        free((void *)t->vt[i].names);
        free((void *)t->vt[i].fields);
    }
    free(t->ir);
    free(t->vt);
    free(t);
}

static struct ExecTypes *types_build(const IrProgram *p)
{
    struct ExecTypes *t = calloc(1, sizeof *t);
    uint32_t cap = p->n_types + 8;
    if (!t || !(t->ir = calloc(cap, sizeof *t->ir)) || !(t->vt = calloc(cap, sizeof *t->vt))) {
        types_free(t);
        return NULL;
    }
    const IrType *prim[] = {p->t_void, p->t_str, p->t_int, p->t_float, p->t_bool, p->t_meta};
    for (size_t i = 0; i < sizeof prim / sizeof prim[0]; i++)
        if (prim[i])
            t->ir[t->n++] = prim[i];
    for (uint32_t i = 0; i < p->n_types; i++) {
        bool dup = false;
        for (uint32_t k = 0; k < t->n && !dup; k++)
            dup = t->ir[k] == p->types[i];
        if (!dup)
            t->ir[t->n++] = p->types[i];
    }
    SglExec fake = {.types = t};
    for (uint32_t i = 0; i < t->n; i++) {
        const IrType *it = t->ir[i];
        ValType *v = &t->vt[i];
        v->kind = vkind(it->kind);
        v->name = it->name;
        if (it->kind == IR_TY_LIST)
            v->elem = exec_vtype(&fake, it->elem);
        if (it->kind == IR_TY_RECORD) {
            const char **names = calloc(it->n_fields + 1, sizeof *names);
            const ValType **fs = calloc(it->n_fields + 1, sizeof *fs);
            v->names = names;
            v->fields = fs;
            if (!names || !fs) {
                types_free(t);
                return NULL;
            }
            v->n_fields = (int32_t)it->n_fields;
            for (uint32_t k = 0; k < it->n_fields; k++) {
                names[k] = it->fields[k].name;
                fs[k] = exec_vtype(&fake, it->fields[k].type);
            }
        }
    }
    return t;
}

/* ------------------------------------------------------------ exec */

void sgl_exec_opts_default(SglExecOpts *o)
{
    memset(o, 0, sizeof *o);
    o->temperature = o->top_p = o->min_p = NAN;
    o->max_tokens = -1;
    o->top_k = -1;
    o->seed = -1;
}

bool sgl_exec_new(const IrProgram *p, SglEngine *e, const ChatTemplate *t, const SglExecOpts *o,
                  SglExec **out, char *msg, size_t cap)
{
    *out = NULL;
    SglExec *x = calloc(1, sizeof *x);
    if (!x) {
        snprintf(msg, cap, "out of memory");
        return false;
    }
    x->p = p;
    x->engine = e;
    x->remote = o->remote;
    x->tok = e ? sgl_engine_tokenizer(e) : NULL;
    x->tmpl = t;
    x->o = *o;
    if (x->o.max_workers <= 0)
        x->o.max_workers = 256;
    /* the HTTP backend may not report a vocabulary: stop ids are then checked by the server */
    x->vocab = e ? sgl_engine_model_config(e)->vocab_size
                 : remote_vocab(o->remote) > 0 ? remote_vocab(o->remote) : INT32_MAX;
    pthread_mutex_init(&x->mu, NULL);
    if (!(x->types = types_build(p)) || !(x->tokreg = tokreg_new()) || !(x->cons = concache_new())) {
        snprintf(msg, cap, "out of memory");
        sgl_exec_free(x);
        return false;
    }
    if (!sgl_ffi_load(p, &x->ffi, msg, cap)) {
        sgl_exec_free(x);
        return false;
    }
    *out = x;
    return true;
}

void sgl_exec_free(SglExec *x)
{
    if (!x)
        return;
    types_free(x->types);
    sgl_ffi_free(x->ffi);
    concache_free(x->cons);
    if (x->tokreg)
        tokreg_free(x->tokreg);
    pthread_mutex_destroy(&x->mu);
    free(x);
}

static bool worker_get(SglExec *x)
{
    if (x->o.no_parallel)
        return false;
    pthread_mutex_lock(&x->mu);
    bool ok = x->workers < x->o.max_workers;
    if (ok)
        x->workers++;
    pthread_mutex_unlock(&x->mu);
    return ok;
}

static void worker_put(SglExec *x)
{
    pthread_mutex_lock(&x->mu);
    x->workers--;
    pthread_mutex_unlock(&x->mu);
}

/* ------------------------------------------------------------ frames */

typedef enum { FL_NEXT, FL_BREAK, FL_CONTINUE, FL_RETURN, FL_ERROR } Flow;

typedef struct Future Future;
typedef struct Frame Frame;

struct Frame {
    SglRun *run;
    SglExec *x;
    const IrFunc *fn;
    Value **slots, **smeta;          /* (n_slots) */
    Value **vals, **nmeta;           /* (n_ids) */
    Future **fut;                    /* (n_ids): async calls started, not awaited */
    PState st;
    Value *ret;
    int depth;
};

struct Future {
    pthread_t th;
    bool threaded;
    Frame *callee;
    bool ok;
};

static Flow run_region(Frame *f, const IrRegion *r);
static void future_join(Future *fu);

static Frame *frame_alloc(SglRun *run, const IrFunc *fn, int depth)
{
    Frame *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->run = run;
    f->x = run->x;
    f->fn = fn;
    f->depth = depth;
    size_t ns = fn->n_slots + 1, ni = fn->n_ids + 1;
    f->slots = calloc(ns, sizeof *f->slots);
    f->smeta = calloc(ns, sizeof *f->smeta);
    f->vals = calloc(ni, sizeof *f->vals);
    f->nmeta = calloc(ni, sizeof *f->nmeta);
    f->fut = calloc(ni, sizeof *f->fut);
    if (!f->slots || !f->smeta || !f->vals || !f->nmeta || !f->fut) {
        free(f->slots);
        free(f->smeta);
        free(f->vals);
        free(f->nmeta);
        free(f->fut);
        free(f);
        return NULL;
    }
    return f;
}

static void frame_free(Frame *f)
{
    if (!f)
        return;
    for (uint32_t i = 0; i < f->fn->n_ids; i++)
        if (f->fut[i])
            future_join(f->fut[i]);  /* error paths: finish the call first */
    for (uint32_t i = 0; i < f->fn->n_slots; i++) {
        val_unref(f->slots[i]);
        val_unref(f->smeta[i]);
    }
    for (uint32_t i = 0; i < f->fn->n_ids; i++) {
        val_unref(f->vals[i]);
        val_unref(f->nmeta[i]);
    }
    free(f->slots);
    free(f->smeta);
    free(f->vals);
    free(f->nmeta);
    free(f->fut);
    pstate_deinit(&f->st);
    val_unref(f->ret);
    free(f);
}

/* A fork branch: the parent's locals and node values (shared references),
 * and a copy of its prompt state. */
static Frame *frame_branch(Frame *p)
{
    Frame *f = frame_alloc(p->run, p->fn, p->depth);
    if (!f)
        return NULL;
    if (!pstate_copy(&f->st, &p->st)) {
        frame_free(f);
        return NULL;
    }
    for (uint32_t i = 0; i < p->fn->n_slots; i++) {
        f->slots[i] = val_ref(p->slots[i]);
        f->smeta[i] = val_ref(p->smeta[i]);
    }
    for (uint32_t i = 0; i < p->fn->n_ids; i++) {
        f->vals[i] = val_ref(p->vals[i]);
        f->nmeta[i] = val_ref(p->nmeta[i]);
    }
    return f;
}

static void setv(Frame *f, const IrNode *n, Value *v)
{
    val_unref(f->vals[n->id]);
    f->vals[n->id] = v;
}

static Value *arg(Frame *f, const IrNode *n, uint32_t k) { return f->vals[n->args[k]->id]; }

static Value *const_value(SglExec *x, const IrConst *c)
{
    switch (c->type->kind) {
    case IR_TY_STR: return val_str(c->s ? c->s : "", c->len);
    case IR_TY_INT: return val_int(c->i);
    case IR_TY_FLOAT: return val_float(c->f);
    case IR_TY_BOOL: return val_bool(c->b);
    case IR_TY_LIST:
    case IR_TY_RECORD: {
        Value **items = calloc((size_t)c->n_items + 1, sizeof *items);
        if (!items)
            return NULL;
        for (uint32_t i = 0; i < c->n_items; i++)
            if (!(items[i] = const_value(x, c->items[i]))) {
                for (uint32_t k = 0; k < i; k++)
                    val_unref(items[k]);
                free(items);
                return NULL;
            }
        Value *v;
        if (c->type->kind == IR_TY_LIST) {
            v = val_list_take(items, c->n_items);
        } else {
            const ValType *vt = exec_vtype(x, c->type);
            if (!vt) {
                for (uint32_t k = 0; k < c->n_items; k++)
                    val_unref(items[k]);
                v = NULL;
            } else {
                v = val_record_take(vt, items);
            }
        }
        free(items);
        return v;
    }
    default: return val_void();
    }
}

/* ------------------------------------------------------------ calls */

static bool frame_run(Frame *f)
{
    Flow fl = run_region(f, &f->fn->body);
    if (fl == FL_ERROR)
        return false;
    if (!f->ret && !(f->ret = val_void()))
        return run_fail(f->run, f->fn->loc, "out of memory");
    return true;
}

static void *future_main(void *arg)
{
    Future *fu = arg;
    fu->ok = frame_run(fu->callee);
    return NULL;
}

static void future_join(Future *fu)
{
    if (fu->threaded) {
        pthread_join(fu->th, NULL);
        worker_put(fu->callee->x);
        fu->threaded = false;
    }
}

static void future_free(Future *fu)
{
    if (!fu)
        return;
    future_join(fu);
    frame_free(fu->callee);
    free(fu);
}

static Frame *callee_frame(Frame *f, const IrNode *n)
{
    if (n->index >= f->x->p->n_funcs) {
        run_fail(f->run, n->loc, "call of an unknown function");
        return NULL;
    }
    if (f->depth + 1 > MAX_CALL_DEPTH) {
        run_fail(f->run, n->loc, "call depth limit %d exceeded", MAX_CALL_DEPTH);
        return NULL;
    }
    const IrFunc *fn = f->x->p->funcs[n->index];
    Frame *c = frame_alloc(f->run, fn, f->depth + 1);
    if (!c || !pstate_init(&c->st)) {
        frame_free(c);
        run_fail(f->run, n->loc, "out of memory");
        return NULL;
    }
    for (uint32_t k = 0; k < n->n_args && k < fn->n_params; k++)
        c->slots[k] = val_ref(arg(f, n, k));
    return c;
}

static Flow do_call(Frame *f, const IrNode *n)
{
    if (!(n->flags & IR_F_ASYNC))
        gate_leave();
    Frame *c = callee_frame(f, n);
    if (!c)
        return FL_ERROR;
    if (n->flags & IR_F_ASYNC) {
        Future *fu = calloc(1, sizeof *fu);
        if (!fu) {
            frame_free(c);
            return run_fail(f->run, n->loc, "out of memory"), FL_ERROR;
        }
        fu->callee = c;
        if (worker_get(f->x)) {
            if (pthread_create(&fu->th, NULL, future_main, fu) == 0) {
                fu->threaded = true;
            } else {
                worker_put(f->x);
                future_main(fu);
            }
        } else {
            future_main(fu);
        }
        future_free(f->fut[n->id]);
        f->fut[n->id] = fu;
        return FL_NEXT;
    }
    bool ok = frame_run(c);
    if (ok && ir_has_value(n))
        setv(f, n, val_ref(c->ret));
    frame_free(c);
    return ok ? FL_NEXT : FL_ERROR;
}

static Flow do_await(Frame *f, const IrNode *n)
{
    gate_leave();
    const IrNode *call = n->args[0];
    Future *fu = f->fut[call->id];
    if (!fu)
        return run_fail(f->run, n->loc, "await of a call that was not started"), FL_ERROR;
    future_join(fu);
    bool ok = fu->ok;
    if (ok && ir_has_value(n))
        setv(f, n, val_ref(fu->callee->ret));
    f->fut[call->id] = NULL;
    future_free(fu);
    return ok ? FL_NEXT : FL_ERROR;
}

/* ------------------------------------------------------------ fork */

typedef struct {
    Frame *f;
    const IrRegion *body;
    Flow fl;
    pthread_t th;
    bool threaded;
    SglGate *gate;
} Branch;

static void *branch_main(void *arg)
{
    Branch *b = arg;
    if (b->gate)
        gate_enter(b->gate);
    b->fl = run_region(b->f, b->body);
    gate_leave();
    return NULL;
}

static Flow do_fork(Frame *f, const IrNode *n)
{
    gate_leave();
    const Value *src = arg(f, n, 0);
    int64_t nb = src->kind == VAL_LIST ? (int64_t)src->list.n : src->i;
    if (nb < 0)
        return run_fail(f->run, n->loc, "fork count must be >= 0, got %lld", (long long)nb), FL_ERROR;
    if (nb > 100000)
        return run_fail(f->run, n->loc, "fork of %lld branches exceeds the limit 100000", (long long)nb), FL_ERROR;
    Branch *br = calloc((size_t)nb + 1, sizeof *br);
    if (!br)
        return run_fail(f->run, n->loc, "out of memory"), FL_ERROR;
    Flow res = FL_NEXT;
    size_t base = f->st.len;
    for (int64_t i = 0; i < nb; i++) {
        br[i].body = &n->regions[0];
        if (!(br[i].f = frame_branch(f))) {
            res = FL_ERROR;
            run_fail(f->run, n->loc, "out of memory");
            break;
        }
        if (n->slot != IR_NO_SLOT) {
            Value **s = &br[i].f->slots[n->slot];
            val_unref(*s);
            *s = src->kind == VAL_LIST ? val_ref(src->list.items[i]) : val_int(i);
        }
    }
    /* Parallel: one worker thread per branch but the last (which runs
     * here). When every branch got its thread, their first requests meet
     * at a gate and reach the engine as one batch. */
    bool parallel = (n->flags & IR_F_PARALLEL) && !f->x->o.no_parallel && nb > 1;
    int64_t got = 0;
    SglGate *gate = NULL;
    while (parallel && res == FL_NEXT && got < nb - 1 && worker_get(f->x))
        got++;
    if (parallel && got == nb - 1 && !f->x->remote)
        gate = gate_new(f->x->engine, (int32_t)nb);
    for (int64_t i = 0; res == FL_NEXT && i < nb; i++) {
        br[i].gate = gate;
        if (i < got) {
            if (pthread_create(&br[i].th, NULL, branch_main, &br[i]) == 0) {
                br[i].threaded = true;
                continue;
            }
            /* no thread: this branch runs here, and nobody may wait for it */
            br[i].gate = NULL;
            if (gate) {
                gate_enter(gate);
                gate_leave();
            }
        }
        branch_main(&br[i]);
    }
    for (int64_t i = 0; i < nb; i++)
        if (br[i].threaded)
            pthread_join(br[i].th, NULL);
    for (int64_t i = 0; i < got; i++)
        worker_put(f->x);
    gate_free(gate);
    for (int64_t i = 0; res == FL_NEXT && i < nb; i++)
        if (br[i].fl == FL_ERROR || !br[i].f)
            res = FL_ERROR;
    if (res == FL_NEXT && run_failed(f->run))
        res = FL_ERROR;
    /* gather: slot `to` := the branches' `from` values, in branch order */
    for (uint32_t g = 0; res == FL_NEXT && g < n->n_gather; g++) {
        Value **items = calloc((size_t)nb + 1, sizeof *items);
        if (!items) {
            res = FL_ERROR;
            break;
        }
        for (int64_t i = 0; i < nb; i++) {
            Value *v = br[i].f->slots[n->gather[g].from];
            items[i] = v ? val_ref(v) : val_void();
        }
        Value *l = val_list_take(items, (uint32_t)nb);
        free(items);
        if (!l) {
            res = FL_ERROR;
            break;
        }
        val_unref(f->slots[n->gather[g].to]);
        f->slots[n->gather[g].to] = l;
    }
    if (res == FL_NEXT && n->aop == IR_JOIN_CONCAT)
        for (int64_t i = 0; res == FL_NEXT && i < nb; i++)
            if (!op_append(f->run, &f->st, br[i].f->st.text + base, br[i].f->st.len - base))
                res = FL_ERROR;
    for (int64_t i = 0; i < nb; i++)
        frame_free(br[i].f);
    free(br);
    if (res == FL_ERROR && !run_failed(f->run))
        run_fail(f->run, n->loc, "out of memory");
    return res;
}

/* ------------------------------------------------------------ nodes */

static Flow do_for(Frame *f, const IrNode *n)
{
    const Value *a = arg(f, n, 0);
    bool list = n->n_args == 1;
    int64_t lo = list ? 0 : a->i, hi = list ? (int64_t)a->list.n : arg(f, n, 1)->i;
    Value *keep = val_ref((Value *)a);     /* the list outlives reassignments in the body */
    Flow res = FL_NEXT;
    for (int64_t i = lo; i < hi; i++) {
        Value *v = list ? val_ref(keep->list.items[i]) : val_int(i);
        if (!v) {
            res = (run_fail(f->run, n->loc, "out of memory"), FL_ERROR);
            break;
        }
        val_unref(f->slots[n->slot]);
        f->slots[n->slot] = v;
        Flow fl = run_region(f, &n->regions[0]);
        if (fl == FL_BREAK)
            break;
        if (fl == FL_RETURN || fl == FL_ERROR) {
            res = fl;
            break;
        }
    }
    val_unref(keep);
    return res;
}

static Flow do_while(Frame *f, const IrNode *n)
{
    for (;;) {
        const IrRegion *cond = &n->regions[0];
        Flow fl = run_region(f, cond);
        if (fl != FL_NEXT)
            return fl;
        const Value *c = cond->n ? f->vals[cond->nodes[cond->n - 1]->id] : NULL;
        if (!c || !c->b)
            return FL_NEXT;
        fl = run_region(f, &n->regions[1]);
        if (fl == FL_BREAK)
            return FL_NEXT;
        if (fl == FL_RETURN || fl == FL_ERROR)
            return fl;
    }
}

static Flow done(Frame *f, const IrNode *n, bool ok, Value *v)
{
    if (!ok)
        return FL_ERROR;
    if (!v)
        return run_fail(f->run, n->loc, "out of memory"), FL_ERROR;
    setv(f, n, v);
    return FL_NEXT;
}

static Flow run_node(Frame *f, const IrNode *n)
{
    SglRun *r = f->run;
    Value *v = NULL;
    switch (n->op) {
    case IR_OP_CONST:
        return done(f, n, true, const_value(f->x, n->cnst));
    case IR_OP_LOAD:
        if (!f->slots[n->slot])
            return run_fail(r, n->loc, "variable '%s' used before it was set",
                            f->fn->slots[n->slot].name ? f->fn->slots[n->slot].name : "?"), FL_ERROR;
        return done(f, n, true, val_ref(f->slots[n->slot]));
    case IR_OP_STORE: {
        const IrNode *src = n->args[0];
        val_unref(f->slots[n->slot]);
        f->slots[n->slot] = val_ref(f->vals[src->id]);
        if (src->op == IR_OP_GEN || src->op == IR_OP_SELECT) {
            val_unref(f->smeta[n->slot]);
            f->smeta[n->slot] = val_ref(f->nmeta[src->id]);
        }
        return FL_NEXT;
    }
    case IR_OP_UNOP:
        {
        bool ok_ = op_unop(r, n, arg(f, n, 0), &v);
        return done(f, n, ok_, v);
    }
    case IR_OP_BINOP:
        {
        bool ok_ = op_binop(r, n, arg(f, n, 0), arg(f, n, 1), &v);
        return done(f, n, ok_, v);
    }
    case IR_OP_CONCAT: {
        Value *tmp[16] = {0}, **as = n->n_args <= 16 ? tmp : malloc(n->n_args * sizeof *as);
        if (!as)
            return run_fail(r, n->loc, "out of memory"), FL_ERROR;
        for (uint32_t k = 0; k < n->n_args; k++)
            as[k] = arg(f, n, k);
        bool ok = op_concat(r, n, as, n->n_args, &v);
        if (as != tmp)
            free(as);
        return done(f, n, ok, v);
    }
    case IR_OP_LIST:
    case IR_OP_RECORD: {
        Value **items = malloc(((size_t)n->n_args + 1) * sizeof *items);
        if (!items)
            return run_fail(r, n->loc, "out of memory"), FL_ERROR;
        for (uint32_t k = 0; k < n->n_args; k++)
            items[k] = val_ref(arg(f, n, k));
        if (n->op == IR_OP_LIST) {
            v = val_list_take(items, n->n_args);
        } else {
            const ValType *vt = exec_vtype(f->x, n->type);
            if (vt) {
                v = val_record_take(vt, items);
            } else {
                for (uint32_t k = 0; k < n->n_args; k++)
                    val_unref(items[k]);
            }
        }
        free(items);
        return done(f, n, true, v);
    }
    case IR_OP_INDEX:
        {
        bool ok_ = op_index(r, n, arg(f, n, 0), arg(f, n, 1), &v);
        return done(f, n, ok_, v);
    }
    case IR_OP_FIELD: {
        const Value *rec = arg(f, n, 0);
        if (n->index >= (uint32_t)rec->rec.type->n_fields)
            return run_fail(r, n->loc, "bad field index"), FL_ERROR;
        return done(f, n, true, val_ref(rec->rec.fields[n->index]));
    }
    case IR_OP_SET_INDEX:
        {
        bool ok_ = op_set_index(r, n, arg(f, n, 0), arg(f, n, 1), arg(f, n, 2), &v);
        return done(f, n, ok_, v);
    }
    case IR_OP_SET_FIELD:
        {
        bool ok_ = op_set_field(r, n, arg(f, n, 0), arg(f, n, 1), &v);
        return done(f, n, ok_, v);
    }
    case IR_OP_BUILTIN: {
        Value *tmp[8] = {0}, **as = n->n_args <= 8 ? tmp : malloc(n->n_args * sizeof *as);
        if (!as)
            return run_fail(r, n->loc, "out of memory"), FL_ERROR;
        for (uint32_t k = 0; k < n->n_args; k++)
            as[k] = arg(f, n, k);
        bool ok = op_builtin(r, n, as, &v);
        if (as != tmp)
            free(as);
        return done(f, n, ok, v);
    }
    case IR_OP_META:
        if (n->slot >= f->fn->n_slots || !f->smeta[n->slot])
            return run_fail(r, n->loc, "meta(): the variable has no generation info"), FL_ERROR;
        return done(f, n, true, val_ref(f->smeta[n->slot]));
    case IR_OP_TEXT:
        return done(f, n, true, val_str(f->st.text, f->st.len));
    case IR_OP_APPEND: {
        const Value *t = arg(f, n, n->n_args - 1);
        return op_append(r, &f->st, t->str.s, t->str.len) ? FL_NEXT : FL_ERROR;
    }
    case IR_OP_GEN: {
        Value *tmp[IR_GEN_KEY_COUNT_ + 1] = {0}, **as = n->n_args <= IR_GEN_KEY_COUNT_ ? tmp
                                                    : malloc(n->n_args * sizeof *as);
        Value *meta = NULL;
        if (!as)
            return run_fail(r, n->loc, "out of memory"), FL_ERROR;
        for (uint32_t k = 0; k < n->n_args; k++)
            as[k] = arg(f, n, k);
        bool ok = op_gen(r, &f->st, n, as, &v, &meta);
        if (as != tmp)
            free(as);
        if (ok) {
            val_unref(f->nmeta[n->id]);
            f->nmeta[n->id] = meta;
        }
        return done(f, n, ok, v);
    }
    case IR_OP_SELECT: {
        Value *meta = NULL;
        bool ok = op_select(r, &f->st, n, arg(f, n, n->n_args - 1), &v, &meta);
        if (ok) {
            val_unref(f->nmeta[n->id]);
            f->nmeta[n->id] = meta;
        }
        return done(f, n, ok, v);
    }
    case IR_OP_ROLE_BEGIN:
    case IR_OP_ROLE_END:
        return op_role(r, &f->st, f->x->tmpl, (IrRole)n->aop, n->op == IR_OP_ROLE_BEGIN) ? FL_NEXT
                                                                                        : FL_ERROR;
    case IR_OP_CAPTURE_BEGIN:
        return done(f, n, true, val_int((int64_t)f->st.len));
    case IR_OP_CAPTURE_END: {
        int64_t mark = arg(f, n, n->n_args - 1)->i;
        if (mark < 0 || (size_t)mark > f->st.len)
            return run_fail(r, n->loc, "capture mark out of range"), FL_ERROR;
        return done(f, n, true, val_str(f->st.text + mark, f->st.len - (size_t)mark));
    }
    case IR_OP_CALL:
        return do_call(f, n);
    case IR_OP_AWAIT:
        return do_await(f, n);
    case IR_OP_EXTERN_CALL: {
        char msg[400];
        gate_leave();
        Value *tmp[33] = {0};
        if (n->n_args > 32)
            return run_fail(r, n->loc, "too many extern arguments"), FL_ERROR;
        for (uint32_t k = 0; k < n->n_args; k++)
            tmp[k] = arg(f, n, k);
        if (!sgl_ffi_call(f->x->ffi, n->index, tmp, &v, msg, sizeof msg))
            return run_fail(r, n->loc, "%s", msg), FL_ERROR;
        if (!ir_has_value(n)) {
            val_unref(v);
            return FL_NEXT;
        }
        return done(f, n, true, v);
    }
    case IR_OP_IF: {
        bool c = arg(f, n, 0)->b;
        if (c)
            return run_region(f, &n->regions[0]);
        return n->n_regions > 1 ? run_region(f, &n->regions[1]) : FL_NEXT;
    }
    case IR_OP_FOR:
        return do_for(f, n);
    case IR_OP_WHILE:
        return do_while(f, n);
    case IR_OP_BREAK:
        return FL_BREAK;
    case IR_OP_CONTINUE:
        return FL_CONTINUE;
    case IR_OP_RETURN:
        val_unref(f->ret);
        f->ret = n->n_args ? val_ref(arg(f, n, 0)) : val_void();
        return FL_RETURN;
    case IR_OP_FORK:
        return do_fork(f, n);
    case IR_OP_PREFILL:
        return op_prefill(r, &f->st, n) ? FL_NEXT : FL_ERROR;
    case IR_OP_COUNT_:
        break;
    }
    return run_fail(r, n->loc, "unknown IR op %d", (int)n->op), FL_ERROR;
}

static Flow run_region(Frame *f, const IrRegion *r)
{
    for (uint32_t i = 0; i < r->n; i++) {
        if (__atomic_load_n(&f->run->failed, __ATOMIC_RELAXED))
            return FL_ERROR;
        Flow fl = run_node(f, r->nodes[i]);
        if (fl != FL_NEXT)
            return fl;
    }
    return FL_NEXT;
}

/* ------------------------------------------------------------ entry */

void sgl_exec_warm(SglExec *x)
{
    const IrFunc *init = x->p->init;
    if (!init)
        return;
    SglRun run;
    run_init(&run, x, x->engine);
    for (uint32_t i = 0; i < init->body.n; i++)
        if (init->body.nodes[i]->op == IR_OP_PREFILL)
            op_prefill(&run, NULL, init->body.nodes[i]);
    run_deinit(&run);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

bool sgl_exec_run_main(SglExec *x, Value *const *args, SglRunResult *res)
{
    memset(res, 0, sizeof *res);
    double t0 = now_s();
    SglRun run;
    run_init(&run, x, x->engine);
    bool ok = false;
    Frame *f = NULL;
    if (x->p->main < 0 || (uint32_t)x->p->main >= x->p->n_funcs) {
        res->error = strdup("the program has no `main` function");
        goto out;
    }
    const IrFunc *fn = x->p->funcs[x->p->main];
    if (!(f = frame_alloc(&run, fn, 0)) || !pstate_init(&f->st)) {
        res->error = strdup("out of memory");
        goto out;
    }
    f->st.stream = x->o.stream;
    for (uint32_t k = 0; k < fn->n_params; k++)
        f->slots[k] = val_ref(args[k]);
    ok = frame_run(f);
    if (ok) {
        res->text = malloc(f->st.len + 1);
        res->vars = json_object();
        if (res->text && res->vars) {
            memcpy(res->text, f->st.text, f->st.len + 1);
            res->len = f->st.len;
            res->ret = val_ref(f->ret);
            for (uint32_t i = 0; i < fn->n_slots; i++) {
                IrSlotKind k = fn->slots[i].kind;
                if (!f->slots[i] || !fn->slots[i].name || k == IR_SLOT_TEMP || k == IR_SLOT_FOR ||
                    k == IR_SLOT_FORK_VAR)
                    continue;
                json_object_set_new(res->vars, fn->slots[i].name, val_to_json(f->slots[i]));
            }
        } else {
            ok = false;
            res->error = strdup("out of memory");
        }
    }
out:
    frame_free(f);
    if (!ok && !res->error)
        res->error = strdup(run.error ? run.error : "runtime error");
    res->c = run.c;
    res->seconds = now_s() - t0;
    run_deinit(&run);
    return ok;
}

void sgl_run_result_free(SglRunResult *res)
{
    free(res->text);
    val_unref(res->ret);
    json_decref(res->vars);
    free(res->error);
    memset(res, 0, sizeof *res);
}

json_t *sgl_run_result_json(const SglRunResult *res)
{
    json_t *o = json_object(), *meta = json_object();
    if (!o || !meta) {
        json_decref(o);
        json_decref(meta);
        return NULL;
    }
    if (res->error) {
        json_object_set_new(o, "error", json_string(res->error));
    } else {
        json_object_set_new(o, "text", json_stringn(res->text, res->len));
        json_object_set(o, "vars", res->vars);
        json_object_set_new(o, "return", res->ret ? val_to_json(res->ret) : json_null());
    }
    json_object_set_new(meta, "prompt_tokens", json_integer(res->c.prompt_tokens));
    json_object_set_new(meta, "completion_tokens", json_integer(res->c.completion_tokens));
    json_object_set_new(meta, "cached_tokens", json_integer(res->c.cached_tokens));
    json_object_set_new(meta, "requests", json_integer(res->c.requests));
    json_object_set_new(meta, "seconds", json_real(res->seconds));
    json_object_set_new(o, "meta", meta);
    return o;
}

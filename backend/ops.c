/* ops.c -- the semantics of each IR op (see ops.h), the run context and the
 * engine request plumbing (submit, collect events, cancel). */
#include "backend/ops.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/interp.h"
#include "runtime/textbuf.h"
#include "backend/remote.h"
#include "backend/select.h"
#include "ir/fsm/regex.h"
#include "ir/pass_constraint.h"

/* ------------------------------------------------------------ run */

void run_init(SglRun *r, SglExec *x, SglEngine *e)
{
    memset(r, 0, sizeof *r);
    r->x = x;
    r->engine = e;
    pthread_mutex_init(&r->mu, NULL);
}

void run_deinit(SglRun *r)
{
    free(r->error);
    free(r->inflight);
    pthread_mutex_destroy(&r->mu);
}

bool run_failed(SglRun *r)
{
    pthread_mutex_lock(&r->mu);
    bool f = r->failed;
    pthread_mutex_unlock(&r->mu);
    return f;
}

bool run_fail(SglRun *r, IrLoc loc, const char *fmt, ...)
{
    char m[700];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m, sizeof m, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&r->mu);
    if (!r->failed) {
        r->failed = true;
        size_t cap = strlen(m) + (loc.file ? strlen(loc.file) : 0) + 64;
        r->error = malloc(cap);
        if (r->error)
            snprintf(r->error, cap, "%s:%u:%u: runtime error: %s", loc.file ? loc.file : "<program>",
                     loc.line, loc.col, m);
        for (int32_t i = 0; i < r->n_inflight; i++)
            sgl_engine_abort(r->engine, r->inflight[i]);
    }
    pthread_mutex_unlock(&r->mu);
    return false;
}

/* ------------------------------------------------------------ prompt state */

bool pstate_init(PState *s)
{
    memset(s, 0, sizeof *s);
    s->cap = 256;
    s->text = malloc(s->cap);
    if (!s->text)
        return false;
    s->text[0] = '\0';
    return true;
}

bool pstate_copy(PState *d, const PState *s)
{
    memset(d, 0, sizeof *d);
    d->cap = s->len + 256;
    d->text = malloc(d->cap);
    if (!d->text)
        return false;
    memcpy(d->text, s->text, s->len + 1);
    d->len = s->len;
    d->after_system_end = s->after_system_end;
    return true;
}

void pstate_deinit(PState *s)
{
    free(s->text);
    memset(s, 0, sizeof *s);
}

static bool pstate_put(PState *s, const char *t, size_t n)
{
    return sgl_text_append(&s->text, &s->len, &s->cap, t, n);
}

/* ------------------------------------------------------------ requests */

typedef struct Wait Wait;
typedef struct {
    Wait *w;
    int32_t k;
} WaitSlot;

struct Wait {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int32_t n_left;
    SglGenResult *res;
    WaitSlot *slots;
    FILE *stream;
    bool oom;
};

static char *dupn(const char *s, size_t n, bool *oom)
{
    char *d = malloc(n + 1);
    if (!d) {
        *oom = true;
        return NULL;
    }
    if (n)
        memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

static void on_event(void *user, const SglEvent *ev)
{
    WaitSlot *ws = user;
    Wait *w = ws->w;
    SglGenResult *res = &w->res[ws->k];
    if (ev->index < 0 || ev->index >= res->n_samples)
        return;
    SglGenSample *s = &res->samples[ev->index];
    if (w->stream && ws->k == 0 && ev->index == 0 && ev->text_len) {
        fwrite(ev->text, 1, ev->text_len, w->stream);
        fflush(w->stream);
    }
    if (ev->kind == SGL_EV_FINAL) {
        s->finish = ev->finish;
        s->matched_token = ev->matched_token;
        s->matched_stop = ev->matched_stop ? dupn(ev->matched_stop, strlen(ev->matched_stop), &w->oom) : NULL;
        s->error = ev->error ? dupn(ev->error, strlen(ev->error), &w->oom) : NULL;
        s->n_output = ev->completion_tokens;
        s->cached_tokens = ev->cached_tokens;
        s->output_ids = malloc(((size_t)ev->completion_tokens + 1) * sizeof *s->output_ids);
        if (s->output_ids && ev->completion_tokens)
            memcpy(s->output_ids, ev->output_ids, (size_t)ev->completion_tokens * sizeof(int32_t));
        if (ev->output_logprobs) {
            s->output_logprobs = malloc(((size_t)ev->completion_tokens + 1) * sizeof(float));
            if (s->output_logprobs && ev->completion_tokens)
                memcpy(s->output_logprobs, ev->output_logprobs,
                       (size_t)ev->completion_tokens * sizeof(float));
        }
        s->text = dupn(ev->output_text ? ev->output_text : "", ev->output_text_len, &w->oom);
        s->text_len = ev->output_text_len;
        res->prompt_tokens = ev->prompt_tokens;
        if (ev->prompt_logprobs && !res->prompt_logprobs && ev->prompt_tokens > 0) {
            res->prompt_logprobs = malloc((size_t)ev->prompt_tokens * sizeof(float));
            if (res->prompt_logprobs)
                memcpy(res->prompt_logprobs, ev->prompt_logprobs, (size_t)ev->prompt_tokens * sizeof(float));
            else
                w->oom = true;
        }
    }
    if (ev->kind == SGL_EV_FINAL && ev->last) {
        pthread_mutex_lock(&w->mu);
        w->n_left--;
        pthread_cond_broadcast(&w->cv);
        pthread_mutex_unlock(&w->mu);
    }
}

/* ---- the fork gate ---- */

typedef struct GateEntry {
    SglRequest req;
    uint64_t id;
    SglStatus st;
    bool done;
    struct GateEntry *next;
} GateEntry;

struct SglGate {
    SglEngine *e;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int32_t n, registered, left;
    GateEntry *head;
};

static _Thread_local SglGate *tls_gate;

SglGate *gate_new(SglEngine *e, int32_t n)
{
    SglGate *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    g->e = e;
    g->n = n;
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    return g;
}

void gate_free(SglGate *g)
{
    if (!g)
        return;
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
    free(g);
}

void gate_enter(SglGate *g) { tls_gate = g; }

/* With g->mu held: when every branch has registered or left, submit. */
static void gate_maybe_flush(SglGate *g)
{
    if (g->registered + g->left < g->n || g->registered == 0)
        return;
    int32_t n = g->registered, i = 0;
    SglRequest *reqs = calloc((size_t)n, sizeof *reqs);
    uint64_t *ids = calloc((size_t)n, sizeof *ids);
    SglStatus st = reqs && ids ? SGL_OK : SGL_E_NOMEM;
    for (GateEntry *e = g->head; e && reqs; e = e->next)
        reqs[i++] = e->req;
    if (st == SGL_OK) {
        SglErr err;
        int tries = 0;
        while ((st = sgl_engine_submit_batch(g->e, reqs, n, ids, &err)) == SGL_E_FULL && tries++ < 20000) {
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
    }
    i = 0;
    for (GateEntry *e = g->head; e; e = e->next, i++) {
        e->st = st;
        e->id = st == SGL_OK ? ids[i] : 0;
        e->done = true;
    }
    g->head = NULL;
    g->left += g->registered;   /* they are done with the gate */
    g->registered = 0;
    free(reqs);
    free(ids);
    pthread_cond_broadcast(&g->cv);
}

void gate_leave(void)
{
    SglGate *g = tls_gate;
    if (!g)
        return;
    tls_gate = NULL;
    pthread_mutex_lock(&g->mu);
    g->left++;
    gate_maybe_flush(g);
    pthread_mutex_unlock(&g->mu);
}

/* Submits r through this thread's gate; false when there is none. */
static bool gate_submit(const SglRequest *r, uint64_t *id, SglStatus *st)
{
    SglGate *g = tls_gate;
    if (!g)
        return false;
    tls_gate = NULL;
    GateEntry e = {.req = *r};
    pthread_mutex_lock(&g->mu);
    e.next = g->head;
    g->head = &e;
    g->registered++;
    gate_maybe_flush(g);
    while (!e.done)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
    *id = e.id;
    *st = e.st;
    return true;
}

static void inflight_remove(SglRun *run, uint64_t id)
{
    for (int32_t i = 0; i < run->n_inflight; i++)
        if (run->inflight[i] == id) {
            run->inflight[i] = run->inflight[--run->n_inflight];
            return;
        }
}

bool ops_generate(SglEngine *e, SglRun *run, const SglRequest *reqs, int32_t n,
                  SglGenResult *res, FILE *stream, char *msg, size_t cap)
{
    Wait w = {.res = res, .stream = stream};
    uint64_t *ids = calloc((size_t)n + 1, sizeof *ids);
    w.slots = calloc((size_t)n + 1, sizeof *w.slots);
    bool ok = ids && w.slots;
    int32_t submitted = 0;
    memset(res, 0, (size_t)n * sizeof *res);
    for (int32_t i = 0; ok && i < n; i++) {
        int32_t ns = reqs[i].params.n > 0 ? reqs[i].params.n : 1;
        res[i].n_samples = ns;
        res[i].samples = calloc((size_t)ns, sizeof *res[i].samples);
        ok = res[i].samples != NULL;
    }
    if (!ok) {
        snprintf(msg, cap, "out of memory");
        for (int32_t i = 0; i < n; i++)
            if (reqs[i].constraint.release)
                reqs[i].constraint.release(reqs[i].constraint.ctx);
        goto out;
    }
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    /* The first request of a parallel fork branch goes through its gate. */
    bool gated = false;
    if (n == 1 && tls_gate) {
        SglRequest r = reqs[0];
        SglStatus st = SGL_OK;
        w.slots[0] = (WaitSlot){&w, 0};
        r.on_event = on_event;
        r.user = &w.slots[0];
        w.n_left = 1;
        gated = gate_submit(&r, &ids[0], &st);
        if (st != SGL_OK) {
            w.n_left = 0;
            snprintf(msg, cap, "%s", sgl_status_str(st));
            ok = false;
        } else {
            submitted = 1;
        }
    }
    if (run)
        pthread_mutex_lock(&run->mu);
    if (gated && ok && run) {
        if (run->failed)
            sgl_engine_abort(e, ids[0]);   /* failed while we waited: its abort event ends the wait */
        if (run->n_inflight + 1 > run->cap_inflight) {
            uint64_t *p = realloc(run->inflight, ((size_t)run->cap_inflight * 2 + 8) * sizeof *p);
            if (p) {
                run->inflight = p;
                run->cap_inflight = run->cap_inflight * 2 + 8;
            }
        }
        if (run->n_inflight < run->cap_inflight)
            run->inflight[run->n_inflight++] = ids[0];
    }
    if (run && !gated && run->failed) {
        snprintf(msg, cap, "cancelled");
        ok = false;
    }
    if (run && ok && !gated && run->n_inflight + n > run->cap_inflight) {
        int32_t c = (run->n_inflight + n) * 2 + 8;
        uint64_t *p = realloc(run->inflight, (size_t)c * sizeof *p);
        if (p) {
            run->inflight = p;
            run->cap_inflight = c;
        } else {
            snprintf(msg, cap, "out of memory");
            ok = false;
        }
    }
    for (int32_t i = 0; ok && !gated && i < n; i++) {
        SglRequest r = reqs[i];
        w.slots[i] = (WaitSlot){&w, i};
        r.on_event = on_event;
        r.user = &w.slots[i];
        SglErr err = {{0}};
        SglStatus st;
        int tries = 0;
        pthread_mutex_lock(&w.mu);
        w.n_left++;
        pthread_mutex_unlock(&w.mu);
        while ((st = sgl_engine_submit(e, &r, &ids[i], &err)) == SGL_E_FULL && tries++ < 20000) {
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
        if (st != SGL_OK) {
            pthread_mutex_lock(&w.mu);
            w.n_left--;
            pthread_mutex_unlock(&w.mu);
            snprintf(msg, cap, "%s", err.msg[0] ? err.msg : sgl_status_str(st));
            ok = false;
            break;
        }
        submitted++;
        if (run)
            run->inflight[run->n_inflight++] = ids[i];
    }
    if (!ok) {
        for (int32_t i = 0; i < submitted; i++)
            sgl_engine_abort(e, ids[i]);
        /* the engine never saw these: their constraints are ours to release */
        for (int32_t i = submitted; i < n; i++)
            if (reqs[i].constraint.release)
                reqs[i].constraint.release(reqs[i].constraint.ctx);
    }
    if (run)
        pthread_mutex_unlock(&run->mu);
    pthread_mutex_lock(&w.mu);
    while (w.n_left > 0)
        pthread_cond_wait(&w.cv, &w.mu);
    pthread_mutex_unlock(&w.mu);
    pthread_cond_destroy(&w.cv);
    pthread_mutex_destroy(&w.mu);
    if (run) {
        pthread_mutex_lock(&run->mu);
        for (int32_t i = 0; i < submitted; i++)
            inflight_remove(run, ids[i]);
        pthread_mutex_unlock(&run->mu);
    }
    if (ok && w.oom) {
        snprintf(msg, cap, "out of memory");
        ok = false;
    }
    for (int32_t i = 0; ok && i < n; i++)
        for (int32_t k = 0; k < res[i].n_samples; k++)
            if (res[i].samples[k].finish == SGL_FINISH_ABORT) {
                snprintf(msg, cap, "cancelled");
                ok = false;
            }
out:
    if (!ok)
        for (int32_t i = 0; i < n; i++)
            sgl_gen_result_free(&res[i]);
    free(ids);
    free(w.slots);
    return ok;
}

/* ------------------------------------------------------------ state ops */

bool op_append(SglRun *r, PState *s, const char *text, size_t len)
{
    if (len == 0)
        return true;
    if (!pstate_put(s, text, len))
        return run_fail(r, (IrLoc){0}, "out of memory");
    s->after_system_end = false;
    if (s->stream) {
        fwrite(text, 1, len, s->stream);
        fflush(s->stream);
    }
    return true;
}

bool op_role(SglRun *r, PState *s, const ChatTemplate *t, IrRole role, bool begin)
{
    ChatRole cr = role == IR_ROLE_SYSTEM ? CHAT_SYSTEM : role == IR_ROLE_USER ? CHAT_USER : CHAT_ASSISTANT;
    const char *m = begin ? chat_template_begin(t, cr, s->after_system_end) : chat_template_end(t, cr);
    if (!op_append(r, s, m, strlen(m)))
        return false;
    s->after_system_end = !begin && cr == CHAT_SYSTEM;
    return true;
}

/* ---- constraints: IR constraint -> regex -> DFA (cached per GEN node) ---- */

typedef struct ConEntry {
    const IrNode *node;
    SglDfa *dfa;
    struct ConEntry *next;
} ConEntry;

struct ConCache {
    pthread_mutex_t mu;
    ConEntry *head;
};

struct ConCache *concache_new(void);
void concache_free(struct ConCache *c);

struct ConCache *concache_new(void)
{
    struct ConCache *c = calloc(1, sizeof *c);
    if (c)
        pthread_mutex_init(&c->mu, NULL);
    return c;
}

void concache_free(struct ConCache *c)
{
    if (!c)
        return;
    for (ConEntry *e = c->head, *nx; e; e = nx) {
        nx = e->next;
        sgl_dfa_free(e->dfa);
        free(e);
    }
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* The regex text of a constraint (malloc'd), or NULL with msg. The HTTP
 * backend sends it to the server; in-process it is compiled to a DFA. Both
 * go through the constraint pass's compiler (ir/pass_constraint.h). */
static char *constraint_regex(const IrConstraint *c, char *msg, size_t cap)
{
    FsmErr fe;
    char *re = NULL;
    SglStatus st = ir_constraint_regex(c, &re, &fe);
    if (st != SGL_OK) {
        snprintf(msg, cap, "cannot compile the constraint: %s", fe.msg[0] ? fe.msg : sgl_status_str(st));
        return NULL;
    }
    return re;
}

static SglDfa *compile_constraint(const IrConstraint *c, char *msg, size_t cap)
{
    FsmErr fe;
    SglDfa *dfa = NULL;
    SglStatus st = ir_constraint_compile(c, &dfa, &fe);
    if (st != SGL_OK)
        snprintf(msg, cap, "cannot compile the constraint: %s", fe.msg[0] ? fe.msg : sgl_status_str(st));
    return dfa;
}

static const SglDfa *constraint_dfa(SglExec *x, const IrNode *n, char *msg, size_t cap)
{
    if (n->gen->con.fsm) /* compiled by the constraint pass (ir/pass_constraint.c) */
        return n->gen->con.fsm;
    struct ConCache *c = x->cons;
    pthread_mutex_lock(&c->mu);
    for (ConEntry *e = c->head; e; e = e->next)
        if (e->node == n) {
            pthread_mutex_unlock(&c->mu);
            return e->dfa;
        }
    pthread_mutex_unlock(&c->mu);
    SglDfa *d = compile_constraint(&n->gen->con, msg, cap);
    if (!d)
        return NULL;
    ConEntry *e = calloc(1, sizeof *e);
    if (!e) {
        sgl_dfa_free(d);
        snprintf(msg, cap, "out of memory");
        return NULL;
    }
    e->node = n;
    e->dfa = d;
    pthread_mutex_lock(&c->mu);
    e->next = c->head;
    c->head = e;
    pthread_mutex_unlock(&c->mu);
    return d;
}

/* ---- gen ---- */

static Value *meta_record(SglExec *x, int64_t pt, int64_t ct, int64_t cached, const char *finish,
                          double logprob)
{
    const ValType *mt = exec_vtype(x, x->p->t_meta);
    if (!mt)
        return NULL;
    Value **f = calloc((size_t)mt->n_fields + 1, sizeof *f);
    if (!f)
        return NULL;
    for (int32_t i = 0; i < mt->n_fields; i++) {
        const char *nm = mt->names[i];
        f[i] = !strcmp(nm, "prompt_tokens")       ? val_int(pt)
               : !strcmp(nm, "completion_tokens") ? val_int(ct)
               : !strcmp(nm, "cached_tokens")     ? val_int(cached)
               : !strcmp(nm, "finish_reason")     ? val_str(finish, strlen(finish))
               : !strcmp(nm, "logprob")           ? val_float(logprob)
               : mt->fields[i]->kind == VAL_STR   ? val_str("", 0)
               : mt->fields[i]->kind == VAL_FLOAT ? val_float(0)
                                                  : val_int(0);
        if (!f[i]) {
            for (int32_t k = 0; k < i; k++)
                val_unref(f[k]);
            free(f);
            return NULL;
        }
    }
    Value *v = val_record_take(mt, f);
    free(f);
    return v;
}

static bool opt_float(const Value *v, float *out)
{
    *out = (float)(v->kind == VAL_INT ? (double)v->i : v->f);
    return true;
}

/* Parses a typed gen's JSON output into a value of type t. */
static bool parse_typed(SglRun *r, const IrNode *n, const SglGenSample *s, const ValType *t,
                        Value **out)
{
    json_error_t je;
    json_t *j = json_loadb(s->text, s->text_len, JSON_DECODE_ANY, &je);
    char m[300];
    char snip[160];
    if (s->text_len > 120)
        snprintf(snip, sizeof snip, "%.50s ... %s", s->text, s->text + s->text_len - 50);
    else
        snprintf(snip, sizeof snip, "%s", s->text);
    if (!j)
        return run_fail(r, n->loc, "gen %s: the output \"%s\" (%d tokens) is not valid JSON (finish: %s)",
                        n->name ? n->name : "", snip, (int)s->n_output, sgl_finish_name(s->finish));
    bool ok = val_from_json(j, t, out, m, sizeof m);
    json_decref(j);
    if (!ok)
        return run_fail(r, n->loc, "gen %s: the output does not fit its type: %s", n->name ? n->name : "", m);
    return true;
}

bool op_gen(SglRun *r, PState *s, const IrNode *n, Value *const *args, Value **out, Value **meta)
{
    SglExec *x = r->x;
    const SglExecOpts *o = &x->o;
    const SglModelConfig *mc = x->remote ? NULL : sgl_engine_model_config(x->engine);
    SglRequest rq = {0};
    SglSamplingParams *p = &rq.params;
    sgl_sampling_params_default(p);
    p->max_new_tokens = o->max_tokens >= 0 ? o->max_tokens : 128;
    p->temperature = !isnan(o->temperature) ? (float)o->temperature
                     : mc && !isnan(mc->gen_temperature) ? mc->gen_temperature : 1.0f;
    if (!isnan(o->top_p))
        p->top_p = (float)o->top_p;
    if (!isnan(o->min_p))
        p->min_p = (float)o->min_p;
    if (o->top_k != -1)
        p->top_k = o->top_k;
    p->return_logprob = true;
    int32_t stop_ids[64];
    const char *name = n->name ? n->name : "";
    for (uint32_t k = 0; k < n->n_args; k++) {
        const Value *v = args[k];
        switch (n->gen->keys[k]) {
        case IR_GEN_MAX_TOKENS:
            if (v->i < 0 || v->i > INT32_MAX)
                return run_fail(r, n->loc, "gen %s: max_tokens must be >= 0, got %lld", name, (long long)v->i);
            p->max_new_tokens = (int32_t)v->i;
            break;
        case IR_GEN_MIN_TOKENS:
            if (v->i < 0 || v->i > INT32_MAX)
                return run_fail(r, n->loc, "gen %s: min_tokens must be >= 0, got %lld", name, (long long)v->i);
            p->min_new_tokens = (int32_t)v->i;
            break;
        case IR_GEN_STOP:
            if (v->kind == VAL_STR) {
                p->stop[0] = v->str.s;
                p->n_stop = v->str.len ? 1 : 0;
            } else {
                if (v->list.n > SGL_MAX_STOP)
                    return run_fail(r, n->loc, "gen %s: at most %d stop strings, got %u", name, SGL_MAX_STOP, v->list.n);
                p->n_stop = 0;
                for (uint32_t i = 0; i < v->list.n; i++)
                    if (v->list.items[i]->str.len)
                        p->stop[p->n_stop++] = v->list.items[i]->str.s;
            }
            break;
        case IR_GEN_STOP_TOKEN_IDS:
            if (v->list.n > 64)
                return run_fail(r, n->loc, "gen %s: at most 64 stop_token_ids", name);
            for (uint32_t i = 0; i < v->list.n; i++) {
                int64_t id = v->list.items[i]->i;
                if (id < 0 || id >= x->vocab)
                    return run_fail(r, n->loc, "gen %s: stop token id %lld is outside the vocabulary (0..%d)",
                                    name, (long long)id, (int)x->vocab - 1);
                stop_ids[i] = (int32_t)id;
            }
            p->stop_token_ids = stop_ids;
            p->n_stop_token_ids = (int32_t)v->list.n;
            break;
        case IR_GEN_TEMPERATURE: opt_float(v, &p->temperature); break;
        case IR_GEN_TOP_P: opt_float(v, &p->top_p); break;
        case IR_GEN_TOP_K:
            p->top_k = v->i < -1 ? -2 : v->i > INT32_MAX ? INT32_MAX : (int32_t)v->i;
            break;
        case IR_GEN_MIN_P: opt_float(v, &p->min_p); break;
        case IR_GEN_FREQUENCY_PENALTY: opt_float(v, &p->frequency_penalty); break;
        case IR_GEN_PRESENCE_PENALTY: opt_float(v, &p->presence_penalty); break;
        case IR_GEN_REPETITION_PENALTY: opt_float(v, &p->repetition_penalty); break;
        case IR_GEN_IGNORE_EOS: p->ignore_eos = v->b; break;
        case IR_GEN_SEED:
            p->seed = (uint64_t)v->i;
            p->has_seed = true;
            break;
        case IR_GEN_N:
            if (v->i < 1 || v->i > SGL_MAX_N)
                return run_fail(r, n->loc, "gen %s: n must be in [1, %d], got %lld", name, SGL_MAX_N, (long long)v->i);
            p->n = (int32_t)v->i;
            break;
        case IR_GEN_KEY_COUNT_:
            break;
        }
    }
    if (o->max_tokens_cap > 0 && p->max_new_tokens > o->max_tokens_cap)
        p->max_new_tokens = o->max_tokens_cap;
    SglErr err = {{0}};
    if (sgl_sampling_params_check(p, x->vocab, &err) != SGL_OK)
        return run_fail(r, n->loc, "gen %s: %s", name, err.msg);
    char msg[600];
    SglGenResult res;
    bool has_n = n->gen->has_n;
    bool ok;
    if (x->remote) {   /* the HTTP backend (remote.h): text + regex to the server */
        char *re = NULL;
        if (n->gen->con.kind != IR_CON_NONE && !(re = constraint_regex(&n->gen->con, msg, sizeof msg)))
            return run_fail(r, n->loc, "gen %s: %s", name, msg);
        ok = remote_generate(x->remote, r, s->text, s->len, p, re, &res, msg, sizeof msg);
        free(re);
        if (ok && !has_n && s->stream && res.n_samples > 0)
            fwrite(res.samples[0].text, 1, res.samples[0].text_len, s->stream);
        goto collected;
    }
    if (n->gen->con.kind != IR_CON_NONE) {
        const SglDfa *d = constraint_dfa(x, n, msg, sizeof msg);
        if (!d)
            return run_fail(r, n->loc, "gen %s: %s", name, msg);
        if (tokmask_constraint_new(x->tokreg, d, x->tok, p->n, &rq.constraint, &err) != SGL_OK)
            return run_fail(r, n->loc, "gen %s: %s", name, err.msg);
    }
    int32_t *ids = NULL, n_ids = 0;
    if (sgl_engine_encode(x->engine, s->text, s->len, true, &ids, &n_ids) != SGL_OK) {
        if (rq.constraint.release)
            rq.constraint.release(rq.constraint.ctx);
        return run_fail(r, n->loc, "gen %s: cannot tokenize the prompt", name);
    }
    rq.input_ids = ids;
    rq.n_input = n_ids;
    ok = ops_generate(x->engine, r, &rq, 1, &res, has_n ? NULL : s->stream, msg, sizeof msg);
    free(ids);
collected:
    if (!ok)
        return run_failed(r) ? false : run_fail(r, n->loc, "gen %s: %s", name, msg);
    int64_t ct = 0, cached = 0;
    double lp = 0;
    for (int32_t i = 0; i < res.n_samples; i++) {
        const SglGenSample *sm = &res.samples[i];
        if (sm->finish == SGL_FINISH_ERROR) {
            run_fail(r, n->loc, "gen %s: the request failed: %s", name, sm->error ? sm->error : "unknown error");
            sgl_gen_result_free(&res);
            return false;
        }
        ct += sm->n_output;
        cached += sm->cached_tokens;
        for (int32_t k = 0; i == 0 && sm->output_logprobs && k < sm->n_output; k++)
            lp += sm->output_logprobs[k];
    }
    pthread_mutex_lock(&r->mu);
    r->c.requests++;
    r->c.prompt_tokens += res.prompt_tokens;
    r->c.completion_tokens += ct;
    r->c.cached_tokens += cached;
    pthread_mutex_unlock(&r->mu);
    const IrType *vt = n->gen->con.kind == IR_CON_TYPE ? n->gen->con.type : x->p->t_str;
    const ValType *vvt = exec_vtype(x, vt);
    Value **items = calloc((size_t)res.n_samples, sizeof *items);
    ok = items != NULL && vvt != NULL;
    for (int32_t i = 0; ok && i < res.n_samples; i++) {
        const SglGenSample *sm = &res.samples[i];
        if (vt->kind == IR_TY_STR) {
            ok = (items[i] = val_str(sm->text, sm->text_len)) != NULL;
            if (!ok)
                run_fail(r, n->loc, "out of memory");
        } else {
            ok = parse_typed(r, n, sm, vvt, &items[i]);
        }
    }
    if (ok && !has_n) {
        FILE *echoed = s->stream;   /* the tokens were streamed as they came */
        s->stream = NULL;
        ok = op_append(r, s, res.samples[0].text, res.samples[0].text_len);
        s->stream = echoed;
    }
    if (ok) {
        if (has_n) {
            *out = val_list_take(items, (uint32_t)res.n_samples);
            memset(items, 0, (size_t)res.n_samples * sizeof *items);
        } else {
            *out = items[0];
            items[0] = NULL;
        }
        *meta = meta_record(x, res.prompt_tokens, ct, cached,
                            sgl_finish_name(res.samples[0].finish), lp);
        if (!*out || !*meta) {
            val_unref(*out);
            val_unref(*meta);
            *out = *meta = NULL;
            ok = run_fail(r, n->loc, "out of memory");
        }
    }
    for (int32_t i = 0; items && i < res.n_samples; i++)
        val_unref(items[i]);
    free(items);
    sgl_gen_result_free(&res);
    return ok;
}

bool op_select(SglRun *r, PState *s, const IrNode *n, const Value *choices, Value **out,
               Value **meta)
{
    SglExec *x = r->x;
    uint32_t nc = choices->list.n;
    const char *name = n->name ? n->name : "";
    if (nc == 0)
        return run_fail(r, n->loc, "select %s: the list of choices is empty", name);
    const char **ch = calloc(nc, sizeof *ch);
    size_t *lens = calloc(nc, sizeof *lens);
    if (!ch || !lens) {
        free(ch);
        free(lens);
        return run_fail(r, n->loc, "out of memory");
    }
    for (uint32_t i = 0; i < nc; i++) {
        ch[i] = choices->list.items[i]->str.s;
        lens[i] = choices->list.items[i]->str.len;
    }
    SelectResult sr;
    char msg[600];
    bool ok = x->remote ? remote_select(x->remote, r, s->text, s->len, ch, lens, (int32_t)nc,
                                        (IrSelectMethod)n->aop, &sr, msg, sizeof msg)
                        : select_run(x->engine, r, s->text, s->len, ch, lens, (int32_t)nc,
                                     (IrSelectMethod)n->aop, &sr, msg, sizeof msg);
    if (!ok) {
        free(ch);
        free(lens);
        return run_failed(r) ? false : run_fail(r, n->loc, "select %s: %s", name, msg);
    }
    pthread_mutex_lock(&r->mu);
    r->c.requests += sr.requests;
    r->c.prompt_tokens += sr.prompt_tokens;
    r->c.cached_tokens += sr.cached_tokens;
    pthread_mutex_unlock(&r->mu);
    Value *win = choices->list.items[sr.best];
    ok = op_append(r, s, win->str.s, win->str.len);
    if (ok) {
        *out = val_ref(win);
        *meta = meta_record(x, sr.prompt_tokens, 0, sr.cached_tokens, "stop", sr.score);
        if (!*meta) {
            val_unref(*out);
            *out = NULL;
            ok = run_fail(r, n->loc, "out of memory");
        }
    }
    free(ch);
    free(lens);
    return ok;
}

bool op_prefill(SglRun *r, const PState *s, const IrNode *n)
{
    SglExec *x = r->x;
    PState t;
    bool ok = s && !(n->flags & IR_F_FRESH) ? pstate_copy(&t, s) : pstate_init(&t);
    if (!ok)
        return run_fail(r, n->loc, "out of memory");
    const IrPrefix *px = n->prefix;
    for (uint32_t i = 0; px && ok && i < px->n_segs; i++) {
        const IrSeg *g = &px->segs[i];
        if (g->kind == IR_SEG_TEXT)
            ok = op_append(r, &t, g->text, g->len);
        else
            ok = op_role(r, &t, x->tmpl, g->role, g->kind == IR_SEG_ROLE_BEGIN);
    }
    int32_t *ids = NULL, n_ids = 0, pt = 0;
    if (ok && x->remote && t.len > 0 && remote_prefill(x->remote, t.text, t.len, &pt)) {
        pthread_mutex_lock(&r->mu);
        r->c.requests++;
        r->c.prompt_tokens += pt;
        pthread_mutex_unlock(&r->mu);
    } else if (ok && !x->remote && sgl_engine_encode(x->engine, t.text, t.len, true, &ids, &n_ids) == SGL_OK &&
               n_ids > 2) {
        SglRequest rq = {0};
        sgl_sampling_params_default(&rq.params);
        rq.params.max_new_tokens = 0;
        rq.input_ids = ids;
        rq.n_input = n_ids - 1;   /* the last token may still merge with later text */
        SglErr err;
        if (sgl_engine_submit(x->engine, &rq, NULL, &err) == SGL_OK) {
            pthread_mutex_lock(&r->mu);
            r->c.requests++;
            r->c.prompt_tokens += rq.n_input;
            pthread_mutex_unlock(&r->mu);
        }
    }
    free(ids);
    pstate_deinit(&t);
    return ok;
}

/* ------------------------------------------------------------ pure ops */

bool op_unop(SglRun *r, const IrNode *n, const Value *v, Value **out)
{
    if (n->aop == IR_ARITH_NOT)
        *out = val_bool(!v->b);
    else if (v->kind == VAL_FLOAT)
        *out = val_float(-v->f);
    else if (v->i == INT64_MIN)
        return run_fail(r, n->loc, "integer overflow in -(%lld)", (long long)v->i);
    else
        *out = val_int(-v->i);
    return *out ? true : run_fail(r, n->loc, "out of memory");
}

static Value *concat_lists(const Value *a, const Value *b)
{
    uint32_t n = a->list.n + b->list.n;
    Value **items = malloc(((size_t)n + 1) * sizeof *items);
    if (!items)
        return NULL;
    for (uint32_t i = 0; i < a->list.n; i++)
        items[i] = val_ref(a->list.items[i]);
    for (uint32_t i = 0; i < b->list.n; i++)
        items[a->list.n + i] = val_ref(b->list.items[i]);
    Value *v = val_list_take(items, n);
    free(items);
    return v;
}

bool op_binop(SglRun *r, const IrNode *n, const Value *a, const Value *b, Value **out)
{
    IrArith op = (IrArith)n->aop;
    *out = NULL;
    switch (op) {
    case IR_ARITH_EQ: *out = val_bool(val_equal(a, b)); break;
    case IR_ARITH_NE: *out = val_bool(!val_equal(a, b)); break;
    case IR_ARITH_LT: *out = val_bool(val_compare(a, b) < 0); break;
    case IR_ARITH_LE: *out = val_bool(val_compare(a, b) <= 0); break;
    case IR_ARITH_GT: *out = val_bool(val_compare(a, b) > 0); break;
    case IR_ARITH_GE: *out = val_bool(val_compare(a, b) >= 0); break;
    case IR_ARITH_AND: *out = val_bool(a->b && b->b); break;
    case IR_ARITH_OR: *out = val_bool(a->b || b->b); break;
    case IR_ARITH_ADD:
        if (a->kind == VAL_STR) {
            char *s = malloc(a->str.len + b->str.len + 1);
            if (s) {
                memcpy(s, a->str.s, a->str.len);
                memcpy(s + a->str.len, b->str.s, b->str.len + 1);
                *out = val_str_take(s, a->str.len + b->str.len);
            }
            break;
        }
        if (a->kind == VAL_LIST) {
            *out = concat_lists(a, b);
            break;
        }
        /* fall through */
    case IR_ARITH_SUB:
    case IR_ARITH_MUL:
    case IR_ARITH_DIV:
    case IR_ARITH_MOD:
        if (a->kind == VAL_FLOAT || b->kind == VAL_FLOAT) {
            double x = a->kind == VAL_INT ? (double)a->i : a->f, y = b->kind == VAL_INT ? (double)b->i : b->f;
            double z = op == IR_ARITH_ADD ? x + y : op == IR_ARITH_SUB ? x - y : op == IR_ARITH_MUL ? x * y
                     : op == IR_ARITH_DIV ? x / y : fmod(x, y);
            *out = val_float(z);
        } else {
            int64_t x = a->i, y = b->i, z = 0;
            bool ovf = false;
            if (op == IR_ARITH_ADD)
                ovf = __builtin_add_overflow(x, y, &z);
            else if (op == IR_ARITH_SUB)
                ovf = __builtin_sub_overflow(x, y, &z);
            else if (op == IR_ARITH_MUL)
                ovf = __builtin_mul_overflow(x, y, &z);
            else if (y == 0)
                return run_fail(r, n->loc, "%s by zero", op == IR_ARITH_DIV ? "division" : "modulo");
            else if (x == INT64_MIN && y == -1)
                ovf = true;
            else
                z = op == IR_ARITH_DIV ? x / y : x % y;
            if (ovf)
                return run_fail(r, n->loc, "integer overflow in %lld %s %lld", (long long)x,
                                ir_arith_name(op), (long long)y);
            *out = val_int(z);
        }
        break;
    default:
        return run_fail(r, n->loc, "bad operator %s", ir_arith_name(op));
    }
    return *out ? true : run_fail(r, n->loc, "out of memory");
}

bool op_concat(SglRun *r, const IrNode *n, Value *const *args, uint32_t n_args, Value **out)
{
    size_t cap = 64, len = 0;
    char *buf = malloc(cap);
    for (uint32_t i = 0; buf && i < n_args; i++) {
        size_t l;
        char *t = args[i]->kind == VAL_STR ? NULL : val_to_text(args[i], &l);
        const char *src = args[i]->kind == VAL_STR ? args[i]->str.s : t;
        if (args[i]->kind == VAL_STR)
            l = args[i]->str.len;
        if (!src) {
            free(buf);
            buf = NULL;
            break;
        }
        if (len + l + 1 > cap) {
            while (len + l + 1 > cap)
                cap *= 2;
            char *p = realloc(buf, cap);
            if (!p) {
                free(buf);
                free(t);
                buf = NULL;
                break;
            }
            buf = p;
        }
        memcpy(buf + len, src, l);
        len += l;
        free(t);
    }
    if (!buf)
        return run_fail(r, n->loc, "out of memory");
    buf[len] = '\0';
    *out = val_str_take(buf, len);
    return *out ? true : run_fail(r, n->loc, "out of memory");
}

bool op_index(SglRun *r, const IrNode *n, const Value *xs, const Value *i, Value **out)
{
    if (i->i < 0 || i->i >= (int64_t)xs->list.n)
        return run_fail(r, n->loc, "index %lld out of range for a list of length %u", (long long)i->i,
                        xs->list.n);
    *out = val_ref(xs->list.items[i->i]);
    return true;
}

bool op_set_index(SglRun *r, const IrNode *n, const Value *xs, const Value *i, Value *v, Value **out)
{
    if (i->i < 0 || i->i >= (int64_t)xs->list.n)
        return run_fail(r, n->loc, "index %lld out of range for a list of length %u", (long long)i->i,
                        xs->list.n);
    Value **items = malloc(((size_t)xs->list.n + 1) * sizeof *items);
    if (!items)
        return run_fail(r, n->loc, "out of memory");
    for (uint32_t k = 0; k < xs->list.n; k++)
        items[k] = val_ref(k == (uint32_t)i->i ? v : xs->list.items[k]);
    *out = val_list_take(items, xs->list.n);
    free(items);
    return *out ? true : run_fail(r, n->loc, "out of memory");
}

bool op_set_field(SglRun *r, const IrNode *n, const Value *rec, Value *v, Value **out)
{
    int32_t nf = rec->rec.type->n_fields;
    Value **f = malloc(((size_t)nf + 1) * sizeof *f);
    if (!f)
        return run_fail(r, n->loc, "out of memory");
    for (int32_t k = 0; k < nf; k++)
        f[k] = val_ref((uint32_t)k == n->index ? v : rec->rec.fields[k]);
    *out = val_record_take(rec->rec.type, f);
    free(f);
    return *out ? true : run_fail(r, n->loc, "out of memory");
}

bool op_builtin(SglRun *r, const IrNode *n, Value **args, Value **out)
{
    char msg[400];
    const ValType *rt = n->type ? exec_vtype(r->x, n->type) : NULL;
    if (!sgl_builtin_call((IrBuiltin)n->aop, args, n->n_args, rt, out, msg, sizeof msg))
        return run_fail(r, n->loc, "%s", msg);
    return true;
}

/* gen.c -- SrvJob: engine requests of one HTTP call, and their results.
 *
 * A job holds n_req prompts that share one SglSamplingParams (and one
 * constraint DFA); each prompt becomes one engine request with p.n samples.
 * They are submitted in one sgl_engine_submit_batch and their events land in
 * the job's own SglEventQueue; job_step folds one event into its SrvSample
 * (text, ids, logprobs, finish) on the handler's thread, which streaming
 * needs. A non-streaming job (direct) skips the queue: the engine thread
 * folds each event under the job's mutex and wakes the handler only when the
 * last request finished (no copy and no thread wake-up per token).
 * Invariant: the job is freed only after every submitted request delivered
 * its last event, so job_free aborts what is still open and drains; the
 * engine guarantees that final event.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/server/srv_int.h"

SrvJob *job_new(Srv *s, int32_t n_req)
{
    SrvJob *j = calloc(1, sizeof *j);
    if (!j)
        return NULL;
    j->s = s;
    j->n_req = n_req;
    j->n = 1;
    sgl_sampling_params_default(&j->p);
    j->prompt = calloc((size_t)n_req, sizeof *j->prompt);
    j->n_prompt = calloc((size_t)n_req, sizeof *j->n_prompt);
    j->prompt_lps = calloc((size_t)n_req, sizeof *j->prompt_lps);
    j->ids = calloc((size_t)n_req, sizeof *j->ids);
    j->rctx = calloc((size_t)n_req, sizeof *j->rctx);
    j->t0 = srv_now();
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    snprintf(j->rid, sizeof j->rid, "%016llx",
             (unsigned long long)atomic_fetch_add(&s->next_id, 1) * 0x9E3779B97F4A7C15ull);
    if (!j->prompt || !j->n_prompt || !j->prompt_lps || !j->ids || !j->rctx) {
        job_free(j);
        return NULL;
    }
    return j;
}

static void unlink_job(SrvJob *j)
{
    Srv *s = j->s;
    pthread_mutex_lock(&s->jobs_mu);
    if (j->prev)
        j->prev->next = j->next;
    else if (s->jobs == j)
        s->jobs = j->next;
    if (j->next)
        j->next->prev = j->prev;
    j->next = j->prev = NULL;
    pthread_mutex_unlock(&s->jobs_mu);
}

void job_abort(SrvJob *j)
{
    if (j->aborted || !j->submitted)
        return;
    j->aborted = true;
    for (int32_t i = 0; i < j->n_req; i++)
        sgl_engine_abort(j->s->engine, j->ids[i]);
}

int job_abort_rid(Srv *s, const char *rid)
{
    int n = 0;
    pthread_mutex_lock(&s->jobs_mu);
    for (SrvJob *j = s->jobs; j; j = j->next)
        if (!rid || strcmp(rid, j->rid) == 0) {
            for (int32_t i = 0; i < j->n_req; i++)
                sgl_engine_abort(s->engine, j->ids[i]);
            n++;
        }
    pthread_mutex_unlock(&s->jobs_mu);
    return n;
}

void job_free(SrvJob *j)
{
    if (!j)
        return;
    if (j->submitted) {
        job_abort(j);
        while (job_step(j, 1000) != -2)
            ;
        unlink_job(j);
        sgl_evq_free(j->q);
        atomic_fetch_sub(&j->s->c.inflight, 1);
    }
    pthread_cond_destroy(&j->cv);
    pthread_mutex_destroy(&j->mu);
    for (int32_t i = 0; i < SGL_MAX_STOP; i++)
        free(j->stop_buf[i]);
    free(j->stop_ids);
    sgl_dfa_free(j->dfa);
    for (int32_t i = 0; j->prompt && i < j->n_req; i++) {
        free(j->prompt[i]);
        free(j->prompt_lps ? j->prompt_lps[i] : NULL);
    }
    for (int32_t i = 0; j->smp && i < j->n_req * j->n; i++) {
        SrvSample *m = &j->smp[i];
        free(m->text);
        free(m->ids);
        free(m->lps);
        free(m->top);
        free(m->matched_stop);
        free(m->error);
    }
    free(j->smp);
    free(j->prompt);
    free(j->n_prompt);
    free(j->prompt_lps);
    free(j->ids);
    free(j->rctx);
    free(j);
}

static void on_event_direct(void *user, const SglEvent *ev);

int job_submit(SrvJob *j, char *msg, size_t cap)
{
    Srv *s = j->s;
    int status = 500;
    SglRequest *reqs = calloc((size_t)j->n_req, sizeof *reqs);
    j->n = j->p.n;
    j->smp = calloc((size_t)j->n_req * (size_t)j->n, sizeof *j->smp);
    if (!reqs || !j->smp || (!j->direct && !(j->q = sgl_evq_new()))) {
        snprintf(msg, cap, "out of memory");
        goto out;
    }
    int32_t n_top = j->p.top_logprobs_num;
    for (int32_t i = 0; i < j->n_req * j->n; i++)
        j->smp[i].n_top = n_top;
    SglErr err = {{0}};
    for (int32_t i = 0; i < j->n_req; i++) {
        reqs[i].input_ids = j->prompt[i];
        reqs[i].n_input = j->n_prompt[i];
        reqs[i].params = j->p;
        reqs[i].on_event = j->direct ? on_event_direct : sgl_evq_on_event;
        j->rctx[i] = (SrvReqCtx){j, i};
        reqs[i].user = j->direct ? (void *)&j->rctx[i] : (void *)j->q;
        if (j->dfa && tokmask_constraint_new(s->tokreg, j->dfa, s->tok, j->n, &reqs[i].constraint,
                                             &err) != SGL_OK) {
            snprintf(msg, cap, "constraint: %s", err.msg);
            status = 400;
            goto out;
        }
    }
    /* before the submit: a direct job's events may arrive before it returns */
    j->open = j->n_req;
    SglStatus st = sgl_engine_submit_batch(s->engine, reqs, j->n_req, j->ids, &err);
    if (st != SGL_OK) {
        j->open = 0;
        snprintf(msg, cap, "%s", err.msg[0] ? err.msg : sgl_status_str(st));
        status = st == SGL_E_INVAL ? 400 : st == SGL_E_FULL ? 503 : st == SGL_E_CLOSED ? 503 : 500;
        goto out;
    }
    j->submitted = true;
    free(reqs);
    pthread_mutex_lock(&s->jobs_mu);
    j->next = s->jobs;
    if (s->jobs)
        s->jobs->prev = j;
    s->jobs = j;
    pthread_mutex_unlock(&s->jobs_mu);
    atomic_fetch_add(&s->c.gen_requests, j->n_req);
    atomic_fetch_add(&s->c.inflight, 1);
    return 0;
out:
    /* the engine never saw these: their constraints are ours to release */
    for (int32_t i = 0; reqs && i < j->n_req; i++)
        if (reqs[i].constraint.release)
            reqs[i].constraint.release(reqs[i].constraint.ctx);
    free(reqs);
    if (j->q) {
        sgl_evq_free(j->q);
        j->q = NULL;
    }
    return status;
}

static void append_text(SrvSample *m, const char *t, size_t n)
{
    if (n == 0)
        return;
    if (m->len + n + 1 > m->cap) {
        size_t nc = m->cap ? m->cap * 2 : 256;
        while (nc < m->len + n + 1)
            nc *= 2;
        char *q = realloc(m->text, nc);
        if (!q)
            return;
        m->text = q;
        m->cap = nc;
    }
    memcpy(m->text + m->len, t, n);
    m->len += n;
    m->text[m->len] = '\0';
}

static int32_t req_index(const SrvJob *j, uint64_t id)
{
    for (int32_t i = 0; i < j->n_req; i++)
        if (j->ids[i] == id)
            return i;
    return -1;
}

/* Folds one event into its sample; the index of the sample, or -1. */
static int fold(SrvJob *j, int32_t r, const SglEvent *ev)
{
    int idx = -1;
    if (r >= 0 && ev->index >= 0 && ev->index < j->n) {
        idx = r * j->n + ev->index;
        SrvSample *m = &j->smp[idx];
        if (ev->kind == SGL_EV_TOKEN) {
            if (m->n + 1 > m->cap_ids) {
                int32_t nc = m->cap_ids ? m->cap_ids * 2 : 64;
                bool ok = true;
                int32_t *ni = realloc(m->ids, (size_t)nc * sizeof *ni);
                ok = ni != NULL;
                if (ni)
                    m->ids = ni;
                if (ok && j->p.return_logprob) {
                    float *nl = realloc(m->lps, (size_t)nc * sizeof *nl);
                    ok = nl != NULL;
                    if (nl)
                        m->lps = nl;
                }
                if (ok && m->n_top > 0) {
                    SglTopLogprob *nt = realloc(m->top, (size_t)nc * (size_t)m->n_top * sizeof *nt);
                    ok = nt != NULL;
                    if (nt)
                        m->top = nt;
                }
                if (ok)
                    m->cap_ids = nc;
            }
            if (m->n < m->cap_ids) {
                m->ids[m->n] = ev->token;
                if (j->p.return_logprob)
                    m->lps[m->n] = ev->logprob;
                for (int32_t t = 0; t < m->n_top; t++)
                    m->top[(size_t)m->n * (size_t)m->n_top + (size_t)t] =
                        t < ev->n_top && ev->top ? ev->top[t] : (SglTopLogprob){-1, -INFINITY};
                m->n++;
            }
            append_text(m, ev->text, ev->text_len);
        } else {
            append_text(m, ev->text, ev->text_len);
            if (ev->output_text && ev->output_text_len >= m->sent) {
                m->len = 0;
                append_text(m, ev->output_text, ev->output_text_len);
            }
            m->done = true;
            m->finish = ev->finish;
            m->matched_token = ev->matched_token;
            m->matched_stop = ev->matched_stop ? strdup(ev->matched_stop) : NULL;
            m->error = ev->error ? strdup(ev->error) : NULL;
            m->prompt_tokens = ev->prompt_tokens;
            m->completion_tokens = ev->completion_tokens;
            m->cached_tokens = ev->cached_tokens;
            if (ev->prompt_logprobs && !j->prompt_lps[r]) {
                j->prompt_lps[r] = malloc((size_t)ev->prompt_tokens * sizeof(float));
                if (j->prompt_lps[r])
                    memcpy(j->prompt_lps[r], ev->prompt_logprobs, (size_t)ev->prompt_tokens * sizeof(float));
            }
            if (ev->last)
                j->open--;
        }
    }
    return idx;
}

/* The engine-thread callback of direct jobs. */
static void on_event_direct(void *user, const SglEvent *ev)
{
    /* user: &j->rctx[r] (the engine id is not known here before submit returns) */
    SrvReqCtx *rc = user;
    SrvJob *j = rc->j;
    pthread_mutex_lock(&j->mu);
    fold(j, rc->r, ev);
    if (j->open == 0)
        pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

int job_step(SrvJob *j, int timeout_ms)
{
    if (!j->submitted)
        return -2;
    if (j->direct) {
        pthread_mutex_lock(&j->mu);
        if (j->open > 0) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += timeout_ms / 1000;
            ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&j->cv, &j->mu, &ts);
        }
        int r = j->open == 0 ? -2 : -1;
        pthread_mutex_unlock(&j->mu);
        return r;
    }
    if (j->open == 0)
        return -2;
    SglEvent *ev = NULL;
    if (sgl_evq_get(j->q, timeout_ms, &ev) != SGL_OK)
        return -1;
    int idx = fold(j, req_index(j, ev->id), ev);
    free(ev);
    return idx;
}


bool job_wait(SrvJob *j, SrvCall *c)
{
    for (;;) {
        int r = job_step(j, 50);
        if (r == -2)
            return true;
        if (r == -1 && call_gone(c)) {
            atomic_fetch_add(&j->s->c.disconnects, 1);
            job_abort(j);
            while (job_step(j, 1000) != -2)
                ;
            return false;
        }
    }
}

void job_count(SrvJob *j)
{
    Srv *s = j->s;
    int64_t pt = 0, ct = 0, cached = 0;
    for (int32_t r = 0; r < j->n_req; r++) {
        const SrvSample *m0 = &j->smp[r * j->n];
        pt += m0->prompt_tokens;
        cached += m0->cached_tokens;
        for (int32_t k = 0; k < j->n; k++)
            ct += j->smp[r * j->n + k].completion_tokens;
    }
    atomic_fetch_add(&s->c.prompt_tokens, pt);
    atomic_fetch_add(&s->c.completion_tokens, ct);
    atomic_fetch_add(&s->c.cached_tokens, cached);
    metrics_tick(s);
}

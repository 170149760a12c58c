/* request.c -- the polling event queue (SglEventQueue, see request.h).
 *
 * A singly linked FIFO under one mutex. Each queued event is one malloc'd
 * block: the SglEvent itself followed by copies of everything it borrowed
 * (text, top logprobs, strings, output ids and logprobs, prompt logprobs),
 * with the event's pointers rewritten to point into the block, so the
 * consumer frees it with one free(). Events are copied on the engine thread;
 * that allocation is the price of polling (callback users pay nothing).
 */
#include "runtime/request.h"

#include <errno.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct EvNode {
    struct EvNode *next;
    SglEvent *ev;
} EvNode;

struct SglEventQueue {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    EvNode *head, *tail;
    int64_t dropped;
};

SglEventQueue *sgl_evq_new(void)
{
    SglEventQueue *q = calloc(1, sizeof *q);
    if (!q)
        return NULL;
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    return q;
}

void sgl_evq_free(SglEventQueue *q)
{
    if (!q)
        return;
    for (EvNode *n = q->head, *next; n; n = next) {
        next = n->next;
        free(n->ev);
        free(n);
    }
    pthread_cond_destroy(&q->cv);
    pthread_mutex_destroy(&q->mu);
    free(q);
}

/* Bump allocator over the event's block. */
typedef struct {
    char *p;
    size_t off;
} Blk;

static size_t al(size_t n) { return (n + alignof(max_align_t) - 1) / alignof(max_align_t) * alignof(max_align_t); }

static void *put(Blk *b, const void *src, size_t n, bool nul)
{
    void *dst = b->p + b->off;
    if (n)
        memcpy(dst, src, n);
    if (nul)
        ((char *)dst)[n] = '\0';
    b->off += al(n + (nul ? 1 : 0));
    return dst;
}

static SglEvent *copy_event(const SglEvent *ev)
{
    size_t n_prompt = ev->prompt_logprobs ? (size_t)ev->prompt_tokens : 0;
    size_t n_out = ev->kind == SGL_EV_FINAL ? (size_t)ev->completion_tokens : 0;
    size_t sz = al(sizeof *ev) + al(ev->text_len + 1) + al((size_t)ev->n_top * sizeof *ev->top) +
                (ev->matched_stop ? al(strlen(ev->matched_stop) + 1) : 0) +
                (ev->error ? al(strlen(ev->error) + 1) : 0) +
                (ev->output_ids ? al(n_out * sizeof *ev->output_ids) : 0) +
                (ev->output_logprobs ? al(n_out * sizeof *ev->output_logprobs) : 0) +
                (ev->output_text ? al(ev->output_text_len + 1) : 0) + al(n_prompt * sizeof(float));
    Blk b = {malloc(sz), 0};
    if (!b.p)
        return NULL;
    SglEvent *c = put(&b, ev, sizeof *ev, false);
    c->text = put(&b, ev->text ? ev->text : "", ev->text ? ev->text_len : 0, true);
    c->top = ev->n_top > 0 && ev->top ? put(&b, ev->top, (size_t)ev->n_top * sizeof *ev->top, false) : NULL;
    c->matched_stop = ev->matched_stop ? put(&b, ev->matched_stop, strlen(ev->matched_stop), true) : NULL;
    c->error = ev->error ? put(&b, ev->error, strlen(ev->error), true) : NULL;
    c->output_ids = ev->output_ids && ev->kind == SGL_EV_FINAL
                        ? put(&b, ev->output_ids, n_out * sizeof *ev->output_ids, false) : NULL;
    c->output_logprobs = ev->output_logprobs && ev->kind == SGL_EV_FINAL
                             ? put(&b, ev->output_logprobs, n_out * sizeof *ev->output_logprobs, false) : NULL;
    c->output_text = ev->output_text ? put(&b, ev->output_text, ev->output_text_len, true) : NULL;
    c->prompt_logprobs = n_prompt ? put(&b, ev->prompt_logprobs, n_prompt * sizeof(float), false) : NULL;
    return c;
}

void sgl_evq_on_event(void *user, const SglEvent *ev)
{
    SglEventQueue *q = user;
    SglEvent *c = copy_event(ev);
    EvNode *n = malloc(sizeof *n);
    if (!c && ev->kind == SGL_EV_FINAL && (c = malloc(sizeof *c))) {
        *c = *ev; /* the fixed fields: the consumer still learns it ended */
        c->text = "";
        c->text_len = 0;
        c->n_top = 0;
        c->top = NULL;
        c->matched_stop = c->error = NULL;
        c->output_ids = NULL;
        c->output_logprobs = NULL;
        c->output_text = NULL;
        c->output_text_len = 0;
        c->prompt_logprobs = NULL;
    }
    pthread_mutex_lock(&q->mu);
    if (!c || !n) {
        q->dropped++;
        free(c);
        free(n);
    } else {
        n->ev = c;
        n->next = NULL;
        if (q->tail)
            q->tail->next = n;
        else
            q->head = n;
        q->tail = n;
        pthread_cond_signal(&q->cv);
    }
    pthread_mutex_unlock(&q->mu);
}

SglStatus sgl_evq_get(SglEventQueue *q, int timeout_ms, SglEvent **out)
{
    *out = NULL;
    struct timespec until;
    if (timeout_ms > 0) {
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += timeout_ms / 1000;
        until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
    }
    pthread_mutex_lock(&q->mu);
    while (!q->head && timeout_ms != 0) {
        if (timeout_ms < 0)
            pthread_cond_wait(&q->cv, &q->mu);
        else if (pthread_cond_timedwait(&q->cv, &q->mu, &until) == ETIMEDOUT)
            break;
    }
    EvNode *n = q->head;
    if (n) {
        q->head = n->next;
        if (!q->head)
            q->tail = NULL;
    }
    pthread_mutex_unlock(&q->mu);
    if (!n)
        return SGL_E_AGAIN;
    *out = n->ev;
    free(n);
    return SGL_OK;
}

int64_t sgl_evq_dropped(SglEventQueue *q)
{
    pthread_mutex_lock(&q->mu);
    int64_t d = q->dropped;
    pthread_mutex_unlock(&q->mu);
    return d;
}

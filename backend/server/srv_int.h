/* srv_int.h -- what the files of backend/server share.
 *
 *   http.c        libmicrohttpd plumbing: bodies, limits, API key, routing,
 *                 responses (plain, JSON, SSE), disconnect detection
 *   gen.c         SrvJob: a set of engine requests submitted together, their
 *                 events folded into per-sample results
 *   params.c      JSON fields -> SglSamplingParams + constraints, every field
 *                 checked with its name in the message
 *   api_native.c  SGLang endpoints;  api_openai.c  OpenAI endpoints
 *   metrics.c     counters, /get_server_info, /metrics
 * A handler gets an SrvCall (the connection's request) and answers through
 * call_json / call_error / call_sse_*; it never touches MHD directly.
 */
#ifndef SGL_SRV_INT_H
#define SGL_SRV_INT_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>

#include "backend/server/server.h"
#include "runtime/tokmask.h"

typedef struct {
    atomic_long http_requests, http_errors_4xx, http_errors_5xx, disconnects;
    atomic_long gen_requests, prompt_tokens, completion_tokens, cached_tokens;
    atomic_int inflight;           /* HTTP generation requests being served */
} SrvCounters;

struct Srv {
    SrvOpts o;
    SglEngine *engine;             /* borrowed */
    const SglTokenizer *tok;       /* borrowed from the engine */
    int32_t vocab, context_len;
    TokRegistry *tokreg;           /* owned: constraint FSMs shared by requests */
    struct MHD_Daemon *mhd;
    int port;
    char model_name[256];
    atomic_int stopping;           /* shutdown: handlers abort and return */
    atomic_ullong next_id;         /* ids of HTTP requests (rid) */
    SrvCounters c;
    double t_start;
    pthread_mutex_t rate_mu;       /* guards the throughput sample below */
    double rate_t;
    int64_t rate_tokens;
    double rate_tps;
    pthread_mutex_t jobs_mu;
    struct SrvJob *jobs;           /* submitted jobs (abort_request) */
};

/* One HTTP request in flight (owned by http.c). */
typedef struct SrvCall {
    Srv *s;
    struct MHD_Connection *conn;
    const char *method, *url;
    char *body;                    /* NUL-terminated */
    size_t len;
    bool answered;
    int status;                    /* status sent (metrics) */
} SrvCall;

double srv_now(void);

/* ---- responses (http.c) ---- */
/* Sends obj (stolen) with status. */
void call_json(SrvCall *c, int status, json_t *obj);
void call_text(SrvCall *c, int status, const char *ctype, const char *text);
/* OpenAI-shaped error {"error": {"message", "type", "param", "code"}} (also
 * understood by SGLang clients); param may be NULL. */
void call_error(SrvCall *c, int status, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Server-sent events. The body is pulled by libmicrohttpd: whenever the
 * client has taken everything written so far, fn(ctx, out) is called on
 * the connection's thread to write more (sse_json / sse_done); it returns 1
 * for "call again", 0 when the stream is complete, -1 to cut it (client
 * gone). On every path free_ctx(ctx) is called once when the response is
 * destroyed (it aborts whatever the stream still had running). */
typedef struct SseOut SseOut;
typedef int (*SseProduce)(void *ctx, SseOut *out);
void call_sse(SrvCall *c, SseProduce fn, void *ctx, void (*free_ctx)(void *));
void sse_json(SseOut *o, json_t *obj);         /* "data: {...}\n\n"; steals obj */
void sse_done(SseOut *o);                      /* "data: [DONE]\n\n" */
bool sse_gone(SseOut *o);                      /* client closed or server stopping */
/* True when the client closed its connection (or the server is stopping). */
bool call_gone(SrvCall *c);
/* json_string of possibly-invalid UTF-8 (bad bytes become U+FFFD). */
json_t *jstr(const char *s, size_t len);

/* ---- jobs (gen.c) ---- */
typedef struct {
    char *text;                    /* cumulative output text (owned) */
    size_t len, cap, sent;         /* sent: bytes already streamed */
    int32_t *ids;                  /* (n) */
    float *lps;                    /* (n) when logprobs */
    SglTopLogprob *top;            /* (n * n_top) */
    int32_t n, cap_ids, n_top;
    bool done;
    SglFinishKind finish;
    int32_t matched_token;
    char *matched_stop, *error;
    int32_t prompt_tokens, completion_tokens, cached_tokens;
} SrvSample;

typedef struct { struct SrvJob *j; int32_t r; } SrvReqCtx;   /* a direct request's user */

typedef struct SrvJob {
    Srv *s;
    SglSamplingParams p;           /* shared by every request; stops point into stop_buf */
    char *stop_buf[SGL_MAX_STOP];
    int32_t *stop_ids;
    SglDfa *dfa;                   /* owned: the constraint, or NULL */
    int32_t n_req, n;              /* requests, samples per request */
    int32_t **prompt;              /* (n_req) owned token ids */
    int32_t *n_prompt;
    float **prompt_lps;            /* (n_req) from the FINAL event, or NULL */
    SrvSample *smp;                /* (n_req * n) */
    bool direct;                   /* set before submit: fold events on the engine thread
                                    * (non-streaming); else through q */
    SglEventQueue *q;
    pthread_mutex_t mu;            /* direct: guards the samples and open */
    pthread_cond_t cv;             /* direct: signalled when open reaches 0 */
    uint64_t *ids;                 /* (n_req) engine ids (set when submit returns) */
    SrvReqCtx *rctx;               /* (n_req) */
    int32_t open;                  /* submitted requests without their last event */
    bool submitted, aborted;
    double t0;
    char rid[40];                  /* meta_info.id; /abort_request finds jobs by it */
    struct SrvJob *next, *prev;    /* Srv.jobs (guarded by jobs_mu) while submitted */
} SrvJob;

SrvJob *job_new(Srv *s, int32_t n_req);
void job_free(SrvJob *j);         /* aborts and drains whatever is still open */
/* Submits every request. 0 or an HTTP status (400/503/500) with msg. */
int job_submit(SrvJob *j, char *msg, size_t cap);
/* Waits for one event (up to timeout_ms). Returns the sample index it
 * touched (never for direct jobs), -1 on timeout, -2 when every request has
 * finished (or none was submitted). */
int job_step(SrvJob *j, int timeout_ms);
/* Runs to completion, polling the connection; false when the client left
 * (the job is then aborted and drained). */
bool job_wait(SrvJob *j, SrvCall *c);
void job_abort(SrvJob *j);
/* /abort_request: aborts the job with this rid (NULL: every job); count. */
int job_abort_rid(Srv *s, const char *rid);
void job_count(SrvJob *j);        /* adds its tokens to the counters */

/* ---- parameters (params.c) ---- */
typedef struct {
    char msg[512];
    const char *param;             /* field name, static or pointing into msg */
} SrvErr;

/* Native sampling_params object (may be NULL) into j->p / j->dfa. */
bool params_native(SrvJob *j, const json_t *sp, SrvErr *e);
/* OpenAI request fields (completions and chat share them). chat selects the
 * chat-only fields (logprobs bool + top_logprobs, response_format). */
bool params_openai(SrvJob *j, const json_t *req, bool chat, SrvErr *e);
/* Compiles a regex / JSON schema into j->dfa. */
bool params_regex(SrvJob *j, const char *re, size_t len, const char *field, SrvErr *e);
bool params_schema(SrvJob *j, const json_t *schema, const char *field, SrvErr *e);
/* Text -> j->prompt[i]; ids (a JSON array) -> j->prompt[i]. */
bool prompt_text(SrvJob *j, int32_t i, const char *text, size_t len, bool add_special, SrvErr *e);
bool prompt_ids(SrvJob *j, int32_t i, const json_t *arr, const char *field, SrvErr *e);
bool perr(SrvErr *e, const char *param, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- endpoints ---- */
void api_generate(SrvCall *c, json_t *req);
void api_health_generate(SrvCall *c);
void api_model_info(SrvCall *c);
void api_flush_cache(SrvCall *c);
void api_abort_request(SrvCall *c, json_t *req);
void api_completions(SrvCall *c, json_t *req);
void api_chat(SrvCall *c, json_t *req);
void api_models(SrvCall *c);
void api_server_info(SrvCall *c);
void api_metrics(SrvCall *c);
/* metrics.c: called after each job (tokens/s sample). */
void metrics_tick(Srv *s);

#endif

/* http.c -- libmicrohttpd plumbing for `sglc serve`.
 *
 * One thread per connection (MHD_USE_THREAD_PER_CONNECTION), so a handler
 * may block on its engine events. The access callback collects the body
 * (413 past max_body_bytes, decided from Content-Length up front or while
 * reading a chunked body), checks the API key in constant time, parses JSON
 * (400 with jansson's line/column) and routes to the endpoint. Handlers
 * answer once through call_json/call_error/call_sse. While they wait they
 * poll their socket for a hang-up (call_gone): a client that leaves has its
 * requests aborted. srv_run_until is the graceful shutdown: stop flag, abort
 * every job, stop the daemon (joins the connection threads).
 */
#include <microhttpd.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend/server/listen.h"
#include "backend/server/srv_int.h"
#include "runtime/textbuf.h"

#define DEFAULT_MAX_BODY (8u << 20)

double srv_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- UTF-8 ---- */

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    size_t k = c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 && c < 0xE0 ? 2 : 0;
    if (k == 0 || k > n || (k == 3 && c > 0xEF))
        return 0;
    for (size_t i = 1; i < k; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    unsigned c1 = s[1];
    if ((c == 0xE0 && c1 < 0xA0) || (c == 0xED && c1 > 0x9F) || (c == 0xF0 && c1 < 0x90) ||
        (c == 0xF4 && c1 > 0x8F))
        return 0;
    return k;
}

json_t *jstr(const char *s, size_t len)
{
    json_t *j = json_stringn(s ? s : "", s ? len : 0);
    if (j)
        return j;
    char *buf = malloc(len * 3 + 1);
    if (!buf)
        return json_string("");
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        size_t k = utf8_len((const unsigned char *)s + i, len - i);
        if (k == 0 || (k == 1 && s[i] == 0)) {
            memcpy(buf + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        } else {
            memcpy(buf + o, s + i, k);
            o += k;
            i += k;
        }
    }
    j = json_stringn(buf, o);
    free(buf);
    return j ? j : json_string("");
}

/* ---- responses ---- */

static void count_status(Srv *s, int status)
{
    if (status >= 500)
        atomic_fetch_add(&s->c.http_errors_5xx, 1);
    else if (status >= 400)
        atomic_fetch_add(&s->c.http_errors_4xx, 1);
}

static void send_buf(SrvCall *c, int status, const char *ctype, char *buf, size_t len)
{
    if (c->answered) {
        free(buf);
        return;
    }
    c->answered = true;
    c->status = status;
    count_status(c->s, status);
    struct MHD_Response *r = MHD_create_response_from_buffer(len, buf, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(buf);
        return;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_queue_response(c->conn, (unsigned)status, r);
    MHD_destroy_response(r);
}

void call_text(SrvCall *c, int status, const char *ctype, const char *text)
{
    char *b = strdup(text);
    if (b)
        send_buf(c, status, ctype, b, strlen(b));
}

void call_json(SrvCall *c, int status, json_t *obj)
{
    char *b = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    if (!b) {
        call_text(c, 500, "application/json",
                  "{\"error\":{\"message\":\"out of memory\",\"type\":\"InternalServerError\",\"code\":500}}");
        return;
    }
    send_buf(c, status, "application/json", b, strlen(b));
}

static const char *err_type(int status)
{
    switch (status) {
    case 400: return "BadRequestError";
    case 401: return "AuthenticationError";
    case 404: return "NotFoundError";
    case 405: return "MethodNotAllowed";
    case 413: return "RequestTooLarge";
    case 429: return "RateLimitError";
    case 503: return "ServiceUnavailable";
    default: return status >= 500 ? "InternalServerError" : "BadRequestError";
    }
}

void call_error(SrvCall *c, int status, const char *param, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_t *e = json_pack("{s:o, s:s, s:o, s:i}", "message", jstr(msg, strlen(msg)), "type",
                          err_type(status), "param", param ? json_string(param) : json_null(),
                          "code", status);
    call_json(c, status, json_pack("{s:o, s:s, s:i}", "error", e ? e : json_object(), "object",
                                   "error", "code", status));
}

static bool fd_gone(int fd)
{
    if (fd < 0)
        return false;
    struct pollfd p = {.fd = fd, .events = POLLRDHUP};
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

static int conn_fd(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    return ci ? (int)ci->connect_fd : -1;
}

bool call_gone(SrvCall *c)
{
    return atomic_load(&c->s->stopping) || fd_gone(conn_fd(c->conn));
}

/* ---- SSE ---- */

struct SseOut {
    Srv *s;
    int fd;
    SseProduce fn;
    void *ctx;
    void (*free_ctx)(void *);
    char *buf;
    size_t len, off, cap;
    bool finished;
};

static void sse_put(SseOut *o, const char *a, size_t n)
{
    if (o->len + n > o->cap) {
        size_t nc = o->cap ? o->cap * 2 : 4096;
        while (nc < o->len + n)
            nc *= 2;
        char *b = realloc(o->buf, nc);
        if (!b)
            return;
        o->buf = b;
        o->cap = nc;
    }
    memcpy(o->buf + o->len, a, n);
    o->len += n;
}

void sse_json(SseOut *o, json_t *obj)
{
    char *t = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    if (!t)
        return;
    sse_put(o, "data: ", 6);
    sse_put(o, t, strlen(t));
    sse_put(o, "\n\n", 2);
    free(t);
}

void sse_done(SseOut *o)
{
    sse_put(o, "data: [DONE]\n\n", 14);
}

bool sse_gone(SseOut *o)
{
    return atomic_load(&o->s->stopping) || fd_gone(o->fd);
}

static ssize_t sse_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    SseOut *o = cls;
    (void)pos;
    while (o->off == o->len) {
        if (o->finished)
            return MHD_CONTENT_READER_END_OF_STREAM;
        o->off = o->len = 0;
        int r = o->fn(o->ctx, o);
        if (r < 0)
            return MHD_CONTENT_READER_END_WITH_ERROR;
        if (r == 0)
            o->finished = true;
    }
    size_t n = o->len - o->off < max ? o->len - o->off : max;
    memcpy(buf, o->buf + o->off, n);
    o->off += n;
    return (ssize_t)n;
}

static void sse_free(void *cls)
{
    SseOut *o = cls;
    if (!o->finished)
        atomic_fetch_add(&o->s->c.disconnects, 1);
    o->free_ctx(o->ctx);
    free(o->buf);
    free(o);
}

void call_sse(SrvCall *c, SseProduce fn, void *ctx, void (*free_ctx)(void *))
{
    SseOut *o = calloc(1, sizeof *o);
    struct MHD_Response *r = NULL;
    if (!o || !(r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, sse_reader, o,
                                                         sse_free))) {
        free(o);
        free_ctx(ctx);
        call_error(c, 500, NULL, "out of memory");
        return;
    }
    *o = (SseOut){.s = c->s, .fd = conn_fd(c->conn), .fn = fn, .ctx = ctx, .free_ctx = free_ctx};
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    c->answered = true;
    c->status = 200;
    MHD_queue_response(c->conn, 200, r);
    MHD_destroy_response(r);
}

/* ---- routing ---- */

static bool authorized(SrvCall *c) { return http_authorized(c->conn, c->url, c->s->o.api_key); }

static void route(SrvCall *c)
{
    static const struct {
        const char *path;
        bool post;      /* POST (JSON body) vs GET */
        int kind;
    } routes[] = {
        {"/generate", true, 0},          {"/health", false, 1},
        {"/health_generate", false, 2},  {"/get_model_info", false, 3},
        {"/get_server_info", false, 4},  {"/server_info", false, 4},
        {"/flush_cache", true, 5},       {"/abort_request", true, 6},
        {"/v1/completions", true, 7},    {"/v1/chat/completions", true, 8},
        {"/v1/models", false, 9},        {"/metrics", false, 10},
    };
    int hit = -1;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        if (strcmp(c->url, routes[i].path) == 0)
            hit = (int)i;
    if (hit < 0) {
        call_error(c, 404, NULL, "no such endpoint: %s %.200s", c->method, c->url);
        return;
    }
    bool is_post = strcmp(c->method, "POST") == 0, is_get = strcmp(c->method, "GET") == 0;
    int kind = routes[hit].kind;
    bool ok_method = routes[hit].post ? is_post || (kind == 5 && is_get) : is_get;
    if (!ok_method) {
        call_error(c, 405, NULL, "%s does not accept %s", c->url, c->method);
        return;
    }
    json_t *req = NULL;
    if (is_post && kind != 5) {
        json_error_t je;
        if (!(req = json_loadb(c->body ? c->body : "", c->len, 0, &je))) {
            call_error(c, 400, NULL, "invalid JSON body at line %d column %d: %s", je.line,
                       je.column, je.text);
            return;
        }
        if (!json_is_object(req)) {
            json_decref(req);
            call_error(c, 400, NULL, "the request body must be a JSON object");
            return;
        }
    }
    switch (kind) {
    case 0: api_generate(c, req); break;
    case 1: call_text(c, 200, "text/plain", ""); break;
    case 2: api_health_generate(c); break;
    case 3: api_model_info(c); break;
    case 4: api_server_info(c); break;
    case 5: api_flush_cache(c); break;
    case 6: api_abort_request(c, req); break;
    case 7: api_completions(c, req); break;
    case 8: api_chat(c, req); break;
    case 9: api_models(c); break;
    default: api_metrics(c); break;
    }
    json_decref(req);
}

typedef struct {
    SrvCall call;
    size_t cap;
    bool too_large;
} ConnState;

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload,
                                 size_t *upload_size, void **con_cls)
{
    Srv *s = cls;
    (void)version;
    ConnState *st = *con_cls;
    if (!st) {
        if (!(st = calloc(1, sizeof *st)))
            return MHD_NO;
        st->call = (SrvCall){.s = s, .conn = conn, .method = method, .url = url};
        *con_cls = st;
        atomic_fetch_add(&s->c.http_requests, 1);
        if (!authorized(&st->call)) {
            call_error(&st->call, 401, NULL, "invalid or missing API key (Authorization: Bearer KEY)");
            return MHD_YES;
        }
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        if (cl) {
            char *end;
            unsigned long long n = strtoull(cl, &end, 10);
            if (*end != '\0' || n > s->o.max_body_bytes) {
                call_error(&st->call, 413, NULL, "request body larger than %zu bytes",
                           s->o.max_body_bytes);
                return MHD_YES;
            }
        }
        return MHD_YES;
    }
    SrvCall *c = &st->call;
    if (*upload_size > 0) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (c->answered || st->too_large)
            return MHD_YES;
        if (c->len + n > s->o.max_body_bytes) {
            st->too_large = true;
            free(c->body);
            c->body = NULL;
            c->len = 0;
            return MHD_YES;
        }
        return sgl_text_append(&c->body, &c->len, &st->cap, upload, n) ? MHD_YES : MHD_NO;
    }
    if (c->answered)
        return MHD_YES;
    if (st->too_large) {
        call_error(c, 413, NULL, "request body larger than %zu bytes", s->o.max_body_bytes);
        return MHD_YES;
    }
    if (atomic_load(&s->stopping)) {
        call_error(c, 503, NULL, "the server is shutting down");
        return MHD_YES;
    }
    route(c);
    if (!c->answered)
        call_error(c, 500, NULL, "internal error: no response");
    return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    ConnState *st = *con_cls;
    if (!st)
        return;
    free(st->call.body);
    free(st);
    *con_cls = NULL;
}

static void model_name(Srv *s)
{
    const char *n = s->o.served_model_name;
    if (!n || !*n) {
        const char *d = s->o.model_dir ? s->o.model_dir : "model";
        size_t len = strlen(d);
        while (len > 1 && d[len - 1] == '/')
            len--;
        const char *b = d + len;
        while (b > d && b[-1] != '/')
            b--;
        snprintf(s->model_name, sizeof s->model_name, "%.*s", (int)(d + len - b), b);
    } else
        snprintf(s->model_name, sizeof s->model_name, "%s", n);
}

bool srv_start(const SrvOpts *o, SglEngine *engine, Srv **out, char *msg, size_t cap)
{
    *out = NULL;
    Srv *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(msg, cap, "out of memory");
        return false;
    }
    s->o = *o;
    if (!s->o.host || strcmp(s->o.host, "localhost") == 0)
        s->o.host = "127.0.0.1";
    if (!s->o.max_body_bytes)
        s->o.max_body_bytes = DEFAULT_MAX_BODY;
    if (!s->o.max_connections)
        s->o.max_connections = 1024;
    s->engine = engine;
    s->tok = sgl_engine_tokenizer(engine);
    s->vocab = sgl_engine_model_config(engine)->vocab_size;
    s->context_len = sgl_engine_model_config(engine)->max_position_embeddings;
    if (s->context_len <= 0)
        s->context_len = 2048;
    s->t_start = srv_now();
    s->rate_t = s->t_start;
    atomic_init(&s->next_id, 1);
    pthread_mutex_init(&s->rate_mu, NULL);
    pthread_mutex_init(&s->jobs_mu, NULL);
    model_name(s);
    if (!(s->tokreg = tokreg_new())) {
        snprintf(msg, cap, "out of memory");
        goto fail;
    }
    if (!(s->mhd = http_listen(s->o.host, s->o.port, s->o.max_connections, on_access, s, on_completed, s,
                               &s->port, msg, cap)))
        goto fail;
    *out = s;
    return true;
fail:
    if (s->tokreg)
        tokreg_free(s->tokreg);
    pthread_mutex_destroy(&s->rate_mu);
    pthread_mutex_destroy(&s->jobs_mu);
    free(s);
    return false;
}

int srv_port(const Srv *s)
{
    return s->port;
}

void srv_run_until(Srv *s, volatile sig_atomic_t *stop)
{
    while (!*stop)
        usleep(50 * 1000);
    atomic_store(&s->stopping, 1);
    MHD_quiesce_daemon(s->mhd);
    job_abort_rid(s, NULL);
    MHD_stop_daemon(s->mhd);
    tokreg_free(s->tokreg);
    pthread_mutex_destroy(&s->rate_mu);
    pthread_mutex_destroy(&s->jobs_mu);
    free(s);
}

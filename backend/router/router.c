/* router.c -- the router's HTTP side (router.h): libmicrohttpd in front,
 * libcurl behind.
 *
 * One thread per client connection (as in `sglc serve`), so a handler may
 * block while its worker answers. A proxied request is one curl easy handle
 * driven by its own multi handle from the connection's thread: the handler
 * waits for the worker's status line and headers, polling the client's
 * socket for a hang-up; a text/event-stream answer becomes a callback
 * response whose reader pulls bytes from the worker as the client takes
 * them (nothing is buffered past what the worker already sent), anything
 * else is read whole (bounded) and answered with the worker's status and
 * content type. A worker that fails before sending a status line is marked
 * down and the request tries one other worker; after that, 502 (or 504 on a
 * timeout) with a JSON error. Answers that come from a worker name it in an
 * X-Sglc-Worker header. The health thread probes every worker's
 * /health each interval and flips workers up and down.
 */
#include <curl/curl.h>
#include <jansson.h>
#include <microhttpd.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend/router/router.h"
#include "backend/server/listen.h"
#include "runtime/textbuf.h"

#define DEFAULT_MAX_BODY (8u << 20)
#define MAX_RESPONSE (64u << 20)
#define POOL_MAX 64                /* idle connections kept per worker */

/* A curl multi handle owns its connection cache, so a (multi, easy) pair
 * that finished a transfer cleanly keeps its keep-alive connection to the
 * worker; the next request to that worker reuses it. */
typedef struct {
    CURLM *multi;
    CURL *easy;
} CurlPair;

typedef struct {
    char *url;                     /* owned: base URL without a trailing '/' */
    atomic_bool healthy;
    atomic_int inflight;           /* proxied requests not yet finished */
    atomic_long requests, failures;
    pthread_mutex_t pool_mu;       /* guards the idle pairs */
    CurlPair idle[POOL_MAX];       /* owned */
    int n_idle;
} RtWorker;

struct Router {
    RouterOpts o;
    RtWorker *w;                   /* (n_workers) */
    RtBalancer *bal;               /* owned */
    struct MHD_Daemon *mhd;
    int port;
    atomic_int stopping;
    atomic_uint any_rr;            /* rotation for the unrouted endpoints */
    atomic_long http_requests, errors_4xx, errors_5xx, retries, no_worker;
    pthread_t health;
    bool health_started;
    pthread_mutex_t hmu;           /* guards the health thread's sleep */
    pthread_cond_t hcv;
    double t_start;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- a growable byte buffer ---- */

typedef struct {
    char *buf;
    size_t len, cap, limit;        /* limit 0: MAX_RESPONSE */
    bool too_big;
} Buf;

static bool buf_put(Buf *b, const char *p, size_t n)
{
    size_t lim = b->limit ? b->limit : MAX_RESPONSE;
    if (b->len + n + 1 > lim) {
        b->too_big = true;
        return false;
    }
    return sgl_text_append(&b->buf, &b->len, &b->cap, p, n);
}

static size_t on_body(char *p, size_t sz, size_t nm, void *u)
{
    return buf_put(u, p, sz * nm) ? sz * nm : 0;
}

/* ---- the client side: one connection's request ---- */

typedef struct {
    Router *r;
    struct MHD_Connection *conn;
    const char *method, *url;
    Buf body;
    bool answered, too_large;
} Call;

static void count_status(Router *r, int status)
{
    if (status >= 500)
        atomic_fetch_add(&r->errors_5xx, 1);
    else if (status >= 400)
        atomic_fetch_add(&r->errors_4xx, 1);
}

/* Answers with buf (ownership passes to libmicrohttpd); worker, when not
 * NULL, is named in an X-Sglc-Worker header. */
static void send_buf_from(Call *c, int status, const char *ctype, char *buf, size_t len,
                          const char *worker)
{
    if (c->answered) {
        free(buf);
        return;
    }
    c->answered = true;
    count_status(c->r, status);
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, buf ? buf : "", buf ? MHD_RESPMEM_MUST_FREE
                                                                : MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        free(buf);
        return;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    if (worker)
        MHD_add_response_header(resp, "X-Sglc-Worker", worker);
    MHD_queue_response(c->conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
}

static void send_buf(Call *c, int status, const char *ctype, char *buf, size_t len)
{
    send_buf_from(c, status, ctype, buf, len, NULL);
}

static void send_json(Call *c, int status, json_t *obj)
{
    char *b = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    if (!b)
        b = strdup("{\"error\":{\"message\":\"out of memory\",\"code\":500}}");
    send_buf(c, b ? status : 500, "application/json", b, b ? strlen(b) : 0);
}

static const char *err_type(int status)
{
    switch (status) {
    case 400: return "BadRequestError";
    case 401: return "AuthenticationError";
    case 404: return "NotFoundError";
    case 405: return "MethodNotAllowed";
    case 413: return "RequestTooLarge";
    case 502: return "BadGateway";
    case 503: return "ServiceUnavailable";
    case 504: return "GatewayTimeout";
    default: return status >= 500 ? "InternalServerError" : "BadRequestError";
    }
}

static json_t *error_obj(int status, const char *msg)
{
    json_t *s = json_string(msg);
    if (!s)
        s = json_string("(message not valid UTF-8)");
    return json_pack("{s:{s:o, s:s, s:n, s:i}, s:s, s:i}", "error", "message", s, "type",
                     err_type(status), "param", "code", status, "object", "error", "code", status);
}

static void send_error(Call *c, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void send_error(Call *c, int status, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    send_json(c, status, error_obj(status, msg));
}

static int conn_fd(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    return ci ? (int)ci->connect_fd : -1;
}

static bool fd_gone(int fd)
{
    if (fd < 0)
        return false;
    struct pollfd p = {.fd = fd, .events = POLLRDHUP};
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

/* ---- the worker side: one proxied request ---- */

typedef struct {
    Router *r;
    int32_t w;
    CURLM *multi;
    CURL *easy;
    struct curl_slist *hdrs;
    char *req_body;                /* owned copy: curl reads it while the call runs */
    Buf out;                       /* worker bytes not yet passed on */
    size_t off;                    /* streaming: bytes of out already given to the client */
    char ctype[128];
    long status;
    bool headers_done, done, err_sent, counted;
    CURLcode result;
    char errbuf[CURL_ERROR_SIZE];
    int client_fd;
} Proxy;

static size_t on_header(char *p, size_t sz, size_t nm, void *u)
{
    Proxy *x = u;
    size_t n = sz * nm;
    if (n >= 13 && strncasecmp(p, "Content-Type:", 13) == 0) {
        size_t i = 13, e = n;
        while (i < e && (p[i] == ' ' || p[i] == '\t'))
            i++;
        while (e > i && (p[e - 1] == '\r' || p[e - 1] == '\n' || p[e - 1] == ' '))
            e--;
        snprintf(x->ctype, sizeof x->ctype, "%.*s", (int)(e - i), p + i);
    } else if (n <= 2 && (p[0] == '\r' || p[0] == '\n')) {
        long st = 0;
        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &st);
        if (st >= 200) {           /* not an interim 1xx */
            x->status = st;
            x->headers_done = true;
        }
    }
    return n;
}

/* An idle pair for worker w (its connection may still be open), or a new
 * one; false: out of memory. */
static bool pair_take(RtWorker *wk, CurlPair *p)
{
    pthread_mutex_lock(&wk->pool_mu);
    bool reused = wk->n_idle > 0;
    if (reused)
        *p = wk->idle[--wk->n_idle];
    pthread_mutex_unlock(&wk->pool_mu);
    if (reused) {
        curl_easy_reset(p->easy);
        return true;
    }
    p->multi = curl_multi_init();
    p->easy = curl_easy_init();
    if (p->multi && p->easy)
        return true;
    if (p->easy)
        curl_easy_cleanup(p->easy);
    if (p->multi)
        curl_multi_cleanup(p->multi);
    return false;
}

static void pair_free(CurlPair *p)
{
    curl_easy_cleanup(p->easy);
    curl_multi_cleanup(p->multi);
}

/* After a clean transfer the pair goes back to the pool; a transfer cut
 * short (client gone, error) closes its connection, which tells the worker
 * to abort the request. */
static void proxy_free(Proxy *x)
{
    if (!x)
        return;
    if (x->multi && x->easy) {
        curl_multi_remove_handle(x->multi, x->easy);
        CurlPair p = {x->multi, x->easy};
        RtWorker *wk = &x->r->w[x->w];
        bool kept = false;
        if (x->done && x->result == CURLE_OK) {
            pthread_mutex_lock(&wk->pool_mu);
            if ((kept = wk->n_idle < POOL_MAX))
                wk->idle[wk->n_idle++] = p;
            pthread_mutex_unlock(&wk->pool_mu);
        }
        if (!kept)
            pair_free(&p);
    }
    curl_slist_free_all(x->hdrs);
    if (x->counted)
        atomic_fetch_sub(&x->r->w[x->w].inflight, 1);
    free(x->req_body);
    free(x->out.buf);
    free(x);
}

/* Starts method path on worker w with the client's Authorization header.
 * NULL: out of memory. */
static Proxy *proxy_new(Router *r, int32_t w, const char *method, const char *path,
                        const char *body, size_t len, const char *auth, int client_fd)
{
    Proxy *x = calloc(1, sizeof *x);
    if (!x)
        return NULL;
    x->r = r;
    x->w = w;
    x->client_fd = client_fd;
    char url[1024], ah[1100];
    snprintf(url, sizeof url, "%s%s", r->w[w].url, path);
    CurlPair p;
    if (!pair_take(&r->w[w], &p))
        goto fail;
    x->multi = p.multi;
    x->easy = p.easy;
    struct curl_slist *h = curl_slist_append(NULL, "Expect:");
    if (h)
        x->hdrs = h;
    if (h && strcmp(method, "POST") == 0 && (h = curl_slist_append(x->hdrs, "Content-Type: application/json")))
        x->hdrs = h;
    if (h && auth) {
        snprintf(ah, sizeof ah, "Authorization: %.1000s", auth);
        if ((h = curl_slist_append(x->hdrs, ah)))
            x->hdrs = h;
    }
    if (!h)
        goto fail;
    curl_easy_setopt(x->easy, CURLOPT_URL, url);
    curl_easy_setopt(x->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, x->hdrs);
    curl_easy_setopt(x->easy, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(x->easy, CURLOPT_WRITEDATA, &x->out);
    curl_easy_setopt(x->easy, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(x->easy, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(x->easy, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(x->easy, CURLOPT_CONNECTTIMEOUT_MS, (long)(r->o.connect_timeout_s * 1000));
    curl_easy_setopt(x->easy, CURLOPT_TIMEOUT_MS, (long)(r->o.request_timeout_s * 1000));
    if (strcmp(method, "POST") == 0) {
        if (!(x->req_body = malloc(len + 1)))
            goto fail;
        memcpy(x->req_body, body ? body : "", len);
        curl_easy_setopt(x->easy, CURLOPT_POST, 1L);
        curl_easy_setopt(x->easy, CURLOPT_POSTFIELDS, x->req_body);
        curl_easy_setopt(x->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    if (curl_multi_add_handle(x->multi, x->easy) != CURLM_OK)
        goto fail;
    atomic_fetch_add(&r->w[w].inflight, 1);
    x->counted = true;
    return x;
fail:
    proxy_free(x);
    return NULL;
}

/* One round of transfer: perform, wait up to timeout_ms for the sockets. */
static void proxy_step(Proxy *x, int timeout_ms)
{
    int running = 0;
    curl_multi_perform(x->multi, &running);
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(x->multi, &left)))
        if (m->msg == CURLMSG_DONE) {
            x->done = true;
            x->result = m->data.result;
        }
    if (!x->done && timeout_ms > 0)
        curl_multi_poll(x->multi, NULL, 0, timeout_ms, NULL);
}

static bool client_left(Proxy *x)
{
    return atomic_load(&x->r->stopping) || fd_gone(x->client_fd);
}

/* True when the failure says the worker itself is unreachable. */
static bool worker_down(CURLcode rc)
{
    return rc == CURLE_COULDNT_CONNECT || rc == CURLE_GOT_NOTHING || rc == CURLE_RECV_ERROR ||
           rc == CURLE_SEND_ERROR || rc == CURLE_COULDNT_RESOLVE_HOST;
}

static void mark_down(Router *r, int32_t w, const char *why)
{
    if (atomic_exchange(&r->w[w].healthy, false)) {
        rt_balancer_forget(r->bal, w);
        fprintf(stderr, "sglc router: worker %s is down (%s)\n", r->w[w].url, why);
    }
    atomic_fetch_add(&r->w[w].failures, 1);
}

/* ---- streaming passthrough ---- */

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    Proxy *x = cls;
    (void)pos;
    while (x->off == x->out.len) {
        x->off = x->out.len = 0;
        if (x->done) {
            if (x->result == CURLE_OK || x->err_sent)
                return MHD_CONTENT_READER_END_OF_STREAM;
            /* the worker failed mid-stream: one error event, then [DONE] */
            char msg[512], *t;
            snprintf(msg, sizeof msg, "worker %s failed mid-stream: %s", x->r->w[x->w].url,
                     x->errbuf[0] ? x->errbuf : curl_easy_strerror(x->result));
            if (worker_down(x->result))
                mark_down(x->r, x->w, msg);
            json_t *e = error_obj(502, msg);
            if ((t = e ? json_dumps(e, JSON_COMPACT) : NULL)) {
                buf_put(&x->out, "data: ", 6);
                buf_put(&x->out, t, strlen(t));
                buf_put(&x->out, "\n\ndata: [DONE]\n\n", 16);
            }
            free(t);
            json_decref(e);
            x->err_sent = true;
            continue;
        }
        if (client_left(x))
            return MHD_CONTENT_READER_END_WITH_ERROR;
        proxy_step(x, 50);
    }
    size_t n = x->out.len - x->off < max ? x->out.len - x->off : max;
    memcpy(buf, x->out.buf + x->off, n);
    x->off += n;
    return (ssize_t)n;
}

static void stream_free(void *cls)
{
    proxy_free(cls);
}

/* ---- choosing and forwarding ---- */

/* Picks a worker for the request (policy when routed, else any healthy one
 * in turn), skipping those in tried. -1 when none is left. */
static int32_t choose(Router *r, bool routed, const char *text, size_t len, const bool *tried)
{
    int32_t n = r->o.n_workers;
    bool healthy[n];
    int32_t load[n];
    for (int32_t i = 0; i < n; i++) {
        healthy[i] = atomic_load(&r->w[i].healthy) && !tried[i];
        load[i] = atomic_load(&r->w[i].inflight);
    }
    int32_t w = -1;
    if (routed) {
        RtPick p;
        rt_balancer_pick(r->bal, text, len, healthy, load, &p);
        w = p.worker;
    } else {
        unsigned start = atomic_fetch_add(&r->any_rr, 1);
        for (int32_t k = 0; k < n && w < 0; k++) {
            int32_t i = (int32_t)((start + (unsigned)k) % (unsigned)n);
            if (healthy[i])
                w = i;
        }
    }
    if (w >= 0)
        atomic_fetch_add(&r->w[w].requests, 1);
    return w;
}

/* Forwards the call to one worker (retrying once on another when the first
 * fails before answering) and answers the client. */
static void forward(Call *c, bool routed, const char *text, size_t text_len)
{
    Router *r = c->r;
    const char *auth = MHD_lookup_connection_value(c->conn, MHD_HEADER_KIND, "Authorization");
    bool tried[r->o.n_workers];
    memset(tried, 0, sizeof tried);
    char why[768] = "";
    int why_status = 503;
    for (int attempt = 0; attempt < 2; attempt++) {
        int32_t w = choose(r, routed, text, text_len, tried);
        if (w < 0)
            break;
        tried[w] = true;
        if (attempt > 0)
            atomic_fetch_add(&r->retries, 1);
        Proxy *x = proxy_new(r, w, c->method, c->url, c->body.buf, c->body.len, auth,
                             conn_fd(c->conn));
        if (!x) {
            send_error(c, 500, "out of memory");
            return;
        }
        while (!x->headers_done && !x->done && !client_left(x))
            proxy_step(x, 50);
        if (!x->headers_done && !x->done) {   /* the client left or we are stopping */
            proxy_free(x);
            send_error(c, 503, "the router is shutting down or the client left");
            return;
        }
        if (!x->headers_done) {               /* failed before any answer */
            const char *e = x->errbuf[0] ? x->errbuf : curl_easy_strerror(x->result);
            snprintf(why, sizeof why, "worker %s failed: %s", r->w[w].url, e);
            why_status = x->result == CURLE_OPERATION_TIMEDOUT ? 504 : 502;
            if (worker_down(x->result))
                mark_down(r, w, e);
            bool timed_out = x->result == CURLE_OPERATION_TIMEDOUT;
            proxy_free(x);
            if (timed_out)
                break;                        /* a slow request is not retried */
            continue;
        }
        if (x->status == 200 && strncmp(x->ctype, "text/event-stream", 17) == 0) {
            struct MHD_Response *resp =
                MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_reader, x,
                                                  stream_free);
            if (!resp) {
                proxy_free(x);
                send_error(c, 500, "out of memory");
                return;
            }
            MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, x->ctype);
            MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
            MHD_add_response_header(resp, "X-Sglc-Worker", r->w[w].url);
            c->answered = true;
            MHD_queue_response(c->conn, 200, resp);
            MHD_destroy_response(resp);
            return;
        }
        while (!x->done && !client_left(x))
            proxy_step(x, 50);
        if (!x->done) {
            proxy_free(x);
            send_error(c, 503, "the router is shutting down or the client left");
            return;
        }
        if (x->result != CURLE_OK) {
            const char *e = x->out.too_big ? "answer larger than 64 MiB"
                            : x->errbuf[0]  ? x->errbuf
                                            : curl_easy_strerror(x->result);
            if (worker_down(x->result))
                mark_down(r, w, e);
            send_error(c, x->result == CURLE_OPERATION_TIMEDOUT ? 504 : 502,
                       "worker %s failed while answering: %s", r->w[w].url, e);
        } else {
            char ctype[128];
            snprintf(ctype, sizeof ctype, "%s", x->ctype[0] ? x->ctype : "application/octet-stream");
            char *b = x->out.buf;
            size_t n = x->out.len;
            x->out.buf = NULL;
            send_buf_from(c, (int)x->status, ctype, b, n, r->w[w].url);
        }
        proxy_free(x);
        return;
    }
    if (!why[0])
        atomic_fetch_add(&r->no_worker, 1);
    send_error(c, why[0] ? why_status : 503, "%s",
               why[0] ? why : "no healthy worker (see the router's /get_server_info)");
}

/* ---- blocking calls to every worker (health, flush, abort) ---- */

static long http_do(Router *r, int32_t w, const char *method, const char *path, const char *body,
                    const char *auth, double timeout_s, Buf *out)
{
    CURL *e = curl_easy_init();
    if (!e)
        return -1;
    char url[1024], ah[1100];
    snprintf(url, sizeof url, "%s%s", r->w[w].url, path);
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json"), *h2;
    if (h && auth) {
        snprintf(ah, sizeof ah, "Authorization: %.1000s", auth);
        if ((h2 = curl_slist_append(h, ah)))
            h = h2;
    }
    Buf sink = {0};
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, out ? out : &sink);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(r->o.connect_timeout_s * 1000));
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(timeout_s * 1000));
    if (strcmp(method, "POST") == 0)
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body ? body : "");
    long st = -1;
    if (curl_easy_perform(e) == CURLE_OK)
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &st);
    curl_slist_free_all(h);
    curl_easy_cleanup(e);
    free(sink.buf);
    return st;
}

static void probe(Router *r, int32_t w)
{
    bool ok = http_do(r, w, "GET", "/health", NULL, NULL, 2.0, NULL) == 200;
    bool was = atomic_exchange(&r->w[w].healthy, ok);
    if (was && !ok) {
        rt_balancer_forget(r->bal, w);
        fprintf(stderr, "sglc router: worker %s is down (/health did not answer 200)\n",
                r->w[w].url);
    } else if (!was && ok)
        fprintf(stderr, "sglc router: worker %s is up\n", r->w[w].url);
}

static void *health_main(void *arg)
{
    Router *r = arg;
    pthread_mutex_lock(&r->hmu);
    while (!atomic_load(&r->stopping)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        double t = (double)ts.tv_nsec * 1e-9 + r->o.health_interval_s;
        ts.tv_sec += (time_t)t;
        ts.tv_nsec = (long)((t - (double)(time_t)t) * 1e9);
        pthread_cond_timedwait(&r->hcv, &r->hmu, &ts);
        if (atomic_load(&r->stopping))
            break;
        pthread_mutex_unlock(&r->hmu);
        for (int32_t i = 0; i < r->o.n_workers && !atomic_load(&r->stopping); i++)
            probe(r, i);
        pthread_mutex_lock(&r->hmu);
    }
    pthread_mutex_unlock(&r->hmu);
    return NULL;
}

/* /flush_cache and /abort_request: every healthy worker; the first non-200
 * answer is passed on, else flush answers 200 and abort the summed count. */
static void broadcast(Call *c, bool is_abort)
{
    Router *r = c->r;
    const char *auth = MHD_lookup_connection_value(c->conn, MHD_HEADER_KIND, "Authorization");
    long aborted = 0;
    int32_t n_ok = 0;
    for (int32_t i = 0; i < r->o.n_workers; i++) {
        if (!atomic_load(&r->w[i].healthy))
            continue;
        Buf out = {0};
        long st = http_do(r, i, c->method, c->url, c->body.buf, auth, 30.0, &out);
        if (st != 200) {
            if (st > 0)
                send_buf(c, (int)st, "application/json", out.buf, out.len);
            else {
                free(out.buf);
                send_error(c, 502, "worker %s did not answer %s", r->w[i].url, c->url);
            }
            return;
        }
        n_ok++;
        if (is_abort) {
            json_t *j = json_loadb(out.buf ? out.buf : "", out.len, 0, NULL);
            json_t *a = json_object_get(j, "aborted");
            aborted += json_is_integer(a) ? (long)json_integer_value(a) : 0;
            json_decref(j);
        } else
            rt_balancer_forget(r->bal, i);
        free(out.buf);
    }
    if (n_ok == 0)
        send_error(c, 503, "no healthy worker");
    else if (is_abort)
        send_json(c, 200, json_pack("{s:I}", "aborted", (json_int_t)aborted));
    else
        send_buf(c, 200, "text/plain", strdup("Cache flushed.\n"), 15);
}

/* ---- the router's own endpoints ---- */

static void server_info(Call *c)
{
    Router *r = c->r;
    RtBalancerStats st = rt_balancer_stats(r->bal);
    json_t *ws = json_array();
    for (int32_t i = 0; i < r->o.n_workers; i++)
        json_array_append_new(
            ws, json_pack("{s:s, s:b, s:i, s:I, s:I, s:I}", "url", r->w[i].url, "healthy",
                          (int)atomic_load(&r->w[i].healthy), "inflight",
                          atomic_load(&r->w[i].inflight), "requests",
                          (json_int_t)atomic_load(&r->w[i].requests), "failures",
                          (json_int_t)atomic_load(&r->w[i].failures), "tree_bytes",
                          (json_int_t)rt_balancer_tree_bytes(r->bal, i)));
    double ratio = st.request_bytes ? (double)st.matched_bytes / (double)st.request_bytes : 0.0;
    send_json(c, 200,
              json_pack("{s:s, s:s, s:f, s:o, s:f, s:I, s:I, s:{s:I, s:I, s:I}, s:I, s:I}", "role",
                        "router", "policy", rt_policy_name(r->o.bal.policy), "uptime_s",
                        now_s() - r->t_start, "workers", ws, "prefix_hit_ratio", ratio,
                        "request_bytes", (json_int_t)st.request_bytes, "matched_bytes",
                        (json_int_t)st.matched_bytes, "decisions", "cache",
                        (json_int_t)st.by_cache, "room", (json_int_t)st.by_room, "load",
                        (json_int_t)st.by_load, "retries",
                        (json_int_t)atomic_load(&r->retries), "http_requests",
                        (json_int_t)atomic_load(&r->http_requests)));
}

static void metrics(Call *c)
{
    Router *r = c->r;
    RtBalancerStats st = rt_balancer_stats(r->bal);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) {
        send_error(c, 500, "out of memory");
        return;
    }
#define HEAD(name, help, type) \
    fprintf(f, "# HELP sglang_router:" name " " help "\n# TYPE sglang_router:" name " " type "\n")
#define PER_WORKER(name, help, type, expr)                                                \
    do {                                                                                  \
        HEAD(name, help, type);                                                           \
        for (int32_t i = 0; i < r->o.n_workers; i++)                                      \
            fprintf(f, "sglang_router:" name "{worker=\"%s\"} %.17g\n", r->w[i].url,      \
                    (double)(expr));                                                      \
    } while (0)
#define ONE(name, help, type, val) \
    (HEAD(name, help, type), fprintf(f, "sglang_router:" name " %.17g\n", (double)(val)))
    PER_WORKER("requests_total", "Requests sent to the worker.", "counter",
               atomic_load(&r->w[i].requests));
    PER_WORKER("inflight", "Proxied requests not yet finished.", "gauge",
               atomic_load(&r->w[i].inflight));
    PER_WORKER("worker_healthy", "1 when the worker answers /health.", "gauge",
               atomic_load(&r->w[i].healthy));
    PER_WORKER("worker_failures_total", "Requests the worker failed to answer.", "counter",
               atomic_load(&r->w[i].failures));
    PER_WORKER("tree_bytes", "Bytes in the worker's approximate prefix tree.", "gauge",
               rt_balancer_tree_bytes(r->bal, i));
    ONE("prefix_hit_ratio", "Matched prefix bytes / request bytes over routed requests.", "gauge",
        st.request_bytes ? (double)st.matched_bytes / (double)st.request_bytes : 0.0);
    ONE("request_bytes_total", "Bytes of routed request texts.", "counter", st.request_bytes);
    ONE("matched_bytes_total", "Of those, bytes found in the chosen worker's tree.", "counter",
        st.matched_bytes);
    HEAD("decisions_total", "cache_aware choices by reason.", "counter");
    fprintf(f, "sglang_router:decisions_total{reason=\"cache\"} %llu\n", (unsigned long long)st.by_cache);
    fprintf(f, "sglang_router:decisions_total{reason=\"room\"} %llu\n", (unsigned long long)st.by_room);
    fprintf(f, "sglang_router:decisions_total{reason=\"load\"} %llu\n", (unsigned long long)st.by_load);
    ONE("retries_total", "Requests retried on a second worker.", "counter", atomic_load(&r->retries));
    ONE("no_worker_total", "Requests refused because no worker was healthy.", "counter",
        atomic_load(&r->no_worker));
    ONE("http_requests_total", "HTTP requests received.", "counter", atomic_load(&r->http_requests));
    ONE("http_errors_4xx_total", "HTTP 4xx answers.", "counter", atomic_load(&r->errors_4xx));
    ONE("http_errors_5xx_total", "HTTP 5xx answers.", "counter", atomic_load(&r->errors_5xx));
#undef ONE
#undef PER_WORKER
#undef HEAD
    if (fclose(f) != 0 || !buf) {
        free(buf);
        send_error(c, 500, "out of memory");
        return;
    }
    send_buf(c, 200, "text/plain; version=0.0.4", buf, len);
}

/* ---- request text for cache_aware: what the worker will see, flattened ---- */

static void text_of_prompt(Buf *t, const json_t *v)
{
    if (json_is_string(v)) {
        buf_put(t, json_string_value(v), json_string_length(v));
    } else if (json_is_integer(v)) {
        char num[32];
        int n = snprintf(num, sizeof num, "%lld,", (long long)json_integer_value(v));
        buf_put(t, num, (size_t)n);
    } else if (json_is_array(v)) {
        /* a batch: its first prompt decides; a list of ids: all of them */
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e) {
            if (!json_is_integer(e)) {
                text_of_prompt(t, e);
                break;
            }
            text_of_prompt(t, e);
        }
    }
}

static void text_of_chat(Buf *t, const json_t *msgs)
{
    size_t i, k;
    json_t *m, *part;
    json_array_foreach(msgs, i, m) {
        const json_t *role = json_object_get(m, "role"), *content = json_object_get(m, "content");
        if (json_is_string(role))
            buf_put(t, json_string_value(role), json_string_length(role));
        buf_put(t, "\n", 1);
        if (json_is_string(content))
            buf_put(t, json_string_value(content), json_string_length(content));
        else if (json_is_array(content))
            json_array_foreach(content, k, part) {
                const json_t *tx = json_object_get(part, "text");
                if (json_is_string(tx))
                    buf_put(t, json_string_value(tx), json_string_length(tx));
            }
        buf_put(t, "\n", 1);
    }
}

/* ---- routing ---- */

static bool authorized(Call *c) { return http_authorized(c->conn, c->url, c->r->o.api_key); }

enum { R_GEN, R_COMPL, R_CHAT, R_HEALTH, R_ANY, R_FLUSH, R_ABORT, R_INFO, R_METRICS };

static void route(Call *c)
{
    static const struct {
        const char *path;
        bool post;
        int kind;
    } routes[] = {
        {"/generate", true, R_GEN},           {"/v1/completions", true, R_COMPL},
        {"/v1/chat/completions", true, R_CHAT}, {"/health", false, R_HEALTH},
        {"/health_generate", false, R_ANY},   {"/get_model_info", false, R_ANY},
        {"/v1/models", false, R_ANY},         {"/flush_cache", true, R_FLUSH},
        {"/abort_request", true, R_ABORT},    {"/get_server_info", false, R_INFO},
        {"/server_info", false, R_INFO},      {"/metrics", false, R_METRICS},
    };
    int hit = -1;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        if (strcmp(c->url, routes[i].path) == 0)
            hit = (int)i;
    if (hit < 0) {
        send_error(c, 404, "no such endpoint: %s %.200s", c->method, c->url);
        return;
    }
    bool is_post = strcmp(c->method, "POST") == 0, is_get = strcmp(c->method, "GET") == 0;
    int kind = routes[hit].kind;
    if (routes[hit].post ? !(is_post || (kind == R_FLUSH && is_get)) : !is_get) {
        send_error(c, 405, "%s does not accept %s", c->url, c->method);
        return;
    }
    Router *r = c->r;
    switch (kind) {
    case R_HEALTH:
        if (router_healthy_count(r) > 0)
            send_buf(c, 200, "text/plain", NULL, 0);
        else
            send_error(c, 503, "no healthy worker");
        return;
    case R_ANY: forward(c, false, NULL, 0); return;
    case R_FLUSH: broadcast(c, false); return;
    case R_INFO: server_info(c); return;
    case R_METRICS: metrics(c); return;
    default: break;
    }
    /* R_GEN, R_COMPL, R_CHAT, R_ABORT: a JSON object body */
    json_error_t je;
    json_t *req = json_loadb(c->body.buf ? c->body.buf : "", c->body.len, 0, &je);
    if (!req) {
        send_error(c, 400, "invalid JSON body at line %d column %d: %s", je.line, je.column,
                   je.text);
        return;
    }
    if (!json_is_object(req)) {
        json_decref(req);
        send_error(c, 400, "the request body must be a JSON object");
        return;
    }
    if (kind == R_ABORT) {
        json_decref(req);
        broadcast(c, true);
        return;
    }
    Buf text = {.limit = c->body.len + 64};
    if (kind == R_GEN)
        text_of_prompt(&text, json_object_get(req, json_object_get(req, "text") ? "text" : "input_ids"));
    else if (kind == R_COMPL)
        text_of_prompt(&text, json_object_get(req, "prompt"));
    else
        text_of_chat(&text, json_object_get(req, "messages"));
    json_decref(req);
    forward(c, true, text.buf ? text.buf : "", text.len);
    free(text.buf);
}

typedef struct {
    Call call;
} ConnState;

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload,
                                 size_t *upload_size, void **con_cls)
{
    Router *r = cls;
    (void)version;
    ConnState *st = *con_cls;
    if (!st) {
        if (!(st = calloc(1, sizeof *st)))
            return MHD_NO;
        st->call = (Call){.r = r, .conn = conn, .method = method, .url = url};
        st->call.body.limit = r->o.max_body_bytes + 1;
        *con_cls = st;
        atomic_fetch_add(&r->http_requests, 1);
        if (!authorized(&st->call)) {
            send_error(&st->call, 401, "invalid or missing API key (Authorization: Bearer KEY)");
            return MHD_YES;
        }
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        if (cl) {
            char *end;
            unsigned long long n = strtoull(cl, &end, 10);
            if (*end != '\0' || n > r->o.max_body_bytes)
                send_error(&st->call, 413, "request body larger than %zu bytes", r->o.max_body_bytes);
        }
        return MHD_YES;
    }
    Call *c = &st->call;
    if (*upload_size > 0) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (c->answered || c->too_large)
            return MHD_YES;
        if (!buf_put(&c->body, upload, n)) {
            if (!c->body.too_big)
                return MHD_NO;            /* out of memory */
            c->too_large = true;
            free(c->body.buf);
            c->body = (Buf){0};
        }
        return MHD_YES;
    }
    if (c->answered)
        return MHD_YES;
    if (c->too_large)
        send_error(c, 413, "request body larger than %zu bytes", r->o.max_body_bytes);
    else if (atomic_load(&r->stopping))
        send_error(c, 503, "the router is shutting down");
    else
        route(c);
    if (!c->answered)
        send_error(c, 500, "internal error: no response");
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
    free(st->call.body.buf);
    free(st);
    *con_cls = NULL;
}

/* ---- lifecycle ---- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void free_router(Router *r)
{
    if (r->w)
        for (int32_t i = 0; i < r->o.n_workers; i++) {
            free(r->w[i].url);
            for (int k = 0; k < r->w[i].n_idle; k++)
                pair_free(&r->w[i].idle[k]);
            pthread_mutex_destroy(&r->w[i].pool_mu);
        }
    free(r->w);
    rt_balancer_free(r->bal);
    pthread_mutex_destroy(&r->hmu);
    pthread_cond_destroy(&r->hcv);
    free(r);
}

bool router_start(const RouterOpts *o, Router **out, char *msg, size_t cap)
{
    *out = NULL;
    if (o->n_workers < 1) {
        snprintf(msg, cap, "at least one --worker URL is needed");
        return false;
    }
    pthread_once(&curl_once, curl_init_once);
    Router *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(msg, cap, "out of memory");
        return false;
    }
    pthread_mutex_init(&r->hmu, NULL);
    pthread_cond_init(&r->hcv, NULL);
    r->o = *o;
    if (!r->o.host || strcmp(r->o.host, "localhost") == 0)
        r->o.host = "127.0.0.1";
    if (!r->o.max_body_bytes)
        r->o.max_body_bytes = DEFAULT_MAX_BODY;
    if (!r->o.max_connections)
        r->o.max_connections = 1024;
    if (r->o.health_interval_s <= 0)
        r->o.health_interval_s = 1.0;
    if (r->o.connect_timeout_s <= 0)
        r->o.connect_timeout_s = 2.0;
    if (r->o.request_timeout_s <= 0)
        r->o.request_timeout_s = 600.0;
    r->o.bal.n_workers = o->n_workers;
    r->t_start = now_s();
    if (!(r->w = calloc((size_t)o->n_workers, sizeof *r->w)) ||
        !(r->bal = rt_balancer_new(&r->o.bal))) {
        snprintf(msg, cap, "out of memory");
        goto fail;
    }
    for (int32_t i = 0; i < o->n_workers; i++)
        pthread_mutex_init(&r->w[i].pool_mu, NULL);
    for (int32_t i = 0; i < o->n_workers; i++) {
        const char *u = o->workers[i];
        size_t n = strlen(u);
        while (n > 0 && u[n - 1] == '/')
            n--;
        if (strncmp(u, "http://", 7) != 0 || n <= 7 || n > 900) {
            snprintf(msg, cap, "--worker '%s': expected http://HOST:PORT", u);
            goto fail;
        }
        if (!(r->w[i].url = strndup(u, n))) {
            snprintf(msg, cap, "out of memory");
            goto fail;
        }
    }
    for (int32_t i = 0; i < o->n_workers; i++) {
        atomic_store(&r->w[i].healthy, true);
        probe(r, i);
    }
    if (!(r->mhd = http_listen(r->o.host, r->o.port, r->o.max_connections, on_access, r, on_completed, r,
                               &r->port, msg, cap)))
        goto fail;
    if (pthread_create(&r->health, NULL, health_main, r) != 0) {
        snprintf(msg, cap, "cannot start the health thread");
        MHD_stop_daemon(r->mhd);
        goto fail;
    }
    r->health_started = true;
    *out = r;
    return true;
fail:
    free_router(r);
    return false;
}

int router_port(const Router *r)
{
    return r->port;
}

int32_t router_healthy_count(Router *r)
{
    int32_t n = 0;
    for (int32_t i = 0; i < r->o.n_workers; i++)
        n += atomic_load(&r->w[i].healthy);
    return n;
}

void router_run_until(Router *r, volatile sig_atomic_t *stop)
{
    while (!*stop)
        usleep(50 * 1000);
    atomic_store(&r->stopping, 1);
    MHD_quiesce_daemon(r->mhd);
    pthread_mutex_lock(&r->hmu);
    pthread_cond_broadcast(&r->hcv);
    pthread_mutex_unlock(&r->hmu);
    if (r->health_started)
        pthread_join(r->health, NULL);
    MHD_stop_daemon(r->mhd);
    free_router(r);
}

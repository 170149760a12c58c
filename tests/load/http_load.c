/* http_load.c -- a bounded HTTP load and fault client for `sglc serve`.
 *
 *   http_load load  --port P --pid PID [--conns 256] [--seconds 60]
 *                   [--warmup 5] [--max-new-tokens 8] [--max-rss-growth-mb 32]
 *   http_load fault --port P [--n 1000] [--kills 40]
 *   http_load latency --port P [--n 200] [--max-new-tokens 32]
 *
 * load: --conns threads, each holding one keep-alive connection to
 * 127.0.0.1:P, send POST /generate back to back until the deadline. Every
 * answer must be a 200 with a "text" field; the server's RSS (from
 * /proc/PID/status) is read after the warm-up and after the run and must
 * not grow by more than --max-rss-growth-mb. fault: --n malformed requests
 * (bad JSON, wrong types, out-of-range and huge numbers, invalid UTF-8,
 * oversized bodies, unknown paths/methods) must each get a 4xx; --kills
 * clients drop their connection mid-stream; afterwards the server must
 * answer /health, be idle, and after /flush_cache its KV pool must be
 * entirely free (/get_server_info). latency: one keep-alive connection sends
 * the same greedy /generate --n times in a row (batch 1) and prints the
 * client's median/mean latency next to the server's own e2e_latency (engine
 * time, from tokenization to the last token): their difference is the
 * HTTP + JSON overhead. Only loopback is ever contacted; every
 * loop is bounded in count and time. Exit 0 on success, 1 on any failure.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int g_port;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int conn_open(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g_port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {.tv_sec = 30};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static bool send_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w <= 0) {
            if (w < 0 && errno == EINTR)
                continue;
            return false;
        }
        c += w;
        n -= (size_t)w;
    }
    return true;
}

typedef struct {
    int status;
    char *body;
    size_t len;
    bool close;     /* the server will close the connection */
} Resp;

/* Reads one response (Content-Length, chunked, or until close). */
static bool read_resp(int fd, Resp *r)
{
    size_t cap = 8192, n = 0;
    char *b = malloc(cap + 1);
    memset(r, 0, sizeof *r);
    if (!b)
        return false;
    char *hend = NULL;
    while (!hend) {
        if (n == cap) {
            free(b);
            return false;
        }
        ssize_t k = recv(fd, b + n, cap - n, 0);
        if (k <= 0) {
            free(b);
            return false;
        }
        n += (size_t)k;
        b[n] = '\0';
        hend = strstr(b, "\r\n\r\n");
    }
    r->status = atoi(b + 9);
    size_t hlen = (size_t)(hend - b) + 4;
    bool chunked = strcasestr(b, "transfer-encoding: chunked") && strcasestr(b, "transfer-encoding: chunked") < hend;
    char *cl = strcasestr(b, "content-length:");
    long clen = cl && cl < hend ? atol(cl + 15) : -1;
    char *cc = strcasestr(b, "connection: close");
    r->close = cc && cc < hend;
    /* body bytes so far: b[hlen..n) */
    size_t bcap = 16384, blen = 0;
    char *body = malloc(bcap + 1);
    char *raw = malloc(n - hlen + 1);
    size_t rlen = n - hlen, roff = 0;
    if (!body || !raw) {
        free(b), free(body), free(raw);
        return false;
    }
    memcpy(raw, b + hlen, rlen);
    free(b);
    bool ok = true;
    /* pull: ensure at least need bytes in raw[roff..rlen) */
#define NEED(need)                                                                  \
    while (rlen - roff < (size_t)(need)) {                                          \
        char tmp[16384];                                                            \
        ssize_t k = recv(fd, tmp, sizeof tmp, 0);                                   \
        if (k <= 0) {                                                               \
            ok = false;                                                             \
            break;                                                                  \
        }                                                                           \
        char *nr = realloc(raw, rlen + (size_t)k + 1);                              \
        if (!nr) {                                                                  \
            ok = false;                                                             \
            break;                                                                  \
        }                                                                           \
        raw = nr;                                                                   \
        memcpy(raw + rlen, tmp, (size_t)k);                                         \
        rlen += (size_t)k;                                                          \
    }
    if (chunked) {
        for (;;) {
            char *eol;
            while (ok && !(eol = memmem(raw + roff, rlen - roff, "\r\n", 2))) {
                NEED(rlen - roff + 1);
            }
            if (!ok)
                break;
            long sz = strtol(raw + roff, NULL, 16);
            roff = (size_t)(eol - raw) + 2;
            NEED((size_t)sz + 2);
            if (!ok)
                break;
            if (blen + (size_t)sz + 1 > bcap) {
                while (blen + (size_t)sz + 1 > bcap)
                    bcap *= 2;
                body = realloc(body, bcap + 1);
            }
            memcpy(body + blen, raw + roff, (size_t)sz);
            blen += (size_t)sz;
            roff += (size_t)sz + 2;
            if (sz == 0)
                break;
        }
    } else if (clen >= 0) {
        NEED((size_t)clen);
        if (ok) {
            if ((size_t)clen + 1 > bcap)
                body = realloc(body, (size_t)clen + 1);
            memcpy(body, raw + roff, (size_t)clen);
            blen = (size_t)clen;
        }
    } else {
        for (;;) {
            char tmp[16384];
            ssize_t k = recv(fd, tmp, sizeof tmp, 0);
            if (k <= 0)
                break;
            if (blen + (size_t)k + 1 > bcap) {
                while (blen + (size_t)k + 1 > bcap)
                    bcap *= 2;
                body = realloc(body, bcap + 1);
            }
            memcpy(body + blen, tmp, (size_t)k);
            blen += (size_t)k;
        }
        r->close = true;
    }
#undef NEED
    free(raw);
    body[blen] = '\0';
    r->body = body;
    r->len = blen;
    return ok;
}

/* One request on a fresh connection; status or -1. */
static int request(const char *method, const char *path, const char *body, size_t len,
                   char **out_body)
{
    int fd = conn_open();
    if (fd < 0)
        return -1;
    char head[512];
    int hl = snprintf(head, sizeof head,
                      "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                      "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                      method, path, len);
    Resp r;
    int st = -1;
    if (send_all(fd, head, (size_t)hl) && (len == 0 || send_all(fd, body, len)) && read_resp(fd, &r)) {
        st = r.status;
        if (out_body)
            *out_body = r.body;
        else
            free(r.body);
    }
    close(fd);
    return st;
}

static long rss_kb(int pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            kb = atol(line + 6);
    if (f)
        fclose(f);
    return kb;
}

/* ---- load ---- */

typedef struct {
    int id;
    double deadline;
    int max_new;
    long ok, errors;
    double lat_sum, lat_max;
    char first_error[200];
} Worker;

static void *load_worker(void *arg)
{
    Worker *w = arg;
    int fd = -1;
    long iter = 0;
    while (now() < w->deadline) {
        if (fd < 0 && (fd = conn_open()) < 0) {
            w->errors++;
            snprintf(w->first_error, sizeof w->first_error, "connect: %s", strerror(errno));
            usleep(100000);
            continue;
        }
        char body[256];
        int bl = snprintf(body, sizeof body,
                          "{\"text\": \"Once upon a time, worker %d saw %ld\", \"sampling_params\":"
                          " {\"max_new_tokens\": %d, \"temperature\": 0.7}}",
                          w->id, iter++ % 7, w->max_new);
        char head[256];
        int hl = snprintf(head, sizeof head,
                          "POST /generate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                          "Content-Length: %d\r\n\r\n", bl);
        double t0 = now();
        Resp r;
        bool ok = send_all(fd, head, (size_t)hl) && send_all(fd, body, (size_t)bl) && read_resp(fd, &r);
        double dt = now() - t0;
        if (ok && r.status == 200 && strstr(r.body, "\"text\"")) {
            w->ok++;
            w->lat_sum += dt;
            if (dt > w->lat_max)
                w->lat_max = dt;
        } else {
            if (w->errors++ == 0)
                snprintf(w->first_error, sizeof w->first_error, "status %d: %.120s", ok ? r.status : -1,
                         ok ? r.body : strerror(errno));
        }
        if (ok) {
            if (r.close) {
                close(fd);
                fd = -1;
            }
            free(r.body);
        } else {
            close(fd);
            fd = -1;
        }
    }
    if (fd >= 0)
        close(fd);
    return NULL;
}

static int run_load(int conns, double seconds, double warmup, int max_new, int pid, long max_growth_mb)
{
    Worker *w = calloc((size_t)conns, sizeof *w);
    pthread_t *th = calloc((size_t)conns, sizeof *th);
    if (!w || !th)
        return 1;
    /* warm-up at full concurrency: pools, caches, thread stacks reach steady state */
    for (int phase = 0; phase < 2; phase++) {
        double dur = phase == 0 ? warmup : seconds;
        double t0 = now();
        long rss0 = rss_kb(pid);
        for (int i = 0; i < conns; i++) {
            w[i] = (Worker){.id = i, .deadline = t0 + dur, .max_new = max_new};
            pthread_attr_t at;
            pthread_attr_init(&at);
            pthread_attr_setstacksize(&at, 256 * 1024);
            if (pthread_create(&th[i], &at, load_worker, &w[i]) != 0) {
                fprintf(stderr, "http_load: cannot start thread %d\n", i);
                exit(1);   /* threads already started hold w: no clean way back */
            }
            pthread_attr_destroy(&at);
        }
        long ok = 0, errors = 0;
        double lat = 0, lmax = 0;
        const char *first = NULL;
        for (int i = 0; i < conns; i++) {
            pthread_join(th[i], NULL);
            ok += w[i].ok;
            errors += w[i].errors;
            lat += w[i].lat_sum;
            if (w[i].lat_max > lmax)
                lmax = w[i].lat_max;
            if (!first && w[i].errors)
                first = w[i].first_error;
        }
        double el = now() - t0;
        usleep(500000);
        long rss1 = rss_kb(pid);
        printf("load %s: %d connections, %.1f s: %ld ok, %ld errors, %.1f req/s, mean latency %.1f ms,"
               " max %.1f ms; server RSS %ld KiB -> %ld KiB\n",
               phase == 0 ? "warm-up" : "run", conns, el, ok, errors, (double)ok / el,
               ok ? lat / (double)ok * 1e3 : 0.0, lmax * 1e3, rss0, rss1);
        const char *why = NULL;
        if (errors)
            why = "errors";
        else if (phase == 1 && pid > 0 && rss1 > rss0 + max_growth_mb * 1024)
            why = "RSS growth";
        else if (ok == 0)
            why = "no request completed";
        if (why) {
            printf("load: FAIL: %s (%ld errors, first: %s; RSS +%ld KiB, limit %ld MiB)\n", why, errors,
                   first ? first : "-", rss1 - rss0, max_growth_mb);
            free(w);
            free(th);
            return 1;
        }
    }
    free(w);
    free(th);
    printf("load: ok\n");
    return 0;
}

/* ---- fault ---- */

static const char *bad_bodies[] = {
    /* bad JSON */
    "{", "[1,2", "{\"text\": }", "nul", "{\"text\": \"a\",}", "{'text': 'a'}", "\"just a string\"",
    "[]", "42", "{\"text\": \"unterminated}",
    /* wrong types / fields */
    "{\"text\": 5}", "{\"text\": null, \"input_ids\": null}", "{\"text\": \"a\", \"input_ids\": [1]}",
    "{\"text\": \"a\", \"sampling_params\": []}",
    "{\"text\": \"a\", \"sampling_params\": {\"temperature\": \"hot\"}}",
    "{\"text\": \"a\", \"sampling_params\": {\"max_new_tokens\": -1}}",
    "{\"text\": \"a\", \"sampling_params\": {\"n\": 0}}",
    "{\"text\": \"a\", \"sampling_params\": {\"top_p\": 2}}",
    "{\"text\": \"a\", \"sampling_params\": {\"top_k\": 1.5}}",
    "{\"text\": \"a\", \"sampling_params\": {\"stop\": [1]}}",
    "{\"text\": \"a\", \"sampling_params\": {\"stop\": \"\"}}",
    "{\"text\": \"a\", \"sampling_params\": {\"stop_token_ids\": [99999999]}}",
    "{\"text\": \"a\", \"sampling_params\": {\"regex\": \"(\"}}",
    "{\"text\": \"a\", \"sampling_params\": {\"regex\": \"a(?=b)\"}}",
    "{\"text\": \"a\", \"sampling_params\": {\"json_schema\": \"{bad\"}}",
    "{\"text\": \"a\", \"sampling_params\": {\"json_schema\": \"{\\\"type\\\": \\\"frobnicate\\\"}\"}}",
    "{\"text\": \"a\", \"sampling_params\": {\"bogus\": 1}}", "{\"text\": \"a\", \"bogus\": 1}",
    "{\"input_ids\": [\"a\"]}", "{\"input_ids\": [-1]}", "{\"input_ids\": []}", "{\"text\": []}",
    "{\"text\": [\"a\", 3]}", "{\"text\": \"a\", \"return_logprob\": \"yes\"}",
    "{\"text\": \"a\", \"top_logprobs_num\": 1000}", "{\"text\": \"a\", \"logprob_start_len\": -5}",
    "{\"text\": \"a\", \"stream\": 1}", "{\"text\": \"a\", \"rid\": 7}",
    /* huge numbers */
    "{\"text\": \"a\", \"sampling_params\": {\"max_new_tokens\": 99999999999999999999999}}",
    "{\"text\": \"a\", \"sampling_params\": {\"max_new_tokens\": 1e300}}",
    "{\"text\": \"a\", \"sampling_params\": {\"temperature\": 1e999}}",
    "{\"text\": \"a\", \"sampling_params\": {\"max_new_tokens\": 9223372036854775807}}",
    "{\"text\": \"a\", \"sampling_params\": {\"seed\": -1}}",
    "{\"input_ids\": [9223372036854775807]}",
    /* invalid UTF-8 */
    "{\"text\": \"\xff\xfe\"}", "{\"text\": \"\xc3\x28\"}", "{\"text\": \"\xed\xa0\x80\"}",
    "{\"te\x80xt\": \"a\"}", "{\"text\": \"a\\ud800\"}",
};

static const char *bad_openai[][2] = {
    {"/v1/completions", "{}"},
    {"/v1/completions", "{\"prompt\": 5}"},
    {"/v1/completions", "{\"prompt\": \"a\", \"max_tokens\": \"x\"}"},
    {"/v1/completions", "{\"prompt\": \"a\", \"n\": 1000}"},
    {"/v1/completions", "{\"prompt\": \"a\", \"logprobs\": 99}"},
    {"/v1/completions", "{\"prompt\": \"a\", \"temperature\": -1}"},
    {"/v1/completions", "{\"prompt\": \"a\", \"stop\": {\"x\": 1}}"},
    {"/v1/completions", "{\"prompt\": \"a\", \"logit_bias\": {\"1\": 5}}"},
    {"/v1/completions", "{\"prompt\": [[1, \"a\"]]}"},
    {"/v1/chat/completions", "{\"messages\": \"hi\"}"},
    {"/v1/chat/completions", "{\"messages\": []}"},
    {"/v1/chat/completions", "{\"messages\": [{\"role\": \"wizard\", \"content\": \"hi\"}]}"},
    {"/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": 7}]}"},
    {"/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"logprobs\": \"yes\"}"},
    {"/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"top_logprobs\": 3}"},
    {"/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"response_format\": {\"type\": \"xml\"}}"},
    {"/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"response_format\": {\"type\": \"json_schema\"}}"},
    {"/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"stream_options\": 3}"},
    {"/abort_request", "{}"},
    {"/nope", "{}"},
};

/* A body larger than the server's limit: headers only (the server answers
 * from Content-Length), or chunked (it reads and discards, then answers). */
static int oversized(bool chunked)
{
    int fd = conn_open();
    if (fd < 0)
        return -1;
    int st = -1;
    Resp r;
    if (!chunked) {
        const char *h = "POST /generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                        "Content-Length: 9000000000\r\n\r\n";
        if (send_all(fd, h, strlen(h)) && read_resp(fd, &r)) {
            st = r.status;
            free(r.body);
        }
    } else {
        const char *h = "POST /generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                        "Transfer-Encoding: chunked\r\n\r\n";
        static char chunk[65536 + 16];
        int hl = snprintf(chunk, sizeof chunk, "10000\r\n");
        memset(chunk + hl, 'x', 65536);
        memcpy(chunk + hl + 65536, "\r\n", 2);
        bool ok = send_all(fd, h, strlen(h));
        for (int i = 0; ok && i < 160; i++)     /* 10 MiB */
            ok = send_all(fd, chunk, (size_t)hl + 65536 + 2);
        if (ok)
            ok = send_all(fd, "0\r\n\r\n", 5);
        if (ok && read_resp(fd, &r)) {
            st = r.status;
            free(r.body);
        }
    }
    close(fd);
    return st;
}

/* Starts a long streaming generation and drops the connection (RST) after
 * the first event. */
static bool kill_mid_stream(int i)
{
    int fd = conn_open();
    if (fd < 0)
        return false;
    char body[256], head[256];
    int bl = snprintf(body, sizeof body,
                      "{\"text\": \"Once upon a time %d\", \"stream\": %s, \"sampling_params\": "
                      "{\"max_new_tokens\": 400, \"ignore_eos\": true, \"n\": %d}}",
                      i, i % 3 ? "true" : "false", 1 + i % 2);
    const char *path = "/generate";
    if (i % 4 == 1) {
        bl = snprintf(body, sizeof body,
                      "{\"messages\": [{\"role\": \"user\", \"content\": \"Tell a story %d\"}],"
                      " \"stream\": true, \"max_tokens\": 400, \"ignore_eos\": true}", i);
        path = "/v1/chat/completions";
    }
    int hl = snprintf(head, sizeof head,
                      "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      "Content-Length: %d\r\n\r\n", path, bl);
    bool ok = send_all(fd, head, (size_t)hl) && send_all(fd, body, (size_t)bl);
    if (ok && i % 3) {
        char buf[512];
        ok = recv(fd, buf, sizeof buf, 0) > 0;   /* the headers and (likely) a first event */
    } else
        usleep(2000);                            /* non-streaming: leave while it runs */
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
    return ok;
}

static json_t *server_info(void)
{
    char *b = NULL;
    if (request("GET", "/get_server_info", "", 0, &b) != 200) {
        free(b);
        return NULL;
    }
    json_t *j = json_loads(b, 0, NULL);
    free(b);
    return j;
}

static int run_fault(int n, int kills)
{
    int fails = 0;
    size_t nb = sizeof bad_bodies / sizeof bad_bodies[0], no = sizeof bad_openai / sizeof bad_openai[0];
    int oversize_every = 100;
    for (int i = 0; i < n; i++) {
        int st;
        char what[160];
        char *resp = NULL;
        if (i % oversize_every == 0) {
            bool chunked = (i / oversize_every) % 2 == 1;
            st = oversized(chunked);
            snprintf(what, sizeof what, "oversized body (%s)", chunked ? "chunked" : "Content-Length");
        } else if (i % 5 == 4) {
            const char **b = bad_openai[(size_t)i % no];
            st = request("POST", b[0], b[1], strlen(b[1]), &resp);
            snprintf(what, sizeof what, "%s %.100s", b[0], b[1]);
        } else if (i % 97 == 3) {
            st = request("GET", "/generate", "", 0, &resp);
            snprintf(what, sizeof what, "GET /generate");
        } else {
            const char *b = bad_bodies[(size_t)i % nb];
            /* truncations of valid bodies too */
            size_t len = strlen(b);
            if (i % 11 == 0) {
                b = "{\"text\": \"Once upon a time\", \"sampling_params\": {\"max_new_tokens\": 4}}";
                len = (size_t)(i % 60) + 1;
                if (len >= strlen(b))
                    len = strlen(b) - 1;
            }
            st = request("POST", "/generate", b, len, &resp);
            snprintf(what, sizeof what, "/generate %.*s", (int)(len < 100 ? len : 100), b);
        }
        if (st < 400 || st > 499) {
            if (fails++ < 10)
                printf("fault: FAIL: request %d (%s) got %d: %.200s\n", i, what, st, resp ? resp : "");
        }
        free(resp);
    }
    printf("fault: %d malformed requests, %d without a 4xx\n", n, fails);
    int dropped = 0;
    for (int i = 0; i < kills; i++)
        dropped += kill_mid_stream(i);
    printf("fault: %d clients dropped mid-request (%d saw a first byte or sent fully)\n", kills, dropped);
    /* wait (bounded) for the aborted requests to drain */
    json_t *info = NULL;
    bool idle = false;
    for (int t = 0; t < 200 && !idle; t++) {
        json_decref(info);
        info = server_info();
        idle = info && json_integer_value(json_object_get(info, "num_running_reqs")) == 0 &&
               json_integer_value(json_object_get(info, "num_queued_reqs")) == 0 &&
               json_integer_value(json_object_get(json_object_get(info, "http"), "inflight")) == 0;
        if (!idle)
            usleep(100000);
    }
    if (!idle) {
        printf("fault: FAIL: the server did not become idle (or stopped answering)\n");
        fails++;
    }
    json_decref(info);
    int fst = request("POST", "/flush_cache", "", 0, NULL);
    info = server_info();
    json_t *eng = json_object_get(info, "engine");
    long pages = (long)json_integer_value(json_object_get(eng, "pool_pages"));
    long free_pages = (long)json_integer_value(json_object_get(eng, "pool_free_pages"));
    long aborted = (long)json_integer_value(json_object_get(eng, "requests_aborted"));
    long disc = (long)json_integer_value(json_object_get(json_object_get(info, "http"), "disconnects"));
    printf("fault: after flush_cache (%d): KV pool %ld/%ld pages free; %ld requests aborted,"
           " %ld client disconnects seen\n", fst, free_pages, pages, aborted, disc);
    if (!info || pages <= 0 || free_pages != pages) {
        printf("fault: FAIL: KV pool not fully free\n");
        fails++;
    }
    if (kills > 0 && disc == 0) {
        printf("fault: FAIL: no client disconnect was detected\n");
        fails++;
    }
    json_decref(info);
    int h = request("GET", "/health", "", 0, NULL);
    if (h != 200) {
        printf("fault: FAIL: /health answered %d after the faults\n", h);
        fails++;
    }
    printf("fault: %s\n", fails ? "FAIL" : "ok");
    return fails ? 1 : 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int run_latency(int n, int max_new)
{
    int fd = conn_open();
    double *cl = calloc((size_t)n + 1, sizeof *cl), *sv = calloc((size_t)n + 1, sizeof *sv);
    if (fd < 0 || !cl || !sv) {
        printf("latency: cannot connect\n");
        free(cl);
        free(sv);
        if (fd >= 0)
            close(fd);
        return 1;
    }
    char body[256], head[256];
    int bl = snprintf(body, sizeof body,
                      "{\"text\": \"Once upon a time\", \"sampling_params\": {\"max_new_tokens\": %d,"
                      " \"temperature\": 0, \"ignore_eos\": true}}", max_new);
    int hl = snprintf(head, sizeof head,
                      "POST /generate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                      "Content-Length: %d\r\n\r\n", bl);
    for (int i = -5; i < n; i++) {      /* 5 warm-up requests */
        double t0 = now();
        Resp r;
        if (!send_all(fd, head, (size_t)hl) || !send_all(fd, body, (size_t)bl) || !read_resp(fd, &r) ||
            r.status != 200) {
            printf("latency: request %d failed\n", i);
            close(fd);
            free(cl);
            free(sv);
            return 1;
        }
        double dt = now() - t0;
        json_t *j = json_loads(r.body, 0, NULL);
        double e2e = json_real_value(json_object_get(json_object_get(j, "meta_info"), "e2e_latency"));
        json_decref(j);
        free(r.body);
        if (i >= 0) {
            cl[i] = dt;
            sv[i] = e2e;
        }
    }
    close(fd);
    double mc = 0, ms = 0;
    for (int i = 0; i < n; i++)
        mc += cl[i], ms += sv[i];
    qsort(cl, (size_t)n, sizeof *cl, cmp_double);
    qsort(sv, (size_t)n, sizeof *sv, cmp_double);
    printf("latency: %d requests of %d tokens at batch 1: client median %.3f ms (mean %.3f),"
           " server e2e median %.3f ms (mean %.3f); HTTP+JSON overhead median %.3f ms\n",
           n, max_new, cl[n / 2] * 1e3, mc / n * 1e3, sv[n / 2] * 1e3, ms / n * 1e3,
           (cl[n / 2] - sv[n / 2]) * 1e3);
    free(cl);
    free(sv);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2 || (strcmp(argv[1], "load") != 0 && strcmp(argv[1], "fault") != 0 &&
                     strcmp(argv[1], "latency") != 0)) {
        fprintf(stderr, "usage: http_load load|fault|latency --port P [options] (see the file comment)\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    int conns = 256, pid = 0, max_new = 8, n = 1000, kills = 40;
    double seconds = 60, warmup = 5;
    long growth = 32;
    for (int i = 2; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--port"))
            g_port = atoi(v);
        else if (!strcmp(k, "--pid"))
            pid = atoi(v);
        else if (!strcmp(k, "--conns"))
            conns = atoi(v);
        else if (!strcmp(k, "--seconds"))
            seconds = atof(v);
        else if (!strcmp(k, "--warmup"))
            warmup = atof(v);
        else if (!strcmp(k, "--max-new-tokens"))
            max_new = atoi(v);
        else if (!strcmp(k, "--max-rss-growth-mb"))
            growth = atol(v);
        else if (!strcmp(k, "--n"))
            n = atoi(v);
        else if (!strcmp(k, "--kills"))
            kills = atoi(v);
        else {
            fprintf(stderr, "http_load: unknown option %s\n", k);
            return 2;
        }
    }
    if (g_port <= 0 || g_port > 65535 || conns < 1 || conns > 4096 || seconds <= 0 || seconds > 3600 ||
        n < 0 || n > 1000000 || kills < 0 || kills > 10000) {
        fprintf(stderr, "http_load: bad or missing options\n");
        return 2;
    }
    if (strcmp(argv[1], "latency") == 0)
        return run_latency(n > 0 ? n : 1, max_new);
    return strcmp(argv[1], "load") == 0 ? run_load(conns, seconds, warmup, max_new, pid, growth)
                                        : run_fault(n, kills);
}

/* comm_host.c -- the "threads" and "tcp" communicators (comm_host.h).
 *
 * threads: a collective is publish -> barrier -> work -> barrier. For
 *   all_reduce_sum rank r owns chunk r of the element range: it sums that
 *   chunk over every rank's buffer in rank order and writes the sum back into
 *   all of them (no two ranks touch the same element); the second barrier
 *   keeps every buffer alive until all ranks are done with it. all_gather:
 *   each rank copies every rank's input into its own output.
 * tcp: each message is a Hdr {magic, op, seq, type, n_bytes} plus payload;
 *   seq counts the group's collectives, so a peer out of step is detected.
 *   Sockets are non-blocking and every transfer polls against a deadline.
 *   The root receives ranks 1, 2, ... in order, so sums are
 *   ((b0 + b1) + b2) + ..., the same as threads. Byte order and float format
 *   are the hosts' own: every host of a group must share them.
 */
#include "runtime/comm_host.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int64_t elem_size(SglCommType t) { return t == SGL_COMM_BF16 ? 2 : 4; }

static float bf2f(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Round to nearest even; NaN stays NaN (quiet). */
static uint16_t f2bf(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

static SglStatus check_n(SglComm *c, int64_t n, SglCommType t, SglErr *err)
{
    if (n < 0 || n > INT64_MAX / 8 / (c->size > 0 ? c->size : 1) || (t != SGL_COMM_F32 && t != SGL_COMM_BF16))
        return sgl_err(err, SGL_E_INVAL, "comm %s: bad element count %lld or type %d", c->ops->name,
                       (long long)n, (int)t);
    return SGL_OK;
}

/* ---- threads ---- */

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int size, timeout_ms, refs;
    int arrived;
    unsigned long gen;
    bool aborted;
    const void **in;   /* (size) each rank's buffer in the collective in flight */
} ThreadsGroup;

typedef struct {
    SglComm base;
    ThreadsGroup *g;
} ThreadsComm;

static const SglCommOps threads_ops;

static void deadline_after(struct timespec *ts, int ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* Loads a waiting rank makes before it sleeps: collectives come every few
 * microseconds inside a forward pass, and a futex sleep/wake costs about as
 * much. Plain loads (no PAUSE: see runner_cpu.c's SPIN_LIMIT on KVM). */
#define BARRIER_SPIN 4096

/* Waits until every rank has arrived. A timeout aborts the group. gen and
 * aborted are written under mu (atomically, for the spinning readers). */
static SglStatus barrier(ThreadsComm *tc, SglErr *err)
{
    ThreadsGroup *g = tc->g;
    SglStatus st = SGL_OK;
    struct timespec dl;
    if (g->timeout_ms > 0)
        deadline_after(&dl, g->timeout_ms);
    pthread_mutex_lock(&g->mu);
    unsigned long gen = g->gen;
    if (g->aborted) {
        st = sgl_err(err, SGL_E_IO, "comm threads: rank %d: the group was aborted by another rank",
                     tc->base.rank);
    } else if (++g->arrived == g->size) {
        g->arrived = 0;
        __atomic_store_n(&g->gen, gen + 1, __ATOMIC_RELEASE);
        pthread_cond_broadcast(&g->cv);
    } else {
        pthread_mutex_unlock(&g->mu);
        for (int spin = 0; spin < BARRIER_SPIN && __atomic_load_n(&g->gen, __ATOMIC_ACQUIRE) == gen &&
                           !__atomic_load_n(&g->aborted, __ATOMIC_RELAXED); spin++)
            __asm__ volatile("" ::: "memory");
        pthread_mutex_lock(&g->mu);
        while (g->gen == gen && !g->aborted) {
            int rc = g->timeout_ms > 0 ? pthread_cond_timedwait(&g->cv, &g->mu, &dl)
                                       : pthread_cond_wait(&g->cv, &g->mu);
            if (rc == ETIMEDOUT && g->gen == gen) {
                __atomic_store_n(&g->aborted, true, __ATOMIC_RELAXED);
                pthread_cond_broadcast(&g->cv);
                st = sgl_err(err, SGL_E_IO, "comm threads: rank %d: timed out after %d ms waiting for "
                             "the other ranks", tc->base.rank, g->timeout_ms);
                break;
            }
        }
        if (st == SGL_OK && g->gen == gen)
            st = sgl_err(err, SGL_E_IO, "comm threads: rank %d: the group was aborted by another rank",
                         tc->base.rank);
    }
    pthread_mutex_unlock(&g->mu);
    return st;
}

static SglStatus threads_all_reduce(SglComm *c, void *buf, int64_t n, SglCommType t, void *stream, SglErr *err)
{
    (void)stream;
    ThreadsComm *tc = (ThreadsComm *)c;
    ThreadsGroup *g = tc->g;
    SglStatus st = check_n(c, n, t, err);
    if (st != SGL_OK)
        return st;
    g->in[c->rank] = buf;
    if ((st = barrier(tc, err)) != SGL_OK)
        return st;
    int64_t i0 = n * c->rank / c->size, i1 = n * (c->rank + 1) / c->size;
    if (t == SGL_COMM_F32) {
        for (int64_t i = i0; i < i1; i++) {
            float acc = ((const float *)g->in[0])[i];
            for (int r = 1; r < c->size; r++)
                acc += ((const float *)g->in[r])[i];
            for (int r = 0; r < c->size; r++)
                ((float *)g->in[r])[i] = acc;
        }
    } else {
        for (int64_t i = i0; i < i1; i++) {
            float acc = bf2f(((const uint16_t *)g->in[0])[i]);
            for (int r = 1; r < c->size; r++)
                acc += bf2f(((const uint16_t *)g->in[r])[i]);
            uint16_t h = f2bf(acc);
            for (int r = 0; r < c->size; r++)
                ((uint16_t *)g->in[r])[i] = h;
        }
    }
    return barrier(tc, err);
}

static SglStatus threads_all_gather(SglComm *c, const void *in, void *out, int64_t n, SglCommType t, void *stream,
                                    SglErr *err)
{
    (void)stream;
    ThreadsComm *tc = (ThreadsComm *)c;
    ThreadsGroup *g = tc->g;
    SglStatus st = check_n(c, n, t, err);
    if (st != SGL_OK)
        return st;
    g->in[c->rank] = in;
    if ((st = barrier(tc, err)) != SGL_OK)
        return st;
    size_t bytes = (size_t)(n * elem_size(t));
    for (int r = 0; r < c->size; r++)
        if (bytes)
            memcpy((char *)out + (size_t)r * bytes, g->in[r], bytes);
    return barrier(tc, err);
}

static void group_unref(ThreadsGroup *g)
{
    pthread_mutex_lock(&g->mu);
    bool last = --g->refs == 0;
    pthread_mutex_unlock(&g->mu);
    if (!last)
        return;
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
    free(g->in);
    free(g);
}

static void threads_free(SglComm *c)
{
    ThreadsComm *tc = (ThreadsComm *)c;
    group_unref(tc->g);
    free(tc);
}

static const SglCommOps threads_ops = {
    .name = "threads", .all_reduce_sum = threads_all_reduce, .all_gather = threads_all_gather, .free = threads_free,
};

SglStatus sgl_comm_threads_new(int size, int timeout_ms, SglComm **ranks, SglErr *err)
{
    if (size < 1 || size > 4096)
        return sgl_err(err, SGL_E_INVAL, "comm threads: size %d out of range [1, 4096]", size);
    for (int r = 0; r < size; r++)
        ranks[r] = NULL;
    ThreadsGroup *g = calloc(1, sizeof *g);
    if (!g)
        return sgl_err(err, SGL_E_NOMEM, "comm threads: out of memory");
    g->in = calloc((size_t)size, sizeof *g->in);
    if (!g->in) {
        free(g);
        return sgl_err(err, SGL_E_NOMEM, "comm threads: out of memory");
    }
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    g->size = size;
    g->timeout_ms = timeout_ms;
    g->refs = 1;   /* held by this function until the endpoints exist */
    for (int r = 0; r < size; r++) {
        ThreadsComm *tc = calloc(1, sizeof *tc);
        if (!tc) {
            for (int k = 0; k < r; k++) {
                threads_free(ranks[k]);
                ranks[k] = NULL;
            }
            group_unref(g);
            return sgl_err(err, SGL_E_NOMEM, "comm threads: out of memory");
        }
        tc->base = (SglComm){.ops = &threads_ops, .rank = r, .size = size};
        tc->g = g;
        g->refs++;
        ranks[r] = &tc->base;
    }
    group_unref(g);
    return SGL_OK;
}

void sgl_comm_threads_abort(SglComm *c)
{
    if (!c || c->ops != &threads_ops)
        return;
    ThreadsGroup *g = ((ThreadsComm *)c)->g;
    pthread_mutex_lock(&g->mu);
    __atomic_store_n(&g->aborted, true, __ATOMIC_RELAXED);
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

void sgl_comm_threads_reset(SglComm *c)
{
    if (!c || c->ops != &threads_ops)
        return;
    ThreadsGroup *g = ((ThreadsComm *)c)->g;
    pthread_mutex_lock(&g->mu);
    __atomic_store_n(&g->aborted, false, __ATOMIC_RELAXED);
    g->arrived = 0;
    __atomic_store_n(&g->gen, g->gen + 1, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&g->mu);
}

/* ---- tcp ---- */

#define TCP_MAGIC 0x53474c43u   /* "SGLC" */
#define TCP_HELLO_MAGIC 0x53474c48u
#define HELLO_MS 2000           /* a connected peer's hello must come within this */
enum { OP_ALL_REDUCE = 1, OP_ALL_GATHER = 2, OP_BCAST = 3 };

typedef struct {
    uint32_t magic, op, seq, type;
    int64_t n_bytes;
} Hdr;

typedef struct {
    uint32_t magic;
    int32_t rank, size;
    uint32_t ok;
} Hello;

typedef struct {
    SglComm base;
    int timeout_ms;
    int *fd;           /* rank 0: (size) fd[r] for r >= 1; others: fd[0] = the socket to rank 0 */
    bool broken;
    uint32_t seq;
    bool pending;      /* a bcast header already read by peek_len */
    Hdr pend;
    void *tmp;         /* root: one peer's payload */
    float *acc;        /* root, bf16 sums: (n) f32 */
    int64_t tmp_cap, acc_cap;
} TcpComm;

static const SglCommOps tcp_ops;

static double mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return 1e3 * (double)ts.tv_sec + (double)ts.tv_nsec / 1e6;
}

/* ms left until deadline (-1: none) for poll; 0 when passed. */
static int left_ms(double deadline)
{
    if (deadline < 0)
        return -1;
    double d = deadline - mono_ms();
    return d <= 0 ? 0 : d > 1e9 ? 1000000000 : (int)d + 1;
}

/* Sends/receives exactly len bytes before the deadline. */
static SglStatus xfer(int fd, void *p, size_t len, bool send_, double deadline, const char *who, SglErr *err)
{
    char *b = p;
    while (len > 0) {
        struct pollfd pf = {.fd = fd, .events = send_ ? POLLOUT : POLLIN};
        int ms = left_ms(deadline);
        int rc = poll(&pf, 1, ms);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc < 0)
            return sgl_err(err, SGL_E_IO, "comm tcp: %s: poll: %s", who, strerror(errno));
        if (rc == 0)
            return sgl_err(err, SGL_E_IO, "comm tcp: %s: timed out", who);
        ssize_t k = send_ ? send(fd, b, len, MSG_NOSIGNAL) : recv(fd, b, len, 0);
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            continue;
        if (k < 0)
            return sgl_err(err, SGL_E_IO, "comm tcp: %s: %s", who, strerror(errno));
        if (k == 0)
            return sgl_err(err, SGL_E_IO, "comm tcp: %s: connection closed by the peer", who);
        b += k;
        len -= (size_t)k;
    }
    return SGL_OK;
}

static double deadline_of(int timeout_ms) { return timeout_ms > 0 ? mono_ms() + timeout_ms : -1; }

/* Splits "HOST:PORT" / "[V6]:PORT" into host (cap bytes) and port. */
static SglStatus parse_addr(const char *addr, char *host, size_t cap, char *port, SglErr *err)
{
    const char *colon = addr ? strrchr(addr, ':') : NULL;
    if (!addr || !colon || colon == addr)
        return sgl_err(err, SGL_E_INVAL, "comm tcp: address '%.200s' is not HOST:PORT", addr ? addr : "(null)");
    const char *h = addr;
    size_t hl = (size_t)(colon - addr);
    if (h[0] == '[') {
        if (hl < 3 || h[hl - 1] != ']')
            return sgl_err(err, SGL_E_INVAL, "comm tcp: address '%.200s' is not [V6]:PORT", addr);
        h++;
        hl -= 2;
    }
    char *end;
    errno = 0;
    long p = strtol(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end != '\0' || errno || p < 1 || p > 65535)
        return sgl_err(err, SGL_E_INVAL, "comm tcp: address '%.200s': port must be 1..65535", addr);
    if (hl == 0 || hl >= cap)
        return sgl_err(err, SGL_E_INVAL, "comm tcp: address '%.200s': bad host", addr);
    memcpy(host, h, hl);
    host[hl] = '\0';
    snprintf(port, 8, "%ld", p);
    return SGL_OK;
}

/* No Nagle delay (collectives are request/answer); keepalive probes so a
 * peer host that vanishes without closing (power, network) is noticed by a
 * worker waiting without a timeout: after ~30 s idle, 3 probes 10 s apart. */
static void set_sock_opts(int fd)
{
    int one = 1, idle = 30, intvl = 10, cnt = 3;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

static SglStatus resolve(const char *addr, struct addrinfo **res, SglErr *err)
{
    char host[256], port[8];
    SglStatus st = parse_addr(addr, host, sizeof host, port, err);
    if (st != SGL_OK)
        return st;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    int rc = getaddrinfo(host, port, &hints, res);
    if (rc != 0)
        return sgl_err(err, SGL_E_IO, "comm tcp: cannot resolve '%.200s': %s", addr, gai_strerror(rc));
    return SGL_OK;
}

static SglStatus tcp_listen(const char *addr, int *lfd, SglErr *err)
{
    struct addrinfo *res = NULL;
    SglStatus st = resolve(addr, &res, err);
    if (st != SGL_OK)
        return st;
    int e = 0;
    *lfd = -1;
    for (struct addrinfo *ai = res; ai && *lfd < 0; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            e = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 128) == 0) {
            fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
            *lfd = fd;
        } else {
            e = errno;
            close(fd);
        }
    }
    freeaddrinfo(res);
    if (*lfd < 0)
        return sgl_err(err, SGL_E_IO, "comm tcp: cannot listen on %.200s: %s", addr, strerror(e));
    return SGL_OK;
}

/* Connects to addr, retrying (refused: node 0 not listening yet) until the deadline. */
static SglStatus tcp_connect(const char *addr, double deadline, int *out, SglErr *err)
{
    struct addrinfo *res = NULL;
    SglStatus st = resolve(addr, &res, err);
    if (st != SGL_OK)
        return st;
    int e = 0;
    *out = -1;
    while (*out < 0) {
        for (struct addrinfo *ai = res; ai && *out < 0; ai = ai->ai_next) {
            int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
            if (fd < 0) {
                e = errno;
                continue;
            }
            fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
            int rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
            if (rc < 0 && errno == EINPROGRESS) {
                struct pollfd pf = {.fd = fd, .events = POLLOUT};
                int ms = left_ms(deadline);
                if (poll(&pf, 1, ms < 0 || ms > 1000 ? 1000 : ms) == 1) {
                    socklen_t sl = sizeof e;
                    getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &sl);
                    rc = e == 0 ? 0 : -1;
                } else {
                    e = ETIMEDOUT;
                }
            } else if (rc < 0) {
                e = errno;
            }
            if (rc == 0) {
                set_sock_opts(fd);
                *out = fd;
            } else {
                close(fd);
            }
        }
        if (*out >= 0)
            break;
        if (left_ms(deadline) == 0) {
            freeaddrinfo(res);
            return sgl_err(err, SGL_E_IO, "comm tcp: cannot connect to %.200s (last error: %s); gave up "
                           "after the timeout", addr, strerror(e));
        }
        nanosleep(&(struct timespec){0, 50 * 1000000L}, NULL);
    }
    freeaddrinfo(res);
    return SGL_OK;
}

static void tcp_close(TcpComm *t)
{
    int nfd = t->base.rank == 0 ? t->base.size : 1;
    if (t->fd)
        for (int i = 0; i < nfd; i++)
            if (t->fd[i] >= 0)
                close(t->fd[i]);
    free(t->fd);
    free(t->tmp);
    free(t->acc);
    free(t);
}

static void tcp_free(SglComm *c) { tcp_close((TcpComm *)c); }

static TcpComm *tcp_alloc(int rank, int size, int timeout_ms)
{
    TcpComm *t = calloc(1, sizeof *t);
    int nfd = rank == 0 ? size : 1;
    if (!t || !(t->fd = malloc((size_t)nfd * sizeof *t->fd))) {
        free(t);
        return NULL;
    }
    for (int i = 0; i < nfd; i++)
        t->fd[i] = -1;
    t->base = (SglComm){.ops = &tcp_ops, .rank = rank, .size = size};
    t->timeout_ms = timeout_ms;
    return t;
}

/* Rank 0: accepts size - 1 peers with valid hellos (others are dropped), then acks them. */
static SglStatus accept_all(TcpComm *root, int lfd, double deadline, SglErr *err)
{
    int size = root->base.size, have = 0;
    while (have < size - 1) {
        struct pollfd pf = {.fd = lfd, .events = POLLIN};
        int rc = poll(&pf, 1, left_ms(deadline));
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0)
            return sgl_err(err, SGL_E_IO, "comm tcp: rank 0: %d of %d peers connected before the timeout",
                           have, size - 1);
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        set_sock_opts(fd);
        Hello h;
        SglErr e2;
        /* a stranger that connects and stays silent costs at most HELLO_MS */
        double hello_dl = mono_ms() + HELLO_MS;
        if (deadline >= 0 && deadline < hello_dl)
            hello_dl = deadline;
        if (xfer(fd, &h, sizeof h, false, hello_dl, "rank 0: hello", &e2) != SGL_OK || h.magic != TCP_HELLO_MAGIC) {
            close(fd);   /* not one of ours */
            continue;
        }
        if (h.size != size || h.rank < 1 || h.rank >= size || root->fd[h.rank] >= 0) {
            close(fd);
            return sgl_err(err, SGL_E_IO, "comm tcp: rank 0: a peer says it is rank %d of %d, expected a "
                           "new rank in [1, %d) of %d (two groups on one address?)", h.rank, h.size, size, size);
        }
        root->fd[h.rank] = fd;
        have++;
    }
    for (int r = 1; r < size; r++) {
        Hello ack = {.magic = TCP_HELLO_MAGIC, .rank = r, .size = size, .ok = 1};
        SglStatus st = xfer(root->fd[r], &ack, sizeof ack, true, deadline, "rank 0: ack", err);
        if (st != SGL_OK)
            return st;
    }
    return SGL_OK;
}

static SglStatus send_hello(TcpComm *t, double deadline, SglErr *err)
{
    Hello h = {.magic = TCP_HELLO_MAGIC, .rank = t->base.rank, .size = t->base.size};
    return xfer(t->fd[0], &h, sizeof h, true, deadline, "hello", err);
}

static SglStatus recv_ack(TcpComm *t, double deadline, SglErr *err)
{
    Hello h;
    SglStatus st = xfer(t->fd[0], &h, sizeof h, false, deadline, "waiting for rank 0's ack", err);
    if (st == SGL_OK && (h.magic != TCP_HELLO_MAGIC || h.ok != 1 || h.rank != t->base.rank))
        st = sgl_err(err, SGL_E_IO, "comm tcp: rank %d: bad ack from rank 0", t->base.rank);
    return st;
}

SglStatus sgl_comm_tcp_group_new(const char *addr, int first_rank, int n_local, int size, int timeout_ms,
                                 SglComm **out, SglErr *err)
{
    if (size < 1 || size > 4096 || n_local < 1 || first_rank < 0 || first_rank + n_local > size)
        return sgl_err(err, SGL_E_INVAL, "comm tcp: ranks %d..%d of a group of %d are out of range",
                       first_rank, first_rank + n_local - 1, size);
    if (timeout_ms <= 0)
        return sgl_err(err, SGL_E_INVAL, "comm tcp: timeout must be > 0 ms");
    for (int i = 0; i < n_local; i++)
        out[i] = NULL;
    SglStatus st = SGL_OK;
    TcpComm **t = calloc((size_t)n_local, sizeof *t);
    int lfd = -1;
    if (!t)
        return sgl_err(err, SGL_E_NOMEM, "comm tcp: out of memory");
    for (int i = 0; i < n_local; i++)
        if (!(t[i] = tcp_alloc(first_rank + i, size, timeout_ms))) {
            st = sgl_err(err, SGL_E_NOMEM, "comm tcp: out of memory");
            goto fail;
        }
    double deadline = deadline_of(timeout_ms);
    if (first_rank == 0 && size > 1 && (st = tcp_listen(addr, &lfd, err)) != SGL_OK)
        goto fail;
    for (int i = first_rank == 0 ? 1 : 0; i < n_local; i++)
        if ((st = tcp_connect(addr, deadline, &t[i]->fd[0], err)) != SGL_OK ||
            (st = send_hello(t[i], deadline, err)) != SGL_OK)
            goto fail;
    if (first_rank == 0 && size > 1 && (st = accept_all(t[0], lfd, deadline, err)) != SGL_OK)
        goto fail;
    for (int i = first_rank == 0 ? 1 : 0; i < n_local; i++)
        if ((st = recv_ack(t[i], deadline, err)) != SGL_OK)
            goto fail;
    if (lfd >= 0)
        close(lfd);
    for (int i = 0; i < n_local; i++)
        out[i] = &t[i]->base;
    free(t);
    return SGL_OK;
fail:
    if (lfd >= 0)
        close(lfd);
    for (int i = 0; i < n_local; i++)
        if (t[i])
            tcp_close(t[i]);
    free(t);
    return st;
}

SglStatus sgl_comm_tcp_new(const char *addr, int rank, int size, int timeout_ms, SglComm **out, SglErr *err)
{
    *out = NULL;
    return sgl_comm_tcp_group_new(addr, rank, 1, size, timeout_ms, out, err);
}

/* Grows a root scratch buffer (first use or a larger collective only). */
static SglStatus grow(void **p, int64_t *cap, int64_t bytes, SglErr *err)
{
    if (bytes <= *cap)
        return SGL_OK;
    void *q = realloc(*p, (size_t)bytes);
    if (!q)
        return sgl_err(err, SGL_E_NOMEM, "comm tcp: out of memory for %lld bytes", (long long)bytes);
    *p = q;
    *cap = bytes;
    return SGL_OK;
}

static SglStatus send_msg(TcpComm *t, int fd, uint32_t op, SglCommType ty, const void *p, int64_t bytes,
                          double deadline, const char *who, SglErr *err)
{
    Hdr h = {.magic = TCP_MAGIC, .op = op, .seq = t->seq, .type = (uint32_t)ty, .n_bytes = bytes};
    SglStatus st = xfer(fd, &h, sizeof h, true, deadline, who, err);
    if (st == SGL_OK && bytes > 0)
        st = xfer(fd, (void *)p, (size_t)bytes, true, deadline, who, err);
    return st;
}

/* Reads a header and checks it is the expected op/seq/type/size. */
static SglStatus recv_hdr(TcpComm *t, int fd, uint32_t op, SglCommType ty, int64_t bytes, double deadline,
                          const char *who, SglErr *err)
{
    Hdr h;
    SglStatus st = xfer(fd, &h, sizeof h, false, deadline, who, err);
    if (st != SGL_OK)
        return st;
    if (h.magic != TCP_MAGIC || h.op != op || h.seq != t->seq || h.type != (uint32_t)ty || h.n_bytes != bytes)
        return sgl_err(err, SGL_E_IO, "comm tcp: %s: out of step (got op %u seq %u type %u %lld bytes, "
                       "expected op %u seq %u type %d %lld bytes)", who, h.op, h.seq, h.type, (long long)h.n_bytes,
                       op, t->seq, (int)ty, (long long)bytes);
    return SGL_OK;
}

static SglStatus tcp_begin(TcpComm *t, SglErr *err)
{
    if (t->broken)
        return sgl_err(err, SGL_E_IO, "comm tcp: rank %d: the connection failed earlier", t->base.rank);
    return SGL_OK;
}

static SglStatus tcp_end(TcpComm *t, SglStatus st)
{
    if (st != SGL_OK)
        t->broken = true;
    t->seq++;
    return st;
}

static SglStatus tcp_all_reduce(SglComm *c, void *buf, int64_t n, SglCommType ty, void *stream, SglErr *err)
{
    (void)stream;
    TcpComm *t = (TcpComm *)c;
    SglStatus st = check_n(c, n, ty, err);
    if (st != SGL_OK || (st = tcp_begin(t, err)) != SGL_OK || c->size == 1)
        return st;
    int64_t bytes = n * elem_size(ty);
    double dl = deadline_of(t->timeout_ms);
    char who[64];
    if (c->rank != 0) {
        snprintf(who, sizeof who, "rank %d: all_reduce", c->rank);
        if ((st = send_msg(t, t->fd[0], OP_ALL_REDUCE, ty, buf, bytes, dl, who, err)) == SGL_OK &&
            (st = recv_hdr(t, t->fd[0], OP_ALL_REDUCE, ty, bytes, dl, who, err)) == SGL_OK)
            st = xfer(t->fd[0], buf, (size_t)bytes, false, dl, who, err);
        return tcp_end(t, st);
    }
    if ((st = grow(&t->tmp, &t->tmp_cap, bytes, err)) != SGL_OK ||
        (ty == SGL_COMM_BF16 && (st = grow((void **)&t->acc, &t->acc_cap, n * 4, err)) != SGL_OK))
        return tcp_end(t, st);
    if (ty == SGL_COMM_BF16)
        for (int64_t i = 0; i < n; i++)
            t->acc[i] = bf2f(((const uint16_t *)buf)[i]);
    for (int r = 1; r < c->size && st == SGL_OK; r++) {
        snprintf(who, sizeof who, "rank 0: all_reduce from rank %d", r);
        if ((st = recv_hdr(t, t->fd[r], OP_ALL_REDUCE, ty, bytes, dl, who, err)) != SGL_OK ||
            (st = xfer(t->fd[r], t->tmp, (size_t)bytes, false, dl, who, err)) != SGL_OK)
            break;
        if (ty == SGL_COMM_F32)
            for (int64_t i = 0; i < n; i++)
                ((float *)buf)[i] += ((const float *)t->tmp)[i];
        else
            for (int64_t i = 0; i < n; i++)
                t->acc[i] += bf2f(((const uint16_t *)t->tmp)[i]);
    }
    if (st == SGL_OK && ty == SGL_COMM_BF16)
        for (int64_t i = 0; i < n; i++)
            ((uint16_t *)buf)[i] = f2bf(t->acc[i]);
    for (int r = 1; r < c->size && st == SGL_OK; r++) {
        snprintf(who, sizeof who, "rank 0: all_reduce to rank %d", r);
        st = send_msg(t, t->fd[r], OP_ALL_REDUCE, ty, buf, bytes, dl, who, err);
    }
    return tcp_end(t, st);
}

static SglStatus tcp_all_gather(SglComm *c, const void *in, void *out, int64_t n, SglCommType ty, void *stream,
                                SglErr *err)
{
    (void)stream;
    TcpComm *t = (TcpComm *)c;
    SglStatus st = check_n(c, n, ty, err);
    if (st != SGL_OK || (st = tcp_begin(t, err)) != SGL_OK)
        return st;
    int64_t bytes = n * elem_size(ty), all = bytes * c->size;
    double dl = deadline_of(t->timeout_ms);
    char who[64];
    if (c->rank != 0) {
        snprintf(who, sizeof who, "rank %d: all_gather", c->rank);
        if ((st = send_msg(t, t->fd[0], OP_ALL_GATHER, ty, in, bytes, dl, who, err)) == SGL_OK &&
            (st = recv_hdr(t, t->fd[0], OP_ALL_GATHER, ty, all, dl, who, err)) == SGL_OK)
            st = xfer(t->fd[0], out, (size_t)all, false, dl, who, err);
        return tcp_end(t, st);
    }
    if (bytes)
        memmove(out, in, (size_t)bytes);
    for (int r = 1; r < c->size && st == SGL_OK; r++) {
        snprintf(who, sizeof who, "rank 0: all_gather from rank %d", r);
        if ((st = recv_hdr(t, t->fd[r], OP_ALL_GATHER, ty, bytes, dl, who, err)) == SGL_OK)
            st = xfer(t->fd[r], (char *)out + r * bytes, (size_t)bytes, false, dl, who, err);
    }
    for (int r = 1; r < c->size && st == SGL_OK; r++) {
        snprintf(who, sizeof who, "rank 0: all_gather to rank %d", r);
        st = send_msg(t, t->fd[r], OP_ALL_GATHER, ty, out, all, dl, who, err);
    }
    return tcp_end(t, st);
}

static const SglCommOps tcp_ops = {
    .name = "tcp", .all_reduce_sum = tcp_all_reduce, .all_gather = tcp_all_gather, .free = tcp_free,
};

/* A receiver's next bcast header (kept pending until its payload is read). */
static SglStatus bcast_hdr(TcpComm *t, int timeout_ms, double *dl, SglErr *err)
{
    *dl = timeout_ms < 0 ? -1 : deadline_of(timeout_ms > 0 ? timeout_ms : t->timeout_ms);
    if (t->pending)
        return SGL_OK;
    char who[64];
    snprintf(who, sizeof who, "rank %d: waiting for a message from rank 0", t->base.rank);
    Hdr h;
    SglStatus st = xfer(t->fd[0], &h, sizeof h, false, *dl, who, err);
    if (st != SGL_OK)
        return st;
    if (h.magic != TCP_MAGIC || h.op != OP_BCAST || h.seq != t->seq || h.n_bytes < 0)
        return sgl_err(err, SGL_E_IO, "comm tcp: %s: out of step (op %u seq %u, expected a message with "
                       "seq %u)", who, h.op, h.seq, t->seq);
    t->pend = h;
    t->pending = true;
    return SGL_OK;
}

SglStatus sgl_comm_tcp_peek_len(SglComm *c, int64_t *len, int timeout_ms, SglErr *err)
{
    if (!c || c->ops != &tcp_ops || c->rank == 0)
        return sgl_err(err, SGL_E_INVAL, "comm: peek_len needs a tcp endpoint of rank > 0");
    TcpComm *t = (TcpComm *)c;
    double dl;
    SglStatus st = tcp_begin(t, err);
    if (st == SGL_OK && (st = bcast_hdr(t, timeout_ms, &dl, err)) != SGL_OK)
        t->broken = true;
    if (st == SGL_OK)
        *len = t->pend.n_bytes;
    return st;
}

SglStatus sgl_comm_tcp_bcast_bytes(SglComm *c, void *buf, int64_t *len, int64_t cap, int timeout_ms, SglErr *err)
{
    if (!c || c->ops != &tcp_ops)
        return sgl_err(err, SGL_E_INVAL, "comm: bcast_bytes needs a tcp endpoint");
    TcpComm *t = (TcpComm *)c;
    SglStatus st = tcp_begin(t, err);
    if (st != SGL_OK)
        return st;
    char who[64];
    if (c->rank == 0) {
        if (*len < 0 || *len > cap)
            return sgl_err(err, SGL_E_INVAL, "comm tcp: bcast of %lld bytes (cap %lld)", (long long)*len,
                           (long long)cap);
        double dl = deadline_of(timeout_ms > 0 ? timeout_ms : t->timeout_ms);
        for (int r = 1; r < c->size && st == SGL_OK; r++) {
            snprintf(who, sizeof who, "rank 0: message to rank %d", r);
            st = send_msg(t, t->fd[r], OP_BCAST, SGL_COMM_F32, buf, *len, dl, who, err);
        }
        return tcp_end(t, st);
    }
    double dl;
    if ((st = bcast_hdr(t, timeout_ms, &dl, err)) != SGL_OK)
        return tcp_end(t, st);
    t->pending = false;
    int64_t n = t->pend.n_bytes;
    snprintf(who, sizeof who, "rank %d: message from rank 0", c->rank);
    if (n > cap) {   /* drop it, keep the stream in step */
        char sink[4096];
        for (int64_t k = 0; k < n && st == SGL_OK; k += (int64_t)sizeof sink)
            st = xfer(t->fd[0], sink, (size_t)(n - k < (int64_t)sizeof sink ? n - k : (int64_t)sizeof sink), false,
                      dl, who, err);
        t->seq++;
        if (st != SGL_OK)
            return tcp_end(t, st);
        return sgl_err(err, SGL_E_INVAL, "comm tcp: %s: %lld bytes do not fit in %lld", who, (long long)n,
                       (long long)cap);
    }
    st = xfer(t->fd[0], buf, (size_t)n, false, dl, who, err);
    if (st == SGL_OK)
        *len = n;
    return tcp_end(t, st);
}

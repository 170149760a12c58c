/* test_comm_host.c -- the host communicators (runtime/comm_host.h): threads
 * and tcp all_reduce_sum / all_gather against a rank-order reference (bit
 * exact, f32 and bf16, 1-4 ranks), tcp over loopback (one thread per rank,
 * and several ranks made by one thread), bcast_bytes, and the failure paths:
 * bad addresses, nobody listening, a peer that leaves mid-collective, a rank
 * that aborts, a threads group that times out. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "runtime/comm_host.h"

#define N_ELEMS 1003   /* not a multiple of any rank count */

static float bf2f(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Rank r's input element i: varied magnitudes so the order of summation shows. */
static float val(int r, int i) { return (float)((r * 7919 + i * 104729) % 2001 - 1000) * (r % 2 ? 1e-3f : 1.37f); }

static uint16_t to_bf(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    u += 0x7fffu + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

/* A loopback port P with P + 1 also free (the CPU ranks' group), below the
 * kernel's ephemeral range (32768..) so no outgoing connection takes it
 * between this check and the listen. */
static int free_port(void)
{
    static unsigned seed;
    if (!seed)
        seed = (unsigned)getpid() * 2654435761u ^ (unsigned)time(NULL);
    for (;;) {
        int p = 20000 + (int)(rand_r(&seed) % 12000), ok = 1;
        for (int k = 0; k < 2 && ok; k++) {
            int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
            struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)(p + k)),
                                    .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
            ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
            close(fd);
        }
        if (ok)
            return p;
    }
}

typedef struct {
    SglComm *c;
    SglCommType t;
    const char *addr;   /* tcp: make the endpoint on this thread */
    int rank, size;
    float f[N_ELEMS];
    uint16_t h[N_ELEMS];
    float gathered[4 * N_ELEMS];
    SglStatus st;
    SglErr err;
} RankJob;

static void *rank_main(void *p)
{
    RankJob *j = p;
    if (j->addr && (j->st = sgl_comm_tcp_new(j->addr, j->rank, j->size, 5000, &j->c, &j->err)) != SGL_OK)
        return NULL;
    for (int i = 0; i < N_ELEMS; i++) {
        j->f[i] = val(j->rank, i);
        j->h[i] = to_bf(val(j->rank, i));
    }
    void *buf = j->t == SGL_COMM_F32 ? (void *)j->f : (void *)j->h;
    j->st = j->c->ops->all_reduce_sum(j->c, buf, N_ELEMS, j->t, NULL, &j->err);
    if (j->st != SGL_OK)
        return NULL;
    float mine[N_ELEMS];
    for (int i = 0; i < N_ELEMS; i++)
        mine[i] = (float)(j->rank * 1000 + i);
    j->st = j->c->ops->all_gather(j->c, mine, j->gathered, N_ELEMS, SGL_COMM_F32, NULL, &j->err);
    return NULL;
}

/* Runs all ranks on threads and checks every rank's result bit for bit. */
static void run_group(SglComm **eps, int size, SglCommType t, const char *addr)
{
    RankJob *jobs = calloc((size_t)size, sizeof *jobs);
    pthread_t th[4];
    for (int r = 0; r < size; r++) {
        jobs[r] = (RankJob){.c = eps ? eps[r] : NULL, .t = t, .addr = addr, .rank = r, .size = size};
        assert_int_equal(pthread_create(&th[r], NULL, rank_main, &jobs[r]), 0);
    }
    for (int r = 0; r < size; r++)
        pthread_join(th[r], NULL);
    for (int r = 0; r < size; r++) {
        if (jobs[r].st != SGL_OK)
            fail_msg("rank %d: %s", r, jobs[r].err.msg);
        for (int i = 0; i < N_ELEMS; i++) {
            float acc = t == SGL_COMM_F32 ? val(0, i) : bf2f(to_bf(val(0, i)));
            for (int k = 1; k < size; k++)   /* rank order, as documented */
                acc += t == SGL_COMM_F32 ? val(k, i) : bf2f(to_bf(val(k, i)));
            if (t == SGL_COMM_F32)
                assert_memory_equal(&jobs[r].f[i], &acc, 4);
            else
                assert_int_equal(jobs[r].h[i], to_bf(acc));
        }
        for (int k = 0; k < size; k++)
            for (int i = 0; i < N_ELEMS; i++)
                assert_true(jobs[r].gathered[k * N_ELEMS + i] == (float)(k * 1000 + i));
    }
    for (int r = 0; r < size; r++)
        sgl_comm_free(jobs[r].c);
    free(jobs);
}

static void test_threads(void **state)
{
    (void)state;
    for (int size = 1; size <= 4; size++)
        for (int t = 0; t < 2; t++) {
            SglComm *eps[4];
            SglErr err;
            assert_int_equal(sgl_comm_threads_new(size, 10000, eps, &err), SGL_OK);
            for (int r = 0; r < size; r++) {
                assert_string_equal(eps[r]->ops->name, "threads");
                assert_int_equal(eps[r]->rank, r);
                assert_int_equal(eps[r]->size, size);
            }
            run_group(eps, size, (SglCommType)t, NULL);
        }
    SglErr err;
    SglComm *eps[1];
    assert_int_equal(sgl_comm_threads_new(0, 0, eps, &err), SGL_E_INVAL);
}

static void test_tcp(void **state)
{
    (void)state;
    for (int size = 1; size <= 4; size++)
        for (int t = 0; t < 2; t++) {
            char addr[64];
            snprintf(addr, sizeof addr, "127.0.0.1:%d", free_port());
            run_group(NULL, size, (SglCommType)t, addr);
        }
}

/* Ranks 0..2 made by one thread (the listener's own peers), rank 3 elsewhere. */
typedef struct {
    const char *addr;
    SglComm *c;
    SglStatus st;
    SglErr err;
} LateRank;

static void *late_main(void *p)
{
    LateRank *l = p;
    l->st = sgl_comm_tcp_group_new(l->addr, 3, 1, 4, 5000, &l->c, &l->err);
    return NULL;
}

static void test_tcp_group(void **state)
{
    (void)state;
    char addr[64];
    snprintf(addr, sizeof addr, "[::1]:%d", free_port());
    SglComm *eps[4];
    SglErr err;
    LateRank late = {.addr = addr};
    pthread_t th;
    pthread_create(&th, NULL, late_main, &late);
    SglStatus st = sgl_comm_tcp_group_new(addr, 0, 3, 4, 5000, eps, &err);
    pthread_join(th, NULL);
    if (st == SGL_E_IO && strstr(err.msg, "listen")) {   /* no IPv6 loopback here: IPv4 instead */
        snprintf(addr, sizeof addr, "127.0.0.1:%d", free_port());
        pthread_create(&th, NULL, late_main, &late);
        st = sgl_comm_tcp_group_new(addr, 0, 3, 4, 5000, eps, &err);
        pthread_join(th, NULL);
    }
    if (st != SGL_OK)
        fail_msg("%s", err.msg);
    assert_int_equal(late.st, SGL_OK);
    eps[3] = late.c;
    run_group(eps, 4, SGL_COMM_F32, NULL);
}

/* Strangers on node 0's port (a port scanner, an HTTP client, a silent
 * connection) are dropped; the real peer behind them still joins. */
typedef struct {
    int port;
    SglComm *c;
    SglStatus st;
    SglErr err;
} StrangerJob;

static int raw_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    for (int i = 0; i < 200 && connect(fd, (struct sockaddr *)&a, sizeof a) != 0; i++) {
        close(fd);
        usleep(10000);
        fd = socket(AF_INET, SOCK_STREAM, 0);
    }
    return fd;
}

static void *stranger_main(void *p)
{
    StrangerJob *j = p;
    int http = raw_connect(j->port);
    const char req[] = "GET / HTTP/1.0\r\n\r\n";
    assert_true(write(http, req, sizeof req - 1) == (ssize_t)(sizeof req - 1));
    int silent = raw_connect(j->port);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", j->port);
    j->st = sgl_comm_tcp_new(addr, 1, 2, 10000, &j->c, &j->err);
    close(http);
    close(silent);
    return NULL;
}

static void test_tcp_strangers(void **state)
{
    (void)state;
    StrangerJob j = {.port = free_port()};
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", j.port);
    pthread_t th;
    pthread_create(&th, NULL, stranger_main, &j);
    SglComm *root = NULL;
    SglErr err;
    SglStatus st = sgl_comm_tcp_new(addr, 0, 2, 10000, &root, &err);
    pthread_join(th, NULL);
    if (st != SGL_OK || j.st != SGL_OK)
        fail_msg("%s / %s", st != SGL_OK ? err.msg : "", j.err.msg);
    SglComm *eps[2] = {root, j.c};
    run_group(eps, 2, SGL_COMM_F32, NULL);   /* the group works (and is freed) */
}

typedef struct {
    SglComm *c;
    char buf[64];
    int64_t len;
    SglStatus st, st2;
    SglErr err;
} BcastJob;

static void *bcast_main(void *p)
{
    BcastJob *j = p;
    int64_t need = 0;
    j->st = sgl_comm_tcp_peek_len(j->c, &need, 5000, &j->err);
    if (j->st == SGL_OK && need <= (int64_t)sizeof j->buf)
        j->st = sgl_comm_tcp_bcast_bytes(j->c, j->buf, &j->len, sizeof j->buf, -1, &j->err);
    /* the second message is too big for 8 bytes: dropped, stream stays in step */
    j->st2 = sgl_comm_tcp_bcast_bytes(j->c, j->buf, &j->len, 8, 0, &j->err);
    float x = 2.0f;
    if (j->st2 == SGL_E_INVAL)
        j->st2 = j->c->ops->all_reduce_sum(j->c, &x, 1, SGL_COMM_F32, NULL, &j->err);
    return NULL;
}

static void test_tcp_bcast(void **state)
{
    (void)state;
    char addr[64];
    snprintf(addr, sizeof addr, "localhost:%d", free_port());
    SglComm *eps[3];
    SglErr err;
    assert_int_equal(sgl_comm_tcp_group_new(addr, 0, 3, 3, 5000, eps, &err), SGL_OK);
    BcastJob jobs[3] = {{.c = eps[1]}, {.c = eps[2]}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, bcast_main, &jobs[i]);
    int64_t len = 12;
    assert_int_equal(sgl_comm_tcp_bcast_bytes(eps[0], "hello, tcp!", &len, 12, 0, &err), SGL_OK);
    len = 20;
    assert_int_equal(sgl_comm_tcp_bcast_bytes(eps[0], "twenty bytes long..", &len, 20, 0, &err), SGL_OK);
    float x = 1.0f;
    assert_int_equal(eps[0]->ops->all_reduce_sum(eps[0], &x, 1, SGL_COMM_F32, NULL, &err), SGL_OK);
    assert_true(x == 5.0f);
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(jobs[i].st, SGL_OK);
        assert_int_equal(jobs[i].len, 12);
        assert_string_equal(jobs[i].buf, "hello, tcp!");
        assert_int_equal(jobs[i].st2, SGL_OK);
    }
    len = 1;
    assert_int_equal(sgl_comm_tcp_bcast_bytes(eps[0], "x", &len, 0, 0, &err), SGL_E_INVAL);
    SglComm *th_eps[1];
    assert_int_equal(sgl_comm_threads_new(1, 0, th_eps, &err), SGL_OK);
    assert_int_equal(sgl_comm_tcp_bcast_bytes(th_eps[0], "x", &len, 1, 0, &err), SGL_E_INVAL);
    sgl_comm_free(th_eps[0]);
    for (int i = 0; i < 3; i++)
        sgl_comm_free(eps[i]);
}

static void test_tcp_errors(void **state)
{
    (void)state;
    SglComm *c = (SglComm *)1;
    SglErr err;
    const char *bad[] = {"nohost", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:99999", "127.0.0.1:12x", ":80",
                         "[::1:80", "[]:80"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(sgl_comm_tcp_new(bad[i], 1, 2, 100, &c, &err), SGL_E_INVAL);
        assert_null(c);
        assert_non_null(strstr(err.msg, "comm tcp: address"));
    }
    assert_int_equal(sgl_comm_tcp_new("127.0.0.1:80", 2, 2, 100, &c, &err), SGL_E_INVAL);
    assert_int_equal(sgl_comm_tcp_new("127.0.0.1:80", 1, 2, 0, &c, &err), SGL_E_INVAL);
    assert_int_equal(sgl_comm_tcp_new("no-such-host.invalid:80", 1, 2, 100, &c, &err), SGL_E_IO);
    assert_non_null(strstr(err.msg, "resolve"));
    /* nobody listens: refused until the 300 ms timeout */
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", free_port());
    assert_int_equal(sgl_comm_tcp_new(addr, 1, 2, 300, &c, &err), SGL_E_IO);
    assert_non_null(strstr(err.msg, "cannot connect"));
    /* nobody connects */
    assert_int_equal(sgl_comm_tcp_new(addr, 0, 2, 300, &c, &err), SGL_E_IO);
    assert_non_null(strstr(err.msg, "0 of 1 peers"));
}

/* A peer leaves before the collective (its process died): EOF, not a hang. */
static void test_tcp_peer_dies(void **state)
{
    (void)state;
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", free_port());
    SglComm *eps[3];
    SglErr err;
    assert_int_equal(sgl_comm_tcp_group_new(addr, 0, 3, 3, 2000, eps, &err), SGL_OK);
    sgl_comm_free(eps[2]);
    sgl_comm_free(eps[1]);
    float x[4] = {1, 2, 3, 4};
    assert_int_equal(eps[0]->ops->all_reduce_sum(eps[0], x, 4, SGL_COMM_F32, NULL, &err), SGL_E_IO);
    assert_non_null(strstr(err.msg, "closed by the peer"));
    /* broken from now on */
    assert_int_equal(eps[0]->ops->all_gather(eps[0], x, x, 1, SGL_COMM_F32, NULL, &err), SGL_E_IO);
    assert_non_null(strstr(err.msg, "failed earlier"));
    sgl_comm_free(eps[0]);
}

typedef struct {
    SglComm *c;
    SglStatus st;
    SglErr err;
} WaitJob;

static void *wait_main(void *p)
{
    WaitJob *j = p;
    float x = 1;
    j->st = j->c->ops->all_reduce_sum(j->c, &x, 1, SGL_COMM_F32, NULL, &j->err);
    return NULL;
}

static void test_threads_abort_timeout(void **state)
{
    (void)state;
    SglComm *eps[3];
    SglErr err;
    /* abort wakes the waiting ranks at once (the timeout is an hour) */
    assert_int_equal(sgl_comm_threads_new(3, 3600 * 1000, eps, &err), SGL_OK);
    WaitJob jobs[2] = {{.c = eps[1]}, {.c = eps[2]}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, wait_main, &jobs[i]);
    usleep(20000);
    sgl_comm_threads_abort(eps[0]);
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(jobs[i].st, SGL_E_IO);
        assert_non_null(strstr(jobs[i].err.msg, "aborted"));
    }
    float x = 1;
    assert_int_equal(eps[0]->ops->all_reduce_sum(eps[0], &x, 1, SGL_COMM_F32, NULL, &err), SGL_E_IO);
    /* after reset the group works again */
    sgl_comm_threads_reset(eps[0]);
    run_group(eps, 3, SGL_COMM_F32, NULL);

    /* a rank that never comes: the others time out */
    assert_int_equal(sgl_comm_threads_new(2, 100, eps, &err), SGL_OK);
    x = 1;
    assert_int_equal(eps[0]->ops->all_reduce_sum(eps[0], &x, 1, SGL_COMM_F32, NULL, &err), SGL_E_IO);
    assert_non_null(strstr(err.msg, "timed out"));
    sgl_comm_free(eps[0]);
    sgl_comm_free(eps[1]);
    sgl_comm_threads_abort(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_tcp),
        cmocka_unit_test(test_tcp_group),
        cmocka_unit_test(test_tcp_bcast),
        cmocka_unit_test(test_tcp_strangers),
        cmocka_unit_test(test_tcp_errors),
        cmocka_unit_test(test_tcp_peer_dies),
        cmocka_unit_test(test_threads_abort_timeout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

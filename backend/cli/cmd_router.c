/* cmd_router.c -- `sglc router` and `sglc serve --dp N` (backend/router/router.h).
 *
 *   sglc router --worker URL [--worker URL ...] [--host 127.0.0.1] [--port 30000]
 *               [--policy cache_aware|round_robin|shortest_queue|random]
 *               [--cache-threshold 0.5] [--balance-abs 32] [--balance-rel 1.5]
 *               [--tree-max-chars N] [--api-key KEY] [--port-file FILE] ...
 *
 *   sglc serve --dp N [--router-policy P] [--dp-timeout S] SERVE-OPTIONS...
 *       N replicas of `sglc serve SERVE-OPTIONS` (each on a free loopback
 *       port; with --device cuda|auto replica i sees devices i*tp .. i*tp+tp-1 of
 *       CUDA_VISIBLE_DEVICES (or of 0, 1, ... when it is unset))
 *       behind the router, in this process, on --host/--port. The replicas
 *       die with this process (PR_SET_PDEATHSIG) and get its SIGTERM/SIGINT;
 *       startup fails with the replica's exit status, or after --dp-timeout
 *       seconds (default 600), if one does not come up (listening, then
 *       answering the router's first /health probe).
 * Exit: 0 after a clean shutdown, 1 failure (listen, a replica), 2 usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backend/cli/cli.h"
#include "backend/router/router.h"

#define MAX_WORKERS 64

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static void install_signals(void)
{
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

#define ROUTER_HELP                                                                        \
    "  --policy P                cache_aware (default), round_robin, shortest_queue, random\n" \
    "  --cache-threshold F       cache_aware: matched/len needed to follow the cache (0.5)\n" \
    "  --balance-abs N           cache_aware: load imbalance when max-min in flight > N (32)\n" \
    "  --balance-rel F           ... and max > F x min (1.5)\n"                            \
    "  --tree-max-chars N        bytes kept per worker's prefix tree (default 8 MiB)\n"    \
    "  --health-interval S       seconds between /health probes of each worker (1)\n"      \
    "  --request-timeout S       longest proxied request (600)\n"

static void help(FILE *f)
{
    fprintf(f, "usage: sglc router --worker URL [--worker URL ...] [options]\n\n"
               "Serves `sglc serve`'s HTTP API in front of several workers, sending each\n"
               "generation request to one of them (cache-aware by default).\n\n"
               "  --worker URL              a worker's base URL, http://HOST:PORT (repeat)\n"
               "  --host ADDR               numeric address (or localhost) to bind (127.0.0.1)\n"
               "  --port N                  TCP port (default 30000; 0 = any free port)\n"
               "  --port-file FILE          write the bound port to FILE once listening\n"
               "  --api-key KEY             require 'Authorization: Bearer KEY' (forwarded)\n"
               "  --max-body-bytes N        largest request body (default 8 MiB)\n" ROUTER_HELP);
}

/* The router flags shared by `sglc router` and `sglc serve --dp` (policy
 * and its knobs); false when the word is none of them. */
static bool router_arg(SglArgs *a, RouterOpts *o, const char *policy_flag, bool *bad_policy)
{
    const char *p = NULL;
    long n = 0;
    if (args_str(a, policy_flag, &p)) {
        if (!a->bad && !rt_policy_parse(p, &o->bal.policy)) {
            args_usage_error(a, "%s must be one of %s, got '%s'", policy_flag, rt_policy_list(), p);
            *bad_policy = true;
        }
        return true;
    }
    if (args_double(a, "--cache-threshold", 0.0, 1.0, &o->bal.cache_threshold) ||
        args_double(a, "--balance-rel", 1.0, 1e9, &o->bal.balance_rel) ||
        args_double(a, "--health-interval", 0.05, 3600, &o->health_interval_s) ||
        args_double(a, "--request-timeout", 0.1, 1e7, &o->request_timeout_s))
        return true;
    if (args_long(a, "--balance-abs", 0, 1 << 30, &n)) {
        o->bal.balance_abs = (int32_t)n;
        return true;
    }
    if (args_long(a, "--tree-max-chars", 0, 1L << 40, &n)) {
        o->bal.tree_max_bytes = (size_t)n;
        return true;
    }
    return false;
}

static void router_defaults(RouterOpts *o)
{
    *o = (RouterOpts){.host = "127.0.0.1", .port = 30000};
    o->bal = (RtBalancerOpts){.policy = RT_CACHE_AWARE, .cache_threshold = 0.5, .balance_abs = 32,
                              .balance_rel = 1.5, .tree_max_bytes = 8u << 20,
                              .seed = (uint64_t)time(NULL)};
}

static bool write_port(const char *path, int port)
{
    FILE *f = fopen(path, "w");
    bool ok = f && fprintf(f, "%d\n", port) > 0;
    if (f && fclose(f) != 0)
        ok = false;
    return ok;
}

/* Listens, serves until SIGINT/SIGTERM. 0 or 1. all_healthy: fail unless
 * every worker answered the router's first /health probe. */
static int run_router(const char *who, RouterOpts *o, const char *port_file, bool all_healthy)
{
    Router *r = NULL;
    char msg[512];
    if (!router_start(o, &r, msg, sizeof msg)) {
        fprintf(stderr, "sglc %s: %s\n", who, msg);
        return 1;
    }
    int rc = 0;
    if (all_healthy && router_healthy_count(r) < o->n_workers) {
        fprintf(stderr, "sglc %s: %d of %d replicas do not answer /health\n", who,
                (int)(o->n_workers - router_healthy_count(r)), (int)o->n_workers);
        g_stop = 1;
        rc = 1;
    } else if (port_file && !write_port(port_file, router_port(r))) {
        fprintf(stderr, "sglc %s: --port-file: cannot write '%s'\n", who, port_file);
        g_stop = 1;
        rc = 1;
    }
    fprintf(stderr, "sglc %s: listening on http://%s%s%s:%d (%d workers, %d healthy, policy %s)\n",
            who, strchr(o->host, ':') ? "[" : "", o->host, strchr(o->host, ':') ? "]" : "",
            router_port(r), (int)o->n_workers, (int)router_healthy_count(r),
            rt_policy_name(o->bal.policy));
    router_run_until(r, &g_stop);
    return rc;
}

int cmd_router(int argc, char **argv)
{
    if (args_wants_help(argc, argv)) {
        help(stdout);
        return 0;
    }
    SglArgs a;
    RouterOpts o;
    router_defaults(&o);
    const char *workers[MAX_WORKERS], *port_file = NULL, *w = NULL;
    int32_t n_workers = 0;
    long port = o.port, max_body = 0;
    bool bad_policy = false;
    args_init(&a, argc, argv);
    while (args_more(&a)) {
        if (args_str(&a, "--worker", &w)) {
            if (a.bad)
                break;
            if (n_workers == MAX_WORKERS)
                return args_usage_error(&a, "at most %d --worker URLs", MAX_WORKERS);
            if (strncmp(w, "http://", 7) != 0 || !w[7])
                return args_usage_error(&a, "--worker must be http://HOST:PORT, got '%s'", w);
            workers[n_workers++] = w;
        } else if (args_str(&a, "--host", &o.host) || args_str(&a, "--api-key", &o.api_key) ||
                   args_str(&a, "--port-file", &port_file))
            ;
        else if (args_long(&a, "--port", 0, 65535, &port) ||
                 args_long(&a, "--max-body-bytes", 1024, 1L << 30, &max_body) ||
                 router_arg(&a, &o, "--policy", &bad_policy))
            ;
        else
            return args_unknown(&a);
    }
    if (a.bad || bad_policy)
        return 2;
    if (n_workers == 0)
        return args_usage_error(&a, "at least one --worker URL is needed");
    o.workers = workers;
    o.n_workers = n_workers;
    o.port = (int)port;
    o.max_body_bytes = (size_t)max_body;
    install_signals();
    int rc = run_router("router", &o, port_file, false);
    fprintf(stderr, "sglc router: stopped\n");
    return rc;
}

/* ---- sglc serve --dp N ---- */

typedef struct {
    pid_t pid;
    char port_file[256];
    char url[64];
    int status;                    /* wait status once reaped */
    bool reaped;
} Replica;

/* Starts replica i: argv is `sglc serve ...` ending in the per-replica
 * --port-file; gpus (NULL: inherit) becomes its CUDA_VISIBLE_DEVICES. The
 * child dies with us (PR_SET_PDEATHSIG). -1: fork failed. */
static pid_t spawn(char **argv, int i, const char *gpus)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent)
        _exit(1);
    if (gpus)
        setenv("CUDA_VISIBLE_DEVICES", gpus, 1);
    execv("/proc/self/exe", argv);
    fprintf(stderr, "sglc serve --dp: cannot start replica %d: %s\n", i, strerror(errno));
    _exit(127);
}

/* Replica i's devices: entries [i*tp, (i+1)*tp) of the inherited
 * CUDA_VISIBLE_DEVICES list (or of 0, 1, 2, ... when unset), comma-separated
 * into out. false when the list is too short. */
static bool replica_gpus(int i, int tp, char *out, size_t cap)
{
    const char *vis = getenv("CUDA_VISIBLE_DEVICES");
    size_t n = 0;
    out[0] = '\0';
    for (int k = i * tp; k < (i + 1) * tp; k++) {
        char one[64];
        if (vis && *vis) {
            const char *p = vis;
            for (int j = 0; j < k && p; j++)
                if ((p = strchr(p, ',')))
                    p++;
            if (!p || !*p)
                return false;
            size_t len = strcspn(p, ",");
            if (len == 0 || len >= sizeof one)
                return false;
            memcpy(one, p, len);
            one[len] = '\0';
        } else {
            snprintf(one, sizeof one, "%d", k);
        }
        int w = snprintf(out + n, cap - n, "%s%s", n ? "," : "", one);
        if (w < 0 || (size_t)w >= cap - n)
            return false;
        n += (size_t)w;
    }
    return true;
}

static void describe_exit(int status, char *out, size_t cap)
{
    if (WIFEXITED(status))
        snprintf(out, cap, "exit status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(out, cap, "killed by signal %d", WTERMSIG(status));
    else
        snprintf(out, cap, "wait status %d", status);
}

/* SIGTERM to every live replica, then wait up to 30 s before SIGKILL.
 * true when every replica exited 0 after the SIGTERM. */
static bool stop_replicas(Replica *rs, int n)
{
    for (int i = 0; i < n; i++)
        if (rs[i].pid > 0 && !rs[i].reaped)
            kill(rs[i].pid, SIGTERM);
    bool clean = true;
    for (int i = 0; i < n; i++) {
        if (rs[i].pid <= 0 || rs[i].reaped)
            continue;
        for (int t = 0; t < 300 && !rs[i].reaped; t++) {
            if (waitpid(rs[i].pid, &rs[i].status, WNOHANG) == rs[i].pid)
                rs[i].reaped = true;
            else
                usleep(100 * 1000);
        }
        if (!rs[i].reaped) {
            fprintf(stderr, "sglc serve --dp: replica %d (pid %d) ignored SIGTERM for 30 s; killing it\n",
                    i, (int)rs[i].pid);
            kill(rs[i].pid, SIGKILL);
            waitpid(rs[i].pid, &rs[i].status, 0);
            rs[i].reaped = true;
            clean = false;
        } else if (!WIFEXITED(rs[i].status) || WEXITSTATUS(rs[i].status) != 0) {
            char why[64];
            describe_exit(rs[i].status, why, sizeof why);
            fprintf(stderr, "sglc serve --dp: replica %d ended with %s\n", i, why);
            clean = false;
        }
    }
    return clean;
}

/* Waits until every replica wrote its port file (it writes it once its
 * engine is loaded and it listens). false with a message when one exits,
 * the timeout passes or a signal arrives. */
static bool wait_replicas(Replica *rs, int n, double timeout_s)
{
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        int ready = 0;
        for (int i = 0; i < n; i++) {
            if (!rs[i].url[0]) {
                FILE *f = fopen(rs[i].port_file, "r");
                int port = 0;
                if (f && fscanf(f, "%d", &port) == 1 && port > 0)
                    snprintf(rs[i].url, sizeof rs[i].url, "http://127.0.0.1:%d", port);
                if (f)
                    fclose(f);
            }
            if (rs[i].url[0]) {
                ready++;
                continue;
            }
            if (waitpid(rs[i].pid, &rs[i].status, WNOHANG) == rs[i].pid) {
                rs[i].reaped = true;
                char why[64];
                describe_exit(rs[i].status, why, sizeof why);
                fprintf(stderr, "sglc serve --dp: replica %d exited during startup (%s)\n", i, why);
                return false;
            }
        }
        if (ready == n)
            return true;
        if (g_stop) {
            fprintf(stderr, "sglc serve --dp: interrupted during startup\n");
            return false;
        }
        clock_gettime(CLOCK_MONOTONIC, &t);
        if ((double)(t.tv_sec - t0.tv_sec) + (double)(t.tv_nsec - t0.tv_nsec) * 1e-9 > timeout_s) {
            fprintf(stderr, "sglc serve --dp: %d of %d replicas not listening after %.0f s "
                            "(--dp-timeout)\n", n - ready, n, timeout_s);
            return false;
        }
        usleep(100 * 1000);
    }
}

int cmd_serve_dp(int argc, char **argv)
{
    SglArgs a;
    RouterOpts o;
    router_defaults(&o);
    long dp = 0, tp = 1, port = o.port, max_body = 0;
    double timeout_s = 600;
    const char *port_file = NULL, *device = NULL, *key = NULL;
    bool bad_policy = false;
    /* child argv: sglc serve PASSTHROUGH... --port 0 --port-file F */
    char **cargv = calloc((size_t)argc + 8, sizeof *cargv);
    Replica *rs = NULL;
    char dir[] = "/tmp/sglc-dp-XXXXXX";
    bool have_dir = false;
    int rc = 1, nc = 0;
    if (!cargv) {
        fprintf(stderr, "sglc serve: out of memory\n");
        return 1;
    }
    cargv[nc++] = "sglc";
    cargv[nc++] = "serve";
    args_init(&a, argc, argv);
    while (args_more(&a)) {
        int at = a.i;
        if (args_long(&a, "--dp", 1, MAX_WORKERS, &dp) ||
            args_long(&a, "--port", 0, 65535, &port) || args_str(&a, "--port-file", &port_file) ||
            args_str(&a, "--host", &o.host) || args_double(&a, "--dp-timeout", 1, 1e6, &timeout_s) ||
            router_arg(&a, &o, "--router-policy", &bad_policy))
            ;
        else if (args_str(&a, "--api-key", &key) || args_str(&a, "--device", &device) ||
                 args_long(&a, "--tp", 1, 64, &tp) || args_long(&a, "--tp-size", 1, 64, &tp) ||
                 args_long(&a, "--max-body-bytes", 1024, 1L << 30, &max_body)) {
            for (int k = at; k < a.i; k++)   /* the replicas get these too */
                cargv[nc++] = argv[k];
        } else
            cargv[nc++] = argv[a.i++];
    }
    if (a.bad || bad_policy) {
        rc = 2;
        goto out;
    }
    if (!(rs = calloc((size_t)dp, sizeof *rs)) || !mkdtemp(dir)) {
        fprintf(stderr, "sglc serve --dp: cannot make a temporary directory: %s\n", strerror(errno));
        goto out;
    }
    have_dir = true;
    install_signals();
    bool gpu = device && (strcmp(device, "cuda") == 0 || strcmp(device, "auto") == 0);
    char gpus[512];
    for (int i = 0; gpu && i < dp; i++)
        if (!replica_gpus(i, (int)tp, gpus, sizeof gpus)) {
            fprintf(stderr, "sglc serve --dp: replica %d needs devices %ld..%ld of CUDA_VISIBLE_DEVICES "
                    "(--tp %ld each), which lists fewer\n", i, (long)i * tp, (long)(i + 1) * tp - 1, tp);
            rc = 2;
            goto out;
        }
    cargv[nc++] = "--port";
    cargv[nc++] = "0";
    cargv[nc++] = "--port-file";
    for (int i = 0; i < dp; i++) {
        snprintf(rs[i].port_file, sizeof rs[i].port_file, "%s/replica-%d.port", dir, i);
        cargv[nc] = rs[i].port_file;
        cargv[nc + 1] = NULL;
        if (gpu)
            replica_gpus(i, (int)tp, gpus, sizeof gpus);
        if ((rs[i].pid = spawn(cargv, i, gpu ? gpus : NULL)) < 0) {
            fprintf(stderr, "sglc serve --dp: fork: %s\n", strerror(errno));
            goto stop;
        }
    }
    if (!wait_replicas(rs, (int)dp, timeout_s))
        goto stop;
    const char *urls[MAX_WORKERS];
    for (int i = 0; i < dp; i++) {
        urls[i] = rs[i].url;
        fprintf(stderr, "sglc serve --dp: replica %d (pid %d) on %s\n", i, (int)rs[i].pid, rs[i].url);
    }
    o.workers = urls;
    o.n_workers = (int32_t)dp;
    o.port = (int)port;
    o.api_key = key;
    o.max_body_bytes = (size_t)max_body;
    rc = run_router("serve --dp", &o, port_file, true);
stop:
    if (!stop_replicas(rs, (int)dp) && rc == 0)
        rc = 1;
    fprintf(stderr, "sglc serve --dp: stopped\n");
out:
    if (have_dir) {
        for (int i = 0; rs && i < dp; i++)
            unlink(rs[i].port_file);
        rmdir(dir);
    }
    free(rs);
    free(cargv);
    return rc;
}

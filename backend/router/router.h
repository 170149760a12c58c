/* router.h -- `sglc router`: one HTTP front door to several `sglc serve` workers.
 *
 * The router speaks the same HTTP API as `sglc serve` (SGLang native and
 * OpenAI endpoints, streaming included) and forwards each generation request
 * to one worker chosen by a policy (policy.h; cache_aware by default). It
 * holds no model: /v1/models, /get_model_info and /health_generate come from
 * a healthy worker; /flush_cache and /abort_request go to every worker;
 * /health, /get_server_info and /metrics are the router's own. A worker that
 * fails to answer (connection refused or reset before any byte came back)
 * is marked down and the request is retried once on another; a background
 * probe of each worker's /health marks it up or down again. Streams are
 * passed through event by event as they arrive.
 */
#ifndef SGL_ROUTER_H
#define SGL_ROUTER_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend/router/policy.h"

typedef struct {
    const char *host;              /* numeric address; default "127.0.0.1" */
    int port;                      /* 0: any free port */
    const char *api_key;           /* NULL: none checked (clients' Authorization is
                                    * forwarded to the workers either way) */
    const char *const *workers;    /* (n_workers) base URLs "http://HOST:PORT" */
    int32_t n_workers;
    RtBalancerOpts bal;            /* n_workers is set by the router */
    size_t max_body_bytes;         /* 0: 8 MiB */
    int max_connections;           /* 0: 1024 */
    double health_interval_s;      /* 0: 1 s between probes of each worker */
    double connect_timeout_s;      /* 0: 2 s */
    double request_timeout_s;      /* 0: 600 s for one proxied request */
} RouterOpts;

typedef struct Router Router;

/* Probes every worker once, then listens. The strings in o are borrowed and
 * must outlive the router. false with msg (bad option, bind failure) and
 * *out NULL; unreachable workers are not an error (they start out down). */
bool router_start(const RouterOpts *o, Router **out, char *msg, size_t cap);
int router_port(const Router *r);
/* Number of workers whose last probe answered. */
int32_t router_healthy_count(Router *r);
/* Blocks until *stop becomes non-zero, then stops accepting, cuts the
 * requests in flight (503 or an ended stream), joins every thread and frees
 * the router. */
void router_run_until(Router *r, volatile sig_atomic_t *stop);

#endif

/* server.h -- `sglc serve`: an HTTP front door to one engine.
 *
 * The server speaks SGLang's native API (/generate, /health, /get_model_info,
 * /get_server_info, /flush_cache, /abort_request), OpenAI's (/v1/completions,
 * /v1/chat/completions, /v1/models) and Prometheus text (/metrics). It is a
 * client of runtime/engine.h like any other: each HTTP request becomes one
 * or more engine requests whose events come back through an SglEventQueue.
 * libmicrohttpd runs one thread per connection, so a handler may block on
 * its queue; it polls its socket while it waits, and a client that goes away
 * has its requests aborted (their KV pages are freed by the engine).
 */
#ifndef SGL_SERVER_H
#define SGL_SERVER_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend/chat_template.h"
#include "runtime/engine.h"

typedef struct {
    const char *host;              /* numeric IPv4/IPv6 address; default "127.0.0.1" */
    int port;                      /* 0: any free port (the chosen one is printed) */
    const char *api_key;           /* NULL: no key checked */
    const char *served_model_name; /* default: the model directory's last component */
    const char *model_dir;         /* reported by /get_model_info */
    const ChatTemplate *tmpl;      /* chat template for /v1/chat/completions */
    size_t max_body_bytes;         /* 0: 8 MiB */
    int max_connections;           /* 0: 1024 */
    const char *port_file;         /* non-NULL: the bound port is written there */
} SrvOpts;

typedef struct Srv Srv;

/* Starts listening. engine is borrowed and must outlive the server. false
 * with msg (bind failure, bad host) and *out NULL. */
bool srv_start(const SrvOpts *o, SglEngine *engine, Srv **out, char *msg, size_t cap);
/* The port actually bound. */
int srv_port(const Srv *s);
/* Blocks until *stop becomes non-zero (a signal handler sets it), then stops
 * accepting, aborts every in-flight request, waits for the handlers and
 * frees the server. The engine is left open for the caller to close. */
void srv_run_until(Srv *s, volatile sig_atomic_t *stop);

#endif

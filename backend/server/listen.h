/* listen.h -- what both HTTP front ends (`sglc serve`, `sglc router`) share:
 * the libmicrohttpd daemon (a thread per connection, a numeric IPv4 or IPv6
 * host, port 0 for any free port, 600 s connection timeout, backlog 1024)
 * and the API-key check. */
#ifndef SGL_SERVER_LISTEN_H
#define SGL_SERVER_LISTEN_H

#include <stdbool.h>
#include <stddef.h>
#include <microhttpd.h>

/* Starts listening. On success returns the daemon (owned by the caller:
 * MHD_stop_daemon) and sets *bound_port to the port it got; on failure
 * returns NULL with one line in msg naming the host or the address. */
struct MHD_Daemon *http_listen(const char *host, int port, int max_connections,
                               MHD_AccessHandlerCallback on_access, void *access_cls,
                               MHD_RequestCompletedCallback on_completed, void *completed_cls,
                               int *bound_port, char *msg, size_t cap);

/* Whether a request may proceed: no api_key is set, it is the /health probe,
 * or its "Authorization: Bearer KEY" matches (constant time: the time
 * depends only on the lengths). */
bool http_authorized(struct MHD_Connection *conn, const char *url, const char *api_key);

#endif

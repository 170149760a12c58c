/* listen.h -- the libmicrohttpd daemon of both HTTP front ends (`sglc serve`,
 * `sglc router`): a thread per connection, a numeric IPv4 or IPv6 host,
 * port 0 for any free port, 600 s connection timeout, backlog 1024. */
#ifndef SGL_SERVER_LISTEN_H
#define SGL_SERVER_LISTEN_H

#include <stddef.h>
#include <microhttpd.h>

/* Starts listening. On success returns the daemon (owned by the caller:
 * MHD_stop_daemon) and sets *bound_port to the port it got; on failure
 * returns NULL with one line in msg naming the host or the address. */
struct MHD_Daemon *http_listen(const char *host, int port, int max_connections,
                               MHD_AccessHandlerCallback on_access, void *access_cls,
                               MHD_RequestCompletedCallback on_completed, void *completed_cls,
                               int *bound_port, char *msg, size_t cap);

#endif

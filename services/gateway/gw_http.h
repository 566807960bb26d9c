/* Starting and stopping the HTTP server (libmicrohttpd, a thread per
 * connection, at most LEVEE_HTTP_MAX_CONNECTIONS at once). */
#ifndef GW_HTTP_H
#define GW_HTTP_H

#include <sys/socket.h>

#include "gw.h"

#define GW_IDLE_TIMEOUT_S 30 /* a connection silent this long is closed */
/* libmicrohttpd's memory per connection, which bounds the request head it
 * reads. It is far above GW_URI_MAX and GW_HEADERS_MAX, so that an
 * oversized head reaches our handler and gets our JSON 414 or 431 instead
 * of libmicrohttpd's own page. The pool is mapped lazily: an ordinary
 * request touches a few pages of it. */
#define GW_CONN_MEMORY (1u << 20)

/* The daemon, or NULL when it could not listen. */
void *gw_http_start(gw_t *gw, const struct sockaddr *addr);
void gw_http_stop(void *daemon);

#endif

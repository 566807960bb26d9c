/* Starting and stopping the HTTP server (libmicrohttpd, a thread per
 * connection, at most LEVEE_HTTP_MAX_CONNECTIONS at once). */
#ifndef GW_HTTP_H
#define GW_HTTP_H

#include <sys/socket.h>

#include "gw.h"

#define GW_IDLE_TIMEOUT_S 30 /* a connection silent this long is closed */

/* The daemon, or NULL when it could not listen. */
void *gw_http_start(gw_t *gw, const struct sockaddr *addr);
void gw_http_stop(void *daemon);

#endif

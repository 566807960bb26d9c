/* The sender: delivers notify_delivery rows over webhooks (HTTP POST of a
 * signed JSON body, the way SMS gateways are driven) and e-mail (SMTP), with
 * libcurl's multi interface so the service's loop never waits on the
 * network.
 *
 * A scan claims due rows (status pending, next_attempt_ms <= now) within the
 * in-flight bound and each channel's rate (a sliding one-second window in
 * Redis, shared by all notify processes; a row over the rate waits), and in the same statement counts
 * the attempt and pushes next_attempt_ms past the request's timeout: a
 * lease, so a row whose sender was killed is tried again later, never by two
 * senders at once. When the attempt ends the row becomes sent, or pending
 * again after an exponential backoff, or dead with the reason once the
 * receiver refused it for good or the attempts ran out. A receiver may see a
 * delivery twice (killed between its answer and our commit); the
 * X-Levee-Delivery id, the same on every attempt, lets it drop the repeat. */
#ifndef NTF_SEND_H
#define NTF_SEND_H

#include <libpq-fe.h>
#include <stdbool.h>

#include "ntf_config.h"

typedef struct ntf_sender ntf_sender_t;

/* Each channel's rate is kept in a window in Redis (redis_host:redis_port)
 * shared by every notify process, so several together keep to it. */
ntf_sender_t *ntf_sender_new(const char *redis_host, int redis_port);
void ntf_sender_destroy(ntf_sender_t **self_p);

/* New rows were committed: scan at the next run instead of the next due time. */
void ntf_sender_kick(ntf_sender_t *self);

/* Secrets are read again (env or file) before the next request (SIGHUP). */
void ntf_sender_forget_secrets(ntf_sender_t *self);

/* Records finished attempts, then starts due ones. Returns how many ms the
 * caller may sleep before the next run. */
int ntf_sender_run(ntf_sender_t *self, PGconn *pg, const ntf_delivery_cfg_t *cfg);

typedef enum {
    NTF_SENT,    /* accepted by the receiver */
    NTF_RETRY,   /* worth another attempt: network trouble, 5xx, 408, 429, SMTP 4xx */
    NTF_REFUSED, /* the receiver said no for good: other 3xx/4xx, SMTP 5xx */
} ntf_outcome_t;

/* How an attempt ended, from curl's result code and the HTTP status or the
 * SMTP reply code (0 when none came). */
ntf_outcome_t ntf_outcome(bool email, int curl_code, long response_code);

#endif

/* The one main loop every service runs: config, Postgres, an optional
 * consumer socket, an outbox relay, a periodic tick, clean stop on SIGTERM. */
#ifndef LV_SERVICE_H
#define LV_SERVICE_H

#include <libpq-fe.h>
#include <stdbool.h>

#include "lv_bus.h"
#include "lv_cfg.h"
#include "lv_policy.h"

typedef struct lv_service lv_service_t;

typedef struct {
    const char *name;           /* "matching": log name, consumer and producer id */
    const char *bind_endpoint;  /* consumer ROUTER endpoint, or NULL */
    lv_handler_fn handler;
    void *ctx;
    /* Called every loop turn; returns how many ms it may sleep (0 = more work now). */
    int (*tick)(void *ctx, lv_service_t *svc);
    /* Its statements are many and small: prepare them once per session
     * (lv_pg_prepare_statements). */
    bool prepare;
    /* A Postgres notification channel (LISTEN) that wakes the loop at once
     * instead of at the next turn's timeout: ingest's queued imports. */
    const char *listen;
} lv_service_opts_t;

/* Loads config and policy, connects, binds. NULL on failure (logged). */
lv_service_t *lv_service_new(const lv_service_opts_t *opts);
void lv_service_destroy(lv_service_t **self_p);

int lv_service_add_dest(lv_service_t *self, const char *dest, const char *endpoint);
/* Runs until SIGTERM or SIGINT. SIGHUP reloads the policy file. */
int lv_service_run(lv_service_t *self);

PGconn *lv_service_pg(lv_service_t *self);
const lv_cfg_t *lv_service_cfg(const lv_service_t *self);
const lv_policy_t *lv_service_policy(const lv_service_t *self);
lv_relay_t *lv_service_relay(lv_service_t *self);
bool lv_service_stopping(void);

#endif

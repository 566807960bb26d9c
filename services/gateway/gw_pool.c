/* A fixed set of Postgres connections shared by the request threads. A
 * request borrows one for its whole life; a broken one is reset when it is
 * next lent. Queries are bounded by a statement timeout. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gw.h"
#include "lv_log.h"

#define STATEMENT_TIMEOUT "SET statement_timeout = 15000"

struct gw_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char conninfo[512];
    int size;
    PGconn **conns; /* NULL: not connected yet */
    bool *busy;
};

gw_pool_t *gw_pool_new(const char *conninfo, int size)
{
    gw_pool_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->conns = calloc((size_t)size, sizeof *self->conns);
    self->busy = calloc((size_t)size, sizeof *self->busy);
    if (!self->conns || !self->busy) {
        free(self->conns);
        free(self->busy);
        free(self);
        return NULL;
    }
    pthread_mutex_init(&self->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&self->cv, &ca);
    pthread_condattr_destroy(&ca);
    snprintf(self->conninfo, sizeof self->conninfo, "%s", conninfo);
    self->size = size;
    return self;
}

void gw_pool_destroy(gw_pool_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    gw_pool_t *self = *self_p;
    for (int i = 0; i < self->size; i++)
        if (self->conns[i])
            PQfinish(self->conns[i]);
    pthread_mutex_destroy(&self->mu);
    pthread_cond_destroy(&self->cv);
    free(self->conns);
    free(self->busy);
    free(self);
    *self_p = NULL;
}

/* Connects or repairs a lent connection, outside the lock. */
static PGconn *ready(gw_pool_t *self, PGconn *pg)
{
    if (pg && PQstatus(pg) == CONNECTION_OK)
        return pg;
    if (pg)
        PQreset(pg);
    else {
        const char *const keys[] = {"connect_timeout", "application_name", "dbname", NULL};
        const char *const vals[] = {"5", "levee-gateway", self->conninfo, NULL};
        pg = PQconnectdbParams(keys, vals, 1);
    }
    if (pg && PQstatus(pg) == CONNECTION_OK) {
        PQclear(PQexec(pg, "SET client_min_messages = warning"));
        PQclear(PQexec(pg, STATEMENT_TIMEOUT));
    } else if (pg) {
        lv_warn("postgres connect failed: %s", PQerrorMessage(pg));
    }
    return pg;
}

static void release(gw_pool_t *self, int slot)
{
    pthread_mutex_lock(&self->mu);
    PGconn *pg = self->conns[slot];
    /* A request that left a transaction open (it failed midway) must not
     * hand it to the next one. */
    if (pg && PQtransactionStatus(pg) != PQTRANS_IDLE) {
        PQfinish(pg);
        self->conns[slot] = NULL;
    }
    self->busy[slot] = false;
    pthread_cond_signal(&self->cv);
    pthread_mutex_unlock(&self->mu);
}

PGconn *gw_pool_get(gw_pool_t *self, int wait_ms)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += wait_ms / 1000;
    until.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    int slot = -1;
    pthread_mutex_lock(&self->mu);
    for (;;) {
        for (int i = 0; i < self->size && slot < 0; i++)
            if (!self->busy[i])
                slot = i;
        if (slot >= 0 || pthread_cond_timedwait(&self->cv, &self->mu, &until) == ETIMEDOUT)
            break;
    }
    if (slot >= 0)
        self->busy[slot] = true;
    PGconn *pg = slot >= 0 ? self->conns[slot] : NULL;
    pthread_mutex_unlock(&self->mu);
    if (slot < 0)
        return NULL;
    pg = ready(self, pg);
    pthread_mutex_lock(&self->mu);
    self->conns[slot] = pg;
    pthread_mutex_unlock(&self->mu);
    if (pg && PQstatus(pg) == CONNECTION_OK)
        return pg;
    release(self, slot);
    return NULL;
}

void gw_pool_put(gw_pool_t *self, PGconn *pg)
{
    int slot = -1;
    pthread_mutex_lock(&self->mu);
    for (int i = 0; i < self->size && slot < 0; i++)
        if (self->busy[i] && self->conns[i] == pg)
            slot = i;
    pthread_mutex_unlock(&self->mu);
    if (slot >= 0)
        release(self, slot);
}

/* Request metrics in the Prometheus text format: requests by route template
 * and status, a latency histogram per route, requests in flight. Routes are
 * labelled by their template, never by the raw path, so the label set stays
 * bounded whatever callers send. Lock-free counters. */
#define _POSIX_C_SOURCE 200809L
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw.h"

static const int s_statuses[] = {200, 201, 202, 304, 400, 401, 403, 404, 405, 409, 413, 500, 503, 504};
#define NSTATUS (sizeof s_statuses / sizeof s_statuses[0])
#define STATUS_OTHER NSTATUS /* one more slot for any other code */

/* Upper bounds of the latency buckets, in microseconds (+Inf is the count). */
static const int64_t s_bounds_us[] = {1000,   5000,   10000,   25000,   50000,  100000,
                                      250000, 500000, 1000000, 2500000, 5000000, 10000000};
#define NBUCKETS (sizeof s_bounds_us / sizeof s_bounds_us[0])

typedef struct {
    atomic_ullong by_status[NSTATUS + 1];
    atomic_ullong buckets[NBUCKETS];
    atomic_ullong count;
    atomic_ullong sum_us;
} route_stats_t;

struct gw_metrics {
    size_t nroutes; /* the last slot is for requests no route matched */
    route_stats_t *routes;
    atomic_llong in_flight;
};

gw_metrics_t *gw_metrics_new(size_t nroutes)
{
    gw_metrics_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->nroutes = nroutes;
    self->routes = calloc(nroutes + 1, sizeof *self->routes);
    if (!self->routes) {
        free(self);
        return NULL;
    }
    return self;
}

void gw_metrics_destroy(gw_metrics_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->routes);
    free(*self_p);
    *self_p = NULL;
}

void gw_metrics_begin(gw_metrics_t *self)
{
    atomic_fetch_add(&self->in_flight, 1);
}

void gw_metrics_end(gw_metrics_t *self, int route, int status, int64_t micros)
{
    atomic_fetch_sub(&self->in_flight, 1);
    route_stats_t *rs = &self->routes[route >= 0 && (size_t)route < self->nroutes ? (size_t)route
                                                                                  : self->nroutes];
    size_t s = STATUS_OTHER;
    for (size_t i = 0; i < NSTATUS; i++)
        if (s_statuses[i] == status)
            s = i;
    atomic_fetch_add(&rs->by_status[s], 1);
    for (size_t b = 0; b < NBUCKETS; b++)
        if (micros <= s_bounds_us[b])
            atomic_fetch_add(&rs->buckets[b], 1);
    atomic_fetch_add(&rs->count, 1);
    atomic_fetch_add(&rs->sum_us, (unsigned long long)(micros > 0 ? micros : 0));
}

static void labels(lv_buf_t *b, size_t i, size_t nroutes)
{
    if (i < nroutes)
        lv_buf_printf(b, "route=\"%s\",method=\"%s\"", gw_routes[i].path, gw_routes[i].method);
    else
        lv_buf_puts(b, "route=\"unmatched\",method=\"\"");
}

char *gw_metrics_render(gw_metrics_t *self, size_t *len)
{
    lv_buf_t b;
    lv_buf_init(&b, 4 << 20);
    lv_buf_puts(&b, "# HELP levee_http_requests_total HTTP requests by route and status.\n"
                    "# TYPE levee_http_requests_total counter\n");
    for (size_t i = 0; i <= self->nroutes; i++)
        for (size_t s = 0; s <= NSTATUS; s++) {
            unsigned long long n = atomic_load(&self->routes[i].by_status[s]);
            if (!n)
                continue;
            lv_buf_puts(&b, "levee_http_requests_total{");
            labels(&b, i, self->nroutes);
            if (s < NSTATUS)
                lv_buf_printf(&b, ",status=\"%d\"} %llu\n", s_statuses[s], n);
            else
                lv_buf_printf(&b, ",status=\"other\"} %llu\n", n);
        }
    lv_buf_puts(&b, "# HELP levee_http_request_duration_seconds Time from request to response.\n"
                    "# TYPE levee_http_request_duration_seconds histogram\n");
    for (size_t i = 0; i <= self->nroutes; i++) {
        route_stats_t *rs = &self->routes[i];
        unsigned long long count = atomic_load(&rs->count);
        if (!count)
            continue;
        for (size_t k = 0; k < NBUCKETS; k++) {
            lv_buf_puts(&b, "levee_http_request_duration_seconds_bucket{");
            labels(&b, i, self->nroutes);
            lv_buf_printf(&b, ",le=\"%g\"} %llu\n", (double)s_bounds_us[k] / 1e6,
                          atomic_load(&rs->buckets[k]));
        }
        lv_buf_puts(&b, "levee_http_request_duration_seconds_bucket{");
        labels(&b, i, self->nroutes);
        lv_buf_printf(&b, ",le=\"+Inf\"} %llu\n", count);
        lv_buf_puts(&b, "levee_http_request_duration_seconds_sum{");
        labels(&b, i, self->nroutes);
        lv_buf_printf(&b, "} %.6f\n", (double)atomic_load(&rs->sum_us) / 1e6);
        lv_buf_puts(&b, "levee_http_request_duration_seconds_count{");
        labels(&b, i, self->nroutes);
        lv_buf_printf(&b, "} %llu\n", count);
    }
    lv_buf_printf(&b,
                  "# HELP levee_http_requests_in_flight Requests being served.\n"
                  "# TYPE levee_http_requests_in_flight gauge\n"
                  "levee_http_requests_in_flight %lld\n",
                  (long long)atomic_load(&self->in_flight));
    if (b.failed) {
        lv_buf_free(&b);
        return NULL;
    }
    *len = b.len;
    return b.s; /* the buffer's storage becomes the caller's */
}

/* The gateway's request metrics, kept in common/lv_metrics like every other
 * service's: requests by route and status, a latency histogram per route,
 * requests in flight. Routes are labelled by their template, never by the
 * raw path, and statuses outside a fixed list count as "other", so the
 * series stay bounded whatever callers send. A series is looked up in the
 * registry once and then kept here, so a request costs atomics only. */
#define _POSIX_C_SOURCE 200809L
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "gw.h"
#include "lv_metrics.h"

static const int s_statuses[] = {200, 201, 202, 304, 400, 401, 403, 404, 405,
                                 409, 413, 414, 431, 500, 503, 504};
#define NSTATUS (sizeof s_statuses / sizeof s_statuses[0])
#define STATUS_OTHER NSTATUS /* one more slot for any other code */

#define REQUESTS "levee_http_requests_total"
#define REQUESTS_HELP "HTTP requests by route and status."
#define DURATION "levee_http_request_duration_seconds"
#define DURATION_HELP "Time from request to response."

typedef struct {
    _Atomic(lv_metric_t *) by_status[NSTATUS + 1];
    _Atomic(lv_metric_t *) duration;
} route_series_t;

struct gw_metrics {
    size_t nroutes; /* the last slot is for requests no route matched */
    route_series_t *routes;
    lv_metric_t *in_flight;
};

gw_metrics_t *gw_metrics_new(size_t nroutes)
{
    gw_metrics_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->nroutes = nroutes;
    self->routes = calloc(nroutes + 1, sizeof *self->routes);
    self->in_flight = lv_gauge("levee_http_requests_in_flight", "Requests being served.", NULL);
    if (!self->routes || !self->in_flight) {
        gw_metrics_destroy(&self);
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
    lv_metric_gauge_add(self->in_flight, 1);
}

static void route_labels(char *out, size_t n, size_t route, size_t nroutes)
{
    if (route < nroutes)
        snprintf(out, n, "route=\"%s\",method=\"%s\"", gw_routes[route].path,
                 gw_routes[route].method);
    else
        snprintf(out, n, "route=\"unmatched\",method=\"\"");
}

/* The series in a slot, found or created in the registry on first use. Two
 * threads may both look it up; the registry gives both the same series. */
static lv_metric_t *series(_Atomic(lv_metric_t *) *slot, size_t route, size_t nroutes,
                           size_t status)
{
    lv_metric_t *m = atomic_load_explicit(slot, memory_order_acquire);
    if (m)
        return m;
    char labels[224];
    route_labels(labels, sizeof labels, route, nroutes);
    if (status == (size_t)-1) {
        m = lv_histogram(DURATION, DURATION_HELP, labels, NULL, 0);
    } else {
        char with[256];
        if (status < NSTATUS)
            snprintf(with, sizeof with, "%s,status=\"%d\"", labels, s_statuses[status]);
        else
            snprintf(with, sizeof with, "%s,status=\"other\"", labels);
        m = lv_counter(REQUESTS, REQUESTS_HELP, with);
    }
    atomic_store_explicit(slot, m, memory_order_release);
    return m;
}

void gw_metrics_end(gw_metrics_t *self, int route, int status, int64_t micros)
{
    lv_metric_gauge_add(self->in_flight, -1);
    size_t ri = route >= 0 && (size_t)route < self->nroutes ? (size_t)route : self->nroutes;
    route_series_t *rs = &self->routes[ri];
    size_t s = STATUS_OTHER;
    for (size_t i = 0; i < NSTATUS; i++)
        if (s_statuses[i] == status)
            s = i;
    lv_metric_add(series(&rs->by_status[s], ri, self->nroutes, s), 1);
    lv_metric_observe(series(&rs->duration, ri, self->nroutes, (size_t)-1),
                      (double)(micros > 0 ? micros : 0) / 1e6);
}

/* Metrics in the Prometheus text format, and the small HTTP endpoint every
 * service serves them on (GET /metrics, GET /healthz).
 *
 * A metric is a name plus a fixed label set ("service=\"matching\",type=\"x\"")
 * and is found or created once, then updated with atomics: the service loop
 * writes, the HTTP thread reads, no lock on the hot path. The registry only
 * grows (a bounded number of series); creating a series takes a mutex. */
#ifndef LV_METRICS_H
#define LV_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lv_buf.h"

#define LV_METRICS_MAX_SERIES 512
#define LV_METRICS_MAX_BUCKETS 16

typedef enum { LV_COUNTER, LV_GAUGE, LV_HISTOGRAM } lv_metric_kind_t;

typedef struct lv_metric lv_metric_t;

/* Finds or creates a series. labels may be NULL or "" for none; name and
 * labels must be valid Prometheus syntax (checked: NULL on a bad name, a
 * kind clash with an existing series of the name, or a full registry).
 * Histogram bounds are upper bounds in seconds, ascending; NULL means the
 * default latency buckets (1 ms .. 60 s). */
lv_metric_t *lv_counter(const char *name, const char *help, const char *labels);
lv_metric_t *lv_gauge(const char *name, const char *help, const char *labels);
lv_metric_t *lv_histogram(const char *name, const char *help, const char *labels,
                          const double *bounds, int nbounds);

/* Updates; all accept NULL (a series that could not be created) and do nothing. */
void lv_metric_add(lv_metric_t *m, uint64_t n);       /* counter */
void lv_metric_set(lv_metric_t *m, int64_t v);        /* gauge */
/* Moves a gauge up or down, for a level several threads change at once
 * (requests in flight): a set from each would lose the others' steps. */
void lv_metric_gauge_add(lv_metric_t *m, int64_t delta);
void lv_metric_observe(lv_metric_t *m, double seconds); /* histogram */

/* Appends every series in the text exposition format (version 0.0.4):
 * one HELP and TYPE per name, histograms as cumulative _bucket{le=...},
 * _sum and _count. */
void lv_metrics_render(lv_buf_t *out);

/* Forgets every series (for tests). */
void lv_metrics_reset(void);

/* What /healthz answers: fill detail (JSON object text) and return true when healthy. */
typedef bool (*lv_health_fn)(void *ctx, char *detail, size_t n);

typedef struct lv_metrics_server lv_metrics_server_t;

/* Serves GET /metrics and GET /healthz on 127.0.0.1:port (or the address in
 * bind_addr) from a thread of its own. NULL (logged) when it cannot listen. */
lv_metrics_server_t *lv_metrics_serve(const char *bind_addr, int port, lv_health_fn health,
                                      void *ctx);
void lv_metrics_server_stop(lv_metrics_server_t **self_p);

#endif

#define _POSIX_C_SOURCE 200809L
#include "lv_metrics.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "lv_log.h"

struct lv_metric {
    char name[96];
    char labels[256];
    char help[160];
    lv_metric_kind_t kind;
    _Atomic uint64_t count;  /* counter value; histogram observations */
    _Atomic int64_t gauge;
    _Atomic uint64_t sum_bits; /* histogram: the sum of observations, a double's bits */
    double bounds[LV_METRICS_MAX_BUCKETS];
    int nbounds;
    _Atomic uint64_t buckets[LV_METRICS_MAX_BUCKETS]; /* per bucket, not cumulative */
};

static lv_metric_t s_series[LV_METRICS_MAX_SERIES];
static _Atomic int s_nseries;
static pthread_mutex_t s_create = PTHREAD_MUTEX_INITIALIZER;

static const double DEFAULT_BOUNDS[] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                        0.5,   1,     2.5,  5,     10,   30,  60};

static bool name_ok(const char *s)
{
    if (!s || !*s || strlen(s) >= sizeof s_series[0].name)
        return false;
    for (const char *p = s; *p; p++) {
        bool alpha = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' || *p == ':';
        if (!alpha && !(p > s && *p >= '0' && *p <= '9'))
            return false;
    }
    return true;
}

/* Label text is written by code, not users; this guards the format only:
 * braces and newlines may not stand outside a quoted value (a route
 * template such as "/cases/{case_id}" is a fine value), quotes must pair. */
static bool labels_ok(const char *s)
{
    if (strlen(s) >= sizeof s_series[0].labels)
        return false;
    bool quoted = false;
    for (const char *p = s; *p; p++) {
        if (*p == '\n')
            return false;
        if (quoted && *p == '\\' && p[1]) {
            p++; /* an escaped character, whatever it is */
            continue;
        }
        if (*p == '"')
            quoted = !quoted;
        else if (!quoted && (*p == '{' || *p == '}'))
            return false;
    }
    return !quoted;
}

static lv_metric_t *find_or_create(const char *name, const char *help, const char *labels,
                                   lv_metric_kind_t kind, const double *bounds, int nbounds)
{
    if (!labels)
        labels = "";
    if (!name_ok(name) || !labels_ok(labels) || nbounds > LV_METRICS_MAX_BUCKETS)
        return NULL;
    pthread_mutex_lock(&s_create);
    lv_metric_t *m = NULL;
    int n = atomic_load(&s_nseries);
    for (int i = 0; i < n; i++) {
        if (strcmp(s_series[i].name, name) != 0)
            continue;
        if (s_series[i].kind != kind)
            goto out; /* one name, one kind */
        if (!strcmp(s_series[i].labels, labels)) {
            m = &s_series[i];
            goto out;
        }
    }
    if (n == LV_METRICS_MAX_SERIES)
        goto out;
    m = &s_series[n];
    memset(m, 0, sizeof *m);
    snprintf(m->name, sizeof m->name, "%s", name);
    snprintf(m->labels, sizeof m->labels, "%s", labels);
    snprintf(m->help, sizeof m->help, "%s", help ? help : name);
    for (char *p = m->help; *p; p++)
        if (*p == '\n' || *p == '\\')
            *p = ' ';
    m->kind = kind;
    m->nbounds = nbounds;
    for (int i = 0; i < nbounds; i++)
        m->bounds[i] = bounds[i];
    /* Published last: a reader that sees the new count sees the whole series. */
    atomic_store_explicit(&s_nseries, n + 1, memory_order_release);
out:
    pthread_mutex_unlock(&s_create);
    return m;
}

lv_metric_t *lv_counter(const char *name, const char *help, const char *labels)
{
    return find_or_create(name, help, labels, LV_COUNTER, NULL, 0);
}

lv_metric_t *lv_gauge(const char *name, const char *help, const char *labels)
{
    return find_or_create(name, help, labels, LV_GAUGE, NULL, 0);
}

lv_metric_t *lv_histogram(const char *name, const char *help, const char *labels,
                          const double *bounds, int nbounds)
{
    if (!bounds) {
        bounds = DEFAULT_BOUNDS;
        nbounds = (int)(sizeof DEFAULT_BOUNDS / sizeof DEFAULT_BOUNDS[0]);
    }
    for (int i = 1; i < nbounds; i++)
        if (!(bounds[i] > bounds[i - 1]))
            return NULL;
    return find_or_create(name, help, labels, LV_HISTOGRAM, bounds, nbounds);
}

void lv_metric_add(lv_metric_t *m, uint64_t n)
{
    if (m && m->kind == LV_COUNTER)
        atomic_fetch_add_explicit(&m->count, n, memory_order_relaxed);
}

void lv_metric_set(lv_metric_t *m, int64_t v)
{
    if (m && m->kind == LV_GAUGE)
        atomic_store_explicit(&m->gauge, v, memory_order_relaxed);
}

void lv_metric_gauge_add(lv_metric_t *m, int64_t delta)
{
    if (m && m->kind == LV_GAUGE)
        atomic_fetch_add_explicit(&m->gauge, delta, memory_order_relaxed);
}

static double bits_double(uint64_t b)
{
    double d;
    memcpy(&d, &b, sizeof d);
    return d;
}

static uint64_t double_bits(double d)
{
    uint64_t b;
    memcpy(&b, &d, sizeof b);
    return b;
}

void lv_metric_observe(lv_metric_t *m, double seconds)
{
    if (!m || m->kind != LV_HISTOGRAM)
        return;
    int i = 0;
    while (i < m->nbounds && seconds > m->bounds[i])
        i++;
    if (i < m->nbounds)
        atomic_fetch_add_explicit(&m->buckets[i], 1, memory_order_relaxed);
    uint64_t old = atomic_load_explicit(&m->sum_bits, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(&m->sum_bits, &old,
                                                  double_bits(bits_double(old) + seconds),
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
    atomic_fetch_add_explicit(&m->count, 1, memory_order_relaxed);
}

/* "{a="b",le="0.5"}" or "" from a series' labels plus an extra label. */
static void put_labels(lv_buf_t *out, const char *labels, const char *extra)
{
    if (!*labels && !extra)
        return;
    lv_buf_printf(out, "{%s%s%s}", labels, *labels && extra ? "," : "", extra ? extra : "");
}

static void render_one(lv_buf_t *out, const lv_metric_t *m)
{
    if (m->kind == LV_COUNTER) {
        lv_buf_puts(out, m->name);
        put_labels(out, m->labels, NULL);
        lv_buf_printf(out, " %llu\n", (unsigned long long)atomic_load(&m->count));
        return;
    }
    if (m->kind == LV_GAUGE) {
        lv_buf_puts(out, m->name);
        put_labels(out, m->labels, NULL);
        lv_buf_printf(out, " %lld\n", (long long)atomic_load(&m->gauge));
        return;
    }
    /* Read the count first: buckets then never sum above it. */
    uint64_t count = atomic_load(&m->count), cum = 0;
    char le[48];
    for (int i = 0; i < m->nbounds; i++) {
        cum += atomic_load(&m->buckets[i]);
        if (cum > count)
            cum = count;
        snprintf(le, sizeof le, "le=\"%g\"", m->bounds[i]);
        lv_buf_printf(out, "%s_bucket", m->name);
        put_labels(out, m->labels, le);
        lv_buf_printf(out, " %llu\n", (unsigned long long)cum);
    }
    lv_buf_printf(out, "%s_bucket", m->name);
    put_labels(out, m->labels, "le=\"+Inf\"");
    lv_buf_printf(out, " %llu\n", (unsigned long long)count);
    lv_buf_printf(out, "%s_sum", m->name);
    put_labels(out, m->labels, NULL);
    lv_buf_printf(out, " %.6f\n", bits_double(atomic_load(&m->sum_bits)));
    lv_buf_printf(out, "%s_count", m->name);
    put_labels(out, m->labels, NULL);
    lv_buf_printf(out, " %llu\n", (unsigned long long)count);
}

void lv_metrics_render(lv_buf_t *out)
{
    static const char *const TYPE[] = {"counter", "gauge", "histogram"};
    int n = atomic_load_explicit(&s_nseries, memory_order_acquire);
    for (int i = 0; i < n; i++) {
        bool first = true;
        for (int j = 0; j < i && first; j++)
            first = strcmp(s_series[j].name, s_series[i].name) != 0;
        if (!first)
            continue; /* printed with the first series of its name */
        lv_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", s_series[i].name, s_series[i].help,
                      s_series[i].name, TYPE[s_series[i].kind]);
        for (int j = i; j < n; j++)
            if (!strcmp(s_series[j].name, s_series[i].name))
                render_one(out, &s_series[j]);
    }
}

void lv_metrics_reset(void)
{
    pthread_mutex_lock(&s_create);
    atomic_store(&s_nseries, 0);
    pthread_mutex_unlock(&s_create);
}

/* ---- the HTTP endpoint --------------------------------------------------- */

struct lv_metrics_server {
    struct MHD_Daemon *d;
    lv_health_fn health;
    void *ctx;
};

static enum MHD_Result respond(struct MHD_Connection *c, unsigned status, const char *type,
                               const char *body, size_t len)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", type);
    enum MHD_Result ok = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_len, void **state)
{
    (void)version;
    (void)upload;
    lv_metrics_server_t *self = cls;
    if (*state == NULL) { /* first call: headers only */
        *state = self;
        return MHD_YES;
    }
    if (*upload_len) { /* a body we do not want: drop it */
        *upload_len = 0;
        return MHD_YES;
    }
    static const char JSON[] = "application/json; charset=utf-8";
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        static const char e[] = "{\"error\": \"method not allowed\", \"detail\": \"GET only\"}";
        return respond(c, MHD_HTTP_METHOD_NOT_ALLOWED, JSON, e, sizeof e - 1);
    }
    if (!strcmp(url, "/metrics")) {
        lv_buf_t b;
        lv_buf_init(&b, (size_t)16 << 20);
        lv_metrics_render(&b);
        enum MHD_Result r = respond(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8",
                                    lv_buf_str(&b), b.len);
        lv_buf_free(&b);
        return r;
    }
    if (!strcmp(url, "/healthz")) {
        char detail[1024] = "{}";
        bool ok = self->health ? self->health(self->ctx, detail, sizeof detail) : true;
        return respond(c, ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, JSON, detail,
                       strlen(detail));
    }
    static const char nf[] = "{\"error\": \"not found\", \"detail\": \"/metrics or /healthz\"}";
    return respond(c, MHD_HTTP_NOT_FOUND, JSON, nf, sizeof nf - 1);
}

lv_metrics_server_t *lv_metrics_serve(const char *bind_addr, int port, lv_health_fn health,
                                      void *ctx)
{
    lv_metrics_server_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->health = health;
    self->ctx = ctx;
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, bind_addr ? bind_addr : "127.0.0.1", &addr.sin_addr) != 1) {
        lv_error("metrics: bad bind address %s", bind_addr);
        free(self);
        return NULL;
    }
    self->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, (uint16_t)port, NULL, NULL,
                               on_request, self, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                               MHD_OPTION_CONNECTION_LIMIT, (unsigned)64,
                               MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10, MHD_OPTION_END);
    if (!self->d) {
        lv_error("metrics: cannot listen on %s:%d", bind_addr ? bind_addr : "127.0.0.1", port);
        free(self);
        return NULL;
    }
    return self;
}

void lv_metrics_server_stop(lv_metrics_server_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    MHD_stop_daemon((*self_p)->d);
    free(*self_p);
    *self_p = NULL;
}

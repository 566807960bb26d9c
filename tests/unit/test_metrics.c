/* lv_metrics: the Prometheus text the services serve, checked line by line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "lv_metrics.h"

static int reset(void **state)
{
    (void)state;
    lv_metrics_reset();
    return 0;
}

static char *render(lv_buf_t *b)
{
    lv_buf_init(b, 1 << 20);
    lv_metrics_render(b);
    return (char *)lv_buf_str(b);
}

static void test_counter_and_gauge(void **state)
{
    (void)state;
    lv_metric_t *a = lv_counter("levee_rows_total", "Rows read", "service=\"ingest\",feed=\"medical\"");
    lv_metric_t *b = lv_counter("levee_rows_total", "Rows read", "service=\"ingest\",feed=\"registry\"");
    assert_non_null(a);
    assert_non_null(b);
    assert_ptr_not_equal(a, b);
    /* The same name and labels: the same series. */
    assert_ptr_equal(a, lv_counter("levee_rows_total", "Rows read", "service=\"ingest\",feed=\"medical\""));
    lv_metric_add(a, 3);
    lv_metric_add(a, 4);
    lv_metric_add(b, 1);
    lv_metric_t *g = lv_gauge("levee_depth", "Queue depth", NULL);
    lv_metric_set(g, 9);
    lv_metric_set(g, -2);
    lv_metric_gauge_add(g, 5);
    lv_metric_gauge_add(g, -4);
    lv_metric_gauge_add(lv_counter("levee_rows_total", "Rows read", "service=\"ingest\",feed=\"medical\""), 1);
    lv_buf_t buf;
    const char *out = render(&buf);
    assert_string_equal(out,
                        "# HELP levee_rows_total Rows read\n"
                        "# TYPE levee_rows_total counter\n"
                        "levee_rows_total{service=\"ingest\",feed=\"medical\"} 7\n"
                        "levee_rows_total{service=\"ingest\",feed=\"registry\"} 1\n"
                        "# HELP levee_depth Queue depth\n"
                        "# TYPE levee_depth gauge\n"
                        "levee_depth -1\n");
    lv_buf_free(&buf);
}

static void test_histogram_is_cumulative(void **state)
{
    (void)state;
    const double bounds[] = {0.01, 0.1, 1};
    lv_metric_t *h = lv_histogram("levee_seconds", "Latency", "service=\"x\"", bounds, 3);
    assert_non_null(h);
    lv_metric_observe(h, 0.005); /* le 0.01 */
    lv_metric_observe(h, 0.01);  /* le 0.01: a bound is inclusive */
    lv_metric_observe(h, 0.5);   /* le 1 */
    lv_metric_observe(h, 7);     /* only +Inf */
    lv_buf_t buf;
    const char *out = render(&buf);
    assert_string_equal(out,
                        "# HELP levee_seconds Latency\n"
                        "# TYPE levee_seconds histogram\n"
                        "levee_seconds_bucket{service=\"x\",le=\"0.01\"} 2\n"
                        "levee_seconds_bucket{service=\"x\",le=\"0.1\"} 2\n"
                        "levee_seconds_bucket{service=\"x\",le=\"1\"} 3\n"
                        "levee_seconds_bucket{service=\"x\",le=\"+Inf\"} 4\n"
                        "levee_seconds_sum{service=\"x\"} 7.515000\n"
                        "levee_seconds_count{service=\"x\"} 4\n");
    lv_buf_free(&buf);
}

static void test_refusals(void **state)
{
    (void)state;
    assert_null(lv_counter("9starts_with_digit", "x", NULL));
    assert_null(lv_counter("has-dash", "x", NULL));
    assert_null(lv_counter("", "x", NULL));
    assert_null(lv_counter("ok_name", "x", "a=\"unbalanced"));
    assert_null(lv_counter("ok_name", "x", "a=\"b\"\nc=\"d\""));
    assert_null(lv_counter("ok_name", "x", "a=\"b\"}"));
    /* Braces inside a quoted value are fine, an escaped quote stays inside. */
    assert_non_null(lv_counter("ok_name", "x", "route=\"/cases/{case_id}\""));
    assert_non_null(lv_counter("ok_name", "x", "a=\"say \\\"hi\\\" {x}\""));
    const double down[] = {1, 0.5};
    assert_null(lv_histogram("h", "x", NULL, down, 2));
    /* One name, one kind. */
    assert_non_null(lv_counter("levee_kind", "x", NULL));
    assert_null(lv_gauge("levee_kind", "x", "a=\"b\""));
    /* Updates of a missing series or of the wrong kind do nothing. */
    lv_metric_add(NULL, 1);
    lv_metric_set(NULL, 1);
    lv_metric_observe(NULL, 1);
    lv_metric_set(lv_counter("levee_kind", "x", NULL), 5);
    lv_buf_t buf;
    const char *out = render(&buf);
    assert_non_null(strstr(out, "levee_kind 0\n"));
    lv_buf_free(&buf);
}

static void test_registry_is_bounded(void **state)
{
    (void)state;
    char labels[64];
    int made = 0;
    for (int i = 0; i < LV_METRICS_MAX_SERIES + 10; i++) {
        snprintf(labels, sizeof labels, "i=\"%d\"", i);
        made += lv_counter("levee_many", "x", labels) != NULL;
    }
    assert_int_equal(made, LV_METRICS_MAX_SERIES);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_counter_and_gauge, reset),
        cmocka_unit_test_setup(test_histogram_is_cumulative, reset),
        cmocka_unit_test_setup(test_refusals, reset),
        cmocka_unit_test_setup(test_registry_is_bounded, reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

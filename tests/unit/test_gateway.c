/* The gateway's pure parts: routes, cursors, input checks, money in 元,
 * region scopes, GB18030 spooling across chunk borders, metrics text; and
 * the token rules of common/lv_token. */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "gw.h"
#include "lv_metrics.h"
#include "lv_err.h"

static void test_routes(void **state)
{
    char params[GW_MAX_PARAMS][GW_PARAM_MAX + 1], allow[64];
    int i = gw_route_match("GET", "/api/v1/imports/42/rejects", params, allow, sizeof allow);
    assert_true(i >= 0);
    assert_string_equal(gw_routes[i].path, "/api/v1/imports/{import_id}/rejects");
    assert_string_equal(params[0], "42");
    i = gw_route_match("POST", "/api/v1/cases/H1-1/steps", params, allow, sizeof allow);
    assert_true(i >= 0);
    assert_string_equal(params[0], "H1-1");
    i = gw_route_match("HEAD", "/healthz", params, allow, sizeof allow);
    assert_true(i >= 0);
    assert_string_equal(gw_routes[i].method, "GET");

    assert_int_equal(gw_route_match("DELETE", "/api/v1/cases", params, allow, sizeof allow), -2);
    assert_string_equal(allow, "GET");
    assert_int_equal(gw_route_match("GET", "/api/v1/declarations", params, allow, sizeof allow), -2);
    assert_string_equal(allow, "POST");
    const char *missing[] = {"", "/api/v1/cases/", "/api/v1/imports//rejects", "/api/v1/imports",
                             "/api/v1/cases/x", "/api/v1/cases/x/steps/y", "/healthz/", "//healthz",
                             "/api/v2/cases", "api/v1/cases"};
    for (size_t k = 0; k < sizeof missing / sizeof missing[0]; k++)
        assert_int_equal(gw_route_match("GET", missing[k], params, allow, sizeof allow), -1);
    char longseg[GW_PARAM_MAX + 40] = "/api/v1/households/";
    memset(longseg + strlen(longseg), 'x', GW_PARAM_MAX + 1);
    assert_int_equal(gw_route_match("GET", longseg, params, allow, sizeof allow), -1);
}

/* The dashboard's files: / and /web/PATH route to them; only paths into
 * the served folders, of known types, without any way out, are served. */
static void test_web(void **state)
{
    char params[GW_MAX_PARAMS][GW_PARAM_MAX + 1], allow[64];
    int i = gw_route_match("GET", "/", params, allow, sizeof allow);
    assert_true(i >= 0);
    assert_string_equal(gw_routes[i].path, "/");
    assert_int_equal(gw_routes[i].roles, 0);
    i = gw_route_match("HEAD", "/web/app/main.js", params, allow, sizeof allow);
    assert_true(i >= 0);
    assert_string_equal(params[0], "app/main.js");
    i = gw_route_match("GET", "/web/vendor/a/b/c.js", params, allow, sizeof allow);
    assert_true(i >= 0);
    assert_string_equal(params[0], "vendor/a/b/c.js");
    assert_int_equal(gw_route_match("GET", "/web/", params, allow, sizeof allow), -1);
    assert_int_equal(gw_route_match("GET", "/web", params, allow, sizeof allow), -1);
    assert_int_equal(gw_route_match("POST", "/web/app/main.js", params, allow, sizeof allow), -2);
    /* The statistics routes are still found next to /api/v1/stats. */
    i = gw_route_match("GET", "/api/v1/stats/trend", params, allow, sizeof allow);
    assert_true(i >= 0);
    assert_string_equal(gw_routes[i].path, "/api/v1/stats/trend");

    const char *good[] = {"app/main.js", "app/app.css", "vendor/echarts.min.js",
                          "vendor/regions/gansu_62_towns.csv", "app/x-y_z.1.json"};
    for (size_t k = 0; k < sizeof good / sizeof good[0]; k++)
        assert_true(gw_web_path_ok(good[k]));
    const char *bad[] = {
        "", "app", "app/", "app//main.js", "app/../index.html", "app/./main.js", "../etc/passwd",
        "app/.hidden.js", "app/%2e%2e/x.js", "app/main.js/", "/app/main.js", "app\\..\\x.js",
        "node_modules/echarts/dist/echarts.js", "test/dashboard.mjs", "package.json",
        "index.html", "app/main.exe", "app/main", "app/main.js?x", "app/ma in.js",
        "app/\xe4\xb8\xad.js", "vendor/a/b/c/d/e/f/g/h.js",
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++)
        assert_false(gw_web_path_ok(bad[k]));
    assert_string_equal(gw_web_type("index.html"), "text/html; charset=utf-8");
    assert_string_equal(gw_web_type("app/main.js"), "text/javascript; charset=utf-8");
    assert_string_equal(gw_web_type("shot.png"), "image/png");
    assert_null(gw_web_type("app.d/noext"));
    assert_null(gw_web_type("x.sh"));

    char u[64];
    const char *cases[][2] = {
        {"/web/app/%2e%2e/x.js", "/web/app/../x.js"}, {"a%2Fb%41", "a/bA"}, {"main.js%00.css", "main.js%00.css"},
        {"50%", "50%"}, {"%4", "%4"}, {"%zz%e4%b8%ad", "%zz\xe4\xb8\xad"}, {"a+b", "a+b"}, {"", ""},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        snprintf(u, sizeof u, "%s", cases[k][0]);
        assert_int_equal(gw_url_unescape(u), strlen(cases[k][1]));
        assert_string_equal(u, cases[k][1]);
    }
}

static void test_cursor(void **state)
{
    json_t *key = json_pack("[I, s]", (json_int_t)1795466559071LL, "H620521-1");
    char c[GW_CURSOR_MAX + 1];
    assert_int_equal(gw_cursor_encode(key, c, sizeof c), 0);
    assert_null(strpbrk(c, "+/="));
    json_t *back = gw_cursor_decode(c, "is");
    assert_non_null(back);
    assert_true(json_equal(key, back));
    assert_null(gw_cursor_decode(c, "si"));  /* the wrong shape */
    assert_null(gw_cursor_decode(c, "i"));   /* the wrong length */
    assert_null(gw_cursor_decode("!!!", "is"));
    assert_null(gw_cursor_decode("", "is"));
    json_decref(back);
    json_decref(key);
    /* A string with a NUL inside cannot become a parameter. */
    key = json_pack("[s#]", "a\0b", (size_t)3);
    assert_int_equal(gw_cursor_encode(key, c, sizeof c), 0);
    assert_null(gw_cursor_decode(c, "s"));
    json_decref(key);
    char big[GW_CURSOR_MAX * 2];
    memset(big, 'A', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_null(gw_cursor_decode(big, "s"));
}

static void test_text(void **state)
{
    assert_true(gw_text_ok("住院\n属实", 100));
    assert_false(gw_text_ok("\xff\xfe", 100));
    assert_false(gw_text_ok("\xc0\xaf", 100)); /* an overlong '/' */
    assert_false(gw_text_ok("a\x01", 100));
    assert_false(gw_text_ok("abcdef", 5));
    assert_true(gw_ident_ok("H620521-1", 64));
    assert_false(gw_ident_ok("", 64));
    assert_false(gw_ident_ok("a\nb", 64));
    assert_true(gw_region_ok("62"));
    assert_true(gw_region_ok("620521100201"));
    assert_false(gw_region_ok("6205211002011"));
    assert_false(gw_region_ok("62x"));
    assert_false(gw_region_ok(""));
}

/* A request as the handlers see it, without a connection. */
static void req_init(gw_req_t *r, const char *prefix)
{
    memset(r, 0, sizeof *r);
    snprintf(r->caller.prefix, sizeof r->caller.prefix, "%s", prefix);
}

static void req_done(gw_req_t *r)
{
    free(r->resp);
}

static int yuan(const char *json, int64_t *fen, int *status)
{
    gw_req_t r;
    req_init(&r, "62");
    json_t *o = json_loads(json, 0, NULL);
    assert_non_null(o);
    int rc = gw_json_yuan(&r, o, "v", fen);
    *status = r.status;
    json_decref(o);
    req_done(&r);
    return rc;
}

static void test_yuan(void **state)
{
    int64_t fen = -1;
    int status;
    assert_int_equal(yuan("{\"v\": 9000.5}", &fen, &status), 1);
    assert_int_equal(fen, 900050);
    assert_int_equal(yuan("{\"v\": 0.07}", &fen, &status), 1);
    assert_int_equal(fen, 7);
    assert_int_equal(yuan("{\"v\": 12000}", &fen, &status), 1);
    assert_int_equal(fen, 1200000);
    assert_int_equal(yuan("{\"v\": \"2000.00\"}", &fen, &status), 1);
    assert_int_equal(fen, 200000);
    assert_int_equal(yuan("{\"v\": 99999999999.99}", &fen, &status), 1);
    assert_int_equal(fen, 9999999999999LL);
    assert_int_equal(yuan("{}", &fen, &status), 0);
    assert_int_equal(yuan("{\"v\": null}", &fen, &status), 0);
    const char *bad[] = {"{\"v\": 1.234}", "{\"v\": -1}", "{\"v\": -0.5}", "{\"v\": \"1.234\"}",
                         "{\"v\": \"12,000\"}", "{\"v\": true}", "{\"v\": [1]}", "{\"v\": 1e30}",
                         "{\"v\": 100000000001}", "{\"v\": \"\"}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(yuan(bad[i], &fen, &status), -1);
        assert_int_equal(status, 400);
    }
}

static void test_scope(void **state)
{
    gw_req_t r;
    char out[13];
    req_init(&r, "620521");
    assert_true(gw_scope_region(&r, NULL, out));
    assert_string_equal(out, "620521");
    assert_true(gw_scope_region(&r, "62", out)); /* wider: narrowed to the token */
    assert_string_equal(out, "620521");
    assert_true(gw_scope_region(&r, "620521100", out));
    assert_string_equal(out, "620521100");
    assert_false(gw_scope_region(&r, "620522", out));
    assert_int_equal(r.status, 403);
    req_done(&r);
    req_init(&r, "620521");
    assert_true(gw_in_region(&r, "620521100201"));
    assert_false(gw_in_region(&r, "620522100201"));
    assert_false(gw_in_region(&r, "6205")); /* a wider region is not inside */
    req_done(&r);
}

static void test_tokens(void **state)
{
    const char *why;
    assert_int_equal(lv_token_check_scope("province", "62", &why), 0);
    assert_int_equal(lv_token_check_scope("city", "6205", &why), 0);
    assert_int_equal(lv_token_check_scope("county", "620521", &why), 0);
    assert_int_equal(lv_token_check_scope("town", "620521100", &why), 0);
    assert_int_equal(lv_token_check_scope("investigator", "620521", &why), 0);
    assert_int_equal(lv_token_check_scope("fund", "62", &why), 0);
    assert_int_equal(lv_token_check_scope("county", "62", &why), LV_EINVAL);
    assert_int_equal(lv_token_check_scope("province", "620521", &why), LV_EINVAL);
    assert_int_equal(lv_token_check_scope("department", "62052", &why), LV_EINVAL);
    assert_int_equal(lv_token_check_scope("county", "62052a", &why), LV_EINVAL);
    assert_int_equal(lv_token_check_scope("admin", "62", &why), LV_EINVAL);
    assert_int_equal(lv_token_role("town"), LV_ROLE_TOWN);
    assert_string_equal(lv_token_role_name(LV_ROLE_FUND), "fund");
    char t1[LV_TOKEN_MAX], t2[LV_TOKEN_MAX], id[LV_TOKEN_ID_MAX], h1[LV_TOKEN_HASH_HEX],
        h2[LV_TOKEN_HASH_HEX];
    assert_int_equal(lv_token_new(t1, id), 0);
    assert_int_equal(lv_token_new(t2, id), 0);
    assert_string_not_equal(t1, t2);
    assert_int_equal(strncmp(t1, "lvt_", 4), 0);
    assert_int_equal(strlen(t1), 47);
    assert_int_equal(strlen(id), 15);
    assert_int_equal(lv_token_hash(t1, strlen(t1), h1), 0);
    assert_int_equal(lv_token_hash(t1, strlen(t1), h2), 0);
    assert_string_equal(h1, h2);
    assert_int_equal(strlen(h1), 64);
    assert_null(strstr(h1, t1 + 4));
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* GB18030 in chunks of every size, so characters split at every border. */
static void test_spool(void **state)
{
    char dir[] = "gw-unit-XXXXXX"; /* under ctest's working directory */
    assert_non_null(mkdtemp(dir));
    /* 欧阳娜 and a four-byte character (U+20000, 𠀀) in GB18030. */
    const char gb[] = "name\n\xc5\xb7\xd1\xf4\xc4\xc8,\x95\x32\x82\x36\n";
    const char utf8[] = "name\n欧阳娜,\xf0\xa0\x80\x80\n";
    char why[256];
    for (size_t chunk = 1; chunk <= sizeof gb; chunk++) {
        gw_spool_t *sp = gw_spool_new(dir, "registry", true);
        assert_non_null(sp);
        for (size_t at = 0; at < sizeof gb - 1; at += chunk) {
            size_t n = sizeof gb - 1 - at < chunk ? sizeof gb - 1 - at : chunk;
            assert_int_equal(gw_spool_write(sp, gb + at, n, why, sizeof why), 0);
        }
        assert_int_equal(gw_spool_finish(sp, why, sizeof why), 0);
        assert_string_equal(slurp(gw_spool_path(sp)), utf8);
        gw_spool_destroy(&sp, false);
    }
    gw_spool_t *sp = gw_spool_new(dir, "registry", true);
    assert_int_equal(gw_spool_write(sp, "ab\xc5", 3, why, sizeof why), 0);
    assert_int_equal(gw_spool_finish(sp, why, sizeof why), LV_EINVAL); /* ends inside a character */
    char path[2048];
    snprintf(path, sizeof path, "%s", gw_spool_path(sp));
    gw_spool_destroy(&sp, false);
    assert_int_not_equal(access(path, F_OK), 0); /* not kept */
    sp = gw_spool_new(dir, "registry", true);
    assert_int_equal(gw_spool_write(sp, "ok\n\x81\x30\xff\xff", 7, why, sizeof why), LV_EINVAL);
    assert_non_null(strstr(why, "byte 3"));
    gw_spool_destroy(&sp, false);
    rmdir(dir);
}

static void test_metrics(void **state)
{
    (void)state;
    lv_metrics_reset();
    gw_metrics_t *m = gw_metrics_new(gw_nroutes);
    gw_metrics_begin(m);
    gw_metrics_begin(m);
    gw_metrics_end(m, 0, 200, 3000);
    gw_metrics_end(m, -1, 404, 200);
    gw_metrics_begin(m);
    gw_metrics_end(m, 0, 418, 100);
    char allow[64], params[GW_MAX_PARAMS][GW_PARAM_MAX + 1];
    int steps = gw_route_match("POST", "/api/v1/cases/C1/steps", params, allow, sizeof allow);
    assert_true(steps >= 0);
    gw_metrics_begin(m);
    gw_metrics_end(m, steps, 403, 100);
    gw_metrics_begin(m);
    lv_buf_t b;
    lv_buf_init(&b, 1 << 20);
    lv_metrics_render(&b);
    const char *t = lv_buf_str(&b);
    assert_non_null(strstr(t, "# TYPE levee_http_requests_total counter\n"));
    assert_non_null(strstr(t, "levee_http_requests_total{route=\"/healthz\",method=\"GET\",status=\"200\"} 1\n"));
    assert_non_null(strstr(t, "levee_http_requests_total{route=\"/healthz\",method=\"GET\",status=\"other\"} 1\n"));
    assert_non_null(strstr(t, "{route=\"unmatched\",method=\"\",status=\"404\"} 1\n"));
    /* A template's braces stay in the label. */
    assert_non_null(strstr(t, "levee_http_requests_total{route=\"/api/v1/cases/{case_id}/steps\","
                              "method=\"POST\",status=\"403\"} 1\n"));
    assert_non_null(strstr(t, "# TYPE levee_http_request_duration_seconds histogram\n"));
    assert_non_null(strstr(t, "levee_http_request_duration_seconds_bucket{route=\"/healthz\",method=\"GET\","
                              "le=\"0.001\"} 1\n"));
    assert_non_null(strstr(t, "levee_http_request_duration_seconds_bucket{route=\"/healthz\",method=\"GET\","
                              "le=\"0.005\"} 2\n"));
    assert_non_null(strstr(t, "levee_http_request_duration_seconds_count{route=\"/healthz\",method=\"GET\"} 2\n"));
    assert_non_null(strstr(t, "levee_http_requests_in_flight 1\n"));
    lv_buf_free(&b);
    gw_metrics_destroy(&m);
    assert_null(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routes),  cmocka_unit_test(test_cursor), cmocka_unit_test(test_text),
        cmocka_unit_test(test_yuan),    cmocka_unit_test(test_scope),  cmocka_unit_test(test_tokens),
        cmocka_unit_test(test_spool),   cmocka_unit_test(test_metrics), cmocka_unit_test(test_web),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

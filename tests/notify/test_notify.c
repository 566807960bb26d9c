/* levee-notify's pure parts: template rendering, config validation and
 * lookups, RFC 2047 / RFC 5322 mail encoding, the webhook signature, how an
 * attempt's result is classified and the backoff. */
#define _POSIX_C_SOURCE 200809L

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <sodium.h>

#include "lv_buf.h"
#include "lv_err.h"
#include "ntf_config.h"
#include "ntf_mail.h"
#include "ntf_send.h"
#include "ntf_sign.h"
#include "ntf_template.h"

/* ---- templates ---------------------------------------------------------- */

static void render_fills_placeholders(void **state)
{
    (void)state;
    const ntf_var_t v[] = {{"household_id", "H001"}, {"grade", "红色报警"}, {"empty", NULL}};
    char out[128];
    const char *why = NULL;
    assert_int_equal(ntf_render("户 {household_id}: {grade}{empty}.", v, 3, out, sizeof out, &why), 0);
    assert_string_equal(out, "户 H001: 红色报警.");
    assert_int_equal(ntf_render("{{literal}} {household_id}", v, 3, out, sizeof out, &why), 0);
    assert_string_equal(out, "{literal} H001");
}

static void render_refuses_bad_templates(void **state)
{
    (void)state;
    const ntf_var_t v[] = {{"title", "t"}};
    char out[64];
    const char *why = NULL;
    assert_int_equal(ntf_render("a {nope} b", v, 1, out, sizeof out, &why), LV_EINVAL);
    assert_non_null(strstr(why, "unknown placeholder"));
    why = NULL;
    assert_int_equal(ntf_render("a {title", v, 1, out, sizeof out, &why), LV_EINVAL);
    assert_non_null(strstr(why, "unclosed"));
    why = NULL;
    assert_int_equal(ntf_render("a } b", v, 1, out, sizeof out, &why), LV_EINVAL);
    assert_non_null(strstr(why, "unbalanced"));
}

static void render_cuts_on_a_character_boundary(void **state)
{
    (void)state;
    const ntf_var_t v[] = {{"body", "防返贫监测"}}; /* 3 bytes per character */
    char out[8];                                   /* room for 7 bytes: two characters */
    const char *why = NULL;
    assert_int_equal(ntf_render("{body}", v, 1, out, sizeof out, &why), 0);
    assert_string_equal(out, "防返");
    char s[] = "ab防返";
    ntf_utf8_cut(s, 4);
    assert_string_equal(s, "ab");
}

/* ---- config ------------------------------------------------------------- */

static const char *const BASE =
    "{\"delivery\": {\"max_attempts\": 3, \"backoff_base_ms\": 100, \"backoff_max_ms\": 1000, "
    "\"batch\": 10, \"max_inflight\": 4, \"connect_timeout_ms\": 500, \"timeout_ms\": 2000, "
    "\"rate_per_s\": 5},"
    " \"routes\": {\"case_opened\": [\"town\", \"village\"], \"case_approved\": [\"household\"]},"
    " \"recipients\": {\"town\": \"{code} 乡镇民政办\", \"village\": \"{code} 村委会\", "
    "\"county\": \"{code}\", \"investigator\": \"{code}\", \"school\": \"{code}\", "
    "\"household\": \"户 {code}\"},"
    " \"grades\": {\"red\": \"红色报警\"},"
    " \"templates\": {\"*\": {\"inbox\": {\"title\": \"{title}\", \"body\": \"{body}\"}, "
    "\"webhook\": {\"text\": \"T {title}\"}, \"email\": {\"subject\": \"S {title}\", \"body\": \"B\"}},"
    " \"case_approved\": {\"webhook@household\": {\"text\": \"您家 {household_id}\"}}}}";

static ntf_config_t *parse_with(const char *from, const char *to, char *err, size_t n)
{
    /* BASE with one substring replaced: a config with one mistake. */
    char text[4096];
    const char *at = strstr(BASE, from);
    assert_non_null(at);
    snprintf(text, sizeof text, "%.*s%s%s", (int)(at - BASE), BASE, to, at + strlen(from));
    return ntf_config_parse(text, err, n);
}

static void config_routes_and_templates(void **state)
{
    (void)state;
    char err[512] = "";
    ntf_config_t *c = ntf_config_parse(BASE, err, sizeof err);
    assert_non_null(c);
    ntf_role_t roles[NTF_NROLES];
    assert_int_equal(ntf_config_route(c, "case_opened", roles), 2);
    assert_int_equal(roles[0], NTF_TOWN);
    assert_int_equal(roles[1], NTF_VILLAGE);
    assert_int_equal(ntf_config_route(c, "no_such_kind", roles), -1);
    /* kind@role first, then the kind, then "*". */
    assert_string_equal(ntf_config_template(c, "case_approved", "webhook", NTF_HOUSEHOLD, "text"),
                        "您家 {household_id}");
    assert_string_equal(ntf_config_template(c, "case_approved", "webhook", NTF_TOWN, "text"),
                        "T {title}");
    assert_string_equal(ntf_config_template(c, "case_opened", "email", NTF_TOWN, "subject"),
                        "S {title}");
    assert_string_equal(ntf_config_recipient_name(c, NTF_TOWN), "{code} 乡镇民政办");
    assert_string_equal(ntf_config_grade(c, "red"), "红色报警");
    assert_string_equal(ntf_config_grade(c, "purple"), "purple");
    assert_string_equal(ntf_config_grade(c, ""), "");
    const ntf_delivery_cfg_t *d = ntf_config_delivery(c);
    assert_int_equal(d->max_attempts, 3);
    assert_int_equal(d->rate_per_s, 5);
    ntf_config_destroy(&c);
    assert_null(c);
}

static void config_errors_name_the_key(void **state)
{
    (void)state;
    static const struct {
        const char *from, *to, *want;
    } cases[] = {
        {"\"max_attempts\": 3", "\"max_attempts\": 0", "delivery.max_attempts"},
        {"\"rate_per_s\": 5", "\"rate_per_s\": \"5\"", "delivery.rate_per_s"},
        {"[\"town\", \"village\"]", "[\"town\", \"mayor\"]", "routes.case_opened"},
        {"\"T {title}\"", "\"T {titel}\"", "templates.*.webhook.text"},
        {"\"webhook@household\"", "\"sms@household\"", "templates.case_approved.sms@household"},
        {"\"subject\": \"S {title}\", ", "", "templates.case_opened.email@town.subject"},
        {"\"household\": \"户 {code}\"", "\"household\": \"户 {id}\"", "recipients.household"},
        {"\"backoff_max_ms\": 1000", "\"backoff_max_ms\": 50", "delivery.backoff_max_ms"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[512] = "";
        ntf_config_t *c = parse_with(cases[i].from, cases[i].to, err, sizeof err);
        if (c || !strstr(err, cases[i].want))
            fail_msg("case %zu: want an error naming %s, got \"%s\"", i, cases[i].want, err);
    }
    char err[512] = "";
    assert_null(ntf_config_parse("{\"delivery\": ", err, sizeof err));
    assert_non_null(strstr(err, "line 1"));
}

static void shipped_config_loads_and_routes_every_kind(void **state)
{
    (void)state;
    char err[512] = "";
    ntf_config_t *c = ntf_config_load(getenv("LEVEE_NOTIFY_CONFIG"), err, sizeof err);
    if (!c)
        fail_msg("%s", err);
    static const struct {
        const char *kind;
        unsigned roles;
    } want[] = {
        {"case_opened", 1u << NTF_TOWN | 1u << NTF_VILLAGE},
        {"case_approved", 1u << NTF_TOWN | 1u << NTF_VILLAGE | 1u << NTF_SCHOOL | 1u << NTF_HOUSEHOLD},
        {"case_rejected", 1u << NTF_VILLAGE},
        {"task_assigned", 1u << NTF_INVESTIGATOR},
        {"task_overdue", 1u << NTF_INVESTIGATOR | 1u << NTF_COUNTY},
        {"payout_posted", 1u << NTF_HOUSEHOLD | 1u << NTF_TOWN},
        {"red_alert", 1u << NTF_COUNTY},
        {"case_eliminated", 1u << NTF_TOWN | 1u << NTF_VILLAGE},
        {"visit_reminder", 1u << NTF_VILLAGE},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        ntf_role_t roles[NTF_NROLES];
        int n = ntf_config_route(c, want[i].kind, roles);
        unsigned got = 0;
        for (int k = 0; k < n; k++)
            got |= 1u << roles[k];
        if (got != want[i].roles)
            fail_msg("%s: roles %#x, want %#x", want[i].kind, got, want[i].roles);
    }
    ntf_config_destroy(&c);
}

static void backoff_doubles_up_to_the_cap(void **state)
{
    (void)state;
    ntf_delivery_cfg_t d = {.backoff_base_ms = 100, .backoff_max_ms = 1000};
    assert_int_equal(ntf_backoff_ms(&d, 1), 100);
    assert_int_equal(ntf_backoff_ms(&d, 2), 200);
    assert_int_equal(ntf_backoff_ms(&d, 4), 800);
    assert_int_equal(ntf_backoff_ms(&d, 5), 1000);
    assert_int_equal(ntf_backoff_ms(&d, 100), 1000);
}

/* ---- mail --------------------------------------------------------------- */

static void mail_date_is_rfc5322(void **state)
{
    (void)state;
    char d[40];
    ntf_mail_date(1790000000000LL, d);
    assert_string_equal(d, "Mon, 21 Sep 2026 14:13:20 +0000");
    ntf_mail_date(951782400000LL, d);
    assert_string_equal(d, "Tue, 29 Feb 2000 00:00:00 +0000");
}

/* Decodes "=?UTF-8?B?...?=" words (folded with CRLF SP) back to text. */
static void decode_words(const char *s, char *out, size_t n)
{
    size_t len = 0;
    while ((s = strstr(s, "=?UTF-8?B?"))) {
        s += 10;
        const char *end = strstr(s, "?=");
        assert_non_null(end);
        assert_true(end - s + 12 <= 75); /* an encoded-word is at most 75 characters */
        size_t got = 0;
        assert_int_equal(sodium_base642bin((unsigned char *)out + len, n - len - 1, s,
                                           (size_t)(end - s), NULL, &got, NULL,
                                           sodium_base64_VARIANT_ORIGINAL),
                         0);
        len += got;
        s = end + 2;
    }
    out[len] = '\0';
}

static void subject_is_rfc2047(void **state)
{
    (void)state;
    const char *subj = "【防返贫监测】新增监测识别对象: 户 620521001001001, 预警等级 红色报警";
    lv_buf_t b;
    lv_buf_init(&b, 4096);
    ntf_mail_encode_header(subj, &b);
    const char *enc = lv_buf_str(&b);
    for (const char *p = enc; *p; p++)
        assert_true((unsigned char)*p < 0x80); /* pure ASCII on the wire */
    assert_non_null(strstr(enc, "\r\n =?UTF-8?B?")); /* long: folded into several words */
    char back[512];
    decode_words(enc, back, sizeof back);
    assert_string_equal(back, subj); /* no word split a character */
    lv_buf_reset(&b);
    ntf_mail_encode_header("plain ascii", &b);
    assert_string_equal(lv_buf_str(&b), "plain ascii");
    lv_buf_free(&b);
}

static void message_has_headers_and_base64_body(void **state)
{
    (void)state;
    ntf_mail_t m = {"levee@county.example", "cadre@village.example", "测试", "第一行\n第二行\n",
                    "d-1@county.example", "d-1", 1790000000000LL};
    lv_buf_t b;
    lv_buf_init(&b, 1 << 16);
    ntf_mail_compose(&m, &b);
    const char *s = lv_buf_str(&b);
    assert_non_null(strstr(s, "Date: Mon, 21 Sep 2026 14:13:20 +0000\r\n"));
    assert_non_null(strstr(s, "From: <levee@county.example>\r\n"));
    assert_non_null(strstr(s, "To: <cadre@village.example>\r\n"));
    assert_non_null(strstr(s, "Message-ID: <d-1@county.example>\r\n"));
    assert_non_null(strstr(s, "Subject: =?UTF-8?B?"));
    assert_non_null(strstr(s, "Content-Type: text/plain; charset=UTF-8\r\n"));
    const char *body = strstr(s, "\r\n\r\n");
    assert_non_null(body);
    body += 4;
    unsigned char bin[256];
    size_t got = 0;
    assert_int_equal(sodium_base642bin(bin, sizeof bin - 1, body, strlen(body), "\r\n", &got, NULL,
                                       sodium_base64_VARIANT_ORIGINAL),
                     0);
    bin[got] = '\0';
    assert_string_equal((char *)bin, "第一行\r\n第二行\r\n");
    lv_buf_free(&b);
}

static void addresses_are_checked(void **state)
{
    (void)state;
    assert_true(ntf_mail_address_ok("cadre@village.example"));
    assert_false(ntf_mail_address_ok("no-at.example"));
    assert_false(ntf_mail_address_ok("a@b@c"));
    assert_false(ntf_mail_address_ok("a@b.example\r\nBcc: x@y"));
    assert_false(ntf_mail_address_ok("<a@b.example>"));
    assert_false(ntf_mail_address_ok("a b@c.example"));
    assert_false(ntf_mail_address_ok("@c.example"));
}

/* ---- webhooks ----------------------------------------------------------- */

static void signature_is_hmac_sha256_of_timestamp_and_body(void **state)
{
    (void)state;
    char sig[NTF_SIGNATURE_LEN];
    const char *body = "{\"a\":1}";
    ntf_sign((const unsigned char *)"secret", 6, "1700000000000", body, strlen(body), sig);
    /* Python: hmac.new(b"secret", b"1700000000000." + body, sha256).hexdigest() */
    assert_string_equal(sig,
                        "sha256=4ef2732b0d632a6897af3a6d02a6de287f60d6c5f15dabdb0ceb045a34e3c5a7");
}

static void outcomes_split_retry_from_refusal(void **state)
{
    (void)state;
    assert_int_equal(ntf_outcome(false, CURLE_OK, 200), NTF_SENT);
    assert_int_equal(ntf_outcome(false, CURLE_OK, 204), NTF_SENT);
    assert_int_equal(ntf_outcome(false, CURLE_OK, 500), NTF_RETRY);
    assert_int_equal(ntf_outcome(false, CURLE_OK, 503), NTF_RETRY);
    assert_int_equal(ntf_outcome(false, CURLE_OK, 429), NTF_RETRY);
    assert_int_equal(ntf_outcome(false, CURLE_OK, 408), NTF_RETRY);
    assert_int_equal(ntf_outcome(false, CURLE_OK, 404), NTF_REFUSED);
    assert_int_equal(ntf_outcome(false, CURLE_OK, 401), NTF_REFUSED);
    assert_int_equal(ntf_outcome(false, CURLE_COULDNT_CONNECT, 0), NTF_RETRY);
    assert_int_equal(ntf_outcome(false, CURLE_OPERATION_TIMEDOUT, 0), NTF_RETRY);
    assert_int_equal(ntf_outcome(true, CURLE_OK, 250), NTF_SENT);
    assert_int_equal(ntf_outcome(true, CURLE_SEND_ERROR, 451), NTF_RETRY);
    assert_int_equal(ntf_outcome(true, CURLE_SEND_ERROR, 550), NTF_REFUSED);
    assert_int_equal(ntf_outcome(true, CURLE_LOGIN_DENIED, 535), NTF_REFUSED);
    assert_int_equal(ntf_outcome(true, CURLE_COULDNT_CONNECT, 0), NTF_RETRY);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(render_fills_placeholders),
        cmocka_unit_test(render_refuses_bad_templates),
        cmocka_unit_test(render_cuts_on_a_character_boundary),
        cmocka_unit_test(config_routes_and_templates),
        cmocka_unit_test(config_errors_name_the_key),
        cmocka_unit_test(shipped_config_loads_and_routes_every_kind),
        cmocka_unit_test(backoff_doubles_up_to_the_cap),
        cmocka_unit_test(mail_date_is_rfc5322),
        cmocka_unit_test(subject_is_rfc2047),
        cmocka_unit_test(message_has_headers_and_base64_body),
        cmocka_unit_test(addresses_are_checked),
        cmocka_unit_test(signature_is_hmac_sha256_of_timestamp_and_body),
        cmocka_unit_test(outcomes_split_retry_from_refusal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* The monthly sweep (平台监测分析): trends in the data already stored.
 *
 * 1. Wage income (工资性) of the month down by at least the policy's
 *    wage_drop_permille against the mean of the household's prior
 *    wage_prior_months months: a risk_signal 因务工就业不稳, and the household
 *    is evaluated again (an alert when it is in scope with it). Months with
 *    no wage row count as 0; only counties whose income feed for the month
 *    has arrived are looked at, so a late feed is not read as lost jobs.
 * 2. Every household on the yellow watch list gets one cadre-visit reminder
 *    (an Event of kind visit_reminder for notify) per month.
 * 3. The county's last swept month moves on (the timer's state).
 * Each step keys its rows by household and month, so sweeping a month again
 * changes nothing. */
#define _POSIX_C_SOURCE 200809L
#include "match.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lv_err.h"
#include "lv_money.h"
#include "lv_pg.h"
#include "lv_time.h"

/* $1 county ('' = all), $2 the month (its first day), $3 prior months,
 * $4 drop (permille), $5 now, $6 the month's first day in ms. The test is
 * exact in integers: (prior_sum − k × last) × 1000 ≥ permille × prior_sum. */
static const char *const SQL_WAGE_DROP =
    "WITH m AS (SELECT $2::date AS month, $3::int AS k), "
    "fed AS (SELECT DISTINCT i.county FROM income_record i, m "
    "  WHERE i.period = m.month AND ($1 = '' OR i.county = $1)), "
    "wage AS (SELECT i.household_id, i.county, "
    "  coalesce(sum(i.amount_fen) FILTER (WHERE i.period < m.month), 0) AS prior_sum, "
    "  coalesce(sum(i.amount_fen) FILTER (WHERE i.period = m.month), 0) AS last_fen "
    "  FROM income_record i, m WHERE i.household_id IS NOT NULL AND i.kind = '工资性' "
    "  AND ($1 = '' OR i.county = $1) AND i.period <= m.month "
    "  AND i.period >= m.month - make_interval(months => m.k) "
    "  GROUP BY i.household_id, i.county), "
    "d AS (SELECT w.*, m.k, m.month FROM wage w JOIN fed USING (county), m "
    "  WHERE w.prior_sum > 0 AND (w.prior_sum - m.k * w.last_fen) * 1000 >= $4::bigint * w.prior_sum), "
    "ins AS (INSERT INTO risk_signal (household_id, county, factor, month, at_ms, effect_fen, "
    "  detail, created_ms) "
    "  SELECT household_id, county, '因务工就业不稳', month, $6::bigint, "
    "  prior_sum * 12 / k - last_fen * 12, "
    "  format('%s 工资性收入 %s 元, 前 %s 个月月均 %s 元, 下降 %s%% (wage income down)', "
    "    to_char(month, 'YYYY-MM'), to_char(last_fen / 100.0, 'FM999999999990.00'), k, "
    "    to_char(round(prior_sum / 100.0 / k, 2), 'FM999999999990.00'), "
    "    round((prior_sum - k * last_fen) * 100.0 / prior_sum, 1)), $5 "
    "  FROM d ON CONFLICT DO NOTHING RETURNING household_id) "
    "SELECT household_id FROM ins ORDER BY household_id";

/* $1 county, $2 month, $3 now. */
static const char *const SQL_REMINDERS =
    "WITH ins AS (INSERT INTO visit_reminder (household_id, county, month, grade, created_ms) "
    "  SELECT s.household_id, s.county, $2::date, s.grade, $3 FROM household_state s "
    "  WHERE s.grade = 'yellow' AND ($1 = '' OR s.county = $1) "
    "  ON CONFLICT DO NOTHING RETURNING household_id) "
    "SELECT h.household_id, h.region_code, s.pci_after_fen, s.members FROM ins "
    "JOIN household h ON h.household_id = ins.household_id "
    "JOIN household_state s ON s.household_id = ins.household_id ORDER BY h.household_id";

static const char *const SQL_EVENTS =
    "INSERT INTO outbox (msg_id, producer, dest, msg_type, payload, created_ms) "
    "SELECT id, $4, 'notify', 'event', payload, $3 "
    "FROM unnest($1::text[], $2::bytea[]) AS t(id, payload) ON CONFLICT (msg_id) DO NOTHING";

static const char *const SQL_STATE =
    "INSERT INTO sweep_state (county, last_month, swept_ms) "
    "SELECT DISTINCT county, $2::date, $3::bigint FROM household WHERE ($1 = '' OR county = $1) "
    "ON CONFLICT (county) DO UPDATE SET last_month = EXCLUDED.last_month, "
    "  swept_ms = EXCLUDED.swept_ms WHERE sweep_state.last_month < EXCLUDED.last_month";

/* A bytea array element: "\x" and the hex of the bytes. */
static void arr_bytea(lv_buf_t *b, const uint8_t *p, size_t n, lv_buf_t *tmp)
{
    static const char hex[] = "0123456789abcdef";
    lv_buf_reset(tmp);
    lv_buf_put(tmp, "\\x", 2);
    for (size_t i = 0; i < n; i++) {
        char h[2] = {hex[p[i] >> 4], hex[p[i] & 15]};
        lv_buf_put(tmp, h, 2);
    }
    lv_arr_text(b, lv_buf_str(tmp), tmp->len);
}

/* The reminders of res (SQL_REMINDERS rows) as Events in the outbox, in one
 * statement. */
static int remind(PGconn *pg, const char *producer, const PGresult *res, const char *month,
                  const char *now)
{
    lv_buf_t ids, payloads, tmp;
    lv_buf_init(&ids, MAT_ARR_MAX);
    lv_buf_init(&payloads, MAT_ARR_MAX);
    lv_buf_init(&tmp, (size_t)1 << 20);
    lv_arr_begin(&ids);
    lv_arr_begin(&payloads);
    int e = 0;
    for (int i = 0; i < PQntuples(res) && !e; i++) {
        const char *hid = PQgetvalue(res, i, 0);
        char id[160], title[256], body[768], pca[32];
        lv_money_format(strtoll(PQgetvalue(res, i, 2), NULL, 10), pca, sizeof pca);
        snprintf(id, sizeof id, "visit_reminder:%s:%.7s", hid, month);
        snprintf(title, sizeof title, "走访提醒: 户 %s (黄色提醒)", hid);
        snprintf(body, sizeof body,
                 "户 %s (%s 人) 扣除刚性支出后人均纯收入 %s 元, 接近监测收入线, 列入黄色提醒观察名单。"
                 "请村干部在 %.7s 月内入户走访摸排 (一月一摸排), 发现风险及时申报。",
                 hid, PQgetvalue(res, i, 3), pca, month);
        Levee__Event ev = LEVEE__EVENT__INIT;
        ev.event_id = id;
        ev.kind = (char *)"visit_reminder";
        ev.household_id = (char *)hid;
        ev.region_code = (char *)PQgetvalue(res, i, 1);
        ev.title = title;
        ev.body = body;
        ev.at_ms = strtoll(now, NULL, 10);
        ev.grade = (char *)"yellow";
        size_t len = levee__event__get_packed_size(&ev);
        uint8_t *buf = malloc(len ? len : 1);
        if (!buf) {
            e = LV_ENOMEM;
            break;
        }
        levee__event__pack(&ev, buf);
        mat_arr_str(&ids, id);
        arr_bytea(&payloads, buf, len, &tmp);
        free(buf);
    }
    lv_arr_end(&ids);
    lv_arr_end(&payloads);
    if (!e && (ids.failed || payloads.failed || tmp.failed))
        e = LV_ENOMEM;
    if (!e && PQntuples(res) > 0) {
        const char *p[4] = {lv_buf_str(&ids), lv_buf_str(&payloads), now, producer};
        e = lv_pg_cmd(pg, SQL_EVENTS, 4, p);
    }
    lv_buf_free(&ids);
    lv_buf_free(&payloads);
    lv_buf_free(&tmp);
    return e;
}

int mat_sweep(mat_t *m, PGconn *pg, const char *run_id, const char *county, int y, int mo,
              char *detail, size_t n)
{
    int64_t now_ms = lv_now_ms();
    const lv_policy_version_t *v = lv_policy_at(lv_service_policy(m->svc), now_ms);
    if (!v) {
        snprintf(detail, n, "no policy version in effect");
        return LV_ETRANSIENT;
    }
    char month[32], now[24], k[16], drop[16], at[24];
    snprintf(month, sizeof month, "%04d-%02d-01", y, mo);
    snprintf(now, sizeof now, "%lld", (long long)now_ms);
    snprintf(k, sizeof k, "%d", v->wage_prior_months);
    snprintf(drop, sizeof drop, "%d", v->wage_drop_permille);
    snprintf(at, sizeof at, "%lld", (long long)(lv_days_from_civil(y, mo, 1) * LV_DAY_MS));

    /* 1. wage drops, and the households they touch evaluated again */
    const char *p[6] = {county, month, k, drop, now, at};
    PGresult *res;
    int e = lv_pg_query(pg, &res, SQL_WAGE_DROP, 6, p);
    if (e)
        return e;
    int drops = PQntuples(res), alerts = 0;
    if (drops > 0) {
        mat_touched_t t;
        mat_touched_init(&t);
        for (int i = 0; i < drops; i++)
            mat_touched_add(&t, PQgetvalue(res, i, 0), month, "sweep");
        e = mat_touched_end(&t);
        if (!e)
            e = mat_evaluate(m, pg, run_id, &t, now_ms, &alerts, detail, n);
        mat_touched_free(&t);
    }
    PQclear(res);
    if (e)
        return e;

    /* 2. the yellow watch list's visit reminders */
    const char *rp[3] = {county, month, now};
    if ((e = lv_pg_query(pg, &res, SQL_REMINDERS, 3, rp)))
        return e;
    int reminders = PQntuples(res);
    e = remind(pg, m->name, res, month, now);
    PQclear(res);
    if (e)
        return e;

    /* 3. the timer's state */
    if ((e = lv_pg_cmd(pg, SQL_STATE, 3, rp)))
        return e;
    snprintf(detail, n,
             "月度监测 %.7s 县 %s: 工资性收入下降 %d 户, 新预警 %d 户, 走访提醒 %d 户 "
             "(sweep: %d wage drops, %d alerts, %d visit reminders)",
             month, *county ? county : "全部 (all)", drops, alerts, reminders, drops, alerts,
             reminders);
    return 0;
}

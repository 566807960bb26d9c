/* Monitoring and 风险消除: the 一户一策 measures of a monitored household,
 * the elimination rules (lifecycle_exit_blockers in db/005_lifecycle.sql,
 * with the policy's values as parameters) and the proposal sweep that sends
 * the 回访 when every other rule holds (the 回访 measures the income: matching
 * trusts a verification result over the registry, so only a 回访 can show a
 * verified household's income risen above the line). A household where no member can
 * work is never proposed: it stays monitored. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsp_int.h"
#include "lv_err.h"
#include "lv_log.h"
#include "lv_money.h"
#include "lv_pg.h"
#include "lv_time.h"

#define SWEEP_BATCH "200"
#define SWEEP_BATCH_N 200
#define MAX_NOTE 4000

static const char *const s_kinds[][2] = {
    {"industry", "产业帮扶"},   {"employment", "就业帮扶"}, {"medical", "医疗帮扶"},
    {"education", "教育帮扶"},  {"social", "社会救助"},     {"relief", "临时救助"},
    {"fund", "资金帮扶"},       {"other", "其他帮扶"},
};
#define NKINDS (sizeof s_kinds / sizeof s_kinds[0])

static void i64s(char *out, size_t n, int64_t v)
{
    snprintf(out, n, "%lld", (long long)v);
}

static void policy_args(const lv_policy_version_t *v, char now[24], char months[16],
                        char measures[16], char line[24])
{
    i64s(now, 24, dsp_now_ms());
    snprintf(months, 16, "%d", v->elimination_months);
    snprintf(measures, 16, "%d", v->elimination_min_measures);
    i64s(line, 24, v->income_line_fen);
}

static void add_line(char *out, size_t n, const char *text)
{
    size_t len = strlen(out);
    snprintf(out + len, n - len, "%s%s", len ? "; " : "", text);
}

int dsp_exit_blockers(PGconn *pg, const dsp_case_t *c, const lv_policy_version_t *v, char *out,
                      size_t outlen, int *n, bool *income)
{
    char now[24], months[16], measures[16], line[24];
    policy_args(v, now, months, measures, line);
    const char *p[5] = {c->case_id, now, months, measures, line};
    PGresult *res;
    int e = lv_pg_query(pg, &res,
                        "SELECT array_to_string(lifecycle_exit_blockers($1, $2::bigint, $3::int, "
                        "$4::int, $5::bigint), ','), coalesce(c.identified_ms, 0), "
                        "(SELECT count(*) FROM measure m WHERE m.case_id = c.case_id "
                        " AND m.delivered_ms IS NOT NULL AND m.delivered_ms <= $2::bigint), "
                        "coalesce(lifecycle_pci_after(c.household_id), 0) "
                        "FROM hcase c WHERE c.case_id = $1",
                        5, p);
    if (e)
        return e;
    *out = '\0';
    *n = 0;
    *income = false;
    if (PQntuples(res) != 1) {
        PQclear(res);
        return LV_ENOTFOUND;
    }
    char codes[256], text[400], a[32], b[32], day[11];
    snprintf(codes, sizeof codes, ",%s,", PQgetvalue(res, 0, 0));
    if (strstr(codes, ",no_labour,")) {
        add_line(out, outlen, "家庭成员均无劳动能力, 不作风险消除, 继续监测并落实兜底保障 "
                              "(no member able to work: stays monitored)");
        (*n)++;
    }
    if (strstr(codes, ",too_early,")) {
        lv_date_format(strtoll(PQgetvalue(res, 0, 1), NULL, 10), day);
        snprintf(text, sizeof text, "%s 纳入监测, 未满 %d 个月 (fewer than %d months since 县级审定)",
                 day, v->elimination_months, v->elimination_months);
        add_line(out, outlen, text);
        (*n)++;
    }
    if (strstr(codes, ",measures,")) {
        snprintf(text, sizeof text, "已落实帮扶措施 %s 项, 少于 %d 项 (too few measures delivered)",
                 PQgetvalue(res, 0, 2), v->elimination_min_measures);
        add_line(out, outlen, text);
        (*n)++;
    }
    if (strstr(codes, ",income,")) {
        *income = true;
        lv_money_format(strtoll(PQgetvalue(res, 0, 3), NULL, 10), a, sizeof a);
        lv_money_format(v->income_line_fen, b, sizeof b);
        snprintf(text, sizeof text, "扣除刚性支出后人均纯收入 %s 元低于监测线 %s 元 (pci_after below the line)",
                 a, b);
        add_line(out, outlen, text);
        (*n)++;
    }
    if (strstr(codes, ",recent_alert,")) {
        snprintf(text, sizeof text, "近 %d 个月内出现新的风险预警 (new risk in the last %d months)",
                 v->elimination_months, v->elimination_months);
        add_line(out, outlen, text);
        (*n)++;
    }
    if (strstr(codes, ",rigid_open,")) {
        add_line(out, outlen, "尚有预留未发放的帮扶资金, 刚性支出风险未解除 (a payout is still pending)");
        (*n)++;
    }
    PQclear(res);
    return 0;
}

int dsp_exit_propose(PGconn *pg, dsp_case_t *c, const char *actor, const char *role,
                     const char *why, const lv_policy_version_t *v, char *task_id, size_t n)
{
    const char *p[1] = {c->case_id};
    int e = lv_pg_cmd(pg, "UPDATE hcase SET exit_stage = 'revisit' WHERE case_id = $1", 1, p);
    if (e || (e = dsp_timeline(pg, c, actor, role, "elimination_proposed", why, v->version)))
        return e;
    snprintf(c->exit_stage, sizeof c->exit_stage, "revisit");
    return dsp_task_new(pg, c, "revisit", NULL, v, task_id, n);
}

/* ---- measures ------------------------------------------------------------ */

static const char *measure_kind(const char *k, const char **zh)
{
    for (size_t i = 0; i < NKINDS; i++)
        if (!strcmp(k, s_kinds[i][0]) || !strcmp(k, s_kinds[i][1])) {
            *zh = s_kinds[i][1];
            return s_kinds[i][0];
        }
    return NULL;
}

/* A delivery date may be today (a date is UTC midnight) but not later. */
static bool delivered_ok(int64_t ms)
{
    return ms > 0 && ms <= dsp_now_ms() + LV_DAY_MS;
}

static int monitored_case(PGconn *pg, const char *case_id, dsp_case_t *c, lv_reply_t *reply)
{
    bool found;
    int e = dsp_case_load(pg, case_id, false, c, &found);
    if (e)
        return e;
    if (!found)
        return dsp_refuse(reply, "没有这个案件 (no such case) %s", case_id);
    if (strcmp(c->status, "monitoring"))
        return dsp_refuse(reply, "帮扶措施只针对监测对象 (only a monitored case); 案件 %s 为 %s",
                          case_id, c->status);
    return 0;
}

int dsp_measure(dsp_t *d, PGconn *pg, const Levee__Command *cmd, lv_reply_t *reply)
{
    const lv_policy_version_t *v = dsp_policy(d);
    if (!v)
        return LV_ETRANSIENT;
    const char *zh = NULL, *kind = measure_kind(cmd->measure_kind, &zh);
    if (!kind)
        return dsp_refuse(reply, "未知帮扶措施类别 (unknown kind) %s; one of industry employment "
                                 "medical education social relief fund other (或中文名)",
                          cmd->measure_kind);
    if (!*cmd->note || strlen(cmd->note) > MAX_NOTE)
        return dsp_refuse(reply, "须说明帮扶措施内容 (--note, at most %d bytes)", MAX_NOTE);
    if (cmd->delivered_ms && !delivered_ok(cmd->delivered_ms))
        return dsp_refuse(reply, "落实日期不能晚于今天 (delivery date in the future)");
    dsp_case_t c;
    int e = monitored_case(pg, cmd->case_id, &c, reply);
    if (e)
        return e;
    char n[24], id[128], now[24], del[24];
    const char *p0[1] = {c.case_id};
    if ((e = lv_pg_scalar(pg, n, sizeof n, "SELECT count(*) + 1 FROM measure WHERE case_id = $1", 1,
                          p0)))
        return e;
    snprintf(id, sizeof id, "%s-M%s", c.case_id, n);
    i64s(now, sizeof now, dsp_now_ms());
    i64s(del, sizeof del, cmd->delivered_ms);
    const char *p[9] = {id, c.case_id, c.household_id, c.county, kind, cmd->note,
                        cmd->delivered_ms ? del : NULL, cmd->actor, now};
    if ((e = lv_pg_cmd(pg,
                       "INSERT INTO measure (measure_id, case_id, household_id, county, kind, note, "
                       "delivered_ms, actor, created_ms, updated_ms) "
                       "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
                       9, p)))
        return e;
    char detail[MAX_NOTE + 200], day[11] = "";
    if (cmd->delivered_ms)
        lv_date_format(cmd->delivered_ms, day);
    snprintf(detail, sizeof detail, "帮扶措施 %s %s (%s%s): %s", id, zh,
             cmd->delivered_ms ? "已落实 " : "计划", day, cmd->note);
    if ((e = dsp_timeline(pg, &c, cmd->actor, cmd->role, "measure", detail, v->version)))
        return e;
    snprintf(reply->detail, sizeof reply->detail, "帮扶措施已记录 (measure recorded): %s", id);
    return 0;
}

int dsp_measure_delivered(dsp_t *d, PGconn *pg, const Levee__Command *cmd, lv_reply_t *reply)
{
    const lv_policy_version_t *v = dsp_policy(d);
    if (!v)
        return LV_ETRANSIENT;
    int64_t at = cmd->delivered_ms ? cmd->delivered_ms : dsp_now_ms();
    if (!delivered_ok(at))
        return dsp_refuse(reply, "落实日期不能晚于今天 (delivery date in the future)");
    const char *p0[1] = {cmd->measure_id};
    PGresult *res;
    int e = lv_pg_query(pg, &res,
                        "SELECT case_id, delivered_ms IS NOT NULL, kind FROM measure "
                        "WHERE measure_id = $1 FOR UPDATE",
                        1, p0);
    if (e)
        return e;
    if (PQntuples(res) != 1) {
        PQclear(res);
        return dsp_refuse(reply, "没有这项帮扶措施 (no such measure) %s", cmd->measure_id);
    }
    char case_id[96];
    bool already = PQgetvalue(res, 0, 1)[0] == 't';
    snprintf(case_id, sizeof case_id, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    if (already)
        return dsp_refuse(reply, "帮扶措施 %s 已落实 (already delivered)", cmd->measure_id);
    dsp_case_t c;
    if ((e = monitored_case(pg, case_id, &c, reply)))
        return e;
    char at_s[24], now[24], day[11], detail[300];
    i64s(at_s, sizeof at_s, at);
    i64s(now, sizeof now, dsp_now_ms());
    const char *p[3] = {cmd->measure_id, at_s, now};
    if ((e = lv_pg_cmd(pg, "UPDATE measure SET delivered_ms = $2, updated_ms = $3 WHERE measure_id = $1",
                       3, p)))
        return e;
    lv_date_format(at, day);
    snprintf(detail, sizeof detail, "帮扶措施 %s 已落实 (%s)", cmd->measure_id, day);
    if ((e = dsp_timeline(pg, &c, cmd->actor, cmd->role, "measure_delivered", detail, v->version)))
        return e;
    snprintf(reply->detail, sizeof reply->detail, "%s", detail);
    return 0;
}

/* ---- proposals ------------------------------------------------------------ */

/* A batch of monitored cases after the cursor; eligible when every rule
 * but the income holds and no 回访 went out since the facts last changed (approval, a new
 * alert, a measure delivered), so a 回访 that did not confirm is not sent
 * again until something new happens. */
static const char *const SQL_SWEEP =
    "WITH b AS (SELECT case_id, identified_ms, last_alert_ms FROM hcase "
    "  WHERE status = 'monitoring' AND exit_stage IS NULL AND case_id > $1 "
    "  ORDER BY case_id LIMIT " SWEEP_BATCH ") "
    "SELECT b.case_id, cardinality(array_remove(lifecycle_exit_blockers(b.case_id, $2::bigint, "
    "  $3::int, $4::int, $5::bigint), 'income')) = 0 AND NOT EXISTS (SELECT 1 FROM task t WHERE t.case_id = b.case_id "
    "  AND t.kind = 'revisit' AND t.created_ms >= greatest(coalesce(b.identified_ms, 0), "
    "  coalesce(b.last_alert_ms, 0), coalesce((SELECT max(m.updated_ms) FROM measure m "
    "  WHERE m.case_id = b.case_id AND m.delivered_ms IS NOT NULL), 0))) "
    "FROM b ORDER BY b.case_id";

static int propose_one(PGconn *pg, const char *case_id, const lv_policy_version_t *v)
{
    dsp_case_t c;
    bool found;
    int e = dsp_case_load(pg, case_id, false, &c, &found);
    if (e || !found || strcmp(c.status, "monitoring") || *c.exit_stage)
        return e;
    char task_id[128];
    return dsp_exit_propose(pg, &c, "levee-dispatch", "system",
                            "风险消除条件已满足 (时间、帮扶措施、刚性支出), 提出风险消除并派发回访核实收入",
                            v, task_id, sizeof task_id);
}

int dsp_propose_exits(dsp_t *d, PGconn *pg)
{
    const lv_policy_version_t *v = dsp_policy(d);
    if (!v)
        return 0;
    char now[24], months[16], measures[16], line[24];
    policy_args(v, now, months, measures, line);
    const char *p[5] = {d->sweep_after, now, months, measures, line};
    PGresult *res;
    if (lv_pg_query(pg, &res, SQL_SWEEP, 5, p))
        return 0;
    int n = PQntuples(res), done = 0, upto = n; /* rows handled */
    for (int i = 0; i < n; i++) {
        if (PQgetvalue(res, i, 1)[0] != 't')
            continue;
        int e = lv_pg_begin(pg);
        if (!e)
            e = propose_one(pg, PQgetvalue(res, i, 0), v);
        if (e || (e = lv_pg_commit(pg))) {
            lv_pg_rollback(pg);
            lv_warn("case %s: 风险消除 proposal failed (%s); retried", PQgetvalue(res, i, 0),
                    lv_strerror(e));
            upto = i;
            break;
        }
        done++;
    }
    /* The cursor walks through the monitored cases and wraps at the end. */
    if (upto == n && n < SWEEP_BATCH_N)
        d->sweep_after[0] = '\0';
    else if (upto > 0)
        snprintf(d->sweep_after, sizeof d->sweep_after, "%s", PQgetvalue(res, upto - 1, 0));
    PQclear(res);
    return done;
}

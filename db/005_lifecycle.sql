-- The case lifecycle: screening, 抽样复核, 回访 and 风险消除, task escalation
-- and the investigators' Redis queues. Times are UTC ms, money is fen.

-- A grade's order for sorting work: red before orange before yellow.
CREATE FUNCTION lv_grade_rank(grade text) RETURNS int
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE grade WHEN 'red' THEN 3 WHEN 'orange' THEN 2 WHEN 'yellow' THEN 1 ELSE 0 END
$$;

-- exit_stage: the 风险消除 procedure of a monitored case, NULL while none
-- runs: revisit (a 回访 task is out), confirmed (the 回访 confirmed), then
-- deliberate, publicize, publicizing, town_review, county_approve.
ALTER TABLE hcase
    ADD COLUMN exit_stage    text CHECK (exit_stage IN ('revisit', 'confirmed', 'deliberate',
                             'publicize', 'publicizing', 'town_review', 'county_approve')),
    ADD COLUMN identified_ms bigint,   -- 县级审定: entered monitoring
    ADD COLUMN eliminated_ms bigint,
    ADD COLUMN last_alert_ms bigint,   -- the latest alert (new evidence of risk) for this episode
    ADD COLUMN verified_by   text;     -- the investigator of the latest accepted verification
CREATE INDEX hcase_publicity ON hcase (publicity_end_ms)
    WHERE status = 'publicizing' OR exit_stage = 'publicizing';
CREATE INDEX hcase_monitoring ON hcase (case_id) WHERE status = 'monitoring';

ALTER TABLE task DROP CONSTRAINT task_kind_check;
ALTER TABLE task ADD CONSTRAINT task_kind_check CHECK (kind IN ('verify', 'recheck', 'revisit'));
ALTER TABLE task
    ADD COLUMN exclude_assignee text,          -- recheck: never the verifier
    ADD COLUMN assigned_ms      bigint,
    ADD COLUMN assignments      int NOT NULL DEFAULT 0,
    ADD COLUMN escalations      int NOT NULL DEFAULT 0,
    ADD COLUMN escalated_due_ms bigint;        -- the due time last escalated, so once per due
CREATE INDEX task_open_due ON task (due_ms) WHERE status = 'open';
CREATE INDEX task_case ON task (case_id);

-- Per county: the verifications that could be sampled and what the
-- re-checks found. The sample is drawn from these counters and the case id,
-- so a restart never draws again (see dispatch).
CREATE TABLE recheck_stats (
    county    char(6) PRIMARY KEY,
    verified  bigint NOT NULL DEFAULT 0,
    sampled   bigint NOT NULL DEFAULT 0,
    agreed    bigint NOT NULL DEFAULT 0,
    sent_back bigint NOT NULL DEFAULT 0
);

-- 一户一策: the assistance measures of a monitored household.
CREATE TABLE measure (
    measure_id   text PRIMARY KEY,        -- case_id '-M' n
    case_id      text NOT NULL REFERENCES hcase,
    household_id text NOT NULL,
    county       char(6) NOT NULL,
    kind         text NOT NULL,
    note         text NOT NULL,
    delivered_ms bigint,                  -- NULL while only planned
    actor        text NOT NULL,
    created_ms   bigint NOT NULL,
    updated_ms   bigint NOT NULL
);
CREATE INDEX measure_case ON measure (case_id);
CREATE INDEX measure_household ON measure (household_id);

-- Changes to the investigators' Redis queues, written with the task change
-- and applied to Redis after the commit (Postgres is the truth; the streams
-- are rebuilt from the task table when Redis lost them).
CREATE TABLE task_queue_op (
    seq             bigserial PRIMARY KEY,
    investigator_id text NOT NULL,
    task_id         text NOT NULL,
    op              text NOT NULL CHECK (op IN ('add', 'ack')),
    created_ms      bigint NOT NULL
);

-- The same day and time p_months calendar months after ms (UTC); the end of
-- a shorter month when the day does not exist (Jan 31 + 1 month = Feb 28/29).
CREATE FUNCTION lifecycle_months_after(ms bigint, p_months int) RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (extract(epoch FROM (to_timestamp(ms / 1000.0) AT TIME ZONE 'UTC')
                               + make_interval(months => p_months)) * 1000)::bigint
$$;

-- A household whose members are all registered without labour capacity (无).
CREATE FUNCTION lifecycle_no_labour(p_household text) RETURNS boolean
    LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM person p WHERE p.household_id = p_household)
       AND NOT EXISTS (SELECT 1 FROM person p WHERE p.household_id = p_household
                       AND coalesce(p.labour, '') <> '无')
$$;

-- A household's income per person after rigid expenditure (fen, rounded
-- down), from its freshest figures: a verification, re-check or 回访 result
-- recorded after matching last judged the household, else matching's
-- picture (household_state). Matching trusts a verification result over
-- every other source, so once it next judges the household it agrees.
-- NULL when neither is known.
CREATE FUNCTION lifecycle_pci_after(p_household text) RETURNS bigint
    LANGUAGE sql STABLE AS $$
    SELECT coalesce(
        (SELECT floor(((t.result->>'annual_net_income_fen')::numeric
                       - coalesce((t.result->>'rigid_expense_fen')::numeric, 0))
                      / (t.result->>'members')::numeric)::bigint
           FROM task t
          WHERE t.household_id = p_household AND t.status = 'done'
            AND t.result->>'annual_net_income_fen' IS NOT NULL
            AND (t.result->>'members')::int >= 1
            AND t.completed_ms > coalesce((SELECT s.evaluated_ms FROM household_state s
                                            WHERE s.household_id = p_household), 0)
          ORDER BY t.completed_ms DESC, t.task_id DESC LIMIT 1),
        (SELECT floor((s.income_fen - s.rigid_fen)::numeric / s.members)::bigint
           FROM household_state s WHERE s.household_id = p_household AND s.members >= 1))
$$;

-- What stands in the way of 风险消除 for a monitored case, as codes:
-- no_labour (no member able to work: never eliminated, stays monitored),
-- too_early (fewer than p_months since 县级审定), measures (fewer than
-- p_min_measures delivered), income (the household's freshest figures,
-- lifecycle_pci_after, are below the line or unknown), recent_alert (new evidence of risk in
-- the last p_months), rigid_open (a payout for a rigid expenditure is still
-- reserved, not paid). The policy values are parameters.
CREATE FUNCTION lifecycle_exit_blockers(p_case text, p_now bigint, p_months int,
                                        p_min_measures int, p_line bigint) RETURNS text[]
    LANGUAGE sql STABLE AS $$
    SELECT array_remove(ARRAY[
        CASE WHEN lifecycle_no_labour(c.household_id) THEN 'no_labour' END,
        CASE WHEN c.identified_ms IS NULL
              OR lifecycle_months_after(c.identified_ms, p_months) > p_now
             THEN 'too_early' END,
        CASE WHEN (SELECT count(*) FROM measure m WHERE m.case_id = c.case_id
                   AND m.delivered_ms IS NOT NULL AND m.delivered_ms <= p_now) < p_min_measures
             THEN 'measures' END,
        CASE WHEN coalesce(lifecycle_pci_after(c.household_id) < p_line, true)
             THEN 'income' END,
        CASE WHEN c.last_alert_ms IS NOT NULL AND c.identified_ms IS NOT NULL
              AND c.last_alert_ms > c.identified_ms
              AND lifecycle_months_after(c.last_alert_ms, p_months) > p_now
             THEN 'recent_alert' END,
        CASE WHEN EXISTS (SELECT 1 FROM payout py WHERE py.household_id = c.household_id
                          AND py.status = 'pending')
             THEN 'rigid_open' END
    ]::text[], NULL)
    FROM hcase c LEFT JOIN household_state s ON s.household_id = c.household_id
    WHERE c.case_id = p_case
$$;


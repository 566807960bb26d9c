-- The baseline a data team would write for a province's monthly peak: psql
-- \copy of the feed CSVs into tables with the same unique keys as Levee's
-- (registry: household_id + id_number; the other feeds: record_id), then SQL
-- that computes the households the default policy alerts on (SPEC.md,
-- Default policy), with their grade.
--
-- Run by bench/run-peak from the data directory (\copy paths are relative),
-- in two parts chosen by psql variables:
--   -v part=registry  the registry: persons and households (not timed: the
--                     population exists before the month's feeds arrive)
--   -v part=month     the month's seven event feeds and the alerted set
--                     (timed), into bl.alerted (household_id, grade)
-- and -v line=<income line in fen> (the policy's income_line_fen),
-- -v poverty_num=2 -v poverty_den=3 (poverty_line_ratio),
-- -v window_days=365 (rigid_window_days).
\set ON_ERROR_STOP 1

SELECT :'part' = 'registry' AS registry_part \gset
\if :registry_part
DROP SCHEMA IF EXISTS bl CASCADE;
CREATE SCHEMA bl;
CREATE TABLE bl.registry (
    household_id text NOT NULL, region_code text NOT NULL, household_type text NOT NULL,
    exit_year int, id_number text NOT NULL, name text NOT NULL, relation text,
    disability_grade int, chronic_illness text, labour text, phone text,
    annual_net_income numeric(14, 2),
    PRIMARY KEY (household_id, id_number)
);
\copy bl.registry FROM 'registry.csv' WITH (FORMAT csv, HEADER)
CREATE TABLE bl.person AS
    SELECT DISTINCT ON (id_number) id_number, household_id FROM bl.registry;
ALTER TABLE bl.person ADD PRIMARY KEY (id_number);
CREATE TABLE bl.household AS
    WITH m AS (SELECT household_id, count(*) AS members FROM bl.person GROUP BY household_id)
    SELECT r.household_id, (array_agg(r.household_type))[1] AS household_type,
           (max(r.annual_net_income) * 100)::bigint AS income_fen,
           coalesce(max(m.members), 0) AS members
    FROM bl.registry r LEFT JOIN m USING (household_id) GROUP BY r.household_id;
ALTER TABLE bl.household ADD PRIMARY KEY (household_id);
ANALYZE bl.person;
ANALYZE bl.household;
\endif

SELECT :'part' = 'month' AS month_part \gset
\if :month_part
CREATE TABLE bl.medical (
    record_id text PRIMARY KEY, id_number text NOT NULL, name text NOT NULL,
    settle_date date NOT NULL, total_cost numeric(14, 2) NOT NULL, compliant_cost numeric(14, 2),
    reimbursed numeric(14, 2) NOT NULL, self_paid numeric(14, 2) NOT NULL);
CREATE TABLE bl.civil (
    record_id text PRIMARY KEY, id_number text NOT NULL, name text NOT NULL,
    event_date date NOT NULL, kind text NOT NULL, amount numeric(14, 2), disability_grade text);
CREATE TABLE bl.disaster (
    record_id text PRIMARY KEY, id_number text NOT NULL, event_date date NOT NULL,
    disaster_type text NOT NULL, loss_amount numeric(14, 2) NOT NULL, house_damage text);
CREATE TABLE bl.education (
    record_id text PRIMARY KEY, id_number text NOT NULL, name text NOT NULL,
    event_date date NOT NULL, stage text NOT NULL, cost numeric(14, 2) NOT NULL,
    aid numeric(14, 2));
CREATE TABLE bl.income (
    record_id text PRIMARY KEY, id_number text NOT NULL, period text NOT NULL,
    amount numeric(14, 2) NOT NULL, kind text);
CREATE TABLE bl.declaration (
    record_id text PRIMARY KEY, id_number text NOT NULL, name text NOT NULL,
    event_date date NOT NULL, reason text NOT NULL, amount numeric(14, 2), description text);
CREATE TABLE bl.visit (
    record_id text PRIMARY KEY, household_id text NOT NULL, visit_date date NOT NULL,
    visitor text NOT NULL, risk_factor text, income_estimate numeric(14, 2), note text);
\copy bl.medical FROM 'medical.csv' WITH (FORMAT csv, HEADER)
\copy bl.civil FROM 'civil.csv' WITH (FORMAT csv, HEADER)
\copy bl.disaster FROM 'disaster.csv' WITH (FORMAT csv, HEADER)
\copy bl.education FROM 'education.csv' WITH (FORMAT csv, HEADER)
\copy bl.income FROM 'income.csv' WITH (FORMAT csv, HEADER)
\copy bl.declaration FROM 'declaration.csv' WITH (FORMAT csv, HEADER)
\copy bl.visit FROM 'visit.csv' WITH (FORMAT csv, HEADER)

-- Evidence of risk per household (SPEC.md: medical 因病, education 因学,
-- disaster 因灾, civil 残疾认定 因残, declaration and visit their stated type);
-- rigid marks what counts toward rigid expenditure.
CREATE TEMP TABLE ev AS
    SELECT p.household_id AS hid, '因病'::text AS factor, (m.self_paid * 100)::bigint AS fen,
           m.settle_date AS d, true AS rigid, false AS collapsed
    FROM bl.medical m JOIN bl.person p USING (id_number)
    UNION ALL
    SELECT p.household_id, '因学', greatest(((e.cost - coalesce(e.aid, 0)) * 100)::bigint, 0),
           e.event_date, true, false
    FROM bl.education e JOIN bl.person p USING (id_number)
    UNION ALL
    SELECT p.household_id, '因灾', (x.loss_amount * 100)::bigint, x.event_date, true,
           coalesce(x.house_damage IN ('倒塌', '严重'), false)
    FROM bl.disaster x JOIN bl.person p USING (id_number)
    UNION ALL
    SELECT p.household_id, '因残', 0, c.event_date, false, false
    FROM bl.civil c JOIN bl.person p USING (id_number) WHERE c.kind = '残疾认定'
    UNION ALL
    SELECT p.household_id, s.reason, 0, s.event_date, false, false
    FROM bl.declaration s JOIN bl.person p USING (id_number)
    UNION ALL
    SELECT v.household_id, v.risk_factor, 0, v.visit_date, false, false
    FROM bl.visit v JOIN bl.household h USING (household_id) WHERE v.risk_factor IS NOT NULL;

-- The rolling window ends at the household's latest evidence.
CREATE TEMP TABLE pic AS
    WITH last AS (SELECT hid, max(d) AS last_d FROM ev GROUP BY hid),
    w AS (SELECT ev.* FROM ev JOIN last USING (hid)
          WHERE ev.d > last.last_d - :window_days)
    SELECT hid, sum(fen) FILTER (WHERE rigid) AS rigid, bool_or(collapsed) AS collapsed
    FROM w GROUP BY hid;

-- Income in order of trust: the latest visit estimate, the registry's annual
-- net income, the income rows of the 12 months to the latest period.
CREATE TEMP TABLE inc AS
    WITH vis AS (SELECT DISTINCT ON (household_id) household_id AS hid,
                        (income_estimate * 100)::bigint AS fen
                 FROM bl.visit WHERE income_estimate IS NOT NULL
                 ORDER BY household_id, visit_date DESC, record_id DESC),
    rows AS (SELECT p.household_id AS hid, to_date(i.period, 'YYYY-MM') AS period,
                    (i.amount * 100)::bigint AS fen
             FROM bl.income i JOIN bl.person p USING (id_number)),
    lp AS (SELECT hid, max(period) AS last_period FROM rows GROUP BY hid),
    feed AS (SELECT r.hid, sum(r.fen) AS fen FROM rows r JOIN lp USING (hid)
             WHERE r.period > lp.last_period - interval '12 months' GROUP BY r.hid)
    SELECT pic.hid, coalesce(vis.fen, h.income_fen, feed.fen) AS income,
           h.members, coalesce(pic.rigid, 0) AS rigid, pic.collapsed
    FROM pic JOIN bl.household h ON h.household_id = pic.hid
    LEFT JOIN vis ON vis.hid = pic.hid LEFT JOIN feed ON feed.hid = pic.hid;

-- In scope: income − rigid < line × members; red: under the poverty line
-- (line × poverty_num / poverty_den), a collapsed or badly damaged house, or
-- rigid ≥ income; orange otherwise.
CREATE TABLE bl.alerted AS
    SELECT hid AS household_id,
           CASE WHEN (income - rigid) * :poverty_den < :line::bigint * :poverty_num * members
                     OR collapsed OR rigid >= income THEN 'red' ELSE 'orange' END AS grade
    FROM inc
    WHERE income IS NOT NULL AND members > 0 AND income - rigid < :line::bigint * members;
\endif

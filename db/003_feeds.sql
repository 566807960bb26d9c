-- The department feeds beyond registry and medical (SPEC.md Feeds), the
-- household's money picture from them, and the monthly sweep (平台监测分析).
--
-- Ingest writes one typed table per feed in the transaction that inserts the
-- raw record (keyed by record_id, so a reload adds nothing); matching links
-- each row to its household: household_id stays NULL while the person is not
-- in the registry (the row also waits in unmatched_record) and is set when the
-- registry brings the person. county is the person's or household's county,
-- or the ID number's region until the person is known ('000000' for a visit
-- to a household not yet in the registry).

-- An import's encoding: 'utf-8' or 'gb18030'; NULL until detected.
ALTER TABLE import ADD COLUMN IF NOT EXISTS encoding text
    CHECK (encoding IN ('utf-8', 'gb18030'));

CREATE TABLE civil_record (                 -- 民政
    record_id        text PRIMARY KEY,
    household_id     text,
    county           char(6) NOT NULL,
    id_number        char(18) NOT NULL,
    name             text NOT NULL,
    event_ms         bigint NOT NULL,
    kind             text NOT NULL CHECK (kind IN ('低保', '特困', '临时救助', '残疾认定')),
    amount_fen       bigint,
    disability_grade int
);
CREATE INDEX civil_record_household ON civil_record (household_id, event_ms);
CREATE INDEX civil_record_waiting ON civil_record (id_number) WHERE household_id IS NULL;

CREATE TABLE disaster_record (              -- 应急管理
    record_id       text PRIMARY KEY,
    household_id    text,
    county          char(6) NOT NULL,
    id_number       char(18) NOT NULL,      -- the head of household
    event_ms        bigint NOT NULL,
    disaster_type   text NOT NULL,
    loss_amount_fen bigint NOT NULL,
    house_damage    text CHECK (house_damage IN ('无', '轻微', '严重', '倒塌'))
);
CREATE INDEX disaster_record_household ON disaster_record (household_id, event_ms);
CREATE INDEX disaster_record_waiting ON disaster_record (id_number) WHERE household_id IS NULL;

CREATE TABLE education_record (             -- 教育
    record_id    text PRIMARY KEY,
    household_id text,
    county       char(6) NOT NULL,
    id_number    char(18) NOT NULL,         -- the student
    name         text NOT NULL,
    event_ms     bigint NOT NULL,
    stage        text NOT NULL,
    cost_fen     bigint NOT NULL,
    aid_fen      bigint,
    school       text                       -- optional 学校 column: whom to tell
);
CREATE INDEX education_record_household ON education_record (household_id, event_ms);
CREATE INDEX education_record_waiting ON education_record (id_number) WHERE household_id IS NULL;

CREATE TABLE income_record (                -- 人社/务工收入, one row per person and month
    record_id    text PRIMARY KEY,
    household_id text,
    county       char(6) NOT NULL,
    id_number    char(18) NOT NULL,
    period       date NOT NULL CHECK (extract(day FROM period) = 1),  -- the month
    event_ms     bigint NOT NULL,           -- the period's first day
    amount_fen   bigint NOT NULL,
    kind         text CHECK (kind IN ('工资性', '经营性', '财产性', '转移性'))
);
CREATE INDEX income_record_household ON income_record (household_id, period);
CREATE INDEX income_record_waiting ON income_record (id_number) WHERE household_id IS NULL;
CREATE INDEX income_record_county_period ON income_record (county, period);

CREATE TABLE declaration_record (           -- 农户自主申报
    record_id    text PRIMARY KEY,
    household_id text,
    county       char(6) NOT NULL,
    id_number    char(18) NOT NULL,
    name         text NOT NULL,
    event_ms     bigint NOT NULL,
    reason       text NOT NULL,             -- 风险类型
    amount_fen   bigint,
    description  text
);
CREATE INDEX declaration_record_household ON declaration_record (household_id, event_ms);
CREATE INDEX declaration_record_waiting ON declaration_record (id_number) WHERE household_id IS NULL;

CREATE TABLE visit_record (                 -- 干部走访
    record_id           text PRIMARY KEY,
    household_id        text NOT NULL,
    county              char(6) NOT NULL,
    event_ms            bigint NOT NULL,    -- visit_date
    visitor             text NOT NULL,
    risk_factor         text,
    income_estimate_fen bigint,
    note                text
);
CREATE INDEX visit_record_household ON visit_record (household_id, event_ms);

-- A visit waits for its household (by household_id), the others for their
-- person (by id_number).
ALTER TABLE unmatched_record ALTER COLUMN id_number DROP NOT NULL;
ALTER TABLE unmatched_record ADD COLUMN household_id text;
CREATE INDEX unmatched_household ON unmatched_record (household_id) WHERE household_id IS NOT NULL;

-- The money picture's provenance and the risk factors' order: risk_factors[1]
-- is the primary factor (largest money effect in the window, else earliest).
ALTER TABLE household_state ADD COLUMN primary_risk text;
ALTER TABLE household_state ADD COLUMN house_collapsed boolean NOT NULL DEFAULT false;
ALTER TABLE household_state ADD COLUMN income_source text
    CHECK (income_source IN ('verification', 'visit', 'registry', 'income'));
ALTER TABLE alert ADD COLUMN primary_risk text;

-- Matching reads the latest verification result of a household.
CREATE INDEX IF NOT EXISTS task_household ON task (household_id);

-- The monthly sweep: risk found in trends of stored data (one row per
-- household, factor and month, so a second sweep of a month adds nothing),
-- the reminders it sent, and the last month swept per county (the timer).
CREATE TABLE risk_signal (
    household_id text NOT NULL,
    county       char(6) NOT NULL,
    factor       text NOT NULL,
    month        date NOT NULL,
    at_ms        bigint NOT NULL,           -- the month's first day: the evidence's date
    effect_fen   bigint NOT NULL,           -- money effect over 12 months
    detail       text NOT NULL,
    created_ms   bigint NOT NULL,
    PRIMARY KEY (household_id, factor, month)
);
CREATE INDEX risk_signal_county ON risk_signal (county, month);

CREATE TABLE visit_reminder (
    household_id text NOT NULL,
    county       char(6) NOT NULL,
    month        date NOT NULL,
    grade        text NOT NULL,
    created_ms   bigint NOT NULL,
    PRIMARY KEY (household_id, month)
);

CREATE TABLE sweep_state (
    county     char(6) PRIMARY KEY,
    last_month date NOT NULL,
    swept_ms   bigint NOT NULL
);

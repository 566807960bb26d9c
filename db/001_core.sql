-- Levee core schema. Every table carries the county code (first 6 digits of
-- the region code) so it can later be distributed by county. Times are UTC
-- milliseconds (bigint), money is fen (bigint).

-- Messaging: a transactional outbox per producer and the ids each consumer has
-- consumed. A producer writes outbox rows in the transaction that makes the
-- state change; its relay sends them and deletes a row once the consumer acks.
CREATE TABLE outbox (
    seq        bigserial PRIMARY KEY,
    msg_id     text NOT NULL UNIQUE,
    producer   text NOT NULL,
    dest       text NOT NULL,
    msg_type   text NOT NULL,
    payload    bytea NOT NULL,
    created_ms bigint NOT NULL
);
CREATE INDEX outbox_dest ON outbox (dest, seq);

CREATE TABLE consumed (
    consumer    text NOT NULL,
    msg_id      text NOT NULL,
    consumed_ms bigint NOT NULL,
    PRIMARY KEY (consumer, msg_id)
);

CREATE TABLE dead_letter (
    id         bigserial PRIMARY KEY,
    consumer   text NOT NULL,
    msg_id     text NOT NULL,
    msg_type   text NOT NULL,
    reason     text NOT NULL,
    payload    bytea,
    created_ms bigint NOT NULL,
    UNIQUE (consumer, msg_id)
);

-- Ingest: imports, their rejected rows, and the accepted raw records.
CREATE TABLE import (
    import_id   bigserial PRIMARY KEY,
    source      text NOT NULL,
    path        text NOT NULL,
    status      text NOT NULL DEFAULT 'queued'
                CHECK (status IN ('queued', 'running', 'done', 'failed')),
    rows_done   bigint NOT NULL DEFAULT 0,  -- data rows consumed: the resume checkpoint
    bytes_done  bigint NOT NULL DEFAULT 0,
    bytes_total bigint NOT NULL DEFAULT 0,
    accepted    bigint NOT NULL DEFAULT 0,
    duplicates  bigint NOT NULL DEFAULT 0,
    rejected    bigint NOT NULL DEFAULT 0,
    batches     bigint NOT NULL DEFAULT 0,
    error       text,
    created_ms  bigint NOT NULL,
    started_ms  bigint,
    finished_ms bigint
);

CREATE TABLE import_reject (
    import_id   bigint NOT NULL REFERENCES import,
    row_no      bigint NOT NULL,
    column_name text NOT NULL,
    reason      text NOT NULL,
    raw         text NOT NULL,
    PRIMARY KEY (import_id, row_no)
);

-- A record's key is source + record_id (registry: household_id:id_number).
-- A changed registry row is a new revision (rev = content hash) so the old
-- values stay in the household's history; other feeds use rev ''.
CREATE TABLE record (
    source     text NOT NULL,
    record_id  text NOT NULL,
    rev        text NOT NULL DEFAULT '',
    county     char(6) NOT NULL,
    id_number  text,
    event_ms   bigint,
    amount_fen bigint,
    import_id  bigint NOT NULL,
    row_no     bigint NOT NULL,
    raw        text NOT NULL,
    PRIMARY KEY (source, record_id, rev)
);

-- Matching: people, households and the money picture.
CREATE TABLE household (
    household_id      text PRIMARY KEY,
    region_code       char(12) NOT NULL,
    county            char(6) NOT NULL,
    household_type    text NOT NULL,
    exit_year         int,
    annual_income_fen bigint,
    phone             text,
    updated_ms        bigint NOT NULL
);
CREATE INDEX household_county ON household (county);

CREATE TABLE person (
    id_number        char(18) PRIMARY KEY,
    household_id     text NOT NULL REFERENCES household,
    county           char(6) NOT NULL,
    name             text NOT NULL,
    relation         text,
    disability_grade int NOT NULL DEFAULT 0,
    chronic_illness  boolean NOT NULL DEFAULT false,
    labour           text,
    phone            text,
    updated_ms       bigint NOT NULL
);
CREATE INDEX person_household ON person (household_id);

CREATE TABLE household_history (
    seq          bigserial PRIMARY KEY,
    household_id text NOT NULL,
    county       char(6) NOT NULL,
    at_ms        bigint NOT NULL,
    what         text NOT NULL,
    old_value    text,
    new_value    text
);

CREATE TABLE medical_expense (
    record_id          text PRIMARY KEY,
    household_id       text NOT NULL,
    county             char(6) NOT NULL,
    id_number          char(18) NOT NULL,
    settle_ms          bigint NOT NULL,
    self_paid_fen      bigint NOT NULL,   -- counts toward rigid expenditure
    compliant_self_fen bigint NOT NULL    -- the base of the illness payout
);
CREATE INDEX medical_expense_household ON medical_expense (household_id, settle_ms);

-- Records whose person is not (yet) known: kept, never dropped, re-tried when
-- the registry brings the person.
CREATE TABLE unmatched_record (
    source             text NOT NULL,
    record_id          text NOT NULL,
    county             char(6) NOT NULL,
    id_number          text NOT NULL,
    event_ms           bigint,
    self_paid_fen      bigint,
    compliant_self_fen bigint,
    reason             text NOT NULL,
    created_ms         bigint NOT NULL,
    PRIMARY KEY (source, record_id)
);
CREATE INDEX unmatched_id ON unmatched_record (id_number);

CREATE TABLE household_state (
    household_id   text PRIMARY KEY,
    county         char(6) NOT NULL,
    in_scope       boolean NOT NULL,
    grade          text,
    category       text,
    risk_factors   text[] NOT NULL DEFAULT '{}',
    income_fen     bigint NOT NULL,
    members        int NOT NULL,
    rigid_fen      bigint NOT NULL,
    pci_fen        bigint NOT NULL,
    pci_after_fen  bigint NOT NULL,
    policy_version text NOT NULL,
    explanation    text NOT NULL,
    evaluated_ms   bigint NOT NULL
);

CREATE TABLE alert (
    alert_id          text PRIMARY KEY,
    household_id      text NOT NULL,
    county            char(6) NOT NULL,
    grade             text NOT NULL,
    category          text,
    risk_factors      text[] NOT NULL,
    income_fen        bigint NOT NULL,
    members           int NOT NULL,
    rigid_fen         bigint NOT NULL,
    pci_fen           bigint NOT NULL,
    pci_after_fen     bigint NOT NULL,
    policy_version    text NOT NULL,
    trigger_source    text NOT NULL,
    trigger_record_id text NOT NULL,
    explanation       text NOT NULL,
    read_ms           bigint,
    created_ms        bigint NOT NULL
);
CREATE INDEX alert_household ON alert (household_id);

-- Dispatch: cases (one per household episode), verification tasks, the
-- append-only timeline (一户一档).
CREATE TABLE investigator (
    investigator_id text PRIMARY KEY,
    name            text NOT NULL,
    region_prefix   text NOT NULL,
    active          boolean NOT NULL DEFAULT true
);

CREATE TABLE hcase (
    case_id        text PRIMARY KEY,     -- household_id '-' episode
    household_id   text NOT NULL,
    county         char(6) NOT NULL,
    region_code    char(12) NOT NULL,
    episode        int NOT NULL,
    status         text NOT NULL CHECK (status IN ('candidate', 'verifying', 'reviewing',
                   'publicizing', 'monitoring', 'eliminated', 'rejected')),
    stage          text NOT NULL,        -- the next step expected
    grade          text,
    category       text,
    risk_factors   text[] NOT NULL DEFAULT '{}',
    primary_risk   text,
    income_fen     bigint,
    members        int,
    rigid_fen      bigint,
    opened_ms      bigint NOT NULL,
    deadline_ms    bigint NOT NULL,
    publicity_end_ms bigint,
    closed_ms      bigint,
    trigger_alert  text NOT NULL,
    policy_version text NOT NULL,
    UNIQUE (household_id, episode)
);
-- Never two open episodes for one household.
CREATE UNIQUE INDEX hcase_one_open ON hcase (household_id)
    WHERE status NOT IN ('eliminated', 'rejected');

CREATE TABLE task (
    task_id      text PRIMARY KEY,       -- case_id '-V' n
    case_id      text NOT NULL REFERENCES hcase,
    household_id text NOT NULL,
    county       char(6) NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('verify', 'recheck')),
    assignee     text,
    status       text NOT NULL CHECK (status IN ('open', 'done', 'cancelled')),
    created_ms   bigint NOT NULL,
    due_ms       bigint NOT NULL,
    completed_ms bigint,
    result       jsonb
);
CREATE INDEX task_assignee ON task (assignee, status);

CREATE TABLE timeline (
    seq            bigserial PRIMARY KEY,
    household_id   text NOT NULL,
    county         char(6) NOT NULL,
    case_id        text,
    at_ms          bigint NOT NULL,
    actor          text NOT NULL,
    role           text NOT NULL,
    action         text NOT NULL,
    detail         text NOT NULL,
    policy_version text
);
CREATE INDEX timeline_household ON timeline (household_id, seq);

-- Ledger: double-entry accounts and immutable transfers.
-- flags bit 1: debits must not exceed credits (a fund never goes negative).
CREATE TABLE account (
    account_id     text PRIMARY KEY,
    name           text NOT NULL,
    kind           text NOT NULL,        -- fund / payable / source
    county         char(6),
    flags          int NOT NULL DEFAULT 0,
    debits_posted  bigint NOT NULL DEFAULT 0,
    credits_posted bigint NOT NULL DEFAULT 0,
    CHECK (flags & 1 = 0 OR debits_posted <= credits_posted)
);

CREATE TABLE transfer (
    transfer_id    text PRIMARY KEY,     -- client-chosen, the idempotency key
    debit_account  text NOT NULL REFERENCES account,
    credit_account text NOT NULL REFERENCES account,
    amount_fen     bigint NOT NULL CHECK (amount_fen > 0),
    kind           text NOT NULL,
    created_ms     bigint NOT NULL
);

CREATE TABLE payout (
    payout_id      text PRIMARY KEY,
    case_id        text NOT NULL,
    household_id   text NOT NULL,
    county         char(6) NOT NULL,
    household_type text,
    kind           text NOT NULL,
    year           int NOT NULL,
    basis_fen      bigint NOT NULL,
    amount_fen     bigint NOT NULL,
    status         text NOT NULL CHECK (status IN ('posted', 'none', 'refused')),
    reason         text,
    computation    text NOT NULL,
    policy_version text NOT NULL,
    transfer_id    text REFERENCES transfer,
    created_ms     bigint NOT NULL
);
CREATE INDEX payout_household ON payout (household_id);

-- Notify: the inbox of every office and cadre.
CREATE TABLE inbox (
    event_id       text NOT NULL,
    recipient      text NOT NULL,        -- town:<9 digits> / village:<12 digits>
    recipient_name text NOT NULL,
    county         char(6) NOT NULL,
    kind           text NOT NULL,
    title          text NOT NULL,
    body           text NOT NULL,
    created_ms     bigint NOT NULL,
    read_ms        bigint,
    PRIMARY KEY (event_id, recipient)
);

-- Identity matching in the live pipeline (issue 6): a feed row whose ID
-- number is missing or fails its check is linked to a registry person by
-- common/lv_ident (name, birth date, what is left of the ID) or waits in
-- identity_review for a person's decision; it is never linked silently and
-- never dropped.

-- A typed row may arrive without a valid ID number: matching fills it in
-- when the row is linked (by lv_ident or by a resolved review).
ALTER TABLE civil_record ALTER COLUMN id_number DROP NOT NULL;
ALTER TABLE disaster_record ALTER COLUMN id_number DROP NOT NULL;
ALTER TABLE education_record ALTER COLUMN id_number DROP NOT NULL;
ALTER TABLE income_record ALTER COLUMN id_number DROP NOT NULL;
ALTER TABLE declaration_record ALTER COLUMN id_number DROP NOT NULL;

-- The rows that came without a valid ID number and were linked: how
-- (basis: id_swap, id_typo, id_parts, name, name_birth, or review for a
-- person's choice), with which score, from what the row said. Written in the
-- transaction that links the row.
CREATE TABLE identity_link (
    source        text NOT NULL,
    record_id     text NOT NULL,
    county        char(6) NOT NULL,
    id_number     char(18) NOT NULL,
    household_id  text NOT NULL,
    basis         text NOT NULL,
    score         numeric(4, 3) NOT NULL,
    raw_id_number text NOT NULL,           -- as written in the row ('' when missing)
    raw_name      text NOT NULL,
    review_id     bigint,                  -- set when a person chose the link
    actor         text NOT NULL,
    linked_ms     bigint NOT NULL,
    PRIMARY KEY (source, record_id)
);
CREATE INDEX identity_link_household ON identity_link (household_id);

-- The review queue: rows lv_ident could not link on its own. region_code is
-- the scope that was searched (a village, a county, or 000000 when the row
-- offered none); candidates are [{id_number, name, household_id, score,
-- basis, name_similarity}], best first. A link or dismissal is written here
-- by the command line or the gateway (status, chosen_id, who, when); matching
-- then feeds the row on as the chosen person's once and sets fed_ms in the
-- same transaction.
CREATE TABLE identity_review (
    review_id     bigserial PRIMARY KEY,
    source        text NOT NULL,
    record_id     text NOT NULL,
    county        char(6) NOT NULL,
    region_code   text NOT NULL,
    raw_id_number text NOT NULL,
    name          text NOT NULL,
    birth_date    text NOT NULL,           -- the row's 出生日期 (YYYYMMDD) or ''
    event_ms      bigint,
    amount_fen    bigint,
    record        bytea NOT NULL,          -- the Record as ingest sent it
    candidates    jsonb NOT NULL,
    reason        text NOT NULL,
    status        text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'linked', 'dismissed')),
    chosen_id     char(18),
    note          text,
    resolved_by   text,
    resolved_role text,
    resolved_ms   bigint,
    fed_ms        bigint,
    created_ms    bigint NOT NULL,
    UNIQUE (source, record_id),
    CHECK (status <> 'linked' OR chosen_id IS NOT NULL)
);
CREATE INDEX identity_review_region ON identity_review (region_code, status);
CREATE INDEX identity_review_to_feed ON identity_review (review_id)
    WHERE status = 'linked' AND fed_ms IS NULL;

-- A version per candidate scope ('v:' village code, 'c:' county), bumped in
-- the transaction of every registry batch that touches it, so a matching
-- worker rebuilds a cached candidate set the registry changed.
CREATE TABLE identity_scope (
    scope   text PRIMARY KEY,
    version bigint NOT NULL
);

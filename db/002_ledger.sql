-- The fund ledger, two-phase: a payout is reserved (a pending transfer) when
-- a case is approved, and posted when it is paid or voided when it is
-- withdrawn or its reservation times out. A resolution is a new transfer
-- that names the pending one; a unique index lets a pending transfer be
-- resolved at most once. Transfers are never edited: corrections are new
-- transfers.

ALTER TABLE account
    ADD COLUMN debits_pending  bigint NOT NULL DEFAULT 0,
    ADD COLUMN credits_pending bigint NOT NULL DEFAULT 0;
ALTER TABLE account DROP CONSTRAINT account_check;
-- flags bit 1: debits (posted and reserved) must not exceed posted credits.
ALTER TABLE account ADD CONSTRAINT account_no_overdraw
    CHECK (flags & 1 = 0 OR debits_posted + debits_pending <= credits_posted);
ALTER TABLE account ADD CONSTRAINT account_nonnegative
    CHECK (debits_posted >= 0 AND credits_posted >= 0 AND debits_pending >= 0
           AND credits_pending >= 0);

ALTER TABLE transfer
    ADD COLUMN phase      text NOT NULL DEFAULT 'single'
                          CHECK (phase IN ('single', 'pending', 'post', 'void')),
    ADD COLUMN pending_id text REFERENCES transfer,
    ADD COLUMN expires_ms bigint,
    ADD COLUMN note       text;
ALTER TABLE transfer ADD CONSTRAINT transfer_resolution_names_pending
    CHECK ((phase IN ('post', 'void')) = (pending_id IS NOT NULL));
CREATE UNIQUE INDEX transfer_resolved_once ON transfer (pending_id) WHERE pending_id IS NOT NULL;
CREATE INDEX transfer_debit ON transfer (debit_account);
CREATE INDEX transfer_credit ON transfer (credit_account);
CREATE INDEX transfer_open_pending ON transfer (expires_ms) WHERE phase = 'pending';

CREATE FUNCTION transfer_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'transfers are immutable; record a correcting transfer instead';
END $$;
CREATE TRIGGER transfer_immutable BEFORE UPDATE OR DELETE ON transfer
    FOR EACH ROW EXECUTE FUNCTION transfer_immutable();

ALTER TABLE payout DROP CONSTRAINT payout_status_check;
ALTER TABLE payout ADD CONSTRAINT payout_status_check
    CHECK (status IN ('pending', 'posted', 'voided', 'none', 'refused'));
ALTER TABLE payout
    ADD COLUMN fund_account text,
    ADD COLUMN resolved_ms  bigint,
    ADD COLUMN resolved_by  text;
CREATE INDEX payout_status ON payout (status);

-- Donations to a village relief fund (村级救助基金).
CREATE TABLE donation (
    donation_id  text PRIMARY KEY,
    fund_account text NOT NULL REFERENCES account,
    county       char(6) NOT NULL,
    donor        text NOT NULL,
    amount_fen   bigint NOT NULL CHECK (amount_fen > 0),
    donated_ms   bigint NOT NULL,
    transfer_id  text NOT NULL REFERENCES transfer,
    created_ms   bigint NOT NULL
);

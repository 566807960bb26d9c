-- Payouts per kind: 因学 payouts are per student, and their yearly cap is
-- per student, so the payout names the student (an ID number; NULL for the
-- household kinds). The ledger sums what a household (or a student) already
-- got in a year before it reserves more, so those sums get an index each.
ALTER TABLE payout ADD COLUMN student_id char(18);
CREATE INDEX payout_household_year ON payout (household_id, kind, year);
CREATE INDEX payout_student_year ON payout (student_id, kind, year) WHERE student_id IS NOT NULL;
ALTER TABLE payout ADD CONSTRAINT payout_student_only_education
    CHECK (student_id IS NULL OR kind = 'education');

-- County sub-allocations of a fund (the policy's "budgets"): an account per
-- fund and county, funded from the fund by allocation transfers, with the
-- same no-overdraw flag. Its fund and county are columns, so reports and
-- reconciliation need not parse account ids.
ALTER TABLE account ADD COLUMN parent_account text REFERENCES account;
CREATE UNIQUE INDEX account_county_budget ON account (parent_account, county)
    WHERE parent_account IS NOT NULL;

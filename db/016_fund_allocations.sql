-- What a fund handed to its county budget accounts (allocation transfers
-- out of it, gross), so that the fund's paid_fen counts payouts only.
CREATE FUNCTION ledger_allocated_out(p_account text) RETURNS bigint
    LANGUAGE sql STABLE AS $$
    SELECT coalesce(sum(t.amount_fen), 0)::bigint FROM transfer t
     WHERE t.kind = 'allocation' AND t.debit_account = p_account
$$;

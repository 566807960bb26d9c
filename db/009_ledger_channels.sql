-- Paid-out accounts per channel: when a payout is paid, the money leaves the
-- household's payable account for the channel that carried it (惠民惠农
-- "一卡通", 银行代发, ...). Each channel has its own account, so the books say
-- how much went out through each.
ALTER TABLE payout ADD COLUMN channel text;
ALTER TABLE payout ADD CONSTRAINT payout_channel_when_posted
    CHECK (status <> 'posted' OR channel IS NOT NULL) NOT VALID;

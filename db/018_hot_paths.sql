-- Indexes for the paths a monthly peak makes hot.
--
-- Each relay scans the outbox for its own rows to one consumer. With the key
-- (dest, seq) a relay read past every other producer's unacknowledged rows to
-- the same consumer (dispatch's backlog to notify during a peak) on every
-- scan: about 1.4 ms a scan, the largest single cost of the peak.
CREATE INDEX outbox_producer_dest ON outbox (producer, dest, seq);
DROP INDEX outbox_dest;

-- A case's history length (the suffix of events that can recur) is counted
-- per case: without this it read the whole timeline each time.
CREATE INDEX timeline_case ON timeline (case_id);

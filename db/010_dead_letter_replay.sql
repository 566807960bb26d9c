-- A dead letter can be sent again once its cause is fixed (levee replay):
-- the replay goes under a new message id, recorded here, so the consumer
-- treats it as new while the original stays consumed.
ALTER TABLE dead_letter
    ADD COLUMN replayed_ms   bigint,
    ADD COLUMN replay_msg_id text;

-- A queued import wakes ingest at once (LISTEN levee_import) instead of at
-- its next turn, up to 100 ms later: a declaration posted to the HTTP API
-- (农户自主申报) waited for that turn before it was read.
CREATE FUNCTION import_queued_notify() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('levee_import', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER import_queued AFTER INSERT ON import
    FOR EACH STATEMENT EXECUTE FUNCTION import_queued_notify();

-- Several ingest workers: an import being read belongs to the worker that
-- claimed it, so that after a crash only that worker resumes it (NULL: a
-- row from before this column, worker 0's).
ALTER TABLE import ADD COLUMN worker int;

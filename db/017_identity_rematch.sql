-- An open identity review is matched again when the registry changes its
-- scope (identity_scope.version moves past the version it was matched
-- against): a person the registry brought since may now be a clear link.
ALTER TABLE identity_review ADD COLUMN scope_version bigint NOT NULL DEFAULT 0;
CREATE INDEX identity_review_open ON identity_review (region_code) WHERE status = 'open';

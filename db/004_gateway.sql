-- levee-gateway: the tokens of the HTTP API, and who queued an import
-- through it. A token is stored only as a hash; it is bound to a role and a
-- region-code prefix (province 2 digits, city 4, county 6, town 9), and an
-- investigator's token to the investigator.
CREATE TABLE api_token (
    token_id        text PRIMARY KEY,
    token_hash      text NOT NULL UNIQUE,   -- hex BLAKE2b-256 of the token (crypto_generichash)
    role            text NOT NULL CHECK (role IN ('province', 'city', 'county', 'town',
                    'investigator', 'department', 'fund')),
    region_prefix   text NOT NULL CHECK (region_prefix ~ '^[0-9]+$'
                    AND length(region_prefix) IN (2, 4, 6, 9)),
    investigator_id text REFERENCES investigator,
    label           text NOT NULL DEFAULT '',
    created_ms      bigint NOT NULL,
    revoked_ms      bigint,
    CHECK (role NOT IN ('province', 'city', 'county', 'town') OR
           length(region_prefix) = CASE role WHEN 'province' THEN 2 WHEN 'city' THEN 4
                                             WHEN 'county' THEN 6 ELSE 9 END),
    CHECK ((role = 'investigator') = (investigator_id IS NOT NULL))
);

-- Imports queued through the API carry the caller's region and token, so
-- only callers of that region (or that token) see them; NULL for the CLI.
ALTER TABLE import
    ADD COLUMN region_prefix text,
    ADD COLUMN token_id      text;

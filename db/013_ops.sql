-- Names of regions (统计用区划代码 to 名称) for people to read: cities,
-- counties and towns from data/regions, villages from a villages table such
-- as scripts/gen-province writes. Loaded by `levee regions load` (and by
-- `levee up` when empty); the gateway shows `region_name` where one is known
-- and the code alone where not.
CREATE TABLE IF NOT EXISTS region_name (
    code text PRIMARY KEY CHECK (code ~ '^[0-9]{2}([0-9]{2}([0-9]{2}([0-9]{3}([0-9]{3})?)?)?)?$'),
    name text NOT NULL CHECK (length(name) BETWEEN 1 AND 100)
);

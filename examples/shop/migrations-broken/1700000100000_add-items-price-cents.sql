-- Expand only: a nullable column with no default, so releases that do not know it keep working
-- (they insert without it and read rows with it).

-- Up Migration
ALTER TABLE items ADD COLUMN price_cents integer;

-- Down Migration
ALTER TABLE items DROP COLUMN price_cents;

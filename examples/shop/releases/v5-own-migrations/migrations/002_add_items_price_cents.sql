-- Expand only: a nullable column with no default, so a release that does not know it keeps working.
ALTER TABLE items ADD COLUMN price_cents integer;

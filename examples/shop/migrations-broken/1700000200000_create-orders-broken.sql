-- Deliberately broken, for the migration-failure test: the first statement succeeds, the second fails
-- (items has no column "sku"), so the migration fails midway and its transaction must leave no trace.

-- Up Migration
CREATE TABLE orders (
  id serial PRIMARY KEY,
  item_id integer NOT NULL REFERENCES items (id),
  created_at timestamptz DEFAULT now()
);
CREATE INDEX items_sku_idx ON items (sku);

-- Down Migration
DROP INDEX IF EXISTS items_sku_idx;
DROP TABLE IF EXISTS orders;

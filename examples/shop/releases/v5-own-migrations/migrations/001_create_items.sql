-- The shop's items table, created by this release's own migrations on a database of their own: they are recorded
-- under these names (pgmigrations), so they are not for the shop's database, whose table came from shop/migrations.
CREATE TABLE items (
  id serial PRIMARY KEY,
  name text NOT NULL,
  created_at timestamptz DEFAULT now()
);

'use strict';
/*
 * This release's data integrity check, what runbook.yaml's drill.integrityCommand runs on a restored copy
 * (DATABASE_URL names it): node scripts/integrity.js
 * Checks that the items table is there and that no item has a negative price or an empty name; prints one summary
 * line (with how many migrations the copy has recorded). Exit 0 when all hold, 1 naming what does not,
 * 2 when it cannot check (no DATABASE_URL, the database is away).
 */
const pg = require('pg');

function exit(code, message) {
  (code === 0 ? process.stdout : process.stderr).write(`${message}\n`);
  process.exit(code);
}

async function main() {
  if (!process.env.DATABASE_URL) exit(2, 'integrity: DATABASE_URL is not set');
  const client = new pg.Client({ connectionString: process.env.DATABASE_URL, connectionTimeoutMillis: 10000 });
  try {
    await client.connect();
  } catch (err) {
    exit(2, `integrity: cannot connect to the database: ${err.message}`);
  }
  const { rows: present } = await client.query(
    `SELECT to_regclass('public.items') IS NOT NULL AS items, to_regclass('public.shop_migrations') IS NOT NULL AS migrations`,
  );
  if (!present[0].items) exit(1, 'integrity: FAIL: the items table is missing');
  const { rows } = await client.query(
    `SELECT count(*)::int AS items,
            count(*) FILTER (WHERE price_cents < 0)::int AS negative,
            count(*) FILTER (WHERE btrim(name) = '')::int AS unnamed
       FROM items`,
  );
  const { items, negative, unnamed } = rows[0];
  const recorded = present[0].migrations
    ? (await client.query('SELECT count(*)::int AS n FROM shop_migrations')).rows[0].n
    : 0;
  await client.end();
  const problems = [
    ...(negative ? [`${negative} items with a negative price`] : []),
    ...(unnamed ? [`${unnamed} items with an empty name`] : []),
  ];
  const summary = `${items} items, ${recorded} migrations recorded`;
  if (problems.length) exit(1, `integrity: FAIL: ${problems.join('; ')} (${summary})`);
  exit(0, `integrity: ok: ${summary}, no negative prices, no empty names`);
}

main().catch((err) => exit(2, `integrity: ${err.message}`));

'use strict';
/*
 * This release's own migration tool, what runbook.yaml's `database.migrate` runs (in the release folder, with
 * DATABASE_URL):
 *   node scripts/migrate.js           applies the pending ../migrations/NNN_name.sql files in order (by number), all
 *                                     in one transaction, and records each in the table shop_migrations
 *   node scripts/migrate.js --status  exit 0 when nothing is pending, 1 listing what is
 * Exit codes: 0 done; 1 a migration failed (nothing was applied) or, with --status, migrations are pending;
 * 2 it could not run (no DATABASE_URL, the database is away, two files with one number).
 * Plain SQL files, no BEGIN/COMMIT of their own: the tool wraps the run in its transaction, under an advisory lock
 * so that two runs take turns. It uses pg, resolved as server.js resolves it (from the repository's node_modules).
 */
const fs = require('node:fs');
const path = require('node:path');
const pg = require('pg');

const TABLE = 'shop_migrations';
const LOCK_ID = 7_100_425_001; // pg_advisory_xact_lock: one run at a time on a database
const DIR = path.join(__dirname, '..', 'migrations');

function exit(code, message) {
  (code === 0 ? process.stdout : process.stderr).write(`${message}\n`);
  process.exit(code);
}

/** The migration files, ordered by their number (001 < 002 < 010); exits 2 when two share a number. */
function migrationFiles() {
  const files = fs
    .readdirSync(DIR)
    .filter((f) => /^\d+_.+\.sql$/.test(f))
    .map((file) => ({ file, name: file.replace(/\.sql$/, ''), number: parseInt(file, 10) }))
    .sort((a, b) => a.number - b.number || a.file.localeCompare(b.file));
  for (let i = 1; i < files.length; i++) {
    if (files[i].number === files[i - 1].number) {
      exit(2, `migrate: ${files[i - 1].file} and ${files[i].file} have the same number; renumber one`);
    }
  }
  return files;
}

async function applied(client) {
  const { rows } = await client.query('SELECT to_regclass($1) IS NOT NULL AS present', [`public.${TABLE}`]);
  if (!rows[0].present) return new Set();
  return new Set((await client.query(`SELECT name FROM ${TABLE}`)).rows.map((r) => r.name));
}

async function status(client) {
  const done = await applied(client);
  const pending = migrationFiles().filter((m) => !done.has(m.name));
  if (pending.length === 0) exit(0, `migrate: nothing pending (${done.size} applied)`);
  exit(1, `migrate: ${pending.length} pending: ${pending.map((m) => m.file).join(', ')}`);
}

async function migrate(client) {
  const files = migrationFiles();
  await client.query('BEGIN');
  let current;
  try {
    await client.query(`SELECT pg_advisory_xact_lock(${LOCK_ID})`);
    await client.query(
      `CREATE TABLE IF NOT EXISTS ${TABLE} (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`,
    );
    const done = await applied(client);
    const ran = [];
    for (const m of files.filter((f) => !done.has(f.name))) {
      current = m;
      await client.query(fs.readFileSync(path.join(DIR, m.file), 'utf8'));
      await client.query(`INSERT INTO ${TABLE} (name) VALUES ($1)`, [m.name]);
      ran.push(m.name);
    }
    await client.query('COMMIT');
    exit(0, ran.length ? `migrate: applied ${ran.join(', ')}` : 'migrate: nothing to apply');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    const where = current ? `${current.file} failed` : 'the run failed';
    exit(1, `migrate: ${where}: ${err.message}; nothing was applied`);
  }
}

async function main() {
  if (!process.env.DATABASE_URL) exit(2, 'migrate: DATABASE_URL is not set');
  const client = new pg.Client({ connectionString: process.env.DATABASE_URL, connectionTimeoutMillis: 10000 });
  try {
    await client.connect();
  } catch (err) {
    exit(2, `migrate: cannot connect to the database: ${err.message}`);
  }
  if (process.argv.includes('--status')) await status(client);
  else await migrate(client);
}

main().catch((err) => exit(2, `migrate: ${err.message}`));

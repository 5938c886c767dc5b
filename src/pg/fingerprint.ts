/** What a database holds, as snapshot manifests record it: rows and checksum per table, the migration version. */
import pg from 'pg';
import type { TableFingerprint } from '../platforms/types';
import { connectPg } from './connect';

/** The table node-pg-migrate records applied migrations in (its default name, in the `public` schema). */
export const MIGRATIONS_TABLE = 'pgmigrations';

/** What a database holds, as snapshot manifests record it. */
export interface DatabaseFingerprint {
  tables: TableFingerprint[];
  migrationVersion: string | null;
}

/** Anything that runs a query: a pg Client, a PoolClient or a Pool. */
export type Queryable = Pick<pg.ClientBase, 'query'>;

/**
 * The output of `row::text` depends on session settings (time zone, date and interval style, float digits,
 * bytea and money formats): pinning them makes checksums comparable across sessions and servers.
 */
const STABLE_TEXT_SETTINGS = [
  "SET LOCAL TimeZone = 'UTC'",
  "SET LOCAL DateStyle = 'ISO, MDY'",
  "SET LOCAL IntervalStyle = 'postgres'",
  'SET LOCAL extra_float_digits = 1',
  "SET LOCAL bytea_output = 'hex'",
  "SET LOCAL lc_monetary = 'C'",
  'SET LOCAL statement_timeout = 0',
];

/**
 * Name of the last migration node-pg-migrate applied (the last row of `public.pgmigrations` by run order), or
 * null when the table is missing or empty. Reads in the caller's transaction, if any.
 */
export async function readMigrationVersion(db: Queryable): Promise<string | null> {
  const { rows } = await db.query<{ present: boolean }>('SELECT to_regclass($1) IS NOT NULL AS present', [
    `public.${MIGRATIONS_TABLE}`,
  ]);
  if (!rows[0]?.present) return null;
  const last = await db.query<{ name: string }>(
    `SELECT name FROM public.${MIGRATIONS_TABLE} ORDER BY run_on DESC, id DESC LIMIT 1`,
  );
  return last.rows[0]?.name ?? null;
}

/**
 * The schema as it is now, whatever tool migrated it: node-pg-migrate's last migration (null without its table), and
 * a digest of every user table's columns and types (md5 of `schema.table.column:type` in order), so that a deploy
 * records the schema before and after a migration of any tool. Throws the pg error when a query fails.
 */
export async function readSchemaVersion(
  db: Queryable,
): Promise<{ migration: string | null; digest: string; tables: number }> {
  const { rows } = await db.query<{ digest: string | null; tables: string }>(
    `SELECT md5(string_agg(c.table_schema || '.' || c.table_name || '.' || c.column_name || ':' || c.data_type, ',' ORDER BY c.table_schema, c.table_name, c.ordinal_position)) AS digest,
            count(DISTINCT (c.table_schema, c.table_name)) AS tables
       FROM information_schema.columns c
       JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
      WHERE t.table_type = 'BASE TABLE'
        AND c.table_schema NOT IN ('pg_catalog', 'information_schema')
        AND c.table_schema NOT LIKE 'pg\\_%'`,
  );
  const row = rows[0];
  return {
    migration: await readMigrationVersion(db),
    digest: row?.digest ? `md5:${row.digest.slice(0, 12)}` : 'empty',
    tables: Number(row?.tables ?? 0),
  };
}

/**
 * Fingerprints every ordinary table of the user schemas (not pg_catalog, information_schema, TOAST or temporary
 * schemas) and reads the migration version, inside the caller's transaction: open it REPEATABLE READ so that
 * all tables are read at the same instant (snapshots rely on this to match their dump).
 *
 * The checksum of a table is md5 over its row count and the sums of the two 64-bit halves of each row's
 * `md5(row::text)`. Summing is order-independent, so it needs no sort and constant memory; an ordered
 * `string_agg` of row hashes would sort every hash and hit PostgreSQL's 1 GB value limit at ~33 million rows.
 * The cost is one sequential scan of every table, a row-to-text conversion and an md5 per row, on one core:
 * measured ~4.5 s for 1.3 million rows (a 300 MB database), so ~15 s per GB. Fine for databases of ~1 GB; for
 * much larger ones compare row counts only, or sample.
 *
 * Rows are compared as text, so two databases with equal contents but different column order differ.
 * Throws the pg error when a query fails.
 */
export async function fingerprintInTransaction(db: Queryable): Promise<DatabaseFingerprint> {
  await pinTextSettings(db);
  const { rows: found } = await db.query<{ schema: string; name: string }>(
    `SELECT n.nspname AS schema, c.relname AS name
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind = 'r' AND c.relpersistence <> 't'
        AND n.nspname NOT IN ('pg_catalog', 'information_schema')
        AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'
      ORDER BY n.nspname COLLATE "C", c.relname COLLATE "C"`,
  );
  const tables: TableFingerprint[] = [];
  for (const { schema, name } of found) tables.push(await fingerprintTable(db, schema, name));
  return { tables, migrationVersion: await readMigrationVersion(db) };
}

/**
 * One table's fingerprint (see {@link fingerprintInTransaction} for the checksum), in the caller's transaction, whose
 * session settings must be pinned with {@link pinTextSettings} first. Throws the pg error when the query fails.
 */
export async function fingerprintTable(db: Queryable, schema: string, name: string): Promise<TableFingerprint> {
  const qualified = `${pg.escapeIdentifier(schema)}.${pg.escapeIdentifier(name)}`;
  // ONLY: rows of inheritance children are counted once, under the child's own name.
  const { rows } = await db.query<{ rows: string; checksum: string }>(
    `SELECT count(*) AS rows,
            md5(count(*) || ':' || coalesce(sum(('x' || substr(h, 1, 16))::bit(64)::bigint), 0)
                         || ':' || coalesce(sum(('x' || substr(h, 17, 16))::bit(64)::bigint), 0)) AS checksum
       FROM (SELECT md5(t::text) AS h FROM ONLY ${qualified} t) s`,
  );
  const row = rows[0];
  if (!row) throw new Error(`no fingerprint row for ${schema}.${name}`);
  return { table: `${schema}.${name}`, rows: Number(row.rows), checksum: row.checksum };
}

/** Pins the session settings that `row::text` depends on, for the caller's transaction (SET LOCAL). */
export async function pinTextSettings(db: Queryable): Promise<void> {
  for (const sql of STABLE_TEXT_SETTINGS) await db.query(sql);
}

/** A database's fingerprint and its server's version, read in one REPEATABLE READ, READ ONLY transaction. */
export type FingerprintWithVersion = DatabaseFingerprint & { serverVersion?: string };

/**
 * Connects to `url` and fingerprints the database in one REPEATABLE READ, READ ONLY transaction (see
 * {@link fingerprintInTransaction} for what is read and what it costs). Throws the pg error when the database
 * cannot be reached or read.
 */
export async function fingerprintDatabase(url: string): Promise<DatabaseFingerprint> {
  return readFingerprint(url, false);
}

/** {@link fingerprintDatabase} plus the server's version (`server_version`), read in the same transaction. */
export async function fingerprintDatabaseWithVersion(url: string): Promise<FingerprintWithVersion> {
  return readFingerprint(url, true);
}

async function readFingerprint(url: string, withVersion: boolean): Promise<FingerprintWithVersion> {
  const client = await connectPg(url);
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const fingerprint = await fingerprintInTransaction(client);
    let serverVersion: string | undefined;
    if (withVersion) {
      const { rows } = await client.query<{ v: string }>(`SELECT current_setting('server_version') AS v`);
      serverVersion = rows[0]?.v ?? '';
    }
    await client.query('COMMIT');
    return serverVersion === undefined ? fingerprint : { ...fingerprint, serverVersion };
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * The differences between what a snapshot recorded (`expected`) and a database as it is (`actual`), one line
 * each, e.g. "public.items: 120 rows, snapshot has 125". Empty when they match.
 */
export function diffFingerprints(expected: DatabaseFingerprint, actual: DatabaseFingerprint): string[] {
  const differences: string[] = [];
  const now = new Map(actual.tables.map((t) => [t.table, t]));
  const then = new Map(expected.tables.map((t) => [t.table, t]));
  for (const want of expected.tables) {
    const got = now.get(want.table);
    if (!got) differences.push(`${want.table}: missing, snapshot has ${want.rows} rows`);
    else if (got.rows !== want.rows) differences.push(`${want.table}: ${got.rows} rows, snapshot has ${want.rows}`);
    else if (got.checksum !== want.checksum) {
      differences.push(`${want.table}: same ${got.rows} rows but different contents (checksum differs)`);
    }
  }
  for (const got of actual.tables) {
    if (!then.has(got.table)) differences.push(`${got.table}: not in the snapshot (${got.rows} rows)`);
  }
  if (expected.migrationVersion !== actual.migrationVersion) {
    differences.push(
      `migration version: ${actual.migrationVersion ?? 'none'}, snapshot has ${expected.migrationVersion ?? 'none'}`,
    );
  }
  return differences;
}

/**
 * What a manifest of an RDS snapshot can honestly claim, and how a restored copy is held to it.
 *
 * RDS snapshots the storage, not a transaction, and the manifest is read over the live endpoint just before
 * CreateDBSnapshot: rows written in between are in the snapshot but not in the figures (or the other way round).
 * So a manifest read from the live database claims the schema and the migration version always, row counts within a
 * tolerance ('counts', the default), and checksums only when the user says nothing writes ('full'). Exact checksums
 * come from the snapshot itself: the first restored copy that matches the manifest's claims is fingerprinted in full
 * and its figures become the snapshot's verified manifest (claims 'exact', verifiedOn the copy), which every later
 * restore of the snapshot must match exactly.
 */
import pg from 'pg';
import { connectPg } from '../../pg/connect';
import {
  diffFingerprints,
  fingerprintInTransaction,
  fingerprintTable,
  pinTextSettings,
  readMigrationVersion,
} from '../../pg/fingerprint';
import type { SnapshotManifest, TableFingerprint } from '../types';

/** A table with more rows than this (by the planner's estimate) is not counted on the live database: estimated. */
export const COUNT_LIMIT_ROWS = 1_000_000;
/** How long one table's count(*) may take on the live database before its estimate stands in. */
const COUNT_TIMEOUT_MS = 60_000;
/** The default relative tolerance of row counts read from the live database (aws.rds.countTolerance). */
export const DEFAULT_COUNT_TOLERANCE = 0.01;
/** Rows a count may differ by whatever the tolerance (a small table written to between fingerprint and snapshot). */
export const MIN_COUNT_SLACK = 10;
/** Estimates (pg_class.reltuples) move with ANALYZE: they are held to at least this relative tolerance. */
export const ESTIMATE_TOLERANCE = 0.1;

export type FingerprintMode = 'full' | 'counts' | 'none';

/** What a manifest read in this mode claims. */
export const claimsOf = (mode: FingerprintMode): NonNullable<SnapshotManifest['claims']> =>
  mode === 'full' ? 'exact' : mode === 'counts' ? 'counts' : 'schema';

/** A live database's figures as a manifest records them. */
export interface LiveFigures {
  tables: TableFingerprint[];
  migrationVersion: string | null;
  serverVersion: string;
}

/** A restored copy's figures: full fingerprints, and the planner's estimates (for tables the manifest estimated). */
export interface CopyFigures extends LiveFigures {
  estimates: Map<string, number>;
}

const USER_TABLES = `
  SELECT n.nspname AS schema, c.relname AS name, c.reltuples::float8 AS estimate
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE c.relkind = 'r' AND c.relpersistence <> 't'
     AND n.nspname NOT IN ('pg_catalog', 'information_schema')
     AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'
   ORDER BY n.nspname COLLATE "C", c.relname COLLATE "C"`;

async function inReadOnlyTransaction<T>(url: string, read: (c: pg.ClientBase) => Promise<T>): Promise<T> {
  const client = await connectPg(url);
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const out = await read(client);
    await client.query('COMMIT');
    return out;
  } finally {
    await client.end().catch(() => undefined);
  }
}

const serverVersionOf = async (c: pg.ClientBase) =>
  (await c.query<{ v: string }>(`SELECT current_setting('server_version') AS v`)).rows[0]?.v ?? '';

/**
 * The live database's figures in `mode`, at a bounded cost: 'counts' counts tables of up to COUNT_LIMIT_ROWS
 * estimated rows (each count at most COUNT_TIMEOUT_MS) and takes the planner's estimate for larger ones; 'none'
 * reads only the catalog; 'full' scans every row (md5), as single-host does. Throws the pg error.
 */
export async function readLiveFigures(url: string, mode: FingerprintMode): Promise<LiveFigures> {
  return inReadOnlyTransaction(url, async (c) => {
    if (mode === 'full') {
      const fp = await fingerprintInTransaction(c);
      return { ...fp, serverVersion: await serverVersionOf(c) };
    }
    const found = (await c.query<{ schema: string; name: string; estimate: number }>(USER_TABLES)).rows;
    const tables: TableFingerprint[] = [];
    if (mode === 'counts') await c.query(`SET LOCAL statement_timeout = ${COUNT_TIMEOUT_MS}`);
    for (const { schema, name, estimate } of found) {
      const table = `${schema}.${name}`;
      if (mode === 'none') {
        tables.push({ table, rows: 0, checksum: '', estimated: true });
        continue;
      }
      if (estimate > COUNT_LIMIT_ROWS) {
        tables.push({ table, rows: Math.round(estimate), checksum: '', estimated: true });
        continue;
      }
      const qualified = `${pg.escapeIdentifier(schema)}.${pg.escapeIdentifier(name)}`;
      await c.query('SAVEPOINT count_one');
      try {
        const { rows } = await c.query<{ n: string }>(`SELECT count(*) AS n FROM ONLY ${qualified}`);
        tables.push({ table, rows: Number(rows[0]?.n ?? 0), checksum: '' });
        await c.query('RELEASE SAVEPOINT count_one');
      } catch (err) {
        if ((err as { code?: string }).code !== '57014') throw err; // statement_timeout: the estimate stands in
        await c.query('ROLLBACK TO SAVEPOINT count_one');
        tables.push({ table, rows: Math.max(0, Math.round(estimate)), checksum: '', estimated: true });
      }
    }
    return { tables, migrationVersion: await readMigrationVersion(c), serverVersion: await serverVersionOf(c) };
  });
}

/**
 * Where a copy's fingerprint got to: the tables already read, in order. A retried attempt resumes after them, because
 * a freshly restored volume loads its blocks lazily from S3 and its first full read can outlast an attempt.
 */
export interface CopyProgress {
  done: TableFingerprint[];
}

/** How a fingerprint of a copy resumes and reports its progress (the activity's heartbeat details). */
export interface CopyResume {
  /** The tables a previous attempt read: reused, not read again (the copy is scratch: nothing writes to it). */
  from?: CopyProgress;
  /** Called after each table with everything read so far. */
  onProgress?(progress: CopyProgress): void;
}

/**
 * A restored copy's full fingerprint (every row: the copy is scratch, not production) and its estimates, table by
 * table: the tables in `resume.from` are taken as read, and `resume.onProgress` hears of each one read. Throws the pg
 * error.
 */
export async function readCopyFigures(url: string, resume: CopyResume = {}): Promise<CopyFigures> {
  return inReadOnlyTransaction(url, async (c) => {
    await pinTextSettings(c);
    const found = (await c.query<{ schema: string; name: string; estimate: number }>(USER_TABLES)).rows;
    const already = new Map((resume.from?.done ?? []).map((t) => [t.table, t]));
    const tables: TableFingerprint[] = [];
    for (const { schema, name } of found) {
      const known = already.get(`${schema}.${name}`);
      if (known) {
        tables.push(known);
        continue;
      }
      tables.push(await fingerprintTable(c, schema, name));
      resume.onProgress?.({ done: [...tables] });
    }
    const estimates = new Map(found.map((t) => [`${t.schema}.${t.name}`, Number(t.estimate)]));
    return {
      tables,
      migrationVersion: await readMigrationVersion(c),
      serverVersion: await serverVersionOf(c),
      estimates,
    };
  });
}

/** The copy progress in an earlier attempt's heartbeat details for `copy`, or undefined when they are not one. */
export function copyProgressIn(details: unknown, copy: string): CopyProgress | undefined {
  if (typeof details !== 'object' || details === null) return undefined;
  const d = details as { phase?: unknown; copy?: unknown; done?: unknown };
  if (d.phase !== 'fingerprint-copy' || d.copy !== copy || !Array.isArray(d.done)) return undefined;
  const done = d.done.filter(
    (t): t is TableFingerprint =>
      typeof t === 'object' &&
      t !== null &&
      typeof (t as TableFingerprint).table === 'string' &&
      typeof (t as TableFingerprint).rows === 'number' &&
      typeof (t as TableFingerprint).checksum === 'string',
  );
  return done.length === d.done.length ? { done } : undefined;
}

/**
 * The differences between a manifest and a restored copy, as far as the manifest's claims go: exact manifests
 * compare rows and checksums; 'counts' the tables, the migration version and each table's rows within the
 * tolerance (at least MIN_COUNT_SLACK rows; an estimated table against the copy's estimate, within at least
 * ESTIMATE_TOLERANCE); 'schema' the tables and the migration version.
 */
export function compareClaims(manifest: SnapshotManifest, copy: CopyFigures): string[] {
  const claims = manifest.claims ?? 'exact';
  if (claims === 'exact') return diffFingerprints(manifest, copy);
  const differences: string[] = [];
  const now = new Map(copy.tables.map((t) => [t.table, t]));
  const then = new Set(manifest.tables.map((t) => t.table));
  const tolerance = manifest.countTolerance ?? DEFAULT_COUNT_TOLERANCE;
  for (const want of manifest.tables) {
    const got = now.get(want.table);
    if (!got) {
      differences.push(`${want.table}: missing, the snapshot has it`);
      continue;
    }
    if (claims !== 'counts') continue;
    const actual = want.estimated ? Math.round(copy.estimates.get(want.table) ?? got.rows) : got.rows;
    const relative = want.estimated ? Math.max(tolerance, ESTIMATE_TOLERANCE) : tolerance;
    const slack = Math.max(MIN_COUNT_SLACK, Math.ceil(want.rows * relative));
    if (Math.abs(actual - want.rows) > slack) {
      differences.push(
        `${want.table}: ${actual} rows${want.estimated ? ' (estimated)' : ''}, the live database had ${want.rows} ` +
          `just before the snapshot (more than ${slack} apart)`,
      );
    }
  }
  for (const got of copy.tables) {
    if (!then.has(got.table)) differences.push(`${got.table}: not in the snapshot (${got.rows} rows)`);
  }
  if (manifest.migrationVersion !== copy.migrationVersion) {
    differences.push(
      `migration version: ${copy.migrationVersion ?? 'none'}, snapshot has ${manifest.migrationVersion ?? 'none'}`,
    );
  }
  return differences;
}

/** The snapshot's verified manifest: the figures of its first restored copy that matched the manifest's claims. */
export function verifiedManifest(manifest: SnapshotManifest, copy: CopyFigures, copyId: string): SnapshotManifest {
  const { countTolerance: _tolerance, ...rest } = manifest;
  return {
    ...rest,
    tables: copy.tables.map(({ table, rows, checksum }) => ({ table, rows, checksum })),
    claims: 'exact',
    verifiedOn: copyId,
  };
}

/** The Migrator on node-pg-migrate: pending migrations of a folder, and applying them in one transaction. */
import { readFile, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import type { MigrationResult, Migrator } from '../platforms/types';
import { connectPg } from './connect';
import { MIGRATIONS_TABLE, readMigrationVersion, readSchemaVersion } from './fingerprint';
import { findTransactionControl } from './sql-transaction-control';

/** node-pg-migrate's own advisory lock id: holding it keeps its runners (ours and the CLI's) out. */
const NODE_PG_MIGRATE_LOCK_ID = '7241865325823964';
const LOCK_BUSY = 'Another migration is already running';

/** A migration that failed; nothing of the run was committed (unless a migration opted out of the transaction). */
export class MigrationError extends Error {
  constructor(
    message: string,
    readonly database: string,
    /** The file of the failing migration, when known. */
    readonly file: string | undefined,
    /** PostgreSQL's SQLSTATE, when the database rejected a statement. */
    readonly sqlState: string | undefined,
    /** What node-pg-migrate logged during the run. */
    readonly log: string[],
  ) {
    super(message);
    this.name = 'MigrationError';
  }
}

export interface MigratorOptions {
  /** How long `migrate` waits for another run on the same database to finish. Default 10 minutes. */
  lockWaitMs?: number;
}

// node-pg-migrate is ESM-only; this package compiles to CommonJS, where only import() can load it.
const load = () => import('node-pg-migrate');
let loaded: ReturnType<typeof load> | undefined;
const nodePgMigrate = () => (loaded ??= load());

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function requireDir(dir: string): Promise<void> {
  const info = await stat(dir).catch(() => undefined);
  if (!info) throw new Error(`migrations folder ${dir} does not exist`);
  if (!info.isDirectory()) throw new Error(`migrations folder ${dir} is not a folder`);
}

function collector() {
  const lines: string[] = [];
  const add = (level: string) => (msg: string) => lines.push(`${level}: ${msg}`);
  return { lines, logger: { debug: add('debug'), info: add('info'), warn: add('warn'), error: add('error') } };
}

async function appliedNames(client: pg.Client): Promise<string[] | undefined> {
  const { rows } = await client.query<{ present: boolean }>('SELECT to_regclass($1) IS NOT NULL AS present', [
    `public.${MIGRATIONS_TABLE}`,
  ]);
  if (!rows[0]?.present) return undefined;
  const names = await client.query<{ name: string }>(`SELECT name FROM public.${MIGRATIONS_TABLE} ORDER BY run_on, id`);
  return names.rows.map((r) => r.name);
}

/** node-pg-migrate's sort key of a file name: its timestamp prefix (13 digits of ms, or 17 of UTC), else the number. */
function numericPrefix(fileName: string): number {
  const prefix = fileName.split('_')[0] ?? '';
  if (/^\d{13}$/.test(prefix)) return Number(prefix);
  const utc = /^(\d{4})(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(\d{3})$/.exec(prefix);
  if (utc) return new Date(`${utc[1]}-${utc[2]}-${utc[3]}T${utc[4]}:${utc[5]}:${utc[6]}.${utc[7]}Z`).valueOf();
  return Number(prefix) || 0;
}

/**
 * The migration files of `dir` as node-pg-migrate's runner finds and orders them (its `getMigrationFilePaths`,
 * whose subpath export is broken in 8.0.4): files not starting with ".", by timestamp prefix, then by name.
 */
async function migrationFiles(dir: string): Promise<Array<{ name: string; file: string }>> {
  const entries = await readdir(dir, { withFileTypes: true });
  return entries
    .filter((e) => (e.isFile() || e.isSymbolicLink()) && !e.name.startsWith('.'))
    .map((e) => e.name)
    .sort(
      (a, b) =>
        numericPrefix(a) - numericPrefix(b) ||
        a.localeCompare(b, undefined, {
          usage: 'sort',
          numeric: true,
          sensitivity: 'variant',
          ignorePunctuation: true,
        }),
    )
    .map((file) => ({ name: path.basename(file, path.extname(file)), file }));
}

/**
 * The SQL node-pg-migrate runs for a migration file going up (its getActions): from the "-- Up Migration" comment to
 * the "-- Down Migration" one when the file has them, else the whole file; with the 1-based line it starts on.
 */
function upSection(content: string): { sql: string; firstLine: number } {
  const up = content.search(/^\s*--[\s-]*up\s+migration/im);
  const down = content.search(/^\s*--[\s-]*down\s+migration/im);
  if (up < 0) return { sql: content, firstLine: 1 }; // even a file with only a Down section runs whole
  return { sql: content.slice(up, down < up ? undefined : down), firstLine: content.slice(0, up).split('\n').length };
}

/**
 * Refuses a pending SQL migration that begins or ends a transaction itself (BEGIN; ... COMMIT;, as plain scripts often
 * do): all pending migrations run in one transaction, and its COMMIT would commit those before it, so that a later
 * failure leaves part of the run applied. Checked before anything runs. Throws MigrationError.
 */
async function refuseOwnTransactions(
  database: string,
  dir: string,
  files: Array<{ name: string; file: string }>,
  applied: string[],
): Promise<void> {
  for (const f of files) {
    if (!f.file.endsWith('.sql') || applied.includes(f.name)) continue;
    const { sql, firstLine } = upSection(await readFile(path.join(dir, f.file), 'utf8'));
    const control = findTransactionControl(sql);
    if (!control) continue;
    throw new MigrationError(
      `migration ${f.file} runs its own ${control.statement} (line ${firstLine + control.line - 1}): the pending ` +
        'migrations run in one transaction, which a COMMIT in a file would end early, so that a later failure leaves ' +
        `part of the run applied; remove the file's BEGIN/COMMIT; nothing of this run was applied`,
      database,
      f.file,
      undefined,
      [],
    );
  }
}

/** The 1-based line of `position` (1-based, in the Up section of a SQL migration) within the file. */
async function lineInSqlFile(file: string, position: number): Promise<number | undefined> {
  const content = await readFile(file, 'utf8').catch(() => undefined);
  if (content === undefined) return undefined;
  // node-pg-migrate runs the text from the "-- Up Migration" comment on, verbatim.
  const upStart = Math.max(0, content.search(/^\s*--[\s-]*up\s+migration/im));
  return content.slice(0, upStart + position - 1).split('\n').length;
}

async function describeFailure(
  err: unknown,
  database: string,
  dir: string,
  files: Array<{ name: string; file: string }>,
  log: string[],
): Promise<MigrationError> {
  const started = log.flatMap((l) => /### MIGRATION (.+) \(UP\) ###/.exec(l)?.[1] ?? []);
  const failed = files.find((f) => f.name === started[started.length - 1]);
  const pgErr = err as Partial<pg.DatabaseError>;
  let where = '';
  if (failed && pgErr.position && failed.file.endsWith('.sql')) {
    const line = await lineInSqlFile(path.join(dir, failed.file), Number(pgErr.position));
    if (line !== undefined) where = ` (line ${line})`;
  }
  const reason = [err instanceof Error ? err.message : String(err), pgErr.detail, pgErr.hint]
    .filter((part): part is string => !!part)
    .map((part) => part.replace(/\.$/, ''))
    .join('; ');
  const brokeTransaction = log.some((l) => l.includes('Need to break single transaction'));
  const outcome = brokeTransaction
    ? 'a migration of this run opted out of the transaction, so the migrations before it may be committed'
    : 'nothing of this run was applied';
  const what = failed ? `migration ${failed.file} failed` : 'migrations failed';
  return new MigrationError(
    `${what} on database "${database}"${where}: ${reason}; ${outcome}`,
    database,
    failed?.file,
    pgErr.code,
    log,
  );
}

/**
 * node-pg-migrate creates its table before it opens the run's transaction; when the run fails on a database that
 * had no migrations, the empty table is dropped again so the database is exactly as it was. Done under
 * node-pg-migrate's advisory lock so that no other run is between creating the table and using it.
 */
async function dropEmptyMigrationsTable(url: string): Promise<void> {
  const client = await connectPg(url);
  try {
    await client.query(`SELECT pg_advisory_lock(${NODE_PG_MIGRATE_LOCK_ID})`);
    const names = await appliedNames(client);
    if (names && names.length === 0) await client.query(`DROP TABLE public.${MIGRATIONS_TABLE}`);
  } finally {
    await client.end().catch(() => undefined); // ending the session releases the lock
  }
}

/**
 * A {@link Migrator} on node-pg-migrate's `runner`: up only, all pending migrations in one transaction, under its
 * advisory lock (a concurrent call waits up to `lockWaitMs` and then finds nothing left to apply), with
 * `checkOrder` (a new migration that sorts before an applied one is refused), the `pgmigrations` table, and its
 * log collected instead of printed.
 *
 * The files of a migrations folder (every file not starting with "."; each applied once, recorded in pgmigrations
 * under its name without the extension, e.g. `001_initial_schema`):
 * - plain SQL: `001_initial_schema.sql`, `002_add_x.sql`, ... with no markers; the whole file is the migration.
 * - node-pg-migrate SQL: the same with `-- Up Migration` (run) and `-- Down Migration` (never run here) sections.
 * - node-pg-migrate JavaScript (`.js`, `.cjs`, `.mjs`) exporting `up(pgm)`.
 * Order: by the number before the first `_`, numerically (`001` < `002` < `010`, and `2_b` < `10_c`), then by name;
 * a 13-digit prefix is read as a millisecond timestamp and a 17-digit one as a UTC one (node-pg-migrate's own
 * names), so do not mix those with small numbers in one folder. An SQL file must not begin or end the transaction
 * itself (BEGIN; ... COMMIT;): it is refused before anything runs, since its COMMIT would commit the files before it.
 * Statements that cannot run in a transaction (CREATE INDEX CONCURRENTLY, VACUUM) fail the run.
 *
 * Errors: a missing `dir` throws a plain Error naming it; a failing migration throws {@link MigrationError}
 * naming the file, the line and PostgreSQL's message, with the database left as it was (so does a pending SQL file
 * with its own BEGIN/COMMIT, from `pending` too, before anything runs); an unreachable database throws the pg error.
 */
export function createMigrator(
  urlFor: (database: string) => string | Promise<string>,
  options: MigratorOptions = {},
): Migrator {
  const lockWaitMs = options.lockWaitMs ?? 600_000;

  return {
    async pending(database: string, dir: string): Promise<string[]> {
      await requireDir(dir);
      const files = await migrationFiles(dir);
      const client = await connectPg(await urlFor(database));
      try {
        const applied = (await appliedNames(client)) ?? [];
        await refuseOwnTransactions(database, dir, files, applied);
        // The same check as the runner's checkOrder, so pending() warns about what migrate() would refuse.
        for (let i = 0; i < Math.min(applied.length, files.length); i++) {
          if (applied[i] !== files[i]?.name) {
            throw new Error(
              `migration ${files[i]?.file} in ${dir} sorts before ${applied[i]}, which database "${database}" already applied`,
            );
          }
        }
        return files.filter((f) => !applied.includes(f.name)).map((f) => f.name);
      } finally {
        await client.end().catch(() => undefined);
      }
    },

    async migrate(database: string, dir: string): Promise<MigrationResult> {
      await requireDir(dir);
      const { runner } = await nodePgMigrate();
      const files = await migrationFiles(dir);
      const url = await urlFor(database);
      const deadline = Date.now() + lockWaitMs;
      for (let wait = 100; ; wait = Math.min(wait * 2, 2_000)) {
        const { lines, logger } = collector();
        const client = await connectPg(url);
        let hadTable = true;
        try {
          const applied = await appliedNames(client);
          hadTable = applied !== undefined;
          await refuseOwnTransactions(database, dir, files, applied ?? []);
          const ran = await runner({
            dbClient: client,
            dir,
            direction: 'up',
            migrationsTable: MIGRATIONS_TABLE,
            singleTransaction: true,
            checkOrder: true,
            logger,
          });
          return { applied: ran.map((m) => m.name), version: await readMigrationVersion(client) };
        } catch (err) {
          if (err instanceof MigrationError) throw err; // refused before anything ran
          if (err instanceof Error && err.message === LOCK_BUSY && Date.now() < deadline) {
            await sleep(wait);
            continue;
          }
          if (err instanceof Error && err.message === LOCK_BUSY) {
            throw new Error(`another migration of database "${database}" ran for more than ${lockWaitMs / 1000} s`);
          }
          if (!hadTable) await dropEmptyMigrationsTable(url).catch(() => undefined);
          throw await describeFailure(err, database, dir, files, lines);
        } finally {
          await client.end().catch(() => undefined);
        }
      }
    },

    async schemaVersion(database: string) {
      const client = await connectPg(await urlFor(database));
      try {
        return await readSchemaVersion(client);
      } finally {
        await client.end().catch(() => undefined);
      }
    },
  };
}

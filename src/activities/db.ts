import { stat } from 'node:fs/promises';
import { ApplicationFailure, Context } from '@temporalio/activity';
import { checkDatabaseExists, databaseAddress, type DatabaseAddress } from '../pg/create-database';
import type {
  MigrationResult,
  PlatformDeps,
  RestoreProgress,
  SchemaVersion,
  SnapshotManifest,
  SnapshotProgress,
  SnapshotStore,
} from '../platforms/types';
import type { Targeted } from '../shared/target';
import { toActivityFailure } from './failures';
import { whileHeartbeating } from './heartbeat';
import { platformPicker } from './platform';

export interface DbActivityDeps extends PlatformDeps {
  /** The worker's environment, where database.urlEnv names a database URL (default: the process's). */
  env?: NodeJS.ProcessEnv;
}

/** Polls a restore that the platform runs on its own (RDS) until it is ready, heartbeating its state. */
async function untilRestored(
  snapshots: SnapshotStore,
  target: string,
  started: void | { ready: boolean; detail: string },
  pollMs: number,
): Promise<void> {
  if (!started || started.ready) return;
  const ctx = Context.current();
  for (;;) {
    await ctx.sleep(pollMs);
    const status = await snapshots.restoreStatus!(target);
    ctx.heartbeat({ phase: 'restoring', detail: status.detail });
    if (status.ready) return;
  }
}

/** Runs the platform's restore of a snapshot into `target`, heartbeating, with the store's progress to `onProgress`. */
export function runRestore(
  snapshots: SnapshotStore,
  req: { snapshotId: string; target: string; jobs: number },
  onProgress: (p: SnapshotProgress) => void,
): Promise<void | RestoreProgress> {
  const ctx = Context.current();
  return whileHeartbeating(() =>
    snapshots.restore(req.snapshotId, req.target, { jobs: req.jobs }, onProgress, ctx.cancellationSignal),
  );
}

/** How often an activity polls a restore that runs on its own, unless the platform's settings say. */
const RESTORE_POLL_MS = 15_000;

export const dbFailure = {
  migration: 'MigrationFailed',
  snapshotMissing: 'SnapshotNotFound',
  snapshotCorrupt: 'SnapshotCorrupt',
  snapshotForeign: 'SnapshotForeign',
  preflight: 'PreflightFailed',
} as const;

/** A shell word: as it is when it is plain, else in single quotes. */
const shellWord = (word: string) => (/^[A-Za-z0-9_.:/@%+=-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`);

/** An SQL identifier: as it is when it is a plain lowercase one, else double-quoted. */
const sqlName = (name: string) => (/^[a-z_][a-z0-9_]*$/.test(name) ? name : `"${name.replace(/"/g, '""')}"`);

/** What to run to create `database` on the server of `address`, as its user (psql asks for the password). */
function createCommand(address: DatabaseAddress, database: string): string {
  const user = address.user;
  const sql = `CREATE DATABASE ${sqlName(database)}${user ? ` OWNER ${sqlName(user)}` : ''}`;
  const login = [`-h ${shellWord(address.host)}`, `-p ${address.port}`, ...(user ? [`-U ${shellWord(user)}`] : [])];
  return `psql ${login.join(' ')} -d postgres -c ${shellWord(sql)}`;
}

/**
 * Checks that the database of the URL in the worker's `urlEnv` exists and takes the URL's login: a database the
 * worker does not manage (an external PostgreSQL, RDS) is never created, so a missing one is a PreflightFailed
 * (non-retryable) saying what to create and how. Messages name the host, port and user, never the URL or password.
 */
async function checkExternalDatabase(env: NodeJS.ProcessEnv, service: string, urlEnv: string): Promise<void> {
  const preflight = (message: string) => ApplicationFailure.nonRetryable(message, dbFailure.preflight);
  const url = env[urlEnv];
  if (!url)
    throw preflight(
      `the worker has no ${urlEnv} set (the database URL of ${service}); set it in the worker's environment`,
    );
  let address: DatabaseAddress;
  try {
    address = databaseAddress(url);
  } catch {
    throw preflight(
      `the worker's ${urlEnv} is not a URL; set it to postgres://<user>:<password>@<host>:5432/<database>`,
    );
  }
  const where = `${address.host}:${address.port} (from ${urlEnv})`;
  const check = await checkDatabaseExists(url);
  if (check.ok) return;
  const database = address.database ?? address.user ?? service;
  if (check.reason === 'missing') {
    throw preflight(
      `database "${database}" does not exist on ${where}: create it first: ${createCommand(address, database)}`,
    );
  }
  throw preflight(
    `${where} refuses the login of ${address.user ? `user "${address.user}"` : 'the URL'} to database "${database}" ` +
      `(${check.detail}): fix the user or password in the worker's ${urlEnv}`,
  );
}

/**
 * The manifest of `snapshotId`, which must exist and have been taken of this service's database in this
 * environment. Throws SnapshotNotFound or SnapshotForeign (non-retryable): a rollback or a drill never
 * restores another service's data.
 */
export async function ownedSnapshot(
  snapshots: Pick<SnapshotStore, 'get'>,
  req: { snapshotId: string; service: string; environment: string; database: string },
): Promise<SnapshotManifest> {
  const manifest = await snapshots.get(req.snapshotId).catch((err: unknown) => {
    throw toActivityFailure(err);
  });
  if (!manifest) {
    throw ApplicationFailure.nonRetryable(
      `snapshot ${req.snapshotId} does not exist; the deploy results, \`runbook status\` and \`runbook drill history\` name the snapshots`,
      dbFailure.snapshotMissing,
    );
  }
  if (
    manifest.service !== req.service ||
    manifest.environment !== req.environment ||
    manifest.database !== req.database
  ) {
    throw ApplicationFailure.nonRetryable(
      `snapshot ${req.snapshotId} belongs to ${manifest.service}/${manifest.environment} (database ${manifest.database}), not ${req.service}/${req.environment}`,
      dbFailure.snapshotForeign,
    );
  }
  return manifest;
}

/** The database server is away (refused, shutting down, too many connections): worth a retry, not a verdict. */
export function isServerAway(err: unknown): boolean {
  const code = (err as { code?: string }).code;
  return code === 'ECONNREFUSED' || code === '57P01' || code === '53300';
}

/** Activities on the service's database: snapshots with manifests, and migrations. */
export function createDbActivities(deps: DbActivityDeps) {
  const pick = platformPicker(deps.platforms);
  return {
    /**
     * Everything a database restore needs to know before anything is touched: the snapshot exists, belongs
     * to this service and environment, its file is whole (size, sha256, archive contents), and what the
     * restore would lose (rows now vs in the snapshot). Throws SnapshotNotFound / SnapshotCorrupt /
     * SnapshotForeign (non-retryable).
     */
    async inspectSnapshot(
      req: { snapshotId: string; service: string; environment: string; database: string } & Targeted,
    ) {
      const { snapshots } = pick(req);
      const manifest = await ownedSnapshot(snapshots, req);
      const verified = await snapshots.verify(req.snapshotId);
      if (!verified.ok) {
        throw ApplicationFailure.nonRetryable(
          `snapshot ${req.snapshotId} cannot be restored: ${verified.reason}`,
          dbFailure.snapshotCorrupt,
        );
      }
      const now = await whileHeartbeating(() => snapshots.fingerprint(req.database)); // a full scan: minutes on a big database
      const inSnapshot = new Map(manifest.tables.map((t) => [t.table, t.rows]));
      const tables = new Set([...inSnapshot.keys(), ...now.tables.map((t) => t.table)]);
      const rowsNow = new Map(now.tables.map((t) => [t.table, t.rows]));
      return {
        manifest,
        lost: [...tables]
          .sort()
          .map((table) => ({ table, rowsNow: rowsNow.get(table) ?? 0, rowsInSnapshot: inSnapshot.get(table) ?? 0 })),
        migrationVersionNow: now.migrationVersion,
      };
    },

    /** Restores a snapshot into a new database (pg_restore -j); a crashed attempt's leftover is redone. */
    async restoreSnapshot(req: { snapshotId: string; target: string; jobs: number } & Targeted): Promise<void> {
      const ctx = Context.current();
      const { snapshots } = pick(req);
      try {
        const started = await runRestore(snapshots, req, (p) => ctx.heartbeat(p));
        const pollMs = snapshots.restorePollMs ?? RESTORE_POLL_MS;
        await whileHeartbeating(() => untilRestored(snapshots, req.target, started, pollMs));
      } catch (err) {
        throw toActivityFailure(err);
      }
    },

    /** Compares a database with a snapshot's manifest (row counts, checksums, migration version). */
    async compareWithSnapshot(req: { database: string; snapshotId: string } & Targeted) {
      const { snapshots } = pick(req);
      const manifest = await snapshots.get(req.snapshotId);
      if (!manifest)
        throw ApplicationFailure.nonRetryable(`snapshot ${req.snapshotId} does not exist`, dbFailure.snapshotMissing);
      return whileHeartbeating(() => snapshots.compare(req.database, manifest));
    },

    async dropDatabase(name: string, target?: Targeted): Promise<void> {
      await pick(target).snapshots.dropDatabase(name);
    },

    async swapDatabase(req: { database: string; restored: string; replacedAs: string } & Targeted): Promise<string> {
      return pick(req).swapDatabases(req.database, req.restored, req.replacedAs);
    },

    /**
     * Takes the pre-migration snapshot (pg_dump -Fc + manifest). The id comes from the workflow id, so a
     * retry or a new worker adopts the complete snapshot instead of taking a second one.
     */
    async takeSnapshot(
      req: {
        snapshotId: string;
        service: string;
        environment: string;
        database: string;
        workflowId: string;
      } & Targeted,
    ): Promise<SnapshotManifest> {
      const ctx = Context.current();
      const { snapshots } = pick(req);
      try {
        return await whileHeartbeating(() => snapshots.take(req, (p) => ctx.heartbeat(p), ctx.cancellationSignal));
      } catch (err) {
        throw toActivityFailure(err);
      }
    },

    /**
     * Preflight of a migrations folder that names the deployed version's (`releases/{version}/migrations`): it must
     * exist on this worker. Throws PreflightFailed (non-retryable) naming the path and the setting.
     */
    async requireMigrationsFolder(req: { dir: string; version: string; configured: string }): Promise<void> {
      const info = await stat(req.dir).catch(() => undefined);
      if (info?.isDirectory()) return;
      throw ApplicationFailure.nonRetryable(
        `the migrations folder of ${req.version}, ${req.dir}, ${info ? 'is not a folder' : 'does not exist'} on this worker ` +
          `(database.migrations: ${req.configured}); ship the migrations inside the release, or fix the setting`,
        dbFailure.preflight,
      );
    },

    /** The schema now (node-pg-migrate's last migration, a digest of the columns): recorded before and after a migration. */
    async readSchemaVersion(database: string, target?: Targeted): Promise<SchemaVersion> {
      return pick(target).migrator.schemaVersion(database);
    },

    /**
     * Makes sure the service's database is there before anything uses it (a deploy's snapshot, migrations, the
     * release). A database whose URL the worker derives from its own stack (no `urlEnv`) is created by a platform that
     * can (single-host's ensureDatabase: 'created' on the first deploy, 'exists' after; given to the service's role
     * with service roles). One named by `urlEnv` (an external PostgreSQL; on aws-ecs always, the RDS database of
     * aws.rds.urlEnv) is only checked by connecting with that URL from the worker's environment: 'exists', or
     * PreflightFailed (non-retryable) when it is missing (with the psql command that creates it), its login is
     * refused or the variable is unset. An unreachable server is retried.
     */
    async prepareDatabase(
      req: { service: string; environment: string; database: string; urlEnv?: string } & Targeted,
    ): Promise<'created' | 'exists'> {
      const parts = pick(req);
      if (!req.urlEnv && parts.ensureDatabase) {
        return parts.ensureDatabase({ service: req.service, environment: req.environment, database: req.database });
      }
      if (!req.urlEnv) {
        throw ApplicationFailure.nonRetryable(
          `database ${req.database} of ${req.service} has no database.urlEnv and this platform does not create databases: name the worker's environment variable with its URL in database.urlEnv`,
          dbFailure.preflight,
        );
      }
      await checkExternalDatabase(deps.env ?? process.env, req.service, req.urlEnv);
      return 'exists';
    },

    /**
     * Applies pending migrations in one transaction under an advisory lock. A failure leaves the database
     * as it was and is final (MigrationFailed, non-retryable): running the same SQL again would fail again.
     */
    async migrateDatabase(database: string, dir: string, target?: Targeted): Promise<MigrationResult> {
      const { migrator } = pick(target);
      try {
        return await whileHeartbeating(() => migrator.migrate(database, dir));
      } catch (err) {
        const e = err as Error & { code?: string };
        if (isServerAway(err)) throw err; // retried
        throw ApplicationFailure.nonRetryable(
          `migration failed, database unchanged: ${e.message}`,
          dbFailure.migration,
        );
      }
    },
  };
}

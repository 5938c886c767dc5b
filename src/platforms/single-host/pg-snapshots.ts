import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, readdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { diffFingerprints, fingerprintDatabase, fingerprintInTransaction } from '../../pg/fingerprint';
import { PgToolError, libpqEnv, runTool } from '../../pg/client-tools';
import { connectPg } from '../../pg/connect';
import { fsync, writeFileAtomically } from '../../system/atomic-write';
import { createPrivateFile, ensurePrivateDir } from '../../system/private-files';
import { checkManifestSignature, signManifest } from './manifest-signature';
import {
  PlatformError,
  type ManifestComparison,
  type SnapshotManifest,
  type SnapshotProgress,
  type SnapshotStore,
} from '../types';

/** Snapshot ids, service, environment and database names: safe as file names and as PostgreSQL identifiers. */
export const SNAPSHOT_NAME_PATTERN = /^[a-z0-9][a-z0-9_-]{0,62}$/;

/** What went wrong with a snapshot operation. */
type SnapshotErrorCode = 'invalid' | 'not-found' | 'conflict' | 'corrupt' | 'untrusted' | 'busy' | 'failed' | 'aborted';

/**
 * The failure of each: invalid names, missing or corrupt snapshots and name conflicts stay so however often one
 * retries (permanent); a snapshot or restore another worker holds, and a failed or cancelled pg_dump/pg_restore, are
 * retried (SnapshotError).
 */
const SNAPSHOT_FAILURES: Record<SnapshotErrorCode, { type: string; permanent: boolean }> = {
  invalid: { type: 'Snapshot_invalid', permanent: true },
  'not-found': { type: 'SnapshotNotFound', permanent: true },
  conflict: { type: 'Snapshot_conflict', permanent: true },
  corrupt: { type: 'SnapshotCorrupt', permanent: true },
  untrusted: { type: 'SnapshotUntrusted', permanent: true },
  busy: { type: 'SnapshotError', permanent: false },
  failed: { type: 'SnapshotError', permanent: false },
  aborted: { type: 'SnapshotError', permanent: false },
};

const snapshotError = (message: string, code: SnapshotErrorCode) => new PlatformError(message, SNAPSHOT_FAILURES[code]);

export interface PgSnapshotStoreOptions {
  /** Where dumps and manifests live: `<dir>/<service>-<environment>/<snapshotId>.{dump,json}`. */
  dir: string;
  /** The URL of a database on the server (its credentials are passed to pg_dump/pg_restore by environment). */
  urlFor: (database: string) => string;
  /** The folder of pg_dump and pg_restore (postgresBinDir()); they must not be older than the server. */
  binDir: string;
  /**
   * The key that signs every manifest this store writes, and that a manifest must be signed with to be restored or
   * adopted (deriveKey(workerSecret, 'manifests')).
   */
  manifestKey: Buffer;
  /** How often progress is reported while pg_dump or pg_restore run. Default 1000 ms. */
  progressIntervalMs?: number;
}

/** The store, and what only an operator does with it on the worker's host (`runbook snapshots sign`). */
export interface PgSnapshotStore extends SnapshotStore {
  /**
   * Signs the manifest of `snapshotId` with this store's key after checking that the dump is the one it describes
   * (size, sha256, readable by pg_restore): for a snapshot taken before manifests were signed, or under a previous
   * worker secret, that an operator vouches for. Throws SnapshotNotFound or SnapshotCorrupt.
   */
  sign(snapshotId: string): Promise<SnapshotManifest>;
}

/** Databases that must never be dropped or restored over. */
const SYSTEM_DATABASES = new Set(['postgres', 'template0', 'template1']);
/** Advisory lock class of this store; the object is hashtext('snapshot:<id>') or hashtext('restore:<db>'). */
const LOCK_CLASS = 0x72756e62;
/** Tables, views and sequences in the database's own schemas (not pg_catalog / information_schema). */
async function userRelationCount(url: string): Promise<number> {
  const client = await connectPg(url);
  try {
    const { rows } = await client.query<{ n: string }>(
      `SELECT count(*) AS n FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'`,
    );
    return Number(rows[0]?.n ?? 0);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * Database comments that mark a restore target: only a database marked "restoring" (left by a crashed attempt)
 * is dropped and restored again; one marked restored from the same snapshot is adopted.
 */
const restoringMarker = (snapshotId: string) => `runbook: restoring snapshot ${snapshotId}`;
const restoredMarker = (snapshotId: string) => `runbook: restored from snapshot ${snapshotId}`;

function checkName(what: string, value: string): void {
  if (!SNAPSHOT_NAME_PATTERN.test(value)) {
    throw snapshotError(
      `invalid ${what} ${JSON.stringify(value)}: use 1 to 63 lowercase letters, digits, "_" or "-", starting with a letter or digit`,
      'invalid',
    );
  }
}

const quote = (name: string) => pg.escapeIdentifier(name);

async function fileSize(file: string): Promise<number | undefined> {
  return (await stat(file).catch(() => undefined))?.size;
}

async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

async function tryLock(client: pg.Client, key: string): Promise<boolean> {
  const { rows } = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1::int, hashtext($2)) AS ok', [
    LOCK_CLASS,
    key,
  ]);
  return rows[0]?.ok === true;
}

/**
 * Reports `measure()` as progress every `ms` until stopped, never two at a time, and never after the stop (the
 * caller has moved on to another phase). Errors are ignored: progress is best-effort.
 */
function every(ms: number, measure: () => Promise<number | undefined>, report: (bytes: number) => void): () => void {
  let busy = false;
  let stopped = false;
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    measure()
      .then((bytes) => bytes !== undefined && !stopped && report(bytes))
      .catch(() => undefined)
      .finally(() => (busy = false));
  }, ms);
  return () => {
    stopped = true;
    clearInterval(timer);
  };
}

const aborted = (signal: AbortSignal | undefined, what: string) => {
  if (signal?.aborted) throw snapshotError(`${what} was cancelled`, 'aborted');
};

/**
 * A {@link SnapshotStore} on one PostgreSQL server: pg_dump custom-format archives and JSON manifests in a folder.
 *
 * `take` exports the snapshot of a REPEATABLE READ transaction and gives it to `pg_dump --snapshot` while the
 * same transaction computes the table fingerprints, so the dump and the manifest see the same data; the dump is
 * written as `.dump.partial`, hashed, renamed to `.dump`, and the manifest is written last (atomically): a
 * manifest means a complete snapshot. `restore` verifies the archive first and restores into a new database,
 * which it marks with a comment while restoring ("runbook: restoring snapshot <id>") and after ("runbook: restored
 * from snapshot <id>"): an existing target is dropped and restored again only when marked as an unfinished
 * restore, adopted when restored from the same snapshot, and refused otherwise, so no live database is dropped.
 * Concurrent takes of one id, or restores into one target, are kept apart by advisory locks (SnapshotError, retried).
 *
 * Errors are {@link PlatformError}s: Snapshot_invalid (a name, a target or jobs refused), SnapshotNotFound,
 * Snapshot_conflict (an id or a target that belongs to something else) and SnapshotCorrupt (a dump or manifest that
 * does not check out) are permanent; SnapshotError (busy, or pg_dump/pg_restore failed or was cancelled) is retried.
 * pg errors, when a database cannot be reached or read, are thrown as they are.
 */
export function createPgSnapshotStore(opts: PgSnapshotStoreOptions): PgSnapshotStore {
  const dir = path.resolve(opts.dir);
  const { urlFor } = opts;
  const tick = opts.progressIntervalMs ?? 1_000;
  const pgDump = path.join(opts.binDir, 'pg_dump');
  const pgRestore = path.join(opts.binDir, 'pg_restore');

  const filesOf = (service: string, environment: string, snapshotId: string) => {
    const folder = path.join(dir, `${service}-${environment}`);
    return {
      folder,
      dump: path.join(folder, `${snapshotId}.dump`),
      partial: path.join(folder, `${snapshotId}.dump.partial`),
      manifest: path.join(folder, `${snapshotId}.json`),
    };
  };

  async function readManifest(file: string): Promise<SnapshotManifest> {
    try {
      return JSON.parse(await readFile(file, 'utf8')) as SnapshotManifest;
    } catch (err) {
      throw snapshotError(`the snapshot manifest ${file} is unreadable: ${(err as Error).message}`, 'corrupt');
    }
  }

  async function get(snapshotId: string): Promise<SnapshotManifest | undefined> {
    checkName('snapshot id', snapshotId);
    const folders = await readdir(dir, { withFileTypes: true }).catch(() => []);
    for (const folder of folders) {
      if (!folder.isDirectory()) continue;
      const file = path.join(dir, folder.name, `${snapshotId}.json`);
      if ((await fileSize(file)) !== undefined) return readManifest(file);
    }
    return undefined;
  }

  /** The complete snapshot with this id, if there is one; throws when the id belongs to another database. */
  async function adoptable(req: {
    snapshotId: string;
    service: string;
    environment: string;
    database: string;
  }): Promise<SnapshotManifest | undefined> {
    const existing = await get(req.snapshotId);
    if (!existing) return undefined;
    if (
      existing.service !== req.service ||
      existing.environment !== req.environment ||
      existing.database !== req.database
    ) {
      throw snapshotError(
        `snapshot id ${req.snapshotId} is already taken by a snapshot of database "${existing.database}" ` +
          `(${existing.service}/${existing.environment}); choose another id`,
        'conflict',
      );
    }
    const { dump } = filesOf(req.service, req.environment, req.snapshotId);
    if ((await fileSize(dump)) !== existing.bytes) return undefined;
    const signed = checkManifestSignature(existing, opts.manifestKey);
    if (!signed.ok) {
      throw snapshotError(
        `snapshot ${req.snapshotId} is not adopted: ${signed.reason}; choose another id, or sign it after checking ` +
          `the dump yourself (runbook snapshots sign ${req.snapshotId})`,
        'untrusted',
      );
    }
    return existing;
  }

  async function verify(snapshotId: string): Promise<{ ok: true } | { ok: false; reason: string }> {
    const manifest = await get(snapshotId);
    if (!manifest) return { ok: false, reason: `there is no snapshot ${snapshotId} in ${dir}` };
    const signed = checkManifestSignature(manifest, opts.manifestKey);
    if (!signed.ok) return { ok: false, reason: signed.reason };
    return verifyDump(manifest);
  }

  /** Whether the dump is the one the manifest describes (size, sha256) and pg_restore can read it. */
  async function verifyDump(manifest: SnapshotManifest): Promise<{ ok: true } | { ok: false; reason: string }> {
    const { snapshotId } = manifest;
    const { dump } = filesOf(manifest.service, manifest.environment, snapshotId);
    const size = await fileSize(dump);
    if (size === undefined) return { ok: false, reason: `the dump ${dump} is missing` };
    if (size !== manifest.bytes) {
      return {
        ok: false,
        reason: `the dump ${dump} is ${size} bytes but its manifest says ${manifest.bytes}: it is truncated or was overwritten`,
      };
    }
    const sha256 = await sha256File(dump);
    if (sha256 !== manifest.sha256) {
      return {
        ok: false,
        reason: `the dump ${dump} is corrupt: its sha256 is ${sha256}, its manifest says ${manifest.sha256}`,
      };
    }
    try {
      await runTool(pgRestore, ['--list', dump], libpqEnv(), undefined, true);
    } catch (err) {
      return { ok: false, reason: `pg_restore cannot read the archive ${dump}: ${(err as Error).message}` };
    }
    return { ok: true };
  }

  async function dropWithForce(admin: pg.Client, name: string): Promise<void> {
    await admin.query(`DROP DATABASE IF EXISTS ${quote(name)} WITH (FORCE)`);
  }

  return {
    get,
    verify,

    async sign(snapshotId) {
      const manifest = await get(snapshotId);
      if (!manifest) throw snapshotError(`there is no snapshot ${snapshotId} in ${dir}`, 'not-found');
      const dumpOk = await verifyDump(manifest);
      if (!dumpOk.ok) throw snapshotError(`snapshot ${snapshotId} is not signed: ${dumpOk.reason}`, 'corrupt');
      const signed = signManifest(manifest, opts.manifestKey);
      const { manifest: file } = filesOf(manifest.service, manifest.environment, snapshotId);
      await writeFileAtomically(file, `${JSON.stringify(signed, null, 2)}\n`);
      return signed;
    },

    async take(req, progress, signal) {
      checkName('snapshot id', req.snapshotId);
      checkName('service', req.service);
      checkName('environment', req.environment);
      checkName('database', req.database);
      const what = `snapshot ${req.snapshotId} of "${req.database}"`;
      const adopted = await adoptable(req);
      if (adopted) {
        progress?.({ phase: 'adopted', bytes: adopted.bytes });
        return adopted;
      }
      aborted(signal, what);
      const files = filesOf(req.service, req.environment, req.snapshotId);
      await ensurePrivateDir(files.folder);
      const url = urlFor(req.database);
      const client = await connectPg(url);
      try {
        if (!(await tryLock(client, `snapshot:${req.snapshotId}`))) {
          throw snapshotError(`${what} is being taken by another worker right now`, 'busy');
        }
        const finished = await adoptable(req); // by the worker that held the lock before us
        if (finished) {
          progress?.({ phase: 'adopted', bytes: finished.bytes });
          return finished;
        }
        // The manifest goes first: without it, what remains is an incomplete snapshot, never a wrong one.
        await rm(files.manifest, { force: true });
        await rm(files.dump, { force: true });
        await rm(files.partial, { force: true });
        await rm(`${files.manifest}.partial`, { force: true });
        await createPrivateFile(files.partial); // pg_dump keeps the mode of the file it writes into: 0600

        await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
        const { rows } = await client.query<{ snapshot: string; version: string }>(
          `SELECT pg_export_snapshot() AS snapshot, current_setting('server_version') AS version`,
        );
        const exported = rows[0];
        if (!exported) throw snapshotError(`${what}: pg_export_snapshot returned nothing`, 'failed');
        progress?.({ phase: 'dump', bytes: 0 });
        const stopDump = new AbortController();
        const onAbort = () => stopDump.abort();
        signal?.addEventListener('abort', onAbort, { once: true });
        if (signal?.aborted) stopDump.abort(); // aborted while reporting progress, before the listener was added
        const dump = runTool(
          pgDump,
          [
            '--format=custom',
            `--snapshot=${exported.snapshot}`,
            `--file=${files.partial}`,
            '--no-password',
            '--lock-wait-timeout=60000',
          ],
          libpqEnv(url),
          stopDump.signal,
        );
        const stopTicking = every(
          tick,
          () => fileSize(files.partial),
          (bytes) => progress?.({ phase: 'dump', bytes }),
        );
        let fingerprint: Awaited<ReturnType<typeof fingerprintInTransaction>>;
        try {
          [, fingerprint] = await Promise.all([dump, fingerprintInTransaction(client)]);
          await client.query('COMMIT');
        } catch (err) {
          stopDump.abort();
          await dump.catch(() => undefined);
          await rm(files.partial, { force: true });
          if (err instanceof PgToolError) {
            throw snapshotError(`${what}: ${err.message}`, err.cancelled ? 'aborted' : 'failed');
          }
          if (signal?.aborted) throw snapshotError(`${what} was cancelled`, 'aborted');
          throw err;
        } finally {
          stopTicking();
          signal?.removeEventListener('abort', onAbort);
        }

        progress?.({ phase: 'checksum', bytes: (await fileSize(files.partial)) ?? 0 });
        await fsync(files.partial);
        const sha256 = await sha256File(files.partial);
        const bytes = (await fileSize(files.partial)) ?? 0;
        await rename(files.partial, files.dump);
        const manifest: SnapshotManifest = signManifest(
          {
            snapshotId: req.snapshotId,
            service: req.service,
            environment: req.environment,
            database: req.database,
            workflowId: req.workflowId,
            createdAtMs: Date.now(),
            location: files.dump,
            bytes,
            sha256,
            tables: fingerprint.tables,
            migrationVersion: fingerprint.migrationVersion,
            serverVersion: exported.version,
          },
          opts.manifestKey,
        );
        await writeFileAtomically(files.manifest, `${JSON.stringify(manifest, null, 2)}\n`);
        progress?.({ phase: 'done', bytes });
        return manifest;
      } finally {
        await client.end().catch(() => undefined); // also releases the advisory lock
      }
    },

    async list(service, environment) {
      checkName('service', service);
      checkName('environment', environment);
      const { folder } = filesOf(service, environment, 'x');
      const names = await readdir(folder).catch(() => []);
      const manifests = await Promise.all(
        names.filter((n) => n.endsWith('.json')).map((n) => readManifest(path.join(folder, n))),
      );
      return manifests
        .filter((m) => m.service === service && m.environment === environment)
        .sort((a, b) => b.createdAtMs - a.createdAtMs);
    },

    async restore(snapshotId, target, { jobs }, progress?: (p: SnapshotProgress) => void, signal?: AbortSignal) {
      checkName('snapshot id', snapshotId);
      checkName('target database', target);
      if (!Number.isInteger(jobs) || jobs < 1 || jobs > 64) {
        throw snapshotError(`invalid jobs ${jobs}: use a whole number from 1 to 64`, 'invalid');
      }
      if (SYSTEM_DATABASES.has(target)) {
        throw snapshotError(`refusing to restore into the system database "${target}"`, 'invalid');
      }
      const manifest = await get(snapshotId);
      if (!manifest) throw snapshotError(`there is no snapshot ${snapshotId} in ${dir}`, 'not-found');
      if (target === manifest.database) {
        throw snapshotError(
          `refusing to restore snapshot ${snapshotId} into "${target}", the database it was taken from: restore into a new database`,
          'invalid',
        );
      }
      // Before anything else: a manifest this worker did not sign says nothing about the dump next to it.
      const signed = checkManifestSignature(manifest, opts.manifestKey);
      if (!signed.ok) {
        throw snapshotError(
          `snapshot ${snapshotId} is not restored: ${signed.reason}. If you know where this snapshot comes from, ` +
            `check its dump and sign it: runbook snapshots sign ${snapshotId}`,
          'untrusted',
        );
      }
      progress?.({ phase: 'verify', bytes: manifest.bytes });
      const verified = await verify(snapshotId);
      if (!verified.ok) {
        throw snapshotError(`snapshot ${snapshotId} cannot be restored: ${verified.reason}`, 'corrupt');
      }
      aborted(signal, `restore of snapshot ${snapshotId}`);

      const { dump } = filesOf(manifest.service, manifest.environment, snapshotId);
      const admin = await connectPg(urlFor('postgres'));
      try {
        if (!(await tryLock(admin, `restore:${target}`))) {
          throw snapshotError(`another restore into "${target}" is running right now`, 'busy');
        }
        const { rows } = await admin.query<{ comment: string | null }>(
          `SELECT shobj_description(oid, 'pg_database') AS comment FROM pg_database WHERE datname = $1`,
          [target],
        );
        const existing = rows[0];
        if (existing) {
          if (existing.comment === restoredMarker(snapshotId)) {
            progress?.({ phase: 'adopted' });
            return;
          }
          // CREATE DATABASE and its COMMENT are two statements: a crash between them leaves an unmarked, empty
          // database. Empty means nothing to lose, so it counts as a leftover too.
          const unmarkedAndEmpty = !existing.comment && (await userRelationCount(urlFor(target))) === 0;
          if (!unmarkedAndEmpty && !existing.comment?.startsWith(restoringMarker(''))) {
            throw snapshotError(
              `database "${target}" already exists and is not left over from a restore` +
                (existing.comment ? ` (its comment: ${existing.comment})` : '') +
                ': choose another target, or drop it if nothing needs it',
              'conflict',
            );
          }
          progress?.({ phase: 'drop-leftover' });
          await dropWithForce(admin, target);
        }
        // template0: objects someone added to template1 would collide with the archive's.
        await admin.query(`CREATE DATABASE ${quote(target)} TEMPLATE template0`);
        await admin.query(`COMMENT ON DATABASE ${quote(target)} IS ${pg.escapeLiteral(restoringMarker(snapshotId))}`);
        progress?.({ phase: 'restore', bytes: 0 });
        const stopTicking = every(
          tick,
          async () => {
            const size = await admin.query<{ bytes: string }>('SELECT pg_database_size($1) AS bytes', [target]);
            return Number(size.rows[0]?.bytes ?? 0);
          },
          (bytes) => progress?.({ phase: 'restore', bytes }),
        );
        try {
          await runTool(
            pgRestore,
            [`--jobs=${jobs}`, '--no-owner', '--exit-on-error', '--no-password', `--dbname=${target}`, dump],
            libpqEnv(urlFor(target)),
            signal,
          );
        } catch (err) {
          stopTicking();
          await dropWithForce(admin, target).catch(() => undefined);
          throw snapshotError(
            `restore of snapshot ${snapshotId} into "${target}": ${(err as Error).message}; the half-restored database was dropped`,
            err instanceof PgToolError && err.cancelled ? 'aborted' : 'failed',
          );
        }
        stopTicking();
        await admin.query(`COMMENT ON DATABASE ${quote(target)} IS ${pg.escapeLiteral(restoredMarker(snapshotId))}`);
        progress?.({ phase: 'done' });
      } finally {
        await admin.end().catch(() => undefined);
      }
    },

    async compare(database: string, manifest: SnapshotManifest): Promise<ManifestComparison> {
      checkName('database', database);
      const now = await fingerprintDatabase(urlFor(database));
      const differences = diffFingerprints(manifest, now);
      return { ok: differences.length === 0, differences, tables: now.tables, migrationVersion: now.migrationVersion };
    },

    async fingerprint(database: string) {
      checkName('database', database);
      return fingerprintDatabase(urlFor(database));
    },

    async dropDatabase(name: string) {
      checkName('database', name);
      if (SYSTEM_DATABASES.has(name)) throw snapshotError(`refusing to drop the system database "${name}"`, 'invalid');
      const admin = await connectPg(urlFor('postgres'));
      try {
        await dropWithForce(admin, name);
      } finally {
        await admin.end().catch(() => undefined);
      }
    },
  };
}

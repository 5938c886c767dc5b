import { backupOf } from '../platforms/descriptors';
import { ApplicationFailure, Context } from '@temporalio/activity';
import { UserError, errorMessage } from '../errors';
import { loadRunbookConfig, resolveService } from '../runbook-config';
import {
  expireBackups,
  takeBackup,
  verifyRepository,
  type PgbackrestRunner,
} from '../platforms/single-host/pgbackrest';
import { holdsOf, recoveredTo, removeScratch, restoreToTime } from '../platforms/single-host/pgbackrest-restore';
import { freePort } from '../system/processes';
import pg from 'pg';
import { BACKUP_NOT_CONFIGURED, type BackupKind, type BackupPolicy, type BackupRecord } from '../shared/backup';
import { RUNBOOK_CONFIG_UNUSABLE } from '../shared/request';
import { whileHeartbeating } from './heartbeat';

export interface BackupActivityDeps {
  runbookConfig: string | undefined;
  /** The pgBackRest repository of the stack's PostgreSQL; undefined when the worker has none (an external server). */
  backups?: () => PgbackrestRunner | undefined;
  /** The URL of `database` on a restored copy of the stack's cluster listening on `port` (same credentials). */
  copyUrl?: (port: number, database: string) => string;
}

const notConfigured = (message: string) =>
  ApplicationFailure.create({ type: BACKUP_NOT_CONFIGURED, message, nonRetryable: true });

/**
 * Activities of the backup workflow (src/workflows/backup-service.ts): pgBackRest on the stack's PostgreSQL. A
 * PlatformError (ArchiveBroken, DiskFull, BackupFailed) leaves them as an ApplicationFailure of its type.
 */
export function createBackupActivities({ runbookConfig, backups, copyUrl }: BackupActivityDeps) {
  const runner = (): PgbackrestRunner => {
    const r = backups?.();
    if (!r) {
      throw notConfigured(
        "this worker has no pgBackRest repository: it runs with an external DATABASE_URL, whose WAL it cannot archive; fix: back that server up where it runs, or use the stack's PostgreSQL (`runbook up`)",
      );
    }
    return r;
  };
  return {
    /**
     * The backup policy of `service` in `environment` from the worker's runbook config: its `backup:` block, and the
     * retention of every other single-host service with `backup:` in that environment (they share the cluster's one
     * pgBackRest stanza: a backup is expired only when every one of them would expire it, so that no service loses a
     * backup it was promised). Throws BackupNotConfigured (no `backup:`), RunbookConfigUnusable.
     */
    async resolveBackupPolicy(req: { service: string; environment: string }): Promise<BackupPolicy> {
      if (!runbookConfig) {
        throw ApplicationFailure.create({
          type: RUNBOOK_CONFIG_UNUSABLE,
          message:
            'this worker has no runbook config (RUNBOOK_CONFIG is not set in its environment); fix: runbook up --config <file>',
          nonRetryable: true,
        });
      }
      let config;
      let own;
      try {
        config = loadRunbookConfig(runbookConfig);
        own = resolveService(config, req.service, req.environment);
      } catch (err) {
        throw ApplicationFailure.create({
          type: RUNBOOK_CONFIG_UNUSABLE,
          message: `the worker's runbook config: ${err instanceof UserError && err.fix ? `${err.message}; fix: ${err.fix}` : errorMessage(err)}`,
          nonRetryable: true,
        });
      }
      const backup = backupOf(own);
      if (!backup) {
        throw notConfigured(
          `${req.service}/${req.environment} has no backup: block in ${config.source}; fix: add backup: { retention: { full: 2 } } ` +
            '(and schedule: { full: "0 2 * * 0", diff: "0 2 * * 1-6" }) to the service, see docs/backups.md',
        );
      }
      const retention = [{ service: req.service, ...backup.retention }];
      for (const name of Object.keys(config.services).sort()) {
        if (name === req.service) continue;
        let other;
        try {
          other = resolveService(config, name, req.environment);
        } catch {
          continue; // not in this environment, or invalid: it takes no backups here
        }
        const theirs = backupOf(other);
        if (theirs) retention.push({ service: name, ...theirs.retention });
      }
      return { database: own.database?.name ?? '', retention, verify: backup.verify };
    },

    /**
     * Takes a base backup of the stack's cluster (pgbackrest backup --type), annotated with `backupId`: a retry finds
     * the backup of an earlier attempt instead of taking a second one. Heartbeats while it runs.
     */
    async takeBaseBackup(req: { backupId: string; type: BackupKind; service: string }): Promise<BackupRecord> {
      const r = runner();
      const started = Date.now();
      const b = await whileHeartbeating(() => takeBackup(r, req, Context.current().cancellationSignal));
      return {
        label: b.label,
        type: b.type === 'automated' ? 'full' : b.type,
        ...(b.prior ? { prior: b.prior } : {}),
        bytes: b.bytes,
        repoBytes: b.repoBytes,
        durationMs: Date.now() - started,
        startedAtMs: b.startedAtMs,
        stoppedAtMs: b.stoppedAtMs,
        ...(b.walStart ? { walStart: b.walStart } : {}),
        ...(b.walStop ? { walStop: b.walStop } : {}),
      };
    },

    /** pgbackrest verify: the repository's files against their checksums, and the WAL chain. */
    async verifyBackupRepository(): Promise<{ ok: boolean; problems: string[] }> {
      const r = runner();
      return whileHeartbeating(() => verifyRepository(r, Context.current().cancellationSignal));
    },

    /**
     * Expires backups beyond the retention, never the newest full, one of `keep`, nor the base backup of a restored
     * copy that exists (holdsOf); returns the labels removed.
     */
    async expireBaseBackups(req: { retention: BackupPolicy['retention']; keep: string[] }): Promise<string[]> {
      const r = runner();
      const policies = req.retention.map(({ service: _service, ...policy }) => policy);
      // the base backups of restored copies that still exist (a drill or rollback under way) are never expired
      const keep = [...req.keep, ...holdsOf(r)];
      return (await whileHeartbeating(() => expireBackups(r, policies, keep, Date.now()))).expired;
    },

    /**
     * Restores the stack's cluster as of `atMs` into the scratch cluster `target` on a free port (an earlier attempt's
     * copy is redone). Throws RecoveryTargetUnreachable (no backup ended before it), RestoreFailed.
     */
    async restorePointInTime(req: { target: string; atMs: number }): Promise<{ port: number; backup: string }> {
      const r = runner();
      const port = await freePort();
      const copy = await whileHeartbeating(() => restoreToTime(r, { target: req.target, atMs: req.atMs, port }));
      return { port: copy.port, backup: copy.backup };
    },

    /** What the copy recovered to, and the service's database on it (its tables). */
    async checkPointInTimeCopy(req: {
      port: number;
      database: string;
      backup: string;
    }): Promise<{ lastCommitMs: number | null; tables: number }> {
      if (!copyUrl) throw notConfigured('this worker cannot reach restored copies (no copyUrl)');
      const facts = await recoveredTo(copyUrl(req.port, 'postgres'), req.backup);
      const client = new pg.Client({
        connectionString: copyUrl(req.port, req.database),
        connectionTimeoutMillis: 5_000,
      });
      await client.connect().catch((err: unknown) => {
        throw ApplicationFailure.create({
          type: 'RestoreFailed',
          message: `the copy has no database ${req.database} at that time: ${errorMessage(err)}`,
          nonRetryable: true,
        });
      });
      try {
        const { rows } = await client.query<{ n: string }>(
          "SELECT count(*) AS n FROM information_schema.tables WHERE table_schema NOT IN ('pg_catalog', 'information_schema')",
        );
        return { lastCommitMs: facts.lastCommitMs, tables: Number(rows[0]?.n ?? 0) };
      } finally {
        await client.end();
      }
    },

    /** Stops and removes the scratch cluster `target` (and its hold on the base backup). Idempotent. */
    async removePointInTimeCopy(req: { target: string }): Promise<void> {
      await removeScratch(runner(), req.target);
    },
  };
}

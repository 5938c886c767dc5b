/** The aws-ecs platform's SnapshotStore: RDS (cluster) snapshots, their manifests, and restores into new instances. */
import { CreateDBInstanceCommand } from '@aws-sdk/client-rds';
import { rdsLiveId } from './naming';
import type { AwsRdsSpec } from '../../shared/service-plan';
import type { ManifestStore } from '../../orchestrator-store/manifests';
import type { RestoreProgress, SnapshotManifest, SnapshotStore } from '../types';
import { TAG, type AwsContext } from './context';
import { awsCall, awsPermanent, classifyAwsError } from './errors';
import {
  RDS_TAG,
  RESTORE_FAILED_STATES,
  rdsOf,
  instanceFor,
  writerOf,
  tagList,
  notYet,
  clusterBusy,
  rdsCalls,
  writerState,
  type RdsDb,
  type RdsSnapshot,
  type RdsKind,
} from './rds-kinds';
import { rdsUrlFor } from './rds-urls';
import {
  claimsOf,
  compareClaims,
  copyProgressIn,
  DEFAULT_COUNT_TOLERANCE,
  readCopyFigures,
  readLiveFigures,
  verifiedManifest,
  type CopyFigures,
  type CopyResume,
  type FingerprintMode,
  type LiveFigures,
} from './rds-manifest';
import { pruneSnapshots } from './rds-retention';
import { restoreSettings, type RestoreSettings } from './rds-restore-settings';

/** The kinds of instance this platform creates (TAG.kind): a drill's scratch copy, a rollback's restored copy. */
const OWN_INSTANCE_KINDS = new Set(['drill', 'restore']);

/** Workflow steps that take snapshots (see snapshotIdFor), recognised in a snapshot id for its kind tag. */
const SNAPSHOT_KIND = /-(pre-migrate|pre-restore|drill)-[0-9a-f]{8}$/;

export interface RdsSnapshotStoreDeps {
  /** Reads the live database's figures in a fingerprint mode (default: over pg, see readLiveFigures). */
  live?(url: string, mode: FingerprintMode): Promise<LiveFigures>;
  /** Reads a restored copy's full figures, resuming (default: over pg, see readCopyFigures). */
  copy?(url: string, resume?: CopyResume): Promise<CopyFigures>;
}

/**
 * A {@link SnapshotStore} on RDS: manual DB snapshots of the service's instance, their manifests in the
 * orchestrator's database (`manifests`), and restores into new instances, which RDS creates on its own:
 * restore() returns `{ ready: false }` and the workflow polls restoreStatus() with durable timers.
 * For a service on an Aurora PostgreSQL cluster (aws.rds.cluster): DB cluster snapshots, and restores into new
 * clusters with one writer instance `<cluster>-1` of class aws.rds.drill.instanceClass, ready when both are.
 *
 * Idempotent like the single-host store: a snapshot or a restored instance left by an earlier attempt of the same
 * workflow is adopted (recognised by its tags), one that belongs to something else is refused (SnapshotConflict,
 * RestoreTargetExists). The service's own instance is never restored over or deleted.
 *
 * Failures are permanent PlatformErrors: the awsCall ones (AwsAccessDenied, AwsNotFound, ...) and
 * NoRdsSettings, NoDatabaseUrl, SnapshotConflict, SnapshotFailed, SnapshotNotFound, RestoreTargetExists,
 * RestoreFailed, RefusedToDelete; throttling, network errors and instances in passing states are retryable.
 */
export function createRdsSnapshotStore(
  ctx: AwsContext,
  manifests: ManifestStore,
  deps: RdsSnapshotStoreDeps = {},
): SnapshotStore {
  const { spec } = ctx;
  const client = ctx.clients.rds;
  const calls = rdsCalls(ctx);
  const urlFor = rdsUrlFor(ctx);
  const liveAt = deps.live ?? readLiveFigures;
  const copyAt = deps.copy ?? readCopyFigures;

  /** Waits until the snapshot is available, reporting RDS's percentage. */
  async function untilAvailable(
    snapshotId: string,
    progress?: (p: { phase: string; bytes?: number }) => void,
    signal?: AbortSignal,
  ): Promise<RdsSnapshot> {
    const rds = rdsOf(spec);
    const kind = calls.kindOf(spec);
    for (;;) {
      const snapshot = await kind.describeSnapshot(snapshotId);
      if (!snapshot) {
        throw awsPermanent('SnapshotFailed', `RDS ${kind.snapshotNoun} ${snapshotId} disappeared while being created`);
      }
      const status = snapshot.status ?? 'unknown';
      if (status === 'available') return snapshot;
      if (status === 'failed' || status === 'error') {
        throw awsPermanent(
          'SnapshotFailed',
          `RDS ${kind.snapshotNoun} ${snapshotId} of ${kind.noun} ${snapshot.source ?? rdsLiveId(rds)} is ${status}: ` +
            `see the ${kind.noun}'s events in the RDS console; delete the snapshot to take it again`,
        );
      }
      const report = { phase: 'creating', percent: snapshot.percent ?? 0, status };
      progress?.(report);
      await ctx.sleep(rds.pollIntervalMs, signal);
    }
  }

  /** The snapshot and manifest, if the snapshot still exists. */
  async function get(snapshotId: string): Promise<SnapshotManifest | undefined> {
    const manifest = await manifests.get(snapshotId);
    if (!manifest) return undefined;
    return (await calls.kindOf(spec).describeSnapshot(snapshotId)) ? manifest : undefined;
  }

  /**
   * A restore target that exists: adopted when it was restored from this snapshot (its tags say so), refused
   * otherwise (RestoreTargetExists); RestoreFailed in a failed state, a retryable Error while it is being deleted.
   */
  function adopt(
    existing: RdsDb,
    noun: RdsKind['noun'],
    snapshotId: string,
    progress?: (p: { phase: string }) => void,
  ): RestoreProgress {
    const { id, tags } = existing;
    const status = existing.status ?? 'unknown';
    if (tags[RDS_TAG.snapshot] !== snapshotId) {
      throw awsPermanent(
        'RestoreTargetExists',
        `RDS ${noun} ${id} already exists and was not restored from snapshot ${snapshotId} ` +
          `(${RDS_TAG.snapshot}=${tags[RDS_TAG.snapshot] ?? '-'}): choose another target, or delete it if nothing needs it`,
      );
    }
    if (status === 'deleting') throw notYet(`RDS ${noun} ${id} is being deleted; the restore starts once it is gone`);
    if (RESTORE_FAILED_STATES.has(status)) {
      throw awsPermanent('RestoreFailed', `RDS ${noun} ${id}, restored from ${snapshotId}, is ${status}`);
    }
    progress?.({ phase: 'adopted' });
    return { ready: status === 'available', detail: status };
  }

  /**
   * The one writer instance of a restored cluster: created with the cluster's runbook tags and engine, or adopted.
   * A cluster that does not take instances yet (InvalidDBClusterStateFault) is a retryable Error: the retried restore
   * adopts the cluster and creates the writer then.
   */
  async function ensureWriter(
    cluster: RdsDb,
    snapshotId: string,
    drill: AwsRdsSpec['drill'],
    settingsOf: () => Promise<RestoreSettings | undefined>,
    progress?: (p: { phase: string }) => void,
  ): Promise<RestoreProgress> {
    const id = writerOf(cluster.id);
    const existing = await calls.instances.describe(id);
    if (existing) return adopt(existing, 'instance', snapshotId, progress);
    const tags = Object.fromEntries(Object.entries(cluster.tags).filter(([key]) => key.startsWith('runbook:')));
    const settings = await settingsOf();
    try {
      await awsCall(
        'rds:CreateDBInstance',
        `RDS instance ${id} (the writer of cluster ${cluster.id})`,
        () =>
          client
            .send(
              new CreateDBInstanceCommand({
                DBInstanceIdentifier: id,
                DBClusterIdentifier: cluster.id,
                Engine: cluster.engine ?? 'aurora-postgresql',
                DBInstanceClass: settings?.instanceClass ?? drill.instanceClass,
                ...(settings?.parameterGroup ? { DBParameterGroupName: settings.parameterGroup } : {}),
                PubliclyAccessible: settings?.publiclyAccessible ?? false,
                Tags: tagList(tags),
              }),
            )
            .catch(clusterBusy(`RDS cluster ${cluster.id} does not take its writer instance ${id} yet`)),
        ['conflict'],
      );
    } catch (err) {
      if (classifyAwsError(err) !== 'conflict') throw err;
      const raced = await calls.instances.describe(id);
      if (!raced) throw err;
      return adopt(raced, 'instance', snapshotId, progress);
    }
    return { ready: false, detail: 'creating' };
  }

  return {
    // An activity waiting for a restore (a rollback's) polls at the service's RDS poll interval.
    restorePollMs: ctx.spec.rds?.pollIntervalMs ?? 15_000,
    get,

    async take(req, progress, signal) {
      const kind = calls.kindOf(spec);
      const source = instanceFor(spec, req.database);
      const what = `RDS ${kind.snapshotNoun} ${req.snapshotId} of ${kind.noun} ${source}`;
      const ours = (tags: Record<string, string>) =>
        tags[TAG.service] === req.service &&
        tags[TAG.environment] === req.environment &&
        tags[TAG.workflow] === req.workflowId;

      // A retried attempt that saved the manifest already keeps its fingerprint, taken before the snapshot.
      const saved = await manifests.get(req.snapshotId);
      if (saved) {
        if (
          saved.service !== req.service ||
          saved.environment !== req.environment ||
          saved.database !== req.database ||
          saved.workflowId !== req.workflowId
        ) {
          throw awsPermanent(
            'SnapshotConflict',
            `${what}: the id is already taken by a snapshot of ${saved.service}/${saved.environment} ` +
              `(database ${saved.database}, workflow ${saved.workflowId}); choose another id`,
          );
        }
        if (await kind.describeSnapshot(req.snapshotId)) {
          progress?.({ phase: 'adopted', bytes: saved.bytes });
          await untilAvailable(req.snapshotId, progress, signal);
          progress?.({ phase: 'done', bytes: saved.bytes });
          return saved;
        }
      }

      // The figures are read just before the snapshot, not in the same instant (RDS snapshots the storage, not a
      // transaction): the manifest claims only what writes in between cannot change (rds-manifest.ts), and the
      // snapshot's first restored copy supplies the exact checksums.
      const mode: FingerprintMode = rdsOf(spec).fingerprint ?? 'counts';
      progress?.({ phase: 'fingerprint' });
      const fingerprint = await liveAt(await urlFor(req.database), mode);

      progress?.({ phase: 'create' });
      let snapshot: RdsSnapshot | undefined;
      try {
        snapshot = await kind.createSnapshot(
          req.snapshotId,
          source,
          tagList({
            [TAG.service]: req.service,
            [TAG.environment]: req.environment,
            [TAG.workflow]: req.workflowId,
            [TAG.kind]: SNAPSHOT_KIND.exec(req.snapshotId)?.[1] ?? 'pre-migrate',
          }),
        );
      } catch (err) {
        if (classifyAwsError(err) !== 'conflict') throw err;
        const existing = await kind.describeSnapshot(req.snapshotId);
        if (!existing) throw err; // deleted meanwhile: the retry takes it again
        const tags = await calls.snapshotTags(existing);
        if (!ours(tags) || (existing.source && existing.source !== source)) {
          throw awsPermanent(
            'SnapshotConflict',
            `${what}: a snapshot with this id already exists and is not this workflow's ` +
              `(${kind.noun} ${existing.source ?? '?'}, ${TAG.service}=${tags[TAG.service] ?? '-'}, ` +
              `${TAG.environment}=${tags[TAG.environment] ?? '-'}, ${TAG.workflow}=${tags[TAG.workflow] ?? '-'}); ` +
              'choose another id or delete that snapshot',
          );
        }
        progress?.({ phase: 'adopted' });
        snapshot = existing;
      }

      const manifest: SnapshotManifest = {
        snapshotId: req.snapshotId,
        service: req.service,
        environment: req.environment,
        database: req.database,
        workflowId: req.workflowId,
        createdAtMs: snapshot?.createdAt?.getTime() ?? ctx.now(),
        location: `rds:${snapshot?.arn ?? req.snapshotId}`,
        bytes: (snapshot?.gib ?? 0) * 2 ** 30,
        sha256: '',
        tables: fingerprint.tables,
        migrationVersion: fingerprint.migrationVersion,
        serverVersion: fingerprint.serverVersion || snapshot?.engineVersion || '',
        claims: claimsOf(mode),
        ...(mode === 'counts' ? { countTolerance: rdsOf(spec).countTolerance ?? DEFAULT_COUNT_TOLERANCE } : {}),
      };
      await manifests.put(manifest);
      const available = await untilAvailable(req.snapshotId, progress, signal);
      progress?.({ phase: 'done', bytes: (available.gib ?? 0) * 2 ** 30 });
      // Deploys and drills add a manual snapshot each: prune the service's old ones (never a pre-restore snapshot,
      // nor one a running workflow took or a restore was made from: see rds-retention.ts).
      if (rdsOf(spec).retention && manifest.claims !== undefined && !req.snapshotId.includes('-pre-restore-')) {
        await pruneSnapshots(ctx, calls, {
          service: req.service,
          environment: req.environment,
          keepId: req.snapshotId,
        });
      }
      return manifest;
    },

    async list(service, environment) {
      const kind = calls.kindOf(spec);
      const all = await manifests.list(service, environment);
      const existing: SnapshotManifest[] = [];
      for (const m of all) if (await kind.describeSnapshot(m.snapshotId)) existing.push(m);
      return existing.sort((a, b) => b.createdAtMs - a.createdAtMs);
    },

    async verify(snapshotId) {
      const kind = calls.kindOf(spec);
      const snapshot = await kind.describeSnapshot(snapshotId);
      if (!snapshot) return { ok: false, reason: `there is no RDS ${kind.snapshotNoun} ${snapshotId}` };
      if (snapshot.status === 'available') return { ok: true };
      return {
        ok: false,
        reason: `RDS ${kind.snapshotNoun} ${snapshotId} is ${snapshot.status ?? 'in an unknown state'}`,
      };
    },

    async restore(snapshotId, target, _opts, progress): Promise<RestoreProgress> {
      const rds = rdsOf(spec);
      const kind = calls.kindOf(spec);
      const id = instanceFor(spec, target);
      if (id === rdsLiveId(rds)) {
        throw awsPermanent(
          'RestoreTargetExists',
          `refusing to restore snapshot ${snapshotId} into ${target}: that is the service's ${kind.noun} ${id}; ` +
            `restore into a new ${kind.noun}`,
        );
      }

      const drill = target.includes('_drill');
      // A database restore becomes production: it is built like the service's own instance (or cluster).
      let read: Promise<RestoreSettings | undefined> | undefined;
      const settingsOf = () => (read ??= drill ? Promise.resolve(undefined) : restoreSettings(ctx, calls, rds));
      let restored: RdsDb | undefined = await kind.describe(id);
      let started: RestoreProgress;
      if (restored) {
        started = adopt(restored, kind.noun, snapshotId, progress);
      } else {
        const manifest = await manifests.get(snapshotId);
        if (!manifest) {
          throw awsPermanent(
            'SnapshotNotFound',
            `there is no manifest of snapshot ${snapshotId}: it was not taken by runbook`,
          );
        }

        const tags = tagList({
          [TAG.service]: manifest.service,
          [TAG.environment]: manifest.environment,
          [RDS_TAG.snapshot]: snapshotId,
          [RDS_TAG.sourceInstance]: rdsLiveId(rds),
          [TAG.kind]: drill ? 'drill' : 'restore',
          [TAG.workflow]: ctx.activity()?.workflowId,
        });
        try {
          const settings = await settingsOf();
          restored = await kind.restore({ id, snapshotId, drill: rds.drill, ...(settings ? { settings } : {}), tags });
          progress?.({ phase: 'creating' });
          started = { ready: false, detail: 'creating' };
        } catch (err) {
          if (classifyAwsError(err) !== 'conflict') throw err;
          restored = await kind.describe(id); // another attempt created it meanwhile
          if (!restored) throw err;
          started = adopt(restored, kind.noun, snapshotId, progress);
        }
      }
      if (kind.noun === 'instance') return started;
      const writer = await ensureWriter(restored, snapshotId, rds.drill, settingsOf, progress);
      return { ready: started.ready && writer.ready, detail: `${started.detail}, writer ${writer.detail}` };
    },

    async restoreStatus(target) {
      const kind = calls.kindOf(spec);
      const id = instanceFor(spec, target);
      const db = await kind.describe(id);
      if (!db) {
        throw awsPermanent('RestoreFailed', `RDS ${kind.noun} ${id} (the restore of ${target}) does not exist`);
      }
      const status = db.status ?? 'unknown';
      if (RESTORE_FAILED_STATES.has(status)) {
        throw awsPermanent(
          'RestoreFailed',
          `RDS ${kind.noun} ${id} is ${status}: the restore failed; see its events in the RDS console, then drop it`,
        );
      }
      if (kind.noun === 'instance') return { ready: status === 'available', detail: `${id} is ${status}` };
      const writer = await writerState(calls, id);
      return {
        ready: status === 'available' && writer === 'available',
        detail: `${id} is ${status}, its writer ${writerOf(id)} is ${writer}`,
      };
    },

    /**
     * Compares a restored copy with the manifest as far as the manifest's claims go (compareClaims). The first copy
     * that matches a manifest read from the live database ('counts', 'schema') makes the snapshot's verified
     * manifest: its exact figures are saved, and later restores of the snapshot are held to them.
     */
    async compare(database, manifest) {
      const id = instanceFor(spec, database);
      const activity = ctx.activity();
      const copy = await copyAt(await urlFor(database), {
        from: copyProgressIn(activity?.heartbeatDetails?.(), id),
        onProgress: ({ done }) => activity?.heartbeat?.({ phase: 'fingerprint-copy', copy: id, done }),
      });
      const differences = compareClaims(manifest, copy);
      const ok = differences.length === 0;
      if (ok && (manifest.claims ?? 'exact') !== 'exact' && id !== rdsLiveId(rdsOf(spec))) {
        await manifests.put(verifiedManifest(manifest, copy, id));
        ctx.activity()?.log(`snapshot ${manifest.snapshotId}: verified manifest read on restored copy ${id}`);
      }
      const tables = copy.tables.map(({ table, rows, checksum }) => ({ table, rows, checksum }));
      return { ok, differences, tables, migrationVersion: copy.migrationVersion };
    },

    /** Row counts of a database as it is now, at the bounded cost of the 'counts' mode (it may be production). */
    async fingerprint(database) {
      const { tables, migrationVersion } = await liveAt(await urlFor(database), 'counts');
      return { tables, migrationVersion };
    },

    async dropDatabase(name) {
      const rds = rdsOf(spec);
      const kind = calls.kindOf(spec);
      const live = rdsLiveId(rds);
      const id = instanceFor(spec, name);
      if (id === live) {
        throw awsPermanent(
          'RefusedToDelete',
          `refusing to delete RDS ${kind.noun} ${id}: it is the service's own ${kind.noun}`,
        );
      }
      const owned = (tags: Record<string, string>) =>
        OWN_INSTANCE_KINDS.has(tags[TAG.kind] ?? '') && tags[RDS_TAG.sourceInstance] === live;

      const db = await kind.describe(id);
      let scope: { service?: string; environment?: string } = {};
      if (db) {
        const { tags } = db;
        if (!owned(tags)) {
          throw awsPermanent(
            'RefusedToDelete',
            `refusing to delete RDS ${kind.noun} ${id}: it is not a drill or restore ${kind.noun} of ${live} ` +
              `(${TAG.kind}=${tags[TAG.kind] ?? '-'}, ${RDS_TAG.sourceInstance}=${tags[RDS_TAG.sourceInstance] ?? '-'})`,
          );
        }
        scope = { service: tags[TAG.service], environment: tags[TAG.environment] };
        await kind.remove(db);
      }

      // Drill instances of workflows that ended without cleaning up (terminated, or a worker lost): delete them.
      const current = ctx.activity()?.workflowId;
      for (const leftover of await kind.all()) {
        const other = leftover.id;
        const { tags } = leftover;
        const workflow = tags[TAG.workflow];
        if (!other || other === id || other === live || !workflow || workflow === current) continue;
        if (tags[TAG.kind] !== 'drill' || leftover.status === 'deleting') continue;
        const sameService =
          tags[RDS_TAG.sourceInstance] === live ||
          (scope.service !== undefined &&
            tags[TAG.service] === scope.service &&
            tags[TAG.environment] === scope.environment &&
            OWN_INSTANCE_KINDS.has(tags[TAG.kind] ?? ''));
        if (!sameService || (await ctx.isRunning(workflow))) continue;
        try {
          await kind.remove(leftover);
          ctx.activity()?.log(`deleted the leftover drill ${kind.noun} ${other} of the finished workflow ${workflow}`);
        } catch (err) {
          // The requested instance is gone; a leftover that cannot be deleted now is tried again by the next drill.
          ctx.activity()?.log(`could not delete the leftover drill ${kind.noun} ${other}: ${(err as Error).message}`);
        }
      }
    },
  };
}

import { Context } from '@temporalio/activity';
import {
  AddTagsToResourceCommand,
  CreateDBSnapshotCommand,
  DeleteDBInstanceCommand,
  DescribeDBInstancesCommand,
  DescribeDBSnapshotsCommand,
  ListTagsForResourceCommand,
  RestoreDBInstanceFromDBSnapshotCommand,
  type DBInstance,
  type DBSnapshot,
  type Tag,
} from '@aws-sdk/client-rds';
import {
  DescribeServicesCommand,
  DescribeTaskDefinitionCommand,
  RegisterTaskDefinitionCommand,
  UpdateServiceCommand,
  type RegisterTaskDefinitionCommandInput,
  type Service,
  type TaskDefinition,
} from '@aws-sdk/client-ecs';
import { GetParameterCommand, PutParameterCommand } from '@aws-sdk/client-ssm';
import { GetSecretValueCommand, PutSecretValueCommand } from '@aws-sdk/client-secrets-manager';
import pg from 'pg';
import { rdsInstanceId } from '../../shared/platform';
import type { AwsEcsSpec, AwsRdsSpec } from '../../shared/service-plan';
import { diffFingerprints, fingerprintInTransaction, type DatabaseFingerprint } from '../postgres/fingerprint';
import type { ManifestStore } from '../postgres/manifests';
import type { RestoreProgress, SnapshotManifest, SnapshotStore, SwapDatabases } from '../types';
import { TAG, type AwsContext } from './context';
import { awsCall, awsPermanent, classifyAwsError } from './errors';

/** Tags of this file's resources, next to the platform's {@link TAG}s. */
export const RDS_TAG = {
  /** On an instance restored from a snapshot: the snapshot's identifier (a retried restore adopts it). */
  snapshot: 'runbook:snapshot',
  /** On a restored instance: the instance the service ran on when it was restored (whose drills and restores it is). */
  sourceInstance: 'runbook:source-instance',
  /** On the instance a database restore replaced: the restored instance now in its place. It is never deleted. */
  replacedBy: 'runbook:replaced-by',
} as const;

/** RDS instance states a restore never leaves on its own. */
const RESTORE_FAILED_STATES = new Set([
  'failed',
  'incompatible-restore',
  'incompatible-parameters',
  'incompatible-network',
  'storage-full',
]);

/** The kinds of instance this platform creates (TAG.kind): a drill's scratch copy, a rollback's restored copy. */
const OWN_INSTANCE_KINDS = new Set(['drill', 'restore']);

/** Workflow steps that take snapshots (see snapshotIdFor), recognised in a snapshot id for its kind tag. */
const SNAPSHOT_KIND = /-(pre-migrate|pre-restore|drill)-[0-9a-f]{8}$/;

/** The service's RDS settings; throws NoRdsSettings (non-retryable) when the plan has none. */
export function rdsOf(spec: AwsEcsSpec): AwsRdsSpec {
  if (!spec.rds) {
    throw awsPermanent(
      'NoRdsSettings',
      `the aws settings of the ECS service cluster ${spec.cluster} have no rds block: add aws.rds (instance, ` +
        'urlEnv, drill) to runbook.yaml for a service with a database',
    );
  }
  return spec.rds;
}

/**
 * The RDS DB instance that holds `database`: the service's own database (aws.rds.database) is on aws.rds.instance;
 * any other name (a drill's scratch copy `shop_drill_1a2b3c4d`, a rollback's `shop_restore-…`) is an instance of
 * its own, named after it: lowercase, "_" and other characters RDS does not take as "-", no "--", no leading or
 * trailing "-", at most 63 characters, starting with a letter ("db-" is put in front otherwise). Inside such an
 * instance the database keeps the service's database name (a restore copies the whole instance).
 * Throws NoRdsSettings or InvalidInstanceName (non-retryable).
 */
export function instanceFor(spec: AwsEcsSpec, database: string): string {
  const id = rdsInstanceId(rdsOf(spec), database);
  if (!id) throw awsPermanent('InvalidInstanceName', `no RDS instance identifier can be made of "${database}"`);
  return id;
}

function tagsOf(list: Tag[] | undefined): Record<string, string> {
  return Object.fromEntries((list ?? []).map((t) => [t.Key ?? '', t.Value ?? '']));
}

function tagList(tags: Record<string, string | undefined>): Tag[] {
  return Object.entries(tags)
    .filter((e): e is [string, string] => e[1] !== undefined)
    .map(([Key, Value]) => ({ Key, Value }));
}

/** The workflow of the activity this runs in; undefined outside an activity (tests, the CLI). */
function currentWorkflowId(): string | undefined {
  try {
    return Context.current().info.workflowExecution?.workflowId;
  } catch {
    return undefined;
  }
}

function note(message: string): void {
  try {
    Context.current().log.info(message);
  } catch {
    // not in an activity: nobody to tell
  }
}

/** A transient state that the activity's retry (with backoff) waits out: a plain, retryable Error. */
function notYet(message: string): Error {
  return new Error(message);
}

/** The RDS calls that several parts make, each through awsCall. */
function rdsCalls(ctx: AwsContext) {
  const rds = ctx.clients.rds;

  async function describeInstance(id: string): Promise<DBInstance | undefined> {
    try {
      const out = await awsCall(
        'rds:DescribeDBInstances',
        `RDS instance ${id}`,
        () => rds.send(new DescribeDBInstancesCommand({ DBInstanceIdentifier: id })),
        ['not-found'],
      );
      return out.DBInstances?.[0];
    } catch (err) {
      if (classifyAwsError(err) === 'not-found') return undefined;
      throw err;
    }
  }

  async function describeSnapshot(id: string): Promise<DBSnapshot | undefined> {
    try {
      const out = await awsCall(
        'rds:DescribeDBSnapshots',
        `RDS snapshot ${id}`,
        () => rds.send(new DescribeDBSnapshotsCommand({ DBSnapshotIdentifier: id })),
        ['not-found'],
      );
      return out.DBSnapshots?.[0];
    } catch (err) {
      if (classifyAwsError(err) === 'not-found') return undefined;
      throw err;
    }
  }

  async function snapshotTags(snapshot: DBSnapshot): Promise<Record<string, string>> {
    if (snapshot.TagList || !snapshot.DBSnapshotArn) return tagsOf(snapshot.TagList);
    const arn = snapshot.DBSnapshotArn;
    const out = await awsCall('rds:ListTagsForResource', `RDS snapshot ${arn}`, () =>
      rds.send(new ListTagsForResourceCommand({ ResourceName: arn })),
    );
    return tagsOf(out.TagList);
  }

  /** Every DB instance of the account and region, page by page. */
  async function allInstances(): Promise<DBInstance[]> {
    const found: DBInstance[] = [];
    let marker: string | undefined;
    do {
      const out = await awsCall('rds:DescribeDBInstances', 'RDS instances', () =>
        rds.send(new DescribeDBInstancesCommand({ ...(marker ? { Marker: marker } : {}) })),
      );
      found.push(...(out.DBInstances ?? []));
      marker = out.Marker;
    } while (marker);
    return found;
  }

  return { describeInstance, describeSnapshot, snapshotTags, allInstances };
}

/**
 * The URL of `database` (see {@link instanceFor}): the service's own database is the URL in the worker's
 * environment variable aws.rds.urlEnv; any other is on its own instance, reached at the instance's endpoint
 * (through ctx.resolveAddress) with the same credentials and options, database name aws.rds.database.
 * Throws NoDatabaseUrl (non-retryable) when the variable is missing; a plain (retryable) Error while the instance
 * has no endpoint yet; the awsCall failures of DescribeDBInstances (AwsNotFound when there is no such instance).
 */
export function rdsUrlFor(ctx: AwsContext): (database: string) => Promise<string> {
  const calls = rdsCalls(ctx);
  return async (database) => {
    const rds = rdsOf(ctx.spec);
    const live = ctx.env[rds.urlEnv];
    if (!live) {
      throw awsPermanent(
        'NoDatabaseUrl',
        `the worker's environment has no ${rds.urlEnv}: set it to the URL (with credentials) of database ` +
          `${rds.database} on RDS instance ${rds.instance}, e.g. postgres://user:password@host:5432/${rds.database}`,
      );
    }
    const id = instanceFor(ctx.spec, database);
    if (id === rds.instance) return live;
    const instance = await calls.describeInstance(id);
    if (!instance) {
      throw awsPermanent('AwsNotFound', `RDS instance ${id} (database ${database}) does not exist`);
    }
    const endpoint = instance.Endpoint;
    if (!endpoint?.Address || !endpoint.Port) {
      throw notYet(`RDS instance ${id} has no endpoint yet (it is ${instance.DBInstanceStatus ?? 'unknown'})`);
    }
    const to = ctx.resolveAddress(endpoint.Address, endpoint.Port);
    const url = new URL(live);
    url.searchParams.delete('host');
    url.hostname = to.host.includes(':') ? `[${to.host}]` : to.host;
    url.port = String(to.port);
    url.pathname = `/${encodeURIComponent(rds.database)}`;
    return url.toString();
  };
}

/** A database's fingerprint and its server's version, read in one REPEATABLE READ, READ ONLY transaction. */
export type FingerprintWithVersion = DatabaseFingerprint & { serverVersion?: string };

async function fingerprintWithVersion(url: string): Promise<FingerprintWithVersion> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
  client.on('error', () => {}); // a dropped connection also rejects the pending query, which reports it
  await client.connect();
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const fingerprint = await fingerprintInTransaction(client);
    const { rows } = await client.query<{ v: string }>(`SELECT current_setting('server_version') AS v`);
    await client.query('COMMIT');
    return { ...fingerprint, serverVersion: rows[0]?.v ?? '' };
  } finally {
    await client.end().catch(() => undefined);
  }
}

export interface RdsSnapshotStoreDeps {
  /** Fingerprints the database at a URL (default: over pg, with the server's version). */
  fingerprint?(url: string): Promise<FingerprintWithVersion>;
}

/**
 * A {@link SnapshotStore} on RDS: manual DB snapshots of the service's instance, their manifests in the
 * orchestrator's database (`manifests`), and restores into new instances, which RDS creates on its own:
 * restore() returns `{ ready: false }` and the workflow polls restoreStatus() with durable timers.
 *
 * Idempotent like the single-host store: a snapshot or a restored instance left by an earlier attempt of the same
 * workflow is adopted (recognised by its tags), one that belongs to something else is refused (SnapshotConflict,
 * RestoreTargetExists). The service's own instance is never restored over or deleted.
 *
 * Failures are non-retryable ApplicationFailures: the awsCall ones (AwsAccessDenied, AwsNotFound, ...) and
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
  const fingerprintAt = deps.fingerprint ?? fingerprintWithVersion;

  /** Waits until the snapshot is available, reporting RDS's percentage. */
  async function untilAvailable(
    snapshotId: string,
    progress?: (p: { phase: string; bytes?: number }) => void,
    signal?: AbortSignal,
  ): Promise<DBSnapshot> {
    const rds = rdsOf(spec);
    for (;;) {
      const snapshot = await calls.describeSnapshot(snapshotId);
      if (!snapshot) throw awsPermanent('SnapshotFailed', `RDS snapshot ${snapshotId} disappeared while being created`);
      const status = snapshot.Status ?? 'unknown';
      if (status === 'available') return snapshot;
      if (status === 'failed' || status === 'error') {
        throw awsPermanent(
          'SnapshotFailed',
          `RDS snapshot ${snapshotId} of instance ${snapshot.DBInstanceIdentifier ?? rds.instance} is ${status}: ` +
            "see the instance's events in the RDS console; delete the snapshot to take it again",
        );
      }
      const report = { phase: 'creating', percent: snapshot.PercentProgress ?? 0, status };
      progress?.(report);
      await ctx.sleep(rds.pollIntervalMs, signal);
    }
  }

  /** The snapshot and manifest, if the snapshot still exists. */
  async function get(snapshotId: string): Promise<SnapshotManifest | undefined> {
    const manifest = await manifests.get(snapshotId);
    if (!manifest) return undefined;
    return (await calls.describeSnapshot(snapshotId)) ? manifest : undefined;
  }

  return {
    get,

    async take(req, progress, signal) {
      const instance = instanceFor(spec, req.database);
      const what = `RDS snapshot ${req.snapshotId} of instance ${instance}`;
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
        if (await calls.describeSnapshot(req.snapshotId)) {
          progress?.({ phase: 'adopted', bytes: saved.bytes });
          await untilAvailable(req.snapshotId, progress, signal);
          progress?.({ phase: 'done', bytes: saved.bytes });
          return saved;
        }
      }

      // The fingerprint is taken just before the snapshot, not in the same instant (RDS snapshots the storage, not
      // a transaction): rows written in between show up as differences when a restore is compared with this
      // manifest, and the drill reports them. Take snapshots while nothing writes (a deploy's maintenance window)
      // for an exact match.
      progress?.({ phase: 'fingerprint' });
      const fingerprint = await fingerprintAt(await urlFor(req.database));

      progress?.({ phase: 'create' });
      let snapshot: DBSnapshot | undefined;
      try {
        const out = await awsCall(
          'rds:CreateDBSnapshot',
          `RDS instance ${instance} (snapshot ${req.snapshotId})`,
          () =>
            client.send(
              new CreateDBSnapshotCommand({
                DBSnapshotIdentifier: req.snapshotId,
                DBInstanceIdentifier: instance,
                Tags: tagList({
                  [TAG.service]: req.service,
                  [TAG.environment]: req.environment,
                  [TAG.workflow]: req.workflowId,
                  [TAG.kind]: SNAPSHOT_KIND.exec(req.snapshotId)?.[1] ?? 'pre-migrate',
                }),
              }),
            ),
          ['conflict'],
        );
        snapshot = out.DBSnapshot;
      } catch (err) {
        if (classifyAwsError(err) !== 'conflict') throw err;
        const existing = await calls.describeSnapshot(req.snapshotId);
        if (!existing) throw err; // deleted meanwhile: the retry takes it again
        const tags = await calls.snapshotTags(existing);
        if (!ours(tags) || (existing.DBInstanceIdentifier && existing.DBInstanceIdentifier !== instance)) {
          throw awsPermanent(
            'SnapshotConflict',
            `${what}: a snapshot with this id already exists and is not this workflow's ` +
              `(instance ${existing.DBInstanceIdentifier ?? '?'}, ${TAG.service}=${tags[TAG.service] ?? '-'}, ` +
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
        createdAtMs: snapshot?.SnapshotCreateTime?.getTime() ?? ctx.now(),
        location: `rds:${snapshot?.DBSnapshotArn ?? req.snapshotId}`,
        bytes: (snapshot?.AllocatedStorage ?? 0) * 2 ** 30,
        sha256: '',
        tables: fingerprint.tables,
        migrationVersion: fingerprint.migrationVersion,
        serverVersion: fingerprint.serverVersion || snapshot?.EngineVersion || '',
      };
      await manifests.put(manifest);
      const available = await untilAvailable(req.snapshotId, progress, signal);
      progress?.({ phase: 'done', bytes: (available.AllocatedStorage ?? 0) * 2 ** 30 });
      return manifest;
    },

    async list(service, environment) {
      const all = await manifests.list(service, environment);
      const existing: SnapshotManifest[] = [];
      for (const m of all) if (await calls.describeSnapshot(m.snapshotId)) existing.push(m);
      return existing.sort((a, b) => b.createdAtMs - a.createdAtMs);
    },

    async verify(snapshotId) {
      const snapshot = await calls.describeSnapshot(snapshotId);
      if (!snapshot) return { ok: false, reason: `there is no RDS snapshot ${snapshotId}` };
      if (snapshot.Status === 'available') return { ok: true };
      return { ok: false, reason: `RDS snapshot ${snapshotId} is ${snapshot.Status ?? 'in an unknown state'}` };
    },

    async restore(snapshotId, target, _opts, progress): Promise<RestoreProgress> {
      const rds = rdsOf(spec);
      const id = instanceFor(spec, target);
      if (id === rds.instance) {
        throw awsPermanent(
          'RestoreTargetExists',
          `refusing to restore snapshot ${snapshotId} into ${target}: that is the service's instance ${id}; restore into a new instance`,
        );
      }

      const adopt = (existing: DBInstance): RestoreProgress => {
        const tags = tagsOf(existing.TagList);
        const status = existing.DBInstanceStatus ?? 'unknown';
        if (tags[RDS_TAG.snapshot] !== snapshotId) {
          throw awsPermanent(
            'RestoreTargetExists',
            `RDS instance ${id} already exists and was not restored from snapshot ${snapshotId} ` +
              `(${RDS_TAG.snapshot}=${tags[RDS_TAG.snapshot] ?? '-'}): choose another target, or delete it if nothing needs it`,
          );
        }
        if (status === 'deleting')
          throw notYet(`RDS instance ${id} is being deleted; the restore starts once it is gone`);
        if (RESTORE_FAILED_STATES.has(status)) {
          throw awsPermanent('RestoreFailed', `RDS instance ${id}, restored from ${snapshotId}, is ${status}`);
        }
        progress?.({ phase: 'adopted' });
        return { ready: status === 'available', detail: status };
      };

      const existing = await calls.describeInstance(id);
      if (existing) return adopt(existing);

      const manifest = await manifests.get(snapshotId);
      if (!manifest) {
        throw awsPermanent(
          'SnapshotNotFound',
          `there is no manifest of snapshot ${snapshotId}: it was not taken by runbook`,
        );
      }
      const { drill } = rds;
      try {
        await awsCall(
          'rds:RestoreDBInstanceFromDBSnapshot',
          `RDS instance ${id} (from snapshot ${snapshotId})`,
          () =>
            client.send(
              new RestoreDBInstanceFromDBSnapshotCommand({
                DBInstanceIdentifier: id,
                DBSnapshotIdentifier: snapshotId,
                ...(drill.subnetGroup ? { DBSubnetGroupName: drill.subnetGroup } : {}),
                ...(drill.securityGroups.length > 0 ? { VpcSecurityGroupIds: drill.securityGroups } : {}),
                ...(drill.instanceClass ? { DBInstanceClass: drill.instanceClass } : {}),
                PubliclyAccessible: false,
                Tags: tagList({
                  [TAG.service]: manifest.service,
                  [TAG.environment]: manifest.environment,
                  [RDS_TAG.snapshot]: snapshotId,
                  [RDS_TAG.sourceInstance]: rds.instance,
                  [TAG.kind]: target.includes('_drill') ? 'drill' : 'restore',
                  [TAG.workflow]: currentWorkflowId(),
                }),
              }),
            ),
          ['conflict'],
        );
      } catch (err) {
        if (classifyAwsError(err) !== 'conflict') throw err;
        const raced = await calls.describeInstance(id); // another attempt created it meanwhile
        if (!raced) throw err;
        return adopt(raced);
      }
      progress?.({ phase: 'creating' });
      return { ready: false, detail: 'creating' };
    },

    async restoreStatus(target) {
      const id = instanceFor(spec, target);
      const instance = await calls.describeInstance(id);
      if (!instance)
        throw awsPermanent('RestoreFailed', `RDS instance ${id} (the restore of ${target}) does not exist`);
      const status = instance.DBInstanceStatus ?? 'unknown';
      if (RESTORE_FAILED_STATES.has(status)) {
        throw awsPermanent(
          'RestoreFailed',
          `RDS instance ${id} is ${status}: the restore failed; see its events in the RDS console, then drop it`,
        );
      }
      return { ready: status === 'available', detail: `${id} is ${status}` };
    },

    async compare(database, manifest) {
      const now = await fingerprintAt(await urlFor(database));
      const differences = diffFingerprints(manifest, now);
      return { ok: differences.length === 0, differences, tables: now.tables, migrationVersion: now.migrationVersion };
    },

    async fingerprint(database) {
      const { tables, migrationVersion } = await fingerprintAt(await urlFor(database));
      return { tables, migrationVersion };
    },

    async dropDatabase(name) {
      const rds = rdsOf(spec);
      const id = instanceFor(spec, name);
      if (id === rds.instance) {
        throw awsPermanent(
          'RefusedToDelete',
          `refusing to delete RDS instance ${id}: it is the service's own instance`,
        );
      }
      const owned = (tags: Record<string, string>) =>
        OWN_INSTANCE_KINDS.has(tags[TAG.kind] ?? '') && tags[RDS_TAG.sourceInstance] === rds.instance;

      const instance = await calls.describeInstance(id);
      let scope: { service?: string; environment?: string } = {};
      if (instance) {
        const tags = tagsOf(instance.TagList);
        if (!owned(tags)) {
          throw awsPermanent(
            'RefusedToDelete',
            `refusing to delete RDS instance ${id}: it is not a drill or restore instance of ${rds.instance} ` +
              `(${TAG.kind}=${tags[TAG.kind] ?? '-'}, ${RDS_TAG.sourceInstance}=${tags[RDS_TAG.sourceInstance] ?? '-'})`,
          );
        }
        scope = { service: tags[TAG.service], environment: tags[TAG.environment] };
        await deleteInstance(id, instance.DBInstanceStatus);
      }

      // Drill instances of workflows that ended without cleaning up (terminated, or a worker lost): delete them.
      const current = currentWorkflowId();
      for (const leftover of await calls.allInstances()) {
        const other = leftover.DBInstanceIdentifier;
        const tags = tagsOf(leftover.TagList);
        const workflow = tags[TAG.workflow];
        if (!other || other === id || other === rds.instance || !workflow || workflow === current) continue;
        if (tags[TAG.kind] !== 'drill' || leftover.DBInstanceStatus === 'deleting') continue;
        const sameService =
          tags[RDS_TAG.sourceInstance] === rds.instance ||
          (scope.service !== undefined &&
            tags[TAG.service] === scope.service &&
            tags[TAG.environment] === scope.environment &&
            OWN_INSTANCE_KINDS.has(tags[TAG.kind] ?? ''));
        if (!sameService || (await ctx.isRunning(workflow))) continue;
        try {
          await deleteInstance(other, leftover.DBInstanceStatus);
          note(`deleted the leftover drill instance ${other} of the finished workflow ${workflow}`);
        } catch (err) {
          // The requested instance is gone; a leftover that cannot be deleted now is tried again by the next drill.
          note(`could not delete the leftover drill instance ${other}: ${(err as Error).message}`);
        }
      }
    },
  };

  /** Deletes an instance without a final snapshot; one being deleted or already gone is fine. */
  async function deleteInstance(id: string, status: string | undefined): Promise<void> {
    if (status === 'deleting') return;
    try {
      await awsCall(
        'rds:DeleteDBInstance',
        `RDS instance ${id}`,
        () =>
          client.send(
            new DeleteDBInstanceCommand({
              DBInstanceIdentifier: id,
              SkipFinalSnapshot: true,
              DeleteAutomatedBackups: true,
            }),
          ),
        ['not-found', 'conflict'],
      );
    } catch (err) {
      const kind = classifyAwsError(err);
      if (kind === 'not-found') return;
      if (kind !== 'conflict') throw err;
      const now = await calls.describeInstance(id);
      if (!now || now.DBInstanceStatus === 'deleting') return;
      throw notYet(`RDS instance ${id} cannot be deleted while it is ${now.DBInstanceStatus ?? 'busy'}; retrying`);
    }
  }
}

/** The fields of a task definition that RegisterTaskDefinition takes back (a new revision of the same family). */
function registrationOf(td: TaskDefinition): RegisterTaskDefinitionCommandInput {
  const input: RegisterTaskDefinitionCommandInput = {
    family: td.family,
    containerDefinitions: td.containerDefinitions,
  };
  const copy = <K extends keyof RegisterTaskDefinitionCommandInput & keyof TaskDefinition>(key: K) => {
    if (td[key] !== undefined) (input as unknown as Record<string, unknown>)[key] = td[key];
  };
  for (const key of [
    'taskRoleArn',
    'executionRoleArn',
    'networkMode',
    'volumes',
    'placementConstraints',
    'requiresCompatibilities',
    'cpu',
    'memory',
    'pidMode',
    'ipcMode',
    'proxyConfiguration',
    'inferenceAccelerators',
    'ephemeralStorage',
    'runtimePlatform',
    'enableFaultInjection',
  ] as const) {
    copy(key);
  }
  return input;
}

/**
 * Puts a restored RDS instance in the place of the service's instance by pointing the service's tasks at its
 * endpoint: the holder aws.rds.endpoint says where tasks read the database host from.
 * - `{ ssmParameter }`: the parameter is set to the instance's address (the host name only, without the port: RDS
 *   restores keep the source's port, and the tasks' own configuration has it), then every colour service with
 *   tasks is redeployed (forceNewDeployment) so its tasks read the new value.
 * - `{ secret, key }`: the secret's JSON gets `key` (default "host") set to the address, then the same redeploy.
 * - `{ taskEnv }`: a new revision of each colour service's task definition with that variable of aws.container
 *   set to the address, deployed with UpdateService.
 * Idempotent: a holder that already names the address, with the services deployed since it was written, is
 * 'already swapped'; a retry after a crash between the write and the redeploy redeploys.
 *
 * The replaced instance keeps its identifier (renaming an RDS instance changes its endpoint) and is never deleted:
 * it is tagged runbook:replaced-by=<restored instance>, and `replacedAs` names nothing on RDS. After a swap,
 * runbook.yaml's aws.rds.instance must name the restored instance (and aws.rds.urlEnv's URL its endpoint), or the
 * next deploy snapshots the replaced one. The rollout itself is not awaited here: ECS replaces the tasks.
 * Throws NoRdsSettings, NoEndpointHolder, RestoreFailed, SecretNotJson, EcsServiceMissing, ContainerMissing or the
 * awsCall failures (non-retryable); a plain retryable Error while the restored instance is not available yet.
 */
export function createRdsSwap(ctx: AwsContext): SwapDatabases {
  const calls = rdsCalls(ctx);
  const { ecs, ssm, secrets, rds: rdsClient } = ctx.clients;

  return async (database, restored, _replacedAs) => {
    const { spec } = ctx;
    const rds = rdsOf(spec);
    const holder = rds.endpoint;
    if (!holder) {
      throw awsPermanent(
        'NoEndpointHolder',
        `aws.rds.endpoint is required to swap ${database} for ${restored}: name the SSM parameter, secret or task ` +
          'environment variable the tasks read the database host from',
      );
    }
    const id = instanceFor(spec, restored);
    const instance = await calls.describeInstance(id);
    if (!instance) throw awsPermanent('RestoreFailed', `cannot swap: the restored RDS instance ${id} does not exist`);
    const status = instance.DBInstanceStatus ?? 'unknown';
    if (RESTORE_FAILED_STATES.has(status))
      throw awsPermanent('RestoreFailed', `cannot swap: RDS instance ${id} is ${status}`);
    const address = instance.Endpoint?.Address;
    if (status !== 'available' || !address)
      throw notYet(`RDS instance ${id} is ${status}; swapping once it is available`);

    if (id !== rds.instance) {
      const old = await calls.describeInstance(rds.instance);
      if (old?.DBInstanceArn && tagsOf(old.TagList)[RDS_TAG.replacedBy] !== id) {
        const arn = old.DBInstanceArn;
        await awsCall('rds:AddTagsToResource', `RDS instance ${rds.instance}`, () =>
          rdsClient.send(
            new AddTagsToResourceCommand({ ResourceName: arn, Tags: tagList({ [RDS_TAG.replacedBy]: id }) }),
          ),
        );
      }
    }

    const colours = [spec.services.blue, spec.services.green];
    const described = await awsCall(
      'ecs:DescribeServices',
      `ECS services ${colours.join(', ')} in ${spec.cluster}`,
      () => ecs.send(new DescribeServicesCommand({ cluster: spec.cluster, services: colours })),
    );
    const services: Service[] = colours.map((name) => {
      const found = described.services?.find((s) => s.serviceName === name || s.serviceArn?.endsWith(`/${name}`));
      if (!found) {
        throw awsPermanent('EcsServiceMissing', `ECS service ${name} does not exist in cluster ${spec.cluster}`);
      }
      return found;
    });

    if ('taskEnv' in holder) return swapTaskEnv(holder.taskEnv, address, services);

    let writtenAtMs: number | undefined;
    let changed = false;
    if ('ssmParameter' in holder) {
      const name = holder.ssmParameter;
      let current: { Value?: string; LastModifiedDate?: Date } | undefined;
      try {
        const out = await awsCall(
          'ssm:GetParameter',
          `SSM parameter ${name}`,
          () => ssm.send(new GetParameterCommand({ Name: name })),
          ['not-found'],
        );
        current = out.Parameter;
      } catch (err) {
        if (classifyAwsError(err) !== 'not-found') throw err;
      }
      if (current?.Value === address) {
        writtenAtMs = current.LastModifiedDate?.getTime();
      } else {
        await awsCall('ssm:PutParameter', `SSM parameter ${name}`, () =>
          ssm.send(
            new PutParameterCommand(
              current
                ? { Name: name, Value: address, Overwrite: true }
                : { Name: name, Value: address, Type: 'String' },
            ),
          ),
        );
        changed = true;
      }
    } else {
      const { secret } = holder;
      const key = holder.key ?? 'host';
      const out = await awsCall('secretsmanager:GetSecretValue', `secret ${secret}`, () =>
        secrets.send(new GetSecretValueCommand({ SecretId: secret })),
      );
      let value: Record<string, unknown>;
      try {
        value = JSON.parse(out.SecretString ?? '') as Record<string, unknown>;
        if (!value || typeof value !== 'object' || Array.isArray(value)) throw new Error('not an object');
      } catch {
        throw awsPermanent('SecretNotJson', `secret ${secret} is not a JSON object, so its "${key}" cannot be set`);
      }
      if (value[key] === address) {
        writtenAtMs = out.CreatedDate?.getTime();
      } else {
        await awsCall('secretsmanager:PutSecretValue', `secret ${secret}`, () =>
          secrets.send(
            new PutSecretValueCommand({ SecretId: secret, SecretString: JSON.stringify({ ...value, [key]: address }) }),
          ),
        );
        changed = true;
      }
    }

    // Tasks read the holder when they start: a service whose newest deployment predates the write still runs
    // tasks with the old host (also when an earlier attempt wrote it and crashed before redeploying).
    const stale = services.filter((s) => {
      if ((s.desiredCount ?? 0) === 0) return false;
      if (changed || writtenAtMs === undefined) return true;
      const primary = s.deployments?.find((d) => d.status === 'PRIMARY');
      return !primary?.createdAt || primary.createdAt.getTime() < writtenAtMs;
    });
    for (const s of stale) {
      const name = s.serviceName ?? '';
      await awsCall('ecs:UpdateService', `ECS service ${name} in ${spec.cluster}`, () =>
        ecs.send(new UpdateServiceCommand({ cluster: spec.cluster, service: name, forceNewDeployment: true })),
      );
    }
    return changed || stale.length > 0 ? 'swapped' : 'already swapped';
  };

  async function swapTaskEnv(variable: string, address: string, services: Service[]) {
    const { spec } = ctx;
    const registered = new Map<string, string>(); // old task definition ARN -> new one (blue and green may share)
    let changed = false;
    for (const s of services) {
      const name = s.serviceName ?? '';
      const arn = s.taskDefinition;
      if (!arn) throw awsPermanent('EcsServiceMissing', `ECS service ${name} has no task definition`);
      let next = registered.get(arn);
      if (next === undefined) {
        const out = await awsCall('ecs:DescribeTaskDefinition', `task definition ${arn}`, () =>
          ecs.send(new DescribeTaskDefinitionCommand({ taskDefinition: arn, include: ['TAGS'] })),
        );
        const td = out.taskDefinition;
        const container = td?.containerDefinitions?.find((c) => c.name === spec.container);
        if (!td || !container) {
          throw awsPermanent(
            'ContainerMissing',
            `task definition ${arn} has no container ${spec.container} (aws.container in runbook.yaml)`,
          );
        }
        if (container.environment?.find((e) => e.name === variable)?.value === address) {
          next = arn;
        } else {
          const input = registrationOf(td);
          input.containerDefinitions = td.containerDefinitions?.map((c) =>
            c.name === spec.container
              ? {
                  ...c,
                  environment: [
                    ...(c.environment ?? []).filter((e) => e.name !== variable),
                    { name: variable, value: address },
                  ],
                }
              : c,
          );
          if (out.tags && out.tags.length > 0) input.tags = out.tags;
          const made = await awsCall('ecs:RegisterTaskDefinition', `task definition family ${td.family ?? arn}`, () =>
            ecs.send(new RegisterTaskDefinitionCommand(input)),
          );
          next = made.taskDefinition?.taskDefinitionArn ?? arn;
        }
        registered.set(arn, next);
      }
      if (next === arn) continue;
      await awsCall('ecs:UpdateService', `ECS service ${name} in ${spec.cluster}`, () =>
        ecs.send(new UpdateServiceCommand({ cluster: spec.cluster, service: name, taskDefinition: next })),
      );
      changed = true;
    }
    return changed ? ('swapped' as const) : ('already swapped' as const);
  }
}

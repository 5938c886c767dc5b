import { Context } from '@temporalio/activity';
import {
  AddTagsToResourceCommand,
  CreateDBClusterSnapshotCommand,
  CreateDBInstanceCommand,
  CreateDBSnapshotCommand,
  DeleteDBClusterCommand,
  DeleteDBInstanceCommand,
  DescribeDBClusterSnapshotsCommand,
  DescribeDBClustersCommand,
  DescribeDBInstancesCommand,
  DescribeDBSnapshotsCommand,
  ListTagsForResourceCommand,
  RestoreDBClusterFromSnapshotCommand,
  RestoreDBInstanceFromDBSnapshotCommand,
  type DBCluster,
  type DBClusterSnapshot,
  type DBInstance,
  type DBSnapshot,
  type Tag,
} from '@aws-sdk/client-rds';
import {
  DescribeServicesCommand,
  DescribeTaskDefinitionCommand,
  RegisterTaskDefinitionCommand,
  UpdateServiceCommand,
  type Service,
} from '@aws-sdk/client-ecs';
import { GetParameterCommand, PutParameterCommand } from '@aws-sdk/client-ssm';
import { GetSecretValueCommand, PutSecretValueCommand } from '@aws-sdk/client-secrets-manager';
import { rdsLiveId, rdsResourceId } from '../../shared/platform';
import type { AwsEcsSpec, AwsRdsSpec } from '../../shared/service-plan';
import { diffFingerprints, fingerprintDatabaseWithVersion, type FingerprintWithVersion } from '../../pg/fingerprint';
import type { ManifestStore } from '../../orchestrator-store/manifests';
import type { RestoreProgress, SnapshotManifest, SnapshotStore, SwapDatabases } from '../types';
import { TAG, type AwsContext } from './context';
import { registrationOf } from './ecs-releases';
import { awsCall, awsErrorCode, awsPermanent, classifyAwsError } from './errors';

/** Tags of this file's resources, next to the platform's {@link TAG}s. */
export const RDS_TAG = {
  /** On an instance (or cluster) restored from a snapshot: the snapshot's identifier (a retried restore adopts it). */
  snapshot: 'runbook:snapshot',
  /**
   * On a restored instance: the instance the service ran on when it was restored (whose drills and restores it is);
   * on a restored Aurora cluster and its writer instance: the service's cluster.
   */
  sourceInstance: 'runbook:source-instance',
  /** On the instance a database restore replaced: the restored instance now in its place. It is never deleted. */
  replacedBy: 'runbook:replaced-by',
} as const;

/** RDS instance (and cluster) states a restore never leaves on its own. */
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
 * For a service on an Aurora cluster (aws.rds.cluster) these are DB cluster identifiers (at most 61 characters:
 * a restored cluster's writer instance is `<cluster>-1`). See {@link rdsResourceId}.
 * Throws NoRdsSettings or InvalidInstanceName (non-retryable).
 */
export function instanceFor(spec: AwsEcsSpec, database: string): string {
  const id = rdsResourceId(rdsOf(spec), database);
  if (!id) throw awsPermanent('InvalidInstanceName', `no RDS instance identifier can be made of "${database}"`);
  return id;
}

/** The writer instance a restore of an Aurora cluster creates in it. */
export const writerOf = (clusterId: string) => `${clusterId}-1`;

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

/**
 * For an SDK call's promise: InvalidDBClusterStateFault (a cluster that is still being created, or that has
 * instances not yet being deleted) becomes a plain retryable Error. errors.ts counts it as an invalid request,
 * but it is a state that passes, like InvalidDBInstanceState.
 */
function clusterBusy(what: string) {
  return (err: unknown): never => {
    if (awsErrorCode(err) === 'InvalidDBClusterStateFault') {
      throw notYet(`${what}: ${(err as Error).message}; retrying`);
    }
    throw err;
  };
}

/** A DB instance or an Aurora DB cluster, as this file reads them. */
interface RdsDb {
  id: string;
  arn?: string;
  status?: string;
  address?: string;
  port?: number;
  engine?: string;
  tags: Record<string, string>;
  /** A cluster's instances. */
  members?: string[];
}

/** A DB snapshot or a DB cluster snapshot. */
interface RdsSnapshot {
  arn?: string;
  status?: string;
  /** The instance or cluster it is of. */
  source?: string;
  percent?: number;
  gib?: number;
  createdAt?: Date;
  engine?: string;
  engineVersion?: string;
  tagList?: Tag[];
}

const fromInstance = (i: DBInstance): RdsDb => ({
  id: i.DBInstanceIdentifier ?? '',
  arn: i.DBInstanceArn,
  status: i.DBInstanceStatus,
  address: i.Endpoint?.Address,
  port: i.Endpoint?.Port,
  engine: i.Engine,
  tags: tagsOf(i.TagList),
});

const fromCluster = (c: DBCluster): RdsDb => ({
  id: c.DBClusterIdentifier ?? '',
  arn: c.DBClusterArn,
  status: c.Status,
  address: c.Endpoint,
  port: c.Port,
  engine: c.Engine,
  tags: tagsOf(c.TagList),
  members: (c.DBClusterMembers ?? []).flatMap((m) => (m.DBInstanceIdentifier ? [m.DBInstanceIdentifier] : [])),
});

/** A snapshot's fields; `arn` and `source` (the instance or cluster it is of) are named differently by the two kinds. */
const fromSnapshot = (s: DBSnapshot | DBClusterSnapshot, arn?: string, source?: string): RdsSnapshot => ({
  arn,
  status: s.Status,
  source,
  percent: s.PercentProgress,
  gib: s.AllocatedStorage,
  createdAt: s.SnapshotCreateTime,
  engine: s.Engine,
  engineVersion: s.EngineVersion,
  tagList: s.TagList,
});

/** An awsCall whose not-found answer is `undefined` (e.g. a Describe call of one resource by its identifier). */
async function awsFind<T>(action: string, resource: string, call: () => Promise<T>): Promise<T | undefined> {
  try {
    return await awsCall(action, resource, call, ['not-found']);
  } catch (err) {
    if (classifyAwsError(err) === 'not-found') return undefined;
    throw err;
  }
}

/** Every page of a Describe call that pages with Marker, each page through awsCall. */
async function allPages<T>(
  action: string,
  resource: string,
  page: (marker: string | undefined) => Promise<{ items?: T[]; Marker?: string }>,
): Promise<T[]> {
  const found: T[] = [];
  let marker: string | undefined;
  do {
    const out = await awsCall(action, resource, () => page(marker));
    found.push(...(out.items ?? []));
    marker = out.Marker;
  } while (marker);
  return found;
}

/** What a restore creates, tagged: the settings of aws.rds.drill, and the snapshot restored. */
interface RestoreRequest {
  id: string;
  snapshotId: string;
  drill: AwsRdsSpec['drill'];
  tags: Tag[];
}

/**
 * The calls that differ between a service on a DB instance and one on an Aurora DB cluster, each through awsCall;
 * `noun` names the resource in messages. Conflict errors of the create calls are thrown as they are (the caller
 * adopts what exists).
 */
interface RdsKind {
  noun: 'instance' | 'cluster';
  snapshotNoun: 'snapshot' | 'cluster snapshot';
  describe(id: string): Promise<RdsDb | undefined>;
  /** Every instance (cluster) of the account and region, with its tags. */
  all(): Promise<RdsDb[]>;
  describeSnapshot(id: string): Promise<RdsSnapshot | undefined>;
  createSnapshot(snapshotId: string, sourceId: string, tags: Tag[]): Promise<RdsSnapshot | undefined>;
  /** Starts the restore; what it creates (as far as known). */
  restore(req: RestoreRequest): Promise<RdsDb>;
  /** Deletes without a final snapshot (a cluster: its instances first); one being deleted or already gone is fine. */
  remove(db: RdsDb): Promise<void>;
}

/** The RDS calls that several parts make, each through awsCall. */
function rdsCalls(ctx: AwsContext) {
  const rds = ctx.clients.rds;

  async function describeInstance(id: string): Promise<DBInstance | undefined> {
    const out = await awsFind('rds:DescribeDBInstances', `RDS instance ${id}`, () =>
      rds.send(new DescribeDBInstancesCommand({ DBInstanceIdentifier: id })),
    );
    return out?.DBInstances?.[0];
  }

  async function snapshotTags(snapshot: RdsSnapshot): Promise<Record<string, string>> {
    if (snapshot.tagList || !snapshot.arn) return tagsOf(snapshot.tagList);
    const arn = snapshot.arn;
    const out = await awsCall('rds:ListTagsForResource', `RDS snapshot ${arn}`, () =>
      rds.send(new ListTagsForResourceCommand({ ResourceName: arn })),
    );
    return tagsOf(out.TagList);
  }

  /** Deletes an instance without a final snapshot; one being deleted or already gone is fine. */
  async function deleteInstance(id: string, status: string | undefined, automatedBackups = true): Promise<void> {
    if (status === 'deleting') return;
    try {
      await awsCall(
        'rds:DeleteDBInstance',
        `RDS instance ${id}`,
        () =>
          rds.send(
            new DeleteDBInstanceCommand({
              DBInstanceIdentifier: id,
              SkipFinalSnapshot: true,
              // An Aurora instance has no backups of its own: they are the cluster's.
              ...(automatedBackups ? { DeleteAutomatedBackups: true } : {}),
            }),
          ),
        ['not-found', 'conflict'],
      );
    } catch (err) {
      const kind = classifyAwsError(err);
      if (kind === 'not-found') return;
      if (kind !== 'conflict') throw err;
      const now = await describeInstance(id);
      if (!now || now.DBInstanceStatus === 'deleting') return;
      throw notYet(`RDS instance ${id} cannot be deleted while it is ${now.DBInstanceStatus ?? 'busy'}; retrying`);
    }
  }

  const instances: RdsKind = {
    noun: 'instance',
    snapshotNoun: 'snapshot',

    async describe(id) {
      const found = await describeInstance(id);
      return found && fromInstance(found);
    },

    async all() {
      const found = await allPages('rds:DescribeDBInstances', 'RDS instances', async (marker) => {
        const out = await rds.send(new DescribeDBInstancesCommand({ ...(marker ? { Marker: marker } : {}) }));
        return { items: out.DBInstances, Marker: out.Marker };
      });
      return found.map(fromInstance);
    },

    async describeSnapshot(id) {
      const out = await awsFind('rds:DescribeDBSnapshots', `RDS snapshot ${id}`, () =>
        rds.send(new DescribeDBSnapshotsCommand({ DBSnapshotIdentifier: id })),
      );
      const found = out?.DBSnapshots?.[0];
      return found && fromSnapshot(found, found.DBSnapshotArn, found.DBInstanceIdentifier);
    },

    async createSnapshot(snapshotId, sourceId, tags) {
      const out = await awsCall(
        'rds:CreateDBSnapshot',
        `RDS instance ${sourceId} (snapshot ${snapshotId})`,
        () =>
          rds.send(
            new CreateDBSnapshotCommand({
              DBSnapshotIdentifier: snapshotId,
              DBInstanceIdentifier: sourceId,
              Tags: tags,
            }),
          ),
        ['conflict'],
      );
      const made = out.DBSnapshot;
      return made && fromSnapshot(made, made.DBSnapshotArn, made.DBInstanceIdentifier);
    },

    async restore({ id, snapshotId, drill, tags }) {
      await awsCall(
        'rds:RestoreDBInstanceFromDBSnapshot',
        `RDS instance ${id} (from snapshot ${snapshotId})`,
        () =>
          rds.send(
            new RestoreDBInstanceFromDBSnapshotCommand({
              DBInstanceIdentifier: id,
              DBSnapshotIdentifier: snapshotId,
              ...(drill.subnetGroup ? { DBSubnetGroupName: drill.subnetGroup } : {}),
              ...(drill.securityGroups.length > 0 ? { VpcSecurityGroupIds: drill.securityGroups } : {}),
              ...(drill.instanceClass ? { DBInstanceClass: drill.instanceClass } : {}),
              PubliclyAccessible: false,
              Tags: tags,
            }),
          ),
        ['conflict'],
      );
      return { id, status: 'creating', tags: tagsOf(tags) };
    },

    async remove(db) {
      await deleteInstance(db.id, db.status);
    },
  };

  const clusters: RdsKind = {
    noun: 'cluster',
    snapshotNoun: 'cluster snapshot',

    async describe(id) {
      const out = await awsFind('rds:DescribeDBClusters', `RDS cluster ${id}`, () =>
        rds.send(new DescribeDBClustersCommand({ DBClusterIdentifier: id })),
      );
      const found = out?.DBClusters?.[0];
      return found && fromCluster(found);
    },

    async all() {
      const found = await allPages('rds:DescribeDBClusters', 'RDS clusters', async (marker) => {
        const out = await rds.send(new DescribeDBClustersCommand({ ...(marker ? { Marker: marker } : {}) }));
        return { items: out.DBClusters, Marker: out.Marker };
      });
      return found.map(fromCluster);
    },

    async describeSnapshot(id) {
      const out = await awsFind('rds:DescribeDBClusterSnapshots', `RDS cluster snapshot ${id}`, () =>
        rds.send(new DescribeDBClusterSnapshotsCommand({ DBClusterSnapshotIdentifier: id })),
      );
      const found = out?.DBClusterSnapshots?.[0];
      return found && fromSnapshot(found, found.DBClusterSnapshotArn, found.DBClusterIdentifier);
    },

    async createSnapshot(snapshotId, sourceId, tags) {
      const out = await awsCall(
        'rds:CreateDBClusterSnapshot',
        `RDS cluster ${sourceId} (cluster snapshot ${snapshotId})`,
        () =>
          rds.send(
            new CreateDBClusterSnapshotCommand({
              DBClusterSnapshotIdentifier: snapshotId,
              DBClusterIdentifier: sourceId,
              Tags: tags,
            }),
          ),
        ['conflict'],
      );
      const made = out.DBClusterSnapshot;
      return made && fromSnapshot(made, made.DBClusterSnapshotArn, made.DBClusterIdentifier);
    },

    async restore({ id, snapshotId, drill, tags }) {
      // Aurora restores take the engine from the request, not the snapshot: restore the snapshot's.
      const snapshot = await clusters.describeSnapshot(snapshotId);
      if (!snapshot) throw awsPermanent('AwsNotFound', `RDS cluster snapshot ${snapshotId} does not exist`);
      await awsCall(
        'rds:RestoreDBClusterFromSnapshot',
        `RDS cluster ${id} (from cluster snapshot ${snapshotId})`,
        () =>
          rds.send(
            new RestoreDBClusterFromSnapshotCommand({
              DBClusterIdentifier: id,
              SnapshotIdentifier: snapshotId,
              Engine: snapshot.engine ?? 'aurora-postgresql',
              ...(snapshot.engineVersion ? { EngineVersion: snapshot.engineVersion } : {}),
              ...(drill.subnetGroup ? { DBSubnetGroupName: drill.subnetGroup } : {}),
              ...(drill.securityGroups.length > 0 ? { VpcSecurityGroupIds: drill.securityGroups } : {}),
              Tags: tags,
            }),
          ),
        ['conflict'],
      );
      return { id, status: 'creating', engine: snapshot.engine, tags: tagsOf(tags) };
    },

    async remove(db) {
      if (db.status === 'deleting') return;
      for (const member of new Set([writerOf(db.id), ...(db.members ?? [])])) {
        await deleteInstance(member, undefined, false);
      }
      await awsFind('rds:DeleteDBCluster', `RDS cluster ${db.id}`, () =>
        rds
          .send(new DeleteDBClusterCommand({ DBClusterIdentifier: db.id, SkipFinalSnapshot: true }))
          .catch(clusterBusy(`RDS cluster ${db.id} cannot be deleted yet`)),
      );
    },
  };

  /** The calls for the service's kind of database: its DB instance, or its Aurora cluster. */
  const kindOf = (spec: AwsEcsSpec): RdsKind => (rdsOf(spec).cluster === undefined ? instances : clusters);

  return { describeInstance, snapshotTags, kindOf, instances };
}

/**
 * The URL of `database` (see {@link instanceFor}): the service's own database is the URL in the worker's
 * environment variable aws.rds.urlEnv; any other is on its own instance (or Aurora cluster), reached at its
 * endpoint (a cluster's: the writer endpoint) through ctx.resolveAddress, with the same credentials and options,
 * database name aws.rds.database.
 * Throws NoDatabaseUrl (non-retryable) when the variable is missing; a plain (retryable) Error while the instance
 * has no endpoint yet; the awsCall failures of DescribeDBInstances (AwsNotFound when there is no such instance).
 */
export function rdsUrlFor(ctx: AwsContext): (database: string) => Promise<string> {
  const calls = rdsCalls(ctx);
  return async (database) => {
    const rds = rdsOf(ctx.spec);
    const kind = calls.kindOf(ctx.spec);
    const live = ctx.env[rds.urlEnv];
    if (!live) {
      throw awsPermanent(
        'NoDatabaseUrl',
        `the worker's environment has no ${rds.urlEnv}: set it to the URL (with credentials) of database ` +
          `${rds.database} on RDS ${kind.noun} ${rdsLiveId(rds)}, e.g. postgres://user:password@host:5432/${rds.database}`,
      );
    }
    const id = instanceFor(ctx.spec, database);
    if (id === rdsLiveId(rds)) return live;
    const db = await kind.describe(id);
    if (!db) {
      throw awsPermanent('AwsNotFound', `RDS ${kind.noun} ${id} (database ${database}) does not exist`);
    }
    if (!db.address || !db.port) {
      throw notYet(`RDS ${kind.noun} ${id} has no endpoint yet (it is ${db.status ?? 'unknown'})`);
    }
    const to = ctx.resolveAddress(db.address, db.port);
    const url = new URL(live);
    url.searchParams.delete('host');
    url.hostname = to.host.includes(':') ? `[${to.host}]` : to.host;
    url.port = String(to.port);
    url.pathname = `/${encodeURIComponent(rds.database)}`;
    return url.toString();
  };
}

export type { FingerprintWithVersion } from '../../pg/fingerprint';

export interface RdsSnapshotStoreDeps {
  /** Fingerprints the database at a URL (default: over pg, with the server's version). */
  fingerprint?(url: string): Promise<FingerprintWithVersion>;
}

/**
 * The state of a restored Aurora cluster's writer instance; throws RestoreFailed (non-retryable) when it does not
 * exist or failed.
 */
async function writerState(calls: ReturnType<typeof rdsCalls>, clusterId: string): Promise<string> {
  const writerId = writerOf(clusterId);
  const writer = await calls.describeInstance(writerId);
  if (!writer) {
    throw awsPermanent(
      'RestoreFailed',
      `the writer instance ${writerId} of RDS cluster ${clusterId} does not exist: drop the restore and start again`,
    );
  }
  const status = writer.DBInstanceStatus ?? 'unknown';
  if (RESTORE_FAILED_STATES.has(status)) {
    throw awsPermanent('RestoreFailed', `the writer instance ${writerId} of RDS cluster ${clusterId} is ${status}`);
  }
  return status;
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
  const fingerprintAt = deps.fingerprint ?? fingerprintDatabaseWithVersion;

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
    progress?: (p: { phase: string }) => void,
  ): Promise<RestoreProgress> {
    const id = writerOf(cluster.id);
    const existing = await calls.instances.describe(id);
    if (existing) return adopt(existing, 'instance', snapshotId, progress);
    const tags = Object.fromEntries(Object.entries(cluster.tags).filter(([key]) => key.startsWith('runbook:')));
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
                DBInstanceClass: drill.instanceClass,
                PubliclyAccessible: false,
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

      // The fingerprint is taken just before the snapshot, not in the same instant (RDS snapshots the storage, not
      // a transaction): rows written in between show up as differences when a restore is compared with this
      // manifest, and the drill reports them. Take snapshots while nothing writes (a deploy's maintenance window)
      // for an exact match.
      progress?.({ phase: 'fingerprint' });
      const fingerprint = await fingerprintAt(await urlFor(req.database));

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
      };
      await manifests.put(manifest);
      const available = await untilAvailable(req.snapshotId, progress, signal);
      progress?.({ phase: 'done', bytes: (available.gib ?? 0) * 2 ** 30 });
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
          [TAG.kind]: target.includes('_drill') ? 'drill' : 'restore',
          [TAG.workflow]: currentWorkflowId(),
        });
        try {
          restored = await kind.restore({ id, snapshotId, drill: rds.drill, tags });
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
      const writer = await ensureWriter(restored, snapshotId, rds.drill, progress);
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
      const current = currentWorkflowId();
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
          note(`deleted the leftover drill ${kind.noun} ${other} of the finished workflow ${workflow}`);
        } catch (err) {
          // The requested instance is gone; a leftover that cannot be deleted now is tried again by the next drill.
          note(`could not delete the leftover drill ${kind.noun} ${other}: ${(err as Error).message}`);
        }
      }
    },
  };
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
 * next deploy snapshots the replaced one. On an Aurora cluster (aws.rds.cluster) the same holds for clusters: the
 * address is the restored cluster's writer endpoint, once the cluster and its writer instance are available. The rollout itself is not awaited here: ECS replaces the tasks.
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
    const kind = calls.kindOf(spec);
    const live = rdsLiveId(rds);
    const id = instanceFor(spec, restored);
    const db = await kind.describe(id);
    if (!db) throw awsPermanent('RestoreFailed', `cannot swap: the restored RDS ${kind.noun} ${id} does not exist`);
    const status = db.status ?? 'unknown';
    if (RESTORE_FAILED_STATES.has(status))
      throw awsPermanent('RestoreFailed', `cannot swap: RDS ${kind.noun} ${id} is ${status}`);
    const address = db.address;
    if (status !== 'available' || !address)
      throw notYet(`RDS ${kind.noun} ${id} is ${status}; swapping once it is available`);
    if (kind.noun === 'cluster') {
      const writer = await writerState(calls, id);
      if (writer !== 'available') {
        throw notYet(`the writer ${writerOf(id)} of RDS cluster ${id} is ${writer}; swapping once it is available`);
      }
    }

    if (id !== live) {
      const old = await kind.describe(live);
      if (old?.arn && old.tags[RDS_TAG.replacedBy] !== id) {
        const arn = old.arn;
        await awsCall('rds:AddTagsToResource', `RDS ${kind.noun} ${live}`, () =>
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

/**
 * The RDS resources a service's database lives on, a DB instance or an Aurora DB cluster: how they are named
 * (instanceFor), tagged, and called, the same way for both kinds (rdsCalls().kindOf).
 */
import {
  CreateDBClusterSnapshotCommand,
  CreateDBSnapshotCommand,
  DeleteDBClusterCommand,
  DeleteDBClusterSnapshotCommand,
  DeleteDBInstanceCommand,
  DeleteDBSnapshotCommand,
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
import { rdsResourceId } from './naming';
import type { AwsEcsSpec, AwsRdsSpec } from '../../shared/service-plan';
import type { AwsContext } from './context';
import { awsCall, awsErrorCode, awsPermanent, classifyAwsError } from './errors';
import type { RestoreSettings } from './rds-restore-settings';

/** Tags of the RDS resources this platform creates, next to the platform's TAGs (context.ts). */
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
export const RESTORE_FAILED_STATES = new Set([
  'failed',
  'incompatible-restore',
  'incompatible-parameters',
  'incompatible-network',
  'storage-full',
]);

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

export function tagList(tags: Record<string, string | undefined>): Tag[] {
  return Object.entries(tags)
    .filter((e): e is [string, string] => e[1] !== undefined)
    .map(([Key, Value]) => ({ Key, Value }));
}

/** A transient state that the activity's retry (with backoff) waits out: a plain, retryable Error. */
export function notYet(message: string): Error {
  return new Error(message);
}

/**
 * For an SDK call's promise: InvalidDBClusterStateFault (a cluster that is still being created, or that has
 * instances not yet being deleted) becomes a plain retryable Error. errors.ts counts it as an invalid request,
 * but it is a state that passes, like InvalidDBInstanceState.
 */
export function clusterBusy(what: string) {
  return (err: unknown): never => {
    if (awsErrorCode(err) === 'InvalidDBClusterStateFault') {
      throw notYet(`${what}: ${(err as Error).message}; retrying`);
    }
    throw err;
  };
}

/** A DB instance or an Aurora DB cluster, as this file reads them. */
export interface RdsDb {
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
export interface RdsSnapshot {
  id?: string;
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
const fromSnapshot = (s: DBSnapshot | DBClusterSnapshot, arn?: string, source?: string, id?: string): RdsSnapshot => ({
  ...(id ? { id } : {}),
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

/**
 * What a restore creates, tagged: a drill's copy with the settings of aws.rds.drill; a database restore's with
 * `settings`, those of the service's own instance or cluster (rds-restore-settings.ts).
 */
export interface RestoreRequest {
  id: string;
  snapshotId: string;
  drill: AwsRdsSpec['drill'];
  settings?: RestoreSettings;
  tags: Tag[];
}

/**
 * The calls that differ between a service on a DB instance and one on an Aurora DB cluster, each through awsCall;
 * `noun` names the resource in messages. Conflict errors of the create calls are thrown as they are (the caller
 * adopts what exists).
 */
export interface RdsKind {
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
  /** Every manual snapshot of the account and region, with its tags. */
  manualSnapshots(): Promise<RdsSnapshot[]>;
  /** Deletes a manual snapshot; one already gone is fine. */
  deleteSnapshot(id: string): Promise<void>;
}

/** What {@link rdsCalls} returns. */
export type RdsCalls = ReturnType<typeof rdsCalls>;

/** The RDS calls that several parts make, each through awsCall. */
export function rdsCalls(ctx: AwsContext) {
  const rds = ctx.clients.rds;

  async function describeInstance(id: string): Promise<DBInstance | undefined> {
    const out = await awsFind('rds:DescribeDBInstances', `RDS instance ${id}`, () =>
      rds.send(new DescribeDBInstancesCommand({ DBInstanceIdentifier: id })),
    );
    return out?.DBInstances?.[0];
  }

  async function describeCluster(id: string): Promise<DBCluster | undefined> {
    const out = await awsFind('rds:DescribeDBClusters', `RDS cluster ${id}`, () =>
      rds.send(new DescribeDBClustersCommand({ DBClusterIdentifier: id })),
    );
    return out?.DBClusters?.[0];
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

    async restore({ id, snapshotId, drill, settings, tags }) {
      const network = settings
        ? {
            ...(settings.subnetGroup ? { DBSubnetGroupName: settings.subnetGroup } : {}),
            ...(settings.securityGroups?.length ? { VpcSecurityGroupIds: settings.securityGroups } : {}),
            ...(settings.instanceClass ? { DBInstanceClass: settings.instanceClass } : {}),
            ...(settings.parameterGroup ? { DBParameterGroupName: settings.parameterGroup } : {}),
            ...(settings.optionGroup ? { OptionGroupName: settings.optionGroup } : {}),
            ...(settings.multiAz !== undefined ? { MultiAZ: settings.multiAz } : {}),
            ...(settings.storageType ? { StorageType: settings.storageType } : {}),
            ...(settings.iops !== undefined ? { Iops: settings.iops } : {}),
            ...(settings.iamAuth !== undefined ? { EnableIAMDatabaseAuthentication: settings.iamAuth } : {}),
            ...(settings.copyTagsToSnapshot !== undefined ? { CopyTagsToSnapshot: settings.copyTagsToSnapshot } : {}),
            // Off until the swap (promoteRestored): a restore that fails its verification must be deletable.
            DeletionProtection: false,
            PubliclyAccessible: settings.publiclyAccessible ?? false,
          }
        : {
            ...(drill.subnetGroup ? { DBSubnetGroupName: drill.subnetGroup } : {}),
            ...(drill.securityGroups.length > 0 ? { VpcSecurityGroupIds: drill.securityGroups } : {}),
            ...(drill.instanceClass ? { DBInstanceClass: drill.instanceClass } : {}),
            PubliclyAccessible: false,
          };
      await awsCall(
        'rds:RestoreDBInstanceFromDBSnapshot',
        `RDS instance ${id} (from snapshot ${snapshotId})`,
        () =>
          rds.send(
            new RestoreDBInstanceFromDBSnapshotCommand({
              DBInstanceIdentifier: id,
              DBSnapshotIdentifier: snapshotId,
              ...network,
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

    async manualSnapshots() {
      const found = await allPages('rds:DescribeDBSnapshots', 'RDS manual snapshots', async (marker) => {
        const out = await rds.send(
          new DescribeDBSnapshotsCommand({ SnapshotType: 'manual', ...(marker ? { Marker: marker } : {}) }),
        );
        return { items: out.DBSnapshots, Marker: out.Marker };
      });
      return found.map((s) => fromSnapshot(s, s.DBSnapshotArn, s.DBInstanceIdentifier, s.DBSnapshotIdentifier));
    },

    async deleteSnapshot(id) {
      await awsFind('rds:DeleteDBSnapshot', `RDS snapshot ${id}`, () =>
        rds.send(new DeleteDBSnapshotCommand({ DBSnapshotIdentifier: id })),
      );
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

    async restore({ id, snapshotId, drill, settings, tags }) {
      const network = settings
        ? {
            ...(settings.subnetGroup ? { DBSubnetGroupName: settings.subnetGroup } : {}),
            ...(settings.securityGroups?.length ? { VpcSecurityGroupIds: settings.securityGroups } : {}),
            ...(settings.clusterParameterGroup ? { DBClusterParameterGroupName: settings.clusterParameterGroup } : {}),
            ...(settings.kmsKeyId ? { KmsKeyId: settings.kmsKeyId } : {}),
            ...(settings.iamAuth !== undefined ? { EnableIAMDatabaseAuthentication: settings.iamAuth } : {}),
            ...(settings.copyTagsToSnapshot !== undefined ? { CopyTagsToSnapshot: settings.copyTagsToSnapshot } : {}),
            // I/O-Optimized (aurora-iopt1) is the cluster's, not the snapshot's: a restore without it is Standard.
            ...(settings.storageType ? { StorageType: settings.storageType } : {}),
            ...(settings.serverlessV2
              ? {
                  ServerlessV2ScalingConfiguration: {
                    MinCapacity: settings.serverlessV2.minCapacity,
                    MaxCapacity: settings.serverlessV2.maxCapacity,
                  },
                }
              : {}),
            DeletionProtection: false,
          }
        : {
            ...(drill.subnetGroup ? { DBSubnetGroupName: drill.subnetGroup } : {}),
            ...(drill.securityGroups.length > 0 ? { VpcSecurityGroupIds: drill.securityGroups } : {}),
          };
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
              ...network,
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

    async manualSnapshots() {
      const found = await allPages('rds:DescribeDBClusterSnapshots', 'RDS manual cluster snapshots', async (marker) => {
        const out = await rds.send(
          new DescribeDBClusterSnapshotsCommand({ SnapshotType: 'manual', ...(marker ? { Marker: marker } : {}) }),
        );
        return { items: out.DBClusterSnapshots, Marker: out.Marker };
      });
      return found.map((s) =>
        fromSnapshot(s, s.DBClusterSnapshotArn, s.DBClusterIdentifier, s.DBClusterSnapshotIdentifier),
      );
    },

    async deleteSnapshot(id) {
      await awsFind('rds:DeleteDBClusterSnapshot', `RDS cluster snapshot ${id}`, () =>
        rds.send(new DeleteDBClusterSnapshotCommand({ DBClusterSnapshotIdentifier: id })),
      );
    },
  };

  /** The calls for the service's kind of database: its DB instance, or its Aurora cluster. */
  const kindOf = (spec: AwsEcsSpec): RdsKind => (rdsOf(spec).cluster === undefined ? instances : clusters);

  return { describeInstance, describeCluster, snapshotTags, kindOf, instances };
}

/**
 * The state of a restored Aurora cluster's writer instance; throws RestoreFailed (non-retryable) when it does not
 * exist or failed.
 */
export async function writerState(calls: RdsCalls, clusterId: string): Promise<string> {
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

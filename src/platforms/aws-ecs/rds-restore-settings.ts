/**
 * The settings of a database restore's new instance (or Aurora cluster): it becomes production, so it is built
 * like the service's own (read with DescribeDBInstances / DescribeDBClusters), with aws.rds.restore's overrides.
 * A drill's scratch copy keeps the cheap aws.rds.drill settings instead.
 *
 * Settings that would stop a failed restore from being cleaned up (deletion protection) or that
 * RestoreDBInstanceFromDBSnapshot does not take (Enhanced Monitoring, backup retention) are applied by
 * {@link promoteRestored} once the swap is done, together with the runbook:kind = live tag.
 */
import {
  AddTagsToResourceCommand,
  CreateDBInstanceCommand,
  ModifyDBClusterCommand,
  ModifyDBInstanceCommand,
  type DBCluster,
  type DBInstance,
} from '@aws-sdk/client-rds';
import type { AwsRdsRestoreSpec, AwsRdsSpec } from '../../shared/service-plan';
import { TAG, type AwsContext } from './context';
import { awsCall, awsPermanent, classifyAwsError } from './errors';
import { clusterBusy, notYet, rdsCalls, tagList, writerOf, type RdsCalls, type RdsDb } from './rds-kinds';

/** What a restore into production copies from the service's instance or cluster (and its writer). */
export interface RestoreSettings {
  instanceClass?: string;
  subnetGroup?: string;
  securityGroups?: string[];
  parameterGroup?: string;
  clusterParameterGroup?: string;
  optionGroup?: string;
  multiAz?: boolean;
  storageType?: string;
  iops?: number;
  publiclyAccessible?: boolean;
  iamAuth?: boolean;
  copyTagsToSnapshot?: boolean;
  kmsKeyId?: string;
  /** An Aurora cluster's Serverless v2 capacity range (ACUs), without which a db.serverless writer is refused. */
  serverlessV2?: { minCapacity: number; maxCapacity: number };
  /** An Aurora cluster's readers, recreated on the restored cluster after the swap (promoteRestored). */
  readers?: ReaderSettings[];
  /** Applied after the swap (promoteRestored). */
  deletionProtection?: boolean;
  monitoringIntervalS?: number;
  monitoringRoleArn?: string;
  backupRetentionDays?: number;
}

/** A reader instance of the service's Aurora cluster, as the restored cluster gets it again. */
export interface ReaderSettings {
  instanceClass?: string;
  promotionTier?: number;
  availabilityZone?: string;
  parameterGroup?: string;
  publiclyAccessible?: boolean;
}

/**
 * The identifier of a restored cluster's reader `index` (0-based): `<cluster>-2` ... `<cluster>-9`, then
 * `<cluster>-a` ... `<cluster>-g`, one character like the writer's `-1`, so that all 15 that Aurora allows fit in 63.
 */
export const readerOf = (clusterId: string, index: number) => `${clusterId}-${'23456789abcdefg'[index] ?? index + 2}`;

/** The kind tag of a restored copy once it is the service's database: the IAM policy does not let it be deleted. */
export const LIVE_KIND = 'live';

const defined = <T extends object>(o: T): T =>
  Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;

/**
 * A parameter or option group the restore names only when it is not one of RDS's defaults (`default.postgres16`,
 * `default:postgres-16`): RDS gives a restore its engine's defaults anyway, and a default option group's name
 * changes with the engine's minor version.
 */
const custom = (name: string | undefined) => (name && !/^default[.:]/.test(name) ? name : undefined);

function fromInstance(i: DBInstance): RestoreSettings {
  const provisionedIops = i.StorageType === 'io1' || i.StorageType === 'io2';
  return defined({
    instanceClass: i.DBInstanceClass,
    subnetGroup: i.DBSubnetGroup?.DBSubnetGroupName,
    securityGroups: i.VpcSecurityGroups?.flatMap((g) => (g.VpcSecurityGroupId ? [g.VpcSecurityGroupId] : [])),
    parameterGroup: custom(i.DBParameterGroups?.[0]?.DBParameterGroupName),
    optionGroup: custom(i.OptionGroupMemberships?.[0]?.OptionGroupName),
    multiAz: i.MultiAZ,
    storageType: i.StorageType,
    iops: provisionedIops ? i.Iops : undefined,
    publiclyAccessible: i.PubliclyAccessible,
    iamAuth: i.IAMDatabaseAuthenticationEnabled,
    copyTagsToSnapshot: i.CopyTagsToSnapshot,
    kmsKeyId: i.KmsKeyId,
    deletionProtection: i.DeletionProtection,
    monitoringIntervalS: i.MonitoringInterval,
    monitoringRoleArn: i.MonitoringInterval ? i.MonitoringRoleArn : undefined,
    backupRetentionDays: i.BackupRetentionPeriod,
  });
}

function fromReader(r: DBInstance, memberTier: number | undefined): ReaderSettings {
  return defined({
    instanceClass: r.DBInstanceClass,
    promotionTier: r.PromotionTier ?? memberTier,
    availabilityZone: r.AvailabilityZone,
    parameterGroup: custom(r.DBParameterGroups?.[0]?.DBParameterGroupName),
    publiclyAccessible: r.PubliclyAccessible,
  });
}

function fromCluster(c: DBCluster, writer: DBInstance | undefined, readers: ReaderSettings[]): RestoreSettings {
  const v2 = c.ServerlessV2ScalingConfiguration;
  return defined({
    readers: readers.length > 0 ? readers : undefined,
    instanceClass: writer?.DBInstanceClass,
    publiclyAccessible: writer?.PubliclyAccessible,
    serverlessV2:
      v2?.MinCapacity !== undefined && v2.MaxCapacity !== undefined
        ? { minCapacity: v2.MinCapacity, maxCapacity: v2.MaxCapacity }
        : undefined,
    parameterGroup: custom(writer?.DBParameterGroups?.[0]?.DBParameterGroupName),
    clusterParameterGroup: custom(c.DBClusterParameterGroup),
    subnetGroup: c.DBSubnetGroup,
    securityGroups: c.VpcSecurityGroups?.flatMap((g) => (g.VpcSecurityGroupId ? [g.VpcSecurityGroupId] : [])),
    iamAuth: c.IAMDatabaseAuthenticationEnabled,
    copyTagsToSnapshot: c.CopyTagsToSnapshot,
    kmsKeyId: c.KmsKeyId,
    deletionProtection: c.DeletionProtection,
    monitoringIntervalS: writer?.MonitoringInterval,
    monitoringRoleArn: writer?.MonitoringInterval ? writer.MonitoringRoleArn : undefined,
    backupRetentionDays: c.BackupRetentionPeriod,
    storageType: c.StorageType,
  });
}

/** aws.rds.restore's overrides over what was read. */
function withOverrides(read: RestoreSettings, o: AwsRdsRestoreSpec | undefined): RestoreSettings {
  return { ...read, ...defined({ ...(o ?? {}) }) };
}

/**
 * The settings of a database restore for the service's instance or cluster (and its writer instance). Throws
 * AwsNotFound (non-retryable) when the service's own instance or cluster does not exist, and the awsCall failures.
 */
export async function restoreSettings(ctx: AwsContext, calls: RdsCalls, rds: AwsRdsSpec): Promise<RestoreSettings> {
  if (rds.cluster !== undefined) {
    const c = await calls.describeCluster(rds.cluster);
    if (!c) throw awsPermanent('AwsNotFound', `RDS cluster ${rds.cluster} (aws.rds.cluster) does not exist`);
    const writerId = c.DBClusterMembers?.find((m) => m.IsClusterWriter)?.DBInstanceIdentifier;
    const writer = writerId ? await calls.describeInstance(writerId) : undefined;
    const readers: ReaderSettings[] = [];
    for (const m of c.DBClusterMembers ?? []) {
      if (m.IsClusterWriter || !m.DBInstanceIdentifier) continue;
      const reader = await calls.describeInstance(m.DBInstanceIdentifier);
      if (reader) readers.push(fromReader(reader, m.PromotionTier));
    }
    return withOverrides(fromCluster(c, writer, readers), rds.restore);
  }
  const live = rds.instance ?? '';
  const i = await calls.describeInstance(live);
  if (!i) throw awsPermanent('AwsNotFound', `RDS instance ${live} (aws.rds.instance) does not exist`);
  return withOverrides(fromInstance(i), rds.restore);
}

/**
 * Once a restored copy is the service's database: the source's deletion protection, Enhanced Monitoring and
 * backup retention (ModifyDBInstance / ModifyDBCluster, applied immediately), and the runbook:kind = live tag (the
 * IAM policy lets the worker delete only drill and restore copies). Idempotent: a copy already tagged live is left
 * alone. A copy that is still modifying is a retryable Error.
 */
export async function promoteRestored(ctx: AwsContext, id: string): Promise<void> {
  const calls = rdsCalls(ctx);
  const kind = calls.kindOf(ctx.spec);
  const rds = ctx.spec.rds;
  if (!rds) return;
  const db = await kind.describe(id);
  if (!db?.arn || db.tags[TAG.kind] === LIVE_KIND) return;
  const settings = await restoreSettings(ctx, calls, rds);
  const busy = (err: unknown): never => {
    if (classifyAwsError(err) === 'conflict') {
      throw notYet(`RDS ${kind.noun} ${id} cannot be modified yet: ${(err as Error).message}`);
    }
    throw err;
  };
  const stillBusy = clusterBusy(`RDS cluster ${id} cannot be modified yet`);
  const client = ctx.clients.rds;
  const instanceId = kind.noun === 'cluster' ? writerOf(id) : id;
  if (kind.noun === 'cluster') {
    await recreateReaders(ctx, calls, db, settings.readers ?? []);
    await awsCall(
      'rds:ModifyDBCluster',
      `RDS cluster ${id}`,
      () =>
        client
          .send(
            new ModifyDBClusterCommand(
              defined({
                DBClusterIdentifier: id,
                ApplyImmediately: true,
                DeletionProtection: settings.deletionProtection,
                BackupRetentionPeriod: settings.backupRetentionDays,
              }),
            ),
          )
          .catch(stillBusy),
      ['conflict'],
    ).catch(busy);
  }
  await awsCall(
    'rds:ModifyDBInstance',
    `RDS instance ${instanceId}`,
    () =>
      client.send(
        new ModifyDBInstanceCommand(
          defined({
            DBInstanceIdentifier: instanceId,
            ApplyImmediately: true,
            ...(kind.noun === 'instance'
              ? {
                  DeletionProtection: settings.deletionProtection,
                  BackupRetentionPeriod: settings.backupRetentionDays,
                }
              : {}),
            MonitoringInterval: settings.monitoringIntervalS,
            MonitoringRoleArn: settings.monitoringRoleArn,
          }),
        ),
      ),
    ['conflict'],
  ).catch(busy);
  const live = tagList({ [TAG.kind]: LIVE_KIND });
  if (kind.noun === 'cluster') {
    const writer = await calls.describeInstance(instanceId);
    const writerArn = writer?.DBInstanceArn;
    if (writerArn) {
      await awsCall('rds:AddTagsToResource', `RDS instance ${instanceId}`, () =>
        client.send(new AddTagsToResourceCommand({ ResourceName: writerArn, Tags: live })),
      );
    }
  }
  const arn = db.arn;
  await awsCall('rds:AddTagsToResource', `RDS ${kind.noun} ${id}`, () =>
    client.send(new AddTagsToResourceCommand({ ResourceName: arn, Tags: live })),
  );
}

/**
 * The service's cluster's readers, created again on the restored cluster (same class, promotion tier, zone and
 * parameter group), tagged live like it: its failover targets and reader endpoint. They are not waited for: the
 * service already runs on the writer. A reader that exists already (a retried attempt) is left as it is. A cluster
 * that does not take instances yet is a retryable Error.
 */
async function recreateReaders(ctx: AwsContext, calls: RdsCalls, db: RdsDb, readers: ReaderSettings[]) {
  const tags = tagList({
    ...Object.fromEntries(Object.entries(db.tags).filter(([key]) => key.startsWith('runbook:'))),
    [TAG.kind]: LIVE_KIND,
  });
  for (const [index, reader] of readers.entries()) {
    const id = readerOf(db.id, index);
    if (await calls.describeInstance(id)) continue;
    try {
      await awsCall(
        'rds:CreateDBInstance',
        `RDS instance ${id} (a reader of cluster ${db.id})`,
        () =>
          ctx.clients.rds
            .send(
              new CreateDBInstanceCommand(
                defined({
                  DBInstanceIdentifier: id,
                  DBClusterIdentifier: db.id,
                  Engine: db.engine ?? 'aurora-postgresql',
                  DBInstanceClass: reader.instanceClass,
                  PromotionTier: reader.promotionTier,
                  AvailabilityZone: reader.availabilityZone,
                  DBParameterGroupName: reader.parameterGroup,
                  PubliclyAccessible: reader.publiclyAccessible ?? false,
                  Tags: tags,
                }),
              ),
            )
            .catch(clusterBusy(`RDS cluster ${db.id} does not take its reader instance ${id} yet`)),
        ['conflict'],
      );
    } catch (err) {
      if (classifyAwsError(err) !== 'conflict') throw err;
      if (!(await calls.describeInstance(id))) throw err;
    }
  }
}

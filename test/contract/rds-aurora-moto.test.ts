import assert from 'node:assert/strict';
import { DescribeSubnetsCommand, EC2Client } from '@aws-sdk/client-ec2';
import {
  CreateDBClusterCommand,
  CreateDBInstanceCommand,
  CreateDBSubnetGroupCommand,
  DescribeDBClustersCommand,
  DescribeDBClusterSnapshotsCommand,
  DescribeDBInstancesCommand,
  RDSClient,
} from '@aws-sdk/client-rds';
import type { ManifestStore } from '../../src/orchestrator-store/manifests';
import { awsClients, realTime, TAG, type AwsContext } from '../../src/platforms/aws-ecs/context';
import type { FingerprintMode } from '../../src/platforms/aws-ecs/rds-manifest';
import { createRdsSnapshotStore } from '../../src/platforms/aws-ecs/rds-snapshot-store';
import type { SnapshotManifest } from '../../src/platforms/types';
import type { AwsEcsSpec } from '../../src/shared/service-plan';
import { motoCredentials, startMoto, type MotoServer, withMotoCredentials } from '../helpers/moto';

/**
 * The RDS snapshot store on an Aurora PostgreSQL cluster (aws.rds.cluster) against moto_server with the real RDS
 * client: a DB cluster snapshot with runbook's tags, a restore into a new drill cluster with its writer instance
 * `<cluster>-1` of aws.rds.drill's class, polled until both are available, and the drill cluster deleted (writer
 * first) while the service's own cluster stays.
 *
 * What moto cannot show, and where it is covered: moto runs no databases, so the live figures here are given
 * (deps.live; over a real PostgreSQL in rds-on-postgres.test.ts); cluster snapshots and restores are `available` at
 * once (creating -> available polls, a writer the cluster does not take yet, the writer endpoint in the swap: in
 * rds.unit.test.ts, "takes a DB cluster snapshot, polls it creating -> available ...", "retries (a plain Error) while
 * the restored cluster does not take its writer instance yet", "swaps in the restored cluster's writer endpoint ...").
 */
describe('RDS snapshot store on an Aurora cluster against moto', function () {
  this.timeout(120_000);
  const region = motoCredentials.AWS_REGION;
  let restoreEnv: (() => void) | undefined;
  let moto: MotoServer;
  let rds: RDSClient;

  before(async () => {
    moto = await startMoto();
    restoreEnv = withMotoCredentials();
    const config = { region, endpoint: moto.endpoint };
    rds = new RDSClient(config);
    const ec2 = new EC2Client(config);
    const subnets = ((await ec2.send(new DescribeSubnetsCommand({}))).Subnets ?? []).map((s) => s.SubnetId!);
    ec2.destroy();
    await rds.send(
      new CreateDBSubnetGroupCommand({
        DBSubnetGroupName: 'drill-subnets',
        DBSubnetGroupDescription: 'drills',
        SubnetIds: subnets.slice(0, 2),
      }),
    );
    await rds.send(
      new CreateDBClusterCommand({
        DBClusterIdentifier: 'shop-aurora',
        Engine: 'aurora-postgresql',
        EngineVersion: '15.4',
        MasterUsername: 'shop',
        MasterUserPassword: 'not-a-real-password',
        DatabaseName: 'shop',
      }),
    );
    await rds.send(
      new CreateDBInstanceCommand({
        DBInstanceIdentifier: 'shop-aurora-1',
        DBClusterIdentifier: 'shop-aurora',
        Engine: 'aurora-postgresql',
        DBInstanceClass: 'db.r6g.large',
      }),
    );
  });

  after(async () => {
    rds?.destroy();
    await moto?.stop();
    restoreEnv?.();
  });

  it('takes a cluster snapshot, restores it into a drill cluster with its writer, and deletes only the drill', async () => {
    const spec = {
      region,
      endpoint: moto.endpoint,
      rds: {
        cluster: 'shop-aurora',
        database: 'shop',
        urlEnv: 'SHOP_DATABASE_URL',
        drill: { subnetGroup: 'drill-subnets', securityGroups: [], instanceClass: 'db.r6g.large' },
        pollIntervalMs: 10,
      },
    } as unknown as AwsEcsSpec;
    const ctx = {
      spec,
      clients: awsClients(region, moto.endpoint),
      resolveAddress: (host: string, port: number) => ({ host, port }),
      env: { SHOP_DATABASE_URL: 'postgres://shop:secret@shop-aurora.cluster-x.us-east-1.rds.amazonaws.com:5432/shop' },
      pgBinDir: '',
      isRunning: async () => true,
      ...realTime,
      activity: () => ({ workflowId: 'drill-shop-prod-1', log: () => undefined }),
    } as unknown as AwsContext;
    const saved = new Map<string, SnapshotManifest>();
    const manifests: ManifestStore = {
      put: async (m) => void saved.set(m.snapshotId, m),
      get: async (id) => saved.get(id),
      list: async () => [...saved.values()],
    };
    const live = async (_url: string, _mode: FingerprintMode) => ({
      tables: [{ table: 'public.items', rows: 3, checksum: '' }],
      migrationVersion: '001_init',
      serverVersion: '15.4',
    });
    const store = createRdsSnapshotStore(ctx, manifests, { live });
    const snapshotId = 'shop-prod-drill-1a2b3c4d';

    const manifest = await store.take({
      snapshotId,
      service: 'shop',
      environment: 'prod',
      database: 'shop',
      workflowId: 'drill-shop-prod-1',
    });
    assert.equal(manifest.location.startsWith('rds:arn:aws:rds:'), true, manifest.location);
    const [snapshot] =
      (await rds.send(new DescribeDBClusterSnapshotsCommand({ DBClusterSnapshotIdentifier: snapshotId })))
        .DBClusterSnapshots ?? [];
    assert.equal(snapshot?.DBClusterIdentifier, 'shop-aurora');
    const snapshotTags = Object.fromEntries((snapshot?.TagList ?? []).map((t) => [t.Key, t.Value]));
    assert.equal(snapshotTags[TAG.service], 'shop');
    assert.equal(snapshotTags[TAG.kind], 'drill');

    const started = await store.restore(snapshotId, 'shop_drill_1a2b3c4d', { jobs: 1 }, () => undefined);
    assert.equal((started as { ready?: boolean } | undefined)?.ready, false, 'RDS restores on its own: polled');
    let status = await store.restoreStatus!('shop_drill_1a2b3c4d');
    for (let i = 0; !status.ready && i < 50; i++) status = await store.restoreStatus!('shop_drill_1a2b3c4d');
    assert.equal(status.ready, true, status.detail);
    const [drill] =
      (await rds.send(new DescribeDBClustersCommand({ DBClusterIdentifier: 'shop-drill-1a2b3c4d' }))).DBClusters ?? [];
    assert.equal(drill?.Engine, 'aurora-postgresql');
    const [writer] =
      (await rds.send(new DescribeDBInstancesCommand({ DBInstanceIdentifier: 'shop-drill-1a2b3c4d-1' }))).DBInstances ??
      [];
    assert.equal(writer?.DBClusterIdentifier, 'shop-drill-1a2b3c4d');
    assert.equal(writer?.DBInstanceClass, 'db.r6g.large');

    for (let i = 0; i < 50; i++) {
      try {
        await store.dropDatabase('shop_drill_1a2b3c4d');
        const left = (await rds.send(new DescribeDBClustersCommand({}))).DBClusters ?? [];
        if (!left.some((c) => c.DBClusterIdentifier === 'shop-drill-1a2b3c4d')) break;
      } catch (err) {
        if ((err as { nonRetryable?: boolean }).nonRetryable) throw err; // retryable: the cluster still has its writer
      }
    }
    const clusters = ((await rds.send(new DescribeDBClustersCommand({}))).DBClusters ?? []).map(
      (c) => c.DBClusterIdentifier,
    );
    assert.deepEqual(clusters, ['shop-aurora']);
    const instances = ((await rds.send(new DescribeDBInstancesCommand({}))).DBInstances ?? []).map(
      (d) => d.DBInstanceIdentifier,
    );
    assert.deepEqual(instances, ['shop-aurora-1']);
    await assert.rejects(store.dropDatabase('shop'), /refusing to delete RDS cluster shop-aurora/);
  });
});

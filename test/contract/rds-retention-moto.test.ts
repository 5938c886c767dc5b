import assert from 'node:assert/strict';
import {
  CreateDBInstanceCommand,
  CreateDBSnapshotCommand,
  DescribeDBSnapshotsCommand,
  RDSClient,
} from '@aws-sdk/client-rds';
import { awsClients, realTime, TAG, type AwsContext } from '../../src/platforms/aws-ecs/context';
import { RDS_TAG, rdsCalls } from '../../src/platforms/aws-ecs/rds-kinds';
import { pruneSnapshots } from '../../src/platforms/aws-ecs/rds-retention';
import type { AwsEcsSpec } from '../../src/shared/service-plan';
import { motoCredentials, startMoto, type MotoServer, withMotoCredentials } from '../helpers/moto';

/**
 * Snapshot retention (aws.rds.retention) against moto_server with the real RDS client: DescribeDBSnapshots of the
 * account's manual snapshots, their tags (ListTagsForResource), the instances' tags, and DeleteDBSnapshot.
 *
 * What moto does, and what it cannot (found by running it):
 * - Snapshots are `available` at once, with a SnapshotCreateTime to the millisecond: the order of creation here is
 *   the order retention reads. A snapshot still `creating`, and one whose DeleteDBSnapshot fails (kept, logged, the
 *   step not failed), are in test/platforms/aws-ecs/rds.unit.test.ts.
 * - moto has no manual-snapshot quota (no DescribeAccountAttributes): doctor's quota check is in rds.unit.test.ts.
 * - maxAge needs a clock that moves by days: rds.unit.test.ts ("... maxAge ...") with the fake clock.
 */
describe('RDS snapshot retention against moto', function () {
  this.timeout(120_000);
  const region = motoCredentials.AWS_REGION;
  let restoreEnv: (() => void) | undefined;
  let moto: MotoServer;
  let rds: RDSClient;

  before(async () => {
    moto = await startMoto();
    restoreEnv = withMotoCredentials();
    rds = new RDSClient({ region, endpoint: moto.endpoint });
  });

  after(async () => {
    rds?.destroy();
    await moto?.stop();
    restoreEnv?.();
  });

  const instance = (id: string, tags: Record<string, string> = {}) =>
    rds.send(
      new CreateDBInstanceCommand({
        DBInstanceIdentifier: id,
        Engine: 'postgres',
        EngineVersion: '15.8',
        DBInstanceClass: 'db.t4g.micro',
        AllocatedStorage: 20,
        MasterUsername: 'shop',
        MasterUserPassword: 'not-a-real-password',
        Tags: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })),
      }),
    );

  it("deletes the oldest of the service's snapshots beyond keep, and nothing else", async () => {
    await instance('shop-db');
    await instance('cart-db');
    const snapshots: string[] = [];
    const take = async (id: string, db: string, tags: Record<string, string>) => {
      await rds.send(
        new CreateDBSnapshotCommand({
          DBSnapshotIdentifier: id,
          DBInstanceIdentifier: db,
          Tags: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })),
        }),
      );
      snapshots.push(id);
    };
    const shop = (kind: string, workflow: string) => ({
      [TAG.service]: 'shop',
      [TAG.environment]: 'prod',
      [TAG.kind]: kind,
      [TAG.workflow]: workflow,
    });
    // Oldest first.
    await take('shop-prod-pre-migrate-00000001', 'shop-db', shop('pre-migrate', 'deploy-1'));
    await take('shop-prod-drill-00000002', 'shop-db', shop('drill', 'drill-2'));
    await take('shop-prod-pre-migrate-00000003', 'shop-db', shop('pre-migrate', 'deploy-3'));
    await take('shop-prod-drill-00000004', 'shop-db', shop('drill', 'drill-4'));
    await take('shop-prod-pre-restore-00000005', 'shop-db', shop('pre-restore', 'rollback-5'));
    await take('shop-staging-pre-migrate-00000006', 'shop-db', {
      ...shop('pre-migrate', 'deploy-6'),
      [TAG.environment]: 'staging',
    });
    await take('cart-prod-pre-migrate-00000007', 'cart-db', {
      ...shop('pre-migrate', 'deploy-7'),
      [TAG.service]: 'cart',
    });
    await take('by-hand-00000008', 'shop-db', {});
    await take('shop-prod-pre-migrate-00000009', 'shop-db', shop('pre-migrate', 'deploy-9'));
    await take('shop-prod-pre-migrate-00000010', 'shop-db', shop('pre-migrate', 'deploy-10'));
    // A drill's copy restored from 00000003 still exists, and the drill that took 00000004 still runs.
    await instance('shop-db-drill-3', { [RDS_TAG.snapshot]: 'shop-prod-pre-migrate-00000003', [TAG.kind]: 'drill' });
    const running = new Set(['drill-4']);

    const spec = {
      region,
      endpoint: moto.endpoint,
      rds: {
        instance: 'shop-db',
        database: 'shop',
        urlEnv: 'SHOP_DATABASE_URL',
        pollIntervalMs: 10,
        retention: { keep: 2 },
      },
    } as unknown as AwsEcsSpec;
    const ctx = {
      spec,
      clients: awsClients(region, moto.endpoint),
      isRunning: async (id: string) => running.has(id),
      ...realTime,
      activity: () => undefined,
    } as unknown as AwsContext;

    const result = await pruneSnapshots(ctx, rdsCalls(ctx), {
      service: 'shop',
      environment: 'prod',
      keepId: 'shop-prod-pre-migrate-00000010',
    });

    assert.deepEqual(result.deleted, ['shop-prod-pre-migrate-00000001', 'shop-prod-drill-00000002']);
    assert.deepEqual(result.kept, [
      { id: 'shop-prod-pre-migrate-00000003', why: 'an RDS restore made from it exists' },
      { id: 'shop-prod-drill-00000004', why: 'its workflow drill-4 still runs' },
    ]);
    const left = ((await rds.send(new DescribeDBSnapshotsCommand({ SnapshotType: 'manual' }))).DBSnapshots ?? [])
      .map((s) => s.DBSnapshotIdentifier)
      .sort();
    assert.deepEqual(left, snapshots.filter((id) => !result.deleted.includes(id)).sort());
  });
});

import assert from 'node:assert/strict';
import { DescribeSubnetsCommand, EC2Client } from '@aws-sdk/client-ec2';
import pg from 'pg';
import { CreateDBInstanceCommand, CreateDBSubnetGroupCommand, RDSClient } from '@aws-sdk/client-rds';
import type { ManifestStore } from '../../src/orchestrator-store/manifests';
import { awsClients, realTime, type AwsContext } from '../../src/platforms/aws-ecs/context';
import { createRdsSnapshotStore } from '../../src/platforms/aws-ecs/rds-snapshot-store';
import type { SnapshotManifest } from '../../src/platforms/types';
import type { AwsEcsSpec } from '../../src/shared/service-plan';
import { motoCredentials, startMoto, type MotoServer, withMotoCredentials } from '../helpers/moto';
import { startPgFixture, type PgFixture } from '../helpers/pg-fixture';

/**
 * A restore whose copy differs from the live database, so that the manifest comparison is really exercised: the RDS
 * calls go to moto_server (snapshot, restore into a drill instance, polled), and the two databases are two real
 * PostgreSQL servers: the live one the worker's URL names, and the "restored copy", where the worker is sent for the
 * drill instance's endpoint (AwsContext.resolveAddress), holding other rows than the snapshot's manifest.
 *
 * What moto cannot show: moto copies no data, so what the copy holds is set by the test (here, on purpose, not what
 * the snapshot holds); a restore still in progress or one that fails is in rds.unit.test.ts.
 */
describe('RDS restore whose copy differs from the live database (moto + two PostgreSQL servers)', function () {
  this.timeout(180_000);
  const region = motoCredentials.AWS_REGION;
  let restoreEnv: (() => void) | undefined;
  let moto: MotoServer;
  let rds: RDSClient;
  let live: PgFixture;
  let copy: PgFixture;

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
      new CreateDBInstanceCommand({
        DBInstanceIdentifier: 'shop-db',
        Engine: 'postgres',
        EngineVersion: '15.8',
        DBInstanceClass: 'db.t4g.micro',
        AllocatedStorage: 20,
        MasterUsername: 'shop',
        MasterUserPassword: 'not-a-real-password',
        DBName: 'shop',
      }),
    );
    live = await startPgFixture();
    copy = await startPgFixture();
    for (const server of [live, copy]) {
      await server.query('postgres', 'CREATE DATABASE shop');
      await server.query('shop', 'CREATE TABLE items (id int PRIMARY KEY, name text)');
    }
    await live.query('shop', "INSERT INTO items SELECT i, 'item ' || i FROM generate_series(1, 100) i");
    await copy.query('shop', "INSERT INTO items SELECT i, 'item ' || i FROM generate_series(1, 60) i");
    // A restored copy keeps the source's credentials: the copy's server takes the live one's password (from here on,
    // onCopy reaches it with them).
    const credentials = new URL(live.urlFor('postgres'));
    await copy.query(
      'postgres',
      `ALTER USER ${credentials.username} PASSWORD '${decodeURIComponent(credentials.password)}'`,
    );
  });

  /** Runs `sql` on the copy's database with the live database's credentials. */
  async function onCopy(sql: string): Promise<void> {
    const url = new URL(live.urlFor('shop'));
    const server = new URL(copy.urlFor('shop'));
    url.port = server.port;
    const client = new pg.Client({ connectionString: url.toString() });
    await client.connect();
    try {
      await client.query(sql);
    } finally {
      await client.end();
    }
  }

  after(async function () {
    this.timeout(60_000);
    rds?.destroy();
    await moto?.stop();
    await live?.stop();
    await copy?.stop();
    restoreEnv?.();
  });

  it('reports the differences, saves no verified manifest, and verifies the snapshot on a copy that matches', async () => {
    const copyServer = new URL(copy.urlFor('shop'));
    const spec = {
      region,
      endpoint: moto.endpoint,
      rds: {
        instance: 'shop-db',
        database: 'shop',
        urlEnv: 'SHOP_DATABASE_URL',
        drill: { subnetGroup: 'drill-subnets', securityGroups: [], instanceClass: 'db.t4g.micro' },
        pollIntervalMs: 10,
      },
    } as unknown as AwsEcsSpec;
    const ctx = {
      spec,
      clients: awsClients(region, moto.endpoint),
      // Every RDS endpoint but the live URL's (which the worker's environment names) is the copy's server.
      resolveAddress: () => ({ host: copyServer.hostname, port: Number(copyServer.port) }),
      env: { SHOP_DATABASE_URL: live.urlFor('shop') },
      pgBinDir: '',
      isRunning: async () => true,
      ...realTime,
      activity: () => ({ workflowId: 'drill-shop-prod-1', log: () => undefined }),
    } as unknown as AwsContext;
    const saved = new Map<string, SnapshotManifest>();
    const manifests: ManifestStore = {
      put: async (m) => void saved.set(m.snapshotId, structuredClone(m)),
      get: async (id) => saved.get(id),
      list: async () => [...saved.values()],
    };
    const store = createRdsSnapshotStore(ctx, manifests);
    const snapshotId = 'shop-prod-drill-1a2b3c4d';
    const manifest = await store.take({
      snapshotId,
      service: 'shop',
      environment: 'prod',
      database: 'shop',
      workflowId: 'drill-shop-prod-1',
    });
    assert.deepEqual(
      manifest.tables.map((t) => [t.table, t.rows]),
      [['public.items', 100]],
    );
    await store.restore(snapshotId, 'shop_drill_1a2b3c4d', { jobs: 1 }, () => undefined);
    let status = await store.restoreStatus!('shop_drill_1a2b3c4d');
    for (let i = 0; !status.ready && i < 50; i++) status = await store.restoreStatus!('shop_drill_1a2b3c4d');
    assert.equal(status.ready, true, status.detail);

    const differs = await store.compare('shop_drill_1a2b3c4d', manifest);
    assert.equal(differs.ok, false);
    assert.deepEqual(differs.differences, [
      'public.items: 60 rows, the live database had 100 just before the snapshot (more than 10 apart)',
    ]);
    assert.equal(saved.get(snapshotId)?.claims, 'counts', 'a copy that differs verifies nothing');

    await onCopy("INSERT INTO items SELECT i, 'item ' || i FROM generate_series(61, 100) i");
    const matches = await store.compare('shop_drill_1a2b3c4d', manifest);
    assert.deepEqual(matches.differences, []);
    const verified = saved.get(snapshotId);
    assert.equal(verified?.claims, 'exact');
    assert.equal(verified?.verifiedOn, 'shop-drill-1a2b3c4d');

    await onCopy("UPDATE items SET name = 'changed' WHERE id = 7");
    const changed = await store.compare('shop_drill_1a2b3c4d', verified!);
    assert.equal(changed.ok, false);
    assert.deepEqual(changed.differences, ['public.items: same 100 rows but different contents (checksum differs)']);
  });
});

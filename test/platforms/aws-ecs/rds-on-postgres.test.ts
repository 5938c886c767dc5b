import assert from 'node:assert/strict';
import { CreateDBSnapshotCommand, DescribeDBInstancesCommand, DescribeDBSnapshotsCommand } from '@aws-sdk/client-rds';
import { mockClient } from 'aws-sdk-client-mock';
import pg from 'pg';
import { awsClients } from '../../../src/platforms/aws-ecs/context';
import { createRdsSnapshotStore } from '../../../src/platforms/aws-ecs/rds-snapshot-store';
import { createPgManifestStore } from '../../../src/orchestrator-store/manifests';
import { migrateOrchestratorDb } from '../../../src/orchestrator-store/orchestrator-db';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import type { ManifestComparison, SnapshotManifest } from '../../../src/platforms/types';
import { startPgFixture, type PgFixture } from '../../helpers/pg-fixture';
import { harness, instance, snapshot, SNAPSHOT, specWith, takeReq } from './rds-fixture';

/** The part of the RDS snapshot store that needs a database server; the rest is in rds.unit.test.ts (mocks only). */
describe('RDS snapshot store on a real PostgreSQL (manifests table, fingerprint over an endpoint)', function () {
  // Every client the store could reach is mocked, as in rds.unit.test.ts, so that nothing goes to AWS.
  const clients = awsClients('us-east-1');
  const rdsMock = mockClient(clients.rds);
  const mocks = [
    rdsMock,
    mockClient(clients.ecs),
    mockClient(clients.ssm),
    mockClient(clients.secrets),
    mockClient(clients.sts),
    mockClient(clients.elb),
  ];
  let fixture: PgFixture;
  let pool: pg.Pool;
  let database: string;

  before(async function () {
    this.timeout(120_000);
    fixture = await startPgFixture();
    pool = new pg.Pool({ connectionString: fixture.urlFor(await fixture.createDatabase('runbook')), max: 2 });
    database = await fixture.createDatabase('shop');
    await fixture.query(database, 'CREATE TABLE items (id int PRIMARY KEY, name text)');
    await fixture.query(database, "INSERT INTO items VALUES (1, 'a'), (2, 'b'), (3, 'c')");
  });

  beforeEach(() => {
    for (const mock of mocks) mock.reset();
  });

  after(async function () {
    this.timeout(60_000);
    for (const mock of mocks) mock.restore();
    await pool?.end();
    await fixture?.stop();
  });

  it('keeps manifests in snapshot_manifests and compares a restored instance with them', async () => {
    await migrateOrchestratorDb(pool);
    await migrateOrchestratorDb(pool);
    const manifests = createPgManifestStore(pool);
    const live = new URL(fixture.urlFor(database));
    const { ctx } = harness(specWith({ database }), {
      env: { SHOP_DATABASE_URL: live.toString() },
      // The "restored instance" is the same local database: moto runs no databases.
      resolveAddress: () => ({ host: live.hostname, port: Number(live.port) }),
    });
    rdsMock.on(CreateDBSnapshotCommand).resolves({ DBSnapshot: snapshot('creating') });
    rdsMock.on(DescribeDBSnapshotsCommand).resolves({ DBSnapshots: [snapshot('available')] });
    rdsMock.on(DescribeDBInstancesCommand).resolves({ DBInstances: [instance('shop-drill-1a2b3c4d', 'available')] });
    const store = createRdsSnapshotStore(ctx, manifests);

    const manifest = await store.take({ ...takeReq, database });
    assert.deepEqual(
      manifest.tables.map((t) => [t.table, t.rows]),
      [['public.items', 3]],
    );
    assert.match(manifest.serverVersion, /^\d+/);
    await manifests.put({ ...manifest, snapshotId: 'older', createdAtMs: manifest.createdAtMs - 1 });
    await manifests.put(manifest); // a retried activity saves it again
    assert.deepEqual(await manifests.get(SNAPSHOT), manifest);
    assert.deepEqual(
      (await manifests.list('shop', 'prod')).map((m) => m.snapshotId),
      [SNAPSHOT, 'older'],
    );
    assert.deepEqual(await manifests.list('shop', 'staging'), []);

    // Read from the live database before CreateDBSnapshot, the manifest claims counts (no checksums) ...
    assert.equal(manifest.claims, 'counts');
    assert.deepEqual(
      manifest.tables.map((t) => t.checksum),
      [''],
    );
    const first = await store.compare('shop_drill_1a2b3c4d', manifest);
    assert.equal(first.ok, true);
    assert.deepEqual(
      first.tables.map((t) => [t.table, t.rows]),
      [['public.items', 3]],
    );
    // ... and the first restored copy that matches them supplies the snapshot's exact (verified) manifest.
    const verified = await manifests.get(SNAPSHOT);
    assert.equal(verified?.claims, 'exact');
    assert.equal(verified?.verifiedOn, 'shop-drill-1a2b3c4d');
    assert.deepEqual(verified?.tables, first.tables);
    await fixture.query(database, "INSERT INTO items VALUES (4, 'written after the snapshot')");
    const after = await store.compare('shop_drill_1a2b3c4d', verified!);
    assert.equal(after.ok, false);
    assert.deepEqual(after.differences, ['public.items: 4 rows, snapshot has 3']);
  });

  it("resumes a restored copy's fingerprint from the last table an earlier attempt heartbeated", async () => {
    for (const table of ['a_first', 'b_second']) {
      await fixture.query(database, `CREATE TABLE ${table} (id int PRIMARY KEY)`);
      await fixture.query(database, `INSERT INTO ${table} SELECT generate_series(1, 5)`);
    }
    const live = new URL(fixture.urlFor(database));
    const { ctx } = harness(specWith({ database }), {
      env: { SHOP_DATABASE_URL: live.toString() },
      resolveAddress: () => ({ host: live.hostname, port: Number(live.port) }),
    });
    rdsMock.on(DescribeDBInstancesCommand).resolves({ DBInstances: [instance('shop-drill-1a2b3c4d', 'available')] });
    const store = createRdsSnapshotStore(ctx, createPgManifestStore(pool));
    const manifest = {
      snapshotId: SNAPSHOT,
      tables: [],
      migrationVersion: null,
      claims: 'exact',
    } as unknown as SnapshotManifest;
    const copy = 'shop_drill_1a2b3c4d';
    const quiet = { logger: new DefaultLogger('ERROR', () => {}) };

    // A first attempt heartbeats after each table what it has read so far ...
    const first = new MockActivityEnvironment(undefined, quiet);
    const beats: unknown[] = [];
    first.on('heartbeat', (d: unknown) => beats.push(d));
    const whole: ManifestComparison = await first.run(() => store.compare(copy, manifest));
    assert.deepEqual(
      whole.tables.map((t) => t.table),
      ['public.a_first', 'public.b_second', 'public.items'],
    );
    assert.deepEqual(
      beats.map((b) => (b as { done: { table: string }[] }).done.map((t) => t.table)),
      [['public.a_first'], ['public.a_first', 'public.b_second'], whole.tables.map((t) => t.table)],
    );
    assert.deepEqual(beats[0], { phase: 'fingerprint-copy', copy: 'shop-drill-1a2b3c4d', done: [whole.tables[0]] });

    // ... and a retried attempt takes those tables as read (the marked checksum proves it did not read a_first
    // again) and reads only the rest.
    const marked = { table: 'public.a_first', rows: 5, checksum: 'from-the-earlier-attempt' };
    const retried = new MockActivityEnvironment(
      { attempt: 2, heartbeatDetails: { phase: 'fingerprint-copy', copy: 'shop-drill-1a2b3c4d', done: [marked] } },
      quiet,
    );
    const again: unknown[] = [];
    retried.on('heartbeat', (d: unknown) => again.push(d));
    const resumed: ManifestComparison = await retried.run(() => store.compare(copy, manifest));
    assert.deepEqual(resumed.tables, [marked, whole.tables[1], whole.tables[2]]);
    assert.deepEqual(
      again.map((b) => (b as { done: { table: string }[] }).done.map((t) => t.table)),
      [
        ['public.a_first', 'public.b_second'],
        ['public.a_first', 'public.b_second', 'public.items'],
      ],
    );

    // Details of another copy (or of another phase) are not resumed from.
    const other = new MockActivityEnvironment(
      { attempt: 2, heartbeatDetails: { phase: 'fingerprint-copy', copy: 'shop-drill-99999999', done: [marked] } },
      quiet,
    );
    const restarted: ManifestComparison = await other.run(() => store.compare(copy, manifest));
    assert.deepEqual(restarted.tables, whole.tables);
  });
});

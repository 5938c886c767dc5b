import assert from 'node:assert/strict';
import {
  AddTagsToResourceCommand,
  DescribeAccountAttributesCommand,
  CreateDBClusterSnapshotCommand,
  CreateDBInstanceCommand,
  CreateDBSnapshotCommand,
  DBClusterNotFoundFault,
  DBClusterSnapshotAlreadyExistsFault,
  DBInstanceNotFoundFault,
  DBSnapshotAlreadyExistsFault,
  DeleteDBClusterCommand,
  DeleteDBInstanceCommand,
  DeleteDBSnapshotCommand,
  DescribeDBClusterSnapshotsCommand,
  DescribeDBClustersCommand,
  DescribeDBInstancesCommand,
  DescribeDBSnapshotsCommand,
  InvalidDBClusterStateFault,
  ModifyDBClusterCommand,
  ModifyDBInstanceCommand,
  ListTagsForResourceCommand,
  RestoreDBClusterFromSnapshotCommand,
  RestoreDBInstanceFromDBSnapshotCommand,
  type DBCluster,
  type DBInstance,
  type DBClusterSnapshot,
} from '@aws-sdk/client-rds';
import { DescribeListenersCommand, DescribeRulesCommand } from '@aws-sdk/client-elastic-load-balancing-v2';
import { GetCallerIdentityCommand } from '@aws-sdk/client-sts';
import {
  DescribeServicesCommand,
  DescribeTaskDefinitionCommand,
  RegisterTaskDefinitionCommand,
  UpdateServiceCommand,
} from '@aws-sdk/client-ecs';
import { GetSecretValueCommand, PutSecretValueCommand } from '@aws-sdk/client-secrets-manager';
import { GetParameterCommand, PutParameterCommand } from '@aws-sdk/client-ssm';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { mockClient } from 'aws-sdk-client-mock';
import { awsClients } from '../../../src/platforms/aws-ecs/context';
import { TAG } from '../../../src/platforms/aws-ecs/context';
import { instanceFor, RDS_TAG, writerOf } from '../../../src/platforms/aws-ecs/rds-kinds';
import { createRdsSnapshotStore } from '../../../src/platforms/aws-ecs/rds-snapshot-store';
import { promoteRestored, readerOf } from '../../../src/platforms/aws-ecs/rds-restore-settings';
import { createRdsSwap } from '../../../src/platforms/aws-ecs/rds-swap';
import { rdsUrlFor } from '../../../src/platforms/aws-ecs/rds-urls';
import type { FingerprintWithVersion } from '../../../src/pg/fingerprint';
import type { FingerprintMode } from '../../../src/platforms/aws-ecs/rds-manifest';
import { awsDoctorChecks } from '../../../src/platforms/aws-ecs/doctor';
import type { ManifestStore } from '../../../src/orchestrator-store/manifests';
import { PlatformError, type SnapshotManifest, type SnapshotProgress } from '../../../src/platforms/types';
import type { AwsEcsSpec, AwsRdsSpec } from '../../../src/shared/service-plan';
import { rejection } from './fixture';
import {
  harness,
  instance,
  LIVE_URL,
  ourTags,
  snapshot,
  SNAPSHOT,
  SNAPSHOT_ARN,
  specWith,
  takeReq,
  WORKFLOW,
} from './rds-fixture';

/** The clients fakeAwsContext() hands the code under test: mocked one by one, never the SDK classes, so that
 * other test files (the moto contract test) keep real clients. */
const testClients = awsClients('us-east-1');
const rdsMock = mockClient(testClients.rds);
const ecsMock = mockClient(testClients.ecs);
const ssmMock = mockClient(testClients.ssm);
const secretsMock = mockClient(testClients.secrets);
const stsMock = mockClient(testClients.sts);
const elbMock = mockClient(testClients.elb);

function memoryManifests(): ManifestStore & { saved: Map<string, SnapshotManifest> } {
  const saved = new Map<string, SnapshotManifest>();
  return {
    saved,
    async put(m) {
      saved.set(m.snapshotId, structuredClone(m));
    },
    async get(id) {
      return saved.get(id);
    },
    async list(service, environment) {
      return [...saved.values()]
        .filter((m) => m.service === service && m.environment === environment)
        .sort((a, b) => b.createdAtMs - a.createdAtMs);
    },
  };
}

const FINGERPRINT: FingerprintWithVersion = {
  tables: [{ table: 'public.items', rows: 3, checksum: 'abc' }],
  migrationVersion: '002_add_price',
  serverVersion: '16.4',
};

/** The store's pg readers, faked: the live database (with the mode asked) and restored copies (`copyTables`). */
function fakeFingerprint(log: string[] = [], copyTables?: Array<{ table: string; rows: number; checksum: string }>) {
  const urls: string[] = [];
  const modes: FingerprintMode[] = [];
  return {
    urls,
    modes,
    live: async (url: string, mode: FingerprintMode) => {
      urls.push(url);
      modes.push(mode);
      log.push('fingerprint');
      const fp = structuredClone(FINGERPRINT);
      const tables = fp.tables.map((t) => ({ ...t, checksum: mode === 'full' ? t.checksum : '' }));
      return { ...fp, serverVersion: fp.serverVersion ?? '', tables };
    },
    copy: async (url: string) => {
      urls.push(url);
      log.push('copy');
      const fp = structuredClone(FINGERPRINT);
      const tables = copyTables ?? fp.tables;
      return { ...fp, serverVersion: fp.serverVersion ?? '', tables, estimates: new Map<string, number>() };
    },
  };
}

const notFound = (id: string) =>
  new DBInstanceNotFoundFault({ message: `DBInstance ${id} not found.`, $metadata: { httpStatusCode: 404 } });

/** Awaits a rejection and returns it as the PlatformError the store throws (activities report its type). */
async function failure(promise: Promise<unknown>): Promise<PlatformError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof PlatformError, `expected a PlatformError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected a failure');
}

function inActivity(workflowId: string) {
  return new MockActivityEnvironment(
    { workflowExecution: { workflowId, runId: 'run-1' } },
    { logger: new DefaultLogger('ERROR', () => {}) },
  );
}

describe('RDS snapshot store and swap (aws-sdk-client-mock)', () => {
  beforeEach(() => {
    rdsMock.reset();
    ecsMock.reset();
    ssmMock.reset();
    secretsMock.reset();
    stsMock.reset();
    elbMock.reset();
  });

  after(() => {
    rdsMock.restore();
    ecsMock.restore();
    ssmMock.restore();
    secretsMock.restore();
    stsMock.restore();
    elbMock.restore();
  });

  describe('names and URLs', () => {
    it('maps database names to instance identifiers', () => {
      const spec = specWith();
      assert.equal(instanceFor(spec, 'shop'), 'shop-prod', 'the service database lives on aws.rds.instance');
      assert.equal(instanceFor(spec, 'shop_drill_1a2b3c4d'), 'shop-drill-1a2b3c4d');
      assert.equal(instanceFor(spec, 'Shop__restore-_9f8e7d6c'), 'shop-restore-9f8e7d6c');
      assert.equal(instanceFor(spec, '_1shop_'), 'db-1shop');
      assert.equal(instanceFor(spec, `s_${'x'.repeat(80)}`).length, 63);
      assert.throws(() => instanceFor({ ...spec, rds: undefined }, 'shop'), /NoRdsSettings|no rds block/);
    });

    it('builds the URL of another instance from its endpoint with the live credentials', async () => {
      rdsMock
        .on(DescribeDBInstancesCommand, { DBInstanceIdentifier: 'shop-drill-1a2b3c4d' })
        .resolves({ DBInstances: [instance('shop-drill-1a2b3c4d', 'available')] });
      const { ctx } = harness(specWith(), {
        resolveAddress: (host, port) => ({ host: host.startsWith('shop-drill') ? '10.0.0.7' : host, port: port + 1 }),
      });
      const urlFor = rdsUrlFor(ctx);
      assert.equal(await urlFor('shop'), LIVE_URL);
      assert.equal(await urlFor('shop_drill_1a2b3c4d'), 'postgres://shop:s3cret@10.0.0.7:5433/shop?sslmode=require');

      const bare = harness(specWith(), { env: {} });
      const missing = await failure(rdsUrlFor(bare.ctx)('shop'));
      assert.equal(missing.type, 'NoDatabaseUrl');
      assert.match(missing.message, /SHOP_DATABASE_URL/);
      assert.equal(missing.permanent, true);
    });
  });

  describe('take', () => {
    it('fingerprints, creates the snapshot, saves its manifest and polls creating -> available', async () => {
      const log: string[] = [];
      const fp = fakeFingerprint(log);
      rdsMock.on(CreateDBSnapshotCommand).callsFake(() => {
        log.push('create');
        return { DBSnapshot: snapshot('creating', { PercentProgress: 0 }) };
      });
      rdsMock
        .on(DescribeDBSnapshotsCommand)
        .resolvesOnce({ DBSnapshots: [snapshot('creating', { PercentProgress: 40 })] })
        .resolvesOnce({ DBSnapshots: [snapshot('creating', { PercentProgress: 90 })] })
        .resolves({ DBSnapshots: [snapshot('available', { PercentProgress: 100 })] });
      const manifests = memoryManifests();
      const { ctx, sleeps } = harness();
      const progress: SnapshotProgress[] = [];

      const manifest = await createRdsSnapshotStore(ctx, manifests, fp).take(takeReq, (p) => progress.push(p));

      assert.deepEqual(log, ['fingerprint', 'create'], 'the fingerprint is taken just before the snapshot');
      assert.deepEqual(fp.urls, [LIVE_URL]);
      const create = rdsMock.commandCalls(CreateDBSnapshotCommand)[0]?.args[0].input;
      assert.equal(create?.DBSnapshotIdentifier, SNAPSHOT);
      assert.equal(create?.DBInstanceIdentifier, 'shop-prod');
      assert.deepEqual(create?.Tags, ourTags);
      assert.deepEqual(manifest, {
        snapshotId: SNAPSHOT,
        service: 'shop',
        environment: 'prod',
        database: 'shop',
        workflowId: WORKFLOW,
        createdAtMs: Date.parse('2024-05-01T10:00:00Z'),
        location: `rds:${SNAPSHOT_ARN}`,
        bytes: 20 * 2 ** 30,
        sha256: '',
        tables: [{ table: 'public.items', rows: 3, checksum: '' }],
        migrationVersion: '002_add_price',
        serverVersion: '16.4',
        claims: 'counts',
        countTolerance: 0.01,
      });
      assert.deepEqual(fp.modes, ['counts'], "RDS's default fingerprint: counts, no checksum of the live database");
      assert.deepEqual(manifests.saved.get(SNAPSHOT), manifest);
      assert.deepEqual(
        progress.filter((p) => p.phase === 'creating').map((p) => (p as { percent?: number }).percent),
        [40, 90],
      );
      assert.equal(progress.at(-1)?.phase, 'done');
      assert.deepEqual(sleeps, [5_000, 5_000], 'polled every aws.rds.pollIntervalMs');
    });

    it('adopts a snapshot of the same workflow that already exists', async () => {
      const fp = fakeFingerprint();
      rdsMock
        .on(CreateDBSnapshotCommand)
        .rejects(new DBSnapshotAlreadyExistsFault({ message: 'already exists', $metadata: { httpStatusCode: 400 } }));
      rdsMock.on(DescribeDBSnapshotsCommand).resolves({ DBSnapshots: [snapshot('available')] });
      const manifests = memoryManifests();
      const progress: string[] = [];

      const manifest = await createRdsSnapshotStore(harness().ctx, manifests, fp).take(takeReq, (p) =>
        progress.push(p.phase),
      );

      assert.equal(manifest.location, `rds:${SNAPSHOT_ARN}`);
      assert.ok(manifests.saved.has(SNAPSHOT));
      assert.ok(progress.includes('adopted'));
      assert.equal(rdsMock.commandCalls(ListTagsForResourceCommand).length, 0, 'the TagList came with the snapshot');
    });

    it("refuses someone else's snapshot with the same id (SnapshotConflict, non-retryable)", async () => {
      rdsMock
        .on(CreateDBSnapshotCommand)
        .rejects(new DBSnapshotAlreadyExistsFault({ message: 'already exists', $metadata: { httpStatusCode: 400 } }));
      rdsMock.on(DescribeDBSnapshotsCommand).resolves({ DBSnapshots: [snapshot('available', { TagList: undefined })] });
      rdsMock.on(ListTagsForResourceCommand, { ResourceName: SNAPSHOT_ARN }).resolves({
        TagList: [
          { Key: TAG.service, Value: 'shop' },
          { Key: TAG.environment, Value: 'prod' },
          { Key: TAG.workflow, Value: 'deploy-shop-prod-41' },
        ],
      });
      const manifests = memoryManifests();

      const err = await failure(createRdsSnapshotStore(harness().ctx, manifests, fakeFingerprint()).take(takeReq));

      assert.equal(err.type, 'SnapshotConflict');
      assert.equal(err.permanent, true);
      assert.match(err.message, /deploy-shop-prod-41/);
      assert.equal(manifests.saved.size, 0, 'no manifest for a snapshot that is not ours');
    });

    it('fails at once with AwsAccessDenied naming the instance when CreateDBSnapshot is denied', async () => {
      rdsMock.on(CreateDBSnapshotCommand).rejects(
        Object.assign(new Error('User is not authorized to perform: rds:CreateDBSnapshot'), {
          name: 'AccessDenied',
          $fault: 'client',
          $metadata: { httpStatusCode: 403 },
        }),
      );
      const manifests = memoryManifests();

      const err = await failure(createRdsSnapshotStore(harness().ctx, manifests, fakeFingerprint()).take(takeReq));

      assert.equal(err.type, 'AwsAccessDenied');
      assert.equal(err.permanent, true);
      assert.match(err.message, /rds:CreateDBSnapshot on RDS instance shop-prod/);
      assert.match(err.message, /fix: grant the worker's IAM role/);
      assert.equal(manifests.saved.size, 0);
      assert.equal(rdsMock.commandCalls(DescribeDBSnapshotsCommand).length, 0);
    });

    it('fails with SnapshotFailed when RDS reports the snapshot failed', async () => {
      rdsMock.on(CreateDBSnapshotCommand).resolves({ DBSnapshot: snapshot('creating') });
      rdsMock.on(DescribeDBSnapshotsCommand).resolves({ DBSnapshots: [snapshot('failed')] });
      const err = await failure(
        createRdsSnapshotStore(harness().ctx, memoryManifests(), fakeFingerprint()).take(takeReq),
      );
      assert.equal(err.type, 'SnapshotFailed');
      assert.equal(err.permanent, true);
    });
  });

  describe('what a manifest of a live RDS database claims (issue 13 item 2)', () => {
    const counts = (rows: number, extra: Partial<SnapshotManifest> = {}): SnapshotManifest => ({
      ...takeReq,
      createdAtMs: 1,
      location: `rds:${SNAPSHOT_ARN}`,
      bytes: 0,
      sha256: '',
      tables: [{ table: 'public.items', rows, checksum: '' }],
      migrationVersion: '002_add_price',
      serverVersion: '16.4',
      claims: 'counts',
      countTolerance: 0.01,
      ...extra,
    });
    const copyOf = (rows: number, checksum = 'c0ffee') => [{ table: 'public.items', rows, checksum }];

    beforeEach(() => {
      rdsMock
        .on(DescribeDBInstancesCommand, { DBInstanceIdentifier: 'shop-drill-1a2b3c4d' })
        .resolves({ DBInstances: [instance('shop-drill-1a2b3c4d', 'available')] });
    });

    it('takes fingerprint: full only when asked, and then claims exact checksums', async () => {
      rdsMock.on(CreateDBSnapshotCommand).resolves({ DBSnapshot: snapshot('creating') });
      rdsMock.on(DescribeDBSnapshotsCommand).resolves({ DBSnapshots: [snapshot('available')] });
      const fp = fakeFingerprint();
      const store = createRdsSnapshotStore(harness(specWith({ fingerprint: 'full' })).ctx, memoryManifests(), fp);
      const manifest = await store.take(takeReq);
      assert.deepEqual(fp.modes, ['full']);
      assert.equal(manifest.claims, 'exact');
      assert.equal(manifest.tables[0]?.checksum, 'abc');
      assert.equal(manifest.countTolerance, undefined);
    });

    it('a copy whose rows moved within the tolerance passes a counts manifest, and becomes its verified manifest', async () => {
      const manifests = memoryManifests();
      const manifest = counts(1000);
      await manifests.put(manifest);
      // 1000 rows counted on the live database; 1008 were in the storage CreateDBSnapshot saw (written in between).
      const store = createRdsSnapshotStore(harness().ctx, manifests, fakeFingerprint([], copyOf(1008)));
      const result = await store.compare('shop_drill_1a2b3c4d', manifest);
      assert.deepEqual(result.differences, []);
      assert.equal(result.ok, true);
      const verified = manifests.saved.get(SNAPSHOT);
      assert.equal(verified?.claims, 'exact');
      assert.equal(verified?.verifiedOn, 'shop-drill-1a2b3c4d');
      assert.deepEqual(verified?.tables, copyOf(1008), 'the exact figures come from the snapshot itself');

      // A later restore of the same snapshot (e.g. rollback --restore-db) is held to the copy's checksums.
      const second = createRdsSnapshotStore(harness().ctx, manifests, fakeFingerprint([], copyOf(1008, 'different')));
      const again = await second.compare('shop_drill_1a2b3c4d', verified!);
      assert.equal(again.ok, false);
      assert.deepEqual(again.differences, ['public.items: same 1008 rows but different contents (checksum differs)']);
    });

    it('fails a counts manifest beyond the tolerance, on a missing table and on another migration version', async () => {
      const manifests = memoryManifests();
      const store = (tables: Array<{ table: string; rows: number; checksum: string }>) =>
        createRdsSnapshotStore(harness().ctx, manifests, fakeFingerprint([], tables));
      const far = await store(copyOf(1100)).compare('shop_drill_1a2b3c4d', counts(1000));
      assert.equal(far.ok, false);
      assert.match(
        far.differences[0] ?? '',
        /public\.items: 1100 rows, the live database had 1000 .*more than 10 apart/,
      );
      assert.equal(manifests.saved.size, 0, 'a copy that does not match is never the verified manifest');

      const gone = await store([]).compare('shop_drill_1a2b3c4d', counts(5));
      assert.deepEqual(gone.differences, ['public.items: missing, the snapshot has it']);

      const migrated = await store(copyOf(5)).compare(
        'shop_drill_1a2b3c4d',
        counts(5, { migrationVersion: '001_init' }),
      );
      assert.deepEqual(migrated.differences, ['migration version: 002_add_price, snapshot has 001_init']);
    });

    it('a schema manifest (fingerprint: none) checks the tables and the migration version only', async () => {
      const store = createRdsSnapshotStore(harness().ctx, memoryManifests(), fakeFingerprint([], copyOf(99_999)));
      const result = await store.compare('shop_drill_1a2b3c4d', counts(0, { claims: 'schema' }));
      assert.equal(result.ok, true);
    });

    it('counts on the live database at the bounded cost of the counts mode (never a full scan of production)', async () => {
      const fp = fakeFingerprint();
      await createRdsSnapshotStore(harness().ctx, memoryManifests(), fp).fingerprint('shop');
      assert.deepEqual(fp.modes, ['counts']);
      assert.deepEqual(fp.urls, [LIVE_URL]);
    });
  });

  describe('snapshot retention (aws.rds.retention, issue 13 item 6)', () => {
    const DAY = 86_400_000;
    const NOW = 1_700_000_000_000;
    const tagged = (id: string, extra: Record<string, string> = {}) =>
      Object.entries({
        [TAG.service]: 'shop',
        [TAG.environment]: 'prod',
        [TAG.workflow]: `deploy-${id}`,
        [TAG.kind]: 'pre-migrate',
        ...extra,
      }).map(([Key, Value]) => ({ Key, Value }));
    const old = (id: string, ageDays: number, tags = tagged(id), status = 'available') => ({
      DBSnapshotIdentifier: id,
      DBInstanceIdentifier: 'shop-prod',
      DBSnapshotArn: `arn:aws:rds:us-east-1:123456789012:snapshot:${id}`,
      Status: status,
      SnapshotCreateTime: new Date(NOW - ageDays * DAY),
      TagList: tags,
    });

    function takeWithRetention(retention: AwsRdsSpec['retention'], manual: ReturnType<typeof old>[]) {
      rdsMock.on(CreateDBSnapshotCommand).resolves({ DBSnapshot: snapshot('creating') });
      rdsMock.on(DescribeDBSnapshotsCommand, { DBSnapshotIdentifier: SNAPSHOT }).resolves({
        DBSnapshots: [snapshot('available')],
      });
      rdsMock
        .on(DescribeDBSnapshotsCommand, { SnapshotType: 'manual' })
        .resolvesOnce({ DBSnapshots: manual.slice(0, 3), Marker: 'page-2' })
        .resolves({ DBSnapshots: manual.slice(3) });
      rdsMock.on(DescribeDBInstancesCommand).resolves({
        DBInstances: [
          instance('shop-prod', 'available'),
          instance('shop-drill-99', 'creating', { [RDS_TAG.snapshot]: 'shop-prod-pre-migrate-00000003' }),
        ],
      });
      rdsMock.on(DeleteDBSnapshotCommand).resolves({});
      const h = harness(specWith({ retention }));
      return { h, store: createRdsSnapshotStore(h.ctx, memoryManifests(), fakeFingerprint()) };
    }

    const deleted = () =>
      rdsMock.commandCalls(DeleteDBSnapshotCommand).map((c) => c.args[0].input.DBSnapshotIdentifier);

    it("deletes the oldest of the service's snapshots beyond keep, and nothing else", async () => {
      const manual = [
        old(SNAPSHOT, 0, ourTags),
        old('shop-prod-pre-migrate-00000001', 40),
        old('shop-prod-pre-migrate-00000002', 30),
        old('shop-prod-pre-migrate-00000003', 20), // a drill is restoring it
        old('shop-prod-drill-00000004', 10, tagged('d4', { [TAG.kind]: 'drill' })),
        old('shop-prod-pre-restore-00000005', 50, tagged('r5', { [TAG.kind]: 'pre-restore' })), // a restore's safety copy
        old('shop-staging-pre-migrate-00000006', 60, tagged('s6', { [TAG.environment]: 'staging' })),
        old('other-prod-pre-migrate-00000007', 60, tagged('o7', { [TAG.service]: 'other' })),
        old('hand-made', 90, []),
        old('shop-prod-pre-migrate-00000008', 45, tagged('running-deploy')),
      ];
      const { h, store } = takeWithRetention({ keep: 2 }, manual);
      h.running.add('deploy-running-deploy');
      await store.take(takeReq);
      assert.deepEqual(deleted(), ['shop-prod-pre-migrate-00000001', 'shop-prod-pre-migrate-00000002']);
    });

    it('with maxAge keeps whatever is younger, with keep and maxAge both must be exceeded', async () => {
      const manual = [
        old(SNAPSHOT, 0, ourTags),
        old('shop-prod-pre-migrate-00000001', 40),
        old('shop-prod-pre-migrate-00000002', 30),
        old('shop-prod-pre-migrate-00000009', 5),
      ];
      const { store } = takeWithRetention({ keep: 1, maxAgeMs: 35 * DAY }, manual);
      await store.take(takeReq);
      assert.deepEqual(deleted(), ['shop-prod-pre-migrate-00000001']);
    });

    it('deletes nothing without aws.rds.retention, and a refused deletion does not fail the snapshot', async () => {
      const manual = [old(SNAPSHOT, 0, ourTags), old('shop-prod-pre-migrate-00000001', 400)];
      const { store } = takeWithRetention(undefined, manual);
      await store.take(takeReq);
      assert.deepEqual(deleted(), []);

      rdsMock.reset();
      const again = takeWithRetention({ keep: 1 }, manual);
      rdsMock.on(DeleteDBSnapshotCommand).rejects(
        Object.assign(new Error('not authorized to perform: rds:DeleteDBSnapshot'), {
          name: 'AccessDenied',
          $metadata: { httpStatusCode: 403 },
        }),
      );
      const manifest = await again.store.take(takeReq);
      assert.equal(manifest.snapshotId, SNAPSHOT);
      assert.deepEqual(deleted(), ['shop-prod-pre-migrate-00000001']);
    });
  });

  describe('get, list, verify', () => {
    it('only knows snapshots that still exist, newest first', async () => {
      const manifests = memoryManifests();
      const base = { ...takeReq, location: '', bytes: 0, sha256: '', tables: [], migrationVersion: null };
      await manifests.put({ ...base, snapshotId: 'old', createdAtMs: 1, serverVersion: '16' });
      await manifests.put({ ...base, snapshotId: 'new', createdAtMs: 3, serverVersion: '16' });
      await manifests.put({ ...base, snapshotId: 'gone', createdAtMs: 2, serverVersion: '16' });
      rdsMock.on(DescribeDBSnapshotsCommand).resolves({ DBSnapshots: [snapshot('available')] });
      rdsMock
        .on(DescribeDBSnapshotsCommand, { DBSnapshotIdentifier: 'gone' })
        .rejects(Object.assign(new Error('not found'), { name: 'DBSnapshotNotFoundFault', $fault: 'client' }));
      const store = createRdsSnapshotStore(harness().ctx, manifests, fakeFingerprint());

      assert.deepEqual(
        (await store.list('shop', 'prod')).map((m) => m.snapshotId),
        ['new', 'old'],
      );
      assert.equal(await store.get('gone'), undefined);
      assert.equal((await store.get('old'))?.snapshotId, 'old');
      assert.deepEqual(await store.verify('old'), { ok: true });
      assert.equal((await store.verify('gone')).ok, false);
    });
  });

  describe('restore', () => {
    const drillTarget = 'shop_drill_1a2b3c4d';
    const drillInstance = 'shop-drill-1a2b3c4d';

    async function storeWithManifest() {
      const manifests = memoryManifests();
      await manifests.put({
        ...takeReq,
        createdAtMs: 1,
        location: `rds:${SNAPSHOT_ARN}`,
        bytes: 0,
        sha256: '',
        tables: [],
        migrationVersion: null,
        serverVersion: '16.4',
      });
      return createRdsSnapshotStore(harness().ctx, manifests, fakeFingerprint());
    }

    it('starts RestoreDBInstanceFromDBSnapshot into the drill instance, then reports creating -> backing-up -> available', async () => {
      rdsMock
        .on(DescribeDBInstancesCommand, { DBInstanceIdentifier: drillInstance })
        .rejectsOnce(notFound(drillInstance))
        .resolvesOnce({ DBInstances: [instance(drillInstance, 'creating')] })
        .resolvesOnce({ DBInstances: [instance(drillInstance, 'backing-up')] })
        .resolves({ DBInstances: [instance(drillInstance, 'available')] });
      rdsMock.on(RestoreDBInstanceFromDBSnapshotCommand).resolves({});
      const store = await storeWithManifest();

      const started = await inActivity('drill-shop-prod-7').run(() =>
        store.restore(SNAPSHOT, drillTarget, { jobs: 2 }),
      );

      assert.deepEqual(started, { ready: false, detail: 'creating' });
      const calls = rdsMock.commandCalls(RestoreDBInstanceFromDBSnapshotCommand);
      assert.equal(calls.length, 1);
      assert.deepEqual(calls[0]?.args[0].input, {
        DBInstanceIdentifier: drillInstance,
        DBSnapshotIdentifier: SNAPSHOT,
        DBSubnetGroupName: 'drill-subnets',
        VpcSecurityGroupIds: ['sg-0drill'],
        DBInstanceClass: 'db.t4g.micro',
        PubliclyAccessible: false,
        Tags: [
          { Key: TAG.service, Value: 'shop' },
          { Key: TAG.environment, Value: 'prod' },
          { Key: RDS_TAG.snapshot, Value: SNAPSHOT },
          { Key: RDS_TAG.sourceInstance, Value: 'shop-prod' },
          { Key: TAG.kind, Value: 'drill' },
          { Key: TAG.workflow, Value: 'drill-shop-prod-7' },
        ],
      });

      const statuses = [
        await store.restoreStatus!(drillTarget),
        await store.restoreStatus!(drillTarget),
        await store.restoreStatus!(drillTarget),
      ];
      assert.deepEqual(statuses, [
        { ready: false, detail: `${drillInstance} is creating` },
        { ready: false, detail: `${drillInstance} is backing-up` },
        { ready: true, detail: `${drillInstance} is available` },
      ]);
    });

    it('adopts an existing restore target of the same snapshot, refuses one of another', async () => {
      rdsMock.on(DescribeDBInstancesCommand, { DBInstanceIdentifier: drillInstance }).resolves({
        DBInstances: [instance(drillInstance, 'backing-up', { [RDS_TAG.snapshot]: SNAPSHOT, [TAG.kind]: 'drill' })],
      });
      rdsMock.on(DescribeDBInstancesCommand, { DBInstanceIdentifier: 'shop-restore-9f8e7d6c' }).resolves({
        DBInstances: [instance('shop-restore-9f8e7d6c', 'available', { [RDS_TAG.snapshot]: 'another-snapshot' })],
      });
      const store = await storeWithManifest();
      const phases: string[] = [];

      assert.deepEqual(await store.restore(SNAPSHOT, drillTarget, { jobs: 2 }, (p) => phases.push(p.phase)), {
        ready: false,
        detail: 'backing-up',
      });
      assert.deepEqual(phases, ['adopted']);
      const err = await failure(store.restore(SNAPSHOT, 'shop_restore-9f8e7d6c', { jobs: 2 }));
      assert.equal(err.type, 'RestoreTargetExists');
      assert.equal(err.permanent, true);
      assert.equal(rdsMock.commandCalls(RestoreDBInstanceFromDBSnapshotCommand).length, 0);
    });

    it('fails with RestoreFailed when the instance ends in a failed state', async () => {
      rdsMock
        .on(DescribeDBInstancesCommand, { DBInstanceIdentifier: drillInstance })
        .resolves({ DBInstances: [instance(drillInstance, 'incompatible-restore')] });
      const err = await failure((await storeWithManifest()).restoreStatus!(drillTarget));
      assert.equal(err.type, 'RestoreFailed');
      assert.equal(err.permanent, true);
    });
  });

  describe('dropDatabase', () => {
    const mine = (kind: string, workflow: string, source = 'shop-prod') => ({
      [TAG.service]: 'shop',
      [TAG.environment]: 'prod',
      [TAG.kind]: kind,
      [TAG.workflow]: workflow,
      [RDS_TAG.sourceInstance]: source,
    });

    it('deletes the drill instance without a final snapshot and sweeps leftovers of finished workflows only', async () => {
      const target = instance('shop-drill-1a2b3c4d', 'available', mine('drill', 'drill-now'));
      rdsMock.on(DescribeDBInstancesCommand).resolves({
        DBInstances: [
          instance('shop-prod', 'available'),
          target,
          instance('shop-drill-00000001', 'available', mine('drill', 'drill-finished')),
          instance('shop-drill-00000002', 'available', mine('drill', 'drill-running')),
          instance('shop-drill-00000003', 'deleting', mine('drill', 'drill-finished-too')),
          instance('other-drill-00000004', 'available', {
            ...mine('drill', 'drill-of-other'),
            [TAG.service]: 'other',
            [RDS_TAG.sourceInstance]: 'other-prod',
          }),
          instance('shop-restore-00000005', 'available', mine('restore', 'rollback-finished')),
        ],
      });
      rdsMock.on(DescribeDBInstancesCommand, { DBInstanceIdentifier: 'shop-drill-1a2b3c4d' }).resolves({
        DBInstances: [target],
      });
      rdsMock
        .on(DeleteDBInstanceCommand, { DBInstanceIdentifier: 'shop-drill-00000001' })
        .rejects(notFound('shop-drill-00000001')); // deleted meanwhile by someone else: fine
      rdsMock.on(DeleteDBInstanceCommand, { DBInstanceIdentifier: 'shop-drill-1a2b3c4d' }).resolves({});
      const { ctx, running } = harness();
      running.add('drill-running');
      const store = createRdsSnapshotStore(ctx, memoryManifests(), fakeFingerprint());

      await inActivity('drill-now').run(() => store.dropDatabase('shop_drill_1a2b3c4d'));

      const deletes = rdsMock.commandCalls(DeleteDBInstanceCommand).map((c) => c.args[0].input);
      assert.deepEqual(deletes, [
        { DBInstanceIdentifier: 'shop-drill-1a2b3c4d', SkipFinalSnapshot: true, DeleteAutomatedBackups: true },
        { DBInstanceIdentifier: 'shop-drill-00000001', SkipFinalSnapshot: true, DeleteAutomatedBackups: true },
      ]);
    });

    it('is idempotent: an instance already gone or being deleted is fine', async () => {
      rdsMock.on(DescribeDBInstancesCommand).resolves({ DBInstances: [] });
      rdsMock
        .on(DescribeDBInstancesCommand, { DBInstanceIdentifier: 'shop-drill-1a2b3c4d' })
        .rejectsOnce(notFound('shop-drill-1a2b3c4d'))
        .resolves({ DBInstances: [instance('shop-drill-1a2b3c4d', 'deleting', mine('drill', 'x'))] });
      const store = createRdsSnapshotStore(harness().ctx, memoryManifests(), fakeFingerprint());
      await store.dropDatabase('shop_drill_1a2b3c4d');
      await store.dropDatabase('shop_drill_1a2b3c4d');
      assert.equal(rdsMock.commandCalls(DeleteDBInstanceCommand).length, 0);
    });

    it("refuses the live instance and instances that are not this service's drills or restores", async () => {
      rdsMock.on(DescribeDBInstancesCommand, { DBInstanceIdentifier: 'reports-db' }).resolves({
        DBInstances: [instance('reports-db', 'available', { team: 'analytics' })],
      });
      rdsMock.on(DescribeDBInstancesCommand, { DBInstanceIdentifier: 'other-drill-1' }).resolves({
        DBInstances: [instance('other-drill-1', 'available', mine('drill', 'w', 'other-prod'))],
      });
      const store = createRdsSnapshotStore(harness().ctx, memoryManifests(), fakeFingerprint());

      for (const name of ['shop', 'reports_db', 'other_drill_1']) {
        const err = await failure(store.dropDatabase(name));
        assert.equal(err.type, 'RefusedToDelete', name);
        assert.equal(err.permanent, true);
      }
      const live = await failure(
        createRdsSnapshotStore(
          harness(specWith({ instance: 'shop-drill-1a2b3c4d' })).ctx,
          memoryManifests(),
        ).dropDatabase('shop_drill_1a2b3c4d'),
      );
      assert.equal(live.type, 'RefusedToDelete', 'whatever the name, the instance in aws.rds.instance is refused');
      assert.equal(rdsMock.commandCalls(DeleteDBInstanceCommand).length, 0);
    });
  });

  describe('swap', () => {
    const restored = 'shop-restore-9f8e7d6c';
    const address = `${restored}.abc.us-east-1.rds.amazonaws.com`;
    const written = new Date('2024-05-01T12:00:00Z');

    function awsWithServices(primaryCreatedAt: Date) {
      rdsMock
        .on(DescribeDBInstancesCommand, { DBInstanceIdentifier: restored })
        .resolves({ DBInstances: [instance(restored, 'available', { [RDS_TAG.snapshot]: SNAPSHOT })] });
      rdsMock
        .on(DescribeDBInstancesCommand, { DBInstanceIdentifier: 'shop-prod' })
        .resolves({ DBInstances: [instance('shop-prod', 'available')] });
      rdsMock.on(AddTagsToResourceCommand).resolves({});
      ecsMock.on(DescribeServicesCommand).resolves({
        services: [
          {
            serviceName: 'shop-blue',
            desiredCount: 2,
            runningCount: 2,
            taskDefinition: 'arn:td/shop:7',
            deployments: [{ status: 'PRIMARY', createdAt: primaryCreatedAt, rolloutState: 'COMPLETED' }],
          },
          { serviceName: 'shop-green', desiredCount: 0, taskDefinition: 'arn:td/shop:6', deployments: [] },
        ],
      });
      ecsMock.on(UpdateServiceCommand).resolves({});
      ssmMock.on(PutParameterCommand).resolves({ Version: 2 });
      rdsMock.on(ModifyDBInstanceCommand).resolves({});
    }

    it('points the SSM parameter at the restored instance and redeploys the services with tasks', async () => {
      awsWithServices(new Date('2024-05-01T09:00:00Z'));
      ssmMock.on(GetParameterCommand).resolves({
        Parameter: { Name: '/shop/prod/db-host', Value: 'shop-prod.abc.us-east-1.rds.amazonaws.com' },
      });

      const result = await createRdsSwap(harness().ctx)('shop', 'shop_restore-9f8e7d6c', 'shop_replaced-1');

      assert.equal(result, 'swapped');
      assert.deepEqual(
        ssmMock.commandCalls(PutParameterCommand).map((c) => c.args[0].input),
        [{ Name: '/shop/prod/db-host', Value: address, Overwrite: true }],
      );
      assert.deepEqual(
        ecsMock.commandCalls(UpdateServiceCommand).map((c) => c.args[0].input),
        [{ cluster: 'prod', service: 'shop-blue', forceNewDeployment: true }],
        'only the colour with tasks is redeployed',
      );
      assert.deepEqual(rdsMock.commandCalls(AddTagsToResourceCommand)[0]?.args[0].input, {
        ResourceName: 'arn:aws:rds:us-east-1:123456789012:db:shop-prod',
        Tags: [{ Key: RDS_TAG.replacedBy, Value: restored }],
      });
      assert.equal(rdsMock.commandCalls(DeleteDBInstanceCommand).length, 0, 'the replaced instance is kept');
    });

    it("is 'already swapped' when the parameter names the address and the services deployed since", async () => {
      awsWithServices(new Date(written.getTime() + 60_000));
      ssmMock
        .on(GetParameterCommand)
        .resolves({ Parameter: { Name: '/shop/prod/db-host', Value: address, LastModifiedDate: written } });

      assert.equal(await createRdsSwap(harness().ctx)('shop', 'shop_restore-9f8e7d6c', 'x'), 'already swapped');
      assert.equal(ssmMock.commandCalls(PutParameterCommand).length, 0);
      assert.equal(ecsMock.commandCalls(UpdateServiceCommand).length, 0);
    });

    it('redeploys when an earlier attempt wrote the parameter but crashed before redeploying', async () => {
      awsWithServices(new Date(written.getTime() - 60_000));
      ssmMock
        .on(GetParameterCommand)
        .resolves({ Parameter: { Name: '/shop/prod/db-host', Value: address, LastModifiedDate: written } });

      assert.equal(await createRdsSwap(harness().ctx)('shop', 'shop_restore-9f8e7d6c', 'x'), 'swapped');
      assert.equal(ssmMock.commandCalls(PutParameterCommand).length, 0);
      assert.equal(ecsMock.commandCalls(UpdateServiceCommand).length, 1);
    });

    it("sets the secret's host key, keeping its other keys", async () => {
      awsWithServices(new Date('2024-05-01T09:00:00Z'));
      secretsMock.on(GetSecretValueCommand).resolves({
        SecretString: JSON.stringify({ host: 'shop-prod.abc.us-east-1.rds.amazonaws.com', password: 'p' }),
      });
      secretsMock.on(PutSecretValueCommand).resolves({});
      const spec = specWith({ endpoint: { secret: 'shop/prod/db' } });

      assert.equal(await createRdsSwap(harness(spec).ctx)('shop', 'shop_restore-9f8e7d6c', 'x'), 'swapped');
      assert.deepEqual(
        secretsMock.commandCalls(PutSecretValueCommand).map((c) => c.args[0].input),
        [{ SecretId: 'shop/prod/db', SecretString: JSON.stringify({ host: address, password: 'p' }) }],
      );
      assert.equal(ecsMock.commandCalls(UpdateServiceCommand).length, 1);
    });

    it('registers task definition revisions with the host in the container environment (taskEnv)', async () => {
      awsWithServices(new Date('2024-05-01T09:00:00Z'));
      const taskDefinition = (arn: string, host: string) => ({
        taskDefinition: {
          taskDefinitionArn: arn,
          family: 'shop',
          networkMode: 'awsvpc' as const,
          cpu: '256',
          memory: '512',
          containerDefinitions: [
            { name: 'app', image: 'registry/shop:1.0', environment: [{ name: 'DB_HOST', value: host }] },
            { name: 'sidecar', image: 'envoy' },
          ],
        },
        tags: [{ key: 'team', value: 'shop' }],
      });
      ecsMock
        .on(DescribeTaskDefinitionCommand, { taskDefinition: 'arn:td/shop:7' })
        .resolves(taskDefinition('arn:td/shop:7', 'shop-prod.abc.us-east-1.rds.amazonaws.com'));
      ecsMock
        .on(DescribeTaskDefinitionCommand, { taskDefinition: 'arn:td/shop:6' })
        .resolves(taskDefinition('arn:td/shop:6', address));
      ecsMock.on(RegisterTaskDefinitionCommand).resolves({ taskDefinition: { taskDefinitionArn: 'arn:td/shop:8' } });
      const spec = specWith({ endpoint: { taskEnv: 'DB_HOST' } });

      assert.equal(await createRdsSwap(harness(spec).ctx)('shop', 'shop_restore-9f8e7d6c', 'x'), 'swapped');
      const registered = ecsMock.commandCalls(RegisterTaskDefinitionCommand)[0]?.args[0].input;
      assert.deepEqual(registered, {
        family: 'shop',
        networkMode: 'awsvpc',
        cpu: '256',
        memory: '512',
        containerDefinitions: [
          { name: 'app', image: 'registry/shop:1.0', environment: [{ name: 'DB_HOST', value: address }] },
          { name: 'sidecar', image: 'envoy' },
        ],
        tags: [{ key: 'team', value: 'shop' }],
      });
      assert.deepEqual(
        ecsMock.commandCalls(UpdateServiceCommand).map((c) => c.args[0].input),
        [{ cluster: 'prod', service: 'shop-blue', taskDefinition: 'arn:td/shop:8' }],
        'green already has the address',
      );
      assert.equal(ssmMock.commandCalls(PutParameterCommand).length, 0);
    });

    it('restores a database restore with the live instance settings (aws.rds.restore overrides) and promotes it after the swap (issue 13 item 3)', async () => {
      const source = instance(
        'shop-prod',
        'available',
        {},
        {
          DBInstanceClass: 'db.r6g.xlarge',
          DBSubnetGroup: { DBSubnetGroupName: 'prod-subnets' },
          VpcSecurityGroups: [{ VpcSecurityGroupId: 'sg-0prod' }],
          DBParameterGroups: [{ DBParameterGroupName: 'shop-pg16' }],
          OptionGroupMemberships: [{ OptionGroupName: 'shop-og' }],
          MultiAZ: true,
          StorageType: 'gp3',
          IAMDatabaseAuthenticationEnabled: true,
          DeletionProtection: true,
          MonitoringInterval: 30,
          MonitoringRoleArn: 'arn:aws:iam::123456789012:role/rds-monitoring',
          BackupRetentionPeriod: 14,
          PubliclyAccessible: false,
        },
      );
      rdsMock.on(DescribeDBInstancesCommand, { DBInstanceIdentifier: 'shop-prod' }).resolves({ DBInstances: [source] });
      rdsMock
        .on(DescribeDBInstancesCommand, { DBInstanceIdentifier: restored })
        .rejectsOnce(notFound(restored))
        .resolves({ DBInstances: [instance(restored, 'available', { [RDS_TAG.snapshot]: SNAPSHOT })] });
      rdsMock.on(RestoreDBInstanceFromDBSnapshotCommand).resolves({});
      const manifests = memoryManifests();
      await manifests.put({
        ...takeReq,
        createdAtMs: 1,
        location: '',
        bytes: 0,
        sha256: '',
        tables: [],
        migrationVersion: null,
        serverVersion: '16',
      });
      const { ctx } = harness(specWith({ restore: { instanceClass: 'db.r6g.2xlarge' } }));
      await createRdsSnapshotStore(ctx, manifests, fakeFingerprint()).restore(SNAPSHOT, 'shop_restore-9f8e7d6c', {
        jobs: 1,
      });
      const input = rdsMock.commandCalls(RestoreDBInstanceFromDBSnapshotCommand)[0]?.args[0].input;
      assert.deepEqual(
        { ...input, Tags: undefined },
        {
          DBInstanceIdentifier: restored,
          DBSnapshotIdentifier: SNAPSHOT,
          DBInstanceClass: 'db.r6g.2xlarge',
          DBSubnetGroupName: 'prod-subnets',
          VpcSecurityGroupIds: ['sg-0prod'],
          DBParameterGroupName: 'shop-pg16',
          OptionGroupName: 'shop-og',
          MultiAZ: true,
          StorageType: 'gp3',
          EnableIAMDatabaseAuthentication: true,
          DeletionProtection: false,
          PubliclyAccessible: false,
          Tags: undefined,
        },
        "production's settings, not the drill's; deletion protection only once it is live",
      );

      ecsMock.on(DescribeServicesCommand).resolves({
        services: [
          {
            serviceName: 'shop-blue',
            desiredCount: 2,
            runningCount: 2,
            deployments: [{ status: 'PRIMARY', createdAt: new Date(0), rolloutState: 'COMPLETED' }],
          },
          { serviceName: 'shop-green', desiredCount: 0, deployments: [] },
        ],
      });
      ecsMock.on(UpdateServiceCommand).resolves({});
      ssmMock.on(GetParameterCommand).resolves({ Parameter: { Value: 'old-host' } });
      ssmMock.on(PutParameterCommand).resolves({});
      rdsMock.on(AddTagsToResourceCommand).resolves({});
      rdsMock.on(ModifyDBInstanceCommand).resolves({});
      await createRdsSwap(ctx)('shop', 'shop_restore-9f8e7d6c', 'shop_replaced-1');
      assert.deepEqual(rdsMock.commandCalls(ModifyDBInstanceCommand)[0]?.args[0].input, {
        DBInstanceIdentifier: restored,
        ApplyImmediately: true,
        DeletionProtection: true,
        BackupRetentionPeriod: 14,
        MonitoringInterval: 30,
        MonitoringRoleArn: 'arn:aws:iam::123456789012:role/rds-monitoring',
      });
      assert.deepEqual(rdsMock.commandCalls(AddTagsToResourceCommand).at(-1)?.args[0].input.Tags, [
        { Key: TAG.kind, Value: 'live' },
      ]);
    });

    it('waits for the redeployed services to be stable before the swap ends; retryable before the attempt times out', async () => {
      awsWithServices(new Date('2024-05-01T09:00:00Z'));
      ssmMock.on(GetParameterCommand).resolves({ Parameter: { Value: 'old-host' } });
      const rolling = {
        serviceName: 'shop-blue',
        desiredCount: 2,
        runningCount: 3,
        deployments: [
          { status: 'PRIMARY', rolloutState: 'IN_PROGRESS' as const },
          { status: 'ACTIVE', rolloutState: 'COMPLETED' as const },
        ],
      };
      const green = { serviceName: 'shop-green', desiredCount: 0, deployments: [] };
      const stable = {
        ...rolling,
        runningCount: 2,
        deployments: [{ status: 'PRIMARY', rolloutState: 'COMPLETED' as const }],
      };
      ecsMock
        .on(DescribeServicesCommand)
        .resolvesOnce({ services: [{ ...stable, taskDefinition: 'arn:td/shop:7' }, green] })
        .resolvesOnce({ services: [rolling] })
        .resolvesOnce({ services: [rolling] })
        .resolves({ services: [stable] });
      const { ctx, sleeps } = harness();
      assert.equal(await createRdsSwap(ctx)('shop', 'shop_restore-9f8e7d6c', 'r'), 'swapped');
      assert.deepEqual(sleeps, [5_000, 5_000], 'polled until the old tasks were gone');

      ecsMock.reset();
      ecsMock.on(UpdateServiceCommand).resolves({});
      ecsMock
        .on(DescribeServicesCommand)
        .resolvesOnce({ services: [{ ...stable, taskDefinition: 'arn:td/shop:7' }, green] })
        .resolves({ services: [rolling] });
      const late = harness(specWith(), {});
      late.ctx.activity = () => ({ attemptDeadlineMs: late.ctx.now() + 6_000, log: () => {} });
      const err = await rejection(createRdsSwap(late.ctx)('shop', 'shop_restore-9f8e7d6c', 'r'));
      assert.ok(!(err instanceof PlatformError), `retryable: the retried swap waits again (${err.message})`);
      assert.match(err.message, /not stable yet: shop-blue \(2 deployments, 3\/2 running\)/);
    });

    it('needs an endpoint holder (NoEndpointHolder)', async () => {
      const err = await failure(
        createRdsSwap(harness(specWith({ endpoint: undefined })).ctx)('shop', 'shop_restore-9f8e7d6c', 'x'),
      );
      assert.equal(err.type, 'NoEndpointHolder');
      assert.match(err.message, /aws\.rds\.endpoint is required to swap/);
    });
  });

  // The same calls run against moto_server 5.2.5 (a throwaway probe, not part of the suite): it accepts every
  // request below as sent, but its clusters, writer instances and cluster snapshots are `available` at once (no
  // `creating`, no PercentProgress) and it never answers InvalidDBClusterStateFault to CreateDBInstance, so those
  // sequences are only covered here.
  describe('on an Aurora PostgreSQL cluster (aws.rds.cluster)', () => {
    const CLUSTER_SNAPSHOT_ARN = `arn:aws:rds:us-east-1:123456789012:cluster-snapshot:${SNAPSHOT}`;
    const drillTarget = 'shop_drill_1a2b3c4d';
    const drillCluster = 'shop-drill-1a2b3c4d';

    function clusterSpec(rds: Partial<AwsRdsSpec> = {}): AwsEcsSpec {
      return specWith({
        instance: undefined,
        cluster: 'shop-aurora',
        drill: { subnetGroup: 'drill-subnets', securityGroups: ['sg-0drill'], instanceClass: 'db.r6g.large' },
        ...rds,
      });
    }

    /** snapshot()'s fields, as a cluster snapshot of shop-aurora. */
    function clusterSnapshot(status: string, extra: Partial<DBClusterSnapshot> = {}): DBClusterSnapshot {
      const { DBSnapshotIdentifier, DBInstanceIdentifier: _instance, DBSnapshotArn: _arn, ...same } = snapshot(status);
      return {
        ...same,
        DBClusterSnapshotIdentifier: DBSnapshotIdentifier,
        DBClusterIdentifier: 'shop-aurora',
        DBClusterSnapshotArn: CLUSTER_SNAPSHOT_ARN,
        AllocatedStorage: 25,
        Engine: 'aurora-postgresql',
        ...extra,
      };
    }

    function cluster(id: string, status: string, tags: Record<string, string> = {}, extra: Partial<DBCluster> = {}) {
      return {
        DBClusterIdentifier: id,
        DBClusterArn: `arn:aws:rds:us-east-1:123456789012:cluster:${id}`,
        Status: status,
        Endpoint: `${id}.cluster-abc.us-east-1.rds.amazonaws.com`,
        ReaderEndpoint: `${id}.cluster-ro-abc.us-east-1.rds.amazonaws.com`,
        Port: 5432,
        Engine: 'aurora-postgresql',
        EngineVersion: '16.4',
        DBClusterMembers: [{ DBInstanceIdentifier: writerOf(id), IsClusterWriter: true }],
        TagList: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })),
        ...extra,
      } satisfies DBCluster;
    }

    const clusterNotFound = (id: string) =>
      new DBClusterNotFoundFault({ message: `DBCluster ${id} not found.`, $metadata: { httpStatusCode: 404 } });
    const clusterBusy = () =>
      new InvalidDBClusterStateFault({
        message: 'Cluster cannot be deleted, it still contains DB instances in non-deleting state.',
        $metadata: { httpStatusCode: 400 },
      });

    /** The tags of a restore of SNAPSHOT into a drill of aws.rds.cluster. */
    const restoreTags = (workflow: string) => [
      { Key: TAG.service, Value: 'shop' },
      { Key: TAG.environment, Value: 'prod' },
      { Key: RDS_TAG.snapshot, Value: SNAPSHOT },
      { Key: RDS_TAG.sourceInstance, Value: 'shop-aurora' },
      { Key: TAG.kind, Value: 'drill' },
      { Key: TAG.workflow, Value: workflow },
    ];
    const tagMap = (list: { Key: string; Value: string }[]) => Object.fromEntries(list.map((t) => [t.Key, t.Value]));

    async function clusterStoreWithManifest(ctx = harness(clusterSpec()).ctx) {
      const manifests = memoryManifests();
      await manifests.put({
        ...takeReq,
        createdAtMs: 1,
        location: `rds:${CLUSTER_SNAPSHOT_ARN}`,
        bytes: 0,
        sha256: '',
        tables: [],
        migrationVersion: null,
        serverVersion: '16.4',
      });
      return createRdsSnapshotStore(ctx, manifests, fakeFingerprint());
    }

    it('names cluster identifiers so that the writer `<cluster>-1` fits in 63, and reaches a cluster at its writer endpoint', async () => {
      const spec = clusterSpec();
      assert.equal(instanceFor(spec, 'shop'), 'shop-aurora', 'the service database lives on aws.rds.cluster');
      assert.equal(instanceFor(spec, drillTarget), drillCluster);
      assert.equal(instanceFor(spec, `s_${'x'.repeat(80)}`).length, 61);
      rdsMock
        .on(DescribeDBClustersCommand, { DBClusterIdentifier: drillCluster })
        .resolves({ DBClusters: [cluster(drillCluster, 'available')] });
      const { ctx } = harness(spec, { resolveAddress: (_host, port) => ({ host: '10.0.0.9', port }) });
      assert.equal(await rdsUrlFor(ctx)('shop'), LIVE_URL);
      assert.equal(await rdsUrlFor(ctx)(drillTarget), 'postgres://shop:s3cret@10.0.0.9:5432/shop?sslmode=require');
      assert.equal(rdsMock.commandCalls(DescribeDBInstancesCommand).length, 0);
    });

    it('takes a DB cluster snapshot, polls it creating -> available and saves the manifest', async () => {
      const fp = fakeFingerprint();
      rdsMock
        .on(CreateDBClusterSnapshotCommand)
        .resolves({ DBClusterSnapshot: clusterSnapshot('creating', { PercentProgress: 0 }) });
      rdsMock
        .on(DescribeDBClusterSnapshotsCommand, { DBClusterSnapshotIdentifier: SNAPSHOT })
        .resolvesOnce({ DBClusterSnapshots: [clusterSnapshot('creating', { PercentProgress: 50 })] })
        .resolves({ DBClusterSnapshots: [clusterSnapshot('available', { PercentProgress: 100 })] });
      const manifests = memoryManifests();
      const { ctx, sleeps } = harness(clusterSpec());
      const progress: SnapshotProgress[] = [];

      const manifest = await createRdsSnapshotStore(ctx, manifests, fp).take(takeReq, (p) => progress.push(p));

      assert.deepEqual(fp.urls, [LIVE_URL]);
      assert.deepEqual(
        rdsMock.commandCalls(CreateDBClusterSnapshotCommand).map((c) => c.args[0].input),
        [{ DBClusterSnapshotIdentifier: SNAPSHOT, DBClusterIdentifier: 'shop-aurora', Tags: ourTags }],
      );
      assert.equal(rdsMock.commandCalls(CreateDBSnapshotCommand).length, 0);
      assert.equal(rdsMock.commandCalls(DescribeDBSnapshotsCommand).length, 0);
      assert.deepEqual(manifest, {
        ...takeReq,
        createdAtMs: Date.parse('2024-05-01T10:00:00Z'),
        location: `rds:${CLUSTER_SNAPSHOT_ARN}`,
        bytes: 25 * 2 ** 30,
        sha256: '',
        tables: [{ table: 'public.items', rows: 3, checksum: '' }],
        migrationVersion: '002_add_price',
        serverVersion: '16.4',
        claims: 'counts',
        countTolerance: 0.01,
      });
      assert.deepEqual(fp.modes, ['counts'], "RDS's default fingerprint: counts, no checksum of the live database");
      assert.deepEqual(manifests.saved.get(SNAPSHOT), manifest);
      assert.deepEqual(
        progress.flatMap((p) => (p.phase === 'creating' ? [(p as { percent?: number }).percent] : [])),
        [50],
        "RDS's percentage while it is creating",
      );
      assert.deepEqual(sleeps, [5_000]);

      const store = createRdsSnapshotStore(ctx, manifests, fp);
      assert.deepEqual(await store.verify(SNAPSHOT), { ok: true });
      assert.equal((await store.get(SNAPSHOT))?.snapshotId, SNAPSHOT);
      assert.deepEqual(
        (await store.list('shop', 'prod')).map((m) => m.snapshotId),
        [SNAPSHOT],
      );
    });

    it("adopts this workflow's cluster snapshot on DBClusterSnapshotAlreadyExists, refuses another's", async () => {
      rdsMock
        .on(CreateDBClusterSnapshotCommand)
        .rejects(
          new DBClusterSnapshotAlreadyExistsFault({ message: 'already exists', $metadata: { httpStatusCode: 400 } }),
        );
      rdsMock
        .on(DescribeDBClusterSnapshotsCommand)
        .resolves({ DBClusterSnapshots: [clusterSnapshot('available', { AllocatedStorage: undefined })] });
      const manifests = memoryManifests();
      const progress: string[] = [];

      const manifest = await createRdsSnapshotStore(harness(clusterSpec()).ctx, manifests, fakeFingerprint()).take(
        takeReq,
        (p) => progress.push(p.phase),
      );

      assert.equal(manifest.location, `rds:${CLUSTER_SNAPSHOT_ARN}`);
      assert.equal(manifest.bytes, 0, 'no AllocatedStorage: 0 bytes');
      assert.ok(manifests.saved.has(SNAPSHOT));
      assert.ok(progress.includes('adopted'));

      rdsMock.on(DescribeDBClusterSnapshotsCommand).resolves({
        DBClusterSnapshots: [clusterSnapshot('available', { TagList: [{ Key: TAG.workflow, Value: 'deploy-41' }] })],
      });
      const err = await failure(
        createRdsSnapshotStore(harness(clusterSpec()).ctx, memoryManifests(), fakeFingerprint()).take(takeReq),
      );
      assert.equal(err.type, 'SnapshotConflict');
      assert.match(err.message, /RDS cluster snapshot .* of cluster shop-aurora: .*deploy-41/);
    });

    it('restores with RestoreDBClusterFromSnapshot and then CreateDBInstance of its writer; ready when both are available', async () => {
      rdsMock
        .on(DescribeDBClustersCommand, { DBClusterIdentifier: drillCluster })
        .rejectsOnce(clusterNotFound(drillCluster))
        .resolvesOnce({ DBClusters: [cluster(drillCluster, 'creating')] })
        .resolves({ DBClusters: [cluster(drillCluster, 'available')] });
      rdsMock
        .on(DescribeDBInstancesCommand, { DBInstanceIdentifier: writerOf(drillCluster) })
        .rejectsOnce(notFound(writerOf(drillCluster)))
        .resolvesOnce({ DBInstances: [instance(writerOf(drillCluster), 'creating')] })
        .resolvesOnce({ DBInstances: [instance(writerOf(drillCluster), 'creating')] })
        .resolves({ DBInstances: [instance(writerOf(drillCluster), 'available')] });
      rdsMock.on(DescribeDBClusterSnapshotsCommand).resolves({ DBClusterSnapshots: [clusterSnapshot('available')] });
      rdsMock.on(RestoreDBClusterFromSnapshotCommand).resolves({ DBCluster: cluster(drillCluster, 'creating') });
      rdsMock.on(CreateDBInstanceCommand).resolves({});
      const store = await clusterStoreWithManifest();

      const started = await inActivity('drill-shop-prod-7').run(() =>
        store.restore(SNAPSHOT, drillTarget, { jobs: 2 }),
      );

      assert.deepEqual(started, { ready: false, detail: 'creating, writer creating' });
      const creates = rdsMock
        .calls()
        .map((c) => c.args[0])
        .filter((c) => c instanceof RestoreDBClusterFromSnapshotCommand || c instanceof CreateDBInstanceCommand)
        .map((c) => [c.constructor.name, c.input]);
      assert.deepEqual(creates, [
        [
          'RestoreDBClusterFromSnapshotCommand',
          {
            DBClusterIdentifier: drillCluster,
            SnapshotIdentifier: SNAPSHOT,
            Engine: 'aurora-postgresql',
            EngineVersion: '16.4',
            DBSubnetGroupName: 'drill-subnets',
            VpcSecurityGroupIds: ['sg-0drill'],
            Tags: restoreTags('drill-shop-prod-7'),
          },
        ],
        [
          'CreateDBInstanceCommand',
          {
            DBInstanceIdentifier: 'shop-drill-1a2b3c4d-1',
            DBClusterIdentifier: drillCluster,
            Engine: 'aurora-postgresql',
            DBInstanceClass: 'db.r6g.large',
            PubliclyAccessible: false,
            Tags: restoreTags('drill-shop-prod-7'),
          },
        ],
      ]);
      assert.equal(rdsMock.commandCalls(RestoreDBInstanceFromDBSnapshotCommand).length, 0);

      const statuses = [
        await store.restoreStatus!(drillTarget),
        await store.restoreStatus!(drillTarget),
        await store.restoreStatus!(drillTarget),
      ];
      assert.deepEqual(statuses, [
        { ready: false, detail: `${drillCluster} is creating, its writer ${drillCluster}-1 is creating` },
        { ready: false, detail: `${drillCluster} is available, its writer ${drillCluster}-1 is creating` },
        { ready: true, detail: `${drillCluster} is available, its writer ${drillCluster}-1 is available` },
      ]);
    });

    it("restores a database restore of a cluster with the live cluster's settings: I/O-Optimized storage, Serverless v2 capacity for a db.serverless writer, parameter groups, KMS key (issue 13 item 3)", async () => {
      const restoredCluster = 'shop-restore-9f8e7d6c';
      rdsMock.on(DescribeDBClustersCommand, { DBClusterIdentifier: 'shop-aurora' }).resolves({
        DBClusters: [
          cluster(
            'shop-aurora',
            'available',
            {},
            {
              DBSubnetGroup: 'prod-subnets',
              VpcSecurityGroups: [{ VpcSecurityGroupId: 'sg-0prod' }],
              DBClusterParameterGroup: 'shop-aurora-pg16',
              KmsKeyId: 'arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab',
              IAMDatabaseAuthenticationEnabled: true,
              StorageType: 'aurora-iopt1',
              ServerlessV2ScalingConfiguration: { MinCapacity: 0.5, MaxCapacity: 16 },
              DeletionProtection: true,
            },
          ),
        ],
      });
      rdsMock.on(DescribeDBInstancesCommand, { DBInstanceIdentifier: writerOf('shop-aurora') }).resolves({
        DBInstances: [
          instance(
            writerOf('shop-aurora'),
            'available',
            {},
            {
              DBInstanceClass: 'db.serverless',
              DBParameterGroups: [{ DBParameterGroupName: 'shop-aurora-instances' }],
              PubliclyAccessible: false,
            },
          ),
        ],
      });
      rdsMock
        .on(DescribeDBClustersCommand, { DBClusterIdentifier: restoredCluster })
        .rejectsOnce(clusterNotFound(restoredCluster))
        .resolves({ DBClusters: [cluster(restoredCluster, 'creating')] });
      rdsMock
        .on(DescribeDBInstancesCommand, { DBInstanceIdentifier: writerOf(restoredCluster) })
        .rejectsOnce(notFound(writerOf(restoredCluster)))
        .resolves({ DBInstances: [instance(writerOf(restoredCluster), 'creating')] });
      rdsMock.on(DescribeDBClusterSnapshotsCommand).resolves({ DBClusterSnapshots: [clusterSnapshot('available')] });
      rdsMock.on(RestoreDBClusterFromSnapshotCommand).resolves({ DBCluster: cluster(restoredCluster, 'creating') });
      rdsMock.on(CreateDBInstanceCommand).resolves({});
      const store = await clusterStoreWithManifest();

      await inActivity('rollback-shop-prod-3').run(() => store.restore(SNAPSHOT, 'shop_restore-9f8e7d6c', { jobs: 1 }));

      const creates = rdsMock
        .calls()
        .map((c) => c.args[0])
        .filter((c) => c instanceof RestoreDBClusterFromSnapshotCommand || c instanceof CreateDBInstanceCommand)
        .map((c) => [c.constructor.name, { ...c.input, Tags: undefined }]);
      assert.deepEqual(
        creates,
        [
          [
            'RestoreDBClusterFromSnapshotCommand',
            {
              DBClusterIdentifier: restoredCluster,
              SnapshotIdentifier: SNAPSHOT,
              Engine: 'aurora-postgresql',
              EngineVersion: '16.4',
              DBSubnetGroupName: 'prod-subnets',
              VpcSecurityGroupIds: ['sg-0prod'],
              DBClusterParameterGroupName: 'shop-aurora-pg16',
              KmsKeyId: 'arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab',
              EnableIAMDatabaseAuthentication: true,
              StorageType: 'aurora-iopt1',
              ServerlessV2ScalingConfiguration: { MinCapacity: 0.5, MaxCapacity: 16 },
              DeletionProtection: false,
              Tags: undefined,
            },
          ],
          [
            'CreateDBInstanceCommand',
            {
              DBInstanceIdentifier: writerOf(restoredCluster),
              DBClusterIdentifier: restoredCluster,
              Engine: 'aurora-postgresql',
              DBInstanceClass: 'db.serverless',
              DBParameterGroupName: 'shop-aurora-instances',
              PubliclyAccessible: false,
              Tags: undefined,
            },
          ],
        ],
        "production's cluster settings, not the drill's; deletion protection only once it is live",
      );
    });

    it('adopts a restore cluster of the same snapshot and creates its missing writer with its runbook tags', async () => {
      const tags = { ...tagMap(restoreTags('drill-shop-prod-7')), team: 'shop' };
      rdsMock
        .on(DescribeDBClustersCommand, { DBClusterIdentifier: drillCluster })
        .resolves({ DBClusters: [cluster(drillCluster, 'available', tags)] });
      rdsMock
        .on(DescribeDBInstancesCommand, { DBInstanceIdentifier: writerOf(drillCluster) })
        .rejectsOnce(notFound(writerOf(drillCluster)))
        .resolves({ DBInstances: [instance(writerOf(drillCluster), 'available', tags)] });
      rdsMock.on(CreateDBInstanceCommand).resolves({});
      rdsMock.on(DescribeDBClustersCommand, { DBClusterIdentifier: 'shop-restore-9f8e7d6c' }).resolves({
        DBClusters: [cluster('shop-restore-9f8e7d6c', 'available', { [RDS_TAG.snapshot]: 'another-snapshot' })],
      });
      const store = await clusterStoreWithManifest();
      const phases: string[] = [];

      assert.deepEqual(await store.restore(SNAPSHOT, drillTarget, { jobs: 2 }, (p) => phases.push(p.phase)), {
        ready: false,
        detail: 'available, writer creating',
      });
      assert.deepEqual(phases, ['adopted']);
      assert.deepEqual(
        rdsMock.commandCalls(CreateDBInstanceCommand)[0]?.args[0].input.Tags,
        restoreTags('drill-shop-prod-7'),
      );
      assert.deepEqual(await store.restore(SNAPSHOT, drillTarget, { jobs: 2 }), {
        ready: true,
        detail: 'available, writer available',
      });
      assert.equal(rdsMock.commandCalls(CreateDBInstanceCommand).length, 1, 'the writer is adopted the second time');
      assert.equal(rdsMock.commandCalls(RestoreDBClusterFromSnapshotCommand).length, 0);

      const err = await failure(store.restore(SNAPSHOT, 'shop_restore-9f8e7d6c', { jobs: 2 }));
      assert.equal(err.type, 'RestoreTargetExists');
      assert.match(err.message, /RDS cluster shop-restore-9f8e7d6c already exists/);
    });

    it('retries (a plain Error) while the restored cluster does not take its writer instance yet', async () => {
      rdsMock
        .on(DescribeDBClustersCommand, { DBClusterIdentifier: drillCluster })
        .resolves({ DBClusters: [cluster(drillCluster, 'creating', tagMap(restoreTags('w')))] });
      rdsMock
        .on(DescribeDBInstancesCommand, { DBInstanceIdentifier: writerOf(drillCluster) })
        .rejects(notFound(writerOf(drillCluster)));
      rdsMock.on(CreateDBInstanceCommand).rejects(clusterBusy());
      const err = await rejection((await clusterStoreWithManifest()).restore(SNAPSHOT, drillTarget, { jobs: 2 }));
      assert.ok(!(err instanceof PlatformError), 'retryable');
      assert.match(err.message, /does not take its writer instance shop-drill-1a2b3c4d-1 yet/);
    });

    it('drops the writer, then the cluster, and sweeps only drill clusters of finished workflows', async () => {
      const mine = (kind: string, workflow: string) => ({
        [TAG.service]: 'shop',
        [TAG.environment]: 'prod',
        [TAG.kind]: kind,
        [TAG.workflow]: workflow,
        [RDS_TAG.sourceInstance]: 'shop-aurora',
      });
      const target = cluster(drillCluster, 'available', mine('drill', 'drill-now'));
      rdsMock.on(DescribeDBClustersCommand).resolves({
        DBClusters: [
          cluster('shop-aurora', 'available'),
          target,
          cluster('shop-drill-00000001', 'available', mine('drill', 'drill-finished')),
          cluster('shop-drill-00000002', 'available', mine('drill', 'drill-running')),
          cluster('shop-restore-00000005', 'available', mine('restore', 'rollback-finished')),
        ],
      });
      rdsMock.on(DescribeDBClustersCommand, { DBClusterIdentifier: drillCluster }).resolves({ DBClusters: [target] });
      rdsMock.on(DeleteDBInstanceCommand).resolves({});
      rdsMock.on(DeleteDBClusterCommand).resolves({});
      const { ctx, running } = harness(clusterSpec());
      running.add('drill-running');
      const store = createRdsSnapshotStore(ctx, memoryManifests(), fakeFingerprint());

      await inActivity('drill-now').run(() => store.dropDatabase(drillTarget));

      const deletes = rdsMock
        .calls()
        .map((c) => c.args[0])
        .filter((c) => c instanceof DeleteDBInstanceCommand || c instanceof DeleteDBClusterCommand)
        .map((c) => c.input);
      assert.deepEqual(deletes, [
        { DBInstanceIdentifier: 'shop-drill-1a2b3c4d-1', SkipFinalSnapshot: true },
        { DBClusterIdentifier: drillCluster, SkipFinalSnapshot: true },
        { DBInstanceIdentifier: 'shop-drill-00000001-1', SkipFinalSnapshot: true },
        { DBClusterIdentifier: 'shop-drill-00000001', SkipFinalSnapshot: true },
      ]);
      assert.equal(rdsMock.commandCalls(DescribeDBInstancesCommand).length, 0, 'the sweep lists clusters');
    });

    it('refuses the live cluster and clusters that are not its drills; waits while a cluster still has instances', async () => {
      rdsMock.on(DescribeDBClustersCommand, { DBClusterIdentifier: 'reports-db' }).resolves({
        DBClusters: [cluster('reports-db', 'available', { team: 'analytics' })],
      });
      const store = createRdsSnapshotStore(harness(clusterSpec()).ctx, memoryManifests(), fakeFingerprint());
      const live = await failure(store.dropDatabase('shop'));
      assert.equal(live.type, 'RefusedToDelete');
      assert.match(live.message, /RDS cluster shop-aurora: it is the service's own cluster/);
      assert.equal((await failure(store.dropDatabase('reports_db'))).type, 'RefusedToDelete');
      assert.equal(rdsMock.commandCalls(DeleteDBInstanceCommand).length, 0);
      assert.equal(rdsMock.commandCalls(DeleteDBClusterCommand).length, 0);

      rdsMock.on(DescribeDBClustersCommand, { DBClusterIdentifier: drillCluster }).resolves({
        DBClusters: [
          cluster(drillCluster, 'available', { [TAG.kind]: 'drill', [RDS_TAG.sourceInstance]: 'shop-aurora' }),
        ],
      });
      rdsMock.on(DeleteDBInstanceCommand).rejects(notFound(writerOf(drillCluster))); // gone already: fine
      rdsMock.on(DeleteDBClusterCommand).rejects(clusterBusy());
      const busy = await rejection(store.dropDatabase(drillTarget));
      assert.ok(!(busy instanceof PlatformError), 'retryable');
      assert.match(busy.message, /RDS cluster shop-drill-1a2b3c4d cannot be deleted yet/);
    });

    it("swaps in the restored cluster's writer endpoint once the cluster and its writer are available", async () => {
      const restored = 'shop-restore-9f8e7d6c';
      rdsMock
        .on(DescribeDBClustersCommand, { DBClusterIdentifier: restored })
        .resolves({ DBClusters: [cluster(restored, 'available', { [RDS_TAG.snapshot]: SNAPSHOT })] });
      rdsMock
        .on(DescribeDBClustersCommand, { DBClusterIdentifier: 'shop-aurora' })
        .resolves({ DBClusters: [cluster('shop-aurora', 'available')] });
      rdsMock
        .on(DescribeDBInstancesCommand, { DBInstanceIdentifier: writerOf(restored) })
        .resolvesOnce({ DBInstances: [instance(writerOf(restored), 'configuring-enhanced-monitoring')] })
        .resolves({ DBInstances: [instance(writerOf(restored), 'available')] });
      rdsMock.on(AddTagsToResourceCommand).resolves({});
      rdsMock.on(ModifyDBClusterCommand).resolves({});
      rdsMock.on(ModifyDBInstanceCommand).resolves({});
      ecsMock.on(DescribeServicesCommand).resolves({
        services: [
          {
            serviceName: 'shop-blue',
            desiredCount: 2,
            runningCount: 2,
            deployments: [{ status: 'PRIMARY', createdAt: new Date(0), rolloutState: 'COMPLETED' }],
          },
          { serviceName: 'shop-green', desiredCount: 0, deployments: [] },
        ],
      });
      ecsMock.on(UpdateServiceCommand).resolves({});
      ssmMock.on(GetParameterCommand).resolves({ Parameter: { Name: '/shop/prod/db-host', Value: 'old' } });
      ssmMock.on(PutParameterCommand).resolves({ Version: 2 });
      const swap = createRdsSwap(harness(clusterSpec()).ctx);

      const early = await rejection(swap('shop', 'shop_restore-9f8e7d6c', 'x'));
      assert.ok(!(early instanceof PlatformError), 'retryable while the writer is not available');
      assert.equal(ssmMock.commandCalls(PutParameterCommand).length, 0);

      assert.equal(await swap('shop', 'shop_restore-9f8e7d6c', 'x'), 'swapped');
      assert.deepEqual(
        ssmMock.commandCalls(PutParameterCommand).map((c) => c.args[0].input),
        [{ Name: '/shop/prod/db-host', Value: `${restored}.cluster-abc.us-east-1.rds.amazonaws.com`, Overwrite: true }],
      );
      const tagged = rdsMock.commandCalls(AddTagsToResourceCommand).map((c) => c.args[0].input);
      assert.deepEqual(tagged[0], {
        ResourceName: 'arn:aws:rds:us-east-1:123456789012:cluster:shop-aurora',
        Tags: [{ Key: RDS_TAG.replacedBy, Value: restored }],
      });
      assert.deepEqual(
        tagged.slice(1).map((t) => [t.ResourceName?.split(':').slice(-2).join(':'), t.Tags]),
        [
          [`db:${writerOf(restored)}`, [{ Key: TAG.kind, Value: 'live' }]],
          [`cluster:${restored}`, [{ Key: TAG.kind, Value: 'live' }]],
        ],
        'after the swap the restored cluster and its writer are the live database (not deletable as a restore)',
      );
      assert.equal(rdsMock.commandCalls(ModifyDBClusterCommand).length, 1);
      assert.equal(rdsMock.commandCalls(DeleteDBClusterCommand).length, 0, 'the replaced cluster is kept');
    });

    it("recreates the live cluster's readers on the restored cluster after the swap (class, promotion tier, zone), tagged live, keeping one a retried attempt created (issue 13 item 3)", async () => {
      const restored = 'shop-restore-9f8e7d6c';
      const restoreKind = { [TAG.service]: 'shop', [TAG.kind]: 'restore', [RDS_TAG.snapshot]: SNAPSHOT };
      rdsMock
        .on(DescribeDBClustersCommand, { DBClusterIdentifier: restored })
        .resolves({ DBClusters: [cluster(restored, 'available', restoreKind)] });
      rdsMock.on(DescribeDBClustersCommand, { DBClusterIdentifier: 'shop-aurora' }).resolves({
        DBClusters: [
          cluster(
            'shop-aurora',
            'available',
            {},
            {
              DBClusterMembers: [
                { DBInstanceIdentifier: writerOf('shop-aurora'), IsClusterWriter: true },
                { DBInstanceIdentifier: 'shop-aurora-reader-a', IsClusterWriter: false, PromotionTier: 1 },
                { DBInstanceIdentifier: 'shop-aurora-reader-b', IsClusterWriter: false, PromotionTier: 2 },
              ],
            },
          ),
        ],
      });
      const reader = (id: string, extra: Partial<DBInstance>) =>
        rdsMock
          .on(DescribeDBInstancesCommand, { DBInstanceIdentifier: id })
          .resolves({ DBInstances: [instance(id, 'available', {}, extra)] });
      reader(writerOf('shop-aurora'), { DBInstanceClass: 'db.r6g.large', AvailabilityZone: 'us-east-1a' });
      reader('shop-aurora-reader-a', { DBInstanceClass: 'db.r6g.large', AvailabilityZone: 'us-east-1b' });
      reader('shop-aurora-reader-b', {
        DBInstanceClass: 'db.r6g.xlarge',
        AvailabilityZone: 'us-east-1c',
        DBParameterGroups: [{ DBParameterGroupName: 'shop-aurora-readers' }],
      });
      reader(writerOf(restored), {});
      // A retried attempt: the first reader was created before it stopped.
      reader(readerOf(restored, 0), {});
      rdsMock
        .on(DescribeDBInstancesCommand, { DBInstanceIdentifier: readerOf(restored, 1) })
        .rejects(notFound(readerOf(restored, 1)));
      rdsMock.on(CreateDBInstanceCommand).resolves({});
      rdsMock.on(ModifyDBClusterCommand).resolves({});
      rdsMock.on(ModifyDBInstanceCommand).resolves({});
      rdsMock.on(AddTagsToResourceCommand).resolves({});

      await promoteRestored(harness(clusterSpec()).ctx, restored);

      const calls = rdsMock
        .calls()
        .map((c) => c.args[0])
        .filter((c) => c instanceof CreateDBInstanceCommand || c instanceof ModifyDBClusterCommand)
        .map((c) => [c.constructor.name, c instanceof CreateDBInstanceCommand ? c.input : undefined]);
      assert.deepEqual(calls, [
        [
          'CreateDBInstanceCommand',
          {
            DBInstanceIdentifier: `${restored}-3`,
            DBClusterIdentifier: restored,
            Engine: 'aurora-postgresql',
            DBInstanceClass: 'db.r6g.xlarge',
            PromotionTier: 2,
            AvailabilityZone: 'us-east-1c',
            DBParameterGroupName: 'shop-aurora-readers',
            PubliclyAccessible: false,
            Tags: [
              { Key: TAG.service, Value: 'shop' },
              { Key: TAG.kind, Value: 'live' },
              { Key: RDS_TAG.snapshot, Value: SNAPSHOT },
            ],
          },
        ],
        ['ModifyDBClusterCommand', undefined],
      ]);
      assert.equal(readerOf(restored, 0), `${restored}-2`);
      assert.equal(readerOf('x'.repeat(61), 14).length, 63, "Aurora's 15 readers fit in 63 characters");
    });

    it("doctor checks the cluster ('rds cluster') with DescribeDBClusters", async () => {
      stsMock
        .on(GetCallerIdentityCommand)
        .resolves({ Arn: 'arn:aws:iam::123456789012:role/w', Account: '123456789012' });
      ecsMock.on(DescribeServicesCommand).resolves({
        services: [
          { serviceName: 'shop-blue', status: 'ACTIVE' },
          { serviceName: 'shop-green', status: 'ACTIVE' },
        ],
      });
      elbMock.on(DescribeRulesCommand).resolves({ Rules: [{ Actions: [{ Type: 'forward' }] }] });
      elbMock.on(DescribeListenersCommand).resolves({ Listeners: [{ Port: 9000 }] });
      rdsMock
        .on(DescribeDBClustersCommand, { DBClusterIdentifier: 'shop-aurora' })
        .resolves({ DBClusters: [cluster('shop-aurora', 'available')] });

      const checks = await awsDoctorChecks(clusterSpec(), { service: 'shop', environment: 'prod' }, {});

      const rds = checks.find((c) => c.check.startsWith('rds '));
      assert.deepEqual(
        { check: rds?.check, ok: rds?.ok, detail: rds?.detail },
        { check: 'rds cluster', ok: true, detail: 'shop-aurora: available (aurora-postgresql 16.4)' },
      );
      assert.equal(rdsMock.commandCalls(DescribeDBInstancesCommand).length, 0);

      // Near the manual cluster snapshot quota, doctor fails the check and names retention (issue 13 item 6).
      rdsMock.on(DescribeAccountAttributesCommand).resolves({
        AccountQuotas: [
          { AccountQuotaName: 'ManualSnapshots', Used: 3, Max: 100 },
          { AccountQuotaName: 'ManualClusterSnapshots', Used: 93, Max: 100 },
        ],
      });
      const near = (await awsDoctorChecks(clusterSpec(), { service: 'shop', environment: 'prod' }, {})).find(
        (c) => c.check === 'rds snapshot quota',
      );
      assert.equal(near?.ok, false);
      assert.match(near?.detail ?? '', /93 of 100 manual cluster snapshots used .*aws\.rds\.retention/);
    });
  });

  it("doctor counts an instance's manual snapshots (ManualSnapshots) against the quota, not the cluster ones", async () => {
    stsMock.on(GetCallerIdentityCommand).resolves({ Arn: 'arn:aws:iam::123456789012:role/w', Account: '123456789012' });
    ecsMock.on(DescribeServicesCommand).resolves({
      services: [
        { serviceName: 'shop-blue', status: 'ACTIVE' },
        { serviceName: 'shop-green', status: 'ACTIVE' },
      ],
    });
    elbMock.on(DescribeListenersCommand).resolves({ Listeners: [{ Port: 9000 }] });
    rdsMock.on(DescribeDBInstancesCommand).resolves({ DBInstances: [instance('shop-db', 'available')] });
    const quota = async (manual: number, cluster: number) => {
      rdsMock.on(DescribeAccountAttributesCommand).resolves({
        AccountQuotas: [
          { AccountQuotaName: 'ManualSnapshots', Used: manual, Max: 100 },
          { AccountQuotaName: 'ManualClusterSnapshots', Used: cluster, Max: 100 },
        ],
      });
      return (await awsDoctorChecks(specWith(), { service: 'shop', environment: 'prod' }, {})).find(
        (c) => c.check === 'rds snapshot quota',
      );
    };
    const fine = await quota(12, 95);
    assert.deepEqual([fine?.ok, fine?.detail], [true, '12 of 100 manual snapshots used in us-east-1']);
    const near = await quota(91, 0);
    assert.equal(near?.ok, false);
    assert.match(
      near?.detail ?? '',
      /^SnapshotQuotaNearlyExceeded: 91 of 100 manual snapshots used in us-east-1: deploys fail at the quota; set aws\.rds\.retention/,
    );
  });
});

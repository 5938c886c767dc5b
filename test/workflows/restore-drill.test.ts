import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { WorkflowFailedError, WorkflowUpdateFailedError } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import pg from 'pg';
import { createActivities } from '../../src/activities';
import { createPlatformRegistry } from '../../src/platforms/registry';
import { createDrillChecks } from '../../src/pg/drill-checks';
import { migrateOrchestratorDb, recordDrillRun } from '../../src/orchestrator-store/orchestrator-db';
import { createPgRecords } from '../../src/orchestrator-store/records';
import { createSingleHostPlatform, siblingDatabaseUrl } from '../../src/platforms/single-host';
import { PlatformError, type SnapshotStore } from '../../src/platforms/types';
import type { SingleHostService as ResolvedService } from '../../src/shared/service-plan';
import { drillReleaseEnvironment, scratchDatabaseFor, type DrillState } from '../../src/shared/drill';
import { signoffUpdate } from '../../src/shared/messages';
import { RunbookRtoSeconds } from '../../src/shared/search-attributes';
import { ORCHESTRATOR_DB } from '../../src/stack/postgres';
import { postgresClientBinDir } from '../../src/pg/bin-dir';
import { nativeConnectionOptions } from '../../src/temporal-connection';
import {
  runbookConfigFor,
  spawnChildWorker,
  startWorker,
  testStack,
  uniqueName,
  useWorker,
  workflowBundle,
} from '../harness';
import { liveV2, queryDb, runner, waitForState, snapshotManifest, snapshotPath } from './deploy-fixture';
import { deriveKey, loadWorkerSecret } from '../../src/system/worker-secret';
import { signManifest } from '../../src/platforms/single-host/manifest-signature';
import type { SnapshotManifest } from '../../src/platforms/types';
import { liveV1, startDrill } from './drill-fixture';

interface DrillRow {
  outcome: string;
  rto_seconds: number | null;
  rto_target_seconds: number;
  over_target: boolean | null;
  snapshot_id: string | null;
  snapshot_age_seconds: number | null;
  phase_timings: Record<string, number>;
  integrity: Record<string, { ok?: boolean }> | null;
  signed_off_by: string | null;
  reason: string | null;
  finished_at: Date | null;
}

const drillRow = async (workflowId: string): Promise<DrillRow | undefined> =>
  (await queryDb<DrillRow>(ORCHESTRATOR_DB, 'SELECT * FROM drill_runs WHERE workflow_id = $1', [workflowId]))[0];

/** Scratch databases of the plan's drills that exist now. */
const scratchLeft = async (plan: ResolvedService) =>
  (
    await queryDb<{ datname: string }>(
      'postgres',
      `SELECT datname FROM pg_database WHERE datname LIKE '${plan.database!.name}_drill_%'`,
    )
  ).map((r) => r.datname);

/** Release processes the plan's drills left running. */
const drillAppsLeft = async (plan: ResolvedService) =>
  (await runner().list()).filter(
    (r) => r.service === plan.service && r.environment === drillReleaseEnvironment(plan.environment),
  );

/** The route files of the test stack that name a release. */
const routedAnywhere = (releaseId: string) =>
  readdirSync(path.join(testStack().settings.home, 'routes'))
    .map((f) => readFileSync(path.join(testStack().settings.home, 'routes', f), 'utf8'))
    .some((text) => text.includes(releaseId));

async function assertCleanedUp(plan: ResolvedService) {
  assert.deepEqual(await scratchLeft(plan), [], 'no scratch database left');
  assert.deepEqual(await drillAppsLeft(plan), [], 'no drill app left running');
}

describe('restoreDrill on the real stack', function () {
  this.timeout(180_000);
  const { taskQueue } = useWorker('drill');

  it('passes on a populated database: integrity checked, the live release ready on the copy (not routed), RTO recorded, signed off', async () => {
    // v2's pre-migration snapshot holds 2 000 items and is the newest.
    const { plan, snapshotId } = await liveV2(taskQueue, {
      beforeV2: (p) =>
        queryDb(p.database!.name, "INSERT INTO items (name) SELECT 'item-' || g FROM generate_series(1, 2000) g"),
    });
    const handle = await startDrill(taskQueue, plan, { signoffTimeoutMs: 60_000, requestedBy: 'alice' });
    const waiting = (await waitForState(
      handle,
      (s) => s.waitingFor?.gate === 'drill-signoff',
      'the drill sign-off',
    )) as DrillState;

    // While the reviewer looks: the drill's app serves the restored copy on its own port, outside the route.
    const app = waiting.candidate!;
    const items = (await (await fetch(`http://${app.host}:${app.port}/api/items`)).json()) as {
      items: Array<{ name: string }>;
    };
    assert.equal(items.items.at(-1)?.name, 'item-2000', 'the app reads the restored copy');
    assert.ok(!routedAnywhere(app.releaseId), 'the drill app is not in any route');
    const live = await fetch(`http://127.0.0.1:${plan.listen.port}/api/items`);
    assert.equal(live.headers.get('x-app-version'), 'v2', 'the service itself still serves v2');
    assert.equal((await drillRow(handle.workflowId))?.outcome, 'awaiting-sign-off', 'recorded before the sign-off');

    await assert.rejects(handle.executeUpdate(signoffUpdate, { args: [{ by: 'alice' }] }), (err: unknown) => {
      assert.ok(err instanceof WorkflowUpdateFailedError);
      assert.match(
        String(err.cause?.message),
        /four-eyes: (unverified:)?alice requested the drill of shop-.* and may not approve it/,
      );
      return true;
    });
    await handle.executeUpdate(signoffUpdate, { args: [{ by: 'bob', note: 'restored data looks right' }] });
    const r = await handle.result();

    assert.equal(r.outcome, 'passed', r.reason);
    const d = r.drill;
    assert.equal(d.snapshot?.snapshotId, snapshotId, 'the newest snapshot: v2 pre-migrate');
    assert.equal(d.snapshot?.source, 'latest');
    assert.equal(d.versionSource, 'route');
    assert.equal(r.state.version, 'v2');
    assert.ok(d.rtoMs !== undefined && d.rtoMs > 0, 'RTO measured');
    assert.equal(d.rtoTargetMs, 5 * 60_000, 'drill.rtoTarget of examples/runbook.yaml');
    assert.equal(d.overTargetByMs, undefined);
    assert.equal(d.integrity.amcheck?.ok, true, d.integrity.amcheck?.detail);
    assert.match(d.integrity.amcheck?.detail ?? '', /no corruption in \d+ relations/);
    assert.equal(d.integrity.manifest?.ok, true);
    assert.equal(d.integrity.manifest?.rows, 2_000 + 2, 'items and the two migrations');
    assert.equal(d.integrity.schema?.ok, true, d.integrity.schema?.detail);
    assert.equal(d.signoff, 'signed');
    assert.equal(d.signedOffBy, 'unverified:bob');
    assert.deepEqual(
      d.phases.map((p) => p.phase),
      ['pick-snapshot', 'restore', 'connect', 'integrity', 'start-release', 'health', 'smoke', 'sign-off', 'cleanup'],
    );
    assert.ok(d.phases.every((p) => p.ok && p.ms !== undefined));
    const readyAt = d.phases.find((p) => p.phase === 'smoke')!.finishedAtMs!;
    assert.equal(d.rtoMs, readyAt - d.phases.find((p) => p.phase === 'restore')!.startedAtMs);

    const row = await drillRow(handle.workflowId);
    assert.ok(row);
    assert.equal(row.outcome, 'passed');
    assert.equal(row.rto_seconds, d.rtoMs / 1000);
    assert.equal(row.rto_target_seconds, 300);
    assert.equal(row.over_target, false);
    assert.equal(row.snapshot_id, snapshotId);
    assert.ok(row.snapshot_age_seconds !== null && row.snapshot_age_seconds >= 0);
    assert.equal(row.signed_off_by, 'unverified:bob');
    assert.deepEqual(Object.keys(row.phase_timings).sort(), d.phases.map((p) => p.phase).sort());
    assert.equal(row.integrity?.amcheck?.ok, true);
    assert.ok(row.finished_at);

    const described = await handle.describe();
    assert.equal(described.typedSearchAttributes.get(RunbookRtoSeconds), d.rtoMs / 1000);
    await assertCleanedUp(plan);
    assert.deepEqual(d.cleanup, [`stopped the app (${app.releaseId})`, `dropped ${d.scratchDatabase}`]);
  });

  it('a corrupt snapshot: failed at restore with the verify reason; cleanup done, nothing started', async () => {
    const { plan, snapshotId } = await liveV1(taskQueue);
    const dump = snapshotPath(plan, snapshotId);
    const bytes = readFileSync(dump);
    bytes[Math.floor(bytes.length / 2)]! ^= 0xff;
    writeFileSync(dump, bytes);

    const handle = await startDrill(taskQueue, plan);
    const r = await handle.result();
    assert.equal(r.outcome, 'failed');
    assert.equal(r.drill.failedPhase, 'restore');
    assert.match(
      r.reason,
      new RegExp(`^restore: snapshot ${snapshotId} cannot be restored: the dump .* is corrupt: its sha256 is`),
    );
    assert.equal(r.drill.rtoMs, undefined);
    assert.deepEqual(r.drill.cleanup, [`dropped ${r.drill.scratchDatabase}`]);
    const row = await drillRow(handle.workflowId);
    assert.equal(row?.outcome, 'failed');
    assert.equal(row?.reason, r.reason);
    assert.equal(row?.rto_seconds, null);
    await assertCleanedUp(plan);
  });

  it('a restored copy that does not match its manifest fails at integrity, and the app is never started', async () => {
    const { plan, snapshotId } = await liveV1(taskQueue);
    const file = snapshotManifest(plan, snapshotId);
    const manifest = JSON.parse(readFileSync(file, 'utf8')) as { tables: unknown[] };
    manifest.tables.push({ table: 'public.ghosts', rows: 5, checksum: '0' });
    writeFileSync(file, JSON.stringify(manifest));
    // Changed on disk by someone without the worker secret: refused before the restore runs.
    const refused = await (await startDrill(taskQueue, plan)).result();
    assert.equal(refused.outcome, 'failed');
    assert.equal(refused.drill.failedPhase, 'restore');
    assert.match(
      refused.reason,
      new RegExp(`^restore: snapshot ${snapshotId} is not restored: its manifest was changed after it was signed`),
    );
    assert.ok(!refused.drill.phases.some((p) => p.phase === 'start-release'));
    // The same manifest signed with the worker's key (as if taken so): the restore runs, the comparison catches it.
    const key = deriveKey(loadWorkerSecret({}, testStack().settings.home), 'manifests');
    writeFileSync(file, JSON.stringify(signManifest(manifest as unknown as SnapshotManifest, key)));
    const r = await (await startDrill(taskQueue, plan)).result();
    assert.equal(r.outcome, 'failed');
    assert.equal(r.drill.failedPhase, 'integrity');
    assert.match(
      r.reason,
      /^integrity: the restored copy does not match the snapshot's manifest \(public\.ghosts: missing, snapshot has 5 rows\)/,
    );
    assert.equal(r.drill.integrity.amcheck?.ok, true);
    assert.ok(!r.drill.phases.some((p) => p.phase === 'start-release'));
    await assertCleanedUp(plan);
  });

  it("a snapshot behind the release's migrations is reported and migrated as a recovery would; a leftover scratch database is cleaned and restored again", async () => {
    const { plan, snapshotId } = await liveV1(taskQueue);
    // A crashed earlier attempt of this very drill left its scratch database half-restored.
    const workflowId = uniqueName('drill-leftover');
    const scratch = scratchDatabaseFor(plan.database!.name, workflowId);
    await queryDb('postgres', `CREATE DATABASE ${scratch}`);
    await queryDb('postgres', `COMMENT ON DATABASE ${scratch} IS 'runbook: restoring snapshot ${snapshotId}'`);
    await queryDb(scratch, 'CREATE TABLE half_restored (x int)');

    const r = await (await startDrill(taskQueue, plan, {}, workflowId)).result();
    assert.equal(r.outcome, 'passed', r.reason);
    assert.ok(
      r.state.timeline.some(
        (t) => t.message === `${scratch} was left by an interrupted attempt: dropped and restored again`,
      ),
    );
    const schema = r.drill.integrity.schema!;
    assert.equal(schema.ok, false);
    assert.equal(schema.snapshotVersion, null);
    assert.deepEqual(schema.pending, ['1700000000000_create-items', '1700000100000_add-items-price-cents']);
    assert.equal(schema.expectedVersion, '1700000100000_add-items-price-cents');
    assert.match(
      schema.detail,
      /the snapshot is at migration none, the release expects 1700000100000_add-items-price-cents: 2 migration\(s\) behind/,
    );
    assert.equal(schema.migrated, true);
    assert.ok(r.drill.phases.some((p) => p.phase === 'migrate' && p.ok));
    assert.equal(r.state.version, 'v1');
    await assertCleanedUp(plan);
  });

  it('over the RTO target: passed, marked, and says by how much', async () => {
    const { plan } = await liveV1(taskQueue);
    const tight = { ...plan, drill: { rtoTargetMs: 1 } };
    const r = await (await startDrill(taskQueue, tight)).result();
    assert.equal(r.outcome, 'passed', r.reason);
    assert.ok(r.drill.overTargetByMs !== undefined && r.drill.overTargetByMs === r.drill.rtoMs! - 1);
    assert.match(r.reason, /OVER the 0\.0s target by \d/);
  });

  it('a cancelled drill cleans up (app stopped, scratch database dropped) and ends as cancelled', async () => {
    const { plan } = await liveV1(taskQueue);
    const handle = await startDrill(taskQueue, plan, { signoffTimeoutMs: 60_000 });
    const waiting = await waitForState(handle, (s) => s.waitingFor?.gate === 'drill-signoff', 'the sign-off');
    assert.equal((await drillAppsLeft(plan)).length, 1, 'the app runs while the drill waits');
    await handle.cancel();
    await assert.rejects(handle.result(), (err: unknown) => {
      assert.ok(err instanceof WorkflowFailedError);
      assert.match(String(err.cause?.message), /cancel/i);
      return true;
    });
    const row = await drillRow(handle.workflowId);
    assert.equal(row?.outcome, 'cancelled');
    assert.match(row?.reason ?? '', /cancelled by an operator during sign-off/);
    assert.ok(!routedAnywhere(waiting.candidate!.releaseId));
    await assertCleanedUp(plan);
  });

  it('disk full during the restore (the store fails as pg_restore does): failed at restore, the leftover dropped', async () => {
    const queue = uniqueName('drill-disk-full');
    const config = testStack().workerConfig(queue);
    const urlFor = (db: string) => siblingDatabaseUrl(config.DATABASE_URL, db);
    const platform = createSingleHostPlatform({
      home: config.RUNBOOK_HOME,
      haproxySocket: config.HAPROXY_SOCKET,
      urlFor,
      workerSecret: loadWorkerSecret({}, config.RUNBOOK_HOME),
      serviceRoles: true,
    });
    // The restore creates the target, pg_restore runs out of space, and the half-restored copy stays behind.
    const snapshots: SnapshotStore = {
      ...platform.snapshots,
      async restore(snapshotId, target) {
        await queryDb('postgres', `CREATE DATABASE ${target}`);
        throw new PlatformError(
          `restore of snapshot ${snapshotId} into "${target}": pg_restore failed (1): pg_restore: error: could not execute query: ` +
            `ERROR:  could not extend file "base/16384/16391": No space left on device\nHINT:  Check free disk space.`,
          { type: 'SnapshotError', permanent: false },
        );
      },
    };
    const pool = new pg.Pool({ connectionString: config.DATABASE_URL, max: 4 });
    await migrateOrchestratorDb(pool);
    const connection = await NativeConnection.connect(nativeConnectionOptions(config.temporal));
    const custom = await Worker.create({
      connection,
      namespace: config.temporal.namespace,
      taskQueue: queue,
      workflowBundle: await workflowBundle(),
      activities: createActivities({
        runbookConfig: runbookConfigFor(queue),
        db: pool,
        haproxy: platform.runtime,
        platforms: createPlatformRegistry({
          'single-host': () => ({
            router: platform.router,
            releases: platform.releases,
            snapshots,
            migrator: platform.migrator,
            swapDatabases: async () => 'swapped',
            drillChecks: createDrillChecks({ urlFor, binDir: postgresClientBinDir()! }),
          }),
        }),
        records: createPgRecords(pool, async () => false),
        drillRuns: { record: (row) => recordDrillRun(pool, row) },
      }),
      shutdownGraceTime: '1s',
    });
    const running = custom.run();
    try {
      const { plan } = await liveV1(taskQueue);
      const handle = await startDrill(queue, plan);
      const r = await handle.result();
      assert.equal(r.outcome, 'failed');
      assert.equal(r.drill.failedPhase, 'restore');
      assert.match(r.reason, /^restore: the disk is full: .*No space left on device/);
      assert.equal(
        r.drill.phases.filter((p) => p.phase === 'restore').length,
        1,
        'not retried: a full disk stays full',
      );
      assert.equal((await drillRow(handle.workflowId))?.outcome, 'failed');
      await assertCleanedUp(plan);
    } finally {
      custom.shutdown();
      await running;
      await connection.close();
      await pool.end();
    }
  });

  it('SIGKILL of the worker during the restore: a new worker finishes the drill; one scratch database, cleaned once', async () => {
    const crashQueue = uniqueName('drill-crash');
    const setup = await startWorker(crashQueue);
    const { plan } = await liveV1(crashQueue);
    await queryDb(
      plan.database!.name,
      "INSERT INTO items (name) SELECT 'bulk-' || g FROM generate_series(1, 600000) g",
    );
    await setup.stop();
    const doomed = spawnChildWorker(crashQueue);
    let survivor: { stop(): Promise<void> } | undefined;
    try {
      const handle = await startDrill(crashQueue, plan, { fresh: true });
      await waitForState(handle, (s) => s.phase === 'restore', 'the restore', 90_000);
      // Kill once the scratch database exists, so that the new worker meets what the killed one left.
      let during: string[] = [];
      for (let i = 0; i < 300 && during.length === 0; i++) {
        during = await scratchLeft(plan);
        if (during.length === 0) await new Promise((resolve) => setTimeout(resolve, 50));
      }
      assert.equal(during.length, 1, `one scratch database: ${during.join(', ')}`);
      await doomed.kill();
      survivor = await startWorker(crashQueue, 'survivor');
      const r = await handle.result();
      assert.equal(r.outcome, 'passed', r.reason);
      assert.equal(r.drill.snapshot?.source, 'fresh');
      // The killed attempt left a half-restored copy (dropped and restored again) or, if pg_restore outlived its
      // worker long enough to finish, a complete one (adopted): never a second scratch database.
      assert.ok(
        r.state.timeline.some(
          (t) =>
            t.message.endsWith('was left by an interrupted attempt: dropped and restored again') ||
            t.message.endsWith('by an earlier attempt: adopted'),
        ),
        "the new worker found the killed attempt's copy",
      );
      assert.equal(r.drill.integrity.manifest?.rows, 600_000 + 2);
      assert.equal(r.drill.phases.filter((p) => p.phase === 'cleanup').length, 1, 'cleaned once');
      assert.deepEqual(r.drill.cleanup, [
        `stopped the app (${r.state.candidate!.releaseId})`,
        `dropped ${r.drill.scratchDatabase}`,
      ]);
      await assertCleanedUp(plan);
    } finally {
      await doomed.kill();
      await survivor?.stop();
    }
  });
});

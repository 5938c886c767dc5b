import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import type { WorkflowHandle } from '@temporalio/client';
import type { SingleHostService as ResolvedService } from '../../src/shared/service-plan';
import { commandLine, isAlive } from '../../src/system/processes';
import type { deployService } from '../../src/workflows';
import { CLUSTER_DATABASES, CLUSTER_PROCESSES, clusterPaths, clusterPids } from '../../src/stack/temporal-cluster';
import { postgresComponent } from '../../src/stack/postgres';
import { up } from '../../src/stack/stack';
import { approveUpdate } from '../../src/shared/messages';
import { testStack, uniqueName, useWorker } from '../harness';
import { activityHolds } from '../helpers/chaos';
import {
  liveV2,
  queryDb,
  releaseHistory,
  serviceWithV1,
  startDeploy,
  startRollback,
  waitForState,
  waitingAt,
} from '../workflows/deploy-fixture';

/**
 * The Temporal server built from its Go module (`runbook up --cluster`: history, matching and the frontend in three
 * processes, persistence and visibility in the stack's PostgreSQL), as `npm run test:cluster` starts it for the whole
 * run (RUNBOOK_TEST_TEMPORAL_SERVER=cluster). The same run also takes deployService, rollbackService and the drill
 * tests through this server.
 */
describe('the Temporal server on PostgreSQL (runbook up --cluster)', function () {
  this.timeout(300_000);
  const holds = activityHolds();
  const { taskQueue } = useWorker('cluster', () => ({ wrapActivities: holds.wrap }));

  /** Kills the Temporal server's processes with SIGKILL (a crash) and waits until they are gone; returns their pids. */
  async function killServer(): Promise<number[]> {
    const pids = Object.values(clusterPids(testStack().settings.home));
    assert.equal(pids.length, Object.keys(CLUSTER_PROCESSES).length, 'the server runs');
    for (const pid of pids) process.kill(pid, 'SIGKILL');
    for (let i = 0; i < 100 && pids.some(isAlive); i++) await sleep(50);
    assert.ok(!pids.some(isAlive), 'the server is gone');
    return pids;
  }

  /** What `runbook up` does after a crash: PostgreSQL and HAProxy are adopted, the server is started again. */
  async function startServerAgain(killed: number[]): Promise<void> {
    await up(testStack().settings, () => {}, { worker: false });
    const restarted = Object.values(clusterPids(testStack().settings.home));
    assert.equal(restarted.length, killed.length, 'every process of the server runs again');
    assert.ok(!restarted.some((pid) => killed.includes(pid)), 'new processes');
  }

  /** A service with v1 live, and a deploy of v2 in its 8 s bake at 50%. */
  async function v2InItsBake() {
    const plan = await serviceWithV1(taskQueue, {
      traffic: {
        steps: [
          { weight: 50, bakeMs: 8_000 },
          { weight: 100, bakeMs: 0 },
        ],
      },
    });
    const handle = await startDeploy(taskQueue, plan, 'v2');
    await waitForState(handle, (s) => s.phase === 'traffic' && (s.weights.v2 ?? 0) > 0, 'v2 taking traffic');
    return { plan, handle };
  }

  /** The deploy succeeded with v2 live, both releases recorded once and each migration applied once. */
  async function succeededOnce(plan: ResolvedService, handle: WorkflowHandle<typeof deployService>) {
    const result = await handle.result();
    assert.equal(result.outcome, 'succeeded', result.reason);
    assert.deepEqual(result.state.weights, { v1: 0, v2: 100 });
    assert.deepEqual(
      (await releaseHistory(plan.service)).map((r) => [r.version, r.outcome]),
      [
        ['v1', 'succeeded'],
        ['v2', 'succeeded'],
      ],
      'both releases recorded once in the orchestrator database',
    );
    const [migrations] = await queryDb<{ n: string }>(plan.database!.name, 'SELECT count(*) AS n FROM pgmigrations');
    assert.equal(Number(migrations?.n), 2, 'each migration applied once');
  }

  before(function () {
    assert.equal(
      testStack().settings.temporalServer,
      'cluster',
      'these tests need the cluster: npm run test:cluster (RUNBOOK_TEST_TEMPORAL_SERVER=cluster)',
    );
  });

  it('writes no password into its configuration, and keeps its files private', () => {
    const p = clusterPaths(testStack().settings.home);
    const password = readFileSync(p.passwordFile, 'utf8').trim();
    assert.ok(password.length >= 32, 'a generated password');
    const config = readFileSync(p.config, 'utf8');
    assert.ok(!config.includes(password), 'the password is not in the configuration');
    assert.match(config, /password: '\{\{ env "RUNBOOK_TEMPORAL_DB_PASSWORD" \}\}'/);
    assert.match(config, /^# .*enable-template/m);
    const processes = Object.values(p.processes).flatMap(({ log, pidFile }) => [log, pidFile]);
    for (const file of [p.config, p.passwordFile, p.ports, ...processes]) {
      assert.equal(statSync(file).mode & 0o777, 0o600, `${file} is private`);
    }
    assert.equal(statSync(p.dir).mode & 0o777, 0o700);
  });

  it('runs history, matching, and the frontend with the worker service in three processes; a crashed one is started again alone', async () => {
    const { home } = testStack().settings;
    const before = clusterPids(home);
    for (const [name, services] of Object.entries(CLUSTER_PROCESSES)) {
      const pid = before[name as keyof typeof CLUSTER_PROCESSES];
      assert.ok(pid, `the ${name} process runs`);
      const flags = [...(commandLine(pid) ?? '').matchAll(/--service (\w+)/g)].map((m) => m[1]);
      assert.deepEqual(flags, [...services], `the ${name} process runs ${services.join(' and ')}`);
    }
    assert.equal(new Set(Object.values(before)).size, 3, 'three processes');

    process.kill(before.history!, 'SIGKILL');
    for (let i = 0; i < 100 && isAlive(before.history!); i++) await sleep(50);
    await up(testStack().settings, () => {}, { worker: false });
    const after = clusterPids(home);
    assert.ok(after.history && after.history !== before.history, 'a new history process');
    assert.deepEqual([after.matching, after.frontend], [before.matching, before.frontend], 'the others adopted');
  });

  it('a deploy carries on across a kill -9 of the server in the bake and its restart, and its history is in PostgreSQL', async () => {
    const { plan, handle } = await v2InItsBake();
    await startServerAgain(await killServer());

    await succeededOnce(plan, handle);

    const executions = await queryDb<{ n: string }>(
      CLUSTER_DATABASES.default,
      'SELECT count(*) AS n FROM executions WHERE workflow_id = $1',
      [handle.workflowId],
    );
    assert.equal(Number(executions[0]?.n), 1, "the deploy's mutable state is a row of the server's database");
    const rows = await queryDb<{ status: number }>(
      CLUSTER_DATABASES.visibility,
      'SELECT status FROM executions_visibility WHERE workflow_id = $1',
      [handle.workflowId],
    );
    assert.deepEqual(rows, [{ status: 2 }], 'completed (2) in the visibility database');
    const found = [];
    for await (const w of testStack().client.workflow.list({
      query: `RunbookKind = 'deploy' AND RunbookService = '${plan.service}' AND RunbookOutcome = 'succeeded'`,
    })) {
      found.push(w.workflowId);
    }
    assert.ok(found.includes(handle.workflowId), `found by its search attributes: ${JSON.stringify(found)}`);
  });
  it('a rollback with a database restore carries on across a kill -9 of the server during the restore: one restored database, swapped once', async () => {
    const { plan, snapshotId } = await liveV2(taskQueue);
    const database = plan.database!.name;
    const items = async (name: string) =>
      Number((await queryDb<{ n: string }>(name, 'SELECT count(*) AS n FROM items'))[0]?.n);
    const inSnapshot = await items(database);
    await queryDb(database, "INSERT INTO items (name) VALUES ('written-after-the-snapshot')");
    const workflowId = uniqueName('rollback-restore');
    const restore = holds.hold(workflowId, 'restoreSnapshot');
    const handle = await startRollback(taskQueue, plan, { restoreSnapshotId: snapshotId, toVersion: 'v1' }, workflowId);
    await waitingAt(handle, 'restore-database');
    await handle.executeUpdate(approveUpdate, { args: [{ by: 'alice' }] });

    await restore.reached; // the restore activity has started on the worker
    const killed = await killServer();
    restore.release(); // it restores while the server is down, and reports to the server started again
    const restarting = Date.now();
    await startServerAgain(killed);
    const restartedInMs = Date.now() - restarting;

    const result = await handle.result();
    assert.equal(result.outcome, 'succeeded', result.reason);
    const { verified, replacedAs } = result.state.restore ?? {};
    assert.equal(verified, true, 'the restored database was verified against the manifest');
    const databases = await queryDb<{ datname: string }>(
      'postgres',
      'SELECT datname FROM pg_database WHERE datname LIKE $1 ORDER BY 1',
      [`${database}%`],
    );
    assert.deepEqual(
      databases.map((d) => d.datname),
      [database, replacedAs].sort(),
      'one restored database swapped in, the replaced one kept, no leftover restore target',
    );
    assert.equal(await items(database), inSnapshot, 'the live database is back at the snapshot');
    assert.equal(await items(replacedAs!), inSnapshot + 1, 'the replaced database keeps the row written since');
    const history = (await handle.fetchHistory()).events ?? [];
    const scheduled = history.filter((e) =>
      ['restoreSnapshot', 'swapDatabase'].includes(e.activityTaskScheduledEventAttributes?.activityType?.name ?? ''),
    );
    assert.equal(scheduled.length, 2, 'one restore, one swap');
    const restoreStarted = history.find(
      (e) => String(e.activityTaskStartedEventAttributes?.scheduledEventId ?? '') === String(scheduled[0]?.eventId),
    )?.activityTaskStartedEventAttributes;
    console.log(
      `    server started again in ${(restartedInMs / 1000).toFixed(1)} s; the restore completed on attempt ${restoreStarted?.attempt}`,
    );
  });

  it("a deploy carries on across a restart of PostgreSQL in its bake (the server's, the orchestrator's and the app's)", async () => {
    const { settings } = testStack();
    const { plan, handle } = await v2InItsBake();
    const ctx = { settings, log: () => {} };
    assert.equal(await postgresComponent.stop(ctx), true, 'PostgreSQL was running and stopped');
    await sleep(2_000);
    await postgresComponent.start(ctx);

    await succeededOnce(plan, handle);
  });
});

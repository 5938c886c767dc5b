import assert from 'node:assert/strict';
import { temporal } from '@temporalio/proto';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { WorkflowHandle } from '@temporalio/client';
import { approveUpdate } from '../../src/shared/messages';
import type { SingleHostService as ResolvedService } from '../../src/shared/service-plan';
import type { deployService, restoreDrill, rollbackService } from '../../src/workflows';
import { spawnChildWorker, testStack, uniqueName } from '../harness';
import type { KillPoint } from '../helpers/chaos';
import { requestFor, shopPlan, sideEffects, waitingAt } from './deploy-fixture';

/**
 * Issue 16 (chaos, SIGKILL at every activity boundary). The workers here are child processes
 * (test/helpers/kill-point-worker.ts: src/worker.ts's composition root, its activities wrapped by withKillPoint). A
 * clean run of each runbook (a first deploy; a rollback to v1 with a database restore; a drill) lists its activities
 * from the workflow history: each (activity type, occurrence) is a boundary, killed twice: once the activity has
 * started (before it did anything) and once it ran to the end (before its completion reached Temporal). Per boundary,
 * the worker process stops there, the test kill -9s it, starts a fresh worker process, and the runbook must reach the
 * clean run's outcome with the clean run's side effects, counted from the real things: migrations applied (the
 * service's PostgreSQL), snapshot dumps (the snapshot folder), release processes started (the release folder) and
 * still running, release history and drill rows (the orchestrator's PostgreSQL), scratch databases left.
 *
 * CI time: every boundary costs a kill, a worker start (a workflow bundle) and the hand-over of the killed activity
 * (its heartbeat timeout, or its start-to-close timeout for the quick ones, 15 to 30 s). CI runs a seeded sample:
 * RUNBOOK_TEST_KILL_SAMPLE boundaries per runbook (default 1; each is killed twice), chosen by
 * RUNBOOK_TEST_CHAOS_SEED (default 'kill');
 * RUNBOOK_TEST_KILL_SAMPLE=all runs every boundary of the three runbooks (35 s per kill, 30 min in all);
 * RUNBOOK_TEST_KILL_SAMPLE=takeSnapshot#1,migrateDatabase#1 runs the boundaries named (of each runbook that has them).
 */
describe('SIGKILL of the worker process at every activity boundary (real stack)', function () {
  this.timeout(3_600_000);
  const taskQueue = uniqueName('chaos-kill');
  const entry = path.join(__dirname, '../helpers/kill-point-worker.ts');
  let dir = '';
  let control = '';
  let spawned = 0;
  let worker: ReturnType<typeof spawnChildWorker> | undefined;
  const sample = process.env.RUNBOOK_TEST_KILL_SAMPLE;
  const seed = process.env.RUNBOOK_TEST_CHAOS_SEED ?? 'kill';
  const figures: string[] = [];

  const spawnWorker = () => {
    spawned += 1;
    worker = spawnChildWorker(taskQueue, {
      entry,
      env: { RUNBOOK_TEST_KILL_CONTROL: control },
      logFile: path.join(dir, `worker-${spawned}.log`),
    });
  };
  const aim = (point: KillPoint | undefined) => {
    rmSync(`${control}.hit`, { force: true });
    writeFileSync(control, JSON.stringify(point ?? {}));
  };

  before(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'chaos-kill-'));
    control = path.join(dir, 'kill-point.json');
    aim(undefined);
    spawnWorker();
  });
  after(async () => {
    await worker?.kill();
    if (figures.length) console.log(`    ${figures.join('\n    ')}`);
    rmSync(dir, { recursive: true, force: true });
  });

  /** The boundaries of a finished run: each scheduled activity as (type, occurrence), in order. */
  async function boundaries(workflowId: string): Promise<Array<Pick<KillPoint, 'activityType' | 'occurrence'>>> {
    const history = await testStack().client.workflow.getHandle(workflowId).fetchHistory();
    const seen = new Map<string, number>();
    const list: Array<Pick<KillPoint, 'activityType' | 'occurrence'>> = [];
    for (const e of history.events ?? []) {
      const type = e.activityTaskScheduledEventAttributes?.activityType?.name;
      if (!type) continue;
      const occurrence = (seen.get(type) ?? 0) + 1;
      seen.set(type, occurrence);
      list.push({ activityType: type, occurrence });
    }
    return list;
  }

  /** When the activity of `point` was started again after the kill (its last attempt's start, from the history). */
  async function restartedAt(
    point: KillPoint,
  ): Promise<{ attempt: number; at: number; timeout: string | undefined } | undefined> {
    const history = await testStack().client.workflow.getHandle(point.workflowId).fetchHistory();
    let n = 0;
    let scheduledId: string | undefined;
    for (const e of history.events ?? []) {
      if (e.activityTaskScheduledEventAttributes?.activityType?.name === point.activityType && ++n === point.occurrence)
        scheduledId = String(e.eventId);
      const started = e.activityTaskStartedEventAttributes;
      if (started && scheduledId && String(started.scheduledEventId) === scheduledId) {
        const seconds = Number(e.eventTime?.seconds ?? 0);
        const type = started.lastFailure?.timeoutFailureInfo?.timeoutType;
        return {
          attempt: started.attempt ?? 1,
          at: seconds * 1000 + Math.floor((e.eventTime?.nanos ?? 0) / 1e6),
          timeout: type === undefined || type === null ? undefined : temporal.api.enums.v1.TimeoutType[type],
        };
      }
    }
    return undefined;
  }

  /**
   * The boundaries of `runbook` to kill at, each killed once started and once ran: all of them, the ones named
   * (`takeSnapshot#1,migrateDatabase#1`), or a seeded sample of N (default `inCi`).
   */
  function chosen(runbook: string, list: Array<Pick<KillPoint, 'activityType' | 'occurrence'>>, inCi: number) {
    const name = (b: Pick<KillPoint, 'activityType' | 'occurrence'>) => `${b.activityType}#${b.occurrence}`;
    const rank = (b: Pick<KillPoint, 'activityType' | 'occurrence'>) =>
      createHash('sha256')
        .update(`${seed}/${runbook}/${name(b)}`)
        .digest('hex');
    let picked = list;
    if (sample && /[a-z]/i.test(sample) && sample !== 'all') {
      const named = sample.split(',').map((n) => n.trim());
      picked = list.filter((b) => named.includes(name(b)));
    } else if (sample !== 'all') {
      picked = [...list].sort((a, b) => rank(a).localeCompare(rank(b))).slice(0, Number(sample ?? inCi));
    }
    return picked.flatMap((b) => (['started', 'ran'] as const).map((when) => ({ ...b, when })));
  }

  /**
   * Runs `start` under the kill point: waits until the worker stops there (fails if the run ends first), kill -9s
   * the worker process, starts a fresh one, and returns the run's result with the figures.
   */
  async function killedRun<R>(
    point: KillPoint,
    start: (workflowId: string) => Promise<WorkflowHandle>,
    drive?: (handle: WorkflowHandle) => Promise<unknown>,
  ): Promise<R> {
    aim(point);
    const began = Date.now();
    const handle = await start(point.workflowId);
    const driving = drive?.(handle);
    driving?.catch(() => {});
    for (;;) {
      if (existsSync(`${control}.hit`)) break;
      const { status } = await handle.describe();
      if (status.name !== 'RUNNING')
        assert.fail(`${point.activityType}#${point.occurrence} was never reached: the run ended ${status.name}`);
      await sleep(100);
    }
    const killedAt = Date.now();
    const doomed = worker!;
    const pid = doomed.process.pid;
    await doomed.kill();
    assert.equal(doomed.process.signalCode, 'SIGKILL', `worker ${pid} was killed by SIGKILL`);
    aim(undefined);
    spawnWorker();
    const result = (await handle.result()) as R;
    await driving;
    const again = await restartedAt(point);
    assert.ok(again && again.attempt >= 2, `${point.activityType}#${point.occurrence} ran again after the kill`);
    // every activity heartbeats (the worker's autoHeartbeat): the dead worker's attempt ends on its heartbeat timeout
    assert.equal(again.timeout, 'TIMEOUT_TYPE_HEARTBEAT', `${point.activityType}#${point.occurrence}: handed over how`);
    figures.push(
      `${point.activityType}#${point.occurrence} ${point.when}: run ${((Date.now() - began) / 1000).toFixed(1)} s, ` +
        `hand-over (kill to next attempt started) ${((again.at - killedAt) / 1000).toFixed(1)} s`,
    );
    return result;
  }

  const client = () => testStack().client;
  const deploy = (plan: ResolvedService, version: string, workflowId = uniqueName(`deploy-${version}`)) =>
    client().workflow.start<typeof deployService>('deployService', {
      taskQueue,
      workflowId,
      args: [{ ...requestFor(taskQueue, plan), version, requestedBy: 'dave' }],
    });
  const deployed = async (plan: ResolvedService, version: string) => {
    const r = await (await deploy(plan, version)).result();
    assert.equal(r.outcome, 'succeeded', r.reason);
    return r;
  };

  it('a first deploy: each boundary killed, the deploy succeeds; one snapshot, each migration once, one release', async () => {
    const cleanPlan = await shopPlan();
    const clean = await deploy(cleanPlan, 'v1');
    assert.equal((await clean.result()).outcome, 'succeeded');
    const expected = await sideEffects(cleanPlan);
    assert.deepEqual(
      { ...expected, history: undefined },
      { migrations: 2, snapshots: 1, releasesStarted: 1, releasesRunning: 1, history: undefined },
    );
    const list = await boundaries(clean.workflowId);
    figures.push(
      `deploy: ${list.length} boundaries: ${list.map((b) => `${b.activityType}#${b.occurrence}`).join(' ')}`,
    );
    for (const b of chosen('deploy', list, 1)) {
      const plan = await shopPlan();
      const point = { ...b, workflowId: uniqueName('deploy-kill') };
      const result = await killedRun<Awaited<ReturnType<typeof deployService>>>(point, (id) => deploy(plan, 'v1', id));
      assert.equal(result.outcome, 'succeeded', `${b.activityType}#${b.occurrence} ${b.when}: ${result.reason}`);
      assert.deepEqual(await sideEffects(plan), expected, `${b.activityType}#${b.occurrence} ${b.when}`);
    }
  });

  /** A service with v1 then v2 live (on the current worker), its plan requiring two approvers to restore. */
  async function serviceAtV2() {
    const base = await shopPlan();
    const plan: ResolvedService = {
      ...base,
      rollback: {
        ...base.rollback,
        dbRestoreApprovers: ['alice', 'bob'],
        approvals: { ...base.rollback.approvals, timeoutMs: 600_000 },
      },
    };
    await deployed(plan, 'v1');
    const v2 = await deployed(plan, 'v2');
    return { plan, snapshotId: v2.snapshotId! };
  }
  const rollback = (plan: ResolvedService, snapshotId: string, workflowId = uniqueName('rollback')) =>
    client().workflow.start<typeof rollbackService>('rollbackService', {
      taskQueue,
      workflowId,
      args: [
        {
          ...requestFor(taskQueue, plan),
          requestedBy: 'dave',
          reason: 'chaos',
          restoreSnapshotId: snapshotId,
          toVersion: 'v1',
        },
      ],
    });
  const approveRestore = async (handle: WorkflowHandle) => {
    await waitingAt(handle, 'restore-database', 600_000);
    await handle.executeUpdate(approveUpdate, { args: [{ by: 'bob', note: 'chaos' }] });
  };

  it('a rollback with a database restore: each sampled boundary killed, it succeeds; one safety snapshot, one release', async () => {
    const clean = await serviceAtV2();
    const cleanRun = await rollback(clean.plan, clean.snapshotId);
    await approveRestore(cleanRun);
    const cleanResult = await cleanRun.result();
    assert.equal(cleanResult.outcome, 'succeeded', cleanResult.reason);
    const expected = await sideEffects(clean.plan);
    assert.equal(expected.snapshots, 3, 'a snapshot per deploy and one safety snapshot');
    const list = await boundaries(cleanRun.workflowId);
    figures.push(
      `rollback: ${list.length} boundaries: ${list.map((b) => `${b.activityType}#${b.occurrence}`).join(' ')}`,
    );
    for (const b of chosen('rollback', list, 1)) {
      const { plan, snapshotId } = await serviceAtV2();
      const point = { ...b, workflowId: uniqueName('rollback-kill') };
      const result = await killedRun<Awaited<ReturnType<typeof rollbackService>>>(
        point,
        (id) => rollback(plan, snapshotId, id),
        approveRestore,
      );
      assert.equal(result.outcome, 'succeeded', `${b.activityType}#${b.occurrence} ${b.when}: ${result.reason}`);
      assert.equal(result.state.restore?.verified, true);
      assert.deepEqual(await sideEffects(plan), expected, `${b.activityType}#${b.occurrence} ${b.when}`);
    }
  });

  const drill = (plan: ResolvedService, workflowId = uniqueName('drill')) =>
    client().workflow.start<typeof restoreDrill>('restoreDrill', {
      taskQueue,
      workflowId,
      args: [{ ...requestFor(taskQueue, plan), requestedBy: 'dave' }],
    });

  it('a drill: each sampled boundary killed, it passes; one drill row, its scratch database cleaned', async () => {
    const cleanPlan = await shopPlan();
    await deployed(cleanPlan, 'v1');
    const cleanRun = await drill(cleanPlan);
    const cleanResult = await cleanRun.result();
    assert.equal(cleanResult.outcome, 'passed', cleanResult.reason);
    const expected = await sideEffects(cleanPlan, cleanRun.workflowId);
    assert.equal(expected.drillRows, 1);
    assert.equal(expected.scratchLeft, 0);
    const list = await boundaries(cleanRun.workflowId);
    figures.push(`drill: ${list.length} boundaries: ${list.map((b) => `${b.activityType}#${b.occurrence}`).join(' ')}`);
    for (const b of chosen('drill', list, 1)) {
      const plan = await shopPlan();
      await deployed(plan, 'v1');
      const point = { ...b, workflowId: uniqueName('drill-kill') };
      const result = await killedRun<Awaited<ReturnType<typeof restoreDrill>>>(point, (id) => drill(plan, id));
      assert.equal(result.outcome, 'passed', `${b.activityType}#${b.occurrence} ${b.when}: ${result.reason}`);
      assert.deepEqual(
        await sideEffects(plan, point.workflowId),
        expected,
        `${b.activityType}#${b.occurrence} ${b.when}`,
      );
    }
  });
});

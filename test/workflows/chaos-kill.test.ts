import assert from 'node:assert/strict';
import { temporal } from '@temporalio/proto';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { WorkflowHandle } from '@temporalio/client';
import { approveUpdate } from '../../src/shared/messages';
import type { SingleHostService as ResolvedService } from '../../src/shared/service-plan';
import type { deployService, restoreDrill, rollbackService } from '../../src/workflows';
import { spawnChildWorker, testStack, uniqueName, workflowBundle } from '../harness';
import type { KillPoint } from '../helpers/chaos';
import { requestFor, runner, shopPlan, sideEffects, waitingAt } from './deploy-fixture';

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
 * Every boundary of the three runbooks is killed on each run (106 kills). They run side by side in lanes
 * (RUNBOOK_TEST_CHAOS_LANES, default 6): each lane has its own task queue, kill-point file and worker process, and
 * takes the next kill from a shared list when it is done with one, each kill on a service of its own. A kill costs a
 * worker start (on the workflow bundle built once) and the hand-over of the killed activity: its heartbeat timeout,
 * 10 s, which is why lanes save time. The failures of all kills are listed together at the end.
 * RUNBOOK_TEST_KILL_SAMPLE=N runs a seeded sample of N boundaries per runbook (RUNBOOK_TEST_CHAOS_SEED, default
 * 'kill'); RUNBOOK_TEST_KILL_SAMPLE=takeSnapshot#1,migrateDatabase#1 the boundaries named (of each runbook that has
 * them).
 */
describe('SIGKILL of the worker process at every activity boundary (real stack)', function () {
  this.timeout(3_600_000);
  const entry = path.join(__dirname, '../helpers/kill-point-worker.ts');
  let dir = '';
  const sample = process.env.RUNBOOK_TEST_KILL_SAMPLE ?? 'all';
  const seed = process.env.RUNBOOK_TEST_CHAOS_SEED ?? 'kill';
  const figures: string[] = [];
  let lanes: Lane[] = [];
  type Boundary = Pick<KillPoint, 'activityType' | 'occurrence'>;

  /** One task queue with its kill-point file and its worker process, which a kill replaces. */
  class Lane {
    readonly taskQueue: string;
    readonly control: string;
    worker: ReturnType<typeof spawnChildWorker> | undefined;
    spawned = 0;
    constructor(readonly index: number) {
      this.taskQueue = uniqueName(`chaos-kill-${index}`);
      this.control = path.join(dir, `kill-point-${index}.json`);
      this.aim(undefined);
      this.spawn();
    }
    spawn() {
      this.spawned += 1;
      this.worker = spawnChildWorker(this.taskQueue, {
        entry,
        env: { RUNBOOK_TEST_KILL_CONTROL: this.control, RUNBOOK_TEST_WORKFLOW_BUNDLE: path.join(dir, 'bundle.js') },
        logFile: path.join(dir, `worker-${this.index}-${this.spawned}.log`),
      });
    }
    aim(point: KillPoint | undefined) {
      rmSync(`${this.control}.hit`, { force: true });
      writeFileSync(this.control, JSON.stringify(point ?? {}));
    }
  }

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'chaos-kill-'));
    // Built once: each of the many worker processes loads it instead of bundling the workflow code again.
    writeFileSync(path.join(dir, 'bundle.js'), (await workflowBundle()).code);
    lanes = Array.from({ length: Number(process.env.RUNBOOK_TEST_CHAOS_LANES ?? 6) }, (_, i) => new Lane(i));
  });
  after(async () => {
    await Promise.all(lanes.map((l) => l.worker?.kill()));
    if (figures.length) console.log(`    ${figures.join('\n    ')}`);
    rmSync(dir, { recursive: true, force: true });
  });

  /**
   * Runs `kill` for each boundary of `jobs` on the lanes, each lane taking the next one when it is done, and fails
   * with every failed kill listed.
   */
  async function onLanes(jobs: Boundary[], kill: (job: Boundary, lane: Lane) => Promise<void>): Promise<void> {
    const queue = [...jobs];
    const failures: string[] = [];
    await Promise.all(
      lanes.map(async (lane) => {
        for (let job = queue.shift(); job; job = queue.shift()) {
          await kill(job, lane).catch((err: Error) =>
            failures.push(`${job!.activityType}#${job!.occurrence}: ${err.message}`),
          );
        }
      }),
    );
    assert.deepEqual(failures, [], `${failures.length} of ${jobs.length} kills failed`);
  }

  /** The boundaries of a finished run: each scheduled activity as (type, occurrence), in order. */
  async function boundaries(workflowId: string): Promise<Boundary[]> {
    const history = await testStack().client.workflow.getHandle(workflowId).fetchHistory();
    const seen = new Map<string, number>();
    const list: Boundary[] = [];
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
   * The boundaries of `runbook` to kill at: all of them (default), the ones named (`takeSnapshot#1,migrateDatabase#1`),
   * or a seeded sample of N.
   */
  function chosen(runbook: string, list: Boundary[]): Boundary[] {
    const name = (b: Boundary) => `${b.activityType}#${b.occurrence}`;
    const rank = (b: Boundary) =>
      createHash('sha256')
        .update(`${seed}/${runbook}/${name(b)}`)
        .digest('hex');
    if (/[a-z]/i.test(sample) && sample !== 'all') {
      const named = sample.split(',').map((n) => n.trim());
      return list.filter((b) => named.includes(name(b)));
    }
    if (sample !== 'all') return [...list].sort((a, b) => rank(a).localeCompare(rank(b))).slice(0, Number(sample));
    return list;
  }

  /**
   * The running attempt of the pending activity of `activityType` (its start, and how the attempt before it ended),
   * from the workflow's description: the history records an activity's start only once it is over.
   */
  async function pendingAttempt(handle: WorkflowHandle, activityType: string) {
    const { raw } = await handle.describe();
    const pending = raw.pendingActivities?.find((a) => a.activityType?.name === activityType);
    if (!pending) return undefined;
    const type = pending.lastFailure?.timeoutFailureInfo?.timeoutType;
    return {
      attempt: pending.attempt ?? 0,
      at:
        Number(pending.lastStartedTime?.seconds ?? 0) * 1000 + Math.floor((pending.lastStartedTime?.nanos ?? 0) / 1e6),
      timeout: type === undefined || type === null ? undefined : temporal.api.enums.v1.TimeoutType[type],
    };
  }

  /** Waits until the lane's worker stops at its kill point (fails if the run ends first), and kill -9s it. */
  async function killAtPoint(lane: Lane, point: KillPoint, handle: WorkflowHandle): Promise<number> {
    for (;;) {
      if (existsSync(`${lane.control}.hit`)) break;
      const { status } = await handle.describe();
      if (status.name !== 'RUNNING')
        assert.fail(`${point.when} (attempt ${point.attempt ?? 1}) was never reached: the run ended ${status.name}`);
      await sleep(100);
    }
    const killedAt = Date.now();
    const doomed = lane.worker!;
    const pid = doomed.process.pid;
    await doomed.kill();
    assert.equal(doomed.process.signalCode, 'SIGKILL', `worker ${pid} was killed by SIGKILL`);
    return killedAt;
  }

  /**
   * Runs `start` with the boundary `b` killed twice: the worker is kill -9ed once the activity has started (before it
   * did anything), a fresh worker takes the retried attempt and is kill -9ed once that attempt ran to the end (before
   * its completion reached Temporal), and a third worker finishes. Returns the run's result.
   */
  async function killedRun<R>(
    lane: Lane,
    b: Boundary,
    start: (workflowId: string) => Promise<WorkflowHandle>,
    drive?: (handle: WorkflowHandle) => Promise<unknown>,
  ): Promise<R> {
    const workflowId = uniqueName(`kill-${b.activityType}`);
    const started: KillPoint = { ...b, workflowId, when: 'started' };
    lane.aim(started);
    const began = Date.now();
    const handle = await start(workflowId);
    const driving = drive?.(handle);
    driving?.catch(() => {});
    const firstKill = await killAtPoint(lane, started, handle);
    const ran: KillPoint = { ...started, when: 'ran', attempt: 2 };
    lane.aim(ran);
    lane.spawn();
    const secondKill = await killAtPoint(lane, ran, handle);
    const second = await pendingAttempt(handle, b.activityType);
    lane.aim(undefined);
    lane.spawn();
    const result = (await handle.result()) as R;
    await driving;
    const third = await restartedAt(started);
    assert.ok(second?.attempt === 2 && third?.attempt === 3, `ran three times: ${JSON.stringify({ second, third })}`);
    // every activity heartbeats (the worker's autoHeartbeat): each dead worker's attempt ends on its heartbeat timeout
    assert.deepEqual([second.timeout, third.timeout], ['TIMEOUT_TYPE_HEARTBEAT', 'TIMEOUT_TYPE_HEARTBEAT']);
    figures.push(
      `${b.activityType}#${b.occurrence}: run ${((Date.now() - began) / 1000).toFixed(1)} s, hand-overs (kill to ` +
        `next attempt started) ${((second.at - firstKill) / 1000).toFixed(1)} s and ` +
        `${((third.at - secondKill) / 1000).toFixed(1)} s`,
    );
    return result;
  }

  /** Stops the release processes of a service whose kill was counted (a hundred kills would leave a hundred). */
  async function stopReleases(plan: ResolvedService): Promise<void> {
    const releases = path.join(testStack().settings.home, 'releases', `${plan.service}-${plan.environment}`);
    for (const id of existsSync(releases) ? readdirSync(releases) : [])
      await runner().stop(plan.service, plan.environment, id, 0);
  }

  const client = () => testStack().client;
  const deploy = (
    queue: string,
    plan: ResolvedService,
    version: string,
    workflowId = uniqueName(`deploy-${version}`),
  ) =>
    client().workflow.start<typeof deployService>('deployService', {
      taskQueue: queue,
      workflowId,
      args: [{ ...requestFor(queue, plan), version, requestedBy: 'dave' }],
    });
  const deployed = async (queue: string, plan: ResolvedService, version: string) => {
    const r = await (await deploy(queue, plan, version)).result();
    assert.equal(r.outcome, 'succeeded', r.reason);
    return r;
  };

  it('a first deploy: each boundary killed, the deploy succeeds; one snapshot, each migration once, one release', async () => {
    const queue = lanes[0]!.taskQueue;
    const cleanPlan = await shopPlan();
    const clean = await deploy(queue, cleanPlan, 'v1');
    assert.equal((await clean.result()).outcome, 'succeeded');
    const expected = await sideEffects(cleanPlan);
    assert.deepEqual(
      { ...expected, history: undefined },
      { migrations: 2, snapshots: 1, releasesStarted: 1, releasesRunning: 1, history: undefined },
    );
    await stopReleases(cleanPlan);
    const list = await boundaries(clean.workflowId);
    figures.push(
      `deploy: ${list.length} boundaries: ${list.map((b) => `${b.activityType}#${b.occurrence}`).join(' ')}`,
    );
    await onLanes(chosen('deploy', list), async (b, lane) => {
      const plan = await shopPlan();
      const result = await killedRun<Awaited<ReturnType<typeof deployService>>>(lane, b, (id) =>
        deploy(lane.taskQueue, plan, 'v1', id),
      );
      assert.equal(result.outcome, 'succeeded', result.reason);
      assert.deepEqual(await sideEffects(plan), expected);
      await stopReleases(plan);
    });
  });

  /** A service with v1 then v2 live (on the current worker), its plan requiring two approvers to restore. */
  async function serviceAtV2(queue: string) {
    const base = await shopPlan();
    const plan: ResolvedService = {
      ...base,
      // the deploys that set the service up switch at once (no canary to bake): the rollback is what is killed
      traffic: { steps: [{ weight: 100, bakeMs: 0 }] },
      rollback: {
        ...base.rollback,
        dbRestoreApprovers: ['alice', 'bob'],
        approvals: { ...base.rollback.approvals, timeoutMs: 600_000 },
      },
    };
    await deployed(queue, plan, 'v1');
    const v2 = await deployed(queue, plan, 'v2');
    return { plan, snapshotId: v2.snapshotId! };
  }
  const rollback = (queue: string, plan: ResolvedService, snapshotId: string, workflowId = uniqueName('rollback')) =>
    client().workflow.start<typeof rollbackService>('rollbackService', {
      taskQueue: queue,
      workflowId,
      args: [
        {
          ...requestFor(queue, plan),
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

  it('a rollback with a database restore: each boundary killed, it succeeds; one safety snapshot, one release', async () => {
    const queue = lanes[0]!.taskQueue;
    const clean = await serviceAtV2(queue);
    const cleanRun = await rollback(queue, clean.plan, clean.snapshotId);
    await approveRestore(cleanRun);
    const cleanResult = await cleanRun.result();
    assert.equal(cleanResult.outcome, 'succeeded', cleanResult.reason);
    const expected = await sideEffects(clean.plan);
    assert.equal(expected.snapshots, 3, 'a snapshot per deploy and one safety snapshot');
    await stopReleases(clean.plan);
    const list = await boundaries(cleanRun.workflowId);
    figures.push(
      `rollback: ${list.length} boundaries: ${list.map((b) => `${b.activityType}#${b.occurrence}`).join(' ')}`,
    );
    await onLanes(chosen('rollback', list), async (b, lane) => {
      const { plan, snapshotId } = await serviceAtV2(lane.taskQueue);
      const result = await killedRun<Awaited<ReturnType<typeof rollbackService>>>(
        lane,
        b,
        (id) => rollback(lane.taskQueue, plan, snapshotId, id),
        approveRestore,
      );
      assert.equal(result.outcome, 'succeeded', result.reason);
      assert.equal(result.state.restore?.verified, true);
      assert.deepEqual(await sideEffects(plan), expected);
      await stopReleases(plan);
    });
  });

  const drill = (queue: string, plan: ResolvedService, workflowId = uniqueName('drill')) =>
    client().workflow.start<typeof restoreDrill>('restoreDrill', {
      taskQueue: queue,
      workflowId,
      args: [{ ...requestFor(queue, plan), requestedBy: 'dave' }],
    });

  it('a drill: each boundary killed, it passes; one drill row, its scratch database cleaned', async () => {
    const queue = lanes[0]!.taskQueue;
    const cleanPlan = await shopPlan();
    await deployed(queue, cleanPlan, 'v1');
    const cleanRun = await drill(queue, cleanPlan);
    const cleanResult = await cleanRun.result();
    assert.equal(cleanResult.outcome, 'passed', cleanResult.reason);
    const expected = await sideEffects(cleanPlan, cleanRun.workflowId);
    assert.equal(expected.drillRows, 1);
    assert.equal(expected.scratchLeft, 0);
    await stopReleases(cleanPlan);
    const list = await boundaries(cleanRun.workflowId);
    figures.push(`drill: ${list.length} boundaries: ${list.map((b) => `${b.activityType}#${b.occurrence}`).join(' ')}`);
    await onLanes(chosen('drill', list), async (b, lane) => {
      const plan = await shopPlan();
      await deployed(lane.taskQueue, plan, 'v1');
      let workflowId = '';
      const result = await killedRun<Awaited<ReturnType<typeof restoreDrill>>>(lane, b, (id) =>
        drill(lane.taskQueue, plan, (workflowId = id)),
      );
      assert.equal(result.outcome, 'passed', result.reason);
      assert.deepEqual(await sideEffects(plan, workflowId), expected);
      await stopReleases(plan);
    });
  });
});

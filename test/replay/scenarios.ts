import type { Client, WorkflowHandle } from '@temporalio/client';
import { planDigest } from '../../src/runbook-config';
import { approveSignal, approveUpdate, rejectSignal, signoffSignal } from '../../src/shared/messages';
import type { SingleHostService as ResolvedService } from '../../src/shared/service-plan';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import type { backupService, deployService, pitrDrill, stackCheck } from '../../src/workflows';
import { ARCHIVE_CONF } from '../../src/platforms/single-host/pgbackrest';
import { databaseUrl, postgresComponent, postgresPaths, stackPgbackrest } from '../../src/stack/postgres';
import { putPlan } from '../helpers/worker-config';
import { requestFor, shopPlan, startDeploy, startRollback, waitingAt, withGates } from '../workflows/deploy-fixture';
import { liveV1, scheduledSignedDrill, startDrill } from '../workflows/drill-fixture';
import { judgedPlan, releasesWith } from '../workflows/judged-fixture';
import { commandPlan, ownReleases } from '../workflows/release-commands-fixture';
import { startLoad } from '../../src/load-generator';
import type { DeployRequest } from '../../src/shared/request';
import { signDecision, signRequest } from '../../src/signing/decisions';
import { runbookConfigFor, testStack, uniqueName } from '../harness';
import { putSigners, testKey } from '../helpers/keys';

/**
 * A production-like deploy (unsigned refused) whose request dave signed, with alice, bob and dave enrolled; returns
 * the handle and a signer of decisions for its run.
 */
async function signedDeploy(
  taskQueue: string,
  plan: ResolvedService,
  keys: Record<string, { file: string; line: () => string }>,
) {
  putSigners(
    runbookConfigFor(taskQueue),
    Object.values(keys).map((k) => k.line()),
  );
  const workflowId = uniqueName('deploy-signed');
  const request: DeployRequest = { ...requestFor(taskQueue, plan), version: 'v1', requestedBy: 'dave' };
  const handle = await testStack().client.workflow.start<typeof deployService>('deployService', {
    taskQueue,
    workflowId,
    args: [await signRequest(request, { workflowId, kind: 'deploy', key: keys.dave!.file, env: process.env })],
  });
  const runId = (await handle.describe()).runId;
  const sign = (who: string, gate: 'before-start' | 'before-traffic' | 'go-live', kind = 'approve') =>
    signDecision({ workflowId, runId, kind, gate, by: who, key: keys[who]!.file, env: process.env });
  return { handle, sign };
}

/** v1 then v2 live; returns the plan (restores approved by alice and bob) and v2's pre-migration snapshot. */
async function v1ThenV2(taskQueue: string): Promise<{ plan: ResolvedService; snapshotId: string }> {
  const base = await shopPlan();
  const plan = { ...base, rollback: { ...base.rollback, dbRestoreApprovers: ['alice', 'bob'] } };
  await (await startDeploy(taskQueue, plan, 'v1')).result();
  const v2 = await (await startDeploy(taskQueue, plan, 'v2')).result();
  return { plan, snapshotId: v2.snapshotId! };
}

/** v1, then v2 judged step by step under a steady load (80 requests/s): a healthy canary that passes. */
/** A canary that answers 500 after its first 20 requests, under load: HAProxy's cut-off takes it out. */
async function canaryTakenOut(taskQueue: string) {
  const releases = releasesWith({ v1: {}, v2: { errorRate: 1, faultAfter: 20 } });
  const plan = await judgedPlan({ onInconclusive: 'pause' }, 600_000, releases);
  await (await startDeploy(taskQueue, plan, 'v1')).result();
  const load = startLoad(`http://127.0.0.1:${plan.listen.port}/api/items`, { rps: 80, maxSeconds: 120 });
  const handle = await startDeploy(taskQueue, plan, 'v2');
  await handle.result().finally(() => load.stop());
  return handle;
}

async function healthyUnderLoad(taskQueue: string): Promise<WorkflowHandle> {
  const plan = await judgedPlan({ onInconclusive: 'pause' }, 4_000);
  await (await startDeploy(taskQueue, plan, 'v1')).result();
  const load = startLoad(`http://127.0.0.1:${plan.listen.port}/api/items`, { rps: 80, maxSeconds: 60 });
  const handle = await startDeploy(taskQueue, plan, 'v2');
  await handle.result().finally(() => load.stop());
  return handle;
}

/** A 10% canary twice as slow as v1 (under the absolute limit) under load, judged against the baseline. */
async function slowerCanaryAgainstBaseline(taskQueue: string): Promise<WorkflowHandle> {
  const releases = releasesWith({
    v1: { latencyMs: 40, latencyPerRps: 1.5 },
    v2: { latencyMs: 80, latencyPerRps: 1.5 },
  });
  const base = await judgedPlan({ onInconclusive: 'fail', maxP95LatencyMs: 500 }, 20_000, releases);
  const plan = {
    ...base,
    traffic: {
      steps: [
        { weight: 10, bakeMs: 20_000 },
        { weight: 100, bakeMs: 0 },
      ],
    },
  };
  await (await startDeploy(taskQueue, plan, 'v1')).result();
  const load = startLoad(`http://127.0.0.1:${plan.listen.port}/api/items`, { rps: 60, maxSeconds: 90 });
  const handle = await startDeploy(taskQueue, plan, 'v2');
  await handle.result().finally(() => load.stop());
  return handle;
}

/**
 * The executions whose histories are committed under test/replay/histories/ (one per workflow path).
 * `npm run record-histories` re-runs them on a real server; re-record only on a deliberate, patched change.
 */
export interface ReplayScenario {
  /** File name (without .json) of the committed history. */
  name: string;
  /**
   * Runs the execution to its end on `taskQueue`, where a worker of the current code polls, and returns the
   * handle of the workflow whose history is recorded.
   */
  run(client: Client, taskQueue: string, workflowId: string): Promise<WorkflowHandle>;
}

/** A backup of a new service with `backup:` (retention full: 1) in the worker's config; waits for its end. */
async function backup(
  client: Client,
  taskQueue: string,
  workflowId: string,
  withBackup = true,
): Promise<WorkflowHandle> {
  const plan = await shopPlan(withBackup ? { backup: { retention: { full: 1 }, verify: true } } : {});
  putPlan(runbookConfigFor(taskQueue), plan);
  const handle = await client.workflow.start<typeof backupService>('backupService', {
    taskQueue,
    workflowId,
    args: [{ service: plan.service, environment: plan.environment, type: 'full' }],
  });
  await handle.result().catch(() => undefined);
  return handle;
}

/** Runs `work` with the test stack's archive_command broken (`false`), then puts it back as `runbook up` does. */
async function withArchivingBroken<T>(work: () => Promise<T>): Promise<T> {
  const { settings } = testStack();
  const file = path.join(postgresPaths(settings.home).data, ARCHIVE_CONF);
  writeFileSync(file, readFileSync(file, 'utf8').replace(/archive_command = '.*'/, "archive_command = 'false'"));
  const c = new pg.Client({ connectionString: databaseUrl(settings, 'postgres') });
  await c.connect();
  await c.query('SELECT pg_reload_conf()');
  await c.end();
  try {
    return await work();
  } finally {
    await postgresComponent.start({ settings, log: () => {} });
  }
}

/** A point-in-time drill of a new service with a full backup, to a moment after it (or to 2001: unreachable). */
async function pitr(client: Client, taskQueue: string, workflowId: string, reachable = true): Promise<WorkflowHandle> {
  const plan = await shopPlan({ backup: { retention: { full: 1 }, verify: false } });
  putPlan(runbookConfigFor(taskQueue), plan);
  const { service, environment } = plan;
  await client.workflow.execute<typeof backupService>('backupService', {
    taskQueue,
    workflowId: `${workflowId}-backup`,
    args: [{ service, environment, type: 'full' }],
  });
  const c = new pg.Client({ connectionString: databaseUrl(testStack().settings, 'postgres') });
  await c.connect();
  const at = ((await c.query<{ t: Date }>('SELECT clock_timestamp() AS t')).rows[0]!.t as Date).getTime();
  // a commit after the moment, so that the archived WAL reaches past it
  await c.query('CREATE TABLE IF NOT EXISTS replay_pitr_marks (n int); INSERT INTO replay_pitr_marks VALUES (1)');
  await c.end();
  await stackPgbackrest(testStack().settings).run(['check']);
  const handle = await client.workflow.start<typeof pitrDrill>('pitrDrill', {
    taskQueue,
    workflowId,
    args: [{ service, environment, toTimeMs: reachable ? at : Date.parse('2001-01-01T00:00:00Z') }],
  });
  await handle.result().catch(() => undefined);
  return handle;
}

export const scenarios: ReplayScenario[] = [
  { name: 'pitr-drill-passed', run: (client, taskQueue, workflowId) => pitr(client, taskQueue, workflowId) },
  {
    name: 'pitr-drill-unreachable',
    run: (client, taskQueue, workflowId) => pitr(client, taskQueue, workflowId, false),
  },
  {
    name: 'backup-full-verified-expired',
    run: (client, taskQueue, workflowId) => backup(client, taskQueue, workflowId),
  },
  {
    name: 'backup-not-configured',
    run: (client, taskQueue, workflowId) => backup(client, taskQueue, workflowId, false),
  },
  {
    name: 'backup-archive-broken',
    run: (client, taskQueue, workflowId) => withArchivingBroken(() => backup(client, taskQueue, workflowId)),
  },
  {
    // Patch signed-decisions: a signed request, a decision refused after its signature was checked (a key not
    // enrolled), a signed approve by update, an unsigned signal refused, a signed approve by signal (the Web UI path).
    name: 'signed-deploy-approved',
    run: async (_client, taskQueue) => {
      const keys = { alice: testKey('alice'), bob: testKey('bob', 'ecdsa-256'), dave: testKey('dave') };
      const base = withGates(await shopPlan(), ['before-start', 'before-traffic'], { approvers: ['alice', 'bob'] });
      const plan = { ...base, signing: { unsigned: 'refuse' as const, distinctApprovers: true } };
      const { handle, sign } = await signedDeploy(taskQueue, plan, keys);
      await waitingAt(handle, 'before-start');
      const mallory = testKey('mallory');
      const forged = await signDecision({
        workflowId: handle.workflowId,
        runId: (await handle.describe()).runId,
        kind: 'approve',
        gate: 'before-start',
        by: 'alice',
        key: mallory.file,
        env: process.env,
      });
      await handle.executeUpdate(approveUpdate, { args: [forged] }).catch(() => undefined);
      await handle.executeUpdate(approveUpdate, { args: [await sign('alice', 'before-start')] });
      await waitingAt(handle, 'before-traffic');
      await handle.signal(approveSignal, { by: 'bob', gate: 'before-traffic' });
      await handle.signal(approveSignal, await sign('bob', 'before-traffic'));
      await handle.result();
      return handle;
    },
  },
  {
    // Patch signed-decisions where the team accepts unsigned decisions (staging): the requester's own unsigned
    // approval refused (four-eyes), another's counted as unverified:<name>.
    name: 'signed-deploy-unverified',
    run: async (_client, taskQueue) => {
      const plan = withGates(await shopPlan(), ['before-start'], { approvers: ['alice', 'dave'] });
      const handle = await startDeploy(taskQueue, plan, 'v1', 'dave');
      await waitingAt(handle, 'before-start');
      await handle.signal(approveSignal, { by: 'Dave', gate: 'before-start' });
      await handle.signal(approveSignal, { by: 'alice', gate: 'before-start', note: 'from the Web UI' });
      await handle.result();
      return handle;
    },
  },
  {
    name: 'stack-check-happy',
    run: async (client, taskQueue, workflowId) => {
      const handle = await client.workflow.start<typeof stackCheck>('stackCheck', {
        taskQueue,
        workflowId,
        args: [{ hold: '1s' }],
      });
      await handle.result();
      return handle;
    },
  },
  // The histories recorded before the `worker-resolves-plan` patch (deploy-happy, deploy-auto-rollback,
  // deploy-rejected, deploy-approval-timeout, rollback-app-only, rollback-db-restore, drill-passed,
  // drill-failed-corrupt-snapshot, drill-cancelled: their input carries the plan) stay committed and replay with
  // their own plan; their scenarios cannot run any more (a new execution refuses a plan in its input) and are in
  // the git history of this file (commit 2a0067c). The ones below are the same paths with the worker-resolved plan.
  {
    name: 'worker-plan-deploy-happy',
    run: async (_client, taskQueue) => {
      const plan = await shopPlan();
      await (await startDeploy(taskQueue, plan, 'v1')).result();
      const handle = await startDeploy(taskQueue, withGates(plan, ['before-start', 'before-traffic', 'go-live']), 'v2');
      await waitingAt(handle, 'before-start');
      await handle.executeUpdate(approveUpdate, { args: [{ by: 'alice' }] });
      await waitingAt(handle, 'before-traffic');
      await handle.executeUpdate(approveUpdate, { args: [{ by: 'bob', note: 'smoke looks fine' }] });
      await waitingAt(handle, 'go-live');
      await handle.signal(signoffSignal, { by: 'bob', note: 'signed off from the Web UI' });
      await handle.result();
      return handle;
    },
  },
  {
    name: 'worker-plan-deploy-rejected',
    run: async (_client, taskQueue) => {
      const plan = await shopPlan();
      await (await startDeploy(taskQueue, plan, 'v1')).result();
      const handle = await startDeploy(taskQueue, withGates(plan, ['before-start']), 'v2', 'alice');
      await waitingAt(handle, 'before-start');
      await handle.signal(rejectSignal, { by: 'mallory' }); // refused: not an approver
      await handle.signal(rejectSignal, { by: 'bob', note: 'change freeze' });
      await handle.result();
      return handle;
    },
  },
  {
    // The caller previewed a plan without gates; the worker's plan has them: refused, nothing started.
    name: 'worker-plan-deploy-digest-mismatch',
    run: async (client, taskQueue, workflowId) => {
      const plan = withGates(await shopPlan(), ['before-start']);
      const previewed = planDigest(withGates(plan, []));
      const handle = await client.workflow.start<typeof deployService>('deployService', {
        taskQueue,
        workflowId,
        args: [
          {
            ...requestFor(taskQueue, plan),
            version: 'v1',
            requestedBy: 'dave',
            configDigest: previewed.digest,
            fieldDigests: previewed.fieldDigests,
          },
        ],
      });
      await handle.result().catch(() => undefined);
      return handle;
    },
  },
  {
    // The payload limits (patch bounded-decisions): refused signals of every kind, more than a gate keeps, then
    // a decision by signal and one by update.
    name: 'deploy-bounded-decisions',
    run: async (_client, taskQueue) => {
      const plan = await shopPlan();
      await (await startDeploy(taskQueue, plan, 'v1')).result();
      const handle = await startDeploy(taskQueue, withGates(plan, ['before-start', 'before-traffic']), 'v2', 'alice');
      await waitingAt(handle, 'before-start');
      const refused = [{ by: 'mallory' }, { by: 'b'.repeat(65) }, { who: 'bob' }, { by: 'm'.repeat(5_000) }];
      for (let i = 0; i < 25; i++) await handle.signal(approveSignal, refused[i % refused.length]);
      await handle.signal(approveSignal, { by: 'bob', note: 'after 25 refused attempts' });
      await waitingAt(handle, 'before-traffic');
      await handle.executeUpdate(approveUpdate, { args: [{ by: 'bob' }] });
      await handle.result();
      return handle;
    },
  },
  {
    // A raw start with a plan in its input: refused before any command.
    name: 'worker-plan-deploy-plan-in-request',
    run: async (client, taskQueue, workflowId) => {
      const plan = await shopPlan();
      const handle = await client.workflow.start('deployService', {
        taskQueue,
        workflowId,
        args: [{ ...requestFor(taskQueue, plan), version: 'v1', requestedBy: 'dave', plan: withGates(plan, []) }],
      });
      await handle.result().catch(() => undefined);
      return handle;
    },
  },
  {
    name: 'worker-plan-rollback-db-restore',
    run: async (_client, taskQueue, workflowId) => {
      const { plan, snapshotId } = await v1ThenV2(taskQueue);
      const handle = await startRollback(
        taskQueue,
        plan,
        { toVersion: 'v1', restoreSnapshotId: snapshotId, reason: 'bad data' },
        workflowId,
      );
      await waitingAt(handle, 'restore-database');
      await handle.executeUpdate(approveUpdate, { args: [{ by: 'alice', note: 'restore approved' }] });
      await handle.result();
      return handle;
    },
  },
  {
    name: 'worker-plan-drill-passed',
    run: async (_client, taskQueue, workflowId) => {
      const { plan } = await liveV1(taskQueue);
      const handle = await startDrill(taskQueue, plan, { signoffTimeoutMs: 60_000 }, workflowId);
      await waitingAt(handle, 'drill-signoff');
      await handle.signal(signoffSignal, { by: 'mallory' }); // refused: not an approver
      await handle.signal(signoffSignal, { by: 'bob', note: 'restored copy checked' });
      await handle.result();
      return handle;
    },
  },
  {
    // Patch signed-schedules: a drill that a schedule started, requested by the schedule's signer (verified, the
    // schedule's record of its runs asked).
    name: 'signed-schedule-drill-passed',
    run: async (_client, taskQueue) => {
      const alice = testKey('alice');
      const { plan } = await liveV1(taskQueue);
      putSigners(runbookConfigFor(taskQueue), [alice.line()]);
      const refusing = { ...plan, signing: { unsigned: 'refuse' as const, distinctApprovers: false } };
      const { handle, schedule } = await scheduledSignedDrill(taskQueue, refusing, alice);
      await handle.result();
      await schedule.delete();
      return handle;
    },
  },
  {
    // Patch signed-schedules: the schedule's signed input started by hand under a schedule-like id: refused.
    name: 'signed-schedule-drill-forged',
    run: async (client, taskQueue) => {
      const alice = testKey('alice');
      const { plan } = await liveV1(taskQueue);
      putSigners(runbookConfigFor(taskQueue), [alice.line()]);
      const refusing = { ...plan, signing: { unsigned: 'refuse' as const, distinctApprovers: false } };
      const { handle: scheduled, request, schedule } = await scheduledSignedDrill(taskQueue, refusing, alice);
      await scheduled.result();
      const forged = await client.workflow.start('restoreDrill', {
        taskQueue,
        workflowId: `${schedule.scheduleId}-2026-01-01T00:00:00Z`,
        args: [request],
      });
      await forged.result().catch(() => undefined);
      await schedule.delete();
      return forged;
    },
  },
  // judged-steps: a baked step needs evidence (analysis.onInconclusive) and is judged against the stable release.
  {
    name: 'judged-deploy-unjudged-approved',
    run: async (_client, taskQueue) => {
      const plan = await judgedPlan({ onInconclusive: 'pause' });
      await (await startDeploy(taskQueue, plan, 'v1')).result();
      const handle = await startDeploy(taskQueue, plan, 'v2');
      await waitingAt(handle, 'unjudged-step');
      await handle.executeUpdate(approveUpdate, { args: [{ by: 'alice', note: 'quiet staging' }] });
      await handle.result();
      return handle;
    },
  },
  {
    name: 'judged-deploy-unjudged-rejected',
    run: async (_client, taskQueue) => {
      const plan = await judgedPlan({ onInconclusive: 'pause' });
      await (await startDeploy(taskQueue, plan, 'v1')).result();
      const handle = await startDeploy(taskQueue, plan, 'v2');
      await waitingAt(handle, 'unjudged-step');
      await handle.signal(rejectSignal, { by: 'bob', note: 'no traffic, no go' });
      await handle.result();
      return handle;
    },
  },
  {
    name: 'judged-deploy-unjudged-proceed',
    run: async (_client, taskQueue) => {
      const plan = await judgedPlan({ onInconclusive: 'proceed' });
      await (await startDeploy(taskQueue, plan, 'v1')).result();
      const handle = await startDeploy(taskQueue, plan, 'v2');
      await handle.result();
      return handle;
    },
  },
  {
    name: 'judged-deploy-extend-then-fail',
    run: async (_client, taskQueue) => {
      const plan = await judgedPlan({ onInconclusive: 'extend', extendMaxMs: 2_000 }, 2_000);
      await (await startDeploy(taskQueue, plan, 'v1')).result();
      const handle = await startDeploy(taskQueue, plan, 'v2');
      await handle.result();
      return handle;
    },
  },
  { name: 'judged-deploy-healthy-under-load', run: (_client, taskQueue) => healthyUnderLoad(taskQueue) },
  {
    name: 'judged-deploy-worse-than-stable',
    run: async (_client, taskQueue) => {
      const releases = releasesWith({ v1: { errorRate: 0.01, faultAfter: 5 }, v2: { errorRate: 0.06, faultAfter: 5 } });
      const plan = await judgedPlan({ onInconclusive: 'pause', max5xxRate: 0.25 }, 20_000, releases);
      await (await startDeploy(taskQueue, plan, 'v1')).result();
      const load = startLoad(`http://127.0.0.1:${plan.listen.port}/api/items`, { rps: 150, maxSeconds: 90 });
      const handle = await startDeploy(taskQueue, plan, 'v2');
      await handle.result().finally(() => load.stop());
      return handle;
    },
  },
  {
    // Patch canary-baseline, a healthy canary: the baseline (v1 again, its own id) starts, takes the canary's weight
    // from the stable's share at 50%, the judge compares with it, and it stops when the steps are over.
    name: 'baseline-deploy-healthy-under-load',
    run: (_client, taskQueue) => healthyUnderLoad(taskQueue),
  },
  {
    // Patch canary-baseline: a 10% canary twice as slow, which the stable release (nine times its load) would not
    // show; the judge against the baseline rolls it back, and the compensations stop the baseline.
    name: 'baseline-deploy-slower-canary-rolled-back',
    run: (_client, taskQueue) => slowerCanaryAgainstBaseline(taskQueue),
  },
  {
    // Patch canary-cutoff, a healthy canary: the step's watch for the cut-off is cancelled when the step ends.
    name: 'cutoff-deploy-healthy-under-load',
    run: (_client, taskQueue) => healthyUnderLoad(taskQueue),
  },
  {
    // Patch canary-cutoff: the canary joins with analysis.cutoff, the step watches for it, and HAProxy's mark-down
    // of a canary that answers 500 fails the step at once (the bake is far longer than the run).
    name: 'cutoff-deploy-canary-taken-out',
    run: (_client, taskQueue) => canaryTakenOut(taskQueue),
  },
  {
    // Patch watch-queue: the same, with the step's watch on the watch queue (<task queue>-watch).
    name: 'watch-queue-canary-taken-out',
    run: (_client, taskQueue) => canaryTakenOut(taskQueue),
  },
  {
    // Patch watch-queue, a healthy canary: the watch on the watch queue is cancelled when the step ends.
    name: 'watch-queue-healthy-under-load',
    run: (_client, taskQueue) => healthyUnderLoad(taskQueue),
  },
  {
    // Patches canary-rate-cutoff and judge-short-warmup, a healthy canary: the step's watch has the rate rule and is
    // cancelled when the step ends; latency is judged after the short warm-up against the baseline.
    name: 'rate-cutoff-deploy-healthy-under-load',
    run: (_client, taskQueue) => healthyUnderLoad(taskQueue),
  },
  {
    // Patch canary-rate-cutoff: a canary failing half its requests (HAProxy's own cut-off far off) is taken out by
    // the watch's rate rule, and the step fails at once.
    name: 'rate-cutoff-deploy-half-failing-canary',
    run: async (_client, taskQueue) => {
      const releases = releasesWith({ v1: {}, v2: { errorRate: 0.5, faultAfter: 20 } });
      const plan = await judgedPlan({ onInconclusive: 'pause', cutoff: { errorLimit: 50 } }, 600_000, releases);
      await (await startDeploy(taskQueue, plan, 'v1')).result();
      const load = startLoad(`http://127.0.0.1:${plan.listen.port}/api/items`, { rps: 80, maxSeconds: 120 });
      const handle = await startDeploy(taskQueue, plan, 'v2');
      await handle.result().finally(() => load.stop());
      return handle;
    },
  },
  {
    // Patch judge-short-warmup: the 10% canary twice as slow as its baseline, judged after 250 ms of warm-up.
    name: 'short-warmup-deploy-slower-canary-rolled-back',
    run: (_client, taskQueue) => slowerCanaryAgainstBaseline(taskQueue),
  },
  {
    // Patch release-commands: preflight prepares the database; the release's migrate and status commands, a command
    // smoke check, the schema recorded before and after.
    name: 'release-commands-deploy',
    run: async (_client, taskQueue) => {
      const own = ownReleases(['v1']);
      const plan = await commandPlan(own, {
        mode: 'quiet',
        smoke: [
          { name: 'script', command: ['node', 'scripts/smoke.js', '{url}'], timeoutMs: 30_000, runFrom: 'release' },
        ],
      });
      const handle = await startDeploy(taskQueue, plan, 'v1');
      await handle.result();
      return handle;
    },
  },
  {
    // Patch schema-aware-rollback: an app-only rollback across a breaking migration, refused.
    name: 'release-commands-rollback-refused',
    run: async (_client, taskQueue) => {
      const own = ownReleases(['v1', 'v2']);
      const plan = await commandPlan(own, { mode: 'quiet' });
      await (await startDeploy(taskQueue, plan, 'v1')).result();
      const breaking = {
        ...plan,
        database: {
          ...plan.database!,
          migrate: { ...plan.database!.migrate!, command: ['node', 'scripts/migrate.js', 'breaking'] },
          compatibility: 'breaking' as const,
        },
      };
      await (await startDeploy(taskQueue, breaking, 'v2')).result();
      const handle = await startRollback(taskQueue, breaking);
      await handle.result();
      return handle;
    },
  },
];

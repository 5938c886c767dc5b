import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { WorkflowFailedError, WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { planDigest } from '../../src/runbook-config';
import type { DeployResult, DeployState } from '../../src/shared/deploy';
import { approveUpdate, rejectSignal, statusQuery } from '../../src/shared/messages';
import { RunbookKind, RunbookOutcome } from '../../src/shared/search-attributes';
import type { SingleHostService as ResolvedService } from '../../src/shared/service-plan';
import { runbookConfigFor, startWorker, testStack, uniqueName, useWorker } from '../harness';
import {
  releaseHistory,
  requestFor,
  runner,
  serviceWithV1,
  snapshotPath,
  startDeploy,
  waitForState,
  waitingAt,
  withGates,
} from './deploy-fixture';

/** A plan as an attacker would send it: no gates, and a release command that leaves a marker file. */
function forged(plan: ResolvedService, marker: string): ResolvedService {
  return {
    ...plan,
    approvals: { ...plan.approvals, gates: [] },
    rollback: { ...plan.rollback, dbRestoreApprovers: ['mallory'] },
    release: { ...plan.release, command: ['sh', '-c', `touch ${marker}; exec node server.js`] },
  };
}

/** Starts deployService through the raw Temporal client with any input at all. */
const rawDeploy = (taskQueue: string, input: unknown): Promise<WorkflowHandle> =>
  testStack().client.workflow.start('deployService', {
    taskQueue,
    workflowId: uniqueName('forged'),
    args: [input],
  });

/** The refusal a workflow failed with: its type and message. */
async function refusalOf(handle: WorkflowHandle): Promise<ApplicationFailure> {
  try {
    await handle.result();
  } catch (err) {
    assert.ok(err instanceof WorkflowFailedError, String(err));
    assert.ok(err.cause instanceof ApplicationFailure, String(err.cause));
    assert.equal(err.cause.nonRetryable, true);
    return err.cause;
  }
  assert.fail(`${handle.workflowId} was not refused`);
}

async function runningReleases(plan: ResolvedService): Promise<string[]> {
  const all = await runner().list();
  return all.filter((r) => r.service === plan.service && r.environment === plan.environment).map((r) => r.releaseId);
}

describe('the plan comes from the worker: forged starts, wrong digests, unknown services, bad requests', function () {
  this.timeout(180_000);
  const { taskQueue } = useWorker('worker-plan');

  /** v1 live, and the worker's plan gated at before-start; what must not change, as it is now. */
  async function gatedService() {
    const plan = withGates(await serviceWithV1(taskQueue), ['before-start']);
    requestFor(taskQueue, plan); // the worker's config now has the gate
    const marker = path.join(os.tmpdir(), `${uniqueName('forged-marker')}`);
    const before = {
      releases: await runningReleases(plan),
      history: await releaseHistory(plan.service),
      snapshots: readdirSync(snapshotPath(plan)),
    };
    return { plan, marker, before };
  }

  /** Nothing changed: no marker, no new release or snapshot, the history as it was, and the lock is free. */
  async function assertNothingChanged(g: Awaited<ReturnType<typeof gatedService>>) {
    assert.equal(existsSync(g.marker), false, 'the forged release command never ran');
    assert.deepEqual(await runningReleases(g.plan), g.before.releases, 'no release started');
    assert.deepEqual(readdirSync(snapshotPath(g.plan)), g.before.snapshots, 'no snapshot taken');
    assert.deepEqual(await releaseHistory(g.plan.service), g.before.history, 'the release history is unchanged');
    // The lock is free and the worker's gate holds: a proper request waits at before-start.
    const proper = await startDeploy(taskQueue, g.plan, 'v2');
    await waitingAt(proper, 'before-start');
    await proper.signal(rejectSignal, { by: 'bob', note: 'only checking the gate' });
    assert.equal(((await proper.result()) as DeployResult).outcome, 'rejected');
    assert.equal(existsSync(g.marker), false);
  }

  it('a raw start with the old input shape (a plan with gates: [] and a command that would touch a marker) is refused; nothing runs', async () => {
    const g = await gatedService();
    const handle = await rawDeploy(taskQueue, {
      plan: forged(g.plan, g.marker),
      version: 'v2',
      requestedBy: 'mallory',
    });
    const failure = await refusalOf(handle);
    assert.equal(failure.type, 'InvalidRequest');
    assert.match(
      failure.message,
      /a deploy request carries no plan: the worker resolves the plan .* from its own runbook config/,
    );
    await assertNothingChanged(g);
  });

  it('the new shape with a forged `plan` field as well: refused the same way', async () => {
    const g = await gatedService();
    const handle = await rawDeploy(taskQueue, {
      ...requestFor(taskQueue, g.plan),
      version: 'v2',
      requestedBy: 'mallory',
      plan: forged(g.plan, g.marker),
    });
    assert.equal((await refusalOf(handle)).type, 'InvalidRequest');
    await assertNothingChanged(g);
  });

  it("a request with the forged plan's digest: refused (PlanDigestMismatch) naming the fields, the status and search attributes say so", async () => {
    const g = await gatedService();
    // As the forger would preview it: their plan in a file where the worker's config is.
    const { digest, fieldDigests } = planDigest(forged({ ...g.plan, source: runbookConfigFor(taskQueue) }, g.marker));
    const handle = await rawDeploy(taskQueue, {
      service: g.plan.service,
      environment: g.plan.environment,
      version: 'v2',
      requestedBy: 'mallory',
      configDigest: digest,
      fieldDigests,
    });
    const failure = await refusalOf(handle);
    assert.equal(failure.type, 'PlanDigestMismatch');
    assert.match(
      failure.message,
      new RegExp(
        `^the plan of ${g.plan.service}/staging in the worker's runbook config \\(.*\\) is not the one you previewed: ` +
          'approvals.gates, release.command, rollback.dbRestoreApprovers differ',
      ),
    );
    assert.match(
      failure.message,
      /nothing was started or changed\. Update your runbook\.yaml .* --dry-run`, then run the command again$/,
    );
    const state: DeployState = await handle.query(statusQuery);
    assert.equal(state.outcome, 'failed');
    assert.equal(state.phase, 'done');
    assert.equal(state.config, undefined, 'no plan was resolved for it');
    const attributes = (await handle.describe()).typedSearchAttributes;
    assert.equal(attributes.get(RunbookKind), 'deploy');
    assert.equal(attributes.get(RunbookOutcome), 'failed');
    await assertNothingChanged(g);
  });

  it("a request for the worker's own plan runs it: the resolved plan and its digest are in the status and the result", async () => {
    const plan = withGates(await serviceWithV1(taskQueue), ['before-start']);
    const request = requestFor(taskQueue, plan);
    const handle = await rawDeploy(taskQueue, { ...request, version: 'v2', requestedBy: 'dave' });
    const waiting = await waitingAt(handle, 'before-start');
    assert.equal(waiting.config?.digest, request.configDigest);
    assert.match(waiting.config?.source ?? '', /runbook-configs\/.*\.yaml$/);
    assert.ok(
      waiting.timeline.some((t) => t.message.startsWith(`the worker resolved the plan from ${waiting.config?.source}`)),
    );
    await handle.executeUpdate(approveUpdate, { args: [{ by: 'alice' }] });
    const result = (await handle.result()) as DeployResult;
    assert.equal(result.outcome, 'succeeded', result.reason);
    assert.equal(result.state.config?.digest, request.configDigest);
  });

  it("an unknown service or environment: refused in the config's own words", async () => {
    const plan = await serviceWithV1(taskQueue);
    const request = requestFor(taskQueue, plan);
    const unknown = await refusalOf(
      await rawDeploy(taskQueue, { ...request, service: 'no-such-shop', version: 'v2', requestedBy: 'dave' }),
    );
    assert.equal(unknown.type, 'PlanNotFound');
    assert.match(unknown.message, /unknown service "no-such-shop"; .*\.yaml defines: .*; fix: use one of/);
    const env = await refusalOf(
      await rawDeploy(taskQueue, { ...request, environment: 'prod', version: 'v2', requestedBy: 'dave' }),
    );
    assert.equal(env.type, 'PlanNotFound');
    assert.match(
      env.message,
      new RegExp(`service "${plan.service}" has no environment "prod"; its environments: staging`),
    );
  });

  it('a malformed request fails with a clear, short error before any command: nothing changes', async () => {
    const plan = await serviceWithV1(taskQueue);
    const request = { ...requestFor(taskQueue, plan), version: 'v2', requestedBy: 'dave' };
    for (const [bad, why] of [
      [{ ...request, reason: 'x'.repeat(501) }, /reason: must be at most 500 characters/],
      [{ ...request, requestedBy: 'm'.repeat(1_000_000) }, /requestedBy: must be at most 64 characters/],
      [{ ...request, version: '../../../etc' }, /version: must be a version/],
      [{ ...request, gates: [] }, /Unrecognized key: "gates"/],
      ['deploy shop v2', /invalid deploy request: \(request\)/],
    ] as const) {
      const handle = await rawDeploy(taskQueue, bad);
      const failure = await refusalOf(handle);
      assert.equal(failure.type, 'InvalidRequest');
      assert.match(failure.message, why);
      assert.ok(failure.message.length < 2_000);
      const history = await handle.fetchHistory();
      assert.ok(
        !(history.events ?? []).some((e) => e.activityTaskScheduledEventAttributes),
        'no activity was scheduled',
      );
    }
    assert.deepEqual(
      (await releaseHistory(plan.service)).map((r) => r.version),
      ['v1'],
    );
  });

  it('before the plan is resolved the status answers (phase plan) and no decision can count', async () => {
    const queue = uniqueName('worker-plan-slow');
    let release!: () => void;
    const resolving = new Promise<void>((resolve) => (release = resolve));
    const slow = await startWorker(queue, undefined, {
      wrapActivities: (a) => ({
        ...a,
        async resolvePlan(req) {
          await resolving;
          return a.resolvePlan(req);
        },
      }),
    });
    try {
      const plan = withGates(await serviceWithV1(taskQueue), ['before-start']);
      const handle = await startDeploy(queue, plan, 'v2');
      const early = await waitForState(handle, (s) => s.phase === 'plan', 'the status before the plan');
      assert.equal(early.step, 'resolving the plan');
      assert.equal(early.service, plan.service);
      assert.equal(early.config, undefined);
      await assert.rejects(handle.executeUpdate(approveUpdate, { args: [{ by: 'alice' }] }), (err: unknown) => {
        assert.ok(err instanceof WorkflowUpdateFailedError);
        // Refused either way: no gate is open, and before the plan is known unsigned decisions are refused.
        assert.match(String(err.cause?.message), /is not waiting for an approval now|takes only signed decisions/);
        return true;
      });
      release();
      await waitingAt(handle, 'before-start');
      await handle.executeUpdate(approveUpdate, { args: [{ by: 'alice' }] });
      assert.equal(((await handle.result()) as DeployResult).outcome, 'succeeded');
    } finally {
      release();
      await slow.stop();
    }
  });
});

import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { temporal } from '@temporalio/proto';
import type { WorkflowHandle } from '@temporalio/client';
import { workerDeploymentOf } from '../../src/config';
import { signoffUpdate } from '../../src/shared/messages';
import { adoptFirstVersion, describeFirstVersion } from '../../src/worker-versioning';
import { startWorker, testStack, uniqueName } from '../harness';
import { shopPlan, startDeploy, waitingAt, withGates } from './deploy-fixture';

/**
 * Worker Versioning (RUNBOOK_WORKER_DEPLOYMENT, RUNBOOK_WORKER_BUILD_ID; docs/cluster.md) on the real server: a deploy
 * started while build A is the deployment's current version stays pinned to A after build B becomes current, and
 * finishes on A's workers; a deploy started after the switch runs on B.
 */
describe('Worker Versioning: a runbook finishes on the build it started on', function () {
  this.timeout(180_000);
  const taskQueue = uniqueName('versioned');
  const deploymentName = uniqueName('runbooks');
  const workers: Array<{ stop(): Promise<void> }> = [];

  const startBuild = async (buildId: string) =>
    workers.push(
      await startWorker(taskQueue, `worker-${buildId}`, {
        config: { RUNBOOK_WORKER_DEPLOYMENT: deploymentName, RUNBOOK_WORKER_BUILD_ID: buildId },
      }),
    );

  /** What an operator does with `temporal worker deployment set-current-version` (retried until the build polled). */
  async function setCurrent(buildId: string): Promise<void> {
    const { client, namespace } = testStack();
    for (let attempt = 0; ; attempt++) {
      try {
        await client.workflowService.setWorkerDeploymentCurrentVersion({
          namespace,
          deploymentName,
          buildId,
          identity: 'worker-versioning test',
        });
        return;
      } catch (err) {
        if (attempt >= 100) throw err;
        await sleep(200);
      }
    }
  }

  /** The build every workflow task of the run was completed by, and the run's versioning behavior. */
  async function buildsOf(handle: WorkflowHandle) {
    const history = await handle.fetchHistory();
    const builds = new Set(
      (history.events ?? [])
        .filter((e) => e.workflowTaskCompletedEventAttributes)
        .map((e) => e.workflowTaskCompletedEventAttributes?.deploymentVersion?.buildId ?? 'none'),
    );
    const info = (await handle.describe()).raw.workflowExecutionInfo?.versioningInfo;
    return {
      builds: [...builds],
      behavior: info?.behavior,
      buildId: info?.deploymentVersion?.buildId,
    };
  }

  after(async () => {
    for (const w of workers.reverse()) await w.stop();
  });

  it('the first build makes itself current; a deploy running on A stays on A after B becomes current, new ones start on B', async () => {
    await startBuild('a');
    // the first build of a deployment makes itself current (what the worker's main() does after its first poll)
    const deployment = (buildId: string) =>
      workerDeploymentOf({ RUNBOOK_WORKER_DEPLOYMENT: deploymentName, RUNBOOK_WORKER_BUILD_ID: buildId })!;
    assert.deepEqual(await adoptFirstVersion(testStack().connection, deployment('a'), 'test'), {
      kind: 'made-current',
    });
    const planA = withGates(await shopPlan(), ['go-live']);
    const onA = await startDeploy(taskQueue, planA, 'v1');
    await waitingAt(onA, 'go-live');

    await startBuild('b');
    // a later build waits for the operator, and says how to roll it out
    const later = await adoptFirstVersion(testStack().connection, deployment('b'), 'test');
    assert.deepEqual(later, { kind: 'not-current', current: 'a' });
    assert.match(
      describeFirstVersion(deployment('b'), later),
      /set-ramping-version --deployment-name \S+ --build-id b/,
    );
    await setCurrent('b');
    const onB = await startDeploy(taskQueue, await shopPlan(), 'v1');
    const resultB = await onB.result();
    assert.equal(resultB.outcome, 'succeeded', resultB.reason);

    await onA.executeUpdate(signoffUpdate, { args: [{ by: 'alice' }] });
    const resultA = await onA.result();
    assert.equal(resultA.outcome, 'succeeded', resultA.reason);

    const pinned = temporal.api.enums.v1.VersioningBehavior.VERSIONING_BEHAVIOR_PINNED;
    assert.deepEqual(await buildsOf(onA), { builds: ['a'], behavior: pinned, buildId: 'a' });
    assert.deepEqual(await buildsOf(onB), { builds: ['b'], behavior: pinned, buildId: 'b' });
  });
});

import { setTimeout as sleep } from 'node:timers/promises';
import type { WorkerDeploymentOptions } from '@temporalio/worker';
import { errorMessage } from './errors';
import { connectClient, type TemporalConnection } from './temporal-connection';

export type FirstVersionOutcome =
  | { kind: 'made-current' }
  | { kind: 'current' }
  | { kind: 'not-current'; current: string }
  | { kind: 'unknown'; reason: string };

/**
 * A deployment without a current version sends new runbooks to unversioned workers only: a versioned worker would
 * wait for work forever. So the first build of a deployment makes itself current; every later build waits for the
 * operator (`temporal worker deployment set-current-version` or `set-ramping-version`, docs/cluster.md). The version
 * exists on the server once the worker has polled: this waits for it up to `timeoutMs`.
 */
export async function adoptFirstVersion(
  connection: TemporalConnection,
  deployment: WorkerDeploymentOptions,
  identity: string,
  timeoutMs = 60_000,
): Promise<FirstVersionOutcome> {
  const { deploymentName, buildId } = deployment.version;
  const client = await connectClient(connection);
  const service = client.connection.workflowService;
  const until = Date.now() + timeoutMs;
  let last = 'not yet described';
  try {
    for (;;) {
      try {
        const res = await service.describeWorkerDeployment({ namespace: connection.namespace, deploymentName });
        const info = res.workerDeploymentInfo;
        const known = info?.versionSummaries?.some((v) => v.deploymentVersion?.buildId === buildId);
        const current = info?.routingConfig?.currentDeploymentVersion?.buildId;
        if (current === buildId) return { kind: 'current' };
        if (current) return { kind: 'not-current', current };
        if (known) {
          await service.setWorkerDeploymentCurrentVersion({
            namespace: connection.namespace,
            deploymentName,
            buildId,
            conflictToken: res.conflictToken,
            identity,
          });
          return { kind: 'made-current' };
        }
        last = `build ${buildId} is not registered yet`;
      } catch (err) {
        // NotFound until the first poll registers the deployment; a lost conflict means another worker acted
        last = errorMessage(err);
      }
      if (Date.now() > until) return { kind: 'unknown', reason: last };
      await sleep(500);
    }
  } finally {
    await client.connection.close();
  }
}

/** The worker's log line for an outcome. */
export function describeFirstVersion(deployment: WorkerDeploymentOptions, outcome: FirstVersionOutcome): string {
  const { deploymentName, buildId } = deployment.version;
  const me = `build ${buildId} of worker deployment ${deploymentName}`;
  switch (outcome.kind) {
    case 'made-current':
      return `${me}: the deployment had no current version, this build is now current`;
    case 'current':
      return `${me}: current`;
    case 'not-current':
      return (
        `${me}: not current (current: ${outcome.current}); it finishes nothing new until the rollout reaches it: ` +
        `temporal worker deployment set-ramping-version --deployment-name ${deploymentName} --build-id ${buildId} --percentage 10, ` +
        `then set-current-version (docs/cluster.md)`
      );
    case 'unknown':
      return `${me}: could not tell whether it is current (${outcome.reason})`;
  }
}

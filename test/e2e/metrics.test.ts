import assert from 'node:assert/strict';
import { startWorker, testMetricsUrl, uniqueName } from '../harness';
import { shopPlan, startDeploy } from '../workflows/deploy-fixture';

/** The value of the first sample of `name` whose labels include all of `labels`, or undefined. */
export function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) return Number(line.split(' ').at(-1));
  }
  return undefined;
}

describe('Prometheus metrics of the worker (SDK telemetry and the runbooks own)', function () {
  this.timeout(120_000);

  it('counts a deploy by outcome and its analysis windows, next to the SDK metrics', async () => {
    const taskQueue = uniqueName('metrics');
    const worker = await startWorker(taskQueue);
    try {
      const plan = await shopPlan({ traffic: { steps: [{ weight: 100, bakeMs: 2_000 }] } });
      const result = await (await startDeploy(taskQueue, plan, 'v1')).result();
      assert.equal(result.outcome, 'succeeded', result.reason);
      const labels = { service: plan.service, environment: plan.environment };
      // The worker records its metrics as it completes the last workflow task, a moment after the result.
      let text = '';
      for (let i = 0; i < 50; i++) {
        text = await (await fetch(testMetricsUrl())).text();
        if (sample(text, 'temporal_workflow_completed', { task_queue: taskQueue }) !== undefined) break;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      assert.equal(sample(text, 'runbook_outcomes', { ...labels, kind: 'deploy', outcome: 'succeeded' }), 1);
      assert.ok((sample(text, 'runbook_analysis_decisions', labels) ?? 0) >= 1, 'analysis windows counted');
      assert.ok(
        (sample(text, 'temporal_workflow_completed', { task_queue: taskQueue }) ?? 0) >= 1,
        'SDK metrics are there too',
      );
    } finally {
      await worker.stop();
    }
  });
});

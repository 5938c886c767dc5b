import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { renderStatus } from '../../src/cli/render';
import { startLoad } from '../../src/load-generator';
import type { DeployResult } from '../../src/shared/deploy';
import type { SingleHostService as ResolvedService } from '../../src/shared/service-plan';
import { useWorker } from '../harness';
import { runner, serviceWithV1, startDeploy } from './deploy-fixture';
import { judgedPlan, releasesWith } from './judged-fixture';

/**
 * The baseline (analysis.compare.baseline, patch canary-baseline): on single-host each release is one process, and
 * the releases here are slower the more requests a second they get (latencyPerRps), as one process is on a small
 * machine. At a 10% step the stable release carries nine times the canary's load, so a canary twice as slow still
 * looks faster than the stable release; against a baseline (the stable version at the canary's weight) it does not.
 */
describe('the canary judged against a baseline (a fresh process of the stable version at the canary weight)', function () {
  this.timeout(240_000);
  const { taskQueue } = useWorker('baseline');
  const folders: string[] = [];
  after(() => folders.forEach((f) => rmSync(f, { recursive: true, force: true })));

  /** A 10% step baked `bakeMs`, then 100%; the absolute latency limit far above both releases. */
  async function tenPercentPlan(releases: string, bakeMs: number): Promise<ResolvedService> {
    const plan = await judgedPlan({ onInconclusive: 'fail', maxP95LatencyMs: 500 }, bakeMs, releases);
    return {
      ...plan,
      traffic: {
        steps: [
          { weight: 10, bakeMs },
          { weight: 100, bakeMs: 0 },
        ],
      },
    };
  }

  async function baselineGone(plan: ResolvedService, result: DeployResult) {
    const baseline = result.state.baseline;
    assert.ok(baseline, 'the state names the baseline');
    assert.equal(baseline.running, false, 'the state says it stopped');
    assert.equal(baseline.releaseId, `${result.state.stable!.releaseId}-baseline`);
    assert.equal(baseline.version, result.state.stable!.version, 'the baseline runs the stable version');
    assert.equal(
      await runner().get(plan.service, plan.environment, baseline.releaseId),
      undefined,
      'its process is gone',
    );
    assert.ok(
      !(baseline.releaseId in result.state.weights),
      `not in the route: ${JSON.stringify(result.state.weights)}`,
    );
  }

  it('a 10% canary twice as slow as the stable version, under the absolute limit, is rolled back; the baseline is gone', async () => {
    const releases = releasesWith({
      v1: { latencyMs: 40, latencyPerRps: 1.5 },
      v2: { latencyMs: 80, latencyPerRps: 1.5 },
    });
    folders.push(releases);
    const plan = await serviceWithV1(taskQueue, await tenPercentPlan(releases, 20_000));
    const load = startLoad(`http://127.0.0.1:${plan.listen.port}/api/items`, { rps: 60, maxSeconds: 90 });
    const result = await (await startDeploy(taskQueue, plan, 'v2')).result();
    await load.stop();
    assert.equal(result.outcome, 'rolled-back', result.reason);
    assert.match(
      result.reason ?? '',
      /canary analysis failed at 10%: worse than baseline: p95 \d+ ms vs baseline \d+ ms \(ratio \d\.\d\d > 1.5, Mann-Whitney p=/,
    );
    const w = result.failedWindow!;
    assert.ok((w.p95Ms ?? 1_000) < 500, 'under the absolute limit');
    assert.equal(w.compare?.against, 'baseline');
    const step = result.state.steps?.[0];
    assert.equal(step?.against, result.state.baseline?.releaseId, 'the step names the side it was judged against');
    assert.deepEqual(result.state.weights, { v1: 100, v2: 0 });
    const status = renderStatus(result.state, { workflowId: 'deploy-x', link: 'ui', nowMs: Date.now() });
    assert.ok(
      status.some((l) => /^judge: +vs baseline v1-[^ ]*-baseline since the step began/.test(l)),
      status.join('\n'),
    );
    await baselineGone(plan, result);
  });

  it('a healthy 10% canary passes against the baseline, which took the canary weight and is gone after promotion', async () => {
    const releases = releasesWith({
      v1: { latencyMs: 40, latencyPerRps: 1.5 },
      v2: { latencyMs: 40, latencyPerRps: 1.5 },
    });
    folders.push(releases);
    const plan = await serviceWithV1(taskQueue, await tenPercentPlan(releases, 8_000));
    const load = startLoad(`http://127.0.0.1:${plan.listen.port}/api/items`, { rps: 60, maxSeconds: 90 });
    const result = await (await startDeploy(taskQueue, plan, 'v2')).result();
    await load.stop();
    assert.equal(result.outcome, 'succeeded', result.reason);
    const step = result.state.steps?.[0];
    assert.equal(step?.status, 'judged', JSON.stringify(step));
    assert.ok(step.stableRequests > 0, 'the baseline took traffic');
    const judged = result.state.analysis.filter((w) => w.compare?.against === 'baseline');
    assert.ok(judged.length > 0, 'windows were judged against the baseline');
    assert.ok(
      result.state.timeline.some((e) =>
        /stopped the baseline .*-baseline: the canary's steps are over/.test(e.message),
      ),
      'the timeline says the baseline stopped',
    );
    assert.equal(result.state.weights.v2, 100);
    await baselineGone(plan, result);
  });
});

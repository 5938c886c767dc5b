import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { renderStatus } from '../../src/cli/render';
import { startLoad } from '../../src/load-generator';
import { statusQuery } from '../../src/shared/messages';
import { useWorker } from '../harness';
import { serviceWithV1, startDeploy } from './deploy-fixture';
import { judgedPlan, releasesWith } from './judged-fixture';

describe("the canary's cut-off: HAProxy takes a failing canary out, the deploy rolls back", function () {
  this.timeout(240_000);
  const { taskQueue } = useWorker('cutoff');
  const folders: string[] = [];
  after(() => folders.forEach((f) => rmSync(f, { recursive: true, force: true })));

  it('a canary that starts answering 500 is taken out by HAProxy and rolled back; the next canary gets a working slot', async () => {
    const releases = releasesWith({ v1: {}, v2: { errorRate: 1, faultAfter: 20 }, v3: {} });
    folders.push(releases);
    // a bake far longer than the test waits for: only the cut-off can end the step early
    const plan = await serviceWithV1(taskQueue, await judgedPlan({ onInconclusive: 'pause' }, 600_000, releases));
    assert.deepEqual(plan.analysis.cutoff, { errorLimit: 5 }, 'on by default');
    // HAProxy's own cut-off alone: the rate rule (3 errors) would take a canary failing every request out first
    const haproxyOnly = { ...plan, analysis: { ...plan.analysis, cutoff: { errorLimit: 5, rate: false as const } } };
    const load = startLoad(`http://127.0.0.1:${plan.listen.port}/api/items`, { rps: 80, maxSeconds: 200 });
    try {
      const handle = await startDeploy(taskQueue, haproxyOnly, 'v2');
      const result = await handle.result();
      assert.equal(result.outcome, 'rolled-back', result.reason);
      assert.match(
        result.reason ?? '',
        /canary analysis failed at 50%: cut off: HAProxy took the canary out after 5 consecutive errors at \d{4}-\d\d-\d\dT[\d:.]+Z/,
      );
      const w = result.failedWindow;
      assert.equal(w?.cutoff?.errorLimit, 5);
      assert.ok((w?.errors5xx ?? 0) >= 5, JSON.stringify(w));
      assert.deepEqual(result.state.weights, { v1: 100, v2: 0 });
      const state = await handle.query(statusQuery);
      assert.equal(state.steps?.[0]?.status, 'failed');
      const status = renderStatus(state, { workflowId: handle.workflowId, link: 'ui', nowMs: Date.now() });
      assert.ok(
        status.some((l) =>
          /^analysis: .*: fail \(cut off: HAProxy took the canary out after 5 consecutive errors/.test(l),
        ),
        status.join('\n'),
      );

      // the next deploy, with the default cut-off (the rate rule too): a healthy canary takes the slot (HAProxy's
      // mark-down of v2 does not stick to it) and is not cut off
      const next = await (
        await startDeploy(
          taskQueue,
          {
            ...plan,
            traffic: {
              steps: [
                { weight: 50, bakeMs: 6_000 },
                { weight: 100, bakeMs: 0 },
              ],
            },
          },
          'v3',
        )
      ).result();
      assert.equal(next.outcome, 'succeeded', next.reason);
      assert.equal(next.state.steps?.[0]?.status, 'judged', JSON.stringify(next.state.steps));
      assert.ok(!next.state.analysis.some((a) => a.cutoff), 'a healthy canary is not cut off');
    } finally {
      await load.stop();
    }
  });

  it('a canary that fails half its requests is taken out by the rate cut-off (no 5 errors in a row needed) and rolled back', async () => {
    const releases = releasesWith({ v1: {}, v2: { errorRate: 0.5, faultAfter: 20 } });
    folders.push(releases);
    // HAProxy's own cut-off far away (50 consecutive errors): only the rate rule can take it out before a window
    const base = await judgedPlan({ onInconclusive: 'pause', cutoff: { errorLimit: 50 } }, 600_000, releases);
    const plan = await serviceWithV1(taskQueue, base);
    assert.equal(plan.analysis.cutoff?.rate, undefined, 'the default rule, left out of the plan');
    const load = startLoad(`http://127.0.0.1:${plan.listen.port}/api/items`, { rps: 80, maxSeconds: 200 });
    try {
      const handle = await startDeploy(taskQueue, plan, 'v2');
      const result = await handle.result();
      assert.equal(result.outcome, 'rolled-back', result.reason);
      assert.match(
        result.reason ?? '',
        /canary analysis failed at 50%: cut off: the cut-off took the canary out: \d+ of the canary's last \d+ requests failed \(\d+% >= 40%, at least 3 errors; analysis.cutoff.rate\) at \d{4}-/,
      );
      const rate = result.failedWindow?.cutoff?.rate;
      assert.ok(rate, JSON.stringify(result.failedWindow));
      assert.deepEqual(
        { max5xxRate: rate.max5xxRate, overRequests: rate.overRequests, minErrors: rate.minErrors },
        { max5xxRate: 0.4, overRequests: 20, minErrors: 3 },
      );
      assert.ok(rate.errors >= 3 && rate.errors / rate.attempts >= 0.4, JSON.stringify(rate));
      assert.deepEqual(result.state.weights, { v1: 100, v2: 0 });
      assert.equal(result.state.steps?.[0]?.status, 'failed');
    } finally {
      await load.stop();
    }
  });
});

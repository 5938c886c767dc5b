import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { renderDeployReport } from '../../src/cli/deploy-report-html';
import { renderStatus } from '../../src/cli/render';
import { startLoad } from '../../src/load-generator';
import type { DeployState } from '../../src/shared/deploy';
import { approveUpdate, statusQuery } from '../../src/shared/messages';
import { useWorker } from '../harness';
import { queryDb, releaseHistory, serviceWithV1, startDeploy, waitForState } from './deploy-fixture';
import { judgedPlan, releasesWith } from './judged-fixture';
import { ORCHESTRATOR_DB } from '../../src/stack/postgres';

const releaseDetails = (service: string) =>
  queryDb<{ version: string; outcome: string; details: { steps?: DeployState['steps'] } }>(
    ORCHESTRATOR_DB,
    'SELECT version, outcome, details FROM releases WHERE service = $1 ORDER BY id',
    [service],
  );

describe('judged steps: evidence per step, the unjudged-step gate, the judge against the stable release', function () {
  this.timeout(240_000);
  const { taskQueue } = useWorker('judged');
  const folders: string[] = [];
  after(() => folders.forEach((f) => rmSync(f, { recursive: true, force: true })));

  describe('no traffic (a quiet staging)', () => {
    it('pause: the step waits at the unjudged-step gate with its evidence; approved, the outcome says "unjudged at 50%"', async () => {
      const plan = await serviceWithV1(taskQueue, await judgedPlan({ onInconclusive: 'pause' }));
      const handle = await startDeploy(taskQueue, plan, 'v2');
      const waiting = await waitForState(
        handle,
        (s) => s.waitingFor?.gate === 'unjudged-step',
        'the unjudged-step gate',
      );
      assert.equal(waiting.phase, 'awaiting-approval');
      assert.deepEqual(
        waiting.steps?.map((s) => [s.weight, s.status, s.requests, s.needed]),
        [[50, 'baking', 0, 5]],
      );
      assert.match(waiting.step, /step 1 \(50%\) NOT judged: 0 canary requests \(at least 5 needed\)/);
      const lines = renderStatus(waiting, { workflowId: handle.workflowId, link: 'ui', nowMs: Date.now() });
      assert.ok(
        lines.some((l) => /^step 1 50%: baking: 0 canary requests \(5 needed\)/.test(l)),
        lines.join('\n'),
      );
      assert.ok(
        lines.some((l) => /waiting for unjudged-step from alice, bob/.test(l)),
        lines.join('\n'),
      );

      await handle.executeUpdate(approveUpdate, { args: [{ by: 'alice', note: 'staging is quiet at night' }] });
      const result = await handle.result();
      assert.equal(result.outcome, 'succeeded', result.reason);
      assert.match(
        result.reason ?? '',
        /^v2 is live, unjudged at 50% \(0 canary requests, 5 needed; approved unjudged by unverified:alice\)$/,
      );
      assert.deepEqual(
        result.state.steps?.map((s) => [s.weight, s.status]),
        [
          [50, 'approved'],
          [100, 'not-baked'],
        ],
      );
      const rows = await releaseDetails(plan.service);
      assert.equal(rows.at(-1)?.details.steps?.[0]?.status, 'approved', 'the release history keeps the evidence');
    });

    it('proceed: the deploy goes on and the outcome says "unjudged"; fail: rolled back, naming the missing evidence', async () => {
      const plan = await serviceWithV1(taskQueue, await judgedPlan({ onInconclusive: 'proceed' }));
      const proceeded = await (await startDeploy(taskQueue, plan, 'v2')).result();
      assert.equal(proceeded.outcome, 'succeeded');
      assert.match(
        proceeded.reason ?? '',
        /unjudged at 50% \(0 canary requests, 5 needed; analysis.onInconclusive is proceed\)/,
      );
      assert.ok(proceeded.state.timeline.some((t) => /NOT judged, proceeding/.test(t.message)));

      const failing = { ...plan, analysis: { ...plan.analysis, onInconclusive: 'fail' as const } };
      const failed = await (await startDeploy(taskQueue, failing, 'v1')).result();
      assert.equal(failed.outcome, 'rolled-back');
      assert.match(failed.reason ?? '', /canary not judged at 50%: 0 canary requests \(at least 5 needed\)/);
      assert.deepEqual(failed.state.weights, { v2: 100, v1: 0 });
      assert.deepEqual(
        (await releaseHistory(plan.service)).map((r) => r.outcome),
        ['succeeded', 'succeeded', 'rolled-back'],
      );
    });

    it('extend: bakes longer up to extendMax, then rolls back', async () => {
      const plan = await serviceWithV1(
        taskQueue,
        await judgedPlan({ onInconclusive: 'extend', extendMaxMs: 2_000 }, 2_000),
      );
      const result = await (await startDeploy(taskQueue, plan, 'v2')).result();
      assert.equal(result.outcome, 'rolled-back');
      assert.match(result.reason ?? '', /analysis.onInconclusive: extend/);
      assert.ok((result.state.steps?.[0]?.extendedMs ?? 0) > 0, 'the step was extended');
      assert.ok(result.state.timeline.some((t) => /baking up to 2000 ms longer/.test(t.message)));
    });
  });

  describe('under load', () => {
    it('a healthy canary is judged against the stable release and passes, with the evidence per window', async () => {
      const plan = await serviceWithV1(taskQueue, await judgedPlan({ onInconclusive: 'pause' }, 5_000));
      const load = startLoad(`http://127.0.0.1:${plan.listen.port}/api/items`, { rps: 80, maxSeconds: 60 });
      const result = await (await startDeploy(taskQueue, plan, 'v2')).result();
      await load.stop();
      assert.equal(result.outcome, 'succeeded', result.reason);
      assert.equal(result.reason, 'v2 is live', 'a judged deploy is a plain success');
      const step = result.state.steps?.[0];
      assert.equal(step?.status, 'judged');
      assert.ok(step.requests >= step.needed && step.stableRequests > 0, JSON.stringify(step));
      const judged = result.state.analysis.filter((w) => w.compare?.errors);
      assert.ok(judged.length > 0, 'windows carry the comparison');
      const last = judged.at(-1)!;
      assert.equal(last.compare?.latency?.test, 'mann-whitney');
      assert.ok(last.stable && last.stable.requests > 0, 'the stable side of the window');
    });

    it('a step counts as judged with analysis.minConclusiveWindows conclusive windows, and says so (issue 13 item 1)', async () => {
      // a bake of 3 windows may require 3 (fewer windows than required is refused in runbook.yaml: see
      // test/runbook-config/aws.unit.test.ts); extend bakes on until the third conclusive one
      const plan = await serviceWithV1(
        taskQueue,
        await judgedPlan({ onInconclusive: 'extend', extendMaxMs: 10_000, minConclusiveWindows: 3 }, 3_000),
      );
      const load = startLoad(`http://127.0.0.1:${plan.listen.port}/api/items`, { rps: 80, maxSeconds: 60 });
      const result = await (await startDeploy(taskQueue, plan, 'v2')).result();
      await load.stop();
      assert.equal(result.outcome, 'succeeded', result.reason);
      const step = result.state.steps?.[0];
      assert.equal(step?.status, 'judged', JSON.stringify(step));
      assert.ok(step.conclusive >= 3, JSON.stringify(step));
      assert.ok(
        result.state.timeline.some((e) => /judged: .* windows conclusive \(at least 3 needed\)/.test(e.message)),
        'the timeline says how many windows were needed',
      );
    });

    it('a canary with 5x the stable error rate, under the absolute limit, is rolled back by the judge', async () => {
      const releases = releasesWith({
        v1: { errorRate: 0.01, faultAfter: 5 },
        v2: { errorRate: 0.06, faultAfter: 5 },
      });
      folders.push(releases);
      const plan = await serviceWithV1(
        taskQueue,
        // the judge, not the cut-off's rate rule (which a canary failing 6% of 75 requests a second trips by chance
        // within seconds: canary-cutoff.test.ts)
        await judgedPlan(
          { onInconclusive: 'pause', max5xxRate: 0.25, cutoff: { errorLimit: 5, rate: false } },
          20_000,
          releases,
        ),
      );
      const load = startLoad(`http://127.0.0.1:${plan.listen.port}/api/items`, { rps: 150, maxSeconds: 90 });
      const result = await (await startDeploy(taskQueue, plan, 'v2')).result();
      await load.stop();
      assert.equal(result.outcome, 'rolled-back', result.reason);
      assert.match(result.reason ?? '', /canary analysis failed at 50%: worse than baseline: error rate .* Fisher p=/);
      const w = result.failedWindow!;
      assert.equal(w.compare?.verdict, 'fail');
      assert.ok(w.compare.errors!.pValue < w.compare.errors!.alpha);
      assert.ok(w.errorRate < 0.25, 'the absolute limit alone would have passed it');
      assert.deepEqual(result.state.weights, { v1: 100, v2: 0 });
      // the report: both sides per window, and where the verdict fell
      const html = renderDeployReport(result.state, { workflowId: 'deploy-x', generatedAtMs: 0 });
      assert.match(html, /<svg [^>]*role="img">/);
      assert.match(html, /<tr class="fail">.*Fisher p=.*worse than baseline: error rate/);
      assert.match(html, /step 1 \(50%\): FAILED: \d+ canary requests/);
      const status = renderStatus(result.state, { workflowId: 'deploy-x', link: 'ui', nowMs: Date.now() });
      assert.ok(
        status.some((l) =>
          /^judge: +vs baseline v1-\S+-baseline since the step began: \d+\/\d+ vs \d+\/\d+ errors \(Fisher p=/.test(l),
        ),
        status.join('\n'),
      );
    });

    it('a canary twice as slow, under the absolute latency limit, is rolled back by the judge', async () => {
      const releases = releasesWith({ v1: { latencyMs: 40 }, v2: { latencyMs: 90 } });
      folders.push(releases);
      const plan = await serviceWithV1(
        taskQueue,
        await judgedPlan({ onInconclusive: 'pause', maxP95LatencyMs: 500 }, 20_000, releases),
      );
      const load = startLoad(`http://127.0.0.1:${plan.listen.port}/api/items`, { rps: 60, maxSeconds: 90 });
      const handle = await startDeploy(taskQueue, plan, 'v2');
      const result = await handle.result();
      await load.stop();
      assert.equal(result.outcome, 'rolled-back', result.reason);
      assert.match(
        result.reason ?? '',
        /worse than baseline: p95 \d+ ms vs baseline \d+ ms \(ratio \d\.\d\d > 1.5, Mann-Whitney p=/,
      );
      assert.ok((result.failedWindow?.p95Ms ?? 1_000) < 500, 'under the absolute limit');
      const state = await handle.query(statusQuery);
      assert.equal(state.steps?.[0]?.status, 'failed');
    });
  });
});

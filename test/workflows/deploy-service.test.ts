import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { startLoad } from '../../src/load-generator';
import { approveUpdate, signoffUpdate } from '../../src/shared/messages';
import { useWorker } from '../harness';
import {
  queryDb,
  releaseHistory,
  runner,
  shopPlan,
  startDeploy,
  waitingAt,
  withGates,
  snapshotPath,
} from './deploy-fixture';

describe('deployService on the real stack (Temporal, PostgreSQL, HAProxy, real releases)', function () {
  this.timeout(180_000);
  const { taskQueue } = useWorker('deploy');

  it('happy path: v1 first, then v2 through every gate under load, with zero failed requests', async () => {
    const plan = await shopPlan();
    const first = await (await startDeploy(taskQueue, plan, 'v1')).result();
    assert.equal(first.outcome, 'succeeded', first.reason);
    assert.deepEqual(first.state.weights, { v1: 100 });
    assert.deepEqual(first.state.migrations?.applied.length, 2, 'both migrations applied on the first deploy');

    const load = startLoad(`http://127.0.0.1:${plan.listen.port}/api/items`, { rps: 100, maxSeconds: 120 });
    const gated = withGates(plan, ['before-start', 'before-traffic', 'go-live']);
    const handle = await startDeploy(taskQueue, gated, 'v2', 'dave');
    await waitingAt(handle, 'before-start');
    await handle.executeUpdate(approveUpdate, { args: [{ by: 'alice', note: 'change ticket 42' }] });
    await waitingAt(handle, 'before-traffic');
    await handle.executeUpdate(approveUpdate, { args: [{ by: 'bob' }] });
    await waitingAt(handle, 'go-live');
    await handle.executeUpdate(signoffUpdate, { args: [{ by: 'alice' }] });
    const result = await handle.result();
    const figures = await load.stop();

    assert.equal(result.outcome, 'succeeded', result.reason);
    assert.deepEqual(result.state.weights, { v1: 0, v2: 100 });
    assert.deepEqual(
      result.state.gates.map((g) => [g.gate, g.status, g.decidedBy]),
      [
        ['before-start', 'approved', 'unverified:alice'],
        ['before-traffic', 'approved', 'unverified:bob'],
        ['go-live', 'approved', 'unverified:alice'],
      ],
    );
    assert.ok(
      result.state.analysis.some((w) => w.verdict === 'pass'),
      'the analysis saw passing windows',
    );
    assert.deepEqual(result.state.migrations?.applied, [], 'nothing left to migrate for v2');
    assert.ok(result.snapshotId, 'a pre-migration snapshot was taken');
    assert.ok(existsSync(snapshotPath(plan, result.snapshotId)));
    const v1 = first.state.candidate!;
    assert.equal(await runner().get(plan.service, plan.environment, v1.releaseId), undefined, 'v1 was stopped');
    assert.ok(await runner().get(plan.service, plan.environment, result.state.candidate!.releaseId), 'v2 runs');
    assert.equal(figures.failed, 0, `failed requests during a good deploy: ${JSON.stringify(figures)}`);
    assert.ok(
      (figures.byVersion.v1 ?? 0) > 0 && (figures.byVersion.v2 ?? 0) > 0,
      `both releases served: ${JSON.stringify(figures.byVersion)}`,
    );
    const history = await releaseHistory(plan.service);
    assert.deepEqual(
      history.map((r) => [r.version, r.outcome]),
      [
        ['v1', 'succeeded'],
        ['v2', 'succeeded'],
      ],
    );
    const [migrations] = await queryDb<{ n: string }>(plan.database!.name, 'SELECT count(*) AS n FROM pgmigrations');
    assert.equal(Number(migrations?.n), 2, 'each migration applied once');
  });
});

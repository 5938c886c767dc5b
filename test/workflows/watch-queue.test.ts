import assert from 'node:assert/strict';
import { useWorker } from '../harness';
import { serviceWithV1, startDeploy } from './deploy-fixture';

/**
 * The canary cut-off's watch lasts a whole baked step. It runs on the watch queue (patch `watch-queue`), with slots of
 * its own: on the runbooks' queue, as many canaries baking at once as the worker has activity slots held every slot
 * with a watch, their windows waited for one, and no step could end (the watch's timeout is 24 h).
 */
describe('more canaries baking at once than the worker has activity slots', function () {
  this.timeout(240_000);
  const SLOTS = 2;
  const { taskQueue } = useWorker('watch-queue', () => ({ config: { RUNBOOK_MAX_ACTIVITIES: SLOTS } }));

  it('all finish: the cut-off watches do not take the slots their windows need', async () => {
    const plans = [];
    for (let i = 0; i < SLOTS + 1; i++) {
      plans.push(
        await serviceWithV1(taskQueue, {
          traffic: {
            steps: [
              { weight: 50, bakeMs: 3_000 },
              { weight: 100, bakeMs: 0 },
            ],
          },
        }),
      );
    }
    assert.ok(
      plans.every((p) => p.analysis.cutoff),
      'the sample plan has the cut-off on',
    );
    const handles = await Promise.all(plans.map((p) => startDeploy(taskQueue, p, 'v2')));
    const results = await Promise.all(handles.map((h) => h.result()));
    assert.deepEqual(
      results.map((r) => [r.outcome, r.state.weights]),
      plans.map(() => ['succeeded', { v1: 0, v2: 100 }]),
    );
    for (const h of handles) {
      const history = await h.fetchHistory();
      const watches = (history.events ?? []).filter(
        (e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'watchCutoff',
      );
      assert.ok(watches.length > 0, 'the step was watched');
      for (const w of watches) {
        assert.equal(w.activityTaskScheduledEventAttributes?.taskQueue?.name, `${taskQueue}-watch`);
      }
    }
  });
});

import assert from 'node:assert/strict';
import { judgeWindow } from '../../src/shared/analysis';

const policy = { max5xxRate: 0.02, maxP95LatencyMs: 500, minRequests: 10, intervalMs: 1_000, failuresTolerated: 0 };

describe('canary analysis verdict (unit)', () => {
  it('passes a healthy window and fails one over the 5xx rate or the p95 limit, saying why', () => {
    assert.equal(judgeWindow(policy, { requests: 100, errors5xx: 1, p95Ms: 20, live: true }).verdict, 'pass');
    const errors = judgeWindow(policy, { requests: 100, errors5xx: 5, p95Ms: 20, live: true });
    assert.deepEqual([errors.verdict, errors.because], ['fail', '5xx rate 5.00% > 2.00% (5 of 100)']);
    const slow = judgeWindow(policy, { requests: 100, errors5xx: 0, p95Ms: 812.4, live: true });
    assert.deepEqual([slow.verdict, slow.because], ['fail', 'p95 812 ms > 500 ms']);
  });

  it('calls a window with too few responses inconclusive, but a dead release a failure at once', () => {
    assert.equal(judgeWindow(policy, { requests: 3, errors5xx: 3, p95Ms: 1, live: true }).verdict, 'inconclusive');
    const dead = judgeWindow(policy, {
      requests: 0,
      errors5xx: 0,
      p95Ms: null,
      live: false,
      liveDetail: 'GET /health -> ECONNREFUSED',
    });
    assert.deepEqual([dead.verdict, dead.because], ['fail', 'liveness probe failed: GET /health -> ECONNREFUSED']);
  });

  it('counts connections the release dropped (retried elsewhere by HAProxy) as failures when asked to', () => {
    const figures = { requests: 90, errors5xx: 0, connectionErrors: 10, p95Ms: 5, live: true };
    assert.equal(judgeWindow(policy, figures).verdict, 'pass', 'histories from before the patch keep their verdicts');
    const counted = judgeWindow(policy, figures, { countConnectionErrors: true });
    assert.deepEqual(
      [counted.verdict, counted.because],
      ['fail', '5xx rate 10.0% > 2.00% (0 5xx + 10 dropped connections of 100)'],
    );
  });
});

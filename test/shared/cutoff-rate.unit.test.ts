import assert from 'node:assert/strict';
import { DEFAULT_RATE_CUTOFF, describeRateTrip, rateCutoffOf, rateWindow } from '../../src/shared/cutoff-rate';

/** Feeds a sequence of answers ('x' failed, '.' ok) one reading per answer; returns the answer index of the trip. */
function tripAt(answers: string, rule = DEFAULT_RATE_CUTOFF, start = { attempts: 0, errors: 0 }) {
  const w = rateWindow(rule);
  w.add(start);
  let attempts = start.attempts;
  let errors = start.errors;
  for (const [i, a] of [...answers].entries()) {
    attempts++;
    if (a === 'x') errors++;
    if (w.add({ attempts, errors })) return i;
  }
  return undefined;
}

describe('the rate cut-off (shared/cutoff-rate.ts)', () => {
  it('takes a half-failing canary out at its third error, where 5 consecutive errors never came', () => {
    // HAProxy's error-limit 5 counts consecutive errors: this canary never has more than 2 in a row
    assert.equal(tripAt('x.x.x.x.x.x.x.x.x.x'), 4);
    assert.equal(tripAt('.xx..x.xx.'), 5);
  });

  it('takes a canary that starts failing half its requests after a long healthy run out at its third error too', () => {
    // the span is the run of recent requests up to now that fails most, not always the last 20 (3 of 20 is 15%)
    assert.equal(tripAt(`${'.'.repeat(300)}x.x.x.x.x.x`), 304);
  });

  it('leaves a healthy canary with a low error rate alone, and errors that slid out of the span no longer count', () => {
    const onePercent = Array.from({ length: 3000 }, (_, i) => (i % 100 === 7 ? 'x' : '.')).join('');
    assert.equal(tripAt(onePercent), undefined);
    // 2 errors, then 20 good answers, then 1 more: 3 errors in all, but never 3 among the last 20
    assert.equal(tripAt(`xx${'.'.repeat(20)}x`), undefined);
    assert.equal(tripAt(`xx${'.'.repeat(4)}x`), 6, '3 of 7 is over 40%');
    assert.equal(tripAt(`xx${'.'.repeat(5)}x`), undefined, '3 of 8 is under 40%');
    // 3 errors in 20 is 15%: under the rate
    assert.equal(tripAt(`x${'.'.repeat(8)}x${'.'.repeat(8)}x`), undefined);
  });

  it('starts afresh when the counters go down (a router reload starts them at 0)', () => {
    const w = rateWindow(DEFAULT_RATE_CUTOFF);
    w.add({ attempts: 1000, errors: 2 });
    assert.equal(w.add({ attempts: 1002, errors: 4 }), undefined, '2 errors are fewer than minErrors');
    // reloaded: counters from 0; without the reset 1 - 1002 would be a negative span
    assert.equal(w.add({ attempts: 1, errors: 1 }), undefined);
    assert.equal(w.add({ attempts: 4, errors: 3 }), undefined, 'since the reset: 2 errors, fewer than minErrors');
    const later = w.add({ attempts: 5, errors: 4 });
    assert.deepEqual(later, { attempts: 4, errors: 3, rate: 0.75 });
    assert.equal(
      describeRateTrip(later!, DEFAULT_RATE_CUTOFF),
      "3 of the canary's last 4 requests failed (75% >= 40%, at least 3 errors; analysis.cutoff.rate)",
    );
  });

  it('reads the rule of a plan: its own, the default when absent, none when off', () => {
    assert.deepEqual(rateCutoffOf({ errorLimit: 5 }), DEFAULT_RATE_CUTOFF);
    assert.equal(rateCutoffOf({ errorLimit: 5, rate: false }), undefined);
    assert.equal(rateCutoffOf(undefined), undefined);
    const own = { max5xxRate: 0.5, overRequests: 10, minErrors: 5 };
    assert.deepEqual(rateCutoffOf({ errorLimit: 5, rate: own }), own);
  });
});

import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { Context } from '@temporalio/activity';
import { MockActivityEnvironment } from '@temporalio/testing';
import { AUTO_HEARTBEAT_MS, autoHeartbeat } from '../../src/activities/auto-heartbeat';

/**
 * The worker's activity interceptor that heartbeats every activity while it runs (so that a dead worker's activity is
 * handed over on its heartbeat timeout), without ever replacing the details an activity sent itself.
 */
describe('autoHeartbeat', () => {
  function run(env: MockActivityEnvironment, work: () => Promise<unknown>) {
    const interceptor = autoHeartbeat(env.context).inbound!;
    return env.run(() => interceptor.execute!({ args: [], headers: {} }, () => work()));
  }

  it('heartbeats an activity that does not, and stops when it ends', async () => {
    const env = new MockActivityEnvironment();
    const beats: unknown[] = [];
    env.on('heartbeat', (d: unknown) => beats.push(d));
    assert.equal(await run(env, () => sleep(AUTO_HEARTBEAT_MS * 3.5).then(() => 'done')), 'done');
    assert.ok(beats.length >= 1, 'heartbeats while it ran');
    assert.ok(
      beats.every((b) => b === undefined),
      'no details: the activity had none',
    );
    const after = beats.length;
    await sleep(AUTO_HEARTBEAT_MS * 1.5);
    assert.equal(beats.length, after, 'no heartbeat once the activity ended');
  });

  it("repeats the details the activity sent last, and the previous attempt's before it sends any", async () => {
    const env = new MockActivityEnvironment({ heartbeatDetails: { done: ['a'] } });
    const beats: unknown[] = [];
    env.on('heartbeat', (d: unknown) => beats.push(d));
    await run(env, async () => {
      await sleep(AUTO_HEARTBEAT_MS * 1.5);
      Context.current().heartbeat({ done: ['a', 'b'] });
      await sleep(AUTO_HEARTBEAT_MS * 2.5);
    });
    assert.deepEqual(beats[0], { done: ['a'] }, "the previous attempt's checkpoint, kept");
    assert.ok(beats.some((b) => JSON.stringify(b) === JSON.stringify({ done: ['a', 'b'] })));
    const last = beats.at(-1);
    assert.deepEqual(last, { done: ['a', 'b'] }, 'the checkpoint the activity sent, repeated, never replaced by none');
  });
});

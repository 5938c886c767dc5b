import assert from 'node:assert/strict';
import { Context } from '@temporalio/activity';
import { heartbeatWith, whileHeartbeating } from '../../src/activities/heartbeat';
import { mockActivityEnv } from './mock-env';

describe('whileHeartbeating', () => {
  it('re-sends the details last given to heartbeatWith, so that a retried attempt finds them', async () => {
    const env = mockActivityEnv();
    const beats: unknown[] = [];
    let enough!: () => void;
    const threeBeats = new Promise<void>((resolve) => (enough = resolve));
    env.on('heartbeat', (d: unknown) => {
      beats.push(d);
      if (beats.length === 3) enough();
    });
    await env.run(async () => {
      heartbeatWith(Context.current(), { done: ['public.a'] });
      await whileHeartbeating(() => threeBeats, 5);
    });
    assert.deepEqual(beats.slice(0, 3), [{ done: ['public.a'] }, { done: ['public.a'] }, { done: ['public.a'] }]);
  });
});

import assert from 'node:assert/strict';
import { mockActivityEnv } from './mock-env';
import { createStackActivities } from '../../src/activities/stack';
import type { HaproxyRuntime } from '../../src/platforms/single-host/haproxy-runtime';

const showInfo = 'Name: HAProxy\nVersion: 2.6.12-1+deb12u4\nUptime: 0d 0h01m02s\nUptime_sec: 62\n';

function fakeDeps(
  answer: string,
  rows: Array<{ version: string; db: string }> = [{ version: 'PostgreSQL 15.18 (Debian), 64-bit', db: 'runbook' }],
) {
  const commands: string[] = [];
  const haproxy: HaproxyRuntime = {
    async command(cmd) {
      commands.push(cmd);
      return answer;
    },
  };
  const db = { query: async () => ({ rows }) } as unknown as Parameters<typeof createStackActivities>[0]['db'];
  return { deps: { db, haproxy }, commands };
}

describe('stack activities (unit)', () => {
  it('checkTrafficRouter reads Version and Uptime from `show info`', async () => {
    const { deps, commands } = fakeDeps(showInfo);
    const result = await mockActivityEnv().run(createStackActivities(deps).checkTrafficRouter);
    assert.deepEqual(result, { version: '2.6.12-1+deb12u4', uptime: '0d 0h01m02s' });
    assert.deepEqual(commands, ['show info']);
  });

  it('checkTrafficRouter fails (retryably) when HAProxy answers without a version', async () => {
    const { deps } = fakeDeps('Unknown command\n');
    await assert.rejects(
      mockActivityEnv().run(createStackActivities(deps).checkTrafficRouter),
      /without a Version line/,
    );
  });

  it('checkDatabase trims the server version to its first clause', async () => {
    const { deps } = fakeDeps(showInfo);
    const result = await mockActivityEnv().run(createStackActivities(deps).checkDatabase);
    assert.deepEqual(result, { serverVersion: 'PostgreSQL 15.18 (Debian)', database: 'runbook' });
  });

  it('checkDatabase fails non-retryably when the server returns no row', async () => {
    const { deps } = fakeDeps(showInfo, []);
    await assert.rejects(
      mockActivityEnv().run(createStackActivities(deps).checkDatabase),
      (err: Error & { nonRetryable?: boolean; type?: string }) => {
        assert.equal(err.nonRetryable, true);
        assert.equal(err.type, 'DatabaseCheckFailed');
        return true;
      },
    );
  });
});

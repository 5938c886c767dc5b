import assert from 'node:assert/strict';
import { loadConfig } from '../../src/config';
import { UserError } from '../../src/errors';
import { resolveStackSettings } from '../../src/stack/settings';

describe('worker configuration', () => {
  it('applies defaults and keeps the given values', () => {
    const config = loadConfig({
      DATABASE_URL: 'postgres://u:p@127.0.0.1:5432/runbook',
      HAPROXY_SOCKET: '/x/admin.sock',
      RUNBOOK_HOME: '/x',
    });
    assert.equal(config.temporal.address, '127.0.0.1:7233');
    assert.equal(config.RUNBOOK_TASK_QUEUE, 'durable-runbooks');
    assert.equal(config.RUNBOOK_MAX_ACTIVITIES, 50);
  });

  it('reports every problem at once, by variable name', () => {
    assert.throws(
      () => loadConfig({ DATABASE_URL: 'mysql://nope', RUNBOOK_MAX_ACTIVITIES: '0' }),
      (err: unknown) => {
        assert.ok(err instanceof UserError);
        assert.match(err.message, /DATABASE_URL: must be a postgres:\/\/ URL/);
        assert.match(err.message, /HAPROXY_SOCKET: is not set/);
        assert.match(err.message, /RUNBOOK_HOME: is not set/);
        assert.match(err.message, /RUNBOOK_MAX_ACTIVITIES: /);
        return true;
      },
    );
  });
});

describe('stack settings', () => {
  it('takes ports from the environment and names the variable of a bad one', () => {
    const s = resolveStackSettings({ RUNBOOK_HOME: '/tmp/nowhere-runbook', RUNBOOK_TEMPORAL_PORT: '7300' });
    assert.equal(s.temporalPort, 7300);
    assert.equal(s.uiPort, 8233);
    assert.throws(
      () =>
        resolveStackSettings({
          RUNBOOK_HOME: '/tmp/nowhere-runbook',
          RUNBOOK_UI_PORT: '99999',
          RUNBOOK_PG_PORT: 'abc',
        }),
      /RUNBOOK_UI_PORT: .*RUNBOOK_PG_PORT: /s,
    );
  });
});

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig, workerDeploymentOf } from '../../src/config';
import { UserError } from '../../src/errors';
import { passfilePath, resolveStackSettings, saveStackSettings } from '../../src/stack/settings';
import { workerEnv } from '../../src/stack/worker-process';

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
    assert.equal(config.RUNBOOK_WORKFLOW_THREADS, 2);
  });

  it('reports every problem at once, by variable name', () => {
    assert.throws(
      () => loadConfig({ DATABASE_URL: 'mysql://nope', RUNBOOK_MAX_ACTIVITIES: '0', RUNBOOK_WORKFLOW_THREADS: '0' }),
      (err: unknown) => {
        assert.ok(err instanceof UserError);
        assert.match(err.message, /DATABASE_URL: must be a postgres:\/\/ URL/);
        assert.match(err.message, /HAPROXY_SOCKET: is not set/);
        assert.match(err.message, /RUNBOOK_HOME: is not set/);
        assert.match(err.message, /RUNBOOK_MAX_ACTIVITIES: /);
        assert.match(err.message, /RUNBOOK_WORKFLOW_THREADS: /);
        return true;
      },
    );
  });
});

describe('worker configuration: Worker Versioning', () => {
  const base = {
    DATABASE_URL: 'postgres://u:p@127.0.0.1:5432/runbook',
    HAPROXY_SOCKET: '/x/a.sock',
    RUNBOOK_HOME: '/x',
  };

  it('is off without a deployment, also when the variables are empty (docker-compose.yml)', () => {
    assert.equal(workerDeploymentOf(loadConfig(base)), undefined);
    const empty = {
      ...base,
      RUNBOOK_WORKER_DEPLOYMENT: '',
      RUNBOOK_WORKER_BUILD_ID: '',
      RUNBOOK_WORKER_VERSIONING: '',
    };
    assert.equal(workerDeploymentOf(loadConfig(empty)), undefined);
  });

  it('pins runbooks to the build by default; auto-upgrade when asked', () => {
    const env = { ...base, RUNBOOK_WORKER_DEPLOYMENT: 'durable-runbooks', RUNBOOK_WORKER_BUILD_ID: 'v1.4.0' };
    assert.deepEqual(workerDeploymentOf(loadConfig(env)), {
      version: { deploymentName: 'durable-runbooks', buildId: 'v1.4.0' },
      useWorkerVersioning: true,
      defaultVersioningBehavior: 'PINNED',
    });
    const auto = workerDeploymentOf(loadConfig({ ...env, RUNBOOK_WORKER_VERSIONING: 'auto-upgrade' }));
    assert.equal(auto?.defaultVersioningBehavior, 'AUTO_UPGRADE');
  });

  it('names the missing half, and a build id it cannot take', () => {
    assert.throws(
      () => loadConfig({ ...base, RUNBOOK_WORKER_DEPLOYMENT: 'durable-runbooks' }),
      /RUNBOOK_WORKER_BUILD_ID: is not set, and Worker Versioning needs both/,
    );
    assert.throws(
      () => loadConfig({ ...base, RUNBOOK_WORKER_BUILD_ID: 'abc' }),
      /RUNBOOK_WORKER_DEPLOYMENT: is not set, and Worker Versioning needs both/,
    );
    assert.throws(
      () => loadConfig({ ...base, RUNBOOK_WORKER_DEPLOYMENT: 'd', RUNBOOK_WORKER_BUILD_ID: 'a b' }),
      /RUNBOOK_WORKER_BUILD_ID: must have no spaces/,
    );
    assert.throws(
      () =>
        loadConfig({
          ...base,
          RUNBOOK_WORKER_DEPLOYMENT: 'd',
          RUNBOOK_WORKER_BUILD_ID: 'b',
          RUNBOOK_WORKER_VERSIONING: 'sometimes',
        }),
      /RUNBOOK_WORKER_VERSIONING: /,
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

describe('stack settings on disk: no URL with a password, 0600 files', () => {
  let home: string;
  beforeEach(() => (home = path.join(mkdtempSync(path.join(os.tmpdir(), 'runbook-settings-')), '.runbook')));
  afterEach(() => rmSync(path.dirname(home), { recursive: true, force: true }));

  const password = 'pa:ss@w/rd%20\\x';
  const external = `postgres://ops@db.example.com:6543/runbook?sslmode=require`;
  const withPassword = () => {
    const u = new URL(external);
    u.password = encodeURIComponent(password);
    return u.toString();
  };

  it('an external DATABASE_URL: stack.json holds it without the password, pgpass holds the password', () => {
    saveStackSettings(resolveStackSettings({ DATABASE_URL: withPassword() }, { home }));
    const stackJson = readFileSync(path.join(home, 'stack.json'), 'utf8');
    assert.equal(JSON.parse(stackJson).externalDatabaseUrl, external);
    assert.ok(!stackJson.includes(encodeURIComponent(password)) && !stackJson.includes('w/rd'));
    assert.equal(readFileSync(passfilePath(home), 'utf8'), 'db.example.com:6543:*:ops:pa\\:ss@w/rd%20\\\\x\n');
    for (const f of ['stack.json', 'pgpass']) assert.equal(statSync(path.join(home, f)).mode & 0o777, 0o600, f);
    assert.equal(statSync(home).mode & 0o777, 0o700);
    assert.deepEqual(readdirSync(home).sort(), ['pgpass', 'stack.json'], 'no temporary files left');

    // Read back (no DATABASE_URL in the environment): the password is put back, in memory only.
    const again = resolveStackSettings({}, { home });
    assert.equal(new URL(again.externalDatabaseUrl!).password, encodeURIComponent(password));
    assert.equal(decodeURIComponent(new URL(again.externalDatabaseUrl!).password), password);
    assert.equal(workerEnv(again).DATABASE_URL, again.externalDatabaseUrl, 'the worker gets it in its environment');
  });

  it('the environment wins; a URL without a password removes the saved one; another server does not get it', () => {
    saveStackSettings(resolveStackSettings({ DATABASE_URL: withPassword() }, { home }));
    const other = resolveStackSettings({ DATABASE_URL: 'postgres://ops@elsewhere:6543/runbook' }, { home });
    assert.equal(new URL(other.externalDatabaseUrl!).password, '', 'the saved password belongs to db.example.com');
    saveStackSettings(resolveStackSettings({ DATABASE_URL: external }, { home }));
    assert.equal(existsSync(passfilePath(home)), false);
    assert.equal(resolveStackSettings({}, { home }).externalDatabaseUrl, external);
  });

  it('a password given as a parameter is moved out too', () => {
    saveStackSettings(resolveStackSettings({ DATABASE_URL: 'postgres://ops@db/runbook?password=p4ss' }, { home }));
    assert.doesNotMatch(readFileSync(path.join(home, 'stack.json'), 'utf8'), /p4ss/);
    assert.equal(new URL(resolveStackSettings({}, { home }).externalDatabaseUrl!).password, 'p4ss');
  });
});

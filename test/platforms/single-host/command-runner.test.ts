/**
 * The single-host platform's release commands on the real test stack: a migration command runs from the release's
 * folder as the release user (as root) with its service's own PostgreSQL role, the URL it was given masked in the
 * result's tail. The runner's own behaviour (adoption, timeouts, the log cap) is in command-runner.unit.test.ts.
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { serviceRoleName } from '../../../src/pg/service-role';
import { createSingleHostPlatform } from '../../../src/platforms/single-host';
import { haproxyPaths } from '../../../src/platforms/single-host/haproxy-control';
import { databaseUrl, ensureDatabase } from '../../../src/stack/postgres';
import { resolveReleaseUser } from '../../../src/system/release-user';
import { loadWorkerSecret } from '../../../src/system/worker-secret';
import { testStack, uniqueName } from '../../harness';

/** A "migration" that says who it is on the database, and prints the URL it was given. */
const MIGRATE = `'use strict';
const { Client } = require(process.env.PG_MODULE);
(async () => {
  const c = new Client({ connectionString: process.env.DATABASE_URL });
  await c.connect();
  const { rows } = await c.query('SELECT current_user AS who');
  await c.end();
  console.log('migrated as ' + rows[0].who + ' via ' + process.env.DATABASE_URL);
})().catch((e) => { console.error(e.message); process.exit(1); });
`;

describe('single-host release commands on the real stack: the service role, as the release user', function () {
  this.timeout(60_000);
  let root: string;

  before(() => {
    root = mkdtempSync(path.join(os.tmpdir(), 'runbook-command-stack-'));
    chmodSync(root, 0o755); // the release user reads the release folder
    mkdirSync(path.join(root, 'v1'), { mode: 0o755 });
    writeFileSync(path.join(root, 'v1', 'migrate.js'), MIGRATE, { mode: 0o644 });
  });

  after(() => {
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it("runs a migration command with the service's role, and its tail holds no password", async () => {
    const { settings } = testStack();
    const service = uniqueName('cmd')
      .replace(/[^a-z0-9]/g, '_')
      .slice(0, 40);
    await ensureDatabase(settings, service);
    const user = process.getuid?.() === 0 ? resolveReleaseUser({}) : undefined;
    const platform = createSingleHostPlatform({
      home: settings.home,
      haproxySocket: haproxyPaths(settings.home).adminSocket,
      urlFor: (database) => databaseUrl(settings, database),
      workerSecret: loadWorkerSecret({}, settings.home),
      serviceRoles: true,
      ...(user ? { releaseUser: user } : {}),
    });
    assert.ok(platform.commands, 'the single-host platform runs release commands');
    const result = await platform.commands.run({
      service,
      environment: 'test',
      version: 'v1',
      releaseId: `${service.replace(/_/g, '-').slice(0, 30)}-v1`,
      purpose: 'migrate',
      runId: uniqueName('migrate')
        .replace(/[^a-z0-9-]/g, '-')
        .slice(0, 64),
      command: ['node', 'migrate.js'],
      timeoutMs: 30_000,
      release: {
        command: ['node', 'server.js'],
        cwd: path.join(root, '{version}'),
        env: { PG_MODULE: require.resolve('pg'), PORT: '{port}' },
        portRange: { min: 24300, max: 24399 },
        drainMs: 0,
      },
      database: { name: service },
    });
    assert.equal(result.exitCode, 0, result.tail);
    const role = serviceRoleName(service, 'test');
    assert.match(result.tail, new RegExp(`^migrated as ${role} via \\*\\*\\*$`, 'm'));
    assert.ok(result.logLocation.startsWith(path.join(settings.home, 'releases', `${service}-test`, 'commands')));
  });
});

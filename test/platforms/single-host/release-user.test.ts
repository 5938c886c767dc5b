/**
 * Releases are not the worker (on the real test stack, as root): a release runs as the unprivileged release user
 * with its service's own PostgreSQL role, and cannot read the worker's environment, its data folder (HAProxy's admin
 * socket, the worker secret, the snapshots) or another database. The release reports what it could reach.
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ensureServiceRole, serviceRoleName } from '../../../src/pg/service-role';
import { createSingleHostPlatform } from '../../../src/platforms/single-host';
import type { RunningRelease } from '../../../src/platforms/types';
import type { ReleaseSpec } from '../../../src/shared/service-plan';
import { haproxyPaths } from '../../../src/platforms/single-host/haproxy-control';
import { databaseUrl, ensureDatabase } from '../../../src/stack/postgres';
import { lookupUser, resolveReleaseUser, type ReleaseUser } from '../../../src/system/release-user';
import { loadWorkerSecret, workerSecretFile } from '../../../src/system/worker-secret';
import { waitFor } from '../../../src/system/processes';
import { testStack, uniqueName } from '../../harness';

/** What the release tries, written to its log as one JSON line. */
const PROBE = `'use strict';
const fs = require('node:fs');
const net = require('node:net');
const { Client } = require(process.env.PG_MODULE);
const tryRead = (file) => { try { fs.readFileSync(file); return 'read'; } catch (e) { return e.code; } };
const tryConnect = (socket) => new Promise((resolve) => {
  const s = net.connect(socket);
  s.once('connect', () => { s.destroy(); resolve('connected'); });
  s.once('error', (e) => resolve(e.code));
});
const tryDb = async (database) => {
  const url = new URL(process.env.DATABASE_URL);
  url.pathname = '/' + database;
  const c = new Client({ connectionString: url.toString() });
  try {
    await c.connect();
    const { rows } = await c.query('SELECT current_user AS who, (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS super');
    return rows[0];
  } catch (e) { return { error: e.message }; } finally { await c.end().catch(() => {}); }
};
(async () => {
  const report = {
    uid: process.getuid(),
    groups: process.getgroups(),
    home: process.env.HOME,
    workerEnviron: tryRead('/proc/' + process.env.WORKER_PID + '/environ'),
    workerSecret: tryRead(process.env.SECRET_FILE),
    adminSocket: await tryConnect(process.env.ADMIN_SOCKET),
    own: await tryDb(new URL(process.env.DATABASE_URL).pathname.slice(1)),
    other: await tryDb(process.env.OTHER_DB),
    postgres: await tryDb('postgres'),
  };
  console.log('REPORT ' + JSON.stringify(report));
  require('node:http').createServer((req, res) => res.end('ok')).listen(Number(process.env.PORT), '127.0.0.1');
})();
`;

describe('releases are not the worker: the release user and the service role (real stack, as root)', function () {
  this.timeout(120_000);
  let user: ReleaseUser | undefined;
  let root: string;
  let running: RunningRelease | undefined;
  let platform: ReturnType<typeof createSingleHostPlatform>;
  const service = uniqueName('probe')
    .replace(/[^a-z0-9]/g, '_')
    .slice(0, 40);

  before(function () {
    if (process.getuid?.() !== 0) this.skip(); // only root can start a process as another user
    // The suite's own choice (RUNBOOK_RELEASE_USER=root when the checkout is under a private home) is not this test's:
    // it always runs the probe as the default release user, from a folder that user can read.
    user = resolveReleaseUser({});
    root = mkdtempSync(path.join(os.tmpdir(), 'runbook-release-user-'));
    chmodSync(root, 0o755);
    mkdirSync(path.join(root, 'v1'));
    writeFileSync(path.join(root, 'v1', 'server.js'), PROBE, { mode: 0o644 });
    const { settings } = testStack();
    platform = createSingleHostPlatform({
      home: settings.home,
      haproxySocket: haproxyPaths(settings.home).adminSocket,
      urlFor: (database) => databaseUrl(settings, database),
      workerSecret: loadWorkerSecret({}, settings.home),
      serviceRoles: true,
      ...(user ? { releaseUser: user } : {}),
    });
  });

  after(async () => {
    if (running) await platform.releases.stop(running.service, running.environment, running.releaseId, 2_000);
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it('runs as the release user with its own role, and reaches nothing of the worker', async () => {
    const { settings } = testStack();
    await ensureDatabase(settings, service);
    const other = `${service}_other`;
    await ensureDatabase(settings, other);
    const release: ReleaseSpec = {
      command: ['node', 'server.js'],
      cwd: path.join(root, '{version}'),
      env: {
        PORT: '{port}',
        WORKER_PID: String(process.pid),
        SECRET_FILE: workerSecretFile(settings.home),
        ADMIN_SOCKET: haproxyPaths(settings.home).adminSocket,
        OTHER_DB: other,
        PG_MODULE: require.resolve('pg'),
      },
      portRange: { min: 24100, max: 24199 },
      drainMs: 0,
    };
    // The other database belongs to another service's role, as it would after that service's first start.
    await ensureServiceRole(databaseUrl(settings, 'postgres'), other, serviceRoleName(other, 'test'), 'x'.repeat(40));
    running = await platform.releases.start({
      service,
      environment: 'test',
      releaseId: `${service}-v1`,
      version: 'v1',
      release,
      database: { name: service },
    });
    let line: string | undefined;
    await waitFor(
      'the probe release',
      async () => {
        line = readFileSync(running!.logFile, 'utf8')
          .split('\n')
          .find((l) => l.startsWith('REPORT '));
        return line !== undefined;
      },
      { timeoutMs: 30_000, pid: running.pid, logFile: running.logFile },
    );
    const report = JSON.parse(line!.slice('REPORT '.length)) as Record<string, unknown>;
    assert.equal(report.uid, user!.uid, `runs as ${user!.name}`);
    assert.deepEqual(report.groups, [user!.gid], "no supplementary groups (not root's)");
    assert.notEqual(report.workerEnviron, 'read', "cannot read the worker's environment");
    assert.notEqual(report.workerSecret, 'read', 'cannot read the worker secret');
    assert.notEqual(report.adminSocket, 'connected', "cannot reach HAProxy's admin socket");
    assert.deepEqual(report.own, { who: serviceRoleName(service, 'test'), super: false });
    assert.match(String((report.other as { error?: string }).error), /permission denied for database/);
    // The server's own database lets PUBLIC connect (PostgreSQL's default); there the role is no superuser either.
    assert.deepEqual(report.postgres, { who: serviceRoleName(service, 'test'), super: false });
    assert.notEqual(lookupUser(user!.name)?.uid, 0);
  });

  it('refuses a release folder the release user cannot read, naming the folder and the fixes', async () => {
    const privateRoot = mkdtempSync(path.join(os.tmpdir(), 'runbook-private-release-')); // 0700
    try {
      mkdirSync(path.join(privateRoot, 'v1'));
      writeFileSync(path.join(privateRoot, 'v1', 'server.js'), PROBE);
      const err = await platform.releases
        .start({
          service,
          environment: 'private',
          releaseId: `${service}-private`,
          version: 'v1',
          release: {
            command: ['node', 'server.js'],
            cwd: path.join(privateRoot, '{version}'),
            env: {},
            portRange: { min: 24200, max: 24299 },
            drainMs: 0,
          },
        })
        .catch((e: Error) => e);
      assert.ok(err instanceof Error);
      assert.match(err.message, new RegExp(`runs as the user ${user!.name}.*cannot pass ${privateRoot}`));
      assert.match(err.message, /RUNBOOK_RELEASE_USER/);
      assert.equal((err as { type?: string }).type, 'ReleaseStartFailed');
    } finally {
      rmSync(privateRoot, { recursive: true, force: true });
    }
  });
});

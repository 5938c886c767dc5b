/**
 * The scripts under deploy/, run for real on a machine without a Docker engine: the search-attribute registration
 * against a Temporal dev server, the database setup against a private PostgreSQL (then the platform's database work
 * as the role it creates), and the image's entrypoint starting HAProxy with the project's code. compose.unit.test.ts
 * checks the compose file and the Dockerfile themselves.
 */
import { randomBytes } from 'node:crypto';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { migrateOrchestratorDb } from '../../src/orchestrator-store/orchestrator-db';
import { createHaproxyRuntime } from '../../src/platforms/single-host/haproxy-runtime';
import { createPgSnapshotStore } from '../../src/platforms/single-host/pg-snapshots';
import { runbookSearchAttributes } from '../../src/shared/search-attributes';
import { haproxyPaths } from '../../src/platforms/single-host/haproxy-control';
import { freePort, livePid, stopProcess } from '../../src/system/processes';
import { findTemporalCli } from '../../src/stack/tools';
import { which } from '../../src/system/executables';
import { startPgFixture, type PgFixture } from '../helpers/pg-fixture';
import { cleanEnv, requireTool, root, run, service } from './compose-fixture';

describe('deploy/ scripts, run for real', function () {
  this.timeout(120_000);

  describe('temporal/register-search-attributes.sh (service temporal-setup)', function () {
    let server: ChildProcess | undefined;
    let cli: string | undefined;
    let address = '';

    before(async function () {
      this.timeout(60_000);
      cli = (await findTemporalCli())?.path;
      if (!cli) return;
      const [port, httpPort, metricsPort] = [await freePort(), await freePort(), await freePort()];
      address = `127.0.0.1:${port}`;
      server = spawn(
        cli,
        ['server', 'start-dev', '--headless', '--ip', '127.0.0.1', '--port', String(port)].concat([
          '--http-port',
          String(httpPort),
          '--metrics-port',
          String(metricsPort),
          '--log-level',
          'error',
        ]),
        { stdio: 'ignore' },
      );
    });

    after(async () => {
      if (server?.pid) await stopProcess(server.pid, 10_000);
    });

    const register = (namespace: string, args: string[]) =>
      run('sh', [path.join(root, 'deploy/temporal/register-search-attributes.sh'), ...args], {
        env: cleanEnv({
          PATH: `${path.dirname(cli!)}${path.delimiter}${process.env.PATH}`,
          TEMPORAL_ADDRESS: address,
          TEMPORAL_NAMESPACE: namespace,
          TEMPORAL_WAIT_ATTEMPTS: '30',
        }),
      });

    const registeredTypes = async (namespace: string) => {
      const { stdout } = await run(cli!, [
        'operator',
        'search-attribute',
        'list',
        '--address',
        address,
        '--namespace',
        namespace,
        '--output',
        'json',
      ]);
      return (JSON.parse(stdout) as { customAttributes: Record<string, string> }).customAttributes;
    };

    it("creates the namespace and registers the compose file's attributes, idempotently", async function () {
      requireTool(this, cli, 'node bin/runbook.js setup (the Temporal CLI)');
      const namespace = `compose-test-${process.pid}`;
      const args = service('temporal-setup').command!;
      await register(namespace, args);
      const again = await register(namespace, args);
      assert.match(again.stdout, new RegExp(`namespace ${namespace} exists`));
      const types = await registeredTypes(namespace);
      const expected = Object.fromEntries(runbookSearchAttributes.map((k) => [k.name, `INDEXED_VALUE_TYPE_${k.type}`]));
      assert.deepEqual(
        Object.fromEntries(Object.entries(types).filter(([name]) => name.startsWith('Runbook'))),
        expected,
      );
    });

    it('fails when an attribute exists with another type', async function () {
      requireTool(this, cli, 'node bin/runbook.js setup (the Temporal CLI)');
      const namespace = `compose-test-${process.pid}-types`;
      await register(namespace, ['RunbookRtoSeconds=Double']);
      await assert.rejects(register(namespace, ['RunbookRtoSeconds=Keyword']), (err: { stderr?: string }) => {
        assert.match(err.stderr ?? '', /cannot register RunbookRtoSeconds as Keyword/);
        return true;
      });
    });
  });

  describe('postgres/setup-runbook-db.sh (service postgres-setup)', function () {
    let pg0: PgFixture | undefined;
    let admin: URL;
    // the fixture's cluster already has the embedded stack's database `runbook`, owned by its superuser
    const orchestratorDb = `runbook_compose_${process.pid}`;

    before(async function () {
      this.timeout(120_000);
      if (!which('pg_ctl', ['/usr/lib/postgresql/15/bin'])) return;
      pg0 = await startPgFixture();
      admin = new URL(pg0.urlFor('postgres'));
    });

    after(async () => {
      await pg0?.stop();
    });

    const setup = (password: string, appDatabases: string) =>
      run('sh', [path.join(root, 'deploy/postgres/setup-runbook-db.sh')], {
        env: cleanEnv({
          PATH: `${pg0!.binDir}${path.delimiter}${process.env.PATH}`,
          PGHOST: admin.hostname,
          PGPORT: admin.port,
          PGUSER: decodeURIComponent(admin.username),
          PGPASSWORD: decodeURIComponent(admin.password),
          PGDATABASE: 'postgres',
          RUNBOOK_DB_PASSWORD: password,
          RUNBOOK_DB_NAME: orchestratorDb,
          RUNBOOK_APP_DATABASES: appDatabases,
        }),
      });
    const urlAs = (password: string) => (database: string) =>
      `postgres://runbook:${password}@${admin.hostname}:${admin.port}/${database}`;
    const canConnect = async (url: string) => {
      const client = new pg.Client({ connectionString: url });
      try {
        await client.connect();
        return true;
      } catch {
        return false;
      } finally {
        await client.end().catch(() => undefined);
      }
    };

    it('creates the least-privileged role the platform needs, idempotently, and rotates its password', async function () {
      requireTool(this, pg0, 'apt-get install postgresql-15 postgresql-client-15');
      const app = `shop_compose_${process.pid}`;
      await setup('first-password', app);
      await setup('second-password', app);
      const urlFor = urlAs('second-password');
      assert.equal(await canConnect(urlAs('first-password')(orchestratorDb)), false, 'the old password still works');
      assert.equal(await canConnect(urlFor(orchestratorDb)), true);

      const roles = await pg0!.query(
        'postgres',
        "SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = 'runbook'",
      );
      assert.deepEqual(roles, [{ rolsuper: false, rolcreatedb: true, rolcreaterole: false }]);
      const owners = await pg0!.query<{ datname: string; owner: string }>(
        'postgres',
        'SELECT datname, pg_get_userbyid(datdba) AS owner FROM pg_database WHERE datname = ANY($1)',
        [[orchestratorDb, app]],
      );
      assert.deepEqual(Object.fromEntries(owners.map((r) => [r.datname, r.owner])), {
        [orchestratorDb]: 'runbook',
        [app]: 'runbook',
      });

      // What the worker does with DATABASE_URL, as that role: the orchestrator's schema, an app's tables,
      // a snapshot (pg_dump) and a restore drill into a database it creates and drops.
      const pool = new pg.Pool({ connectionString: urlFor(orchestratorDb) });
      try {
        await migrateOrchestratorDb(pool);
      } finally {
        await pool.end();
      }
      const client = new pg.Client({ connectionString: urlFor(app) });
      await client.connect();
      try {
        await client.query('CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL)');
        await client.query("INSERT INTO items (name) VALUES ('pear'), ('apple')");
      } finally {
        await client.end();
      }
      const store = createPgSnapshotStore({
        dir: path.join(pg0!.scratch, 'snapshots'),
        urlFor,
        binDir: pg0!.binDir,
        manifestKey: randomBytes(32),
      });
      const snapshotId = `compose-${process.pid}`;
      await store.take({
        snapshotId,
        service: 'shop',
        environment: 'compose',
        database: app,
        workflowId: 'wf-compose',
      });
      const target = `${app}_restored`;
      await store.restore(snapshotId, target, { jobs: 1 });
      const restored = new pg.Client({ connectionString: urlFor(target) });
      await restored.connect();
      try {
        assert.deepEqual((await restored.query('SELECT count(*)::int AS n FROM items')).rows, [{ n: 2 }]);
      } finally {
        await restored.end();
      }
      await store.dropDatabase(target);
    });
  });

  describe('docker/entrypoint.sh (the image entrypoint)', function () {
    let app: string;
    let home: string;
    const started: ChildProcess[] = [];

    before(function () {
      // A copy of the image's /app: the entrypoint and the compiled stack code, with a stand-in worker that
      // reports what it found and runs until its stdin closes (so that it holds the host lock meanwhile).
      app = mkdtempSync(path.join(os.tmpdir(), 'runbook-entrypoint-'));
      home = path.join(app, 'home');
      mkdirSync(path.join(app, 'deploy', 'docker'), { recursive: true });
      copyFileSync(path.join(root, 'deploy/docker/entrypoint.sh'), path.join(app, 'deploy/docker/entrypoint.sh'));
      mkdirSync(path.join(app, 'dist'));
      symlinkSync(path.join(root, 'dist', 'stack'), path.join(app, 'dist', 'stack'));
      writeFileSync(
        path.join(app, 'dist', 'worker.js'),
        `const fs = require('node:fs');
         console.log(JSON.stringify({ cwd: process.cwd(), socket: fs.existsSync(process.env.HAPROXY_SOCKET) }));
         process.stdin.resume();
         process.stdin.on('end', () => process.exit(0));`,
      );
    });

    after(async () => {
      for (const p of started) p.kill('SIGKILL');
      const pid = livePid(haproxyPaths(home).pidFile, haproxyPaths(home).config);
      if (pid) await stopProcess(pid, 10_000);
      rmSync(app, { recursive: true, force: true });
    });

    const entrypoint = async (statsPort: number) => {
      const child = spawn('sh', [path.join(app, 'deploy/docker/entrypoint.sh'), 'node', 'dist/worker.js'], {
        env: cleanEnv({
          RUNBOOK_HOME: home,
          HAPROXY_SOCKET: haproxyPaths(home).adminSocket,
          RUNBOOK_HAPROXY_STATS_PORT: String(statsPort),
        }),
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      started.push(child);
      let stdout = '';
      let stderr = '';
      child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
      const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
      return { child, exited, out: () => stdout, err: () => stderr };
    };

    it('starts HAProxy on the socket the worker is given, then runs the worker holding the host lock', async function () {
      requireTool(this, which('haproxy', ['/usr/sbin']), 'apt-get install haproxy');
      assert.ok(existsSync(path.join(root, 'dist', 'stack', 'haproxy.js')), 'dist/ is missing: npm run build');
      const first = await entrypoint(await freePort());
      const deadline = Date.now() + 30_000;
      while (!first.out().includes('"socket"') && Date.now() < deadline) {
        if (first.child.exitCode !== null) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      const report = first
        .out()
        .split('\n')
        .find((l) => l.startsWith('{'));
      assert.ok(report, `the worker did not start:\n${first.out()}\n${first.err()}`);
      assert.deepEqual(JSON.parse(report), { cwd: app, socket: true });
      assert.match(await createHaproxyRuntime(haproxyPaths(home).adminSocket).command('show info'), /Version/);

      const second = await entrypoint(await freePort());
      assert.equal(await second.exited, 1);
      assert.match(second.err(), /another worker container holds/);

      first.child.stdin!.end();
      assert.equal(await first.exited, 0);
    });

    it('runs any other command as is', async function () {
      const { stdout } = await run('sh', [path.join(app, 'deploy/docker/entrypoint.sh'), 'echo', 'plain'], {
        env: cleanEnv(),
      });
      assert.equal(stdout, 'plain\n');
    });
  });
});

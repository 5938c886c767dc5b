/**
 * docker-compose.yml, the Dockerfile and the scripts under deploy/, checked on a machine without a Docker engine
 * (CI has none: nothing here builds an image or starts a container).
 *
 * How the compose file is validated, and why two ways:
 * - `docker-compose config -q`, Debian's docker-compose 1.29 (apt package `docker-compose`), loads the file the
 *   way Compose does before it starts anything: it interpolates the variables, so a missing
 *   `${POSTGRES_PASSWORD:?...}` is an error, and it resolves references, so a `depends_on` on a service that
 *   does not exist (or a dependency cycle) is one too. A JSON schema can check neither. This is the main check;
 *   in CI (CI=true) a missing docker-compose fails the run, on a developer's machine the test is skipped.
 * - 1.29 validates against the Compose schema of its day, so the file is also validated with ajv against the
 *   current Compose Specification schema, vendored in deploy/schema/ (no npm package tracks it), which is what
 *   Docker Compose v2 accepts. A file that passes both loads in v1 and v2 alike.
 * The rest asserts what neither can know: pinned images, no secret in the file, the worker's environment
 * against src/config.ts, the search attributes against src/shared/search-attributes.ts, and the Dockerfile.
 * The deploy/ scripts run for real: the search-attribute registration against a Temporal dev server, the
 * database setup against a private PostgreSQL (then the platform's database work as the role it creates), and
 * the image's entrypoint starting HAProxy with the project's code.
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import Ajv from 'ajv';
import draft07 from 'ajv/dist/refs/json-schema-draft-07.json';
import pg from 'pg';
import { parse } from 'yaml';
import { loadConfig, workerConfigSchema } from '../../src/config';
import { migrateOrchestratorDb } from '../../src/orchestrator-store/orchestrator-db';
import { createHaproxyRuntime } from '../../src/platforms/single-host/haproxy-runtime';
import { createPgSnapshotStore } from '../../src/platforms/single-host/pg-snapshots';
import { cliSearchAttributeType, runbookSearchAttributes } from '../../src/shared/search-attributes';
import { haproxyPaths } from '../../src/platforms/single-host/haproxy-control';
import { ORCHESTRATOR_DB } from '../../src/stack/postgres';
import { freePort, livePid, stopProcess } from '../../src/system/processes';
import { which } from '../../src/system/executables';
import { findTemporalCli, packageRoot } from '../../src/stack/tools';
import { startPgFixture, type PgFixture } from '../helpers/pg-fixture';

const run = promisify(execFile);
const root = packageRoot;
const composeFile = path.join(root, 'docker-compose.yml');
const composeText = readFileSync(composeFile, 'utf8');
const dockerfileText = readFileSync(path.join(root, 'Dockerfile'), 'utf8');

interface Service {
  image?: string;
  build?: unknown;
  environment?: Record<string, string | number | boolean | null>;
  command?: string[];
  entrypoint?: string[];
  depends_on?: Record<string, { condition: string }>;
  ports?: string[];
  expose?: string[];
  volumes?: string[];
  deploy?: { replicas?: string | number };
}
const compose = parse(composeText, { merge: true }) as { services: Record<string, Service> };
const service = (name: string): Service => {
  const s = compose.services[name];
  assert.ok(s, `docker-compose.yml has no service ${name}`);
  return s;
};
const worker = service('worker');

/** Values the tests interpolate with; none of them is a real secret. */
const testVariables = { POSTGRES_PASSWORD: 'compose-test-superuser', RUNBOOK_DB_PASSWORD: 'compose-test-runbook' };

/**
 * Compose's interpolation (${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}, $$) of one
 * value, for the assertions that need values; docker-compose config checks the real thing.
 */
function interpolate(value: string, vars: Record<string, string | undefined>): string {
  return value.replace(
    /\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?)([-?])([^}]*))?\}/g,
    (whole, name?: string, colon?: string, op?: string, arg?: string) => {
      if (whole === '$$') return '$';
      const v = vars[name!];
      const unset = v === undefined || (colon === ':' && v === '');
      if (!unset) return v!;
      if (op === '?') throw new Error(`${name}: ${arg}`);
      return op === '-' ? arg! : '';
    },
  );
}

/** A test that needs a tool: in CI its absence is a failure (CI installs it), elsewhere the test is skipped. */
function requireTool(ctx: Mocha.Context, found: unknown, install: string): void {
  if (found) return;
  if (process.env.CI) assert.fail(`missing on this CI machine: ${install}`);
  ctx.skip();
}

/** An environment without the variables the compose file reads, so that the runner's own cannot leak in. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const key of ['PATH', 'HOME', 'LANG', 'TMPDIR']) if (process.env[key]) env[key] = process.env[key];
  return { ...env, ...extra };
}

describe('docker-compose.yml', function () {
  describe('loads in Compose', function () {
    const emptyEnvFile = path.join(os.tmpdir(), `compose-test-${process.pid}.env`);
    const dockerCompose = which('docker-compose');
    const config = (env: Record<string, string>) =>
      run(dockerCompose!, ['--file', composeFile, '--env-file', emptyEnvFile, 'config', '--quiet'], {
        cwd: root,
        env: cleanEnv(env),
      });

    before(() => writeFileSync(emptyEnvFile, ''));
    after(() => rmSync(emptyEnvFile, { force: true }));

    it('is valid to docker-compose config: interpolated and every reference resolved', async function () {
      requireTool(this, dockerCompose, 'apt-get install docker-compose');
      await config(testVariables);
    });

    it('refuses to start without each password, naming the variable', async function () {
      requireTool(this, dockerCompose, 'apt-get install docker-compose');
      for (const name of Object.keys(testVariables)) {
        const rest = Object.fromEntries(Object.entries(testVariables).filter(([k]) => k !== name));
        await assert.rejects(config(rest), (err: { stderr?: string }) => {
          assert.match(err.stderr ?? '', new RegExp(`set ${name}`));
          return true;
        });
      }
    });

    it('matches the current Compose Specification schema (deploy/schema, with ajv)', function () {
      const schema = JSON.parse(readFileSync(path.join(root, 'deploy/schema/compose-spec.json'), 'utf8')) as object;
      // strict: false because the schema uses the annotation "deprecated", which draft-07 does not define; its
      // $schema names draft-07 by the https address, which ajv knows as http://json-schema.org/draft-07/schema#
      const ajv = new Ajv({ allErrors: true, strict: false });
      ajv.addMetaSchema({ ...draft07, $id: 'https://json-schema.org/draft-07/schema' });
      const validate = ajv.compile(schema);
      const ok = validate(compose);
      assert.ok(ok, JSON.stringify(validate.errors, null, 2));
    });
  });

  it('pins every image to an exact version tag, never latest', function () {
    const images: string[] = [];
    for (const [name, s] of Object.entries(compose.services)) {
      if (s.build !== undefined && s.image === undefined) continue; // built here: the Dockerfile's FROM is checked
      assert.ok(s.image, `service ${name} has neither image nor build`);
      images.push(s.image);
    }
    images.push(...[...dockerfileText.matchAll(/^FROM\s+(\S+)/gm)].map((m) => m[1]!));
    for (const image of images) {
      const m = /^(?:[^/\s]+\/)*[^:/@\s]+:([\w][\w.-]{0,127})(?:@sha256:[0-9a-f]{64})?$/.exec(image);
      assert.ok(m, `${image} has no tag`);
      assert.notEqual(m[1], 'latest', image);
      assert.match(m[1]!, /^\d+\.\d+/, `${image}: the tag must be an exact version, not a moving major tag`);
    }
    const version = (name: string) => service(name).image!.split(':')[1];
    assert.equal(version('temporal-schema'), version('temporal'), 'admin-tools and server images move together');
    assert.equal(version('temporal-setup'), version('temporal'), 'admin-tools and server images move together');
    assert.match(service('postgres').image!, /^postgres:15\./, 'PostgreSQL 15, like the embedded stack');
  });

  it('holds no secret: every password is a required variable', function () {
    const secretRef = /^\$\{[A-Z_]+:\?[^}]+\}$/;
    for (const [name, s] of Object.entries(compose.services)) {
      for (const [key, value] of Object.entries(s.environment ?? {})) {
        if (/PASSWORD|PWD|SECRET|TOKEN/.test(key)) {
          assert.match(String(value), secretRef, `${name}.environment.${key} must be \${VAR:?message}`);
        }
        const url = /^postgres(?:ql)?:\/\/[^:/@]+:(.*)@/.exec(String(value));
        if (url) assert.match(url[1]!, secretRef, `${name}.environment.${key}: the URL's password must be a variable`);
      }
    }
    assert.doesNotMatch(composeText, /password\s*[:=]\s*['"]?(?!\$\{)\w/i, 'a literal password in the file');
  });

  it("gives the worker src/config.ts's environment, valid once interpolated", function () {
    const env = worker.environment ?? {};
    for (const key of Object.keys(workerConfigSchema.shape)) assert.ok(key in env, `worker lacks ${key}`);
    const values = Object.fromEntries(
      Object.entries(env).map(([k, v]) => [k, interpolate(String(v), testVariables)]),
    ) as Record<string, string>;
    const config = loadConfig(values);
    assert.equal(config.TEMPORAL_ADDRESS, 'temporal:7233');
    assert.equal(new URL(config.DATABASE_URL).pathname, `/${ORCHESTRATOR_DB}`, "the embedded stack's database name");
    assert.equal(config.DATABASE_URL, `postgres://runbook:${testVariables.RUNBOOK_DB_PASSWORD}@postgres:5432/runbook`);
    // the entrypoint starts HAProxy where src/stack/haproxy.ts puts it under RUNBOOK_HOME: the same socket
    assert.equal(config.HAPROXY_SOCKET, haproxyPaths(config.RUNBOOK_HOME).adminSocket);
    assert.ok(
      worker.volumes?.some((v) => v.split(':')[1] === config.RUNBOOK_HOME),
      'RUNBOOK_HOME must be a volume: snapshots, routes and release state outlive the container',
    );
  });

  it('exposes the worker metrics endpoint on 9464', function () {
    assert.equal(worker.environment?.RUNBOOK_METRICS_PORT, '9464');
    assert.ok(worker.expose?.includes('9464'));
    assert.ok(
      worker.ports?.some((p) => p.endsWith(':9464')),
      'published on the host',
    );
  });

  it('runs one worker per host by default, settable with WORKER_REPLICAS', function () {
    const replicas = String(worker.deploy?.replicas);
    assert.match(replicas, /^\$\{WORKER_REPLICAS:-\d+\}$/);
    assert.equal(interpolate(replicas, {}), '1');
    assert.equal(interpolate(replicas, { WORKER_REPLICAS: '3' }), '3');
  });

  it('serves the Web UI on 8233 as the dev server does, pointed at the server', function () {
    const ui = service('temporal-ui');
    assert.equal(ui.environment?.TEMPORAL_ADDRESS, 'temporal:7233');
    assert.deepEqual(
      ui.ports?.map((p) => interpolate(p, {})),
      ['127.0.0.1:8233:8080'],
    );
  });

  it('registers exactly the search attributes of src/shared/search-attributes.ts', function () {
    const setup = service('temporal-setup');
    assert.deepEqual(setup.entrypoint, ['/bin/sh', '/deploy/register-search-attributes.sh']);
    const registered = [...(setup.command ?? [])].sort();
    const expected = runbookSearchAttributes.map((k) => `${k.name}=${cliSearchAttributeType[k.type]}`).sort();
    assert.deepEqual(registered, expected);
  });

  it('starts each service only after what it needs is ready', function () {
    const needs = (name: string) =>
      Object.fromEntries(Object.entries(service(name).depends_on ?? {}).map(([k, v]) => [k, v.condition]));
    assert.deepEqual(needs('temporal-schema'), { postgres: 'service_healthy' });
    assert.deepEqual(needs('postgres-setup'), { postgres: 'service_healthy' });
    assert.deepEqual(needs('temporal'), { 'temporal-schema': 'service_completed_successfully' });
    assert.deepEqual(needs('temporal-setup'), { temporal: 'service_healthy' });
    assert.deepEqual(needs('worker'), {
      'postgres-setup': 'service_completed_successfully',
      'temporal-setup': 'service_completed_successfully',
    });
  });

  it('mounts only files that exist in this repository', function () {
    for (const [name, s] of Object.entries(compose.services)) {
      for (const volume of s.volumes ?? []) {
        const source = interpolate(volume, {}).split(':')[0]!;
        if (source.startsWith('.')) assert.ok(existsSync(path.join(root, source)), `${name}: ${source} is missing`);
      }
    }
  });
});

describe('Dockerfile', function () {
  const instructions = dockerfileText
    .replace(/\\\n/g, ' ')
    .split('\n')
    .filter((line) => /^[A-Z]+\s/.test(line));
  const last = (keyword: string) => [...instructions].reverse().find((i) => i.startsWith(`${keyword} `));

  it('runs node dist/worker.js through the entrypoint that starts HAProxy', function () {
    assert.deepEqual(JSON.parse(last('CMD')!.slice(4)), ['node', 'dist/worker.js']);
    const entrypoint = JSON.parse(last('ENTRYPOINT')!.slice(11)) as string[];
    assert.equal(entrypoint.at(-1), '/app/deploy/docker/entrypoint.sh');
    assert.ok(instructions.includes('COPY deploy/docker/entrypoint.sh ./deploy/docker/entrypoint.sh'));
  });

  it('installs haproxy and postgresql-client-15 from Debian', function () {
    const install = instructions.find((i) => /apt-get install/.test(i));
    assert.ok(install, 'no apt-get install');
    const packages = install.split(/\s+/);
    assert.ok(packages.includes('haproxy'), install);
    assert.ok(packages.includes('postgresql-client-15'), install);
  });

  it('builds with npm ci and npm run build, then runs without dev dependencies as a non-root user', function () {
    assert.ok(instructions.some((i) => /npm ci\b/.test(i)));
    assert.ok(instructions.some((i) => /npm run build\b.*npm prune --omit=dev/.test(i)));
    const user = last('USER')?.slice(5).trim();
    assert.ok(user && user !== 'root' && user !== '0', `USER ${user}`);
    assert.equal(instructions.filter((i) => i.startsWith('FROM ')).length, 2, 'multi-stage');
  });

  it('keeps secrets, dependencies and local state out of the build context', function () {
    const ignored = readFileSync(path.join(root, '.dockerignore'), 'utf8').split('\n');
    for (const entry of ['node_modules', '.runbook', '.tools', 'dist', '.git', '.env']) {
      assert.ok(ignored.includes(entry), `.dockerignore lacks ${entry}`);
    }
  });
});

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
      const store = createPgSnapshotStore({ dir: path.join(pg0!.scratch, 'snapshots'), urlFor, binDir: pg0!.binDir });
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

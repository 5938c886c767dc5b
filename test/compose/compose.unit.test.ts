/**
 * docker-compose.yml and the Dockerfile, checked on a machine without a Docker engine (CI has none: nothing here
 * builds an image or starts a container, and nothing starts a server; deploy-scripts.test.ts runs deploy/).
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
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Ajv from 'ajv';
import draft07 from 'ajv/dist/refs/json-schema-draft-07.json';
import { loadConfig, workerConfigSchema } from '../../src/config';
import { cliSearchAttributeType, runbookSearchAttributes } from '../../src/shared/search-attributes';
import { haproxyPaths } from '../../src/platforms/single-host/haproxy-control';
import { ORCHESTRATOR_DB } from '../../src/stack/postgres';
import { which } from '../../src/system/executables';
import { cleanEnv, compose, composeFile, composeText, requireTool, root, run, service } from './compose-fixture';

const dockerfileText = readFileSync(path.join(root, 'Dockerfile'), 'utf8');

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
    // Left out on purpose, each for its reason (docs/docker.md):
    const notInCompose: Record<string, string> = {
      RUNBOOK_WORKER_SECRET: 'the worker makes its key file on the runbook-home volume',
      RUNBOOK_RELEASE_USER: 'the worker runs as node, which cannot switch users',
    };
    for (const key of Object.keys(workerConfigSchema.shape)) {
      if (key in notInCompose) assert.ok(!(key in env), `${key}: ${notInCompose[key]}`);
      else assert.ok(key in env, `worker lacks ${key}`);
    }
    const values = Object.fromEntries(
      Object.entries(env).map(([k, v]) => [k, interpolate(String(v), testVariables)]),
    ) as Record<string, string>;
    const config = loadConfig(values);
    assert.equal(config.temporal.address, 'temporal:7233');
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

  it('runs the Temporal server as runbook up --cluster does: history, matching, frontend with worker', function () {
    const roles = ['temporal-history', 'temporal-matching', 'temporal'].map((name) => {
      const s = service(name);
      const env = s.environment ?? {};
      return {
        name,
        services: env.TEMPORAL_SERVICES,
        image: s.image,
        shards: env.NUM_HISTORY_SHARDS,
        db: env.POSTGRES_SEEDS,
      };
    });
    assert.deepEqual(
      roles.map((r) => r.services),
      ['history', 'matching', 'frontend,worker'],
    );
    for (const r of roles) {
      assert.equal(r.image, service('temporal').image, `${r.name}: one server version`);
      assert.equal(r.shards, '4', `${r.name}: every service agrees on the shard count`);
      assert.equal(r.db, 'postgres', `${r.name}: the same persistence`);
    }
    // only the frontend is published; history and matching are reached over the compose network
    assert.deepEqual(service('temporal-history').ports ?? [], []);
    assert.deepEqual(service('temporal-matching').ports ?? [], []);
  });

  it('starts each service only after what it needs is ready', function () {
    const needs = (name: string) =>
      Object.fromEntries(Object.entries(service(name).depends_on ?? {}).map(([k, v]) => [k, v.condition]));
    assert.deepEqual(needs('temporal-schema'), { postgres: 'service_healthy' });
    assert.deepEqual(needs('postgres-setup'), { postgres: 'service_healthy' });
    assert.deepEqual(needs('temporal-history'), { 'temporal-schema': 'service_completed_successfully' });
    assert.deepEqual(needs('temporal-matching'), { 'temporal-history': 'service_healthy' });
    assert.deepEqual(needs('temporal'), { 'temporal-matching': 'service_healthy' });
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

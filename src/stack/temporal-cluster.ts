import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { msToTs } from '@temporalio/common/lib/time';
import pg from 'pg';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { UserError, errorMessage } from '../errors';
import { connectClient } from '../temporal-connection';
import { connectionChecks } from '../temporal-diagnosis';
import { writeFileAtomicallySync } from '../system/atomic-write';
import { ensurePrivateDirSync } from '../system/private-files';
import { freePort, livePid, portOpen, requireFreePort, spawnDetached, stopProcess, waitFor } from '../system/processes';
import { fail, pass, type Check, type Component } from './component';
import { databaseUrl } from './postgres';
import { embeddedConnection, settingEnv, temporalAddress, type StackSettings } from './settings';
import { ensureTemporalServer, findTemporalServer, TEMPORAL_SERVER_VERSION } from './temporal-server-build';
import { frontendAnswers, registerSearchAttributes, searchAttributesCheck, temporalPaths } from './temporal-server';

const run = promisify(execFile);

/** The server's own PostgreSQL role and its two databases, on the stack's PostgreSQL. */
export const CLUSTER_DB_ROLE = 'temporal_server';
export const CLUSTER_DATABASES = { default: 'temporal', visibility: 'temporal_visibility' } as const;
/** Fixed when the schema is created: it cannot change afterwards without a new database. */
const HISTORY_SHARDS = 4;
/** How long a closed runbook's history stays on the cluster (the dev server keeps them as long as its file). */
const RETENTION_DAYS = 30;
/** The password reaches the server through its environment, never the config file (rendered by the server). */
const PASSWORD_ENV = 'RUNBOOK_TEMPORAL_DB_PASSWORD';

/**
 * The server's processes and the services each runs: history and matching each in a process of their own, the
 * frontend with the server's internal worker service in a third (started in this order). They share one
 * configuration, which names every service's ports, and find each other through the membership table of the
 * `temporal` database; a crashed process is started again on its own.
 */
export const CLUSTER_PROCESSES = {
  history: ['history'],
  matching: ['matching'],
  frontend: ['frontend', 'worker'],
} as const;
export type ClusterProcess = keyof typeof CLUSTER_PROCESSES;
const PROCESS_NAMES = Object.keys(CLUSTER_PROCESSES) as ClusterProcess[];

export function clusterPaths(home: string) {
  const dir = path.join(home, 'temporal-cluster');
  return {
    dir,
    configDir: path.join(dir, 'config'),
    /** `--env runbook` reads config/runbook.yaml. */
    config: path.join(dir, 'config', 'runbook.yaml'),
    dynamicConfig: path.join(dir, 'config', 'dynamicconfig.yaml'),
    ports: path.join(dir, 'ports.json'),
    passwordFile: path.join(dir, 'db-password'),
    /** Each process's pid file and log. */
    processes: Object.fromEntries(
      PROCESS_NAMES.map((name) => [
        name,
        { pidFile: path.join(dir, `${name}.pid`), log: path.join(dir, `${name}.log`) },
      ]),
    ) as Record<ClusterProcess, { pidFile: string; log: string }>,
    /** The pid file of the one process that ran every service, before they had processes of their own. */
    allInOnePidFile: path.join(dir, 'server.pid'),
  };
}

/** What `livePid` looks for in the server's command line (its `--root`). */
const PROCESS_MARKER = 'temporal-cluster';

interface ClusterPorts {
  frontendHttp: number;
  history: number;
  matching: number;
  worker: number;
  membership: { frontend: number; history: number; matching: number; worker: number };
}

/** The internal ports, picked free at the first start and kept (membership records name them). */
async function clusterPorts(home: string): Promise<ClusterPorts> {
  const file = clusterPaths(home).ports;
  if (existsSync(file)) return JSON.parse(readFileSync(file, 'utf8')) as ClusterPorts;
  const ports: ClusterPorts = {
    frontendHttp: await freePort(),
    history: await freePort(),
    matching: await freePort(),
    worker: await freePort(),
    membership: {
      frontend: await freePort(),
      history: await freePort(),
      matching: await freePort(),
      worker: await freePort(),
    },
  };
  writeFileAtomicallySync(file, `${JSON.stringify(ports, null, 2)}\n`);
  return ports;
}

function dbPassword(home: string): string {
  const file = clusterPaths(home).passwordFile;
  if (existsSync(file)) return readFileSync(file, 'utf8').trim();
  const password = randomBytes(24).toString('base64url');
  writeFileAtomicallySync(file, `${password}\n`);
  return password;
}

/** Host and port of the stack's PostgreSQL, as the server and the SQL tool connect to it. */
function postgresAddress(settings: StackSettings): { host: string; port: number } {
  const url = new URL(databaseUrl(settings, 'postgres'));
  return { host: url.hostname || '127.0.0.1', port: Number(url.port || 5432) };
}

/** The server's configuration: a template the server renders (`enable-template`), the password from its env. */
export function renderClusterConfig(settings: StackSettings, ports: ClusterPorts): string {
  const p = clusterPaths(settings.home);
  const { host, port } = postgresAddress(settings);
  const store = (database: string, maxConns: number) => `      sql:
        pluginName: postgres12
        databaseName: ${database}
        connectAddr: "${host}:${port}"
        connectProtocol: tcp
        user: ${CLUSTER_DB_ROLE}
        password: '{{ env "${PASSWORD_ENV}" }}'
        maxConns: ${maxConns}
        maxIdleConns: ${maxConns}
        maxConnLifetime: 1h`;
  const service = (grpc: number, membership: number, http?: number) => `    rpc:
      grpcPort: ${grpc}
      membershipPort: ${membership}
      bindOnLocalHost: true${http ? `\n      httpPort: ${http}` : ''}`;
  return `# Written by runbook up --cluster (durable-runbooks); rewritten at each start. enable-template: the server
# renders this file, and reads the database password from its environment (${PASSWORD_ENV}).
log:
  stdout: true
  level: warn

persistence:
  defaultStore: default
  visibilityStore: visibility
  numHistoryShards: ${HISTORY_SHARDS}
  datastores:
    default:
${store(CLUSTER_DATABASES.default, 20)}
    visibility:
${store(CLUSTER_DATABASES.visibility, 5)}

global:
  membership:
    maxJoinDuration: 30s
    broadcastAddress: 127.0.0.1

services:
  frontend:
${service(settings.temporalPort, ports.membership.frontend, ports.frontendHttp)}
  history:
${service(ports.history, ports.membership.history)}
  matching:
${service(ports.matching, ports.membership.matching)}
  worker:
${service(ports.worker, ports.membership.worker)}

clusterMetadata:
  enableGlobalNamespace: false
  failoverVersionIncrement: 10
  masterClusterName: active
  currentClusterName: active
  clusterInformation:
    active:
      enabled: true
      initialFailoverVersion: 1
      rpcName: frontend
      rpcAddress: "127.0.0.1:${settings.temporalPort}"

dcRedirectionPolicy:
  policy: noop

dynamicConfigClient:
  filepath: "${p.dynamicConfig}"
  pollInterval: 10s
`;
}

const DYNAMIC_CONFIG = `# Dynamic configuration of the stack's Temporal server (runbook up --cluster); the server reads it every 10 s.
# Keys: https://github.com/temporalio/temporal/blob/v${TEMPORAL_SERVER_VERSION}/common/dynamicconfig/constants.go
# Kept when it exists: edit it here.
{}
`;

/** Creates the server's role (or resets its password) and its two databases, owned by it. */
async function ensureRoleAndDatabases(settings: StackSettings, password: string): Promise<void> {
  const client = new pg.Client({ connectionString: databaseUrl(settings, 'postgres') });
  await client.connect();
  try {
    const role = await client.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [CLUSTER_DB_ROLE]);
    const verb = role.rowCount ? 'ALTER' : 'CREATE';
    await client.query(`${verb} ROLE ${CLUSTER_DB_ROLE} LOGIN PASSWORD ${client.escapeLiteral(password)}`);
    for (const db of Object.values(CLUSTER_DATABASES)) {
      const found = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [db]);
      if (!found.rowCount) await client.query(`CREATE DATABASE ${db} OWNER ${CLUSTER_DB_ROLE}`);
    }
  } catch (err) {
    throw new UserError(
      `could not create the Temporal server's role and databases: ${errorMessage(err)}`,
      settings.externalDatabaseUrl
        ? `give the DATABASE_URL user CREATEROLE and CREATEDB, or create role ${CLUSTER_DB_ROLE} and databases ${Object.values(CLUSTER_DATABASES).join(', ')} owned by it`
        : 'runbook doctor',
    );
  } finally {
    await client.end();
  }
}

/** Creates the schemas on a new database and upgrades them to this server version (both idempotent). */
async function ensureSchemas(settings: StackSettings, sqlTool: string, password: string): Promise<void> {
  const { host, port } = postgresAddress(settings);
  const env = { ...process.env, SQL_PASSWORD: password };
  for (const [store, db] of Object.entries({
    temporal: CLUSTER_DATABASES.default,
    visibility: CLUSTER_DATABASES.visibility,
  })) {
    const base = ['--plugin', 'postgres12', '--ep', host, '-p', String(port), '-u', CLUSTER_DB_ROLE, '--db', db];
    const schema = `postgresql/v12/${store}`;
    for (const args of [
      ['setup-schema', '-v', '0.0'],
      ['update-schema', '--schema-name', schema],
    ]) {
      try {
        await run(sqlTool, [...base, ...args], { env, timeout: 300_000 });
      } catch (err) {
        const e = err as { stderr?: string; stdout?: string };
        const said = (e.stderr || e.stdout || errorMessage(err)).trim().split('\n').slice(-2).join(' / ');
        throw new UserError(`temporal-sql-tool ${args[0]} of ${db} failed: ${said}`, 'runbook doctor');
      }
    }
  }
}

/** Registers the stack's namespace when the cluster lacks it, and waits until the frontend knows it. */
async function ensureNamespace(settings: StackSettings): Promise<void> {
  const client = await connectClient(embeddedConnection(settings));
  try {
    const service = client.connection.workflowService;
    const known = await service.describeNamespace({ namespace: settings.namespace }).then(
      () => true,
      () => false,
    );
    if (!known) {
      await service
        .registerNamespace({
          namespace: settings.namespace,
          workflowExecutionRetentionPeriod: msToTs(`${RETENTION_DAYS} days`),
          description: 'durable-runbooks (runbook up --cluster)',
        })
        .catch((err: unknown) => {
          if (!/already exists|AlreadyExists/i.test(errorMessage(err))) throw err;
        });
    }
    // a new namespace reaches the frontend's cache within seconds
    await waitFor(
      `namespace ${settings.namespace}`,
      async () => {
        await service.listWorkflowExecutions({ namespace: settings.namespace, pageSize: 1 });
        return true;
      },
      { timeoutMs: 60_000 },
    );
  } finally {
    await client.connection.close();
  }
}

/** The server's processes that run, by name (none when it is stopped). */
export function clusterPids(home: string): Partial<Record<ClusterProcess, number>> {
  const { processes } = clusterPaths(home);
  const pids: Partial<Record<ClusterProcess, number>> = {};
  for (const name of PROCESS_NAMES) {
    const pid = livePid(processes[name].pidFile, PROCESS_MARKER);
    if (pid) pids[name] = pid;
  }
  return pids;
}

const runningAny = (home: string): boolean =>
  Object.keys(clusterPids(home)).length > 0 || !!livePid(clusterPaths(home).allInOnePidFile, PROCESS_MARKER);

/**
 * The Temporal server built from its Go module (`runbook up --cluster`): history, matching, and the frontend with
 * the internal worker service, in three processes (CLUSTER_PROCESSES), persistence and visibility in PostgreSQL (the
 * stack's, or DATABASE_URL's).
 */
export const temporalClusterComponent: Component = {
  name: 'temporal',

  async preflight(ctx) {
    if (runningAny(ctx.settings.home)) return;
    if (livePid(temporalPaths(ctx.settings.home).pidFile, 'start-dev')) {
      throw new UserError(
        'the stack runs the Temporal dev server; the cluster would take its port (its runbooks stay in its SQLite file)',
        'runbook down, then runbook up --cluster',
      );
    }
    await requireFreePort(ctx.settings.temporalPort, 'Temporal frontend', settingEnv.temporalPort);
  },

  async start(ctx) {
    const { settings } = ctx;
    const p = clusterPaths(settings.home);
    const address = `${temporalAddress(settings)} (Temporal server ${TEMPORAL_SERVER_VERSION} on PostgreSQL; no Web UI: docs/cluster.md)`;
    const allInOne = livePid(p.allInOnePidFile, PROCESS_MARKER);
    if (allInOne) {
      ctx.log('temporal: the server runs every service in one process (an earlier version): restarting it as three');
      await stopProcess(allInOne, 20_000);
    }
    const running = clusterPids(settings.home);
    const missing = PROCESS_NAMES.filter((name) => !running[name]);
    if (missing.length === 0) {
      ctx.log('temporal: the cluster server is already running, adopted');
      await ensureNamespace(settings);
      await registerSearchAttributes(settings);
      return address;
    }
    if (missing.length < PROCESS_NAMES.length) {
      ctx.log(
        `temporal: the server's ${missing.join(' and ')} process not running: starting it again, the rest adopted`,
      );
    } else {
      await temporalClusterComponent.preflight(ctx);
    }
    const build = await ensureTemporalServer(ctx.log);
    ensurePrivateDirSync(p.dir);
    ensurePrivateDirSync(p.configDir);
    const password = dbPassword(settings.home);
    ctx.log(`temporal: schema of ${Object.values(CLUSTER_DATABASES).join(' and ')} (role ${CLUSTER_DB_ROLE})`);
    await ensureRoleAndDatabases(settings, password);
    await ensureSchemas(settings, build.sqlTool, password);
    const ports = await clusterPorts(settings.home);
    writeFileAtomicallySync(p.config, renderClusterConfig(settings, ports));
    if (!existsSync(p.dynamicConfig)) writeFileAtomicallySync(p.dynamicConfig, DYNAMIC_CONFIG);
    const list = missing.map((n) => CLUSTER_PROCESSES[n].join('+')).join(', ');
    ctx.log(
      `temporal: starting the Temporal server ${build.version}, process${missing.length > 1 ? 'es' : ''} ${list}, logs in ${p.dir}`,
    );
    // One at a time, each until its gRPC port answers: a process sets up the cluster's metadata in the database when
    // it starts, and on a new database two starting at once race to write it.
    for (const name of missing) {
      const proc = spawnDetached(
        build.server,
        [
          ...['--root', p.dir, '--config', 'config', '--env', 'runbook', '--allow-no-auth', 'start'],
          ...CLUSTER_PROCESSES[name].flatMap((service) => ['--service', service]),
        ],
        {
          pidFile: p.processes[name].pidFile,
          logFile: p.processes[name].log,
          cwd: p.dir,
          env: { ...process.env, [PASSWORD_ENV]: password },
          privateUmask: true,
        },
      );
      const what = `the Temporal server's ${name} process`;
      const ready = name === 'frontend' ? () => frontendAnswers(settings) : () => portOpen(ports[name]);
      await waitFor(what, ready, { timeoutMs: 120_000, pid: proc.pid, logFile: proc.logFile });
    }
    await ensureNamespace(settings);
    await registerSearchAttributes(settings);
    return address;
  },

  async stop(ctx) {
    const { home } = ctx.settings;
    const running = clusterPids(home);
    // the frontend first (no new requests), then matching and history
    const pids = [...PROCESS_NAMES].reverse().flatMap((name) => running[name] ?? []);
    const allInOne = livePid(clusterPaths(home).allInOnePidFile, PROCESS_MARKER);
    if (allInOne) pids.push(allInOne);
    for (const pid of pids) await stopProcess(pid, 20_000);
    return pids.length > 0;
  },

  async check(ctx) {
    const { settings } = ctx;
    const checks: Check[] = [];
    const build = findTemporalServer();
    checks.push(
      build
        ? pass('temporal', 'server build', `${build.version} (${build.server})`)
        : fail('temporal', 'server build', `no build of ${TEMPORAL_SERVER_VERSION}`, 'runbook setup --cluster'),
    );
    checks.push(
      ...(await connectionChecks(ctx.temporal?.connection ?? embeddedConnection(settings), { frontend: false })),
    );
    const running = clusterPids(settings.home);
    const { processes } = clusterPaths(settings.home);
    for (const name of PROCESS_NAMES) {
      const pid = running[name];
      checks.push(
        pid
          ? pass('temporal', `${name} process`, `pid ${pid} (${CLUSTER_PROCESSES[name].join(', ')})`)
          : fail('temporal', `${name} process`, 'not running', `runbook up (log: ${processes[name].log})`),
      );
    }
    if (!(await frontendAnswers(settings).catch(() => false))) {
      const busy = await portOpen(settings.temporalPort);
      checks.push(
        fail(
          'temporal',
          'frontend',
          `nothing answers gRPC on ${temporalAddress(settings)}`,
          busy
            ? `port ${settings.temporalPort} is taken by another program`
            : `runbook up (log: ${processes.frontend.log})`,
        ),
      );
      return checks;
    }
    checks.push(pass('temporal', 'frontend', `${temporalAddress(settings)} (cluster on PostgreSQL)`));
    checks.push(await searchAttributesCheck(settings));
    return checks;
  },
};

import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { temporal } from '@temporalio/proto';
import { UserError, errorMessage } from '../errors';
import { loadRunbookConfig } from '../runbook-config';
import { connectClient, type TemporalConnection } from '../temporal-connection';
import { fail, pass, type Check, type Component } from './component';
import { livePid, requireFreePort, spawnDetached, stopProcess, waitFor } from '../system/processes';
import { ensureReleaseUser } from '../system/release-user';
import { writeFileAtomicallySync } from '../system/atomic-write';
import { ensurePrivateDirSync } from '../system/private-files';
import { databaseUrl } from './postgres';
import { haproxyPaths } from '../platforms/single-host/haproxy-control';
import { embeddedConnection, settingEnv, temporalAddress, type StackSettings } from './settings';
import { packageRoot } from './tools';

export function workerPaths(home: string) {
  const dir = path.join(home, 'worker');
  return {
    dir,
    pidFile: path.join(dir, 'worker.pid'),
    log: path.join(dir, 'worker.log'),
    /** What the running worker was started with: { runbookConfig }. */
    started: path.join(dir, 'worker.json'),
    /** The Temporal profile of the stack's worker (also usable with `temporal --config-file`). */
    profile: path.join(dir, 'temporal.toml'),
  };
}

/** The runbook config the stack's running worker was started with (undefined: none, or not known). */
export function workerRunbookConfig(home: string): string | undefined {
  try {
    const started = JSON.parse(readFileSync(workerPaths(home).started, 'utf8')) as { runbookConfig?: unknown };
    return typeof started.runbookConfig === 'string' ? started.runbookConfig : undefined;
  } catch {
    return undefined;
  }
}

/** The variables by which envconfig (and the `temporal` CLI) choose and shape a connection. */
const CONNECTION_VAR = /^TEMPORAL_(ADDRESS|NAMESPACE|API_KEY|PROFILE|CONFIG_FILE|TLS(_.*)?|GRPC_META_.*|CODEC_.*)$/;

/**
 * `env` with the operator's Temporal connection settings replaced by a profile of the embedded dev server
 * (plain, loopback), written to `profileFile`: a worker of the stack connects to the stack, even when the
 * operator's own environment or ~/.config/temporalio/temporal.toml points the CLI at another server.
 */
export function embeddedProfileEnv(
  env: NodeJS.ProcessEnv,
  settings: StackSettings,
  profileFile: string,
): NodeJS.ProcessEnv {
  ensurePrivateDirSync(path.dirname(profileFile));
  writeFileAtomicallySync(
    profileFile,
    `# Written by runbook: the embedded stack's Temporal dev server.\n[profile.default]\naddress = ${JSON.stringify(temporalAddress(settings))}\nnamespace = ${JSON.stringify(settings.namespace)}\n`,
  );
  const kept = Object.entries(env).filter(([k]) => !CONNECTION_VAR.test(k));
  return { ...Object.fromEntries(kept), TEMPORAL_CONFIG_FILE: profileFile, TEMPORAL_PROFILE: 'default' };
}

/** The compiled worker entry point that `runbook up` runs. */
export const workerScript = path.join(packageRoot, 'dist', 'worker.js');

/** The environment a worker of this stack runs with: addresses and the credentials it holds. */
export function workerEnv(settings: StackSettings): NodeJS.ProcessEnv {
  return {
    ...embeddedProfileEnv(process.env, settings, workerPaths(settings.home).profile),
    RUNBOOK_TASK_QUEUE: settings.taskQueue,
    RUNBOOK_HOME: settings.home,
    DATABASE_URL: databaseUrl(settings),
    HAPROXY_SOCKET: haproxyPaths(settings.home).adminSocket,
    RUNBOOK_METRICS_PORT: String(settings.metricsPort),
    RUNBOOK_METRICS_HOST: '127.0.0.1',
    RUNBOOK_CONFIG: settings.runbookConfig ?? '',
  };
}

/**
 * The workers polling the task queue for workflow tasks, by identity. The server keeps a poller listed for
 * minutes after it stops; a live worker polls again at least every minute, so older entries are left out.
 * `connection`: the embedded stack's dev server unless given (doctor passes the CLI's when it is another).
 */
export async function workflowPollers(
  settings: StackSettings,
  connection: TemporalConnection = embeddedConnection(settings),
): Promise<string[]> {
  const client = await connectClient(connection);
  try {
    const res = await client.connection.workflowService.describeTaskQueue({
      namespace: connection.namespace,
      taskQueue: { name: settings.taskQueue, kind: temporal.api.enums.v1.TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
      taskQueueType: temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    });
    const recent = Date.now() - 75_000;
    return (res.pollers ?? [])
      .filter((p) => Number(p.lastAccessTime?.seconds ?? 0) * 1000 >= recent)
      .map((p) => p.identity ?? '?');
  } finally {
    await client.connection.close();
  }
}

export const workerComponent: Component = {
  name: 'worker',

  async preflight(ctx) {
    if (!existsSync(workerScript)) throw new UserError(`${workerScript} is missing`, 'npm run build');
    // A config the worker could not use is reported now, before anything starts.
    if (ctx.settings.runbookConfig) loadRunbookConfig(ctx.settings.runbookConfig);
    if (livePid(workerPaths(ctx.settings.home).pidFile, workerScript)) return;
    await requireFreePort(ctx.settings.metricsPort, 'worker metrics', settingEnv.metricsPort);
  },

  async start(ctx) {
    const { settings } = ctx;
    const p = workerPaths(settings.home);
    if (!existsSync(workerScript)) throw new UserError(`${workerScript} is missing`, 'npm run build');
    let running = livePid(p.pidFile, workerScript);
    const had = workerRunbookConfig(settings.home);
    if (running && had !== settings.runbookConfig) {
      // Its runbook config is read from its environment: a new one needs a new process. Running runbooks carry on.
      ctx.log(
        `worker: restarting (pid ${running}): its runbook config changes from ${had ?? 'none'} to ${settings.runbookConfig ?? 'none'}`,
      );
      await stopProcess(running, 20_000);
      running = undefined;
    }
    if (running) {
      ctx.log(`worker: already running (pid ${running}), adopted`);
    } else {
      ctx.log(`worker: starting on task queue ${settings.taskQueue}`);
      const madeUser = ensureReleaseUser(process.env);
      if (madeUser) ctx.log(`worker: ${madeUser}`);
      if (!settings.runbookConfig)
        ctx.log(
          'worker: it has no runbook config, so it refuses deploys, rollbacks and drills: runbook up --config <runbook.yaml>',
        );
      const proc = spawnDetached(process.execPath, [workerScript], {
        pidFile: p.pidFile,
        logFile: p.log,
        env: workerEnv(settings),
      });
      // Private like everything in the data folder, whatever the umask (it names the config the worker trusts).
      writeFileAtomicallySync(
        p.started,
        `${JSON.stringify({ pid: proc.pid, runbookConfig: settings.runbookConfig ?? null })}\n`,
      );
      await waitFor(
        'the worker',
        async () => (await workflowPollers(settings)).some((id) => id.startsWith(`${proc.pid}@`)),
        { timeoutMs: 60_000, pid: proc.pid, logFile: p.log, intervalMs: 500 },
      );
    }
    return `task queue ${settings.taskQueue}, runbook config ${settings.runbookConfig ?? 'none'}, metrics http://127.0.0.1:${settings.metricsPort}/metrics (log ${p.log})`;
  },

  async stop(ctx) {
    const p = workerPaths(ctx.settings.home);
    const pid = livePid(p.pidFile, workerScript);
    if (!pid) return false;
    await stopProcess(pid, 20_000);
    return true;
  },

  async check(ctx) {
    const { settings } = ctx;
    const p = workerPaths(settings.home);
    const checks: Check[] = [];
    const pid = livePid(p.pidFile, workerScript);
    try {
      const pollers = await workflowPollers(
        settings,
        ctx.temporal?.embedded === false ? ctx.temporal.connection : undefined,
      );
      if (pollers.length > 0)
        checks.push(pass('worker', 'polling', `${pollers.length} on ${settings.taskQueue}: ${pollers.join(', ')}`));
      else
        checks.push(
          fail(
            'worker',
            'polling',
            `no worker polls task queue ${settings.taskQueue}`,
            pid ? `read ${p.log}` : 'runbook up',
          ),
        );
    } catch (err) {
      checks.push(
        fail(
          'worker',
          'polling',
          errorMessage(err),
          ctx.temporal?.embedded === false
            ? 'fix the Temporal connection first (the temporal checks above)'
            : 'start Temporal first: runbook up',
        ),
      );
    }
    if (pid) {
      const file = workerRunbookConfig(settings.home);
      const fix = 'runbook up --config <the reviewed runbook.yaml>';
      if (!file) checks.push(fail('worker', 'runbook config', 'none: it refuses deploys, rollbacks and drills', fix));
      else {
        try {
          const services = Object.keys(loadRunbookConfig(file).services);
          checks.push(pass('worker', 'runbook config', `${file} (${services.join(', ')})`));
        } catch (err) {
          checks.push(fail('worker', 'runbook config', errorMessage(err).split('\n')[0] ?? '', `fix ${file}`));
        }
      }
    }
    const metricsUrl = `http://127.0.0.1:${settings.metricsPort}/metrics`;
    const metrics = await fetch(metricsUrl, { signal: AbortSignal.timeout(2_000) }).then(
      (r) => r.ok,
      () => false,
    );
    checks.push(
      metrics
        ? pass('worker', 'metrics', metricsUrl)
        : fail('worker', 'metrics', `${metricsUrl} does not answer`, pid ? `read ${p.log}` : 'runbook up'),
    );
    return checks;
  },
};

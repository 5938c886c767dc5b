import { execFile, spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import type { ECSClient, Service } from '@aws-sdk/client-ecs';
import { freePort, isAlive } from '../../src/system/processes';
import { which } from '../../src/system/executables';
import { toolsDir } from '../../src/stack/tools';

const run = promisify(execFile);

/** The moto version the aws-ecs platform tests are written against (PyPI `moto[server]`). */
const MOTO_VERSION = '5.2.5';

/** Project-local, git-ignored virtualenv that holds moto (under .tools, like the Temporal CLI). */
const motoVenv = path.join(toolsDir, 'moto');
const motoServerBin = path.join(motoVenv, 'bin', 'moto_server');
const venvPython = path.join(motoVenv, 'bin', 'python');

/** Environment for AWS SDK clients that talk to moto: moto accepts any credentials, these are its convention. */
export const motoCredentials = {
  AWS_ACCESS_KEY_ID: 'testing',
  AWS_SECRET_ACCESS_KEY: 'testing',
  AWS_REGION: 'us-east-1',
} as const;

/** Puts the moto credentials into process.env; returns what puts back the values they replaced. */
export function withMotoCredentials(): () => void {
  const saved = Object.fromEntries(Object.keys(motoCredentials).map((k) => [k, process.env[k]]));
  Object.assign(process.env, motoCredentials);
  return () => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  };
}

export interface MotoServer {
  /** e.g. http://127.0.0.1:12345, for the SDK clients' `endpoint`. */
  endpoint: string;
  port: number;
  /**
   * The server's output (removed by stop()). moto answers its own bugs with an HTML 500, which the SDK reports as a
   * deserialization SyntaxError; the Python traceback is here.
   */
  logFile: string;
  /** Kills the server and its process group; resolves once it has exited. Safe to call twice. */
  stop(): Promise<void>;
}

function lastOutputLine(err: unknown): string {
  const text = String((err as { stderr?: string }).stderr || (err instanceof Error ? err.message : err));
  return text.trim().split('\n').pop() ?? '';
}

/** The moto version installed in the project venv, or undefined when there is none (or the venv is broken). */
async function installedMotoVersion(): Promise<string | undefined> {
  if (!existsSync(motoServerBin)) return undefined;
  try {
    const { stdout } = await run(venvPython, ['-c', 'from importlib.metadata import version; print(version("moto"))'], {
      timeout: 30_000,
    });
    return stdout.trim();
  } catch {
    return undefined;
  }
}

async function install(log: (line: string) => void): Promise<void> {
  const found = await installedMotoVersion();
  if (found === MOTO_VERSION) {
    log(`moto ${MOTO_VERSION}: already installed in ${motoVenv}`);
    return;
  }
  const started = Date.now();
  // A venv whose interpreter no longer runs (python upgraded or moved) is rebuilt; a working one is reused.
  const venvWorks = await run(venvPython, ['-c', 'pass'], { timeout: 30_000 }).then(
    () => true,
    () => false,
  );
  if (!venvWorks) {
    const python = which('python3') ?? which('python');
    if (!python) throw new Error(`moto needs python3 on PATH (to create ${motoVenv})`);
    mkdirSync(toolsDir, { recursive: true });
    try {
      await run(python, ['-m', 'venv', '--clear', motoVenv], { timeout: 120_000 });
    } catch (err) {
      throw new Error(
        `python3 -m venv ${motoVenv} failed: ${lastOutputLine(err)} (Debian: apt-get install python3-venv)`,
      );
    }
  }
  try {
    await run(
      path.join(motoVenv, 'bin', 'pip'),
      ['install', '--quiet', '--disable-pip-version-check', `moto[server]==${MOTO_VERSION}`],
      { timeout: 900_000 },
    );
  } catch (err) {
    throw new Error(`pip install moto[server]==${MOTO_VERSION} into ${motoVenv} failed: ${lastOutputLine(err)}`);
  }
  const now = await installedMotoVersion();
  if (now !== MOTO_VERSION) throw new Error(`after pip install, ${motoVenv} reports moto ${now ?? 'missing'}`);
  const action = found ? `replaced moto ${found} with` : 'installed';
  log(`moto ${MOTO_VERSION}: ${action} it in ${motoVenv} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

let installing: Promise<void> | undefined;

/**
 * Makes sure `.tools/moto` holds moto[server] at MOTO_VERSION, installing it with pip when it does not; once per
 * process, and one line to `log` saying what it did. Throws when python3, venv or pip fail.
 */
export function ensureMoto(log: (line: string) => void = (line) => console.log(`    [moto] ${line}`)): Promise<void> {
  installing ??= install(log).catch((err: unknown) => {
    installing = undefined;
    throw err;
  });
  return installing;
}

function tail(file: string, count = 15): string {
  if (!existsSync(file)) return '';
  const lines = readFileSync(file, 'utf8').trimEnd().split('\n').slice(-count);
  return lines.join('\n    ');
}

const running = new Set<number>();
let exitHookInstalled = false;

/** mocha runs with --exit: a server a test forgot to stop still dies with the test process. */
function killAllOnExit(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const pid of running) {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
  });
}

/** The server leads its own process group; signalling the group (never the bare pid, which may be reused) is safe. */
function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    /* the whole group is gone */
  }
}

interface StartMotoOptions {
  /** How long to wait for the first HTTP answer (default 60 s). */
  readyTimeoutMs?: number;
  /** Extra environment for the server, e.g. MOTO_ECS_SERVICE_RUNNING=2 (every new ECS service reports 2 running). */
  env?: Record<string, string>;
}

/**
 * Starts a fresh moto server (its own empty state) on a free loopback port, installing moto first when needed,
 * and resolves once it answers HTTP. Throws with the server's log tail when it exits or is not ready in time.
 */
export async function startMoto(opts: StartMotoOptions = {}): Promise<MotoServer> {
  await ensureMoto();
  const port = await freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  const logDir = mkdtempSync(path.join(os.tmpdir(), 'moto-'));
  const logFile = path.join(logDir, 'moto.log');
  const fd = openSync(logFile, 'a');
  // Its own process group, so that stop() reaches anything it forks.
  const child = spawn(motoServerBin, ['-H', '127.0.0.1', '-p', String(port)], {
    detached: true,
    stdio: ['ignore', fd, fd],
    env: { ...process.env, ...motoCredentials, ...opts.env },
  });
  closeSync(fd);
  const pid = child.pid;
  if (pid === undefined) throw new Error(`could not start ${motoServerBin}`);
  running.add(pid);
  killAllOnExit();
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });

  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) {
        signalGroup(pid, 'SIGTERM');
        const killed = await Promise.race([exited.then(() => true), sleep(5_000).then(() => false)]);
        if (!killed) signalGroup(pid, 'SIGKILL');
        await exited;
      }
      // Anything the server forked may outlive the leader briefly.
      signalGroup(pid, 'SIGKILL');
      running.delete(pid);
      rmSync(logDir, { recursive: true, force: true });
    })();
    return stopped;
  };

  const timeoutMs = opts.readyTimeoutMs ?? 60_000;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await fetch(`${endpoint}/moto-api/`, { signal: AbortSignal.timeout(2_000) }).then(
      async (res) => {
        await res.arrayBuffer();
        return res.status === 200;
      },
      () => false,
    );
    if (ok) return { endpoint, port, logFile, stop };
    const died = child.exitCode !== null || child.signalCode !== null || !isAlive(pid);
    if (died || Date.now() > deadline) {
      const why = died
        ? `exited during start-up (${child.signalCode ?? `code ${child.exitCode}`})`
        : `did not answer GET ${endpoint}/moto-api/ within ${timeoutMs / 1000}s`;
      const logTail = tail(logFile);
      await stop();
      throw new Error(`moto_server ${why}; its log ends with:\n    ${logTail || '(empty)'}`);
    }
    await sleep(200);
  }
}

/**
 * moto keeps a service's one deployment as it was created (its task definition, no rollout state) when the service
 * is updated, and it runs no tasks, so a rollout would never be seen to complete. The seam, in the test only: on the
 * worker's ECS client (the platform's cached clients for moto's endpoint), a DescribeServices answer whose service
 * has a single deployment is completed as ECS reports a finished rollout: that deployment runs the service's task
 * definition, COMPLETED, at the service's counts. Production code checks ECS's own fields only.
 */
export function motoDeploymentSeam(
  ecs: ECSClient,
  /**
   * When the test runs the services' tasks itself (moto-tasks.ts): whether the service runs what it asks for now (its
   * task definition at its desired count). Until then the rollout is reported IN_PROGRESS with no task running, as
   * ECS does while a new task starts.
   */
  settled?: (service: string, taskDefinition: string, desiredCount: number) => boolean,
): void {
  ecs.middlewareStack.add(
    (next, context) => async (args) => {
      const result = await next(args);
      if (context.commandName !== 'DescribeServicesCommand') return result;
      const output = result.output as { services?: Service[] };
      for (const s of output.services ?? []) {
        const only = s.deployments?.length === 1 ? s.deployments[0] : undefined;
        if (!only) continue;
        only.taskDefinition = s.taskDefinition;
        only.desiredCount = s.desiredCount;
        if (settled && !settled(s.serviceName ?? '', s.taskDefinition ?? '', s.desiredCount ?? 0)) {
          only.rolloutState = 'IN_PROGRESS';
          only.runningCount = s.desiredCount ? 0 : 1;
          s.runningCount = only.runningCount;
          continue;
        }
        only.rolloutState ??= 'COMPLETED';
        only.runningCount = s.runningCount;
      }
      return result;
    },
    { step: 'initialize', name: 'motoDeploymentSeam' },
  );
}

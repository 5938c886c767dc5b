import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { livePid, portOpen, spawnDetached, stopProcess } from '../../system/processes';
import { renderRelease } from '../../runbook-config';
import { writeFileAtomically } from '../../system/atomic-write';
import { ensurePrivateDirSync } from '../../system/private-files';
import type { ReleaseUser } from '../../system/release-user';
import { markedAs, prepareReleaseProcess } from './release-process';
import { PlatformError, type ReleaseRunner, type RunningRelease, type StartReleaseRequest } from '../types';

/** The environment variable that marks a release process as ours (read back from /proc/<pid>/environ). */
const RELEASE_MARKER = 'RUNBOOK_RELEASE_ID';

export interface ReleaseRunnerOptions {
  /** Folder for releases: <dir>/<service>-<environment>/<releaseId>/{release.json,release.pid,release.log} */
  dir: string;
  /**
   * The URL a release is given for a database on the worker's PostgreSQL: with its service's own role
   * (ensureServiceRole) or, with service roles off, the worker's. The worker's superuser URL never reaches a release
   * unless a team turns service roles off.
   */
  releaseUrlFor: (release: { service: string; environment: string; database: string }) => Promise<string>;
  /** The OS user releases run as (resolveReleaseUser); undefined: the worker's own. */
  runAs?: ReleaseUser;
  env?: NodeJS.ProcessEnv;
}

/**
 * A release that cannot start: ReleaseStartFailed when the same request never can (no release settings, an unknown
 * version, an empty command, a missing variable), ReleaseStartError (retried) when no port is free right now.
 */
function startError(message: string, permanent: boolean): PlatformError {
  return new PlatformError(message, { type: permanent ? 'ReleaseStartFailed' : 'ReleaseStartError', permanent });
}

/**
 * Runs releases as real, detached processes on this host (the single-host platform). A release outlives the
 * worker that started it: a new worker adopts it through its pid file, checked against the process's
 * environment so that a reused pid is never mistaken for a release. start() throws ReleaseStartFailed (permanent)
 * or ReleaseStartError (retried), see startError.
 */
export function createReleaseRunner(opts: ReleaseRunnerOptions): ReleaseRunner {
  const env = opts.env ?? process.env;
  const releaseDir = (service: string, environment: string, releaseId: string) =>
    path.join(opts.dir, `${service}-${environment}`, releaseId);
  const files = (dir: string) => ({
    state: path.join(dir, 'release.json'),
    pid: path.join(dir, 'release.pid'),
    log: path.join(dir, 'release.log'),
  });

  function alive(service: string, environment: string, releaseId: string): RunningRelease | undefined {
    const f = files(releaseDir(service, environment, releaseId));
    if (!existsSync(f.state)) return undefined;
    const pid = livePid(f.pid, '');
    if (!pid || !markedAs(pid, [RELEASE_MARKER, releaseId])) return undefined;
    return JSON.parse(readFileSync(f.state, 'utf8')) as RunningRelease;
  }

  /** Live releases of every service in the folder. */
  function listAlive(): RunningRelease[] {
    if (!existsSync(opts.dir)) return [];
    const found: RunningRelease[] = [];
    for (const group of readdirSync(opts.dir)) {
      for (const id of readdirSync(path.join(opts.dir, group))) {
        const f = files(path.join(opts.dir, group, id));
        if (!existsSync(f.state)) continue;
        const state = JSON.parse(readFileSync(f.state, 'utf8')) as RunningRelease;
        const live = alive(state.service, state.environment, state.releaseId);
        if (live) found.push(live);
      }
    }
    return found;
  }

  async function pickPort({ min: low, max: high }: { min: number; max: number }): Promise<number> {
    const used = new Set(listAlive().map((r) => r.port));
    for (let port = low; port <= high; port++) {
      if (!used.has(port) && !(await portOpen(port))) return port;
    }
    throw startError(`no free port in the release port range ${low}-${high}`, false);
  }

  return {
    async start(spec: StartReleaseRequest) {
      const existing = alive(spec.service, spec.environment, spec.releaseId);
      if (existing) return existing;
      if (!spec.release) throw startError(`${spec.service}: no release settings (platform single-host)`, true);
      const release = spec.release;
      const dir = releaseDir(spec.service, spec.environment, spec.releaseId);
      ensurePrivateDirSync(dir);
      const f = files(dir);
      const port = await pickPort(release.portRange);
      let rendered: ReturnType<typeof renderRelease>;
      try {
        rendered = renderRelease(release, { version: spec.version, port });
      } catch (err) {
        throw startError((err as Error).message, true);
      }
      const { cwd } = rendered;
      if (!existsSync(cwd)) {
        throw startError(`unknown version ${spec.version} of ${spec.service}: folder ${cwd} does not exist`, true);
      }
      const [command, ...args] = rendered.command;
      if (!command) throw startError(`release command of ${spec.service} is empty`, true);
      const { env: releaseEnv, user } = await prepareReleaseProcess(
        { releaseUrlFor: opts.releaseUrlFor, env, ...(opts.runAs ? { runAs: opts.runAs } : {}) },
        {
          service: spec.service,
          environment: spec.environment,
          ...(spec.database ? { database: spec.database } : {}),
          cwd,
          env: rendered.env,
          marker: [RELEASE_MARKER, spec.releaseId],
          what: `release ${spec.version} of ${spec.service}`,
        },
        (message) => startError(message, true),
      );
      const proc = spawnDetached(command, args, {
        pidFile: f.pid,
        logFile: f.log,
        env: releaseEnv,
        cwd,
        ...(user ? { user } : {}),
      });
      const running: RunningRelease = {
        service: spec.service,
        environment: spec.environment,
        releaseId: spec.releaseId,
        version: spec.version,
        host: '127.0.0.1',
        port,
        pid: proc.pid,
        startedAtMs: Date.now(),
        logFile: f.log,
      };
      await writeFileAtomically(f.state, JSON.stringify(running, null, 2));
      return running;
    },

    async list() {
      return listAlive();
    },

    async get(service, environment, releaseId) {
      return alive(service, environment, releaseId);
    },

    async stop(service, environment, releaseId, graceMs) {
      const f = files(releaseDir(service, environment, releaseId));
      const running = alive(service, environment, releaseId);
      if (!running) {
        rmSync(f.pid, { force: true });
        return false;
      }
      await stopProcess(running.pid, graceMs);
      rmSync(f.pid, { force: true });
      return true;
    },

    /** The log stays on this host, 0600: the app's output is the app's, and may hold what the app knows. */
    async describeLog(service, environment, releaseId) {
      const f = files(releaseDir(service, environment, releaseId));
      return { location: `${f.log} on the worker's host ${os.hostname()}` };
    },
  };
}

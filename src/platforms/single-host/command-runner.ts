import { closeSync, existsSync, fstatSync, openSync, readFileSync, readSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { renderReleaseForCommand } from '../../runbook-config';
import { createScrubber, secretValuesOf } from '../../shared/redact';
import { writeFileAtomically } from '../../system/atomic-write';
import { ensurePrivateDirSync } from '../../system/private-files';
import { isAlive, spawnDetached, stopProcess } from '../../system/processes';
import type { ReleaseUser } from '../../system/release-user';
import {
  COMMAND_TAIL_CHARS,
  PlatformError,
  type CommandProgress,
  type ReleaseCommandRequest,
  type ReleaseCommandResult,
  type ReleaseCommandRunner,
} from '../types';
import { markedAs, prepareReleaseProcess, releaseDatabaseUrl, type ReleaseProcessSource } from './release-process';

/** The variable that marks a command's wrapper (and the command) as this run's, read back from /proc/<pid>/environ. */
const COMMAND_MARKER = 'RUNBOOK_COMMAND_RUN';
/** The command's environment, as JSON, in the wrapper's own environment (never on a command line: it has secrets). */
const WRAPPER_ENV = 'RUNBOOK_COMMAND_ENV';
const RUN_ID = /^[a-z0-9][a-z0-9-]{0,63}$/;

/** The most a command's log holds by default (see {@link CommandRunnerOptions.maxLogBytes}). */
export const DEFAULT_MAX_LOG_BYTES = 16 * 1024 * 1024;
/** How much of the log's end is read for the result's tail (more than COMMAND_TAIL_CHARS: scrubbed before it is cut). */
const TAIL_READ_BYTES = 64 * 1024;

/**
 * The wrapper a command runs under: a small node script, detached from the worker (its own session and process group,
 * so that it outlives a worker that is SIGKILLed), which
 * - starts the command through `/bin/sh -c 'exec 2>&1; unset PWD; exec "$0" "$@"'`: argv goes in as positional
 *   parameters, never through the shell's parser, stderr joins stdout in one pipe (the log keeps their order), a
 *   missing program is exit 127 (126 when PATH has a folder the user cannot search) with sh's message in the log, the
 *   environment is the one given (sh would add PWD), and the command then is sh's process itself (its exit is the
 *   command's);
 * - runs it as the release user (libuv drops the supplementary groups) while it stays the worker's user itself, so
 *   that it can write into the run's private folder;
 * - copies the output into the log up to the cap and keeps only the end of the rest in memory (the command never
 *   blocks on a full pipe, the log never grows without bound, and the tail still shows how the command ended);
 * - ignores SIGTERM, SIGINT and SIGHUP (they are for the command: stopProcess signals the whole group), and records how
 *   the command ended in exit.json (exit code, or the signal by name: node tells them apart, where a shell's `$?`
 *   gives 128+n for both), written to a temporary file and renamed, so that a reader never sees half of it.
 * A shell-only wrapper could not cap the output without a pipeline whose exit status POSIX sh loses, nor switch users.
 */
const WRAPPER = String.raw`'use strict';
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const spec = JSON.parse(process.argv[1]);
const env = JSON.parse(process.env.${WRAPPER_ENV});
for (const s of ['SIGTERM', 'SIGINT', 'SIGHUP']) process.on(s, () => {});
const headBytes = Math.max(0, spec.maxLogBytes - spec.endBytes);
let written = 0, dropped = 0, endLength = 0;
const end = [];
const write = (b) => { for (let at = 0; at < b.length; ) at += fs.writeSync(1, b, at); };
function out(chunk) {
  if (written < headBytes) {
    const head = chunk.subarray(0, headBytes - written);
    write(head);
    written += head.length;
    chunk = chunk.subarray(head.length);
  }
  if (chunk.length === 0) return;
  end.push(chunk);
  endLength += chunk.length;
  while (endLength > spec.endBytes) {
    const extra = endLength - spec.endBytes;
    const first = end[0];
    const cut = Math.min(first.length, extra);
    if (cut === first.length) end.shift(); else end[0] = first.subarray(cut);
    dropped += cut;
    endLength -= cut;
  }
}
let done = false;
function finish(result) {
  if (done) return;
  done = true;
  if (dropped > 0) {
    write(Buffer.from('\n[runbook: ' + dropped + ' bytes of output left out here (the log keeps at most ' + spec.maxLogBytes + ' bytes); its last ' + endLength + ' bytes follow]\n'));
  }
  for (const b of end) write(b);
  const tmp = spec.exitFile + '.tmp';
  fs.writeFileSync(tmp, JSON.stringify({ ...result, endedAtMs: Date.now() }) + '\n', { mode: 0o600 });
  fs.renameSync(tmp, spec.exitFile);
  process.exit(0);
}
const child = spawn('/bin/sh', ['-c', 'exec 2>&1; unset PWD; exec "$0" "$@"', ...spec.argv], {
  cwd: spec.cwd,
  env,
  stdio: ['ignore', 'pipe', 'ignore'],
  ...(spec.user ? { uid: spec.user.uid, gid: spec.user.gid } : {}),
});
child.stdout.on('data', out);
child.on('error', (err) => {
  out(Buffer.from('[runbook: could not start the command: ' + err.message + ']\n'));
  finish({ exitCode: null, signal: null, error: err.message });
});
child.on('exit', (exitCode, signal) => {
  // A background process of the command may hold the pipe open: its output is not waited for long.
  setTimeout(() => finish({ exitCode, signal }), 2000);
  child.on('close', () => finish({ exitCode, signal }));
});
`;

/** How the command ended, as the wrapper (or, for a wrapper that could not, the runner) recorded it. */
interface ExitRecord {
  exitCode: number | null;
  signal: string | null;
  endedAtMs: number;
  /** It could not be started (cwd gone, the user switch refused). */
  error?: string;
  /** Its wrapper ended without recording how the command ended (the host restarted, or it was killed). */
  lost?: boolean;
}

/** Why the runner stopped the command, written before it does. */
interface StopRecord {
  reason: 'timeout' | 'cancelled';
  atMs: number;
}

type StoredResult = Omit<ReleaseCommandResult, 'adopted'>;

/** What {@link createCommandRunner} needs: the releases' folder, database URL and user (as ReleaseRunnerOptions). */
export interface CommandRunnerOptions {
  /** Folder of releases: a run's files are in <dir>/<service>-<environment>/commands/<runId>/. */
  dir: string;
  /** The URL a command is given for a database on the worker's PostgreSQL, as for a release (ReleaseRunnerOptions). */
  releaseUrlFor: ReleaseProcessSource['releaseUrlFor'];
  /** The OS user commands run as (resolveReleaseUser), as releases do; undefined: the worker's own. */
  runAs?: ReleaseUser;
  /** The worker's environment (PATH, HOME, a database's urlEnv); process.env by default. Nothing else of it is passed. */
  env?: NodeJS.ProcessEnv;
  /**
   * The most bytes command.log holds ({@link DEFAULT_MAX_LOG_BYTES}): output beyond it is left out, except its last
   * quarter (at most 64 KiB), written with a note when the command ends. The command keeps running.
   */
  maxLogBytes?: number;
  /** How long a stopped command (timed out, cancelled) has after SIGTERM before SIGKILL; 5 s by default. */
  graceMs?: number;
  /** How often the runner looks for the exit record; 200 ms by default. */
  pollMs?: number;
  /** How often run() reports progress while the command runs; 2 s by default. */
  progressMs?: number;
}

/** A command that cannot run, whatever the retry: ReleaseCommandFailed (permanent). */
function commandFailed(message: string): PlatformError {
  return new PlatformError(message, { type: 'ReleaseCommandFailed', permanent: true });
}

function readJson<T>(file: string): T | undefined {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as T;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** The pid in `pidFile` when that process is alive and is this run's wrapper (a reused pid is not; a zombie is not). */
function runPid(pidFile: string, runId: string): number | undefined {
  let pid: number;
  try {
    pid = Number.parseInt(readFileSync(pidFile, 'utf8').trim(), 10);
  } catch {
    return undefined;
  }
  return Number.isInteger(pid) && pid > 0 && isAlive(pid) && markedAs(pid, [COMMAND_MARKER, runId]) ? pid : undefined;
}

/** The last `bytes` of a file as text ('' when it does not exist). */
function readEnd(file: string, bytes: number): string {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return '';
  }
  try {
    const size = fstatSync(fd).size;
    const length = Math.min(size, bytes);
    const buffer = Buffer.alloc(length);
    readSync(fd, buffer, 0, length, size - length);
    return buffer.toString('utf8');
  } finally {
    closeSync(fd);
  }
}

const seconds = (ms: number) => `${Math.round(ms / 100) / 10}s`;

/**
 * Runs a release's commands (migrations, smoke checks, integrity checks) as detached processes on this host, under a
 * wrapper that records each one's exit (see WRAPPER), so that a run outlives the worker that started it: a retried
 * activity with the same runId adopts the run that still goes on, or returns the result of the one that has ended,
 * and never runs the command twice. run() throws PlatformError ReleaseCommandFailed (permanent) for a request that
 * cannot run (empty command, invalid runId, unknown version, a folder the release user cannot read, a missing database
 * URL variable); the abort reason when `signal` aborts (the command is stopped first); other errors are retryable.
 */
export function createCommandRunner(opts: CommandRunnerOptions): ReleaseCommandRunner {
  const source: ReleaseProcessSource = {
    releaseUrlFor: opts.releaseUrlFor,
    env: opts.env ?? process.env,
    ...(opts.runAs ? { runAs: opts.runAs } : {}),
  };
  const maxLogBytes = opts.maxLogBytes ?? DEFAULT_MAX_LOG_BYTES;
  const graceMs = opts.graceMs ?? 5_000;
  const pollMs = opts.pollMs ?? 200;
  const progressMs = opts.progressMs ?? 2_000;
  const files = (req: ReleaseCommandRequest) => {
    const dir = path.join(opts.dir, `${req.service}-${req.environment}`, 'commands', req.runId);
    const at = (name: string) => path.join(dir, name);
    return {
      dir,
      command: at('command.json'),
      pid: at('command.pid'),
      log: at('command.log'),
      exit: at('exit.json'),
      stop: at('stop.json'),
      result: at('result.json'),
    };
  };
  type Files = ReturnType<typeof files>;

  /** Renders and checks where and how the command runs, then starts its wrapper; returns the DATABASE_URL given. */
  async function start(req: ReleaseCommandRequest, f: Files): Promise<string | undefined> {
    const what = `the ${req.purpose} command of ${req.service} ${req.version}`;
    let cwd: string;
    let releaseEnv: Record<string, string> = {};
    if (req.workerCwd) {
      cwd = req.workerCwd;
      if (!existsSync(cwd)) throw commandFailed(`${what} runs on the worker in ${cwd}, which does not exist`);
    } else {
      if (!req.release) throw commandFailed(`${req.service}: no release settings (platform single-host)`);
      try {
        ({ cwd, env: releaseEnv } = renderReleaseForCommand(req.release, req.version));
      } catch (err) {
        throw commandFailed((err as Error).message);
      }
      if (!existsSync(cwd)) {
        throw commandFailed(`unknown version ${req.version} of ${req.service}: folder ${cwd} does not exist (${what})`);
      }
    }
    const prepared = await prepareReleaseProcess(
      source,
      {
        service: req.service,
        environment: req.environment,
        ...(req.database ? { database: req.database } : {}),
        cwd,
        env: releaseEnv,
        marker: [COMMAND_MARKER, req.runId],
        what,
      },
      commandFailed,
    );
    rmSync(f.stop, { force: true });
    await writeFileAtomically(f.command, JSON.stringify({ ...req, cwd, startedAtMs: Date.now() }, null, 2));
    const spec = {
      argv: req.command,
      cwd,
      exitFile: f.exit,
      maxLogBytes,
      endBytes: Math.min(64 * 1024, Math.floor(maxLogBytes / 4)),
      ...(prepared.user ? { user: prepared.user } : {}),
    };
    spawnDetached(process.execPath, ['-e', WRAPPER, JSON.stringify(spec)], {
      pidFile: f.pid,
      logFile: f.log,
      env: { [COMMAND_MARKER]: req.runId, [WRAPPER_ENV]: JSON.stringify(prepared.env) },
      cwd: f.dir,
    });
    return prepared.env.DATABASE_URL;
  }

  /** Records how a command ended whose wrapper could not (killed with it, or gone without a word). */
  async function recordExit(f: Files, record: Omit<ExitRecord, 'endedAtMs'>): Promise<void> {
    if (!existsSync(f.exit)) await writeFileAtomically(f.exit, JSON.stringify({ ...record, endedAtMs: Date.now() }));
  }

  /** Stops the wrapper's process group (SIGTERM, SIGKILL after the grace), saying why first. */
  async function stop(f: Files, pid: number, reason: StopRecord['reason']): Promise<void> {
    await writeFileAtomically(f.stop, JSON.stringify({ reason, atMs: Date.now() } satisfies StopRecord));
    await stopProcess(pid, graceMs);
    // The wrapper records the command's end before it exits; killed together with it (SIGKILL), it cannot.
    await recordExit(f, { exitCode: null, signal: 'SIGKILL' });
  }

  /** The result from the run's records, stored as result.json (what a later call returns). */
  async function finish(req: ReleaseCommandRequest, f: Files, scrub: (text: string) => string): Promise<StoredResult> {
    const exit = readJson<ExitRecord>(f.exit)!;
    const stopped = readJson<StopRecord>(f.stop);
    const { startedAtMs } = readJson<{ startedAtMs: number }>(f.command)!;
    const killedBy = exit.signal ? `killed by ${exit.signal}` : undefined;
    const why = (head: string) => (killedBy ? `${head}, ${killedBy}` : head);
    const stoppedReason =
      stopped?.reason === 'timeout'
        ? why(`timed out after ${seconds(req.timeoutMs)}`)
        : stopped?.reason === 'cancelled'
          ? why('cancelled')
          : exit.lost
            ? 'its process ended without recording how the command ended (was the host restarted?); not run again'
            : exit.error
              ? `could not start: ${exit.error}`
              : killedBy;
    const result: StoredResult = {
      runId: req.runId,
      exitCode: stopped ? null : exit.exitCode,
      timedOut: stopped?.reason === 'timeout',
      ...(stoppedReason ? { stoppedReason } : {}),
      tail: scrub(readEnd(f.log, TAIL_READ_BYTES)).slice(-COMMAND_TAIL_CHARS),
      logLocation: `${f.log} on the worker's host ${os.hostname()}`,
      startedAtMs,
      endedAtMs: exit.endedAtMs,
    };
    await writeFileAtomically(f.result, JSON.stringify(result, null, 2));
    return result;
  }

  return {
    async run(req, progress?: (p: CommandProgress) => void, signal?: AbortSignal) {
      if (!RUN_ID.test(req.runId)) {
        throw commandFailed(`invalid command run id ${JSON.stringify(req.runId)}: [a-z0-9-], at most 64 characters`);
      }
      if (!req.command[0]) throw commandFailed(`the ${req.purpose} command of ${req.service} is empty`);
      const f = files(req);
      const recorded = readJson<StoredResult>(f.result);
      if (recorded) return { ...recorded, adopted: true };
      signal?.throwIfAborted();
      ensurePrivateDirSync(f.dir);

      let adopted = true;
      let databaseUrl: string | undefined;
      let pid = runPid(f.pid, req.runId);
      if (pid === undefined && !existsSync(f.exit)) {
        if (existsSync(f.pid)) {
          // It was started, and its wrapper is gone without a record: running it again could run it twice.
          await recordExit(f, { exitCode: null, signal: null, lost: true });
        } else {
          progress?.({ phase: 'starting' });
          databaseUrl = await start(req, f);
          pid = runPid(f.pid, req.runId);
          adopted = false;
        }
      }
      if (adopted && req.database) {
        // The URL an adopted run was given, to mask it in the tail (the same as it was: it is derived, not random).
        databaseUrl = await releaseDatabaseUrl(source, { ...req, database: req.database }, commandFailed).catch(
          () => undefined,
        );
      }
      const scrub = createScrubber([
        ...secretValuesOf({ DATABASE_URL: databaseUrl }),
        ...(databaseUrl ? [databaseUrl] : []),
      ]);

      const { startedAtMs } = readJson<{ startedAtMs: number }>(f.command)!;
      let reportedAt = 0;
      while (!existsSync(f.exit)) {
        if (pid === undefined || runPid(f.pid, req.runId) === undefined) {
          if (!existsSync(f.exit)) await recordExit(f, { exitCode: null, signal: null, lost: true });
          break;
        }
        if (signal?.aborted) {
          progress?.({ phase: 'stopping', detail: 'cancelled' });
          await stop(f, pid, 'cancelled');
          await finish(req, f, scrub);
          throw signal.reason;
        }
        if (Date.now() - startedAtMs >= req.timeoutMs) {
          progress?.({ phase: 'stopping', detail: `timed out after ${seconds(req.timeoutMs)}` });
          await stop(f, pid, 'timeout');
          break;
        }
        if (progress && Date.now() - reportedAt >= progressMs) {
          reportedAt = Date.now();
          const last = scrub(readEnd(f.log, 4_096)).trimEnd().split('\n').pop()?.slice(-200) ?? '';
          progress({ phase: 'running', detail: `${seconds(reportedAt - startedAtMs)}${last ? `: ${last}` : ''}` });
        }
        await sleep(pollMs);
      }
      // The wrapper exits right after it records the end: resolve once it has (a caller may look for leftovers).
      for (let i = 0; i < 20 && runPid(f.pid, req.runId) !== undefined; i++) await sleep(50);
      const result = await finish(req, f, scrub);
      progress?.({ phase: 'done', detail: result.stoppedReason ?? `exit code ${result.exitCode}` });
      return { ...result, adopted };
    },
  };
}

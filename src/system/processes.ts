/** Local processes and ports: pid files, detached spawns, stopping, port probes, waiting for a server to answer. */
import { spawn, type SpawnOptions } from 'node:child_process';
import { closeSync, existsSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { UserError } from '../errors';
import { scrubSecrets } from '../shared/redact';
import { writeFileAtomicallySync } from './atomic-write';
import { openPrivateLog, withPrivateUmask } from './private-files';

/** True when a process with this pid exists (signal 0 probes without touching it). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The command line of a live process, or undefined (Linux /proc). */
export function commandLine(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
  } catch {
    return undefined;
  }
}

/**
 * Reads a pid file and returns the pid only if that process is alive and its command line contains `marker`;
 * a stale pid file (dead process, or a pid reused by something else) is removed.
 */
export function livePid(pidFile: string, marker: string): number | undefined {
  if (!existsSync(pidFile)) return undefined;
  const pid = Number.parseInt(readFileSync(pidFile, 'utf8').trim(), 10);
  if (Number.isInteger(pid) && pid > 0 && isAlive(pid) && (commandLine(pid) ?? '').includes(marker)) return pid;
  rmSync(pidFile, { force: true });
  return undefined;
}

export interface DetachedProcess {
  pid: number;
  logFile: string;
}

/**
 * Starts a long-running server in its own process group, stdout and stderr appended to `logFile`, and
 * records its pid in `pidFile` (both 0600, in folders made 0700). It outlives this process (the `--detach` mode of
 * `runbook up`). With `privateUmask`, it runs with umask 077, so that the files it creates itself are private too
 * (the stack's servers; an app's release keeps the umask it would have had).
 */
export function spawnDetached(
  command: string,
  args: string[],
  opts: {
    pidFile: string;
    logFile: string;
    env?: NodeJS.ProcessEnv;
    cwd?: string;
    privateUmask?: boolean;
    /** Run as this user and group, without supplementary groups (the caller is root). */
    user?: { uid: number; gid: number };
  },
): DetachedProcess {
  const fd = openPrivateLog(opts.logFile);
  const spawnOpts: SpawnOptions = {
    detached: true,
    stdio: ['ignore', fd, fd],
    env: opts.env ?? process.env,
    cwd: opts.cwd,
    ...(opts.user ? { uid: opts.user.uid, gid: opts.user.gid } : {}),
  };
  const run = opts.privateUmask ? withPrivateUmask(command, args) : { command, args };
  const child = spawn(run.command, run.args, spawnOpts);
  closeSync(fd);
  if (child.pid === undefined) throw new UserError(`could not start ${command}`, `see ${opts.logFile}`);
  child.unref();
  writeFileAtomicallySync(opts.pidFile, `${child.pid}\n`);
  return { pid: child.pid, logFile: opts.logFile };
}

/**
 * Stops a process (and its process group) with SIGTERM, then SIGKILL after `graceMs`. Resolves once it is gone.
 * Returns false if it was not running.
 */
export async function stopProcess(pid: number, graceMs = 10_000): Promise<boolean> {
  if (!isAlive(pid)) return false;
  const signalGroup = (signal: NodeJS.Signals) => {
    try {
      process.kill(-pid, signal);
    } catch {
      try {
        process.kill(pid, signal);
      } catch {
        /* already gone */
      }
    }
  };
  signalGroup('SIGTERM');
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    if (!isAlive(pid) || isZombie(pid)) return true;
    await sleep(100);
  }
  signalGroup('SIGKILL');
  while (isAlive(pid) && !isZombie(pid)) await sleep(50);
  return true;
}

function isZombie(pid: number): boolean {
  try {
    return /\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** True if something accepts TCP connections on host:port. */
export function portOpen(port: number, host = '127.0.0.1', timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host });
    const done = (open: boolean) => {
      socket.destroy();
      resolve(open);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** The kernel's ephemeral port range (Linux), from which it picks ports for `listen(0)` and outgoing connections. */
function ephemeralLow(): number {
  try {
    const [low] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (low !== undefined && low > 11_000) return low;
  } catch {
    // not Linux: the IANA dynamic range
  }
  return 49152;
}

const handedOut = new Set<number>();

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/**
 * An unused TCP port on the loopback interface for a server started later (tests, benchmarks). It is chosen
 * below the kernel's ephemeral range: a port that `listen(0)` returned is free now, but the kernel hands the
 * same range to every other program's `listen(0)` and outgoing connections (the Temporal dev server binds
 * several internal ports that way), so it can be taken before our server binds it. Never the same port twice
 * in one process.
 */
export async function freePort(): Promise<number> {
  const low = 10_000;
  const high = ephemeralLow() - 1;
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = low + Math.floor(Math.random() * (high - low));
    if (handedOut.has(port) || !(await canListen(port)) || (await portOpen(port))) continue;
    handedOut.add(port);
    return port;
  }
  throw new Error(`no free port found in ${low}..${high}`);
}

/**
 * Polls `check` until it returns true; throws a UserError naming `what` and the log to read when the
 * deadline passes or the process dies first.
 */
export async function waitFor(
  what: string,
  check: () => Promise<boolean>,
  opts: { timeoutMs: number; pid?: number; logFile?: string; intervalMs?: number },
): Promise<void> {
  const deadline = Date.now() + opts.timeoutMs;
  const logHint = opts.logFile ? `read ${opts.logFile}` : undefined;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (opts.pid !== undefined && (!isAlive(opts.pid) || isZombie(opts.pid))) {
      throw new UserError(`${what} exited during start-up${lastLines(opts.logFile)}`, logHint);
    }
    if (Date.now() > deadline) throw new UserError(`${what} was not ready within ${opts.timeoutMs / 1000}s`, logHint);
    await sleep(opts.intervalMs ?? 200);
  }
}

/** The last `count` lines of a file, without its trailing whitespace; undefined when the file does not exist. */
export function tailLines(file: string, count: number): string[] | undefined {
  if (!existsSync(file)) return undefined;
  return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-count);
}

/**
 * The last lines of a log file, indented and scrubbed of credentials, to show with a start-up failure ('' when there
 * is none).
 */
function lastLines(logFile: string | undefined, count = 5): string {
  const lines = logFile ? (tailLines(logFile, count) ?? []) : [];
  return lines.length > 0 && lines[0] !== ''
    ? `; its log ends with:\n    ${scrubSecrets(lines.join('\n')).split('\n').join('\n    ')}`
    : '';
}

/** Fails with a clear message when a port the stack needs is already taken by another program. */
export async function requireFreePort(port: number, what: string, setting: string): Promise<void> {
  if (await portOpen(port)) {
    throw new UserError(
      `port ${port} (${what}) is already in use by another program`,
      `stop that program, or choose another port: ${setting}=<port> runbook up`,
    );
  }
}

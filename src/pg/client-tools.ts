/** Running PostgreSQL's client tools (pg_dump, pg_restore, pg_amcheck): their environment and a cancellable runner. */
import { spawn } from 'node:child_process';
import path from 'node:path';

const STDERR_TAIL_CHARS = 2_000;

/** A client tool that could not be started, exited with an error, or was cancelled (`cancelled`). */
export class PgToolError extends Error {
  constructor(
    message: string,
    readonly cancelled: boolean,
  ) {
    super(message);
    this.name = 'PgToolError';
  }
}

/**
 * The environment for a PostgreSQL client tool: libpq variables for a postgres:// URL, so that no password
 * appears on a command line (where `ps` shows it to every user). Other PG* variables of this process are
 * dropped so they cannot redirect the tools. Throws TypeError on a malformed URL.
 */
export function libpqEnv(url?: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('PG')));
  if (url === undefined) return env;
  const u = new URL(url);
  const host = u.searchParams.get('host') ?? u.hostname.replace(/^\[(.*)\]$/, '$1');
  if (host) env.PGHOST = decodeURIComponent(host);
  if (u.port) env.PGPORT = u.port;
  if (u.username) env.PGUSER = decodeURIComponent(u.username);
  if (u.password) env.PGPASSWORD = decodeURIComponent(u.password);
  const database = decodeURIComponent(u.pathname.replace(/^\//, ''));
  if (database) env.PGDATABASE = database;
  const sslmode = u.searchParams.get('sslmode');
  if (sslmode) env.PGSSLMODE = sslmode;
  env.PGCONNECT_TIMEOUT = '10';
  env.PGAPPNAME = 'runbook-snapshots';
  return env;
}

function tail(text: string): string {
  const t = text.trim();
  return t.length > STDERR_TAIL_CHARS ? `...${t.slice(-STDERR_TAIL_CHARS)}` : t;
}

/**
 * Runs a PostgreSQL client tool; resolves with its stdout (when `collectStdout`), rejects with a PgToolError
 * holding the tail of its stderr. Aborting `signal` sends SIGTERM (SIGKILL 5 s later) and rejects once the
 * process is gone, so its files are closed before the caller cleans up.
 */
export function runTool(
  file: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  signal?: AbortSignal,
  collectStdout = false,
): Promise<string> {
  const name = path.basename(file);
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new PgToolError(`${name} was cancelled`, true));
    const child = spawn(file, args, { env, stdio: ['ignore', collectStdout ? 'pipe' : 'ignore', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let killTimer: NodeJS.Timeout | undefined;
    let settled = false;
    child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-4 * STDERR_TAIL_CHARS)));
    const onAbort = () => {
      child.kill('SIGTERM');
      killTimer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    const settle = (err?: Error) => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      clearTimeout(killTimer);
      if (err) reject(err);
      else resolve(stdout);
    };
    child.once('error', (err) => settle(new PgToolError(`cannot run ${file}: ${err.message}`, false)));
    child.once('close', (code, sig) => {
      if (signal?.aborted) settle(new PgToolError(`${name} was cancelled`, true));
      else if (code === 0) settle();
      else settle(new PgToolError(`${name} failed (${code ?? sig}): ${tail(stderr) || 'no error output'}`, false));
    });
  });
}

import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { UserError, errorMessage } from '../errors';
import { fail, pass, type Check, type Component, type StackContext } from './component';
import { portOpen, requireFreePort } from '../system/processes';
import { settingEnv, type StackSettings } from './settings';
import { postgresBinDir } from '../pg/bin-dir';
import { postgresTool } from './tools';

const run = promisify(execFile);

/** The orchestrator's own database (release history, drill records). */
export const ORCHESTRATOR_DB = 'runbook';
const SUPERUSER = 'postgres';

export function postgresPaths(home: string) {
  const dir = path.join(home, 'postgres');
  return {
    dir,
    data: path.join(dir, 'data'),
    socketDir: path.join(dir, 'run'),
    log: path.join(dir, 'postgres.log'),
    passwordFile: path.join(dir, 'password'),
  };
}

/**
 * The URL of a database on the stack's PostgreSQL: the operator's DATABASE_URL (its database swapped for `db`),
 * or the embedded cluster with the password generated at initdb. Only workers and the CLI hold it.
 */
export function databaseUrl(settings: StackSettings, db = ORCHESTRATOR_DB): string {
  if (settings.externalDatabaseUrl) {
    const url = new URL(settings.externalDatabaseUrl);
    if (db !== ORCHESTRATOR_DB) url.pathname = `/${db}`;
    return url.toString();
  }
  const { passwordFile } = postgresPaths(settings.home);
  const password = existsSync(passwordFile) ? readFileSync(passwordFile, 'utf8').trim() : '';
  return `postgres://${SUPERUSER}:${encodeURIComponent(password)}@127.0.0.1:${settings.postgresPort}/${db}`;
}

const asRoot = () => process.getuid?.() === 0;

/** PostgreSQL refuses to run as root: as root, the server commands run as the `postgres` system user. */
async function runPg(binary: string, args: string[], cwd: string): Promise<{ stdout: string; stderr: string }> {
  const dir = postgresBinDir();
  if (!dir) throw new UserError('PostgreSQL server binaries not found', 'sudo apt-get install -y postgresql-15');
  const bin = path.join(dir, binary);
  try {
    if (asRoot()) return await run('runuser', ['-u', SUPERUSER, '--', bin, ...args], { cwd, timeout: 120_000 });
    return await run(bin, args, { cwd, timeout: 120_000 });
  } catch (err) {
    const e = err as { stderr?: string; stdout?: string };
    throw new UserError(`${binary} ${args[0] ?? ''} failed: ${(e.stderr || e.stdout || errorMessage(err)).trim()}`);
  }
}

function systemUserIds(user: string): { uid: number; gid: number } {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${user}:`));
  if (!line) {
    throw new UserError(
      `system user "${user}" is missing (PostgreSQL cannot run as root)`,
      'sudo apt-get install -y postgresql-15',
    );
  }
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

function giveToPostgres(...paths: string[]): void {
  if (!asRoot()) return;
  const { uid, gid } = systemUserIds(SUPERUSER);
  for (const p of paths) chownSync(p, uid, gid);
}

async function query<T extends pg.QueryResultRow>(url: string, sql: string, params: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3_000 });
  await client.connect();
  try {
    return (await client.query<T>(sql, params)).rows;
  } finally {
    await client.end();
  }
}

/** Creates a database on the stack's server if it does not exist yet. */
export async function ensureDatabase(settings: StackSettings, name: string): Promise<void> {
  const admin = databaseUrl(settings, 'postgres');
  const rows = await query(admin, 'SELECT 1 FROM pg_database WHERE datname = $1', [name]);
  if (rows.length === 0) {
    await query(admin, `CREATE DATABASE "${name.replace(/"/g, '""')}"`).catch((err: { code?: string }) => {
      if (err.code !== '42P04') throw err; // created concurrently
    });
  }
}

async function running(settings: StackSettings): Promise<boolean> {
  const { data } = postgresPaths(settings.home);
  if (!existsSync(path.join(data, 'postmaster.pid'))) return false;
  try {
    await runPg('pg_ctl', ['status', '-D', data], path.dirname(data));
    return true;
  } catch {
    return false;
  }
}

async function initCluster(ctx: StackContext): Promise<void> {
  const p = postgresPaths(ctx.settings.home);
  const dir = postgresBinDir();
  const binMajor = (await postgresTool())?.version.match(/(\d+)\.\d+/)?.[1];
  const versionFile = path.join(p.data, 'PG_VERSION');
  if (existsSync(versionFile)) {
    const dataMajor = readFileSync(versionFile, 'utf8').trim();
    if (binMajor && dataMajor !== binMajor) {
      throw new UserError(
        `the data folder ${p.data} is from PostgreSQL ${dataMajor}, but the binaries in ${dir} are ${binMajor}`,
        `remove ${p.dir} (its databases are lost), or set PG_BIN_DIR to PostgreSQL ${dataMajor}'s bin folder`,
      );
    }
    return;
  }
  if (existsSync(p.data)) rmSync(p.data, { recursive: true, force: true }); // a half-made folder from a crashed initdb
  ctx.log(`postgres: initialising a cluster in ${p.data}`);
  mkdirSync(p.dir, { recursive: true, mode: 0o700 });
  mkdirSync(p.socketDir, { recursive: true, mode: 0o700 });
  const password = randomBytes(18).toString('base64url');
  writeFileSync(p.passwordFile, `${password}\n`, { mode: 0o600 });
  const pwfile = path.join(p.dir, '.pwfile');
  writeFileSync(pwfile, `${password}\n`, { mode: 0o600 });
  giveToPostgres(p.dir, p.socketDir, pwfile);
  try {
    await runPg(
      'initdb',
      [
        '-D',
        p.data,
        '-U',
        SUPERUSER,
        '--pwfile',
        pwfile,
        '--auth-local=peer',
        '--auth-host=scram-sha-256',
        '-E',
        'UTF8',
        '--no-locale',
      ],
      p.dir,
    );
  } finally {
    rmSync(pwfile, { force: true });
  }
}

export const postgresComponent: Component = {
  name: 'postgres',

  async preflight(ctx) {
    if (ctx.settings.externalDatabaseUrl || (await running(ctx.settings))) return;
    await requireFreePort(ctx.settings.postgresPort, 'PostgreSQL', settingEnv.postgresPort);
  },

  async start(ctx) {
    const { settings } = ctx;
    if (settings.externalDatabaseUrl) {
      await query(databaseUrl(settings, ORCHESTRATOR_DB), 'SELECT 1').catch((err) => {
        throw new UserError(
          `cannot reach DATABASE_URL: ${errorMessage(err)}`,
          'check DATABASE_URL, or unset it to use the embedded PostgreSQL',
        );
      });
      return 'external (DATABASE_URL)';
    }
    const p = postgresPaths(settings.home);
    if (await running(settings)) {
      ctx.log('postgres: already running, adopted');
    } else {
      await postgresComponent.preflight(ctx);
      await initCluster(ctx);
      mkdirSync(p.socketDir, { recursive: true, mode: 0o700 });
      if (!existsSync(p.log)) writeFileSync(p.log, '');
      giveToPostgres(p.socketDir, p.log);
      chmodSync(p.dir, 0o700);
      ctx.log(`postgres: starting on 127.0.0.1:${settings.postgresPort}`);
      const opts = `-p ${settings.postgresPort} -k ${p.socketDir} -c listen_addresses=127.0.0.1`;
      await runPg('pg_ctl', ['start', '-w', '-t', '60', '-D', p.data, '-l', p.log, '-o', opts], p.dir).catch((err) => {
        throw new UserError(`PostgreSQL did not start: ${errorMessage(err)}`, `read ${p.log}`);
      });
    }
    await ensureDatabase(settings, ORCHESTRATOR_DB);
    return `postgres://127.0.0.1:${settings.postgresPort}/${ORCHESTRATOR_DB} (password in ${p.passwordFile})`;
  },

  async stop(ctx) {
    if (ctx.settings.externalDatabaseUrl || !(await running(ctx.settings))) return false;
    const p = postgresPaths(ctx.settings.home);
    await runPg('pg_ctl', ['stop', '-w', '-t', '60', '-m', 'fast', '-D', p.data], p.dir);
    return true;
  },

  async check(ctx) {
    const checks: Check[] = [];
    const { settings } = ctx;
    if (!settings.externalDatabaseUrl) {
      const tool = await postgresTool();
      checks.push(
        tool
          ? pass('postgres', 'binaries', tool.version)
          : fail('postgres', 'binaries', 'pg_ctl/initdb not found', 'sudo apt-get install -y postgresql-15'),
      );
    }
    try {
      const [row] = await query<{ version: string }>(databaseUrl(settings), 'SELECT version()');
      checks.push(pass('postgres', 'reachable', (row?.version ?? '').split(',')[0] ?? ''));
    } catch (err) {
      const listening = settings.externalDatabaseUrl ? false : await portOpen(settings.postgresPort);
      checks.push(
        fail(
          'postgres',
          'reachable',
          errorMessage(err),
          settings.externalDatabaseUrl
            ? 'check DATABASE_URL and that the server accepts connections'
            : listening
              ? `port ${settings.postgresPort} answers but not as this stack's PostgreSQL: stop that program or set ${settingEnv.postgresPort}`
              : 'runbook up',
        ),
      );
    }
    return checks;
  },
};

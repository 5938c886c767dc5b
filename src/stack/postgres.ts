import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { UserError, errorMessage } from '../errors';
import { fail, pass, type Check, type Component, type StackContext } from './component';
import { writeFileAtomicallySync } from '../system/atomic-write';
import { ensurePrivateDirSync } from '../system/private-files';
import { commandLine, isAlive, portOpen, requireFreePort } from '../system/processes';
import { settingEnv, type StackSettings } from './settings';
import { postgresBinDir } from '../pg/bin-dir';
import { postgresTool } from './tools';
import { createDatabaseIfMissing } from '../pg/create-database';
import {
  pgbackrestOsUser,
  pgbackrestPaths,
  pgbackrestRunner,
  stanzaInfo,
  writePgbackrestFiles,
  type PgbackrestRunner,
} from '../platforms/single-host/pgbackrest';

const run = promisify(execFile);

/** The orchestrator's own database (release history, drill records). */
export const ORCHESTRATOR_DB = 'runbook';
const SUPERUSER = 'postgres';

/**
 * Where the clusters of stacks run as root live: PostgreSQL runs as the `postgres` user then, which cannot reach a data
 * folder inside a private (0700) home such as /root. One folder per stack, named after its data folder's path.
 */
export const ROOT_CLUSTERS_DIR = '/var/lib/durable-runbooks';

const asRoot = () => process.getuid?.() === 0;

/** `<home>/postgres/cluster.json`: where the stack's cluster is when it is not in the data folder. */
interface ClusterRecord {
  /** The cluster's folder (data/, run/, postgres.log). */
  dir: string;
  /** The data folder it belongs to. */
  home: string;
}

const recordFile = (home: string) => path.join(home, 'postgres', 'cluster.json');

function readRecord(home: string): ClusterRecord | undefined {
  try {
    const record = JSON.parse(readFileSync(recordFile(home), 'utf8')) as Partial<ClusterRecord>;
    return typeof record.dir === 'string' ? { dir: record.dir, home: String(record.home ?? '') } : undefined;
  } catch {
    return undefined;
  }
}

/** The folder a new cluster of this data folder goes to as root. */
export const rootClusterDir = (home: string) =>
  path.join(ROOT_CLUSTERS_DIR, createHash('sha256').update(path.resolve(home)).digest('hex').slice(0, 16));

/**
 * The files of the stack's PostgreSQL. The data folder's own part (`dir`: the superuser's password, the cluster
 * record) is private to the user running the stack. The cluster (`cluster`: data/, the socket folder run/, the
 * server's log) is in `dir` too, unless the stack runs as root: then it is in a folder of the `postgres` user under
 * {@link ROOT_CLUSTERS_DIR}, recorded in `dir`/cluster.json (a cluster made as root by an older version, in
 * `dir`/data, is used in place until `runbook up` moves it there).
 */
export function postgresPaths(home: string) {
  const dir = path.join(home, 'postgres');
  const recorded = readRecord(home)?.dir;
  const cluster =
    recorded ?? (!asRoot() || existsSync(path.join(dir, 'data', 'PG_VERSION')) ? dir : rootClusterDir(home));
  return {
    dir,
    cluster,
    data: path.join(cluster, 'data'),
    socketDir: path.join(cluster, 'run'),
    log: path.join(cluster, 'postgres.log'),
    passwordFile: path.join(dir, 'password'),
    record: recordFile(home),
  };
}

/**
 * Removes the stack's cluster when it lives outside the data folder (as root); the data folder itself is the
 * caller's to remove. The cluster must be stopped.
 */
/** Where the cluster of a data folder lives, as its record says (undefined: no cluster made yet). */
export const clusterDirOf = (home: string): string | undefined => readRecord(home)?.dir;

export function removeCluster(home: string): void {
  const record = readRecord(home);
  if (record && path.resolve(record.dir) !== path.resolve(home, 'postgres')) {
    rmSync(record.dir, { recursive: true, force: true });
  }
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

/**
 * Makes the cluster's folder (0700, the `postgres` user's as root) and, as root, the shared parent folder that the
 * `postgres` user must be able to pass through (0755, root's).
 */
function ensureClusterDir(p: ReturnType<typeof postgresPaths>): void {
  const parent = path.dirname(p.cluster);
  if (p.cluster !== p.dir) {
    mkdirSync(parent, { recursive: true });
    if ((statSync(parent).mode & 0o001) === 0) chmodSync(parent, 0o755);
  }
  ensurePrivateDirSync(p.cluster);
  giveToPostgres(p.cluster);
}

/** True when the server of a data folder runs, by its postmaster.pid (readable to root whoever owns the folder). */
function postmasterAlive(data: string): boolean {
  try {
    const pid = Number.parseInt(readFileSync(path.join(data, 'postmaster.pid'), 'utf8').split('\n')[0] ?? '', 10);
    return Number.isInteger(pid) && pid > 0 && isAlive(pid) && (commandLine(pid) ?? '').includes('postgres');
  } catch {
    return false;
  }
}

const inHomeAsRoot = (p: ReturnType<typeof postgresPaths>) =>
  asRoot() && p.cluster === p.dir && existsSync(path.join(p.data, 'PG_VERSION'));

/** Before the data folder is made private, a running cluster in it (as root) must be stopped: it could not be later. */
function refuseRunningInHome(p: ReturnType<typeof postgresPaths>): void {
  if (!inHomeAsRoot(p) || !postmasterAlive(p.data)) return;
  throw new UserError(
    `PostgreSQL runs from ${p.data}, inside the data folder, where an older version put it`,
    'stop it with `runbook down`, then `runbook up` moves it to a folder of the postgres user and starts it again',
  );
}

/**
 * As root, a cluster that an older version made in the data folder (which it then had to leave open to the `postgres`
 * user) is moved to its own folder under ROOT_CLUSTERS_DIR, and recorded; the data folder can then be private.
 * Refuses while that cluster runs.
 */
function moveInHomeCluster(ctx: StackContext): void {
  const p = postgresPaths(ctx.settings.home);
  if (!inHomeAsRoot(p)) return;
  refuseRunningInHome(p);
  const target = { ...p, cluster: rootClusterDir(ctx.settings.home) };
  ensureClusterDir(target);
  const to = path.join(target.cluster, 'data');
  if (existsSync(to)) {
    throw new UserError(
      `cannot move the cluster ${p.data} to ${to}: that folder exists`,
      `remove ${to} if it is stale`,
    );
  }
  ctx.log(`postgres: moving the cluster ${p.data} to ${to} (the postgres user's, so that the data folder is private)`);
  try {
    renameSync(p.data, to);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
    throw new UserError(
      `cannot move the cluster ${p.data} to ${to}: another file system`,
      `stop the stack and move it yourself: mv ${p.data} ${to}`,
    );
  }
  rmSync(p.socketDir, { recursive: true, force: true });
  chownSync(p.dir, 0, 0); // it was the postgres user's; what remains (the password) is root's alone
  writeRecord(ctx.settings.home, target.cluster);
}

function writeRecord(home: string, dir: string): void {
  ensurePrivateDirSync(path.join(home, 'postgres'));
  const record: ClusterRecord = { dir, home: path.resolve(home) };
  writeFileAtomicallySync(recordFile(home), `${JSON.stringify(record, null, 2)}\n`);
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
  await createDatabaseIfMissing(databaseUrl(settings, 'postgres'), name);
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

/**
 * A data folder copied with its cluster record would share the other's cluster: refused. One that was moved takes the
 * record along (`adopt`; preflight changes nothing).
 */
function checkClusterOwner(home: string, adopt: boolean): void {
  const record = readRecord(home);
  const me = path.resolve(home);
  if (!record || record.home === me) return;
  const other = record.home ? readRecord(record.home) : undefined;
  if (other && path.resolve(other.dir) === path.resolve(record.dir)) {
    throw new UserError(
      `the PostgreSQL cluster ${record.dir} belongs to the data folder ${record.home} (${recordFile(home)} was copied from there)`,
      `use ${record.home}, or remove ${recordFile(home)} to give this data folder a cluster of its own`,
    );
  }
  if (adopt) writeRecord(home, record.dir);
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
        `remove ${p.cluster} (its databases are lost), or set PG_BIN_DIR to PostgreSQL ${dataMajor}'s bin folder`,
      );
    }
    return;
  }
  if (existsSync(p.data)) rmSync(p.data, { recursive: true, force: true }); // a half-made folder from a crashed initdb
  ctx.log(`postgres: initialising a cluster in ${p.data}`);
  ensurePrivateDirSync(p.dir);
  ensureClusterDir(p);
  if (p.cluster !== p.dir) writeRecord(ctx.settings.home, p.cluster);
  const password = randomBytes(18).toString('base64url');
  writeFileAtomicallySync(p.passwordFile, `${password}\n`);
  const pwfile = path.join(p.cluster, '.pwfile');
  writeFileAtomicallySync(pwfile, `${password}\n`);
  giveToPostgres(pwfile);
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
      p.cluster,
    );
  } finally {
    rmSync(pwfile, { force: true });
  }
}

export const postgresComponent: Component = {
  name: 'postgres',

  async preflight(ctx) {
    if (ctx.settings.externalDatabaseUrl) return;
    checkClusterOwner(ctx.settings.home, false);
    refuseRunningInHome(postgresPaths(ctx.settings.home));
    if (await running(ctx.settings)) return;
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
    checkClusterOwner(settings.home, true);
    const p = postgresPaths(settings.home);
    if (await running(settings)) {
      ctx.log('postgres: already running, adopted');
    } else {
      await postgresComponent.preflight(ctx);
      moveInHomeCluster(ctx);
      await initCluster(ctx);
      const c = postgresPaths(settings.home);
      ensureClusterDir(c);
      ensurePrivateDirSync(c.socketDir);
      giveToPostgres(c.socketDir);
      // pg_ctl creates the log 0600 (its umask is 077); one from an older version may be wider.
      if (existsSync(c.log)) chmodSync(c.log, 0o600);
      chmodSync(c.data, 0o700);
      writeArchiveFiles(settings);
      ctx.log(`postgres: starting on 127.0.0.1:${settings.postgresPort}`);
      const opts =
        `-p ${settings.postgresPort} -k ${c.socketDir} -c listen_addresses=127.0.0.1` +
        ' -c unix_socket_permissions=0700';
      await runPg('pg_ctl', ['start', '-w', '-t', '60', '-D', c.data, '-l', c.log, '-o', opts], c.cluster).catch(
        (err) => {
          throw new UserError(`PostgreSQL did not start: ${errorMessage(err)}`, `read ${c.log}`);
        },
      );
    }
    await ensureDatabase(settings, ORCHESTRATOR_DB);
    await ensureArchiving(ctx);
    return `postgres://127.0.0.1:${settings.postgresPort}/${ORCHESTRATOR_DB} (password in ${p.passwordFile})`;
  },

  async stop(ctx) {
    if (ctx.settings.externalDatabaseUrl || !(await running(ctx.settings))) return false;
    const p = postgresPaths(ctx.settings.home);
    await runPg('pg_ctl', ['stop', '-w', '-t', '60', '-m', 'fast', '-D', p.data], p.cluster);
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
      checks.push(await backupCheck(settings));
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

/** The pgBackRest repository of the stack's cluster (its config in the cluster's folder). */
export function stackPgbackrest(settings: StackSettings): PgbackrestRunner {
  return pgbackrestRunner(pgbackrestPaths(postgresPaths(settings.home).cluster, settings.backupRepo));
}

/** Writes pgbackrest.conf and the data directory's archive settings; true when the archive settings changed. */
function writeArchiveFiles(settings: StackSettings): boolean {
  const p = postgresPaths(settings.home);
  return writePgbackrestFiles(
    stackPgbackrest(settings).paths,
    { data: p.data, port: settings.postgresPort, socketDir: p.socketDir },
    backupRole(),
  );
}

/** The database role pgBackRest connects as (peer authentication on the socket): the OS user it runs as. */
const backupRole = () => pgbackrestOsUser();

/**
 * WAL archiving to the stack's pgBackRest repository, on the running cluster: writes pgbackrest.conf and the archive
 * settings, restarts PostgreSQL when archive_mode was off (a cluster from an older version: the only setting that
 * needs a restart; open transactions are given 30 s to end), reloads it when only the command changed, and creates
 * the stanza. Idempotent.
 */
async function ensureArchiving(ctx: StackContext): Promise<void> {
  const { settings } = ctx;
  const p = postgresPaths(settings.home);
  const url = databaseUrl(settings, 'postgres');
  const role = backupRole();
  if (role !== SUPERUSER) {
    const exists = await query(url, 'SELECT 1 FROM pg_roles WHERE rolname = $1', [role]);
    if (exists.length === 0) await query(url, `CREATE ROLE "${role.replace(/"/g, '""')}" LOGIN SUPERUSER`);
  }
  const runner = stackPgbackrest(settings);
  const changed = writeArchiveFiles(settings);
  const [mode] = await query<{ archive_mode: string }>(url, 'SHOW archive_mode');
  if (mode?.archive_mode !== 'on') {
    ctx.log(
      'postgres: restarting to turn on WAL archiving to pgBackRest (archive_mode needs a restart; open sessions reconnect)',
    );
    await waitForOpenTransactions(url, 30_000);
    await query(url, 'CHECKPOINT');
    await runPg('pg_ctl', ['restart', '-w', '-t', '60', '-m', 'fast', '-D', p.data, '-l', p.log], p.cluster).catch(
      (err) => {
        throw new UserError(`PostgreSQL did not restart with WAL archiving: ${errorMessage(err)}`, `read ${p.log}`);
      },
    );
  } else if (changed) {
    await query(url, 'SELECT pg_reload_conf()');
  }
  const info = await stanzaInfo(runner).catch(() => undefined);
  if (!info || info.status.code === 1 || info.status.code === 3) {
    ctx.log(`postgres: creating the pgBackRest stanza (repository ${runner.paths.repo})`);
    await runner.run(['stanza-create'], { timeoutMs: 120_000 }).catch((err) => {
      throw new UserError(
        `pgbackrest stanza-create failed: ${errorMessage(err)}`,
        `read ${runner.paths.log}; a repository of another cluster at ${runner.paths.repo}? name another with RUNBOOK_BACKUP_REPO`,
      );
    });
  }
}

/** Waits (up to `ms`) until no other session is inside a transaction: a restart would roll them back. */
async function waitForOpenTransactions(url: string, ms: number): Promise<void> {
  for (let waited = 0; waited < ms; waited += 500) {
    const [row] = await query<{ n: string }>(
      url,
      "SELECT count(*) AS n FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND xact_start IS NOT NULL AND backend_type = 'client backend'",
    );
    if (Number(row?.n ?? 0) === 0) return;
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** doctor: `pgbackrest check` (the stanza exists, and a WAL segment just switched reaches the repository). */
async function backupCheck(settings: StackSettings): Promise<Check> {
  const runner = stackPgbackrest(settings);
  if (!existsSync(runner.paths.config)) {
    return fail('postgres', 'backups', `no pgBackRest configuration (${runner.paths.config})`, 'runbook up');
  }
  try {
    await runner.run(['--archive-timeout=30', 'check'], { timeoutMs: 90_000 });
    const info = await stanzaInfo(runner);
    const last = info.backups.at(-1);
    return pass(
      'postgres',
      'backups',
      `WAL archiving to ${runner.paths.repo} works (pgbackrest check); ${info.backups.length} backup(s)` +
        (last ? `, newest ${last.label}` : ''),
    );
  } catch (err) {
    return fail(
      'postgres',
      'backups',
      `pgbackrest check failed: ${errorMessage(err)}`,
      'runbook up (rewrites the archive settings and creates the stanza); read the PostgreSQL log for archive_command errors',
    );
  }
}

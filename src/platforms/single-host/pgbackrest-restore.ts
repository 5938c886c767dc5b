/**
 * Point-in-time restore from the stack's pgBackRest repository into a scratch cluster of its own (its own data
 * folder under the repository's folder, its own port, no archiving), and what it recovered to (the RPO's facts).
 * The live cluster is never touched. While a copy exists, its base backup is held: expiry keeps it (holdsOf).
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { postgresBinDir } from '../../pg/bin-dir';
import { PlatformError } from '../types';
import type { RecoveredTo } from '../continuous-backups';
import { chownToPostgres, stanzaInfo, type PgbackrestRunner } from './pgbackrest';

const run = promisify(execFile);
const TARGET = /^[a-z][a-z0-9_]{0,62}$/;

export interface ScratchCluster {
  target: string;
  dir: string;
  data: string;
  socketDir: string;
  port: number;
  /** The base backup it was restored from (held while the copy exists). */
  backup: string;
}

const scratchRoot = (runner: PgbackrestRunner) => path.join(runner.paths.dir, 'scratch');
/** A copy's folder: short (its socket path must stay under 108 bytes), named after the target's hash. */
const scratchDir = (runner: PgbackrestRunner, target: string) =>
  path.join(scratchRoot(runner), createHash('sha256').update(target).digest('hex').slice(0, 12));
const holdsDir = (runner: PgbackrestRunner) => path.join(runner.paths.dir, 'holds');

/** The labels held by the scratch copies that exist (expiry must keep them). */
export function holdsOf(runner: PgbackrestRunner): string[] {
  const dir = holdsDir(runner);
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .map((f) => {
      try {
        return String((JSON.parse(readFileSync(path.join(dir, f), 'utf8')) as { backup?: string }).backup ?? '');
      } catch {
        return '';
      }
    })
    .filter(Boolean);
}

async function asPostgres(binary: string, args: string[]): Promise<string> {
  const dir = postgresBinDir();
  if (!dir) throw new PlatformError('PostgreSQL server binaries not found', { type: 'RestoreFailed', permanent: true });
  const bin = path.join(dir, binary);
  const [cmd, argv] = process.getuid?.() === 0 ? ['runuser', ['-u', 'postgres', '--', bin, ...args]] : [bin, args];
  const { stdout } = await run(cmd, argv, { timeout: 600_000 });
  return stdout;
}

/**
 * Restores the cluster as of `atMs` (every transaction committed at or before it) into the scratch cluster `target`
 * on `port`, promoted and running. The base backup is the newest one that ended before `atMs`.
 * @throws PlatformError RecoveryTargetUnreachable (no backup ended before `atMs`), RestoreFailed.
 */
export async function restoreToTime(
  runner: PgbackrestRunner,
  req: { target: string; atMs: number; port: number },
): Promise<ScratchCluster> {
  if (!TARGET.test(req.target))
    throw new PlatformError(`invalid scratch name ${req.target}`, { type: 'RestoreFailed', permanent: true });
  const info = await stanzaInfo(runner);
  const base = info.backups.filter((b) => b.stoppedAtMs <= req.atMs).at(-1);
  if (!base) {
    const first = info.backups[0];
    throw new PlatformError(
      `no backup ended before ${new Date(req.atMs).toISOString()}` +
        (first ? `: the oldest ended at ${new Date(first.stoppedAtMs).toISOString()}` : ': the repository has none'),
      {
        type: 'RecoveryTargetUnreachable',
        permanent: true,
        fix: 'pick a later time, or take a backup: runbook backup <service> --type full',
      },
    );
  }
  const dir = scratchDir(runner, req.target);
  const cluster: ScratchCluster = {
    target: req.target,
    dir,
    data: path.join(dir, 'data'),
    socketDir: path.join(dir, 'run'),
    port: req.port,
    backup: base.label,
  };
  for (const d of [scratchRoot(runner), holdsDir(runner)]) mkdirSync(d, { recursive: true, mode: 0o700 });
  writeFileSync(path.join(holdsDir(runner), `${req.target}.json`), JSON.stringify({ backup: base.label }), {
    mode: 0o600,
  });
  rmSync(dir, { recursive: true, force: true }); // an earlier attempt's half-made copy is redone
  for (const d of [dir, cluster.data, cluster.socketDir]) mkdirSync(d, { mode: 0o700 });
  writeFileSync(path.join(dir, 'target'), req.target, { mode: 0o600 });
  chownToPostgres(scratchRoot(runner), dir, cluster.data, cluster.socketDir);
  const target = new Date(req.atMs).toISOString().replace('T', ' ').replace('Z', '+00');
  await runner.run([
    `--pg1-path=${cluster.data}`,
    `--set=${base.label}`,
    '--type=time',
    `--target=${target}`,
    '--target-action=promote',
    '--archive-mode=off',
    'restore',
  ]);
  const opts = `-p ${req.port} -k ${cluster.socketDir} -c listen_addresses=127.0.0.1 -c unix_socket_permissions=0700`;
  try {
    await asPostgres('pg_ctl', [
      'start',
      '-w',
      '-t',
      '300',
      '-D',
      cluster.data,
      '-l',
      path.join(dir, 'postgres.log'),
      '-o',
      opts,
    ]);
  } catch (err) {
    const log = existsSync(path.join(dir, 'postgres.log')) ? readFileSync(path.join(dir, 'postgres.log'), 'utf8') : '';
    if (/recovery ended before configured recovery target was reached/.test(log)) {
      throw new PlatformError(
        `the archived WAL ends before ${new Date(req.atMs).toISOString()}: nothing committed after that moment has been archived yet`,
        {
          type: 'RecoveryTargetUnreachable',
          permanent: true,
          fix: 'pick an earlier time, or wait until a later commit is archived (archive_timeout is 60 s)',
        },
      );
    }
    throw new PlatformError(
      `the restored copy did not start: ${log.split('\n').slice(-5).join(' | ') || String(err)}`,
      {
        type: 'RestoreFailed',
        permanent: false,
      },
    );
  }
  return cluster;
}

/** What the copy recovered to: the commit time of the last transaction replayed. */
export async function recoveredTo(url: string, backup: string): Promise<RecoveredTo> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
  await client.connect();
  try {
    // promoted at the target: wait for the end of recovery
    for (let i = 0; i < 600; i++) {
      const { rows } = await client.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r');
      if (!rows[0]?.r) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const { rows } = await client.query<{ t: Date | null; lsn: string | null }>(
      'SELECT pg_last_xact_replay_timestamp() AS t, pg_last_wal_replay_lsn()::text AS lsn',
    );
    return {
      lastCommitMs: rows[0]?.t ? rows[0].t.getTime() : null,
      backup,
      ...(rows[0]?.lsn ? { lsn: rows[0].lsn } : {}),
    };
  } finally {
    await client.end();
  }
}

/** Stops and removes the scratch cluster `target` and its hold. Idempotent. */
export async function removeScratch(runner: PgbackrestRunner, target: string): Promise<void> {
  const dir = scratchDir(runner, target);
  if (existsSync(path.join(dir, 'data', 'postmaster.pid'))) {
    await asPostgres('pg_ctl', ['stop', '-w', '-t', '60', '-m', 'immediate', '-D', path.join(dir, 'data')]).catch(
      () => '',
    );
  }
  rmSync(dir, { recursive: true, force: true });
  rmSync(path.join(holdsDir(runner), `${target}.json`), { force: true });
}

/** The scratch clusters that exist, by target (the sweeper's list). */
export function scratchClusters(runner: PgbackrestRunner): string[] {
  if (!existsSync(scratchRoot(runner))) return [];
  return readdirSync(scratchRoot(runner)).map((d) => {
    const file = path.join(scratchRoot(runner), d, 'target');
    return existsSync(file) ? readFileSync(file, 'utf8') : d;
  });
}

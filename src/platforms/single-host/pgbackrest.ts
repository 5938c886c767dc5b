/**
 * pgBackRest for the stack's PostgreSQL: the repository and its configuration, WAL archiving, base backups, verify and
 * expiry. pgBackRest backs up a whole cluster, so there is one stanza per stack ({@link STANZA}); every service whose
 * database is on the stack's cluster shares it (see docs/backups.md). Nothing here imports Temporal.
 *
 * The configuration holds no secret: pgBackRest reaches the cluster on its Unix socket with peer authentication (as
 * root it runs as the `postgres` user; otherwise as the cluster's owner, with a role of that name). It is 0600 all the
 * same, in the cluster's 0700 folder.
 */
import { execFile } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { writeFileAtomicallySync } from '../../system/atomic-write';
import { ensurePrivateDirSync, withPrivateUmask } from '../../system/private-files';
import { which } from '../../system/executables';
import type { BackupType, BaseBackup, RetentionPolicy } from '../continuous-backups';
import { PlatformError } from '../types';

const run = promisify(execFile);

/** The stanza of the stack's cluster: one per stack, whatever the services. */
export const STANZA = 'runbook';
/** The file in the data directory (included by postgresql.conf) that turns archiving on. */
export const ARCHIVE_CONF = 'runbook-archive.conf';
/** pgBackRest's largest retention: the expiry of this module decides; pgBackRest itself keeps everything. */
const RETAIN_ALL = 9_999_999;
const INCLUDE_LINE = `include_if_exists = '${ARCHIVE_CONF}'`;

export interface PgbackrestPaths {
  /** The folder of pgBackRest's own files (config, log, lock, spool), in the cluster's folder. */
  dir: string;
  config: string;
  /** The repository: `<dir>/repo` unless the operator named one (RUNBOOK_BACKUP_REPO). */
  repo: string;
  log: string;
  lock: string;
}

export function pgbackrestPaths(clusterDir: string, repo?: string): PgbackrestPaths {
  const dir = path.join(clusterDir, 'pgbackrest');
  return {
    dir,
    config: path.join(dir, 'pgbackrest.conf'),
    repo: repo ? path.resolve(repo) : path.join(dir, 'repo'),
    log: path.join(dir, 'log'),
    lock: path.join(dir, 'lock'),
  };
}

export interface ClusterLocation {
  data: string;
  port: number;
  socketDir: string;
}

/** The OS user pgBackRest (and archive_command) runs as: `postgres` as root, else the cluster's owner. */
export const pgbackrestOsUser = (): string =>
  process.getuid?.() === 0 ? 'postgres' : (process.env.USER ?? String(process.getuid?.()));

/** The whole pgbackrest.conf: repository, logs, and the stanza of the stack's cluster. */
export function renderPgbackrestConfig(p: PgbackrestPaths, cluster: ClusterLocation, dbUser: string): string {
  return `# Written by runbook up; no secret here (peer authentication on the cluster's socket).
[global]
repo1-path=${p.repo}
# runbook expires backups itself (expireBackups: the services' retention, and what running restores keep)
repo1-retention-full=${RETAIN_ALL}
log-path=${p.log}
lock-path=${p.lock}
# files private to their owner (0600/0700): pgBackRest follows the umask (077) instead of its own 0640
neutral-umask=n
log-level-console=warn
log-level-file=info
compress-type=lz4
start-fast=y
archive-check=y
process-max=2

[${STANZA}]
pg1-path=${cluster.data}
pg1-port=${cluster.port}
pg1-socket-path=${cluster.socketDir}
pg1-user=${dbUser}
`;
}

/** The archive settings PostgreSQL reads from {@link ARCHIVE_CONF}. archive_mode takes a restart; the rest a reload. */
export function renderArchiveConf(p: PgbackrestPaths): string {
  const bin = which('pgbackrest', ['/usr/bin']) ?? 'pgbackrest';
  return `# Written by runbook up: WAL goes to the pgBackRest repository ${p.repo}
archive_mode = on
archive_command = '${bin} --config=${p.config} --stanza=${STANZA} archive-push %p'
archive_timeout = 60
wal_level = replica
max_wal_senders = 3
`;
}

export function chownToPostgres(...files: string[]): void {
  if (process.getuid?.() !== 0) return;
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('postgres:'));
  const [, , uid, gid] = (line ?? '').split(':');
  for (const f of files) chownSync(f, Number(uid), Number(gid));
}

/**
 * Writes pgbackrest.conf (0600), the repository's folders and the data directory's archive settings (with the include
 * in postgresql.conf, once). Returns true when the archive settings changed (the server must reload or restart).
 */
export function writePgbackrestFiles(p: PgbackrestPaths, cluster: ClusterLocation, dbUser: string): boolean {
  ensurePrivateDirSync(p.dir);
  for (const d of [p.log, p.lock]) ensurePrivateDirSync(d);
  if (!existsSync(p.repo)) mkdirSync(p.repo, { recursive: true, mode: 0o700 });
  writeFileAtomicallySync(p.config, renderPgbackrestConfig(p, cluster, dbUser));
  chownToPostgres(p.dir, p.log, p.lock, p.repo, p.config);
  const archiveFile = path.join(cluster.data, ARCHIVE_CONF);
  const wanted = renderArchiveConf(p);
  const before = existsSync(archiveFile) ? readFileSync(archiveFile, 'utf8') : '';
  if (before !== wanted) {
    writeFileAtomicallySync(archiveFile, wanted);
    chownToPostgres(archiveFile);
  }
  const conf = path.join(cluster.data, 'postgresql.conf');
  const text = readFileSync(conf, 'utf8');
  if (!text.includes(INCLUDE_LINE)) {
    const { mode } = statSync(conf);
    writeFileAtomicallySync(conf, `${text.replace(/\n?$/, '\n')}${INCLUDE_LINE}\n`, mode & 0o777);
    chownToPostgres(conf);
  }
  return before !== wanted;
}

/** The failure of a pgbackrest command, with its message and what to do. */
function commandFailure(args: string[], err: unknown): PlatformError {
  const e = err as { stderr?: string; stdout?: string; code?: number | string; message?: string };
  const text = (e.stderr || e.stdout || e.message || String(err)).trim();
  const command = args.find((a) => !a.startsWith('-')) ?? 'command';
  if (e.code === 'ENOENT') {
    return new PlatformError('pgbackrest is not installed', {
      type: 'BackupToolMissing',
      permanent: true,
      fix: 'sudo apt-get install -y pgbackrest (runbook setup does it as root)',
    });
  }
  const errors = text.split('\n').filter((l) => /ERROR|HINT/.test(l));
  const lines = errors.length > 0 ? errors : text.split('\n').filter((l) => /WARN/.test(l));
  const said = (lines.length > 0 ? lines : text.split('\n')).slice(-6).join(' | ');
  if (/\[082\]|archive-push|WAL segment .* was not archived|archive_command|archive-check/i.test(text)) {
    return new PlatformError(`pgbackrest ${command} failed: WAL archiving does not work: ${said}`, {
      type: 'ArchiveBroken',
      permanent: true,
      fix:
        'read the PostgreSQL log for archive_command errors (`runbook doctor` runs `pgbackrest check`); ' +
        'run `runbook up` to rewrite the archive settings, then run the backup again',
    });
  }
  if (/\[047\]|no space left/i.test(text)) {
    return new PlatformError(`pgbackrest ${command} failed: the repository's disk is full: ${said}`, {
      type: 'DiskFull',
      permanent: true,
      fix: 'free space where the repository is (expire old backups: `runbook backup expire`), or name a bigger one with RUNBOOK_BACKUP_REPO',
    });
  }
  if (/\[050\]|unable to acquire lock/i.test(text)) {
    return new PlatformError(`pgbackrest ${command}: another pgBackRest command holds the lock: ${said}`, {
      type: 'BackupBusy',
      permanent: false,
    });
  }
  return new PlatformError(`pgbackrest ${command} failed: ${said}`, {
    type: 'BackupFailed',
    permanent: /\[0(28|29|31|32|37|55|56|75)\]/.test(text),
    fix: 'read the pgBackRest log in the cluster folder (pgbackrest/log), and `runbook doctor`',
  });
}

export interface PgbackrestRunner {
  paths: PgbackrestPaths;
  /** Runs `pgbackrest --config --stanza <args>` as the repository's user; stdout on success, PlatformError otherwise. */
  run(args: string[], opts?: { signal?: AbortSignal; timeoutMs?: number }): Promise<string>;
}

export function pgbackrestRunner(paths: PgbackrestPaths): PgbackrestRunner {
  return {
    paths,
    async run(args, opts = {}) {
      const full = [`--config=${paths.config}`, `--stanza=${STANZA}`, ...args];
      const asRoot = process.getuid?.() === 0;
      const { command, args: argv } = withPrivateUmask(
        ...((asRoot ? ['runuser', ['-u', 'postgres', '--', 'pgbackrest', ...full]] : ['pgbackrest', full]) as [
          string,
          string[],
        ]),
      );
      try {
        const { stdout } = await run(command, argv, {
          timeout: opts.timeoutMs ?? 3_600_000,
          maxBuffer: 64 * 1024 * 1024,
          cwd: paths.dir,
          ...(opts.signal ? { signal: opts.signal } : {}),
        });
        return stdout;
      } catch (err) {
        if (opts.signal?.aborted) throw err;
        throw commandFailure(args, err);
      }
    },
  };
}

/** One backup as `pgbackrest info --output=json` describes it (the fields used). */
interface InfoBackup {
  label: string;
  type: BackupType;
  prior: string | null;
  timestamp: { start: number; stop: number };
  info: { size: number; repository: { delta: number; size?: number } };
  archive: { start: string | null; stop: string | null };
  annotation?: Record<string, string>;
  error?: boolean;
}

interface InfoStanza {
  name: string;
  status: { code: number; message: string };
  backup: InfoBackup[];
  archive: { id: string; min: string | null; max: string | null }[];
}

export interface PgbackrestBackup extends BaseBackup {
  annotation: Record<string, string>;
  /** pgBackRest's own error flag: the backup copied a page with a checksum error. */
  error: boolean;
}

const toBackup = (b: InfoBackup): PgbackrestBackup => ({
  label: b.label,
  type: b.type,
  ...(b.prior ? { prior: b.prior } : {}),
  startedAtMs: b.timestamp.start * 1000,
  stoppedAtMs: b.timestamp.stop * 1000,
  bytes: b.info.size,
  repoBytes: b.info.repository.delta,
  ...(b.archive.start ? { walStart: b.archive.start } : {}),
  ...(b.archive.stop ? { walStop: b.archive.stop } : {}),
  annotation: b.annotation ?? {},
  error: b.error === true,
});

export interface StanzaInfo {
  /** pgBackRest's status: 0 ok, 2 no valid backups, others: something wrong (message). */
  status: { code: number; message: string };
  backups: PgbackrestBackup[];
  /** The oldest and newest WAL segment in the archive. */
  archive?: { min: string; max: string };
}

/** `pgbackrest info --output=json` of the stack's stanza: its backups, oldest first. */
export async function stanzaInfo(runner: PgbackrestRunner, signal?: AbortSignal): Promise<StanzaInfo> {
  const out = await runner.run(
    ['--output=json', 'info'],
    signal ? { signal, timeoutMs: 120_000 } : { timeoutMs: 120_000 },
  );
  const [stanza] = JSON.parse(out) as InfoStanza[];
  if (!stanza) return { status: { code: 1, message: 'missing stanza' }, backups: [] };
  const archive = stanza.archive.at(-1);
  return {
    status: stanza.status,
    backups: stanza.backup.map(toBackup),
    ...(archive?.min && archive.max ? { archive: { min: archive.min, max: archive.max } } : {}),
  };
}

/** The annotation key that ties a backup to the request that took it (a retry adopts it instead of a second one). */
export const BACKUP_ID_ANNOTATION = 'runbook-backup-id';

/**
 * Takes a base backup of the stack's cluster, annotated with `backupId` and `service`; when a backup with that id is
 * already in the repository (an earlier attempt's), returns it instead. `diff`/`incr` with no full yet: pgBackRest
 * takes a full (its own rule), and the result says so.
 * @throws PlatformError ArchiveBroken (WAL archiving fails: the backup could never be restored), DiskFull, BackupFailed.
 */
export async function takeBackup(
  runner: PgbackrestRunner,
  req: { backupId: string; type: BackupType; service: string },
  signal?: AbortSignal,
): Promise<PgbackrestBackup> {
  const adopt = async () =>
    (await stanzaInfo(runner, signal)).backups.find((b) => b.annotation[BACKUP_ID_ANNOTATION] === req.backupId);
  const earlier = await adopt();
  if (earlier) return earlier;
  await runner.run(
    [
      `--type=${req.type}`,
      `--annotation=${BACKUP_ID_ANNOTATION}=${req.backupId}`,
      `--annotation=runbook-service=${req.service}`,
      'backup',
    ],
    signal ? { signal } : {},
  );
  const taken = await adopt();
  if (!taken) {
    throw new PlatformError(`pgbackrest backup ${req.backupId} finished but is not in \`pgbackrest info\``, {
      type: 'BackupFailed',
      permanent: false,
    });
  }
  return taken;
}

/** `pgbackrest verify`: every file of the repository against its checksum, and the WAL chain. */
export async function verifyRepository(
  runner: PgbackrestRunner,
  signal?: AbortSignal,
): Promise<{ ok: boolean; problems: string[] }> {
  try {
    const out = await runner.run(['--output=text', '--verbose', 'verify'], signal ? { signal } : {});
    const problems = out.split('\n').filter((l) => /invalid|missing|error/i.test(l) && !/: 0\b|0 errors?/.test(l));
    return { ok: problems.length === 0, problems };
  } catch (err) {
    if (err instanceof PlatformError && err.type !== 'BackupBusy') return { ok: false, problems: [err.message] };
    throw err;
  }
}

/**
 * The labels the policy would expire, oldest first: beyond `full` fulls (with what depends on them), diffs beyond
 * `diff`, backups older than `days` (by their stop time, at `nowMs`). Never the newest full, never a backup in `keep`
 * nor one a kept backup depends on (a diff/incr's prior chain). Pure.
 */
export function backupsToExpire(
  backups: BaseBackup[],
  policy: RetentionPolicy,
  keep: string[],
  nowMs: number,
): string[] {
  const byLabel = new Map(backups.map((b) => [b.label, b]));
  const fullOf = (b: BaseBackup): string => {
    let cur = b;
    while (cur.prior && byLabel.has(cur.prior)) cur = byLabel.get(cur.prior)!;
    return cur.label;
  };
  const fulls = backups.filter((b) => b.type === 'full').sort((a, b) => a.stoppedAtMs - b.stoppedAtMs);
  const expired = new Set<string>();
  const expireWithDependents = (label: string) => {
    expired.add(label);
    for (const b of backups) if (b.prior === label && !expired.has(b.label)) expireWithDependents(b.label);
  };
  if (policy.full !== undefined) {
    for (const f of fulls.slice(0, Math.max(0, fulls.length - Math.max(1, policy.full)))) expireWithDependents(f.label);
  }
  if (policy.diff !== undefined) {
    const diffs = backups.filter((b) => b.type === 'diff').sort((a, b) => a.stoppedAtMs - b.stoppedAtMs);
    for (const d of diffs.slice(0, Math.max(0, diffs.length - policy.diff))) expireWithDependents(d.label);
  }
  if (policy.days !== undefined) {
    const cutoff = nowMs - policy.days * 86_400_000;
    // the newest full's chain stays whole: it is what the newest restores start from
    for (const f of fulls.slice(0, -1)) {
      // a full is needed while any backup of its chain is inside the window
      const chain = backups.filter((b) => fullOf(b) === f.label);
      if (chain.every((b) => b.stoppedAtMs < cutoff)) expireWithDependents(f.label);
    }
  }
  const newestFull = fulls.at(-1)?.label;
  const protectedLabels = new Set<string>();
  const protect = (label: string | undefined) => {
    let cur = label ? byLabel.get(label) : undefined;
    while (cur && !protectedLabels.has(cur.label)) {
      protectedLabels.add(cur.label);
      cur = cur.prior ? byLabel.get(cur.prior) : undefined;
    }
  };
  protect(newestFull);
  for (const k of keep) protect(k);
  // a backup whose prior is kept but is itself expired is fine; a kept backup's chain is never expired
  return backups
    .filter((b) => expired.has(b.label) && !protectedLabels.has(b.label))
    .sort((a, b) => a.stoppedAtMs - b.stoppedAtMs)
    .map((b) => b.label);
}

/**
 * For several policies (the services sharing the cluster): the labels every one of them would expire, oldest first;
 * a backup goes only when all of them let it go. No policy: nothing. Pure.
 */
export function backupsAllExpire(
  backups: BaseBackup[],
  policies: RetentionPolicy[],
  keep: string[],
  nowMs: number,
): string[] {
  const sets = policies.map((p) => new Set(backupsToExpire(backups, p, keep, nowMs)));
  return [...(sets[0] ?? [])].filter((l) => sets.every((s) => s.has(l)));
}

/**
 * Expires the backups {@link backupsToExpire} names (for several policies: those all of them name), one `pgbackrest expire --set` each (oldest first; a full's
 * dependents go with it), then lets pgBackRest remove the WAL no remaining backup needs. Returns the labels removed.
 */
export async function expireBackups(
  runner: PgbackrestRunner,
  policy: RetentionPolicy | RetentionPolicy[],
  keep: string[],
  nowMs: number,
): Promise<{ expired: string[] }> {
  const before = (await stanzaInfo(runner)).backups;
  const labels = backupsAllExpire(before, Array.isArray(policy) ? policy : [policy], keep, nowMs);
  for (const label of labels) {
    const still = (await stanzaInfo(runner)).backups.some((b) => b.label === label);
    if (still) await runner.run([`--set=${label}`, `--repo1-retention-full=${RETAIN_ALL}`, 'expire']);
  }
  const remaining = (await stanzaInfo(runner)).backups;
  const fulls = remaining.filter((b) => b.type === 'full').length;
  if (labels.length > 0 && fulls > 0) {
    // WAL older than the oldest remaining full is of no use any more: archive retention of that many fulls
    await runner.run([
      `--repo1-retention-full=${RETAIN_ALL}`,
      '--repo1-retention-archive-type=full',
      `--repo1-retention-archive=${fulls}`,
      'expire',
    ]);
  }
  const after = new Set(remaining.map((b) => b.label));
  return { expired: before.map((b) => b.label).filter((l) => !after.has(l)) };
}

/**
 * The OS user releases run as. A worker that runs as root starts releases as an unprivileged user, so that a release
 * cannot read the worker's environment (/proc/<pid>/environ is its owner's), its data folder (0700: HAProxy's admin
 * socket, the snapshots, the worker secret) or anything else root can.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { UserError } from '../errors';

/** The variable that names it: a user name, or `root` to run releases as the worker (not recommended). */
export const RELEASE_USER_ENV = 'RUNBOOK_RELEASE_USER';
/** The user `runbook up` creates for releases when it runs as root. */
export const DEFAULT_RELEASE_USER = 'runbook-release';

export interface ReleaseUser {
  name: string;
  uid: number;
  gid: number;
  /** Its home folder, given to the release as HOME. */
  home: string;
}

/** The passwd entry of `name` (getent, so that NSS users count too), or undefined. */
export function lookupUser(name: string): ReleaseUser | undefined {
  let line: string | undefined;
  try {
    line = execFileSync('getent', ['passwd', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    try {
      line = readFileSync('/etc/passwd', 'utf8')
        .split('\n')
        .find((l) => l.split(':')[0] === name);
    } catch {
      return undefined;
    }
  }
  const fields = line?.split(':');
  if (!fields || fields.length < 7 || fields[0] !== name) return undefined;
  return { name, uid: Number(fields[2]), gid: Number(fields[3]), home: fields[5] || '/' };
}

/**
 * Who releases run as: undefined when the worker is not root (it cannot switch users; releases run as the worker's
 * own user, which should then be an unprivileged one) or when RUNBOOK_RELEASE_USER=root says so; else the named user,
 * by default `runbook-release`, else `nobody`. Throws UserError for a named user that does not exist, or one that
 * is root under another name.
 */
export function resolveReleaseUser(
  env: NodeJS.ProcessEnv,
  uid: number | undefined = process.getuid?.(),
): ReleaseUser | undefined {
  if (uid !== 0) return undefined;
  const named = env[RELEASE_USER_ENV]?.trim();
  if (named === 'root') return undefined;
  if (named) {
    const user = lookupUser(named);
    if (!user) {
      throw new UserError(
        `${RELEASE_USER_ENV}=${named}: there is no such user`,
        `create it (useradd --system --no-create-home --shell /usr/sbin/nologin ${named}) or name another one`,
      );
    }
    if (user.uid === 0) {
      throw new UserError(`${RELEASE_USER_ENV}=${named} is root under another name`, `name an unprivileged user`);
    }
    return user;
  }
  const fallback = lookupUser(DEFAULT_RELEASE_USER) ?? lookupUser('nobody');
  if (!fallback) {
    throw new UserError(
      `the worker runs as root and there is neither a ${DEFAULT_RELEASE_USER} nor a nobody user to run releases as`,
      `create one (useradd --system --no-create-home --shell /usr/sbin/nologin ${DEFAULT_RELEASE_USER}), ` +
        `or set ${RELEASE_USER_ENV}=root to run releases as the worker (they can then read its secrets)`,
    );
  }
  return fallback;
}

/** Whether `user` may do `want` (bits of r=4, w=2, x=1) on a file with this stat, as the kernel decides it. */
function allows(st: { uid: number; gid: number; mode: number }, user: ReleaseUser, want: number): boolean {
  const bits = st.uid === user.uid ? (st.mode >> 6) & 7 : st.gid === user.gid ? (st.mode >> 3) & 7 : st.mode & 7;
  return (bits & want) === want;
}

/**
 * The first folder on the way to `dir` that `user` cannot pass (no x), or `dir` itself when it cannot list and enter
 * it (r and x); undefined when it can. Releases run without supplementary groups, so only the user and its group
 * count.
 */
export function unreachableFor(user: ReleaseUser, dir: string): string | undefined {
  const target = path.resolve(dir);
  const parts = target.split(path.sep).filter(Boolean);
  let at: string = path.sep;
  for (const part of parts) {
    if (!allows(statSync(at), user, 1)) return at;
    at = path.join(at, part);
  }
  return allows(statSync(target), user, 5) ? undefined : target;
}

/**
 * As root with no RUNBOOK_RELEASE_USER, creates the `runbook-release` system user when it is missing (as Debian's
 * postgresql package creates `postgres`), so that releases do not share `nobody` with other daemons. Returns what it
 * did in words, or undefined when there was nothing to do; a failing useradd is reported, and releases then run as
 * nobody.
 */
export function ensureReleaseUser(
  env: NodeJS.ProcessEnv,
  uid: number | undefined = process.getuid?.(),
): string | undefined {
  if (uid !== 0 || env[RELEASE_USER_ENV]?.trim() || lookupUser(DEFAULT_RELEASE_USER)) return undefined;
  try {
    execFileSync(
      'useradd',
      [
        '--system',
        '--user-group',
        '--no-create-home',
        '--home-dir',
        '/nonexistent',
        '--shell',
        '/usr/sbin/nologin',
        DEFAULT_RELEASE_USER,
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    return `created the system user ${DEFAULT_RELEASE_USER}, which releases run as`;
  } catch (err) {
    const why = String((err as { stderr?: Buffer }).stderr ?? (err as Error).message).trim();
    return `could not create the user ${DEFAULT_RELEASE_USER} (${why}): releases run as nobody`;
  }
}

/**
 * What a process of a release is started with, for the release itself (release-runner.ts) and for its commands
 * (command-runner.ts): the release user's access to its folder, and an environment made of PATH, HOME, the rendered
 * release env, the database URL and a marker. Nothing else of the worker's environment reaches it.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ServiceRoleError } from '../../pg/service-role';
import { RELEASE_USER_ENV, unreachableFor, type ReleaseUser } from '../../system/release-user';
import type { PlatformError } from '../types';

/** Where a release process gets its database URL and its user from (the runners' options). */
export interface ReleaseProcessSource {
  /** The URL for a database on the worker's PostgreSQL (with the service's own role, see ReleaseRunnerOptions). */
  releaseUrlFor: (release: { service: string; environment: string; database: string }) => Promise<string>;
  /** The OS user release processes run as; undefined: the worker's own. */
  runAs?: ReleaseUser;
  /** The worker's environment: PATH, HOME and a database's `urlEnv` are read from it. */
  env: NodeJS.ProcessEnv;
}

/** One process to start: whose it is, where, and with what. */
export interface ReleaseProcessInput {
  service: string;
  environment: string;
  database?: { name: string; urlEnv?: string };
  /** The folder it runs in. */
  cwd: string;
  /** The rendered release env ({} for a command on the worker). */
  env: Record<string, string>;
  /** The variable that marks the process as ours, read back from /proc/<pid>/environ: [name, value]. */
  marker: [string, string];
  /** What runs, for messages: "release v2 of shop", "the migrate command of shop v2". */
  what: string;
}

/**
 * The DATABASE_URL of a release process: the worker's `urlEnv` variable when the database names one, else
 * releaseUrlFor's. Throws what `fail` makes (permanent) for a missing variable or a role the worker may not create;
 * other errors of releaseUrlFor (PostgreSQL away) as they are.
 */
export async function releaseDatabaseUrl(
  source: ReleaseProcessSource,
  release: { service: string; environment: string; database: { name: string; urlEnv?: string } },
  fail: (message: string) => PlatformError,
): Promise<string> {
  const { urlEnv, name } = release.database;
  const fromWorker = urlEnv ? source.env[urlEnv] : undefined;
  if (urlEnv && !fromWorker) {
    throw fail(
      `the worker has no ${urlEnv} set (the database URL of ${release.service}); set it in the worker's environment`,
    );
  }
  return (
    fromWorker ??
    (await source
      .releaseUrlFor({ service: release.service, environment: release.environment, database: name })
      .catch((err: unknown) => {
        // The worker may not create roles: no retry changes that.
        throw err instanceof ServiceRoleError ? fail(err.message) : err;
      }))
  );
}

/**
 * Checks that the release user can reach `input.cwd` and builds the process's environment: PATH, HOME (the release
 * user's), the rendered env, DATABASE_URL when it has a database, and the marker. Throws what `fail` makes
 * (permanent) for a folder the release user cannot reach, see also {@link releaseDatabaseUrl}.
 */
export async function prepareReleaseProcess(
  source: ReleaseProcessSource,
  input: ReleaseProcessInput,
  fail: (message: string) => PlatformError,
): Promise<{ env: NodeJS.ProcessEnv; user?: { uid: number; gid: number } }> {
  const user = source.runAs;
  const blocked = user ? unreachableFor(user, input.cwd) : undefined;
  if (user && blocked) {
    throw fail(
      `${input.what} runs as the user ${user.name} (uid ${user.uid}), who cannot ` +
        `${blocked === path.resolve(input.cwd) ? 'read' : 'pass'} ${blocked} on the way to ${input.cwd}: put releases ` +
        `where that user can read them (for example /srv/${input.service}/releases), make the folders on the way ` +
        `readable (chmod o+x ${blocked}, or setfacl -m u:${user.name}:x ${blocked}), or set ` +
        `${RELEASE_USER_ENV} to another user in the worker's environment`,
    );
  }
  const env: NodeJS.ProcessEnv = {
    PATH: source.env.PATH,
    HOME: user ? user.home : source.env.HOME,
    ...input.env,
    [input.marker[0]]: input.marker[1],
  };
  if (input.database) {
    env.DATABASE_URL = await releaseDatabaseUrl(
      source,
      { service: input.service, environment: input.environment, database: input.database },
      fail,
    );
  }
  return { env, ...(user ? { user: { uid: user.uid, gid: user.gid } } : {}) };
}

/**
 * True when the process `pid` was started with the marker variable (read from /proc/<pid>/environ, Linux): a pid file
 * whose pid was reused by another process, or a zombie (its environment is gone), is not taken for ours.
 */
export function markedAs(pid: number, [name, value]: [string, string]): boolean {
  try {
    return `\0${readFileSync(`/proc/${pid}/environ`, 'utf8')}`.includes(`\0${name}=${value}\0`);
  } catch {
    return false;
  }
}

import path from 'node:path';
import { postgresClientBinDir } from '../../pg/bin-dir';
import { createDatabaseIfMissing } from '../../pg/create-database';
import { createDrillChecks } from '../../pg/drill-checks';
import { createMigrator } from '../../pg/migrator';
import {
  ServiceRoleError,
  ensureServiceRole,
  serviceRoleName,
  serviceRolePassword,
  urlWith,
} from '../../pg/service-role';
import type { ReleaseUser } from '../../system/release-user';
import { deriveKey } from '../../system/worker-secret';
import { PlatformError, type PlatformParts } from '../types';
import { createCommandRunner } from './command-runner';
import { swapDatabases } from './database-swap';
import { haproxyPaths, reloadHaproxy } from './haproxy-control';
import { createHaproxyRouter } from './haproxy-router';
import { createHaproxyRuntime, type HaproxyRuntime } from './haproxy-runtime';
import { createPgSnapshotStore } from './pg-snapshots';
import { createReleaseRunner, type ReleaseRunnerOptions } from './release-runner';

export interface SingleHostPlatform extends PlatformParts {
  /** HAProxy's runtime API (the stack check asks it too). */
  runtime: HaproxyRuntime;
  /** The folder of the PostgreSQL client binaries (pg_dump, pg_restore, pg_amcheck) this platform found. */
  binDir: string;
}

export interface SingleHostOptions {
  home: string;
  haproxySocket: string;
  /** The URL of a database on the worker's PostgreSQL, as the worker's own (super)user. */
  urlFor: (database: string) => string;
  /** The worker's secret (loadWorkerSecret): manifests are signed with a key derived from it, and role passwords. */
  workerSecret: string;
  /** Each service's database is given to a role of its own, which its releases use (RUNBOOK_SERVICE_ROLES). */
  serviceRoles: boolean;
  /** The OS user releases run as (resolveReleaseUser); undefined: the worker's. */
  releaseUser?: ReleaseUser;
}

/**
 * The single-host platform on the embedded stack's folder (`home`): HAProxy routes in haproxy/services.d,
 * releases and the runs of their commands in releases/, snapshots in snapshots/ (manifests signed), a restored database swapped in by renames on the
 * same server. `urlFor` gives the URL of a database on the worker's PostgreSQL; that URL never leaves the worker:
 * releases and their commands get one with their service's role (serviceRoles). `ensureDatabase` creates a service's database on that
 * server on its first deploy (given to the service's role with serviceRoles); it throws PlatformError PreflightFailed
 * (permanent) when the worker's user may not create it.
 */
export function createSingleHostPlatform(opts: SingleHostOptions): SingleHostPlatform {
  const runtime = createHaproxyRuntime(opts.haproxySocket);
  const roleSecret = deriveKey(opts.workerSecret, 'service-roles').toString('hex');
  const binDir = postgresClientBinDir();
  if (!binDir)
    throw new Error('PostgreSQL client binaries (pg_dump, pg_restore) not found: apt-get install postgresql-client-15');
  /** Gives `database` to the service's role (created if needed); returns the role and its password. */
  const giveToServiceRole = async (service: string, environment: string, database: string) => {
    const role = serviceRoleName(service, environment);
    const password = serviceRolePassword(roleSecret, role);
    await ensureServiceRole(opts.urlFor('postgres'), database, role, password);
    return { role, password };
  };
  // Releases and their commands (migrations, checks) run alike: same folder, database URL and user.
  const releaseProcesses: ReleaseRunnerOptions = {
    dir: path.join(opts.home, 'releases'),
    releaseUrlFor: async ({ service, environment, database }) => {
      if (!opts.serviceRoles) return opts.urlFor(database);
      const { role, password } = await giveToServiceRole(service, environment, database);
      return urlWith(opts.urlFor(database), { database, user: role, password });
    },
    ...(opts.releaseUser ? { runAs: opts.releaseUser } : {}),
  };
  return {
    runtime,
    router: createHaproxyRouter({
      servicesDir: haproxyPaths(opts.home).servicesDir,
      runtime,
      reload: () => reloadHaproxy(opts.home),
      stateDir: path.join(opts.home, 'routes'),
    }),
    releases: createReleaseRunner(releaseProcesses),
    commands: createCommandRunner(releaseProcesses),
    snapshots: createPgSnapshotStore({
      dir: path.join(opts.home, 'snapshots'),
      urlFor: opts.urlFor,
      binDir,
      manifestKey: deriveKey(opts.workerSecret, 'manifests'),
    }),
    migrator: createMigrator(opts.urlFor),
    drillChecks: createDrillChecks({ urlFor: opts.urlFor, binDir }),
    swapDatabases: (database, restored, replacedAs) =>
      swapDatabases(opts.urlFor('postgres'), database, restored, replacedAs),
    async ensureDatabase({ service, environment, database }) {
      try {
        const outcome = await createDatabaseIfMissing(opts.urlFor('postgres'), database);
        if (opts.serviceRoles) await giveToServiceRole(service, environment, database);
        return outcome;
      } catch (err) {
        if (err instanceof ServiceRoleError || (err as { code?: string }).code === '42501') {
          throw new PlatformError(`cannot create the database ${database} of ${service}: ${(err as Error).message}`, {
            type: 'PreflightFailed',
            permanent: true,
            fix: "give the worker's PostgreSQL user CREATEDB (and CREATEROLE with service roles), or create the database",
            cause: err,
          });
        }
        throw err;
      }
    },
    binDir,
  };
}

/** The URL of another database on the same server as `url` (same credentials). */
export function siblingDatabaseUrl(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

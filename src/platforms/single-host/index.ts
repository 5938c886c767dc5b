import path from 'node:path';
import { postgresClientBinDir } from '../../pg/bin-dir';
import { createDrillChecks } from '../../pg/drill-checks';
import { createMigrator } from '../../pg/migrator';
import type { PlatformParts } from '../types';
import { swapDatabases } from './database-swap';
import { haproxyPaths, reloadHaproxy } from './haproxy-control';
import { createHaproxyRouter } from './haproxy-router';
import { createHaproxyRuntime, type HaproxyRuntime } from './haproxy-runtime';
import { createPgSnapshotStore } from './pg-snapshots';
import { createReleaseRunner } from './release-runner';

export interface SingleHostPlatform extends PlatformParts {
  /** HAProxy's runtime API (the stack check asks it too). */
  runtime: HaproxyRuntime;
  /** The folder of the PostgreSQL client binaries (pg_dump, pg_restore, pg_amcheck) this platform found. */
  binDir: string;
}

/**
 * The single-host platform on the embedded stack's folder (`home`): HAProxy routes in haproxy/services.d,
 * releases in releases/, snapshots in snapshots/, a restored database swapped in by renames on the same server.
 * `urlFor` gives the URL of a database on the worker's PostgreSQL; credentials never leave the worker.
 */
export function createSingleHostPlatform(opts: {
  home: string;
  haproxySocket: string;
  urlFor: (database: string) => string;
}): SingleHostPlatform {
  const runtime = createHaproxyRuntime(opts.haproxySocket);
  const binDir = postgresClientBinDir();
  if (!binDir)
    throw new Error('PostgreSQL client binaries (pg_dump, pg_restore) not found: apt-get install postgresql-client-15');
  return {
    runtime,
    router: createHaproxyRouter({
      servicesDir: haproxyPaths(opts.home).servicesDir,
      runtime,
      reload: () => reloadHaproxy(opts.home),
      stateDir: path.join(opts.home, 'routes'),
    }),
    releases: createReleaseRunner({ dir: path.join(opts.home, 'releases'), urlFor: opts.urlFor }),
    snapshots: createPgSnapshotStore({ dir: path.join(opts.home, 'snapshots'), urlFor: opts.urlFor, binDir }),
    migrator: createMigrator(opts.urlFor),
    drillChecks: createDrillChecks({ urlFor: opts.urlFor, binDir }),
    swapDatabases: (database, restored, replacedAs) =>
      swapDatabases(opts.urlFor('postgres'), database, restored, replacedAs),
    binDir,
  };
}

/** The URL of another database on the same server as `url` (same credentials). */
export function siblingDatabaseUrl(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

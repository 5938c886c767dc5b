import path from 'node:path';
import { postgresClientBinDir } from '../../pg/bin-dir';
import { createDrillChecks } from '../../pg/drill-checks';
import { createMigrator } from '../../pg/migrator';
import type { DrillChecks, Migrator, ReleaseRunner, SnapshotStore, TrafficRouter } from '../types';
import { haproxyPaths, reloadHaproxy } from './haproxy-control';
import { createHaproxyRouter } from './haproxy-router';
import { createHaproxyRuntime, type HaproxyRuntime } from './haproxy-runtime';
import { createPgSnapshotStore } from './pg-snapshots';
import { createReleaseRunner } from './release-runner';

export interface SingleHostPlatform {
  runtime: HaproxyRuntime;
  router: TrafficRouter;
  releases: ReleaseRunner;
  snapshots: SnapshotStore;
  migrator: Migrator;
  /** What a restore drill checks on a restored copy (connections, pg_amcheck). */
  drillChecks: DrillChecks;
  /** The folder of the PostgreSQL client binaries (pg_dump, pg_restore, pg_amcheck) this platform found. */
  binDir: string;
}

/**
 * The single-host platform on the embedded stack's folder (`home`): HAProxy routes in haproxy/services.d,
 * releases in releases/, snapshots in snapshots/. `urlFor` gives the URL of a database on the worker's
 * PostgreSQL; credentials never leave the worker.
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
    binDir,
  };
}

/** The URL of another database on the same server as `url` (same credentials). */
export function siblingDatabaseUrl(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

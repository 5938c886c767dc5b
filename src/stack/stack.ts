import { existsSync, rmSync } from 'node:fs';
import path from 'node:path';
import { UserError } from '../errors';
import { ensurePrivateDirSync, tightenTree } from '../system/private-files';
import type { TemporalConnection } from '../temporal-connection';
import type { Check, Component, StackContext } from './component';
import { haproxyComponent } from './haproxy';
import { clusterDirOf, postgresComponent, postgresPaths, removeCluster } from './postgres';
import { sampleCopyDir } from './sample-copy';
import { releasesComponent } from './releases';
import { saveStackSettings, type StackSettings } from './settings';
import { temporalClusterComponent } from './temporal-cluster';
import { temporalComponent } from './temporal-server';
import { ensureSystemTools, ensureTemporalCli } from './tools';
import { workerComponent } from './worker-process';

/** Start order; `down` stops in reverse. The Temporal server is the dev server or the cluster, as the settings say. */
const componentsOf = (settings: StackSettings): Component[] => [
  postgresComponent,
  releasesComponent,
  haproxyComponent,
  settings.temporalServer === 'cluster' ? temporalClusterComponent : temporalComponent,
  workerComponent,
];

export interface UpOptions {
  /** Start a worker too (tests start their own in-process workers). */
  worker?: boolean;
  /** Leave Temporal alone: the caller uses a server of its own (TEMPORAL_ADDRESS). */
  temporal?: boolean;
}

/**
 * Brings the embedded stack up: installs what is missing, then starts (or adopts) PostgreSQL, HAProxy, the
 * Temporal dev server and a worker. Idempotent: components already running are adopted.
 * Returns each component's address.
 */
export async function up(
  settings: StackSettings,
  log: (line: string) => void,
  opts: UpOptions = {},
): Promise<Record<string, string>> {
  const ctx: StackContext = { settings, log };
  await ensureSystemTools(log);
  const temporalServer = opts.temporal === false ? undefined : settings.temporalServer;
  if (temporalServer === 'dev') await ensureTemporalCli(log);
  const chosen = componentsOf(settings).filter(
    (c) => !(c === workerComponent && opts.worker === false) && !(c.name === 'temporal' && !temporalServer),
  );
  for (const component of chosen) await component.preflight(ctx);
  makePrivate(settings.home, log);
  saveStackSettings(settings);
  const addresses: Record<string, string> = {};
  for (const component of chosen) {
    addresses[component.name] = await component.start(ctx);
  }
  return addresses;
}

/**
 * The data folder is 0700 and everything in it private to this user: created so, and tightened when an older version
 * left it open (as root it had to, for the postgres user). A cluster kept in the data folder is left to PostgreSQL,
 * which keeps its own files private.
 */
function makePrivate(home: string, log: (line: string) => void): void {
  ensurePrivateDirSync(home);
  const changed = tightenTree(home, [path.join(postgresPaths(home).dir, 'data')]);
  if (changed > 0) log(`data folder: ${changed} file(s) and folder(s) in ${home} made private to this user`);
}

/** Stops everything `up` started, worker first. Returns the names of the components that were running. */
export async function down(settings: StackSettings, log: (line: string) => void): Promise<string[]> {
  const ctx: StackContext = { settings, log };
  const stopped: string[] = [];
  // both Temporal servers: the one running may not be the one the settings name now
  const all = [...componentsOf({ ...settings, temporalServer: 'dev' }), temporalClusterComponent];
  for (const component of all.reverse()) {
    if (await component.stop(ctx)) {
      log(`${component.name}: stopped`);
      stopped.push(component.name);
    }
  }
  return stopped;
}

/**
 * Runs every component's checks; nothing is started or changed. `temporal`: the connection the CLI uses, and
 * whether it is the embedded dev server.
 */
export async function doctor(
  settings: StackSettings,
  temporal?: { connection: TemporalConnection; embedded: boolean },
): Promise<Check[]> {
  const ctx: StackContext = { settings, log: () => {}, ...(temporal ? { temporal } : {}) };
  const checks: Check[] = [];
  for (const component of componentsOf(settings)) checks.push(...(await component.check(ctx)));
  return checks;
}

/**
 * Removes what `runbook up` and the demo left for a data folder, after `down`: the PostgreSQL cluster (as root, under
 * /var/lib/durable-runbooks), the demo's copy of the sample, and the data folder itself (snapshots, logs, keys).
 * Returns what it removed. Refuses a folder that is not a data folder (no stack.json, no cluster record), so that a
 * mistyped --home never removes anything else.
 * @throws UserError for a folder that is not a data folder.
 */
export function purge(home: string): string[] {
  const resolved = path.resolve(home);
  if (!existsSync(resolved)) return [];
  const looksLikeData =
    existsSync(path.join(resolved, 'stack.json')) || existsSync(path.join(resolved, 'postgres', 'cluster.json'));
  if (!looksLikeData || resolved === path.parse(resolved).root) {
    throw new UserError(
      `${resolved} is not a runbook data folder (no stack.json, no postgres/cluster.json): nothing removed`,
      'name the data folder with --home or RUNBOOK_HOME',
    );
  }
  const removed: string[] = [];
  const cluster = clusterDirOf(resolved);
  if (cluster && !cluster.startsWith(`${resolved}${path.sep}`) && existsSync(cluster)) {
    removeCluster(resolved);
    removed.push(cluster);
  }
  const sample = path.dirname(sampleCopyDir(resolved));
  if (existsSync(sample)) {
    rmSync(sample, { recursive: true, force: true });
    removed.push(sample);
  }
  rmSync(resolved, { recursive: true, force: true });
  removed.push(resolved);
  return removed;
}

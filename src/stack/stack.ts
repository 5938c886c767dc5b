import { chmodSync, mkdirSync } from 'node:fs';
import type { TemporalConnection } from '../temporal-connection';
import type { Check, Component, StackContext } from './component';
import { haproxyComponent } from './haproxy';
import { postgresComponent } from './postgres';
import { releasesComponent } from './releases';
import { saveStackSettings, type StackSettings } from './settings';
import { temporalComponent } from './temporal-server';
import { ensureSystemTools, ensureTemporalCli } from './tools';
import { workerComponent } from './worker-process';

/** Start order; `down` stops in reverse. */
const components: Component[] = [
  postgresComponent,
  releasesComponent,
  haproxyComponent,
  temporalComponent,
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
  mkdirSync(settings.home, { recursive: true });
  if (process.getuid?.() === 0) chmodSync(settings.home, 0o755); // the postgres user must reach its folder
  const ctx: StackContext = { settings, log };
  await ensureSystemTools(log);
  if (opts.temporal !== false) await ensureTemporalCli(log);
  const chosen = components.filter(
    (c) => !(c === workerComponent && opts.worker === false) && !(c === temporalComponent && opts.temporal === false),
  );
  for (const component of chosen) await component.preflight(ctx);
  saveStackSettings(settings);
  const addresses: Record<string, string> = {};
  for (const component of chosen) {
    addresses[component.name] = await component.start(ctx);
  }
  return addresses;
}

/** Stops everything `up` started, worker first. Returns the names of the components that were running. */
export async function down(settings: StackSettings, log: (line: string) => void): Promise<string[]> {
  const ctx: StackContext = { settings, log };
  const stopped: string[] = [];
  for (const component of [...components].reverse()) {
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
  for (const component of components) checks.push(...(await component.check(ctx)));
  return checks;
}

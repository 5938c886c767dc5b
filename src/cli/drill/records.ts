/**
 * Where `drill history` and `drill report` find past drills (the drill_runs table, else Temporal visibility),
 * and the service, environment and limit they are asked for.
 */
import { existsSync } from 'node:fs';
import type { Client } from '@temporalio/client';
import { UserError, errorMessage } from '../../errors';
import { connectPg } from '../../pg/connect';
import { listDrillRuns } from '../../orchestrator-store/orchestrator-db';
import { defaultEnvironment, loadRunbookConfig, resolveService, runbookConfigPath } from '../../runbook-config';
import type { DrillIntegrity, DrillResult } from '../../shared/drill';
import { RunbookOutcome, RunbookRtoSeconds } from '../../shared/search-attributes';
import { databaseUrl, postgresPaths } from '../../stack/postgres';
import { resolveStackSettings } from '../../stack/settings';
import type { Io, ParsedArgs } from '../command';
import { stringOpt } from '../options';
import { withClient } from '../temporal';

/**
 * One past drill as the CLI shows it, from either source: the drill_runs table (complete) or Temporal visibility
 * plus each closed drill's result (while Temporal retains it).
 */
export interface DrillRecordView {
  workflowId: string;
  startedAtMs: number;
  finishedAtMs: number | null;
  /** passed | failed | cancelled | awaiting-sign-off | running */
  outcome: string;
  rtoSeconds: number | null;
  rtoTargetSeconds: number | null;
  overTarget: boolean | null;
  snapshotId: string | null;
  snapshotAgeSeconds: number | null;
  phaseTimings: Record<string, number>;
  integrity: (DrillIntegrity & { failedPhase?: string; version?: string; signoff?: string }) | null;
  signedOffBy: string | null;
  reason: string | null;
}

/** Where `drill history` and `drill report` read from. */
interface DrillRecords {
  records: DrillRecordView[];
  source: string;
}

/** The orchestrator database's URL the CLI can use, or why there is none. */
function orchestratorUrl(env: NodeJS.ProcessEnv): { url: string } | { why: string } {
  const settings = resolveStackSettings(env);
  if (settings.externalDatabaseUrl) return { url: databaseUrl(settings) };
  if (existsSync(postgresPaths(settings.home).passwordFile)) return { url: databaseUrl(settings) };
  return { why: `no DATABASE_URL, and no embedded stack in ${settings.home}` };
}

const withoutPassword = (url: string) => {
  const u = new URL(url);
  return `${u.hostname}:${u.port || 5432}${u.pathname}`;
};

async function fromTable(url: string, service: string, environment: string, limit: number): Promise<DrillRecordView[]> {
  const client = await connectPg(url, 5_000);
  try {
    return (await listDrillRuns(client, service, environment, limit)).map((r) => ({
      workflowId: r.workflowId,
      startedAtMs: r.startedAt.getTime(),
      finishedAtMs: r.finishedAt ? r.finishedAt.getTime() : null,
      outcome: r.outcome,
      rtoSeconds: r.rtoSeconds,
      rtoTargetSeconds: r.rtoTargetSeconds,
      overTarget: r.overTarget,
      snapshotId: r.snapshotId,
      snapshotAgeSeconds: r.snapshotAgeSeconds,
      phaseTimings: r.phaseTimings ?? {},
      integrity: (r.integrity as DrillRecordView['integrity']) ?? null,
      signedOffBy: r.signedOffBy,
      reason: r.reason,
    }));
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function fromVisibility(client: Client, service: string, environment: string, limit: number) {
  const found: DrillRecordView[] = [];
  const query = `RunbookKind = "drill" AND RunbookService = "${service}" AND RunbookEnvironment = "${environment}"`;
  for await (const wf of client.workflow.list({ query, pageSize: limit })) {
    const outcome = wf.typedSearchAttributes.get(RunbookOutcome);
    const rto = wf.typedSearchAttributes.get(RunbookRtoSeconds);
    const view: DrillRecordView = {
      workflowId: wf.workflowId,
      startedAtMs: wf.startTime.getTime(),
      finishedAtMs: wf.closeTime ? wf.closeTime.getTime() : null,
      outcome: outcome ?? (wf.status.name === 'RUNNING' ? 'running' : wf.status.name.toLowerCase()),
      rtoSeconds: rto ?? null,
      rtoTargetSeconds: null,
      overTarget: null,
      snapshotId: null,
      snapshotAgeSeconds: null,
      phaseTimings: {},
      integrity: null,
      signedOffBy: null,
      reason: null,
    };
    if (wf.status.name === 'COMPLETED') {
      // The details are in the result, as long as Temporal retains the history.
      const r = (await client.workflow
        .getHandle(wf.workflowId, wf.runId)
        .result()
        .catch(() => undefined)) as DrillResult | undefined;
      if (r?.drill) {
        const d = r.drill;
        Object.assign(view, {
          rtoTargetSeconds: d.rtoTargetMs / 1000,
          overTarget: d.rtoMs === undefined ? null : d.overTargetByMs !== undefined,
          snapshotId: d.snapshot?.snapshotId ?? null,
          snapshotAgeSeconds: d.snapshot ? d.snapshot.ageMs / 1000 : null,
          phaseTimings: Object.fromEntries(
            d.phases.filter((p) => p.ms !== undefined).map((p) => [p.phase, p.ms! / 1000]),
          ),
          integrity: { ...d.integrity, ...(d.failedPhase ? { failedPhase: d.failedPhase } : {}), signoff: d.signoff },
          signedOffBy: d.signedOffBy ?? null,
          reason: r.reason,
        });
      }
    }
    found.push(view);
    if (found.length >= limit) break;
  }
  return found;
}

/**
 * The service's past drills: from the drill_runs table when the CLI can reach the orchestrator's database
 * (DATABASE_URL, or the embedded stack's password file), else from Temporal visibility (RunbookKind="drill",
 * RunbookRtoSeconds) and the results of the drills Temporal still retains. `source` says which, and why.
 */
export async function loadDrillRecords(
  env: NodeJS.ProcessEnv,
  service: string,
  environment: string,
  limit: number,
): Promise<DrillRecords> {
  const db = orchestratorUrl(env);
  let why: string;
  if ('url' in db) {
    try {
      return {
        records: await fromTable(db.url, service, environment, limit),
        source: `the drill_runs table (${withoutPassword(db.url)})`,
      };
    } catch (err) {
      why = `the orchestrator database did not answer: ${errorMessage(err)}`;
    }
  } else why = db.why;
  return withClient(env, async (client) => ({
    records: await fromVisibility(client, service, environment, limit),
    source: `Temporal visibility (RunbookKind="drill", RunbookRtoSeconds) and the drills' results; ${why}`,
  }));
}

/**
 * The service, environment (--env, else the config's default when there is a config), limit and configured RTO
 * target that `drill history` and `drill report` are asked for.
 * @throws UserError for a missing or extra argument, no environment to use, or a bad --limit.
 */
export function serviceAndEnv(args: ParsedArgs, io: Io, verb: string) {
  const [, service, ...rest] = args.positionals;
  if (!service) throw new UserError(`drill ${verb}: give the service name`, 'runbook drill --help');
  if (rest.length > 0) throw new UserError(`drill ${verb}: unexpected argument(s) ${rest.join(' ')}`);
  let environment = stringOpt(args.values, 'env');
  let rtoTargetSeconds: number | null = null;
  const file = runbookConfigPath(args.values.config as string | undefined, io.env);
  if (existsSync(file)) {
    const config = loadRunbookConfig(file);
    environment ??= defaultEnvironment(config, service);
    const resolved = resolveService(config, service, environment);
    rtoTargetSeconds = resolved.drill ? resolved.drill.rtoTargetMs / 1000 : null;
  }
  if (!environment) throw new UserError(`drill ${verb}: give --env (there is no ${file} to take the default from)`);
  const limit = Number(stringOpt(args.values, 'limit') ?? 50);
  if (!Number.isInteger(limit) || limit < 1) throw new UserError(`drill ${verb}: --limit must be a whole number >= 1`);
  return { service, environment, limit, rtoTargetSeconds };
}

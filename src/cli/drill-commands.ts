import { randomBytes } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import {
  ScheduleAlreadyRunning,
  ScheduleNotFoundError,
  ScheduleOverlapPolicy,
  WorkflowFailedError,
  type Client,
  type ScheduleDescription,
  type ScheduleSpec,
  type WorkflowHandle,
} from '@temporalio/client';
import { UserError, errorMessage } from '../errors';
import { connectPg } from '../pg/connect';
import { listDrillRuns } from '../orchestrator-store/orchestrator-db';
import {
  defaultEnvironment,
  loadRunbookConfig,
  parseDuration,
  resolveService,
  runbookConfigPath,
  type RunbookConfig,
} from '../runbook-config';
import type { ServicePlan } from '../shared/deploy';
import { drillScheduleId, formatMs, type DrillInput, type DrillResult, type DrillState } from '../shared/drill';
import { slug } from '../shared/ids';
import { statusQuery } from '../shared/messages';
import { RunbookOutcome, RunbookRtoSeconds } from '../shared/search-attributes';
import { databaseUrl, postgresPaths } from '../stack/postgres';
import { resolveStackSettings } from '../stack/settings';
import type { restoreDrill } from '../workflows';
import { asOption, configOption, envOption, jsonOption, type Command, type Io, type ParsedArgs } from './command';
import { whoAmI } from './deploy-commands';
import { renderDrillReport, type DrillRecordView } from './drill-report';
import { resolvePlan } from './plan';
import { timelineLines } from './render';
import { runningRunbooks, withClient, workflowLink, type TemporalTarget } from './temporal';

/** Exit codes of `drill --wait`. */
const drillExitCode: Record<string, number> = { passed: 0, failed: 5, cancelled: 6 };
const SNAPSHOT_ID = /^[a-z0-9][a-z0-9_-]{0,62}$/;
/** How late a missed scheduled drill may still start after a Temporal outage (then it is skipped). */
const CATCHUP_WINDOW = '1h';

const SUBCOMMANDS = ['schedule', 'history', 'report'] as const;
type Sub = (typeof SUBCOMMANDS)[number] | 'run';

/** Which options each form of `drill` takes (all are parsed together; the others are refused by name). */
const OPTIONS_OF: Record<Sub, string[]> = {
  run: ['env', 'config', 'as', 'snapshot', 'fresh', 'signoff', 'version', 'reason', 'wait', 'json'],
  schedule: ['env', 'config', 'as', 'cron', 'every', 'fresh', 'signoff', 'delete', 'json'],
  history: ['env', 'config', 'limit', 'json'],
  report: ['env', 'config', 'limit', 'out'],
};

function stringOpt(values: ParsedArgs['values'], name: string): string | undefined {
  const v = values[name];
  return typeof v === 'string' && v.trim() !== '' ? v.trim() : undefined;
}

function durationOpt(values: ParsedArgs['values'], name: string, minMs: number): number | undefined {
  const raw = stringOpt(values, name);
  if (raw === undefined) return undefined;
  const ms = parseDuration(raw);
  if (ms === undefined || ms < minMs)
    throw new UserError(
      `drill: --${name} must be a duration of at least ${formatMs(minMs)} like 30m, 24h or 7d, got ${raw}`,
    );
  return ms;
}

function loadConfig(values: ParsedArgs['values'], env: NodeJS.ProcessEnv): RunbookConfig {
  return loadRunbookConfig(runbookConfigPath(values.config as string | undefined, env));
}

/** The service's plan as the drill's input; refuses a service without a database. */
function drillPlan(plan: ServicePlan): ServicePlan {
  if (!plan.database) {
    throw new UserError(
      `${plan.service}/${plan.environment} has no database in runbook.yaml: there is nothing to restore`,
      'add a database section to the service',
    );
  }
  return plan;
}

function signoffOf(values: ParsedArgs['values'], approvers: string[]): number | undefined {
  const timeoutMs = durationOpt(values, 'signoff', 1_000);
  if (timeoutMs !== undefined && approvers.length === 0) {
    throw new UserError(
      'drill: --signoff needs approvers, and the service has none',
      'set approvals.approvers in runbook.yaml',
    );
  }
  return timeoutMs;
}

/** The lines of a finished drill for a person: verdict, RTO vs target, RPO, integrity, phases. */
function drillSummary(workflowId: string, r: DrillResult): string[] {
  const d = r.drill;
  const lines = [`${workflowId}: ${r.outcome.toUpperCase()}: ${r.reason}`];
  if (d.rtoMs !== undefined) {
    lines.push(
      `  RTO ${formatMs(d.rtoMs)} (target ${formatMs(d.rtoTargetMs)}${d.overTargetByMs !== undefined ? `, OVER by ${formatMs(d.overTargetByMs)}` : ', within'})` +
        (d.snapshot ? `   snapshot age (RPO) ${formatMs(d.snapshot.ageMs)}: ${d.snapshot.snapshotId}` : ''),
    );
  } else if (d.snapshot) {
    lines.push(`  snapshot ${d.snapshot.snapshotId}, ${formatMs(d.snapshot.ageMs)} old`);
  }
  const i = d.integrity;
  const checks = [
    i.amcheck ? `amcheck ${i.amcheck.ok ? 'ok' : 'CORRUPTION'}` : undefined,
    i.manifest
      ? `manifest ${i.manifest.ok ? `ok (${i.manifest.tables} tables, ${i.manifest.rows} rows)` : 'MISMATCH'}`
      : undefined,
    i.schema
      ? `schema ${i.schema.ok ? 'ok' : i.schema.migrated ? `${i.schema.pending.length} migration(s) behind, migrated` : 'MISMATCH'}`
      : undefined,
  ].filter(Boolean);
  if (checks.length > 0) lines.push(`  integrity: ${checks.join(', ')}`);
  if (d.phases.length > 0)
    lines.push(
      `  phases: ${d.phases.map((p) => `${p.phase} ${p.ms === undefined ? '?' : formatMs(p.ms)}`).join(' · ')}`,
    );
  if (d.cleanup.length > 0) lines.push(`  cleanup: ${d.cleanup.join('; ')}`);
  return lines;
}

/** Follows a drill until it ends, printing its timeline; returns the exit code of its verdict. */
async function followDrill(handle: WorkflowHandle, io: Io, json: boolean): Promise<number> {
  let seen = 0;
  const print = (state: DrillState | undefined) => {
    if (!state || json) return;
    for (const line of timelineLines(state, seen)) io.out(line);
    seen = state.timeline.length;
  };
  const result = handle.result().then(
    (r: DrillResult) => ({ ok: true as const, r }),
    (e: unknown) => ({ ok: false as const, e }),
  );
  for (;;) {
    print((await handle.query(statusQuery).catch(() => undefined)) as DrillState | undefined);
    const done = await Promise.race([result, new Promise<undefined>((r) => setTimeout(() => r(undefined), 1_000))]);
    if (!done) continue;
    if (done.ok) {
      print(done.r.state);
      if (json) io.out(JSON.stringify({ workflowId: handle.workflowId, ...done.r }));
      else for (const line of drillSummary(handle.workflowId, done.r)) io.out(line);
      return drillExitCode[done.r.outcome] ?? 1;
    }
    const state = (await handle.query(statusQuery).catch(() => undefined)) as DrillState | undefined;
    print(state);
    const cancelled = done.e instanceof WorkflowFailedError && /cancel/i.test(errorMessage(done.e.cause ?? done.e));
    if (json) {
      io.out(
        JSON.stringify({
          workflowId: handle.workflowId,
          outcome: cancelled ? 'cancelled' : 'failed',
          reason: state?.reason ?? errorMessage(done.e),
          state,
        }),
      );
    } else {
      io.out(`${handle.workflowId}: ${cancelled ? 'CANCELLED' : 'FAILED'}: ${state?.reason ?? errorMessage(done.e)}`);
      if (state?.drill.cleanup.length) io.out(`  cleanup: ${state.drill.cleanup.join('; ')}`);
    }
    return cancelled ? drillExitCode.cancelled! : drillExitCode.failed!;
  }
}

async function runDrill(args: ParsedArgs, io: Io): Promise<number> {
  const [service, ...rest] = args.positionals;
  if (!service) throw new UserError('drill: give the service name', 'runbook drill --help');
  if (rest.length > 0) throw new UserError(`drill: unexpected argument(s) ${rest.join(' ')}`, 'runbook drill --help');
  const { values } = args;
  const snapshotId = stringOpt(values, 'snapshot');
  if (snapshotId && values.fresh)
    throw new UserError('drill: give --snapshot <id> or --fresh, not both', 'runbook drill --help');
  if (snapshotId && !SNAPSHOT_ID.test(snapshotId))
    throw new UserError(
      `drill: --snapshot ${JSON.stringify(snapshotId)} is not a snapshot id`,
      'runbook drill history lists the snapshots drills used',
    );
  const plan = drillPlan(resolvePlan(values, io.env, service, stringOpt(values, 'env')));
  const signoffTimeoutMs = signoffOf(values, plan.approvals.approvers);
  const input: DrillInput = {
    plan,
    requestedBy: whoAmI(values, io.env),
    ...(snapshotId ? { snapshotId } : {}),
    ...(values.fresh ? { fresh: true } : {}),
    ...(signoffTimeoutMs ? { signoffTimeoutMs } : {}),
    ...(stringOpt(values, 'version') ? { version: stringOpt(values, 'version') } : {}),
    ...(stringOpt(values, 'reason') ? { reason: stringOpt(values, 'reason') } : {}),
  };
  return withClient(io.env, async (client, target) => {
    const running = await runningRunbooks(client, plan.service, plan.environment, ['drill']);
    if (running.length > 0) {
      throw new UserError(
        `a drill of ${plan.service}/${plan.environment} is running: ${running.join(', ')}`,
        `wait for it (runbook watch ${running[0]}) or cancel it (runbook cancel ${running[0]})`,
      );
    }
    const workflowId = `drill-${slug(plan.service)}-${slug(plan.environment)}-${randomBytes(3).toString('hex')}`;
    const handle = await client.workflow.start<typeof restoreDrill>('restoreDrill', {
      taskQueue: target.taskQueue,
      workflowId,
      args: [input],
    });
    if (!values.json) {
      io.out(
        `started ${workflowId}: restore drill of ${plan.service}/${plan.environment} (${snapshotId ?? (values.fresh ? 'a fresh snapshot' : 'the newest snapshot')})`,
      );
      io.out(`  watch:  runbook watch ${workflowId}`);
      io.out(`  Web UI: ${workflowLink(target, workflowId)}`);
    }
    if (!values.wait) {
      if (values.json) io.out(JSON.stringify({ workflowId, service: plan.service, environment: plan.environment }));
      return 0;
    }
    return followDrill(handle, io, Boolean(values.json));
  });
}

const scheduleLink = (t: TemporalTarget, id: string) =>
  `${t.uiUrl}/namespaces/${encodeURIComponent(t.namespace)}/schedules/${encodeURIComponent(id)}`;

function describeSchedule(d: ScheduleDescription): Record<string, unknown> {
  return {
    scheduleId: d.scheduleId,
    // Temporal compiles a cron expression into calendars; the note says what was asked for.
    calendars: d.spec.calendars ?? [],
    intervals: (d.spec.intervals ?? []).map((i) => formatMs(Number(i.every))),
    overlap: d.policies.overlap,
    catchupWindow: formatMs(d.policies.catchupWindow),
    paused: d.state.paused,
    note: d.state.note ?? null,
    nextRuns: d.info.nextActionTimes.slice(0, 3).map((t) => t.toISOString()),
    recentRuns: d.info.recentActions.map((a) => ({
      workflowId: a.action.workflow.workflowId,
      takenAt: a.takenAt.toISOString(),
    })),
  };
}

/**
 * The schedule's times: --cron, --every, else the service's `drill.schedule` (a cron expression, a shorthand
 * like @weekly, or @every <duration>, which Temporal turns into an interval).
 */
function scheduleSpec(
  values: ParsedArgs['values'],
  configured: string | undefined,
): { spec: ScheduleSpec; what: string } {
  const cron = stringOpt(values, 'cron');
  const everyMs = durationOpt(values, 'every', 60_000);
  if (cron && everyMs) throw new UserError('drill schedule: give --cron or --every, not both');
  if (everyMs) return { spec: { intervals: [{ every: everyMs }] }, what: `every ${formatMs(everyMs)}` };
  const expression = cron ?? configured;
  if (!expression) {
    throw new UserError(
      'drill schedule: say when: --cron "0 3 * * 1" or --every 7d',
      'or set drill.schedule for the service in runbook.yaml',
    );
  }
  const fields = expression.split(/\s+/);
  if (!/^@\w+/.test(expression) && (fields.length !== 5 || !fields.every((f) => /^[0-9A-Za-z*?/,-]+$/.test(f)))) {
    throw new UserError(
      `drill schedule: --cron must be a 5-field cron expression like "0 3 * * 1" (minute hour day month weekday), got ${JSON.stringify(expression)}`,
    );
  }
  return { spec: { cronExpressions: [expression] }, what: `cron "${expression}" (UTC)` };
}

async function scheduleDrill(args: ParsedArgs, io: Io): Promise<number> {
  const [, service, ...rest] = args.positionals;
  if (!service) throw new UserError('drill schedule: give the service name', 'runbook drill --help');
  if (rest.length > 0) throw new UserError(`drill schedule: unexpected argument(s) ${rest.join(' ')}`);
  const { values } = args;
  const config = loadConfig(values, io.env);
  const environment = stringOpt(values, 'env') ?? defaultEnvironment(config, service);
  const scheduleId = drillScheduleId(service, environment);
  if (values.delete) {
    return withClient(io.env, async (client) => {
      try {
        await client.schedule.getHandle(scheduleId).delete();
      } catch (err) {
        if (err instanceof ScheduleNotFoundError) throw new UserError(`there is no schedule ${scheduleId}`);
        throw err;
      }
      io.out(values.json ? JSON.stringify({ scheduleId, deleted: true }) : `deleted the schedule ${scheduleId}`);
      return 0;
    });
  }
  const plan = drillPlan(resolveService(config, service, environment));
  const { spec, what } = scheduleSpec(values, plan.drill?.schedule);
  const signoffTimeoutMs = signoffOf(values, plan.approvals.approvers);
  const by = whoAmI(values, io.env);
  const input: DrillInput = {
    plan,
    requestedBy: `schedule:${scheduleId}`,
    ...(values.fresh ? { fresh: true } : {}),
    ...(signoffTimeoutMs ? { signoffTimeoutMs } : {}),
    reason: `scheduled drill (${what}), set up by ${by}`,
  };
  return withClient(io.env, async (client, target) => {
    const action = {
      type: 'startWorkflow' as const,
      workflowType: 'restoreDrill',
      taskQueue: target.taskQueue,
      // Temporal appends the scheduled time: drill-shop-production-2025-01-06T03:00:00Z
      workflowId: scheduleId,
      args: [input],
    };
    const policies = { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: CATCHUP_WINDOW, pauseOnFailure: false };
    const note = `restore drill of ${plan.service}/${plan.environment}, ${what}; set up by ${by} with runbook drill schedule`;
    let verb: 'created' | 'updated' = 'created';
    try {
      await client.schedule.create({ scheduleId, spec, action, policies, state: { note }, memo: { setUpBy: by } });
    } catch (err) {
      if (!(err instanceof ScheduleAlreadyRunning)) throw err;
      verb = 'updated';
      // A pause set by someone (e.g. in the Web UI) stays: a new plan is not a reason to resume.
      await client.schedule
        .getHandle(scheduleId)
        .update((previous) => ({ ...previous, spec, action, policies, state: { ...previous.state, note } }));
    }
    const described = describeSchedule(await client.schedule.getHandle(scheduleId).describe());
    if (values.json) io.out(JSON.stringify({ ...described, [verb]: true }));
    else {
      io.out(
        `${verb} the schedule ${scheduleId}: ${what}, overlap SKIP, catch-up window ${CATCHUP_WINDOW}${described.paused ? ' (PAUSED)' : ''}`,
      );
      io.out(`  next runs: ${(described.nextRuns as string[]).join(', ') || 'none'}`);
      io.out(`  Web UI:    ${scheduleLink(target, scheduleId)}  (pause, trigger, see its runs)`);
      io.out(`  its input is the plan as resolved now: run this command again after changing runbook.yaml`);
    }
    return 0;
  });
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
async function loadDrillRecords(
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

function serviceAndEnv(args: ParsedArgs, io: Io, verb: string) {
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

async function drillHistory(args: ParsedArgs, io: Io): Promise<number> {
  const { service, environment, limit } = serviceAndEnv(args, io, 'history');
  const { records, source } = await loadDrillRecords(io.env, service, environment, limit);
  if (args.values.json) {
    io.out(JSON.stringify({ source, drills: records }, null, 2));
    return 0;
  }
  io.out(`source: ${source}`);
  if (records.length === 0) {
    io.out(`no drill of ${service}/${environment} yet: runbook drill ${service} --env ${environment} --wait`);
    return 0;
  }
  io.out(
    `${'STARTED (UTC)'.padEnd(17)} ${'OUTCOME'.padEnd(17)} ${'RTO'.padStart(8)} ${'TARGET'.padStart(8)} ${'SNAP AGE'.padStart(9)} ${'SIGNED OFF'.padEnd(11)} WORKFLOW ID`,
  );
  for (const r of records) {
    const s = (v: number | null) => (v === null ? '-' : formatMs(v * 1000));
    io.out(
      `${new Date(r.startedAtMs).toISOString().slice(0, 16).replace('T', ' ')} ${`${r.outcome}${r.overTarget ? ' (over)' : ''}`.padEnd(17)} ${s(r.rtoSeconds).padStart(8)} ${s(r.rtoTargetSeconds).padStart(8)} ${s(r.snapshotAgeSeconds).padStart(9)} ${(r.signedOffBy ?? '-').padEnd(11)} ${r.workflowId}`,
    );
    if (r.outcome === 'failed' && r.reason) io.out(`  ${r.reason}`);
  }
  return 0;
}

async function drillReport(args: ParsedArgs, io: Io): Promise<number> {
  const { service, environment, limit, rtoTargetSeconds } = serviceAndEnv(args, io, 'report');
  const { records, source } = await loadDrillRecords(io.env, service, environment, limit);
  const out = path.resolve(stringOpt(args.values, 'out') ?? `drill-report-${slug(service)}-${slug(environment)}.html`);
  const html = renderDrillReport(records, {
    service,
    environment,
    source,
    generatedAtMs: Date.now(),
    rtoTargetSeconds,
  });
  writeFileSync(out, html);
  io.out(`wrote ${out}: ${records.length} drill(s) of ${service}/${environment} from ${source}`);
  return 0;
}

export const drillCommand: Command = {
  name: 'drill',
  summary:
    'Restore drill: restore a snapshot into a scratch database, check it, start the live release on it, time it (RTO).\n' +
    'Also: drill schedule (a Temporal Schedule), drill history, drill report (HTML).',
  usage:
    'drill <service> [--env <e>] [--snapshot <id> | --fresh] [--signoff <timeout>] [--version <v>] [--as <name>] [--wait] [--json]\n' +
    '       runbook drill schedule <service> [--env <e>] (--cron "<expr>" | --every <duration>) [--fresh] [--signoff <timeout>] [--delete]\n' +
    '       runbook drill history <service> [--env <e>] [--limit <n>] [--json]\n' +
    '       runbook drill report <service> [--env <e>] [--out <file.html>] [--limit <n>]',
  examples: [
    'runbook drill shop --env production --wait',
    'runbook drill shop --env production --fresh --signoff 4h --as dave',
    'runbook drill schedule shop --env production --cron "0 3 * * 1"',
    'runbook drill history shop --env production',
    'runbook drill report shop --env production --out drills.html',
  ],
  details:
    'A drill never touches the service: the copy is a new database named after the drill, the app runs on a spare\n' +
    'port outside the route, and both are removed at the end (also on failure and cancel). The RTO counts from the\n' +
    "restore's start to the app answering ready and passing its smoke checks; drill.rtoTarget in runbook.yaml is the\n" +
    'target. A schedule starts the drill with the plan as resolved when the schedule was set (overlap SKIP, catch-up\n' +
    `window ${CATCHUP_WINDOW}); pause or trigger it in the Temporal Web UI. history and report read the drill_runs table when\n` +
    'DATABASE_URL or the embedded stack is available, else Temporal visibility; they say which.\n' +
    'Exit codes (with --wait): 0 passed, 5 failed, 6 cancelled, 2 usage error.',
  options: {
    ...envOption,
    ...configOption,
    as: { ...asOption.as, description: 'who you are (recorded; may not sign off under four-eyes)' },
    snapshot: { type: 'string', description: 'restore this snapshot (default: the newest one)' },
    fresh: { type: 'boolean', description: 'take a snapshot of the live database now and restore that' },
    signoff: { type: 'string', description: "wait this long for a reviewer's sign-off (e.g. 4h); none: unsigned" },
    version: { type: 'string', description: 'the release to start on the copy (default: the live one)' },
    reason: { type: 'string', description: 'why (recorded)' },
    wait: { type: 'boolean', description: 'follow the drill until it ends' },
    cron: { type: 'string', description: 'schedule: a 5-field cron expression (UTC), e.g. "0 3 * * 1"' },
    every: { type: 'string', description: 'schedule: an interval, e.g. 7d' },
    delete: { type: 'boolean', description: 'schedule: delete the schedule' },
    limit: { type: 'string', description: 'history/report: how many drills (default 50)' },
    out: { type: 'string', description: 'report: the HTML file to write' },
    ...jsonOption,
  },
  async run(args, io) {
    const first = args.positionals[0];
    const sub: Sub = (SUBCOMMANDS as readonly string[]).includes(first ?? '') ? (first as Sub) : 'run';
    const allowed = OPTIONS_OF[sub];
    const extra = Object.keys(args.values).filter((k) => args.values[k] !== undefined && !allowed.includes(k));
    if (extra.length > 0) {
      throw new UserError(
        `drill${sub === 'run' ? '' : ` ${sub}`}: ${extra.map((k) => `--${k}`).join(', ')} ${extra.length > 1 ? 'do' : 'does'} not apply here`,
        'runbook drill --help',
      );
    }
    switch (sub) {
      case 'schedule':
        return scheduleDrill(args, io);
      case 'history':
        return drillHistory(args, io);
      case 'report':
        return drillReport(args, io);
      default:
        return runDrill(args, io);
    }
  },
};

import { ApplicationFailure, proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { CommandPurpose, ReleaseCommandRequest, ReleaseCommandResult } from '../platforms/types';
import { commandEnd, commandPassed, commandRunIdFor, lastOutput, renderCommand } from '../shared/commands';
import type { CommandRecord, MigrationRecord, ReleaseRef } from '../shared/deploy';
import type { PlatformPlan } from '../shared/platform-plan';
import type { CommandSmokeCheck, CommandSpec, DatabaseSpec, ResolvedService } from '../shared/service-plan';
import { act, commandRun } from './activity-options';

/**
 * The release's own commands in a runbook: the migrate command and its status check, command smoke checks, the
 * drill's integrity command. Each run is named after the workflow and its step, so that an activity retried on
 * another worker adopts the run instead of starting it twice; its exit code decides, its output tail goes into the
 * timeline (scrubbed on the worker), the whole log stays where it ran.
 */

/** Where a command runs and in what: the plan, the platform, the version and release it comes from. */
export interface CommandContext {
  plan: ResolvedService;
  platform: PlatformPlan;
  version: string;
  releaseId: string;
  /** Adds a line to the timeline. */
  note: (message: string) => void;
}

/** One run's record for the state and the history. */
export function recordOf(command: string[], r: ReleaseCommandResult): CommandRecord {
  return {
    command,
    exitCode: r.exitCode,
    timedOut: r.timedOut,
    ...(r.stoppedReason ? { stoppedReason: r.stoppedReason } : {}),
    tail: r.tail,
    logLocation: r.logLocation,
    durationMs: Math.max(0, r.endedAtMs - r.startedAtMs),
    adopted: r.adopted,
  };
}

/** Runs `spec` of the release (placeholders filled in) as the run `step` of this workflow; returns its result. */
export async function runCommand(
  ctx: CommandContext,
  run: {
    step: string;
    purpose: CommandPurpose;
    spec: CommandSpec;
    url?: string;
    /** The database given as DATABASE_URL (default: the service's). */
    database?: ReleaseCommandRequest['database'];
    environment?: string;
    workerCwd?: string;
  },
): Promise<{ command: string[]; result: ReleaseCommandResult }> {
  const command = renderCommand(run.spec.command, { version: ctx.version, ...(run.url ? { url: run.url } : {}) });
  const db = run.database ?? databaseOf(ctx.plan.database);
  const req: ReleaseCommandRequest = {
    service: ctx.plan.service,
    environment: run.environment ?? ctx.plan.environment,
    version: ctx.version,
    releaseId: ctx.releaseId,
    purpose: run.purpose,
    runId: commandRunIdFor(workflowInfo().workflowId, run.step),
    command,
    timeoutMs: run.spec.timeoutMs,
    platform: ctx.platform.target,
    ...(ctx.platform.release ? { release: ctx.platform.release } : {}),
    ...(db ? { database: db } : {}),
    ...(run.workerCwd ? { workerCwd: run.workerCwd } : {}),
  };
  const result = await proxyActivities<Activities>(commandRun(run.spec.timeoutMs)).runReleaseCommand(req);
  const output = lastOutput(result);
  ctx.note(
    `${command.join(' ')} ${commandEnd(result)}${result.adopted ? ' (adopted from an earlier attempt)' : ''}` +
      `${output ? `; output ends:\n${output}` : ''}`,
  );
  return { command, result };
}

function databaseOf(database: DatabaseSpec | undefined): ReleaseCommandRequest['database'] {
  return database ? { name: database.name, ...(database.urlEnv ? { urlEnv: database.urlEnv } : {}) } : undefined;
}

/**
 * Throws a non-retryable ApplicationFailure of `type` unless the run passed. Its message: `what`, the command, how it
 * ended, its last lines and where the whole log is, then `after`.
 */
export function failUnlessPassed(
  ran: { command: string[]; result: ReleaseCommandResult },
  failure: { type: string; what: string; after?: string; details?: unknown[] },
): void {
  const r = ran.result;
  if (commandPassed(r)) return;
  const output = lastOutput(r, 3, 300);
  throw ApplicationFailure.create({
    type: failure.type,
    message:
      `${failure.what} ${ran.command.join(' ')} ${commandEnd(r)}${output ? `; its output ends: ${output.replace(/\n/g, ' | ')}` : ''}` +
      `; whole log: ${r.logLocation}${failure.after ?? ''}`,
    nonRetryable: true,
    ...(failure.details ? { details: failure.details } : {}),
  });
}

/**
 * The release's migrate command, then its status command (exit 0: nothing pending), with the schema read before and
 * after. Throws MigrationFailed (non-retryable) when either fails: the deploy fails before the release starts, the
 * pre-migration snapshot is kept.
 */
export async function migrateWithCommand(
  ctx: CommandContext,
  database: DatabaseSpec & { migrate: NonNullable<DatabaseSpec['migrate']> },
  snapshotId: string,
  /** Receives the record as soon as it exists, so that the state keeps it when a command fails. */
  keep: (record: MigrationRecord) => void = () => undefined,
): Promise<MigrationRecord> {
  const on = { platform: ctx.platform.target };
  const before = await act.readSchemaVersion(database.name, on);
  const record: MigrationRecord = {
    applied: [],
    version: before.migration,
    by: 'command',
    before,
    ...(database.compatibility ? { compatibility: database.compatibility } : {}),
  };
  keep(record);
  const migrated = await runCommand(ctx, { step: 'migrate', purpose: 'migrate', spec: database.migrate });
  record.command = recordOf(migrated.command, migrated.result);
  const kept = `; the database may be partly migrated: snapshot ${snapshotId} of before is kept (runbook rollback --restore-db ${snapshotId})`;
  failUnlessPassed(migrated, { type: 'MigrationFailed', what: 'the migrate command', after: kept, details: [record] });
  if (database.migrate.status) {
    const status = await runCommand(ctx, {
      step: 'migrate-status',
      purpose: 'migrate-status',
      spec: database.migrate.status,
    });
    record.status = recordOf(status.command, status.result);
    failUnlessPassed(status, {
      type: 'MigrationFailed',
      what: 'after the migration, the status command',
      after: `: it must exit 0 when nothing is pending${kept}`,
      details: [record],
    });
  }
  record.after = await act.readSchemaVersion(database.name, on);
  record.version = record.after.migration;
  return record;
}

/**
 * The smoke checks that are commands, in order, against `release` ({url} its address): each must exit 0. Throws
 * SmokeCheckFailed (non-retryable) at the first that does not.
 */
export async function runCommandSmokeChecks(
  ctx: CommandContext,
  checks: CommandSmokeCheck[],
  release: ReleaseRef,
  opts: { environment?: string; database?: ReleaseCommandRequest['database'] } = {},
): Promise<void> {
  const url = `${release.scheme ?? 'http'}://${release.host}:${release.port}`;
  for (const [i, check] of checks.entries()) {
    const ran = await runCommand(ctx, {
      step: `smoke-${i}-${opts.environment ?? ctx.plan.environment}`,
      purpose: 'smoke',
      spec: check,
      url,
      ...(opts.environment ? { environment: opts.environment } : {}),
      ...(opts.database ? { database: opts.database } : {}),
      ...(check.runFrom === 'worker' ? { workerCwd: dirOf(ctx.plan.source) } : {}),
    });
    failUnlessPassed(ran, {
      type: 'SmokeCheckFailed',
      what: `smoke check "${check.name}" failed on ${release.version}:`,
    });
  }
}

/** The folder of a file path (workflow code has no node:path). */
function dirOf(file: string): string {
  const i = file.lastIndexOf('/');
  return i > 0 ? file.slice(0, i) : '/';
}

/**
 * What the release history keeps of a deploy's migration: how, the schema before and after, whether it changed, and
 * the declared compatibility (a rollback across a breaking change is refused). No command output.
 */
export function historyOf(m: MigrationRecord) {
  return {
    by: m.by ?? 'folder',
    ...(m.dir ? { dir: m.dir } : {}),
    applied: m.applied,
    version: m.version,
    ...(m.before ? { before: m.before } : {}),
    ...(m.after ? { after: m.after } : {}),
    changed: m.by === 'command' ? m.before?.digest !== m.after?.digest : m.applied.length > 0,
    compatibility: m.compatibility ?? 'backward',
  };
}

/** A row of the release history as the rollback reads it (see ReleaseRecord in src/activities/history.ts). */
interface HistoryRow {
  version: string;
  workflowId: string;
  kind: string;
  snapshotId: string | null;
  details: Record<string, unknown>;
}

/**
 * The newest deploy that went live after `toVersion` (history newest first) and changed the schema in a way declared
 * breaking: an app-only rollback to `toVersion` would run it on a schema it may not understand. Undefined when none.
 */
export function breakingSince(history: HistoryRow[], toVersion: string): HistoryRow | undefined {
  for (const row of history) {
    if (row.version === toVersion) return undefined;
    const m = row.details.migrations as ReturnType<typeof historyOf> | undefined;
    if (row.kind === 'deploy' && m?.compatibility === 'breaking' && m.changed) return row;
  }
  return undefined;
}

/** Why an app-only rollback across `crossed` is refused, with the choices. */
export function breakingRollbackMessage(service: string, toVersion: string, crossed: HistoryRow): string {
  const m = crossed.details.migrations as ReturnType<typeof historyOf>;
  const schema = m.applied.length > 0 ? `applied ${m.applied.join(', ')}` : 'changed the schema';
  const restore = crossed.snapshotId
    ? `runbook rollback ${service} --to ${toVersion} --restore-db ${crossed.snapshotId} (its snapshot from before that migration: it needs the restore-database approval and loses the writes since)`
    : `runbook rollback ${service} --to ${toVersion} --restore-db <snapshot from before ${crossed.version}> (runbook snapshots ${service} lists them)`;
  return (
    `an app-only rollback of ${service} to ${toVersion} is refused: ${crossed.version} (${crossed.workflowId}) ${schema} ` +
    `with migrations declared breaking, which ${toVersion} may not work with. Choose: roll forward with a fixed version ` +
    `(runbook deploy ${service} --version <fixed>), or restore the database too: ${restore}`
  );
}

/**
 * `runbook backup`: a base backup of a service's database cluster now (the backupService workflow), the schedules
 * that take them (`backup.schedule` in runbook.yaml), and the list of what the pgBackRest repository holds.
 */
import { backupOf } from '../platforms/descriptors';
import {
  ScheduleAlreadyRunning,
  ScheduleNotFoundError,
  ScheduleOverlapPolicy,
  WorkflowFailedError,
} from '@temporalio/client';
import { UserError } from '../errors';
import { stanzaInfo } from '../platforms/single-host/pgbackrest';
import { defaultEnvironment, loadRunbookConfig, resolveService, runbookConfigPath } from '../runbook-config';
import { BACKUP_KINDS, backupScheduleId, type BackupInput, type BackupKind, type BackupResult } from '../shared/backup';
import { stackPgbackrest } from '../stack/postgres';
import { resolveStackSettings } from '../stack/settings';
import type { Command, Io, ParsedArgs } from './command';
import { configOption, envOption, homeOption, jsonOption, stringOpt } from './options';
import { withClient, workflowLink } from './temporal';

const SUBCOMMANDS = ['schedule', 'list'] as const;
type Sub = (typeof SUBCOMMANDS)[number] | 'run';
const OPTIONS_OF: Record<Sub, string[]> = {
  run: ['env', 'config', 'type', 'wait', 'json'],
  schedule: ['env', 'config', 'delete', 'json'],
  list: ['home', 'json'],
};
/** How late a missed scheduled backup may still start after a Temporal outage. */
const CATCHUP_WINDOW = '1h';

const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;

function planOf(values: ParsedArgs['values'], io: Io, service: string) {
  const config = loadRunbookConfig(runbookConfigPath(values.config as string | undefined, io.env));
  const environment = stringOpt(values, 'env') ?? defaultEnvironment(config, service);
  const plan = resolveService(config, service, environment);
  const backup = backupOf(plan);
  if (!backup) {
    throw new UserError(
      `${service}/${environment} has no backup: block in ${config.source}`,
      'add backup: { retention: { full: 2 }, schedule: { full: "0 2 * * 0", diff: "0 2 * * 1-6" } } to the service (docs/backups.md)',
    );
  }
  return { plan, environment, backup };
}

function typeOf(values: ParsedArgs['values']): BackupKind {
  const type = stringOpt(values, 'type') ?? 'incr';
  if (!(BACKUP_KINDS as readonly string[]).includes(type)) {
    throw new UserError(`backup: --type must be one of ${BACKUP_KINDS.join(', ')}, got ${JSON.stringify(type)}`);
  }
  return type as BackupKind;
}

async function runBackup(args: ParsedArgs, io: Io): Promise<number> {
  const [service, ...rest] = args.positionals;
  if (!service) throw new UserError('backup: give the service name', 'runbook backup --help');
  if (rest.length > 0) throw new UserError(`backup: unexpected argument(s) ${rest.join(' ')}`);
  const { values } = args;
  const { environment } = planOf(values, io, service);
  const input: BackupInput = { service, environment, type: typeOf(values) };
  return withClient(io.env, async (client, target) => {
    const workflowId = `backup-${service}-${environment}-${input.type}-${new Date().toISOString().replace(/[:.]/g, '')}`;
    const handle = await client.workflow.start('backupService', {
      taskQueue: target.taskQueue,
      workflowId,
      args: [input],
    });
    if (!values.wait) {
      io.out(
        values.json
          ? JSON.stringify({ workflowId, runId: handle.firstExecutionRunId })
          : `started ${workflowId}\n  ${workflowLink(target, workflowId)}`,
      );
      return 0;
    }
    try {
      const result = (await handle.result()) as BackupResult;
      if (values.json) io.out(JSON.stringify({ workflowId, ...result }));
      else {
        const b = result.backup;
        io.out(
          `backup ${b.label} (${b.type}) of ${service}/${environment}: ${mb(b.bytes)} database, ${mb(b.repoBytes)} in the repository, ${(b.durationMs / 1000).toFixed(1)} s, WAL ${b.walStart ?? '?'}..${b.walStop ?? '?'}`,
        );
        io.out(
          `  verify:  ${result.verified === 'skipped' ? 'skipped (backup.verify: false)' : result.verified.ok ? 'ok' : result.verified.problems.join('; ')}`,
        );
        io.out(`  expired: ${result.expired.length > 0 ? result.expired.join(', ') : 'nothing'}`);
      }
      return 0;
    } catch (err) {
      if (!(err instanceof WorkflowFailedError)) throw err;
      const inner = err.cause?.cause instanceof Error ? err.cause.cause : err.cause;
      io.err(`backup ${workflowId} failed: ${inner?.message ?? err.message}`);
      return 5;
    }
  });
}

async function scheduleBackups(args: ParsedArgs, io: Io): Promise<number> {
  const [, service, ...rest] = args.positionals;
  if (!service) throw new UserError('backup schedule: give the service name', 'runbook backup --help');
  if (rest.length > 0) throw new UserError(`backup schedule: unexpected argument(s) ${rest.join(' ')}`);
  const { values } = args;
  const { environment, backup } = planOf(values, io, service);
  const wanted = BACKUP_KINDS.filter((t) => backup.schedule?.[t] !== undefined);
  if (!values.delete && wanted.length === 0) {
    throw new UserError(
      `backup schedule: ${service}/${environment} has no backup.schedule in runbook.yaml`,
      'add backup.schedule: { full: "0 2 * * 0", diff: "0 2 * * 1-6" } (cron, UTC), or take one now: runbook backup ' +
        service,
    );
  }
  return withClient(io.env, async (client, target) => {
    const done: Record<string, string> = {};
    for (const type of BACKUP_KINDS) {
      const scheduleId = backupScheduleId(service, environment, type);
      const cron = backup.schedule?.[type];
      if (values.delete || cron === undefined) {
        try {
          await client.schedule.getHandle(scheduleId).delete();
          done[scheduleId] = 'deleted';
        } catch (err) {
          if (!(err instanceof ScheduleNotFoundError)) throw err;
        }
        continue;
      }
      const input: BackupInput = { service, environment, type };
      const action = {
        type: 'startWorkflow' as const,
        workflowType: 'backupService',
        taskQueue: target.taskQueue,
        workflowId: scheduleId, // Temporal appends the scheduled time
        args: [input],
      };
      const spec = { cronExpressions: [cron] };
      // pgBackRest takes one backup of a stanza at a time: a run still going when the next is due makes it skip
      const policies = { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: CATCHUP_WINDOW, pauseOnFailure: false };
      const note = `${type} backups of ${service}/${environment}, cron "${cron}" (UTC); set up with runbook backup schedule`;
      try {
        await client.schedule.create({ scheduleId, spec, action, policies, state: { note } });
        done[scheduleId] = `created: ${type}, cron "${cron}" (UTC)`;
      } catch (err) {
        if (!(err instanceof ScheduleAlreadyRunning)) throw err;
        await client.schedule
          .getHandle(scheduleId)
          .update((previous) => ({ ...previous, spec, action, policies, state: { ...previous.state, note } }));
        done[scheduleId] = `updated: ${type}, cron "${cron}" (UTC)`;
      }
    }
    if (values.json) io.out(JSON.stringify({ schedules: done }));
    else if (Object.keys(done).length === 0) io.out(`no backup schedule of ${service}/${environment} to change`);
    else for (const [id, what] of Object.entries(done)) io.out(`${id}: ${what}`);
    if (!values.json && !values.delete) io.out(`  Web UI: ${target.uiUrl}/namespaces/${target.namespace}/schedules`);
    return 0;
  });
}

async function listBackups(args: ParsedArgs, io: Io): Promise<number> {
  const [, service] = args.positionals;
  const settings = resolveStackSettings(io.env, args.values.home ? { home: String(args.values.home) } : {});
  if (settings.externalDatabaseUrl) {
    throw new UserError('backup list: the stack uses an external DATABASE_URL; it has no pgBackRest repository');
  }
  const info = await stanzaInfo(stackPgbackrest(settings));
  const backups = info.backups.filter(
    (b) => !service || b.annotation['runbook-service'] === service || !b.annotation['runbook-service'],
  );
  if (args.values.json) {
    io.out(JSON.stringify({ status: info.status, archive: info.archive ?? null, backups }));
    return 0;
  }
  io.out(
    `pgBackRest repository ${stackPgbackrest(settings).paths.repo}: ${info.status.message}; WAL ${info.archive ? `${info.archive.min}..${info.archive.max}` : 'none'}`,
  );
  io.out('(one stanza for the whole cluster: every service on it shares these backups; the service is who asked)');
  for (const b of backups) {
    io.out(
      `${b.label.padEnd(34)} ${b.type.padEnd(4)} ${new Date(b.stoppedAtMs).toISOString()} ${mb(b.bytes).padStart(10)} db ${mb(b.repoBytes).padStart(10)} repo  ${((b.stoppedAtMs - b.startedAtMs) / 1000).toFixed(0)} s  WAL ${b.walStart ?? '?'}..${b.walStop ?? '?'}  ${b.annotation['runbook-service'] ?? ''}`,
    );
  }
  if (backups.length === 0) io.out('no backups yet: runbook backup <service> --type full');
  return 0;
}

export const backupCommand: Command = {
  name: 'backup',
  connectsToTemporal: true,
  summary:
    "Base backup of a service's database cluster with pgBackRest (full/diff/incr), then verify and expiry.\n" +
    'Also: backup schedule (Temporal Schedules from backup.schedule), backup list.',
  usage:
    'backup <service> [--env <e>] [--type full|diff|incr] [--wait] [--json]\n' +
    '       runbook backup schedule <service> [--env <e>] [--delete] [--json]\n' +
    '       runbook backup list [<service>] [--home <dir>] [--json]',
  examples: [
    'runbook backup shop --env production --type full --wait',
    'runbook backup schedule shop --env production',
    'runbook backup list shop',
  ],
  details:
    "pgBackRest backs up the whole PostgreSQL cluster of the stack (one stanza): a service's backup is a backup of the\n" +
    'cluster that holds its database, and retention expires a backup only when every service with backup: in the\n' +
    'environment would expire it (docs/backups.md). Each backup is a workflow (backupService): the policy from the\n' +
    "worker's runbook.yaml, the backup (type, size, duration, WAL range recorded), pgbackrest verify (backup.verify),\n" +
    'expiry (backup.retention). `backup schedule` creates one Temporal Schedule per type in backup.schedule (overlap\n' +
    `SKIP, catch-up window ${CATCHUP_WINDOW}) and deletes those no longer in it. --type defaults to incr (pgBackRest takes\n` +
    'a full when there is none). Exit codes (with --wait): 0 done, 5 failed, 2 usage error.',
  options: {
    ...envOption,
    ...configOption,
    ...homeOption,
    type: { type: 'string', description: 'full, diff or incr (default incr)' },
    wait: { type: 'boolean', description: 'wait for the backup and print its result' },
    delete: { type: 'boolean', description: "schedule: delete the service's backup schedules" },
    ...jsonOption,
  },
  async run(args, io) {
    const first = args.positionals[0];
    const sub: Sub = (SUBCOMMANDS as readonly string[]).includes(first ?? '') ? (first as Sub) : 'run';
    const extra = Object.keys(args.values).filter((k) => args.values[k] !== undefined && !OPTIONS_OF[sub].includes(k));
    if (extra.length > 0) {
      throw new UserError(
        `backup${sub === 'run' ? '' : ` ${sub}`}: ${extra.map((k) => `--${k}`).join(', ')} ${extra.length > 1 ? 'do' : 'does'} not apply here`,
        'runbook backup --help',
      );
    }
    if (sub === 'schedule') return scheduleBackups(args, io);
    if (sub === 'list') return listBackups(args, io);
    return runBackup(args, io);
  },
};

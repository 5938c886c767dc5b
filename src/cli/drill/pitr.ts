/** `runbook drill <service> --to-time <ts>`: a point-in-time drill (the pitrDrill workflow) from pgBackRest. */
import { backupOf } from '../../platforms/descriptors';
import { randomBytes } from 'node:crypto';
import { WorkflowFailedError } from '@temporalio/client';
import { UserError } from '../../errors';
import { slug } from '../../shared/ids';
import type { PitrDrillInput, PitrDrillResult } from '../../shared/backup';
import type { Io, ParsedArgs } from '../command';
import { positional, stringOpt } from '../options';
import { resolvePlan } from '../plan';
import { withClient, workflowLink } from '../temporal';

export async function runPitrDrill(args: ParsedArgs, io: Io): Promise<number> {
  const service = positional(args, 'service name', 'drill');
  const { values } = args;
  for (const other of ['snapshot', 'fresh', 'signoff', 'version', 'dry-run'] as const) {
    if (values[other] !== undefined) throw new UserError(`drill: --to-time and --${other} do not go together`);
  }
  const raw = stringOpt(values, 'to-time') ?? '';
  const toTimeMs = Date.parse(raw);
  if (!/^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:\d\d)$/.test(raw) || !Number.isFinite(toTimeMs)) {
    throw new UserError(
      `drill: --to-time must be an ISO 8601 time with its zone, e.g. 2026-12-07T10:15:00Z, got ${JSON.stringify(raw)}`,
    );
  }
  if (toTimeMs > Date.now()) throw new UserError(`drill: --to-time ${raw} is in the future`);
  const plan = resolvePlan(values, io.env, service, stringOpt(values, 'env'));
  if (!backupOf(plan)) {
    throw new UserError(
      `drill --to-time: ${plan.service}/${plan.environment} has no backup: block (no pgBackRest backups to restore from)`,
      'add backup: { retention: { full: 2 } } to the service and take one: runbook backup <service> --type full (docs/backups.md)',
    );
  }
  const input: PitrDrillInput = { service: plan.service, environment: plan.environment, toTimeMs };
  return withClient(io.env, async (client, target) => {
    const workflowId = `drill-pitr-${slug(plan.service)}-${slug(plan.environment)}-${randomBytes(3).toString('hex')}`;
    const handle = await client.workflow.start('pitrDrill', { taskQueue: target.taskQueue, workflowId, args: [input] });
    if (!values.wait) {
      io.out(
        values.json
          ? JSON.stringify({ workflowId })
          : `started ${workflowId}: point-in-time drill of ${plan.service}/${plan.environment} to ${raw}\n  Web UI: ${workflowLink(target, workflowId)}`,
      );
      return 0;
    }
    try {
      const r = (await handle.result()) as PitrDrillResult;
      if (values.json) io.out(JSON.stringify({ workflowId, ...r }));
      else {
        io.out(`point-in-time drill ${workflowId}: passed`);
        io.out(
          `  restored:  ${raw} from backup ${r.backup} in ${(r.restoreMs / 1000).toFixed(1)} s (${r.tables} tables)`,
        );
        io.out(
          `  RPO:       ${r.rpoMs === null ? 'n/a (no commit replayed)' : `${(r.rpoMs / 1000).toFixed(1)} s`} (last replayed commit ${r.lastCommitMs === null ? 'none' : new Date(r.lastCommitMs).toISOString()})`,
        );
        io.out(`  copy:      ${r.target} removed`);
      }
      return 0;
    } catch (err) {
      if (!(err instanceof WorkflowFailedError)) throw err;
      const inner = err.cause?.cause instanceof Error ? err.cause.cause : err.cause;
      io.err(`drill ${workflowId} failed: ${inner?.message ?? err.message}`);
      return 5;
    }
  });
}

/** `runbook drill <service>`: start a restore drill now, and with --wait follow it to its verdict. */
import { randomBytes } from 'node:crypto';
import { UserError } from '../../errors';
import { slug } from '../../shared/ids';
import { drillRequestSchema, SNAPSHOT_ID } from '../../shared/request';
import type { restoreDrill } from '../../workflows';
import type { Io, ParsedArgs } from '../command';
import { dryRun } from '../dry-run';
import { followDrill, reportTaken } from '../follow';
import { positional, signedRequest, stringOpt, whoAmI } from '../options';
import { checkedRequest, previewed, resolvePlan } from '../plan';
import { runningRunbooks, withClient, workflowLink } from '../temporal';
import { drillPlan, signoffOf } from './input';

export async function runDrill(args: ParsedArgs, io: Io): Promise<number> {
  const service = positional(args, 'service name', 'drill');
  const { values } = args;
  const snapshotId = stringOpt(values, 'snapshot');
  if (snapshotId && values.fresh)
    throw new UserError('drill: give --snapshot <id> or --fresh, not both', 'runbook drill --help');
  if (snapshotId && !SNAPSHOT_ID.test(snapshotId))
    throw new UserError(
      `drill: --snapshot ${JSON.stringify(snapshotId)} is not a snapshot id`,
      'runbook drill history lists the snapshots drills used',
    );
  const requestedBy = whoAmI(values, io.env);
  const what = snapshotId ?? (values.fresh ? 'a fresh snapshot' : 'the newest snapshot');
  if (values['dry-run']) {
    return dryRun(
      io,
      args,
      'drill',
      service,
      (environment) => `restore drill of ${service}/${environment} (${what}), requested by ${requestedBy}`,
      (plan) => signoffOf(values, drillPlan(plan).approvals.approvers),
    );
  }
  const plan = drillPlan(resolvePlan(values, io.env, service, stringOpt(values, 'env')));
  const signoffTimeoutMs = signoffOf(values, plan.approvals.approvers);
  const input = checkedRequest(drillRequestSchema, 'drill', {
    service: plan.service,
    environment: plan.environment,
    requestedBy,
    ...(snapshotId ? { snapshotId } : {}),
    ...(values.fresh ? { fresh: true } : {}),
    ...(signoffTimeoutMs ? { signoffTimeoutMs } : {}),
    ...(stringOpt(values, 'version') ? { version: stringOpt(values, 'version') } : {}),
    ...(stringOpt(values, 'reason') ? { reason: stringOpt(values, 'reason') } : {}),
    ...previewed(plan),
  });
  return withClient(io.env, async (client, target) => {
    const running = await runningRunbooks(client, plan.service, plan.environment, ['drill']);
    if (running.length > 0) {
      throw new UserError(
        `a drill of ${plan.service}/${plan.environment} is running: ${running.join(', ')}`,
        `wait for it (runbook watch ${running[0]}) or cancel it (runbook cancel ${running[0]})`,
      );
    }
    const workflowId = `drill-${slug(plan.service)}-${slug(plan.environment)}-${randomBytes(3).toString('hex')}`;
    const signed = await signedRequest(input, { workflowId, kind: 'drill', values, io });
    const handle = await client.workflow.start<typeof restoreDrill>('restoreDrill', {
      taskQueue: target.taskQueue,
      workflowId,
      args: [signed],
    });
    if (!values.json) {
      io.out(`started ${workflowId}: restore drill of ${plan.service}/${plan.environment} (${what})`);
      io.out(`  watch:  runbook watch ${workflowId}`);
      io.out(`  Web UI: ${workflowLink(target, workflowId)}`);
    }
    if (!values.wait)
      return reportTaken(io, handle, Boolean(values.json), { service: plan.service, environment: plan.environment });
    return followDrill(handle, io, Boolean(values.json));
  });
}

/** What `drill` and `drill schedule` both check of the plan, and the sign-off timeout they put into the request. */
import { UserError } from '../../errors';
import type { ResolvedService } from '../../shared/service-plan';
import type { ParsedArgs } from '../command';
import { durationOpt } from '../options';

/**
 * The service's plan, when a drill can run on it.
 * @throws UserError for a service without a database: there is nothing to restore.
 */
export function drillPlan(plan: ResolvedService): ResolvedService {
  if (!plan.database) {
    throw new UserError(
      `${plan.service}/${plan.environment} has no database in runbook.yaml: there is nothing to restore`,
      'add a database section to the service',
    );
  }
  return plan;
}

/**
 * The --signoff timeout in milliseconds (undefined: the drill ends unsigned).
 * @throws UserError for a bad duration, or a timeout when the service has no approvers to sign off.
 */
export function signoffOf(values: ParsedArgs['values'], approvers: string[]): number | undefined {
  const timeoutMs = durationOpt(values, 'signoff', 1_000, 'drill');
  if (timeoutMs !== undefined && approvers.length === 0) {
    throw new UserError(
      'drill: --signoff needs approvers, and the service has none',
      'set approvals.approvers in runbook.yaml',
    );
  }
  return timeoutMs;
}

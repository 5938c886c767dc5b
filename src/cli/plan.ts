import { UserError } from '../errors';
import type { ResolvedService } from '../runbook-config';
import type { ServicePlan } from '../shared/deploy';

/** The plan a deploy or rollback workflow takes: the resolved service, on a platform this version runs. */
export function toServicePlan(s: ResolvedService): ServicePlan {
  if (s.platform !== 'single-host') {
    throw new UserError(
      `${s.service}/${s.environment} uses platform ${s.platform}, which this version cannot deploy yet`,
      'use platform: single-host',
    );
  }
  return s;
}

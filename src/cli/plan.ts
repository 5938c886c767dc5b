import { UserError } from '../errors';
import { defaultEnvironment, loadRunbookConfig, resolveService, runbookConfigPath } from '../runbook-config';
import type { ServicePlan } from '../shared/deploy';
import type { ResolvedService, SingleHostService } from '../shared/service-plan';
import type { ParsedArgs } from './command';

/**
 * The plan a deploy, rollback or drill workflow takes: `service` in `environment` (default: --env, else the first
 * environment the service lists) from the runbook.yaml of --config, RUNBOOK_CONFIG or ./runbook.yaml.
 * @throws UserError (RunbookConfigError) for a missing or invalid file, an unknown service or environment.
 */
export function resolvePlan(
  values: ParsedArgs['values'],
  env: NodeJS.ProcessEnv,
  service: string,
  environment = values.env as string | undefined,
): ServicePlan {
  const config = loadRunbookConfig(runbookConfigPath(values.config as string | undefined, env));
  return resolveService(config, service, environment ?? defaultEnvironment(config, service));
}

/** The plan of a command that runs processes on this host itself (the demo); refuses other platforms. */
export function singleHostPlan(s: ResolvedService, command: string): SingleHostService {
  if (s.platform !== 'single-host') {
    throw new UserError(
      `${command}: ${s.service}/${s.environment} uses platform ${s.platform}; ${command} runs single-host services only`,
    );
  }
  return s;
}

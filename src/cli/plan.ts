import type { z } from 'zod';
import { UserError } from '../errors';
import {
  defaultEnvironment,
  loadRunbookConfig,
  planDigest,
  resolveService,
  runbookConfigPath,
} from '../runbook-config';
import { parseRequest } from '../shared/request';
import type { ResolvedService } from '../shared/service-plan';
import type { ParsedArgs } from './command';

/**
 * The plan the operator sees: `service` in `environment` (default: --env, else the first environment the service
 * lists) from the runbook.yaml of --config, RUNBOOK_CONFIG or ./runbook.yaml. Its digest goes into the request; the
 * worker runs the plan of its own config, and refuses the request when that one is different.
 * @throws UserError (RunbookConfigError) for a missing or invalid file, an unknown service or environment.
 */
export function resolvePlan(
  values: ParsedArgs['values'],
  env: NodeJS.ProcessEnv,
  service: string,
  environment = values.env as string | undefined,
): ResolvedService {
  const config = loadRunbookConfig(runbookConfigPath(values.config as string | undefined, env));
  return resolveService(config, service, environment ?? defaultEnvironment(config, service));
}

/** The operator's own plan, for the comparison of --dry-run, or why there is none. */
export type LocalPlan = { plan: ResolvedService } | { error: UserError };

/**
 * For --dry-run: the local plan, or why there is none (the worker's plan is shown either way), and the environment
 * to ask the worker about.
 * @throws UserError when there is no local config to take the default environment from and --env is not given.
 */
export function localPlanFor(
  values: ParsedArgs['values'],
  env: NodeJS.ProcessEnv,
  service: string,
  command: string,
): { local: LocalPlan; environment: string } {
  const given = values.env as string | undefined;
  try {
    const plan = resolvePlan(values, env, service, given);
    return { local: { plan }, environment: plan.environment };
  } catch (err) {
    if (!(err instanceof UserError)) throw err;
    if (!given) throw new UserError(`${command} --dry-run: ${err.message}`, `${err.fix ?? ''}; or give --env`);
    return { local: { error: err }, environment: given };
  }
}

/** What a request carries of the plan the operator sees: its digest, and its fields' (the worker names the ones that differ). */
export function previewed(plan: ResolvedService): { configDigest: string; fieldDigests: Record<string, string> } {
  const { digest, fieldDigests } = planDigest(plan);
  return { configDigest: digest, fieldDigests };
}

/**
 * The request, checked with the workflow's own schema before anything starts.
 * @throws UserError naming each problem (a reason over 500 characters, a name that is not one).
 */
export function checkedRequest<S extends z.ZodType>(schema: S, command: string, request: unknown): z.output<S> {
  const parsed = parseRequest(schema, command, request);
  if (!parsed.ok) throw new UserError(`${command}: ${parsed.message}`, `runbook ${command} --help`);
  return parsed.request;
}

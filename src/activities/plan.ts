import { ApplicationFailure } from '@temporalio/activity';
import { UserError, errorMessage } from '../errors';
import { RunbookConfigError, loadRunbookConfig, resolveService } from '../runbook-config';
import { differingFields, planDigest } from '../runbook-config/digest';
import {
  PLAN_DIGEST_MISMATCH,
  PLAN_NOT_FOUND,
  RUNBOOK_CONFIG_UNUSABLE,
  type PlanRequest,
  type ResolvedPlan,
} from '../shared/request';
import { NAME_PATTERN } from '../shared/service-plan';

export interface PlanActivityDeps {
  /**
   * The runbook config this worker trusts: the file named by RUNBOOK_CONFIG in its own environment (docs/deploy.md
   * says why). Read on every request, so that deploying a new revision of the checkout takes effect without a
   * restart; a runbook's plan, once resolved, is in its history and does not change. Undefined: the worker has none.
   */
  runbookConfig: string | undefined;
}

/** The most differing fields a refusal names. */
const MAX_NAMED_FIELDS = 20;

const short = (digest: string) => `${digest.slice(0, 19)}…`;

/** What a caller runs to see the worker's plan. */
function dryRun(req: PlanRequest): string {
  const version = req.kind === 'deploy' ? ' --version <version>' : '';
  return `runbook ${req.kind ?? 'deploy'} ${req.service} --env ${req.environment}${version} --dry-run`;
}

/** The activity that turns a request into the plan the worker runs: the only way a plan enters a new runbook. */
export function createPlanActivities({ runbookConfig }: PlanActivityDeps) {
  return {
    /**
     * The plan of `service` in `environment` from the worker's runbook config, with its digest (the result is
     * recorded in the workflow's history). With `configDigest`, refuses a plan that is not the one the caller
     * previewed, naming the fields that differ (from `fieldDigests`).
     * Throws (all non-retryable) RunbookConfigUnusable (no config, unreadable, invalid), PlanNotFound (unknown
     * service or environment, in the config's own words) and PlanDigestMismatch.
     */
    async resolvePlan(req: PlanRequest): Promise<ResolvedPlan> {
      if (!NAME_PATTERN.test(String(req?.service)) || !NAME_PATTERN.test(String(req?.environment))) {
        throw ApplicationFailure.create({
          type: PLAN_NOT_FOUND,
          message: 'resolvePlan needs a service and an environment name',
          nonRetryable: true,
        });
      }
      if (!runbookConfig) {
        throw ApplicationFailure.create({
          type: RUNBOOK_CONFIG_UNUSABLE,
          message:
            'this worker has no runbook config (RUNBOOK_CONFIG is not set in its environment), so it runs no deploy, ' +
            'rollback or drill; fix: start it with RUNBOOK_CONFIG=<the reviewed runbook.yaml> (runbook up --config <file>)',
          nonRetryable: true,
        });
      }
      let config;
      try {
        config = loadRunbookConfig(runbookConfig);
      } catch (err) {
        throw ApplicationFailure.create({
          type: RUNBOOK_CONFIG_UNUSABLE,
          message: `the worker's runbook config cannot be used: ${describe(err)}`,
          nonRetryable: true,
        });
      }
      let plan;
      try {
        plan = resolveService(config, req.service, req.environment);
      } catch (err) {
        throw ApplicationFailure.create({
          type:
            err instanceof UserError && !(err instanceof RunbookConfigError) ? PLAN_NOT_FOUND : RUNBOOK_CONFIG_UNUSABLE,
          message: `the worker's runbook config: ${describe(err)}`,
          nonRetryable: true,
        });
      }
      const { digest, fieldDigests } = planDigest(plan);
      if (req.configDigest !== undefined && req.configDigest !== digest) {
        const fields = req.fieldDigests ? differingFields(fieldDigests, req.fieldDigests) : [];
        const named =
          fields.length === 0
            ? 'the plan differs'
            : `${fields.slice(0, MAX_NAMED_FIELDS).join(', ')}${fields.length > MAX_NAMED_FIELDS ? ` and ${fields.length - MAX_NAMED_FIELDS} more` : ''} ${fields.length === 1 ? 'differs' : 'differ'}`;
        throw ApplicationFailure.create({
          type: PLAN_DIGEST_MISMATCH,
          message:
            `the plan of ${req.service}/${req.environment} in the worker's runbook config (${config.source}) is not the one ` +
            `you previewed: ${named} (the worker's ${short(digest)}, yours ${short(req.configDigest)}); nothing was ` +
            `started or changed. Update your runbook.yaml to the reviewed config the worker runs (pull it), compare with ` +
            `\`${dryRun(req)}\`, then run the command again`,
          nonRetryable: true,
          details: [{ fields, digest, previewed: req.configDigest }],
        });
      }
      return { plan, digest, fieldDigests, source: config.source };
    },
  };
}

function describe(err: unknown): string {
  if (err instanceof UserError) return err.fix ? `${err.message}; fix: ${err.fix}` : err.message;
  return errorMessage(err);
}

import { z } from 'zod';
import { requestSignatureSchema } from './signed';
import { MIGRATION_COMPATIBILITY, NAME_HINT, NAME_PATTERN, type ResolvedService } from './service-plan';

/**
 * What a caller may ask of a runbook: the REQUEST (which service, which environment, which version, who, why, and the
 * digest of the plan the caller previewed). It never carries policy: gates, approvers, commands, paths and endpoints
 * come from the runbook config that the worker trusts (the resolvePlan activity), so a forged start cannot change
 * them. Workflow-safe: zod schemas and plain types; the workflows, the worker and the CLI validate with the same ones.
 */

/** Failure types of a refused request (non-retryable: the same request is refused again). */
export const INVALID_REQUEST = 'InvalidRequest';
/** The worker's plan is not the one the caller previewed. */
export const PLAN_DIGEST_MISMATCH = 'PlanDigestMismatch';
/** The worker's runbook config has no such service, or the service no such environment. */
export const PLAN_NOT_FOUND = 'PlanNotFound';
/** The worker has no runbook config, or cannot read it, or it is invalid. */
export const RUNBOOK_CONFIG_UNUSABLE = 'RunbookConfigUnusable';

/** A release version: it names a folder (single-host) or an image tag (aws-ecs). */
export const VERSION_PATTERN = /^(?!.*\.\.)[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
/** A snapshot id (`shop-production-pre-migrate-1a2b3c4d`). */
export const SNAPSHOT_ID = /^[a-z0-9][a-z0-9_-]{0,62}$/;
/** Who asked: a user name (`dave`, `dave@example.com`) or a schedule (`schedule:drill-shop-production`). */
export const REQUESTER_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._@:-]{0,63}$/;
/** The digest of a resolved plan: sha256 over its canonical JSON (src/runbook-config/digest.ts). */
export const DIGEST_PATTERN = /^sha256:[0-9a-f]{64}$/;
/** A field of a plan (`approvals.gates`) and the first 16 hex digits of the sha256 of its canonical JSON. */
const FIELD_PATTERN = /^[A-Za-z][A-Za-z0-9]{0,40}(\.[A-Za-z][A-Za-z0-9]{0,40})?$/;
const FIELD_DIGEST_PATTERN = /^[0-9a-f]{16}$/;
export const MAX_REASON = 500;
const MAX_FIELDS = 100;
/** The longest sign-off wait a drill request may ask for. */
const MAX_SIGNOFF_MS = 30 * 86_400_000;

const name = (what: string) => z.string().max(63).regex(NAME_PATTERN, `must be ${what} name: ${NAME_HINT}`);
const version = z
  .string()
  .max(128)
  .regex(VERSION_PATTERN, "must be a version of letters, digits, '.', '_' and '-' (at most 128, no '..'), e.g. v2");
const snapshotId = z
  .string()
  .max(63)
  .regex(SNAPSHOT_ID, 'must be a snapshot id like shop-production-pre-migrate-1a2b3c4d');

/** The per-field digests of the previewed plan: they let the worker say which fields differ. */
export const fieldDigestsSchema = z
  .record(z.string().regex(FIELD_PATTERN, 'must name a field of the plan, e.g. approvals.gates'), z.string())
  .refine((fields) => Object.keys(fields).length <= MAX_FIELDS, `must name at most ${MAX_FIELDS} fields`)
  .refine((fields) => Object.values(fields).every((d) => FIELD_DIGEST_PATTERN.test(d)), 'must map to 16 hex digits');

const common = {
  service: name('a service'),
  environment: name('an environment'),
  requestedBy: z
    .string()
    .max(64, 'must be at most 64 characters')
    .regex(REQUESTER_PATTERN, "must be a user name (letters, digits, '.', '_', '@', ':', '-'; at most 64)"),
  reason: z.string().max(MAX_REASON, `must be at most ${MAX_REASON} characters`).optional(),
  configDigest: z
    .string()
    .max(71)
    .regex(DIGEST_PATTERN, 'must be the sha256 digest of the plan you previewed: sha256:<64 hex digits>'),
  fieldDigests: fieldDigestsSchema.optional(),
  /** The requester's SSH signature of the request (src/shared/signed.ts requestMessage). */
  signed: requestSignatureSchema.optional(),
};

/** Start `version` of a service in an environment (the deployService workflow). */
export const deployRequestSchema = z.strictObject({
  ...common,
  version,
  /**
   * What the requester declares of this version's migrations, over the environment's `database.compatibility`:
   * `breaking` makes an app-only rollback across this deploy refused (recorded in the history).
   */
  migrations: z
    .enum(MIGRATION_COMPATIBILITY, { error: () => `must be ${MIGRATION_COMPATIBILITY.join(' or ')}` })
    .optional(),
});
export type DeployRequest = z.output<typeof deployRequestSchema>;

/** Go back to an earlier release, and with `restoreSnapshotId` restore the database too (rollbackService). */
export const rollbackRequestSchema = z.strictObject({
  ...common,
  /** The version to go back to; default: the newest release that went live before the current one. */
  toVersion: version.optional(),
  /** Restore the service's database from this snapshot (destructive: approval with four-eyes). */
  restoreSnapshotId: snapshotId.optional(),
});
export type RollbackRequest = z.output<typeof rollbackRequestSchema>;

/** Restore a snapshot into a scratch database and prove the release runs on it (restoreDrill). */
export const drillRequestSchema = z
  .strictObject({
    ...common,
    /** Restore this snapshot; default: the newest snapshot of the service and environment. */
    snapshotId: snapshotId.optional(),
    /** Take a snapshot of the live database now and restore that one (the whole path, the backup included). */
    fresh: z.boolean().optional(),
    /**
     * Wait this long for a reviewer's sign-off (the plan's approvers, four-eyes as configured) once the app is
     * ready; without a decision the drill is recorded as unsigned, not failed. Absent: no sign-off.
     */
    signoffTimeoutMs: z
      .number()
      .int()
      .min(1_000, 'must be at least 1000 (1 s)')
      .max(MAX_SIGNOFF_MS, 'must be at most 30 days')
      .optional(),
    /** The release to start on the restored copy; default: the version live now (else the last that went live). */
    version: version.optional(),
  })
  .refine((r) => !(r.snapshotId && r.fresh), { message: 'give snapshotId or fresh, not both', path: ['fresh'] });
export type DrillRequest = z.output<typeof drillRequestSchema>;

/** Which plan the worker would run (the planPreview workflow, `runbook deploy --dry-run`). */
export const planPreviewRequestSchema = z.strictObject({
  service: common.service,
  environment: common.environment,
});
export type PlanPreviewRequest = z.output<typeof planPreviewRequestSchema>;

/** What the resolvePlan activity is asked: the plan of a service in an environment, and what the caller previewed. */
export interface PlanRequest {
  service: string;
  environment: string;
  /** The runbook asking (its wording in a refusal); absent: a preview. */
  kind?: 'deploy' | 'rollback' | 'drill';
  /** The digest the caller previewed; absent in a preview (nothing is compared). */
  configDigest?: string;
  fieldDigests?: Record<string, string>;
}

/** The plan the worker resolved from its runbook config: recorded in the history as the activity's result. */
export interface ResolvedPlan {
  plan: ResolvedService;
  /** sha256 over the plan's canonical JSON. */
  digest: string;
  /** The digest of each field (`approvals.gates`: first 16 hex digits). */
  fieldDigests: Record<string, string>;
  /** The worker's runbook config the plan came from. */
  source: string;
}

export type ParsedRequest<T> = { ok: true; request: T } | { ok: false; message: string };

/**
 * Validates a request. A `plan` in it is refused with its own message: the plan is the worker's to resolve, whatever a
 * caller sends. The message names each problem (at most ten, each cut to 200 characters: it goes into the history).
 */
export function parseRequest<S extends z.ZodType>(schema: S, what: string, input: unknown): ParsedRequest<z.output<S>> {
  if (typeof input === 'object' && input !== null && 'plan' in input) {
    return {
      ok: false,
      message:
        `a ${what} request carries no plan: the worker resolves the plan of the service and environment from its own ` +
        'runbook config, and gates, approvers, commands, paths and endpoints never come from a request; send ' +
        '{ service, environment, requestedBy, configDigest, ... } as `runbook` does',
    };
  }
  const parsed = schema.safeParse(input);
  if (parsed.success) return { ok: true, request: parsed.data };
  const issues = parsed.error.issues;
  const problems = issues
    .slice(0, 10)
    .map((i) => `${i.path.map(String).join('.') || '(request)'}: ${i.message}`.slice(0, 200));
  if (issues.length > 10) problems.push(`and ${issues.length - 10} more`);
  return { ok: false, message: `invalid ${what} request: ${problems.join('; ')}` };
}

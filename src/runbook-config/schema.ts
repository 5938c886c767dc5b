/**
 * The zod schemas of runbook.yaml: the file, and one service after merging an environment's overrides, block by
 * block. Each field is checked on its own here; relations between fields are in cross-checks.ts.
 */
import { z } from 'zod';
import {
  PLATFORMS,
  APPROVAL_GATES,
  TIMEOUT_ACTIONS,
  INCONCLUSIVE_ACTIONS,
  BASELINE_MODES,
  HTTP_METHODS,
  RELEASE_PLACEHOLDERS,
  COMMAND_PLACEHOLDERS,
  COMMAND_SOURCES,
  MIGRATION_COMPATIBILITY,
  type CommandSpec,
  type PortRange,
  type TrafficStep,
  type AnalysisSpec,
  type CompareSpec,
  type CutoffSpec,
  type RateCutoffSpec,
  type ApprovalPolicy,
  type DrillSpec,
  type BackupSpec,
} from '../shared/service-plan';
import { DEFAULT_RATE_CUTOFF } from '../shared/cutoff-rate';
import { awsEcsSchema } from './aws-ecs-schema';
import { duration } from './durations';
import { SECRET_WHY, describeValue, quoteHint, unlessMissing } from './problems';
import {
  ENV_VAR,
  intIn,
  portSchema,
  rate,
  releaseEnvKey,
  statusSchema,
  template,
  urlPath,
  approverName,
  userName,
  weightSchema,
} from './values';

export const platformSchema = z.enum(PLATFORMS);
export const gateSchema = z.enum(APPROVAL_GATES);

const listenSchema = z.strictObject({ port: portSchema }).describe('e.g. { port: 18080 }');

export const releaseSchema = z
  .strictObject({
    command: z
      .array(template(RELEASE_PLACEHOLDERS).min(1, 'must not be empty'), {
        error: unlessMissing(
          (v) => `must be a list of arguments (argv, no shell), e.g. ["node", "server.js"], got ${describeValue(v)}`,
        ),
      })
      .min(1, 'must list at least the program to run, e.g. ["node", "server.js"]')
      .describe('the argv to start a release, e.g. ["node", "server.js"]'),
    cwd: template(['version']).min(1, 'must not be empty').describe('the folder to start a release in'),
    env: z
      .record(
        releaseEnvKey,
        z
          .union([z.string(), z.number(), z.boolean()], {
            error: unlessMissing((v) => `must be a string, number or boolean, got ${describeValue(v)}${quoteHint(v)}`),
          })
          .transform(String)
          .pipe(template(RELEASE_PLACEHOLDERS)),
      )
      .default({}),
    portRange: z
      .tuple([portSchema, portSchema], {
        error: unlessMissing((v) => `must be [low, high], e.g. [18100, 18199], got ${describeValue(v)}`),
      })
      .refine(([low, high]) => low <= high, {
        error: (iss) => `must be [low, high] with low <= high, got ${describeValue(iss.input)}`,
      })
      .transform(([min, max]): PortRange => ({ min, max }))
      .describe('e.g. [18100, 18199]'),
    drain: duration().default(5000),
  })
  .describe('how to start a release: { command, cwd, env, portRange, drain }');

const probeSchema = z
  .strictObject({ path: urlPath, expectStatus: statusSchema })
  .describe('e.g. { path: /health, expectStatus: 200 }');

export const healthSchema = z
  .strictObject({
    liveness: probeSchema,
    readiness: probeSchema,
    timeout: duration({ positive: true }).default(2000),
    deadline: duration({ positive: true }).default(60_000),
  })
  .describe('{ liveness, readiness, timeout, deadline }');

/** A command's argv (no shell) whose arguments may hold `placeholders`. */
const argvSchema = (placeholders: readonly string[], example: string) =>
  z
    .array(template(placeholders).min(1, 'must not be empty'), {
      error: unlessMissing(
        (v) => `must be a list of arguments (argv, no shell), e.g. ${example}, got ${describeValue(v)}`,
      ),
    })
    .min(1, `must list at least the program to run, e.g. ${example}`);

/** `{ command, timeout }` of a command the release brings; `timeout` defaults to `defaultTimeoutMs`. */
const commandSchema = (placeholders: readonly string[], example: string, defaultTimeoutMs: number) =>
  z
    .strictObject({
      command: argvSchema(placeholders, example),
      timeout: duration({ positive: true }).default(defaultTimeoutMs),
    })
    .describe(`{ command: ${example}, timeout }`)
    .transform((c): CommandSpec => ({ command: c.command, timeoutMs: c.timeout }));

const commandSmokeSchema = z
  .strictObject({
    name: z.string().min(1, 'must not be empty'),
    command: argvSchema(COMMAND_PLACEHOLDERS, '[npx, tsx, scripts/smoke.ts, "{url}"]'),
    timeout: duration({ positive: true }).default(120_000),
    runFrom: z
      .enum(COMMAND_SOURCES, {
        error: unlessMissing(
          (v) =>
            `must be release (run from the release being deployed) or worker (on the worker, in runbook.yaml's folder), got ${describeValue(v)}`,
        ),
      })
      .default('release'),
  })
  .describe('e.g. { name: smoke script, command: [npx, tsx, scripts/smoke.ts, "{url}"], timeout: 2m }')
  .transform((c) => ({ name: c.name, command: c.command, timeoutMs: c.timeout, runFrom: c.runFrom }));

const httpSmokeSchema = z
  .strictObject({
    name: z.string().min(1, 'must not be empty'),
    method: z.enum(HTTP_METHODS).default('GET'),
    path: urlPath,
    body: z.json().optional(),
    expectStatus: statusSchema,
    bodyMatches: z
      .string()
      .refine(
        (source) => {
          try {
            new RegExp(source);
            return true;
          } catch {
            return false;
          }
        },
        { error: (iss) => `must be a valid regular expression, got ${describeValue(iss.input)}` },
      )
      .optional(),
  })
  .describe('e.g. { name: list items, method: GET, path: /api/items, expectStatus: 200 }');

/** A smoke check: a command when it has `command:`, else an HTTP request. */
const smokeSchema = z.unknown().transform((value, ctx) => {
  const isCommand = typeof value === 'object' && value !== null && 'command' in value;
  const parsed = (isCommand ? commandSmokeSchema : httpSmokeSchema).safeParse(value);
  if (parsed.success) return parsed.data;
  for (const issue of parsed.error.issues) ctx.addIssue({ ...issue, code: 'custom', path: issue.path } as never);
  return z.NEVER;
});

const databaseSchema = z
  .strictObject({
    name: z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, {
      error: (iss) =>
        `must be a PostgreSQL database name (lowercase letters, digits, _; at most 63), got ${describeValue(iss.input)}`,
    }),
    urlEnv: z
      .string()
      .superRefine((value, ctx) => {
        if (value.includes('://')) {
          ctx.addIssue({
            code: 'custom',
            message: `must name an environment variable on the worker (e.g. SHOP_DATABASE_URL), not hold the URL: ${SECRET_WHY}`,
          });
        } else if (!ENV_VAR.test(value)) {
          ctx.addIssue({
            code: 'custom',
            message: `must be an environment variable name (A-Z, 0-9, _), got ${describeValue(value)}`,
          });
        }
      })
      .optional(),
    migrations: template(['version']).min(1, 'must not be empty').optional(),
    migrate: z
      .strictObject({
        command: argvSchema(['version'], '[npm, run, db:migrate]'),
        timeout: duration({ positive: true }).default(600_000),
        status: commandSchema(['version'], '[npm, run, db:status]', 120_000).optional(),
      })
      .describe('{ command: [npm, run, db:migrate], timeout, status: { command: [npm, run, db:status] } }')
      .optional(),
    compatibility: z
      .enum(MIGRATION_COMPATIBILITY, {
        error: unlessMissing(
          (v) =>
            `must be backward (expand-only: the previous release still works on the new schema) or breaking, got ${describeValue(v)}`,
        ),
      })
      .optional(),
  })
  .describe('{ name, urlEnv, migrations, migrate, compatibility }');

export const trafficSchema = z
  .strictObject({
    steps: z
      .array(
        z
          .strictObject({ weight: weightSchema, bake: duration().default(0) })
          .describe('e.g. { weight: 10, bake: 1m }')
          .transform((s): TrafficStep => ({ weight: s.weight, bakeMs: s.bake })),
      )
      .min(1, 'must list at least one step; the last has weight 100')
      .describe('e.g. [{ weight: 10, bake: 1m }, { weight: 100 }]'),
  })
  .describe('{ steps: [{ weight, bake }, ...] }');

/** A number in [min, max] (a ratio, a rate of requests), with the range and an example in the message. */
const numberIn = (min: number, max: number, example: string) => {
  const message = unlessMissing(
    (v) =>
      `must be a number from ${min} to ${max === Number.MAX_SAFE_INTEGER ? 'any' : max} (e.g. ${example}), got ${describeValue(v)}`,
  );
  return z.number({ error: message }).min(min, { error: message }).max(max, { error: message });
};

/** analysis.compare: the judge of the canary against the stable release (see shared/judge.ts). */
export const compareSchema = z
  .strictObject({
    max5xxRatio: numberIn(1, 1_000, '2: the canary may fail twice as often as the stable release').default(2),
    maxP95Ratio: numberIn(1, 1_000, '1.5: the canary may be 50% slower at p95').default(1.5),
    // 10 ms: the latency test is of the tolerated regression (max(p x maxP95Ratio, p + minP95Delta), shared/judge.ts),
    // which a noisy p95 of a loaded machine does not pass; 25 ms (the p95-gap-only test's default) hid a +100% canary
    // of a 20 ms service
    minP95Delta: duration().default(10),
    confidence: numberIn(0.5, 0.9999, '0.99: one false alarm in 100 healthy steps').default(0.99),
    // absent: 250 ms against a baseline, one interval against the stable release (shared/judge.ts warmupOf)
    warmup: duration().optional(),
    // auto: a baseline where the platform runs one (single-host); kept out of the plan when auto, so that the plans
    // (and digests) of configs without it stay the same
    baseline: z
      .enum(BASELINE_MODES, {
        error: unlessMissing(
          (v) =>
            `must be one of ${BASELINE_MODES.join(', ')} (compare the canary with a baseline: a fresh process of the stable version at the canary's weight), got ${describeValue(v)}`,
        ),
      })
      .default('auto'),
  })
  .describe('{ max5xxRatio, maxP95Ratio, minP95Delta, confidence, warmup, baseline }')
  .transform((c): CompareSpec => ({
    max5xxRatio: c.max5xxRatio,
    maxP95Ratio: c.maxP95Ratio,
    minP95DeltaMs: c.minP95Delta,
    confidence: c.confidence,
    ...(c.warmup !== undefined ? { warmupMs: c.warmup } : {}),
    ...(c.baseline !== 'auto' ? { baseline: c.baseline } : {}),
  }));

const enabledFlag = () =>
  z.boolean({ error: unlessMissing((v) => `must be true or false, got ${describeValue(v)}`) }).default(true);

/**
 * analysis.cutoff.rate: the cut-off's watch takes the canary out when its recent requests fail too often (see
 * shared/cutoff-rate.ts for the defaults' reasons). Absent: the default rule, left out of the plan (plans of configs
 * without it stay the same); `{ enabled: false }`: off (false in the plan).
 */
const rateCutoffSchema = z
  .strictObject({
    enabled: enabledFlag(),
    max5xxRate: rate.default(DEFAULT_RATE_CUTOFF.max5xxRate),
    overRequests: intIn(1, 10_000, " (the canary's most recent requests the rate is over)").default(
      DEFAULT_RATE_CUTOFF.overRequests,
    ),
    minErrors: intIn(1, 10_000, ' (errors needed before the rate counts)').default(DEFAULT_RATE_CUTOFF.minErrors),
  })
  .describe('{ enabled, max5xxRate, overRequests, minErrors }')
  .superRefine((r, ctx) => {
    if (r.minErrors > r.overRequests) {
      ctx.addIssue({
        code: 'custom',
        path: ['minErrors'],
        message: `must be at most overRequests (${r.overRequests}): ${r.minErrors} errors can never come in ${r.overRequests} requests`,
      });
    }
  })
  .transform(
    (r): RateCutoffSpec | false =>
      r.enabled && { max5xxRate: r.max5xxRate, overRequests: r.overRequests, minErrors: r.minErrors },
  );

/**
 * analysis.cutoff: the router takes a failing canary out after consecutive errors (single-host: HAProxy), and the
 * cut-off's watch when its recent requests fail too often (rate).
 */
export const cutoffSchema = z
  .strictObject({
    enabled: enabledFlag(),
    // 5 keeps a faulty canary's failed requests at about 5, and a healthy canary with a 5% error rate is cut off
    // by chance about once in 3 million requests
    errorLimit: intIn(1, 1_000, ' (consecutive errors of the canary)').default(5),
    rate: rateCutoffSchema.optional(),
  })
  .describe('{ enabled, errorLimit, rate }')
  .transform((c): CutoffSpec | undefined =>
    c.enabled ? { errorLimit: c.errorLimit, ...(c.rate !== undefined ? { rate: c.rate } : {}) } : undefined,
  );

export const analysisSchema = z
  .strictObject({
    max5xxRate: rate,
    maxP95LatencyMs: intIn(1, Number.MAX_SAFE_INTEGER, ' (milliseconds)'),
    minRequests: intIn(0, Number.MAX_SAFE_INTEGER).default(20),
    // Temporal's timers fire with about one second of granularity: a shorter window would be longer in fact.
    interval: duration({
      positive: true,
      minMs: 1_000,
      why: "Temporal's timers have a granularity of about 1s",
    }).default(10_000),
    failuresTolerated: intIn(0, Number.MAX_SAFE_INTEGER).default(0),
    // The default (pause when approvers are listed, else fail) needs the approvals block: toResolved() fills it in.
    onInconclusive: z
      .enum(INCONCLUSIVE_ACTIONS, {
        error: unlessMissing(
          (v) =>
            `must be one of ${INCONCLUSIVE_ACTIONS.join(', ')} (what a step without enough evidence does), got ${describeValue(v)}`,
        ),
      })
      .optional(),
    stepMinRequests: intIn(0, Number.MAX_SAFE_INTEGER, ' (canary requests a baked step needs)').optional(),
    minConclusiveWindows: intIn(1, 1_000, ' (conclusive analysis windows a baked step needs)').optional(),
    expectedRps: numberIn(0.001, Number.MAX_SAFE_INTEGER, '50 (requests per second, all releases)').optional(),
    extendMax: duration({ positive: true }).default(60_000),
    compare: compareSchema.prefault({}),
    cutoff: cutoffSchema.prefault({}),
  })
  .describe(
    '{ max5xxRate, maxP95LatencyMs, minRequests, interval, failuresTolerated, onInconclusive, stepMinRequests, minConclusiveWindows, expectedRps, extendMax, compare, cutoff }',
  )
  .transform((a): AnalysisSpec & { onInconclusive?: AnalysisSpec['onInconclusive'] } => ({
    max5xxRate: a.max5xxRate,
    maxP95LatencyMs: a.maxP95LatencyMs,
    minRequests: a.minRequests,
    intervalMs: a.interval,
    failuresTolerated: a.failuresTolerated,
    ...(a.onInconclusive ? { onInconclusive: a.onInconclusive } : {}),
    ...(a.stepMinRequests !== undefined ? { stepMinRequests: a.stepMinRequests } : {}),
    ...(a.minConclusiveWindows !== undefined ? { minConclusiveWindows: a.minConclusiveWindows } : {}),
    ...(a.expectedRps !== undefined ? { expectedRps: a.expectedRps } : {}),
    extendMaxMs: a.extendMax,
    compare: a.compare,
    ...(a.cutoff ? { cutoff: a.cutoff } : {}),
  }));

const approvalsSchema = z
  .strictObject({
    gates: z.array(gateSchema).default([]),
    approvers: z.array(approverName).default([]),
    fourEyes: z
      .boolean({ error: unlessMissing((v) => `must be true or false, got ${describeValue(v)}`) })
      .default(true),
    timeout: duration({ positive: true }).default(3_600_000),
    onTimeout: z.enum(TIMEOUT_ACTIONS).default('abort'),
  })
  .describe('{ gates, approvers, fourEyes, timeout, onTimeout }')
  .transform((a): ApprovalPolicy => ({
    gates: APPROVAL_GATES.filter((g) => a.gates.includes(g)),
    approvers: a.approvers,
    fourEyes: a.fourEyes,
    timeoutMs: a.timeout,
    onTimeout: a.onTimeout,
  }));

const rollbackSchema = z
  .strictObject({
    approvals: approvalsSchema.prefault({}),
    dbRestoreApprovers: z.array(approverName).default([]),
  })
  .describe('{ approvals, dbRestoreApprovers }');

/**
 * What the environment accepts of people: `unsigned: refuse` (the default) refuses a request or decision without a
 * valid SSH signature; `accept-unverified` (a team's choice for demo or staging) counts it as `unverified:<name>`.
 * `distinctApprovers`: nobody (no identity, no key) decides two gates of one runbook.
 */
const signingSchema = z
  .strictObject({
    unsigned: z.enum(['refuse', 'accept-unverified']).default('refuse'),
    distinctApprovers: z
      .boolean({ error: unlessMissing((v) => `must be true or false, got ${describeValue(v)}`) })
      .default(false),
  })
  .describe('{ unsigned: refuse | accept-unverified, distinctApprovers }');

const CRON_FIELD = /^[0-9A-Za-z*?/,-]+$/;
const CRON_HINT = 'a 5-field cron expression like "0 3 * * 1" (minute hour day month weekday), or @daily, @weekly, ...';

const drillSchema = z
  .strictObject({
    rtoTarget: duration({ positive: true }),
    schedule: z
      .string()
      .refine(
        (s) => {
          if (/^@(yearly|annually|monthly|weekly|daily|hourly)$/.test(s.trim()) || /^@every\s+\S+$/.test(s.trim())) {
            return true;
          }
          const fields = s.trim().split(/\s+/);
          return fields.length === 5 && fields.every((f) => CRON_FIELD.test(f));
        },
        { error: (iss) => `must be ${CRON_HINT}, got ${describeValue(iss.input)}` },
      )
      .optional(),
    integrityCommand: commandSchema(['version'], '[npm, run, ops:db:validate-integrity]', 600_000).optional(),
  })
  .describe('{ rtoTarget, schedule, integrityCommand }')
  .transform((d): DrillSpec => ({
    rtoTargetMs: d.rtoTarget,
    ...(d.schedule ? { schedule: d.schedule } : {}),
    ...(d.integrityCommand ? { integrityCommand: d.integrityCommand } : {}),
  }));

const cronSchema = z.string().refine(
  (s) => {
    if (/^@(yearly|annually|monthly|weekly|daily|hourly)$/.test(s.trim()) || /^@every\s+\S+$/.test(s.trim())) {
      return true;
    }
    const fields = s.trim().split(/\s+/);
    return fields.length === 5 && fields.every((f) => CRON_FIELD.test(f));
  },
  { error: (iss) => `must be ${CRON_HINT}, got ${describeValue(iss.input)}` },
);

const retentionCount = (what: string) =>
  z
    .number({ error: unlessMissing((v) => `must be a whole number of ${what} to keep, got ${describeValue(v)}`) })
    .int({ error: (iss) => `must be a whole number of ${what} to keep, got ${describeValue(iss.input)}` })
    .min(1, {
      error: (iss) => `must keep at least 1 (the newest full is always kept), got ${describeValue(iss.input)}`,
    })
    .max(9999, { error: (iss) => `must be at most 9999, got ${describeValue(iss.input)}` });

const backupScheduleSchema = z
  .strictObject({
    /** Full base backups. */
    full: cronSchema.optional(),
    /** Differential (since the last full). */
    diff: cronSchema.optional(),
    /** Incremental (since the last backup of any type). */
    incr: cronSchema.optional(),
  })
  .refine((s) => s.full !== undefined || s.diff !== undefined || s.incr !== undefined, {
    error: 'names no backup type: give at least full: "<cron>" (and diff: / incr: if you want them)',
  })
  .describe('{ full, diff, incr }: a cron expression per backup type');

const backupSchema = z
  .strictObject({
    schedule: backupScheduleSchema.optional(),
    retention: z
      .strictObject({
        full: retentionCount('full backups').optional(),
        diff: retentionCount('differential backups').optional(),
        days: retentionCount('days').optional(),
      })
      .refine((r) => r.full !== undefined || r.days !== undefined, {
        error: 'says neither full: (how many full backups) nor days: (how long); give one, e.g. full: 2 or days: 30',
      })
      .describe('{ full, diff, days }'),
    /** `pgbackrest verify` after each backup (default true). */
    verify: z.boolean({ error: (iss) => `must be true or false, got ${describeValue(iss.input)}` }).default(true),
  })
  .describe('{ schedule: { full, diff, incr }, retention: { full, diff, days }, verify }')
  .transform((b): BackupSpec => ({
    ...(b.schedule ? { schedule: b.schedule } : {}),
    retention: b.retention,
    verify: b.verify,
  }));

/**
 * One service after merging an environment. Requirements that depend on other fields (platform blocks, ordering,
 * ports) are checked by serviceCrossChecks(), which runs even when this schema finds problems.
 */
export const serviceSchema = z.strictObject({
  platform: platformSchema,
  listen: listenSchema.optional(),
  aws: awsEcsSchema.optional(),
  release: releaseSchema.optional(),
  health: healthSchema,
  smoke: z.array(smokeSchema).default([]),
  database: databaseSchema.optional(),
  traffic: trafficSchema,
  analysis: analysisSchema,
  approvals: approvalsSchema.prefault({}),
  rollback: rollbackSchema.prefault({}),
  signing: signingSchema.prefault({}),
  drill: drillSchema.optional(),
  backup: backupSchema.optional(),
});
/** A service as serviceSchema outputs it: defaults filled in, durations in ms; toResolved() makes it a ResolvedService. */
export type ParsedService = z.output<typeof serviceSchema>;

/** The top level of runbook.yaml; each service block is validated on its own (see checkService() in load.ts). */
export const fileSchema = z.strictObject({
  version: z.literal(1, {
    error: unlessMissing((v) => `must be 1 (the only format version), got ${describeValue(v)}`),
  }),
  services: z
    .record(z.string(), z.unknown())
    .refine((s) => Object.keys(s).length > 0, 'must list at least one service')
    .describe('a map of service name -> its runbook settings'),
  /**
   * Who may sign requests and decisions: allowed_signers lines (`alice ssh-ed25519 AAAA... laptop`), as
   * `ssh-keygen -Y verify` and git read them; `signersFile` names such a file (relative to this file).
   */
  signers: z.array(z.string()).optional(),
  signersFile: z.string().min(1, 'must not be empty').optional(),
  /**
   * The folder that relative paths in this file (release cwd, migrations, signersFile) are resolved against, itself
   * relative to this file's folder; default: this file's folder. For a config written somewhere else than the tree it
   * describes (generated by a pipeline, or `npm run demo`'s config with its throwaway signers).
   */
  base: z.string().min(1, 'must not be empty').optional(),
  /** Named lists of approvers, used in `approvers:` as `group:<name>`. */
  groups: z
    .record(z.string().regex(/^[a-z][a-z0-9-]{0,62}$/, 'a group name: lowercase letters, digits, -'), z.array(userName))
    .optional(),
});

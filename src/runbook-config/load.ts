import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseDocument } from 'yaml';
import { z } from 'zod';
import { UserError } from '../errors';
import {
  PLATFORMS,
  APPROVAL_GATES,
  TIMEOUT_ACTIONS,
  HTTP_METHODS,
  RELEASE_PLACEHOLDERS,
  type Platform,
  type ApprovalGate,
  type JsonValue,
  type JsonObject,
  type ReleaseSpec,
  type AwsEcsSpec,
  type PortRange,
  type TrafficStep,
  type AnalysisSpec,
  type ApprovalPolicy,
  type DrillSpec,
  type ServiceCommon,
  type ResolvedService,
} from '../shared/service-plan';

export type {
  Platform,
  ApprovalGate,
  TimeoutAction,
  HttpMethod,
  JsonValue,
  JsonObject,
  ReleaseSpec,
  PortRange,
  HttpProbe,
  HealthSpec,
  SmokeCheck,
  DatabaseSpec,
  TrafficStep,
  AnalysisSpec,
  ApprovalPolicy,
  RollbackSpec,
  DrillSpec,
  ServiceCommon,
  SingleHostService,
  AwsEcsService,
  ResolvedService,
} from '../shared/service-plan';

/*
 * runbook.yaml: per service and environment, how to deploy it. The file is validated once, as a whole, and every
 * problem is reported with its path in the file. What a workflow receives is a ResolvedService: plain JSON with
 * durations in milliseconds and absolute paths, and no secrets (it is copied into workflow histories).
 */

/** Environment variable naming the runbook.yaml to use when `--config` is not given. */
const RUNBOOK_CONFIG_ENV = 'RUNBOOK_CONFIG';
/** The file looked for in the current folder when neither `--config` nor RUNBOOK_CONFIG is given. */
const DEFAULT_RUNBOOK_CONFIG_FILE = 'runbook.yaml';

/** A loaded runbook.yaml: every service in every environment it lists has been validated. */
export interface RunbookConfig {
  version: 1;
  /** Absolute path of the file, named in messages. */
  source: string;
  /** The file's folder: relative paths in it (release.cwd, database.migrations) are resolved against it. */
  baseDir: string;
  /** Service name -> its definition as written, in file order. Use resolveService() to get a usable one. */
  services: Record<string, ServiceDefinition>;
}

/** One service as written: the base block and the per-environment overrides, not yet merged. */
export interface ServiceDefinition {
  /** Every key of the service block except `environments`. */
  base: JsonObject;
  /**
   * Environment name -> overrides, in file order (the first is the default environment). Overrides are merged
   * into the base as a JSON merge patch (RFC 7386): maps merge key by key, lists and values replace, and `null`
   * removes a key.
   */
  environments: Record<string, JsonObject>;
}

/** The error for an invalid runbook.yaml: its message lists every problem on its own line as `path: what`. */
export class RunbookConfigError extends UserError {
  constructor(
    readonly source: string,
    /** One line per problem, e.g. `services.shop.traffic.steps[1].weight: must be 1..100, got 150`. */
    readonly problems: string[],
  ) {
    super(
      `${source}: ${problems.length === 1 ? '1 problem' : `${problems.length} problems`}:\n  ${problems.join('\n  ')}`,
      `fix ${problems.length === 1 ? 'it' : 'them'} in ${source} (examples/runbook.yaml is a complete example)`,
    );
    this.name = 'RunbookConfigError';
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Values: durations, rates, placeholders

const DURATION_HINT = 'a duration like 500ms, 10s, 1m, 1h, 7d (or a number of milliseconds)';
const DURATION_UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/**
 * Milliseconds of a duration: `500ms`, `10s`, `1m`, `1h`, `7d`, compounds like `1h30m`, or a number of
 * milliseconds. Undefined when it is none of these.
 */
export function parseDuration(value: string | number): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? Math.round(value) : undefined;
  const text = value.trim();
  if (!/^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+$/.test(text)) return undefined;
  let ms = 0;
  for (const [, amount, unit] of text.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d)/g)) {
    ms += Number(amount) * DURATION_UNIT_MS[unit as keyof typeof DURATION_UNIT_MS];
  }
  return Math.round(ms);
}

/** A duration as a short human string, for messages: 90000 -> `1m30s`. */
function formatMs(ms: number): string {
  if (ms === 0) return '0';
  const parts: string[] = [];
  let rest = ms;
  for (const [unit, size] of [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
    ['ms', 1],
  ] as const) {
    if (rest >= size) {
      parts.push(`${Math.floor(rest / size)}${unit}`);
      rest %= size;
    }
  }
  return parts.join('');
}

const unlessMissing =
  (message: (input: unknown) => string) =>
  (iss: { input?: unknown }): string | undefined =>
    iss.input === undefined ? undefined : message(iss.input);

function duration(opts: { positive?: boolean; minMs?: number; why?: string } = {}) {
  const expected = opts.positive ? `${DURATION_HINT}, more than 0` : DURATION_HINT;
  return z
    .union([z.string(), z.number()], { error: unlessMissing((v) => `must be ${expected}, got ${describeValue(v)}`) })
    .describe(DURATION_HINT)
    .transform((value, ctx) => {
      const ms = parseDuration(value);
      if (ms === undefined || (opts.positive && ms === 0)) {
        ctx.addIssue({ code: 'custom', message: `must be ${expected}, got ${describeValue(value)}` });
        return z.NEVER;
      }
      if (opts.minMs !== undefined && ms < opts.minMs) {
        ctx.addIssue({
          code: 'custom',
          message: `must be at least ${formatMs(opts.minMs)}${opts.why ? ` (${opts.why})` : ''}, got ${describeValue(value)}`,
        });
        return z.NEVER;
      }
      return ms;
    });
}

const RATE_HINT = 'a rate like 2% or 0.02 (a fraction 0..1)';

const rate = z
  .union([z.string(), z.number()], { error: unlessMissing((v) => `must be ${RATE_HINT}, got ${describeValue(v)}`) })
  .describe(RATE_HINT)
  .transform((value, ctx) => {
    if (typeof value === 'number') {
      if (value >= 0 && value <= 1) return value;
      ctx.addIssue({
        code: 'custom',
        message:
          value > 1 && value <= 100
            ? `must be a fraction 0..1, got ${value}; write ${value}% for ${value} percent`
            : `must be ${RATE_HINT}, got ${value}`,
      });
      return z.NEVER;
    }
    const percent = /^\s*(\d+(?:\.\d+)?)\s*%\s*$/.exec(value);
    if (percent && Number(percent[1]) <= 100) return Number(percent[1]) / 100;
    ctx.addIssue({ code: 'custom', message: `must be ${RATE_HINT}, got ${describeValue(value)}` });
    return z.NEVER;
  });

const PLACEHOLDER = /\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

/** A string that may hold only the given placeholders (an unknown `{name}` is an error with a hint). */
function template(allowed: readonly string[]) {
  return z.string().superRefine((value, ctx) => {
    for (const [, name] of value.matchAll(PLACEHOLDER)) {
      if (name !== undefined && !allowed.includes(name)) {
        ctx.addIssue({
          code: 'custom',
          message: `unknown placeholder {${name}}${didYouMean(name, allowed, (s) => `{${s}}`)}; allowed here: ${allowed.map((a) => `{${a}}`).join(', ')}`,
        });
      }
    }
    if (hasCredentials(value)) ctx.addIssue({ code: 'custom', message: SECRET_VALUE });
  });
}

const SECRET_WHY = 'runbook.yaml is copied into workflow histories, so it must not hold secrets';
const SECRET_VALUE = `holds a URL with a password; ${SECRET_WHY}: keep the secret on the worker`;
const SECRET_NAME = /(PASSWORD|PASSWD|SECRET|TOKEN|API_KEY|PRIVATE_KEY|CREDENTIALS?)$/i;

function hasCredentials(value: string): boolean {
  return /[a-z][a-z0-9+.-]*:\/\/[^/\s:@]+:[^/\s@]+@/i.test(value);
}

// ---------------------------------------------------------------------------------------------------------------
// Schemas of one service (after merging an environment's overrides)

function intIn(min: number, max: number, note = '') {
  const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `${min}..${max}`;
  const message = (whole: boolean) =>
    unlessMissing((v) => `must be ${range}${note}${whole ? ' (a whole number)' : ''}, got ${describeValue(v)}`);
  return z
    .number({ error: message(false) })
    .int({ error: message(true) })
    .min(min, { error: message(false) })
    .max(max, { error: message(false) });
}

const portSchema = intIn(1024, 65535, ' (an unprivileged TCP port)');
const weightSchema = intIn(1, 100, '');
const statusSchema = intIn(100, 599, ' (an HTTP status)').default(200);

const NAME = /^[a-z][a-z0-9-]{0,62}$/;
const NAME_HINT = "lowercase letters, digits and '-', starting with a letter, at most 63 characters";
const ENV_VAR = /^[A-Za-z_][A-Za-z0-9_]*$/;
const USER = /^[A-Za-z0-9][A-Za-z0-9._@-]*$/;

const urlPath = z.string().regex(/^\/\S*$/, {
  error: (iss) => `must be a URL path starting with /, e.g. /health, got ${describeValue(iss.input)}`,
});

const envVarName = z.string().regex(ENV_VAR, {
  error: (iss) => `must be an environment variable name (A-Z, 0-9, _), got ${describeValue(iss.input)}`,
});

const userName = z.string().regex(USER, {
  error: (iss) => `must be a user name (letters, digits, '.', '_', '@', '-'), got ${describeValue(iss.input)}`,
});

const platformSchema = z.enum(PLATFORMS);
const gateSchema = z.enum(APPROVAL_GATES);

const listenSchema = z.strictObject({ port: portSchema }).describe('e.g. { port: 18080 }');

const releaseEnvKey = envVarName.superRefine((name, ctx) => {
  if (name === 'DATABASE_URL') {
    ctx.addIssue({
      code: 'custom',
      message: `must not be set here: ${SECRET_WHY}; the worker passes the release its database URL (see database.urlEnv)`,
    });
  } else if (SECRET_NAME.test(name)) {
    ctx.addIssue({
      code: 'custom',
      message: `looks like a secret; ${SECRET_WHY}: keep it in the worker's environment instead`,
    });
  }
});

const releaseSchema = z
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

const healthSchema = z
  .strictObject({
    liveness: probeSchema,
    readiness: probeSchema,
    timeout: duration({ positive: true }).default(2000),
    deadline: duration({ positive: true }).default(60_000),
  })
  .describe('{ liveness, readiness, timeout, deadline }');

const smokeSchema = z
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
    migrations: z.string().min(1, 'must not be empty').optional(),
  })
  .describe('{ name, urlEnv, migrations }');

const trafficSchema = z
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

const analysisSchema = z
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
  })
  .describe('{ max5xxRate, maxP95LatencyMs, minRequests, interval, failuresTolerated }')
  .transform((a): AnalysisSpec => ({
    max5xxRate: a.max5xxRate,
    maxP95LatencyMs: a.maxP95LatencyMs,
    minRequests: a.minRequests,
    intervalMs: a.interval,
    failuresTolerated: a.failuresTolerated,
  }));

const approvalsSchema = z
  .strictObject({
    gates: z.array(gateSchema).default([]),
    approvers: z.array(userName).default([]),
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
    dbRestoreApprovers: z.array(userName).default([]),
  })
  .describe('{ approvals, dbRestoreApprovers }');

/** AWS ARNs of one service kind, e.g. `arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/...`. */
function arn(service: string, resource: string) {
  const pattern = new RegExp(`^arn:aws[a-z-]*:${service}:[a-z0-9-]+:\\d{12}:${resource}/\\S+$`);
  return z.string().regex(pattern, {
    error: (iss) =>
      `must be the ARN of a ${resource}, e.g. arn:aws:${service}:eu-west-1:123456789012:${resource}/..., got ${describeValue(iss.input)}`,
  });
}

const awsName = (what: string) =>
  z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,254}$/, {
    error: (iss) => `must be ${what} (letters, digits, '-', '_', '.', ':', '/'), got ${describeValue(iss.input)}`,
  });

const blueGreen = (item: z.ZodType<string>, example: string) =>
  z.strictObject({ blue: item, green: item }).describe(`{ blue: ${example}, green: ... }`);

const targetGroupArn = arn('elasticloadbalancing', 'targetgroup');
const listenerArn = arn('elasticloadbalancing', 'listener');
const listenerRuleArn = arn('elasticloadbalancing', 'listener-rule');

const endpointHolderSchema = z
  .union(
    [
      z.strictObject({ ssmParameter: z.string().regex(/^[A-Za-z0-9_./-]{1,2048}$/, 'must be an SSM parameter name') }),
      z.strictObject({
        secret: z.string().min(1, 'must name a Secrets Manager secret (name or ARN)'),
        key: z.string().optional(),
      }),
      z.strictObject({ taskEnv: envVarName }),
    ],
    {
      error: unlessMissing(
        (v) =>
          `must be one of { ssmParameter: /shop/db-host }, { secret: shop/db, key: host } or { taskEnv: DATABASE_HOST }, got ${describeValue(v)}`,
      ),
    },
  )
  .describe('{ ssmParameter } | { secret, key } | { taskEnv }');

const rdsIdentifier = (what: string) =>
  z.string().regex(/^[A-Za-z][A-Za-z0-9-]{0,62}$/, {
    error: (iss) =>
      `must be an RDS ${what} identifier (letters, digits, '-'; at most 63), got ${describeValue(iss.input)}`,
  });

/** Exactly one of instance and cluster: serviceCrossChecks() says so, with instanceClass required for a cluster. */
const awsRdsSchema = z
  .strictObject({
    instance: rdsIdentifier('DB instance').optional(),
    cluster: rdsIdentifier('Aurora DB cluster').optional(),
    endpoint: endpointHolderSchema.optional(),
    drill: z
      .strictObject({
        subnetGroup: awsName('a DB subnet group name').optional(),
        securityGroups: z
          .array(z.string().regex(/^sg-[0-9a-f]{8,17}$/, 'must be a security group id like sg-0123456789abcdef0'))
          .default([]),
        instanceClass: z
          .string()
          .regex(/^db\.[a-z0-9]+\.[a-z0-9]+$/, 'must be an instance class like db.t4g.medium')
          .optional(),
      })
      .prefault({}),
    pollInterval: duration({ positive: true }).default(30_000),
  })
  .describe('{ instance | cluster, endpoint, drill: { subnetGroup, securityGroups, instanceClass }, pollInterval }');

const awsEcsSchema = z
  .strictObject({
    region: z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d$/, {
      error: (iss) => `must be an AWS region like eu-west-1, got ${describeValue(iss.input)}`,
    }),
    endpoint: z
      .url({
        protocol: /^https?$/,
        error: (iss) => `must be an http(s) URL like http://127.0.0.1:5000, got ${describeValue(iss.input)}`,
      })
      .optional(),
    cluster: awsName('an ECS cluster name or ARN'),
    services: blueGreen(awsName('an ECS service name'), 'shop-blue'),
    container: awsName('the container name in the task definition'),
    image: template(['version']).refine((v) => v.includes('{version}'), {
      error: 'must contain {version}, e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop:{version}',
    }),
    env: z
      .record(
        releaseEnvKey,
        z
          .union([z.string(), z.number(), z.boolean()])
          .transform(String)
          .pipe(template(['version'])),
      )
      .default({}),
    targetGroups: blueGreen(targetGroupArn, 'arn:aws:elasticloadbalancing:...:targetgroup/shop-blue/...'),
    listenerRule: listenerRuleArn.optional(),
    listener: listenerArn.optional(),
    testListener: listenerArn,
    scheme: z.enum(['http', 'https']).default('http'),
    drain: duration().default(30_000),
    rolloutTimeout: duration({ positive: true }).default(15 * 60_000),
    pollInterval: duration({ positive: true }).default(10_000),
    metricsDelay: duration().default(2 * 60_000),
    rds: awsRdsSchema.optional(),
  })
  .describe('{ region, cluster, services, container, image, targetGroups, listenerRule | listener, testListener, rds }')
  .transform((a): AwsEcsSpec => ({
    region: a.region,
    ...(a.endpoint ? { endpoint: a.endpoint } : {}),
    cluster: a.cluster,
    services: a.services,
    container: a.container,
    image: a.image,
    env: a.env,
    targetGroups: a.targetGroups,
    ...(a.listenerRule ? { listenerRule: a.listenerRule } : {}),
    ...(a.listener ? { listener: a.listener } : {}),
    testListener: a.testListener,
    scheme: a.scheme,
    drainMs: a.drain,
    rolloutTimeoutMs: a.rolloutTimeout,
    pollIntervalMs: a.pollInterval,
    metricsDelayMs: a.metricsDelay,
    ...(a.rds
      ? {
          rds: {
            ...(a.rds.instance !== undefined ? { instance: a.rds.instance } : {}),
            ...(a.rds.cluster !== undefined ? { cluster: a.rds.cluster } : {}),
            database: '',
            urlEnv: '',
            ...(a.rds.endpoint ? { endpoint: a.rds.endpoint } : {}),
            drill: a.rds.drill,
            pollIntervalMs: a.rds.pollInterval,
          },
        }
      : {}),
  }));

/** CloudWatch's period of the load balancer metrics that the aws-ecs analysis reads. */
const AWS_MIN_INTERVAL_MS = 60_000;

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
  })
  .describe('{ rtoTarget, schedule }')
  .transform((d): DrillSpec => ({ rtoTargetMs: d.rtoTarget, ...(d.schedule ? { schedule: d.schedule } : {}) }));

/**
 * One service after merging an environment. Requirements that depend on other fields (platform blocks, ordering,
 * ports) are checked by serviceCrossChecks(), which runs even when this schema finds problems.
 */
const serviceSchema = z.strictObject({
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
  drill: drillSchema.optional(),
});
type ParsedService = z.output<typeof serviceSchema>;

const fileSchema = z.strictObject({
  version: z.literal(1, {
    error: unlessMissing((v) => `must be 1 (the only format version), got ${describeValue(v)}`),
  }),
  services: z
    .record(z.string(), z.unknown())
    .refine((s) => Object.keys(s).length > 0, 'must list at least one service')
    .describe('a map of service name -> its runbook settings'),
});

// ---------------------------------------------------------------------------------------------------------------
// Loading

/**
 * The runbook.yaml to use: the `--config` value, else RUNBOOK_CONFIG, else ./runbook.yaml. Absolute.
 */
export function runbookConfigPath(flag?: string, env: NodeJS.ProcessEnv = process.env): string {
  return path.resolve(flag || env[RUNBOOK_CONFIG_ENV] || DEFAULT_RUNBOOK_CONFIG_FILE);
}

/**
 * Reads and validates a runbook.yaml: every service in every environment it lists.
 * @throws UserError when the file is missing or unreadable, RunbookConfigError (a UserError) listing every
 *   problem when it is not valid YAML or not a valid runbook.
 */
export function loadRunbookConfig(file: string): RunbookConfig {
  const source = path.resolve(file);
  let text: string;
  try {
    text = readFileSync(source, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      throw new UserError(
        `runbook config not found: ${source}`,
        `pass --config <file> or set ${RUNBOOK_CONFIG_ENV}=<file> (examples/runbook.yaml is a complete example)`,
      );
    }
    if (code === 'EISDIR') {
      throw new UserError(
        `runbook config ${source} is a folder, not a file`,
        `pass --config <folder>/${DEFAULT_RUNBOOK_CONFIG_FILE} or set ${RUNBOOK_CONFIG_ENV} to the file`,
      );
    }
    throw new UserError(
      `cannot read runbook config ${source}: ${(err as Error).message}`,
      'check the file and its permissions',
    );
  }
  return parseRunbookConfig(text, source);
}

/**
 * Validates the text of a runbook.yaml; `source` is its path (relative paths in it resolve against its folder).
 * @throws RunbookConfigError (a UserError) listing every problem, or the YAML syntax errors with line and column.
 */
export function parseRunbookConfig(text: string, source: string): RunbookConfig {
  const file = path.resolve(source);
  const doc = parseDocument(text, { prettyErrors: true });
  if (doc.errors.length > 0) {
    throw new RunbookConfigError(
      file,
      doc.errors.map((e) => {
        const at = e.linePos?.[0];
        const [first = '', ...snippet] = e.message.split('\n');
        const what = first.replace(/ at line \d+, column \d+:?$/, '');
        const lines = snippet.filter((l) => l.trim() !== '').map((l) => `    ${l}`);
        return [`${at ? `line ${at.line}, column ${at.col}` : 'YAML'}: ${what} (YAML syntax)`, ...lines].join('\n  ');
      }),
    );
  }
  let data: unknown;
  try {
    data = doc.toJS();
  } catch (err) {
    throw new RunbookConfigError(file, [`(file): ${(err as Error).message} (YAML)`]);
  }
  if (data === null || data === undefined) {
    throw new RunbookConfigError(file, ['(file): is empty; it needs `version: 1` and `services:`']);
  }

  const problems = new Problems();
  const top = fileSchema.safeParse(data, { error: errorMap(problems) });
  if (!top.success) problems.addZod(top.error.issues, []);
  const services: Record<string, ServiceDefinition> = {};
  const rawServices = isPlainObject(data) ? data.services : undefined;
  if (isPlainObject(rawServices)) {
    for (const [name, block] of Object.entries(rawServices)) {
      const definition = checkService(name, block, problems);
      if (definition) services[name] = definition;
    }
  }
  problems.throwIfAny(file);
  return { version: 1, source: file, baseDir: path.dirname(file), services };
}

/** Validates one service block in every environment it lists; returns its definition when its shape is usable. */
function checkService(name: string, block: unknown, problems: Problems): ServiceDefinition | undefined {
  const at: Path = ['services', name];
  if (!NAME.test(name)) {
    problems.add(at, `service names must be ${NAME_HINT}, got ${JSON.stringify(name)}`);
  }
  if (!isPlainObject(block)) {
    problems.add(
      at,
      `must be a map of the service's settings (platform, release, health, ...), got ${describeValue(block)}`,
    );
    return undefined;
  }
  const { environments: rawEnvironments, ...base } = block;
  const environments: Record<string, JsonObject> = {};
  if (rawEnvironments === undefined) {
    problems.add(
      [...at, 'environments'],
      'is required: a map of the environments this service deploys to and their overrides, e.g. { staging: {}, production: {} }',
    );
  } else if (!isPlainObject(rawEnvironments) || Object.keys(rawEnvironments).length === 0) {
    problems.add(
      [...at, 'environments'],
      `must map at least one environment name to its overrides, e.g. { staging: {}, production: {} }, got ${describeValue(rawEnvironments)}`,
    );
  } else {
    for (const [env, overrides] of Object.entries(rawEnvironments)) {
      const envPath = [...at, 'environments', env];
      if (!NAME.test(env)) problems.add(envPath, `environment names must be ${NAME_HINT}, got ${JSON.stringify(env)}`);
      if (overrides === null) {
        environments[env] = {};
      } else if (!isPlainObject(overrides)) {
        problems.add(envPath, `must be a map of overrides (may be {}), got ${describeValue(overrides)}`);
      } else if ('environments' in overrides) {
        problems.add(
          [...envPath, 'environments'],
          'environments cannot be nested: an override cannot list environments',
        );
      } else {
        environments[env] = overrides as JsonObject;
      }
    }
  }

  // Validate the merged result of every environment, then report each problem once, where it is written.
  const envNames = Object.keys(environments);
  const found = new Map<
    string,
    { path: Path; message: string; kind: Problem['kind']; inOverride: boolean; envs: string[] }
  >();
  for (const env of envNames.length > 0 ? envNames : [undefined]) {
    const overrides = env === undefined ? {} : (environments[env] ?? {});
    const merged = mergePatch(base as JsonObject, overrides);
    for (const p of validateService(merged)) {
      const inOverride = env !== undefined && fromOverride(base as JsonObject, overrides, p.path);
      const path: Path = inOverride ? [...at, 'environments', env, ...p.path] : [...at, ...p.path];
      const message = problemMessage(p, inOverride);
      const key = `${formatPath(path)}\n${message}`;
      const seen = found.get(key);
      if (seen) {
        if (env !== undefined) seen.envs.push(env);
      } else {
        found.set(key, { path, message, kind: p.kind, inOverride, envs: env === undefined ? [] : [env] });
      }
    }
  }
  // A base value that every environment overrides is never validated above; still report what is wrong with it on
  // its own (a missing key or a mismatch with other fields may be supplied or fixed by the overrides).
  if (envNames.length > 0) {
    for (const p of validateService(base as JsonObject)) {
      if (p.kind !== 'field' || !writtenIn(base as JsonObject, p.path)) continue;
      const path: Path = [...at, ...p.path];
      const message = problemMessage(p, false);
      const key = `${formatPath(path)}\n${message}`;
      if (!found.has(key)) found.set(key, { path, message, kind: p.kind, inOverride: false, envs: [] });
    }
  }
  // Report in the order of the service's fields (schema problems and relations between fields together), base first.
  const fields = Object.keys(serviceSchema.shape);
  const rank = (e: { path: Path; inOverride: boolean }) => {
    const envRank = e.inOverride ? 1 + envNames.indexOf(String(e.path[3])) : 0;
    const field = fields.indexOf(String(e.path[e.inOverride ? 4 : 2]));
    return envRank * (fields.length + 1) + (field === -1 ? fields.length : field);
  };
  const ordered = [...found.values()].sort((a, b) => rank(a) - rank(b));
  for (const { path, message, kind, inOverride, envs } of ordered) {
    // A value that is wrong on its own is wrong wherever it is used; a mismatch may exist only with some overrides.
    const some = kind === 'relation' && !inOverride && envs.length > 0 && envs.length < envNames.length;
    problems.add(path, some ? `${message} (in environment${envs.length > 1 ? 's' : ''} ${envs.join(', ')})` : message);
  }
  return { base: base as JsonObject, environments };
}

type Path = (string | number)[];

interface Problem {
  path: Path;
  message: string;
  /** 'field': a value is invalid on its own; 'relation': fields do not fit together. */
  kind: 'field' | 'relation';
  /** For an unknown key: the keys allowed where it is. */
  allowed?: string[];
}

/** A service problem's message; an unknown key in the base block may also have been meant as `environments`. */
function problemMessage(p: Problem, inOverride: boolean): string {
  if (!p.allowed || inOverride || p.path.length !== 1) return p.message;
  return unknownKeyMessage(String(p.path[0]), [...p.allowed, 'environments'], []);
}

/** Problems of one merged service, with paths relative to the service block. */
function validateService(merged: JsonValue): Problem[] {
  const problems = new Problems();
  const parsed = serviceSchema.safeParse(merged, { error: errorMap(problems) });
  if (!parsed.success) problems.addZod(parsed.error.issues, []);
  if (isPlainObject(merged)) problems.list.push(...serviceCrossChecks(merged));
  return problems.list;
}

/** The checks that relate several fields. They read each field through its own schema, so they run regardless. */
function serviceCrossChecks(s: Record<string, unknown>): Problem[] {
  const out: Problem[] = [];
  const add = (path: Path, message: string) => out.push({ path, message, kind: 'relation' });

  const platform = valid(platformSchema, s.platform);
  const onlyFor = (key: string, p: Platform) =>
    add([key], `is only used by platform ${p}; remove it (in an environment override, \`${key}: null\` removes it)`);
  if (platform === 'single-host') {
    if (s.listen === undefined) {
      add(['listen'], 'is required for platform single-host: the stable frontend port, e.g. { port: 18080 }');
    }
    if (s.release === undefined) {
      add(
        ['release'],
        'is required for platform single-host: how to start a release { command, cwd, env, portRange, drain }',
      );
    }
    if (s.aws !== undefined) onlyFor('aws', 'aws-ecs');
  } else if (platform === 'aws-ecs') {
    if (s.aws === undefined) {
      add(['aws'], 'is required for platform aws-ecs: the ECS cluster, service and task settings');
    }
    if (s.listen !== undefined) onlyFor('listen', 'single-host');
    if (s.release !== undefined) onlyFor('release', 'single-host');
    const aws = asObject(s.aws);
    if (s.aws !== undefined && (aws.listenerRule === undefined) === (aws.listener === undefined)) {
      add(
        ['aws'],
        'needs exactly one of listenerRule (the production listener rule whose forward action splits traffic) or listener (its default action)',
      );
    }
    const database = asObject(s.database);
    if (s.database !== undefined && s.aws !== undefined && aws.rds === undefined) {
      add(['aws', 'rds'], 'is required with database: the RDS instance, e.g. { instance: shop-db }');
    }
    const rds = asObject(aws.rds);
    if (isPlainObject(aws.rds) && (rds.instance === undefined) === (rds.cluster === undefined)) {
      add(
        ['aws', 'rds'],
        'needs exactly one of instance (the RDS DB instance identifier) or cluster (the Aurora PostgreSQL DB cluster identifier)',
      );
    }
    if (rds.cluster !== undefined && asObject(rds.drill).instanceClass === undefined) {
      add(
        ['aws', 'rds', 'drill', 'instanceClass'],
        'is required with cluster: the class of the writer instance that a restore of the Aurora cluster creates ' +
          '(Aurora restores have no default), e.g. db.r6g.large',
      );
    }
    if (s.database !== undefined && database.urlEnv === undefined) {
      add(
        ['database', 'urlEnv'],
        'is required for platform aws-ecs: the worker environment variable holding the URL (with credentials) of the RDS instance',
      );
    }
    const interval = valid(duration(), asObject(s.analysis).interval);
    if (interval !== undefined && interval < AWS_MIN_INTERVAL_MS) {
      add(
        ['analysis', 'interval'],
        `${formatMs(interval)} is shorter than CloudWatch's 1-minute period of load balancer metrics; use at least 1m on aws-ecs`,
      );
    }
  }

  const release = asObject(s.release);
  const port = valid(portSchema, asObject(s.listen).port);
  const range = valid(releaseSchema.shape.portRange, release.portRange);
  if (port !== undefined && range && port >= range.min && port <= range.max) {
    add(
      ['listen', 'port'],
      `${port} is inside release.portRange ${range.min}..${range.max}; the frontend port must be outside the ports releases listen on`,
    );
  }
  const command = valid(releaseSchema.shape.command, release.command);
  const env = valid(releaseSchema.shape.env, release.env);
  if (
    platform === 'single-host' &&
    command &&
    env &&
    ![...command, ...Object.values(env)].some((v) => v.includes('{port}'))
  ) {
    add(
      ['release'],
      'neither release.command nor release.env uses {port}, so a release could not know which port it was given; add e.g. PORT: "{port}"',
    );
  }

  const health = asObject(s.health);
  const timeout = valid(healthSchema.shape.timeout, health.timeout);
  const deadline = valid(healthSchema.shape.deadline, health.deadline);
  if (timeout !== undefined && deadline !== undefined && timeout >= deadline) {
    add(['health', 'timeout'], `${formatMs(timeout)} must be shorter than health.deadline (${formatMs(deadline)})`);
  }

  if (Array.isArray(s.smoke)) {
    const names = new Map<string, number>();
    s.smoke.forEach((check, i) => {
      const name = asObject(check).name;
      if (typeof name !== 'string') return;
      const first = names.get(name);
      if (first === undefined) names.set(name, i);
      else
        add(['smoke', i, 'name'], `${JSON.stringify(name)} is already the name of smoke[${first}]; names are unique`);
    });
  }

  const steps = asObject(s.traffic).steps;
  if (Array.isArray(steps) && steps.length > 0) {
    let previous: number | undefined;
    steps.forEach((step, i) => {
      const weight = valid(weightSchema, asObject(step).weight);
      if (weight === undefined) return;
      if (previous !== undefined && weight <= previous) {
        add(
          ['traffic', 'steps', i, 'weight'],
          `must be more than the previous step's weight ${previous}: weights increase strictly and the last is 100`,
        );
      }
      previous = Math.max(previous ?? 0, weight);
    });
    const last = steps.length - 1;
    const lastWeight = valid(weightSchema, asObject(steps[last]).weight);
    if (lastWeight !== undefined && lastWeight !== 100) {
      add(
        ['traffic', 'steps', last, 'weight'],
        `the last step must be 100 (all traffic on the new release), got ${lastWeight}`,
      );
    }
    const analysis = asObject(s.analysis);
    const given = valid(analysisSchema.in.shape.interval, analysis.interval);
    // aws-ecs windows are at least CloudWatch's period (toResolved raises the interval to it).
    const interval = platform === 'aws-ecs' && given !== undefined ? Math.max(given, AWS_MIN_INTERVAL_MS) : given;
    steps.forEach((step, i) => {
      const bake = valid(trafficSchema.shape.steps.element.in.shape.bake, asObject(step).bake);
      if (interval !== undefined && bake !== undefined && bake > 0 && bake < interval) {
        add(
          ['traffic', 'steps', i, 'bake'],
          `${formatMs(bake)} is shorter than analysis.interval (${formatMs(interval)}), so no analysis window would complete; use 0 or at least ${formatMs(interval)}`,
        );
      }
    });
  }

  checkApprovals(s.approvals, ['approvals'], add);
  const rollback = asObject(s.rollback);
  checkApprovals(rollback.approvals, ['rollback', 'approvals'], add);
  uniqueItems(rollback.dbRestoreApprovers, ['rollback', 'dbRestoreApprovers'], add);
  return out;
}

function checkApprovals(raw: unknown, at: Path, add: (path: Path, message: string) => void): void {
  const approvals = asObject(raw);
  const gates = Array.isArray(approvals.gates)
    ? approvals.gates.filter((g): g is ApprovalGate => valid(gateSchema, g) !== undefined)
    : [];
  uniqueItems(approvals.gates, [...at, 'gates'], add);
  uniqueItems(approvals.approvers, [...at, 'approvers'], add);
  const approvers = approvals.approvers;
  if (gates.length > 0 && (approvers === undefined || (Array.isArray(approvers) && approvers.length === 0))) {
    add(
      [...at, 'approvers'],
      `must list at least one approver while ${formatPath([...at, 'gates'])} is not empty (${[...new Set(gates)].join(', ')}); nobody could approve otherwise`,
    );
  }
}

function uniqueItems(list: unknown, at: Path, add: (path: Path, message: string) => void): void {
  if (!Array.isArray(list)) return;
  list.forEach((item, i) => {
    if (typeof item === 'string' && list.indexOf(item) < i) {
      add([...at, i], `${JSON.stringify(item)} is listed twice; list each once`);
    }
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Resolving

/** The environment used when none is given: the first one the service lists. @throws UserError for an unknown service. */
export function defaultEnvironment(config: RunbookConfig, service: string): string {
  const definition = serviceDefinition(config, service);
  const first = Object.keys(definition.environments)[0];
  if (first === undefined) {
    throw new UserError(
      `service "${service}" lists no environments in ${config.source}`,
      `add services.${service}.environments`,
    );
  }
  return first;
}

/**
 * One service in one environment: the base block merged with `environments.<environment>` (maps merge, lists and
 * values replace, null removes), validated, with durations in ms and paths absolute.
 * @throws UserError for an unknown service or environment (listing the known ones); RunbookConfigError when the
 *   merged settings are invalid.
 */
export function resolveService(config: RunbookConfig, service: string, environment: string): ResolvedService {
  const definition = serviceDefinition(config, service);
  const overrides = definition.environments[environment];
  if (overrides === undefined) {
    const known = Object.keys(definition.environments);
    throw new UserError(
      `service "${service}" has no environment "${environment}"${didYouMean(environment, known)}; its environments: ${known.join(', ')}`,
      `use one of ${known.join(', ')}, or add ${environment} under services.${service}.environments in ${config.source}`,
    );
  }
  const merged = mergePatch(definition.base, overrides);
  const at: Path = ['services', service];
  const problems = validateService(merged).map((p) => {
    const inOverride = fromOverride(definition.base, overrides, p.path);
    const path = inOverride ? [...at, 'environments', environment, ...p.path] : [...at, ...p.path];
    return `${formatPath(path)}: ${problemMessage(p, inOverride)}`;
  });
  if (problems.length > 0) throw new RunbookConfigError(config.source, problems);
  const parsed = serviceSchema.parse(merged);
  return toResolved(parsed, { service, environment, source: config.source, baseDir: config.baseDir });
}

function serviceDefinition(config: RunbookConfig, service: string): ServiceDefinition {
  const definition = Object.hasOwn(config.services, service) ? config.services[service] : undefined;
  if (!definition) {
    const known = Object.keys(config.services);
    throw new UserError(
      `unknown service "${service}"${didYouMean(service, known)}; ${config.source} defines: ${known.join(', ') || '(none)'}`,
      `use one of ${known.join(', ')}, or add "${service}" under services: in ${config.source}`,
    );
  }
  return definition;
}

function toResolved(
  s: ParsedService,
  at: { service: string; environment: string; source: string; baseDir: string },
): ResolvedService {
  const common: ServiceCommon = {
    service: at.service,
    environment: at.environment,
    source: at.source,
    health: {
      liveness: s.health.liveness,
      readiness: s.health.readiness,
      timeoutMs: s.health.timeout,
      deadlineMs: s.health.deadline,
    },
    smoke: s.smoke.map((c) => ({
      name: c.name,
      method: c.method,
      path: c.path,
      ...(c.body !== undefined ? { body: c.body as JsonValue } : {}),
      expectStatus: c.expectStatus,
      ...(c.bodyMatches !== undefined ? { bodyMatches: c.bodyMatches } : {}),
    })),
    ...(s.database
      ? {
          database: {
            name: s.database.name,
            ...(s.database.urlEnv ? { urlEnv: s.database.urlEnv } : {}),
            ...(s.database.migrations ? { migrationsDir: path.resolve(at.baseDir, s.database.migrations) } : {}),
          },
        }
      : {}),
    traffic: { steps: s.traffic.steps },
    analysis: s.analysis,
    approvals: s.approvals,
    rollback: s.rollback,
    ...(s.drill ? { drill: s.drill } : {}),
  };
  // serviceCrossChecks() guarantees aws for aws-ecs, and an analysis interval of at least a minute when given.
  if (s.platform === 'aws-ecs') {
    const analysis = { ...common.analysis, intervalMs: Math.max(common.analysis.intervalMs, AWS_MIN_INTERVAL_MS) };
    const aws = s.aws as AwsEcsSpec;
    const rds =
      aws.rds && s.database ? { rds: { ...aws.rds, database: s.database.name, urlEnv: s.database.urlEnv ?? '' } } : {};
    return { ...common, analysis, platform: 'aws-ecs', aws: { ...aws, ...rds } };
  }
  // serviceCrossChecks() guarantees listen and release for single-host.
  const { listen, release } = s as Required<Pick<ParsedService, 'listen' | 'release'>>;
  return {
    ...common,
    platform: 'single-host',
    listen: { port: listen.port },
    release: {
      command: release.command,
      cwd: path.resolve(at.baseDir, release.cwd),
      env: release.env,
      portRange: release.portRange,
      drainMs: release.drain,
    },
  };
}

/** A release's command, cwd and env with {version} and {port} filled in, ready to spawn. */
export interface RenderedRelease {
  command: string[];
  cwd: string;
  env: Record<string, string>;
}

/**
 * Fills in {version} and {port}.
 * @throws UserError when the version could escape the release folder (it may hold letters, digits, '.', '_', '-').
 */
export function renderRelease(release: ReleaseSpec, values: { version: string; port: number }): RenderedRelease {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(values.version) || values.version.includes('..')) {
    throw new UserError(
      `invalid release version ${JSON.stringify(values.version)}: it names a folder, so it may hold only letters, digits, '.', '_' and '-' (no '..')`,
      'use a version like v2 or 1.4.0',
    );
  }
  const fill = (s: string) =>
    s.replace(PLACEHOLDER, (whole, name: string) =>
      name === 'version' ? values.version : name === 'port' ? String(values.port) : whole,
    );
  return {
    command: release.command.map(fill),
    cwd: fill(release.cwd),
    env: Object.fromEntries(Object.entries(release.env).map(([k, v]) => [k, fill(v)])),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Helpers

/** JSON merge patch (RFC 7386): maps merge recursively, anything else replaces, null removes the key. */
function mergePatch(target: JsonValue | undefined, patch: JsonValue): JsonValue {
  if (!isPlainObject(patch)) return patch;
  const result: JsonObject = isPlainObject(target) ? { ...(target as JsonObject) } : {};
  for (const [key, value] of Object.entries(patch as JsonObject)) {
    if (value === null) delete result[key];
    else result[key] = mergePatch(result[key], value);
  }
  return result;
}

/**
 * Where a problem at `p` of a merged service is written: in the override when the override set that value (or replaced
 * a parent), or brought in a map the base does not have; in the base when the override only merged keys into it.
 */
function fromOverride(base: JsonObject, overrides: JsonObject, p: Path): boolean {
  if (!writtenIn(overrides, p)) return false;
  const value = valueAt(overrides, p);
  return !isPlainObject(value) || !isPlainObject(valueAt(base, p));
}

function valueAt(root: JsonValue, p: Path): unknown {
  let node: unknown = root;
  for (const segment of p) {
    if (typeof node !== 'object' || node === null || !Object.hasOwn(node, segment)) return undefined;
    node = (node as Record<string, unknown>)[segment];
  }
  return node;
}

/** Whether `layer` holds the value at `p`, or replaced one of its parents with a list or a value. */
function writtenIn(layer: JsonObject, p: Path): boolean {
  if (p.length === 0) return false;
  let node: unknown = layer;
  for (const segment of p) {
    if (!isPlainObject(node)) return true;
    if (!Object.hasOwn(node, segment)) return false;
    node = node[segment];
  }
  return true;
}

/** Collects problems as `path: message` pairs. */
class Problems {
  readonly list: Problem[] = [];
  /** Allowed keys of each strict object that met an unknown key, by path (filled in by errorMap). */
  readonly allowedKeys = new Map<string, string[]>();

  add(path: Path, message: string): void {
    this.list.push({ path, message, kind: 'field' });
  }

  addZod(issues: z.core.$ZodIssue[], at: Path): void {
    for (const issue of issues) {
      const p: Path = [...at, ...issue.path.map((s) => (typeof s === 'symbol' ? String(s) : s))];
      if (issue.code === 'unrecognized_keys') {
        const allowed = this.allowedKeys.get(formatPath(issue.path as Path)) ?? [];
        for (const key of issue.keys) {
          this.list.push({ path: [...p, key], message: unknownKeyMessage(key, allowed, p), kind: 'field', allowed });
        }
      } else {
        this.add(p, issue.message);
      }
    }
  }

  throwIfAny(source: string): void {
    if (this.list.length === 0) return;
    const lines = [...new Set(this.list.map((p) => `${formatPath(p.path)}: ${p.message}`))];
    throw new RunbookConfigError(source, lines);
  }
}

function unknownKeyMessage(key: string, allowed: string[], parent: Path): string {
  if (parent.at(-1) === 'database' && /url|password|secret/i.test(key)) {
    return `unknown key; ${SECRET_WHY}: put the URL in an environment variable on the worker and name it in database.urlEnv`;
  }
  return `unknown key${didYouMean(key, allowed)}; allowed here: ${allowed.join(', ')}`;
}

/** The per-parse error map: plain messages that say what is allowed. Schema-specific messages take precedence. */
function errorMap(problems: Problems): z.core.$ZodErrorMap {
  return (iss) => {
    const expects = (iss.inst as { description?: string } | undefined)?.description;
    if (iss.input === undefined) {
      if (iss.code === 'invalid_value') return `is required: one of ${iss.values.map(String).join(', ')}`;
      if (iss.code === 'invalid_type' || iss.code === 'invalid_union') {
        return `is required${expects ? `: ${expects}` : ''}`;
      }
    }
    switch (iss.code) {
      case 'invalid_type':
        return `must be ${typeName(iss.expected)}${expects ? ` (${expects})` : ''}, got ${describeValue(iss.input)}${quoteHint(iss.input)}`;
      case 'invalid_value': {
        const values = iss.values.map(String);
        return `must be one of ${values.join(', ')}, got ${describeValue(iss.input)}${didYouMean(String(iss.input), values)}`;
      }
      case 'unrecognized_keys': {
        const shape = (iss.inst as { shape?: Record<string, unknown> } | undefined)?.shape;
        problems.allowedKeys.set(formatPath((iss.path ?? []) as Path), Object.keys(shape ?? {}));
        return 'unknown key';
      }
      case 'invalid_key':
        return iss.issues.map((i) => i.message).join('; ');
      case 'too_small':
        if (iss.origin === 'array') return `must list at least ${String(iss.minimum)}, got ${describeValue(iss.input)}`;
        return undefined;
      default:
        return undefined;
    }
  };
}

function typeName(expected: string): string {
  const names: Record<string, string> = {
    object: 'a map',
    record: 'a map',
    array: 'a list',
    tuple: 'a list',
    string: 'a string',
    number: 'a number',
    int: 'a whole number',
    boolean: 'true or false',
  };
  return names[expected] ?? expected;
}

/** A value for a message: strings quoted, numbers as is, containers by kind. */
function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'an empty value';
  if (typeof value === 'string') return JSON.stringify(value);
  if (Array.isArray(value)) {
    const text = JSON.stringify(value);
    return text.length <= 40 ? text : 'a list';
  }
  if (typeof value === 'object') return 'a map';
  return String(value);
}

/** YAML reads an unquoted `{port}` as a map with the key `port`: say so, it is the usual cause. */
function quoteHint(value: unknown): string {
  if (!isPlainObject(value)) return '';
  const keys = Object.keys(value);
  return keys.length === 1 && value[keys[0]!] === null
    ? `; YAML reads an unquoted {${keys[0]}} as a map: quote it, "{${keys[0]}}"`
    : '';
}

/** `services.shop.traffic.steps[1].weight`; keys that are not plain words are quoted: `env["a.b"]`. */
function formatPath(p: readonly (string | number)[]): string {
  let out = '';
  for (const segment of p) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else if (/^[A-Za-z0-9_-]+$/.test(segment)) out += out === '' ? segment : `.${segment}`;
    else out += `[${JSON.stringify(segment)}]`;
  }
  return out === '' ? '(file)' : out;
}

/** ` (did you mean "health"?)` when a candidate is close to the word, else ''. */
function didYouMean(
  word: string,
  candidates: readonly string[],
  show: (s: string) => string = (s) => JSON.stringify(s),
): string {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  const tolerance = Math.max(1, Math.floor(word.length / 3));
  if (best === undefined || bestDistance > tolerance) {
    const w = word.toLowerCase();
    best = w.length >= 3 ? candidates.find((c) => c.toLowerCase().startsWith(w)) : undefined;
  }
  return best !== undefined ? ` (did you mean ${show(best)}?)` : '';
}

/** Optimal string alignment distance: insertions, deletions, substitutions and adjacent transpositions. */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  const at = (i: number, j: number) => d[i]?.[j] ?? Infinity;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, at(i - 2, j - 2) + 1);
      d[i]![j] = v;
    }
  }
  return at(a.length, b.length);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function asObject(value: unknown): Record<string, unknown> {
  return isPlainObject(value) ? value : {};
}

/** The value parsed by `schema`, or undefined when it is not valid (its own problem is reported elsewhere). */
function valid<S extends z.ZodType>(schema: S, value: unknown): z.output<S> | undefined {
  const result = schema.safeParse(value);
  return result.success ? result.data : undefined;
}

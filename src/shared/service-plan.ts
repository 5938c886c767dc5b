/**
 * A service's runbook settings for one environment, as resolved from runbook.yaml: plain JSON (it goes into
 * workflow inputs and histories), durations in milliseconds, paths absolute, and no secrets. Workflow-safe:
 * src/runbook-config/ produces these; workflows and activities consume them.
 */
import type { SigningPolicy } from './signed';

/** Service and environment names (runbook.yaml's keys, and the names a request carries). */
export const NAME_PATTERN = /^[a-z][a-z0-9-]{0,62}$/;
export const NAME_HINT = "lowercase letters, digits and '-', starting with a letter, at most 63 characters";

/** Where a service runs. `single-host`: processes behind the stack's HAProxy. `aws-ecs`: an ECS service. */
export const PLATFORMS = ['single-host', 'aws-ecs'] as const;
export type Platform = (typeof PLATFORMS)[number];

/** The points of a deploy where a human may have to approve, in the order a deploy reaches them. */
export const APPROVAL_GATES = ['before-start', 'before-traffic', 'go-live'] as const;
export type ApprovalGate = (typeof APPROVAL_GATES)[number];

/** What a gate does when nobody decides within its timeout. */
export const TIMEOUT_ACTIONS = ['abort', 'proceed'] as const;
export type TimeoutAction = (typeof TIMEOUT_ACTIONS)[number];

export const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;
export type HttpMethod = (typeof HTTP_METHODS)[number];

/** The placeholders a release's command, cwd and env may contain. */
export const RELEASE_PLACEHOLDERS = ['version', 'port'] as const;

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

/** How to run one release of a single-host service as a process. */
export interface ReleaseSpec {
  /** argv (no shell); may contain {version} and {port}. Expand with renderRelease(). */
  command: string[];
  /** Absolute working folder; may contain {version}. */
  cwd: string;
  /** Plain (non-secret) environment for the process; values may contain {version} and {port}. */
  env: Record<string, string>;
  /** The ports a release may listen on, inclusive; the worker picks a free one per release. */
  portRange: PortRange;
  /** How long an old release keeps serving its open connections after traffic has left it, before it is stopped. */
  drainMs: number;
}

export interface PortRange {
  min: number;
  max: number;
}

/** An HTTP GET on the release's own port. */
export interface HttpProbe {
  /** URL path, starting with `/`. */
  path: string;
  /** The status that means healthy. */
  expectStatus: number;
}

/** The health gate a new release must pass before it gets traffic. */
export interface HealthSpec {
  /** Is the process up. */
  liveness: HttpProbe;
  /** Can it serve (dependencies reachable, schema in place). */
  readiness: HttpProbe;
  /** Timeout of one probe request. */
  timeoutMs: number;
  /** How long the whole gate may take before the release counts as unhealthy. */
  deadlineMs: number;
}

/** The placeholders a release-provided command may contain: {version} always, {url} in smoke checks. */
export const COMMAND_PLACEHOLDERS = ['version', 'url'] as const;

/**
 * A command the release brings (argv, no shell: `[npm, run, db:migrate]`), run from the release (single-host: its
 * folder, environment and user; aws-ecs: a one-off task of its task definition) with a timeout. Its exit code
 * decides: 0 passes, anything else fails.
 */
export interface CommandSpec {
  /** argv; may contain {version} (and {url} in a smoke check). */
  command: string[];
  /** How long it may run before it is stopped (SIGTERM, then SIGKILL) and counts as failed. */
  timeoutMs: number;
}

/** Where a command smoke check runs: from the release (its folder, or a one-off task), or on the worker. */
export const COMMAND_SOURCES = ['release', 'worker'] as const;
export type CommandSource = (typeof COMMAND_SOURCES)[number];

/** A smoke check that is a command of the release's: it passes when it exits 0; {url} is the candidate's address. */
export interface CommandSmokeCheck extends CommandSpec {
  name: string;
  /**
   * `release` (the default): single-host in the release's folder, aws-ecs as a one-off task of the new revision;
   * `worker`: on the worker, in the runbook.yaml's folder, against the candidate's (test listener's) address.
   */
  runFrom: CommandSource;
}

/** A smoke check: an HTTP request, or a command of the release's. */
export type SmokeCheck = HttpSmokeCheck | CommandSmokeCheck;

/** True for a smoke check that runs a command (else it is an HTTP request). */
export function isCommandCheck(check: SmokeCheck): check is CommandSmokeCheck {
  return 'command' in check;
}

/** Whether a release's migrations keep the previous release working (expand-only) or not. */
export const MIGRATION_COMPATIBILITY = ['backward', 'breaking'] as const;
export type MigrationCompatibility = (typeof MIGRATION_COMPATIBILITY)[number];

/** The service's own migration tool: a command that applies what is pending, and one that says nothing is. */
export interface MigrateCommandSpec extends CommandSpec {
  /** Run after the migration: it must exit 0, meaning nothing is pending (`npm run db:status`). */
  status?: CommandSpec;
}

/** A request sent to a new release before it gets traffic; the deploy fails when the answer does not match. */
export interface HttpSmokeCheck {
  /** Unique within the service; shown in the deploy's status. */
  name: string;
  method: HttpMethod;
  /** URL path, starting with `/`. */
  path: string;
  /** Sent as a JSON body when present. */
  body?: JsonValue;
  expectStatus: number;
  /** A regular expression (JavaScript syntax) the response body must match. */
  bodyMatches?: string;
}

/** The service's PostgreSQL database. Names only: the URL, with its password, stays on the worker. */
export interface DatabaseSpec {
  /** Database name (on the stack's PostgreSQL for single-host). */
  name: string;
  /**
   * Environment variable on the worker that holds the database URL. When absent, the worker derives the URL from
   * its own stack.
   */
  urlEnv?: string;
  /**
   * Absolute folder of SQL migrations (node-pg-migrate files, or plain ordered `001_x.sql` files); may contain
   * {version}: the folder inside the release being deployed (expand with migrationsDirFor). Absent when the service
   * has no migrations folder.
   */
  migrationsDir?: string;
  /** The release's own migration command instead of a folder (run after the snapshot, before the release starts). */
  migrate?: MigrateCommandSpec;
  /**
   * Whether this environment's releases' migrations are backward compatible (the default, expand-only: the previous
   * release still works on the new schema) or breaking (an app-only rollback across it is refused). Absent in plans
   * resolved before release commands: backward.
   */
  compatibility?: MigrationCompatibility;
}

/** The migrations folder of `version`: {version} in the configured folder filled in (a folder name, never '..'). */
export function migrationsDirFor(database: DatabaseSpec, version: string): string | undefined {
  return database.migrationsDir?.split('{version}').join(version);
}

/** One step of the traffic shift to the new release. */
export interface TrafficStep {
  /** Percent of traffic on the new release, 1..100. */
  weight: number;
  /** How long to hold this weight while the analysis watches; 0 moves on at once. */
  bakeMs: number;
}

/** Automatic analysis of the new release while it takes traffic: a failed window counts towards rollback. */
export interface AnalysisSpec {
  /** Largest tolerated fraction (0..1) of 5xx responses in a window. */
  max5xxRate: number;
  /** Largest tolerated 95th percentile latency in a window, in milliseconds. */
  maxP95LatencyMs: number;
  /** A window with fewer requests is inconclusive: neither a pass nor a failure. */
  minRequests: number;
  /** Length of one analysis window. */
  intervalMs: number;
  /** Consecutive failed windows tolerated; one more triggers the rollback. */
  failuresTolerated: number;
  /**
   * What a baked traffic step that ends without enough evidence does (see {@link StepEvidenceNeed}): `pause` for a
   * human at the `unjudged-step` gate, `extend` the bake (up to `extendMaxMs`, then fail), `fail` (roll back) or
   * `proceed` (the outcome then says "unjudged"). Absent in plans resolved before judged steps: treated as proceed.
   */
  onInconclusive?: InconclusiveAction;
  /** Requests the canary must answer in a baked step; absent: derived from `expectedRps` (see stepEvidenceNeed). */
  stepMinRequests?: number;
  /** Conclusive windows (pass or fail, not too few requests) a baked step needs to count as judged; absent: 1. */
  minConclusiveWindows?: number;
  /** The service's expected request rate (all releases together), req/s; used for the default step minimum. */
  expectedRps?: number;
  /** How much longer `extend` bakes a step that lacks evidence before it fails. */
  extendMaxMs?: number;
  /** The judge against the stable release; absent in older plans (then only the absolute limits judge). */
  compare?: CompareSpec;
  /**
   * The router's own cut-off of a failing canary (single-host: HAProxy's `observe layer7`, `error-limit`,
   * `on-error mark-down` on the canary's server); absent when off and in plans resolved before it existed.
   */
  cutoff?: CutoffSpec;
}

/**
 * The router takes the canary out on its own after `errorLimit` consecutive errors (5xx answers, broken or timed-out
 * responses), without waiting for an analysis window; the deploy then rolls back. Only the canary's server is
 * watched, and only while a stable release serves beside it.
 */
export interface CutoffSpec {
  /** Consecutive errors of the canary after which the router marks it down. */
  errorLimit: number;
  /**
   * The rate rule (since patch `canary-rate-cutoff`, on routers that can take a release out: single-host): the
   * cut-off's watch takes the canary out when its recent requests fail too often (see shared/cutoff-rate.ts).
   * Absent: the default rule (DEFAULT_RATE_CUTOFF), kept out of the plan so that plans without it stay the same;
   * false: off.
   */
  rate?: RateCutoffSpec | false;
}

/** The cut-off's rate rule: out when, over the canary's last `overRequests` attempts, errors reach both limits. */
export interface RateCutoffSpec {
  /** The failed share of those attempts (5xx and connection errors) at which the canary is out. */
  max5xxRate: number;
  /** How many of the canary's most recent attempts the rate is over (fewer at the start of a step). */
  overRequests: number;
  /** Errors needed among them before the rate counts (a single early error is not a rate). */
  minErrors: number;
}

/** What a baked step without enough evidence does. */
export const INCONCLUSIVE_ACTIONS = ['pause', 'extend', 'fail', 'proceed'] as const;
export type InconclusiveAction = (typeof INCONCLUSIVE_ACTIONS)[number];

/**
 * The judge of the canary against the stable release over the same time: a canary fails when it is both worse by
 * the ratio and significantly worse at the confidence (the false-alarm rate is 1 - confidence per step).
 */
export interface CompareSpec {
  /** Largest tolerated ratio of the canary's error rate (5xx and connection errors) to the stable's. */
  max5xxRatio: number;
  /** Largest tolerated ratio of the canary's p95 latency to the stable's. */
  maxP95Ratio: number;
  /** Differences of p95 below this many ms are never a regression (timer resolution, noise of fast services). */
  minP95DeltaMs: number;
  /** 1 - the false-alarm rate of one step (0.5..0.9999). */
  confidence: number;
  /**
   * The start of a step whose latency is not judged (new processes warming up), since patch `judge-short-warmup`.
   * Absent: {@link DEFAULT_WARMUP_MS} when the canary is compared with a baseline (a fresh process too, so both warm
   * up alike), one analysis interval against the stable release (warm: a cold canary would look slower).
   */
  warmupMs?: number;
  /**
   * What the canary is compared with (analysis.compare.baseline): `on`, a baseline (a fresh process of the stable
   * version at the canary's weight, where the platform offers it: PlatformPlan.baseline); `off`, the stable release
   * itself; absent or `auto`, a baseline where the platform offers one.
   */
  baseline?: BaselineMode;
}

/** The warm-up of a step judged against a baseline, unless analysis.compare.warmup says otherwise. */
export const DEFAULT_WARMUP_MS = 250;

export const BASELINE_MODES = ['auto', 'on', 'off'] as const;
export type BaselineMode = (typeof BASELINE_MODES)[number];

/** Which human approvals a procedure waits for, and who may give them. */
export interface ApprovalPolicy {
  /** The gates to stop at, in the order a deploy reaches them (each at most once). */
  gates: ApprovalGate[];
  /** Who may approve (an allow-list of user names); not empty when gates is not. */
  approvers: string[];
  /** The person who started the procedure may not approve it. */
  fourEyes: boolean;
  /** How long a gate waits for a decision. */
  timeoutMs: number;
  /** What happens when nobody decides in time. */
  onTimeout: TimeoutAction;
}

export interface RollbackSpec {
  /** Approvals for a rollback; by default none (rolling back is the safe direction). */
  approvals: ApprovalPolicy;
  /** Who may approve restoring the database from a snapshot (always four-eyes); empty: nobody may. */
  dbRestoreApprovers: string[];
}

/** The restore drill: restore the latest snapshot somewhere safe and time it. */
export interface DrillSpec {
  /** The recovery time objective the drill is measured against. */
  rtoTargetMs: number;
  /** When to run the drill on its own: a 5-field cron expression (or @daily, @weekly, ...). */
  schedule?: string;
  /**
   * The service's own integrity check, run from the restored release against the restored copy (DATABASE_URL of the
   * copy): it must exit 0; its output becomes the drill's integrity notes.
   */
  integrityCommand?: CommandSpec;
}

/**
 * Continuous backups (single-host: pgBackRest on the stack's PostgreSQL, one repository for the whole cluster; see
 * docs/backups.md): when to take base backups and how long to keep them.
 */
export interface BackupSpec {
  /** A cron expression (UTC) per backup type; `runbook backup schedule` makes a Temporal Schedule of each. */
  schedule?: { full?: string; diff?: string; incr?: string };
  /** Full backups kept, differential backups kept, or days kept (the newest full is always kept). */
  retention: { full?: number; diff?: number; days?: number };
  /** `pgbackrest verify` after each backup. */
  verify: boolean;
}

/** What every resolved service has, whatever its platform. */
export interface ServiceCommon {
  /** The service's name in runbook.yaml. */
  service: string;
  /** The environment these settings are for. */
  environment: string;
  /** Absolute path of the runbook.yaml it came from. */
  source: string;
  health: HealthSpec;
  smoke: SmokeCheck[];
  database?: DatabaseSpec;
  traffic: { steps: TrafficStep[] };
  analysis: AnalysisSpec;
  approvals: ApprovalPolicy;
  rollback: RollbackSpec;
  /** What the environment accepts of people (absent in plans resolved before signed decisions: signatures required). */
  signing?: SigningPolicy;
  drill?: DrillSpec;
  backup?: BackupSpec;
}

/** A service run as processes on one host, behind the stack's HAProxy. */
export interface SingleHostService extends ServiceCommon {
  platform: 'single-host';
  /** The stable HAProxy frontend port clients use; releases come and go behind it. */
  listen: { port: number };
  release: ReleaseSpec;
}

/** The two ECS services of a blue/green pair, or their two target groups, by colour. */
export interface BlueGreen {
  blue: string;
  green: string;
}

/** Where the tasks of an ECS service read the database host from; a database restore rewrites it. */
export type EndpointHolder = { ssmParameter: string } | { secret: string; key?: string } | { taskEnv: string };

/**
 * A service on AWS ECS behind an application load balancer, its database on RDS PostgreSQL. Names and ARNs
 * only: credentials come from the worker's AWS credential chain and its environment.
 */
export interface AwsEcsSpec {
  region: string;
  /** An endpoint URL for every AWS client (a local moto_server in tests); absent: AWS's own. */
  endpoint?: string;
  cluster: string;
  /** The two ECS services of the blue/green pair; a release goes to the one that takes no traffic. */
  services: BlueGreen;
  /** The container of the task definition whose image a release changes. */
  container: string;
  /** The image of a release; contains {version}. */
  image: string;
  /** Plain (non-secret) environment set on the container; values may contain {version}. */
  env: Record<string, string>;
  /** The target groups of the two services, by colour (ARNs). */
  targetGroups: BlueGreen;
  /** The production listener rule whose forward action splits traffic (ARN); or `listener` for its default action. */
  listenerRule?: string;
  listener?: string;
  /** A listener that forwards to the release being checked (health and smoke checks before it takes traffic). */
  testListener: string;
  /** The scheme the checks use through the listeners. */
  scheme: 'http' | 'https';
  /**
   * The Host header and TLS server name (SNI) of the checks through the listeners, for a production rule with a
   * host-header condition and an HTTPS certificate for that name. Absent: the rule's host-header value when it has
   * exactly one, else none (the load balancer's DNS name).
   */
  checkHost?: string;
  /** How long a release keeps serving after traffic left it (the target groups' deregistration delay). */
  drainMs: number;
  /**
   * How late CloudWatch's load balancer figures are complete: an analysis window reads the whole minutes that ended
   * this long before it.
   */
  metricsDelayMs: number;
  /** How long a rollout may take to become stable, and how often it is polled. */
  rolloutTimeoutMs: number;
  pollIntervalMs: number;
  /** The RDS instance (or Aurora cluster) of the service's database; required with `database:`. */
  rds?: AwsRdsSpec;
}

/** Where the service's database lives on RDS: exactly one of `instance` and `cluster` is set. */
export interface AwsRdsSpec {
  /** The RDS DB instance identifier the service uses. */
  instance?: string;
  /**
   * Or the Aurora PostgreSQL DB cluster identifier it uses: snapshots are cluster snapshots, and a restore creates a
   * cluster with one writer instance `<cluster>-1` of class drill.instanceClass.
   */
  cluster?: string;
  /** The service's database name on it (database.name). */
  database: string;
  /** The worker environment variable with the URL (and credentials) of the database on the instance (database.urlEnv). */
  urlEnv: string;
  /** Where the tasks read the database host from; a database restore points it at the restored instance. */
  endpoint?: EndpointHolder;
  /**
   * Where a restore drill creates its instance `drill-<id>` (or cluster: then instanceClass, the class of its writer
   * instance, is set, since Aurora restores have no default).
   */
  drill: { subnetGroup?: string; securityGroups: string[]; instanceClass?: string };
  /** How often an instance (or cluster) being restored is polled (from the workflow, with durable timers). */
  pollIntervalMs: number;
  /**
   * What a snapshot's manifest reads from the live database before CreateDBSnapshot (absent: 'counts'):
   * 'counts' row counts (exact up to a bound per table, the planner's estimate above it) and the schema;
   * 'full' also every table's checksum (only honest when nothing writes); 'none' the schema and migration only.
   */
  fingerprint?: 'full' | 'counts' | 'none';
  /** The relative difference of row counts accepted against a manifest read from the live database (absent: 1%). */
  countTolerance?: number;
  /**
   * Overrides of what a database restore (rollback --restore-db) copies from the service's own instance or cluster
   * (DescribeDBInstances / DescribeDBClusters): the restored copy becomes production.
   */
  restore?: AwsRdsRestoreSpec;
  /** Which of the service's manual snapshots are deleted after a deploy's snapshot (absent: none are). */
  retention?: { keep?: number; maxAgeMs?: number };
}

/** Settings of a database restore's new instance (or cluster) that replace those read from the service's own. */
export interface AwsRdsRestoreSpec {
  instanceClass?: string;
  subnetGroup?: string;
  securityGroups?: string[];
  parameterGroup?: string;
  /** An Aurora cluster's DB cluster parameter group. */
  clusterParameterGroup?: string;
  optionGroup?: string;
  multiAz?: boolean;
  storageType?: string;
  deletionProtection?: boolean;
  iamAuth?: boolean;
  monitoringIntervalS?: number;
  monitoringRoleArn?: string;
  /** A cluster's KMS key (instances restore with the snapshot's key). */
  kmsKeyId?: string;
}

export interface AwsEcsService extends ServiceCommon {
  platform: 'aws-ecs';
  aws: AwsEcsSpec;
}

/**
 * One service in one environment, merged, validated and normalised: plain JSON (it goes into workflow inputs and
 * histories), durations in milliseconds, paths absolute, and no secrets.
 */
export type ResolvedService = SingleHostService | AwsEcsService;

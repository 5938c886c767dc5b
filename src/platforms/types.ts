import type { Platform, ReleaseSpec } from '../shared/service-plan';
import type { PlatformTarget, Targeted } from '../shared/target';
import type { ContinuousBackups } from './continuous-backups';

/**
 * The small interfaces that activities depend on. Each platform (single-host: processes + HAProxy +
 * pg_dump; aws-ecs: ECS + ELBv2 + RDS) implements them, so workflows never special-case a platform.
 * Nothing here is workflow code; results are plain JSON so activities can return them.
 */

/**
 * What a platform throws: the failure type activities report, whether retrying can help, and what to do.
 * Activities turn it into an ApplicationFailure of this `type` (non-retryable when `permanent`) with this
 * message and `details` (src/activities/failures.ts); platform code never imports Temporal. Anything else a
 * platform throws (a pg or network error, a plain Error for a state that passes) is retried as it is.
 */
export class PlatformError extends Error {
  /** The failure type workflows and operators see, e.g. SnapshotCorrupt or AwsAccessDenied. */
  readonly type: string;
  /** True when the same request can never succeed (invalid, not found, refused): no retry. */
  readonly permanent: boolean;
  /** What the operator should do about it; it also ends the message ("...; fix: <fix>"). */
  readonly fix?: string;
  /** Structured facts for the failure's details (e.g. the AWS error code, action and resource). */
  readonly details?: unknown[];

  constructor(
    message: string,
    opts: { type: string; permanent: boolean; fix?: string; details?: unknown[]; cause?: unknown },
  ) {
    super(opts.fix ? `${message}; fix: ${opts.fix}` : message, opts.cause === undefined ? {} : { cause: opts.cause });
    this.name = 'PlatformError';
    this.type = opts.type;
    this.permanent = opts.permanent;
    this.fix = opts.fix;
    this.details = opts.details;
  }
}

/** Where a service's traffic is routed: one route per service and environment. */
export interface RouteSpec extends Targeted {
  service: string;
  environment: string;
  /** single-host: the stable frontend port HAProxy listens on (127.0.0.1); 0 on aws-ecs (the listener rule routes). */
  listenPort: number;
}

/** A release as the router sees it: an address that serves the service. */
export interface RouteMember {
  /** Unique per release, [a-z0-9-], at most 40 characters; derived from the workflow id. */
  releaseId: string;
  host: string;
  port: number;
}

/** Cumulative per-release response counters (they only grow, except after a router restart). */
export interface TrafficCounters {
  /** Responses sent by this release, all status classes. */
  responses: number;
  /** Responses with a 5xx status sent by this release. */
  errors5xx: number;
  /** Connection or response errors HAProxy saw talking to this release (retried or not). */
  connectionErrors: number;
  /** When the counters were read (ms since epoch, router clock). */
  atMs: number;
}

export interface LatencySample {
  /** The 95th percentile of the release's response times in the window, ms; null with no sample. */
  p95Ms: number | null;
  samples: number;
  /**
   * The response times themselves (ms, at most {@link MAX_LATENCY_VALUES}, evenly thinned beyond), when asked for
   * and the router has them (single-host's per-request log; CloudWatch gives percentiles only). The judge's
   * distribution test uses them in the activity; they never reach a workflow.
   */
  values?: number[];
}

/** The most latency values a router returns for one release and span. */
export const MAX_LATENCY_VALUES = 20_000;

export interface TrafficRouter {
  /** Creates the service's frontend and backend (or adopts them); idempotent. */
  ensureRoute(route: RouteSpec): Promise<void>;
  /**
   * Adds a release as a server of the route at weight 0 (idempotent: same releaseId and address adopts). With
   * `cutoff`, a router that can (single-host's HAProxy) takes the release out on its own after that many consecutive
   * errors while another release serves beside it; other routers ignore it.
   */
  addMember(route: RouteSpec, member: RouteMember, options?: MemberOptions): Promise<void>;
  /**
   * Sets the split in percent per releaseId (members not named get 0; the values sum to 100), applied at
   * once through the runtime API and persisted so that a router restart keeps it.
   */
  setWeights(route: RouteSpec, percent: Record<string, number>): Promise<void>;
  /** The current split in percent per releaseId, and the members' addresses. */
  getWeights(route: RouteSpec): Promise<{ percent: Record<string, number>; members: RouteMember[] }>;
  /**
   * Takes a member out of rotation (weight 0, drain), waits until its in-flight requests finish or
   * `drainMs` passes, then removes it from the route. Idempotent.
   */
  removeMember(route: RouteSpec, releaseId: string, drainMs: number, signal?: AbortSignal): Promise<void>;
  readCounters(route: RouteSpec, releaseId: string): Promise<TrafficCounters>;
  /** Latency of the release's responses between two instants (ms since epoch); `values` asks for the samples. */
  latency(
    route: RouteSpec,
    releaseId: string,
    fromMs: number,
    toMs: number,
    opts?: { values?: boolean },
  ): Promise<LatencySample>;
  /** Maintenance: every request gets 503 with Retry-After while on (used by the database restore). */
  setMaintenance(route: RouteSpec, on: boolean, retryAfterSeconds?: number): Promise<void>;
  /**
   * A router that measures windows itself (CloudWatch's per-period sums) instead of cumulative counters: the
   * release's figures between two instants. Without it, windows are differences of readCounters(). `stepFromMs`:
   * when the traffic step began; a router whose figures come late and by period reads no period that began before
   * it (a period that holds the shift mixes two weights).
   */
  windowFigures?(
    route: RouteSpec,
    releaseId: string,
    fromMs: number,
    toMs: number,
    opts?: { stepFromMs?: number },
  ): Promise<WindowFigures>;
  /**
   * A router with its own cut-off (addMember's `cutoff`): whether it has taken the release out after consecutive
   * errors. Undefined when the release is still in, or has no cut-off.
   */
  cutoffState?(route: RouteSpec, releaseId: string): Promise<CutoffReport | undefined>;
  /**
   * One look of the cut-off's watch, as cheap as the router can make it (it is polled): cutoffState's report, and the
   * release's cumulative attempts and errors (5xx and failed connections; they only grow within one router process,
   * and start again at 0 after a restart or reload). Both absent when the release has no cut-off.
   */
  cutoffLook?(route: RouteSpec, releaseId: string): Promise<{ report?: CutoffReport; counters?: CutoffCounters }>;
  /**
   * Takes the release out of rotation at once (no new requests; kept out until it is removed or given all the
   * traffic, whatever split comes next): the rate cut-off's action. Returns its counters then.
   */
  takeOut?(route: RouteSpec, releaseId: string, detail: string): Promise<TrafficCounters>;
}

/** A release's cumulative attempts and errors as the cut-off's watch reads them (see TrafficRouter.cutoffLook). */
export interface CutoffCounters {
  /** Answers plus failed connection attempts. */
  attempts: number;
  /** 5xx answers plus failed connection attempts. */
  errors: number;
}

/** How a release joins a route. */
export interface MemberOptions {
  /** Take the release out after `errorLimit` consecutive errors (only while another release serves). */
  cutoff?: { errorLimit: number };
}

/** The router took a release out on its own (see TrafficRouter.cutoffState). */
export interface CutoffReport {
  /** When the router was seen to have taken it out (ms since epoch). */
  atMs: number;
  /** The consecutive errors that trigger the router's own cut-off (the canary's setting, whichever rule fired). */
  errorLimit: number;
  /** Set when the rate rule took it out (analysis.cutoff.rate): the errors and attempts it saw, and the rule. */
  rate?: { errors: number; attempts: number; max5xxRate: number; overRequests: number; minErrors: number };
  /** What happened, in words that name the router ("HAProxy took the canary out after 5 consecutive errors"). */
  detail: string;
  /** The release's counters when it was seen out. */
  counters: TrafficCounters;
}

export interface WindowFigures {
  requests: number;
  /** 5xx the release answered, plus elbErrors5xx when the router has them. */
  errors5xx: number;
  connectionErrors: number;
  p95Ms: number | null;
  samples: number;
  /**
   * The load balancer's own 5xx (a 502/504 for a release that hangs or resets) counted for the release, already in
   * errors5xx: aws-ecs weights the load balancer's figure by the release's share of its requests.
   */
  elbErrors5xx?: number;
  /** The most targets of the release found unhealthy in the window (aws-ecs UnHealthyHostCount); any fails it. */
  unhealthyHosts?: number;
}

/** How to start one release of a service. Secrets are not here: the runner adds them from its own environment. */
export interface StartReleaseRequest extends Targeted {
  service: string;
  environment: string;
  releaseId: string;
  version: string;
  /** single-host: the release as configured, with {version} and {port} placeholders that the runner fills in. */
  release?: ReleaseSpec;
  /** The database the release uses, if any: the runner passes its URL as DATABASE_URL. */
  database?: { name: string; urlEnv?: string };
}

export interface RunningRelease {
  service: string;
  environment: string;
  releaseId: string;
  version: string;
  host: string;
  port: number;
  /** http when absent. */
  scheme?: 'http' | 'https';
  /** The Host header and TLS server name of the checks (aws-ecs through a rule with a host condition); absent: host. */
  checkHost?: string;
  /** The process id (single-host); 0 on platforms without one. */
  pid: number;
  startedAtMs: number;
  logFile: string;
}

export interface ReleaseRunner {
  /**
   * How often a wait on a release (the health gate) asks the runner whether it still runs: 0 (each poll) where that
   * is a cheap local question, longer where the platform's API throttles.
   */
  readonly recheckMs?: number;
  /** Starts the release, or adopts it when it already runs (same releaseId). */
  start(spec: StartReleaseRequest, signal?: AbortSignal): Promise<RunningRelease>;
  /** Every running release on this platform. */
  list(): Promise<RunningRelease[]>;
  /** The running release, or undefined (a dead process is cleaned up). */
  get(service: string, environment: string, releaseId: string): Promise<RunningRelease | undefined>;
  /** SIGTERM, then SIGKILL after graceMs; false when it was not running. */
  stop(service: string, environment: string, releaseId: string, graceMs: number): Promise<boolean>;
  /**
   * Where the release's output is kept, for the failure message of a release that stopped: a failure message goes into
   * the workflow history and the Web UI, so it names the log and holds none of what the app printed (an app may print
   * its own secrets). `excerpt` is what the platform itself said about the release (ECS service events), if anything.
   */
  describeLog(service: string, environment: string, releaseId: string): Promise<ReleaseLog>;
}

/** See {@link ReleaseRunner.describeLog}. */
export interface ReleaseLog {
  /** Where to read the log: a path on the worker's host, an ECS service's events and log group. */
  location: string;
  /** The platform's own last words about the release (never the app's output); shown scrubbed. */
  excerpt?: string;
}

/** What a release command is for (it names the run, and the log's folder). */
export const COMMAND_PURPOSES = ['migrate', 'migrate-status', 'smoke', 'integrity'] as const;
export type CommandPurpose = (typeof COMMAND_PURPOSES)[number];

/** The most characters of a command's output a result carries (its end); the whole log stays where it ran. */
export const COMMAND_TAIL_CHARS = 4_000;

/**
 * One run of a command the release brings. Secrets are not here: the runner adds the database URL from its own
 * environment, as for a release.
 */
export interface ReleaseCommandRequest extends Targeted {
  service: string;
  environment: string;
  version: string;
  /**
   * The release id of the version the command comes from (single-host: the release's folder; aws-ecs: the tag that
   * finds the version's task definition revision).
   */
  releaseId: string;
  purpose: CommandPurpose;
  /**
   * Names this run, [a-z0-9-], at most 64 characters, derived from the workflow id and the step: a retried activity
   * with the same runId adopts the command that already runs (or has finished) instead of running it a second time
   * (aws-ecs: the one-off task's startedBy).
   */
  runId: string;
  /** argv with its placeholders filled in (no shell). */
  command: string[];
  timeoutMs: number;
  /** single-host: the release as configured ({version} folder and environment); the runner renders it. */
  release?: ReleaseSpec;
  /** The database the command is given as DATABASE_URL (a drill passes its restored copy). */
  database?: { name: string; urlEnv?: string };
  /** Run on the worker in this folder instead of from the release (a `runFrom: worker` smoke check). */
  workerCwd?: string;
}

/** How a release command ended. */
export interface ReleaseCommandResult {
  runId: string;
  /** The exit code; null when it was killed by a signal, timed out, or the platform stopped it. */
  exitCode: number | null;
  timedOut: boolean;
  /** Why the platform stopped it, when it did (ECS's stoppedReason, "killed by SIGKILL"). */
  stoppedReason?: string;
  /** The end of its output, scrubbed of credentials, at most COMMAND_TAIL_CHARS characters. */
  tail: string;
  /** Where the whole output is kept (a path on the worker's host, a CloudWatch Logs stream). */
  logLocation: string;
  startedAtMs: number;
  endedAtMs: number;
  /** True when this call found the run already started (by an earlier attempt) and waited for it. */
  adopted: boolean;
}

/** What a command reports while it runs (heartbeat details). */
export interface CommandProgress {
  phase: 'starting' | 'running' | 'stopping' | 'done';
  detail?: string;
}

/** Runs the release's own commands (migrations, checks) where the release runs. */
export interface ReleaseCommandRunner {
  /**
   * Runs the command to its end, or adopts the run with this runId. Resolves with the result whatever the exit code;
   * throws PlatformError ReleaseCommandFailed (permanent) when it cannot start (unknown version, empty command) and
   * retryable errors for a platform that is away.
   */
  run(
    req: ReleaseCommandRequest,
    progress?: (p: CommandProgress) => void,
    signal?: AbortSignal,
  ): Promise<ReleaseCommandResult>;
}

/** Row count and content checksum of one table, as recorded in a snapshot manifest. */
export interface TableFingerprint {
  /** schema-qualified, e.g. public.items */
  table: string;
  rows: number;
  /** md5 over the table's rows in a stable order; equal checksums mean equal contents. '' when not read. */
  checksum: string;
  /** `rows` is the planner's estimate (pg_class.reltuples), not a count: a table too large to count (aws-ecs). */
  estimated?: boolean;
}

/** What a snapshot contains, recorded when it is taken and checked when it is restored. */
export interface SnapshotManifest {
  snapshotId: string;
  service: string;
  environment: string;
  database: string;
  workflowId: string;
  createdAtMs: number;
  /** Where the dump lives (single-host: a pg_dump -Fc file; aws: the RDS snapshot identifier). */
  location: string;
  bytes: number;
  sha256: string;
  tables: TableFingerprint[];
  /** Name of the last applied migration (node-pg-migrate's table), or null when none ran. */
  migrationVersion: string | null;
  serverVersion: string;
  /** single-host: the worker's HMAC over the rest of the manifest; a snapshot without a valid one is never restored. */
  signature?: ManifestSignature;
  /**
   * What the tables' figures can be held to. Absent or 'exact': rows and checksums are those of the snapshot
   * (single-host: read in the dump's transaction; aws-ecs: read on the snapshot's first restored copy, see
   * `verifiedOn`). 'counts': row counts read from the live database shortly before the snapshot, so a restore may
   * differ by `countTolerance`; no checksums. 'schema': the tables and the migration version only.
   */
  claims?: 'exact' | 'counts' | 'schema';
  /** With claims 'counts': the relative difference of a table's row count that is accepted (e.g. 0.01). */
  countTolerance?: number;
  /** The restored copy (an RDS instance or cluster) the exact figures were read on, when not at the snapshot. */
  verifiedOn?: string;
}

/** Who vouches for a manifest: an HMAC with a key only the worker holds (single-host). */
export interface ManifestSignature {
  algorithm: string;
  /** Which key signed it: the first 16 hex digits of the key's sha256. */
  keyId: string;
  mac: string;
}

export interface ManifestComparison {
  ok: boolean;
  /** One line per difference, e.g. "public.items: 120 rows, snapshot has 125". */
  differences: string[];
  tables: TableFingerprint[];
  migrationVersion: string | null;
}

export interface SnapshotProgress {
  phase: string;
  /** Bytes written or read so far, when known. */
  bytes?: number;
}

export interface RestoreProgress {
  ready: boolean;
  detail: string;
}

export interface SnapshotStore {
  /**
   * Takes a consistent snapshot of `database` with its manifest (the dump and the fingerprints see the same
   * data). Idempotent: a complete snapshot with this id is adopted; a partial one is replaced.
   */
  take(
    req: { snapshotId: string; service: string; environment: string; database: string; workflowId: string },
    progress?: (p: SnapshotProgress) => void,
    signal?: AbortSignal,
  ): Promise<SnapshotManifest>;
  get(snapshotId: string): Promise<SnapshotManifest | undefined>;
  /** Newest first. */
  list(service: string, environment: string): Promise<SnapshotManifest[]>;
  /** Detects a truncated or corrupt dump before anything is touched (size, sha256, the archive's table of contents). */
  verify(snapshotId: string): Promise<{ ok: true } | { ok: false; reason: string }>;
  /**
   * Restores into the new database `target` with `jobs` parallel workers. A `target` left by an earlier,
   * crashed attempt is dropped and restored again; the source database is never touched.
   */
  restore(
    snapshotId: string,
    target: string,
    opts: { jobs: number },
    progress?: (p: SnapshotProgress) => void,
    signal?: AbortSignal,
  ): Promise<void | RestoreProgress>;
  /**
   * For a store whose restore runs on its own after restore() returned `{ ready: false }` (an RDS instance being
   * created from a snapshot): whether `target` is ready, and its state in words.
   */
  restoreStatus?(target: string): Promise<RestoreProgress>;
  /** How often an activity polls restoreStatus() while it waits for such a restore. */
  readonly restorePollMs?: number;
  /** Fingerprints `database` and compares it with the manifest. */
  compare(database: string, manifest: SnapshotManifest): Promise<ManifestComparison>;
  /** Fingerprints of a database as it is now (row counts for "what a restore would lose"). */
  fingerprint(database: string): Promise<{ tables: TableFingerprint[]; migrationVersion: string | null }>;
  dropDatabase(name: string): Promise<void>;
}

export interface MigrationResult {
  applied: string[];
  /** The last applied migration after the run. */
  version: string | null;
}

export interface Migrator {
  /** Names of the migrations in `dir` not yet applied to `database`, in order. */
  pending(database: string, dir: string): Promise<string[]>;
  /**
   * Applies the pending migrations under node-pg-migrate's advisory lock, all in one transaction: a failure
   * leaves the database as it was. Running it again applies nothing twice.
   */
  migrate(database: string, dir: string): Promise<MigrationResult>;
  /** The schema now: node-pg-migrate's last migration and a digest of the tables' columns (any migration tool). */
  schemaVersion(database: string): Promise<SchemaVersion>;
}

/** What a deploy records of the schema before and after its migration. */
export interface SchemaVersion {
  /** node-pg-migrate's last applied migration; null without its table (another tool, or none). */
  migration: string | null;
  /** `md5:<12 hex>` over every user table's columns and types; `empty` for a database without tables. */
  digest: string;
  tables: number;
}

/** What a restore drill asks of the PostgreSQL server a snapshot was restored on. */
export interface DrillChecks {
  /** Connects to `database` and runs a query; throws the connection error (e.g. 57P03 while it starts up). */
  ping(database: string): Promise<{ serverVersion: string }>;
  /**
   * pg_amcheck on `database`: every heap table and B-tree index (system catalogs and TOAST included), with
   * --heapallindexed (each heap tuple must have its index entries) and --install-missing (the amcheck extension
   * is created in the checked database, which is why only scratch copies are checked). `ok: false` means
   * corruption was found, `detail` says where. Throws when pg_amcheck cannot run or connect. It runs in batches of
   * tables and resumes after the last batch `run.resume` names.
   */
  amcheck(
    database: string,
    run?: {
      signal?: AbortSignal;
      /** Where an earlier attempt got to: the tables up to `after` are taken as checked. */
      resume?: AmcheckProgress;
      /** Hears of each batch checked (the activity heartbeats it). */
      onProgress?: (progress: AmcheckProgress) => void;
    },
  ): Promise<{ ok: boolean; detail: string }>;
}

/**
 * How far pg_amcheck got on `database`: every table up to `after` (`schema.name`, the tables sorted by it) was checked with its
 * TOAST and B-tree indexes, `relations` and `pages` in all.
 */
export interface AmcheckProgress {
  database: string;
  after: string;
  relations: number;
  pages: number;
}

/** Swaps a restored database into the place of the live one; the replaced one is kept under `replacedAs`. */
export type SwapDatabases = (
  database: string,
  restored: string,
  replacedAs: string,
) => Promise<'swapped' | 'already swapped'>;

/** Everything the activities need of one platform. */
export interface PlatformParts {
  router: TrafficRouter;
  releases: ReleaseRunner;
  snapshots: SnapshotStore;
  /**
   * Continuous backups (WAL archive + base backups), restorable to a moment; absent where the worker cannot archive
   * (a service on an external PostgreSQL keeps its pg_dump snapshots). See continuous-backups.ts.
   */
  backups?: ContinuousBackups;
  migrator: Migrator;
  drillChecks: DrillChecks;
  swapDatabases: SwapDatabases;
  /** The release's own commands; absent on a platform that cannot run them (the plan is then refused). */
  commands?: ReleaseCommandRunner;
  /**
   * Creates the service's database when it does not exist yet (the embedded stack's first deploy); returns whether
   * it did. Absent where the platform never creates databases: a missing one fails preflight with what to create.
   * Only for a database whose URL the worker derives from its own stack: one named by database.urlEnv (an external
   * PostgreSQL) is never created, only checked (the prepareDatabase activity decides).
   */
  ensureDatabase?(req: { service: string; environment: string; database: string }): Promise<'created' | 'exists'>;
}

/**
 * The platforms of a worker, by name: each built from its target's settings by its own factory (see
 * src/platforms/index.ts). `get` answers undefined for a platform this worker was built without.
 */
export interface PlatformRegistry {
  get(target: PlatformTarget): PlatformParts | undefined;
}

/** How a worker builds each platform it runs: one factory per platform name, from that target's settings. */
export type PlatformFactories = {
  [P in Platform]?: (target: Extract<PlatformTarget, { name: P }>) => PlatformParts;
};

/** What activities that touch a platform depend on. */
export interface PlatformDeps {
  platforms: PlatformRegistry;
}

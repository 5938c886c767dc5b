/**
 * `--dry-run` of deploy, rollback and drill: the plan the WORKER would run, asked of the worker (the planPreview
 * workflow, which runs the resolvePlan activity and starts nothing), printed for people, and compared with the plan
 * of the operator's own runbook.yaml by digest.
 */
import { randomBytes } from 'node:crypto';
import { TimeoutFailure, WorkflowFailedError, type Client } from '@temporalio/client';
import { UserError, errorMessage } from '../errors';
import { platformPlanOf } from '../platforms/descriptors';
import { platformDatabaseWhere, platformPlanRows } from '../platforms/preflight';
import { planDifferences, planDigest } from '../runbook-config';
import { formatDuration } from '../runbook-config/durations';
import { stepEvidenceNeed } from '../shared/analysis';
import { isCommandCheck, type DatabaseSpec, type ResolvedService } from '../shared/service-plan';
import { slug } from '../shared/ids';
import type { ResolvedPlan } from '../shared/request';
import type { ApprovalPolicy, CutoffSpec, HttpProbe } from '../shared/service-plan';
import { rateCutoffOf } from '../shared/cutoff-rate';
import { warmupOf } from '../shared/judge';
import type { planPreview } from '../workflows';
import type { Io, ParsedArgs } from './command';
import { localPlanFor, type LocalPlan } from './plan';
import { withClient, type TemporalTarget } from './temporal';

/** How long the CLI waits for a worker to answer a preview. */
const PREVIEW_TIMEOUT_MS = 20_000;

/**
 * The plan the worker resolves for `service` in `environment` from its own runbook config.
 * @throws UserError when no worker answers in time, or the worker refuses (unknown service, no usable config).
 */
export async function previewPlan(
  client: Client,
  target: TemporalTarget,
  service: string,
  environment: string,
): Promise<ResolvedPlan> {
  const workflowId = `plan-preview-${slug(service)}-${slug(environment)}-${randomBytes(3).toString('hex')}`;
  try {
    return await client.workflow.execute<typeof planPreview>('planPreview', {
      taskQueue: target.taskQueue,
      workflowId,
      args: [{ service, environment }],
      workflowExecutionTimeout: PREVIEW_TIMEOUT_MS,
    });
  } catch (err) {
    if (err instanceof WorkflowFailedError) {
      if (err.cause instanceof TimeoutFailure) {
        throw new UserError(
          `no worker on task queue ${target.taskQueue} answered within ${PREVIEW_TIMEOUT_MS / 1000} s`,
          'is a worker running? runbook doctor',
        );
      }
      // The activity's refusal (ActivityFailure -> ApplicationFailure), or the workflow's own.
      const why = err.cause?.cause instanceof Error ? err.cause.cause : err.cause;
      throw new UserError(`the worker refused: ${why?.message ?? errorMessage(err)}`);
    }
    throw err;
  }
}

const probe = (p: HttpProbe) => `GET ${p.path} -> ${p.expectStatus}`;
const list = (items: string[]) => (items.length > 0 ? items.join(', ') : 'none');
const policy = (a: ApprovalPolicy) =>
  `gates ${list(a.gates)}; approvers ${list(a.approvers)}${a.fourEyes ? ' (four-eyes)' : ''}; ` +
  `timeout ${formatDuration(a.timeoutMs)}, then ${a.onTimeout}`;

/** A resolved plan for people: one line per part (platform, release, checks, database, traffic, approvals). */
export function planLines(plan: ResolvedService): string[] {
  const rows: Array<[string, string]> = [];
  rows.push(...platformPlanRows(plan));
  const h = plan.health;
  rows.push([
    'health',
    `${probe(h.liveness)} and ${probe(h.readiness)} within ${formatDuration(h.deadlineMs)} (each ${formatDuration(h.timeoutMs)})`,
  ]);
  rows.push([
    'smoke',
    list(
      plan.smoke.map((c) =>
        isCommandCheck(c)
          ? `${c.name}: runs ${c.command.join(' ')} from the ${c.runFrom} (exit 0 passes, within ${formatDuration(c.timeoutMs)})`
          : `${c.name}: ${c.method} ${c.path} -> ${c.expectStatus}${c.bodyMatches ? ` matching /${c.bodyMatches}/` : ''}`,
      ),
    ),
  ]);
  const db = plan.database;
  rows.push([
    'database',
    db
      ? `${db.name} (URL ${db.urlEnv ? `from the worker's ${db.urlEnv}` : 'derived by the worker from its stack'})` +
        platformDatabaseWhere(plan) +
        `; migrations ${describeMigrations(db)}`
      : 'none',
  ]);
  rows.push([
    'traffic',
    plan.traffic.steps.map((s) => `${s.weight}%${s.bakeMs > 0 ? ` for ${formatDuration(s.bakeMs)}` : ''}`).join(' -> '),
  ]);
  const an = plan.analysis;
  rows.push([
    'analysis',
    `each ${formatDuration(an.intervalMs)} window fails over ${an.max5xxRate * 100}% 5xx or p95 over ${an.maxP95LatencyMs} ms ` +
      `(at least ${an.minRequests} requests); ${an.failuresTolerated} failed window(s) tolerated`,
  ]);
  if (an.compare) {
    const c = an.compare;
    const offered = platformPlanOf(plan).baseline;
    const mode = c.baseline ?? 'auto';
    const withBaseline = mode !== 'off' && offered !== undefined;
    const side = withBaseline ? 'baseline' : 'stable';
    const against = withBaseline
      ? `against a baseline (analysis.compare.baseline: ${mode}): ${offered.how}, at the canary's weight taken from the ` +
        "stable's share, stopped when the canary is promoted or rolled back"
      : `against the stable release${mode === 'off' ? ' (analysis.compare.baseline: off)' : ''}`;
    rows.push([
      'judge',
      `${against}: fails when the canary's error rate is over ${c.max5xxRatio}x the ${side}'s or its latency over ` +
        `${c.maxP95Ratio}x (and ${c.minP95DeltaMs} ms more: the p95, and the whole distribution against that margin), ` +
        `significant at ${c.confidence * 100}% per step (Fisher, Mann-Whitney); latency judged after a ` +
        `${formatDuration(warmupOf(an, withBaseline))} warm-up of each step`,
    ]);
  }
  const { name, cutoff } = platformPlanOf(plan);
  rows.push([
    'cut-off',
    !an.cutoff
      ? 'off (analysis.cutoff.enabled: false): only the analysis windows judge'
      : cutoff
        ? `${cutoff.router} takes the canary out after ${an.cutoff.errorLimit} consecutive errors (${cutoff.mechanism}; ` +
          `never the stable release)${rateWords(an.cutoff)}, and the deploy rolls back at once`
        : `analysis.cutoff (errorLimit ${an.cutoff.errorLimit}) does nothing here: ${name}'s router has no cut-off`,
  ]);
  const baked = plan.traffic.steps.filter((s) => s.bakeMs > 0);
  if (baked.length > 0) {
    const action = an.onInconclusive ?? 'proceed';
    const does = {
      pause: `pauses for a person at the unjudged-step gate (approval timeout ${formatDuration(plan.approvals.timeoutMs)}, then ${plan.approvals.onTimeout})`,
      extend: `bakes up to ${formatDuration(an.extendMaxMs ?? 0)} longer, then rolls back`,
      fail: 'rolls back',
      proceed: 'goes on, and the outcome says "unjudged"',
    }[action];
    rows.push([
      'evidence',
      `${baked.map((s) => `${s.weight}%: ${stepEvidenceNeed(an, s)} canary requests`).join(', ')}` +
        `${an.stepMinRequests === undefined ? ` (${an.expectedRps ? `half of what ${an.expectedRps} req/s brings` : 'analysis.minRequests; set expectedRps or stepMinRequests'})` : ''}` +
        `; a step without it ${does} (onInconclusive: ${action})`,
    ]);
  }
  rows.push(['approvals', policy(plan.approvals)]);
  rows.push([
    'rollback',
    `${policy(plan.rollback.approvals)}; database restore approved by ${list(plan.rollback.dbRestoreApprovers)} (four-eyes)`,
  ]);
  if (plan.drill)
    rows.push([
      'drill',
      `RTO target ${formatDuration(plan.drill.rtoTargetMs)}${plan.drill.schedule ? `; schedule "${plan.drill.schedule}"` : ''}`,
    ]);
  return rows.map(([k, v]) => `  ${k.padEnd(10)} ${v}`);
}

/**
 * Prints the plan the worker would run (or JSON with --json) and whether it is the one of the local runbook.yaml.
 * Returns 0 when the digests match, 1 when they differ or there is no local plan to compare.
 */
export function printDryRun(io: Io, json: boolean, headline: string, worker: ResolvedPlan, local: LocalPlan): number {
  const ours = 'plan' in local ? { ...planDigest(local.plan), source: local.plan.source } : undefined;
  const localError = 'error' in local ? local.error.message : undefined;
  const matches = ours?.digest === worker.digest;
  const differences = 'plan' in local ? planDifferences(worker.plan, local.plan) : [];
  if (json) {
    io.out(
      JSON.stringify(
        {
          matches,
          worker: { source: worker.source, digest: worker.digest, plan: worker.plan },
          local: ours ? { source: ours.source, digest: ours.digest } : { error: localError },
          differences: differences.map((d) => ({ field: d.field, worker: d.ours, yours: d.theirs })),
        },
        null,
        2,
      ),
    );
    return matches ? 0 : 1;
  }
  io.out(`dry run: ${headline}; nothing is started`);
  io.out(`the plan the worker runs, from its runbook config ${worker.source}:`);
  for (const line of planLines(worker.plan)) io.out(line);
  io.out(`  ${'digest'.padEnd(10)} ${worker.digest}`);
  if (!ours) {
    io.out(`your runbook.yaml: ${localError}: nothing to compare with`);
    return 1;
  }
  if (matches) {
    io.out(`your runbook.yaml (${ours.source}) has the same plan: the worker runs what you see`);
    return 0;
  }
  io.out(`your runbook.yaml (${ours.source}, ${ours.digest}) DIFFERS from the worker's:`);
  const cut = (v: string | undefined) => (v === undefined ? '(none)' : v.length > 100 ? `${v.slice(0, 99)}…` : v);
  for (const d of differences) io.out(`  ${d.field}: the worker's ${cut(d.ours)}, yours ${cut(d.theirs)}`);
  io.out(
    'a runbook started now would be refused (PlanDigestMismatch): update your runbook.yaml to the reviewed config the ' +
      'worker runs (pull it), or have the change reviewed and deployed to the worker first',
  );
  return 1;
}

/**
 * A command's --dry-run: asks the worker for its plan of the service (in --env, else the local config's default
 * environment), lets `check` refuse what the command could not run on it (a version the platform cannot use), and
 * prints it with the comparison. Returns the exit code of printDryRun.
 */
export async function dryRun(
  io: Io,
  args: ParsedArgs,
  command: string,
  service: string,
  headline: (environment: string) => string,
  check: (plan: ResolvedService) => void = () => {},
): Promise<number> {
  const { local, environment } = localPlanFor(args.values, io.env, service, command);
  return withClient(io.env, async (client, target) => {
    const worker = await previewPlan(client, target, service, environment);
    check(worker.plan);
    return printDryRun(io, Boolean(args.values.json), headline(environment), worker, local);
  });
}

/** How the service's schema is migrated: a folder (per version when it holds {version}), a command, or not at all. */
function describeMigrations(db: DatabaseSpec): string {
  const how = db.migrate
    ? `by the release's ${db.migrate.command.join(' ')} (within ${formatDuration(db.migrate.timeoutMs)})` +
      (db.migrate.status ? `, then ${db.migrate.status.command.join(' ')} must report nothing pending` : '')
    : db.migrationsDir
      ? `${db.migrationsDir}${db.migrationsDir.includes('{version}') ? " (the deployed version's folder)" : ''}`
      : 'none';
  return db.compatibility === 'breaking' ? `${how}; breaking (no app-only rollback across it)` : how;
}

/** The cut-off's rate rule in the dry run's words (empty when it is off). */
function rateWords(cutoff: CutoffSpec): string {
  const rule = rateCutoffOf(cutoff);
  if (!rule) return '; the rate rule is off (analysis.cutoff.rate.enabled: false)';
  return (
    `, or the cut-off's watch (every 20 ms) when at least ${rule.minErrors} of its last ${rule.overRequests} requests ` +
    `failed and at least ${Math.round(rule.max5xxRate * 100)}% of them (analysis.cutoff.rate)`
  );
}

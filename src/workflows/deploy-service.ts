import { ApplicationFailure, isCancellation, patched, proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../activities';
import { platformPlanOf } from '../platforms/descriptors';
import type { DeployInput, DeployResult, Outcome, ReleaseRef } from '../shared/deploy';
import { deployRequestSchema } from '../shared/request';
import { releaseIdFor } from '../shared/ids';
import { APPROVAL_GATES, migrationsDirFor } from '../shared/service-plan';
import { heaviestRelease } from '../shared/traffic';
import { act, releaseStart, safe, slow } from './activity-options';
import { createCanary } from './canary';
import { historyOf, migrateWithCommand } from './release-commands';
import { metrics } from './metrics';
import { takeRequest } from './request';
import { beginRunbook, describeFailure, outcomeOf } from './runbook';
import { bringUpRelease, releaseKey, routeOf, snapshotName, startRequest, takeSnapshot } from './steps';
import { say } from './wording';

/** The patch that prepares the database in preflight (release commands: a new service's database is created). */
const RELEASE_COMMANDS = 'release-commands';

/**
 * Carries a release from request to go-live as the runbooks do it: plan -> preflight -> before-start
 * approval -> snapshot -> migrate -> start the new release next to the stable one -> health gate -> smoke
 * checks -> before-traffic approval -> canary traffic steps watched by the analysis -> go-live sign-off ->
 * finalize. Any failure after the release started puts traffic back on the stable release at once (in a
 * non-cancellable scope) and stops the new one; the database is not restored (migrations are expand/contract;
 * the snapshot id is in the result for the rollback workflow).
 *
 * The input is a request (service, environment, version, who, why, the digest of the previewed plan): the plan comes
 * from the worker's runbook config (see planOf). A malformed request, one that carries a plan, or one whose digest is
 * not the worker's plan's fails the workflow before anything is touched.
 *
 * Business outcomes (succeeded, rolled-back, failed, rejected) are results, reported by the CLI and the
 * RunbookOutcome search attribute; a cancelled deploy rolls back and then ends as Cancelled.
 */
export async function deployService(input: DeployInput): Promise<DeployResult> {
  const taken = takeRequest(deployRequestSchema, 'deploy', input);
  const { version, requestedBy } = taken.request;
  // What the requester declares of this version's migrations wins over the environment's setting.
  const declared = taken.request.migrations;
  const { workflowId } = workflowInfo();
  const rb = beginRunbook({
    kind: 'deploy',
    taken,
    version,
    gates: APPROVAL_GATES,
    // The unjudged-step gate (analysis.onInconclusive: pause) is decided by the deploy's approvers, as the others.
    policyFor: (plan, gate) =>
      gate === 'unjudged-step' ? { ...plan.approvals, gates: [...plan.approvals.gates, gate] } : plan.approvals,
  });
  const plan = await rb.plan();
  const platform = platformPlanOf(plan);
  const route = routeOf(plan, platform);
  const { state, enter, note, step, approval, showWeights, compensations } = rb;
  const canary = createCanary(rb, plan, route, platform.drainMs);
  note(say.deployPlan(plan, platform, version, requestedBy));

  try {
    enter('preflight', 'checking the stable release and taking the service lock');
    await rb.lock();
    const stable = await checkStable();
    if (plan.database && patched(RELEASE_COMMANDS)) await prepareDatabase(plan.database);
    await approval('before-start');
    if (plan.database) await snapshotAndMigrate(plan.database);
    const candidate = await bringUpRelease(step, {
      plan,
      platform,
      state,
      showEmptySmoke: true,
      note,
      start: { what: `starting ${version} next to ${stable?.version ?? 'nothing'}`, run: startCandidate },
    });
    await approval('before-traffic');
    await canary.shift(stable, candidate);
    await canary.signOff(canary.steps(stable).length, candidate);

    enter('finalize', stable ? `draining and stopping ${stable.version}` : 'recording the release');
    compensations.length = 0; // past this point the new release is stable: nothing to undo
    if (stable) {
      await slow.removeFromRoute(route, stable.releaseId, platform.drainMs);
      await safe.stopRelease({ ...releaseKey(plan, platform, stable.releaseId), graceMs: platform.drainMs });
    }
    showWeights({ [candidate.releaseId]: 100 });
    const unjudged = canary.unjudged();
    return await finish('succeeded', `${version} is live${unjudged.length > 0 ? `, ${unjudged.join('; ')}` : ''}`);
  } catch (err) {
    const cancelled = isCancellation(err);
    const outcome = outcomeOf(err, canary.trafficMoved);
    const rollbackFrom = Date.now();
    const finalReason = await rb.compensate(outcome, describeFailure(err));
    if (canary.trafficMoved)
      metrics.rollback('automatic', plan.service, plan.environment, (Date.now() - rollbackFrom) / 1000);
    const result = await finish(outcome, finalReason);
    if (cancelled) throw err;
    return result;
  }

  /** The release that takes traffic now must run and be healthy (else roll back first); none on a first deploy. */
  async function checkStable(): Promise<ReleaseRef | undefined> {
    await act.ensureRoute(route);
    const current = await act.getTraffic(route);
    const stableId = heaviestRelease(current.percent);
    if (!stableId) {
      note(say.firstDeploy);
      return undefined;
    }
    const stable = await act.getRelease(releaseKey(plan, platform, stableId));
    if (!stable) {
      throw ApplicationFailure.create({
        type: 'PreflightFailed',
        message: `the stable release ${stableId} takes traffic but its process is not running; run \`runbook rollback ${plan.service}\` first`,
        nonRetryable: true,
      });
    }
    await act.waitHealthy({
      ...releaseKey(plan, platform, stable.releaseId),
      release: stable,
      health: plan.health,
      deadlineAtMs: Date.now() + plan.health.deadlineMs,
    });
    state.stable = stable;
    showWeights(current.percent);
    return stable;
  }

  /**
   * Before anything changes: the database exists (the embedded stack creates a new service's; an external one must
   * exist, else PreflightFailed says what to create), and a per-version migrations folder is there.
   */
  async function prepareDatabase(database: NonNullable<typeof plan.database>): Promise<void> {
    const prepared = await act.prepareDatabase({
      service: plan.service,
      environment: plan.environment,
      database: database.name,
      ...(database.urlEnv ? { urlEnv: database.urlEnv } : {}),
      platform: platform.target,
    });
    if (prepared === 'created') note(`created the database ${database.name}: the first deploy of ${plan.service}`);
    const dir = migrationsDirFor(database, version);
    if (dir && database.migrationsDir?.includes('{version}')) {
      await act.requireMigrationsFolder({ dir, version, configured: database.migrationsDir });
    }
  }

  /** The pre-migration snapshot (with its manifest), then the pending migrations in one transaction. */
  async function snapshotAndMigrate(database: NonNullable<typeof plan.database>): Promise<void> {
    const manifest = await step(
      'snapshot',
      `snapshot of database ${database.name} (${snapshotName(plan, workflowId, 'pre-migrate')})`,
      () => takeSnapshot(plan, platform, workflowId, 'pre-migrate', database.name),
    );
    state.snapshotId = manifest.snapshotId;
    note(say.snapshotTaken(manifest));
    const { migrate } = database;
    const compatibility = declared ?? database.compatibility;
    if (migrate) {
      const ctx = { plan, platform, version, releaseId: releaseIdFor(version, workflowId), note };
      state.migrations = await step('migrate', `migrating ${database.name}: ${migrate.command.join(' ')}`, () =>
        migrateWithCommand(
          ctx,
          { ...database, migrate, ...(compatibility ? { compatibility } : {}) },
          manifest.snapshotId,
          (record) => (state.migrations = record),
        ),
      );
      note(say.schemaChange(state.migrations));
      return;
    }
    // The deployed version's folder when it holds {version}; plans from before that have none, so the request is the same.
    const dir = migrationsDirFor(database, version);
    if (!dir) return;
    const migrated = await step('migrate', `migrating ${database.name}`, () =>
      slow.migrateDatabase(database.name, dir, { platform: platform.target }),
    );
    state.migrations = {
      ...migrated,
      by: 'folder',
      dir,
      before: { migration: manifest.migrationVersion },
      after: { migration: migrated.version },
      ...(compatibility ? { compatibility } : {}),
    };
    note(say.migrated(state.migrations.applied));
  }

  async function startCandidate(): Promise<ReleaseRef> {
    const key = releaseKey(plan, platform, releaseIdFor(version, workflowId));
    compensations.push({
      what: `stop ${version}`,
      run: () => safe.stopRelease({ ...key, graceMs: platform.drainMs }),
    });
    return proxyActivities<Activities>(releaseStart(platform)).startRelease(startRequest(plan, platform, key, version));
  }

  function finish(outcome: Outcome, reason: string): Promise<DeployResult> {
    const { failedWindow } = canary;
    return rb.finish(outcome, reason, {
      version,
      releaseId: state.candidate?.releaseId ?? null,
      snapshotId: state.snapshotId ?? null,
      details: {
        stableVersion: state.stable?.version ?? null,
        requestedBy,
        failedWindow: failedWindow ?? null,
        ...(state.migrations?.by ? { migrations: historyOf(state.migrations) } : {}),
        ...(state.steps ? { steps: state.steps } : {}),
      },
      ...(failedWindow ? { failedWindow } : {}),
    });
  }
}

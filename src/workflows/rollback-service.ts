import { ApplicationFailure, isCancellation, patched, proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../activities';
import { platformPlanOf } from '../platforms/descriptors';
import type { DeployResult, GatePolicy, Outcome, ReleaseRef, RollbackInput } from '../shared/deploy';
import type { ResolvedService } from '../shared/service-plan';
import { databaseNameFor, releaseIdFor } from '../shared/ids';
import { rollbackRequestSchema } from '../shared/request';
import { APPROVAL_GATES } from '../shared/service-plan';
import { heaviestRelease } from '../shared/traffic';
import { act, releaseStart, safe, slow } from './activity-options';
import { metrics } from './metrics';
import { breakingRollbackMessage, breakingSince } from './release-commands';
import { takeRequest } from './request';
import { beginRunbook, describeFailure, outcomeOf } from './runbook';
import { bringUpRelease, releaseKey, routeOf, snapshotName, startRequest, takeSnapshot } from './steps';

/** The patch that refuses an app-only rollback across a breaking migration. */
const SCHEMA_AWARE_ROLLBACK = 'schema-aware-rollback';

/** pg_restore workers of a database restore. */
const RESTORE_JOBS = 2;

/**
 * The runbooks' rollback ("stop, restore the latest known-good backup, redeploy the previous release, verify
 * health") for a release that already went live: back to the previous release that went live (or `toVersion`),
 * through the same health and smoke gates and the same traffic switch as deploy's automatic rollback.
 *
 * With `restoreSnapshotId`, the database goes back too. That loses the writes since the snapshot, so it is
 * checked before anything is touched (the snapshot exists, is this service's, its file is whole; what would be
 * lost is shown), needs the restore-database approval with four-eyes, takes a safety snapshot of the current
 * state, puts the service in maintenance (503 + Retry-After), restores into a new database, verifies it against
 * the snapshot's manifest, and only then swaps it in; the replaced database is kept, never dropped.
 */
export async function rollbackService(input: RollbackInput): Promise<DeployResult> {
  const taken = takeRequest(rollbackRequestSchema, 'rollback', input);
  const request = taken.request;
  const { requestedBy } = request;
  const { workflowId } = workflowInfo();
  const restorePolicy = (plan: ResolvedService): GatePolicy => ({
    gates: ['restore-database'],
    approvers: plan.rollback.dbRestoreApprovers,
    fourEyes: true,
    timeoutMs: plan.rollback.approvals.timeoutMs,
    onTimeout: 'abort',
  });
  const rb = beginRunbook({
    kind: 'rollback',
    taken,
    version: request.toVersion ?? '(previous)',
    gates: [...APPROVAL_GATES.filter((g) => g === 'before-start'), 'restore-database'],
    policyFor: (plan, gate) => (gate === 'restore-database' ? restorePolicy(plan) : plan.rollback.approvals),
  });
  const plan = await rb.plan();
  const platform = platformPlanOf(plan);
  const route = routeOf(plan, platform);
  const { drainMs, words } = platform;
  const on = { platform: platform.target };
  const { state, enter, note, step, approval, showWeights, compensations } = rb;
  const key = (releaseId: string) => releaseKey(plan, platform, releaseId);
  let trafficMoved = false;
  let maintenanceOff: (typeof compensations)[number] | undefined;

  try {
    enter('preflight', 'taking the service lock and finding the release to go back to');
    await rb.lock();
    await act.ensureRoute(route);
    const current = await act.getTraffic(route);
    const liveId = heaviestRelease(current.percent);
    const live = liveId ? await act.getRelease(key(liveId)) : null;
    const history = await act.lastSucceededReleases(plan.service, plan.environment, 20);
    // The live release may have crashed (the reason to roll back): its version then comes from the history.
    const liveMember = current.members.find((m) => m.releaseId === liveId);
    const liveVersion = live?.version ?? history.find((r) => r.releaseId === liveId)?.version ?? '?';
    const from: ReleaseRef | undefined =
      live ??
      (liveMember && liveId
        ? { releaseId: liveId, version: liveVersion, host: liveMember.host, port: liveMember.port }
        : undefined);
    state.stable = from;

    let toVersion = request.toVersion;
    if (!toVersion) {
      // A live release whose process died is restarted as it is; a running one is replaced by the one before.
      toVersion = live
        ? history.find((r) => r.version !== from?.version)?.version
        : (history[0]?.version ?? from?.version);
      if (!toVersion) {
        throw ApplicationFailure.create({
          type: 'NoRollbackTarget',
          message: `no earlier release of ${plan.service}/${plan.environment} went live; name one with --to <version>`,
          nonRetryable: true,
        });
      }
    }
    state.version = toVersion;
    if (live && toVersion === live.version) {
      throw ApplicationFailure.create({
        type: 'NoRollbackTarget',
        message: `${toVersion} is already the live release of ${plan.service}/${plan.environment}`,
        nonRetryable: true,
      });
    }

    // Since release commands: a rollback to a version from before a breaking migration needs the database too.
    const crossed = !request.restoreSnapshotId && patched(SCHEMA_AWARE_ROLLBACK) && breakingSince(history, toVersion);
    if (crossed) {
      throw ApplicationFailure.create({
        type: 'RollbackRefused',
        message: breakingRollbackMessage(plan.service, toVersion, crossed),
        nonRetryable: true,
      });
    }

    if (request.restoreSnapshotId) {
      if (!plan.database) {
        throw ApplicationFailure.create({
          type: 'NoDatabase',
          message: `${plan.service}/${plan.environment} has no database in runbook.yaml: nothing to restore`,
          nonRetryable: true,
        });
      }
      const inspected = await slow.inspectSnapshot({
        snapshotId: request.restoreSnapshotId,
        service: plan.service,
        environment: plan.environment,
        database: plan.database.name,
        ...on,
      });
      state.restore = {
        snapshotId: request.restoreSnapshotId,
        snapshotTakenAtMs: inspected.manifest.createdAtMs,
        lost: inspected.lost,
      };
    }
    const lostRows = state.restore?.lost.reduce((n, t) => n + Math.max(0, t.rowsNow - t.rowsInSnapshot), 0) ?? 0;
    note(
      `plan: ${plan.service}/${plan.environment} from ${from?.version ?? 'nothing'} to ${toVersion}; database: ` +
        (state.restore
          ? `restore snapshot ${state.restore.snapshotId} taken ${Math.round((Date.now() - state.restore.snapshotTakenAtMs) / 60_000)} min ago ` +
            `(loses ${lostRows} row(s) written since: ${state.restore.lost.map((t) => `${t.table} ${t.rowsNow} -> ${t.rowsInSnapshot}`).join(', ')})`
          : 'untouched') +
        `; requested by ${requestedBy}${request.reason ? `: ${request.reason}` : ''}`,
      'plan',
    );

    await approval('before-start');

    if (state.restore && plan.database) {
      const database = plan.database.name;
      await approval('restore-database');
      const safety = snapshotName(plan, workflowId, 'pre-restore');
      enter('snapshot', `safety snapshot of ${database} before the restore (${safety})`);
      state.restore.safetySnapshotId = (
        await takeSnapshot(plan, platform, workflowId, 'pre-restore', database)
      ).snapshotId;

      enter('maintenance', `maintenance: ${words.maintenance} while its database is restored`);
      maintenanceOff = { what: 'maintenance off', run: () => safe.setMaintenance(route, false) };
      compensations.push(maintenanceOff);
      const maintenanceFrom = Date.now();
      await act.setMaintenance(route, true, 30);

      const restored = databaseNameFor(`${database}_restore`, `${workflowId}/restore`);
      enter('restore', `restoring ${state.restore.snapshotId} into ${words.restoreInto(restored, RESTORE_JOBS)}`);
      await slow.restoreSnapshot({ snapshotId: state.restore.snapshotId, target: restored, jobs: RESTORE_JOBS, ...on });
      state.restore.restoredInto = restored;
      const comparison = await slow.compareWithSnapshot({
        database: restored,
        snapshotId: state.restore.snapshotId,
        ...on,
      });
      if (!comparison.ok) {
        await safe.dropDatabase(restored, on);
        throw ApplicationFailure.create({
          type: 'RestoreVerifyFailed',
          message: `the restored database does not match the snapshot's manifest (${comparison.differences.join('; ')}); the current database is untouched`,
          nonRetryable: true,
        });
      }
      state.restore.verified = true;
      note(
        `verified: ${comparison.tables.length} tables match the manifest, migration ${comparison.migrationVersion ?? 'none'}`,
      );
      const replacedAs = databaseNameFor(`${database}_replaced`, `${workflowId}/replaced`);
      await act.swapDatabase({ database, restored, replacedAs, ...on });
      state.restore.replacedAs = replacedAs;
      note(`swapped: ${words.swapped(database, restored, replacedAs)}`);
      state.restore.maintenanceMs = Date.now() - maintenanceFrom;
    }

    if (from && !live) {
      // Its process is gone: it serves nothing, and a new release may be given its port.
      await safe.removeFromRoute(route, from.releaseId, 0);
      note(`${from.version} (${from.releaseId}) was not running: taken out of the route`);
    }

    const version = toVersion;
    const target = await bringUpRelease(step, {
      plan,
      platform,
      state,
      note,
      start: { what: `starting (or adopting) ${version}`, run: () => startOrAdopt(version) },
    });

    enter('traffic', `traffic: 100% on ${toVersion}`);
    await act.addToRoute(route, target);
    const percent: Record<string, number> = { [target.releaseId]: 100 };
    if (from && live && from.releaseId !== target.releaseId) percent[from.releaseId] = 0;
    trafficMoved = true;
    showWeights(await safe.setTraffic(route, percent));
    metrics.rollback(
      'workflow',
      plan.service,
      plan.environment,
      (Date.now() - workflowInfo().startTime.getTime()) / 1000,
    );
    // The target serves now: stopping it would take the service down, so only maintenance is left to undo.
    compensations.splice(0, compensations.length, ...(maintenanceOff ? [maintenanceOff] : []));
    if (state.restore) {
      await safe.setMaintenance(route, false);
      note('maintenance off: the service answers again');
    }

    enter('finalize', from ? `draining and stopping ${from.version}` : 'recording the release');
    compensations.length = 0;
    if (from && live && from.releaseId !== target.releaseId) {
      await slow.removeFromRoute(route, from.releaseId, drainMs);
      await safe.stopRelease({ ...key(from.releaseId), graceMs: drainMs });
    }
    return await finish(
      'succeeded',
      `${toVersion} is live again${state.restore ? `, database restored from ${state.restore.snapshotId}` : ''}`,
    );
  } catch (err) {
    const cancelled = isCancellation(err);
    const reason = describeFailure(err);
    const outcome = outcomeOf(err, false);
    if (trafficMoved) note('the traffic had already moved to the target release: it stays there');
    const result = await finish(outcome, await rb.compensate(outcome, reason));
    if (cancelled) throw err;
    return result;
  }

  /** A release of `version` that still runs is adopted (not started twice); else it is started. */
  async function startOrAdopt(version: string): Promise<ReleaseRef> {
    const running = await act.findRelease({ service: plan.service, environment: plan.environment, version, ...on });
    if (running) {
      note(`${version} still runs (${running.releaseId}): adopted`);
      return running;
    }
    const releaseId = releaseIdFor(version, workflowId);
    compensations.push({
      what: `stop ${version}`,
      run: () => safe.stopRelease({ ...key(releaseId), graceMs: drainMs }),
    });
    return proxyActivities<Activities>(releaseStart(platform)).startRelease(
      startRequest(plan, platform, key(releaseId), version),
    );
  }

  function finish(outcome: Outcome, reason: string): Promise<DeployResult> {
    return rb.finish(outcome, reason, {
      version: state.version,
      releaseId: state.candidate?.releaseId ?? null,
      snapshotId: state.restore?.safetySnapshotId ?? null,
      details: { from: state.stable?.version ?? null, requestedBy, restore: state.restore ?? null },
    });
  }
}

import {
  ActivityCancellationType,
  ApplicationFailure,
  CancellationScope,
  CancelledFailure,
  isCancellation,
  proxyActivities,
  setHandler,
  sleep,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { DrillRunInput } from '../activities/drill';
import type { SnapshotManifest } from '../platforms/types';
import type { DeployPhase, GatePolicy } from '../shared/deploy';
import {
  DEFAULT_RTO_TARGET_MS,
  drillReleaseEnvironment,
  formatMs,
  phaseSeconds,
  scratchDatabaseFor,
  type DrillInput,
  type DrillOutcome,
  type DrillProgress,
  type DrillResult,
  type DrillState,
  type DrillStep,
  type PhaseTiming,
} from '../shared/drill';
import { commandPassed } from '../shared/commands';
import { releaseIdFor } from '../shared/ids';
import { migrationsDirFor } from '../shared/service-plan';
import { drillRequestSchema } from '../shared/request';
import { platformPlanOf } from '../platforms/descriptors';
import { statusQuery } from '../shared/messages';
import { RunbookOutcome, RunbookPhase, RunbookRtoSeconds } from '../shared/search-attributes';
import { addToTimeline } from '../shared/timeline';
import { act, longWithHeartbeat, quick, safe, slow } from './activity-options';
import { metrics } from './metrics';
import type { SigningPolicy } from '../shared/signed';
import { installGates, REJECTED } from './gates';
import { planOf, takeRequest } from './request';
import { describeFailure } from './runbook';
import { bringUpRelease, releaseKey as releaseKeyOf, routeOf, snapshotName, startRequest, takeSnapshot } from './steps';
import { failUnlessPassed, recordOf, runCommand } from './release-commands';
import { say } from './wording';
// A cancelled restore or release start is waited for until the activity has stopped: the cleanup must not drop
// the scratch database (or stop the app) while an attempt could still create it.
const restoring = proxyActivities<Activities>({
  ...longWithHeartbeat,
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
});
const starting = proxyActivities<Activities>({
  ...quick,
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
});
const connecting = proxyActivities<Activities>({
  startToCloseTimeout: '2m',
  heartbeatTimeout: '10s',
  retry: { initialInterval: '1s', maximumAttempts: 3 },
});

/** pg_restore workers of the drill's restore. */
const RESTORE_JOBS = 2;
/** How long the restored database may take to accept connections. */
const CONNECT_DEADLINE_MS = 60_000;

/**
 * The restore drill: proves that a service's backup restores and that the live release runs on it, and measures
 * how long that takes. Steps, each timed: pick the snapshot (the newest, a given one, or a fresh one) -> restore
 * it into a scratch database named after the workflow id (pg_restore -j2) -> the database accepts connections ->
 * integrity (pg_amcheck, row counts and checksums against the snapshot's manifest, the migration version against
 * the service's migrations; missing migrations are applied to the copy, as a recovery would) -> the live
 * release's version started on the copy on a spare port, never routed -> health and smoke checks -> optional
 * reviewer sign-off (a timeout records the drill as unsigned) -> cleanup (the app stopped, the scratch database
 * dropped) in a non-cancellable scope, on success, failure and cancel alike.
 *
 * RTO = restore start to application ready; recorded in the result, the RunbookRtoSeconds search attribute and
 * the drill_runs table with the snapshot's age (the real RPO), the phase timings and the integrity results.
 * Verdicts are results (`passed`, `failed` with the phase and the reason); a cancelled drill cleans up and then
 * ends as Cancelled. It takes no service lock: it changes nothing the service uses.
 */
export async function restoreDrill(input: DrillInput): Promise<DrillResult> {
  const taken = takeRequest(drillRequestSchema, 'drill', input);
  const request = taken.request;
  const { service, environment, requestedBy } = request;
  const { workflowId, startTime } = workflowInfo();
  // Until the plan is resolved, the scratch database and the RTO target are not known yet.
  const drill: DrillProgress = {
    scratchDatabase: '',
    phases: [],
    rtoTargetMs: DEFAULT_RTO_TARGET_MS,
    integrity: {},
    signoff: request.signoffTimeoutMs ? 'pending' : 'not-requested',
    cleanup: [],
  };
  const state: DrillState = {
    kind: 'drill',
    service,
    environment,
    version: request.version ?? '(live)',
    requestedBy,
    phase: 'plan',
    step: 'resolving the plan',
    weights: {},
    analysis: [],
    gates: request.signoffTimeoutMs ? [{ gate: 'drill-signoff', status: 'pending', refused: [], refusedCount: 0 }] : [],
    timeline: [],
    drill,
  };
  setHandler(statusQuery, () => state);
  let signoffPolicy: GatePolicy = {
    gates: [],
    approvers: [],
    fourEyes: true,
    timeoutMs: request.signoffTimeoutMs ?? 0,
    onTimeout: 'proceed',
  };
  const signing: { policy?: SigningPolicy } = {};
  const { gate } = installGates(
    state,
    () => signoffPolicy,
    requestedBy,
    `the drill of ${service} in ${environment}`,
    () => signing.policy,
  );
  const plan = await planOf(taken, 'drill', state);
  signing.policy = plan.signing;
  const rtoTargetMs = plan.drill?.rtoTargetMs ?? DEFAULT_RTO_TARGET_MS;
  const scratch = scratchDatabaseFor(plan.database?.name ?? service.replace(/-/g, '_'), workflowId);
  drill.scratchDatabase = scratch;
  drill.rtoTargetMs = rtoTargetMs;
  signoffPolicy = {
    gates: request.signoffTimeoutMs ? ['drill-signoff'] : [],
    approvers: plan.approvals.approvers,
    fourEyes: plan.approvals.fourEyes,
    timeoutMs: request.signoffTimeoutMs ?? 0,
    onTimeout: 'proceed',
  };

  const note = (message: string, phase: DeployPhase = state.phase) =>
    addToTimeline(state.timeline, { atMs: Date.now(), phase, message });
  const enter = (phase: DeployPhase, step: string) => {
    state.phase = phase;
    state.step = step;
    note(step, phase);
    upsertSearchAttributes([{ key: RunbookPhase, value: phase }]);
  };
  const close = (t: PhaseTiming, ok: boolean) => {
    t.finishedAtMs = Date.now();
    t.ms = t.finishedAtMs - t.startedAtMs;
    t.ok = ok;
  };
  /** Runs one timed step; the step that throws is the drill's failed phase. */
  async function step<T>(phase: DrillStep, what: string, work: () => Promise<T>): Promise<T> {
    const timing: PhaseTiming = { phase, startedAtMs: Date.now() };
    drill.phases.push(timing);
    enter(phase, what);
    try {
      const result = await work();
      close(timing, true);
      return result;
    } catch (err) {
      close(timing, false);
      drill.failedPhase ??= phase;
      throw err;
    }
  }

  const platform = platformPlanOf(plan);
  const on = { platform: platform.target };
  let lastStatus = '';
  const releaseEnvironment = drillReleaseEnvironment(environment);
  const releaseKey = releaseKeyOf(plan, platform, releaseIdFor('drill', workflowId), releaseEnvironment);
  let restoreTried = false;
  let releaseTried = false;
  let outcome: DrillOutcome = 'passed';
  let reason = '';
  let error: unknown;

  try {
    if (!plan.database) {
      throw ApplicationFailure.create({
        type: 'NoDatabase',
        message: `${service}/${environment} has no database in runbook.yaml: there is nothing to restore`,
        nonRetryable: true,
      });
    }
    const db = plan.database;
    note(
      `plan: restore ${request.fresh ? 'a fresh snapshot' : (request.snapshotId ?? 'the newest snapshot')} of ${db.name} ` +
        `into ${scratch}, ${platform.drillStartsApp ? `start ${request.version ?? 'the live release'} on it (not routed)` : 'check it over its endpoint'}; RTO target ` +
        `${formatMs(rtoTargetMs)}; sign-off ${request.signoffTimeoutMs ? `by ${signoffPolicy.approvers.join(' or ')} within ${formatMs(request.signoffTimeoutMs)}` : 'not asked'}; ` +
        `requested by ${requestedBy}${request.reason ? `: ${request.reason}` : ''}`,
    );

    let version = request.version;
    if (version) drill.versionSource = 'input';
    else {
      const live = await act.findLiveVersion(routeOf(plan, platform));
      if (!live) {
        throw ApplicationFailure.create({
          type: 'NoRelease',
          message: `no release of ${service}/${environment} went live yet: nothing to start on the restored copy (name one with --version)`,
          nonRetryable: true,
        });
      }
      version = live.version;
      drill.versionSource = live.source;
    }
    state.version = version;

    let manifest: SnapshotManifest;
    if (request.fresh) {
      const snapshotId = snapshotName(plan, workflowId, 'drill');
      manifest = await step('snapshot', `taking a fresh snapshot of ${db.name} (${snapshotId})`, () =>
        takeSnapshot(plan, platform, workflowId, 'drill', db.name),
      );
    } else {
      manifest = await step(
        'pick-snapshot',
        request.snapshotId ? `checking snapshot ${request.snapshotId}` : `finding the newest snapshot of ${db.name}`,
        () =>
          act.findDrillSnapshot({
            service,
            environment,
            database: db.name,
            ...(request.snapshotId ? { snapshotId: request.snapshotId } : {}),
            ...on,
          }),
      );
    }
    const snapshotId = manifest.snapshotId;
    const rows = manifest.tables.reduce((n, t) => n + t.rows, 0);
    drill.snapshot = {
      snapshotId,
      source: request.fresh ? 'fresh' : request.snapshotId ? 'given' : 'latest',
      createdAtMs: manifest.createdAtMs,
      ageMs: Math.max(0, Date.now() - manifest.createdAtMs),
      bytes: manifest.bytes,
      migrationVersion: manifest.migrationVersion,
    };
    state.snapshotId = snapshotId;
    note(
      `snapshot ${snapshotId}: taken ${formatMs(drill.snapshot.ageMs)} ago (the data a recovery now would lose), ` +
        `${manifest.bytes} bytes, ${manifest.tables.length} tables, ${rows} rows, migration ${manifest.migrationVersion ?? 'none'}`,
    );

    restoreTried = true;
    const restored = await step(
      'restore',
      `restoring ${snapshotId} into ${platform.words.restoreInto(scratch, RESTORE_JOBS)}`,
      async () => {
        const begun = await restoring.restoreScratch({ snapshotId, target: scratch, jobs: RESTORE_JOBS, ...on });
        // A restore that the platform runs on its own (RDS) is polled from here: durable timers, short activities.
        for (let ready = begun.ready !== false; !ready;) {
          await sleep(platform.restorePollMs);
          const status = await act.scratchStatus({ target: scratch, ...on });
          ready = status.ready;
          if (!ready && status.detail !== lastStatus) note(`${scratch}: ${status.detail}`);
          lastStatus = status.detail;
        }
        return begun;
      },
    );
    if (restored.droppedLeftover) note(`${scratch} was left by an interrupted attempt: dropped and restored again`);
    if (restored.adopted) note(`${scratch} was already restored from ${snapshotId} by an earlier attempt: adopted`);

    const connected = await step('connect', `waiting for ${scratch} to accept connections`, () =>
      connecting.waitForDatabase({ database: scratch, deadlineAtMs: Date.now() + CONNECT_DEADLINE_MS, ...on }),
    );
    note(`${scratch} accepts connections (PostgreSQL ${connected.serverVersion})`);

    await step(
      'integrity',
      `integrity of ${scratch}: pg_amcheck, row counts and checksums against the manifest, migration version`,
      async () => {
        const amcheck = await slow.amcheckDatabase(scratch, on);
        drill.integrity.amcheck = amcheck;
        note(`pg_amcheck: ${amcheck.detail}`);
        const comparison = await slow.compareWithSnapshot({ database: scratch, snapshotId, ...on });
        drill.integrity.manifest = {
          ok: comparison.ok,
          tables: comparison.tables.length,
          rows: comparison.tables.reduce((n, t) => n + t.rows, 0),
          differences: comparison.differences,
        };
        note(
          comparison.ok
            ? `manifest: ${comparison.tables.length} tables, ${drill.integrity.manifest.rows} rows: counts and checksums match the snapshot`
            : `manifest: ${comparison.differences.join('; ')}`,
        );
        const migrationsDir = migrationsDirFor(db, version);
        if (migrationsDir) {
          const schema = await act.checkSchema({ database: scratch, dir: migrationsDir, ...on });
          const at = manifest.migrationVersion ?? 'none';
          const expectedVersion = schema.problem ? null : (schema.pending.at(-1) ?? manifest.migrationVersion);
          drill.integrity.schema = {
            ok: !schema.problem && schema.pending.length === 0,
            snapshotVersion: manifest.migrationVersion,
            expectedVersion,
            pending: schema.pending,
            detail: schema.problem
              ? `the snapshot (migration ${at}) does not match the release's migrations: ${schema.problem}`
              : schema.pending.length > 0
                ? `the snapshot is at migration ${at}, the release expects ${expectedVersion}: ${schema.pending.length} migration(s) behind (${schema.pending.join(', ')}); a recovery runs them first`
                : `at migration ${at}, as the release expects`,
          };
          note(`schema: ${drill.integrity.schema.detail}`);
        }
        const problems = [
          ...(amcheck.ok ? [] : [`pg_amcheck: ${amcheck.detail}`]),
          ...(comparison.ok
            ? []
            : [`the restored copy does not match the snapshot's manifest (${comparison.differences.join('; ')})`]),
        ];
        if (problems.length > 0) {
          throw ApplicationFailure.create({
            type: 'IntegrityFailed',
            message: problems.join('; '),
            nonRetryable: true,
          });
        }
      },
    );
    const schema = drill.integrity.schema;
    if (schema && schema.pending.length > 0 && db.migrationsDir) {
      const dir = migrationsDirFor(db, version) ?? db.migrationsDir;
      const migrated = await step('migrate', `migrating the copy: ${schema.pending.join(', ')}`, () =>
        slow.migrateDatabase(scratch, dir, on),
      );
      schema.migrated = true;
      note(`migrated the copy to ${migrated.version ?? 'none'}`);
    }

    const commands = { plan, platform, version, releaseId: releaseKey.releaseId, note };
    const onCopy = { environment: releaseEnvironment, database: { name: scratch } };
    // Where the app does not run on the copy (aws-ecs: a one-off task would reach the live database), neither do its commands.
    const migrate = platform.drillStartsApp ? db.migrate : undefined;
    if (migrate) {
      // The release's own tool brings the copy to the schema the release expects, as a recovery would.
      await step('migrate', `migrating the copy with the release's ${migrate.command.join(' ')}`, async () => {
        const ran = await runCommand(commands, { step: 'drill-migrate', purpose: 'migrate', spec: migrate, ...onCopy });
        failUnlessPassed(ran, { type: 'MigrationFailed', what: 'on the copy, the migrate command' });
      });
    }
    const integrityCommand = platform.drillStartsApp ? plan.drill?.integrityCommand : undefined;
    if (integrityCommand) {
      await step(
        'app-integrity',
        `the service's integrity check on ${scratch}: ${integrityCommand.command.join(' ')}`,
        async () => {
          const ran = await runCommand(commands, {
            step: 'drill-integrity',
            purpose: 'integrity',
            spec: integrityCommand,
            ...onCopy,
          });
          const r = recordOf(ran.command, ran.result);
          const ok = commandPassed(ran.result);
          drill.integrity.command = {
            ok,
            command: r.command,
            exitCode: r.exitCode,
            timedOut: r.timedOut,
            notes: r.tail,
            logLocation: r.logLocation,
            durationMs: r.durationMs,
          };
          failUnlessPassed(ran, { type: 'IntegrityFailed', what: "on the copy, the service's integrity check" });
        },
      );
    }

    let servedBy = `${scratch}'s endpoint`;
    if (platform.drillStartsApp) {
      releaseTried = true;
      const release = await bringUpRelease(step, {
        plan,
        platform,
        state,
        environment: releaseEnvironment,
        note,
        database: { name: scratch },
        start: {
          what: `starting ${version} on ${scratch} (a spare port, not routed)`,
          run: () => starting.startRelease(startRequest(plan, platform, releaseKey, version, { name: scratch })),
        },
      });
      servedBy = `${release.host}:${release.port}`;
    } else {
      note(say.notStartedOnCopy(platform));
    }

    const restoreStart = drill.phases.find((p) => p.phase === 'restore')?.startedAtMs ?? Date.now();
    const rtoMs = Date.now() - restoreStart;
    drill.rtoMs = rtoMs;
    if (rtoMs > rtoTargetMs) drill.overTargetByMs = rtoMs - rtoTargetMs;
    upsertSearchAttributes([{ key: RunbookRtoSeconds, value: rtoMs / 1000 }]);
    const verdict =
      drill.overTargetByMs !== undefined
        ? `OVER the ${formatMs(rtoTargetMs)} target by ${formatMs(drill.overTargetByMs)}`
        : `within the ${formatMs(rtoTargetMs)} target`;
    note(
      `RTO ${formatMs(rtoMs)} (restore start to ${platform.drillStartsApp ? `${version}` : scratch} ready), ${verdict}`,
    );
    reason = `restored ${snapshotId} (${formatMs(drill.snapshot.ageMs)} old) and ${platform.drillStartsApp ? version : 'the copy'} was ready in ${formatMs(rtoMs)}, ${verdict}`;

    if (request.signoffTimeoutMs) {
      await safe.recordDrillRun(record('awaiting-sign-off', `${reason}; waiting for the sign-off`, false));
      drill.signoff = 'waiting';
      await step(
        'sign-off',
        `sign-off by ${signoffPolicy.approvers.join(' or ')} (${servedBy} serves the copy meanwhile)`,
        () => gate('drill-signoff'),
      );
      const decided = state.gates[0];
      if (decided?.status === 'approved') {
        drill.signoff = 'signed';
        drill.signedOffBy = decided.decidedBy;
        reason += `; signed off by ${decided.decidedBy}`;
      } else {
        drill.signoff = 'unsigned';
        reason += `; unsigned (no sign-off within ${formatMs(request.signoffTimeoutMs)})`;
      }
    }
  } catch (err) {
    error = err;
    const cancelled = isCancellation(err) || CancellationScope.current().consideredCancelled;
    outcome = cancelled ? 'cancelled' : 'failed';
    if (err instanceof ApplicationFailure && err.type === REJECTED) drill.signoff = 'rejected';
    const where = drill.failedPhase ?? state.phase;
    reason = cancelled ? `cancelled by an operator during ${where}` : `${where}: ${describeFailure(err)}`;
  }

  await CancellationScope.nonCancellable(async () => {
    if (restoreTried || releaseTried) {
      await step('cleanup', `cleanup: stopping the drill's app and dropping ${scratch}`, async () => {
        if (releaseTried) {
          const stopped = await safe.stopRelease({ ...releaseKey, graceMs: platform.drainMs });
          drill.cleanup.push(stopped ? `stopped the app (${releaseKey.releaseId})` : 'the app was not running');
        }
        if (restoreTried) {
          await safe.dropDatabase(scratch, on);
          drill.cleanup.push(`dropped ${scratch}`);
        }
        note(`cleanup: ${drill.cleanup.join('; ')}`);
      });
    }
    state.outcome = outcome;
    state.reason = reason;
    state.phase = 'done';
    state.step = `${outcome}: ${reason}`;
    note(state.step, 'done');
    upsertSearchAttributes([
      { key: RunbookPhase, value: 'done' },
      { key: RunbookOutcome, value: outcome },
    ]);
    await safe.recordDrillRun(record(outcome, reason, true));
    metrics.outcome('drill', service, environment, outcome);
    if (drill.rtoMs !== undefined)
      metrics.drill(service, environment, drill.rtoMs / 1000, drill.overTargetByMs !== undefined);
  });
  if (outcome === 'cancelled') throw isCancellation(error) ? error : new CancelledFailure(reason);
  return { outcome, service, environment, reason, drill, state };

  function record(outcomeText: string, why: string, finished: boolean): DrillRunInput {
    return {
      service,
      environment,
      workflowId,
      snapshotId: drill.snapshot?.snapshotId ?? null,
      snapshotAgeSeconds: drill.snapshot ? drill.snapshot.ageMs / 1000 : null,
      phaseTimings: phaseSeconds(drill.phases),
      rtoSeconds: drill.rtoMs === undefined ? null : drill.rtoMs / 1000,
      rtoTargetSeconds: rtoTargetMs / 1000,
      overTarget: drill.rtoMs === undefined ? null : drill.overTargetByMs !== undefined,
      integrity: {
        ...drill.integrity,
        version: state.version,
        ...(drill.failedPhase ? { failedPhase: drill.failedPhase } : {}),
        signoff: drill.signoff,
      },
      outcome: outcomeText,
      signedOffBy: drill.signedOffBy ?? null,
      reason: why,
      startedAtMs: startTime.getTime(),
      finishedAtMs: finished ? Date.now() : null,
    };
  }
}

import {
  ApplicationFailure,
  CancellationScope,
  proxyActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities';
import {
  pitrDrillStatusQuery,
  pitrTargetFor,
  type PitrDrillInput,
  type PitrDrillResult,
  type PitrDrillState,
} from '../shared/backup';
import { NAME_PATTERN } from '../shared/service-plan';
import { RunbookKind, RunbookOutcome, RunbookPhase } from '../shared/search-attributes';
import { critical, longWithHeartbeat, quick } from './activity-options';
import { describeFailure } from './runbook';

const { resolveBackupPolicy, checkPointInTimeCopy } = proxyActivities<Activities>(quick);
const { restorePointInTime } = proxyActivities<Activities>({ ...longWithHeartbeat, startToCloseTimeout: '6h' });
const { removePointInTimeCopy } = proxyActivities<Activities>({ ...critical, startToCloseTimeout: '2m' });

/**
 * A point-in-time drill (`runbook drill <service> --to-time <ts>`): restores the stack's cluster as of the moment
 * from the pgBackRest repository into a scratch cluster (its own data folder and port; the live one untouched),
 * measures the restore time and the RPO (the target minus the last commit the copy replayed), checks the service's
 * database on it, and always removes the copy (also on failure and cancel). Fails with BackupNotConfigured,
 * RecoveryTargetUnreachable, RestoreFailed.
 */
export async function pitrDrill(input: PitrDrillInput): Promise<PitrDrillResult> {
  const state: PitrDrillState = { phase: 'policy' };
  setHandler(pitrDrillStatusQuery, () => state);
  const enter = (phase: PitrDrillState['phase']) => {
    state.phase = phase;
    upsertSearchAttributes([{ key: RunbookPhase, value: phase }]);
  };
  upsertSearchAttributes([
    { key: RunbookKind, value: 'drill' },
    { key: RunbookPhase, value: state.phase },
  ]);
  const target = pitrTargetFor(workflowInfo().workflowId);
  let restoring = false;
  try {
    if (
      !NAME_PATTERN.test(String(input?.service)) ||
      !NAME_PATTERN.test(String(input?.environment)) ||
      !Number.isFinite(input?.toTimeMs)
    ) {
      throw ApplicationFailure.create({
        type: 'InvalidInput',
        message: 'pitrDrill needs { service, environment, toTimeMs }',
        nonRetryable: true,
      });
    }
    const policy = await resolveBackupPolicy({ service: input.service, environment: input.environment });
    enter('restoring');
    restoring = true;
    const started = Date.now();
    const copy = await restorePointInTime({ target, atMs: input.toTimeMs });
    enter('checking');
    const checked = await checkPointInTimeCopy({
      port: copy.port,
      database: policy.database ?? '',
      backup: copy.backup,
    });
    const restoreMs = Date.now() - started;
    state.result = {
      target,
      backup: copy.backup,
      restoreMs,
      lastCommitMs: checked.lastCommitMs,
      rpoMs: checked.lastCommitMs === null ? null : input.toTimeMs - checked.lastCommitMs,
      tables: checked.tables,
    };
  } catch (err) {
    state.error = describeFailure(err);
    throw err;
  } finally {
    if (restoring) {
      enter('removing');
      await CancellationScope.nonCancellable(() => removePointInTimeCopy({ target }));
      state.result = { ...state.result, removed: true };
    }
    enter(state.error ? 'failed' : 'done');
    upsertSearchAttributes([{ key: RunbookOutcome, value: state.error ? 'failed' : 'passed' }]);
  }
  return { outcome: 'passed', removed: true, ...(state.result as Omit<PitrDrillResult, 'outcome' | 'removed'>) };
}

import {
  ApplicationFailure,
  proxyActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities';
import {
  BACKUP_KINDS,
  BACKUP_VERIFY_FAILED,
  backupStatusQuery,
  type BackupInput,
  type BackupResult,
  type BackupState,
} from '../shared/backup';
import { NAME_PATTERN } from '../shared/service-plan';
import { RunbookKind, RunbookOutcome, RunbookPhase } from '../shared/search-attributes';
import { longWithHeartbeat, quick } from './activity-options';
import { describeFailure } from './runbook';

const { resolveBackupPolicy } = proxyActivities<Activities>(quick);
// A backup of a large cluster takes long: it heartbeats; the retry adopts the backup an earlier attempt took.
const { takeBaseBackup, verifyBackupRepository, expireBaseBackups } = proxyActivities<Activities>({
  ...longWithHeartbeat,
  startToCloseTimeout: '12h',
});

/**
 * One base backup of the service's database cluster (pgBackRest on the stack's PostgreSQL), as a backup schedule or
 * `runbook backup <service>` starts it: the policy from the worker's runbook config, the backup (type, size,
 * duration, WAL range recorded), `pgbackrest verify`, then expiry by the retention of every service on the cluster.
 * Fails with BackupNotConfigured, ArchiveBroken, DiskFull, BackupFailed (from the activities) or BackupVerifyFailed;
 * a failed verify expires nothing.
 */
export async function backupService(input: BackupInput): Promise<BackupResult> {
  const state: BackupState = { phase: 'policy' };
  setHandler(backupStatusQuery, () => state);
  const enter = (phase: BackupState['phase']) => {
    state.phase = phase;
    upsertSearchAttributes([{ key: RunbookPhase, value: phase }]);
  };
  upsertSearchAttributes([
    { key: RunbookKind, value: 'backup' },
    { key: RunbookPhase, value: state.phase },
  ]);
  try {
    if (
      !NAME_PATTERN.test(String(input?.service)) ||
      !NAME_PATTERN.test(String(input?.environment)) ||
      !(BACKUP_KINDS as readonly string[]).includes(String(input?.type))
    ) {
      throw ApplicationFailure.create({
        type: 'InvalidInput',
        message: `backupService needs { service, environment, type: ${BACKUP_KINDS.join(' | ')} }`,
        nonRetryable: true,
      });
    }
    state.policy = await resolveBackupPolicy({ service: input.service, environment: input.environment });
    enter('backing-up');
    state.backup = await takeBaseBackup({
      backupId: workflowInfo().workflowId,
      type: input.type,
      service: input.service,
    });
    if (state.policy.verify) {
      enter('verifying');
      state.verified = await verifyBackupRepository();
      if (!state.verified.ok) {
        throw ApplicationFailure.create({
          type: BACKUP_VERIFY_FAILED,
          message:
            `pgbackrest verify found problems in the repository (nothing was expired): ${state.verified.problems.slice(0, 5).join('; ')}; ` +
            'fix: take a new full backup (`runbook backup <service> --type full`) and read the pgBackRest log',
          nonRetryable: true,
        });
      }
    } else state.verified = 'skipped';
    enter('expiring');
    state.expired = await expireBaseBackups({ retention: state.policy.retention, keep: [] });
    enter('done');
    upsertSearchAttributes([{ key: RunbookOutcome, value: 'succeeded' }]);
    return { outcome: 'succeeded', backup: state.backup, verified: state.verified, expired: state.expired };
  } catch (err) {
    state.error = describeFailure(err);
    enter('failed');
    upsertSearchAttributes([{ key: RunbookOutcome, value: 'failed' }]);
    throw err;
  }
}

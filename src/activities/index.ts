import { createBackupActivities, type BackupActivityDeps } from './backups';
import { createCommandActivities, type CommandActivityDeps } from './commands';
import { createDbActivities, type DbActivityDeps } from './db';
import { createDrillActivities, type DrillActivityDeps } from './drill';
import { withActivityFailures } from './failures';
import { createHistoryActivities, type HistoryActivityDeps } from './history';
import { createPlanActivities, type PlanActivityDeps } from './plan';
import { createSigningActivities, type SigningActivityDeps } from './signing';
import { createReleaseActivities, type ReleaseActivityDeps } from './releases';
import { createStackActivities, type StackActivityDeps } from './stack';
import { createTrafficActivities, type TrafficActivityDeps } from './traffic';

export type ActivityDeps = StackActivityDeps &
  TrafficActivityDeps &
  ReleaseActivityDeps &
  DbActivityDeps &
  CommandActivityDeps &
  HistoryActivityDeps &
  DrillActivityDeps &
  PlanActivityDeps &
  SigningActivityDeps &
  BackupActivityDeps;

/**
 * All activities of the worker, built from their dependencies (the composition root supplies real clients). What a
 * platform throws leaves every one of them as an ApplicationFailure of its type, its message scrubbed with `scrub`
 * (withActivityFailures; the worker's masks the secret values it holds too).
 */
export function createActivities(deps: ActivityDeps, scrub?: (text: string) => string) {
  return withActivityFailures(
    {
      ...createPlanActivities(deps),
      ...createSigningActivities(deps),
      ...createStackActivities(deps),
      ...createTrafficActivities(deps),
      ...createReleaseActivities(deps),
      ...createDbActivities(deps),
      ...createCommandActivities(deps),
      ...createHistoryActivities(deps),
      ...createDrillActivities(deps),
      ...createBackupActivities(deps),
    },
    scrub,
  );
}

export type Activities = ReturnType<typeof createActivities>;

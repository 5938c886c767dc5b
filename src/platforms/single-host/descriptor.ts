import type { PlatformPlan } from '../../shared/platform-plan';
import type { SingleHostService } from '../../shared/service-plan';

/** How often the workflow would poll a restore that runs on its own (single-host restores finish in the activity). */
const RESTORE_POLL_MS = 1_000;

/**
 * single-host as a runbook sees it: a release is a local process started in one quick call, HAProxy routes the
 * service's stable port, restores are pg_restore runs that finish inside their activity, and a drill starts the
 * release on the restored copy on a spare port. Pure: workflow-safe.
 */
export function singleHostDescriptor(plan: SingleHostService): PlatformPlan {
  return {
    name: 'single-host',
    target: { name: 'single-host' },
    listenPort: plan.listen.port,
    release: plan.release,
    drainMs: plan.release.drainMs,
    restorePollMs: RESTORE_POLL_MS,
    drillStartsApp: true,
    cutoff: { router: 'HAProxy', mechanism: 'on-error mark-down' },
    baseline: { how: 'a new process of the stable version, without migrations, behind the same health gate' },
    words: {
      restoreInto: (target, jobs) => `${target} (pg_restore -j${jobs})`,
      maintenance: 'the service answers 503 with Retry-After',
      swapped: (database, _restored, replacedAs) =>
        `${database} is the restored copy; the replaced database is kept as ${replacedAs}`,
    },
  };
}

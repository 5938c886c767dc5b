/**
 * Retention of a service's manual RDS snapshots (aws.rds.retention): every deploy and drill takes one, and the
 * account's manual-snapshot quota (100 by default per region) ends up failing every deploy. After a snapshot is
 * taken, the service's older ones beyond the retention are deleted, oldest first.
 */
import { TAG, type AwsContext } from './context';
import { RDS_TAG, rdsOf, type RdsCalls, type RdsSnapshot } from './rds-kinds';

/** Snapshot kinds retention may delete: deploys' and drills'. A database restore's safety snapshot is kept. */
const PRUNABLE_KINDS = new Set(['pre-migrate', 'drill']);

/** What {@link pruneSnapshots} did. */
export interface PruneResult {
  deleted: string[];
  /** Snapshots beyond the retention that were kept, and why. */
  kept: Array<{ id: string; why: string }>;
}

/**
 * Deletes the service's (runbook:service, runbook:environment) manual snapshots of the prunable kinds that are
 * beyond aws.rds.retention: not among the `keep` newest, and (with maxAge) older than it; with only maxAge, older
 * than it; with only keep, beyond the newest `keep`. Never deleted: `keepId` (the snapshot just taken), a snapshot
 * whose taking workflow still runs (a deploy may still roll back to it), and one an existing RDS instance or
 * cluster was restored from (its runbook:snapshot tag: a drill or restore in progress). A snapshot that cannot be
 * deleted is logged and left for the next deploy: retention never fails the step that took a snapshot.
 */
export async function pruneSnapshots(
  ctx: AwsContext,
  calls: RdsCalls,
  at: { service: string; environment: string; keepId: string },
): Promise<PruneResult> {
  const retention = rdsOf(ctx.spec).retention;
  const result: PruneResult = { deleted: [], kept: [] };
  if (!retention || (retention.keep === undefined && retention.maxAgeMs === undefined)) return result;
  const kind = calls.kindOf(ctx.spec);
  const mine: Array<RdsSnapshot & { id: string; tags: Record<string, string> }> = [];
  for (const s of await kind.manualSnapshots()) {
    if (!s.id) continue;
    const tags = await calls.snapshotTags(s);
    if (tags[TAG.service] !== at.service || tags[TAG.environment] !== at.environment) continue;
    if (!PRUNABLE_KINDS.has(tags[TAG.kind] ?? '')) continue;
    mine.push({ ...s, id: s.id, tags });
  }
  mine.sort((a, b) => (b.createdAt?.getTime() ?? 0) - (a.createdAt?.getTime() ?? 0));
  const keep = retention.keep ?? 0;
  const now = ctx.now();
  const beyond = mine.filter((s, i) => {
    if (i < keep) return false;
    if (retention.maxAgeMs === undefined) return true;
    return s.createdAt !== undefined && now - s.createdAt.getTime() > retention.maxAgeMs;
  });
  if (beyond.length === 0) return result;

  const restoredFrom = new Set((await kind.all()).map((db) => db.tags[RDS_TAG.snapshot]).filter(Boolean));
  for (const s of beyond.reverse()) {
    const workflow = s.tags[TAG.workflow];
    let why: string | undefined;
    if (s.id === at.keepId) why = 'just taken';
    else if (s.status !== 'available') why = `it is ${s.status ?? 'in an unknown state'}`;
    else if (restoredFrom.has(s.id)) why = 'an RDS restore made from it exists';
    else if (workflow && (await ctx.isRunning(workflow))) why = `its workflow ${workflow} still runs`;
    if (why) {
      result.kept.push({ id: s.id, why });
      continue;
    }
    try {
      await kind.deleteSnapshot(s.id);
      result.deleted.push(s.id);
      ctx.activity()?.log(`retention: deleted RDS ${kind.snapshotNoun} ${s.id}`);
    } catch (err) {
      result.kept.push({ id: s.id, why: (err as Error).message });
      ctx.activity()?.log(`retention: could not delete RDS ${kind.snapshotNoun} ${s.id}: ${(err as Error).message}`);
    }
  }
  return result;
}

import type { SnapshotManifest } from '../platforms/types';
import type { MigrationRecord, ReleaseRef, SchemaState } from '../shared/deploy';
import type { PlatformPlan } from '../shared/platform-plan';
import type { ResolvedService } from '../shared/service-plan';

/**
 * What the runbooks' timelines say, in one place: the lines more than one workflow writes, and each workflow's plan
 * line. What differs by platform comes from the plan's PlatformPlan (`words`), never from a platform check here.
 */
export const say = {
  deployPlan: (plan: ResolvedService, platform: PlatformPlan, version: string, requestedBy: string) =>
    `plan: ${plan.service} ${version} to ${plan.environment} on ${platform.name}; traffic ` +
    `${plan.traffic.steps.map((s) => `${s.weight}%`).join(' -> ')}; gates ${plan.approvals.gates.join(', ') || 'none'}` +
    `${plan.database ? `; database ${plan.database.name}` : ''}; requested by ${requestedBy}`,

  firstDeploy: 'first deploy: no stable release, traffic goes to the new release in one step',

  snapshotTaken: (m: SnapshotManifest) =>
    `snapshot ${m.snapshotId}: ${m.tables.length} tables, ${m.tables.reduce((n, t) => n + t.rows, 0)} rows, ${m.bytes} bytes, migration ${m.migrationVersion ?? 'none'}`,

  schemaChange: (m: MigrationRecord) =>
    `schema ${m.before ? schemaWords(m.before) : '?'} -> ${m.after ? schemaWords(m.after) : '?'}` +
    (m.before && m.after && m.before.digest === m.after.digest ? ' (unchanged)' : ''),

  migrated: (applied: string[]) => (applied.length > 0 ? `applied ${applied.join(', ')}` : 'no pending migration'),

  healthGate: (plan: ResolvedService, release: ReleaseRef) =>
    `health gate: ${plan.health.liveness.path} and ${plan.health.readiness.path} on ${release.host}:${release.port}`,

  smoke: (plan: ResolvedService, release: ReleaseRef) =>
    `${plan.smoke.length} smoke check(s) against ${release.host}:${release.port}`,

  trafficStep: (index: number, of: number, weight: number, version: string) =>
    `traffic step ${index}/${of}: ${weight}% on ${version}`,

  notStartedOnCopy: (platform: PlatformPlan) =>
    `${platform.name}: the application is not started on the copy; it is checked over its endpoint`,
};

/** A schema in words: "migration 002_x, 3 tables (md5:…)" or "3 tables (md5:…)". */
function schemaWords(s: SchemaState): string {
  const tables = s.digest ? `${s.tables ?? '?'} table(s) (${s.digest})` : '';
  return [s.migration ? `migration ${s.migration}` : !tables ? 'no migration' : '', tables].filter(Boolean).join(', ');
}

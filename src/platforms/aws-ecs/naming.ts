import { slug } from '../../shared/ids';
import type { AwsRdsSpec } from '../../shared/service-plan';

/**
 * How aws-ecs names its RDS resources. Pure and workflow-safe: the platform's descriptor words the timeline with it,
 * the RDS store and the doctor name resources with it.
 */

/** The RDS resource the service's database lives on: its Aurora DB cluster (aws.rds.cluster) or its DB instance. */
export function rdsLiveId(rds: Pick<AwsRdsSpec, 'instance' | 'cluster'>): string {
  return rds.cluster ?? rds.instance ?? '';
}

/**
 * The RDS DB instance, or for a service on an Aurora cluster the DB cluster, that holds `database` on aws-ecs: the
 * service's own database lives on `rds.instance` / `rds.cluster`; any other name (a drill's scratch copy, a
 * rollback's restored copy) is an instance or cluster of its own, named after it (lowercase, '_' -> '-', starting
 * with a letter, at most 63; a cluster's at most 61, so that its writer instance `<cluster>-1` is a valid name too).
 * '' when no identifier can be made of it.
 */
export function rdsResourceId(rds: Pick<AwsRdsSpec, 'database' | 'instance' | 'cluster'>, database: string): string {
  if (database === rds.database) return rdsLiveId(rds);
  let id = slug(database);
  if (id && !/^[a-z]/.test(id)) id = `db-${id}`;
  return id.slice(0, rds.cluster === undefined ? 63 : 61).replace(/-+$/, '');
}

/** Where a database of an aws-ecs service is reached: the URL of the live one, or of a restored copy's instance. */
import { rdsLiveId } from './naming';
import type { AwsContext } from './context';
import { awsPermanent } from './errors';
import { rdsOf, instanceFor, notYet, rdsCalls } from './rds-kinds';

/**
 * The URL of `database` (see {@link instanceFor}): the service's own database is the URL in the worker's
 * environment variable aws.rds.urlEnv; any other is on its own instance (or Aurora cluster), reached at its
 * endpoint (a cluster's: the writer endpoint) through ctx.resolveAddress, with the same credentials and options,
 * database name aws.rds.database.
 * Throws NoDatabaseUrl (non-retryable) when the variable is missing; a plain (retryable) Error while the instance
 * has no endpoint yet; the awsCall failures of DescribeDBInstances (AwsNotFound when there is no such instance).
 */
export function rdsUrlFor(ctx: AwsContext): (database: string) => Promise<string> {
  const calls = rdsCalls(ctx);
  return async (database) => {
    const rds = rdsOf(ctx.spec);
    const kind = calls.kindOf(ctx.spec);
    const live = ctx.env[rds.urlEnv];
    if (!live) {
      throw awsPermanent(
        'NoDatabaseUrl',
        `the worker's environment has no ${rds.urlEnv}: set it to the URL (with credentials) of database ` +
          `${rds.database} on RDS ${kind.noun} ${rdsLiveId(rds)}, e.g. postgres://user:password@host:5432/${rds.database}`,
      );
    }
    const id = instanceFor(ctx.spec, database);
    if (id === rdsLiveId(rds)) return live;
    const db = await kind.describe(id);
    if (!db) {
      throw awsPermanent('AwsNotFound', `RDS ${kind.noun} ${id} (database ${database}) does not exist`);
    }
    if (!db.address || !db.port) {
      throw notYet(`RDS ${kind.noun} ${id} has no endpoint yet (it is ${db.status ?? 'unknown'})`);
    }
    const to = ctx.resolveAddress(db.address, db.port);
    const url = new URL(live);
    url.searchParams.delete('host');
    url.hostname = to.host.includes(':') ? `[${to.host}]` : to.host;
    url.port = String(to.port);
    url.pathname = `/${encodeURIComponent(rds.database)}`;
    return url.toString();
  };
}

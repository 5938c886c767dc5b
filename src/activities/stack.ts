import type { Pool } from 'pg';
import { ApplicationFailure } from '@temporalio/activity';
import { parseShowInfo, type HaproxyRuntime } from '../platforms/single-host/haproxy-runtime';
import type { DatabaseCheck, TrafficRouterCheck } from '../shared/stack-check';

export interface StackActivityDeps {
  db: Pick<Pool, 'query'>;
  haproxy: HaproxyRuntime;
}

/** Activities that prove the stack's servers answer: used by the stackCheck workflow and the demo. */
export function createStackActivities({ db, haproxy }: StackActivityDeps) {
  return {
    /** Asks the orchestrator's PostgreSQL for its version; retryable while the server is unreachable. */
    async checkDatabase(): Promise<DatabaseCheck> {
      const { rows } = await db.query<{ version: string; db: string }>(
        'SELECT version() AS version, current_database() AS db',
      );
      const row = rows[0];
      if (!row)
        throw ApplicationFailure.nonRetryable('PostgreSQL returned no row for SELECT version()', 'DatabaseCheckFailed');
      return { serverVersion: row.version.split(',')[0] ?? row.version, database: row.db };
    },

    /** Reads HAProxy's `show info` over the runtime API. */
    async checkTrafficRouter(): Promise<TrafficRouterCheck> {
      const info = parseShowInfo(await haproxy.command('show info'));
      if (!info.Version) throw new Error('HAProxy runtime API answered without a Version line');
      return { version: info.Version, uptime: info.Uptime ?? '' };
    },
  };
}

import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { databaseUrl, ensureDatabase, postgresComponent, removeCluster } from '../../src/stack/postgres';
import { freePort } from '../../src/system/processes';
import { resolveStackSettings, type StackSettings } from '../../src/stack/settings';
import { postgresBinDir } from '../../src/pg/bin-dir';

/** A private PostgreSQL cluster for one test file, in its own temporary folder on a free port. */
export interface PgFixture {
  settings: StackSettings;
  binDir: string;
  /** A scratch folder for the test's files (dumps, migration folders), removed with the cluster. */
  scratch: string;
  urlFor(database: string): string;
  /** Creates an empty database with a unique name starting with `prefix`. */
  createDatabase(prefix: string): Promise<string>;
  /** Runs one query on `database` on a short-lived connection. */
  query<T extends pg.QueryResultRow = pg.QueryResultRow>(
    database: string,
    sql: string,
    params?: unknown[],
  ): Promise<T[]>;
  /** Stops the cluster and removes its folder. */
  stop(): Promise<void>;
}

let counter = 0;

export async function startPgFixture(): Promise<PgFixture> {
  const home = mkdtempSync(path.join(os.tmpdir(), 'runbook-pg-'));
  const settings = resolveStackSettings({}, { home, postgresPort: await freePort() });
  const ctx = { settings, log: () => {} };
  const stop = async () => {
    await postgresComponent.stop(ctx).catch(() => false);
    removeCluster(home);
    rmSync(home, { recursive: true, force: true });
  };
  const binDir = postgresBinDir();
  if (!binDir) throw new Error('PostgreSQL binaries not found: sudo apt-get install -y postgresql-15');
  try {
    await postgresComponent.start(ctx);
  } catch (err) {
    await stop();
    throw err;
  }
  const scratch = path.join(home, 'scratch');
  mkdirSync(scratch);
  const urlFor = (database: string) => databaseUrl(settings, database);
  return {
    settings,
    binDir,
    scratch,
    urlFor,
    async createDatabase(prefix) {
      const name = `${prefix}_${process.pid}_${++counter}`;
      await ensureDatabase(settings, name);
      return name;
    },
    async query<T extends pg.QueryResultRow>(database: string, sql: string, params: unknown[] = []) {
      const client = new pg.Client({ connectionString: urlFor(database) });
      await client.connect();
      try {
        return (await client.query<T>(sql, params)).rows;
      } finally {
        await client.end();
      }
    },
    stop,
  };
}

/**
 * A service's database on a PostgreSQL server: creating it on the worker's own server (the embedded stack's first
 * deploy), and checking that it exists on a server the worker does not manage (an external PostgreSQL, RDS).
 */
import pg from 'pg';
import { connectPg } from './connect';

/**
 * Creates `database` on the server of `adminUrl` (a URL of the worker's (super)user) unless it exists, and says
 * which. Idempotent and safe when two workers race: the loser's CREATE DATABASE fails with duplicate_database (42P04,
 * or a unique violation on pg_database in a tight race) and that is 'exists'. The database belongs to the
 * connecting user (the platform then gives it to the service's role).
 * @throws the pg error otherwise, e.g. 42501 when the user may not create databases.
 */
export async function createDatabaseIfMissing(adminUrl: string, database: string): Promise<'created' | 'exists'> {
  const admin = await connectPg(adminUrl);
  try {
    const { rows } = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
    if (rows.length > 0) return 'exists';
    try {
      await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(database)}`);
      return 'created';
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === '42P04' || code === '23505') return 'exists'; // created by another worker meanwhile
      throw err;
    }
  } finally {
    await admin.end().catch(() => undefined);
  }
}

/** Where a database URL points, without its password: what a message may name. */
export interface DatabaseAddress {
  host: string;
  port: number;
  /** The user the URL logs in as; undefined when it names none (libpq's default, the OS user). */
  user: string | undefined;
  database: string | undefined;
}

/** The host, port, user and database of a postgres:// URL (a `host` parameter, a Unix socket, wins over the host). */
export function databaseAddress(url: string): DatabaseAddress {
  const u = new URL(url);
  const path = decodeURIComponent(u.pathname.replace(/^\//, ''));
  return {
    host: u.searchParams.get('host') ?? (decodeURIComponent(u.hostname).replace(/^\[(.*)\]$/, '$1') || 'localhost'),
    port: Number(u.searchParams.get('port') ?? u.port) || 5432,
    user: u.username ? decodeURIComponent(u.username) : undefined,
    database: path || undefined,
  };
}

/** The outcome of {@link checkDatabaseExists}; `missing` and `refused` carry the server's address, never a secret. */
export type DatabaseCheck =
  | { ok: true; address: DatabaseAddress; user: string }
  | { ok: false; reason: 'missing' | 'refused'; address: DatabaseAddress; detail: string };

/**
 * Connects to the database of `url` and asks who it is connected as: the database exists and the URL's credentials
 * are accepted ({ ok: true }), or it does not exist (3D000: 'missing'), or the server refuses the login (28P01,
 * 28000: 'refused'). `detail` is PostgreSQL's message, which names neither the password nor the URL.
 * @throws the pg or network error when the server cannot be reached (worth a retry).
 */
export async function checkDatabaseExists(url: string, timeoutMs = 10_000): Promise<DatabaseCheck> {
  const address = databaseAddress(url);
  let client: pg.Client;
  try {
    client = await connectPg(url, timeoutMs);
  } catch (err) {
    const code = (err as { code?: string }).code;
    const detail = (err as Error).message;
    if (code === '3D000') return { ok: false, reason: 'missing', address, detail };
    if (code === '28P01' || code === '28000') return { ok: false, reason: 'refused', address, detail };
    throw err;
  }
  try {
    const { rows } = await client.query<{ user: string }>('SELECT current_user AS user');
    return { ok: true, address, user: rows[0]?.user ?? '' };
  } finally {
    await client.end().catch(() => undefined);
  }
}

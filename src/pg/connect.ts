/** Connecting to PostgreSQL: one pg Client for a URL, with a connection timeout. */
import pg from 'pg';

/**
 * A connected pg Client for `url` (callers `end()` it). A dropped connection emits 'error' on the client; it is
 * ignored here because the pending query rejects too, and that is where it is reported.
 * Throws the pg error when the server cannot be reached within `timeoutMs`.
 */
export async function connectPg(url: string, timeoutMs = 10_000): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: timeoutMs });
  client.on('error', () => {});
  await client.connect();
  return client;
}

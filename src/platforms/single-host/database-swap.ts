/** The single-host SwapDatabases: renames a restored database into the place of the live one on the same server. */
import pg from 'pg';
import { giveDatabaseLike } from '../../pg/service-role';

const quote = (name: string) => pg.escapeIdentifier(name);

async function exists(admin: pg.Client, name: string): Promise<boolean> {
  return (await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [name])).rowCount === 1;
}

async function closeConnections(admin: pg.Client, name: string): Promise<void> {
  await admin.query(`ALTER DATABASE ${quote(name)} ALLOW_CONNECTIONS false`);
  await admin.query(
    'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()',
    [name],
  );
}

/**
 * Puts the database `restored` in the place of `database`, keeping the replaced one as `replacedAs` (never
 * dropped here), and gives it to the replaced one's service role, if it had one. The apps' connections are closed
 * first; they reconnect to the restored database by name, with their own role.
 * Idempotent, so a retried attempt after a crash between the two renames completes the swap:
 *   database + restored          -> rename both
 *   replacedAs + restored        -> rename restored (the first rename happened)
 *   database + replacedAs        -> done
 * @throws Error naming the databases when none of these states holds.
 */
export async function swapDatabases(
  adminUrl: string,
  database: string,
  restored: string,
  replacedAs: string,
): Promise<'swapped' | 'already swapped'> {
  const done = await renameInto(adminUrl, database, restored, replacedAs);
  await giveDatabaseLike(adminUrl, database, replacedAs);
  return done;
}

async function renameInto(
  adminUrl: string,
  database: string,
  restored: string,
  replacedAs: string,
): Promise<'swapped' | 'already swapped'> {
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    const [hasDb, hasRestored, hasReplaced] = [
      await exists(admin, database),
      await exists(admin, restored),
      await exists(admin, replacedAs),
    ];
    if (hasDb && hasReplaced && !hasRestored) return 'already swapped';
    if (!hasRestored) throw new Error(`cannot swap: the restored database ${restored} does not exist`);
    if (hasDb && hasReplaced)
      throw new Error(`cannot swap: ${replacedAs} already exists next to ${database} and ${restored}`);
    if (hasDb) {
      await closeConnections(admin, database);
      await admin.query(`ALTER DATABASE ${quote(database)} RENAME TO ${quote(replacedAs)}`);
      await admin.query(`ALTER DATABASE ${quote(replacedAs)} ALLOW_CONNECTIONS true`);
    }
    await closeConnections(admin, restored);
    await admin.query(`ALTER DATABASE ${quote(restored)} RENAME TO ${quote(database)}`);
    await admin.query(`ALTER DATABASE ${quote(database)} ALLOW_CONNECTIONS true`);
    return 'swapped';
  } finally {
    await admin.end();
  }
}

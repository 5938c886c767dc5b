/**
 * Each service's own PostgreSQL role on the embedded stack: it owns the service's database and what is in it, and is
 * no superuser, so a release can reach its own data and nothing else (not the orchestrator's database, not another
 * service's, not the server's files). The worker keeps the superuser; releases get a URL with their role.
 */
import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import pg from 'pg';
import { connectPg } from './connect';

/** PostgreSQL's longest identifier. */
const MAX_IDENTIFIER = 63;

/**
 * The role of a service in one environment: `<service>_<environment>_app`, shortened with a hash when that is longer
 * than PostgreSQL's 63 characters, so that two long names never share a role.
 */
export function serviceRoleName(service: string, environment: string): string {
  const name = `${service}_${environment}_app`.replace(/-/g, '_');
  if (name.length <= MAX_IDENTIFIER) return name;
  const hash = createHash('sha256').update(`${service}\0${environment}`).digest('hex').slice(0, 10);
  return `${name.slice(0, MAX_IDENTIFIER - 16)}_${hash}_app`;
}

/**
 * The role's password, derived from a secret only the worker holds (its superuser password): the same on every
 * worker of the stack and after a restart, and never stored anywhere.
 */
export function serviceRolePassword(secret: string, role: string): string {
  return createHmac('sha256', secret).update(`durable-runbooks service role ${role}`).digest('base64url');
}

/**
 * The SCRAM-SHA-256 verifier of a password (RFC 5802/7677, PostgreSQL's stored form): what `ALTER ROLE ... PASSWORD`
 * is given, so that the password itself never reaches the server's statement log.
 */
export function scramVerifier(password: string, salt: Buffer = randomBytes(16), iterations = 4096): string {
  const salted = pbkdf2Sync(password.normalize('NFKC'), salt, iterations, 32, 'sha256');
  const hmac = (key: Buffer, text: string) => createHmac('sha256', key).update(text).digest();
  const storedKey = createHash('sha256').update(hmac(salted, 'Client Key')).digest();
  const serverKey = hmac(salted, 'Server Key');
  return `SCRAM-SHA-256$${iterations}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`;
}

/** A role or privilege that the worker's own PostgreSQL user lacks, in words with the fix. */
export class ServiceRoleError extends Error {}

const quote = (name: string) => pg.escapeIdentifier(name);

/**
 * Gives `database` to `role`: creates the role if needed (LOGIN, no superuser, no CREATEDB, no CREATEROLE), sets its
 * password, makes it the owner of the database, of its schemas (except those owned by pg_database_owner, which
 * follow the database) and of every table, view, sequence, function and type in them that the migrations (run as
 * the superuser) or a restore created, and takes CONNECT and TEMP on the database from PUBLIC, so that other
 * services' roles cannot connect. Idempotent: a start after each migration or restore hands over what is new; calls
 * for the same role (two workers, two releases starting) take turns under an advisory lock.
 * @throws ServiceRoleError when the worker's user may not create roles or change owners.
 */
export async function ensureServiceRole(adminUrl: string, database: string, role: string, password: string) {
  const admin = await connectPg(adminUrl);
  try {
    // Two workers (or two releases starting) giving the same role at once would fail with "tuple concurrently
    // updated" on ALTER ROLE or ALTER ... OWNER: one at a time, for the whole hand-over (ending the session unlocks).
    await admin.query(`SELECT pg_advisory_lock(hashtextextended('durable-runbooks service role ' || $1, 0))`, [role]);
    const verifier = pg.escapeLiteral(scramVerifier(password));
    const { rows } = await admin.query<{ exists: boolean }>(
      'SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1) AS exists',
      [role],
    );
    try {
      if (!rows[0]?.exists) {
        await admin
          .query(`CREATE ROLE ${quote(role)} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION`)
          .catch((err: { code?: string }) => {
            if (err.code !== '42710') throw err; // created by another worker meanwhile
          });
      }
      await admin.query(`ALTER ROLE ${quote(role)} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION`);
      await admin.query(`ALTER ROLE ${quote(role)} PASSWORD ${verifier}`);
      await giveDatabase(admin, database, role);
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === '42501') {
        throw new ServiceRoleError(
          `the worker's PostgreSQL user may not create the role ${role} or give it the database ${database} ` +
            `(${(err as Error).message}): grant it CREATEROLE and ownership of ${database}, or set ` +
            `RUNBOOK_SERVICE_ROLES=off in the worker's environment to give releases the worker's own URL`,
        );
      }
      throw err;
    }
    await handOverObjects(urlWith(adminUrl, { database }), role);
  } finally {
    await admin.end().catch(() => undefined);
  }
}

async function giveDatabase(admin: pg.Client, database: string, role: string): Promise<void> {
  await admin.query(`ALTER DATABASE ${quote(database)} OWNER TO ${quote(role)}`);
  await admin.query(`REVOKE CONNECT, TEMPORARY ON DATABASE ${quote(database)} FROM PUBLIC`);
}

/**
 * Gives `database` (and what is in it) to the owner of `from` when that owner is a service role and `database` has
 * another owner: a restored database swapped into a service's place belongs to the service's role, as the one it
 * replaced did, so that the releases still running can read it when they reconnect. Nothing changes where service
 * roles are off (both belong to the worker's superuser). Returns the role it was given to, if any.
 */
export async function giveDatabaseLike(adminUrl: string, database: string, from: string): Promise<string | undefined> {
  const admin = await connectPg(adminUrl);
  let role: string | undefined;
  try {
    const { rows } = await admin.query<{ datname: string; owner: string; superuser: boolean }>(
      `SELECT d.datname, r.rolname AS owner, r.rolsuper AS superuser
         FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba WHERE d.datname = ANY($1)`,
      [[database, from]],
    );
    const mine = rows.find((r) => r.datname === database);
    const theirs = rows.find((r) => r.datname === from);
    if (!mine || !theirs || theirs.superuser || mine.owner === theirs.owner) return undefined;
    role = theirs.owner;
    await giveDatabase(admin, database, role);
  } finally {
    await admin.end().catch(() => undefined);
  }
  await handOverObjects(urlWith(adminUrl, { database }), role);
  return role;
}

/** `url` with another database and, when given, another user and password (the same server). */
export function urlWith(url: string, change: { database: string; user?: string; password?: string }): string {
  const u = new URL(url);
  u.pathname = `/${encodeURIComponent(change.database)}`;
  if (change.user !== undefined) u.username = encodeURIComponent(change.user);
  if (change.password !== undefined) u.password = encodeURIComponent(change.password);
  return u.toString();
}

/**
 * Makes `role` the owner of the user schemas and objects of the database at `url` (connected as the superuser).
 * Tables first (their owned sequences follow them), then what is left.
 */
async function handOverObjects(url: string, role: string): Promise<void> {
  const client = await connectPg(url);
  try {
    await client.query('BEGIN');
    await client.query(`SELECT set_config('runbook.role', $1, true)`, [role]);
    await client.query(HAND_OVER);
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** The hand-over, in one DO block: each object's own ALTER ... OWNER TO, for what the role does not own yet. */
const HAND_OVER = `
DO $$
DECLARE
  target text := current_setting('runbook.role');
  r record;
BEGIN
  FOR r IN
    SELECT n.nspname FROM pg_namespace n
     WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
       AND pg_get_userbyid(n.nspowner) NOT IN (target, 'pg_database_owner')
  LOOP
    EXECUTE format('ALTER SCHEMA %I OWNER TO %I', r.nspname, target);
  END LOOP;
  FOR r IN
    SELECT n.nspname, c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
       AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
       AND pg_get_userbyid(c.relowner) <> target
  LOOP
    EXECUTE format('ALTER %s %I.%I OWNER TO %I',
      CASE r.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END,
      r.nspname, r.relname, target);
  END LOOP;
  FOR r IN
    SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
       AND c.relkind = 'S' AND pg_get_userbyid(c.relowner) <> target
       AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype IN ('a', 'i'))
  LOOP
    EXECUTE format('ALTER SEQUENCE %I.%I OWNER TO %I', r.nspname, r.relname, target);
  END LOOP;
  FOR r IN
    SELECT p.oid::regprocedure AS signature, p.prokind FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
     WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
       AND pg_get_userbyid(p.proowner) <> target
       AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')
  LOOP
    EXECUTE format('ALTER %s %s OWNER TO %I',
      CASE r.prokind WHEN 'p' THEN 'PROCEDURE' WHEN 'a' THEN 'AGGREGATE' ELSE 'FUNCTION' END, r.signature, target);
  END LOOP;
  FOR r IN
    SELECT t.oid::regtype AS name, t.typtype FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
     WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
       AND pg_get_userbyid(t.typowner) <> target
       AND (t.typtype IN ('e', 'd', 'r')
            OR (t.typtype = 'c' AND (SELECT c.relkind FROM pg_class c WHERE c.oid = t.typrelid) = 'c'))
       AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = t.oid AND d.deptype = 'e')
  LOOP
    EXECUTE format('ALTER %s %s OWNER TO %I', CASE r.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END, r.name, target);
  END LOOP;
END $$`;

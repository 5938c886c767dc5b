import { existsSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { UserError } from '../errors';
import { DEFAULT_NAMESPACE, DEFAULT_TASK_QUEUE } from '../shared/constants';
import { writeFileAtomicallySync } from '../system/atomic-write';
import { ensurePrivateDirSync } from '../system/private-files';
import { plainConnection, type TemporalConnection } from '../temporal-connection';

const port = z.coerce.number().int().min(1).max(65535);

/**
 * Where and on which ports the embedded stack runs. Saved to `<home>/stack.json` by `runbook up`, without the
 * password of `externalDatabaseUrl` (that goes to `<home>/pgpass`, see {@link saveStackSettings}).
 */
export const stackSettingsSchema = z.object({
  home: z.string().min(1),
  temporalPort: port.default(7233),
  uiPort: port.default(8233),
  namespace: z.string().min(1).default(DEFAULT_NAMESPACE),
  /**
   * Which Temporal server the stack runs: the CLI's dev server (SQLite, with the Web UI), or the server built from its
   * Go module with PostgreSQL persistence and visibility (`runbook up --cluster`).
   */
  temporalServer: z.enum(['dev', 'cluster']).default('dev'),
  taskQueue: z.string().min(1).default(DEFAULT_TASK_QUEUE),
  postgresPort: port.default(55432),
  /** When set, PostgreSQL is the operator's own server and the stack does not start one. */
  externalDatabaseUrl: z.string().url().optional(),
  haproxyStatsPort: port.default(8404),
  /** The worker's Prometheus endpoint. */
  metricsPort: port.default(9464),
  /**
   * The runbook config the stack's worker trusts (its RUNBOOK_CONFIG): the plans of every deploy, rollback and drill
   * come from it. Absolute; unset: the worker refuses runbooks.
   */
  /**
   * The pgBackRest repository of the stack's PostgreSQL (WAL archive and base backups). Unset: `pgbackrest/repo` in
   * the cluster's folder. Absolute; as root it must be a folder the `postgres` user can write.
   */
  backupRepo: z
    .string()
    .min(1)
    .transform((dir) => path.resolve(dir))
    .optional(),
  runbookConfig: z
    .string()
    .min(1)
    .transform((file) => path.resolve(file))
    .optional(),
});
export type StackSettings = z.infer<typeof stackSettingsSchema>;

/** Environment variables that override a setting, named in error messages. */
export const settingEnv = {
  home: 'RUNBOOK_HOME',
  temporalPort: 'RUNBOOK_TEMPORAL_PORT',
  uiPort: 'RUNBOOK_UI_PORT',
  namespace: 'TEMPORAL_NAMESPACE',
  temporalServer: 'RUNBOOK_TEMPORAL_SERVER',
  taskQueue: 'RUNBOOK_TASK_QUEUE',
  postgresPort: 'RUNBOOK_PG_PORT',
  externalDatabaseUrl: 'DATABASE_URL',
  haproxyStatsPort: 'RUNBOOK_HAPROXY_STATS_PORT',
  metricsPort: 'RUNBOOK_METRICS_PORT',
  backupRepo: 'RUNBOOK_BACKUP_REPO',
  runbookConfig: 'RUNBOOK_CONFIG',
} as const satisfies Record<keyof StackSettings, string>;

export function defaultHome(env: NodeJS.ProcessEnv = process.env): string {
  return path.resolve(env.RUNBOOK_HOME ?? path.join(process.cwd(), '.runbook'));
}

const settingsFile = (home: string) => path.join(home, 'stack.json');

/**
 * Resolves the stack settings: environment variables win, then the settings the stack was last started
 * with (`stack.json`), then defaults. All problems are reported together.
 */
export function resolveStackSettings(
  env: NodeJS.ProcessEnv = process.env,
  overrides: Partial<StackSettings> = {},
): StackSettings {
  const home = overrides.home ?? defaultHome(env);
  let saved: Record<string, unknown> = {};
  if (existsSync(settingsFile(home))) {
    try {
      saved = JSON.parse(readFileSync(settingsFile(home), 'utf8')) as Record<string, unknown>;
    } catch {
      throw new UserError(`${settingsFile(home)} is not valid JSON`, `delete it and run \`runbook up\` again`);
    }
  }
  if (typeof saved.externalDatabaseUrl === 'string') {
    saved.externalDatabaseUrl = withSavedPassword(saved.externalDatabaseUrl, home);
  }
  const fromEnv: Record<string, unknown> = {};
  for (const [key, name] of Object.entries(settingEnv)) {
    if (env[name] !== undefined && env[name] !== '') fromEnv[key] = env[name];
  }
  const parsed = stackSettingsSchema.safeParse({ ...saved, ...fromEnv, ...overrides, home });
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => {
      const key = String(i.path[0] ?? '');
      const name = settingEnv[key as keyof StackSettings];
      return `${name ?? key}: ${i.message}`;
    });
    throw new UserError(`invalid stack settings: ${problems.join('; ')}`, 'fix the environment variables named above');
  }
  return parsed.data;
}

/** The password of an external DATABASE_URL, in libpq's passfile format (PGPASSFILE), 0600. */
export const passfilePath = (home: string) => path.join(home, 'pgpass');

interface PassEntry {
  host: string;
  port: string;
  database: string;
  user: string;
  password: string;
}

const escapeField = (v: string) => v.replace(/[\\:]/g, (c) => `\\${c}`);

function parsePassLine(line: string): PassEntry | undefined {
  const fields: string[] = [];
  let field = '';
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c === '\\' && i + 1 < line.length) field += line[++i];
    else if (c === ':' && fields.length < 4) {
      fields.push(field);
      field = '';
    } else field += c;
  }
  fields.push(field);
  const [host, port, database, user, password] = fields;
  if (host === undefined || port === undefined || database === undefined || user === undefined || !password) return;
  return { host, port, database, user, password };
}

/** Host, port and user of a postgres URL as a passfile names them. */
function passKey(url: URL): Omit<PassEntry, 'password' | 'database'> {
  return {
    host: url.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: url.port || '5432',
    user: safeDecode(url.username) || '*',
  };
}

function safeDecode(v: string): string {
  try {
    return decodeURIComponent(v);
  } catch {
    return v;
  }
}

/** The URL with its password (in the userinfo or a `password` parameter) taken out, and that password. */
export function splitDatabasePassword(value: string): { url: string; password?: string } {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return { url: value };
  }
  const password = url.password ? safeDecode(url.password) : (url.searchParams.get('password') ?? undefined);
  if (!password) return { url: value };
  url.password = '';
  url.searchParams.delete('password');
  return { url: url.toString(), password };
}

/** A saved URL without a password gets the one the passfile holds for its host, port and user (if any). */
function withSavedPassword(value: string, home: string): string {
  const file = passfilePath(home);
  if (!existsSync(file)) return value;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return value;
  }
  if (url.password) return value;
  const key = passKey(url);
  const match = (field: string, want: string) => field === '*' || field === want;
  const entry = readFileSync(file, 'utf8')
    .split('\n')
    .map(parsePassLine)
    .find((e) => e && match(e.host, key.host) && match(e.port, key.port) && match(e.user, key.user));
  if (!entry) return value;
  url.password = encodeURIComponent(entry.password);
  return url.toString();
}

/**
 * Saves the settings to `<home>/stack.json` (0600, in a 0700 data folder). An external DATABASE_URL is saved without
 * its password; the password goes to `<home>/pgpass` (0600, libpq's format: `PGPASSFILE=.runbook/pgpass psql ...`
 * works too) and is put back into the URL, in memory, when the settings are read. No file holds a URL with a password.
 */
export function saveStackSettings(settings: StackSettings): void {
  ensurePrivateDirSync(settings.home);
  const passfile = passfilePath(settings.home);
  const external = settings.externalDatabaseUrl ? splitDatabasePassword(settings.externalDatabaseUrl) : undefined;
  if (external?.password) {
    const key = passKey(new URL(external.url));
    const line = [key.host, key.port, '*', key.user, external.password].map(escapeField).join(':');
    writeFileAtomicallySync(passfile, `${line}\n`);
  } else {
    rmSync(passfile, { force: true });
  }
  const saved = { ...settings, ...(external ? { externalDatabaseUrl: external.url } : {}) };
  writeFileAtomicallySync(settingsFile(settings.home), `${JSON.stringify(saved, null, 2)}\n`);
}

export const temporalAddress = (s: StackSettings) => `127.0.0.1:${s.temporalPort}`;
export const uiUrl = (s: StackSettings) => `http://localhost:${s.uiPort}`;

/**
 * How the stack's own clients reach its dev server: plainly, on the loopback address of stack.json, whatever
 * profile the operator's environment names (that one is for the CLI's and workers' connections).
 */
export const embeddedConnection = (s: StackSettings): TemporalConnection =>
  plainConnection(temporalAddress(s), s.namespace, 'the embedded stack (stack.json)');

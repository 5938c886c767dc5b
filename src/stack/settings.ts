import { existsSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { UserError } from '../errors';
import { DEFAULT_NAMESPACE, DEFAULT_TASK_QUEUE } from '../shared/constants';
import { plainConnection, type TemporalConnection } from '../temporal-connection';

const port = z.coerce.number().int().min(1).max(65535);

/** Where and on which ports the embedded stack runs. Saved to `<home>/stack.json` by `runbook up`. */
export const stackSettingsSchema = z.object({
  home: z.string().min(1),
  temporalPort: port.default(7233),
  uiPort: port.default(8233),
  namespace: z.string().min(1).default(DEFAULT_NAMESPACE),
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
  taskQueue: 'RUNBOOK_TASK_QUEUE',
  postgresPort: 'RUNBOOK_PG_PORT',
  externalDatabaseUrl: 'DATABASE_URL',
  haproxyStatsPort: 'RUNBOOK_HAPROXY_STATS_PORT',
  metricsPort: 'RUNBOOK_METRICS_PORT',
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

export function saveStackSettings(settings: StackSettings): void {
  mkdirSync(settings.home, { recursive: true });
  writeFileSync(settingsFile(settings.home), `${JSON.stringify(settings, null, 2)}\n`);
}

export const temporalAddress = (s: StackSettings) => `127.0.0.1:${s.temporalPort}`;
export const uiUrl = (s: StackSettings) => `http://localhost:${s.uiPort}`;

/**
 * How the stack's own clients reach its dev server: plainly, on the loopback address of stack.json, whatever
 * profile the operator's environment names (that one is for the CLI's and workers' connections).
 */
export const embeddedConnection = (s: StackSettings): TemporalConnection =>
  plainConnection(temporalAddress(s), s.namespace, 'the embedded stack (stack.json)');

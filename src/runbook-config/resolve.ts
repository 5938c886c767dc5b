/**
 * One service in one environment, ready for a workflow: the base block merged with the environment's overrides,
 * validated, and turned into a ResolvedService (durations in ms, paths absolute); and a release's command with its
 * placeholders filled in.
 */
import path from 'node:path';
import { UserError } from '../errors';
import type {
  AwsEcsSpec,
  DatabaseSpec,
  JsonValue,
  ReleaseSpec,
  ResolvedService,
  ServiceCommon,
  SmokeCheck,
} from '../shared/service-plan';
import { AWS_MIN_INTERVAL_MS } from './aws-ecs-schema';
import { validateService } from './cross-checks';
import { mergePatch, type Path } from './json';
import type { RunbookConfig, ServiceDefinition } from './load';
import { RunbookConfigError, didYouMean, formatPath, fromOverride, problemMessage } from './problems';
import { serviceSchema, type ParsedService } from './schema';
import { PLACEHOLDER } from './values';

/** The environment used when none is given: the first one the service lists. @throws UserError for an unknown service. */
export function defaultEnvironment(config: RunbookConfig, service: string): string {
  const definition = serviceDefinition(config, service);
  const first = Object.keys(definition.environments)[0];
  if (first === undefined) {
    throw new UserError(
      `service "${service}" lists no environments in ${config.source}`,
      `add services.${service}.environments`,
    );
  }
  return first;
}

/**
 * One service in one environment: the base block merged with `environments.<environment>` (maps merge, lists and
 * values replace, null removes), validated, with durations in ms and paths absolute.
 * @throws UserError for an unknown service or environment (listing the known ones); RunbookConfigError when the
 *   merged settings are invalid.
 */
export function resolveService(config: RunbookConfig, service: string, environment: string): ResolvedService {
  const definition = serviceDefinition(config, service);
  const overrides = definition.environments[environment];
  if (overrides === undefined) {
    const known = Object.keys(definition.environments);
    throw new UserError(
      `service "${service}" has no environment "${environment}"${didYouMean(environment, known)}; its environments: ${known.join(', ')}`,
      `use one of ${known.join(', ')}, or add ${environment} under services.${service}.environments in ${config.source}`,
    );
  }
  const merged = mergePatch(definition.base, overrides);
  const at: Path = ['services', service];
  const problems = validateService(merged).map((p) => {
    const inOverride = fromOverride(definition.base, overrides, p.path);
    const path = inOverride ? [...at, 'environments', environment, ...p.path] : [...at, ...p.path];
    return `${formatPath(path)}: ${problemMessage(p, inOverride)}`;
  });
  if (problems.length > 0) throw new RunbookConfigError(config.source, problems);
  const parsed = serviceSchema.parse(merged);
  const members = (list: string[], where: string) => expandGroups(config, list, `${formatPath(at)}.${where}`);
  parsed.approvals.approvers = members(parsed.approvals.approvers, 'approvals.approvers');
  parsed.rollback.approvals.approvers = members(parsed.rollback.approvals.approvers, 'rollback.approvals.approvers');
  parsed.rollback.dbRestoreApprovers = members(parsed.rollback.dbRestoreApprovers, 'rollback.dbRestoreApprovers');
  return toResolved(parsed, { service, environment, source: config.source, baseDir: config.baseDir });
}

/**
 * Approvers with each `group:<name>` replaced by the group's members (in order, each name once).
 * @throws RunbookConfigError naming an unknown group.
 */
function expandGroups(config: RunbookConfig, approvers: string[], where: string): string[] {
  const out: string[] = [];
  for (const a of approvers) {
    if (!a.startsWith('group:')) {
      if (!out.includes(a)) out.push(a);
      continue;
    }
    const group = a.slice('group:'.length);
    const members = Object.hasOwn(config.groups, group) ? config.groups[group] : undefined;
    if (!members) {
      const known = Object.keys(config.groups);
      throw new RunbookConfigError(config.source, [
        `${where}: ${a} is not defined; groups: ${known.join(', ') || '(none)'} (define it under groups: at the top)`,
      ]);
    }
    for (const m of members) if (!out.includes(m)) out.push(m);
  }
  return out;
}

function serviceDefinition(config: RunbookConfig, service: string): ServiceDefinition {
  const definition = Object.hasOwn(config.services, service) ? config.services[service] : undefined;
  if (!definition) {
    const known = Object.keys(config.services);
    throw new UserError(
      `unknown service "${service}"${didYouMean(service, known)}; ${config.source} defines: ${known.join(', ') || '(none)'}`,
      `use one of ${known.join(', ')}, or add "${service}" under services: in ${config.source}`,
    );
  }
  return definition;
}

function toResolved(
  s: ParsedService,
  at: { service: string; environment: string; source: string; baseDir: string },
): ResolvedService {
  const common: ServiceCommon = {
    service: at.service,
    environment: at.environment,
    source: at.source,
    health: {
      liveness: s.health.liveness,
      readiness: s.health.readiness,
      timeoutMs: s.health.timeout,
      deadlineMs: s.health.deadline,
    },
    smoke: s.smoke.map((c): SmokeCheck =>
      'command' in c
        ? c
        : {
            name: c.name,
            method: c.method,
            path: c.path,
            ...(c.body !== undefined ? { body: c.body as JsonValue } : {}),
            expectStatus: c.expectStatus,
            ...(c.bodyMatches !== undefined ? { bodyMatches: c.bodyMatches } : {}),
          },
    ),
    ...(s.database ? { database: toDatabase(s.database, at.baseDir) } : {}),
    traffic: { steps: s.traffic.steps },
    // A step without evidence pauses for a human by default; with nobody to ask, it fails (rolls back) instead.
    analysis: {
      ...s.analysis,
      onInconclusive: s.analysis.onInconclusive ?? (s.approvals.approvers.length > 0 ? 'pause' : 'fail'),
    },
    approvals: s.approvals,
    rollback: s.rollback,
    signing: s.signing,
    ...(s.drill ? { drill: s.drill } : {}),
    ...(s.backup ? { backup: s.backup } : {}),
  };
  // serviceCrossChecks() guarantees aws for aws-ecs, and an analysis interval of at least a minute when given.
  if (s.platform === 'aws-ecs') {
    const analysis = { ...common.analysis, intervalMs: Math.max(common.analysis.intervalMs, AWS_MIN_INTERVAL_MS) };
    const aws = s.aws as AwsEcsSpec;
    const rds =
      aws.rds && s.database ? { rds: { ...aws.rds, database: s.database.name, urlEnv: s.database.urlEnv ?? '' } } : {};
    return { ...common, analysis, platform: 'aws-ecs', aws: { ...aws, ...rds } };
  }
  // serviceCrossChecks() guarantees listen and release for single-host.
  const { listen, release } = s as Required<Pick<ParsedService, 'listen' | 'release'>>;
  return {
    ...common,
    platform: 'single-host',
    listen: { port: listen.port },
    release: {
      command: release.command,
      cwd: path.resolve(at.baseDir, release.cwd),
      env: release.env,
      portRange: release.portRange,
      drainMs: release.drain,
    },
  };
}

/**
 * The database block: the migrations folder absolute (a {version} in it stays, for the worker to fill in with the
 * version it deploys), the migrate command with its status command, the declared compatibility.
 */
function toDatabase(d: NonNullable<ParsedService['database']>, baseDir: string): DatabaseSpec {
  return {
    name: d.name,
    ...(d.urlEnv ? { urlEnv: d.urlEnv } : {}),
    ...(d.migrations ? { migrationsDir: path.resolve(baseDir, d.migrations) } : {}),
    ...(d.migrate
      ? {
          migrate: {
            command: d.migrate.command,
            timeoutMs: d.migrate.timeout,
            ...(d.migrate.status ? { status: d.migrate.status } : {}),
          },
        }
      : {}),
    ...(d.compatibility ? { compatibility: d.compatibility } : {}),
  };
}

/** A release's command, cwd and env with {version} and {port} filled in, ready to spawn. */
export interface RenderedRelease {
  command: string[];
  cwd: string;
  env: Record<string, string>;
}

/**
 * Fills in {version} and {port}.
 * @throws UserError when the version could escape the release folder (it may hold letters, digits, '.', '_', '-').
 */
export function renderRelease(release: ReleaseSpec, values: { version: string; port: number }): RenderedRelease {
  const fill = filler(values);
  return {
    command: release.command.map(fill),
    cwd: fill(release.cwd),
    env: Object.fromEntries(Object.entries(release.env).map(([k, v]) => [k, fill(v)])),
  };
}

/**
 * The folder and environment a command of the release (a migration, a smoke check) runs with: {version} filled in.
 * A command has no port, so environment entries that use {port} are left out (a made-up port could reach a server
 * that is not the release's); the schema allows no {port} in `cwd`, and one there is refused rather than guessed.
 * @throws UserError for a version that could escape the release folder, or {port} in `cwd`.
 */
export function renderReleaseForCommand(release: ReleaseSpec, version: string): Omit<RenderedRelease, 'command'> {
  const fill = filler({ version });
  if (placeholdersIn(release.cwd).includes('port')) {
    throw new UserError(`the release folder ${release.cwd} uses {port}, which a release command does not have`);
  }
  return {
    cwd: fill(release.cwd),
    env: Object.fromEntries(
      Object.entries(release.env)
        .filter(([, v]) => !placeholdersIn(v).includes('port'))
        .map(([k, v]) => [k, fill(v)]),
    ),
  };
}

const placeholdersIn = (s: string) => [...s.matchAll(PLACEHOLDER)].map((m) => m[1]);

/** Fills {version} (checked: it names a folder) and, when given, {port}; other placeholders stay as they are. */
function filler(values: { version: string; port?: number }): (s: string) => string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(values.version) || values.version.includes('..')) {
    throw new UserError(
      `invalid release version ${JSON.stringify(values.version)}: it names a folder, so it may hold only letters, digits, '.', '_' and '-' (no '..')`,
      'use a version like v2 or 1.4.0',
    );
  }
  return (s) =>
    s.replace(PLACEHOLDER, (whole, name: string) =>
      name === 'version' ? values.version : name === 'port' && values.port !== undefined ? String(values.port) : whole,
    );
}

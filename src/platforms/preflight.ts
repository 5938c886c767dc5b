import { UserError } from '../errors';
import { renderRelease } from '../runbook-config';
import { formatDuration } from '../runbook-config/durations';
import { isCommandCheck, type Platform, type ResolvedService, type SingleHostService } from '../shared/service-plan';
import type { Check } from '../stack/component';

/**
 * What the CLI asks of a service's platform before it starts a workflow or when it checks an installation: one
 * entry per platform, looked up by the plan's platform name. Light to load: a platform's SDK is imported only when
 * its own checks run.
 */
interface PlatformPreflight<S extends ResolvedService> {
  /** Refuses a version the platform cannot use (a UserError naming `flag`). */
  checkVersion(plan: S, version: string, flag: string): void;
  /** The doctor's checks of the service's resources on the platform; none where the stack's own checks cover it. */
  doctor?(plan: S, env: NodeJS.ProcessEnv): Promise<Check[]>;
  /** How `--dry-run` shows where the service runs and how a release starts: [label, text] rows. */
  planRows(plan: S): Array<[string, string]>;
  /** Where the service's database lives, beyond its name (' on RDS instance x'); '' when it is the stack's. */
  databaseWhere?(plan: S): string;
}

const envText = (e: Record<string, string>) =>
  Object.entries(e)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
const envPart = (e: Record<string, string>) => (Object.keys(e).length > 0 ? `; env ${envText(e)}` : '');

const preflights: { [P in Platform]: PlatformPreflight<Extract<ResolvedService, { platform: P }>> } = {
  'single-host': {
    // A version names a release folder: rendering the release proves its command, cwd and env accept it.
    checkVersion: (plan, version) => void renderRelease(plan.release, { version, port: plan.release.portRange.min }),
    planRows: ({ listen, release: r }) => [
      [
        'platform',
        `single-host: frontend port ${listen.port}, releases on ports ${r.portRange.min}-${r.portRange.max}`,
      ],
      ['release', `${r.command.join(' ')} in ${r.cwd}${envPart(r.env)}; drain ${formatDuration(r.drainMs)}`],
    ],
  },
  'aws-ecs': {
    // The version becomes an image tag: letters, digits, '.', '_', '-', at most 128 characters.
    checkVersion(plan, version, flag) {
      if (!/^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/.test(version)) {
        throw new UserError(
          `invalid ${flag} ${JSON.stringify(version)}: it becomes the image tag of ${plan.aws.image}, so it may hold only letters, digits, '.', '_' and '-' (at most 128)`,
          'use a version like v2 or 1.4.0',
        );
      }
    },
    planRows: ({ aws: a }) => [
      [
        'platform',
        `aws-ecs: region ${a.region}${a.endpoint ? ` (endpoint ${a.endpoint})` : ''}, cluster ${a.cluster}, services ${a.services.blue} / ${a.services.green}`,
      ],
      [
        'release',
        `image ${a.image} in container ${a.container}${envPart(a.env)}; ` +
          `traffic by ${a.listenerRule ?? a.listener}, checks through ${a.testListener}; rollout timeout ${formatDuration(a.rolloutTimeoutMs)}, drain ${formatDuration(a.drainMs)}`,
      ],
    ],
    databaseWhere: ({ aws: { rds } }) =>
      rds ? ` on RDS ${rds.instance ? `instance ${rds.instance}` : `cluster ${rds.cluster}`}` : '',
    async doctor(plan, env) {
      const { awsDoctorChecks } = await import('./aws-ecs/doctor.js');
      const releaseCommands =
        plan.database?.migrate !== undefined ||
        plan.drill?.integrityCommand !== undefined ||
        plan.smoke.some((c) => isCommandCheck(c) && c.runFrom === 'release');
      return awsDoctorChecks(plan.aws, { service: plan.service, environment: plan.environment }, env, {
        releaseCommands,
      });
    },
  },
};

const preflightOf = (plan: ResolvedService) => preflights[plan.platform] as PlatformPreflight<ResolvedService>;

/** Refuses a version the service's platform cannot use, before any workflow starts. @throws UserError */
export function checkVersion(plan: ResolvedService, version: string, flag: string): void {
  preflightOf(plan).checkVersion(plan, version, flag);
}

/** The rows `--dry-run` shows for the service's platform (where it runs, how a release starts). */
export function platformPlanRows(plan: ResolvedService): Array<[string, string]> {
  return preflightOf(plan).planRows(plan);
}

/** Where the service's database lives on its platform, as words to append to its name. */
export function platformDatabaseWhere(plan: ResolvedService): string {
  return preflightOf(plan).databaseWhere?.(plan) ?? '';
}

/** The doctor's checks of a service's resources on its platform (AWS calls for aws-ecs; none for single-host). */
export async function platformDoctorChecks(plan: ResolvedService, env: NodeJS.ProcessEnv): Promise<Check[]> {
  return (await preflightOf(plan).doctor?.(plan, env)) ?? [];
}

/**
 * The plan of a command that runs processes on this host itself (the demo), which only a single-host service can be.
 * @throws UserError naming the platform the service uses
 */
export function singleHostPlan(s: ResolvedService, command: string): SingleHostService {
  if (s.platform !== 'single-host') {
    throw new UserError(
      `${command}: ${s.service}/${s.environment} uses platform ${s.platform}; ${command} runs single-host services only`,
    );
  }
  return s;
}

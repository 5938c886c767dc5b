import { UserError } from '../errors';
import { renderRelease } from '../runbook-config';
import type { Platform, ResolvedService } from '../shared/service-plan';
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
}

const preflights: { [P in Platform]: PlatformPreflight<Extract<ResolvedService, { platform: P }>> } = {
  'single-host': {
    // A version names a release folder: rendering the release proves its command, cwd and env accept it.
    checkVersion: (plan, version) => void renderRelease(plan.release, { version, port: plan.release.portRange.min }),
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
    async doctor(plan, env) {
      const { awsDoctorChecks } = await import('./aws-ecs/doctor.js');
      return awsDoctorChecks(plan.aws, { service: plan.service, environment: plan.environment }, env);
    },
  },
};

const preflightOf = (plan: ResolvedService) => preflights[plan.platform] as PlatformPreflight<ResolvedService>;

/** Refuses a version the service's platform cannot use, before any workflow starts. @throws UserError */
export function checkVersion(plan: ResolvedService, version: string, flag: string): void {
  preflightOf(plan).checkVersion(plan, version, flag);
}

/** The doctor's checks of a service's resources on its platform (AWS calls for aws-ecs; none for single-host). */
export async function platformDoctorChecks(plan: ResolvedService, env: NodeJS.ProcessEnv): Promise<Check[]> {
  return (await preflightOf(plan).doctor?.(plan, env)) ?? [];
}

import type { AwsEcsSpec } from './service-plan';

/**
 * The platform an activity request is for, with the settings that platform's implementation is built from: the
 * worker's platform registry picks the implementation by `name`. Names and ARNs only, never credentials.
 * Workflow-safe.
 */
export type PlatformTarget = { name: 'single-host' } | { name: 'aws-ecs'; aws: AwsEcsSpec };

/**
 * What every platform-touching activity request carries, as its `platform` field. `aws` is how requests scheduled
 * before that field named the aws-ecs platform (absent both: single-host, which is what requests from before the
 * aws-ecs platform meant); they are still accepted so that running workflows and committed histories keep working.
 */
export interface Targeted {
  platform?: PlatformTarget;
  /** @deprecated requests scheduled before `platform`; read through targetOf (src/platforms/registry.ts). */
  aws?: AwsEcsSpec;
}

import { ApplicationFailure } from '@temporalio/activity';
import type { PlatformDeps, PlatformParts } from '../platforms/types';
import type { OnPlatform } from '../shared/platform';

/**
 * The platform an activity request is for: aws-ecs when it carries `aws` settings, else single-host (which is
 * also what requests from histories older than the aws-ecs platform mean).
 */
export function platformPicker(deps: PlatformDeps): (target?: OnPlatform) => PlatformParts {
  return (target) => {
    if (!target?.aws) return deps;
    if (!deps.aws) {
      throw ApplicationFailure.nonRetryable(
        'this worker was built without the aws-ecs platform; run the worker from src/worker.ts',
        'PlatformUnavailable',
      );
    }
    return deps.aws(target.aws);
  };
}

import { ApplicationFailure } from '@temporalio/activity';
import type { PlatformParts, PlatformRegistry } from '../platforms/types';
import { targetOf } from '../platforms/registry';
import type { Targeted } from '../shared/target';

/**
 * The platform an activity request is for, asked of the worker's registry once per request (old request shapes
 * included, see targetOf). Throws PlatformUnavailable (non-retryable) for a platform this worker was built without.
 */
export function platformPicker(platforms: PlatformRegistry): (req?: Targeted) => PlatformParts {
  return (req) => {
    const target = targetOf(req);
    const parts = platforms.get(target);
    if (!parts) {
      throw ApplicationFailure.nonRetryable(
        `this worker was built without the ${target.name} platform; run the worker from src/worker.ts`,
        'PlatformUnavailable',
      );
    }
    return parts;
  };
}

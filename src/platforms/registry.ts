import type { PlatformFactories, PlatformParts, PlatformRegistry } from './types';
import type { PlatformTarget, Targeted } from '../shared/target';

/**
 * The registry keyed by platform name: each target is built by its platform's factory once per distinct settings
 * (the same aws block is one aws-ecs platform for the worker's life), then served from the cache.
 */
export function createPlatformRegistry(factories: PlatformFactories): PlatformRegistry {
  const built = new Map<string, PlatformParts>();
  return {
    get(target: PlatformTarget) {
      const factory = factories[target.name] as ((t: PlatformTarget) => PlatformParts) | undefined;
      if (!factory) return undefined;
      const key = JSON.stringify(target);
      let parts = built.get(key);
      if (!parts) {
        parts = factory(target);
        built.set(key, parts);
      }
      return parts;
    },
  };
}

/** The platform a request is for, old request shapes included. */
export function targetOf(req: Targeted | undefined): PlatformTarget {
  if (req?.platform) return req.platform;
  return req?.aws ? { name: 'aws-ecs', aws: req.aws } : { name: 'single-host' };
}

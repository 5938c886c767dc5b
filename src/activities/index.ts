import { createStackActivities, type StackActivityDeps } from './stack';

export type ActivityDeps = StackActivityDeps;

/** All activities of the worker, built from their dependencies (the composition root supplies real clients). */
export function createActivities(deps: ActivityDeps) {
  return {
    ...createStackActivities(deps),
  };
}

export type Activities = ReturnType<typeof createActivities>;

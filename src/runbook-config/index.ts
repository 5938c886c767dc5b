/*
 * runbook.yaml: per service and environment, how to deploy it. The file is validated once, as a whole, and every
 * problem is reported with its path in the file. What a workflow receives is a ResolvedService: plain JSON with
 * durations in milliseconds and absolute paths, and no secrets (it is copied into workflow histories).
 */

export {
  loadRunbookConfig,
  parseRunbookConfig,
  runbookConfigPath,
  type RunbookConfig,
  type ServiceDefinition,
} from './load';
export {
  defaultEnvironment,
  renderRelease,
  renderReleaseForCommand,
  resolveService,
  type RenderedRelease,
} from './resolve';
export { RunbookConfigError } from './problems';
export { parseDuration } from './durations';
export { canonicalJson, canonicalPlan, differingFields, planDifferences, planDigest } from './digest';

/**
 * Deterministic resource names derived from a workflow id and a step, so that a retried activity or a new
 * worker adopts what an earlier attempt created instead of creating it twice. Workflow-safe (no crypto).
 */

/** FNV-1a, 32 bit, as 8 hex digits. */
export function shortHash(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, '0');
}

/** Lower-case letters, digits and dashes only, no leading/trailing dash. */
export function slug(text: string): string {
  return text
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/-+/g, '-')
    .replace(/^-|-$/g, '');
}

/** `<readable part>-<hash of the whole>`, at most `max` characters, matching /^[a-z0-9][a-z0-9-]*$/. */
export function resourceName(readable: string, unique: string, max = 63): string {
  const hash = shortHash(unique);
  const head = slug(readable)
    .slice(0, max - hash.length - 1)
    .replace(/-$/, '');
  return head ? `${head}-${hash}` : `r${hash}`;
}

/** The id of a release started by a workflow: the version, readable, plus a hash of the workflow id. */
export const releaseIdFor = (version: string, workflowId: string) => resourceName(version, `${workflowId}/release`, 40);

/** The id of a snapshot a workflow takes at a step (e.g. "pre-migrate"). */
export const snapshotIdFor = (service: string, environment: string, workflowId: string, step: string) =>
  resourceName(`${service}-${environment}-${step}`, `${workflowId}/${step}`, 63);

/** A PostgreSQL database name derived from a workflow id: like resourceName, with '_' instead of '-'. */
export const databaseNameFor = (readable: string, unique: string) =>
  resourceName(readable, unique, 63).replace(/-/g, '_');

/**
 * The digest of a resolved plan: what the CLI shows the operator and sends with a request, and what the worker
 * compares with the plan it resolves from its own runbook config. The one place the canonical form is defined.
 *
 * Canonical form: the ResolvedService without `source` (where the file is, not what it says), with the paths that
 * lie inside the config's folder written relative to it (`./shop/releases/{version}`), so that two checkouts of the
 * same reviewed config in different folders (the operator's, the worker's) have the same digest; then JSON with the
 * keys of every object sorted, lists in their order. The digest is `sha256:` and the hex sha256 of that JSON.
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import type { ResolvedPlan } from '../shared/request';
import type { JsonObject, JsonValue, ResolvedService } from '../shared/service-plan';
import { isPlainObject } from './json';

/** The fields of a plan that hold paths (resolved against the config's folder). */
const PATH_FIELDS = [
  ['release', 'cwd'],
  ['database', 'migrationsDir'],
] as const;

/** The plan as the digest sees it: no `source`, paths inside the config's folder relative to it, keys sorted. */
export function canonicalPlan(plan: ResolvedService): JsonObject {
  const { source, ...rest } = plan;
  const base = path.dirname(source);
  const copy = JSON.parse(JSON.stringify(rest)) as JsonObject;
  for (const [block, key] of PATH_FIELDS) {
    const holder = copy[block];
    if (!isPlainObject(holder) || typeof holder[key] !== 'string') continue;
    const relative = path.relative(base, holder[key] as string);
    if (relative && !relative.startsWith('..') && !path.isAbsolute(relative))
      (holder as JsonObject)[key] = `./${relative.split(path.sep).join('/')}`;
  }
  return sorted(copy) as JsonObject;
}

/** JSON with every object's keys sorted: the same value always gives the same text. */
export function canonicalJson(value: JsonValue): string {
  return JSON.stringify(sorted(value));
}

function sorted(value: JsonValue): JsonValue {
  if (Array.isArray(value)) return value.map(sorted);
  if (!isPlainObject(value)) return value;
  const out: JsonObject = {};
  for (const key of Object.keys(value).sort()) {
    const v = (value as JsonObject)[key];
    if (v !== undefined) out[key] = sorted(v);
  }
  return out;
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

/**
 * The fields a difference is reported by: each top-level key of the canonical plan, and one level down in the
 * blocks that are maps (`approvals.gates`, `release.command`, `aws.endpoint`), each with the first 16 hex digits of
 * the sha256 of its canonical JSON.
 */
export function planFields(canonical: JsonObject): Record<string, JsonValue> {
  const fields: Record<string, JsonValue> = {};
  for (const [key, value] of Object.entries(canonical)) {
    if (isPlainObject(value)) for (const [sub, v] of Object.entries(value as JsonObject)) fields[`${key}.${sub}`] = v;
    else fields[key] = value;
  }
  return fields;
}

/** The digest of a plan and of each of its fields. */
export function planDigest(plan: ResolvedService): Pick<ResolvedPlan, 'digest' | 'fieldDigests'> {
  const canonical = canonicalPlan(plan);
  const fieldDigests: Record<string, string> = {};
  for (const [field, value] of Object.entries(planFields(canonical)))
    fieldDigests[field] = sha256(canonicalJson(value)).slice(0, 16);
  return { digest: `sha256:${sha256(canonicalJson(canonical))}`, fieldDigests };
}

/** The fields whose digests differ (or that only one side has), sorted. */
export function differingFields(a: Record<string, string>, b: Record<string, string>): string[] {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  return [...keys].filter((k) => a[k] !== b[k]).sort();
}

/** The differing fields of two plans with each side's value (canonical JSON), for people. */
export function planDifferences(
  ours: ResolvedService,
  theirs: ResolvedService,
): Array<{ field: string; ours?: string; theirs?: string }> {
  const a = planFields(canonicalPlan(ours));
  const b = planFields(canonicalPlan(theirs));
  const show = (v: JsonValue | undefined) => (v === undefined ? undefined : canonicalJson(v));
  return differingFields(planDigest(ours).fieldDigests, planDigest(theirs).fieldDigests).map((field) => ({
    field,
    ...(show(a[field]) !== undefined ? { ours: show(a[field]) } : {}),
    ...(show(b[field]) !== undefined ? { theirs: show(b[field]) } : {}),
  }));
}

/**
 * Helpers for the parsed YAML as a JSON tree: the JSON merge patch that applies an environment's overrides, and
 * lookups of where a value is written.
 */
import type { JsonObject, JsonValue } from '../shared/service-plan';

/** Where a value is in the parsed YAML: keys and list indexes from the root. */
export type Path = (string | number)[];

/** JSON merge patch (RFC 7386): maps merge recursively, anything else replaces, null removes the key. */
export function mergePatch(target: JsonValue | undefined, patch: JsonValue): JsonValue {
  if (!isPlainObject(patch)) return patch;
  const result: JsonObject = isPlainObject(target) ? { ...(target as JsonObject) } : {};
  for (const [key, value] of Object.entries(patch as JsonObject)) {
    if (value === null) delete result[key];
    else result[key] = mergePatch(result[key], value);
  }
  return result;
}

/** The value at `p`, or undefined when the path does not exist. */
export function valueAt(root: JsonValue, p: Path): unknown {
  let node: unknown = root;
  for (const segment of p) {
    if (typeof node !== 'object' || node === null || !Object.hasOwn(node, segment)) return undefined;
    node = (node as Record<string, unknown>)[segment];
  }
  return node;
}

/** Whether `layer` holds the value at `p`, or replaced one of its parents with a list or a value. */
export function writtenIn(layer: JsonObject, p: Path): boolean {
  if (p.length === 0) return false;
  let node: unknown = layer;
  for (const segment of p) {
    if (!isPlainObject(node)) return true;
    if (!Object.hasOwn(node, segment)) return false;
    node = node[segment];
  }
  return true;
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function asObject(value: unknown): Record<string, unknown> {
  return isPlainObject(value) ? value : {};
}

/**
 * How problems in a runbook.yaml are worded and collected: RunbookConfigError, the path of a problem
 * (`services.shop.traffic.steps[1].weight`), the zod error map with its plain messages, and the did-you-mean
 * suggestions for misspelt keys, values and names.
 */
import { z } from 'zod';
import { UserError } from '../errors';
import type { JsonObject } from '../shared/service-plan';
import { isPlainObject, valueAt, writtenIn, type Path } from './json';

/** The error for an invalid runbook.yaml: its message lists every problem on its own line as `path: what`. */
export class RunbookConfigError extends UserError {
  constructor(
    readonly source: string,
    /** One line per problem, e.g. `services.shop.traffic.steps[1].weight: must be 1..100, got 150`. */
    readonly problems: string[],
  ) {
    super(
      `${source}: ${problems.length === 1 ? '1 problem' : `${problems.length} problems`}:\n  ${problems.join('\n  ')}`,
      `fix ${problems.length === 1 ? 'it' : 'them'} in ${source} (examples/runbook.yaml is a complete example)`,
    );
    this.name = 'RunbookConfigError';
  }
}

/** Why runbook.yaml must not hold secrets, quoted by the messages that turn one away. */
export const SECRET_WHY = 'runbook.yaml is copied into workflow histories, so it must not hold secrets';

/** A zod error message for a value that is present; a missing one falls through to errorMap's `is required`. */
export const unlessMissing =
  (message: (input: unknown) => string) =>
  (iss: { input?: unknown }): string | undefined =>
    iss.input === undefined ? undefined : message(iss.input);

/** One problem of a service, with its path relative to the service block. */
export interface Problem {
  path: Path;
  message: string;
  /** 'field': a value is invalid on its own; 'relation': fields do not fit together. */
  kind: 'field' | 'relation';
  /** For an unknown key: the keys allowed where it is. */
  allowed?: string[];
}

/** A service problem's message; an unknown key in the base block may also have been meant as `environments`. */
export function problemMessage(p: Problem, inOverride: boolean): string {
  if (!p.allowed || inOverride || p.path.length !== 1) return p.message;
  return unknownKeyMessage(String(p.path[0]), [...p.allowed, 'environments'], []);
}

/**
 * Where a problem at `p` of a merged service is written: in the override when the override set that value (or replaced
 * a parent), or brought in a map the base does not have; in the base when the override only merged keys into it.
 */
export function fromOverride(base: JsonObject, overrides: JsonObject, p: Path): boolean {
  if (!writtenIn(overrides, p)) return false;
  const value = valueAt(overrides, p);
  return !isPlainObject(value) || !isPlainObject(valueAt(base, p));
}

/** Collects problems as `path: message` pairs. */
export class Problems {
  readonly list: Problem[] = [];
  /** Allowed keys of each strict object that met an unknown key, by path (filled in by errorMap). */
  readonly allowedKeys = new Map<string, string[]>();

  add(path: Path, message: string): void {
    this.list.push({ path, message, kind: 'field' });
  }

  addZod(issues: z.core.$ZodIssue[], at: Path): void {
    for (const issue of issues) {
      const p: Path = [...at, ...issue.path.map((s) => (typeof s === 'symbol' ? String(s) : s))];
      if (issue.code === 'unrecognized_keys') {
        const allowed = this.allowedKeys.get(formatPath(issue.path as Path)) ?? [];
        for (const key of issue.keys) {
          this.list.push({ path: [...p, key], message: unknownKeyMessage(key, allowed, p), kind: 'field', allowed });
        }
      } else {
        this.add(p, issue.message);
      }
    }
  }

  throwIfAny(source: string): void {
    if (this.list.length === 0) return;
    const lines = [...new Set(this.list.map((p) => `${formatPath(p.path)}: ${p.message}`))];
    throw new RunbookConfigError(source, lines);
  }
}

function unknownKeyMessage(key: string, allowed: string[], parent: Path): string {
  if (parent.at(-1) === 'database' && /url|password|secret/i.test(key)) {
    return `unknown key; ${SECRET_WHY}: put the URL in an environment variable on the worker and name it in database.urlEnv`;
  }
  return `unknown key${didYouMean(key, allowed)}; allowed here: ${allowed.join(', ')}`;
}

/** The per-parse error map: plain messages that say what is allowed. Schema-specific messages take precedence. */
export function errorMap(problems: Problems): z.core.$ZodErrorMap {
  return (iss) => {
    const expects = (iss.inst as { description?: string } | undefined)?.description;
    if (iss.input === undefined) {
      if (iss.code === 'invalid_value') return `is required: one of ${iss.values.map(String).join(', ')}`;
      if (iss.code === 'invalid_type' || iss.code === 'invalid_union') {
        return `is required${expects ? `: ${expects}` : ''}`;
      }
    }
    switch (iss.code) {
      case 'invalid_type':
        return `must be ${typeName(iss.expected)}${expects ? ` (${expects})` : ''}, got ${describeValue(iss.input)}${quoteHint(iss.input)}`;
      case 'invalid_value': {
        const values = iss.values.map(String);
        return `must be one of ${values.join(', ')}, got ${describeValue(iss.input)}${didYouMean(String(iss.input), values)}`;
      }
      case 'unrecognized_keys': {
        const shape = (iss.inst as { shape?: Record<string, unknown> } | undefined)?.shape;
        problems.allowedKeys.set(formatPath((iss.path ?? []) as Path), Object.keys(shape ?? {}));
        return 'unknown key';
      }
      case 'invalid_key':
        return iss.issues.map((i) => i.message).join('; ');
      case 'too_small':
        if (iss.origin === 'array') return `must list at least ${String(iss.minimum)}, got ${describeValue(iss.input)}`;
        return undefined;
      default:
        return undefined;
    }
  };
}

function typeName(expected: string): string {
  const names: Record<string, string> = {
    object: 'a map',
    record: 'a map',
    array: 'a list',
    tuple: 'a list',
    string: 'a string',
    number: 'a number',
    int: 'a whole number',
    boolean: 'true or false',
  };
  return names[expected] ?? expected;
}

/** A value for a message: strings quoted, numbers as is, containers by kind. */
export function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'an empty value';
  if (typeof value === 'string') return JSON.stringify(value);
  if (Array.isArray(value)) {
    const text = JSON.stringify(value);
    return text.length <= 40 ? text : 'a list';
  }
  if (typeof value === 'object') return 'a map';
  return String(value);
}

/** YAML reads an unquoted `{port}` as a map with the key `port`: say so, it is the usual cause. */
export function quoteHint(value: unknown): string {
  if (!isPlainObject(value)) return '';
  const keys = Object.keys(value);
  return keys.length === 1 && value[keys[0]!] === null
    ? `; YAML reads an unquoted {${keys[0]}} as a map: quote it, "{${keys[0]}}"`
    : '';
}

/** `services.shop.traffic.steps[1].weight`; keys that are not plain words are quoted: `env["a.b"]`. */
export function formatPath(p: readonly (string | number)[]): string {
  let out = '';
  for (const segment of p) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else if (/^[A-Za-z0-9_-]+$/.test(segment)) out += out === '' ? segment : `.${segment}`;
    else out += `[${JSON.stringify(segment)}]`;
  }
  return out === '' ? '(file)' : out;
}

/** ` (did you mean "health"?)` when a candidate is close to the word, else ''. */
export function didYouMean(
  word: string,
  candidates: readonly string[],
  show: (s: string) => string = (s) => JSON.stringify(s),
): string {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  const tolerance = Math.max(1, Math.floor(word.length / 3));
  if (best === undefined || bestDistance > tolerance) {
    const w = word.toLowerCase();
    best = w.length >= 3 ? candidates.find((c) => c.toLowerCase().startsWith(w)) : undefined;
  }
  return best !== undefined ? ` (did you mean ${show(best)}?)` : '';
}

/** Optimal string alignment distance: insertions, deletions, substitutions and adjacent transpositions. */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  const at = (i: number, j: number) => d[i]?.[j] ?? Infinity;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, at(i - 2, j - 2) + 1);
      d[i]![j] = v;
    }
  }
  return at(a.length, b.length);
}

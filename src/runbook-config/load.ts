/**
 * Finding, reading and validating a runbook.yaml as a whole: every service in every environment it lists, each
 * problem reported once, where it is written.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseDocument } from 'yaml';
import { parseAllowedSigners, type AllowedSigner } from '../signing/sshsig';
import { UserError } from '../errors';
import { NAME_HINT, NAME_PATTERN, type JsonObject } from '../shared/service-plan';
import { validateService } from './cross-checks';
import { isPlainObject, mergePatch, writtenIn, type Path } from './json';
import {
  Problems,
  RunbookConfigError,
  describeValue,
  errorMap,
  formatPath,
  fromOverride,
  problemMessage,
  type Problem,
} from './problems';
import { fileSchema, serviceSchema } from './schema';

/** Environment variable naming the runbook.yaml to use when `--config` is not given. */
const RUNBOOK_CONFIG_ENV = 'RUNBOOK_CONFIG';
/** The file looked for in the current folder when neither `--config` nor RUNBOOK_CONFIG is given. */
const DEFAULT_RUNBOOK_CONFIG_FILE = 'runbook.yaml';

/** A loaded runbook.yaml: every service in every environment it lists has been validated. */
export interface RunbookConfig {
  version: 1;
  /** Absolute path of the file, named in messages. */
  source: string;
  /** The file's folder: relative paths in it (release.cwd, database.migrations) are resolved against it. */
  baseDir: string;
  /** Service name -> its definition as written, in file order. Use resolveService() to get a usable one. */
  services: Record<string, ServiceDefinition>;
  /** The keys that may sign requests and decisions (`signers:` and `signersFile:`), with their principals. */
  signers: AllowedSigner[];
  /** Group name -> its members (`groups:`), for approvers written `group:<name>`. */
  groups: Record<string, string[]>;
}

/** One service as written: the base block and the per-environment overrides, not yet merged. */
export interface ServiceDefinition {
  /** Every key of the service block except `environments`. */
  base: JsonObject;
  /**
   * Environment name -> overrides, in file order (the first is the default environment). Overrides are merged
   * into the base as a JSON merge patch (RFC 7386): maps merge key by key, lists and values replace, and `null`
   * removes a key.
   */
  environments: Record<string, JsonObject>;
}

/**
 * The runbook.yaml to use: the `--config` value, else RUNBOOK_CONFIG, else ./runbook.yaml. Absolute.
 */
export function runbookConfigPath(flag?: string, env: NodeJS.ProcessEnv = process.env): string {
  return path.resolve(flag || env[RUNBOOK_CONFIG_ENV] || DEFAULT_RUNBOOK_CONFIG_FILE);
}

/**
 * Reads and validates a runbook.yaml: every service in every environment it lists.
 * @throws UserError when the file is missing or unreadable, RunbookConfigError (a UserError) listing every
 *   problem when it is not valid YAML or not a valid runbook.
 */
export function loadRunbookConfig(file: string): RunbookConfig {
  const source = path.resolve(file);
  let text: string;
  try {
    text = readFileSync(source, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      throw new UserError(
        `runbook config not found: ${source}`,
        `pass --config <file> or set ${RUNBOOK_CONFIG_ENV}=<file> (examples/runbook.yaml is a complete example)`,
      );
    }
    if (code === 'EISDIR') {
      throw new UserError(
        `runbook config ${source} is a folder, not a file`,
        `pass --config <folder>/${DEFAULT_RUNBOOK_CONFIG_FILE} or set ${RUNBOOK_CONFIG_ENV} to the file`,
      );
    }
    throw new UserError(
      `cannot read runbook config ${source}: ${(err as Error).message}`,
      'check the file and its permissions',
    );
  }
  return parseRunbookConfig(text, source);
}

/**
 * Validates the text of a runbook.yaml; `source` is its path (relative paths in it resolve against its folder).
 * @throws RunbookConfigError (a UserError) listing every problem, or the YAML syntax errors with line and column.
 */
export function parseRunbookConfig(text: string, source: string): RunbookConfig {
  const file = path.resolve(source);
  const doc = parseDocument(text, { prettyErrors: true });
  if (doc.errors.length > 0) {
    throw new RunbookConfigError(
      file,
      doc.errors.map((e) => {
        const at = e.linePos?.[0];
        const [first = '', ...snippet] = e.message.split('\n');
        const what = first.replace(/ at line \d+, column \d+:?$/, '');
        const lines = snippet.filter((l) => l.trim() !== '').map((l) => `    ${l}`);
        return [`${at ? `line ${at.line}, column ${at.col}` : 'YAML'}: ${what} (YAML syntax)`, ...lines].join('\n  ');
      }),
    );
  }
  let data: unknown;
  try {
    data = doc.toJS();
  } catch (err) {
    throw new RunbookConfigError(file, [`(file): ${(err as Error).message} (YAML)`]);
  }
  if (data === null || data === undefined) {
    throw new RunbookConfigError(file, ['(file): is empty; it needs `version: 1` and `services:`']);
  }

  const problems = new Problems();
  const top = fileSchema.safeParse(data, { error: errorMap(problems) });
  if (!top.success) problems.addZod(top.error.issues, []);
  const services: Record<string, ServiceDefinition> = {};
  const rawServices = isPlainObject(data) ? data.services : undefined;
  if (isPlainObject(rawServices)) {
    for (const [name, block] of Object.entries(rawServices)) {
      const definition = checkService(name, block, problems);
      if (definition) services[name] = definition;
    }
  }
  const baseDir = path.resolve(path.dirname(file), (top.success && top.data.base) || '.');
  if (top.success && top.data.base && !existsSync(baseDir))
    problems.add(['base'], `the folder ${baseDir} does not exist; name the folder the relative paths start from`);
  const signers = top.success ? readSigners(top.data, baseDir, problems) : [];
  problems.throwIfAny(file);
  const groups = (top.success && top.data.groups) || {};
  return { version: 1, source: file, baseDir, services, signers, groups };
}

/** The allowed signers of `signers:` and `signersFile:`, each bad line reported where it is written. */
function readSigners(
  top: { signers?: string[] | undefined; signersFile?: string | undefined },
  baseDir: string,
  problems: Problems,
): AllowedSigner[] {
  const signers: AllowedSigner[] = [];
  (top.signers ?? []).forEach((line, i) => {
    try {
      signers.push(...parseAllowedSigners(line, 'line'));
    } catch (err) {
      problems.add(['signers', i], (err as Error).message.replace(/^line line 1: /, ''));
    }
  });
  if (top.signersFile) {
    const file = path.resolve(baseDir, top.signersFile);
    try {
      signers.push(...parseAllowedSigners(readFileSync(file, 'utf8'), file));
    } catch (err) {
      problems.add(['signersFile'], `${(err as Error).message}`);
    }
  }
  return signers;
}

/** Validates one service block in every environment it lists; returns its definition when its shape is usable. */
function checkService(name: string, block: unknown, problems: Problems): ServiceDefinition | undefined {
  const at: Path = ['services', name];
  if (!NAME_PATTERN.test(name)) {
    problems.add(at, `service names must be ${NAME_HINT}, got ${JSON.stringify(name)}`);
  }
  if (!isPlainObject(block)) {
    problems.add(
      at,
      `must be a map of the service's settings (platform, release, health, ...), got ${describeValue(block)}`,
    );
    return undefined;
  }
  const { environments: rawEnvironments, ...base } = block;
  const environments: Record<string, JsonObject> = {};
  if (rawEnvironments === undefined) {
    problems.add(
      [...at, 'environments'],
      'is required: a map of the environments this service deploys to and their overrides, e.g. { staging: {}, production: {} }',
    );
  } else if (!isPlainObject(rawEnvironments) || Object.keys(rawEnvironments).length === 0) {
    problems.add(
      [...at, 'environments'],
      `must map at least one environment name to its overrides, e.g. { staging: {}, production: {} }, got ${describeValue(rawEnvironments)}`,
    );
  } else {
    for (const [env, overrides] of Object.entries(rawEnvironments)) {
      const envPath = [...at, 'environments', env];
      if (!NAME_PATTERN.test(env))
        problems.add(envPath, `environment names must be ${NAME_HINT}, got ${JSON.stringify(env)}`);
      if (overrides === null) {
        environments[env] = {};
      } else if (!isPlainObject(overrides)) {
        problems.add(envPath, `must be a map of overrides (may be {}), got ${describeValue(overrides)}`);
      } else if ('environments' in overrides) {
        problems.add(
          [...envPath, 'environments'],
          'environments cannot be nested: an override cannot list environments',
        );
      } else {
        environments[env] = overrides as JsonObject;
      }
    }
  }

  // Validate the merged result of every environment, then report each problem once, where it is written.
  const envNames = Object.keys(environments);
  const found = new Map<
    string,
    { path: Path; message: string; kind: Problem['kind']; inOverride: boolean; envs: string[] }
  >();
  for (const env of envNames.length > 0 ? envNames : [undefined]) {
    const overrides = env === undefined ? {} : (environments[env] ?? {});
    const merged = mergePatch(base as JsonObject, overrides);
    for (const p of validateService(merged)) {
      const inOverride = env !== undefined && fromOverride(base as JsonObject, overrides, p.path);
      const path: Path = inOverride ? [...at, 'environments', env, ...p.path] : [...at, ...p.path];
      const message = problemMessage(p, inOverride);
      const key = `${formatPath(path)}\n${message}`;
      const seen = found.get(key);
      if (seen) {
        if (env !== undefined) seen.envs.push(env);
      } else {
        found.set(key, { path, message, kind: p.kind, inOverride, envs: env === undefined ? [] : [env] });
      }
    }
  }
  // A base value that every environment overrides is never validated above; still report what is wrong with it on
  // its own (a missing key or a mismatch with other fields may be supplied or fixed by the overrides).
  if (envNames.length > 0) {
    for (const p of validateService(base as JsonObject)) {
      if (p.kind !== 'field' || !writtenIn(base as JsonObject, p.path)) continue;
      const path: Path = [...at, ...p.path];
      const message = problemMessage(p, false);
      const key = `${formatPath(path)}\n${message}`;
      if (!found.has(key)) found.set(key, { path, message, kind: p.kind, inOverride: false, envs: [] });
    }
  }
  // Report in the order of the service's fields (schema problems and relations between fields together), base first.
  const fields = Object.keys(serviceSchema.shape);
  const rank = (e: { path: Path; inOverride: boolean }) => {
    const envRank = e.inOverride ? 1 + envNames.indexOf(String(e.path[3])) : 0;
    const field = fields.indexOf(String(e.path[e.inOverride ? 4 : 2]));
    return envRank * (fields.length + 1) + (field === -1 ? fields.length : field);
  };
  const ordered = [...found.values()].sort((a, b) => rank(a) - rank(b));
  for (const { path, message, kind, inOverride, envs } of ordered) {
    // A value that is wrong on its own is wrong wherever it is used; a mismatch may exist only with some overrides.
    const some = kind === 'relation' && !inOverride && envs.length > 0 && envs.length < envNames.length;
    problems.add(path, some ? `${message} (in environment${envs.length > 1 ? 's' : ''} ${envs.join(', ')})` : message);
  }
  return { base: base as JsonObject, environments };
}

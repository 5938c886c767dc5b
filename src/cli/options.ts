import os from 'node:os';
import { UserError } from '../errors';
import { parseDuration } from '../runbook-config';
import { formatMs } from '../shared/drill';
import { signRequest } from '../signing/decisions';
import { signingKeyOf } from '../signing/ssh-keygen';
import type { Io, Options, ParsedArgs } from './command';

/*
 * Options several verbs share. A verb whose flag means something more specific keeps the flag and env variable
 * and overrides the description: `{ as: { ...asOption.as, description: '...' } }`.
 */
export const jsonOption: Options = { json: { type: 'boolean', description: 'machine-readable output' } };
export const configOption = {
  config: { type: 'string', description: 'the runbook config file (default ./runbook.yaml)', env: 'RUNBOOK_CONFIG' },
} satisfies Options;
export const envOption = {
  env: { type: 'string', description: 'environment (default: the first one the service lists)' },
} satisfies Options;
export const asOption = {
  as: { type: 'string', description: 'who you are (recorded; checked against the approvers)', env: 'RUNBOOK_USER' },
} satisfies Options;
export const keyOption = {
  key: {
    type: 'string',
    description:
      'the SSH key to sign with: a private key file, or the .pub of a key in ssh-agent or on a hardware token (ssh-keygen -Y sign)',
    env: 'RUNBOOK_SIGNING_KEY',
  },
} satisfies Options;
export const homeOption = {
  home: { type: 'string', description: 'data folder of the embedded stack', env: 'RUNBOOK_HOME' },
} satisfies Options;
export const dryRunOption = {
  'dry-run': {
    type: 'boolean',
    description: 'show the plan the worker would run and whether it is yours (starts nothing; exit 0: it is)',
  },
} satisfies Options;
export const reasonOption = {
  reason: { type: 'string', description: 'why (recorded in the release history)' },
} satisfies Options;

/** The operator: --as, else RUNBOOK_USER, else the login name. */
export function whoAmI(values: ParsedArgs['values'], env: NodeJS.ProcessEnv): string {
  const as = (values.as as string | undefined) ?? env.RUNBOOK_USER ?? os.userInfo().username;
  if (!as.trim()) throw new UserError('say who you are', 'pass --as <name> or set RUNBOOK_USER');
  return as.trim();
}

/** The value of a string option, trimmed; undefined when absent or blank. */
export function stringOpt(values: ParsedArgs['values'], name: string): string | undefined {
  const v = values[name];
  return typeof v === 'string' && v.trim() !== '' ? v.trim() : undefined;
}

/**
 * The value of a string option the command cannot do without, trimmed.
 * @throws UserError when it is absent or blank.
 */
export function required(values: ParsedArgs['values'], name: string, command: string): string {
  const v = stringOpt(values, name);
  if (v === undefined) throw new UserError(`${command}: --${name} is required`, `runbook ${command} --help`);
  return v;
}

/**
 * The one positional argument of a command (a service name, a workflow id).
 * @throws UserError when it is missing or followed by others.
 */
export function positional(args: ParsedArgs, what: string, command: string): string {
  const [first, ...rest] = args.positionals;
  if (!first) throw new UserError(`${command}: give the ${what}`, `runbook ${command} --help`);
  if (rest.length > 0)
    throw new UserError(`${command}: unexpected argument(s) ${rest.join(' ')}`, `runbook ${command} --help`);
  return first;
}

/**
 * A duration option (30m, 24h, 7d) in milliseconds; undefined when absent.
 * @throws UserError when it is not a duration or shorter than `minMs`.
 */
export function durationOpt(
  values: ParsedArgs['values'],
  name: string,
  minMs: number,
  command: string,
): number | undefined {
  const raw = stringOpt(values, name);
  if (raw === undefined) return undefined;
  const ms = parseDuration(raw);
  if (ms === undefined || ms < minMs)
    throw new UserError(
      `${command}: --${name} must be a duration of at least ${formatMs(minMs)} like 30m, 24h or 7d, got ${raw}`,
    );
  return ms;
}

/**
 * A start request signed with the operator's SSH key (--key or RUNBOOK_SIGNING_KEY) for `workflowId`; without a key it
 * goes unsigned (said on stderr): only an environment whose runbook config accepts unsigned requests runs it.
 * @throws UserError when ssh-keygen cannot sign.
 */
export async function signedRequest<R extends object>(
  request: R,
  a: { workflowId: string; kind: string; values: ParsedArgs['values']; io: Io },
): Promise<R> {
  const key = signingKeyOf(a.values.key, a.io.env);
  if (!key) {
    a.io.err(
      `note: the ${a.kind} request is not signed (no --key or RUNBOOK_SIGNING_KEY): an environment with signing.unsigned: refuse refuses it`,
    );
    return request;
  }
  return signRequest(request, { workflowId: a.workflowId, kind: a.kind, key, env: a.io.env });
}

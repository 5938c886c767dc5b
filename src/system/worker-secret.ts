/**
 * The worker's own secret: the key that signs snapshot manifests and from which the services' PostgreSQL role
 * passwords are derived. It never leaves the worker's host: from RUNBOOK_WORKER_SECRET, or else from
 * `<RUNBOOK_HOME>/keys/worker-secret` (0600, in a 0700 folder), made on first use so that every worker of a stack
 * (they share the data folder) holds the same one.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { UserError } from '../errors';
import { PRIVATE_FILE_MODE, ensurePrivateDirSync } from './private-files';

/** The environment variable that gives the secret (its name marks it as a secret for the scrubber). */
export const WORKER_SECRET_ENV = 'RUNBOOK_WORKER_SECRET';
const MIN_LENGTH = 32;

export const workerSecretFile = (home: string) => path.join(home, 'keys', 'worker-secret');

/**
 * The secret from the environment, or from the data folder's key file (created when missing unless `create` is
 * false; of two workers starting together, the second reads what the first wrote). Throws UserError for a secret shorter than 32 characters.
 */
export function loadWorkerSecret(env: NodeJS.ProcessEnv, home: string, { create = true } = {}): string {
  const given = env[WORKER_SECRET_ENV];
  if (given !== undefined && given !== '') {
    if (given.length < MIN_LENGTH) {
      throw new UserError(
        `${WORKER_SECRET_ENV} is ${given.length} characters long; it must have at least ${MIN_LENGTH}`,
        `make one with: openssl rand -hex 32`,
      );
    }
    return given;
  }
  const file = workerSecretFile(home);
  if (!create && !existsSync(file)) {
    throw new UserError(
      `there is no worker secret in ${file} (nor ${WORKER_SECRET_ENV}): nothing was signed with one here`,
      `name the data folder the worker uses (--home, RUNBOOK_HOME), or give the worker's ${WORKER_SECRET_ENV}`,
    );
  }
  ensurePrivateDirSync(path.dirname(file));
  try {
    writeFileSync(file, `${randomBytes(32).toString('hex')}\n`, { flag: 'wx', mode: PRIVATE_FILE_MODE });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  const secret = readFileSync(file, 'utf8').trim();
  if (secret.length < MIN_LENGTH) {
    throw new UserError(
      `the worker secret ${file} holds ${secret.length} characters; it must have at least ${MIN_LENGTH}`,
      `remove it to have a new one made (snapshots signed with the old one must then be signed again: runbook snapshots sign)`,
    );
  }
  return secret;
}

/** A key for one purpose, derived from the worker secret, so that no two uses share a key. */
export function deriveKey(secret: string, purpose: 'manifests' | 'service-roles'): Buffer {
  return createHmac('sha256', secret).update(`durable-runbooks ${purpose}`).digest();
}

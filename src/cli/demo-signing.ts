/**
 * The demo's throwaway signers. `npm run demo` signs its requests and its sign-off as a person would, with SSH keys,
 * so that the demo shows what production does (verified identities, key fingerprints) instead of unsigned names. Each
 * demo person gets an ed25519 key pair made by ssh-keygen under the data folder (`keys/demo/`, private to the user
 * running the stack), and the demo's worker runs a copy of the chosen runbook config with these keys added to its
 * `signers:` (its `base:` keeps the copy's relative paths pointing where the original's did).
 *
 * Throwaway: anyone who can read the data folder can sign as these people, and they are enrolled only in the demo's
 * own copy of the config. Never list them in a real runbook config.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { parseDocument } from 'yaml';
import { UserError } from '../errors';
import { writeFileAtomicallySync } from '../system/atomic-write';
import { ensurePrivateDirSync } from '../system/private-files';

/** The demo's keys and the config its worker runs. */
export interface DemoSigning {
  /** The copy of the runbook config with the demo's signers: what the demo's worker runs. */
  configFile: string;
  /** Private key file of each demo person, by name. */
  keys: Record<string, string>;
  /** The folder the keys are in. */
  dir: string;
}

/** Where the demo's keys live in a data folder. */
export const demoKeysDir = (home: string) => path.join(home, 'keys', 'demo');

/**
 * A key pair for each of `people` (made once, then reused, so the signers stay the same from one demo to the next) and
 * the demo's config: `sourceConfig` with their public keys appended to its signers.
 * @throws UserError when ssh-keygen is missing or fails.
 */
export async function demoSigning(home: string, sourceConfig: string, people: string[]): Promise<DemoSigning> {
  const dir = demoKeysDir(home);
  ensurePrivateDirSync(dir);
  const keys: Record<string, string> = {};
  const lines: string[] = [];
  for (const person of people) {
    const file = path.join(dir, person);
    if (!existsSync(file) || !existsSync(`${file}.pub`)) {
      await promisify(execFile)('ssh-keygen', [
        '-q',
        '-t',
        'ed25519',
        '-N',
        '',
        '-C',
        `durable-runbooks demo ${person} (throwaway)`,
        '-f',
        file,
      ]).catch((err: NodeJS.ErrnoException & { stderr?: string }) => {
        throw new UserError(
          err.code === 'ENOENT'
            ? 'the demo signs with SSH keys, and ssh-keygen is not installed'
            : `ssh-keygen could not make the demo key ${file}: ${err.stderr?.trim() || err.message}`,
          'install OpenSSH 8.2 or newer (Debian: apt-get install openssh-client)',
        );
      });
    }
    keys[person] = file;
    const [type, blob] = readFileSync(`${file}.pub`, 'utf8').trim().split(/\s+/);
    lines.push(`${person} ${type} ${blob} demo-throwaway`);
  }

  const doc = parseDocument(readFileSync(sourceConfig, 'utf8'));
  const top = (doc.toJS() ?? {}) as { signers?: unknown; base?: unknown };
  const own = Array.isArray(top.signers) ? top.signers.map(String) : [];
  doc.set('signers', [...own.filter((l) => !l.endsWith(' demo-throwaway')), ...lines]);
  doc.set('base', path.resolve(path.dirname(sourceConfig), typeof top.base === 'string' ? top.base : '.'));
  doc.commentBefore =
    ` Written by npm run demo from ${sourceConfig}: the same config, with the demo's throwaway signers (keys in\n` +
    ` ${dir}) added to signers:, and base: so that relative paths start where the original's did. Edit the\n` +
    ' original, not this copy: the next demo writes it again.';
  const configFile = path.join(home, 'demo', 'runbook.yaml');
  ensurePrivateDirSync(path.dirname(configFile));
  writeFileAtomicallySync(configFile, doc.toString({ lineWidth: 0 }));
  return { configFile, keys, dir };
}

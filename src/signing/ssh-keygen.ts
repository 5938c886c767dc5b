import { spawn } from 'node:child_process';
import { UserError } from '../errors';

/** Environment variable naming the SSH key to sign with (a private key file, or the public key of a key in ssh-agent). */
export const SIGNING_KEY_ENV = 'RUNBOOK_SIGNING_KEY';

/**
 * The SSH key to sign with: `--key`, else RUNBOOK_SIGNING_KEY, else git's `user.signingkey` convention is not read
 * (a runbook key is chosen on purpose). Undefined: none given.
 */
export function signingKeyOf(flag: unknown, env: NodeJS.ProcessEnv): string | undefined {
  const key = typeof flag === 'string' && flag.trim() !== '' ? flag.trim() : env[SIGNING_KEY_ENV]?.trim();
  return key || undefined;
}

/**
 * Signs `message` with `ssh-keygen -Y sign -n <namespace> -f <key>`, the way git signs commits: `key` is a private key
 * file, or a public key file whose private key is in ssh-agent (SSH_AUTH_SOCK) or on a hardware token. Returns the
 * armored SSHSIG.
 * @throws UserError when ssh-keygen is missing or refuses (wrong passphrase, no such key, agent not running).
 */
export async function sshSign(
  message: string,
  namespace: string,
  key: string,
  env: NodeJS.ProcessEnv,
): Promise<string> {
  const child = spawn('ssh-keygen', ['-Y', 'sign', '-n', namespace, '-f', key], {
    env,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', resolve);
    child.stdin.end(message);
  }).catch((e: NodeJS.ErrnoException) => {
    throw new UserError(
      e.code === 'ENOENT' ? 'ssh-keygen is not installed' : `cannot run ssh-keygen: ${e.message}`,
      'install OpenSSH (8.2 or newer), which signs with ssh-keygen -Y sign',
    );
  });
  const problem = err
    .split('\n')
    .filter((l) => l.trim() !== '' && !l.startsWith('Signing data on standard input'))
    .join('; ');
  if (code !== 0 || !out.includes('-----BEGIN SSH SIGNATURE-----')) {
    throw new UserError(
      `ssh-keygen could not sign with ${key}: ${problem || `exit code ${code}`}`,
      `pass --key <private key file> (or the .pub of a key in ssh-agent), or set ${SIGNING_KEY_ENV}`,
    );
  }
  return out.trim();
}

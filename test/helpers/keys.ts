import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** A throwaway SSH key pair for a test: its private key file and its allowed_signers line. */
export interface TestKey {
  file: string;
  publicKey: string;
  /** `<principals> <type> <base64>`: a line of allowed_signers. */
  line: (principals?: string) => string;
}

let dir: string | undefined;

/** Generates a key with ssh-keygen (no passphrase) in a private temporary folder. */
export function testKey(name: string, type: 'ed25519' | 'ecdsa-256' | 'ecdsa-384' | 'ecdsa-521' = 'ed25519'): TestKey {
  dir ??= mkdtempSync(path.join(os.tmpdir(), 'runbook-keys-'));
  const file = path.join(dir, `${name}-${type}-${Math.random().toString(36).slice(2, 8)}`);
  const args = type === 'ed25519' ? ['-t', 'ed25519'] : ['-t', 'ecdsa', '-b', type.slice(6)];
  execFileSync('ssh-keygen', ['-q', ...args, '-N', '', '-C', name, '-f', file]);
  const publicKey = readFileSync(`${file}.pub`, 'utf8').trim().split(/\s+/).slice(0, 2).join(' ');
  return { file, publicKey, line: (principals = name) => `${principals} ${publicKey}` };
}

import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse, stringify } from 'yaml';
import { ensurePrivateDirSync } from '../../src/system/private-files';

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
  if (!dir) {
    const made = mkdtempSync(path.join(os.tmpdir(), 'runbook-keys-'));
    // Private keys, even throwaway ones, do not stay behind in /tmp.
    process.on('exit', () => rmSync(made, { recursive: true, force: true }));
    dir = made;
  }
  const file = path.join(dir, `${name}-${type}-${Math.random().toString(36).slice(2, 8)}`);
  const args = type === 'ed25519' ? ['-t', 'ed25519'] : ['-t', 'ecdsa', '-b', type.slice(6)];
  execFileSync('ssh-keygen', ['-q', ...args, '-N', '', '-C', name, '-f', file]);
  const publicKey = readFileSync(`${file}.pub`, 'utf8').trim().split(/\s+/).slice(0, 2).join(' ');
  return { file, publicKey, line: (principals = name) => `${principals} ${publicKey}` };
}

/**
 * Sets the `signers:` of a runbook config file (created when missing; its services stay): what a team does when it
 * enrols or removes a key. The worker reads it on the next verification.
 */
export function putSigners(file: string, lines: string[]): void {
  const doc = existsSync(file)
    ? (parse(readFileSync(file, 'utf8')) as Record<string, unknown>)
    : { version: 1, services: {} };
  doc.signers = lines;
  ensurePrivateDirSync(path.dirname(file));
  writeFileSync(file, stringify(doc), { mode: 0o600 });
  chmodSync(file, 0o600);
}

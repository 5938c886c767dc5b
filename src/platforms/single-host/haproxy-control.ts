/**
 * The embedded HAProxy as the single-host platform drives it: where its files are under the stack's home, and how a
 * changed configuration is validated and reloaded. The stack (src/stack/haproxy.ts) starts and stops it with these.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { UserError, errorMessage } from '../../errors';
import { which } from '../../system/executables';
import { createHaproxyRuntime } from './haproxy-runtime';

const run = promisify(execFile);

export function haproxyPaths(home: string) {
  const dir = path.join(home, 'haproxy');
  return {
    dir,
    config: path.join(dir, 'haproxy.cfg'),
    /** One file per service frontend/backend, written by the single-host platform; loaded after haproxy.cfg. */
    servicesDir: path.join(dir, 'services.d'),
    adminSocket: path.join(dir, 'admin.sock'),
    masterSocket: path.join(dir, 'master.sock'),
    pidFile: path.join(dir, 'haproxy.pid'),
    log: path.join(dir, 'haproxy.log'),
  };
}

/** The haproxy binary: on PATH, else in the sbin folders packages install it to. */
export const findHaproxy = (): string | undefined => which('haproxy', ['/usr/sbin', '/usr/local/sbin']);

/** The configuration files HAProxy loads: the base haproxy.cfg, then every route file of services.d. */
export function haproxyArgs(home: string): string[] {
  const p = haproxyPaths(home);
  return ['-f', p.config, '-f', p.servicesDir];
}

/** `haproxy -c` on the configuration; throws UserError with HAProxy's complaint when it is invalid. */
export async function validateHaproxyConfig(binary: string, home: string): Promise<void> {
  try {
    await run(binary, ['-c', '-q', ...haproxyArgs(home)], { timeout: 30_000 });
  } catch (err) {
    const e = err as { stderr?: string; stdout?: string };
    throw new UserError(`the HAProxy configuration is invalid: ${(e.stderr || e.stdout || errorMessage(err)).trim()}`);
  }
}

/**
 * Applies a changed configuration without dropping connections: validate, then the master process's
 * `reload` (new workers take the listening sockets, old ones finish their requests).
 */
export async function reloadHaproxy(home: string): Promise<void> {
  const binary = findHaproxy();
  if (!binary) throw new UserError('haproxy not found', 'sudo apt-get install -y haproxy');
  await validateHaproxyConfig(binary, home);
  const master = createHaproxyRuntime(haproxyPaths(home).masterSocket);
  await master.command('reload');
}

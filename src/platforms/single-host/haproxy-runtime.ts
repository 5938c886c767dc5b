import net from 'node:net';

/**
 * A client for HAProxy's runtime API (the admin-level `stats socket`): one command per connection, as HAProxy
 * answers in non-interactive mode. Used to set server addresses, weights and states live, and to read the
 * per-server counters that the canary analysis uses.
 */
export interface HaproxyRuntime {
  /** Sends one runtime API command and returns HAProxy's answer as text. */
  command(cmd: string, signal?: AbortSignal): Promise<string>;
}

export class HaproxyRuntimeError extends Error {
  constructor(
    message: string,
    readonly code?: string,
  ) {
    super(message);
    this.name = 'HaproxyRuntimeError';
  }
}

export function createHaproxyRuntime(socketPath: string, timeoutMs = 5_000): HaproxyRuntime {
  return {
    command(cmd: string, signal?: AbortSignal): Promise<string> {
      return new Promise((resolve, reject) => {
        const chunks: Buffer[] = [];
        const socket = net.connect(socketPath);
        const fail = (err: Error & { code?: string }) => {
          socket.destroy();
          reject(new HaproxyRuntimeError(`HAProxy runtime API at ${socketPath}: ${err.message}`, err.code));
        };
        const onAbort = () => fail(new Error('aborted'));
        signal?.addEventListener('abort', onAbort, { once: true });
        socket.setTimeout(timeoutMs, () => fail(new Error(`no answer to "${cmd}" within ${timeoutMs} ms`)));
        socket.once('connect', () => socket.end(`${cmd}\n`));
        socket.on('data', (chunk) => chunks.push(chunk));
        socket.once('error', fail);
        socket.once('close', () => {
          signal?.removeEventListener('abort', onAbort);
          resolve(Buffer.concat(chunks).toString('utf8'));
        });
      });
    },
  };
}

/** Parses `show info` output (`Key: value` lines) into a record. */
export function parseShowInfo(text: string): Record<string, string> {
  const info: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const i = line.indexOf(':');
    if (i > 0) info[line.slice(0, i).trim()] = line.slice(i + 1).trim();
  }
  return info;
}

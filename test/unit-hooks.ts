import childProcess from 'node:child_process';
import { syncBuiltinESMExports } from 'node:module';
import path from 'node:path';
import { promisify } from 'node:util';
import { Connection } from '@temporalio/client';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { NativeConnection } from '@temporalio/worker';
import pg from 'pg';
import { installTestRuntime } from './helpers/runtime';

/**
 * The unit profile (`npm run test:unit`, .mocharc.unit.json: the *.unit.test.ts suites) starts no server, and a
 * unit suite that reaches for one anyway fails at once, saying so, instead of quietly starting or finding one:
 * from here on the programs of PostgreSQL, HAProxy, Temporal's dev server and moto cannot be spawned, and no
 * connection to Temporal or PostgreSQL can be opened (whether or not one is running). A suite that needs a
 * server is a plain *.test.ts, which `npm test` runs on the real servers (test/hooks.ts).
 */
function refusal(what: string): Error {
  return new Error(
    `${what}: a unit suite (*.unit.test.ts) must need no server. ` +
      'Use a fake of the narrow interface, or move the test to a *.test.ts suite (npm test starts the servers).',
  );
}

/** The server a command line would start, if it starts one (also through runuser or sudo). */
function serverOf(argv: string[]): string | undefined {
  for (const [i, arg] of argv.entries()) {
    const program = path.basename(arg);
    const rest = argv.slice(i + 1);
    if (['postgres', 'initdb', 'pg_ctl'].includes(program)) return `PostgreSQL (${program})`;
    if (program === 'moto_server') return 'moto_server';
    if (program === 'haproxy' && !rest.some((a) => a === '-c' || a.startsWith('-v'))) return 'HAProxy';
    if (program === 'temporal' && rest[0] === 'server') return 'the Temporal dev server (temporal server)';
  }
  return undefined;
}

const spawners = ['spawn', 'spawnSync', 'execFile', 'execFileSync', 'exec', 'execSync'] as const;
type Fn = (...args: unknown[]) => unknown;

/** Wraps child_process.<name> (and its promisified form) so that it refuses command lines that start a server. */
function guard(name: (typeof spawners)[number]): void {
  const original = childProcess[name] as unknown as Fn & { [promisify.custom]?: Fn };
  const check = ([command, args]: unknown[]) => {
    const argv =
      name === 'exec' || name === 'execSync'
        ? String(command).split(/\s+/) // a shell command line
        : [String(command), ...(Array.isArray(args) ? args.map(String) : [])];
    const server = serverOf(argv);
    if (server) throw refusal(`starting ${server}`);
  };
  const wrap = (fn: Fn): Fn =>
    function (this: unknown, ...args: unknown[]) {
      check(args);
      return fn.apply(this, args);
    };
  const guarded: Fn & { [promisify.custom]?: Fn } = wrap(original);
  const custom = original[promisify.custom]; // execFile and exec resolve to { stdout, stderr } when promisified
  if (custom) guarded[promisify.custom] = wrap(custom);
  Object.assign(childProcess, { [name]: guarded });
}

for (const name of spawners) guard(name);
syncBuiltinESMExports(); // ES modules that import node:child_process see the guarded functions too

Object.assign(NativeConnection, {
  connect: async () => {
    throw refusal('NativeConnection.connect (a Temporal server)');
  },
});
Object.assign(Connection, {
  connect: async () => {
    throw refusal('Connection.connect (a Temporal server)');
  },
  lazy: () => {
    throw refusal('Connection.lazy (a Temporal client)');
  },
});
Object.assign(TestWorkflowEnvironment, {
  createLocal: async () => {
    throw refusal('TestWorkflowEnvironment.createLocal (a Temporal dev server)');
  },
  createTimeSkipping: async () => {
    throw refusal('TestWorkflowEnvironment.createTimeSkipping (a Temporal test server)');
  },
});
Object.assign(pg.Client.prototype, {
  connect(callback?: (err: Error) => void) {
    const err = refusal('a PostgreSQL connection (pg.Client.connect)');
    if (callback) return void process.nextTick(callback, err);
    return Promise.reject(err);
  },
});

/** Mocha root hooks of the unit profile: the SDK's runtime, quiet, for the replay workers; no test stack. */
export const mochaHooks = {
  beforeAll() {
    installTestRuntime();
  },
};

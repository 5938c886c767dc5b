/**
 * The single-host ReleaseCommandRunner on real, short-lived processes (no server: the database URL comes from a fake
 * releaseUrlFor or a worker variable, and is only printed). As root, commands run as the release user, from folders
 * that user can read. Every test checks that no process of its runs is left behind.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createCommandRunner, type CommandRunnerOptions } from '../../../src/platforms/single-host/command-runner';
import {
  COMMAND_TAIL_CHARS,
  PlatformError,
  type CommandProgress,
  type ReleaseCommandRequest,
} from '../../../src/platforms/types';
import type { ReleaseSpec } from '../../../src/shared/service-plan';
import { resolveReleaseUser } from '../../../src/system/release-user';

const ROLE_PASSWORD = 'role-password-0123456789abcdef';
const WORKER_DB_PASSWORD = 'worker-db-password-0123456789';
const modeOf = (p: string) => statSync(p).mode & 0o777;
const RUN_PREFIX = `t${process.pid}-`;
let runs = 0;
const nextRunId = () => `${RUN_PREFIX}${++runs}`;

/** Pids of live processes that carry a run marker of this test file's (wrappers and commands). */
function leftovers(): number[] {
  const found: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readFileSync(`/proc/${name}/environ`, 'utf8').includes(`RUNBOOK_COMMAND_RUN=${RUN_PREFIX}`)) {
        found.push(Number(name));
      }
    } catch {
      // gone, or a kernel thread
    }
  }
  return found;
}

describe('single-host command runner: release commands as detached processes that record their exit', function () {
  this.timeout(30_000);
  const user = process.getuid?.() === 0 ? resolveReleaseUser({}) : undefined;
  let root: string;
  let releases: string;
  let dir: string;
  let release: ReleaseSpec;
  let workerEnv: NodeJS.ProcessEnv;
  let options: CommandRunnerOptions;

  beforeEach(() => {
    root = mkdtempSync(path.join(os.tmpdir(), 'runbook-commands-'));
    chmodSync(root, 0o755); // the release user reads the release folders in it
    releases = path.join(root, 'releases');
    mkdirSync(path.join(releases, 'v1'), { recursive: true, mode: 0o755 });
    dir = path.join(root, 'worker-data'); // the worker's data folder: private
    release = {
      command: ['node', 'server.js', '--port={port}'],
      cwd: path.join(releases, '{version}'),
      env: { APP_MODE: 'cmd-{version}', LISTEN: '127.0.0.1:{port}' },
      portRange: { min: 24000, max: 24099 },
      drainMs: 0,
    };
    workerEnv = {
      PATH: '/usr/local/bin:/usr/bin:/bin', // folders the release user can search
      HOME: os.homedir(),
      SECRET_X: 'a-secret-only-the-worker-holds',
      APP_DB: `postgres://app:${WORKER_DB_PASSWORD}@127.0.0.1:5432/app`,
    };
    options = {
      dir,
      releaseUrlFor: async ({ service, database }) =>
        `postgres://${service}_role:${ROLE_PASSWORD}@127.0.0.1:5432/${database}`,
      env: workerEnv,
      ...(user ? { runAs: user } : {}),
      graceMs: 500,
      pollMs: 50,
      progressMs: 100,
      maxLogBytes: 64 * 1024,
    };
  });

  afterEach(() => {
    const left = leftovers();
    for (const pid of left) process.kill(pid, 'SIGKILL');
    rmSync(root, { recursive: true, force: true });
    assert.deepEqual(left, [], 'no process of a run is left behind');
  });

  const request = (command: string[], extra: Partial<ReleaseCommandRequest> = {}): ReleaseCommandRequest => ({
    service: 'shop',
    environment: 'test',
    version: 'v1',
    releaseId: 'v1-abc123',
    purpose: 'migrate',
    runId: nextRunId(),
    command,
    timeoutMs: 20_000,
    release,
    ...extra,
  });

  /** A file the command (the release user) appends to, to count how often it ran. */
  const counter = () => {
    const file = path.join(root, `count-${runs}`);
    writeFileSync(file, '');
    chmodSync(file, 0o666);
    return { file, runs: () => readFileSync(file, 'utf8').split('\n').filter(Boolean).length };
  };

  it('runs a command to exit 0 with its output as the tail, in a private run folder, and never twice', async () => {
    const runner = createCommandRunner(options);
    const count = counter();
    const phases: CommandProgress['phase'][] = [];
    // No shell reads the arguments: $HOME, `id` and the quotes arrive as they are.
    const req = request(['sh', '-c', 'echo ran >> "$0"; echo "$@"; echo to-stderr >&2', count.file, '$HOME;', '`id`']);
    const result = await runner.run(req, (p) => phases.push(p.phase));
    assert.equal(result.exitCode, 0);
    assert.equal(result.timedOut, false);
    assert.equal(result.adopted, false);
    assert.equal(result.stoppedReason, undefined);
    assert.equal(result.tail, '$HOME; `id`\nto-stderr\n');
    assert.ok(result.startedAtMs <= result.endedAtMs);
    const runDir = path.join(dir, 'shop-test', 'commands', req.runId);
    assert.equal(result.logLocation, `${path.join(runDir, 'command.log')} on the worker's host ${os.hostname()}`);
    assert.equal(modeOf(runDir), 0o700);
    for (const file of ['command.json', 'command.pid', 'command.log', 'exit.json']) {
      assert.equal(modeOf(path.join(runDir, file)), 0o600, file);
    }
    const recorded = JSON.parse(readFileSync(path.join(runDir, 'command.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(recorded.runId, req.runId);
    assert.equal(recorded.startedAtMs, result.startedAtMs);
    assert.equal(phases[0], 'starting');
    assert.equal(phases.at(-1), 'done');

    const again = await createCommandRunner(options).run(req);
    assert.deepEqual(again, { ...result, adopted: true });
    assert.equal(count.runs(), 1, 'the finished run is not run again');
  });

  it('reports progress while the command runs: the time it has run and its last line, scrubbed', async () => {
    const runner = createCommandRunner(options);
    const details: string[] = [];
    const result = await runner.run(
      request(['sh', '-c', 'echo "connecting to $DATABASE_URL"; sleep 0.6; echo step two; sleep 0.6'], {
        database: { name: 'app' },
      }),
      (p) => {
        if (p.phase === 'running' && p.detail) details.push(p.detail);
      },
    );
    assert.equal(result.exitCode, 0);
    assert.ok(
      details.some((d) => /^\d+(\.\d)?s: connecting to \*\*\*$/.test(d)),
      details.join('\n'),
    );
    assert.ok(
      details.some((d) => /^\d+(\.\d)?s: step two$/.test(d)),
      details.join('\n'),
    );
    assert.ok(!details.join('\n').includes(ROLE_PASSWORD));
  });

  it('reports exit codes, and a command killed by a signal as killed (a shell exit 137 stays an exit code)', async () => {
    const runner = createCommandRunner(options);
    const failed = await runner.run(request(['sh', '-c', 'echo failing; exit 3']));
    assert.equal(failed.exitCode, 3);
    assert.equal(failed.tail, 'failing\n');
    assert.equal(failed.stoppedReason, undefined);

    const killed = await runner.run(request(['sh', '-c', 'kill -KILL $$']));
    assert.equal(killed.exitCode, null);
    assert.equal(killed.stoppedReason, 'killed by SIGKILL');
    assert.equal(killed.timedOut, false);

    assert.equal((await runner.run(request(['sh', '-c', 'exit 137']))).exitCode, 137);
    const missing = await runner.run(request(['no-such-program-here']));
    assert.equal(missing.exitCode, 127);
    assert.match(missing.tail, /no-such-program-here/);
  });

  it('stops a command that outlasts its timeout: SIGTERM, then SIGKILL for one that ignores it', async () => {
    const runner = createCommandRunner(options);
    const stopped = await runner.run(request(['sleep', '30'], { timeoutMs: 300 }));
    assert.equal(stopped.timedOut, true);
    assert.equal(stopped.exitCode, null);
    assert.equal(stopped.stoppedReason, 'timed out after 0.3s, killed by SIGTERM');

    const stubborn = await runner.run(
      request(['sh', '-c', 'trap "" TERM; echo ignoring SIGTERM; sleep 30; echo never'], { timeoutMs: 300 }),
    );
    assert.equal(stubborn.timedOut, true);
    assert.equal(stubborn.exitCode, null);
    assert.equal(stubborn.stoppedReason, 'timed out after 0.3s, killed by SIGKILL');
    assert.equal(stubborn.tail, 'ignoring SIGTERM\n');
  });

  it('stops the command when the activity is cancelled, and throws the abort reason', async () => {
    const runner = createCommandRunner(options);
    const controller = new AbortController();
    const req = request(['sleep', '30']);
    setTimeout(() => controller.abort(new Error('activity cancelled')), 300);
    await assert.rejects(runner.run(req, undefined, controller.signal), /activity cancelled/);
    assert.deepEqual(leftovers(), []);
    const recorded = await runner.run(req);
    assert.equal(recorded.adopted, true);
    assert.equal(recorded.stoppedReason, 'cancelled, killed by SIGTERM');
  });

  /** Starts the run in another worker (a node process) and SIGKILLs that worker once the command has started. */
  async function startInADyingWorker(req: ReleaseCommandRequest, count: { runs: () => number }): Promise<void> {
    const worker = spawn(
      process.execPath,
      [
        '--require',
        require.resolve('tsx/cjs'),
        '-e',
        `const { createCommandRunner } = require(${JSON.stringify(require.resolve('../../../src/platforms/single-host/command-runner'))});
         const opts = JSON.parse(process.argv[1]);
         createCommandRunner({ ...opts, releaseUrlFor: async () => 'postgres://unused@127.0.0.1/x' }).run(JSON.parse(process.argv[2]));`,
        JSON.stringify({ ...options, releaseUrlFor: undefined }),
        JSON.stringify(req),
      ],
      { stdio: 'inherit' },
    );
    const exited = new Promise((resolve) => worker.once('exit', resolve));
    for (let i = 0; count.runs() === 0; i++) {
      assert.ok(i < 200, 'the command started within 10 s');
      await sleep(50);
    }
    worker.kill('SIGKILL');
    await exited;
  }

  it('adopts a run whose worker was SIGKILLed: a new runner waits for it, and the command runs once', async () => {
    const count = counter();
    const req = request(['sh', '-c', 'echo ran >> "$0"; sleep 1.5; echo finished', count.file]);
    await startInADyingWorker(req, count);

    const adopted = await createCommandRunner(options).run(req);
    assert.equal(adopted.adopted, true);
    assert.equal(adopted.exitCode, 0);
    assert.equal(adopted.tail, 'finished\n');
    assert.ok(adopted.endedAtMs - adopted.startedAtMs >= 1_000, "the recorded start is the first worker's");
    assert.equal(count.runs(), 1);
    assert.deepEqual(await createCommandRunner(options).run(req), adopted);
    assert.equal(count.runs(), 1);
  });

  it('does not run again a command whose wrapper vanished without recording its end (all killed, host restart)', async () => {
    const count = counter();
    const req = request(['sh', '-c', 'echo ran >> "$0"; sleep 30', count.file]);
    await startInADyingWorker(req, count);
    const pidFile = path.join(dir, 'shop-test', 'commands', req.runId, 'command.pid');
    const wrapper = Number(readFileSync(pidFile, 'utf8'));
    process.kill(-wrapper, 'SIGKILL'); // the wrapper's process group: the wrapper and the command
    for (let i = 0; leftovers().length > 0; i++) {
      assert.ok(i < 100, 'the wrapper and the command are gone within 5 s');
      await sleep(50);
    }
    const result = await createCommandRunner(options).run(req);
    assert.equal(result.adopted, true);
    assert.equal(result.exitCode, null);
    assert.match(result.stoppedReason ?? '', /ended without recording how the command ended .*not run again/);
    assert.equal(count.runs(), 1);
  });

  it("gives the command PATH, HOME, the release env and DATABASE_URL, nothing else of the worker's, and masks the URL", async () => {
    const runner = createCommandRunner(options);
    const print = [
      'node',
      '-e',
      'console.log(JSON.stringify({ keys: Object.keys(process.env).sort(), home: process.env.HOME, mode: process.env.APP_MODE, cwd: process.cwd(), uid: process.getuid() }));' +
        'const url = process.env.DATABASE_URL; console.log(url); console.log("bare " + new URL(url).password);',
    ];
    const fromRelease = await runner.run(request(print, { database: { name: 'app', urlEnv: 'APP_DB' } }));
    assert.equal(fromRelease.exitCode, 0);
    const [first] = fromRelease.tail.split('\n');
    assert.deepEqual(JSON.parse(first!), {
      keys: ['APP_MODE', 'DATABASE_URL', 'HOME', 'PATH', 'RUNBOOK_COMMAND_RUN'], // LISTEN uses {port}: left out
      home: user ? user.home : os.homedir(),
      mode: 'cmd-v1',
      cwd: path.join(releases, 'v1'),
      uid: user ? user.uid : process.getuid?.(),
    });
    assert.ok(!fromRelease.tail.includes(WORKER_DB_PASSWORD), fromRelease.tail);
    assert.match(fromRelease.tail, /^postgres:\/\/app:\*\*\*@127\.0\.0\.1:5432\/app$|^\*\*\*$/m);
    assert.match(fromRelease.tail, /^bare \*\*\*$/m);
    const log = fromRelease.logLocation.split(' on the worker')[0]!;
    assert.ok(readFileSync(log, 'utf8').includes(WORKER_DB_PASSWORD), 'the command was given the URL');

    const workerCwd = path.join(root, 'smoke');
    mkdirSync(workerCwd, { mode: 0o755 });
    const onWorker = await runner.run(request(print, { purpose: 'smoke', workerCwd, database: { name: 'shop' } }));
    assert.equal(onWorker.exitCode, 0);
    const seen = JSON.parse(onWorker.tail.split('\n')[0]!) as { keys: string[]; cwd: string };
    assert.deepEqual(seen.keys, ['DATABASE_URL', 'HOME', 'PATH', 'RUNBOOK_COMMAND_RUN']);
    assert.equal(seen.cwd, workerCwd);
    assert.ok(!onWorker.tail.includes(ROLE_PASSWORD), onWorker.tail);
    assert.match(onWorker.tail, /^bare \*\*\*$/m);
  });

  it('caps the log: output beyond the cap is left out but its end is kept, and the command runs to its end', async () => {
    const runner = createCommandRunner(options); // maxLogBytes: 64 KiB
    const result = await runner.run(
      request([
        'node',
        '-e',
        'for (let i = 0; i < 10000; i++) console.log("line " + i + " " + "x".repeat(50)); console.log("THE END");',
      ]),
    );
    assert.equal(result.exitCode, 0);
    const log = result.logLocation.split(' on the worker')[0]!;
    const size = statSync(log).size;
    assert.ok(size <= 64 * 1024 + 200, `the log holds ${size} bytes`);
    const text = readFileSync(log, 'utf8');
    assert.ok(text.startsWith('line 0 '));
    assert.match(text, /\[runbook: \d+ bytes of output left out here \(the log keeps at most 65536 bytes\)/);
    assert.ok(result.tail.endsWith('line 9999 ' + 'x'.repeat(50) + '\nTHE END\n'));
    assert.equal(result.tail.length, COMMAND_TAIL_CHARS);
  });

  it('refuses what cannot run as ReleaseCommandFailed: an unknown version, an empty command, a missing folder', async () => {
    const runner = createCommandRunner(options);
    const failsWith = async (req: ReleaseCommandRequest, message: RegExp) => {
      const err = await runner.run(req).catch((e: unknown) => e);
      assert.ok(err instanceof PlatformError, String(err));
      assert.equal(err.type, 'ReleaseCommandFailed');
      assert.equal(err.permanent, true);
      assert.match(err.message, message);
    };
    const folder = path.join(releases, 'v9').replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    await failsWith(request(['true'], { version: 'v9' }), new RegExp(`unknown version v9 of shop: folder ${folder}`));
    await failsWith(request([]), /command of shop is empty/);
    await failsWith(request(['true'], { workerCwd: path.join(root, 'nowhere') }), /nowhere, which does not exist/);
    await failsWith(request(['true'], { database: { name: 'app', urlEnv: 'NOT_SET' } }), /no NOT_SET set/);
    if (user) {
      const hidden = mkdtempSync(path.join(os.tmpdir(), 'runbook-private-release-')); // 0700: not the release user's
      try {
        mkdirSync(path.join(hidden, 'v1'));
        const req = request(['true'], { release: { ...release, cwd: path.join(hidden, '{version}') } });
        await failsWith(req, new RegExp(`runs as the user ${user.name} .*cannot pass ${hidden}`));
      } finally {
        rmSync(hidden, { recursive: true, force: true });
      }
    }
  });
});

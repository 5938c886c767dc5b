/**
 * Upgrade check: the workflows that a worker of the previous release started must finish on this one. Records one
 * history per workflow path (test/replay/upgrade-paths.ts) by running the previous release's own code on a dev server
 * of its own, then replays each history on the current workflow code.
 *
 *   npm run test:upgrade                      # from the newest release tag (v*) before HEAD
 *   npm run test:upgrade -- --from v0.25.0    # from any git revision
 *
 * The previous release is extracted with `git archive` into a temporary folder; it shares this checkout's
 * node_modules when its package-lock.json is the same, and runs `npm ci` there otherwise.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils';
import { DefaultLogger, Runtime, Worker } from '@temporalio/worker';
import { workflowBundle } from '../test/harness';
import { upgradePaths } from '../test/replay/upgrade-paths';

const root = path.join(__dirname, '..');
const git = (...args: string[]) => execFileSync('git', args, { cwd: root, encoding: 'utf8' }).trim();

/** The newest tag `v*` that is an ancestor of HEAD and not on HEAD itself; undefined when there is none. */
function previousRelease(): string | undefined {
  const onHead = new Set(git('tag', '--points-at', 'HEAD').split('\n').filter(Boolean));
  const tags = git('tag', '--merged', 'HEAD', '--sort=-creatordate', '--list', 'v*').split('\n').filter(Boolean);
  return tags.find((t) => !onHead.has(t));
}

function argValue(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

async function main(): Promise<void> {
  const from = argValue('--from') ?? previousRelease();
  if (!from) {
    console.log(
      'upgrade check: no release tag (v*) before HEAD: nothing to check against; tag a release with `git tag`',
    );
    return;
  }
  const commit = git('rev-parse', '--verify', `${from}^{commit}`);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'runbook-upgrade-'));
  // Its releases run as the release user (see docs/single-host.md), who must be able to pass through this folder.
  chmodSync(dir, 0o755);
  const started = Date.now();
  try {
    console.log(`upgrade check: recording with ${from} (${commit.slice(0, 12)}) in ${dir}`);
    execFileSync('bash', ['-c', `git -C "$1" archive "$2" | tar -x -C "$3"`, '-', root, commit, dir], {
      stdio: 'inherit',
    });
    const lock = (d: string) => readFileSync(path.join(d, 'package-lock.json'), 'utf8');
    if (lock(dir) === lock(root)) symlinkSync(path.join(root, 'node_modules'), path.join(dir, 'node_modules'));
    else {
      console.log('upgrade check: its package-lock.json differs: npm ci there');
      execFileSync('npm', ['ci', '--no-audit', '--no-fund', '--ignore-scripts'], { cwd: dir, stdio: 'inherit' });
    }
    if (existsSync(path.join(root, '.tools'))) symlinkSync(path.join(root, '.tools'), path.join(dir, '.tools'));

    const known = readFileSync(path.join(dir, 'test/replay/scenarios.ts'), 'utf8');
    const names = upgradePaths.filter((n) => known.includes(`'${n}'`));
    const missing = upgradePaths.filter((n) => !names.includes(n));
    if (missing.length > 0) console.log(`upgrade check: ${from} has no scenario ${missing.join(', ')}: left out`);
    const histories = path.join(dir, 'test/replay/histories');
    const out = path.join(dir, 'upgrade-histories');
    mkdirSync(out);
    // Its own recorder writes over its committed histories: those written after this moment are the new ones.
    const since = Date.now();
    const recorded = spawnSync('npx', ['tsx', 'scripts/record-histories.ts', ...names], {
      cwd: dir,
      stdio: 'inherit',
    });
    if (recorded.status !== 0) throw new Error(`recording with ${from} failed (exit status ${recorded.status})`);
    const files = readdirSync(histories).filter(
      (f) => names.includes(f.replace(/\.json$/, '')) && statSync(path.join(histories, f)).mtimeMs >= since,
    );
    if (files.length !== names.length)
      throw new Error(`recorded ${files.length} of ${names.length} histories with ${from}`);

    Runtime.install({ logger: new DefaultLogger('WARN') });
    const bundle = await workflowBundle();
    const failed: string[] = [];
    for (const file of files) {
      const history = historyFromJSON(JSON.parse(readFileSync(path.join(histories, file), 'utf8')));
      const workflowId = file.replace(/\.json$/, '');
      for await (const result of Worker.runReplayHistories({ workflowBundle: bundle }, [{ workflowId, history }])) {
        console.log(`  ${result.error ? '✖' : '✔'} ${workflowId} (${history.events?.length ?? 0} events)`);
        if (result.error) {
          failed.push(workflowId);
          console.log(`    ${String(result.error.message).split('\n').join('\n    ')}`);
        }
      }
    }
    const seconds = Math.round((Date.now() - started) / 1000);
    if (failed.length > 0)
      throw new Error(
        `${failed.length} of ${files.length} histories of ${from} do not replay on this code: ${failed.join(', ')}; ` +
          'guard the change with patched() (docs/development.md)',
      );
    console.log(`upgrade check: ${files.length} histories of ${from} replay on this code (${seconds} s)`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: Error) => {
  console.error(`upgrade check: ${err.message}`);
  process.exit(1);
});

import assert from 'node:assert/strict';
import { closeSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { writeFileAtomically, writeFileAtomicallySync } from '../../src/system/atomic-write';
import {
  createPrivateFile,
  ensurePrivateDir,
  ensurePrivateDirSync,
  openPrivateLog,
  tightenTree,
} from '../../src/system/private-files';

const modeOf = (p: string) => statSync(p).mode & 0o777;

describe('private files: what the project writes under its data folder is 0600, its folders 0700', () => {
  let dir: string;
  let umaskBefore: number;
  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'runbook-private-'));
    umaskBefore = process.umask(0o000);
  });
  afterEach(() => {
    process.umask(umaskBefore);
    rmSync(dir, { recursive: true, force: true });
  });

  for (const umask of [0o000, 0o022, 0o277]) {
    it(`whatever the umask (${umask.toString(8).padStart(3, '0')}): folders, atomic writes, logs, pre-made files`, async () => {
      process.umask(umask);
      ensurePrivateDirSync(path.join(dir, 'a', 'b', 'c'));
      for (const d of ['a', 'a/b', 'a/b/c']) assert.equal(modeOf(path.join(dir, d)), 0o700, d);
      await ensurePrivateDir(path.join(dir, 'x', 'y'));
      assert.equal(modeOf(path.join(dir, 'x')), 0o700);
      assert.equal(modeOf(path.join(dir, 'x', 'y')), 0o700);

      await writeFileAtomically(path.join(dir, 'a', 'state.json'), '{}');
      writeFileAtomicallySync(path.join(dir, 'a', 'stack.json'), '{}');
      closeSync(openPrivateLog(path.join(dir, 'logs', 'server.log')));
      await createPrivateFile(path.join(dir, 'a', 'dump.partial'));
      for (const f of ['a/state.json', 'a/stack.json', 'logs/server.log', 'a/dump.partial']) {
        assert.equal(modeOf(path.join(dir, f)), 0o600, f);
      }
      assert.equal(modeOf(path.join(dir, 'logs')), 0o700);
    });
  }

  it('an existing folder, log or file with a wider mode (an older version) is tightened', async () => {
    process.umask(0o022);
    mkdirSync(path.join(dir, 'old', 'snapshots'), { recursive: true, mode: 0o755 });
    writeFileSync(path.join(dir, 'old', 'snapshots', 'a.dump'), 'x', { mode: 0o644 });
    writeFileSync(path.join(dir, 'old', 'worker.log'), 'x', { mode: 0o644 });
    writeFileSync(path.join(dir, 'old', 'run.sh'), 'x', { mode: 0o755 });
    closeSync(openPrivateLog(path.join(dir, 'old', 'worker.log')));
    assert.equal(modeOf(path.join(dir, 'old', 'worker.log')), 0o600);
    ensurePrivateDirSync(path.join(dir, 'old'));
    assert.equal(modeOf(path.join(dir, 'old')), 0o700);

    mkdirSync(path.join(dir, 'old', 'skipped'), { mode: 0o755 });
    assert.equal(tightenTree(path.join(dir, 'old'), [path.join(dir, 'old', 'skipped')]), 3);
    assert.equal(modeOf(path.join(dir, 'old', 'snapshots')), 0o700);
    assert.equal(modeOf(path.join(dir, 'old', 'snapshots', 'a.dump')), 0o600);
    assert.equal(modeOf(path.join(dir, 'old', 'run.sh')), 0o700, "the owner's bits stay");
    assert.equal(modeOf(path.join(dir, 'old', 'skipped')), 0o755, 'skipped');
    assert.equal(tightenTree(path.join(dir, 'old')), 1, 'only the skipped folder was left');
  });
});

import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { sampleConfigForReleases, sampleCopyDir } from '../../src/stack/sample-copy';
import { resolveReleaseUser, unreachableFor } from '../../src/system/release-user';

const examples = path.join(__dirname, '../../examples');

describe('the demo sample where the release user can read it (as root)', function () {
  let home: string;
  let privateHome: string;
  before(function () {
    if (process.getuid?.() !== 0) this.skip(); // releases switch users only under a root worker
    privateHome = mkdtempSync(path.join(os.tmpdir(), 'runbook-private-home-')); // 0700, as /root
    cpSync(examples, path.join(privateHome, 'repo', 'examples'), { recursive: true });
    home = path.join(privateHome, 'repo', '.runbook');
  });
  after(() => {
    if (home) rmSync(path.dirname(sampleCopyDir(home)), { recursive: true, force: true });
    if (privateHome) rmSync(privateHome, { recursive: true, force: true });
  });

  it('runs a readable copy of examples/ when the checkout is under a private home, and says so', () => {
    const config = path.join(privateHome, 'repo', 'examples', 'runbook.yaml');
    const lines: string[] = [];
    const used = sampleConfigForReleases(config, home, (l) => lines.push(l));
    assert.equal(used, path.join(sampleCopyDir(home), 'runbook.yaml'));
    assert.equal(readFileSync(used, 'utf8'), readFileSync(config, 'utf8'));
    const user = resolveReleaseUser({})!;
    for (const dir of ['shop/releases/v1', 'shop/migrations']) {
      assert.equal(unreachableFor(user, path.join(sampleCopyDir(home), dir)), undefined, `${dir} readable`);
    }
    const server = statSync(path.join(sampleCopyDir(home), 'shop', 'server.js'));
    assert.equal(server.mode & 0o777, 0o644, 'readable, and writable by root only');
    assert.equal(server.uid, 0);
    assert.match(lines.join('\n'), new RegExp(`releases run as ${user.name}, who cannot pass ${privateHome}`));
  });

  it('uses the checkout itself when the release user can read it', function () {
    const lines: string[] = [];
    const config = path.join(examples, 'runbook.yaml');
    const reachable = unreachableFor(resolveReleaseUser({})!, examples) === undefined;
    const used = sampleConfigForReleases(config, `${home}-other`, (l) => lines.push(l));
    if (reachable) {
      assert.equal(used, config);
      assert.deepEqual(lines, []);
      assert.equal(existsSync(sampleCopyDir(`${home}-other`)), false);
    } else {
      rmSync(path.dirname(sampleCopyDir(`${home}-other`)), { recursive: true, force: true });
      this.skip(); // this checkout itself is under a private home
    }
  });
});

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseAllowedSigners, verifySshSignature } from '../../src/signing/sshsig';
import { sshSign } from '../../src/signing/ssh-keygen';
import { testKey } from '../helpers/keys';
import { skTestKey } from '../helpers/sk-keys';

const NS = 'runbook-decision@durable-runbooks';

describe('SSH signatures (signing/sshsig)', () => {
  for (const type of ['ed25519', 'ecdsa-256', 'ecdsa-384', 'ecdsa-521'] as const) {
    it(`verifies an ssh-keygen -Y sign signature of a ${type} key, as the key's principals`, async () => {
      const key = testKey('alice', type);
      const signers = parseAllowedSigners(key.line('Alice,alice@example.com'));
      const sig = await sshSign('the message', NS, key.file, process.env);
      const v = verifySshSignature('the message', sig, NS, signers);
      assert.ok(v.ok, JSON.stringify(v));
      assert.deepEqual(v.principals, ['alice', 'alice@example.com']);
      assert.match(v.fingerprint, /^SHA256:[A-Za-z0-9+/]{43}$/);
    });
  }

  for (const type of ['sk-ssh-ed25519@openssh.com', 'sk-ecdsa-sha2-nistp256@openssh.com'] as const) {
    it(`verifies a hardware-token (${type}) signature that ssh-keygen -Y verify accepts, and only with user presence`, () => {
      const key = skTestKey(type);
      const signers = parseAllowedSigners(key.line('carol'));
      assert.equal(signers[0]?.keyType, type);
      const touched = key.sign('approve go-live', NS);
      const untouched = key.sign('approve go-live', NS, 0x00);
      // The stand-in for a token is right when OpenSSH itself accepts what it signed (it does not ask for presence).
      const dir = mkdtempSync(path.join(os.tmpdir(), 'runbook-sk-'));
      try {
        writeFileSync(path.join(dir, 'allowed_signers'), `${key.line('carol')}\n`);
        for (const [name, sig] of [
          ['touched', touched],
          ['untouched', untouched],
        ] as const) {
          writeFileSync(path.join(dir, name), `${sig}\n`);
          const out = execFileSync(
            'ssh-keygen',
            [
              '-Y',
              'verify',
              '-f',
              path.join(dir, 'allowed_signers'),
              '-I',
              'carol',
              '-n',
              NS,
              '-s',
              path.join(dir, name),
            ],
            { input: 'approve go-live' },
          ).toString();
          assert.match(out, /Good ".*" signature for carol with (ED25519|ECDSA)-SK key/);
        }
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
      const v = verifySshSignature('approve go-live', touched, NS, signers);
      assert.ok(v.ok, JSON.stringify(v));
      assert.deepEqual(v.principals, ['carol']);
      assert.equal(v.fingerprint, signers[0]?.fingerprint);
      const reason = (r: ReturnType<typeof verifySshSignature>) => (r.ok ? 'accepted' : r.reason);
      assert.match(
        reason(verifySshSignature('approve go-live', untouched, NS, signers)),
        /did not confirm user presence/,
      );
      assert.match(reason(verifySshSignature('approve before-traffic', touched, NS, signers)), /is wrong/);
      const other = skTestKey(type);
      assert.match(
        reason(verifySshSignature('approve go-live', other.sign('approve go-live', NS), NS, signers)),
        /not in the worker's allowed/,
      );
    });
  }

  it('refuses a tampered message, another namespace, an unknown key and garbage, each with its reason', async () => {
    const alice = testKey('alice');
    const mallory = testKey('mallory');
    const signers = parseAllowedSigners(alice.line());
    const sig = await sshSign('approve before-start', NS, alice.file, process.env);
    const reason = (v: ReturnType<typeof verifySshSignature>) => (v.ok ? 'accepted' : v.reason);
    assert.match(
      reason(verifySshSignature('approve before-traffic', sig, NS, signers)),
      /signature of key .* is wrong/,
    );
    const git = await sshSign('approve before-start', 'git', alice.file, process.env);
    assert.match(reason(verifySshSignature('approve before-start', git, NS, signers)), /namespace "git"/);
    const other = await sshSign('approve before-start', NS, mallory.file, process.env);
    assert.match(reason(verifySshSignature('approve before-start', other, NS, signers)), /not in the worker's allowed/);
    assert.match(reason(verifySshSignature('x', 'alice', NS, signers)), /not an SSH signature/);
    const cut = sig.replace(/\n[A-Za-z0-9+/=]+\n-----END/, '\n-----END');
    assert.match(reason(verifySshSignature('approve before-start', cut, NS, signers)), /cannot be read|wrong/);
  });

  it('allowed_signers: comments and blank lines are skipped; options, RSA and bad keys are refused by line', () => {
    const alice = testKey('alice');
    assert.equal(parseAllowedSigners(`# team keys\n\n${alice.line()}\n`).length, 1);
    assert.throws(() => parseAllowedSigners(`alice namespaces="git" ${alice.publicKey}`), /line 1: options/);
    assert.throws(() => parseAllowedSigners('bob ssh-rsa AAAAB3NzaC1yc2E'), /ssh-rsa is not supported/);
    assert.throws(() => parseAllowedSigners('\ncarol ssh-ed25519 AAAA'), /line 2: the key cannot be read/);
    assert.throws(() => parseAllowedSigners(`bad*name ${alice.publicKey}`), /principals must be names/);
  });
});

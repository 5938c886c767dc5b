import assert from 'node:assert/strict';
import { parseAllowedSigners, verifySshSignature } from '../../src/signing/sshsig';
import { sshSign } from '../../src/signing/ssh-keygen';
import { testKey } from '../helpers/keys';

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

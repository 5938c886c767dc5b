import assert from 'node:assert/strict';
import {
  jsonSizeUpTo,
  judgeDecision,
  MAX_REASON_LENGTH,
  shownName,
  type DecisionKind,
  type Judgement,
} from '../../src/shared/approvals';
import { decisionSchema, MAX_DECISION_PAYLOAD, MAX_NAME_LENGTH, type GatePolicy } from '../../src/shared/deploy';

const policy: GatePolicy = {
  gates: ['before-start', 'go-live'],
  approvers: ['alice', 'bob', 'unverified:carol'],
  fourEyes: true,
  timeoutMs: 60_000,
  onTimeout: 'abort',
};
const ctx = { policy, requestedBy: 'dave', waiting: 'before-start' as const, what: 'the deploy of shop v2 to staging' };
const judge = (payload: unknown, kind: DecisionKind = 'approve', extra: Partial<typeof ctx> = {}) =>
  judgeDecision(kind, payload, { ...ctx, ...extra });
const refusal = (j: Judgement) => {
  assert.equal(j.ok, false, 'refused');
  return j as Extract<Judgement, { ok: false }>;
};

describe('decision payloads (shared/approvals)', () => {
  describe('what a valid decision is', () => {
    it('a name, optionally the gate and a note: accepted as before', () => {
      const j = judge({ by: 'bob', gate: 'before-start', note: 'ticket 42\nlooked at the dashboards\t(ok)' });
      assert.ok(j.ok);
      assert.equal(j.decision.by, 'bob');
      assert.equal(j.gate, 'before-start');
    });

    it('a name is trimmed, as before', () => {
      const j = judge({ by: '  bob ' });
      assert.ok(j.ok);
      assert.equal(j.decision.by, 'bob');
    });

    it("names: letters, digits and . _ @ : - up to 64 characters (':' for signed identities)", () => {
      for (const by of ['alice', 'a.b_c-d@example.org', 'unverified:carol', 'x'.repeat(MAX_NAME_LENGTH)])
        assert.ok(decisionSchema.safeParse({ by }).success, by);
      for (const by of ['x'.repeat(MAX_NAME_LENGTH + 1), 'Alice Smith', '-alice', ':alice', 'a/b', '<b>', 'a"b', 'é'])
        assert.ok(!decisionSchema.safeParse({ by }).success, by);
    });

    it('an approver whose name has a colon (signed identities) decides', () => {
      assert.ok(judge({ by: 'unverified:carol' }).ok);
    });

    it('a note of at most 2,000 characters, text only (tab and newline are fine)', () => {
      assert.ok(decisionSchema.safeParse({ by: 'bob', note: 'n'.repeat(2_000) }).success);
      assert.ok(!decisionSchema.safeParse({ by: 'bob', note: 'n'.repeat(2_001) }).success);
      for (const note of ['a\rb', 'a\u001b[2Jb', 'a\u0000b', 'a\u202eb', 'a\u0085b'])
        assert.ok(!decisionSchema.safeParse({ by: 'bob', note }).success, JSON.stringify(note));
    });

    it('the gate is one of the gate names; unknown keys are refused', () => {
      assert.ok(!decisionSchema.safeParse({ by: 'bob', gate: 'whatever' }).success);
      assert.ok(!decisionSchema.safeParse({ by: 'bob', who: 'bob' }).success);
      assert.match(
        refusal(judge({ by: 'bob', extra: 1 })).reason,
        /invalid approve payload \(payload: Unrecognized key/,
      );
    });
  });

  describe('oversized and malformed payloads', () => {
    it('a 1 MB name is refused before it is parsed, and shown cut to 64 characters', () => {
      const r = refusal(judge({ by: 'm'.repeat(1_000_000) }));
      assert.equal(r.by.length, MAX_NAME_LENGTH);
      assert.ok(r.by.endsWith('…'));
      assert.match(r.reason, new RegExp(`approve payload larger than ${MAX_DECISION_PAYLOAD} characters`));
      assert.ok(r.reason.length <= MAX_REASON_LENGTH);
    });

    it('a name of 65 characters (under the size limit) is refused by the schema, the reason bounded', () => {
      const r = refusal(judge({ by: 'm'.repeat(65) }));
      assert.match(r.reason, /by: a name of at most 64 characters/);
      assert.equal(r.by.length, MAX_NAME_LENGTH);
    });

    it('a huge unknown key, a huge note, a huge array, deep nesting: refused by size, cheaply', () => {
      let deep: unknown = 'x';
      for (let i = 0; i < 100_000; i++) deep = { a: deep };
      const payloads: unknown[] = [
        { by: 'bob', ['k'.repeat(500_000)]: 1 },
        { by: 'bob', note: 'n'.repeat(3_000_000) },
        { by: 'bob', list: new Array(5_000_000).fill(0) },
        deep,
        [deep],
      ];
      for (const payload of payloads) {
        const r = refusal(judge(payload));
        assert.match(r.reason, /payload larger than 4096 characters/);
        assert.ok(r.reason.length <= MAX_REASON_LENGTH);
      }
    });

    it('payloads that are not objects: refused with the shape to send', () => {
      for (const payload of [null, undefined, 42, 'bob', [], true]) {
        const r = refusal(judge(payload));
        assert.equal(r.by, '?');
        assert.match(r.reason, /invalid approve payload .*send \{"by": "<name>"/);
      }
    });

    it('control characters in a refused name are not shown', () => {
      const r = refusal(judge({ by: 'mal\u001b[31mlory' }));
      assert.equal(r.by, 'mal?[31mlory');
      assert.ok(!r.reason.includes('\u001b'));
    });

    it('the rules of before the limits still apply to a replayed decision (unbounded)', () => {
      const long = `${'m'.repeat(100)}`;
      const j = judgeDecision(
        'approve',
        { by: long },
        { ...ctx, policy: { ...policy, approvers: [long] }, unbounded: true },
      );
      assert.ok(j.ok, 'a workflow of before the limits accepted it');
      assert.ok(!judge({ by: long }, 'approve', { policy: { ...policy, approvers: [long] } }).ok, 'now refused');
      const big = refusal(judgeDecision('approve', { by: 'm'.repeat(1_000_000) }, { ...ctx, unbounded: true }));
      assert.equal(big.by.length, MAX_NAME_LENGTH);
      assert.ok(big.reason.length <= MAX_REASON_LENGTH);
    });
  });

  describe('the rules at the gate (unchanged)', () => {
    it('an unknown approver, four-eyes, the wrong gate, not waiting', () => {
      assert.match(refusal(judge({ by: 'mallory' })).reason, /mallory is not an approver .* \(allowed: alice, bob/);
      assert.match(refusal(judge({ by: 'alice' }, 'approve', { requestedBy: 'alice' })).reason, /four-eyes/);
      assert.match(refusal(judge({ by: 'bob', gate: 'go-live' })).reason, /gate "go-live" is not waiting/);
      assert.match(refusal(judge({ by: 'bob' }, 'approve', { waiting: undefined })).reason, /is not waiting/);
      assert.ok(judge({ by: 'dave' }, 'reject').ok, 'the requester may reject their own deploy');
    });

    it('reasons are cut to MAX_REASON_LENGTH', () => {
      const approvers = Array.from({ length: 100 }, (_, i) => `approver-${i}`);
      const r = refusal(judge({ by: 'mallory' }, 'approve', { policy: { ...policy, approvers } }));
      assert.equal(r.reason.length, MAX_REASON_LENGTH);
      assert.ok(r.reason.endsWith('…'));
    });
  });

  it('shownName and jsonSizeUpTo', () => {
    assert.equal(shownName('bob'), 'bob');
    assert.equal(shownName('b'.repeat(100)).length, MAX_NAME_LENGTH);
    assert.equal(jsonSizeUpTo({ by: 'bob' }, 100), JSON.stringify({ by: 'bob' }).length);
    assert.equal(
      jsonSizeUpTo({ by: 'bob', note: 'n', gate: 'go-live' }, 100),
      JSON.stringify({ by: 'bob', note: 'n', gate: 'go-live' }).length,
    );
    assert.equal(jsonSizeUpTo([1, 'a', null], 100), JSON.stringify([1, 'a', null]).length);
    assert.equal(jsonSizeUpTo('x'.repeat(1000), 100), 101);
  });
});

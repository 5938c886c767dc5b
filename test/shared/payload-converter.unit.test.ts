import assert from 'node:assert/strict';
import { defaultPayloadConverter } from '@temporalio/common';
import { judgeDecision } from '../../src/shared/approvals';
import { payloadConverter, UnreadablePayload } from '../../src/shared/payload-converter';

const payload = (encoding: string, data: string) => ({
  metadata: { encoding: new TextEncoder().encode(encoding) },
  data: new TextEncoder().encode(data),
});

describe('the worker payload converter (shared/payload-converter)', () => {
  it('reads and writes what the default converter does', () => {
    for (const value of [{ by: 'bob', note: 'ok' }, 'text', 42, null, [1, 2], undefined, new Uint8Array([1, 2])]) {
      const encoded = payloadConverter.toPayload(value);
      assert.deepEqual(encoded, defaultPayloadConverter.toPayload(value));
      assert.deepEqual(payloadConverter.fromPayload(encoded), value);
    }
  });

  it('turns a payload it cannot read into an UnreadablePayload, which the gates refuse', () => {
    for (const p of [payload('json/plain', '{'), payload('binary/whatever', 'zz'), { data: new Uint8Array([1]) }]) {
      const value = payloadConverter.fromPayload(p);
      assert.ok(value instanceof UnreadablePayload, JSON.stringify(value));
      const j = judgeDecision('approve', value, {
        policy: { gates: ['before-start'], approvers: ['bob'], fourEyes: true, timeoutMs: 1, onTimeout: 'abort' },
        requestedBy: 'dave',
        waiting: 'before-start',
        what: 'the deploy',
      });
      assert.ok(!j.ok);
      assert.equal(j.by, '?');
      assert.match(j.reason, /^approve payload that cannot be read \(.+\); send \{"by"/);
    }
  });
});

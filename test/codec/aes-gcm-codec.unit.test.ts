import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { defaultPayloadConverter } from '@temporalio/common';
import {
  AesGcmCodec,
  ENCRYPTED_ENCODING,
  KEY_ID_METADATA,
  PayloadDecryptionError,
  parseCodecKeys,
} from '../../src/codec/aes-gcm-codec';
import { UserError } from '../../src/errors';

const key = () => randomBytes(32).toString('base64');
const codecOf = (value: string) => new AesGcmCodec(parseCodecKeys(value)!);
const text = (bytes: Uint8Array | null | undefined) => Buffer.from(bytes ?? []).toString('utf8');
const plan = { release: { command: 'node server.js --secret-plan-marker' }, gates: ['go-live'] };

describe('payload codec (AES-256-GCM, key id in the metadata)', () => {
  it('encrypts a payload whole: no plaintext left, the key id in the metadata, and it decrypts back', async () => {
    const codec = codecOf(`k1:${key()}`);
    const original = defaultPayloadConverter.toPayload(plan);
    const [encrypted] = await codec.encode([original]);
    assert.equal(text(encrypted!.metadata!.encoding), ENCRYPTED_ENCODING);
    assert.equal(text(encrypted!.metadata![KEY_ID_METADATA]), 'k1');
    assert.equal(text(encrypted!.data).includes('secret-plan-marker'), false);
    assert.equal(
      Object.values(encrypted!.metadata!).some((v) => text(v).includes('json/plain')),
      false,
    );
    const [decrypted] = await codec.decode([encrypted!]);
    assert.deepEqual(defaultPayloadConverter.fromPayload(decrypted!), plan);
    const [again] = await codec.encode([original]);
    assert.notDeepEqual(again!.data, encrypted!.data, 'a fresh IV each time');
  });

  it('rotates by key id: the first key encrypts, older keys still decrypt what they encrypted', async () => {
    const oldKey = key();
    const before = codecOf(`2024:${oldKey}`);
    const after = codecOf(`2025:${key()},2024:${oldKey}`);
    const [old] = await before.encode([defaultPayloadConverter.toPayload('written last year')]);
    const [fresh] = await after.encode([defaultPayloadConverter.toPayload('written now')]);
    assert.equal(text(fresh!.metadata![KEY_ID_METADATA]), '2025');
    assert.deepEqual(after.keyIds, ['2025', '2024']);
    const [oldPlain, freshPlain] = await after.decode([old!, fresh!]);
    assert.equal(defaultPayloadConverter.fromPayload(oldPlain!), 'written last year');
    assert.equal(defaultPayloadConverter.fromPayload(freshPlain!), 'written now');
  });

  it('refuses a payload of an unknown key id, naming the id it needs and the ids it holds', async () => {
    const [payload] = await codecOf(`gone:${key()}`).encode([defaultPayloadConverter.toPayload(plan)]);
    await assert.rejects(
      codecOf(`k2:${key()}`).decode([payload!]),
      (err: unknown) =>
        err instanceof PayloadDecryptionError &&
        /key id "gone", which RUNBOOK_CODEC_KEYS does not hold \(it holds: k2\)/.test(err.message),
    );
  });

  it('refuses a payload that another key under the same id encrypted, or that was altered', async () => {
    const [payload] = await codecOf(`k1:${key()}`).encode([defaultPayloadConverter.toPayload(plan)]);
    await assert.rejects(codecOf(`k1:${key()}`).decode([payload!]), /does not decrypt with that key/);
    const codec = codecOf(`k1:${key()}`);
    const [mine] = await codec.encode([defaultPayloadConverter.toPayload(plan)]);
    const altered = Buffer.from(mine!.data!);
    altered[20] = altered[20]! ^ 1;
    await assert.rejects(codec.decode([{ ...mine!, data: altered }]), /or the payload was altered/);
  });

  it('passes payloads that are not encrypted through (older histories, plain JSON from the Web UI)', async () => {
    const plain = defaultPayloadConverter.toPayload({ by: 'alice' });
    assert.deepEqual(await codecOf(`k1:${key()}`).decode([plain]), [plain]);
  });

  it('parses RUNBOOK_CODEC_KEYS strictly, naming the problem but never a key', () => {
    assert.equal(parseCodecKeys(undefined), undefined);
    assert.equal(parseCodecKeys('  '), undefined);
    const short = Buffer.from('sixteen bytes!!!').toString('base64');
    for (const [value, expected] of [
      [`k1:${short}`, /the key of "k1" must be 32 bytes in base64 \(AES-256\), got 16 bytes/],
      [`${key()}`, /entry 1 must be <key id>:<base64 key>/],
      [`k1:${key()},bad id:${key()}`, /entry 2 must be/],
      [`k1:${key()},k1:${key()}`, /key id "k1" appears twice/],
      ['k1:not base64 at all!', /must be 32 bytes/],
    ] as const) {
      assert.throws(
        () => parseCodecKeys(value),
        (err: unknown) => {
          assert.ok(err instanceof UserError);
          assert.match(err.message, expected);
          const secret = value.split(',').map((e) => e.slice(e.indexOf(':') + 1));
          for (const s of secret) if (s.length > 8) assert.equal(err.message.includes(s), false, 'the key is printed');
          assert.match(err.fix ?? '', /openssl rand -base64 32/);
          return true;
        },
      );
    }
  });
});

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type http from 'node:http';
import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import { AesGcmCodec, parseCodecKeys } from '../../src/codec/aes-gcm-codec';
import { createCodecServer, listen } from '../../src/codec/codec-server';
import { freePort } from '../../src/system/processes';

const ui = 'http://localhost:8233';
const toJson = (p: Payload) => ({
  metadata: Object.fromEntries(
    Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v!).toString('base64')]),
  ),
  data: Buffer.from(p.data ?? []).toString('base64'),
});
const fromJson = (p: { metadata: Record<string, string>; data: string }): Payload => ({
  metadata: Object.fromEntries(Object.entries(p.metadata).map(([k, v]) => [k, Buffer.from(v, 'base64')])),
  data: Buffer.from(p.data, 'base64'),
});

describe('runbook codec-server (the remote codec endpoints the Web UI and the temporal CLI call)', () => {
  const codec = new AesGcmCodec(parseCodecKeys(`k1:${randomBytes(32).toString('base64')}`)!);
  let server: http.Server;
  let base: string;
  const refusals: string[] = [];

  before(async () => {
    server = createCodecServer({
      codec,
      origins: [ui],
      token: 'sesame',
      namespaces: ['default'],
      log: (l) => refusals.push(l),
    });
    base = `http://127.0.0.1:${await listen(server, await freePort(), '127.0.0.1')}`;
  });
  after(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${base}${path}`, {
      method: 'POST',
      headers: {
        'Content-Type': 'application/json',
        Authorization: 'Bearer sesame',
        'X-Namespace': 'default',
        Origin: ui,
        ...headers,
      },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });

  it('encodes and decodes {"payloads": [...]} as the worker does, with CORS for the UI origin', async () => {
    const plain = defaultPayloadConverter.toPayload({ plan: 'secret-plan-marker' });
    const encoded = await post('/encode', { payloads: [toJson(plain)] });
    assert.equal(encoded.status, 200);
    assert.equal(encoded.headers.get('access-control-allow-origin'), ui);
    assert.equal(encoded.headers.get('access-control-allow-credentials'), 'true');
    const { payloads } = (await encoded.json()) as {
      payloads: Array<{ metadata: Record<string, string>; data: string }>;
    };
    assert.equal(Buffer.from(payloads[0]!.data, 'base64').toString().includes('secret-plan-marker'), false);
    const [decodedByCodec] = await codec.decode([fromJson(payloads[0]!)]);
    assert.deepEqual(defaultPayloadConverter.fromPayload(decodedByCodec!), { plan: 'secret-plan-marker' });

    const underNamespace = await post('/default/decode', { payloads: [] }, { 'X-Namespace': '' });
    assert.deepEqual(await underNamespace.json(), { payloads: [] }, 'the CLI template http://host/{namespace}');
    const [workerEncoded] = await codec.encode([plain]);
    const decoded = await post('/decode', { payloads: [toJson(workerEncoded!)] });
    const body = (await decoded.json()) as { payloads: Array<{ metadata: Record<string, string>; data: string }> };
    assert.deepEqual(defaultPayloadConverter.fromPayload(fromJson(body.payloads[0]!)), { plan: 'secret-plan-marker' });
  });

  it("answers the browser's preflight for the UI origin only", async () => {
    const preflight = await fetch(`${base}/decode`, {
      method: 'OPTIONS',
      headers: { Origin: ui, 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'x-namespace' },
    });
    assert.equal(preflight.status, 204);
    assert.equal(preflight.headers.get('access-control-allow-origin'), ui);
    assert.match(preflight.headers.get('access-control-allow-headers') ?? '', /X-Namespace/);
    assert.match(preflight.headers.get('access-control-allow-methods') ?? '', /POST/);
    const stranger = await fetch(`${base}/decode`, { method: 'OPTIONS', headers: { Origin: 'http://evil.example' } });
    assert.equal(stranger.headers.get('access-control-allow-origin'), null);
  });

  it('refuses a missing or wrong token, another namespace, a bad body and an unknown key id', async () => {
    const [foreign] = await new AesGcmCodec(parseCodecKeys(`other:${randomBytes(32).toString('base64')}`)!).encode([
      defaultPayloadConverter.toPayload('x'),
    ]);
    const cases: Array<[Response, number, RegExp]> = [
      [await post('/decode', { payloads: [] }, { Authorization: '' }), 401, /Bearer/],
      [await post('/decode', { payloads: [] }, { Authorization: 'Bearer open' }), 401, /Bearer/],
      [await post('/decode', { payloads: [] }, { 'X-Namespace': 'prod' }), 403, /namespace "prod" is not served/],
      [await post('/decode', 'not json'), 400, /must be JSON/],
      [
        await post('/decode', { payloads: [toJson(foreign!)] }),
        400,
        /key id "other", which RUNBOOK_CODEC_KEYS does not hold/,
      ],
      [await post('/other', {}), 404, /POST \/encode and POST \/decode/],
      [await post('/prod/decode', { payloads: [] }, { 'X-Namespace': '' }), 403, /namespace "prod" is not served/],
    ];
    for (const [res, status, message] of cases) {
      assert.equal(res.status, status);
      assert.match(((await res.json()) as { message: string }).message, message);
    }
    assert.equal(refusals.length, cases.length);
    assert.equal(refusals.join('\n').includes('sesame'), false, 'the token is never logged');
  });
});

import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { Payload, PayloadCodec } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { UserError } from '../errors';

/** The environment variable that holds the codec's keys: `id1:base64key,id2:base64key`, the first encrypts. */
export const CODEC_KEYS_ENV = 'RUNBOOK_CODEC_KEYS';

/** The payload metadata of an encrypted payload (the layout of Temporal's encryption samples). */
export const ENCRYPTED_ENCODING = 'binary/encrypted';
export const KEY_ID_METADATA = 'encryption-key-id';

const IV_BYTES = 12;
const TAG_BYTES = 16;
const KEY_ID = /^[A-Za-z0-9._-]{1,64}$/;
const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

/** The codec's keys by id; `current` encrypts, every key decrypts the payloads that name it. */
export interface CodecKeys {
  current: string;
  keys: ReadonlyMap<string, Buffer>;
}

/**
 * Parses RUNBOOK_CODEC_KEYS (`id:base64-of-32-bytes`, comma-separated, the first one encrypts); undefined when
 * it is unset or blank (payloads are then stored as they are). A problem names the key id or position, never a
 * key.
 * @throws UserError when an entry is malformed, a key is not 32 bytes, or an id repeats.
 */
export function parseCodecKeys(value: string | undefined): CodecKeys | undefined {
  if (value === undefined || value.trim() === '') return undefined;
  const keys = new Map<string, Buffer>();
  const fix = `set ${CODEC_KEYS_ENV}="id1:<base64 of 32 bytes>,id2:..." (a key: openssl rand -base64 32)`;
  for (const [i, entry] of value.split(',').entries()) {
    const colon = entry.indexOf(':');
    const id = entry.slice(0, Math.max(colon, 0)).trim();
    const encoded = entry.slice(colon + 1).trim();
    if (colon < 0 || !KEY_ID.test(id)) {
      throw new UserError(
        `${CODEC_KEYS_ENV}: entry ${i + 1} must be <key id>:<base64 key>, the id made of letters, digits, '.', '_' or '-' (at most 64)`,
        fix,
      );
    }
    const key = Buffer.from(encoded, 'base64');
    if (key.length !== 32 || key.toString('base64').replace(/=+$/, '') !== encoded.replace(/=+$/, '')) {
      throw new UserError(
        `${CODEC_KEYS_ENV}: the key of "${id}" must be 32 bytes in base64 (AES-256), got ${key.length} bytes`,
        fix,
      );
    }
    if (keys.has(id)) throw new UserError(`${CODEC_KEYS_ENV}: key id "${id}" appears twice`, fix);
    keys.set(id, key);
  }
  const current = [...keys.keys()][0];
  if (current === undefined) throw new UserError(`${CODEC_KEYS_ENV} holds no key`, fix);
  return { current, keys };
}

/** Thrown when a payload cannot be decrypted; the message says which key id it needs. */
export class PayloadDecryptionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PayloadDecryptionError';
  }
}

/**
 * AES-256-GCM payload encryption with the key id in the payload's metadata, so that keys rotate: new payloads
 * use the current key, older ones are decrypted with the key they name. Payloads that are not encrypted (written
 * before the codec was turned on, or sent as plain JSON from the Web UI or the `temporal` CLI) pass through.
 * The encrypted data is IV (12 bytes) || ciphertext || tag (16 bytes) of the whole original Payload message.
 */
export class AesGcmCodec implements PayloadCodec {
  constructor(private readonly codecKeys: CodecKeys) {}

  /** The key ids this codec holds, the encrypting one first (safe to print). */
  get keyIds(): string[] {
    return [this.codecKeys.current, ...[...this.codecKeys.keys.keys()].filter((id) => id !== this.codecKeys.current)];
  }

  async encode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((p) => this.encryptOne(p));
  }

  async decode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((p) => this.decryptOne(p));
  }

  private encryptOne(payload: Payload): Payload {
    const id = this.codecKeys.current;
    const key = this.codecKeys.keys.get(id)!;
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', key, iv);
    const plain = temporal.api.common.v1.Payload.encode(payload).finish();
    const data = Buffer.concat([iv, cipher.update(plain), cipher.final(), cipher.getAuthTag()]);
    return { metadata: { encoding: utf8.encode(ENCRYPTED_ENCODING), [KEY_ID_METADATA]: utf8.encode(id) }, data };
  }

  private decryptOne(payload: Payload): Payload {
    const encoding = payload.metadata?.encoding;
    if (!encoding || fromUtf8.decode(encoding) !== ENCRYPTED_ENCODING) return payload;
    const rawId = payload.metadata?.[KEY_ID_METADATA];
    const id = rawId ? fromUtf8.decode(rawId) : '';
    const key = this.codecKeys.keys.get(id);
    if (!key) {
      throw new PayloadDecryptionError(
        `a payload is encrypted with key id "${id || '(none)'}", which ${CODEC_KEYS_ENV} does not hold ` +
          `(it holds: ${this.keyIds.join(', ')}); add that key to the end of ${CODEC_KEYS_ENV}`,
      );
    }
    const data = payload.data ?? new Uint8Array();
    if (data.length < IV_BYTES + TAG_BYTES)
      throw new PayloadDecryptionError(`a payload of key id "${id}" is truncated`);
    const decipher = createDecipheriv('aes-256-gcm', key, data.subarray(0, IV_BYTES));
    decipher.setAuthTag(data.subarray(data.length - TAG_BYTES));
    let plain: Buffer;
    try {
      plain = Buffer.concat([decipher.update(data.subarray(IV_BYTES, data.length - TAG_BYTES)), decipher.final()]);
    } catch {
      throw new PayloadDecryptionError(
        `a payload of key id "${id}" does not decrypt with that key: the key under this id in ${CODEC_KEYS_ENV} is not the one that encrypted it, or the payload was altered`,
      );
    }
    return temporal.api.common.v1.Payload.decode(plain);
  }
}

/** The codec that RUNBOOK_CODEC_KEYS describes, or undefined when it is unset (encryption off). */
export function codecFromEnv(env: NodeJS.ProcessEnv): AesGcmCodec | undefined {
  const keys = parseCodecKeys(env[CODEC_KEYS_ENV]);
  return keys ? new AesGcmCodec(keys) : undefined;
}

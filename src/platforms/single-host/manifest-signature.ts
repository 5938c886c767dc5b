/**
 * Snapshot manifests signed with a key only the worker holds (HMAC-SHA256): a dump replaced on disk together with a
 * manifest rewritten to match it carries no valid signature, and is refused before any restore.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { ManifestSignature, SnapshotManifest } from '../types';

const ALGORITHM = 'HMAC-SHA256';

/** The key's id: the first 16 hex digits of its sha256, so that a manifest says which key signed it. */
export const keyIdOf = (key: Buffer) => createHash('sha256').update(key).digest('hex').slice(0, 16);

/** JSON with sorted keys: the same bytes for the same manifest, whatever the order its fields were written in. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

function macOf(manifest: SnapshotManifest, key: Buffer): string {
  const { signature: _ignored, ...signed } = manifest;
  return createHmac('sha256', key).update(canonical(signed)).digest('hex');
}

/** The manifest with its signature (any earlier one replaced). */
export function signManifest(manifest: SnapshotManifest, key: Buffer): SnapshotManifest {
  const signature: ManifestSignature = { algorithm: ALGORITHM, keyId: keyIdOf(key), mac: macOf(manifest, key) };
  return { ...manifest, signature };
}

/** Whether the manifest was signed with `key` and is unchanged since; the reason in words when not. */
export function checkManifestSignature(
  manifest: SnapshotManifest,
  key: Buffer,
): { ok: true } | { ok: false; reason: string } {
  const sig = manifest.signature;
  if (!sig) return { ok: false, reason: 'its manifest is not signed (taken before manifests were signed, or forged)' };
  if (sig.algorithm !== ALGORITHM) return { ok: false, reason: `its manifest is signed with ${sig.algorithm}` };
  if (sig.keyId !== keyIdOf(key)) {
    return {
      ok: false,
      reason: `its manifest is signed with key ${sig.keyId}, not with this worker's key ${keyIdOf(key)}`,
    };
  }
  const want = Buffer.from(macOf(manifest, key), 'hex');
  const got = Buffer.from(typeof sig.mac === 'string' ? sig.mac : '', 'hex');
  if (got.length !== want.length || !timingSafeEqual(got, want)) {
    return { ok: false, reason: 'its manifest was changed after it was signed' };
  }
  return { ok: true };
}

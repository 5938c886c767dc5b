/**
 * The SSH signature format of `ssh-keygen -Y sign` (SSHSIG, openssh PROTOCOL.sshsig) and the allowed_signers file of
 * `ssh-keygen -Y verify` (as git uses for commit signing), verified with node's crypto: ed25519, ECDSA (nistp256,
 * nistp384, nistp521), and their FIDO hardware-token forms (sk-ssh-ed25519@openssh.com,
 * sk-ecdsa-sha2-nistp256@openssh.com; user presence required). RSA keys are refused: a team enrols an ed25519 key.
 * Pure functions over strings; no files, no processes.
 */
import { createHash, createPublicKey, verify, type KeyObject } from 'node:crypto';

/** One key of an allowed_signers file and the principals (identities) it may sign as. */
export interface AllowedSigner {
  /** The identities the key signs as, lowercased (`alice`, `alice@example.com`). */
  principals: string[];
  keyType: string;
  /** The key's wire blob (what the fingerprint is taken of). */
  blob: Buffer;
  /** `SHA256:<base64>` as `ssh-keygen -l` prints it. */
  fingerprint: string;
}

/** A signature that verifies: who signed (every principal of the key) and the key's fingerprint. */
export type Verified = { ok: true; principals: string[]; fingerprint: string } | { ok: false; reason: string };

const MAGIC = Buffer.from('SSHSIG');
const ARMOR = /^-----BEGIN SSH SIGNATURE-----\s*([A-Za-z0-9+/=\s]+?)\s*-----END SSH SIGNATURE-----\s*$/;
const SUPPORTED = new Set([
  'ssh-ed25519',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'sk-ssh-ed25519@openssh.com',
  'sk-ecdsa-sha2-nistp256@openssh.com',
]);
const CURVES: Record<string, { crv: string; hash: string; size: number }> = {
  nistp256: { crv: 'P-256', hash: 'sha256', size: 32 },
  nistp384: { crv: 'P-384', hash: 'sha384', size: 48 },
  nistp521: { crv: 'P-521', hash: 'sha512', size: 66 },
};

/** `SHA256:<unpadded base64 of the blob's sha256>`, the fingerprint `ssh-keygen -l` shows. */
export function fingerprintOf(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/**
 * Parses allowed_signers text: one key a line, `principals [options] keytype base64 [comment]`, `#` comments and blank
 * lines ignored, principals comma-separated (lowercased). Options (`namespaces=`, `valid-before=`) are refused rather
 * than ignored: a key that should be limited must not silently be unlimited.
 * @throws Error naming the line and what is wrong with it.
 */
export function parseAllowedSigners(text: string, where = 'allowed_signers'): AllowedSigner[] {
  const signers: AllowedSigner[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const fail = (what: string): never => {
      throw new Error(`${where} line ${i + 1}: ${what}; write "<name>[,<name>...] ssh-ed25519 AAAA... [comment]"`);
    };
    const [principalField, ...rest] = line.split(/\s+/);
    let typeAt = 0;
    if (rest[0] !== undefined && !SUPPORTED.has(rest[0]) && !/^(ssh-|ecdsa-|sk-)/.test(rest[0])) {
      fail(`options (${rest[0]}) are not supported`);
    }
    const keyType = rest[typeAt] ?? fail('no key after the principals');
    if (!SUPPORTED.has(keyType)) fail(`key type ${keyType} is not supported (use ssh-ed25519 or ecdsa-sha2-nistp256)`);
    typeAt += 1;
    const b64 = rest[typeAt] ?? fail('no base64 key after the key type');
    const blob = Buffer.from(b64, 'base64');
    let parsedType: string;
    try {
      parsedType = new Reader(blob).string().toString();
      publicKeyOf(blob);
    } catch (err) {
      return fail(`the key cannot be read (${(err as Error).message})`);
    }
    if (parsedType !== keyType) fail(`the key says it is ${parsedType}, the line says ${keyType}`);
    const principals = (principalField ?? '')
      .split(',')
      .map((p) => p.trim().toLowerCase())
      .filter((p) => p !== '');
    if (principals.length === 0 || principals.some((p) => !/^[a-z0-9][a-z0-9._@-]{0,63}$/.test(p)))
      fail(`principals must be names of letters, digits and . _ @ - (got ${JSON.stringify(principalField)})`);
    signers.push({ principals, keyType, blob, fingerprint: fingerprintOf(blob) });
  });
  return signers;
}

/**
 * Verifies an armored SSHSIG (`ssh-keygen -Y sign -n <namespace>` output) of `message` against `signers`: the
 * signature's namespace must be `namespace`, its key one of the signers', and the signature valid. Never throws.
 */
export function verifySshSignature(
  message: string | Buffer,
  armored: string,
  namespace: string,
  signers: readonly AllowedSigner[],
): Verified {
  const no = (reason: string): Verified => ({ ok: false, reason });
  const m = ARMOR.exec(armored.trim());
  if (!m?.[1])
    return no('the signature is not an SSH signature (-----BEGIN SSH SIGNATURE----- ... from ssh-keygen -Y sign)');
  let sig: ReturnType<typeof parseSshSig>;
  try {
    sig = parseSshSig(Buffer.from(m[1].replace(/\s+/g, ''), 'base64'));
  } catch (err) {
    return no(`the signature cannot be read (${(err as Error).message})`);
  }
  if (sig.namespace !== namespace)
    return no(`the signature is for namespace "${sig.namespace}", not "${namespace}" (sign with -n ${namespace})`);
  const signer = signers.find((s) => s.blob.equals(sig.publicKey));
  const fingerprint = fingerprintOf(sig.publicKey);
  if (!signer) return no(`key ${fingerprint} is not in the worker's allowed signers`);
  if (sig.hashAlg !== 'sha512' && sig.hashAlg !== 'sha256') return no(`hash ${sig.hashAlg} is not supported`);
  const digest = createHash(sig.hashAlg).update(message).digest();
  const signed = Buffer.concat([
    MAGIC,
    sshString(Buffer.from(sig.namespace)),
    sshString(Buffer.alloc(0)),
    sshString(Buffer.from(sig.hashAlg)),
    sshString(digest),
  ]);
  try {
    if (!checkSignature(sig.publicKey, signed, sig.signature))
      return no(`the signature of key ${fingerprint} is wrong`);
  } catch (err) {
    return no(`the signature of key ${fingerprint} cannot be checked (${(err as Error).message})`);
  }
  return { ok: true, principals: signer.principals, fingerprint };
}

function parseSshSig(buf: Buffer) {
  const r = new Reader(buf);
  if (!r.bytes(6).equals(MAGIC)) throw new Error('no SSHSIG magic');
  const version = r.uint32();
  if (version !== 1) throw new Error(`version ${version}`);
  const publicKey = r.string();
  const namespace = r.string().toString();
  r.string(); // reserved
  const hashAlg = r.string().toString();
  const signature = r.string();
  return { publicKey, namespace, hashAlg, signature };
}

/** The node KeyObject of an SSH public key blob, with what verifying needs. */
function publicKeyOf(blob: Buffer): { type: string; key: KeyObject; curve?: string; application?: Buffer } {
  const r = new Reader(blob);
  const type = r.string().toString();
  if (type === 'ssh-ed25519' || type === 'sk-ssh-ed25519@openssh.com') {
    const x = r.string();
    if (x.length !== 32) throw new Error('an ed25519 key has 32 bytes');
    const key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: x.toString('base64url') }, format: 'jwk' });
    return { type, key, ...(type.startsWith('sk-') ? { application: r.string() } : {}) };
  }
  if (type.startsWith('ecdsa-sha2-') || type === 'sk-ecdsa-sha2-nistp256@openssh.com') {
    const curve = r.string().toString();
    const c = CURVES[curve];
    const q = r.string();
    if (!c || q.length !== 1 + 2 * c.size || q[0] !== 4) throw new Error(`unsupported ECDSA key (${curve})`);
    const jwk = {
      kty: 'EC',
      crv: c.crv,
      x: q.subarray(1, 1 + c.size).toString('base64url'),
      y: q.subarray(1 + c.size).toString('base64url'),
    };
    const key = createPublicKey({ key: jwk, format: 'jwk' });
    return { type, key, curve, ...(type.startsWith('sk-') ? { application: r.string() } : {}) };
  }
  throw new Error(`key type ${type} is not supported`);
}

function checkSignature(publicKey: Buffer, signed: Buffer, sigBlob: Buffer): boolean {
  const pk = publicKeyOf(publicKey);
  const r = new Reader(sigBlob);
  const sigType = r.string().toString();
  const raw = r.string();
  let data = signed;
  if (pk.application) {
    // FIDO keys sign sha256(application) | flags | counter | sha256(data); user presence (flag 0x01) is required.
    const flags = r.bytes(1);
    const counter = r.bytes(4);
    if (((flags[0] ?? 0) & 0x01) === 0) throw new Error('the hardware key did not confirm user presence');
    data = Buffer.concat([
      createHash('sha256').update(pk.application).digest(),
      flags,
      counter,
      createHash('sha256').update(signed).digest(),
    ]);
  }
  const wanted = pk.type.startsWith('sk-ecdsa') ? 'sk-ecdsa-sha2-nistp256@openssh.com' : pk.type;
  if (sigType !== wanted) throw new Error(`a ${sigType} signature from a ${pk.type} key`);
  if (!pk.curve) return verify(null, data, pk.key, raw);
  const c = CURVES[pk.curve] as { hash: string; size: number };
  const rs = new Reader(raw);
  const fixed = (n: Buffer) => {
    const v = n[0] === 0 ? n.subarray(1) : n;
    if (v.length > c.size) throw new Error('an ECDSA signature value is too long');
    return Buffer.concat([Buffer.alloc(c.size - v.length), v]);
  };
  const sig = Buffer.concat([fixed(rs.string()), fixed(rs.string())]);
  return verify(c.hash, data, { key: pk.key, dsaEncoding: 'ieee-p1363' }, sig);
}

function sshString(b: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(b.length);
  return Buffer.concat([len, b]);
}

/** Reads the SSH wire format: uint32 and length-prefixed strings, refusing to read past the end. */
class Reader {
  private at = 0;
  constructor(private readonly buf: Buffer) {}
  bytes(n: number): Buffer {
    if (this.at + n > this.buf.length) throw new Error('truncated');
    const b = this.buf.subarray(this.at, this.at + n);
    this.at += n;
    return b;
  }
  uint32(): number {
    return this.bytes(4).readUInt32BE(0);
  }
  string(): Buffer {
    return this.bytes(this.uint32());
  }
}

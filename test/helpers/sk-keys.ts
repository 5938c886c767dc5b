import { createHash, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';

/**
 * FIDO hardware-token ("sk-") SSH keys without a token: an ordinary ed25519 or P-256 key pair made with node's crypto,
 * written in the wire format of PROTOCOL.u2f, and SSHSIG signatures (PROTOCOL.sshsig) that sign what a token signs:
 * sha256(application) | flags | counter | sha256(signed data). Real `ssh-keygen -Y verify` accepts them (the test
 * checks), so they stand in for a token that nobody can plug into CI.
 */
export interface SkTestKey {
  type: 'sk-ssh-ed25519@openssh.com' | 'sk-ecdsa-sha2-nistp256@openssh.com';
  /** The public key blob (type, key, application). */
  blob: Buffer;
  /** `<principal> <type> <base64>`: a line of allowed_signers. */
  line: (principals: string) => string;
  /** An armored SSHSIG of `message` in `namespace`; `flags` 0x01 is "user present" (the token was touched). */
  sign: (message: string, namespace: string, flags?: number, counter?: number) => string;
}

const str = (b: Buffer | string) => {
  const v = typeof b === 'string' ? Buffer.from(b) : b;
  const len = Buffer.alloc(4);
  len.writeUInt32BE(v.length);
  return Buffer.concat([len, v]);
};
const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};
/** An SSH mpint of a big-endian unsigned integer. */
const mpint = (v: Buffer) => {
  let i = 0;
  while (i < v.length - 1 && v[i] === 0) i += 1;
  const trimmed = v.subarray(i);
  return str((trimmed[0] ?? 0) & 0x80 ? Buffer.concat([Buffer.alloc(1), trimmed]) : trimmed);
};

/** Makes a token-less sk key of `type` for the application `ssh:` (what `ssh-keygen -t ed25519-sk` uses). */
export function skTestKey(type: SkTestKey['type']): SkTestKey {
  const application = 'ssh:';
  let blob: Buffer;
  let privateKey: KeyObject;
  if (type === 'sk-ssh-ed25519@openssh.com') {
    const pair = generateKeyPairSync('ed25519');
    privateKey = pair.privateKey;
    const x = Buffer.from(pair.publicKey.export({ format: 'jwk' }).x as string, 'base64url');
    blob = Buffer.concat([str(type), str(x), str(application)]);
  } else {
    const pair = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    privateKey = pair.privateKey;
    const jwk = pair.publicKey.export({ format: 'jwk' });
    const q = Buffer.concat([
      Buffer.from([4]),
      Buffer.from(jwk.x as string, 'base64url'),
      Buffer.from(jwk.y as string, 'base64url'),
    ]);
    blob = Buffer.concat([str(type), str('nistp256'), str(q), str(application)]);
  }
  const signWith = (message: string, namespace: string, flags = 0x01, counter = 1): string => {
    const hashed = createHash('sha512').update(message).digest();
    const signedData = Buffer.concat([Buffer.from('SSHSIG'), str(namespace), str(''), str('sha512'), str(hashed)]);
    const tokenData = Buffer.concat([
      createHash('sha256').update(application).digest(),
      Buffer.from([flags]),
      u32(counter),
      createHash('sha256').update(signedData).digest(),
    ]);
    let raw: Buffer;
    if (type === 'sk-ssh-ed25519@openssh.com') raw = sign(null, tokenData, privateKey);
    else {
      const rs = sign('sha256', tokenData, { key: privateKey, dsaEncoding: 'ieee-p1363' });
      raw = Buffer.concat([mpint(rs.subarray(0, 32)), mpint(rs.subarray(32))]);
    }
    const signature = Buffer.concat([str(type), str(raw), Buffer.from([flags]), u32(counter)]);
    const sshsig = Buffer.concat([
      Buffer.from('SSHSIG'),
      u32(1),
      str(blob),
      str(namespace),
      str(''),
      str('sha512'),
      str(signature),
    ]);
    const lines = sshsig.toString('base64').match(/.{1,70}/g) ?? [];
    return ['-----BEGIN SSH SIGNATURE-----', ...lines, '-----END SSH SIGNATURE-----'].join('\n');
  };
  return { type, blob, line: (p) => `${p} ${type} ${blob.toString('base64')}`, sign: signWith };
}

import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** A self-signed certificate and its key (PEM files), its own trust anchor. */
export interface SelfSigned {
  cert: string;
  key: string;
}

/**
 * A self-signed certificate (EC P-256, 2 days) for the given names, made with openssl in `dir`: `DNS:` for host names,
 * `IP:` for addresses. Trusting it (as `ca`) is what trusting a private CA looks like to a client.
 */
export async function selfSignedCert(dir: string, name: string, sans: string[]): Promise<SelfSigned> {
  const file = (ext: string) => path.join(dir, `${name}.${ext}`);
  const altNames = sans.map((s) => (/^[\d.]+$/.test(s) ? `IP:${s}` : `DNS:${s}`)).join(',');
  writeFileSync(
    file('cnf'),
    `[req]\ndistinguished_name=dn\nx509_extensions=ext\nprompt=no\n[dn]\nCN=${sans[0] ?? name}\n` +
      `[ext]\nsubjectAltName=${altNames}\nbasicConstraints=critical,CA:TRUE\nkeyUsage=digitalSignature,keyCertSign\n` +
      'extendedKeyUsage=serverAuth\n',
  );
  await run(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      file('key'),
      '-out',
      file('pem'),
      '-days',
      '2',
      '-config',
      file('cnf'),
    ],
    { timeout: 60_000 },
  );
  return { cert: file('pem'), key: file('key') };
}

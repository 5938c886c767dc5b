import { X509Certificate, createPrivateKey } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import { ServiceError } from '@temporalio/client';
import { NamespaceNotFoundError } from '@temporalio/common';
import { UserError, errorMessage } from './errors';
import type { Check } from './stack/component';
import { connectClient, describeConnection, type TemporalConnection } from './temporal-connection';

/** What went wrong with a connection, in words a person can act on. */
export interface ConnectionProblem {
  problem: string;
  fix: string;
}

const CERT_FIX =
  'set TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH (or client_cert_path and client_key_path in the profile)';
const CA_FIX =
  'set TEMPORAL_TLS_SERVER_CA_CERT_PATH (or server_ca_cert_path in the profile) to the CA that signed the server certificate; leave it unset for a publicly trusted server (Temporal Cloud)';

/**
 * Names the cause of a connection or call failure from the error texts of the client (grpc-js), the worker's
 * native connection (tonic/rustls) and node:tls. Undefined when the error says nothing specific (grpc-js says
 * only "Failed to connect before the deadline": {@link probeTransport} finds out then).
 */
export function explainError(err: unknown, c: TemporalConnection): ConnectionProblem | undefined {
  const text = `${errorMessage(err)} ${(err as { code?: unknown }).code ?? ''} ${errorMessage((err as { cause?: unknown }).cause ?? '')}`;
  const grpcCode = (err as { code?: unknown }).code;
  const has = (re: RegExp) => re.test(text);
  if (has(/Namespace .* (is )?not found|namespace not found/i) || (grpcCode === 5 && has(/namespace/i)))
    return {
      problem: `namespace ${c.namespace} does not exist on ${c.address} (wrong namespace)`,
      fix: 'set TEMPORAL_NAMESPACE (or namespace in the profile) to your namespace, e.g. <name>.<account-id> on Temporal Cloud',
    };
  if (has(/key values mismatch|KEY_VALUES_MISMATCH/i))
    return {
      problem: `the client key ${c.files.clientKey ?? ''} is not the key of the client certificate ${c.files.clientCert ?? ''}`,
      fix: 'point TEMPORAL_TLS_CLIENT_KEY_PATH (or client_key_path) at the key the certificate was made for',
    };
  const sentCert = c.tls !== false && !!c.tls.clientCertPair;
  if (has(/CertificateRequired|ALERT_CERTIFICATE_REQUIRED/i) || (!sentCert && has(/ALERT_HANDSHAKE_FAILURE/i)))
    return {
      problem: `the server at ${c.address} requires a client certificate (mTLS) and none was sent`,
      fix: CERT_FIX,
    };
  if (has(/fatal alert: CertificateExpired|ALERT_CERTIFICATE_EXPIRED/i))
    return {
      problem: `the server refused the client certificate ${c.files.clientCert ?? ''}: it has expired`,
      fix: 'renew the client certificate (runbook doctor shows its dates) and point the profile at the new one',
    };
  if (has(/fatal alert: UnknownCA|ALERT_UNKNOWN_CA/i))
    return {
      problem: `the server refused the client certificate ${c.files.clientCert ?? ''}: it is not issued by a CA the server trusts for clients`,
      fix: "use a client certificate issued by the server's client CA",
    };
  if (has(/fatal alert: (BadCertificate|CertificateUnknown|UnsupportedCertificate)|ALERT_BAD_CERTIFICATE/i))
    return {
      problem: `the server refused the client certificate ${c.files.clientCert ?? ''}`,
      fix: 'check that it is a client-auth certificate from the CA the server trusts, and that the key is its key',
    };
  if (has(/UnknownIssuer|UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT|UNABLE_TO_GET_ISSUER_CERT/i))
    return {
      problem: `the server's certificate at ${c.address} is issued by an unknown authority: not by ${
        c.files.serverCa ? `the CA in ${c.files.serverCa}` : 'a CA this machine trusts'
      } (wrong CA)`,
      fix: CA_FIX,
    };
  if (has(/NotValidForName|ERR_TLS_CERT_ALTNAME_INVALID|Hostname\/IP does not match/i)) {
    const name = c.serverName ?? c.address.replace(/:\d+$/, '');
    return {
      problem: `the server's certificate is not valid for the name ${name} (wrong server name)`,
      fix: 'set TEMPORAL_TLS_SERVER_NAME (or server_name in the profile) to a name the certificate holds, or connect by that name',
    };
  }
  if (has(/InvalidCertificate\(Expired\)|CERT_HAS_EXPIRED/i))
    return {
      problem: `the server's certificate at ${c.address} has expired`,
      fix: "renew the server's certificate (its operator), or check this machine's clock",
    };
  if (has(/InvalidCertificate\(NotValidYet\)|CERT_NOT_YET_VALID/i))
    return { problem: `the server's certificate at ${c.address} is not valid yet`, fix: "check this machine's clock" };
  if (has(/InvalidContentType|WRONG_VERSION_NUMBER|packet length too long/i))
    return {
      problem: `the server at ${c.address} does not speak TLS`,
      fix: 'connect without TLS: TEMPORAL_TLS=false, or remove the tls settings of the profile',
    };
  if (has(/ECONNREFUSED|Connection refused/))
    return { problem: `nothing listens at ${c.address}`, fix: 'check TEMPORAL_ADDRESS (or the profile address)' };
  if (has(/ENOTFOUND|EAI_AGAIN|failed to lookup address|dns error/))
    return {
      problem: `the host of ${c.address} cannot be resolved`,
      fix: 'check TEMPORAL_ADDRESS (or the profile address)',
    };
  if (grpcCode === 16 || has(/UNAUTHENTICATED|Request unauthorized|invalid API key|\bUnauthenticated\b/i))
    return {
      problem: `the server at ${c.address} refused the credentials${c.apiKey ? ' (the API key)' : ''}: unauthenticated`,
      fix: c.apiKey
        ? 'check TEMPORAL_API_KEY (or api_key in the profile): it may be wrong, expired or revoked'
        : 'this server needs credentials: an API key (TEMPORAL_API_KEY) or a client certificate',
    };
  if (grpcCode === 7 || has(/PERMISSION_DENIED|PermissionDenied/i))
    return {
      problem: `the credentials may not use namespace ${c.namespace} on ${c.address} (permission denied)`,
      fix: 'ask for access to the namespace, or set TEMPORAL_NAMESPACE to one you may use',
    };
  return undefined;
}

/**
 * {@link explainError} for the failure of a call on a connected client, only when the call itself failed (a gRPC
 * status, a namespace that does not exist): a workflow's failure whose cause mentions ECONNREFUSED or an expired
 * certificate is about the service it deployed, not about the connection to Temporal.
 */
export function explainCallError(err: unknown, c: TemporalConnection): ConnectionProblem | undefined {
  const fromCall =
    err instanceof ServiceError ||
    err instanceof NamespaceNotFoundError ||
    typeof (err as { code?: unknown }).code === 'number';
  return fromCall ? explainError(err, c) : undefined;
}

const H2_PREFACE = Buffer.concat([
  Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'),
  Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]), // an empty SETTINGS frame
]);

/**
 * Opens the transport as the clients do (TCP, then TLS with the connection's CA, client certificate and server
 * name, ALPN h2) and sends the HTTP/2 preface; resolves with the problem, or undefined when the server answered
 * in HTTP/2. Needed because grpc-js reports every TLS failure as a connect timeout.
 */
export function probeTransport(c: TemporalConnection, timeoutMs = 4_000): Promise<ConnectionProblem | undefined> {
  const [host = '127.0.0.1', portText = '7233'] = splitAddress(c.address);
  const port = Number(portText);
  return new Promise((resolve) => {
    let settled = false;
    const done = (problem: ConnectionProblem | undefined) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(problem);
    };
    const onError = (err: Error) =>
      done(
        explainError(err, c) ?? { problem: `cannot connect to ${c.address}: ${err.message}`, fix: 'check the address' },
      );
    let socket: net.Socket;
    try {
      socket =
        c.tls === false
          ? net.connect({ host, port })
          : tls.connect({
              host,
              port,
              ...(c.serverName || !net.isIP(host) ? { servername: c.serverName ?? host } : {}),
              ALPNProtocols: ['h2'],
              ...(c.tls.serverRootCACertificate ? { ca: Buffer.from(c.tls.serverRootCACertificate) } : {}),
              ...(c.tls.clientCertPair
                ? { cert: Buffer.from(c.tls.clientCertPair.crt), key: Buffer.from(c.tls.clientCertPair.key) }
                : {}),
            });
    } catch (err) {
      // bad TLS material (a key that does not match its certificate) fails before any connection
      resolve(explainError(err, c) ?? { problem: errorMessage(err), fix: 'check the TLS files of the connection' });
      return;
    }
    const timer = setTimeout(
      () =>
        done({
          problem: `${c.address} accepted the connection but did not answer in HTTP/2 within ${timeoutMs / 1000} s`,
          fix: c.tls === false ? 'if the server needs TLS: TEMPORAL_TLS=true' : 'check the address and port',
        }),
      timeoutMs,
    );
    socket.once('error', onError);
    socket.once(c.tls === false ? 'connect' : 'secureConnect', () => socket.write(H2_PREFACE));
    socket.once('data', (data: Buffer) => {
      if (data.length >= 9 && data[3] === 4) return done(undefined); // the server's SETTINGS frame
      done(
        c.tls === false && data[0] === 0x15
          ? {
              problem: `the server at ${c.address} speaks TLS and this connection is plain`,
              fix: 'TEMPORAL_TLS=true, plus the CA and client certificate it needs',
            }
          : { problem: `${c.address} does not answer as a gRPC server`, fix: 'check the address and port' },
      );
    });
    socket.once('close', () =>
      done({
        problem: `the server at ${c.address} closed the connection${c.tls === false ? ' (does it need TLS?)' : ''}`,
        fix: c.tls === false ? 'TEMPORAL_TLS=true, plus the CA and client certificate it needs' : 'check the address',
      }),
    );
  });
}

function splitAddress(address: string): [string, string] {
  const i = address.lastIndexOf(':');
  return i < 0 ? [address, '7233'] : [address.slice(0, i).replace(/^\[|\]$/g, ''), address.slice(i + 1)];
}

/**
 * The UserError for a failed connection or first call: the cause in words (probing the transport when the
 * client's error does not say), the mode and where the settings came from, and the fix.
 */
export async function connectionFailure(err: unknown, c: TemporalConnection): Promise<UserError> {
  const known = explainError(err, c) ?? (await probeTransport(c).catch(() => undefined));
  return new UserError(
    `cannot connect to Temporal: ${known?.problem ?? errorMessage(err)}\n  connection: ${describeConnection(c)}`,
    known?.fix ?? 'runbook doctor checks the connection step by step',
  );
}

const day = 24 * 3600 * 1000;

/** The client certificate's validity and its match with the key, checked locally. */
function clientCertificateCheck(c: TemporalConnection): Check | undefined {
  const pair = c.tls === false ? undefined : c.tls.clientCertPair;
  if (!pair) return undefined;
  const file = c.files.clientCert ?? 'the client certificate';
  try {
    const cert = new X509Certificate(Buffer.from(pair.crt));
    const validTo = new Date(cert.validTo);
    const validFrom = new Date(cert.validFrom);
    const now = Date.now();
    if (validTo.getTime() < now)
      return fail(
        'client certificate',
        `${file} expired on ${validTo.toISOString()} (${cert.subject.replace(/\n/g, ', ')})`,
        'renew it and point the profile (or TEMPORAL_TLS_CLIENT_CERT_PATH) at the new one',
      );
    if (validFrom.getTime() > now)
      return fail(
        'client certificate',
        `${file} is valid only from ${validFrom.toISOString()}`,
        "check this machine's clock",
      );
    if (!cert.checkPrivateKey(createPrivateKey(Buffer.from(pair.key))))
      return fail(
        'client certificate',
        `the key ${c.files.clientKey ?? ''} is not the key of ${file}`,
        'point TEMPORAL_TLS_CLIENT_KEY_PATH at the key the certificate was made for',
      );
    const days = Math.floor((validTo.getTime() - now) / day);
    return pass(
      'client certificate',
      `${file}: ${cert.subject.replace(/\n/g, ', ')}, issued by ${cert.issuer.replace(/\n/g, ', ')}, valid until ${validTo.toISOString()} (${days} day${days === 1 ? '' : 's'})`,
    );
  } catch (err) {
    return fail('client certificate', `cannot read ${file}: ${errorMessage(err)}`, 'it must be a PEM certificate');
  }
}

function serverCaCheck(c: TemporalConnection): Check | undefined {
  const ca = c.tls === false ? undefined : c.tls.serverRootCACertificate;
  if (!ca) return undefined;
  const file = c.files.serverCa ?? 'the server CA';
  try {
    const cert = new X509Certificate(Buffer.from(ca));
    if (new Date(cert.validTo).getTime() < Date.now())
      return fail('server CA', `${file} expired on ${new Date(cert.validTo).toISOString()}`, CA_FIX);
    return pass(
      'server CA',
      `${file}: ${cert.subject.replace(/\n/g, ', ')}${cert.ca ? '' : ' (not a CA certificate)'}`,
    );
  } catch (err) {
    return fail('server CA', `cannot read ${file}: ${errorMessage(err)}`, CA_FIX);
  }
}

const pass = (check: string, detail: string): Check => ({ component: 'temporal', check, ok: true, detail });
const fail = (check: string, detail: string, fix: string): Check => ({
  component: 'temporal',
  check,
  ok: false,
  detail,
  fix,
});

/**
 * `runbook doctor`'s checks of the connection the CLI uses: the mode and where it came from, the certificates,
 * the transport (TLS handshake), the frontend (GetSystemInfo) and the namespace. Never prints the API key.
 * `frontend: false` leaves out the gRPC checks (the embedded stack's checks do them).
 */
export async function connectionChecks(c: TemporalConnection, opts: { frontend?: boolean } = {}): Promise<Check[]> {
  const checks: Check[] = [pass('connection', describeConnection(c))];
  for (const check of [clientCertificateCheck(c), serverCaCheck(c)]) if (check) checks.push(check);
  if (opts.frontend === false) return checks;
  const transport = await probeTransport(c);
  if (transport) {
    checks.push(fail(c.tls === false ? 'transport' : 'tls handshake', transport.problem, transport.fix));
    return checks;
  }
  checks.push(pass(c.tls === false ? 'transport' : 'tls handshake', `${c.address} answers HTTP/2`));
  let client: Awaited<ReturnType<typeof connectClient>> | undefined;
  try {
    client = await connectClient(c, 5_000);
    const info = await client.connection.workflowService.getSystemInfo({});
    checks.push(pass('frontend', `${c.address} (server ${info.serverVersion ?? '?'})`));
  } catch (err) {
    const known = explainError(err, c);
    checks.push(
      fail('frontend', known?.problem ?? errorMessage(err), known?.fix ?? 'check the address and credentials'),
    );
    await client?.connection.close();
    return checks;
  }
  try {
    await client.connection.workflowService.describeNamespace({ namespace: c.namespace });
    checks.push(pass('namespace', c.namespace));
  } catch (err) {
    const known = explainError(err, c);
    checks.push(fail('namespace', known?.problem ?? errorMessage(err), known?.fix ?? 'check TEMPORAL_NAMESPACE'));
  } finally {
    await client.connection.close();
  }
  return checks;
}

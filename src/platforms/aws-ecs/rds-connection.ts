/**
 * `runbook doctor`'s real connection to the service's RDS database: what the worker's URL gets from the server (TLS,
 * the certificate, the password), said in words with what to do. RDS for PostgreSQL 15 and later refuses
 * unencrypted connections, and node-postgres verifies the server's certificate, which RDS's own CA signs.
 */
import pg from 'pg';
import { scrubSecrets } from '../../shared/redact';

/** The RDS CA bundle of every region (global), and of one region: what sslrootcert should name. */
export const RDS_GLOBAL_BUNDLE_URL = 'https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem';
export const rdsRegionBundleUrl = (region: string) =>
  `https://truststore.pki.rds.amazonaws.com/${region}/${region}-bundle.pem`;

/** What a connection attempt found: connected (with or without TLS), or the problem and what to do about it. */
export type RdsConnectionOutcome =
  | { ok: true; detail: string; tls: boolean }
  | {
      ok: false;
      problem: 'untrusted' | 'hostname' | 'auth' | 'no-tls' | 'tls-required' | 'timeout' | 'unreachable' | 'other';
      message: string;
      fix: string;
    };

/** The URL without its password, for messages: user, host, port, database and the TLS settings. */
export function describeDatabaseUrl(url: string): string {
  try {
    const u = new URL(url);
    u.password = '';
    const params = [...u.searchParams.keys()];
    for (const key of params) if (!['sslmode', 'sslrootcert'].includes(key)) u.searchParams.delete(key);
    return u.toString();
  } catch {
    return 'the URL (not a valid URL)';
  }
}

const UNTRUSTED = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'CERT_UNTRUSTED',
]);

/**
 * Opens one connection with the URL as node-postgres reads it (sslmode, sslrootcert), runs `select 1`, and closes
 * it. Never throws: a failure comes back as the problem in words (the certificate not trusted: which CA bundle to
 * download; the server's name not in its certificate; the password refused; TLS refused or required; no answer
 * within `timeoutMs`) with the fix. Messages hold the URL without its password, and the server's words scrubbed.
 */
export async function checkRdsConnection(
  url: string,
  opts: { region: string; timeoutMs?: number },
): Promise<RdsConnectionOutcome> {
  const where = describeDatabaseUrl(url);
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const params = (() => {
    try {
      return new URL(url).searchParams;
    } catch {
      return new URLSearchParams();
    }
  })();
  const sslmode = params.get('sslmode');
  const rootcert = params.get('sslrootcert');
  const bundle = `download the RDS CA bundle (${rdsRegionBundleUrl(opts.region)}, or ${RDS_GLOBAL_BUNDLE_URL} for every region) onto the worker and name it in the URL: ?sslmode=verify-full&sslrootcert=/path/to/the-bundle.pem`;
  let client: pg.Client;
  try {
    client = new pg.Client({ connectionString: url, connectionTimeoutMillis: timeoutMs });
  } catch (err) {
    // pg reads sslrootcert when it parses the URL
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ENOENT' || e.code === 'EACCES') {
      return {
        ok: false,
        problem: 'untrusted',
        message: `${where}: the CA bundle ${rootcert ?? '?'} cannot be read (${e.code})`,
        fix: bundle,
      };
    }
    return { ok: false, problem: 'other', message: `${where}: ${scrubSecrets(e.message)}`, fix: 'correct the URL' };
  }
  client.on('error', () => {});
  try {
    await client.connect();
    const res = await client.query<{ tls: boolean; version: string }>(
      "select coalesce((select ssl from pg_stat_ssl where pid = pg_backend_pid()), false) as tls, current_setting('server_version') as version",
    );
    const tls = res.rows[0]?.tls ?? false;
    const version = res.rows[0]?.version ?? '?';
    return tls
      ? { ok: true, tls, detail: `${where}: connected over TLS, certificate verified (PostgreSQL ${version})` }
      : {
          ok: true,
          tls,
          detail:
            `${where}: connected WITHOUT TLS (PostgreSQL ${version}); RDS for PostgreSQL 15 and later refuses that: ` +
            'add ?sslmode=verify-full&sslrootcert=<the RDS CA bundle>',
        };
  } catch (err) {
    return failure(err as Error & { code?: string }, where, { sslmode, rootcert, bundle, timeoutMs });
  } finally {
    await client.end().catch(() => {});
  }
}

function failure(
  e: Error & { code?: string },
  where: string,
  ctx: { sslmode: string | null; rootcert: string | null; bundle: string; timeoutMs: number },
): RdsConnectionOutcome {
  const said = scrubSecrets(e.message);
  if (e.code && UNTRUSTED.has(e.code)) {
    return {
      ok: false,
      problem: 'untrusted',
      message:
        `${where}: the server's certificate is not trusted (${e.code}): ` +
        (ctx.rootcert
          ? `the CA bundle ${ctx.rootcert} did not sign it`
          : 'no CA bundle is named (sslrootcert), and RDS certificates are signed by the RDS CA, which Node does not trust'),
      fix: ctx.bundle,
    };
  }
  if (e.code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    return {
      ok: false,
      problem: 'hostname',
      message: `${where}: the server's certificate is trusted but not issued for the URL's host (${said})`,
      fix:
        'use the endpoint RDS names (DescribeDBInstances Endpoint.Address, or the cluster endpoint), not an IP ' +
        'address or a CNAME of your own; or, behind a CNAME, sslmode=verify-ca (the CA checked, the name not)',
    };
  }
  if (e.code === '28P01') {
    return {
      ok: false,
      problem: 'auth',
      message: `${where}: the server refused the password (password authentication failed for the URL's user)`,
      fix: 'correct the user and password in the URL (the worker environment variable), or the role on the database',
    };
  }
  if (e.code === '28000') {
    const plain = /no encryption/i.test(e.message);
    return {
      ok: false,
      problem: plain ? 'tls-required' : 'auth',
      message: `${where}: the server refused the connection: ${said}`,
      fix: plain
        ? 'RDS requires TLS (rds.force_ssl): add ?sslmode=verify-full&sslrootcert=<the RDS CA bundle> to the URL'
        : "check the user, the database and the server's pg_hba rules (RDS: the parameter group)",
    };
  }
  if (/does not support SSL/i.test(e.message)) {
    return {
      ok: false,
      problem: 'no-tls',
      message: `${where}: the server does not accept TLS, and the URL asks for it (sslmode=${ctx.sslmode ?? '?'})`,
      fix: 'point the URL at the RDS endpoint (RDS always offers TLS), or turn ssl on in the server',
    };
  }
  if (/timeout expired|connection timeout/i.test(e.message) || e.code === 'ETIMEDOUT') {
    return {
      ok: false,
      problem: 'timeout',
      message: `${where}: no answer within ${ctx.timeoutMs} ms`,
      fix:
        "let the worker reach the database's port: the instance's security groups (inbound 5432 from the worker), " +
        'the subnets and routes, and whether the instance is publicly accessible when the worker is outside its VPC',
    };
  }
  if (e.code === 'ECONNREFUSED' || e.code === 'ENOTFOUND' || e.code === 'EHOSTUNREACH' || e.code === 'EAI_AGAIN') {
    return {
      ok: false,
      problem: 'unreachable',
      message: `${where}: ${e.code === 'ENOTFOUND' ? 'the host name does not resolve' : 'nothing answers there'} (${e.code})`,
      fix: "check the URL's host and port against the instance's endpoint (runbook doctor's rds check shows it)",
    };
  }
  return {
    ok: false,
    problem: 'other',
    message: `${where}: ${e.code ? `${e.code}: ` : ''}${said}`,
    fix: 'see the PostgreSQL error above',
  };
}

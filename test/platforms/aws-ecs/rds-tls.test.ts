import assert from 'node:assert/strict';
import { chmodSync, chownSync, copyFileSync, statSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { DescribeServicesCommand } from '@aws-sdk/client-ecs';
import { DescribeListenersCommand, DescribeRulesCommand } from '@aws-sdk/client-elastic-load-balancing-v2';
import { DescribeDBInstancesCommand } from '@aws-sdk/client-rds';
import { GetCallerIdentityCommand } from '@aws-sdk/client-sts';
import { mockClient } from 'aws-sdk-client-mock';
import pg from 'pg';
import { awsClients } from '../../../src/platforms/aws-ecs/context';
import { awsDoctorChecks } from '../../../src/platforms/aws-ecs/doctor';
import { checkRdsConnection, type RdsConnectionOutcome } from '../../../src/platforms/aws-ecs/rds-connection';
import { postgresPaths } from '../../../src/stack/postgres';
import { waitFor } from '../../../src/system/processes';
import { startPgFixture, type PgFixture } from '../../helpers/pg-fixture';
import { selfSignedCert, type SelfSigned } from '../../helpers/self-signed';
import { testSpec } from './fixture';

/**
 * Issue 13 item 8: `runbook doctor` opens a real connection with the worker's database URL and says what fails. A
 * private PostgreSQL with ssl on and a self-signed certificate for 127.0.0.1 (made by openssl) stands in for RDS and
 * its CA: trusted with the certificate as sslrootcert, not trusted without it or with another CA, a host name that
 * the certificate does not name, a wrong password, a server that never answers.
 */
describe('doctor: a real connection to the database, TLS and the RDS CA bundle (issue 13 item 8)', () => {
  let fixture: PgFixture;
  let server: SelfSigned;
  let otherCa: SelfSigned;
  let plainUrl: string;
  let password: string;
  const withParams = (url: string, params: Record<string, string>, host?: string) => {
    const u = new URL(url);
    for (const [k, v] of Object.entries(params)) u.searchParams.set(k, v);
    if (host) u.hostname = host;
    return u.toString();
  };
  const failed = (o: RdsConnectionOutcome) => {
    assert.equal(o.ok, false, o.ok ? o.detail : '');
    return o as Extract<RdsConnectionOutcome, { ok: false }>;
  };

  before(async function () {
    this.timeout(120_000);
    fixture = await startPgFixture();
    plainUrl = fixture.urlFor('postgres');
    password = decodeURIComponent(new URL(plainUrl).password);
    server = await selfSignedCert(fixture.scratch, 'server', ['127.0.0.1']);
    otherCa = await selfSignedCert(fixture.scratch, 'other-ca', ['other.example.test']);
    // The server's key and certificate in its data folder, owned by the user the server runs as, key 0600.
    const data = postgresPaths(fixture.settings.home).data;
    const owner = statSync(data);
    for (const [from, name] of [
      [server.cert, 'server.crt'],
      [server.key, 'server.key'],
    ] as const) {
      const to = path.join(data, name);
      copyFileSync(from, to);
      chownSync(to, owner.uid, owner.gid);
      chmodSync(to, 0o600);
    }
    await fixture.query('postgres', `ALTER SYSTEM SET ssl_cert_file = 'server.crt'`);
    await fixture.query('postgres', `ALTER SYSTEM SET ssl_key_file = 'server.key'`);
    await fixture.query('postgres', 'ALTER SYSTEM SET ssl = on');
    await fixture.query('postgres', 'SELECT pg_reload_conf()');
    // the reload is asynchronous: new connections get TLS once the postmaster has read the settings
    const noVerify = withParams(plainUrl, { sslmode: 'no-verify' });
    await waitFor(
      'PostgreSQL to accept TLS',
      async () => {
        const client = new pg.Client({ connectionString: noVerify });
        client.on('error', () => {});
        try {
          await client.connect();
          return true;
        } catch {
          return false;
        } finally {
          await client.end().catch(() => {});
        }
      },
      { timeoutMs: 30_000 },
    );
  });

  after(async function () {
    this.timeout(60_000);
    await fixture?.stop();
  });

  it('connects over TLS with the certificate verified against the CA bundle named by sslrootcert', async () => {
    const url = withParams(plainUrl, { sslmode: 'verify-full', sslrootcert: server.cert });
    const o = await checkRdsConnection(url, { region: 'eu-west-1' });
    assert.equal(o.ok, true, o.ok ? '' : `${o.message}; ${o.fix}`);
    assert.equal(o.tls, true);
    assert.match(o.detail, /connected over TLS, certificate verified \(PostgreSQL 15/);
    assert.ok(!o.detail.includes(password), 'no password in the words');
  });

  it('says the certificate is not trusted without a CA bundle, and names the RDS bundle to download', async () => {
    const o = failed(
      await checkRdsConnection(withParams(plainUrl, { sslmode: 'verify-full' }), { region: 'eu-west-1' }),
    );
    assert.equal(o.problem, 'untrusted');
    assert.match(o.message, /certificate is not trusted \((DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN)\)/);
    assert.match(o.message, /no CA bundle is named \(sslrootcert\)/);
    assert.match(o.fix, /https:\/\/truststore\.pki\.rds\.amazonaws\.com\/eu-west-1\/eu-west-1-bundle\.pem/);
    assert.match(o.fix, /https:\/\/truststore\.pki\.rds\.amazonaws\.com\/global\/global-bundle\.pem/);
    assert.match(o.fix, /sslmode=verify-full&sslrootcert=/);
  });

  it('says which bundle did not sign the certificate, and that a named bundle cannot be read', async () => {
    const other = failed(
      await checkRdsConnection(withParams(plainUrl, { sslmode: 'verify-full', sslrootcert: otherCa.cert }), {
        region: 'eu-west-1',
      }),
    );
    assert.equal(other.problem, 'untrusted');
    assert.match(other.message, new RegExp(`the CA bundle ${otherCa.cert.replace(/[.]/g, '\\.')} did not sign it`));
    const missing = failed(
      await checkRdsConnection(withParams(plainUrl, { sslmode: 'verify-full', sslrootcert: '/nonexistent/rds.pem' }), {
        region: 'eu-west-1',
      }),
    );
    assert.equal(missing.problem, 'untrusted');
    assert.match(missing.message, /the CA bundle \/nonexistent\/rds\.pem cannot be read \(ENOENT\)/);
  });

  it("says the certificate is trusted but not issued for the URL's host", async () => {
    const url = withParams(plainUrl, { sslmode: 'verify-full', sslrootcert: server.cert }, 'localhost');
    const o = failed(await checkRdsConnection(url, { region: 'eu-west-1' }));
    assert.equal(o.problem, 'hostname');
    assert.match(
      o.message,
      /postgres:\/\/\w+@localhost:\d+\/postgres\?.*: the server's certificate is trusted but not issued/,
    );
    assert.match(o.fix, /the endpoint RDS names/);
  });

  it('says the password was refused, without printing it', async () => {
    const wrong = new URL(withParams(plainUrl, { sslmode: 'verify-full', sslrootcert: server.cert }));
    wrong.password = 'not-the-Passw0rd';
    const o = failed(await checkRdsConnection(wrong.toString(), { region: 'eu-west-1' }));
    assert.equal(o.problem, 'auth');
    assert.match(o.message, /refused the password/);
    for (const secret of ['not-the-Passw0rd', password]) {
      assert.ok(!`${o.message} ${o.fix}`.includes(secret), 'no password in the words');
    }
  });

  it('says a server that never answers timed out, and a plain connection passes with a warning', async () => {
    const silent = net.createServer(() => {}); // accepts, says nothing
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const sockets: net.Socket[] = [];
    silent.on('connection', (s) => sockets.push(s));
    try {
      const { port } = silent.address() as net.AddressInfo;
      const url = `postgres://runbook:secret@127.0.0.1:${port}/shop?sslmode=verify-full`;
      const o = failed(await checkRdsConnection(url, { region: 'eu-west-1', timeoutMs: 500 }));
      assert.equal(o.problem, 'timeout');
      assert.equal(o.message, `postgres://runbook@127.0.0.1:${port}/shop?sslmode=verify-full: no answer within 500 ms`);
      assert.match(o.fix, /security groups/);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
    const plain = await checkRdsConnection(plainUrl, { region: 'eu-west-1' });
    assert.equal(plain.ok, true);
    assert.equal(plain.tls, false);
    assert.match(plain.detail, /connected WITHOUT TLS .* RDS for PostgreSQL 15 and later refuses that/);
  });

  it('runbook doctor runs the check with the URL from the worker environment (check "database connection")', async () => {
    const clients = awsClients('us-east-1');
    const sts = mockClient(clients.sts);
    const ecs = mockClient(clients.ecs);
    const elb = mockClient(clients.elb);
    const rds = mockClient(clients.rds);
    try {
      sts.on(GetCallerIdentityCommand).resolves({ Arn: 'arn:aws:iam::123456789012:role/w', Account: '123456789012' });
      ecs.on(DescribeServicesCommand).resolves({ services: [] });
      elb.on(DescribeRulesCommand).resolves({ Rules: [{ Actions: [{ Type: 'forward' }] }] });
      elb.on(DescribeListenersCommand).resolves({ Listeners: [{ Port: 9000 }] });
      rds.on(DescribeDBInstancesCommand).resolves({ DBInstances: [{ DBInstanceStatus: 'available' }] });
      const spec = testSpec({
        rds: {
          instance: 'shop-db',
          database: 'postgres',
          urlEnv: 'SHOP_DB_URL',
          drill: { securityGroups: [] },
          pollIntervalMs: 1,
        },
      });
      const at = { service: 'shop', environment: 'prod' };
      const connection = async (url: string) =>
        (await awsDoctorChecks(spec, at, { SHOP_DB_URL: url })).find((c) => c.check === 'database connection');
      const good = await connection(withParams(plainUrl, { sslmode: 'verify-full', sslrootcert: server.cert }));
      assert.equal(good?.ok, true, good?.detail);
      const bad = await connection(withParams(plainUrl, { sslmode: 'verify-full' }));
      assert.equal(bad?.ok, false);
      assert.match(bad?.detail ?? '', /not trusted/);
      assert.match(bad?.fix ?? '', /us-east-1-bundle\.pem/);
      assert.equal(await connection(''), undefined, 'no URL: no connection check (the "database url" check fails)');
    } finally {
      for (const m of [sts, ecs, elb, rds]) m.restore();
    }
  });
});

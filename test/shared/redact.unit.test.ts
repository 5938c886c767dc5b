import assert from 'node:assert/strict';
import { MASK, createScrubber, scrubSecrets, secretValuesOf } from '../../src/shared/redact';

describe('scrubSecrets: the one scrubber of what is shown', () => {
  const cases: Array<[string, string, string]> = [
    ['a DSN keeps its user and host', 'postgres://app:s3cret@db:5432/shop', 'postgres://app:***@db:5432/shop'],
    ['postgresql:// and an encoded password', 'postgresql://u:p%40ss@h/x', 'postgresql://u:***@h/x'],
    [
      'a raw @ in the password is masked whole',
      'DATABASE_URL=postgres://u:p@ss@h/x up',
      'DATABASE_URL=postgres://u:***@h/x up',
    ],
    [
      'a URL without a password is left alone',
      'http://127.0.0.1:8233/namespaces/default',
      'http://127.0.0.1:8233/namespaces/default',
    ],
    ['libpq key=value', 'host=db password=hunter2 user=app', 'host=db password=*** user=app'],
    ['PGPASSWORD=', 'PGPASSWORD=hunter2 pg_dump', 'PGPASSWORD=*** pg_dump'],
    ['secret= token= api_key=', 'secret=a token=b api_key=c apikey=d', 'secret=*** token=*** api_key=*** apikey=***'],
    ['AWS variables', 'AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG', 'AWS_SECRET_ACCESS_KEY=***'],
    ['an AWS access key id anywhere', 'key AKIAIOSFODNN7EXAMPLE used', 'key AKIA*** used'],
    ['JSON keeps its quotes', '{"password":"x y","user":"app"}', '{"password":"***","user":"app"}'],
    ['YAML-ish key: value', 'client_secret: abc123', 'client_secret: ***'],
    ['a query parameter', 'https://h/x?user=a&password=b&c=d', 'https://h/x?user=a&password=***&c=d'],
    ['an Authorization header keeps its scheme', 'Authorization: Bearer eyJhbGciOi.x.y', 'Authorization: Bearer ***'],
    ['Basic credentials', 'authorization=Basic dXNlcjpwYXNz', 'authorization=Basic ***'],
    ['a bare bearer token', 'sent bearer abcdefgh12345678', 'sent bearer ***'],
    [
      'ordinary words stay',
      'password authentication failed for user "app"',
      'password authentication failed for user "app"',
    ],
  ];
  for (const [what, input, expected] of cases) {
    it(what, () => assert.equal(scrubSecrets(input), expected));
  }

  it('a PEM private key goes whole', () => {
    const pem = '-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nabc\n-----END RSA PRIVATE KEY-----';
    assert.equal(
      scrubSecrets(`key:\n${pem}\nend`),
      'key:\n-----BEGIN RSA PRIVATE KEY----- *** -----END RSA PRIVATE KEY-----\nend',
    );
  });

  it('the worker also masks the secret values it holds, printed bare or URL-encoded', () => {
    const env = {
      DATABASE_URL: 'postgres://runbook:canary-pw-Zq9%2Fx7@127.0.0.1:5432/runbook',
      AWS_SECRET_ACCESS_KEY: 'fake/secret+key0123456789abcdef',
      HOME: '/root',
      SHORT_TOKEN: 'abc',
    };
    const known = secretValuesOf(env);
    assert.ok(known.includes('canary-pw-Zq9/x7') && known.includes('canary-pw-Zq9%2Fx7'));
    assert.ok(known.includes(env.AWS_SECRET_ACCESS_KEY));
    assert.ok(!known.includes('/root'));
    const scrub = createScrubber(known);
    assert.equal(
      scrub('printed canary-pw-Zq9/x7 and fake/secret+key0123456789abcdef and canary-pw-Zq9%2Fx7 and abc'),
      `printed ${MASK} and ${MASK} and ${MASK} and abc`,
      'values shorter than 12 characters are left to the patterns (they would mask ordinary words)',
    );
  });
});

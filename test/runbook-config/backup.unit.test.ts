import assert from 'node:assert/strict';
import path from 'node:path';
import { RunbookConfigError, parseRunbookConfig, resolveService } from '../../src/runbook-config';

const SOURCE = path.resolve('/srv/runbooks/runbook.yaml');

/** A valid single-host service with a database, and `backup` (YAML, indented for the service block). */
const shop = (backup: string, extra = '') => `version: 1
services:
  shop:
    platform: single-host
    listen: { port: 18080 }
    release:
      command: [node, server.js]
      cwd: shop/releases/{version}
      env: { PORT: '{port}' }
      portRange: [18100, 18199]
    health:
      liveness: { path: /health }
      readiness: { path: /health/ready }
    traffic:
      steps: [{ weight: 100 }]
    analysis: { max5xxRate: 2%, maxP95LatencyMs: 500 }
    database: { name: shop${extra} }
    environments: { staging: {} }
${backup}`;

function problemsOf(yaml: string): string[] {
  try {
    parseRunbookConfig(yaml, SOURCE);
  } catch (err) {
    assert.ok(err instanceof RunbookConfigError, String(err));
    return err.problems;
  }
  assert.fail('expected the config to be rejected');
}

describe('runbook config: backup', () => {
  it('resolves schedule, retention and verify (default true)', () => {
    const config = parseRunbookConfig(
      shop(`    backup:
      schedule: { full: '0 2 * * 0', diff: '0 2 * * 1-6' }
      retention: { full: 4, days: 30 }`),
      SOURCE,
    );
    assert.deepEqual(resolveService(config, 'shop', 'staging').backup, {
      schedule: { full: '0 2 * * 0', diff: '0 2 * * 1-6' },
      retention: { full: 4, days: 30 },
      verify: true,
    });
  });

  it('refuses a retention that keeps nothing or says neither full nor days, naming the field and the fix', () => {
    assert.deepEqual(problemsOf(shop(`    backup: { retention: { diff: 3 } }`)), [
      'services.shop.backup.retention: says neither full: (how many full backups) nor days: (how long); give one, e.g. full: 2 or days: 30',
    ]);
    const zero = problemsOf(shop(`    backup: { retention: { full: 0 } }`));
    assert.equal(zero.length, 1);
    assert.match(zero[0]!, /^services\.shop\.backup\.retention\.full: must keep at least 1 .*got 0/);
    const text = problemsOf(shop(`    backup: { retention: { days: thirty } }`));
    assert.match(
      text[0]!,
      /^services\.shop\.backup\.retention\.days: must be a whole number of days to keep, got "thirty"/,
    );
  });

  it('refuses a schedule that is not cron, or names no type', () => {
    const bad = problemsOf(shop(`    backup: { retention: { full: 1 }, schedule: { full: 'daily' } }`));
    assert.match(bad[0]!, /^services\.shop\.backup\.schedule\.full: must be a 5-field cron expression/);
    const none = problemsOf(shop(`    backup: { retention: { full: 1 }, schedule: {} }`));
    assert.match(none[0]!, /^services\.shop\.backup\.schedule: names no backup type/);
  });

  it('refuses backup with database.urlEnv (an external server) and without a database', () => {
    const external = problemsOf(shop(`    backup: { retention: { full: 1 } }`, ', urlEnv: SHOP_DB_URL'));
    assert.ok(
      external.some((p) => /^services\.shop\.backup: cannot be used with database\.urlEnv/.test(p)),
      external.join('\n'),
    );
    const noDb = problemsOf(
      shop(`    backup: { retention: { full: 1 } }`).replace('    database: { name: shop }\n', ''),
    );
    assert.ok(
      noDb.some((p) => /^services\.shop\.backup: needs database:/.test(p)),
      noDb.join('\n'),
    );
  });
});

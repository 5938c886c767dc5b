import assert from 'node:assert/strict';
import path from 'node:path';
import { RunbookConfigError, parseRunbookConfig, resolveService } from '../../src/runbook-config';
import { renderCommand, commandRunIdFor } from '../../src/shared/commands';
import { migrationsDirFor, type SingleHostService } from '../../src/shared/service-plan';

const SOURCE = path.resolve('/srv/runbooks/runbook.yaml');

/** A single-host service whose database and smoke blocks the tests replace. */
const config = (blocks: string) => `version: 1
services:
  notes:
    platform: single-host
    listen: { port: 18090 }
    release:
      command: [node, server.js]
      cwd: releases/{version}
      env: { PORT: '{port}' }
      portRange: [18400, 18410]
    health:
      liveness: { path: /health }
      readiness: { path: /health/ready }
${blocks.replace(/^/gm, '    ')}
    traffic: { steps: [{ weight: 100 }] }
    analysis: { max5xxRate: 1%, maxP95LatencyMs: 400 }
    environments: { staging: {} }
`;

const resolved = (blocks: string) =>
  resolveService(parseRunbookConfig(config(blocks), SOURCE), 'notes', 'staging') as SingleHostService;

function problems(blocks: string): string[] {
  try {
    resolved(blocks);
  } catch (err) {
    assert.ok(err instanceof RunbookConfigError, String(err));
    return err.problems;
  }
  assert.fail('expected the config to be rejected');
}

describe('runbook config: the release brings its own steps', () => {
  it('resolves a migrate command with its status command, timeouts defaulted, and the declared compatibility', () => {
    const plan = resolved(
      [
        'database:',
        '  name: notes',
        '  migrate: { command: [npm, run, db:migrate], status: { command: [npm, run, db:status], timeout: 30s } }',
        '  compatibility: breaking',
      ].join('\n'),
    );
    assert.deepEqual(plan.database, {
      name: 'notes',
      migrate: {
        command: ['npm', 'run', 'db:migrate'],
        timeoutMs: 600_000,
        status: { command: ['npm', 'run', 'db:status'], timeoutMs: 30_000 },
      },
      compatibility: 'breaking',
    });
  });

  it('keeps {version} in a migrations folder inside the release, for the worker to fill in', () => {
    const plan = resolved("database: { name: notes, migrations: 'releases/{version}/migrations' }");
    assert.equal(plan.database?.migrationsDir, '/srv/runbooks/releases/{version}/migrations');
    assert.equal(migrationsDirFor(plan.database!, 'v5'), '/srv/runbooks/releases/v5/migrations');
    assert.equal(plan.database?.compatibility, undefined, 'absent unless declared: the digest of older plans stays');
  });

  it('resolves command smoke checks next to HTTP ones, and the drill integrity command', () => {
    const plan = resolved(
      [
        'smoke:',
        '  - { name: items, path: /api/items }',
        "  - { name: script, command: [node, scripts/smoke.js, '{url}'], timeout: 20s }",
        "  - { name: from worker, command: [./check.sh, '{url}', '{version}'], runFrom: worker }",
        'database: { name: notes }',
        'drill: { rtoTarget: 5m, integrityCommand: { command: [node, scripts/integrity.js] } }',
      ].join('\n'),
    );
    assert.deepEqual(plan.smoke, [
      { name: 'items', method: 'GET', path: '/api/items', expectStatus: 200 },
      { name: 'script', command: ['node', 'scripts/smoke.js', '{url}'], timeoutMs: 20_000, runFrom: 'release' },
      { name: 'from worker', command: ['./check.sh', '{url}', '{version}'], timeoutMs: 120_000, runFrom: 'worker' },
    ]);
    assert.deepEqual(plan.drill?.integrityCommand, { command: ['node', 'scripts/integrity.js'], timeoutMs: 600_000 });
  });

  it('names the field and what to write for bad commands', () => {
    assert.deepEqual(
      problems(
        [
          'smoke:',
          "  - { name: script, command: [node, smoke.js, '{port}'], runFrom: laptop }",
          '  - { name: empty, command: [] }',
          'database:',
          '  name: notes',
          '  migrations: ./migrations',
          '  migrate: { command: npm run db:migrate }',
          '  compatibility: sometimes',
          'drill: { rtoTarget: 5m, integrityCommand: { command: [node, "{url}"] } }',
        ].join('\n'),
      ),
      [
        'services.notes.smoke[0].command[2]: unknown placeholder {port}; allowed here: {version}, {url}',
        'services.notes.smoke[0].runFrom: must be release (run from the release being deployed) or worker (on the worker, in runbook.yaml\'s folder), got "laptop"',
        'services.notes.smoke[1].command: must list at least the program to run, e.g. [npx, tsx, scripts/smoke.ts, "{url}"]',
        'services.notes.database.migrate.command: must be a list of arguments (argv, no shell), e.g. [npm, run, db:migrate], got "npm run db:migrate"',
        'services.notes.database.compatibility: must be backward (expand-only: the previous release still works on the new schema) or breaking, got "sometimes"',
        'services.notes.database.migrate: is an alternative to database.migrations: either the release migrates with its own command, or the worker applies a folder of SQL migrations; keep one',
        'services.notes.drill.integrityCommand.command[1]: unknown placeholder {url}; allowed here: {version}',
      ],
    );
  });
});

describe('release commands in workflows', () => {
  it('fills in {version} and {url} in every argument, and names a run after the workflow and step', () => {
    assert.deepEqual(
      renderCommand(['npx', 'tsx', 'smoke.ts', '{url}/api', '--v={version}'], {
        version: 'v2',
        url: 'http://127.0.0.1:18101',
      }),
      ['npx', 'tsx', 'smoke.ts', 'http://127.0.0.1:18101/api', '--v=v2'],
    );
    const id = commandRunIdFor('deploy-shop-production-v2-abc123', 'migrate');
    assert.match(id, /^[a-z0-9][a-z0-9-]{0,63}$/);
    assert.equal(
      id,
      commandRunIdFor('deploy-shop-production-v2-abc123', 'migrate'),
      'the same step names the same run',
    );
    assert.notEqual(id, commandRunIdFor('deploy-shop-production-v2-abc123', 'migrate-status'));
  });
});

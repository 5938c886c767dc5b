import assert from 'node:assert/strict';
import { renderStatus, timelineLines } from '../../src/cli/render';
import type { DeployState, TimelineEntry } from '../../src/shared/deploy';
import { addToTimeline } from '../../src/shared/timeline';

const waiting = (extra: Partial<DeployState> = {}): DeployState => ({
  kind: 'deploy',
  service: 'shop',
  environment: 'staging',
  version: 'v2',
  requestedBy: 'dave',
  phase: 'awaiting-approval',
  step: 'before-start approval',
  weights: { v1: 100 },
  analysis: [],
  gates: [{ gate: 'before-start', status: 'waiting', refused: [], refusedCount: 0 }],
  waitingFor: { gate: 'before-start', approvers: ['alice', 'bob'], sinceMs: 0, timeoutMs: 60_000 },
  timeline: [],
  ...extra,
});
const opts = { workflowId: 'deploy-1', link: 'http://ui/deploy-1', nowMs: 1_000 };

describe('runbook status lines (cli/render)', () => {
  it('refused attempts: the last three kept, and how many there were in all', () => {
    const refused = Array.from({ length: 20 }, (_, i) => ({
      by: `mallory-${i}`,
      atMs: i,
      reason: `mallory-${i} is not an approver`,
      via: 'signal' as const,
    }));
    const lines = renderStatus(
      waiting({ gates: [{ gate: 'before-start', status: 'waiting', refused, refusedCount: 312 }] }),
      opts,
    );
    assert.deepEqual(
      lines.filter((l) => l.startsWith('refused:')),
      [
        'refused: mallory-17 via signal: mallory-17 is not an approver',
        'refused: mallory-18 via signal: mallory-18 is not an approver',
        'refused: mallory-19 via signal: mallory-19 is not an approver',
        'refused: 312 attempts at before-start in all (runbook status --json lists the first 20)',
      ],
    );
  });

  it('a state of before the cap (no refusedCount) shows as before', () => {
    const refused = [{ by: 'mallory', atMs: 0, reason: 'no', via: 'signal' as const }];
    const lines = renderStatus(waiting({ gates: [{ gate: 'before-start', status: 'waiting', refused }] }), opts);
    assert.deepEqual(
      lines.filter((l) => l.startsWith('refused:')),
      ['refused: mallory via signal: no'],
    );
  });

  it('a terminated runbook says so, and that it waits for nobody', () => {
    const lines = renderStatus(waiting(), { ...opts, closedAs: 'TERMINATED' });
    assert.match(
      lines[1] ?? '',
      /^stopped: the workflow is TERMINATED; it ran no rollback .*runbook rollback shop --env staging/,
    );
    assert.ok(!lines.some((l) => l.startsWith('waiting for')));
    assert.ok(renderStatus(waiting(), { ...opts, closedAs: 'RUNNING' }).some((l) => l.startsWith('waiting for')));
  });

  it('timelineLines prints each entry once, and the omission line of a long timeline', () => {
    const timeline: TimelineEntry[] = [];
    for (let i = 0; i < 150; i++) addToTimeline(timeline, { atMs: i * 1000, phase: 'sign-off', message: `m${i}` });
    const first = timelineLines(waiting({ timeline }), 0);
    assert.equal(first.lines.length, 150);
    assert.equal(first.lines[0], '00:00:00 [sign-off] m0');
    for (let i = 150; i < 400; i++) addToTimeline(timeline, { atMs: i * 1000, phase: 'sign-off', message: `m${i}` });
    const next = timelineLines(waiting({ timeline }), first.seen);
    assert.match(next.lines[0] ?? '', /entries omitted here/);
    assert.equal(next.lines.length, 101);
    assert.match(next.lines.at(-1) ?? '', / m399$/);
    assert.deepEqual(timelineLines(waiting({ timeline }), next.seen).lines, []);
  });
});

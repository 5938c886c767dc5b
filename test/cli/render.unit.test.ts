import assert from 'node:assert/strict';
import { timelineLines } from '../../src/cli/render';
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

describe('runbook status lines (cli/render)', () => {
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

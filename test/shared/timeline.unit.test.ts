import assert from 'node:assert/strict';
import type { TimelineEntry } from '../../src/shared/deploy';
import {
  addToTimeline,
  MAX_TIMELINE_MESSAGE,
  TIMELINE_HEAD,
  TIMELINE_TAIL,
  timelineSince,
  timelineTotal,
} from '../../src/shared/timeline';

const entry = (i: number): TimelineEntry => ({ atMs: i, phase: 'sign-off', message: `entry ${i}` });

describe('the capped timeline (shared/timeline)', () => {
  it('keeps every entry up to head + tail', () => {
    const t: TimelineEntry[] = [];
    for (let i = 0; i < TIMELINE_HEAD + TIMELINE_TAIL; i++) addToTimeline(t, entry(i));
    assert.equal(t.length, TIMELINE_HEAD + TIMELINE_TAIL);
    assert.ok(t.every((e, i) => e.message === `entry ${i}` && e.omitted === undefined));
  });

  it('past that, keeps the first and the last entries and one that says how many are omitted', () => {
    const t: TimelineEntry[] = [];
    const n = 10_000;
    for (let i = 0; i < n; i++) addToTimeline(t, entry(i));
    assert.equal(t.length, TIMELINE_HEAD + 1 + TIMELINE_TAIL);
    assert.equal(t[0]?.message, 'entry 0');
    assert.equal(t[TIMELINE_HEAD - 1]?.message, `entry ${TIMELINE_HEAD - 1}`);
    const marker = t[TIMELINE_HEAD];
    assert.equal(marker?.omitted, n - TIMELINE_HEAD - TIMELINE_TAIL);
    assert.match(marker?.message ?? '', new RegExp(`^${n - TIMELINE_HEAD - TIMELINE_TAIL} entries omitted here`));
    assert.equal(marker?.atMs, n - TIMELINE_TAIL - 1, 'the time of the last omitted entry');
    assert.equal(t[TIMELINE_HEAD + 1]?.message, `entry ${n - TIMELINE_TAIL}`);
    assert.equal(t.at(-1)?.message, `entry ${n - 1}`);
    assert.equal(timelineTotal(t), n);
  });

  it('cuts long messages', () => {
    const t: TimelineEntry[] = [];
    addToTimeline(t, { atMs: 0, phase: 'plan', message: 'x'.repeat(1_000_000) });
    assert.equal(t[0]?.message.length, MAX_TIMELINE_MESSAGE);
    assert.ok(t[0]?.message.endsWith('…'));
  });

  it('timelineSince gives a follower every entry once, and the omission line for what it never saw', () => {
    const t: TimelineEntry[] = [];
    let seen = 0;
    const printed: string[] = [];
    const read = () => {
      const since = timelineSince(t, seen);
      printed.push(...since.entries.map((e) => e.message));
      seen = since.seen;
    };
    // A follower that reads after every entry sees every entry exactly once, in order.
    for (let i = 0; i < 500; i++) {
      addToTimeline(t, entry(i));
      read();
    }
    assert.deepEqual(
      printed,
      Array.from({ length: 500 }, (_, i) => `entry ${i}`),
    );
    // A follower that was away for a while sees the omission line, then the entries it can still read.
    for (let i = 500; i < 900; i++) addToTimeline(t, entry(i));
    printed.length = 0;
    read();
    assert.match(printed[0] ?? '', /entries omitted here/);
    assert.equal(printed[1], `entry ${900 - TIMELINE_TAIL}`);
    assert.equal(printed.at(-1), 'entry 899');
    assert.equal(printed.length, 1 + TIMELINE_TAIL);
    // Nothing new: nothing printed.
    printed.length = 0;
    read();
    assert.deepEqual(printed, []);
  });

  it('timelineSince on a timeline of before the cap (no omission entry) slices as before', () => {
    const t = [entry(0), entry(1), entry(2)];
    assert.deepEqual(timelineSince(t, 1), { entries: [entry(1), entry(2)], seen: 3 });
  });
});

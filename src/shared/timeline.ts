import type { TimelineEntry } from './deploy';

/**
 * The timeline of a runbook stays bounded however long it waits and whatever it is sent: the first TIMELINE_HEAD
 * entries (the plan and the first steps) and the last TIMELINE_TAIL are kept; the ones in between are dropped,
 * and one entry (with `omitted`) in their place says how many. A message is cut to MAX_TIMELINE_MESSAGE characters.
 * Workflow-safe: the workflows add entries, the CLI reads them.
 */
export const TIMELINE_HEAD = 100;
export const TIMELINE_TAIL = 100;
export const MAX_TIMELINE_MESSAGE = 4_000;

/** Adds `entry` to `timeline`, dropping the oldest entry after the head when the timeline is full. */
export function addToTimeline(timeline: TimelineEntry[], entry: TimelineEntry): void {
  const { atMs, phase } = entry;
  const message =
    entry.message.length > MAX_TIMELINE_MESSAGE
      ? `${entry.message.slice(0, MAX_TIMELINE_MESSAGE - 1)}…`
      : entry.message;
  timeline.push({ atMs, phase, message });
  const marker = timeline[TIMELINE_HEAD];
  if (marker?.omitted === undefined) {
    if (timeline.length <= TIMELINE_HEAD + TIMELINE_TAIL) return;
    const [dropped] = timeline.splice(TIMELINE_HEAD, 1);
    timeline.splice(TIMELINE_HEAD, 0, omittedEntry(1, dropped ?? entry));
    return;
  }
  if (timeline.length <= TIMELINE_HEAD + 1 + TIMELINE_TAIL) return;
  const [dropped] = timeline.splice(TIMELINE_HEAD + 1, 1);
  Object.assign(marker, omittedEntry(marker.omitted + 1, dropped ?? entry));
}

function omittedEntry(omitted: number, last: TimelineEntry): TimelineEntry {
  return {
    atMs: last.atMs,
    phase: last.phase,
    message: `${omitted} ${omitted === 1 ? 'entry' : 'entries'} omitted here (a timeline keeps its first ${TIMELINE_HEAD} and its last ${TIMELINE_TAIL})`,
    omitted,
  };
}

/** How many entries were ever added to `timeline`, the omitted ones included. */
export function timelineTotal(timeline: readonly TimelineEntry[]): number {
  const marker = timeline.find((e) => e.omitted !== undefined);
  return timeline.length + (marker ? (marker.omitted ?? 1) - 1 : 0);
}

/**
 * The entries added after the first `seen` of all that were ever added (see timelineTotal), for a reader that
 * prints a timeline as it grows: the omission entry stands for dropped ones it never saw. Returns the new `seen`.
 */
export function timelineSince(
  timeline: readonly TimelineEntry[],
  seen: number,
): { entries: TimelineEntry[]; seen: number } {
  const markerAt = timeline.findIndex((e) => e.omitted !== undefined);
  if (markerAt < 0) return { entries: timeline.slice(seen), seen: Math.max(seen, timeline.length) };
  const omitted = timeline[markerAt]?.omitted ?? 1;
  const entries = timeline.filter((_, i) => {
    // The position among all entries ever added of the last entry that this one stands for.
    const last = i < markerAt ? i : i - 1 + omitted;
    return last >= seen;
  });
  return { entries, seen: Math.max(seen, timeline.length - 1 + omitted) };
}

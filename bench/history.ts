import { defaultPayloadConverter } from '@temporalio/common';
import type { temporal } from '@temporalio/proto';

type History = temporal.api.history.v1.IHistory;
type Timestamp = temporal.api.history.v1.IHistoryEvent['eventTime'];
type LongLike = number | { toNumber(): number } | null | undefined;

const toNumber = (v: LongLike): number => (v == null ? NaN : typeof v === 'number' ? v : v.toNumber());

/** An event's time in epoch milliseconds (sub-millisecond precision kept). */
function eventMs(ts: Timestamp): number {
  if (!ts) return NaN;
  return toNumber(ts.seconds as LongLike) * 1000 + (ts.nanos ?? 0) / 1e6;
}

/** One activity (its last attempt) or one timer, as the workflow history records it. */
export interface Step {
  kind: 'activity' | 'timer';
  /** The activity type, or `timer`. */
  name: string;
  /** Activity: ActivityTaskScheduled; timer: TimerStarted. */
  scheduledMs: number;
  /** Activity: ActivityTaskStarted of the last attempt; timer: TimerStarted. */
  startedMs: number;
  /** ActivityTaskCompleted/Failed/TimedOut/Canceled, or TimerFired/Canceled. */
  endedMs: number;
  outcome: 'completed' | 'failed' | 'timed-out' | 'canceled' | 'fired';
  attempt: number;
  /** The activity's decoded arguments. */
  input: unknown[];
}

export interface HistoryTimeline {
  startMs: number;
  endMs: number;
  steps: Step[];
  /** WorkflowTaskScheduled -> WorkflowTaskCompleted of each workflow task. */
  workflowTasks: Array<{ scheduledMs: number; completedMs: number }>;
}

/** Reads the activities, timers and workflow tasks of a closed workflow's history (from `handle.fetchHistory()`). */
export function timelineOf(history: History): HistoryTimeline {
  const events = history.events ?? [];
  const steps = new Map<number, Step>();
  const timers = new Map<string, Step>();
  const wfTasks = new Map<number, number>();
  const workflowTasks: HistoryTimeline['workflowTasks'] = [];
  let startMs = NaN;
  let endMs = NaN;
  for (const e of events) {
    const at = eventMs(e.eventTime);
    const id = toNumber(e.eventId as LongLike);
    if (e.workflowExecutionStartedEventAttributes) startMs = at;
    if (
      e.workflowExecutionCompletedEventAttributes ||
      e.workflowExecutionFailedEventAttributes ||
      e.workflowExecutionCanceledEventAttributes ||
      e.workflowExecutionTerminatedEventAttributes ||
      e.workflowExecutionTimedOutEventAttributes
    ) {
      endMs = at;
    }
    if (e.workflowTaskScheduledEventAttributes) wfTasks.set(id, at);
    const wtc = e.workflowTaskCompletedEventAttributes;
    if (wtc) {
      const scheduledMs = wfTasks.get(toNumber(wtc.scheduledEventId as LongLike));
      if (scheduledMs !== undefined) workflowTasks.push({ scheduledMs, completedMs: at });
    }
    const sched = e.activityTaskScheduledEventAttributes;
    if (sched) {
      steps.set(id, {
        kind: 'activity',
        name: sched.activityType?.name ?? '?',
        scheduledMs: at,
        startedMs: NaN,
        endedMs: NaN,
        outcome: 'completed',
        attempt: 0,
        input: (sched.input?.payloads ?? []).map((p) => defaultPayloadConverter.fromPayload(p)),
      });
    }
    const started = e.activityTaskStartedEventAttributes;
    if (started) {
      const s = steps.get(toNumber(started.scheduledEventId as LongLike));
      if (s) {
        s.startedMs = at;
        s.attempt = started.attempt ?? 1;
      }
    }
    const ended: Array<[Step['outcome'], { scheduledEventId?: LongLike } | null | undefined]> = [
      ['completed', e.activityTaskCompletedEventAttributes as { scheduledEventId?: LongLike } | null],
      ['failed', e.activityTaskFailedEventAttributes as { scheduledEventId?: LongLike } | null],
      ['timed-out', e.activityTaskTimedOutEventAttributes as { scheduledEventId?: LongLike } | null],
      ['canceled', e.activityTaskCanceledEventAttributes as { scheduledEventId?: LongLike } | null],
    ];
    for (const [outcome, attrs] of ended) {
      if (!attrs) continue;
      const s = steps.get(toNumber(attrs.scheduledEventId));
      if (s) {
        s.endedMs = at;
        s.outcome = outcome;
        // A cancelled activity that never started has no Started event.
        if (Number.isNaN(s.startedMs)) s.startedMs = at;
      }
    }
    const ts = e.timerStartedEventAttributes;
    if (ts?.timerId) {
      timers.set(ts.timerId, {
        kind: 'timer',
        name: 'timer',
        scheduledMs: at,
        startedMs: at,
        endedMs: NaN,
        outcome: 'fired',
        attempt: 1,
        input: [],
      });
    }
    const tf = e.timerFiredEventAttributes ?? e.timerCanceledEventAttributes;
    if (tf?.timerId) {
      const t = timers.get(tf.timerId);
      if (t) {
        t.endedMs = at;
        t.outcome = e.timerFiredEventAttributes ? 'fired' : 'canceled';
      }
    }
  }
  const all = [...steps.values(), ...timers.values()].sort((a, b) => a.scheduledMs - b.scheduledMs);
  return { startMs, endMs, steps: all, workflowTasks };
}

/** Total length of the union of intervals (so that overlapping steps are not counted twice). */
function unionMs(spans: Array<[number, number]>): number {
  const sorted = spans.filter(([a, b]) => b > a).sort((x, y) => x[0] - y[0]);
  let total = 0;
  let end = -Infinity;
  for (const [a, b] of sorted) {
    if (b <= end) continue;
    total += b - Math.max(a, end);
    end = b;
  }
  return total;
}

export interface OrchestrationOverhead {
  workflowMs: number;
  /** Sum of ActivityTaskStarted -> end over every activity (its last attempt). */
  inActivitiesMs: number;
  /** Sum of TimerStarted -> TimerFired. */
  inTimersMs: number;
  /** Union of the two (equal to their sum when no step overlaps another). */
  busyMs: number;
  activities: number;
  timers: number;
  steps: number;
  /** workflowMs - busyMs: the time the workflow spent between steps. */
  overheadMs: number;
  perStepMs: number;
  /** Part of the overhead: ActivityTaskScheduled -> ActivityTaskStarted, summed (the task-queue dispatch). */
  dispatchMs: number;
  /**
   * Part of the overhead: from the end of one step (or the workflow's start) to the scheduling of the next, i.e. the
   * workflow task that decides the next step; `gaps` has their count, median, p95 and max.
   */
  betweenStepsMs: number;
  gaps: { count: number; medianMs: number; p95Ms: number; maxMs: number };
  /** WorkflowTaskScheduled -> WorkflowTaskCompleted, summed (may overlap activities that run meanwhile). */
  workflowTaskMs: number;
  workflowTasks: number;
  byActivity: Record<string, { count: number; insideMs: number; dispatchMs: number }>;
}

/**
 * Activities that run beside the sequence of steps for a whole traffic step (the router's cut-off watch) rather than
 * as one of them: left out of the overhead (the workflow does not wait for them, and the last one may never end in the
 * history).
 */
const BESIDE_THE_STEPS = new Set(['watchCutoff']);

/** (workflow duration - time inside activities - time in timers) / number of activity+timer steps. */
export function orchestrationOverhead(timeline: HistoryTimeline): OrchestrationOverhead {
  const t = { ...timeline, steps: timeline.steps.filter((s) => !BESIDE_THE_STEPS.has(s.name)) };
  const activities = t.steps.filter((s) => s.kind === 'activity');
  const timers = t.steps.filter((s) => s.kind === 'timer');
  const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
  const workflowMs = t.endMs - t.startMs;
  const busyMs = unionMs(t.steps.map((s) => [s.startedMs, s.endedMs]));
  const steps = t.steps.length;
  const byActivity: OrchestrationOverhead['byActivity'] = {};
  for (const a of activities) {
    const row = (byActivity[a.name] ??= { count: 0, insideMs: 0, dispatchMs: 0 });
    row.count++;
    row.insideMs += a.endedMs - a.startedMs;
    row.dispatchMs += a.startedMs - a.scheduledMs;
  }
  const gaps: number[] = [];
  let lastEnd = t.startMs;
  for (const s of t.steps) {
    gaps.push(Math.max(0, s.scheduledMs - lastEnd));
    lastEnd = Math.max(lastEnd, s.endedMs);
  }
  gaps.push(Math.max(0, t.endMs - lastEnd));
  const sorted = [...gaps].sort((a, b) => a - b);
  const rank = (p: number) => sorted[Math.max(0, Math.ceil(p * sorted.length) - 1)] ?? NaN;
  return {
    workflowMs,
    inActivitiesMs: sum(activities.map((a) => a.endedMs - a.startedMs)),
    inTimersMs: sum(timers.map((s) => s.endedMs - s.startedMs)),
    busyMs,
    activities: activities.length,
    timers: timers.length,
    steps,
    overheadMs: workflowMs - busyMs,
    perStepMs: steps > 0 ? (workflowMs - busyMs) / steps : NaN,
    dispatchMs: sum(activities.map((a) => a.startedMs - a.scheduledMs)),
    betweenStepsMs: sum(gaps),
    gaps: { count: gaps.length, medianMs: rank(0.5), p95Ms: rank(0.95), maxMs: sorted.at(-1) ?? NaN },
    workflowTaskMs: sum(t.workflowTasks.map((w) => w.completedMs - w.scheduledMs)),
    workflowTasks: t.workflowTasks.length,
    byActivity,
  };
}

/** The setTraffic activities of a deploy, with the split each one asked for (percent by releaseId). */
export function trafficChanges(t: HistoryTimeline): Array<Step & { percent: Record<string, number> }> {
  return t.steps
    .filter((s) => s.kind === 'activity' && s.name === 'setTraffic' && s.outcome === 'completed')
    .map((s) => ({ ...s, percent: (s.input[1] ?? {}) as Record<string, number> }));
}

export interface RollbackTiming {
  /** Completion of the first setTraffic that gave the candidate weight (the fault's onset). */
  faultOnsetMs: number;
  candidateWeight: number;
  /** Completion of the first later setTraffic that put the stable release back at 100. */
  stableBackMs: number;
  /** stableBackMs - faultOnsetMs. */
  rollbackMs: number;
}

/** The time from the traffic shift that put the candidate in service to 100% back on the stable release. */
export function rollbackTiming(t: HistoryTimeline, candidateId: string, stableId: string): RollbackTiming | undefined {
  const changes = trafficChanges(t);
  const onset = changes.find((c) => (c.percent[candidateId] ?? 0) > 0);
  if (!onset) return undefined;
  const back = changes.find((c) => c.endedMs > onset.endedMs && c.percent[stableId] === 100);
  if (!back) return undefined;
  return {
    faultOnsetMs: onset.endedMs,
    candidateWeight: onset.percent[candidateId] ?? 0,
    stableBackMs: back.endedMs,
    rollbackMs: back.endedMs - onset.endedMs,
  };
}

/** The steps that ended in (fromMs, toMs], with their times relative to `fromMs` (how a rollback spent its time). */
export function stepsBetween(t: HistoryTimeline, fromMs: number, toMs: number) {
  const rel = (x: number) => Math.round((x - fromMs) * 10) / 10;
  return t.steps
    .filter((s) => s.endedMs > fromMs && s.endedMs <= toMs)
    .map((s) => ({
      step: s.name,
      scheduledMs: rel(s.scheduledMs),
      startedMs: rel(s.startedMs),
      endedMs: rel(s.endedMs),
      outcome: s.outcome,
    }));
}

/** The step (activity or timer) that was under way at `atMs`, or the gap between two steps. */
export function stepAt(t: HistoryTimeline, atMs: number): string {
  if (atMs < t.startMs) return 'before the deploy';
  if (atMs > t.endMs) return 'after the deploy';
  const steps = t.steps.filter((s) => !BESIDE_THE_STEPS.has(s.name));
  const running = steps.filter((s) => s.scheduledMs <= atMs && atMs <= s.endedMs);
  if (running.length > 0) return running.map((s) => s.name).join('+');
  const before = steps.filter((s) => s.endedMs < atMs).at(-1);
  return `between steps (after ${before?.name ?? 'the start'})`;
}

/**
 * The release's own commands as workflows see them: placeholders filled in, the name of one run, and how a run ended
 * in words. Workflow-safe.
 */
import { resourceName } from './ids';

/** What these helpers read of a run's result (the platform port's CommandRunEnd). */
export interface CommandRunEnd {
  exitCode: number | null;
  timedOut: boolean;
  stoppedReason?: string;
  tail: string;
  startedAtMs: number;
  endedAtMs: number;
}

/** `argv` with {version} (and {url}) filled in; an unknown placeholder stays (the schema refuses them). */
export function renderCommand(argv: string[], values: { version: string; url?: string }): string[] {
  return argv.map((arg) =>
    arg.replace(/\{(version|url)\}/g, (whole, name: string) =>
      name === 'version' ? values.version : (values.url ?? whole),
    ),
  );
}

/**
 * The run id of one command of a workflow's step (`migrate`, `smoke-2`): the same workflow and step always name the
 * same run, so that a retried activity adopts the run instead of starting it again.
 */
export const commandRunIdFor = (workflowId: string, step: string) =>
  resourceName(`cmd-${step}`, `${workflowId}/command/${step}`, 64);

/** Seconds with one decimal: 3.2 s. */
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/** How a run ended, e.g. "exited 1 after 3.2 s", "timed out after 600.0 s", "was stopped (OutOfMemoryError)". */
export function commandEnd(result: CommandRunEnd): string {
  const took = seconds(Math.max(0, result.endedAtMs - result.startedAtMs));
  if (result.timedOut) return `timed out after ${took} and was stopped`;
  if (result.exitCode === null)
    return `was stopped after ${took}${result.stoppedReason ? ` (${result.stoppedReason})` : ''}`;
  return `exited ${result.exitCode} after ${took}`;
}

/** True when the run passed: it exited 0 in time. */
export const commandPassed = (result: CommandRunEnd) => !result.timedOut && result.exitCode === 0;

/** The last `lines` lines of a run's (already scrubbed) output tail, for a failure message; '' when it printed nothing. */
export function lastOutput(result: CommandRunEnd, lines = 5, maxChars = 600): string {
  const text = result.tail.trimEnd().split('\n').slice(-lines).join('\n');
  return text.length > maxChars ? `…${text.slice(-maxChars)}` : text;
}

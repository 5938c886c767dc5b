import { ApplicationFailure, Context } from '@temporalio/activity';
import type { CommandProgress, PlatformDeps, ReleaseCommandRequest, ReleaseCommandResult } from '../platforms/types';
import { toActivityFailure } from './failures';
import { platformPicker } from './platform';

export type CommandActivityDeps = PlatformDeps;

/** Activities that run the release's own commands (migrations, checks) where the release runs. */
export function createCommandActivities(deps: CommandActivityDeps) {
  const pick = platformPicker(deps.platforms);
  return {
    /**
     * Runs one command of the release to its end and returns how it ended (a non-zero exit is a result, the workflow
     * decides). Heartbeats the runner's progress every second; a retry (another worker after a crash) adopts the run
     * named by `runId` instead of starting it again. A `workerCwd` run (a smoke check from the worker) runs on this
     * worker's host. Throws ReleaseCommandFailed (non-retryable) when the platform cannot run commands or the command
     * cannot start.
     */
    async runReleaseCommand(req: ReleaseCommandRequest): Promise<ReleaseCommandResult> {
      const ctx = Context.current();
      const parts = pick(req.workerCwd ? { platform: { name: 'single-host' } } : req);
      if (!parts.commands) {
        throw ApplicationFailure.nonRetryable(
          `the ${req.platform?.name ?? 'single-host'} platform of this worker cannot run release commands`,
          'ReleaseCommandFailed',
        );
      }
      let last: CommandProgress = { phase: 'starting' };
      const beat = setInterval(() => ctx.heartbeat(last), 1_000);
      // Only a cancel from the workflow (a cancelled deploy) stops the command. A worker shutting down or an attempt
      // timed out leaves it running: this attempt ends, and the next one adopts the run.
      const stop = new AbortController();
      let leave: (err: unknown) => void = () => undefined;
      const left = new Promise<never>((_, reject) => (leave = reject));
      left.catch(() => undefined); // seen by the race below; never unhandled
      const onAbort = () => {
        const reason: unknown = ctx.cancellationSignal.reason;
        if (reason instanceof Error && reason.message === 'CANCELLED') stop.abort(reason);
        else leave(reason);
      };
      ctx.cancellationSignal.addEventListener('abort', onAbort, { once: true });
      try {
        return await Promise.race([parts.commands.run(req, (p) => (last = p), stop.signal), left]);
      } catch (err) {
        throw toActivityFailure(err);
      } finally {
        clearInterval(beat);
        ctx.cancellationSignal.removeEventListener('abort', onAbort);
      }
    },
  };
}

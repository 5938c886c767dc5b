import path from 'node:path';
import { createReleaseRunner } from '../platforms/single-host/release-runner';
import { pass, type Component } from './component';

/** The single-host releases (the apps' processes) that the stack's worker started, under <home>/releases. */
const runnerFor = (home: string) =>
  createReleaseRunner({ dir: path.join(home, 'releases'), releaseUrlFor: async () => '' });

/**
 * The app releases as a part of the stack: `up` adopts the running ones (the worker finds them by their pid
 * files), `down` stops them after the worker (so that nothing restarts them) and before PostgreSQL.
 */
export const releasesComponent: Component = {
  name: 'releases',

  async preflight() {},

  async start(ctx) {
    const running = await runnerFor(ctx.settings.home).list();
    return running.length === 0
      ? 'none running'
      : running.map((r) => `${r.service}/${r.environment} ${r.version} on :${r.port}`).join(', ');
  },

  async stop(ctx) {
    const runner = runnerFor(ctx.settings.home);
    const running = await runner.list();
    await Promise.all(running.map((r) => runner.stop(r.service, r.environment, r.releaseId, 10_000)));
    return running.length > 0;
  },

  async check(ctx) {
    const running = await runnerFor(ctx.settings.home).list();
    return [
      pass(
        'releases',
        'running',
        running.length === 0
          ? 'none'
          : running.map((r) => `${r.service}/${r.environment} ${r.version} (pid ${r.pid}, :${r.port})`).join(', '),
      ),
    ];
  },
};

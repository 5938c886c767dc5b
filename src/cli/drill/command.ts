/**
 * The `runbook drill` verb: its help and options, which of them each form takes, and the dispatch to
 * drill (run), drill schedule, drill history and drill report, one file each in this folder.
 */
import { UserError } from '../../errors';
import type { Command } from '../command';
import { asOption, configOption, dryRunOption, envOption, jsonOption, keyOption } from '../options';
import { TAKEN_HELP } from '../follow';
import { drillHistory } from './history';
import { drillReport } from './report';
import { runDrill } from './run';
import { runPitrDrill } from './pitr';
import { CATCHUP_WINDOW, scheduleDrill } from './schedule';

const SUBCOMMANDS = ['schedule', 'history', 'report'] as const;
type Sub = (typeof SUBCOMMANDS)[number] | 'run';

/** Which options each form of `drill` takes (all are parsed together; the others are refused by name). */
const OPTIONS_OF: Record<Sub, string[]> = {
  run: [
    'env',
    'config',
    'as',
    'key',
    'snapshot',
    'fresh',
    'signoff',
    'version',
    'reason',
    'wait',
    'dry-run',
    'json',
    'to-time',
  ],
  schedule: ['env', 'config', 'as', 'key', 'valid-for', 'cron', 'every', 'fresh', 'signoff', 'delete', 'json'],
  history: ['env', 'config', 'limit', 'json'],
  report: ['env', 'config', 'limit', 'out'],
};

export const drillCommand: Command = {
  name: 'drill',
  connectsToTemporal: true,
  summary:
    'Restore drill: restore a snapshot into a scratch database, check it, start the live release on it, time it (RTO).\n' +
    'Also: drill schedule (a Temporal Schedule), drill history, drill report (HTML).',
  usage:
    'drill <service> [--env <e>] [--snapshot <id> | --fresh] [--signoff <timeout>] [--version <v>] [--as <name>] [--key <ssh key>] [--wait | --dry-run] [--json]\n' +
    '       runbook drill <service> [--env <e>] --to-time <ISO time> [--wait] [--json]\n' +
    '       runbook drill schedule <service> [--env <e>] (--cron "<expr>" | --every <duration>) [--key <ssh key>] [--valid-for <duration>] [--fresh] [--signoff <timeout>] [--delete]\n' +
    '       runbook drill history <service> [--env <e>] [--limit <n>] [--json]\n' +
    '       runbook drill report <service> [--env <e>] [--out <file.html>] [--limit <n>]',
  examples: [
    'runbook drill shop --env production --wait',
    'runbook drill shop --env production --dry-run',
    'runbook drill shop --env production --to-time 2026-12-07T10:15:00Z --wait',
    'runbook drill shop --env production --fresh --signoff 4h --as dave',
    'runbook drill schedule shop --env production --cron "0 3 * * 1" --key ~/.ssh/id_ed25519 --valid-for 180d',
    'runbook drill history shop --env production',
    'runbook drill report shop --env production --out drills.html',
  ],
  details:
    'A drill never touches the service: the copy is a new database named after the drill, the app runs on a spare\n' +
    'port outside the route, and both are removed at the end (also on failure and cancel). The RTO counts from the\n' +
    "restore's start to the app answering ready and passing its smoke checks; drill.rtoTarget in runbook.yaml is the\n" +
    'target. The worker runs the plan of its own runbook config and refuses a drill whose plan differs from yours;\n' +
    "--dry-run shows the worker's plan (exit 0 when it is yours, 1 otherwise). A schedule starts drills with the request\n" +
    'and the digest of the plan when it was set: after the config changes, run `drill schedule` again (overlap SKIP,\n' +
    `catch-up window ${CATCHUP_WINDOW}); pause or trigger it in the Temporal Web UI. With --key the schedule carries your\n` +
    'standing signature (--valid-for, default 90d, at most 400d): its runs are requested by you, verified, and only\n' +
    'the runs Temporal says the schedule started count; after the expiry they are refused until you sign again.\n' +
    'Without a key they run as unverified:schedule:<id>. history and report read the drill_runs table when\n' +
    'DATABASE_URL or the embedded stack is available, else Temporal visibility; they say which.\n' +
    '--to-time <ts>: a point-in-time drill from the pgBackRest repository (docs/backups.md): the cluster as of that\n' +
    'moment in a scratch cluster of its own (own data folder and port), the RPO measured as the moment minus the last\n' +
    'commit the copy replayed; the copy is always removed. It needs backup: for the service.\n' +
    'Exit codes (with --wait): 0 passed, 5 failed, 6 cancelled, 2 usage error.\n' +
    TAKEN_HELP,
  options: {
    ...envOption,
    ...configOption,
    as: { ...asOption.as, description: 'who you are (recorded; may not sign off under four-eyes)' },
    ...keyOption,
    snapshot: { type: 'string', description: 'restore this snapshot (default: the newest one)' },
    'to-time': {
      type: 'string',
      description:
        'point-in-time drill: restore the cluster as of this moment (ISO 8601, e.g. 2026-12-07T10:15:00Z) from pgBackRest into a scratch cluster; RPO measured',
    },
    fresh: { type: 'boolean', description: 'take a snapshot of the live database now and restore that' },
    signoff: { type: 'string', description: "wait this long for a reviewer's sign-off (e.g. 4h); none: unsigned" },
    version: { type: 'string', description: 'the release to start on the copy (default: the live one)' },
    reason: { type: 'string', description: 'why (recorded)' },
    wait: { type: 'boolean', description: 'follow the drill until it ends' },
    ...dryRunOption,
    cron: { type: 'string', description: 'schedule: a 5-field cron expression (UTC), e.g. "0 3 * * 1"' },
    every: { type: 'string', description: 'schedule: an interval, e.g. 7d' },
    delete: { type: 'boolean', description: 'schedule: delete the schedule' },
    'valid-for': {
      type: 'string',
      description: "schedule: how long the schedule's signature is valid (default 90d, at most 400d)",
    },
    limit: { type: 'string', description: 'history/report: how many drills (default 50)' },
    out: { type: 'string', description: 'report: the HTML file to write' },
    ...jsonOption,
  },
  async run(args, io) {
    const first = args.positionals[0];
    const sub: Sub = (SUBCOMMANDS as readonly string[]).includes(first ?? '') ? (first as Sub) : 'run';
    const allowed = OPTIONS_OF[sub];
    const extra = Object.keys(args.values).filter((k) => args.values[k] !== undefined && !allowed.includes(k));
    if (extra.length > 0) {
      throw new UserError(
        `drill${sub === 'run' ? '' : ` ${sub}`}: ${extra.map((k) => `--${k}`).join(', ')} ${extra.length > 1 ? 'do' : 'does'} not apply here`,
        'runbook drill --help',
      );
    }
    switch (sub) {
      case 'schedule':
        return scheduleDrill(args, io);
      case 'history':
        return drillHistory(args, io);
      case 'report':
        return drillReport(args, io);
      default:
        return args.values['to-time'] !== undefined ? runPitrDrill(args, io) : runDrill(args, io);
    }
  },
};

/** The restore drill's checks of a restored database: it answers (ping) and pg_amcheck finds no corruption. */
import { execFile } from 'node:child_process';
import path from 'node:path';
import type { DrillChecks } from '../platforms/types';
import { libpqEnv } from './client-tools';
import { connectPg } from './connect';

const OUTPUT_TAIL = 3_000;

/** The real checks, against the worker's PostgreSQL (`urlFor`), with pg_amcheck from `binDir`. */
export function createDrillChecks(opts: {
  urlFor: (database: string) => string | Promise<string>;
  binDir: string;
}): DrillChecks {
  return {
    async ping(database) {
      const client = await connectPg(await opts.urlFor(database), 5_000);
      try {
        const { rows } = await client.query<{ v: string }>(`SELECT current_setting('server_version') AS v`);
        return { serverVersion: rows[0]?.v ?? '?' };
      } finally {
        await client.end().catch(() => undefined);
      }
    },

    async amcheck(database, signal) {
      const bin = path.join(opts.binDir, 'pg_amcheck');
      const url = await opts.urlFor(database);
      // The name inside the server: on RDS a restored instance keeps the source database's name.
      const name = decodeURIComponent(new URL(url).pathname.slice(1)) || database;
      const args = ['--install-missing', '--heapallindexed', '--no-password', '--progress', '--jobs=2', name];
      return new Promise((resolve, reject) => {
        execFile(
          bin,
          args,
          { env: libpqEnv(url), maxBuffer: 16 * 1024 * 1024, ...(signal ? { signal } : {}) },
          (err, stdout, stderr) => {
            // --progress redraws one line with \r; the last state is what was checked.
            const last =
              stderr
                .split(/[\r\n]/)
                .filter((l) => /relations \(/.test(l))
                .at(-1) ?? '';
            const counted = /(\d+)\/\d+ relations.*?(\d+)\/\d+ pages/.exec(last);
            if (!err) {
              const what = counted ? `${counted[1]} relations (${counted[2]} pages)` : 'the database';
              resolve({ ok: true, detail: `no corruption in ${what}: heap, B-tree indexes, --heapallindexed` });
              return;
            }
            const code = (err as { code?: unknown }).code;
            // Exit status 2: the checks ran and found corruption, reported on stdout.
            if (code === 2 && stdout.trim()) {
              const text = stdout.trim();
              resolve({
                ok: false,
                detail: `corruption found: ${text.length > OUTPUT_TAIL ? `${text.slice(0, OUTPUT_TAIL)}...` : text}`,
              });
              return;
            }
            const why = (stderr.replace(/^.*relations \(.*$/gm, '').trim() || err.message).slice(-OUTPUT_TAIL);
            reject(new Error(`pg_amcheck on "${database}" failed (${String(code ?? err.message)}): ${why}`));
          },
        );
      });
    },
  };
}

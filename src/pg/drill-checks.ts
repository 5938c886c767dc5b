/** The restore drill's checks of a restored database: it answers (ping) and pg_amcheck finds no corruption. */
import { execFile } from 'node:child_process';
import path from 'node:path';
import type { AmcheckProgress, DrillChecks } from '../platforms/types';
import { libpqEnv } from './client-tools';
import { connectPg } from './connect';

const OUTPUT_TAIL = 3_000;

/**
 * How much one pg_amcheck run checks: tables (with their TOAST and B-tree indexes) up to about 1 GiB of heap pages,
 * or 200 of them. A retried attempt resumes after the last whole batch, so a crash or a heartbeat timeout on a
 * large copy (cold RDS volumes load from S3 as they are read) costs at most one batch.
 */
export const AMCHECK_BATCH = { pages: 131_072, tables: 200 };

interface Table {
  /** `schema.name`, the order batches and resumption follow. */
  key: string;
  pattern: string;
  pages: number;
}

/** A psql-style pattern that matches exactly this one relation (double quotes make every character literal). */
function literalPattern(schema: string, name: string): string {
  const q = (s: string) => `"${s.replace(/"/g, '""')}"`;
  return `${q(schema)}.${q(name)}`;
}

/** Every table and materialized view of the database, system catalogs included (pg_amcheck's default scope). */
async function tablesOf(url: string): Promise<Table[]> {
  const client = await connectPg(url, 10_000);
  try {
    const { rows } = await client.query<{ schema: string; name: string; pages: number }>(
      `SELECT n.nspname AS schema, c.relname AS name, greatest(c.relpages, 0)::int AS pages
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'm') AND c.relpersistence <> 't'`,
    );
    return rows
      .map((r) => ({ key: `${r.schema}.${r.name}`, pattern: literalPattern(r.schema, r.name), pages: r.pages }))
      .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Consecutive groups of `tables` within the batch limits (a table larger than the limit is a batch of its own). */
export function amcheckBatches<T extends { pages: number }>(tables: T[], limits = AMCHECK_BATCH): T[][] {
  const batches: T[][] = [];
  let current: T[] = [];
  let pages = 0;
  for (const t of tables) {
    if (current.length > 0 && (pages + t.pages > limits.pages || current.length >= limits.tables)) {
      batches.push(current);
      current = [];
      pages = 0;
    }
    current.push(t);
    pages += t.pages;
  }
  if (current.length > 0) batches.push(current);
  return batches;
}

type BatchResult = { ok: true; relations: number; pages: number } | { ok: false; detail: string };

function runAmcheck(bin: string, url: string, args: string[], database: string, signal?: AbortSignal) {
  return new Promise<BatchResult>((resolve, reject) => {
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
          resolve({ ok: true, relations: Number(counted?.[1] ?? 0), pages: Number(counted?.[2] ?? 0) });
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
}

/** The real checks, against the worker's PostgreSQL (`urlFor`), with pg_amcheck from `binDir`. */
export function createDrillChecks(opts: {
  urlFor: (database: string) => string | Promise<string>;
  binDir: string;
  /** Batch limits (tests use small ones); {@link AMCHECK_BATCH} by default. */
  batch?: { pages: number; tables: number };
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

    async amcheck(database, run = {}) {
      const bin = path.join(opts.binDir, 'pg_amcheck');
      const url = await opts.urlFor(database);
      // The name inside the server: on RDS a restored instance keeps the source database's name.
      const name = decodeURIComponent(new URL(url).pathname.slice(1)) || database;
      const tables = await tablesOf(url).catch((err: Error) => {
        throw new Error(`pg_amcheck on "${database}" failed (listing its tables): ${err.message}`);
      });
      // Progress of an earlier attempt on this same database: its batches are taken as checked.
      const from = run.resume?.database === database ? run.resume : undefined;
      let progress: AmcheckProgress = from ?? { database, after: '', relations: 0, pages: 0 };
      const todo = tables.filter((t) => t.key > progress.after);
      for (const batch of amcheckBatches(todo, opts.batch)) {
        const args = [
          '--install-missing',
          '--heapallindexed',
          '--no-password',
          '--progress',
          '--jobs=2',
          ...batch.map((t) => `--table=${t.pattern}`),
          name,
        ];
        const r = await runAmcheck(bin, url, args, database, run.signal);
        if (!r.ok) return r;
        progress = {
          database,
          after: batch.at(-1)!.key,
          relations: progress.relations + r.relations,
          pages: progress.pages + r.pages,
        };
        run.onProgress?.(progress);
      }
      return {
        ok: true,
        detail:
          `no corruption in ${progress.relations} relations (${progress.pages} pages): heap, B-tree indexes, ` +
          `--heapallindexed${from ? ` (resumed after ${from.after})` : ''}`,
      };
    },
  };
}

/** Where this machine's PostgreSQL binaries are: the server's (for the embedded stack) and the client tools'. */
import path from 'node:path';
import { isExecutable, which } from '../system/executables';

/** The first PostgreSQL bin folder (15 or later; PG_BIN_DIR first) that holds all of `binaries`. */
function pgBinDirWith(binaries: string[]): string | undefined {
  const fromPath = which(binaries[0] ?? 'pg_ctl');
  const candidates = [
    process.env.PG_BIN_DIR,
    '/usr/lib/postgresql/15/bin',
    '/usr/lib/postgresql/16/bin',
    '/usr/lib/postgresql/17/bin',
    fromPath ? path.dirname(fromPath) : undefined,
  ];
  return candidates.find((dir): dir is string => !!dir && binaries.every((b) => isExecutable(path.join(dir, b))));
}

/** PostgreSQL server binaries (initdb, pg_ctl, pg_dump...) of major version 15 or later. */
export const postgresBinDir = () => pgBinDirWith(['pg_ctl', 'initdb']);

/**
 * PostgreSQL client binaries (pg_dump, pg_restore, pg_amcheck) of major version 15 or later: the worker needs
 * only these (a worker image has the client package, not the server).
 */
export const postgresClientBinDir = () => pgBinDirWith(['pg_dump', 'pg_restore']);

import path from 'node:path';
import { UserError } from '../errors';
import { postgresClientBinDir } from '../pg/bin-dir';
import { checkManifestSignature } from '../platforms/single-host/manifest-signature';
import { createPgSnapshotStore, SNAPSHOT_NAME_PATTERN } from '../platforms/single-host/pg-snapshots';
import { PlatformError } from '../platforms/types';
import { databaseUrl } from '../stack/postgres';
import { resolveStackSettings } from '../stack/settings';
import { deriveKey, loadWorkerSecret } from '../system/worker-secret';
import type { Command } from './command';
import { homeOption } from './options';

/**
 * The stack's snapshot store as its worker builds it: same folder, same key (RUNBOOK_WORKER_SECRET or the key file),
 * and that key.
 */
function storeOf(env: NodeJS.ProcessEnv, home: string) {
  const binDir = postgresClientBinDir();
  if (!binDir) throw new UserError('pg_restore not found', 'apt-get install postgresql-client-15');
  const settings = resolveStackSettings(env, { home });
  const manifestKey = deriveKey(loadWorkerSecret(env, settings.home, { create: false }), 'manifests');
  const store = createPgSnapshotStore({
    dir: path.join(settings.home, 'snapshots'),
    urlFor: (database) => databaseUrl(settings, database),
    binDir,
    manifestKey,
  });
  return { store, manifestKey };
}

export const snapshotsCommand: Command = {
  name: 'snapshots',
  summary:
    "The single-host stack's database snapshots: list them with whether this worker's key vouches for each, and\n" +
    'sign one you vouch for (taken before manifests were signed, or under a previous worker secret).',
  usage: 'snapshots list <service> <environment> | snapshots sign <snapshot-id> [--home <dir>]',
  examples: ['runbook snapshots list shop demo', 'runbook snapshots sign shop-demo-deploy-v2-abc123-pre-deploy'],
  details:
    'A snapshot is restored only when its manifest carries the signature of the worker secret (RUNBOOK_WORKER_SECRET,\n' +
    'else <data folder>/keys/worker-secret): a dump replaced together with a rewritten manifest is refused\n' +
    '(SnapshotUntrusted). `sign` checks the dump against its manifest (size, sha256, readable by pg_restore) and then\n' +
    'signs the manifest as it is: run it only for a snapshot whose origin you know. Run it where the worker runs, as\n' +
    'the user the worker runs as (it reads the same key). Exit codes: 0 done, 1 refused or failed, 2 bad usage.',
  options: { ...homeOption },
  async run({ values, positionals }, io) {
    const [verb, ...rest] = positionals;
    const home = resolveStackSettings(io.env, values.home ? { home: String(values.home) } : {}).home;
    if (verb === 'list' && rest.length === 2) {
      const [service, environment] = rest as [string, string];
      const { store, manifestKey: key } = storeOf(io.env, home);
      const found = await store.list(service, environment).catch((err: unknown) => {
        throw err instanceof PlatformError ? new UserError(err.message) : err;
      });
      if (found.length === 0) io.out(`no snapshots of ${service}/${environment} in ${path.join(home, 'snapshots')}`);
      for (const m of found) {
        const signed = checkManifestSignature(m, key);
        io.out(
          `${m.snapshotId}  ${new Date(m.createdAtMs).toISOString()}  ${m.bytes} bytes  migration ${m.migrationVersion ?? 'none'}  ` +
            (signed.ok ? 'signed' : `NOT TRUSTED: ${signed.reason}`),
        );
      }
      return 0;
    }
    if (verb === 'sign' && rest.length === 1) {
      const id = rest[0]!;
      if (!SNAPSHOT_NAME_PATTERN.test(id)) {
        throw new UserError(
          `snapshots sign: ${JSON.stringify(id)} is not a snapshot id`,
          'runbook snapshots list <service> <environment> names them',
        );
      }
      const signed = await storeOf(io.env, home)
        .store.sign(id)
        .catch((err: unknown) => {
          throw err instanceof PlatformError ? new UserError(err.message) : err;
        });
      io.out(
        `signed ${id}: ${signed.service}/${signed.environment}, database ${signed.database}, ${signed.bytes} bytes, ` +
          `sha256 ${signed.sha256}, key ${signed.signature?.keyId}`,
      );
      return 0;
    }
    throw new UserError(`snapshots: usage: runbook ${snapshotsCommand.usage}`, 'runbook snapshots --help');
  },
};

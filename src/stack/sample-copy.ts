/**
 * The sample app where the release user can read it. Under a private home (/root is 0700 on a fresh VM) the release
 * user cannot reach examples/ in the repository, so the demo runs a copy of examples/ (the sample's config, code and
 * migrations; no secrets) under /var/lib/durable-runbooks, owned by root and readable by all, as a team would install
 * its releases under /srv. Only the sample is copied: a team's own releases that the release user cannot read are
 * refused at start with the fixes (release-runner.ts).
 */
import { createHash } from 'node:crypto';
import { chmodSync, cpSync, existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { ensureReleaseUser, resolveReleaseUser, unreachableFor } from '../system/release-user';
import { ROOT_CLUSTERS_DIR } from './postgres';

/** Where the copy of a data folder's sample goes: next to its cluster, named the same way. */
export const sampleCopyDir = (home: string) =>
  path.join(
    ROOT_CLUSTERS_DIR,
    `sample-${createHash('sha256').update(path.resolve(home)).digest('hex').slice(0, 16)}`,
    'examples',
  );

/** Makes a tree readable by all and writable by its owner only (0755 folders, 0644 files; executables keep x). */
function openUp(dir: string): void {
  chmodSync(dir, 0o755);
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const at = path.join(dir, entry.name);
    if (entry.isDirectory()) openUp(at);
    else if (entry.isFile()) chmodSync(at, statSync(at).mode & 0o111 ? 0o755 : 0o644);
  }
}

/**
 * The config file the demo runs: `configFile` itself when the release user can read its folder (or releases run as
 * the worker's user), else the same file in a fresh copy of its folder (see the file's comment). `log` says why.
 */
export function sampleConfigForReleases(configFile: string, home: string, log: (line: string) => void): string {
  ensureReleaseUser(process.env);
  const user = resolveReleaseUser(process.env);
  const folder = path.dirname(configFile);
  const blocked = user ? unreachableFor(user, folder) : undefined;
  if (!user || !blocked) return configFile;
  const copy = sampleCopyDir(home);
  log(`releases run as ${user.name}, who cannot pass ${blocked}: the sample runs from a copy of ${folder} in ${copy}`);
  if (existsSync(copy)) rmSync(copy, { recursive: true, force: true });
  mkdirSync(ROOT_CLUSTERS_DIR, { recursive: true });
  if ((statSync(ROOT_CLUSTERS_DIR).mode & 0o001) === 0) chmodSync(ROOT_CLUSTERS_DIR, 0o755);
  cpSync(folder, copy, { recursive: true, filter: (src) => !src.includes(`${path.sep}node_modules`) });
  openUp(path.dirname(copy));
  return path.join(copy, path.basename(configFile));
}

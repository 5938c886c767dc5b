/**
 * Files and folders that only this OS user can read: everything the project writes under its data folder (settings,
 * pid files, logs, snapshots and manifests, HAProxy's configuration and state, route and release state). Modes are
 * set explicitly after creating, so they do not depend on the process's umask; servers that create files of their
 * own are started with umask 077 ({@link PRIVATE_UMASK}).
 */
import { chmodSync, closeSync, fchmodSync, lstatSync, mkdirSync, openSync, readdirSync } from 'node:fs';
import { chmod, lstat, mkdir, open } from 'node:fs/promises';
import path from 'node:path';

export const PRIVATE_FILE_MODE = 0o600;
export const PRIVATE_DIR_MODE = 0o700;
/** The umask of the servers the stack starts (HAProxy, the Temporal dev server): what they create is 0600/0700. */
export const PRIVATE_UMASK = 0o077;

/** The folders `mkdir -p` made: from `dir` up to `first` (what mkdirSync returns), or just `dir` when it existed. */
function madeOrLeaf(dir: string, first: string | undefined): string[] {
  const leaf = path.resolve(dir);
  if (!first) return [leaf];
  const top = path.resolve(first);
  const chain = [leaf];
  for (let d = leaf; d !== top && path.dirname(d) !== d;) {
    d = path.dirname(d);
    chain.push(d);
  }
  return chain;
}

const loose = (mode: number, want: number) => (mode & 0o777) !== want;

/**
 * Creates `dir` (and missing parents) with mode 0700, and tightens `dir` itself to 0700 when it exists with a wider
 * mode (a data folder made by an older version). Throws the fs error (EACCES, ENOTDIR...).
 */
export function ensurePrivateDirSync(dir: string): void {
  const first = mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
  for (const d of madeOrLeaf(dir, first)) {
    if (loose(lstatSync(d).mode, PRIVATE_DIR_MODE)) chmodSync(d, PRIVATE_DIR_MODE);
  }
}

/** {@link ensurePrivateDirSync} for async code. */
export async function ensurePrivateDir(dir: string): Promise<void> {
  const first = await mkdir(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
  for (const d of madeOrLeaf(dir, first)) {
    if (loose((await lstat(d)).mode, PRIVATE_DIR_MODE)) await chmod(d, PRIVATE_DIR_MODE);
  }
}

/**
 * Opens `file` for appending (a log a child process writes to), creating it 0600, and makes an existing file 0600.
 * Returns the descriptor; the caller closes it.
 */
export function openPrivateLog(file: string): number {
  ensurePrivateDirSync(path.dirname(file));
  const fd = openSync(file, 'a', PRIVATE_FILE_MODE);
  try {
    fchmodSync(fd, PRIVATE_FILE_MODE);
  } catch (err) {
    closeSync(fd);
    throw err;
  }
  return fd;
}

/**
 * Makes `file` exist as an empty 0600 file, or makes an existing one 0600, for a tool that writes into a file it opens
 * itself (pg_dump --file keeps the mode of a file it truncates).
 */
export async function createPrivateFile(file: string): Promise<void> {
  const handle = await open(file, 'w', PRIVATE_FILE_MODE);
  try {
    await handle.chmod(PRIVATE_FILE_MODE);
  } finally {
    await handle.close();
  }
}

/**
 * Removes group and other permissions from everything under `root` (folders 0700, files keep only their owner's
 * bits), except under the `skip` folders: a data folder written by an older version becomes private. Symbolic links
 * are not followed. Entries that vanish meanwhile, or that belong to another user, are left alone. Returns how many
 * entries were changed.
 */
export function tightenTree(root: string, skip: string[] = []): number {
  const skipped = new Set(skip.map((s) => path.resolve(s)));
  let changed = 0;
  const visit = (p: string) => {
    if (skipped.has(p)) return;
    let names: string[] = [];
    try {
      const st = lstatSync(p);
      if (st.isSymbolicLink()) return;
      const want = st.isDirectory() ? PRIVATE_DIR_MODE : st.mode & 0o700;
      if ((st.mode & 0o777) !== want) {
        chmodSync(p, want);
        changed++;
      }
      if (st.isDirectory()) names = readdirSync(p);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'EPERM' || code === 'EACCES') return;
      throw err;
    }
    for (const name of names) visit(path.join(p, name));
  };
  visit(path.resolve(root));
  return changed;
}

/**
 * The command line that runs `command args` with umask 077 (through /bin/sh, which then becomes the command: the
 * process id and, once it runs, the command line are the command's own).
 */
export function withPrivateUmask(command: string, args: string[]): { command: string; args: string[] } {
  return {
    command: '/bin/sh',
    args: ['-c', `umask ${PRIVATE_UMASK.toString(8).padStart(3, '0')} && exec "$0" "$@"`, command, ...args],
  };
}

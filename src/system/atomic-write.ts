/**
 * Crash-safe file writes: a file is replaced whole or not at all, and stays replaced after a power cut. Files are
 * private (0600) unless the caller says otherwise: everything the project writes this way is in its data folder.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, fchmodSync, fsyncSync, openSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { PRIVATE_FILE_MODE } from './private-files';

/** Flushes a file or folder to disk, so that a rename that marks it complete survives a power cut. */
export async function fsync(file: string): Promise<void> {
  const handle = await open(file, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

const tmpName = (file: string) =>
  path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);

/**
 * Writes `content` to `file` so that readers (and HAProxy, which loads a whole folder) see the old file or the new
 * one, never half of one: a hidden temporary file next to it, named per process so that concurrent writers do not
 * share it, created with `mode` (0600 by default, whatever the umask), flushed, renamed over `file`, then the folder
 * flushed. The temporary file is removed when a step fails.
 */
export async function writeFileAtomically(file: string, content: string, mode = PRIVATE_FILE_MODE): Promise<void> {
  const tmp = tmpName(file);
  try {
    const handle = await open(tmp, 'wx', mode);
    try {
      await handle.chmod(mode);
      await handle.writeFile(content);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  await fsync(path.dirname(file));
}

/** {@link writeFileAtomically} for synchronous code (the stack settings). */
export function writeFileAtomicallySync(file: string, content: string, mode = PRIVATE_FILE_MODE): void {
  const tmp = tmpName(file);
  try {
    const fd = openSync(tmp, 'wx', mode);
    try {
      fchmodSync(fd, mode);
      writeFileSync(fd, content);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  const dir = openSync(path.dirname(file), 'r');
  try {
    fsyncSync(dir);
  } finally {
    closeSync(dir);
  }
}

/** Crash-safe file writes: a file is replaced whole or not at all, and stays replaced after a power cut. */
import { randomBytes } from 'node:crypto';
import { open, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';

/** Flushes a file or folder to disk, so that a rename that marks it complete survives a power cut. */
export async function fsync(file: string): Promise<void> {
  const handle = await open(file, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Writes `content` to `file` so that readers (and HAProxy, which loads a whole folder) see the old file or the new
 * one, never half of one: a hidden temporary file next to it, named per process so that concurrent writers do not
 * share it, flushed, renamed over `file`, then the folder flushed. The temporary file is removed when a step fails.
 */
export async function writeFileAtomically(file: string, content: string): Promise<void> {
  const tmp = path.join(
    path.dirname(file),
    `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`,
  );
  try {
    await writeFile(tmp, content);
    await fsync(tmp);
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  await fsync(path.dirname(file));
}

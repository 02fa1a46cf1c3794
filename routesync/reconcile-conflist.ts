import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Writes the CNI network configuration list, atomically and only when its bytes change.
 *
 * Atomic: the new content goes to a temporary file in the same directory, is fsynced, then
 * renamed over the target (rename(2) within one filesystem is atomic), and the directory is
 * fsynced. A runtime listing the directory meanwhile sees the old file or the new one, never half
 * of one. The temporary name starts with a dot and ends in `.tmp`: libcni (what containerd and
 * CRI-O use) loads only `*.conf`, `*.conflist` and `*.json`, so it never picks the temp file up.
 */
export interface ConflistWriteResult {
  written: boolean;
  path: string;
  /** Config files that sort before ours: the runtime uses the first one, not ours. */
  shadowedBy: string[];
}

const CNI_EXTENSIONS = ['.conf', '.conflist', '.json'];

export async function writeConflistIfChanged(dir: string, name: string, content: string): Promise<ConflistWriteResult> {
  const path = join(dir, name);
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const shadowedBy = (await readdir(dir))
    .filter((f) => f !== name && CNI_EXTENSIONS.some((ext) => f.endsWith(ext)) && f < name)
    .sort();
  let current: string | undefined;
  try {
    current = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`failed to read cni config "${path}": ${(e as Error).message}`, { cause: e });
  }
  if (current === content) return { written: false, path, shadowedBy };

  const tmp = join(dir, `.${name}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    const fh = await open(tmp, 'wx', 0o644);
    try {
      await fh.writeFile(content);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw new Error(`failed to write cni config "${path}": ${(e as Error).message}`, { cause: e });
  }
  try {
    const dh = await open(dir, 'r');
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
  } catch {
    // Directory fsync is best effort (some filesystems refuse it); the rename is done.
  }
  return { written: true, path, shadowedBy };
}

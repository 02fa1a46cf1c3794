import { existsSync, linkSync, lstatSync, mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { getPriority, setPriority, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StoreLock } from '../../../../ipam/host-local/store/lock.js';
import { ErrorCode } from '../../../../lib/cni/errors.js';

let root: string;
let path: string;
let tmp: string;
const opts = { staleMs: 4000, lockTimeoutMs: 200, retryMinMs: 2, retryMaxMs: 20 };
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'pst-lock-'));
  path = join(root, 'lock');
  tmp = join(root, 'tmp');
  mkdirSync(tmp);
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

/** What a taker does to a holder it judged stale: its lock moved away, another in its place. */
function takeOver(): void {
  renameSync(path, join(root, 'gone'));
  writeFileSync(join(root, 'other'), '');
  linkSync(join(root, 'other'), path);
}

describe('StoreLock', () => {
  it('excludes a second holder (code 11 naming the lock) until released', async () => {
    const a = await StoreLock.acquire(path, tmp, opts);
    expect(a.holds()).toBe(true);
    await expect(StoreLock.acquire(path, tmp, opts)).rejects.toMatchObject({ code: ErrorCode.TryAgainLater, message: expect.stringContaining(path) });
    a.release();
    expect(existsSync(path)).toBe(false);
    const b = await StoreLock.acquire(path, tmp, opts);
    b.release();
  });

  it('the holder runs at nice -10 while it holds the lock (root), and at its own priority again after', async () => {
    const own = getPriority();
    setPriority(3);
    try {
      const a = await StoreLock.acquire(path, tmp, opts);
      expect(getPriority()).toBe(process.getuid?.() === 0 ? -10 : 3);
      a.release();
      expect(getPriority()).toBe(3);
    } finally {
      try {
        setPriority(own); // back up from 3: allowed to root only
      } catch {}
    }
  });

  it('a holder is fresh from the moment it holds the lock, and each verify (progress) keeps it so', async () => {
    const stale = { ...opts, staleMs: 1000 };
    const old = new Date(Date.now() - 60_000);
    // Its file was created long before its link went through (a slow disk): the age counts from the link.
    const a = await StoreLock.acquire(path, tmp, stale);
    expect(Date.now() - lstatSync(path).mtimeMs).toBeLessThan(1000);
    // Busy in its synchronous critical section past staleMs (no timer can fire there), it verifies before a write.
    utimesSync(path, old, old);
    a.verify();
    await expect(StoreLock.acquire(path, tmp, stale)).rejects.toMatchObject({ code: ErrorCode.TryAgainLater });
    expect(a.holds()).toBe(true);
    a.release();
  });

  it('a holder taken over knows it (verify throws 11) and its release leaves the new lock alone', async () => {
    const a = await StoreLock.acquire(path, tmp, opts);
    takeOver();
    expect(a.holds()).toBe(false);
    expect(() => a.verify()).toThrow(expect.objectContaining({ code: ErrorCode.TryAgainLater, message: expect.stringContaining('taken over') }));
    const other = lstatSync(join(root, 'other')).ino;
    a.release();
    expect(lstatSync(path).ino).toBe(other);
  });

  it('takes over a lock not refreshed for staleMs, whatever its kind (file, or an older podnet\'s directory)', async () => {
    for (const make of [() => writeFileSync(path, ''), () => mkdirSync(path)]) {
      make();
      await expect(StoreLock.acquire(path, tmp, opts)).rejects.toMatchObject({ code: ErrorCode.TryAgainLater });
      const old = new Date(Date.now() - 10_000);
      utimesSync(path, old, old);
      const l = await StoreLock.acquire(path, tmp, opts);
      expect(l.holds()).toBe(true);
      l.release();
      expect(existsSync(path)).toBe(false);
    }
  });

  it('refuses a lock that is a symbolic link (code 5), and never touches its target', async () => {
    writeFileSync(join(root, 'target'), 'x');
    const old = new Date(Date.now() - 10_000);
    utimesSync(join(root, 'target'), old, old);
    symlinkSync(join(root, 'target'), path);
    await expect(StoreLock.acquire(path, tmp, opts)).rejects.toMatchObject({ code: ErrorCode.IoFailure, message: expect.stringContaining('symbolic link') });
    expect(existsSync(join(root, 'target'))).toBe(true);
  });
});

/**
 * StoreLock: the store's lock across processes, `<network>/podnet/lock`, with a takeover of
 * locks left by dead or stalled holders that never breaks mutual exclusion.
 *
 * The lock is a file whose inode is the holder's identity. A process takes it by creating an
 * empty file of its own in podnet/tmp and hard-linking it to `lock`: link(2) fails when the name
 * exists in any form (file, directory, symlink) and never replaces anything. The holder keeps its
 * file open, so the inode number cannot be reused while it lives, and
 *
 *   - refreshes the lock's mtime through that descriptor (futimes: it touches its own inode,
 *     never whatever `lock` names by then) the moment it has linked it — its age counts from
 *     then, not from the creation of the file, however long the link itself took —, every
 *     staleMs/2 while its event loop runs, and at each verify: the critical section is
 *     synchronous, so the timer cannot fire inside it, and a holder making progress must not
 *     look dead (a burst of 100 ADDs beside a loaded disk once lost a DEL to a takeover);
 *   - verifies, before every write to the store, that `lock` still is its inode (one lstat):
 *     a holder that was stopped past staleMs and taken over finds another inode there and
 *     aborts its transaction (code 11) instead of writing under someone else's lock;
 *   - releases by renaming `lock` aside and checking that what it moved is its own inode; if it
 *     is not (taken over meanwhile), it links it back (link never replaces: should a third
 *     process have taken the free name in that instant, the moved holder's next verify fails).
 *
 * A lock whose mtime is older than staleMs is taken over the same way: rename it aside, check
 * that the moved inode is the one judged stale, remove it — or put it back when it is not. So
 * two processes that judge the same lock stale at once never both end up holding it.
 *
 * Limit: verify-then-write is two system calls; a holder frozen exactly between them (and for
 * longer than staleMs) could still write once after losing the lock. Nothing on disk can fence
 * that without changing the reference's layout; the window is microseconds against seconds.
 *
 * An empty directory at `lock` is the lock of an older podnet (proper-lockfile): honoured,
 * judged stale by its mtime and taken over like any other.
 *
 * While it holds the lock, the holder runs at a higher CPU priority (nice HOLDER_NICE, where it
 * may: root or CAP_SYS_NICE) and goes back to its own when it lets go. A node starting many pods
 * at once has dozens of plugin processes competing for its cores, and every one of them waits
 * for this lock: without the boost the scheduler preempts the holder inside its ~2 ms critical
 * section, which then lasts many times that and serializes the burst (40 ADDs at once on 2
 * cores, measured: the lock held 13 ms on average and waited for up to 0.5 s; boosted, held 7 ms,
 * waited up to 0.2 s, and the burst ended ~8% sooner). A lock convoy's usual cure, priority
 * inheritance, in the one form a lock on disk allows.
 */
import { closeSync, constants, fstatSync, futimesSync, linkSync, lstatSync, openSync, renameSync, rmSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { CniError, ErrorCode, causeText } from '../../../lib/cni/errors.js';
import { errCode, removeFile } from './reservation-dir.js';

export interface LockOptions {
  /** A lock not refreshed for this long is taken over. */
  staleMs: number;
  /** Give up waiting for the lock after this long: error 11. */
  lockTimeoutMs: number;
  /** First and largest wait between attempts (randomized, growing by half each time). */
  retryMinMs: number;
  retryMaxMs: number;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** The holder's nice value (see above); 0 is every process's default. */
const HOLDER_NICE = -10;

/** Raise this process's CPU priority; returns the one to go back to, or undefined when it could not. */
function boostPriority(): number | undefined {
  const os = process.getBuiltinModule('node:os');
  try {
    const own = os.getPriority();
    if (own <= HOLDER_NICE) return undefined;
    os.setPriority(HOLDER_NICE);
    return own;
  } catch {
    return undefined; // not allowed (no CAP_SYS_NICE): the lock works the same, unboosted
  }
}

function restorePriority(own: number | undefined): void {
  if (own === undefined) return;
  try {
    process.getBuiltinModule('node:os').setPriority(own);
  } catch {
    // Lowering one's own priority is always allowed; nothing else to do.
  }
}
let tokens = 0;
const uniqueName = (what: string) => `${what}.${process.pid}.${Date.now().toString(36)}.${(tokens += 1)}.${Math.random().toString(36).slice(2, 8)}`;

export class StoreLock {
  private released = false;
  private readonly timer: NodeJS.Timeout;
  /** The priority to go back to on release (undefined: not boosted). */
  private readonly ownPriority = boostPriority();

  private constructor(
    readonly path: string,
    private readonly tmpDir: string,
    private readonly fd: number,
    private readonly ino: number,
    private readonly dev: number,
    staleMs: number,
  ) {
    this.refresh();
    this.timer = setInterval(() => this.refresh(), Math.max(staleMs / 2, 100));
    this.timer.unref();
  }

  /** Wait for the lock (taking over a stale one) and hold it. */
  static async acquire(path: string, tmpDir: string, opts: LockOptions): Promise<StoreLock> {
    const deadline = Date.now() + opts.lockTimeoutMs;
    let wait = opts.retryMinMs;
    for (;;) {
      const lock = StoreLock.tryOnce(path, tmpDir, opts.staleMs);
      if (lock) return lock;
      if (Date.now() >= deadline) {
        throw new CniError(ErrorCode.TryAgainLater, `failed to lock store "${path}": held by another process for more than ${opts.lockTimeoutMs} ms`);
      }
      await sleep(wait / 2 + Math.random() * (wait / 2));
      wait = Math.min(wait * 1.5, opts.retryMaxMs);
    }
  }

  /** One attempt: the lock, or undefined when someone else holds it (a stale one is removed). */
  private static tryOnce(path: string, tmpDir: string, staleMs: number): StoreLock | undefined {
    const mine = join(tmpDir, uniqueName('lock'));
    let fd: number;
    try {
      fd = openSync(mine, constants.O_CREAT | constants.O_EXCL | constants.O_RDWR | constants.O_NOFOLLOW, 0o600);
    } catch (e) {
      throw ioError(`failed to lock store "${path}"`, e);
    }
    let linked = false;
    try {
      linkSync(mine, path);
      linked = true;
    } catch (e) {
      // ENOENT: a holder cleared podnet/tmp between open and link; just try again.
      if (errCode(e) !== 'EEXIST' && errCode(e) !== 'ENOENT') throw ioError(`failed to lock store "${path}"`, e);
    } finally {
      try {
        unlinkSync(mine);
      } catch {
        // Already cleared by a holder's tmp clean-up.
      }
      if (!linked) closeSync(fd);
    }
    if (linked) {
      const st = fstatSync(fd);
      return new StoreLock(path, tmpDir, fd, st.ino, st.dev, staleMs);
    }
    StoreLock.removeIfStale(path, tmpDir, staleMs);
    return undefined;
  }

  /** Take a stale lock away: move it aside, and remove it only if it is the one judged stale. */
  private static removeIfStale(path: string, tmpDir: string, staleMs: number): void {
    const st = lstatSync(path, { throwIfNoEntry: false });
    if (!st) return;
    if (st.isSymbolicLink() || !(st.isFile() || st.isDirectory())) {
      throw new CniError(ErrorCode.IoFailure, `failed to lock store "${path}": refusing a lock that is not a plain file (a symbolic link or device)`);
    }
    if (Date.now() - st.mtimeMs <= staleMs) return;
    const aside = join(tmpDir, uniqueName('stale'));
    try {
      renameSync(path, aside);
    } catch (e) {
      if (errCode(e) === 'ENOENT') return;
      throw ioError(`failed to take over the stale lock "${path}"`, e);
    }
    const moved = lstatSync(aside, { throwIfNoEntry: false });
    if (moved && (moved.ino !== st.ino || moved.dev !== st.dev)) {
      // Someone took the lock over between our look and our move: give it back.
      putBack(aside, path);
      return;
    }
    rmSync(aside, { recursive: true, force: true });
  }

  /** Whether `lock` still names this holder's inode. */
  holds(): boolean {
    return !this.released && this.ownsPath();
  }

  private ownsPath(): boolean {
    const st = lstatSync(this.path, { throwIfNoEntry: false });
    return st !== undefined && st.ino === this.ino && st.dev === this.dev;
  }

  /** Throw (code 11) unless this process still holds the lock: called before every write; a
   * holder that still holds it refreshes it (it is making progress). */
  verify(): void {
    if (this.holds()) {
      this.refresh();
    } else {
      throw new CniError(
        ErrorCode.TryAgainLater,
        `failed to hold the lock of store "${this.path}": taken over by another process while this one was stalled; nothing more was written`,
      );
    }
  }

  private refresh(): void {
    try {
      const now = new Date();
      futimesSync(this.fd, now, now);
    } catch {
      // Our own inode; failing to touch it only makes the lock look stale sooner.
    }
  }

  /** Give the lock up, never removing one that is not ours. */
  release(): void {
    if (this.released) return;
    this.released = true;
    clearInterval(this.timer);
    try {
      // Taken over (the common way to lose it): nothing of ours to remove.
      if (!this.ownsPath()) return;
      const aside = join(this.tmpDir, uniqueName('release'));
      try {
        renameSync(this.path, aside);
      } catch (e) {
        if (errCode(e) === 'ENOENT') return;
        throw e;
      }
      const moved = lstatSync(aside, { throwIfNoEntry: false });
      if (moved && (moved.ino !== this.ino || moved.dev !== this.dev)) putBack(aside, this.path);
      else removeFile(aside);
    } finally {
      closeSync(this.fd);
      restorePriority(this.ownPriority);
    }
  }
}

/** Return a lock moved aside by mistake to its name, without ever replacing what is there now. */
function putBack(aside: string, path: string): void {
  const isDir = lstatSync(aside, { throwIfNoEntry: false })?.isDirectory() ?? false;
  try {
    // link never replaces; a directory (an older podnet's lock) cannot be linked, and renaming
    // it fails rather than replace a lock file or a non-empty directory.
    if (isDir) renameSync(aside, path);
    else linkSync(aside, path);
  } catch {
    // A third process took the free name: the moved holder finds out at its next verify.
  }
  rmSync(aside, { recursive: true, force: true });
}

function ioError(msg: string, e: unknown): CniError {
  return new CniError(ErrorCode.IoFailure, `${msg}: ${causeText(e)}`, '', { cause: e });
}

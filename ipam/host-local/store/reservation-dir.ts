/**
 * ReservationDir: the reference host-local's on-disk layout, read and written exactly as it does,
 * so either plugin honours the other's reservations. This part stands on its own: with it and
 * the lock, a store works (every lookup by owner is then a walk, as in the reference); podnet's
 * index (owner-index.ts) only makes those lookups cheaper.
 *
 *   <ip>                  one file per reserved address: `<containerID>\r\n<ifname>`
 *                         (files holding only `<containerID>` are legacy and still honoured)
 *   last_reserved_ip.<n>  the address last handed out from range set n (round-robin cursor)
 *   lock                  the reference's flock file; never touched here
 *
 * Nothing here follows a symbolic link: files are opened with O_NOFOLLOW and directories checked
 * with lstat, and a link where podnet keeps its own files is refused (code 5, naming the path) —
 * a link at `last_reserved_ip.0` would otherwise have its target overwritten. A link named like
 * an address counts as reserved by someone else (never read, never handed out, never released).
 *
 * Reservation files appear whole or not at all (temp file + link(2), which fails if the name
 * exists), so a killed ADD never leaves an empty or half-written reservation. Every write first
 * asks `guard` (the lock's verify), so a holder that lost the lock writes nothing more.
 */
import { closeSync, constants, ftruncateSync, linkSync, lstatSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { CniError, ErrorCode, causeText } from '../../../lib/cni/errors.js';
import { formatIp, parseIp, reservationName } from '../../../lib/addr/addr.js';
import { type Owner, type Reservation, ownerText, parseOwner, sameOwner } from './store.js';

export const LAST_IP_PREFIX = 'last_reserved_ip.';

/** Files handled between yields to the event loop in long walks (the lock's refresh timer). */
const YIELD_EVERY = 64;
const yieldNow = () => new Promise<void>((resolve) => setImmediate(resolve));
export const errCode = (e: unknown): string | undefined => (e as NodeJS.ErrnoException | undefined)?.code;

const O_READ = constants.O_RDONLY | constants.O_NOFOLLOW;
const O_WRITE = constants.O_WRONLY | constants.O_NOFOLLOW;
const O_CREATE = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

export function symlinkRefused(path: string): CniError {
  return new CniError(ErrorCode.IoFailure, `refusing to follow a symbolic link inside the store: "${path}"`);
}

/** Throw code 5 unless `path` is a directory itself (not a link to one); false when absent. */
export function assertRealDir(path: string): boolean {
  const st = lstatSync(path, { throwIfNoEntry: false });
  if (!st) return false;
  if (st.isSymbolicLink()) throw symlinkRefused(path);
  if (!st.isDirectory()) throw new CniError(ErrorCode.IoFailure, `store path "${path}" is not a directory`);
  return true;
}

/**
 * Make `path` a directory unless it is one; throw code 5 if it is a link or something else.
 * Parallel first ADDs race here (none holds the lock yet): EEXIST from the loser is fine.
 */
export function ensureRealDir(path: string): void {
  try {
    mkdirSync(path, { mode: 0o755 });
  } catch (e) {
    if (errCode(e) !== 'EEXIST') throw e;
  }
  assertRealDir(path);
}

/**
 * A small file's content, never through a link: undefined when absent; a link is refused
 * (code 5) — or, with `links: 'absent'`, read as absent.
 */
export function readNoFollow(path: string, links: 'refuse' | 'absent' = 'refuse'): string | undefined {
  let fd: number;
  try {
    fd = openSync(path, O_READ);
  } catch (e) {
    if (errCode(e) === 'ENOENT') return undefined;
    if (errCode(e) === 'ELOOP') {
      if (links === 'absent') return undefined;
      throw symlinkRefused(path);
    }
    throw e;
  }
  try {
    return readFileSync(fd, 'utf8');
  } finally {
    closeSync(fd);
  }
}

/**
 * Overwrite a small file where it is (one write, then truncate), or create it (temp + rename)
 * when absent; never through a link. In place is ~15× cheaper than rename-over on ext4 (which
 * flushes the new file's data), and used for files whose torn write is harmless or detected:
 * last_reserved_ip (a hint: a wrong start for round-robin, or an unparseable file that upstream
 * ignores as well) and podnet's stamp and buckets (the stamp protocol covers them).
 */
export function writeNoFollow(path: string, data: string, tmpPath: () => string): void {
  const buf = Buffer.from(data);
  let fd: number;
  try {
    fd = openSync(path, O_WRITE);
  } catch (e) {
    if (errCode(e) === 'ELOOP') throw symlinkRefused(path);
    if (errCode(e) !== 'ENOENT') throw e;
    const tmp = tmpPath();
    writeNew(tmp, buf);
    renameSync(tmp, path);
    return;
  }
  try {
    writeSync(fd, buf, 0, buf.length, 0);
    ftruncateSync(fd, buf.length);
  } finally {
    closeSync(fd);
  }
}

/** Remove a file; false when it was gone already. What rmSync's `force` does for one file, without
 * its checks (two lstats) and the module it loads (~0.3 ms on the first call of a plugin). */
export function removeFile(path: string): boolean {
  try {
    unlinkSync(path);
    return true;
  } catch (e) {
    if (errCode(e) === 'ENOENT') return false;
    throw e;
  }
}

/** Create a file that must not exist yet with this content; removed again if the write fails. */
export function writeNew(path: string, buf: Buffer): void {
  const fd = openSync(path, O_CREATE, 0o600);
  try {
    let off = 0;
    while (off < buf.length) off += writeSync(fd, buf, off);
  } catch (e) {
    closeSync(fd);
    unlinkSync(path);
    throw e;
  }
  closeSync(fd);
}

export class ReservationDir {
  constructor(
    readonly dir: string,
    /** Called before every write: throws when the session may no longer write. */
    private readonly guard: () => void,
    /** A fresh temporary file name on the same file system. */
    private readonly tmpPath: () => string,
  ) {}

  isReserved(ip: string): boolean {
    return lstatSync(join(this.dir, ip), { throwIfNoEntry: false }) !== undefined;
  }

  /** Every name that is a reservation (a directory listing, no file contents). */
  reservedIps(): string[] {
    return readdirSync(this.dir).filter((n) => reservationName(n) !== undefined);
  }

  /** The owner a reservation file names; undefined when absent, empty, a link or not a reservation. */
  owner(ip: string): Owner | undefined {
    if (reservationName(ip) === undefined) return undefined;
    let content: string | undefined;
    try {
      content = readNoFollow(join(this.dir, ip), 'absent');
    } catch {
      return undefined;
    }
    return content === undefined ? undefined : parseOwner(content);
  }

  owns(ip: string, owner: Owner): boolean {
    const found = this.owner(ip);
    return found !== undefined && sameOwner(found, owner);
  }

  /** Create the reservation file for `ip`, whole; false when the name exists (taken meanwhile). */
  claim(ip: string, owner: Owner): boolean {
    this.guard();
    const tmp = this.tmpPath();
    writeNew(tmp, Buffer.from(ownerText(owner)));
    try {
      this.guard();
      linkSync(tmp, join(this.dir, ip));
      return true;
    } catch (e) {
      if (errCode(e) === 'EEXIST') return false;
      throw e;
    } finally {
      unlinkSync(tmp);
    }
  }

  /** Remove the reservation of `ip` if `owner` holds it; whether it did. */
  unlinkIfOwned(ip: string, owner: Owner): boolean {
    if (!this.owns(ip, owner)) return false;
    this.guard();
    return this.unlinkOwned(ip);
  }

  /**
   * Undo a claim this session made, also after losing the lock: the file is this attachment's
   * own, and removing it only frees an address (a later session's rebuild sees the change).
   */
  undoClaim(ip: string, owner: Owner): boolean {
    return this.owns(ip, owner) && this.unlinkOwned(ip);
  }

  private unlinkOwned(ip: string): boolean {
    return removeFile(join(this.dir, ip));
  }

  /** The address last handed out from range set `setIndex`, when recorded and readable. */
  lastReservedIp(setIndex: number): string | undefined {
    const text = readNoFollow(join(this.dir, `${LAST_IP_PREFIX}${setIndex}`));
    const a = text === undefined ? undefined : parseIp(text.trim());
    return a ? formatIp(a) : undefined;
  }

  writeLastReservedIp(setIndex: number, ip: string): void {
    this.guard();
    writeNoFollow(join(this.dir, `${LAST_IP_PREFIX}${setIndex}`), ip, this.tmpPath);
  }

  /** Every reservation file with its owner; yields now and then so the lock stays fresh. */
  async walk(): Promise<Reservation[]> {
    const out: Reservation[] = [];
    let n = 0;
    for (const d of readdirSync(this.dir, { withFileTypes: true })) {
      if (!d.isFile() || reservationName(d.name) === undefined) continue;
      if (++n % YIELD_EVERY === 0) await yieldNow();
      const owner = this.owner(d.name);
      if (owner) out.push({ ip: d.name, owner });
    }
    return out;
  }
}

/** Wrap a failure of a store file operation as code 5 naming the store. */
export function storeIoError(dir: string, what: string, e: unknown): CniError {
  return new CniError(ErrorCode.IoFailure, `failed to ${what} in store "${dir}": ${causeText(e)}`, '', { cause: e });
}

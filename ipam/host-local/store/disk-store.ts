/**
 * DiskStore: reservations on disk in the reference host-local's layout, with an index so that
 * no operation has to read every reservation.
 *
 * Layout of `<dataDir>/<network>/` (the first three are the reference's, read and written
 * exactly as it does, so either plugin honours the other's reservations):
 *
 *   <ip>                  one file per reserved address: `<containerID>\r\n<ifname>`
 *                         (files holding only `<containerID>` are legacy and still honoured)
 *   last_reserved_ip.<n>  the address last handed out from range set n (round-robin cursor)
 *   lock                  the reference's flock file; never touched here
 *   podnet/               podnet's own state, all below one name so that nothing but
 *                         reservations and last_reserved_ip ever changes the directory itself:
 *     lock/               proper-lockfile's lock (a directory: mkdir is the atomic step)
 *     index/              one file per attachment, `<containerID>:<ifname>` (hashed when the
 *                         name would be unsafe or long), holding JSON {containerID, ifname, ips};
 *                         JSON never equals a reservation's content, so the reference's walk
 *                         (which reads every file below the directory) never mistakes one
 *     index/.stamp        the network directory's mtime (ns) when the index was last known to
 *                         match the reservation files
 *     tmp/                temporary files, all garbage whenever the lock is free
 *
 * Why an index: the reference finds an attachment's addresses (duplicate check, DEL, CHECK) by
 * reading every file in the directory, so its ADD slows down linearly with the number of
 * reservations. Here ADD and DEL read one index entry and the few files it names.
 *
 * Trust in the index: it is used only when the stamp equals the directory's current mtime.
 * Every podnet operation that changes the directory (creating or removing reservation files,
 * replacing last_reserved_ip) rewrites the stamp before releasing the lock. Anything else that
 * changes the directory (the reference plugin, an operator, a podnet process killed half-way)
 * leaves a different mtime behind, and the next operation rebuilds the index under the lock by
 * walking the files into a temporary directory and renaming it into place. A missing index
 * (first run on a store the reference made) is the same case: migration is a rebuild.
 * Limit: the kernel's mtime has clock-tick granularity, so a foreign change within the same
 * tick as podnet's last change goes unnoticed; that needs the reference to run at the very same
 * moment, which is unsafe anyway (it locks with flock on `lock`, podnet with podnet/lock).
 * Whatever the index says, an entry is believed only for files whose content names its owner,
 * and allocation checks the reservation files themselves, never the index.
 *
 * Crash safety (kill -9 at any point): ADD writes the index entry first (temp + rename), then
 * each reservation file (temp + link(2), which fails if the name exists, so a file appears
 * whole or not at all), then last_reserved_ip, then the stamp (both hints, written in place:
 * see writeInPlace). Killed before a
 * reservation file exists: the entry names files that do not belong to it and is ignored, and
 * DEL or GC removes it. Killed after: the directory changed without a new stamp, so the next
 * operation rebuilds the index from the files, and the runtime's DEL (or GC) releases what was
 * reserved. DEL removes files, then the entry, then writes the stamp; half-done it is redone by
 * the next DEL. The lock directory of a killed process goes stale after `staleMs` (proper-lockfile
 * refreshes a live holder's mtime), and the next process takes it over.
 */
import {
  type Dirent,
  accessSync,
  closeSync,
  constants,
  ftruncateSync,
  linkSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import lockfile from 'proper-lockfile';
import { CniError, ErrorCode, causeText, isCniError } from '../../../plugins/cni/errors.js';
import { formatIp, parseIp, reservationName } from '../ip.js';
import { type Owner, type PickedIp, type Reservation, type Store, type StoreTx, ownerText, parseOwner, sameOwner } from './store.js';

/** podnet's directory inside the network's, and its parts. */
export const STATE_NAME = 'podnet';
export const LOCK_NAME = 'podnet/lock';
export const INDEX_NAME = 'podnet/index';
export const TMP_NAME = 'podnet/tmp';
const STAMP_NAME = '.stamp';
const LAST_IP_PREFIX = 'last_reserved_ip.';

/** Points where a test can hold a process still (to kill it there). */
export type PausePoint = 'locked' | 'after-index' | 'after-ip';

export interface DiskStoreOptions {
  /** A lock older than this is taken over (proper-lockfile's minimum is 2000). */
  staleMs?: number;
  /** Give up waiting for the lock after this long: error 11. */
  lockTimeoutMs?: number;
  /** First and largest wait between lock attempts (randomized, growing by half each time). */
  retryMinMs?: number;
  retryMaxMs?: number;
  /** Test hook, called at each PausePoint. */
  pause?: (point: PausePoint) => void;
}

/**
 * Measured on this 2-core machine (ipam/host-local tests and bench): 100 ADD processes started
 * at once all get the lock well within the timeout with these waits; a lock left by kill -9 is
 * taken over 2-3 s later (stale 2 s; proper-lockfile stamps a new lock up to 1 s ahead).
 */
export const LOCK_DEFAULTS = { staleMs: 2000, lockTimeoutMs: 20_000, retryMinMs: 2, retryMaxMs: 50 } as const;

const YIELD_EVERY = 256;
const yieldNow = () => new Promise<void>((resolve) => setImmediate(resolve));
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const errCode = (e: unknown): string | undefined => (e as NodeJS.ErrnoException | undefined)?.code;
const SAFE_ENTRY = /^[A-Za-z0-9][A-Za-z0-9_.-]*:[^/\0]*$/;

/**
 * FNV-1a, 128 bits: names index entries whose plain name would be unsafe or too long. Not
 * node:crypto, whose import alone costs ~7 ms of a plugin's start-up.
 */
function fnv1a128(text: string): string {
  let h = 0x6c62272e07bb014262b821756295c58dn;
  const prime = 0x0000000001000000000000000000013bn;
  const mask = (1n << 128n) - 1n;
  for (const byte of Buffer.from(text)) h = ((h ^ BigInt(byte)) * prime) & mask;
  return h.toString(16).padStart(32, '0');
}

/** The index entry's file name for an owner. */
export function entryName(o: Owner): string {
  const plain = `${o.containerId.trim()}:${o.ifName ?? ''}`;
  if (SAFE_ENTRY.test(plain) && Buffer.byteLength(plain) <= 200) return plain;
  return `~${fnv1a128(o.ifName === undefined ? `legacy\u0000${ownerText(o)}` : ownerText(o))}`;
}

interface Entry {
  owner: Owner;
  ips: string[];
}

export class DiskStore implements Store {
  readonly dir: string;
  readonly lockPath: string;
  private readonly indexDir: string;
  private readonly tmpDir: string;
  private readonly opts: Required<Omit<DiskStoreOptions, 'pause'>> & Pick<DiskStoreOptions, 'pause'>;

  constructor(dataDir: string, network: string, opts: DiskStoreOptions = {}) {
    this.dir = join(dataDir, network);
    this.lockPath = join(this.dir, LOCK_NAME);
    this.indexDir = join(this.dir, INDEX_NAME);
    this.tmpDir = join(this.dir, TMP_NAME);
    this.opts = { ...LOCK_DEFAULTS, ...opts };
  }

  async withLock<T>(fn: (tx: StoreTx) => T | Promise<T>): Promise<T> {
    try {
      mkdirSync(this.tmpDir, { recursive: true, mode: 0o755 });
    } catch (e) {
      throw new CniError(ErrorCode.IoFailure, `failed to create store directory "${this.dir}": ${causeText(e)}`, '', { cause: e });
    }
    const state = { compromised: undefined as Error | undefined };
    const release = await this.acquire(state);
    try {
      this.opts.pause?.('locked');
      const tx = new DiskTx(this.dir, this.indexDir, this.tmpDir, state, this.opts.pause);
      try {
        await tx.open();
        const out = await fn(tx);
        await tx.commit();
        return out;
      } catch (e) {
        if (isCniError(e)) throw e;
        throw new CniError(ErrorCode.IoFailure, `failed to update store "${this.dir}": ${causeText(e)}`, '', { cause: e });
      }
    } finally {
      try {
        release();
      } catch {
        // Already released as compromised; nothing left to undo.
      }
    }
  }

  /**
   * proper-lockfile's sync variant (plain fs calls, no libuv thread pool: this saves the pool's
   * start-up in a short-lived process) with podnet's own retry loop, which backs off and keeps
   * other errors (EACCES, ENOTDIR) from being retried.
   */
  private async acquire(state: { compromised: Error | undefined }): Promise<() => void> {
    const { staleMs, lockTimeoutMs, retryMinMs, retryMaxMs } = this.opts;
    const deadline = Date.now() + lockTimeoutMs;
    let wait = retryMinMs;
    for (;;) {
      try {
        return lockfile.lockSync(this.dir, {
          lockfilePath: this.lockPath,
          realpath: false,
          stale: staleMs,
          retries: 0,
          onCompromised: (e: Error) => {
            state.compromised = e;
          },
        });
      } catch (e) {
        if (errCode(e) !== 'ELOCKED') {
          throw new CniError(ErrorCode.IoFailure, `failed to lock store "${this.lockPath}": ${causeText(e)}`, '', { cause: e });
        }
        if (Date.now() >= deadline) {
          throw new CniError(
            ErrorCode.TryAgainLater,
            `failed to lock store "${this.lockPath}": held by another process for more than ${lockTimeoutMs} ms`,
          );
        }
        await sleep(wait / 2 + Math.random() * (wait / 2));
        wait = Math.min(wait * 1.5, retryMaxMs);
      }
    }
  }

  exists(): boolean {
    try {
      return lstatSync(this.dir).isDirectory();
    } catch {
      return false;
    }
  }

  probe(): string[] {
    try {
      mkdirSync(this.dir, { recursive: true, mode: 0o755 });
      accessSync(this.dir, constants.R_OK | constants.W_OK | constants.X_OK);
      return readdirSync(this.dir).filter((n) => reservationName(n) !== undefined);
    } catch (e) {
      throw new CniError(ErrorCode.PluginNotAvailable, `failed to use store directory "${this.dir}": ${causeText(e)}`, '', { cause: e });
    }
  }
}

/** One locked session over the store. */
class DiskTx implements StoreTx {
  private stamp: bigint | undefined;
  private counter = 0;
  private walked: Reservation[] | undefined;
  private reindex: Reservation[] | 'walk' | undefined;
  private readonly suffix = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;

  constructor(
    private readonly dir: string,
    private readonly indexDir: string,
    private readonly tmpDir: string,
    private readonly lock: { compromised: Error | undefined },
    private readonly pause: ((p: PausePoint) => void) | undefined,
  ) {}

  /** Clear leftovers of killed processes; rebuild the index unless the stamp vouches for it. */
  async open(): Promise<void> {
    for (const name of readdirSync(this.tmpDir)) rmSync(join(this.tmpDir, name), { recursive: true, force: true });
    const now = this.dirMtime();
    let stamp: bigint | undefined;
    try {
      const raw = JSON.parse(readFileSync(join(this.indexDir, STAMP_NAME), 'utf8')) as { mtimeNs?: unknown };
      if (typeof raw.mtimeNs === 'string' && /^[0-9]+$/.test(raw.mtimeNs)) stamp = BigInt(raw.mtimeNs);
    } catch {
      stamp = undefined;
    }
    this.stamp = stamp;
    if (stamp !== now) {
      this.walked = await this.walk();
      this.writeIndex(this.walked);
      this.stamp = undefined;
    }
  }

  /** Write the index GC left due, then the stamp if the directory changed. */
  async commit(): Promise<void> {
    this.assertLocked();
    if (this.reindex) {
      this.writeIndex(this.reindex === 'walk' ? await this.walk() : this.reindex);
      this.reindex = undefined;
      this.stamp = undefined;
    }
    const now = this.dirMtime();
    if (now !== this.stamp) {
      this.writeInPlace(join(this.indexDir, STAMP_NAME), JSON.stringify({ mtimeNs: now.toString() }));
      this.stamp = now;
    }
  }

  isReserved(ip: string): boolean {
    return lstatSync(join(this.dir, ip), { throwIfNoEntry: false }) !== undefined;
  }

  reservedIps(): string[] {
    return readdirSync(this.dir).filter((n) => reservationName(n) !== undefined);
  }

  lastReservedIp(setIndex: number): string | undefined {
    try {
      const a = parseIp(readFileSync(join(this.dir, `${LAST_IP_PREFIX}${setIndex}`), 'utf8').trim());
      return a ? formatIp(a) : undefined;
    } catch {
      return undefined;
    }
  }

  getByAttachment(containerId: string, ifName: string): Reservation[] {
    return [{ containerId, ifName }, { containerId }].flatMap((owner) => this.owned(owner).map((ip) => ({ ip, owner })));
  }

  reserve(containerId: string, ifName: string, picks: readonly PickedIp[]): void {
    this.assertLocked();
    if (picks.length === 0) return;
    const owner: Owner = { containerId, ifName };
    const before = this.owned(owner);
    this.writeEntry({ owner, ips: [...before, ...picks.map((p) => p.ip)] });
    this.pause?.('after-index');
    const made: string[] = [];
    try {
      for (const p of picks) {
        const tmp = this.tmpPath();
        writeFileSync(tmp, ownerText(owner), { mode: 0o600 });
        try {
          linkSync(tmp, join(this.dir, p.ip));
        } catch (e) {
          if (errCode(e) === 'EEXIST') {
            throw new CniError(ErrorCode.AddressUnavailable, `failed to reserve ${p.ip}: reserved meanwhile by another plugin`);
          }
          throw e;
        } finally {
          unlinkSync(tmp);
        }
        made.push(p.ip);
      }
      this.pause?.('after-ip');
      for (const p of picks) this.writeInPlace(join(this.dir, `${LAST_IP_PREFIX}${p.setIndex}`), p.ip);
    } catch (e) {
      for (const ip of made) this.unlinkIfOwned(ip, owner);
      this.writeEntry({ owner, ips: before });
      if (isCniError(e)) throw e;
      throw new CniError(ErrorCode.IoFailure, `failed to reserve ${picks.map((p) => p.ip).join(' ')} in "${this.dir}": ${causeText(e)}`, '', { cause: e });
    }
  }

  release(containerId: string, ifName: string): string[] {
    this.assertLocked();
    for (const owner of [{ containerId, ifName }, { containerId }]) {
      const entry = this.readEntry(owner);
      if (!entry) continue;
      const released = entry.ips.filter((ip) => this.unlinkIfOwned(ip, owner));
      this.removeEntry(owner);
      if (released.length) return released;
    }
    return [];
  }

  async list(): Promise<Reservation[]> {
    this.walked ??= await this.walk();
    return [...this.walked];
  }

  releaseReservations(rs: readonly Reservation[]): void {
    this.assertLocked();
    const gone = new Set(rs.filter((r) => this.unlinkIfOwned(r.ip, r.owner)).map((r) => r.ip));
    // Rebuild the index too, dropping entries of killed ADDs. A walk made under this lock is
    // current: the index becomes it, minus what went; without one, commit walks again.
    this.walked = this.walked?.filter((r) => !gone.has(r.ip));
    this.reindex = this.walked ?? 'walk';
  }

  // ---- internals

  private assertLocked(): void {
    if (this.lock.compromised) {
      throw new CniError(ErrorCode.TryAgainLater, `failed to hold the lock of store "${this.dir}": ${this.lock.compromised.message}`);
    }
  }

  private dirMtime(): bigint {
    return statSync(this.dir, { bigint: true }).mtimeNs;
  }

  private tmpPath(): string {
    this.counter += 1;
    return join(this.tmpDir, `${this.suffix}.${this.counter}`);
  }

  /**
   * Overwrite an existing small file where it is (one write, then truncate), else create it
   * atomically. Only for the two hints, last_reserved_ip and the stamp: replacing a file by
   * rename costs ~0.6 ms here (ext4 flushes the new file's data on rename-over), writing in
   * place 0.04 ms. A process killed between the write and the truncate leaves a wrong but
   * harmless hint: round-robin starts elsewhere (upstream ignores an unparseable file too), or
   * the stamp no longer matches and the index is rebuilt.
   */
  private writeInPlace(path: string, data: string): void {
    let fd: number;
    try {
      fd = openSync(path, 'r+');
    } catch (e) {
      if (errCode(e) !== 'ENOENT') throw e;
      this.writeAtomic(path, data);
      return;
    }
    try {
      const buf = Buffer.from(data);
      writeSync(fd, buf, 0, buf.length, 0);
      ftruncateSync(fd, buf.length);
    } finally {
      closeSync(fd);
    }
  }

  private writeAtomic(path: string, data: string): void {
    const tmp = this.tmpPath();
    writeFileSync(tmp, data, { mode: 0o600 });
    renameSync(tmp, path);
  }

  /** The owner's addresses listed in the index whose files still name it. */
  private owned(owner: Owner): string[] {
    return (this.readEntry(owner)?.ips ?? []).filter((ip) => this.owns(ip, owner));
  }

  private owns(ip: string, owner: Owner): boolean {
    if (reservationName(ip) === undefined) return false;
    let content: string;
    try {
      content = readFileSync(join(this.dir, ip), 'utf8');
    } catch {
      return false;
    }
    const found = parseOwner(content);
    return found !== undefined && sameOwner(found, owner);
  }

  private unlinkIfOwned(ip: string, owner: Owner): boolean {
    if (!this.owns(ip, owner)) return false;
    try {
      unlinkSync(join(this.dir, ip));
      return true;
    } catch (e) {
      if (errCode(e) === 'ENOENT') return false;
      throw e;
    }
  }

  private readEntry(owner: Owner): Entry | undefined {
    let raw: unknown;
    try {
      raw = JSON.parse(readFileSync(join(this.indexDir, entryName(owner)), 'utf8'));
    } catch {
      return undefined;
    }
    const ips = (raw as { ips?: unknown } | null)?.ips;
    return { owner, ips: Array.isArray(ips) ? ips.filter((ip): ip is string => typeof ip === 'string') : [] };
  }

  private entryJson(e: Entry): string {
    return JSON.stringify({ containerID: e.owner.containerId, ...(e.owner.ifName !== undefined ? { ifname: e.owner.ifName } : {}), ips: e.ips });
  }

  private writeEntry(e: Entry): void {
    if (e.ips.length === 0) {
      this.removeEntry(e.owner);
      return;
    }
    this.writeAtomic(join(this.indexDir, entryName(e.owner)), this.entryJson(e));
  }

  private removeEntry(owner: Owner): void {
    rmSync(join(this.indexDir, entryName(owner)), { force: true });
  }

  /** Every reservation file with its owner; yields now and then so the lock stays fresh. */
  private async walk(): Promise<Reservation[]> {
    const out: Reservation[] = [];
    let n = 0;
    let names: Dirent[];
    names = readdirSync(this.dir, { withFileTypes: true });
    for (const d of names) {
      if (!d.isFile() || reservationName(d.name) === undefined) continue;
      if (++n % YIELD_EVERY === 0) await yieldNow();
      let content: string;
      try {
        content = readFileSync(join(this.dir, d.name), 'utf8');
      } catch {
        continue;
      }
      const owner = parseOwner(content);
      if (owner) out.push({ ip: d.name, owner });
    }
    return out;
  }

  /** Replace the whole index with one built from `rs` (temp dir, then two renames). */
  private writeIndex(rs: readonly Reservation[]): void {
    const groups = new Map<string, Entry>();
    for (const r of rs) {
      const name = entryName(r.owner);
      const g = groups.get(name);
      if (g) g.ips.push(r.ip);
      else groups.set(name, { owner: r.owner, ips: [r.ip] });
    }
    const fresh = this.tmpPath();
    mkdirSync(fresh, { mode: 0o755 });
    for (const [name, e] of groups) writeFileSync(join(fresh, name), this.entryJson(e), { mode: 0o600 });
    const old = this.tmpPath();
    try {
      renameSync(this.indexDir, old);
    } catch (e) {
      if (errCode(e) !== 'ENOENT') throw e;
    }
    renameSync(fresh, this.indexDir);
    rmSync(old, { recursive: true, force: true });
  }
}

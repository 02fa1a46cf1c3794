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
 *     index/<xx>.json     the index, in 256 buckets by a hash of (containerID, ifname): JSON
 *                         lists of {containerID, ifname, ips}. JSON never equals a reservation's
 *                         content, so the reference's walk (it reads every file below the
 *                         directory) never mistakes a bucket for a reservation
 *     stamp               `{"mtimeNs":…}`: the network directory's mtime when the index last
 *                         matched the reservation files; `dirty` while podnet is changing them
 *     tmp/                temporary files, all garbage whenever the lock is free
 *
 * Why an index: the reference finds an attachment's addresses (duplicate check, DEL, CHECK) by
 * reading every file in the directory, so its ADD slows down linearly with the number of
 * reservations. Here ADD and DEL read one small bucket and the few files it names.
 *
 * Why buckets and not one file per attachment: creating a file costs 0.3-0.9 ms on this
 * machine, overwriting a small one in place 0.04 ms. Buckets make the index (re)built from 10,000
 * reservations 256 writes instead of 10,000, and an ADD overwrites one bucket instead of
 * creating a file.
 *
 * Trust in the index (the stamp protocol): the reservation files are the truth, the index a
 * cache of them. The index is used only when the stamp equals the directory's current mtime.
 * Before its first change in a session podnet writes `dirty` into the stamp, and after its last
 * (reservation files, last_reserved_ip, buckets) the directory's new mtime. So any session
 * that dies half-way (kill -9 at any point) leaves `dirty`, and anything else that changes the
 * directory (the reference plugin, an operator) leaves an mtime that differs: either way the
 * next session rebuilds the index by walking the reservation files. A missing stamp (first run
 * on a store the reference made) is the same case: migration is a rebuild. Writes inside one
 * session need no atomicity of their own, which is why buckets and hints are overwritten in
 * place. Limit: the kernel's mtime has clock-tick granularity, so a foreign change within the
 * same tick as podnet's last change goes unnoticed; that needs the reference to run at the very
 * same moment, which is unsafe anyway (it locks with flock on `lock`, podnet with podnet/lock).
 * Even so an index entry is believed only for files whose content names its owner, and
 * allocation checks the reservation files themselves, never the index.
 *
 * Reservation files appear whole or not at all (temp file + link(2), which fails if the name
 * exists), so a killed ADD never leaves an empty or half-written reservation. What it did
 * reserve is found by the rebuild, and the runtime's DEL (or GC) releases it. The lock
 * directory of a killed process goes stale after `staleMs` (proper-lockfile refreshes a live
 * holder's mtime) and the next process takes it over.
 */
import {
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
import { CniError, ErrorCode, causeText, isCniError } from '../../../lib/cni/errors.js';
import { formatIp, parseIp, reservationName } from '../../../lib/addr/addr.js';
import { type Owner, type PickedIp, type Reservation, type Store, type StoreTx, ownerText, parseOwner, sameOwner } from './store.js';

/** podnet's directory inside the network's (`podnet/`), and its parts. */
export const LOCK_NAME = 'podnet/lock';
export const INDEX_NAME = 'podnet/index';
export const STAMP_NAME = 'podnet/stamp';
export const TMP_NAME = 'podnet/tmp';
const LAST_IP_PREFIX = 'last_reserved_ip.';
const DIRTY = 'dirty';
export const BUCKETS = 256;

/** Points where a test can hold a process still (to kill it there). */
export type PausePoint = 'locked' | 'after-ip' | 'after-index';

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
 * Chosen by measurement on this 2-core machine (test/integration/host-local-concurrency.test.ts,
 * test/bench/host-local.bench.ts). A lock held normally lives 1-5 ms; 100 ADDs started at once
 * all get it within a few seconds with waits of 2 ms growing to 50 ms (randomized), so 20 s
 * before giving up (code 11) leaves a wide margin. Stale after 4 s: a holder refreshes its
 * lock every 2 s (proper-lockfile: stale/2), long walks yield for that, so only a holder
 * stalled for seconds could lose it (then onCompromised stops it before its next write); a lock
 * left by kill -9 is taken over 4-5 s later (proper-lockfile stamps a new lock up to 1 s ahead).
 */
export const LOCK_DEFAULTS = { staleMs: 4000, lockTimeoutMs: 20_000, retryMinMs: 2, retryMaxMs: 50 } as const;

/** Files handled between yields to the event loop in long walks (the lock's refresh timer). */
const YIELD_EVERY = 64;
const yieldNow = () => new Promise<void>((resolve) => setImmediate(resolve));
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const errCode = (e: unknown): string | undefined => (e as NodeJS.ErrnoException | undefined)?.code;

/** The bucket an owner's index entry lives in: FNV-1a (32 bits) of its key, modulo 256. */
export function bucketOf(o: Owner): number {
  const key = `${o.containerId}\u0000${o.ifName ?? '\u0000legacy'}`;
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  return (h >>> 0) % BUCKETS;
}

export const bucketName = (b: number): string => `${b.toString(16).padStart(2, '0')}.json`;

interface Entry {
  owner: Owner;
  ips: string[];
}

type Json = { containerID: string; ifname?: string; ips: string[] };

function entryJson(e: Entry): Json {
  return { containerID: e.owner.containerId, ...(e.owner.ifName !== undefined ? { ifname: e.owner.ifName } : {}), ips: e.ips };
}

/** Decode a bucket; undefined when it is not one (a torn write the stamp did not catch). */
function parseBucket(text: string): Entry[] | undefined {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!Array.isArray(raw)) return undefined;
  const out: Entry[] = [];
  for (const j of raw as Partial<Json>[]) {
    if (typeof j?.containerID !== 'string' || !Array.isArray(j.ips)) return undefined;
    const owner: Owner = typeof j.ifname === 'string' ? { containerId: j.containerID, ifName: j.ifname } : { containerId: j.containerID };
    out.push({ owner, ips: j.ips.filter((ip): ip is string => typeof ip === 'string') });
  }
  return out;
}

export class DiskStore implements Store {
  readonly dir: string;
  readonly lockPath: string;
  private readonly tmpDir: string;
  private readonly opts: Required<Omit<DiskStoreOptions, 'pause'>> & Pick<DiskStoreOptions, 'pause'>;

  constructor(dataDir: string, network: string, opts: DiskStoreOptions = {}) {
    this.dir = join(dataDir, network);
    this.lockPath = join(this.dir, LOCK_NAME);
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
      const tx = new DiskTx(this.dir, state, this.opts.pause);
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
  private readonly indexDir: string;
  private readonly stampPath: string;
  private readonly tmpDir: string;
  /** The stamp says `dirty`: this session has begun changing things. */
  private dirty = false;
  private readonly buckets = new Map<number, Entry[]>();
  private readonly changed = new Set<number>();
  private walked: Reservation[] | undefined;
  private rebuild: Reservation[] | 'walk' | undefined;
  private counter = 0;
  private readonly suffix = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;

  constructor(
    private readonly dir: string,
    private readonly lock: { compromised: Error | undefined },
    private readonly pause: ((p: PausePoint) => void) | undefined,
  ) {
    this.indexDir = join(dir, INDEX_NAME);
    this.stampPath = join(dir, STAMP_NAME);
    this.tmpDir = join(dir, TMP_NAME);
  }

  /** Clear leftovers of killed processes; rebuild the index unless the stamp vouches for it. */
  async open(): Promise<void> {
    for (const name of readdirSync(this.tmpDir)) rmSync(join(this.tmpDir, name), { recursive: true, force: true });
    let stamp: bigint | undefined;
    try {
      const text = readFileSync(this.stampPath, 'utf8');
      this.dirty = text === DIRTY;
      const raw = JSON.parse(text) as { mtimeNs?: unknown };
      if (typeof raw.mtimeNs === 'string' && /^[0-9]+$/.test(raw.mtimeNs)) stamp = BigInt(raw.mtimeNs);
    } catch {
      stamp = undefined;
    }
    if (stamp !== this.dirMtime() || !lstatSync(this.indexDir, { throwIfNoEntry: false })?.isDirectory()) {
      this.walked = await this.walk();
      await this.writeIndex(this.walked);
    }
  }

  /** Write what changed in the index (or all of it, after GC), then the stamp. */
  async commit(): Promise<void> {
    this.assertLocked();
    if (this.rebuild) {
      await this.writeIndex(this.rebuild === 'walk' ? await this.walk() : this.rebuild);
      this.rebuild = undefined;
    }
    for (const b of this.changed) this.writeBucket(b, this.buckets.get(b) ?? []);
    this.changed.clear();
    if (this.dirty) {
      this.pause?.('after-index');
      this.writeInPlace(this.stampPath, JSON.stringify({ mtimeNs: this.dirMtime().toString() }));
      this.dirty = false;
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
    if (picks.length === 0) return;
    const owner: Owner = { containerId, ifName };
    const before = this.owned(owner);
    this.markDirty();
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
      if (isCniError(e)) throw e;
      throw new CniError(ErrorCode.IoFailure, `failed to reserve ${picks.map((p) => p.ip).join(' ')} in "${this.dir}": ${causeText(e)}`, '', { cause: e });
    }
    this.setEntry(owner, [...before, ...picks.map((p) => p.ip)]);
  }

  release(containerId: string, ifName: string): string[] {
    for (const owner of [{ containerId, ifName }, { containerId }]) {
      const entry = this.entry(owner);
      if (!entry) continue;
      this.markDirty();
      const released = entry.ips.filter((ip) => this.unlinkIfOwned(ip, owner));
      this.setEntry(owner, []);
      if (released.length) return released;
    }
    return [];
  }

  async list(): Promise<Reservation[]> {
    this.walked ??= await this.walk();
    return [...this.walked];
  }

  releaseReservations(rs: readonly Reservation[]): void {
    this.markDirty();
    const gone = new Set(rs.filter((r) => this.unlinkIfOwned(r.ip, r.owner)).map((r) => r.ip));
    // Rebuild the index too, dropping whatever is stale in it. A walk made under this lock is
    // current: the index becomes it, minus what went; without one, commit walks again.
    this.walked = this.walked?.filter((r) => !gone.has(r.ip));
    this.rebuild = this.walked ?? 'walk';
  }

  // ---- internals

  private assertLocked(): void {
    if (this.lock.compromised) {
      throw new CniError(ErrorCode.TryAgainLater, `failed to hold the lock of store "${this.dir}": ${this.lock.compromised.message}`);
    }
  }

  /** Before the session's first change: from now on a crash leaves the index untrusted. */
  private markDirty(): void {
    this.assertLocked();
    if (this.dirty) return;
    this.writeInPlace(this.stampPath, DIRTY);
    this.dirty = true;
  }

  private dirMtime(): bigint {
    return statSync(this.dir, { bigint: true }).mtimeNs;
  }

  private tmpPath(): string {
    this.counter += 1;
    return join(this.tmpDir, `${this.suffix}.${this.counter}`);
  }

  /**
   * Overwrite a small file where it is (one write, then truncate), or create it (temp + rename)
   * when absent. Replacing a file by rename costs ~0.6 ms here (ext4 flushes the new file's data
   * on rename-over), writing in place 0.04 ms. Used for the stamp, the buckets (the stamp
   * protocol covers a torn write) and last_reserved_ip, a hint: a process killed between write
   * and truncate leaves a wrong start for round-robin, or an unparseable file that upstream
   * ignores as well.
   */
  private writeInPlace(path: string, data: string): void {
    let fd: number;
    try {
      fd = openSync(path, 'r+');
    } catch (e) {
      if (errCode(e) !== 'ENOENT') throw e;
      const tmp = this.tmpPath();
      writeFileSync(tmp, data, { mode: 0o600 });
      renameSync(tmp, path);
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

  private bucket(b: number): Entry[] {
    let entries = this.buckets.get(b);
    if (entries) return entries;
    let text: string | undefined;
    try {
      text = readFileSync(join(this.indexDir, bucketName(b)), 'utf8');
    } catch (e) {
      if (errCode(e) !== 'ENOENT') throw e;
    }
    const parsed = text === undefined ? [] : parseBucket(text);
    if (!parsed) {
      // Damaged although the stamp vouched for it (changed by hand?): rebuild at commit.
      this.markDirty();
      this.rebuild ??= 'walk';
    }
    entries = parsed ?? [];
    this.buckets.set(b, entries);
    return entries;
  }

  private entry(owner: Owner): Entry | undefined {
    return this.bucket(bucketOf(owner)).find((e) => sameOwner(e.owner, owner));
  }

  private setEntry(owner: Owner, ips: string[]): void {
    const b = bucketOf(owner);
    const rest = this.bucket(b).filter((e) => !sameOwner(e.owner, owner));
    this.buckets.set(b, ips.length ? [...rest, { owner, ips }] : rest);
    this.changed.add(b);
  }

  private writeBucket(b: number, entries: Entry[]): void {
    const path = join(this.indexDir, bucketName(b));
    if (entries.length) this.writeInPlace(path, JSON.stringify(entries.map(entryJson)));
    else rmSync(path, { force: true });
  }

  /** The owner's addresses listed in the index whose files still name it. */
  private owned(owner: Owner): string[] {
    return (this.entry(owner)?.ips ?? []).filter((ip) => this.owns(ip, owner));
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

  /** Every reservation file with its owner; yields now and then so the lock stays fresh. */
  private async walk(): Promise<Reservation[]> {
    const out: Reservation[] = [];
    let n = 0;
    for (const d of readdirSync(this.dir, { withFileTypes: true })) {
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

  /** Replace the whole index with one built from `rs`: every bucket rewritten or removed. */
  private async writeIndex(rs: readonly Reservation[]): Promise<void> {
    this.markDirty();
    mkdirSync(this.indexDir, { recursive: true, mode: 0o755 });
    const fresh = new Map<number, Entry[]>();
    for (const r of rs) {
      const b = bucketOf(r.owner);
      const entries = fresh.get(b) ?? [];
      const e = entries.find((x) => sameOwner(x.owner, r.owner));
      if (e) e.ips.push(r.ip);
      else entries.push({ owner: r.owner, ips: [r.ip] });
      fresh.set(b, entries);
    }
    const existing = new Set(readdirSync(this.indexDir));
    for (let b = 0; b < BUCKETS; b++) {
      if (b % YIELD_EVERY === 0) await yieldNow();
      const entries = fresh.get(b) ?? [];
      if (entries.length || existing.has(bucketName(b))) this.writeBucket(b, entries);
    }
    for (const name of existing) {
      // Anything else in there (an older podnet's layout) is not part of this index.
      if (!/^[0-9a-f]{2}\.json$/.test(name)) rmSync(join(this.indexDir, name), { recursive: true, force: true });
    }
    this.buckets.clear();
    for (const [b, entries] of fresh) this.buckets.set(b, entries);
    this.changed.clear();
  }
}

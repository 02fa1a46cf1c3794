/**
 * DiskStore: the Store on disk, composed of three parts that each read on their own:
 *
 *   reservation-dir.ts  the reference host-local's layout (reservation files, last_reserved_ip),
 *                       which both plugins read and write — the compatible part;
 *   lock.ts             podnet's lock across processes, `podnet/lock`, with a safe takeover;
 *   owner-index.ts      podnet's index by owner (podnet/index, podnet/stamp), a cache of the
 *                       files that saves walking them (optional: `index: false` walks instead).
 *
 * podnet keeps everything of its own below `<network>/podnet/`, so that nothing but reservations
 * and last_reserved_ip ever changes the network directory itself; `podnet/tmp/` holds temporary
 * files, all garbage whenever the lock is free.
 *
 * A session (`withLock`) is all or nothing for the reservations it makes: when anything fails
 * before its commit is complete (a full disk while writing the index, a lost lock, a taken
 * address), the reservation files it created are removed again, so a failed ADD reserves
 * nothing. A session killed outright (kill -9) leaves the stamp `dirty`; the next one rebuilds the
 * index, and the runtime's DEL (or GC) releases what it had reserved.
 *
 * `<dataDir>/<network>` itself may be a symbolic link to a directory (a store moved to another
 * disk): every verb resolves it the same way. Links below it are refused (reservation-dir.ts).
 */
import { accessSync, constants, lstatSync, mkdirSync, readdirSync, realpathSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { CniError, ErrorCode, causeText, isCniError } from '../../../lib/cni/errors.js';
import { reservationName } from '../../../lib/addr/addr.js';
import { type LockOptions, StoreLock } from './lock.js';
import { OwnerIndex } from './owner-index.js';
import { ReservationDir, ensureRealDir, storeIoError } from './reservation-dir.js';
import { AddressTakenError, type Owner, type PickedIp, type Reservation, type Store, type StoreTx } from './store.js';

export { BUCKETS, INDEX_NAME, STAMP_NAME, bucketName, bucketOf } from './owner-index.js';

/** podnet's directory inside the network's (`podnet/`), and its parts. */
export const LOCK_NAME = 'podnet/lock';
export const TMP_NAME = 'podnet/tmp';

/** Points where a test can hold a process still (to kill or stop it there). */
export type PausePoint = 'locked' | 'after-ip' | 'after-index';

export interface DiskStoreOptions extends Partial<LockOptions> {
  /** Keep podnet's index (default); false: every lookup by owner walks the files, as upstream. */
  index?: boolean;
  /** Test hook, called at each PausePoint. */
  pause?: (point: PausePoint) => void;
}

/**
 * Chosen by measurement (test/integration/host-local-concurrency.test.ts,
 * test/bench/host-local.bench.ts). A lock held normally lives 1-5 ms; 100 ADDs started at once
 * all get it within a few seconds with waits of 2 ms growing to 50 ms (randomized), so 20 s
 * before giving up (code 11) leaves a wide margin. Stale after 4 s: a holder refreshes its lock
 * every 2 s, long walks yield for that, so only a holder stalled for seconds loses it (and then
 * writes nothing more); a lock left by kill -9 is taken over 4 s later.
 */
export const LOCK_DEFAULTS: LockOptions = { staleMs: 4000, lockTimeoutMs: 20_000, retryMinMs: 2, retryMaxMs: 50 };

export class DiskStore implements Store {
  readonly dir: string;
  private readonly opts: LockOptions & { index: boolean; pause: ((p: PausePoint) => void) | undefined };

  constructor(dataDir: string, network: string, opts: DiskStoreOptions = {}) {
    this.dir = join(dataDir, network);
    const { index, pause, ...lock } = opts;
    this.opts = { ...LOCK_DEFAULTS, ...definedOnly(lock), index: index ?? true, pause };
  }

  /** The store directory every verb uses: `dir`, or what it links to. */
  private resolved(): string {
    const st = lstatSync(this.dir, { throwIfNoEntry: false });
    return st?.isSymbolicLink() ? realpathSync(this.dir) : this.dir;
  }

  async withLock<T>(fn: (tx: StoreTx) => T | Promise<T>): Promise<T> {
    let dir: string;
    try {
      mkdirSync(this.dir, { recursive: true, mode: 0o755 });
      dir = this.resolved();
      for (const sub of ['podnet', TMP_NAME]) ensureRealDir(join(dir, sub));
    } catch (e) {
      if (isCniError(e)) throw e;
      throw new CniError(ErrorCode.IoFailure, `failed to create store directory "${this.dir}": ${causeText(e)}`, '', { cause: e });
    }
    const lock = await StoreLock.acquire(join(dir, LOCK_NAME), join(dir, TMP_NAME), this.opts);
    try {
      this.opts.pause?.('locked');
      const tx = new DiskTx(dir, lock, this.opts.index, this.opts.pause);
      try {
        await tx.open();
        const out = await fn(tx);
        await tx.commit();
        return out;
      } catch (e) {
        tx.rollback();
        if (isCniError(e)) throw e;
        throw storeIoError(dir, 'update reservations', e);
      }
    } finally {
      try {
        lock.release();
      } catch {
        // A lock we cannot remove goes stale and is taken over.
      }
    }
  }

  exists(): boolean {
    try {
      return lstatSync(this.resolved()).isDirectory();
    } catch {
      return false;
    }
  }

  probe(): string[] {
    try {
      mkdirSync(this.dir, { recursive: true, mode: 0o755 });
      const dir = this.resolved();
      accessSync(dir, constants.R_OK | constants.W_OK | constants.X_OK);
      return readdirSync(dir).filter((n) => reservationName(n) !== undefined);
    } catch (e) {
      throw new CniError(ErrorCode.PluginNotAvailable, `failed to use store directory "${this.dir}": ${causeText(e)}`, '', { cause: e });
    }
  }
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** One locked session over the store: the reference layout, plus the index when kept. */
class DiskTx implements StoreTx {
  private readonly files: ReservationDir;
  private readonly index: OwnerIndex | undefined;
  private readonly tmpDir: string;
  private walked: Reservation[] | undefined;
  /** Reservation files this session created: removed again if it does not commit. */
  private claimed: { ip: string; owner: Owner }[] = [];
  private counter = 0;
  private readonly suffix = `${process.pid.toString(36)}${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;

  constructor(
    private readonly dir: string,
    private readonly lock: StoreLock,
    withIndex: boolean,
    private readonly pause: ((p: PausePoint) => void) | undefined,
  ) {
    this.tmpDir = join(dir, TMP_NAME);
    const guard = () => lock.verify();
    const tmp = () => this.tmpPath();
    this.files = new ReservationDir(dir, guard, tmp);
    this.index = withIndex ? new OwnerIndex(this.files, guard, tmp) : undefined;
  }

  /** Clear leftovers of killed processes; bring the index up to date. */
  async open(): Promise<void> {
    const leftovers = readdirSync(this.tmpDir);
    if (leftovers.length) {
      this.lock.verify();
      for (const name of leftovers) rmSync(join(this.tmpDir, name), { recursive: true, force: true });
    }
    this.walked = await this.index?.open();
  }

  async commit(): Promise<void> {
    this.lock.verify();
    await this.index?.commit(() => this.pause?.('after-index'));
    this.claimed = [];
  }

  /** Remove what this session reserved (it failed before its commit completed). */
  rollback(): void {
    for (const c of this.claimed.reverse()) {
      try {
        this.files.undoClaim(c.ip, c.owner);
      } catch {
        // The file cannot be removed: the stamp stays dirty and DEL/GC release it later.
      }
    }
    this.claimed = [];
  }

  isReserved(ip: string): boolean {
    return this.files.isReserved(ip);
  }

  reservedIps(): string[] {
    return this.files.reservedIps();
  }

  lastReservedIp(setIndex: number): string | undefined {
    return this.files.lastReservedIp(setIndex);
  }

  getByAttachment(containerId: string, ifName: string): Reservation[] {
    return [{ containerId, ifName }, { containerId }].flatMap((owner) => this.owned(owner).map((ip) => ({ ip, owner })));
  }

  reserve(containerId: string, ifName: string, picks: readonly PickedIp[]): void {
    if (picks.length === 0) return;
    const owner: Owner = { containerId, ifName };
    const before = this.owned(owner);
    this.index?.markDirty();
    const made: string[] = [];
    try {
      for (const p of picks) {
        if (!this.files.claim(p.ip, owner)) throw new AddressTakenError(p.ip);
        made.push(p.ip);
        this.claimed.push({ ip: p.ip, owner });
      }
      this.pause?.('after-ip');
      for (const p of picks) this.files.writeLastReservedIp(p.setIndex, p.ip);
    } catch (e) {
      for (const ip of made) this.files.undoClaim(ip, owner);
      this.claimed = this.claimed.filter((c) => !made.includes(c.ip));
      if (isCniError(e)) throw e;
      throw storeIoError(this.dir, `reserve ${picks.map((p) => p.ip).join(' ')}`, e);
    }
    this.index?.set(owner, [...before, ...picks.map((p) => p.ip)]);
    this.walked?.push(...picks.map((p) => ({ ip: p.ip, owner })));
  }

  release(containerId: string, ifName: string): string[] {
    for (const owner of [{ containerId, ifName }, { containerId }]) {
      const ips = this.owned(owner);
      if (!ips.length) continue;
      this.index?.markDirty();
      const released = ips.filter((ip) => this.files.unlinkIfOwned(ip, owner));
      this.index?.set(owner, []);
      if (released.length) return released;
    }
    return [];
  }

  async list(): Promise<Reservation[]> {
    this.walked ??= await this.files.walk();
    return [...this.walked];
  }

  releaseReservations(rs: readonly Reservation[]): void {
    this.index?.markDirty();
    const gone = new Set(rs.filter((r) => this.files.unlinkIfOwned(r.ip, r.owner)).map((r) => r.ip));
    // Rebuild the index too, dropping whatever is stale in it. A walk made under this lock is
    // current: the index becomes it, minus what went; without one, commit walks again.
    this.walked = this.walked?.filter((r) => !gone.has(r.ip));
    this.index?.replaceAll(this.walked);
  }

  /** The owner's addresses whose files still name it: from the index, or by walking. */
  private owned(owner: Owner): string[] {
    if (this.index) return this.index.listed(owner).filter((ip) => this.files.owns(ip, owner));
    // Without the index: one walk per session, kept current by this session's own changes.
    return this.walkSync().filter((r) => this.files.owns(r.ip, owner) && sameOwnerText(r.owner, owner)).map((r) => r.ip);
  }

  /** The reservations, walked once per session (synchronously: StoreTx lookups are sync). */
  private walkSync(): Reservation[] {
    if (!this.walked) {
      const out: Reservation[] = [];
      for (const ip of this.files.reservedIps()) {
        const owner = this.files.owner(ip);
        if (owner) out.push({ ip, owner });
      }
      this.walked = out;
    }
    return this.walked;
  }

  private tmpPath(): string {
    this.counter += 1;
    return join(this.tmpDir, `${this.suffix}.${this.counter}`);
  }
}

const sameOwnerText = (a: Owner, b: Owner): boolean => a.containerId === b.containerId && a.ifName === b.ifName;

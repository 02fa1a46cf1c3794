/**
 * OwnerIndex: podnet's index of the reservation files by owner, so that ADD (duplicate check),
 * DEL and CHECK read one small bucket and the few files it names instead of every reservation.
 * It is a cache of ReservationDir and nothing else: dropping it (podnet/index and podnet/stamp)
 * loses nothing, the next session rebuilds it from the files.
 *
 *   podnet/index/<xx>.json  256 buckets by a hash of (containerID, ifname): JSON lists of
 *                           {containerID, ifname, ips}. JSON never equals a reservation's
 *                           content, so the reference's walk (it reads every file below the
 *                           directory) never mistakes a bucket for a reservation
 *   podnet/stamp            `{"mtimeNs":…}`: the network directory's mtime when the index last
 *                           matched the reservation files; `dirty` while podnet is changing them
 *
 * What it pays (npm run bench -- host-local, "what the index pays"): on an empty store it costs
 * about a millisecond (its reads and writes); from ~100 reservations on — a node's /24 fills to
 * 253 — a walk of every file in a freshly started process costs more than that, and it grows
 * linearly (hundreds of ms at 10,000) while an indexed ADD or DEL stays flat. So it stays.
 *
 * Why buckets and not one file per attachment: creating a file costs far more than overwriting a
 * small one in place, and buckets make a rebuild from 10,000 reservations 256 writes.
 *
 * Trust (the stamp protocol): the index is used only when the stamp equals the directory's
 * current mtime. Before its first change in a session podnet writes `dirty` into the stamp, and
 * after its last (reservation files, last_reserved_ip, buckets) the directory's new mtime. So any
 * session that dies half-way leaves `dirty`, and anything else that changes the directory (the
 * reference plugin, an operator) leaves an mtime that differs: either way the next session
 * rebuilds the index by walking the reservation files. A missing stamp (first run on a store the
 * reference made) is the same case: migration is a rebuild. Limit: the kernel's mtime has
 * clock-tick granularity, and a foreign change during podnet's own session is folded into the
 * stamp it writes; so an index entry is believed only for files whose content names its owner,
 * and allocation checks the reservation files themselves, never the index.
 */
import { lstatSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fnv1a32 } from '../../../lib/hash/fnv.js';
import { type ReservationDir, assertRealDir, ensureRealDir, readNoFollow, removeFile, writeNoFollow } from './reservation-dir.js';
import { type Owner, type Reservation, sameOwner } from './store.js';

export const INDEX_NAME = 'podnet/index';
export const STAMP_NAME = 'podnet/stamp';
const DIRTY = 'dirty';
export const BUCKETS = 256;
const YIELD_EVERY = 64;
const yieldNow = () => new Promise<void>((resolve) => setImmediate(resolve));

/** The bucket an owner's index entry lives in: FNV-1a (32 bits, lib/hash/fnv.ts) of its key,
 * modulo 256. On disk: the key and the hash must not change (a test pins known buckets). */
export function bucketOf(o: Owner): number {
  return fnv1a32(`${o.containerId}\u0000${o.ifName ?? '\u0000legacy'}`) % BUCKETS;
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

/** One locked session's view of the index. */
export class OwnerIndex {
  private readonly indexDir: string;
  private readonly stampPath: string;
  /** The stamp says `dirty`: this session has begun changing things. */
  private dirty = false;
  private readonly buckets = new Map<number, Entry[]>();
  private readonly changed = new Set<number>();
  private rebuild: Reservation[] | 'walk' | undefined;

  constructor(
    private readonly files: ReservationDir,
    private readonly guard: () => void,
    private readonly tmpPath: () => string,
  ) {
    this.indexDir = join(files.dir, INDEX_NAME);
    this.stampPath = join(files.dir, STAMP_NAME);
  }

  /**
   * Rebuild unless the stamp vouches for the index; returns the walk when it made one (the
   * session may reuse it: it is current under this lock).
   */
  async open(): Promise<Reservation[] | undefined> {
    let stamp: bigint | undefined;
    const text = readNoFollow(this.stampPath);
    if (text !== undefined) {
      this.dirty = text === DIRTY;
      try {
        const raw = JSON.parse(text) as { mtimeNs?: unknown };
        if (typeof raw.mtimeNs === 'string' && /^[0-9]+$/.test(raw.mtimeNs)) stamp = BigInt(raw.mtimeNs);
      } catch {
        stamp = undefined;
      }
    }
    if (stamp === this.dirMtime() && assertRealDir(this.indexDir)) return undefined;
    const walked = await this.files.walk();
    await this.writeAll(walked);
    return walked;
  }

  /** Before the session's first change: from now on a crash leaves the index untrusted. */
  markDirty(): void {
    this.guard();
    if (this.dirty) return;
    writeNoFollow(this.stampPath, DIRTY, this.tmpPath);
    this.dirty = true;
  }

  /** The owner's addresses as the index lists them (callers check the files). */
  listed(owner: Owner): string[] {
    return this.bucket(bucketOf(owner)).find((e) => sameOwner(e.owner, owner))?.ips ?? [];
  }

  set(owner: Owner, ips: string[]): void {
    const b = bucketOf(owner);
    const rest = this.bucket(b).filter((e) => !sameOwner(e.owner, owner));
    this.buckets.set(b, ips.length ? [...rest, { owner, ips }] : rest);
    this.changed.add(b);
  }

  /** Rebuild the whole index at commit: from `rs` (a current walk), or from a new walk. */
  replaceAll(rs: Reservation[] | undefined): void {
    this.rebuild = rs ?? 'walk';
  }

  /** Write what changed (or all of it), then the stamp; `beforeStamp` is a test pause point. */
  async commit(beforeStamp?: () => void): Promise<void> {
    if (this.rebuild) {
      await this.writeAll(this.rebuild === 'walk' ? await this.files.walk() : this.rebuild);
      this.rebuild = undefined;
    }
    for (const b of this.changed) this.writeBucket(b, this.buckets.get(b) ?? []);
    this.changed.clear();
    if (this.dirty) {
      beforeStamp?.();
      this.guard();
      writeNoFollow(this.stampPath, JSON.stringify({ mtimeNs: this.dirMtime().toString() }), this.tmpPath);
      this.dirty = false;
    }
  }

  private dirMtime(): bigint {
    return statSync(this.files.dir, { bigint: true }).mtimeNs;
  }

  private bucket(b: number): Entry[] {
    let entries = this.buckets.get(b);
    if (entries) return entries;
    const text = readNoFollow(join(this.indexDir, bucketName(b)));
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

  private writeBucket(b: number, entries: Entry[]): void {
    this.guard();
    const path = join(this.indexDir, bucketName(b));
    if (entries.length) writeNoFollow(path, JSON.stringify(entries.map(entryJson)), this.tmpPath);
    else removeFile(path);
  }

  /** Replace the whole index with one built from `rs`: every bucket rewritten or removed. */
  private async writeAll(rs: readonly Reservation[]): Promise<void> {
    this.markDirty();
    ensureRealDir(this.indexDir);
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
      if (!/^[0-9a-f]{2}\.json$/.test(name) || lstatSync(join(this.indexDir, name), { throwIfNoEntry: false })?.isSymbolicLink()) {
        this.guard();
        rmSync(join(this.indexDir, name), { recursive: true, force: true });
      }
    }
    this.buckets.clear();
    for (const [b, entries] of fresh) this.buckets.set(b, entries);
    this.changed.clear();
  }
}

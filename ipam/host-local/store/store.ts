/**
 * Where reservations live. The allocator (pure policy) sees only this interface; DiskStore keeps
 * the reference host-local's on-disk layout, MemoryStore is the fake for unit tests.
 *
 * Addresses cross this interface as canonical text (`10.22.0.5`, `fd00::5`), the reference's
 * file names.
 */

import { CniError, ErrorCode } from '../../../lib/cni/errors.js';

/**
 * Who holds a reservation. The reference writes `<containerID>\r\n<ifname>`; files written by
 * host-local before it recorded interface names hold only the container ID (`ifName` absent).
 */
export interface Owner {
  containerId: string;
  ifName?: string;
}

export interface Reservation {
  ip: string;
  owner: Owner;
}

export interface PickedIp {
  ip: string;
  /** Index of the range set the address came from: names `last_reserved_ip.<setIndex>`. */
  setIndex: number;
}

/** Operations valid only while the store's lock is held (inside `Store.withLock`). */
export interface StoreTx {
  /** Whether anyone (podnet or another host-local) holds this address. */
  isReserved(ip: string): boolean;
  /** Every reserved address (a directory listing, no file contents). */
  reservedIps(): string[];
  /** The address last handed out from range set `setIndex`, when recorded and readable. */
  lastReservedIp(setIndex: number): string | undefined;
  /**
   * The attachment's reservations: those owned by (containerId, ifName), then legacy ones owned
   * by containerId alone (upstream GetByID returns both).
   */
  getByAttachment(containerId: string, ifName: string): Reservation[];
  /**
   * Reserve every pick for the attachment, all or none, and record each as its set's last
   * reserved address. Throws AddressTakenError (code 101, naming the address) when one turns out
   * to be taken after all — another plugin (the reference host-local locks with its own lock)
   * may reserve between the allocator's look and this.
   */
  reserve(containerId: string, ifName: string, picks: readonly PickedIp[]): void;
  /**
   * Release the attachment's addresses; when it owns none, the legacy ones of containerId (as
   * upstream ReleaseByID). Returns what was released; releasing nothing is not an error.
   */
  release(containerId: string, ifName: string): string[];
  /** Every reservation with its owner, found by walking the store itself (not any index). */
  list(): Promise<Reservation[]>;
  /**
   * Release these reservations, each only if it still has the owner given, and tidy the store's
   * own bookkeeping (GC).
   */
  releaseReservations(rs: readonly Reservation[]): void;
}

export interface Store {
  /** Whether the store exists at all (DEL and GC have nothing to do when it does not). */
  exists(): boolean;
  /** Run `fn` holding the store's exclusive lock (across processes for the disk store). */
  withLock<T>(fn: (tx: StoreTx) => T | Promise<T>): Promise<T>;
  /**
   * For STATUS, without the lock: throw (with the path in the message) unless the store can be
   * created, read and written; return the reserved addresses (a listing only).
   */
  probe(): string[];
}

/** The reference's file content for an owner. */
export const ownerText = (o: Owner): string =>
  o.ifName === undefined ? o.containerId.trim() : `${o.containerId.trim()}\r\n${o.ifName}`;

/** Decode a reservation file's content (surrounding white space ignored, as upstream). */
export function parseOwner(content: string): Owner | undefined {
  const text = content.trim();
  if (text === '') return undefined;
  const nl = text.indexOf('\r\n');
  if (nl < 0) return { containerId: text };
  return { containerId: text.slice(0, nl), ifName: text.slice(nl + 2) };
}

export const sameOwner = (a: Owner, b: Owner): boolean => ownerText(a) === ownerText(b);

/** A pick that another writer reserved between the allocator's look and `reserve` (code 101). */
export class AddressTakenError extends CniError {
  constructor(readonly ip: string) {
    super(ErrorCode.AddressUnavailable, `failed to reserve ${ip}: reserved meanwhile by another plugin`);
  }
}

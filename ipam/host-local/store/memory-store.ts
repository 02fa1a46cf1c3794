import { AddressTakenError, type Owner, type PickedIp, type Reservation, type Store, type StoreTx, ownerText, sameOwner } from './store.js';

/** An in-memory Store with the disk store's semantics, for unit tests of the allocator. */
export class MemoryStore implements Store {
  /** ip → owner; tests may seed it directly, as files written by another plugin would be. */
  readonly reservations = new Map<string, Owner>();
  readonly lastReserved = new Map<number, string>();
  private queue: Promise<unknown> = Promise.resolve();

  withLock<T>(fn: (tx: StoreTx) => T | Promise<T>): Promise<T> {
    const run = this.queue.then(() => fn(this.tx));
    this.queue = run.catch(() => undefined);
    return run;
  }

  exists(): boolean {
    return true;
  }

  probe(): string[] {
    return [...this.reservations.keys()];
  }

  private readonly tx: StoreTx = {
    isReserved: (ip) => this.reservations.has(ip),
    reservedIps: () => [...this.reservations.keys()],
    lastReservedIp: (setIndex) => this.lastReserved.get(setIndex),
    getByAttachment: (containerId, ifName) => {
      const full = ownerText({ containerId, ifName });
      const legacy = ownerText({ containerId });
      const out: Reservation[] = [];
      for (const want of [full, legacy]) {
        for (const [ip, owner] of this.reservations) if (ownerText(owner) === want) out.push({ ip, owner });
      }
      return out;
    },
    reserve: (containerId, ifName, picks: readonly PickedIp[]) => {
      const taken = picks.find((p) => this.reservations.has(p.ip));
      if (taken) throw new AddressTakenError(taken.ip);
      for (const p of picks) {
        this.reservations.set(p.ip, { containerId, ifName });
        this.lastReserved.set(p.setIndex, p.ip);
      }
    },
    release: (containerId, ifName) => {
      for (const owner of [{ containerId, ifName }, { containerId }]) {
        const ips = [...this.reservations].filter(([, o]) => sameOwner(o, owner)).map(([ip]) => ip);
        for (const ip of ips) this.reservations.delete(ip);
        if (ips.length) return ips;
      }
      return [];
    },
    list: async () => [...this.reservations].map(([ip, owner]) => ({ ip, owner })),
    releaseReservations: (rs) => {
      for (const r of rs) {
        const cur = this.reservations.get(r.ip);
        if (cur && sameOwner(cur, r.owner)) this.reservations.delete(r.ip);
      }
    },
  };
}

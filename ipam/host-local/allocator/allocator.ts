import { CniError, ErrorCode } from '../../../lib/cni/errors.js';
import type { IpConfig } from '../../../lib/cni/types.js';
import { type Range, type RangeSet, rangeSetText } from '../config.js';
import { type Addr, formatCidr, formatIp, parseIp } from '../../../lib/addr/addr.js';
import { AddressTakenError, type Owner, type PickedIp, type Reservation, type StoreTx } from '../store/store.js';
import { capacity, isAllocatable, rangeContains, rangeFor, roundRobin } from './range-set.js';

/**
 * host-local's allocation policy, over any Store (upstream backend/allocator/allocator.go and the
 * cmdAdd loop of main.go): one address per range set, requested addresses honoured or refused,
 * otherwise round-robin after the set's last reserved address.
 */

/** Probes of single addresses before the allocator lists the whole store instead. */
const PROBE_LIMIT = 32;

const fail = (code: number, setIndex: number, msg: string): never => {
  throw new CniError(code, `failed to allocate for range ${setIndex}: ${msg}`);
};

/**
 * Pick and reserve one address per range set for (containerId, ifName) and return them as
 * result IPs (address with the subnet's prefix, and the range's gateway). Reserves nothing when
 * it fails. An address another writer reserves between our look and our reservation (the
 * reference host-local takes its own lock, not podnet's) is skipped for the next free one, as
 * the reference's own loop does; only a requested address taken that way is an error (101).
 */
export function allocate(
  tx: StoreTx,
  ranges: readonly RangeSet[],
  requestedIps: readonly Addr[],
  containerId: string,
  ifName: string,
): IpConfig[] {
  const held = tx.getByAttachment(containerId, ifName).flatMap((r) => {
    const a = parseIp(r.ip);
    return a ? [a] : [];
  });
  const requested = new Set(requestedIps.map(formatIp));
  const takenMeanwhile = new Set<string>();
  for (;;) {
    const { picks, ips } = pick(tx, ranges, requestedIps, held, containerId, takenMeanwhile);
    try {
      tx.reserve(containerId, ifName, picks);
      return ips;
    } catch (e) {
      if (!(e instanceof AddressTakenError) || requested.has(e.ip)) throw e;
      takenMeanwhile.add(e.ip);
    }
  }
}

/** The addresses to reserve: one per set, requested ones first, else round-robin. */
function pick(
  tx: StoreTx,
  ranges: readonly RangeSet[],
  requestedIps: readonly Addr[],
  held: readonly Addr[],
  containerId: string,
  takenMeanwhile: ReadonlySet<string>,
): { picks: PickedIp[]; ips: IpConfig[] } {
  const requested = [...requestedIps];
  const picks: PickedIp[] = [];
  const ips: IpConfig[] = [];
  let listed: Map<4 | 6, Set<bigint>> | undefined;

  ranges.forEach((set, setIndex) => {
    const dup = held.find((a) => rangeFor(set, a));
    if (dup) {
      fail(ErrorCode.DuplicateAttachment, setIndex, `${formatIp(dup)} has been allocated to ${containerId}, duplicate allocation is not allowed`);
    }
    const pickedHere = (a: Addr) => picks.some((p) => p.ip === formatIp(a));

    const ri = requested.findIndex((a) => rangeFor(set, a));
    if (ri >= 0) {
      const want = requested.splice(ri, 1)[0] as Addr;
      const range = rangeFor(set, want) as Range;
      const text = formatIp(want);
      if (!isAllocatable(range, want.value)) {
        const what = want.value === range.gateway.value ? "subnet's gateway" : want.value === range.network ? 'the network address' : 'the broadcast address';
        fail(ErrorCode.AddressUnavailable, setIndex, `requested ip ${text} is ${what}`);
      }
      if (tx.isReserved(text) || pickedHere(want)) {
        fail(ErrorCode.AddressUnavailable, setIndex, `requested IP address ${text} is not available in range set ${rangeSetText(set)}`);
      }
      picks.push({ ip: text, setIndex });
      ips.push({ address: formatCidr(want, range.prefix), gateway: formatIp(range.gateway) });
      return;
    }

    const lastText = tx.lastReservedIp(setIndex);
    const last = lastText === undefined ? undefined : parseIp(lastText);
    let probes = 0;
    for (const c of roundRobin(set, last)) {
      const addr: Addr = { family: c.range.family, value: c.value };
      const text = formatIp(addr);
      if (takenMeanwhile.has(text)) continue;
      let taken: boolean;
      if (probes < PROBE_LIMIT) {
        probes += 1;
        taken = tx.isReserved(text);
      } else {
        // Many taken in a row: one listing beats probing address by address.
        listed ??= listReserved(tx);
        taken = listed.get(addr.family)?.has(addr.value) ?? false;
      }
      if (taken || pickedHere(addr)) continue;
      picks.push({ ip: text, setIndex });
      ips.push({ address: formatCidr(addr, c.range.prefix), gateway: formatIp(c.range.gateway) });
      return;
    }
    fail(ErrorCode.AddressesExhausted, setIndex, `no IP addresses available in range set: ${rangeSetText(set)}`);
  });

  if (requested.length) {
    throw new CniError(
      ErrorCode.AddressUnavailable,
      `failed to allocate all requested IPs: ${requested.map(formatIp).join(' ')} (not in any range set)`,
    );
  }
  return { picks, ips };
}

function listReserved(tx: StoreTx): Map<4 | 6, Set<bigint>> {
  const out = new Map<4 | 6, Set<bigint>>([
    [4, new Set()],
    [6, new Set()],
  ]);
  for (const ip of tx.reservedIps()) {
    const a = parseIp(ip);
    if (a) out.get(a.family)?.add(a.value);
  }
  return out;
}

/** Free addresses left in each range set, given the reserved ones (STATUS). */
export function freeCounts(ranges: readonly RangeSet[], reserved: readonly string[]): bigint[] {
  const addrs = reserved.flatMap((ip) => {
    const a = parseIp(ip);
    return a ? [a] : [];
  });
  return ranges.map((set) => {
    let used = 0n;
    for (const a of addrs) {
      const r = rangeFor(set, a);
      if (r && isAllocatable(r, a.value)) used += 1n;
    }
    return capacity(set) - used;
  });
}

/** Whether an owner is among the attachments a runtime still considers valid (GC). */
export function isValidOwner(owner: Owner, valid: ReadonlySet<string>, validIds: ReadonlySet<string>): boolean {
  return owner.ifName === undefined ? validIds.has(owner.containerId) : valid.has(`${owner.containerId}\u0000${owner.ifName}`);
}

/** The reservations GC releases: every one whose attachment is not valid. */
export function staleReservations(all: readonly Reservation[], valid: ReadonlyArray<{ containerID: string; ifname: string }>): Reservation[] {
  const keys = new Set(valid.map((a) => `${a.containerID}\u0000${a.ifname}`));
  const ids = new Set(valid.map((a) => a.containerID));
  return all.filter((r) => !isValidOwner(r.owner, keys, ids));
}

/** Whether an address lies in any range of any set (CHECK compares only those with prevResult). */
export function inAnySet(ranges: readonly RangeSet[], a: Addr): boolean {
  return ranges.some((s) => s.some((r) => rangeContains(r, a)));
}

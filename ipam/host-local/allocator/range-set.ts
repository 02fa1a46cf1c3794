import type { Range, RangeSet } from '../config.js';
import { type Addr, hostMask } from '../../../lib/addr/addr.js';

/** Pure range maths over canonicalized ranges (config.ts). */

/** Upstream Range.Contains: same family, inside rangeStart..rangeEnd. */
export const rangeContains = (r: Range, a: Addr): boolean => a.family === r.family && a.value >= r.start && a.value <= r.end;

export const rangeFor = (s: RangeSet, a: Addr): Range | undefined => s.find((r) => rangeContains(r, a));

/**
 * Whether an address in `r` may be handed out: never the gateway, and for IPv4 never the
 * network or broadcast address (upstream relies on the default rangeStart/rangeEnd for that;
 * podnet also holds to it when a range names them explicitly).
 */
export function isAllocatable(r: Range, value: bigint): boolean {
  if (value === r.gateway.value && r.gateway.family === r.family) return false;
  if (r.family === 4) {
    const mask = hostMask(4, r.prefix);
    if (value === r.network || value === (r.network | mask)) return false;
  }
  return true;
}

/** How many addresses of the set may be handed out in all. */
export function capacity(s: RangeSet): bigint {
  let n = 0n;
  for (const r of s) {
    n += r.end - r.start + 1n;
    if (r.gateway.family === r.family && r.gateway.value >= r.start && r.gateway.value <= r.end) n -= 1n;
    if (r.family === 4) {
      const bcast = r.network | hostMask(4, r.prefix);
      if (r.network >= r.start && r.network !== r.gateway.value) n -= 1n;
      if (bcast <= r.end && bcast !== r.gateway.value) n -= 1n;
    }
  }
  return n;
}

export interface Candidate {
  range: Range;
  value: bigint;
}

/**
 * Upstream's round-robin order (allocator.go RangeIter): start just after `last` when the set
 * contains it (else at the first range's start), walk each range to its end, move on to the next
 * range (wrapping), and stop after one full turn; `last` itself comes last. Skips what
 * isAllocatable refuses.
 */
export function* roundRobin(s: RangeSet, last: Addr | undefined): Generator<Candidate> {
  const n = s.length;
  let idx = 0;
  let cur: bigint;
  const lastIdx = last ? s.findIndex((r) => rangeContains(r, last)) : -1;
  if (last && lastIdx >= 0) {
    idx = lastIdx;
    const r = s[idx] as Range;
    if (last.value === r.end) {
      idx = (idx + 1) % n;
      cur = (s[idx] as Range).start;
    } else {
      cur = last.value + 1n;
    }
  } else {
    cur = (s[0] as Range).start;
  }
  let total = 0n;
  for (const r of s) total += r.end - r.start + 1n;
  for (let k = 0n; k < total; k++) {
    const r = s[idx] as Range;
    if (isAllocatable(r, cur)) yield { range: r, value: cur };
    if (cur === r.end) {
      idx = (idx + 1) % n;
      cur = (s[idx] as Range).start;
    } else {
      cur += 1n;
    }
  }
}

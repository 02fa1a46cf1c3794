import { isIPv4, isIPv6 } from 'node:net';
import ipaddr from 'ipaddr.js';
import type { Family } from './types.js';

/**
 * Strict address maths for podCIDRs and node IPs. Strict on purpose: ipaddr.js alone accepts
 * forms like "10.1" or "0x0a.0.0.1" that `ip` and Kubernetes would read differently, so the
 * textual form is checked with node:net first and ipaddr.js does the arithmetic.
 */
export interface Cidr {
  /** Canonical text, e.g. "10.244.1.0/24", "fd00:10:244:1::/64". */
  text: string;
  family: Family;
  prefix: number;
  /** First and last address as integers (bigint for both families). */
  start: bigint;
  end: bigint;
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

/** Parse an IP address; returns its canonical text and family. */
export function parseIp(text: string): Parsed<{ text: string; family: Family }> {
  if (typeof text !== 'string') return { ok: false, error: 'not a string' };
  if (isIPv4(text)) return { ok: true, value: { text: ipaddr.IPv4.parse(text).toString(), family: 4 } };
  if (isIPv6(text) && !text.includes('%')) {
    return { ok: true, value: { text: ipaddr.IPv6.parse(text).toString(), family: 6 } };
  }
  return { ok: false, error: `"${text}" is not an IP address` };
}

function toBig(bytes: number[]): bigint {
  let n = 0n;
  for (const b of bytes) n = (n << 8n) | BigInt(b);
  return n;
}

/** Parse a CIDR that must be a network address (no host bits set). */
export function parseCidr(text: string): Parsed<Cidr> {
  if (typeof text !== 'string') return { ok: false, error: 'not a string' };
  const slash = text.indexOf('/');
  if (slash < 0 || slash !== text.lastIndexOf('/')) return { ok: false, error: `"${text}" is not in CIDR notation` };
  const addrText = text.slice(0, slash);
  const lenText = text.slice(slash + 1);
  const ip = parseIp(addrText);
  if (!ip.ok) return { ok: false, error: `"${text}": ${ip.error}` };
  if (!/^(0|[1-9]\d{0,2})$/.test(lenText)) return { ok: false, error: `"${text}" has an invalid prefix length` };
  const family = ip.value.family;
  const bits = family === 4 ? 32 : 128;
  const prefix = Number(lenText);
  if (prefix > bits) return { ok: false, error: `"${text}" has a prefix length over ${bits}` };
  const start = toBig(ipaddr.parse(addrText).toByteArray());
  const hostMask = (1n << BigInt(bits - prefix)) - 1n;
  if ((start & hostMask) !== 0n) return { ok: false, error: `"${text}" has host bits set` };
  return {
    ok: true,
    value: { text: `${ip.value.text}/${prefix}`, family, prefix, start, end: start | hostMask },
  };
}

/** The network of an interface address (e.g. 172.18.0.2/16 → 172.18.0.0/16). */
export function networkOf(address: string, prefix: number): Cidr | undefined {
  const ip = parseIp(address);
  if (!ip.ok) return undefined;
  const bits = ip.value.family === 4 ? 32 : 128;
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > bits) return undefined;
  const n = toBig(ipaddr.parse(ip.value.text).toByteArray());
  const hostMask = (1n << BigInt(bits - prefix)) - 1n;
  const start = n & ~hostMask & ((1n << BigInt(bits)) - 1n);
  const bytes: number[] = [];
  for (let i = bits / 8 - 1; i >= 0; i -= 1) bytes.push(Number((start >> BigInt(i * 8)) & 0xffn));
  const text = ipaddr.fromByteArray(bytes).toString();
  return { text: `${text}/${prefix}`, family: ip.value.family, prefix, start, end: start | hostMask };
}

export function overlaps(a: Cidr, b: Cidr): boolean {
  return a.family === b.family && a.start <= b.end && b.start <= a.end;
}

export function contains(outer: Cidr, inner: Cidr): boolean {
  return outer.family === inner.family && outer.start <= inner.start && inner.end <= outer.end;
}

/**
 * A set of pairwise disjoint CIDRs of one family, kept sorted, with an owner per entry:
 * `find` answers "does anything overlap this?" in O(log n), which keeps the overlap check of
 * 5,000 nodes linear-ish instead of quadratic.
 */
export class DisjointCidrSet<T> {
  private readonly items: { cidr: Cidr; owner: T }[] = [];

  /** The entry overlapping `c`, if any. */
  find(c: Cidr): { cidr: Cidr; owner: T } | undefined {
    // First entry whose end >= c.start; entries are disjoint, so their ends are sorted too.
    let lo = 0;
    let hi = this.items.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.items[mid] as { cidr: Cidr }).cidr.end < c.start) lo = mid + 1;
      else hi = mid;
    }
    const hit = this.items[lo];
    return hit && hit.cidr.start <= c.end ? hit : undefined;
  }

  /** Add `c`; the caller has checked with `find` that nothing overlaps. */
  add(c: Cidr, owner: T): void {
    let lo = 0;
    let hi = this.items.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.items[mid] as { cidr: Cidr }).cidr.start < c.start) lo = mid + 1;
      else hi = mid;
    }
    this.items.splice(lo, 0, { cidr: c, owner });
  }
}

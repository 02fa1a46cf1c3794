/**
 * The one address module: IP addresses and CIDRs as (family, bigint) pairs, strict text forms,
 * canonical printing. Every podnet component reads addresses through it, so the plugins, the
 * IPAM and the daemon agree on what an address is.
 *
 * Strict as Go's net.ParseIP / net.ParseCIDR (what the reference plugins, libcni and Kubernetes
 * use): dotted quads without leading zeros or short forms ("010.0.0.1", "10.1", "0x0a.0.0.1" are
 * refused, where inet_aton would read 8.0.0.1 or 10.0.0.1), no IPv6 zones, decimal prefix
 * lengths without leading zeros. An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) is IPv4, as in
 * Go. Printing is Go's: dotted quad, RFC 5952 for IPv6 — the names of the reference host-local's
 * reservation files.
 *
 * Hand code rather than ipaddr.js or node:net's validators: every pod pays a plugin's start-up
 * (see parseV6 for what node:net's isIPv6 costs).
 */
export type Family = 4 | 6;

export interface Addr {
  readonly family: Family;
  readonly value: bigint;
}

/** An address with a prefix length; the address keeps its host bits (callers decide). */
export interface Cidr {
  readonly addr: Addr;
  readonly prefix: number;
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

export const familyBits = (family: Family): number => (family === 4 ? 32 : 128);

const V4_PART = /^(0|[1-9][0-9]{0,2})$/;
const PREFIX = /^(0|[1-9][0-9]{0,2})$/;

function parseV4(text: string): bigint | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  let v = 0;
  for (const p of parts) {
    if (!V4_PART.test(p)) return undefined;
    const n = Number(p);
    if (n > 255) return undefined;
    v = v * 256 + n;
  }
  return BigInt(v);
}

const V6_GROUP = /^[0-9A-Fa-f]{1,4}$/;

/**
 * The 128-bit value of an IPv6 text form, or undefined: hex groups of 1–4 digits, at most one
 * `::` standing for one or more zero groups, an optional dotted-quad tail (strict, as Go's), no
 * zone. Written out rather than node:net's isIPv6: its first call compiles a very large regular
 * expression, several milliseconds of every ADD that reads a link with an IPv6 address.
 */
function parseV6(text: string): bigint | undefined {
  let s = text;
  const tail: number[] = [];
  if (s.includes('.')) {
    const i = s.lastIndexOf(':');
    const v4 = parseV4(s.slice(i + 1));
    if (v4 === undefined) return undefined;
    tail.push(Number(v4 >> 16n), Number(v4 & 0xffffn));
    s = s.slice(0, i + 1);
    if (!s.endsWith('::')) s = s.slice(0, -1);
  }
  const groups = (g: string): number[] | undefined => {
    if (g === '') return [];
    const out: number[] = [];
    for (const x of g.split(':')) {
      if (!V6_GROUP.test(x)) return undefined;
      out.push(parseInt(x, 16));
    }
    return out;
  };
  const dbl = s.indexOf('::');
  let all: number[];
  if (dbl < 0) {
    const g = groups(s);
    if (!g) return undefined;
    all = [...g, ...tail];
    if (all.length !== 8) return undefined;
  } else {
    const h = groups(s.slice(0, dbl));
    const r0 = groups(s.slice(dbl + 2));
    if (!h || !r0) return undefined;
    const r = [...r0, ...tail];
    if (h.length + r.length > 7) return undefined;
    all = [...h, ...new Array<number>(8 - h.length - r.length).fill(0), ...r];
  }
  let v = 0n;
  for (const g of all) v = (v << 16n) | BigInt(g);
  return v;
}

/** Parse an address (strict); undefined when it is not one. */
export function parseIp(text: unknown): Addr | undefined {
  if (typeof text !== 'string' || text === '') return undefined;
  if (!text.includes(':')) {
    const v = parseV4(text);
    return v === undefined ? undefined : { family: 4, value: v };
  }
  const value = parseV6(text);
  if (value === undefined) return undefined;
  if (value >> 32n === 0xffffn) return { family: 4, value: value & 0xffffffffn };
  return { family: 6, value };
}

/** Parse `a.b.c.d/n` or `x::y/n`; the address keeps its host bits. */
export function parseCidr(text: unknown): Cidr | undefined {
  if (typeof text !== 'string') return undefined;
  const slash = text.indexOf('/');
  if (slash <= 0) return undefined;
  const addrText = text.slice(0, slash);
  const addr = parseIp(addrText);
  const bits = text.slice(slash + 1);
  if (!addr || !PREFIX.test(bits)) return undefined;
  const prefix = Number(bits);
  // An IPv4-mapped address with a v6 prefix length: Go counts the prefix in v6 bits.
  const max = addrText.includes(':') ? 128 : 32;
  if (prefix > max) return undefined;
  return { addr, prefix: addr.family === 4 && max === 128 ? Math.max(prefix - 96, 0) : prefix };
}

/** A single address that may carry a prefix (`10.0.0.5` or `10.0.0.5/24`), like upstream's ip.IP. */
export function parseIpMaybeCidr(text: unknown): Addr | undefined {
  return typeof text === 'string' && text.includes('/') ? parseCidr(text)?.addr : parseIp(text);
}

export function formatIp(a: Addr): string {
  if (a.family === 4) {
    const v = Number(a.value);
    return `${(v >>> 24) & 255}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
  }
  const g: number[] = [];
  for (let i = 7; i >= 0; i--) g.push(Number((a.value >> BigInt(i * 16)) & 0xffffn));
  // RFC 5952: the longest run (first on ties) of two or more zero groups becomes "::".
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (xs: number[]) => xs.map((x) => x.toString(16)).join(':');
  if (best < 0) return hex(g);
  return `${hex(g.slice(0, best))}::${hex(g.slice(best + bestLen))}`;
}

export const formatCidr = (a: Addr, prefix: number): string => `${formatIp(a)}/${prefix}`;

/** A Cidr's canonical text (`10.244.1.0/24`). */
export const cidrText = (c: Cidr): string => formatCidr(c.addr, c.prefix);

export function hostMask(family: Family, prefix: number): bigint {
  return (1n << BigInt(familyBits(family) - prefix)) - 1n;
}

/** The network of a CIDR: host bits cleared. */
export function networkOf(c: Cidr): Cidr {
  const mask = hostMask(c.addr.family, c.prefix);
  return { addr: { family: c.addr.family, value: c.addr.value & ~mask }, prefix: c.prefix };
}

/** The last address of a CIDR (IPv4 broadcast). */
export function lastOf(c: Cidr): Addr {
  return { family: c.addr.family, value: c.addr.value | hostMask(c.addr.family, c.prefix) };
}

const sameAddr = (a: Addr, b: Addr): boolean => a.family === b.family && a.value === b.value;

/** Is `ip` inside `c`? */
export function cidrContains(c: Cidr, ip: Addr): boolean {
  if (c.addr.family !== ip.family) return false;
  const mask = hostMask(ip.family, c.prefix);
  return (c.addr.value & ~mask) === (ip.value & ~mask);
}

/** Do two CIDRs share an address? */
export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
  if (a.addr.family !== b.addr.family) return false;
  const shorter = a.prefix <= b.prefix ? a : b;
  return cidrContains(shorter, (shorter === a ? b : a).addr);
}

/** Canonical text of an address (so "fd00:0::1" and "fd00::1" compare equal); undefined if none. */
export function canonicalIp(text: unknown): string | undefined {
  const a = parseIp(text);
  return a ? formatIp(a) : undefined;
}

/** Canonical text of a CIDR keeping host bits ("fd00:0::5/64" → "fd00::5/64"); undefined if none. */
export function canonicalCidr(text: unknown): string | undefined {
  const c = parseCidr(text);
  return c ? cidrText(c) : undefined;
}

/** upstream calcGatewayIP: the first address after the network address. */
export function gatewayOf(c: Cidr): Addr {
  const n = networkOf(c);
  return { family: n.addr.family, value: n.addr.value + 1n };
}

/** An address/prefix in the parts the plugins print: canonical address, prefix, network. */
export interface CidrParts {
  family: Family;
  /** The address itself, canonical text. */
  ip: string;
  prefix: number;
  /** Network address / prefix, e.g. 10.244.1.0/24. */
  subnet: string;
}

export function cidrParts(text: unknown): CidrParts | undefined {
  const c = parseCidr(text);
  if (!c) return undefined;
  const n = networkOf(c);
  return { family: c.addr.family, ip: formatIp(c.addr), prefix: c.prefix, subnet: cidrText(n) };
}

/**
 * Canonical text of a name that may be a reservation file, or undefined when it is not an
 * address in canonical form (lock, last_reserved_ip.N, podnet's own files, anything else).
 */
export function reservationName(name: string): Addr | undefined {
  const a = parseIp(name);
  return a && formatIp(a) === name ? a : undefined;
}

// ------------------------------------------------------------ networks (host bits must be zero)
// A network is a Cidr whose host bits are zero (what parseNetwork and networkOfAddress return).

/** Is every address of `inner` inside `outer`? */
export function cidrContainsCidr(outer: Cidr, inner: Cidr): boolean {
  return outer.prefix <= inner.prefix && cidrContains(outer, inner.addr);
}

/** Parse a CIDR that must be a network address (no host bits set), with the reason when not. */
export function parseNetwork(text: unknown): Parsed<Cidr> {
  if (typeof text !== 'string') return { ok: false, error: 'not a string' };
  const slash = text.indexOf('/');
  if (slash < 0 || slash !== text.lastIndexOf('/')) return { ok: false, error: `"${text}" is not in CIDR notation` };
  if (!parseIp(text.slice(0, slash))) return { ok: false, error: `"${text}": "${text.slice(0, slash)}" is not an IP address` };
  const lenText = text.slice(slash + 1);
  if (!PREFIX.test(lenText)) return { ok: false, error: `"${text}" has an invalid prefix length` };
  const c = parseCidr(text);
  if (!c) return { ok: false, error: `"${text}" has a prefix length over ${text.slice(0, slash).includes(':') ? 128 : 32}` };
  if (!sameAddr(networkOf(c).addr, c.addr)) return { ok: false, error: `"${text}" has host bits set` };
  return { ok: true, value: c };
}

/** The network of an interface address (e.g. 172.18.0.2/16 → 172.18.0.0/16). */
export function networkOfAddress(address: string, prefix: number): Cidr | undefined {
  const a = parseIp(address);
  if (!a || !Number.isInteger(prefix) || prefix < 0 || prefix > familyBits(a.family)) return undefined;
  return networkOf({ addr: a, prefix });
}

/**
 * A set of pairwise disjoint CIDRs of one family, kept sorted, with an owner per entry: `find`
 * answers "does anything overlap this?" in O(log n), which keeps the overlap check of 5,000
 * nodes linear-ish instead of quadratic.
 */
export class DisjointCidrSet<T> {
  /** Sorted by `start`; entries are disjoint, so their `end`s are sorted too. */
  private readonly items: { cidr: Cidr; owner: T; start: bigint; end: bigint }[] = [];

  /** The entry overlapping `c`, if any. */
  find(c: Cidr): { cidr: Cidr; owner: T } | undefined {
    const start = networkOf(c).addr.value;
    // First entry whose end >= start.
    let lo = 0;
    let hi = this.items.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.items[mid] as { end: bigint }).end < start) lo = mid + 1;
      else hi = mid;
    }
    const hit = this.items[lo];
    return hit && hit.start <= lastOf(c).value ? { cidr: hit.cidr, owner: hit.owner } : undefined;
  }

  /** Add `c`; the caller has checked with `find` that nothing overlaps. */
  add(c: Cidr, owner: T): void {
    const start = networkOf(c).addr.value;
    let lo = 0;
    let hi = this.items.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.items[mid] as { start: bigint }).start < start) lo = mid + 1;
      else hi = mid;
    }
    this.items.splice(lo, 0, { cidr: c, owner, start, end: lastOf(c).value });
  }
}

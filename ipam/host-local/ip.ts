import ipaddr from 'ipaddr.js';

/**
 * Addresses as (family, BigInt) pairs, so range maths is plain integer arithmetic. Text form is
 * the one Go's net.IP.String() prints (dotted quad; RFC 5952 for IPv6), because the reference
 * host-local names its reservation files that way and both plugins must agree on the names.
 */
export interface Addr {
  family: 4 | 6;
  value: bigint;
}

export interface Cidr {
  addr: Addr;
  prefix: number;
}

export const familyBits = (family: 4 | 6): number => (family === 4 ? 32 : 128);

const V4_PART = /^(0|[1-9][0-9]{0,2})$/;

/** Strict IPv4 dotted quad (no leading zeros, no short forms), as Go's net.ParseIP. */
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

/** Parse an address; IPv4-mapped IPv6 (`::ffff:a.b.c.d`) becomes IPv4, as in Go. */
export function parseIp(text: string): Addr | undefined {
  if (typeof text !== 'string' || text === '') return undefined;
  if (!text.includes(':')) {
    const v = parseV4(text);
    return v === undefined ? undefined : { family: 4, value: v };
  }
  if (text.includes('%') || !ipaddr.IPv6.isValid(text)) return undefined;
  const a = ipaddr.IPv6.parse(text);
  if (a.isIPv4MappedAddress()) {
    const b = a.toIPv4Address().octets;
    return { family: 4, value: BigInt((((b[0] ?? 0) * 256 + (b[1] ?? 0)) * 256 + (b[2] ?? 0)) * 256 + (b[3] ?? 0)) };
  }
  let v = 0n;
  for (const part of a.parts) v = (v << 16n) | BigInt(part);
  return { family: 6, value: v };
}

/** Parse `a.b.c.d/n` or `x::y/n`; the address keeps its host bits (callers decide). */
export function parseCidr(text: string): Cidr | undefined {
  if (typeof text !== 'string') return undefined;
  const slash = text.indexOf('/');
  if (slash <= 0) return undefined;
  const addr = parseIp(text.slice(0, slash));
  const bits = text.slice(slash + 1);
  if (!addr || !/^(0|[1-9][0-9]{0,2})$/.test(bits)) return undefined;
  const prefix = Number(bits);
  // An IPv4-mapped address with a v6 prefix length: Go treats the prefix as counting v6 bits.
  const max = text.slice(0, slash).includes(':') ? 128 : 32;
  if (prefix > max) return undefined;
  return { addr, prefix: addr.family === 4 && max === 128 ? Math.max(prefix - 96, 0) : prefix };
}

/** Parse a single address that may carry a prefix (`10.0.0.5` or `10.0.0.5/24`), like upstream's ip.IP. */
export function parseIpMaybeCidr(text: string): Addr | undefined {
  return text.includes('/') ? parseCidr(text)?.addr : parseIp(text);
}

export function formatIp(a: Addr): string {
  if (a.family === 4) {
    const v = Number(a.value);
    return `${(v >>> 24) & 255}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
  }
  const parts: number[] = [];
  for (let i = 7; i >= 0; i--) parts.push(Number((a.value >> BigInt(i * 16)) & 0xffffn));
  return new ipaddr.IPv6(parts).toRFC5952String();
}

export const formatCidr = (a: Addr, prefix: number): string => `${formatIp(a)}/${prefix}`;

export function hostMask(family: 4 | 6, prefix: number): bigint {
  return (1n << BigInt(familyBits(family) - prefix)) - 1n;
}

export const sameAddr = (a: Addr, b: Addr): boolean => a.family === b.family && a.value === b.value;

/**
 * Canonical text of a name that may be a reservation file, or undefined when it is not an
 * address in canonical form (lock, last_reserved_ip.N, podnet's own files, anything else).
 */
export function reservationName(name: string): Addr | undefined {
  const a = parseIp(name);
  return a && formatIp(a) === name ? a : undefined;
}

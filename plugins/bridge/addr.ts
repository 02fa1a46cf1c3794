import ipaddr from 'ipaddr.js';
import type { IpFamily } from '../../lib/linux/netfilter.js';

/** Address maths the bridge needs (ipaddr.js underneath). */
export interface ParsedCidr {
  family: IpFamily;
  /** The address itself, canonical text (RFC 5952 for IPv6). */
  ip: string;
  prefix: number;
  /** Network address / prefix, e.g. 10.244.1.0/24. */
  subnet: string;
}

export function parseCidr(cidr: string): ParsedCidr {
  const [addr, prefix] = ipaddr.parseCIDR(cidr);
  const ip = addr.kind() === 'ipv6' && (addr as ipaddr.IPv6).isIPv4MappedAddress() ? (addr as ipaddr.IPv6).toIPv4Address() : addr;
  const family: IpFamily = ip.kind() === 'ipv4' ? 4 : 6;
  const text = `${ip.toString()}/${prefix}`;
  const network = family === 4 ? ipaddr.IPv4.networkAddressFromCIDR(text) : ipaddr.IPv6.networkAddressFromCIDR(text);
  return { family, ip: ip.toString(), prefix, subnet: `${network.toString()}/${prefix}` };
}

export const familyOf = (ip: string): IpFamily => (ip.includes(':') ? 6 : 4);

/** Canonical text of an address (so "fd00:0::1" and "fd00::1" compare equal). */
export const canonicalIp = (ip: string): string => ipaddr.process(ip).toString();

/** upstream calcGatewayIP: the first address after the network address. */
export function calcGatewayIp(cidr: string): string {
  const p = parseCidr(cidr);
  const bytes = ipaddr.parse(p.subnet.split('/')[0] as string).toByteArray();
  for (let i = bytes.length - 1; i >= 0; i--) {
    bytes[i] = ((bytes[i] as number) + 1) & 0xff;
    if (bytes[i] !== 0) break;
  }
  return ipaddr.fromByteArray(bytes).toString();
}

/** Do two CIDRs overlap (one contains the other's address)? */
export function cidrsOverlap(a: string, b: string): boolean {
  const pa = ipaddr.parseCIDR(a);
  const pb = ipaddr.parseCIDR(b);
  if (pa[0].kind() !== pb[0].kind()) return false;
  return pa[0].match(pb) || pb[0].match(pa);
}

/** A random locally administered unicast MAC, as the kernel picks one. */
export function randomMac(random: (n: number) => Uint8Array): string {
  const b = random(6);
  b[0] = ((b[0] as number) & 0xfe) | 0x02;
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

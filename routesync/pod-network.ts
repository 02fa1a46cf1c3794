import { type Cidr, cidrContainsCidr, cidrsOverlap, familyBits, cidrText, parseIp, parseNetwork } from '../lib/addr/addr.js';
import type { Family } from './types.js';

/**
 * What may be a pod network and what may be a next hop, judged on the address alone (pure).
 * Built on the shared address module (lib/addr): a network is a Cidr whose host bits are zero.
 *
 * A podCIDR becomes a route on every node (`<podCIDR> via <InternalIP>`) and the subnet of the
 * node's pods, so it must be ordinary unicast space: never multicast, loopback, link-local, the
 * unspecified ("this network") block or the limited broadcast address, and never wide enough to
 * swallow the Internet (`8.0.0.0/7` sent 8.8.8.8 to a peer). 240.0.0.0/4 ("class E") is not
 * refused: some clusters use it for pods on purpose.
 *
 * When the cluster's pod ranges are known (`--cluster-cidr`, the controller-manager's own flag
 * and value), a podCIDR must lie inside one of them; that is the real guard, the rest is the
 * floor that holds without it.
 */

/** Widest podCIDR accepted per family (a node's share of the cluster range, never more). */
export const WIDEST_POD_PREFIX: Readonly<Record<Family, number>> = { 4: 8, 6: 32 };

interface Special {
  cidr: Cidr;
  what: string;
}

function special(text: string, what: string): Special {
  const p = parseNetwork(text);
  if (!p.ok) throw new Error(`bad built-in range ${text}: ${p.error}`);
  return { cidr: p.value, what };
}

/** Ranges that are never a pod network, nor a next hop. */
const NEVER: readonly Special[] = [
  special('0.0.0.0/8', 'the unspecified ("this network") range'),
  special('127.0.0.0/8', 'loopback'),
  special('169.254.0.0/16', 'link-local'),
  special('224.0.0.0/4', 'multicast'),
  special('255.255.255.255/32', 'the broadcast address'),
  special('::/128', 'the unspecified address'),
  special('::1/128', 'loopback'),
  special('fe80::/10', 'link-local'),
  special('ff00::/8', 'multicast'),
];

/** The special range `c` overlaps, if any. */
export function specialRange(c: Cidr): Special | undefined {
  return NEVER.find((s) => cidrsOverlap(s.cidr, c));
}

export type PodCidrProblem = { kind: 'too-broad' | 'reserved' | 'outside-cluster'; message: string };

function familyName(f: Family): string {
  return f === 4 ? 'IPv4' : 'IPv6';
}

/**
 * The cluster's pod ranges, as `--cluster-cidr` gives them ("10.244.0.0/16,fd00:10:244::/56"):
 * parsed strictly; each must itself be a pod network (not /0, no special range). The
 * controller-manager takes one per family; more do no harm here.
 */
export function parseClusterCidrs(texts: readonly string[]): { ok: true; value: Cidr[] } | { ok: false; error: string } {
  const out: Cidr[] = [];
  for (const t of texts) {
    const p = parseNetwork(t);
    if (!p.ok) return { ok: false, error: p.error };
    const bad = specialRange(p.value);
    if (p.value.prefix === 0 || bad) return { ok: false, error: `"${t}" is not a pod network${bad ? ` (it overlaps ${bad.what} ${cidrText(bad.cidr)})` : ''}` };
    out.push(p.value);
  }
  return { ok: true, value: out };
}

/**
 * Why `c` cannot be one node's podCIDR, or undefined; the first that applies of: a /0, special
 * space (multicast, loopback…: the more telling reason for `224.0.0.0/4` than its width), wider
 * than a node's share, outside the cluster's pod range (`cluster` empty: not known).
 */
export function podCidrProblem(c: Cidr, cluster: readonly Cidr[]): PodCidrProblem | undefined {
  const family = c.addr.family;
  if (c.prefix === 0) return { kind: 'too-broad', message: `podCIDR "${cidrText(c)}" covers every ${familyName(family)} address` };
  const s = specialRange(c);
  if (s) return { kind: 'reserved', message: `podCIDR "${cidrText(c)}" overlaps ${s.what} ${cidrText(s.cidr)}: not a pod network` };
  const widest = WIDEST_POD_PREFIX[family];
  if (c.prefix < widest) return { kind: 'too-broad', message: `podCIDR "${cidrText(c)}" is wider than /${widest}: no node's pod range is that large` };
  if (cluster.length > 0 && !cluster.some((k) => cidrContainsCidr(k, c))) {
    const mine = cluster.filter((k) => k.addr.family === family).map(cidrText);
    return {
      kind: 'outside-cluster',
      message: mine.length
        ? `podCIDR "${cidrText(c)}" is outside the cluster's pod range ${mine.join(', ')} (--cluster-cidr)`
        : `podCIDR "${cidrText(c)}": the cluster has no ${familyName(family)} pod range (--cluster-cidr)`,
    };
  }
  return undefined;
}

/**
 * Why an address cannot be a route's next hop (`<podCIDR> via <ip>` without a device), or
 * undefined when it can. Link-local addresses need a device, which a Node object never names.
 */
export function unusableNextHop(ip: string): string | undefined {
  const a = parseIp(ip);
  if (!a) return `"${ip}" is not an IP address`;
  const s = specialRange({ addr: a, prefix: familyBits(a.family) });
  if (!s) return undefined;
  return s.what === 'link-local' ? `${ip} is link-local: not a next hop without a device` : `${ip} is ${s.what}: not a next hop`;
}

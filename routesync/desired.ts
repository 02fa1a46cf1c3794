import { type Cidr, DisjointCidrSet, contains, networkOf, parseCidr, parseIp } from './cidr.js';
import {
  type DesiredRoute,
  type DesiredState,
  type Family,
  type LocalAddress,
  type NodeLike,
  type Reachability,
  Reason,
  type Rejection,
  type SelfState,
} from './types.js';

/**
 * Desired state, pure: Nodes + this node's name + what the kernel said about local addresses and
 * about reaching each peer → the routes to program, the rejections to report, this node's podCIDRs
 * (for its CNI config) and the cluster's pod CIDRs (for masquerade).
 *
 * Rules, in order, per node and podCIDR:
 *  - a node without a name, a second node with the same name → rejected whole;
 *  - no podCIDR yet → NoPodCIDR (nothing to route, not an error of the node);
 *  - podCIDRs from `spec.podCIDRs`, else `spec.podCIDR`; each must be a network address
 *    (PodCIDRMalformed; also for two of one family), not a /0 (PodCIDRTooBroad);
 *  - the InternalIP of the podCIDR's family (first one listed): missing → NoInternalIP,
 *    unparseable → InternalIPMalformed; the route to it must be on-link, without a gateway,
 *    and not local (NotDirectlyReachable);
 *  - the podCIDR must not overlap this node's own networks (interface addresses, except those
 *    inside this node's podCIDRs: the CNI bridge's gateway address), this node's podCIDRs, or a
 *    podCIDR already accepted (PodCIDROverlap). Nodes are taken oldest first
 *    (creationTimestamp, then name), so a newcomer can never take an existing node's routes.
 */
export interface DesiredInput {
  nodes: readonly NodeLike[];
  selfName: string;
  localAddresses: readonly LocalAddress[];
  /** Keyed by canonical IP text (see `parseIp`); a missing key counts as "no route". */
  reachability: ReadonlyMap<string, Reachability>;
}

interface Candidate {
  name: string;
  order: number;
  createdMs: number;
  cidrs: Cidr[];
  internalIP: { 4?: string; 6?: string };
  internalIPError: { 4?: string; 6?: string };
}

function createdMs(n: NodeLike): number {
  const t = n.metadata?.creationTimestamp;
  if (t === undefined) return Number.POSITIVE_INFINITY;
  const ms = t instanceof Date ? t.getTime() : Date.parse(String(t));
  return Number.isFinite(ms) ? ms : Number.POSITIVE_INFINITY;
}

/** podCIDRs as written on the Node: `spec.podCIDRs` wins over the legacy `spec.podCIDR`. */
export function rawPodCIDRs(n: NodeLike): string[] {
  const list = n.spec?.podCIDRs;
  if (Array.isArray(list) && list.length > 0) return list.map((c) => String(c));
  const one = n.spec?.podCIDR;
  return typeof one === 'string' && one !== '' ? [one] : [];
}

/** The first InternalIP per family, or why there is none. */
export function internalIPs(n: NodeLike): { ip: { 4?: string; 6?: string }; error: { 4?: string; 6?: string }; malformed: string[] } {
  const ip: { 4?: string; 6?: string } = {};
  const error: { 4?: string; 6?: string } = {};
  const malformed: string[] = [];
  const addrs = Array.isArray(n.status?.addresses) ? n.status.addresses : [];
  for (const a of addrs) {
    if (!a || a.type !== 'InternalIP') continue;
    const p = parseIp(String(a.address ?? ''));
    if (!p.ok) {
      malformed.push(String(a.address ?? ''));
      continue;
    }
    const fam = p.value.family;
    if (ip[fam] === undefined) ip[fam] = p.value.text;
  }
  for (const fam of [4, 6] as const) {
    if (ip[fam] === undefined && malformed.length > 0) error[fam] = `InternalIP ${malformed.map((m) => `"${m}"`).join(', ')} is not an IP address`;
  }
  return { ip, error, malformed };
}

/** Every peer InternalIP whose reachability the caller must look up (canonical text). */
export function calcPeerAddresses(nodes: readonly NodeLike[], selfName: string): string[] {
  const out = new Set<string>();
  for (const n of nodes) {
    const name = n?.metadata?.name;
    if (!name || name === selfName) continue;
    const { ip } = parseNode(n, name).ips;
    if (ip[4]) out.add(ip[4]);
    if (ip[6]) out.add(ip[6]);
  }
  return [...out].sort();
}

function familyName(f: Family): string {
  return f === 4 ? 'IPv4' : 'IPv6';
}

/** Parse a node's podCIDRs: valid ones, or the rejections they earn. */
function parsePodCIDRs(name: string, raw: string[], rejections: Rejection[]): Cidr[] {
  const out: Cidr[] = [];
  const seen = new Set<Family>();
  for (const text of raw) {
    const p = parseCidr(text);
    if (!p.ok) {
      rejections.push({ node: name, reason: Reason.PodCIDRMalformed, podCIDR: text, message: `podCIDR ${p.error}` });
      continue;
    }
    if (p.value.prefix === 0) {
      rejections.push({ node: name, reason: Reason.PodCIDRTooBroad, podCIDR: text, message: `podCIDR "${text}" covers every ${familyName(p.value.family)} address` });
      continue;
    }
    if (seen.has(p.value.family)) {
      rejections.push({ node: name, reason: Reason.PodCIDRMalformed, podCIDR: text, message: `second ${familyName(p.value.family)} podCIDR "${text}" (at most one per family)` });
      continue;
    }
    seen.add(p.value.family);
    out.push(p.value);
  }
  return out.sort((a, b) => a.family - b.family);
}

/**
 * Parsed podCIDRs and InternalIPs of one Node object, memoised by object identity: a watch
 * replaces the object of a changed Node, so with 5,000 Nodes a pass after one change parses one
 * Node, not 5,000. (Node objects are never mutated in place by the sources.)
 */
interface ParsedNode {
  raw: string[];
  cidrs: Cidr[];
  cidrRejections: Rejection[];
  ips: ReturnType<typeof internalIPs>;
  createdMs: number;
}
const parsedCache = new WeakMap<object, ParsedNode>();

function parseNode(n: NodeLike, name: string): ParsedNode {
  const hit = parsedCache.get(n);
  if (hit && (hit.cidrRejections[0]?.node ?? name) === name) return hit;
  const raw = rawPodCIDRs(n);
  const cidrRejections: Rejection[] = [];
  const cidrs = parsePodCIDRs(name, raw, cidrRejections);
  const p = { raw, cidrs, cidrRejections, ips: internalIPs(n), createdMs: createdMs(n) };
  parsedCache.set(n, p);
  return p;
}

export function calcSelf(nodes: readonly NodeLike[], selfName: string): { self: SelfState; cidrs: Cidr[] } {
  const node = nodes.find((n) => n?.metadata?.name === selfName);
  if (!node) {
    return { self: { ok: false, name: selfName, reason: 'SelfNodeNotFound', message: `node "${selfName}" is not in the node list` }, cidrs: [] };
  }
  const raw = rawPodCIDRs(node);
  if (raw.length === 0) {
    return { self: { ok: false, name: selfName, reason: Reason.NoPodCIDR, message: `node "${selfName}" has no podCIDR yet` }, cidrs: [] };
  }
  const rej: Rejection[] = [];
  const cidrs = parsePodCIDRs(selfName, raw, rej);
  const first = rej[0];
  if (first) {
    return { self: { ok: false, name: selfName, reason: first.reason, message: `this node: ${first.message}` }, cidrs: [] };
  }
  const { ip } = internalIPs(node);
  const ips = [ip[4], ip[6]].filter((x): x is string => x !== undefined);
  return { self: { ok: true, name: selfName, podCIDRs: cidrs.map((c) => c.text), internalIPs: ips }, cidrs };
}

export function calcDesired(input: DesiredInput): DesiredState {
  const rejections: Rejection[] = [];
  const routes: DesiredRoute[] = [];
  const { self, cidrs: selfCidrs } = calcSelf(input.nodes, input.selfName);

  // Networks of this node that a peer podCIDR must not shadow. Addresses inside this node's own
  // podCIDRs (the bridge gateway) are this node's pods, handled by the podCIDR check itself.
  const local = input.localAddresses
    .map((a) => ({ a, net: networkOf(a.address, a.prefix) }))
    .filter((x): x is { a: LocalAddress; net: Cidr } => x.net !== undefined)
    .filter((x) => !selfCidrs.some((s) => contains(s, x.net)));

  const taken = { 4: new DisjointCidrSet<string>(), 6: new DisjointCidrSet<string>() };
  for (const c of selfCidrs) taken[c.family].add(c, input.selfName);

  // Peers, oldest first.
  const seenNames = new Set<string>();
  const candidates: Candidate[] = [];
  input.nodes.forEach((n, order) => {
    const name = n?.metadata?.name;
    if (typeof name !== 'string' || name === '') {
      rejections.push({ node: `#${order}`, reason: Reason.NodeNameMissing, message: `node at index ${order} has no metadata.name` });
      return;
    }
    if (seenNames.has(name)) {
      rejections.push({ node: name, reason: Reason.DuplicateNodeName, message: `node "${name}" is listed more than once; the first one is used` });
      return;
    }
    seenNames.add(name);
    if (name === input.selfName) return;
    const p = parseNode(n, name);
    if (p.raw.length === 0) {
      rejections.push({ node: name, reason: Reason.NoPodCIDR, message: `node "${name}" has no podCIDR yet` });
      return;
    }
    rejections.push(...p.cidrRejections);
    candidates.push({ name, order, createdMs: p.createdMs, cidrs: p.cidrs, internalIP: p.ips.ip, internalIPError: p.ips.error });
  });
  candidates.sort((a, b) => a.createdMs - b.createdMs || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));

  const cluster = { 4: selfCidrs.filter((c) => c.family === 4).map((c) => c.text), 6: selfCidrs.filter((c) => c.family === 6).map((c) => c.text) };

  for (const cand of candidates) {
    for (const c of cand.cidrs) {
      const reject = (reason: Reason, message: string) => rejections.push({ node: cand.name, reason, podCIDR: c.text, message });
      const via = cand.internalIP[c.family];
      if (via === undefined) {
        const err = cand.internalIPError[c.family];
        if (err) reject(Reason.InternalIPMalformed, `${err}; no ${familyName(c.family)} InternalIP for podCIDR "${c.text}"`);
        else reject(Reason.NoInternalIP, `node "${cand.name}" has no ${familyName(c.family)} InternalIP for podCIDR "${c.text}"`);
        continue;
      }
      const reach = input.reachability.get(via);
      if (!reach || !reach.ok) {
        reject(Reason.NotDirectlyReachable, `no route to InternalIP ${via}${reach && !reach.ok ? `: ${reach.error}` : ''}`);
        continue;
      }
      if (reach.local) {
        reject(Reason.NotDirectlyReachable, `InternalIP ${via} is an address of this node`);
        continue;
      }
      if (reach.gateway) {
        reject(Reason.NotDirectlyReachable, `InternalIP ${via} is reached through gateway ${reach.gateway} on ${reach.dev}, not directly`);
        continue;
      }
      const localHit = local.find((l) => l.net.family === c.family && l.net.start <= c.end && c.start <= l.net.end);
      if (localHit) {
        reject(Reason.PodCIDROverlap, `podCIDR "${c.text}" overlaps ${localHit.net.text} on this node's interface ${localHit.a.ifname}`);
        continue;
      }
      const hit = taken[c.family].find(c);
      if (hit) {
        const whose = hit.owner === input.selfName ? `this node's podCIDR "${hit.cidr.text}"` : `podCIDR "${hit.cidr.text}" of node "${hit.owner}"`;
        reject(Reason.PodCIDROverlap, `podCIDR "${c.text}" overlaps ${whose}`);
        continue;
      }
      taken[c.family].add(c, cand.name);
      cluster[c.family].push(c.text);
      routes.push({ dst: c.text, via, family: c.family, node: cand.name });
    }
  }

  routes.sort((a, b) => a.family - b.family || (a.dst < b.dst ? -1 : a.dst > b.dst ? 1 : 0));
  rejections.sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0) || (a.podCIDR ?? '').localeCompare(b.podCIDR ?? ''));
  return {
    routes,
    rejections,
    self,
    clusterPodCIDRs: { v4: [...cluster[4]].sort(), v6: [...cluster[6]].sort() },
    nodeCount: input.nodes.length,
  };
}

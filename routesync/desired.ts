import {
  type Cidr,
  DisjointCidrSet,
  cidrContains,
  cidrContainsCidr,
  cidrsOverlap,
  cidrText,
  formatIp,
  lastOf,
  networkOfAddress,
  parseIp,
  parseNetwork,
} from '../lib/addr/addr.js';
import { podCidrProblem, unusableNextHop } from './pod-network.js';
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
 * Rules, per node and then per podCIDR, the first that applies giving the reason:
 *  - a node without a name, a second node with the same name → rejected whole;
 *  - no podCIDR yet → NoPodCIDR (nothing to route, not an error of the node);
 *  - podCIDRs from `spec.podCIDRs`, else `spec.podCIDR`; each must be a network address
 *    (PodCIDRMalformed; also for two of one family) and not a /0 (PodCIDRTooBroad);
 *  - it must not overlap this node's own networks (interface addresses, except those of the pod
 *    bridge inside this node's podCIDRs: its gateway address) (PodCIDROverlap);
 *  - it must be a pod network (pod-network.ts): no multicast, loopback, link-local, unspecified
 *    or broadcast space (PodCIDRReserved), not wider than a node's share (PodCIDRTooBroad),
 *    inside the cluster's pod range when one is given (PodCIDROutsideCluster);
 *  - the InternalIP of its family (the first usable one listed): missing → NoInternalIP,
 *    unparseable → InternalIPMalformed, not a possible next hop (multicast, broadcast — also a
 *    network's of this node —, link-local…) → InternalIPUnusable; the route to it must be
 *    on-link, without a gateway, and not local (NotDirectlyReachable);
 *  - it must not overlap this node's podCIDRs or a podCIDR already accepted (PodCIDROverlap).
 *    Nodes are taken oldest first (creationTimestamp, then name), so a newcomer can never take
 *    an existing node's routes.
 * This node's own podCIDRs pass the same podCIDR checks, and must not hold its InternalIP: a
 * podCIDR equal to the node network would hand pods the node's own address. A bad one leaves
 * this node without a CNI config (self not ok); peers are still routed.
 */
export interface DesiredInput {
  nodes: readonly NodeLike[];
  selfName: string;
  localAddresses: readonly LocalAddress[];
  /** Keyed by canonical IP text (see `parseIp`); a missing key counts as "no route". */
  reachability: ReadonlyMap<string, Reachability>;
  /** The cluster's pod ranges (`--cluster-cidr`); empty or absent: not known, not enforced. */
  clusterCIDRs?: readonly Cidr[] | undefined;
  /** The pod bridge (the conflist's `bridge`): its addresses inside this node's podCIDRs are the
   * pods' gateways, not a network that conflicts. Absent: any interface without an InternalIP. */
  podInterface?: string | undefined;
  /** Parse results of Node objects, kept between passes by the caller (see NodeMemo). */
  memo?: NodeMemo | undefined;
}

const NO_CLUSTER: readonly Cidr[] = [];

/** Why a node has no InternalIP of one family. */
interface IpProblem {
  reason: Reason;
  message: string;
}

/** A well-formed podCIDR of a node, with what its range is wrong about (judged after the local
 * networks: "overlaps 127.0.0.0/8 on this node's interface lo" says more than "loopback"). */
interface PodCidr {
  /** A network (host bits zero). */
  cidr: Cidr;
  /** Its canonical text, computed once per Node object (routes, messages). */
  text: string;
  problem: { reason: Reason; message: string } | undefined;
}

interface Candidate {
  name: string;
  order: number;
  createdMs: number;
  cidrs: PodCidr[];
  internalIP: { 4?: string; 6?: string };
  internalIPError: { 4?: IpProblem; 6?: IpProblem };
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

/**
 * The first usable InternalIP per family, or why there is none: addresses that do not parse, or
 * that cannot be a next hop (multicast, broadcast, link-local…), are passed over.
 */
export function internalIPs(n: NodeLike): { ip: { 4?: string; 6?: string }; error: { 4?: IpProblem; 6?: IpProblem } } {
  const ip: { 4?: string; 6?: string } = {};
  const error: { 4?: IpProblem; 6?: IpProblem } = {};
  const malformed: string[] = [];
  const unusable: { 4: string[]; 6: string[] } = { 4: [], 6: [] };
  const addrs = Array.isArray(n.status?.addresses) ? n.status.addresses : [];
  for (const a of addrs) {
    if (!a || typeof a !== 'object' || a.type !== 'InternalIP') continue;
    const p = parseIp(String(a.address ?? ''));
    if (!p) {
      malformed.push(String(a.address ?? ''));
      continue;
    }
    const fam = p.family;
    const text = formatIp(p);
    const why = unusableNextHop(text);
    if (why) unusable[fam].push(why);
    else if (ip[fam] === undefined) ip[fam] = text;
  }
  for (const fam of [4, 6] as const) {
    if (ip[fam] !== undefined) continue;
    if (unusable[fam].length > 0) error[fam] = { reason: Reason.InternalIPUnusable, message: `InternalIP ${unusable[fam].join('; ')}` };
    else if (malformed.length > 0) error[fam] = { reason: Reason.InternalIPMalformed, message: `InternalIP ${malformed.map((m) => `"${m}"`).join(', ')} is not an IP address` };
  }
  return { ip, error };
}

/** Every peer InternalIP whose reachability the caller must look up (canonical text). */
export function calcPeerAddresses(nodes: readonly NodeLike[], selfName: string, memo?: NodeMemo): string[] {
  const out = new Set<string>();
  for (const n of nodes) {
    const name = n?.metadata?.name;
    if (!name || name === selfName) continue;
    const { ip } = memo ? memo.ips(n) : internalIPs(n);
    if (ip[4]) out.add(ip[4]);
    if (ip[6]) out.add(ip[6]);
  }
  return [...out].sort();
}

function familyName(f: Family): string {
  return f === 4 ? 'IPv4' : 'IPv6';
}

const PROBLEM_REASON = { 'too-broad': Reason.PodCIDRTooBroad, reserved: Reason.PodCIDRReserved, 'outside-cluster': Reason.PodCIDROutsideCluster } as const;

/** Parse a node's podCIDRs: well-formed ones (with their range problem, if any), or the
 * rejections they earn. */
function parsePodCIDRs(name: string, raw: string[], cluster: readonly Cidr[], rejections: Rejection[]): PodCidr[] {
  const out: PodCidr[] = [];
  const seen = new Set<Family>();
  for (const text of raw) {
    const p = parseNetwork(text);
    if (!p.ok) {
      rejections.push({ node: name, reason: Reason.PodCIDRMalformed, podCIDR: text, message: `podCIDR ${p.error}` });
      continue;
    }
    const problem = podCidrProblem(p.value, cluster);
    if (problem && p.value.prefix === 0) {
      // Before anything else: a /0 overlaps every network, and "covers every address" says why.
      rejections.push({ node: name, reason: Reason.PodCIDRTooBroad, podCIDR: text, message: problem.message });
      continue;
    }
    const family = p.value.addr.family;
    if (seen.has(family)) {
      rejections.push({ node: name, reason: Reason.PodCIDRMalformed, podCIDR: text, message: `second ${familyName(family)} podCIDR "${text}" (at most one per family)` });
      continue;
    }
    seen.add(family);
    out.push({ cidr: p.value, text: cidrText(p.value), problem: problem && { reason: PROBLEM_REASON[problem.kind], message: problem.message } });
  }
  return out.sort((a, b) => a.cidr.addr.family - b.cidr.addr.family);
}

/** Parsed podCIDRs of one Node object (they depend on its name and the cluster range). */
interface ParsedCidrs {
  name: string;
  cluster: readonly Cidr[];
  raw: string[];
  cidrs: PodCidr[];
  cidrRejections: Rejection[];
  createdMs: number;
}

type NodeIps = ReturnType<typeof internalIPs>;

/**
 * Parse results memoised by Node object identity, owned by whoever runs passes (the loop): a watch
 * replaces the object of a changed Node, so with 5,000 Nodes a pass after one change parses one
 * Node, not 5,000. (Node objects are never mutated in place by the sources.) podCIDR results
 * count only for the name and cluster range they were computed with.
 */
export class NodeMemo {
  private readonly ipsOf = new WeakMap<object, NodeIps>();
  private readonly cidrsOf = new WeakMap<object, ParsedCidrs>();

  ips(n: NodeLike): NodeIps {
    let hit = this.ipsOf.get(n);
    if (!hit) {
      hit = internalIPs(n);
      this.ipsOf.set(n, hit);
    }
    return hit;
  }

  cidrs(n: NodeLike, name: string, cluster: readonly Cidr[]): ParsedCidrs {
    let hit = this.cidrsOf.get(n);
    if (!hit || hit.name !== name || hit.cluster !== cluster) {
      hit = parseCidrsOf(n, name, cluster);
      this.cidrsOf.set(n, hit);
    }
    return hit;
  }
}

function parseCidrsOf(n: NodeLike, name: string, cluster: readonly Cidr[]): ParsedCidrs {
  const raw = rawPodCIDRs(n);
  const cidrRejections: Rejection[] = [];
  const cidrs = parsePodCIDRs(name, raw, cluster, cidrRejections);
  return { name, cluster, raw, cidrs, cidrRejections, createdMs: createdMs(n) };
}

/** A network of one of this node's interfaces. */
interface LocalNet {
  a: LocalAddress;
  /** The network of the address (host bits zero). */
  net: Cidr;
}

/**
 * This node's networks that a podCIDR must not overlap: every interface address's network, except
 * those of the pod bridge lying inside this node's podCIDRs (the pods' gateway). Without the
 * bridge's name, any interface that does not hold an InternalIP of this node counts as the bridge.
 */
function conflictingLocalNets(addrs: readonly LocalAddress[], selfCidrs: readonly Cidr[], selfIPs: readonly string[], podInterface: string | undefined): LocalNet[] {
  const uplinks = new Set(addrs.filter((a) => selfIPs.includes(a.address)).map((a) => a.ifname));
  const isBridge = (a: LocalAddress) => (podInterface !== undefined ? a.ifname === podInterface : !uplinks.has(a.ifname));
  return addrs
    .map((a) => ({ a, net: networkOfAddress(a.address, a.prefix) }))
    .filter((x): x is LocalNet => x.net !== undefined)
    .filter((x) => !(isBridge(x.a) && selfCidrs.some((s) => cidrContainsCidr(s, x.net))));
}

export interface SelfOptions {
  localAddresses?: readonly LocalAddress[] | undefined;
  clusterCIDRs?: readonly Cidr[] | undefined;
  podInterface?: string | undefined;
}

export function calcSelf(nodes: readonly NodeLike[], selfName: string, opts: SelfOptions = {}): { self: SelfState; cidrs: Cidr[]; local: LocalNet[] } {
  const addrs = opts.localAddresses ?? [];
  const notOk = (reason: string, message: string) => ({
    self: { ok: false as const, name: selfName, reason, message },
    cidrs: [],
    local: conflictingLocalNets(addrs, [], [], opts.podInterface),
  });
  const node = nodes.find((n) => n?.metadata?.name === selfName);
  if (!node) return notOk('SelfNodeNotFound', `node "${selfName}" is not in the node list`);
  const raw = rawPodCIDRs(node);
  if (raw.length === 0) return notOk(Reason.NoPodCIDR, `node "${selfName}" has no podCIDR yet`);
  const rej: Rejection[] = [];
  const parsed = parsePodCIDRs(selfName, raw, opts.clusterCIDRs ?? NO_CLUSTER, rej);
  const first = rej[0];
  if (first) return notOk(first.reason, `this node: ${first.message}`);
  const cidrs = parsed.map((p) => p.cidr);
  const { ip } = internalIPs(node);
  const ips = [ip[4], ip[6]].filter((x): x is string => x !== undefined);
  const local = conflictingLocalNets(addrs, cidrs, ips, opts.podInterface);
  for (const { cidr: c, text, problem } of parsed) {
    const hit = local.find((l) => cidrsOverlap(l.net, c));
    if (hit) return notOk(Reason.PodCIDROverlap, `this node: podCIDR "${text}" overlaps ${cidrText(hit.net)} on this node's interface ${hit.a.ifname}`);
    if (problem) return notOk(problem.reason, `this node: ${problem.message}`);
    const own = ips.find((a) => {
      const p = parseIp(a);
      return p !== undefined && cidrContains(c, p);
    });
    if (own) return notOk(Reason.PodCIDROverlap, `this node: podCIDR "${text}" holds this node's InternalIP ${own}`);
  }
  return { self: { ok: true, name: selfName, podCIDRs: parsed.map((p) => p.text), internalIPs: ips }, cidrs, local };
}

export function calcDesired(input: DesiredInput): DesiredState {
  const rejections: Rejection[] = [];
  const routes: DesiredRoute[] = [];
  const cluster = input.clusterCIDRs ?? NO_CLUSTER;
  // `local`: networks of this node that a peer podCIDR must not shadow. The pod bridge's
  // addresses inside this node's own podCIDRs are this node's pods, handled by the podCIDR check.
  const { self, cidrs: selfCidrs, local } = calcSelf(input.nodes, input.selfName, { localAddresses: input.localAddresses, clusterCIDRs: cluster, podInterface: input.podInterface });

  const broadcasts = directedBroadcasts(input.localAddresses);
  const taken = { 4: new DisjointCidrSet<string>(), 6: new DisjointCidrSet<string>() };
  for (const c of selfCidrs) taken[c.addr.family].add(c, input.selfName);

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
    const memo = input.memo;
    const p = memo ? memo.cidrs(n, name, cluster) : parseCidrsOf(n, name, cluster);
    const ips = memo ? memo.ips(n) : internalIPs(n);
    if (p.raw.length === 0) {
      rejections.push({ node: name, reason: Reason.NoPodCIDR, message: `node "${name}" has no podCIDR yet` });
      return;
    }
    rejections.push(...p.cidrRejections);
    candidates.push({ name, order, createdMs: p.createdMs, cidrs: p.cidrs, internalIP: ips.ip, internalIPError: ips.error });
  });
  candidates.sort((a, b) => a.createdMs - b.createdMs || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));

  const accepted = { 4: selfCidrs.filter((c) => c.addr.family === 4).map(cidrText), 6: selfCidrs.filter((c) => c.addr.family === 6).map(cidrText) };

  for (const cand of candidates) {
    for (const { cidr: c, text, problem } of cand.cidrs) {
      const family = c.addr.family;
      const reject = (reason: Reason, message: string) => rejections.push({ node: cand.name, reason, podCIDR: text, message });
      const localHit = local.find((l) => cidrsOverlap(l.net, c));
      if (localHit) {
        reject(Reason.PodCIDROverlap, `podCIDR "${text}" overlaps ${cidrText(localHit.net)} on this node's interface ${localHit.a.ifname}`);
        continue;
      }
      if (problem) {
        reject(problem.reason, problem.message);
        continue;
      }
      const via = cand.internalIP[family];
      if (via === undefined) {
        const err = cand.internalIPError[family];
        if (err) reject(err.reason, `${err.message}; no ${familyName(family)} InternalIP for podCIDR "${text}"`);
        else reject(Reason.NoInternalIP, `node "${cand.name}" has no ${familyName(family)} InternalIP for podCIDR "${text}"`);
        continue;
      }
      const bcast = family === 4 && broadcasts.size > 0 ? broadcasts.get(parseIp(via)?.value ?? -1n) : undefined;
      if (bcast) {
        reject(Reason.InternalIPUnusable, `InternalIP ${via} is the broadcast address of ${cidrText(bcast.net)} on this node's interface ${bcast.a.ifname}: not a next hop`);
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
      const hit = taken[family].find(c);
      if (hit) {
        const whose = hit.owner === input.selfName ? `this node's podCIDR "${cidrText(hit.cidr)}"` : `podCIDR "${cidrText(hit.cidr)}" of node "${hit.owner}"`;
        reject(Reason.PodCIDROverlap, `podCIDR "${text}" overlaps ${whose}`);
        continue;
      }
      taken[family].add(c, cand.name);
      accepted[family].push(text);
      routes.push({ dst: text, via, family, node: cand.name });
    }
  }

  routes.sort((a, b) => a.family - b.family || (a.dst < b.dst ? -1 : a.dst > b.dst ? 1 : 0));
  rejections.sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0) || (a.podCIDR ?? '').localeCompare(b.podCIDR ?? ''));
  return {
    routes,
    rejections,
    self,
    clusterPodCIDRs: { v4: [...accepted[4]].sort(), v6: [...accepted[6]].sort() },
    uplink: self.ok ? uplinkOf(input.localAddresses, self.internalIPs) : undefined,
    nodeCount: input.nodes.length,
  };
}

/** The interface that holds one of this node's InternalIPs (IPv4 first). */
function uplinkOf(addrs: readonly LocalAddress[], ips: readonly string[]): { ifname: string; mtu: number } | undefined {
  for (const ip of ips) {
    const a = addrs.find((x) => x.address === ip);
    if (a) return { ifname: a.ifname, mtu: a.mtu };
  }
  return undefined;
}

/** This node's IPv4 networks by their broadcast address (the kernel refuses one as a gateway:
 * "Nexthop has invalid gateway"). /31 and /32 have none. */
function directedBroadcasts(addrs: readonly LocalAddress[]): Map<bigint, LocalNet> {
  const out = new Map<bigint, LocalNet>();
  for (const a of addrs) {
    if (a.family !== 4 || a.prefix > 30) continue;
    const net = networkOfAddress(a.address, a.prefix);
    if (!net) continue;
    const bcast = lastOf(net).value;
    if (!out.has(bcast)) out.set(bcast, { a, net });
  }
  return out;
}

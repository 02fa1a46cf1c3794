import { parseCniArgs } from '../../lib/cni/cni-args.js';
import { CniError, ErrorCode } from '../../lib/cni/errors.js';
import type { NetConf, Route } from '../../lib/cni/types.js';
import { versionAtLeast } from '../../lib/cni/version.js';
import { type Addr, familyBits, cidrText, formatCidr, formatIp, hostMask, parseCidr, parseIp, parseIpMaybeCidr } from '../../lib/addr/addr.js';
import { type JsonObject as Obj, isJsonObject as isObj } from '../../lib/cni/json.js';

/**
 * The IPAM configuration, a drop-in for the reference host-local's (plugins/ipam/host-local
 * backend/allocator/config.go, range.go, range_set.go): the same keys, defaults and checks.
 */

/** One subnet of a range set, canonicalized: every field filled in. */
export interface Range {
  family: 4 | 6;
  /** Network address (host bits zero). */
  network: bigint;
  prefix: number;
  /** First and last address handed out, inclusive. */
  start: bigint;
  end: bigint;
  gateway: Addr;
}

/** The subnets one address is picked from (one address per set per attachment). */
export type RangeSet = Range[];

export interface IpamConf {
  /** The network's name: the store's directory under dataDir. */
  name: string;
  cniVersion: string;
  dataDir: string;
  /** runtimeConfig.ipRanges first, then the legacy top-level range, then `ranges`. */
  ranges: RangeSet[];
  routes: Route[];
  resolvConf?: string;
  /** From CNI_ARGS IP=, args.cni.ips and runtimeConfig.ips, deduplicated, in that order. */
  requestedIps: Addr[];
}

export const DEFAULT_DATA_DIR = '/var/lib/cni/networks';


function invalid(msg: string): never {
  throw new CniError(ErrorCode.InvalidNetworkConfig, `invalid ipam config: ${msg}`);
}

function optString(o: Obj, key: string, where: string): string | undefined {
  const v = o[key];
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string') invalid(`${where}.${key} must be a string`);
  return v;
}

export const rangeText = (r: Range): string =>
  `${formatIp({ family: r.family, value: r.start })}-${formatIp({ family: r.family, value: r.end })}`;

export const rangeSetText = (s: RangeSet): string => s.map(rangeText).join(',');

export const subnetText = (r: Range): string => formatCidr({ family: r.family, value: r.network }, r.prefix);

/** Upstream Range.Canonicalize, plus a check that start ≤ end and the gateway's family. */
function loadRange(raw: unknown, where: string): Range {
  if (!isObj(raw)) invalid(`${where} must be an object`);
  const subnetRaw = raw.subnet;
  if (typeof subnetRaw !== 'string' || subnetRaw === '') invalid(`${where}.subnet is required`);
  const cidr = parseCidr(subnetRaw);
  if (!cidr) invalid(`${where}.subnet "${subnetRaw}" is not a valid CIDR`);
  const { family } = cidr.addr;
  const bits = familyBits(family);
  if (cidr.prefix > bits - 2) invalid(`${where}: network ${subnetRaw} too small to allocate from`);
  // The whole address space is a default route, not a pod subnet (a pod once got 0.0.0.2/0).
  if (cidr.prefix === 0) invalid(`${where}: network ${subnetRaw} is the whole address space, not a subnet to allocate from`);
  const mask = hostMask(family, cidr.prefix);
  const network = cidr.addr.value & ~mask;
  if (network !== cidr.addr.value) {
    invalid(
      `${where}: network ${subnetRaw} has host bits set; for a prefix length of ${cidr.prefix} the network address is ${formatIp({ family, value: network })}`,
    );
  }
  const broadcast = network | mask;
  const net = cidrText(cidr);
  const inSubnet = (a: Addr) => a.family === family && (a.value & ~mask) === network;

  const addrKey = (key: string): Addr | undefined => {
    const text = optString(raw, key, where);
    if (text === undefined) return undefined;
    const a = parseIp(text);
    if (!a) invalid(`${where}.${key} "${text}" is not a valid IP address`);
    return a;
  };
  const gw = addrKey('gateway');
  if (gw && gw.family !== family) invalid(`${where}.gateway ${formatIp(gw)} is not in the address family of ${net}`);
  // A gateway outside the subnet makes the bridge (isGateway) route a network that is not the pods'.
  if (gw && !inSubnet(gw)) invalid(`${where}.gateway ${formatIp(gw)} not in network ${net}`);
  const rs = addrKey('rangeStart');
  if (rs && !inSubnet(rs)) invalid(`${where}.rangeStart ${formatIp(rs)} not in network ${net}`);
  const re = addrKey('rangeEnd');
  if (re && !inSubnet(re)) invalid(`${where}.rangeEnd ${formatIp(re)} not in network ${net}`);

  const start = rs?.value ?? network + 1n;
  // Upstream's lastIP: the broadcast address excluded for IPv4, the last address for IPv6.
  const end = re?.value ?? (family === 4 ? broadcast - 1n : broadcast);
  if (start > end) invalid(`${where}: rangeStart ${formatIp({ family, value: start })} is after rangeEnd ${formatIp({ family, value: end })}`);
  return { family, network, prefix: cidr.prefix, start, end, gateway: gw ?? { family, value: network + 1n } };
}

const rangesOverlap = (a: Range, b: Range): boolean => a.family === b.family && a.start <= b.end && b.start <= a.end;

function loadRangeSet(raw: unknown, where: string): RangeSet {
  if (!Array.isArray(raw)) invalid(`${where} must be a list of ranges`);
  if (raw.length === 0) invalid(`${where}: empty range set`);
  const set = raw.map((r, i) => loadRange(r, `${where}[${i}]`));
  const fam = set[0]?.family;
  if (set.some((r) => r.family !== fam)) invalid(`${where}: mixed address families in one range set`);
  for (let i = 0; i < set.length; i++) {
    for (let j = i + 1; j < set.length; j++) {
      const a = set[i] as Range;
      const b = set[j] as Range;
      if (rangesOverlap(a, b)) invalid(`${where}: subnets ${rangeText(a)} and ${rangeText(b)} overlap`);
    }
  }
  return set;
}

function loadRoutes(raw: unknown): Route[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) invalid('ipam.routes must be a list');
  return raw.map((r, i) => {
    const where = `ipam.routes[${i}]`;
    if (!isObj(r)) invalid(`${where} must be an object`);
    const dstText = optString(r, 'dst', where);
    const dst = dstText === undefined ? undefined : parseCidr(dstText);
    if (!dst) invalid(`${where}.dst ${dstText === undefined ? 'is required' : `"${dstText}" is not a valid CIDR`}`);
    const route: Route = { dst: cidrText(dst) };
    const gwText = optString(r, 'gw', where);
    if (gwText !== undefined) {
      const gw = parseIp(gwText);
      if (!gw) invalid(`${where}.gw "${gwText}" is not a valid IP address`);
      route.gw = formatIp(gw);
    }
    for (const key of ['mtu', 'advmss', 'priority', 'table', 'scope'] as const) {
      const v = r[key];
      if (v === undefined || v === null) continue;
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) invalid(`${where}.${key} must be a non-negative integer`);
      route[key] = v;
    }
    return route;
  });
}

function loadIpList(raw: unknown, where: string): Addr[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) invalid(`${where} must be a list of IP addresses`);
  return raw.map((t, i) => {
    const a = typeof t === 'string' ? parseIpMaybeCidr(t) : undefined;
    if (!a) invalid(`${where}[${i}] ${JSON.stringify(t)} is not a valid IP address`);
    return a;
  });
}

/**
 * Read the IPAM part of a network config (the calling plugin's whole config, as the spec
 * passes it) and the invocation's CNI_ARGS. Every problem is a CniError with code 7, except
 * CNI_ARGS that are malformed or unknown (codes 4 and 2, from parseCniArgs).
 */
export function loadIpamConf(netConf: NetConf, cniArgs: string): IpamConf {
  const ipam = netConf.ipam;
  if (ipam === undefined || ipam === null) invalid('missing "ipam" key');
  if (!isObj(ipam)) invalid('"ipam" must be an object');

  const requested: Addr[] = [];
  const ipArg = parseCniArgs(cniArgs, ['IP']).get('IP');
  if (ipArg) {
    for (const t of ipArg.split(',')) {
      const a = parseIpMaybeCidr(t.trim());
      if (!a) invalid(`CNI_ARGS IP "${t}" is not a valid IP address`);
      requested.push(a);
    }
  }
  const args = netConf.args;
  if (args !== undefined && args !== null) {
    if (!isObj(args)) invalid('"args" must be an object');
    const cni = args.cni;
    if (cni !== undefined && cni !== null) {
      if (!isObj(cni)) invalid('"args.cni" must be an object');
      requested.push(...loadIpList(cni.ips, 'args.cni.ips'));
    }
  }
  const rc = netConf.runtimeConfig;
  if (rc !== undefined && rc !== null && !isObj(rc)) invalid('"runtimeConfig" must be an object');
  requested.push(...loadIpList(rc?.ips, 'runtimeConfig.ips'));
  const seen = new Set<string>();
  const requestedIps = requested.filter((a) => {
    const k = formatIp(a);
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });

  // Upstream's order: runtimeConfig.ipRanges, then the single legacy range, then `ranges`.
  const ranges: RangeSet[] = [];
  const rcRanges = rc?.ipRanges;
  if (rcRanges !== undefined && rcRanges !== null) {
    if (!Array.isArray(rcRanges)) invalid('runtimeConfig.ipRanges must be a list of range sets');
    rcRanges.forEach((s, i) => ranges.push(loadRangeSet(s, `runtimeConfig.ipRanges[${i}]`)));
  }
  if (ipam.subnet !== undefined && ipam.subnet !== null && ipam.subnet !== '') {
    ranges.push([loadRange(ipam, 'ipam')]);
  }
  if (ipam.ranges !== undefined && ipam.ranges !== null) {
    if (!Array.isArray(ipam.ranges)) invalid('ipam.ranges must be a list of range sets');
    ipam.ranges.forEach((s, i) => ranges.push(loadRangeSet(s, `ipam.ranges[${i}]`)));
  }
  if (ranges.length === 0) invalid('no IP ranges specified');

  const perFamily = { 4: 0, 6: 0 };
  for (const s of ranges) perFamily[(s[0] as Range).family] += 1;
  if ((perFamily[4] > 1 || perFamily[6] > 1) && !versionAtLeast(netConf.cniVersion, '0.3.0')) {
    invalid(`CNI version ${netConf.cniVersion} does not support more than 1 address per family`);
  }
  for (let i = 0; i < ranges.length; i++) {
    for (let j = i + 1; j < ranges.length; j++) {
      const overlap = (ranges[i] as RangeSet).some((a) => (ranges[j] as RangeSet).some((b) => rangesOverlap(a, b)));
      if (overlap) invalid(`range set ${i} overlaps with ${j}`);
    }
  }

  const dataDir = optString(ipam, 'dataDir', 'ipam') ?? DEFAULT_DATA_DIR;
  const resolvConf = optString(ipam, 'resolvConf', 'ipam');
  return {
    name: netConf.name,
    cniVersion: netConf.cniVersion,
    dataDir,
    ranges,
    routes: loadRoutes(ipam.routes),
    ...(resolvConf !== undefined ? { resolvConf } : {}),
    requestedIps,
  };
}

import { CniError, ErrorCode } from '../../lib/cni/errors.js';
import type { IpConfig, Result, Route } from '../../lib/cni/types.js';
import { type Family as IpFamily, cidrContains, cidrParts, cidrsOverlap, formatIp, gatewayOf, parseCidr, parseIp } from '../../lib/addr/addr.js';
import type { BridgeChange, IpChange, LinkAddr, NetnsSysctl } from '../../lib/linux/ip.js';
import type { BridgeConf } from './netconf.js';

/**
 * The kernel work of ADD as data: pure functions from the config and the IPAM result to the
 * typed operations of `ip -batch` runs (node side, pod side) and `bridge -batch` (VLANs).
 * bridge.ts runs them; unit tests read them (rendered by lib/linux/ip.ts).
 */

/** The container interface is result.interfaces[2]: [bridge, host veth, container]. */
export const CONTAINER_IFACE_INDEX = 2;

export interface Gateways {
  /** Gateway addresses with the pod subnet's prefix, per family, for the bridge. */
  4: string[];
  6: string[];
}

/**
 * upstream calcGateways: point every IP at the container interface, fill in the gateway
 * (network + 1) when isGateway and the IPAM gave none, add a default route per family when
 * isDefaultGateway (unless the IPAM already routes the default via a gateway), and collect the
 * bridge's gateway addresses.
 */
export function calcGateways(ipam: Result, conf: BridgeConf): { ips: IpConfig[]; routes: Route[]; gateways: Gateways } {
  const ips: IpConfig[] = [];
  const routes: Route[] = [...(ipam.routes ?? [])];
  const gateways: Gateways = { 4: [], 6: [] };
  const defaultDone: Record<IpFamily, boolean> = { 4: false, 6: false };
  for (const ipc of ipam.ips ?? []) {
    const c = parseCidr(ipc.address);
    const p = cidrParts(ipc.address);
    if (!c || !p) throw new CniError(ErrorCode.DecodingFailure, `failed to decode IPAM result: "${ipc.address}" is not an address/prefix`);
    if (ipc.gateway !== undefined) {
      const gw = parseIp(ipc.gateway);
      // A gateway outside the pod's subnet would put a foreign subnet on the bridge (isGateway)
      // and is unreachable from the pod: refused, as a config that cannot work.
      if (!gw || !cidrContains(c, gw)) {
        throw new CniError(
          ErrorCode.InvalidNetworkConfig,
          `invalid IPAM result: gateway ${ipc.gateway} is outside the subnet ${p.subnet} of ${ipc.address}`,
          'ipam',
        );
      }
    }
    const gateway = ipc.gateway ?? (conf.isGateway ? formatIp(gatewayOf(c)) : undefined);
    const out: IpConfig = gateway
      ? { address: ipc.address, gateway, interface: CONTAINER_IFACE_INDEX }
      : { address: ipc.address, interface: CONTAINER_IFACE_INDEX };
    if (conf.isDefaultGateway && !defaultDone[p.family]) {
      const dst = p.family === 4 ? '0.0.0.0/0' : '::/0';
      const has = routes.some((r) => r.gw && sameCidr(r.dst, dst));
      if (!has) {
        const r: Route = { dst };
        if (out.gateway) r.gw = out.gateway;
        routes.push(r);
      }
      defaultDone[p.family] = true;
    }
    if (conf.isGateway && out.gateway) gateways[p.family].push(`${out.gateway}/${p.prefix}`);
    ips.push(out);
  }
  return { ips, routes, gateways };
}

function sameCidr(a: string, b: string): boolean {
  const pa = cidrParts(a);
  const pb = cidrParts(b);
  return pa !== undefined && pb !== undefined ? pa.subnet === pb.subnet : a === b;
}

export interface NodePlan {
  conf: BridgeConf;
  createBridge: boolean;
  bridgeMac: string;
  hostVeth: string;
  ifName: string;
  netns: string;
  /** Container MAC to set (configured, or chosen by us when we must know it up front). */
  containerMac: string | undefined;
}

/** The node batch: bridge (if missing), veth with its peer in the pod, port setup, bridge up. */
export interface NodeOps {
  bridge: IpChange | undefined;
  veth: IpChange;
  master: IpChange;
  port: IpChange | undefined;
  hostUp: IpChange;
  bridgeUp: IpChange;
}

export function calcNodeOps(p: NodePlan): NodeOps {
  const { conf } = p;
  const mtu = conf.mtu || undefined;
  const vlanFiltering = conf.vlan !== 0 || conf.vlanTrunk.length > 0;
  return {
    bridge: p.createBridge ? { kind: 'link-add-bridge', name: conf.bridge, mac: p.bridgeMac, mtu, vlanFiltering } : undefined,
    veth: { kind: 'link-add-veth', name: p.hostVeth, mtu, peer: { name: p.ifName, mtu, mac: p.containerMac, netns: p.netns } },
    master: { kind: 'link-master', dev: p.hostVeth, master: conf.bridge },
    port: conf.hairpinMode || conf.portIsolation ? { kind: 'link-port', dev: p.hostVeth, hairpin: conf.hairpinMode, isolated: conf.portIsolation } : undefined,
    hostUp: { kind: 'link-up', dev: p.hostVeth },
    bridgeUp: { kind: 'link-up', dev: conf.bridge, promisc: conf.promiscMode },
  };
}

/** `bridge -batch` operations for a port's VLANs (upstream setupVeth's VLAN part). */
export function calcVlanOps(conf: BridgeConf, port: string, defaultPvid: number, vlan = conf.vlan, trunk = conf.vlanTrunk): BridgeChange[] {
  const ops: BridgeChange[] = [];
  if ((vlan !== 0 || trunk.length > 0) && !conf.preserveDefaultVlan && defaultPvid > 0) {
    ops.push({ kind: 'vlan', verb: 'del', dev: port, vid: defaultPvid });
  }
  if (vlan !== 0) ops.push({ kind: 'vlan', verb: 'add', dev: port, vid: vlan, pvidUntagged: true, master: true });
  for (const v of trunk) ops.push({ kind: 'vlan', verb: 'add', dev: port, vid: v, master: true });
  if (vlan === 0 && trunk.length > 0) ops.push({ kind: 'vlan', verb: 'add', dev: port, vid: 1, pvidUntagged: true, master: true });
  return ops;
}

/** Sysctls written inside the pod before its batch (upstream: arp_notify, DAD, IPv6 enablement). */
export function calcPodSysctls(conf: BridgeConf, ifName: string, ips: readonly IpConfig[]): NetnsSysctl[] {
  const s: NetnsSysctl[] = [];
  if (conf.enabledad) {
    s.push({ key: `net/ipv6/conf/${ifName}/enhanced_dad`, value: '1' }, { key: `net/ipv6/conf/${ifName}/accept_dad`, value: '1' });
  } else {
    s.push({ key: `net/ipv6/conf/${ifName}/accept_dad`, value: '0' });
  }
  s.push({ key: `net/ipv4/conf/${ifName}/arp_notify`, value: '1' });
  if (ips.some((ip) => parseCidr(ip.address)?.addr.family === 6)) {
    s.push(
      { key: 'net/ipv6/conf/lo/disable_ipv6', value: '0', required: true },
      { key: `net/ipv6/conf/${ifName}/disable_ipv6`, value: '0', required: true },
      { key: `net/ipv6/conf/${ifName}/keep_addr_on_down`, value: '1', required: true },
    );
  }
  return s;
}

/** Addresses on the pod interface (upstream ipam.ConfigureIface, first half). */
export function calcPodAddrOps(ifName: string, ips: readonly IpConfig[]): IpChange[] {
  return ips.map((ip) => ({ kind: 'addr-add', dev: ifName, cidr: ip.address, broadcast: true }));
}

/** Routes in the pod: a route without gw goes via the first gateway of its family, if any. */
export function calcPodRouteOps(ifName: string, ips: readonly IpConfig[], routes: readonly Route[]): IpChange[] {
  const gw: Partial<Record<IpFamily, string>> = {};
  for (const ip of ips) {
    const fam = parseCidr(ip.address)?.addr.family;
    if (fam && ip.gateway && !gw[fam]) gw[fam] = ip.gateway;
  }
  return routes.map((r) => {
    const fam = parseCidr(r.dst)?.addr.family;
    const via = r.gw ?? (fam ? gw[fam] : undefined);
    return { kind: 'route', verb: 'add', dst: r.dst, via, dev: ifName, metric: r.priority, table: r.table, scope: r.scope, mtu: r.mtu, advmss: r.advmss };
  });
}

/**
 * upstream ensureAddr, as operations: nothing when the gateway is already there; an IPv4
 * address that differs (or an overlapping IPv6 one) is an error unless forceAddress, which
 * removes it first.
 */
export function calcGatewayOps(device: string, current: readonly Pick<LinkAddr, 'family' | 'cidr' | 'scope'>[], gateways: Gateways, forceAddress: boolean): IpChange[] {
  const ops: IpChange[] = [];
  for (const fam of [4, 6] as const) {
    for (const gw of gateways[fam]) {
      const want = parseCidr(gw);
      if (!want) continue;
      const wantText = `${formatIp(want.addr)}/${want.prefix}`;
      if (current.some((a) => a.cidr === wantText)) continue;
      for (const a of current) {
        if (a.family !== fam || a.scope === 'link') continue;
        const have = parseCidr(a.cidr);
        if (fam === 4 || (have && cidrsOverlap(have, want))) {
          if (!forceAddress) {
            throw new CniError(
              ErrorCode.InvalidNetworkConfig,
              `failed to set bridge addr: "${device}" already has an IP address different from ${wantText} (${a.cidr}); set forceAddress to replace it`,
              'forceAddress',
            );
          }
          ops.push({ kind: 'addr-del', dev: device, cidr: a.cidr });
        }
      }
      ops.push({ kind: 'addr-add', dev: device, cidr: wantText, broadcast: true });
    }
  }
  return ops;
}

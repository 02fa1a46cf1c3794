import { CniError, ErrorCode } from '../../lib/cni/errors.js';
import type { IpConfig, Result, Route } from '../../lib/cni/types.js';
import type { NetnsSysctl } from '../../lib/linux/ip.js';
import type { IpFamily } from '../../lib/linux/netfilter.js';
import { calcGatewayIp, canonicalIp, cidrsOverlap, familyOf, parseCidr } from './addr.js';
import type { BridgeConf } from './netconf.js';

/**
 * The kernel work of ADD as data: pure functions from the config and the IPAM result to the
 * lines of `ip -batch` runs (node side, pod side) and `bridge -batch` (VLANs). bridge.ts runs
 * them; unit tests read them.
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
    const p = parseCidr(ipc.address);
    const gateway = ipc.gateway ?? (conf.isGateway ? calcGatewayIp(ipc.address) : undefined);
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
  try {
    const pa = parseCidr(a);
    const pb = parseCidr(b);
    return pa.subnet === pb.subnet;
  } catch {
    return a === b;
  }
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

/** One `ip -batch` in the node namespace: bridge (if missing), veth with its peer in the pod, port setup. */
export function calcNodeLines(p: NodePlan): { lines: string[]; bridgeLine: number; vethLine: number } {
  const { conf } = p;
  const lines: string[] = [];
  const mtu = conf.mtu ? ` mtu ${conf.mtu}` : '';
  let bridgeLine = 0;
  if (p.createBridge) {
    const vf = conf.vlan !== 0 || conf.vlanTrunk.length > 0 ? ' vlan_filtering 1' : '';
    lines.push(`link add name ${conf.bridge} address ${p.bridgeMac}${mtu} type bridge${vf}`);
    bridgeLine = lines.length;
  }
  const mac = p.containerMac ? ` address ${p.containerMac}` : '';
  lines.push(`link add name ${p.hostVeth}${mtu} type veth peer name ${p.ifName}${mtu}${mac} netns ${p.netns}`);
  const vethLine = lines.length;
  lines.push(`link set dev ${p.hostVeth} master ${conf.bridge}`);
  const port: string[] = [];
  if (conf.hairpinMode) port.push('hairpin on');
  if (conf.portIsolation) port.push('isolated on');
  if (port.length) lines.push(`link set dev ${p.hostVeth} type bridge_slave ${port.join(' ')}`);
  lines.push(`link set dev ${p.hostVeth} up`);
  lines.push(`link set dev ${conf.bridge} up${conf.promiscMode ? ' promisc on' : ''}`);
  lines.push(`addr show dev ${conf.bridge}`, `addr show dev ${p.hostVeth}`);
  return { lines, bridgeLine, vethLine };
}

/** `bridge -batch` lines for a port's VLANs (upstream setupVeth's VLAN part). */
export function calcVlanLines(conf: BridgeConf, port: string, defaultPvid: number, vlan = conf.vlan, trunk = conf.vlanTrunk): string[] {
  const lines: string[] = [];
  if ((vlan !== 0 || trunk.length > 0) && !conf.preserveDefaultVlan && defaultPvid > 0) {
    lines.push(`vlan del dev ${port} vid ${defaultPvid}`);
  }
  if (vlan !== 0) lines.push(`vlan add dev ${port} vid ${vlan} pvid untagged master`);
  for (const v of trunk) lines.push(`vlan add dev ${port} vid ${v} master`);
  if (vlan === 0 && trunk.length > 0) lines.push(`vlan add dev ${port} vid 1 pvid untagged master`);
  return lines;
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
  if (ips.some((ip) => familyOf(ip.address.split('/')[0] as string) === 6)) {
    s.push(
      { key: 'net/ipv6/conf/lo/disable_ipv6', value: '0', required: true },
      { key: `net/ipv6/conf/${ifName}/disable_ipv6`, value: '0', required: true },
      { key: `net/ipv6/conf/${ifName}/keep_addr_on_down`, value: '1', required: true },
    );
  }
  return s;
}

/** Addresses on the pod interface (upstream ipam.ConfigureIface, first half). */
export function calcPodAddrLines(ifName: string, ips: readonly IpConfig[]): string[] {
  return ips.map((ip) => (familyOf(ip.address) === 4 ? `addr add ${ip.address} brd + dev ${ifName}` : `addr add ${ip.address} dev ${ifName}`));
}

/** Routes in the pod: a route without gw goes via the first gateway of its family, if any. */
export function calcPodRouteLines(ifName: string, ips: readonly IpConfig[], routes: readonly Route[]): string[] {
  const gw: Partial<Record<IpFamily, string>> = {};
  for (const ip of ips) {
    const fam = familyOf(ip.address.split('/')[0] as string);
    if (ip.gateway && !gw[fam]) gw[fam] = ip.gateway;
  }
  return routes.map((r) => {
    const fam = familyOf(r.dst.split('/')[0] as string);
    const via = r.gw ?? gw[fam];
    let line = `route add ${r.dst}${via ? ` via ${via}` : ''} dev ${ifName}`;
    if (r.priority !== undefined) line += ` metric ${r.priority}`;
    if (r.table !== undefined) line += ` table ${r.table}`;
    if (r.scope !== undefined) line += ` scope ${r.scope}`;
    if (r.mtu !== undefined) line += ` mtu ${r.mtu}`;
    if (r.advmss !== undefined) line += ` advmss ${r.advmss}`;
    return line;
  });
}

export interface LinkAddr {
  family: IpFamily;
  /** address/prefix */
  cidr: string;
  scope: string;
}

/** Addresses of an `ip -j addr show` entry. */
export function linkAddrs(entry: Record<string, unknown> | undefined): LinkAddr[] {
  const list = (entry?.addr_info as Record<string, unknown>[] | undefined) ?? [];
  return list
    .filter((a) => a.family === 'inet' || a.family === 'inet6')
    .map((a) => ({
      family: a.family === 'inet' ? 4 : 6,
      cidr: `${canonicalIp(String(a.local))}/${String(a.prefixlen)}`,
      scope: String(a.scope ?? ''),
    }));
}

/**
 * upstream ensureAddr, as batch lines: nothing when the gateway is already there; an IPv4
 * address that differs (or an overlapping IPv6 one) is an error unless forceAddress, which
 * removes it first.
 */
export function calcGatewayLines(device: string, current: readonly LinkAddr[], gateways: Gateways, forceAddress: boolean): string[] {
  const lines: string[] = [];
  for (const fam of [4, 6] as const) {
    for (const gw of gateways[fam]) {
      const want = `${canonicalIp(gw.split('/')[0] as string)}/${gw.split('/')[1]}`;
      if (current.some((a) => a.cidr === want)) continue;
      for (const a of current) {
        if (a.family !== fam || a.scope === 'link') continue;
        if (fam === 4 || cidrsOverlap(a.cidr, want)) {
          if (!forceAddress) {
            throw new CniError(
              ErrorCode.InvalidNetworkConfig,
              `failed to set bridge addr: "${device}" already has an IP address different from ${want} (${a.cidr}); set forceAddress to replace it`,
              'forceAddress',
            );
          }
          lines.push(`addr del ${a.cidr} dev ${device}`);
        }
      }
      lines.push(fam === 4 ? `addr add ${want} brd + dev ${device}` : `addr add ${want} dev ${device}`);
    }
  }
  return lines;
}

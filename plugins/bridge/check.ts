import type { CmdArgs } from '../../lib/cni/dispatch.js';
import { CniError, ErrorCode } from '../../lib/cni/errors.js';
import type { Interface, Result } from '../../lib/cni/types.js';
import { canonicalIp, cidrParts, cidrText, parseCidr } from '../../lib/addr/addr.js';
import { IpBatch, type LinkEntry } from '../../lib/linux/ip.js';
import { isIfName } from '../../lib/linux/values.js';
import type { BridgeDeps } from './bridge.js';
import type { Masq } from './masq.js';
import type { BridgeConf } from './netconf.js';

/**
 * CHECK (upstream cmdCheck, plus the masquerade rules): the bridge, the veth pair (container
 * interface in the netns, its peer on the bridge), the container's IPs and routes against
 * prevResult. Two reads: one `ip -batch` on the node, one in the pod. prevResult is untrusted
 * (anything in the chain shapes it): an interface name that no link can have is no candidate
 * for our veth and never reaches `ip`; its addresses and routes were checked when decoded.
 */
const fail = (msg: string): never => {
  throw new CniError(ErrorCode.CheckFailed, msg);
};

type Entry = Record<string, unknown>;

/** `prev` is the invocation's prevResult, which the caller has required. */
export async function runCheck(deps: BridgeDeps, conf: BridgeConf, args: CmdArgs, prev: Result, netns: string, masq: Masq): Promise<void> {
  const ifaces = prev.interfaces ?? [];
  const brIface = ifaces.find((i) => i.name === conf.bridge && !i.sandbox);
  const contIface = ifaces.find((i) => i.name === args.ifName && i.sandbox === netns);
  if (!brIface) fail(`bridge "${conf.bridge}" is not in prevResult`);
  if (!contIface) fail(`interface "${args.ifName}" with sandbox "${netns}" is not in prevResult`);
  const hostCandidates = ifaces.filter((i) => !i.sandbox && i.name !== conf.bridge && isIfName(i.name));

  const node = new IpBatch({ force: true });
  const brStep = node.link(conf.bridge);
  const hostSteps = hostCandidates.map((i) => ({ iface: i, step: node.link(i.name) }));
  const pod = new IpBatch({ netns, force: true });
  const contStep = pod.link(args.ifName);
  const routeStep = pod.routes({ kind: 'route-show', table: 'all' });
  await Promise.all([node.run(deps.ip), pod.run(deps.ip)]);

  // Bridge.
  const br = (brStep.ok ? brStep.value : undefined) ?? fail(`bridge "${conf.bridge}" in the host namespace was not found`);
  if (br.kind !== 'bridge') fail(`interface "${conf.bridge}" does not have link type of bridge`);
  if (brIface?.mac && brIface.mac.toLowerCase() !== br.mac) fail(`bridge "${conf.bridge}" MAC ${String(br.mac)} does not match prevResult ${brIface.mac}`);
  const promisc = br.flags.includes('PROMISC');
  if (promisc !== conf.promiscMode) fail(`bridge "${conf.bridge}" promiscuous mode is ${promisc}, config says ${conf.promiscMode}`);

  // Container interface.
  const podOut = contStep.ok ? contStep.value : undefined;
  const cont: LinkEntry = podOut && podOut.ifname === args.ifName ? podOut : fail(`interface "${args.ifName}" in "${netns}" was not found`);
  if (cont.kind !== 'veth') fail(`container interface "${args.ifName}" is not of type veth`);
  if ((contIface as Interface).mac && (contIface as Interface).mac?.toLowerCase() !== cont.mac) {
    fail(`container interface "${args.ifName}" MAC ${String(cont.mac)} does not match prevResult ${(contIface as Interface).mac}`);
  }

  // Its peer: a host interface from prevResult, paired with it and enslaved to the bridge.
  const veth = hostSteps
    .map(({ iface, step }) => ({ iface, e: step.ok ? step.value : undefined }))
    .find(({ e }) => e && e.kind === 'veth' && e.ifindex === cont.linkIndex && e.linkIndex === cont.ifindex && e.master === conf.bridge);
  if (!veth) fail(`veth of "${args.ifName}" on bridge "${conf.bridge}" was not found`);
  if (veth?.iface.mac && veth.iface.mac.toLowerCase() !== veth.e?.mac) fail(`interface "${veth.iface.name}" MAC does not match prevResult ${veth.iface.mac}`);

  // Addresses.
  const have = new Set(cont.addrs.map((a) => a.cidr));
  for (const ip of prev.ips ?? []) {
    const c = parseCidr(ip.address);
    if (!c || !have.has(cidrText(c))) fail(`address ${ip.address} is not on "${args.ifName}"`);
  }
  // Routes.
  const routes = (routeStep.ok ? routeStep.value : []) as Entry[];
  for (const r of prev.routes ?? []) {
    const want = cidrParts(r.dst);
    if (!want) return fail(`route ${r.dst} is not a CIDR`);
    const found = routes.some((x) => {
      const dst = String(x.dst);
      // `route show table all` lists both families; "default" carries no family of its own.
      const sameDst = dst === 'default' ? want.prefix === 0 : safeSubnet(dst, want.family) === want.subnet;
      if (!sameDst) return false;
      return !r.gw || (typeof x.gateway === 'string' && canonicalIp(x.gateway) !== undefined && canonicalIp(x.gateway) === canonicalIp(r.gw));
    });
    if (!found) fail(`route ${r.dst}${r.gw ? ` via ${r.gw}` : ''} is not in "${netns}"`);
  }

  // Masquerade rules (the reference does not check these).
  if (conf.ipMasq && conf.ipamType) {
    const targets = (prev.ips ?? []).map((ip) => cidrParts(ip.address)).filter((p) => p !== undefined).map((p) => ({ family: p.family, ip: p.ip, subnet: p.subnet }));
    const missing = await masq.missing(targets);
    if (missing.length) fail(`masquerade rule for ${missing.map((t) => t.ip).join(', ')} is missing`);
  }
}

function safeSubnet(dst: string, family: 4 | 6): string | undefined {
  const withPrefix = dst.includes('/') ? dst : `${dst}/${family === 4 ? 32 : 128}`;
  const p = cidrParts(withPrefix);
  return p && p.family === family ? p.subnet : undefined;
}

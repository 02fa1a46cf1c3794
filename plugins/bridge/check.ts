import type { CmdArgs } from '../../lib/cni/dispatch.js';
import { CniError, ErrorCode } from '../../lib/cni/errors.js';
import type { Interface } from '../../lib/cni/types.js';
import { canonicalIp, parseCidr } from './addr.js';
import type { BridgeDeps } from './bridge.js';
import type { Masq } from './masq.js';
import type { BridgeConf } from './netconf.js';
import { linkAddrs } from './setup.js';

/**
 * CHECK (upstream cmdCheck, plus the masquerade rules): the bridge, the veth pair (container
 * interface in the netns, its peer on the bridge), the container's IPs and routes against
 * prevResult. Two reads: one `ip -batch` on the node, one in the pod.
 */
const fail = (msg: string): never => {
  throw new CniError(ErrorCode.CheckFailed, msg);
};

type Entry = Record<string, unknown>;

export async function runCheck(deps: BridgeDeps, conf: BridgeConf, args: CmdArgs, netns: string, masq: Masq): Promise<void> {
  const prev = args.prevResult;
  if (!prev) return fail('required prevResult missing');
  const ifaces = prev.interfaces ?? [];
  const brIface = ifaces.find((i) => i.name === conf.bridge && !i.sandbox);
  const contIface = ifaces.find((i) => i.name === args.ifName && i.sandbox === netns);
  if (!brIface) fail(`bridge "${conf.bridge}" is not in prevResult`);
  if (!contIface) fail(`interface "${args.ifName}" with sandbox "${netns}" is not in prevResult`);
  const hostCandidates = ifaces.filter((i) => !i.sandbox && i.name !== conf.bridge);

  const nodeLines = [`addr show dev ${conf.bridge}`, ...hostCandidates.map((i) => `addr show dev ${i.name}`)];
  const [node, pod] = await Promise.all([
    deps.ip.batch(nodeLines, { force: true }),
    deps.ip.batch([`addr show dev ${args.ifName}`, 'route show table all'], { netns, force: true }),
  ]);
  const nodeByName = new Map<string, Entry>();
  for (const out of node.outputs) for (const e of out) nodeByName.set(String(e.ifname), e);

  // Bridge.
  const br = nodeByName.get(conf.bridge) ?? fail(`bridge "${conf.bridge}" in the host namespace was not found`);
  if (kind(br) !== 'bridge') fail(`interface "${conf.bridge}" does not have link type of bridge`);
  if (brIface?.mac && brIface.mac !== br.address) fail(`bridge "${conf.bridge}" MAC ${String(br.address)} does not match prevResult ${brIface.mac}`);
  const promisc = (br.flags as string[] | undefined)?.includes('PROMISC') ?? false;
  if (promisc !== conf.promiscMode) fail(`bridge "${conf.bridge}" promiscuous mode is ${promisc}, config says ${conf.promiscMode}`);

  // Container interface.
  const podOut = pod.outputs[0]?.[0];
  const cont = podOut && podOut.ifname === args.ifName ? podOut : fail(`interface "${args.ifName}" in "${netns}" was not found`);
  if (kind(cont) !== 'veth') fail(`container interface "${args.ifName}" is not of type veth`);
  if ((contIface as Interface).mac && (contIface as Interface).mac !== cont.address) {
    fail(`container interface "${args.ifName}" MAC ${String(cont.address)} does not match prevResult ${(contIface as Interface).mac}`);
  }

  // Its peer: a host interface from prevResult, paired with it and enslaved to the bridge.
  const veth = hostCandidates
    .map((i) => ({ iface: i, e: nodeByName.get(i.name) }))
    .find(({ e }) => e && kind(e) === 'veth' && e.ifindex === cont.link_index && e.link_index === cont.ifindex && e.master === conf.bridge);
  if (!veth) fail(`veth of "${args.ifName}" on bridge "${conf.bridge}" was not found`);
  if (veth?.iface.mac && veth.iface.mac !== veth.e?.address) fail(`interface "${veth.iface.name}" MAC does not match prevResult ${veth.iface.mac}`);

  // Addresses.
  const have = new Set(linkAddrs(cont).map((a) => a.cidr));
  for (const ip of prev.ips ?? []) {
    const p = parseCidr(ip.address);
    if (!have.has(`${p.ip}/${p.prefix}`)) fail(`address ${ip.address} is not on "${args.ifName}"`);
  }
  // Routes.
  const routes = (pod.outputs[1] ?? []) as Entry[];
  for (const r of prev.routes ?? []) {
    const want = parseCidr(r.dst);
    const found = routes.some((x) => {
      const dst = String(x.dst);
      // `route show table all` lists both families; "default" carries no family of its own.
      const sameDst = dst === 'default' ? want.prefix === 0 : safeSubnet(dst, want.family) === want.subnet;
      if (!sameDst) return false;
      return !r.gw || (typeof x.gateway === 'string' && canonicalIp(x.gateway) === canonicalIp(r.gw));
    });
    if (!found) fail(`route ${r.dst}${r.gw ? ` via ${r.gw}` : ''} is not in "${netns}"`);
  }

  // Masquerade rules (the reference does not check these).
  if (conf.ipMasq && conf.ipamType) {
    const targets = (prev.ips ?? []).map((ip) => parseCidr(ip.address)).map((p) => ({ family: p.family, ip: p.ip, subnet: p.subnet }));
    const missing = await masq.missing(targets);
    if (missing.length) fail(`masquerade rule for ${missing.map((t) => t.ip).join(', ')} is missing`);
  }
}

const kind = (e: Entry): string | undefined => (e.linkinfo as { info_kind?: string } | undefined)?.info_kind;

function safeSubnet(dst: string, family: 4 | 6): string | undefined {
  try {
    const withPrefix = dst.includes('/') ? dst : `${dst}/${family === 4 ? 32 : 128}`;
    const p = parseCidr(withPrefix);
    return p.family === family ? p.subnet : undefined;
  } catch {
    return undefined;
  }
}

import { closeSync, existsSync, openSync, readSync } from 'node:fs';
import { PluginNotFoundError } from '../../lib/cni/delegate.js';
import type { CmdArgs, GcArgs, PluginFuncs } from '../../lib/cni/dispatch.js';
import { CniError, ErrorCode, causeText, isCniError, wrapError } from '../../lib/cni/errors.js';
import type { Interface, Result } from '../../lib/cni/types.js';
import { type IpBatchResult, type IpRunner, IprouteCli, isExists, isNotFound } from '../../lib/linux/ip.js';
import { type NetDevView, ProcSysfsView } from '../../lib/linux/netdev.js';
import { type Netfilter, NetfilterCli } from '../../lib/linux/netfilter.js';
import { ProcSysctl, type Sysctl } from '../../lib/linux/sysctl.js';
import { parseCidr, randomMac } from './addr.js';
import { runCheck } from './check.js';
import { type Ipam, type IpamDeps, createIpam, defaultIpamDeps } from './ipam.js';
import { type Masq, createMasq } from './masq.js';
import { calcHostVethName, calcVlanPeerName } from './names.js';
import { type BridgeConf, loadBridgeConf } from './netconf.js';
import {
  CONTAINER_IFACE_INDEX,
  calcGatewayLines,
  calcGateways,
  calcNodeLines,
  calcPodAddrLines,
  calcPodRouteLines,
  calcPodSysctls,
  calcVlanLines,
  linkAddrs,
} from './setup.js';

/** Everything the bridge plugin touches, so tests can pass fakes. */
export interface BridgeDeps {
  ip: IpRunner;
  netfilter: Netfilter;
  sysctl: Sysctl;
  netdev: NetDevView;
  ipam: IpamDeps;
  netnsExists(path: string): boolean;
  randomMac(): string;
  sleep(ms: number): Promise<void>;
  now(): number;
}

export function defaultBridgeDeps(): BridgeDeps {
  return {
    ip: new IprouteCli(),
    netfilter: new NetfilterCli(),
    sysctl: new ProcSysctl(),
    netdev: new ProcSysfsView(),
    ipam: defaultIpamDeps(),
    netnsExists: (p) => existsSync(p),
    randomMac: () => randomMac(urandom),
    sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
    now: () => Date.now(),
  };
}

/** Random bytes without loading node:crypto (start-up cost). */
function urandom(n: number): Uint8Array {
  const buf = new Uint8Array(n);
  const fd = openSync('/dev/urandom', 'r');
  try {
    readSync(fd, buf, 0, n, null);
  } finally {
    closeSync(fd);
  }
  return buf;
}

/** How long ADD waits for the host port to come up (upstream: 2.55 s of retries). */
const PORT_UP_TIMEOUT_MS = 3000;
/** How long ADD waits for IPv6 DAD when enabledad (upstream: 5 s). */
const DAD_TIMEOUT_MS = 5000;

type Undo = { what: string; run: () => Promise<void> };

export function createBridgePlugin(overrides: Partial<BridgeDeps> = {}): PluginFuncs {
  const deps: BridgeDeps = { ...defaultBridgeDeps(), ...overrides };
  const load = (args: CmdArgs): { conf: BridgeConf; ipam: Ipam | undefined } => {
    const conf = loadBridgeConf(args.netConf, args.args);
    return { conf, ipam: conf.ipamType ? createIpam(conf.ipamType, deps.ipam) : undefined };
  };

  return {
    async add(args) {
      const { conf, ipam } = load(args);
      return cmdAdd(deps, conf, ipam, args);
    },
    async del(args) {
      const { conf, ipam } = load(args);
      await cmdDel(deps, conf, ipam, args);
    },
    async check(args) {
      const { conf, ipam } = load(args);
      if (!args.prevResult) {
        throw new CniError(ErrorCode.InvalidNetworkConfig, 'required prevResult missing', 'prevResult');
      }
      if (ipam) await ipam.check(args);
      const netns = requireNetns(deps, args.netns);
      await runCheck(deps, conf, args, netns, createMasq(deps.netfilter, conf, args.containerId, args.ifName));
    },
    async gc(args) {
      const { conf, ipam } = load(args);
      await cmdGc(deps, conf, ipam, args);
    },
    async status(args) {
      const { ipam } = load(args);
      if (!ipam) return;
      try {
        await ipam.status(args);
      } catch (e) {
        // No IPAM plugin installed: the network cannot serve ADD (the spec's "not available").
        if (e instanceof PluginNotFoundError) throw new CniError(ErrorCode.PluginNotAvailable, e.message, 'ipam');
        throw e;
      }
    },
  };
}

function requireNetns(deps: BridgeDeps, netns: string): string {
  if (!netns.startsWith('/') || /[\s"'\\]/.test(netns)) {
    throw new CniError(ErrorCode.InvalidEnvironmentVariables, `invalid CNI_NETNS "${netns}": must be an absolute path without spaces or quotes`, 'CNI_NETNS');
  }
  if (!deps.netnsExists(netns)) {
    throw new CniError(ErrorCode.InvalidNetns, `failed to open netns "${netns}": no such file`, 'CNI_NETNS');
  }
  return netns;
}

const failText = (r: IpBatchResult): string => r.failures.map((f) => f.message).join('; ') || r.stderr.trim() || `exit code ${r.code}`;

/**
 * Does link `name` exist, and is it a bridge? Uses sysfs when it shows our namespace. `links` is
 * the namespace's link names when the caller has just read them.
 */
async function bridgeState(deps: BridgeDeps, name: string, links = deps.netdev.names()): Promise<{ exists: boolean; isBridge: boolean }> {
  if (!links.has(name)) return { exists: false, isBridge: false };
  if (deps.netdev.sysfsTrusted()) return { exists: true, isBridge: deps.netdev.isBridge(name) };
  const r = await deps.ip.batch([`addr show dev ${name}`]);
  if (!r.ok) return { exists: false, isBridge: false };
  return { exists: true, isBridge: linkKind(r.outputs[0]?.[0]) === 'bridge' };
}

const linkKind = (entry: Record<string, unknown> | undefined): string | undefined =>
  (entry?.linkinfo as { info_kind?: string } | undefined)?.info_kind;

async function cmdAdd(deps: BridgeDeps, conf: BridgeConf, ipam: Ipam | undefined, args: CmdArgs): Promise<Result> {
  const netns = requireNetns(deps, args.netns);
  const hostVeth = calcHostVethName(args.containerId, args.ifName);
  const links = deps.netdev.names();
  if (links.has(hostVeth)) {
    throw new CniError(
      ErrorCode.DuplicateAttachment,
      `failed to add container "${args.containerId}" interface "${args.ifName}": already attached (host interface "${hostVeth}" exists)`,
    );
  }
  const br = await bridgeState(deps, conf.bridge, links);
  if (br.exists && !br.isBridge) {
    throw new CniError(ErrorCode.InvalidNetworkConfig, `failed to create bridge "${conf.bridge}": "${conf.bridge}" already exists but is not a bridge`, 'bridge');
  }
  // The pod's MAC must be known before the pod side runs when a spoof check pins it, or when
  // the pod side does not run at all.
  const containerMac = conf.mac ?? (conf.macspoofchk || conf.disableContainerInterface ? deps.randomMac() : undefined);

  const undo: Undo[] = [];
  try {
    // Step 1, in parallel: the node batch (bridge, veth, port) runs while the IPAM answers, and
    // the firewall transaction (masquerade, spoof check) starts as soon as the addresses are
    // known: it needs only them and names, not the veth.
    const nodeJob = runNodeBatch(deps, conf, { createBridge: !br.exists, hostVeth, ifName: args.ifName, netns, containerMac });
    let ipamResult: Result | undefined;
    let ipamError: unknown;
    if (ipam) {
      try {
        ipamResult = await ipam.add(args);
        undo.push({ what: 'release IP', run: () => ipam.del(args) });
      } catch (e) {
        ipamError = e;
      }
    }
    if (ipamResult && !ipamResult.ips?.length) {
      ipamError ??= new CniError(ErrorCode.Internal, `IPAM plugin "${conf.ipamType}" returned missing IP config`);
    }
    const layer3 = ipamResult && ipamError === undefined ? calcGateways(ipamResult, conf) : undefined;
    const masq = createMasq(deps.netfilter, conf, args.containerId, args.ifName);
    let fwJob: Promise<{ value?: void; error?: unknown } | undefined> = Promise.resolve(undefined);
    if (layer3 && (conf.ipMasq || conf.macspoofchk)) {
      undo.push({ what: 'remove masquerade and spoof-check rules', run: () => masq.remove() });
      const targets = layer3.ips.map((ip) => parseCidr(ip.address)).map((p) => ({ family: p.family, ip: p.ip, subnet: p.subnet }));
      const spoof = conf.macspoofchk ? { hostIface: hostVeth, mac: containerMac as string } : undefined;
      fwJob = settle(masq.add(conf.ipMasq ? targets : [], spoof));
    }
    const node = await nodeJob;
    if (node.vethCreated) undo.push({ what: `delete veth "${hostVeth}"`, run: () => deleteLink(deps, hostVeth) });
    if (ipamError !== undefined) throw ipamError;
    if (node.error) {
      await fwJob;
      throw node.error;
    }
    if (node.createdBridge) deps.sysctl.ensure(`net/ipv6/conf/${conf.bridge}/accept_ra`, '0');
    bestEffort(() => deps.sysctl.ensure(`net/ipv6/conf/${hostVeth}/accept_ra`, '0'));
    if (node.defaultPvid !== undefined && (conf.vlan !== 0 || conf.vlanTrunk.length > 0)) {
      await runBridgeVlan(deps, calcVlanLines(conf, hostVeth, node.defaultPvid), hostVeth).catch(async (e: unknown) => {
        await fwJob;
        throw e;
      });
    }

    const interfaces: Interface[] = [
      { name: conf.bridge, ...(node.bridgeMac ? { mac: node.bridgeMac } : {}) },
      { name: hostVeth, ...(node.hostMac ? { mac: node.hostMac } : {}) },
      { name: args.ifName, sandbox: netns },
    ];
    const result: Result = { cniVersion: '1.1.0', interfaces };
    let podMac = containerMac;

    if (ipamResult && layer3) {
      const { ips, routes, gateways } = layer3;
      result.ips = ips;
      if (routes.length) result.routes = routes;
      if (ipamResult.dns) result.dns = ipamResult.dns;

      // Step 2, in parallel: the pod side (one nsenter) and the gateway on the bridge (only
      // when it is not there yet), while the firewall transaction finishes.
      const podJob = settle(configurePod(deps, conf, args.ifName, netns, ips, routes));
      const gwError = await ensureGateway(deps, conf, node.bridgeAddrs, gateways, result).then(
        () => undefined,
        (e: unknown) => e,
      );
      const [pod, fw] = await Promise.all([podJob, fwJob]);
      if (pod?.error !== undefined) throw pod.error;
      if (fw?.error !== undefined) throw fw.error;
      if (gwError !== undefined) throw gwError;
      podMac = pod?.value ?? podMac;
    } else {
      // L2 only: no addresses; the interface is brought up unless disabled.
      if (conf.macspoofchk) {
        undo.push({ what: 'remove spoof-check rule', run: () => masq.remove() });
        await masq.add([], { hostIface: hostVeth, mac: containerMac as string });
      }
      if (!conf.disableContainerInterface) {
        const r = await deps.ip.batch([`link set dev ${args.ifName} up`, `addr show dev ${args.ifName}`], { netns });
        if (!r.ok) throw new CniError(ErrorCode.Internal, `failed to set "${args.ifName}" up: ${failText(r)}`);
        podMac = macOf(r.outputs[0]?.[0]) ?? podMac;
      }
    }
    if (podMac) (interfaces[CONTAINER_IFACE_INDEX] as Interface).mac = podMac;

    if (!conf.disableContainerInterface) await waitPortUp(deps, hostVeth);
    if (conf.dns) result.dns = conf.dns;
    return result;
  } catch (e) {
    for (const u of undo.reverse()) {
      try {
        await u.run();
      } catch (ue) {
        args.log.warn(`failed to undo: ${u.what}`, { error: causeText(ue) });
      }
    }
    throw e;
  }
}

interface NodeOutcome {
  vethCreated: boolean;
  createdBridge: boolean;
  error?: unknown;
  bridgeMac?: string;
  hostMac?: string;
  bridgeAddrs: ReturnType<typeof linkAddrs>;
  /** The bridge's default PVID when it filters VLANs (for the port's VLAN setup). */
  defaultPvid?: number;
}

/** Step 1 on the node: never rejects, tells what it did so the undo stack is exact. */
async function runNodeBatch(
  deps: BridgeDeps,
  conf: BridgeConf,
  p: { createBridge: boolean; hostVeth: string; ifName: string; netns: string; containerMac: string | undefined },
): Promise<NodeOutcome> {
  let createBridge = p.createBridge;
  for (let attempt = 0; ; attempt++) {
    const plan = calcNodeLines({ conf, createBridge, bridgeMac: deps.randomMac(), hostVeth: p.hostVeth, ifName: p.ifName, netns: p.netns, containerMac: p.containerMac });
    const r = await deps.ip.batch(plan.lines);
    const failed = r.failures[0];
    if (!failed) {
      const brEntry = r.outputs[0]?.[0];
      const hostEntry = r.outputs[1]?.[0];
      if (linkKind(brEntry) !== 'bridge') {
        return {
          vethCreated: true,
          createdBridge: false,
          bridgeAddrs: [],
          error: new CniError(ErrorCode.InvalidNetworkConfig, `"${conf.bridge}" already exists but is not a bridge`, 'bridge'),
        };
      }
      const info = (brEntry?.linkinfo as { info_data?: Record<string, unknown> } | undefined)?.info_data;
      const out: NodeOutcome = {
        vethCreated: true,
        createdBridge: createBridge,
        bridgeAddrs: linkAddrs(brEntry),
      };
      const bm = macOf(brEntry);
      const hm = macOf(hostEntry);
      if (bm) out.bridgeMac = bm;
      if (hm) out.hostMac = hm;
      if (info?.vlan_filtering === 1 || conf.vlan !== 0 || conf.vlanTrunk.length > 0) {
        out.defaultPvid = typeof info?.vlan_default_pvid === 'number' ? info.vlan_default_pvid : 1;
      }
      return out;
    }
    // Parallel first pods of a node: another ADD made the bridge between our look and our add.
    if (createBridge && failed.line === plan.bridgeLine && isExists(failed.message) && attempt < 3) {
      const br = await bridgeState(deps, conf.bridge);
      if (br.exists && !br.isBridge) {
        return { vethCreated: false, createdBridge: false, bridgeAddrs: [], error: new CniError(ErrorCode.InvalidNetworkConfig, `"${conf.bridge}" already exists but is not a bridge`, 'bridge') };
      }
      createBridge = !br.exists;
      continue;
    }
    const vethCreated = failed.line > plan.vethLine;
    let error: CniError;
    if (failed.line === plan.vethLine && isExists(failed.message)) {
      error = new CniError(
        ErrorCode.Internal,
        `failed to create veth pair "${p.hostVeth}"/"${p.ifName}": an interface with one of these names already exists (container interface in "${p.netns}" or host side)`,
      );
    } else if (failed.line === plan.bridgeLine) {
      error = new CniError(ErrorCode.Internal, `failed to create bridge "${conf.bridge}": ${failed.message}`);
    } else if (failed.line === plan.vethLine) {
      error = new CniError(ErrorCode.Internal, `failed to create veth pair "${p.hostVeth}"/"${p.ifName}": ${failed.message}`);
    } else if (/master/.test(plan.lines[failed.line - 1] ?? '')) {
      error = new CniError(ErrorCode.Internal, `failed to connect "${p.hostVeth}" to bridge "${conf.bridge}": ${failed.message}`);
    } else {
      error = new CniError(ErrorCode.Internal, `failed to set up "${p.hostVeth}" on bridge "${conf.bridge}": ${failed.message} (${plan.lines[failed.line - 1] ?? ''})`);
    }
    return { vethCreated, createdBridge: createBridge && failed.line > plan.bridgeLine, bridgeAddrs: [], error };
  }
}

async function runBridgeVlan(deps: BridgeDeps, lines: string[], port: string): Promise<void> {
  if (!lines.length) return;
  const r = await deps.ip.bridgeBatch(lines, { force: true });
  // Removing a default VLAN that is not there is fine; anything else is not.
  const bad = r.failures.filter((f) => !(lines[f.line - 1]?.startsWith('vlan del') ?? false));
  if (bad.length || (r.code !== 0 && r.failures.length === 0)) {
    throw new CniError(ErrorCode.Internal, `failed to set up vlan tag on interface "${port}": ${failText(r)}`);
  }
}

/** Step 2 in the pod: sysctls + addresses + up + routes in one nsenter; returns the pod MAC. */
async function configurePod(
  deps: BridgeDeps,
  conf: BridgeConf,
  ifName: string,
  netns: string,
  ips: NonNullable<Result['ips']>,
  routes: NonNullable<Result['routes']>,
): Promise<string | undefined> {
  const waitDad = conf.enabledad && ips.some((ip) => ip.address.includes(':'));
  const routeLines = calcPodRouteLines(ifName, ips, routes);
  const lines = [...calcPodAddrLines(ifName, ips), `link set dev ${ifName} up`, ...(waitDad ? [] : routeLines), `addr show dev ${ifName}`];
  const r = await deps.ip.batch(lines, { netns, sysctls: calcPodSysctls(conf, ifName, ips) });
  if (!r.ok) {
    const f = r.failures[0];
    const line = f && f.line > 0 ? lines[f.line - 1] : undefined;
    throw new CniError(ErrorCode.Internal, `failed to configure "${ifName}" in "${netns}": ${failText(r)}${line ? ` (${line})` : ''}`);
  }
  const mac = macOf(r.outputs[0]?.[0]);
  if (waitDad) {
    await settleAddresses(deps, ifName, netns);
    if (routeLines.length) {
      const rr = await deps.ip.batch(routeLines, { netns });
      if (!rr.ok) throw new CniError(ErrorCode.Internal, `failed to add routes to "${ifName}": ${failText(rr)}`);
    }
  }
  return mac;
}

/** upstream ip.SettleAddresses: wait until no IPv6 address is tentative; DAD failure is an error. */
async function settleAddresses(deps: BridgeDeps, ifName: string, netns: string): Promise<void> {
  const deadline = deps.now() + DAD_TIMEOUT_MS;
  for (;;) {
    const r = await deps.ip.batch([`addr show dev ${ifName}`], { netns });
    const addrs = ((r.outputs[0]?.[0]?.addr_info as Record<string, unknown>[] | undefined) ?? []).filter((a) => a.family === 'inet6');
    const failed = addrs.find((a) => a.dadfailed === true);
    if (failed) throw new CniError(ErrorCode.Internal, `failed to settle addresses for "${ifName}": DAD failed for ${String(failed.local)}`);
    if (!addrs.some((a) => a.tentative === true)) return;
    if (deps.now() > deadline) throw new CniError(ErrorCode.Internal, `failed to settle addresses for "${ifName}": still tentative after ${DAD_TIMEOUT_MS} ms`);
    await deps.sleep(50);
  }
}

/** Gateway addresses on the bridge (or its VLAN interface) and forwarding, when isGateway. */
async function ensureGateway(
  deps: BridgeDeps,
  conf: BridgeConf,
  bridgeAddrs: ReturnType<typeof linkAddrs>,
  gateways: ReturnType<typeof calcGateways>['gateways'],
  result: Result,
): Promise<void> {
  if (!conf.isGateway || (gateways[4].length === 0 && gateways[6].length === 0)) return;
  let device = conf.bridge;
  let current = bridgeAddrs;
  if (conf.vlan !== 0) {
    const vlanIface = await ensureVlanInterface(deps, conf);
    device = vlanIface.name;
    current = vlanIface.addrs;
    result.interfaces?.push({ name: vlanIface.name, ...(vlanIface.mac ? { mac: vlanIface.mac } : {}) });
  }
  const lines = calcGatewayLines(device, current, gateways, conf.forceAddress);
  const bridgeMac = result.interfaces?.[0]?.mac;
  if (lines.length) {
    // Pin the bridge's MAC (upstream does the same), so it does not follow its ports.
    if (device === conf.bridge && bridgeMac) lines.push(`link set dev ${device} address ${bridgeMac}`);
    const r = await deps.ip.batch(lines, { force: true });
    const bad = r.failures.filter((f) => {
      const line = lines[f.line - 1] ?? '';
      return !(line.startsWith('addr add') && isExists(f.message)) && !(line.startsWith('addr del') && /Cannot assign/i.test(f.message));
    });
    if (bad.length || (r.code !== 0 && r.failures.length === 0)) {
      throw new CniError(ErrorCode.Internal, `failed to set bridge addr on "${device}": ${failText(r)}`);
    }
  }
  try {
    if (gateways[4].length) deps.sysctl.ensure('net/ipv4/ip_forward', '1');
    if (gateways[6].length) deps.sysctl.ensure('net/ipv6/conf/all/forwarding', '1');
  } catch (e) {
    throw wrapError(e, ErrorCode.Internal, 'failed to enable forwarding');
  }
}

/** upstream ensureVlanInterface: a veth `<bridge>.<vlan>` whose peer is an untagged port of that VLAN. */
async function ensureVlanInterface(deps: BridgeDeps, conf: BridgeConf): Promise<{ name: string; mac?: string; addrs: ReturnType<typeof linkAddrs> }> {
  const name = `${conf.bridge}.${conf.vlan}`;
  const peer = calcVlanPeerName(conf.bridge, conf.vlan);
  if (!deps.netdev.names().has(name)) {
    const mtu = conf.mtu ? ` mtu ${conf.mtu}` : '';
    const r = await deps.ip.batch([
      `link add name ${name}${mtu} type veth peer name ${peer}${mtu}`,
      `link set dev ${peer} master ${conf.bridge}`,
      `link set dev ${peer} up`,
      `link set dev ${name} up`,
    ]);
    const f = r.failures[0];
    if (f && !(f.line === 1 && isExists(f.message))) {
      throw new CniError(ErrorCode.Internal, `failed to create vlan interface "${name}": ${f.message}`);
    }
    if (!f) {
      const show = await deps.ip.batch([`addr show dev ${conf.bridge}`]);
      const info = (show.outputs[0]?.[0]?.linkinfo as { info_data?: Record<string, unknown> } | undefined)?.info_data;
      const pvid = typeof info?.vlan_default_pvid === 'number' ? info.vlan_default_pvid : 1;
      await runBridgeVlan(deps, calcVlanLines(conf, peer, pvid, conf.vlan, []), peer);
    }
  }
  const r = await deps.ip.batch([`addr show dev ${name}`]);
  if (!r.ok) throw new CniError(ErrorCode.Internal, `failed to find vlan interface "${name}": ${failText(r)}`);
  const entry = r.outputs[0]?.[0];
  const mac = macOf(entry);
  return { name, ...(mac ? { mac } : {}), addrs: linkAddrs(entry) };
}

/** upstream waits for the host port's operstate to be UP before returning. */
async function waitPortUp(deps: BridgeDeps, hostVeth: string): Promise<void> {
  const deadline = deps.now() + PORT_UP_TIMEOUT_MS;
  const viaSysfs = deps.netdev.sysfsTrusted();
  let state: string | undefined;
  for (let delay = 1; ; delay = Math.min(delay * 2, 50)) {
    if (viaSysfs) {
      state = deps.netdev.operState(hostVeth);
    } else {
      const r = await deps.ip.batch([`addr show dev ${hostVeth}`]);
      state = String(r.outputs[0]?.[0]?.operstate ?? 'missing').toLowerCase();
    }
    if (state === 'up') return;
    if (deps.now() > deadline) throw new CniError(ErrorCode.Internal, `bridge port in error state: ${state ?? 'missing'}`);
    await deps.sleep(delay);
  }
}

const macOf = (entry: Record<string, unknown> | undefined): string | undefined =>
  typeof entry?.address === 'string' ? entry.address : undefined;

async function deleteLink(deps: BridgeDeps, name: string): Promise<void> {
  const r = await deps.ip.batch([`link del dev ${name}`]);
  if (!r.ok && !isNotFound(failText(r))) throw new Error(`failed to delete "${name}": ${failText(r)}`);
}

function bestEffort(f: () => void): void {
  try {
    f();
  } catch {
    // upstream ignores these too (e.g. IPv6 compiled out)
  }
}

async function settle<T>(p: Promise<T>): Promise<{ value?: T; error?: unknown }> {
  try {
    return { value: await p };
  } catch (error) {
    return { error: error ?? new Error('failed') };
  }
}

async function cmdDel(deps: BridgeDeps, conf: BridgeConf, ipam: Ipam | undefined, args: CmdArgs): Promise<void> {
  const hostVeth = calcHostVethName(args.containerId, args.ifName);
  // The link: by its deterministic host name (works whether or not the netns still exists);
  // else inside the netns by CNI_IFNAME (a pod made by another bridge plugin version).
  let linkJob: Promise<void> = Promise.resolve();
  if (deps.netdev.names().has(hostVeth)) {
    linkJob = deleteLink(deps, hostVeth);
  } else if (args.netns && args.netns.startsWith('/') && !/[\s"'\\]/.test(args.netns) && deps.netnsExists(args.netns)) {
    linkJob = deps.ip.batch([`link del dev ${args.ifName}`], { netns: args.netns }).then((r) => {
      if (r.ok || isNotFound(failText(r)) || /setns|namespace|Invalid argument/i.test(failText(r))) return;
      throw new Error(`failed to delete "${args.ifName}" in "${args.netns}": ${failText(r)}`);
    });
  }
  const linkDone = settle(linkJob);
  const masqDone: Promise<{ error?: unknown }> =
    conf.ipMasq || conf.macspoofchk ? settle(createMasq(deps.netfilter, conf, args.containerId, args.ifName).remove()) : Promise.resolve({});
  // The IP is released even when the link could not be removed.
  if (ipam) await ipam.del(args);
  const [link, masq] = await Promise.all([linkDone, masqDone]);
  if (link.error !== undefined) throw wrapError(link.error, ErrorCode.Internal, 'failed to delete link');
  if (masq.error !== undefined) throw wrapError(masq.error, ErrorCode.Internal, 'failed to remove masquerade rules');
}

async function cmdGc(deps: BridgeDeps, conf: BridgeConf, ipam: Ipam | undefined, args: GcArgs): Promise<void> {
  const errors: unknown[] = [];
  if (args.validAttachments !== undefined) {
    const masq: Masq = createMasq(deps.netfilter, conf, '', '');
    try {
      await masq.gc(args.validAttachments);
    } catch (e) {
      errors.push(e);
    }
  }
  if (ipam) {
    try {
      await ipam.gc(args);
    } catch (e) {
      errors.push(e);
    }
  }
  if (errors.length) {
    const first = errors[0];
    throw isCniError(first) ? first : wrapError(first, ErrorCode.Internal, 'failed to garbage-collect');
  }
}

import { closeSync, openSync, readSync } from 'node:fs';
import { PluginNotFoundError } from '../../lib/cni/delegate.js';
import type { CmdArgs, GcArgs, PluginFuncs } from '../../lib/cni/dispatch.js';
import { CniError, ErrorCode, causeText, isCniError, wrapError } from '../../lib/cni/errors.js';
import type { Interface, Result } from '../../lib/cni/types.js';
import { cidrParts } from '../../lib/addr/addr.js';
import { type BatchOptions, BridgeBatch, type BridgeChange, IpBatch, type IpError, type IpRunner, IprouteCli, type LinkAddr, type LinkEntry } from '../../lib/linux/ip.js';
import { pluginRunner } from '../../lib/linux/exec.js';
import { type NetDevView, ProcSysfsView } from '../../lib/linux/netdev.js';
import { type NetnsStatus, netnsError, netnsStatus } from '../../lib/linux/netns.js';
import { type Netfilter, NetfilterCli } from '../../lib/linux/netfilter.js';
import { ProcSysctl, type Sysctl } from '../../lib/linux/sysctl.js';
import { runCheck } from './check.js';
import { type Ipam, type IpamDeps, createIpam, defaultIpamDeps } from './ipam.js';
import { type Masq, createMasq } from './masq.js';
import { calcHostVethName, calcVlanPeerName } from './names.js';
import { type BridgeConf, loadBridgeConf } from './netconf.js';
import {
  CONTAINER_IFACE_INDEX,
  calcGatewayOps,
  calcGateways,
  calcNodeOps,
  calcPodAddrOps,
  calcPodRouteOps,
  calcPodSysctls,
  calcVlanOps,
} from './setup.js';

/** Everything the bridge plugin touches, so tests can pass fakes. */
export interface BridgeDeps {
  ip: IpRunner;
  netfilter: Netfilter;
  sysctl: Sysctl;
  netdev: NetDevView;
  ipam: IpamDeps;
  /** Is this path a network namespace other than ours (lib/linux/netns.ts)? */
  netns(path: string): NetnsStatus;
  randomMac(): string;
  sleep(ms: number): Promise<void>;
  now(): number;
}

export function defaultBridgeDeps(): BridgeDeps {
  return {
    ip: new IprouteCli(pluginRunner),
    netfilter: new NetfilterCli(pluginRunner),
    sysctl: new ProcSysctl(),
    netdev: new ProcSysfsView(),
    ipam: defaultIpamDeps(),
    netns: (p) => netnsStatus(p),
    randomMac: () => randomMac(urandom),
    sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
    now: () => Date.now(),
  };
}

/** A random locally administered unicast MAC, as the kernel picks one. */
export function randomMac(random: (n: number) => Uint8Array): string {
  const b = random(6);
  b[0] = ((b[0] as number) & 0xfe) | 0x02;
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
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
      const prev = args.prevResult;
      if (!prev) throw new CniError(ErrorCode.InvalidNetworkConfig, 'required prevResult missing', 'prevResult');
      if (ipam) await ipam.check(args);
      const netns = requireNetns(deps, args.netns);
      await runCheck(deps, conf, args, prev, netns, createMasq(deps.netfilter, conf, args.containerId, args.ifName));
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
  const e = netnsError(netns, deps.netns);
  if (e) throw e;
  return netns;
}

const failText = (e: IpError | undefined): string => e?.message || 'failed';

/** Run a batch; throw `msg: <kernel message>` (code 999) when any step failed. */
async function runOrThrow(deps: BridgeDeps, b: IpBatch | BridgeBatch, msg: string): Promise<void> {
  const r = await b.run(deps.ip);
  if (!r.ok) throw new CniError(ErrorCode.Internal, `${msg}: ${failText(r.error)}`);
}

/** `addr show dev X` as one batch; undefined when the link is missing. */
async function showLink(deps: BridgeDeps, dev: string, netns?: string): Promise<LinkEntry | undefined> {
  const b = new IpBatch(netns === undefined ? {} : { netns });
  const link = b.link(dev);
  await b.run(deps.ip);
  return link.ok ? link.value : undefined;
}

/**
 * Does link `name` exist, and is it a bridge? Uses sysfs when it shows our namespace. `links` is
 * the namespace's link names when the caller has just read them.
 */
async function bridgeState(deps: BridgeDeps, name: string, links = deps.netdev.names()): Promise<{ exists: boolean; isBridge: boolean }> {
  if (!links.has(name)) return { exists: false, isBridge: false };
  if (deps.netdev.sysfsTrusted()) return { exists: true, isBridge: deps.netdev.isBridge(name) };
  const l = await showLink(deps, name);
  if (!l) return { exists: false, isBridge: false };
  return { exists: true, isBridge: l.kind === 'bridge' };
}

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

  const undo = new UndoStack(args.log);
  try {
    // 1. The node batch (bridge, veth, port; in the background) and the IPAM, at the same time.
    const [node, allocated] = await Promise.all([
      runNodeBatch(deps, conf, { createBridge: !br.exists, hostVeth, ifName: args.ifName, netns, containerMac }),
      ipam ? settle(ipam.add(args)) : undefined,
    ]);
    if (ipam && allocated?.value) undo.push('release IP', () => ipam.del(args));
    if (node.vethCreated) undo.push(`delete veth "${hostVeth}"`, () => deleteLink(deps, hostVeth));
    if (allocated?.error !== undefined) throw allocated.error;
    if (node.error) throw node.error;
    const ipamResult = allocated?.value;
    if (ipamResult && !ipamResult.ips?.length) {
      throw new CniError(ErrorCode.Internal, `IPAM plugin "${conf.ipamType}" returned missing IP config`);
    }
    // A result that cannot work (a gateway outside its subnet) fails like the IPAM itself.
    const layer3 = ipamResult ? calcGateways(ipamResult, conf) : undefined;

    // 2. The new port on the node: sysctls, VLANs.
    if (node.createdBridge) deps.sysctl.ensure(`net/ipv6/conf/${conf.bridge}/accept_ra`, '0');
    bestEffort(() => deps.sysctl.ensure(`net/ipv6/conf/${hostVeth}/accept_ra`, '0'));
    if (node.defaultPvid !== undefined && (conf.vlan !== 0 || conf.vlanTrunk.length > 0)) {
      await runBridgeVlan(deps, calcVlanOps(conf, hostVeth, node.defaultPvid), hostVeth);
    }

    const interfaces: Interface[] = [
      { name: conf.bridge, ...(node.bridgeMac ? { mac: node.bridgeMac } : {}) },
      { name: hostVeth, ...(node.hostMac ? { mac: node.hostMac } : {}) },
      { name: args.ifName, sandbox: netns },
    ];
    const result: Result = { cniVersion: '1.1.0', interfaces };
    let podMac = containerMac;

    // 3. The pod side (one nsenter, in the background) while the firewall rules go in:
    //    masquerade (ipMasq, needs the addresses) and spoof check in one nft transaction.
    let podSide: Promise<{ value?: string | undefined; error?: unknown }> | undefined;
    if (layer3) {
      result.ips = layer3.ips;
      if (layer3.routes.length) result.routes = layer3.routes;
      if (ipamResult?.dns) result.dns = ipamResult.dns;
      podSide = settle(configurePod(deps, conf, args.ifName, netns, layer3.ips, layer3.routes));
    } else if (!conf.disableContainerInterface) {
      // L2 only: no addresses; the interface is brought up.
      const b = new IpBatch({ netns });
      b.add({ kind: 'link-up', dev: args.ifName });
      const link = b.link(args.ifName);
      await runOrThrow(deps, b, `failed to set "${args.ifName}" up`);
      podMac = link.value?.mac ?? podMac;
    }
    const masqTargets = conf.ipMasq && layer3 ? calcMasqTargets(layer3.ips) : [];
    let firewall: { error?: unknown } | undefined;
    if (masqTargets.length || conf.macspoofchk) {
      const masq = createMasq(deps.netfilter, conf, args.containerId, args.ifName);
      undo.push('remove masquerade and spoof-check rules', () => masq.remove());
      firewall = await settle(masq.add(masqTargets, conf.macspoofchk ? { hostIface: hostVeth, mac: containerMac as string } : undefined));
    }
    if (podSide) {
      const pod = await podSide;
      if (pod.error !== undefined) throw pod.error;
      podMac = pod.value ?? podMac;
    }
    if (firewall?.error !== undefined) throw firewall.error;
    if (podMac) (interfaces[CONTAINER_IFACE_INDEX] as Interface).mac = podMac;

    // 4. The gateway on the bridge (a no-op once it is there).
    if (layer3) await ensureGateway(deps, conf, node.bridgeAddrs, layer3.gateways, result);

    if (!conf.disableContainerInterface) await waitPortUp(deps, hostVeth);
    if (conf.dns) result.dns = conf.dns;
    return result;
  } catch (e) {
    await undo.run();
    throw e;
  }
}

/** What ADD did, undone in reverse when a later step fails; an undo that fails is logged, not thrown. */
class UndoStack {
  private readonly steps: { what: string; run: () => Promise<void> }[] = [];
  constructor(private readonly log: CmdArgs['log']) {}

  push(what: string, run: () => Promise<void>): void {
    this.steps.push({ what, run });
  }

  async run(): Promise<void> {
    for (const u of this.steps.reverse()) {
      try {
        await u.run();
      } catch (ue) {
        this.log.warn(`failed to undo: ${u.what}`, { error: causeText(ue) });
      }
    }
  }
}

const calcMasqTargets = (ips: readonly { address: string }[]) =>
  ips
    .map((ip) => cidrParts(ip.address))
    .filter((p) => p !== undefined)
    .map((p) => ({ family: p.family, ip: p.ip, subnet: p.subnet }));

interface NodeOutcome {
  vethCreated: boolean;
  createdBridge: boolean;
  error?: unknown;
  bridgeMac?: string;
  hostMac?: string;
  bridgeAddrs: LinkAddr[];
  /** The bridge's default PVID when it filters VLANs (for the port's VLAN setup). */
  defaultPvid?: number;
}

const notABridge = (conf: BridgeConf) => new CniError(ErrorCode.InvalidNetworkConfig, `"${conf.bridge}" already exists but is not a bridge`, 'bridge');

/** Step 1 on the node: never rejects, tells what it did so the undo stack is exact. */
async function runNodeBatch(
  deps: BridgeDeps,
  conf: BridgeConf,
  p: { createBridge: boolean; hostVeth: string; ifName: string; netns: string; containerMac: string | undefined },
): Promise<NodeOutcome> {
  let createBridge = p.createBridge;
  for (let attempt = 0; ; attempt++) {
    const ops = calcNodeOps({ conf, createBridge, bridgeMac: deps.randomMac(), hostVeth: p.hostVeth, ifName: p.ifName, netns: p.netns, containerMac: p.containerMac });
    const b = new IpBatch({ background: true });
    const bridge = ops.bridge && b.add(ops.bridge);
    const veth = b.add(ops.veth);
    const master = b.add(ops.master);
    const port = ops.port && b.add(ops.port);
    const hostUp = b.add(ops.hostUp);
    const bridgeUp = b.add(ops.bridgeUp);
    const brShow = b.link(conf.bridge);
    const hostShow = b.link(p.hostVeth);
    const r = await b.run(deps.ip);
    if (r.ok) {
      const br = brShow.value;
      if (br?.kind !== 'bridge') return { vethCreated: true, createdBridge: false, bridgeAddrs: [], error: notABridge(conf) };
      const out: NodeOutcome = { vethCreated: true, createdBridge: createBridge, bridgeAddrs: br.addrs };
      if (br.mac) out.bridgeMac = br.mac;
      if (hostShow.value?.mac) out.hostMac = hostShow.value.mac;
      if (br.info.vlan_filtering === 1 || conf.vlan !== 0 || conf.vlanTrunk.length > 0) {
        out.defaultPvid = typeof br.info.vlan_default_pvid === 'number' ? br.info.vlan_default_pvid : 1;
      }
      return out;
    }
    // Parallel first pods of a node: another ADD made the bridge between our look and our add.
    if (bridge?.error?.exists && attempt < 3) {
      const state = await bridgeState(deps, conf.bridge);
      if (state.exists && !state.isBridge) return { vethCreated: false, createdBridge: false, bridgeAddrs: [], error: notABridge(conf) };
      createBridge = !state.exists;
      continue;
    }
    const createdBridge = bridge !== undefined && bridge.ok;
    let error: CniError;
    if (bridge?.error) {
      error = new CniError(ErrorCode.Internal, `failed to create bridge "${conf.bridge}": ${bridge.error.message}`);
    } else if (veth.error?.exists) {
      error = new CniError(
        ErrorCode.Internal,
        `failed to create veth pair "${p.hostVeth}"/"${p.ifName}": an interface with one of these names already exists (container interface in "${p.netns}" or host side)`,
      );
    } else if (veth.error) {
      error = new CniError(ErrorCode.Internal, `failed to create veth pair "${p.hostVeth}"/"${p.ifName}": ${veth.error.message}`);
    } else if (master.error) {
      error = new CniError(ErrorCode.Internal, `failed to connect "${p.hostVeth}" to bridge "${conf.bridge}": ${master.error.message}`);
    } else {
      const failed = [port, hostUp, bridgeUp, brShow, hostShow].find((s) => s?.error);
      error = new CniError(ErrorCode.Internal, `failed to set up "${p.hostVeth}" on bridge "${conf.bridge}": ${failText(failed?.error)} (${failed?.line ?? ''})`);
    }
    return { vethCreated: veth.ok, createdBridge, bridgeAddrs: [], error };
  }
}

async function runBridgeVlan(deps: BridgeDeps, ops: readonly BridgeChange[], port: string): Promise<void> {
  if (!ops.length) return;
  const b = new BridgeBatch({ force: true });
  const steps = ops.map((op) => ({ op, step: b.add(op) }));
  await b.run(deps.ip);
  // Removing a default VLAN that is not there is fine; anything else is not.
  const bad = steps.find(({ op, step }) => !step.ok && op.verb !== 'del');
  if (bad) throw new CniError(ErrorCode.Internal, `failed to set up vlan tag on interface "${port}": ${failText(bad.step.error)}`);
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
  const routeOps = calcPodRouteOps(ifName, ips, routes);
  // In the background: the bridge's ADD sets up the firewall rules meanwhile.
  const b = new IpBatch({ netns, sysctls: calcPodSysctls(conf, ifName, ips), background: true });
  for (const op of calcPodAddrOps(ifName, ips)) b.add(op);
  b.add({ kind: 'link-up', dev: ifName });
  if (!waitDad) for (const op of routeOps) b.add(op);
  const link = b.link(ifName);
  const r = await b.run(deps.ip);
  if (!r.ok) {
    const failed = b.failedLine();
    throw new CniError(ErrorCode.Internal, `failed to configure "${ifName}" in "${netns}": ${failText(r.error)}${failed ? ` (${failed})` : ''}`);
  }
  const mac = link.value?.mac;
  if (waitDad) {
    await settleAddresses(deps, ifName, netns);
    if (routeOps.length) {
      const rb = new IpBatch({ netns });
      for (const op of routeOps) rb.add(op);
      await runOrThrow(deps, rb, `failed to add routes to "${ifName}"`);
    }
  }
  return mac;
}

/** upstream ip.SettleAddresses: wait until no IPv6 address is tentative; DAD failure is an error. */
async function settleAddresses(deps: BridgeDeps, ifName: string, netns: string): Promise<void> {
  const deadline = deps.now() + DAD_TIMEOUT_MS;
  for (;;) {
    const addrs = (await showLink(deps, ifName, netns))?.addrs.filter((a) => a.family === 6) ?? [];
    const failed = addrs.find((a) => a.dadfailed);
    if (failed) throw new CniError(ErrorCode.Internal, `failed to settle addresses for "${ifName}": DAD failed for ${failed.cidr}`);
    if (!addrs.some((a) => a.tentative)) return;
    if (deps.now() > deadline) throw new CniError(ErrorCode.Internal, `failed to settle addresses for "${ifName}": still tentative after ${DAD_TIMEOUT_MS} ms`);
    await deps.sleep(50);
  }
}

/** Gateway addresses on the bridge (or its VLAN interface) and forwarding, when isGateway. */
async function ensureGateway(
  deps: BridgeDeps,
  conf: BridgeConf,
  bridgeAddrs: readonly LinkAddr[],
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
  const ops = calcGatewayOps(device, current, gateways, conf.forceAddress);
  const bridgeMac = result.interfaces?.[0]?.mac;
  if (ops.length) {
    const b = new IpBatch({ force: true });
    const steps = ops.map((op) => ({ op, step: b.add(op) }));
    // Pin the bridge's MAC (upstream does the same), so it does not follow its ports.
    const pin = device === conf.bridge && bridgeMac ? b.add({ kind: 'link-address', dev: device, mac: bridgeMac }) : undefined;
    await b.run(deps.ip);
    // A parallel ADD may have added the same gateway, or removed the old one, first.
    const bad = steps.find(({ op, step }) => {
      if (step.ok) return false;
      if (op.kind === 'addr-add' && step.error?.exists) return false;
      if (op.kind === 'addr-del' && /Cannot assign/i.test(step.error?.raw ?? '')) return false;
      return true;
    });
    const failed = bad?.step.error ?? pin?.error;
    if (failed) throw new CniError(ErrorCode.Internal, `failed to set bridge addr on "${device}": ${failText(failed)}`);
  }
  try {
    if (gateways[4].length) deps.sysctl.ensure('net/ipv4/ip_forward', '1');
    if (gateways[6].length) deps.sysctl.ensure('net/ipv6/conf/all/forwarding', '1');
  } catch (e) {
    throw wrapError(e, ErrorCode.Internal, 'failed to enable forwarding');
  }
}

/** upstream ensureVlanInterface: a veth `<bridge>.<vlan>` whose peer is an untagged port of that VLAN. */
async function ensureVlanInterface(deps: BridgeDeps, conf: BridgeConf): Promise<{ name: string; mac?: string; addrs: LinkAddr[] }> {
  const name = `${conf.bridge}.${conf.vlan}`;
  const peer = calcVlanPeerName(conf.bridge, conf.vlan);
  if (!deps.netdev.names().has(name)) {
    const mtu = conf.mtu || undefined;
    const b = new IpBatch();
    const create = b.add({ kind: 'link-add-veth', name, mtu, peer: { name: peer, mtu } });
    b.add({ kind: 'link-master', dev: peer, master: conf.bridge });
    b.add({ kind: 'link-up', dev: peer });
    b.add({ kind: 'link-up', dev: name });
    const r = await b.run(deps.ip);
    if (!r.ok && !create.error?.exists) {
      throw new CniError(ErrorCode.Internal, `failed to create vlan interface "${name}": ${failText(r.error)}`);
    }
    if (r.ok) {
      const info = (await showLink(deps, conf.bridge))?.info ?? {};
      const pvid = typeof info.vlan_default_pvid === 'number' ? info.vlan_default_pvid : 1;
      await runBridgeVlan(deps, calcVlanOps(conf, peer, pvid, conf.vlan, []), peer);
    }
  }
  const link = await showLink(deps, name);
  if (!link) throw new CniError(ErrorCode.Internal, `failed to find vlan interface "${name}"`);
  return { name, ...(link.mac ? { mac: link.mac } : {}), addrs: link.addrs };
}

/** upstream waits for the host port's operstate to be UP before returning. */
async function waitPortUp(deps: BridgeDeps, hostVeth: string): Promise<void> {
  const deadline = deps.now() + PORT_UP_TIMEOUT_MS;
  const viaSysfs = deps.netdev.sysfsTrusted();
  let state: string | undefined;
  for (let delay = 1; ; delay = Math.min(delay * 2, 50)) {
    state = viaSysfs ? deps.netdev.operState(hostVeth) : ((await showLink(deps, hostVeth))?.operstate ?? 'missing');
    if (state === 'up') return;
    if (deps.now() > deadline) throw new CniError(ErrorCode.Internal, `bridge port in error state: ${state ?? 'missing'}`);
    await deps.sleep(delay);
  }
}

async function deleteLink(deps: BridgeDeps, name: string, where: Pick<BatchOptions, 'netns' | 'background'> = {}): Promise<void> {
  const { netns } = where;
  const b = new IpBatch(where);
  const del = b.add({ kind: 'link-del', dev: name });
  await b.run(deps.ip);
  if (!del.ok && !del.error?.notFound) throw new Error(`failed to delete "${name}"${netns ? ` in "${netns}"` : ''}: ${failText(del.error)}`);
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

/**
 * DEL removes only what is provably this attachment's: the host end named for (container,
 * ifname) — deleting it takes the pod end along —, or, when that is gone, the pod interface
 * that prevResult describes (a veth in CNI_NETNS with prevResult's MAC). Never "whatever has
 * that name" in a namespace: with a wrong CNI_NETNS (another pod's, the node's own) that would be
 * someone else's interface. The IP and the rules are released either way, meanwhile: the
 * removal runs in the background, since the kernel takes its time removing a veth (an RCU grace
 * period).
 */
async function deleteAttachmentLink(deps: BridgeDeps, args: CmdArgs, hostVeth: string): Promise<void> {
  if (deps.netdev.names().has(hostVeth)) return deleteLink(deps, hostVeth, { background: true });
  const netns = args.netns;
  if (!netns || netnsError(netns, deps.netns)) return; // gone, empty, the node's own, or not a namespace
  const mine = args.prevResult?.interfaces?.find((i) => i.name === args.ifName && i.sandbox === netns && i.mac);
  if (!mine) return;
  let link: LinkEntry | undefined;
  try {
    link = await showLink(deps, args.ifName, netns);
  } catch {
    return; // a name no link can have: nothing of ours
  }
  if (!link || link.kind !== 'veth' || link.mac !== mine.mac?.toLowerCase()) return;
  await deleteLink(deps, args.ifName, { netns, background: true }).catch((e: unknown) => {
    // The namespace went away meanwhile: so did the interface.
    if (!/setns|namespace|Invalid argument|No such file/i.test(String(e))) throw e;
  });
}

async function cmdDel(deps: BridgeDeps, conf: BridgeConf, ipam: Ipam | undefined, args: CmdArgs): Promise<void> {
  const hostVeth = calcHostVethName(args.containerId, args.ifName);
  const linkDone = settle(deleteAttachmentLink(deps, args, hostVeth));
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

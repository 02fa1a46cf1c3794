import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { makeCniBinDir } from '../../helpers/cni-bin.js';
import { REPO_ROOT } from '../../helpers/env.js';
import { eventually } from '../../helpers/wait.js';
import { FABRIC_V4, type FabricNode, createFabric } from '../../helpers/fabric.js';
import { CniRuntime, type NetworkList, type RuntimeConf } from '../../helpers/cni-runtime.js';

/**
 * A kind-style cluster made of network namespaces, nothing in the root namespace: the fabric of
 * test/helpers/fabric.ts (a switch with 172.18.0.1, nodes 172.18.0.(1+i) with podCIDR
 * 10.244.i.0/24), podnet-routesync running in every node from a nodes file, and pods wired by
 * podnet through the CNI contract (CniRuntime). Namespaces get fixed names (`<prefix>fab`,
 * `<prefix>n<i>`) so a person can look around a kept lab. All state (bin, conf, IPAM store,
 * result cache, logs, the nodes file) lives under /run/podnet-lab/<prefix>, recorded in
 * state.json so that `Lab.load` can find and remove a lab kept by an earlier process.
 */

export const LAB_ROOT = '/run/podnet-lab';
export const PROBE_PORT = 7777;

export interface LabNode {
  name: string;
  ns: string;
  ip: string;
  podCidr: string;
  binDir: string;
  confDir: string;
  cacheDir: string;
  ipamDir: string;
  logFile: string;
  routesyncPid?: number;
}

export interface Pod {
  name: string;
  node: string;
  ns: string;
  containerId: string;
  ip: string;
  ifName: string;
  probePid?: number;
  /** How long the conflist ADD took (the runtime's view: every plugin, spawns included). */
  addMs?: number;
}

export interface LabState {
  prefix: string;
  dir: string;
  fabric: string;
  nodes: LabNode[];
  pods: Pod[];
  /** Probe servers outside the cluster (in the fabric namespace). */
  pids: number[];
  /** Pods made so far: numbers pod namespaces uniquely, parallel ADDs included. */
  seq: number;
}

export interface LabOptions {
  prefix: string;
  nodes: number;
  log?: (msg: string) => void;
}

export class Lab {
  private constructor(
    readonly state: LabState,
    private readonly log: (msg: string) => void,
  ) {}

  get nodes(): LabNode[] {
    return this.state.nodes;
  }

  get pods(): Pod[] {
    return this.state.pods;
  }

  get dir(): string {
    return this.state.dir;
  }

  /** Build the namespaces and wiring; nodes get their bin dirs. Routesync is started separately. */
  static async create(opts: LabOptions): Promise<Lab> {
    const log = opts.log ?? (() => {});
    const dir = join(LAB_ROOT, opts.prefix);
    if (existsSync(join(dir, 'state.json'))) {
      throw new Error(`a lab named ${opts.prefix} already exists (${dir}); remove it with: npm run demo -- --down`);
    }
    mkdirSync(dir, { recursive: true });
    const state: LabState = { prefix: opts.prefix, dir, fabric: `${opts.prefix}fab`, nodes: [], pods: [], pids: [], seq: 0 };
    const lab = new Lab(state, log);
    lab.save();
    try {
      log(`fabric namespace ${state.fabric} with bridge br0 ${FABRIC_V4}/16`);
      const fabric = await createFabric({
        nodes: opts.nodes,
        prefix: opts.prefix,
        names: { fabric: state.fabric, node: (i) => `${opts.prefix}n${i}` },
      });
      for (const fnode of fabric.nodes) {
        const node = lab.makeNode(fnode);
        state.nodes.push(node);
        lab.save();
        log(`node ${node.name}: namespace ${node.ns}, eth0 ${node.ip}/16, podCIDR ${node.podCidr}`);
        makeCniBinDir(node.binDir);
      }
      lab.writeNodesFile(state.nodes);
      return lab;
    } catch (e) {
      await lab.destroy();
      throw e;
    }
  }

  /** A lab kept by an earlier process (`--keep`). */
  static load(prefix: string, log: (msg: string) => void = () => {}): Lab | undefined {
    const file = join(LAB_ROOT, prefix, 'state.json');
    if (!existsSync(file)) return undefined;
    return new Lab(JSON.parse(readFileSync(file, 'utf8')) as LabState, log);
  }

  private makeNode(fnode: FabricNode): LabNode {
    const base = join(this.state.dir, fnode.name);
    for (const sub of ['bin', 'net.d', 'cache', 'ipam']) mkdirSync(join(base, sub), { recursive: true });
    return {
      name: fnode.name,
      ns: fnode.ns.name,
      ip: fnode.ip4,
      podCidr: fnode.cidr4,
      binDir: join(base, 'bin'),
      confDir: join(base, 'net.d'),
      cacheDir: join(base, 'cache'),
      ipamDir: join(base, 'ipam'),
      logFile: join(base, 'routesync.log'),
    };
  }

  get nodesFile(): string {
    return join(this.state.dir, 'nodes.json');
  }

  /** The cluster as the API server would list it: a core/v1 NodeList. */
  writeNodesFile(nodes: LabNode[]): void {
    const list = {
      apiVersion: 'v1',
      kind: 'NodeList',
      items: nodes.map((n) => ({
        apiVersion: 'v1',
        kind: 'Node',
        metadata: { name: n.name },
        spec: { podCIDR: n.podCidr, podCIDRs: [n.podCidr] },
        status: { addresses: [{ type: 'InternalIP', address: n.ip }, { type: 'Hostname', address: n.name }] },
      })),
    };
    const tmp = `${this.nodesFile}.tmp`;
    writeFileSync(tmp, JSON.stringify(list, null, 2));
    renameSync(tmp, this.nodesFile);
  }

  /**
   * Start podnet-routesync in a node's namespace, as the DaemonSet would. The nodes share one
   * filesystem here, so each gets the stock conflist template with its own IPAM store dir.
   */
  startRoutesync(node: LabNode): void {
    const template = JSON.parse(readFileSync(join(REPO_ROOT, 'conf', 'routesync-template.json'), 'utf8')) as NetworkList;
    for (const plugin of template.plugins) {
      if (plugin.ipam && typeof plugin.ipam === 'object') (plugin.ipam as Record<string, unknown>).dataDir = node.ipamDir;
    }
    const templateFile = join(this.state.dir, node.name, 'conflist-template.json');
    writeFileSync(templateFile, JSON.stringify(template, null, 2));
    const args = [
      'netns', 'exec', node.ns,
      join(node.binDir, 'podnet-routesync'),
      '--node-name', node.name,
      '--nodes-file', this.nodesFile,
      '--cni-conf-dir', node.confDir,
      '--cni-bin-dir', node.binDir,
      '--conflist-template', templateFile,
      '--metrics-addr', '127.0.0.1:9646',
    ];
    const out = openLog(node.logFile);
    const child = spawn('ip', args, { detached: true, stdio: ['ignore', out, out] });
    child.unref();
    if (!child.pid) throw new Error(`could not start podnet-routesync in ${node.ns}`);
    node.routesyncPid = child.pid;
    this.save();
  }

  async stopRoutesync(node: LabNode, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    if (node.routesyncPid) await killAndWait(node.routesyncPid, signal);
    delete node.routesyncPid;
    this.save();
  }

  conflistFile(node: LabNode): string {
    return join(node.confDir, '10-podnet.conflist');
  }

  /** Wait until routesync wrote the node's CNI config; returns it. */
  async waitForConflist(node: LabNode, timeoutMs = 20_000): Promise<NetworkList> {
    const file = this.conflistFile(node);
    await eventually(`node ${node.name}: podnet-routesync to write ${file} (log: ${node.logFile})`, async () => existsSync(file), timeoutMs);
    return JSON.parse(readFileSync(file, 'utf8')) as NetworkList;
  }

  /** Wait until `node` has a route to every other node's podCIDR via that node's IP. */
  async waitForRoutes(node: LabNode, peers: LabNode[], timeoutMs = 20_000): Promise<void> {
    await eventually(
      `node ${node.name}: routes to the peers' podCIDRs (log: ${node.logFile})`,
      async () => {
        const routes = await this.routes(node);
        const missing = peers.filter((p) => p !== node && !routes.some((r) => r.dst === p.podCidr && r.gateway === p.ip));
        if (missing.length) throw new Error(`no route to ${missing.map((p) => p.podCidr).join(', ')}`);
        return true;
      },
      timeoutMs,
    );
  }

  async routes(node: LabNode): Promise<{ dst: string; gateway?: string; protocol?: string }[]> {
    const r = await execa('ip', ['-n', node.ns, '-j', 'route', 'show']);
    return JSON.parse(r.stdout || '[]') as { dst: string; gateway?: string; protocol?: string }[];
  }

  runtime(node: LabNode): CniRuntime {
    return new CniRuntime({ binDirs: [node.binDir], cacheDir: node.cacheDir, node: node.ns });
  }

  private rtConf(pod: Pick<Pod, 'name' | 'ns' | 'containerId' | 'ifName'>): RuntimeConf {
    return {
      containerId: pod.containerId,
      netns: `/var/run/netns/${pod.ns}`,
      ifName: pod.ifName,
      args: [
        ['IgnoreUnknown', '1'],
        ['K8S_POD_NAMESPACE', 'default'],
        ['K8S_POD_NAME', pod.name],
        ['K8S_POD_INFRA_CONTAINER_ID', pod.containerId],
      ],
    };
  }

  /** Create a pod sandbox on `node` and run the node's conflist ADD for it. */
  async addPod(node: LabNode, name: string, list?: NetworkList): Promise<Pod> {
    const conf = list ?? (JSON.parse(readFileSync(this.conflistFile(node), 'utf8')) as NetworkList);
    this.state.seq += 1;
    const ns = `${node.ns}p${this.state.seq}`;
    const pod: Pod = { name, node: node.name, ns, containerId: `${name}-${Math.random().toString(16).slice(2, 10)}`, ip: '', ifName: 'eth0' };
    await ip(['netns', 'add', ns]);
    this.state.pods.push(pod);
    this.save();
    await nsBatch(ns, ['link set lo up']);
    const t0 = performance.now();
    let result: Record<string, unknown>;
    try {
      result = await this.runtime(node).add(conf, this.rtConf(pod));
    } catch (e) {
      // What kubelet does with a sandbox whose network setup failed: DEL, then drop it.
      await this.runtime(node).del(conf, this.rtConf(pod)).catch(() => undefined);
      await ip(['netns', 'del', ns], false);
      this.state.pods = this.state.pods.filter((p) => p !== pod);
      this.save();
      throw e;
    }
    pod.addMs = performance.now() - t0;
    pod.ip = firstIp(result);
    this.save();
    return pod;
  }

  /** CNI DEL (plugins in reverse, cached result as prevResult), then remove the sandbox. */
  async delPod(pod: Pod, list?: NetworkList): Promise<void> {
    const node = this.node(pod.node);
    const conf = list ?? (JSON.parse(readFileSync(this.conflistFile(node), 'utf8')) as NetworkList);
    if (pod.probePid) await killAndWait(pod.probePid, 'SIGKILL');
    await this.runtime(node).del(conf, this.rtConf(pod));
    await ip(['netns', 'del', pod.ns], false);
    this.state.pods = this.state.pods.filter((p) => p !== pod);
    this.save();
  }

  async checkPod(pod: Pod): Promise<void> {
    const node = this.node(pod.node);
    await this.runtime(node).check(JSON.parse(readFileSync(this.conflistFile(node), 'utf8')) as NetworkList, this.rtConf(pod));
  }

  node(name: string): LabNode {
    const n = this.state.nodes.find((x) => x.name === name);
    if (!n) throw new Error(`no node ${name}`);
    return n;
  }

  /** Start a TCP server in `ns` that answers each connection with the address it came from. */
  startProbeServer(ns: string): number {
    const code = `require('net').createServer(s=>s.end(s.remoteAddress.replace(/^::ffff:/,''))).listen(${PROBE_PORT},'0.0.0.0',()=>console.log('ready'))`;
    const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', code], { detached: true, stdio: 'ignore' });
    child.unref();
    if (!child.pid) throw new Error(`could not start a probe server in ${ns}`);
    return child.pid;
  }

  /** Probe servers in every pod and in the fabric ("outside the cluster"). */
  async startProbes(): Promise<void> {
    for (const pod of this.state.pods) if (!pod.probePid) pod.probePid = this.startProbeServer(pod.ns);
    if (this.state.pids.length === 0) this.state.pids.push(this.startProbeServer(this.state.fabric));
    this.save();
    // Wait until every server accepts, from the namespace that hosts it.
    await Promise.all([
      ...this.state.pods.map((p) => this.waitListening(p.ns, p.ip)),
      this.waitListening(this.state.fabric, FABRIC_V4),
    ]);
  }

  private async waitListening(ns: string, addr: string): Promise<void> {
    await eventually(`the probe server in ${ns} (${addr}:${PROBE_PORT})`, async () => (await probe(ns, [addr], 500))[0]?.seen, 10_000);
  }

  get outsideAddress(): string {
    return FABRIC_V4;
  }

  save(): void {
    writeFileSync(join(this.state.dir, 'state.json'), JSON.stringify(this.state, null, 2));
  }

  /** Remove everything: pods (CNI DEL first, best effort), daemons, namespaces, files. */
  async destroy(): Promise<void> {
    this.log(`removing lab ${this.state.prefix}: ${this.state.pods.length} pods, ${this.state.nodes.length} nodes`);
    for (const pod of [...this.state.pods]) {
      try {
        await this.delPod(pod);
      } catch {
        if (pod.probePid) await killAndWait(pod.probePid, 'SIGKILL');
        await ip(['netns', 'del', pod.ns], false);
      }
    }
    for (const pid of this.state.pids) await killAndWait(pid, 'SIGKILL');
    for (const node of this.state.nodes) {
      if (node.routesyncPid) await killAndWait(node.routesyncPid, 'SIGKILL');
      await ip(['netns', 'del', node.ns], false);
    }
    await ip(['netns', 'del', this.state.fabric], false);
    rmSync(this.state.dir, { recursive: true, force: true });
  }
}

export interface ProbeResult {
  target: string;
  /** The source address the receiver saw, or undefined when unreachable. */
  seen?: string;
  error?: string;
}

/** Connect from namespace `ns` to each target's probe port; report what each receiver saw. */
export async function probe(ns: string, targets: string[], timeoutMs = 2000): Promise<ProbeResult[]> {
  const code = `
    const net = require('net');
    const targets = ${JSON.stringify(targets)};
    Promise.all(targets.map((t) => new Promise((res) => {
      const s = net.connect({ host: t, port: ${PROBE_PORT} });
      let data = '';
      const timer = setTimeout(() => { s.destroy(); res({ target: t, error: 'timeout' }); }, ${timeoutMs});
      s.on('data', (d) => (data += d));
      s.on('end', () => { clearTimeout(timer); res({ target: t, seen: data }); });
      s.on('error', (e) => { clearTimeout(timer); res({ target: t, error: e.code || e.message }); });
    }))).then((r) => console.log(JSON.stringify(r)));`;
  const r = await execa('ip', ['netns', 'exec', ns, process.execPath, '-e', code], { timeout: timeoutMs + 10_000 });
  return JSON.parse(r.stdout) as ProbeResult[];
}

function firstIp(result: Record<string, unknown>): string {
  const ips = result.ips as { address: string }[] | undefined;
  const ip4 = result.ip4 as { ip: string } | undefined;
  const addr = ips?.[0]?.address ?? ip4?.ip;
  if (!addr) throw new Error(`CNI result has no IP: ${JSON.stringify(result)}`);
  return addr.split('/')[0] as string;
}

async function ip(args: string[], reject = true): Promise<void> {
  await execa('ip', args, { reject });
}

/** Apply `ip` commands in one process inside `ns`. */
async function nsBatch(ns: string, cmds: string[]): Promise<void> {
  await execa('ip', ['-n', ns, '-batch', '-'], { input: `${cmds.join('\n')}\n` });
}

/** An fd the detached daemon keeps after we exit. */
function openLog(file: string): number {
  return openSync(file, 'a');
}

async function killAndWait(pid: number, signal: NodeJS.Signals): Promise<void> {
  try {
    process.kill(pid, signal);
  } catch {
    return;
  }
  const deadline = Date.now() + 6000;
  while (Date.now() < deadline) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    await sleep(20);
  }
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // gone
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

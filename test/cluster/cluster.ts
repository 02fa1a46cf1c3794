import { spawn } from 'node:child_process';
import { closeSync, copyFileSync, cpSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa, type Options as ExecaOptions } from 'execa';
import { REPO_ROOT } from '../helpers/env.js';
import { cgroupPids, ensureCgroup, hierarchies, removeCgroupTree } from './cgroups.js';
import { APISERVER_PORT, CLUSTER_CIDR, KUBERNETES_SERVICE_IP, SERVICE_CIDR, containerdConfig, kubeProxyConfig, kubeletConfig } from './configs.js';
import { type ClusterImage, agnhostImage, e2eImageNames, kubernetesModuleDir, pauseImage, podnetImage } from './images.js';
import { ensurePeers, peerVersion, runcPath } from './peers.js';
import { ensurePki, kubeconfig, type Pki } from './pki.js';

/**
 * A kind-shaped Kubernetes cluster made of processes and namespaces, no Docker:
 *
 *   <name>-fabric netns   bridge br0 172.18.0.1/16 — kind's Docker network; kubectl runs here
 *   <name>-nI netns       eth0 172.18.0.(I+1)/16 on br0; plus a private mount + UTS namespace
 *                         held by node-ns.sh (its own /run, /etc/cni/net.d, /opt/cni/bin,
 *                         /var/lib/{cni,kubelet,containerd}, /var/log/pods, hostname)
 *   node 1                etcd, kube-apiserver, kube-controller-manager (--allocate-node-cidrs
 *                         --cluster-cidr=10.244.0.0/16), kube-scheduler
 *   every node            containerd 2 + kubelet (cgroupfs, cgroup root /<name>/<node>/pods)
 *                         + kube-proxy (iptables)
 *
 * podnet is installed as a kind user installs it: `kubectl apply -f kind/podnet.yaml` with the
 * image name replaced. Nothing in the root network namespace changes. State lives in
 * `<baseDir>/<name>` (state.json, pki, logs, each node's disk tree).
 */
export const DEFAULT_BASE = process.env.PODNET_CLUSTER_DIR ?? '/var/lib/podnet-cluster';
export const NODE_NS_SCRIPT = join(REPO_ROOT, 'test', 'cluster', 'node-ns.sh');

export type Cni = 'podnet' | 'reference';

export interface NodeState {
  name: string;
  index: number;
  netns: string;
  ip: string;
  holderPid: number;
}

export interface ProcState {
  pid: number;
  argv: string[];
  log: string;
}

export interface ClusterState {
  name: string;
  cni: Cni;
  nodes: NodeState[];
  procs: Record<string, ProcState>;
  bins: Record<string, string>;
  images: ClusterImage[];
  podnetImage?: string;
}

export interface UpOptions {
  nodes?: number;
  cni?: Cni;
  /** Also build the agnhost image (needs the e2e binary); default true. */
  e2eImages?: boolean;
}

type Say = (msg: string) => void;

const FABRIC_GW = '172.18.0.1';
const nodeIp = (i: number) => `172.18.0.${i + 1}`;

export class Cluster {
  readonly name: string;
  readonly dir: string;
  readonly say: Say;

  constructor(name: string, opts: { baseDir?: string; say?: Say } = {}) {
    if (!/^[a-z][a-z0-9]{1,11}$/.test(name)) throw new Error(`invalid cluster name "${name}": 2-12 lowercase letters/digits, starting with a letter`);
    this.name = name;
    this.dir = join(opts.baseDir ?? DEFAULT_BASE, name);
    this.say = opts.say ?? (() => {});
  }

  get fabricNs(): string {
    return `${this.name}-fabric`;
  }
  get adminConf(): string {
    return join(this.dir, 'admin.conf');
  }
  get cgroupBase(): string {
    return `/${this.name}`;
  }
  nodeName(i: number): string {
    return i === 1 ? `${this.name}-control-plane` : i === 2 ? `${this.name}-worker` : `${this.name}-worker${i - 1}`;
  }
  nodeDir(node: string): string {
    return join(this.dir, 'nodes', node);
  }
  /** A path inside a node's disk tree as the node sees it at `path`. */
  nodeFile(node: string, path: string): string {
    return join(this.nodeDir(node), 'fs', path);
  }

  state(): ClusterState | undefined {
    try {
      return JSON.parse(readFileSync(join(this.dir, 'state.json'), 'utf8')) as ClusterState;
    } catch {
      return undefined;
    }
  }
  private save(s: ClusterState): void {
    writeFileSync(join(this.dir, 'state.json.tmp'), JSON.stringify(s, null, 2));
    renameSync(join(this.dir, 'state.json.tmp'), join(this.dir, 'state.json'));
  }

  requireState(): ClusterState {
    const s = this.state();
    if (!s) throw new Error(`cluster "${this.name}" is not up (no ${join(this.dir, 'state.json')})`);
    return s;
  }

  node(name: string): NodeState {
    const n = this.requireState().nodes.find((x) => x.name === name);
    if (!n) throw new Error(`no node "${name}" in cluster "${this.name}"`);
    return n;
  }

  // ---------------------------------------------------------------- up

  async up(opts: UpOptions = {}): Promise<void> {
    if (this.state()) throw new Error(`cluster "${this.name}" is already up (npm run cluster -- down${this.name === 'pcl' ? '' : ` --name ${this.name}`})`);
    const count = opts.nodes ?? 3;
    const cni = opts.cni ?? 'podnet';
    const t0 = Date.now();
    const elapsed = () => `${((Date.now() - t0) / 1000).toFixed(1)} s`;
    mkdirSync(this.dir, { recursive: true });
    const state: ClusterState = { name: this.name, cni, nodes: [], procs: {}, bins: {}, images: [] };
    try {
      this.say('components (scripts/peers.sh; cached outside the checkout)');
      const bins = await ensurePeers(['kubernetes', 'etcd', 'containerd', 'cni-plugins'], this.say);
      state.bins = bins;

      this.say('images (pause, agnhost, podnet; cached by content)');
      const k8sSrc = await kubernetesModuleDir(peerVersion('KUBERNETES_VERSION'));
      const k8sBin = bins.kubernetes as string;
      state.images.push(await pauseImage(k8sSrc, this.say));
      state.images.push(await podnetImage(this.say));
      if (opts.e2eImages !== false) {
        const agn = (await e2eImageNames(join(k8sBin, 'e2e.test'))).filter((n) => /\/agnhost:/.test(n) && n.includes('e2e-test-images'));
        for (const ref of agn) state.images.push(await agnhostImage({ agnhost: join(k8sBin, 'agnhost'), ref, k8sDir: k8sSrc }, this.say));
      }
      state.podnetImage = (state.images.find((i) => i.name === 'podnet') as ClusterImage).ref;
      this.save(state);

      this.say(`certificates and kubeconfigs (${elapsed()})`);
      const nodes = Array.from({ length: count }, (_, k) => this.nodeName(k + 1));
      const pki = await ensurePki({
        dir: join(this.dir, 'pki'),
        apiserverIps: [nodeIp(1), KUBERNETES_SERVICE_IP, '127.0.0.1'],
        apiserverDns: ['kubernetes', 'kubernetes.default', 'kubernetes.default.svc', 'kubernetes.default.svc.cluster.local', 'localhost', nodes[0] as string],
        clients: [
          { name: 'admin', cn: 'kubernetes-admin', org: 'system:masters' },
          { name: 'apiserver-kubelet-client', cn: 'kube-apiserver-kubelet-client', org: 'system:masters' },
          { name: 'controller-manager', cn: 'system:kube-controller-manager' },
          { name: 'scheduler', cn: 'system:kube-scheduler' },
          { name: 'kube-proxy', cn: 'system:kube-proxy' },
          ...nodes.map((n) => ({ name: `kubelet-${n}`, cn: `system:node:${n}`, org: 'system:nodes' })),
        ],
      });
      const server = `https://${nodeIp(1)}:${APISERVER_PORT}`;
      writeFileSync(this.adminConf, kubeconfig(pki, 'admin', server), { mode: 0o600 });

      this.say(`network: fabric bridge 172.18.0.0/16 and ${count} node namespaces (${elapsed()})`);
      await this.makeFabric(state, nodes);

      for (const n of state.nodes) this.writeNodeFiles(n, pki, server, bins, cni);
      this.save(state);

      const cp = state.nodes[0] as NodeState;
      this.say(`control plane on ${cp.name}: etcd, kube-apiserver (${elapsed()})`);
      const k = (b: string) => join(k8sBin, b);
      this.start(state, cp, 'etcd', [join(bins.etcd as string, 'etcd'), '--name', cp.name, '--data-dir', '/var/lib/etcd',
        '--listen-client-urls', 'http://127.0.0.1:2379', '--advertise-client-urls', 'http://127.0.0.1:2379',
        '--listen-peer-urls', 'http://127.0.0.1:2380', '--initial-advertise-peer-urls', 'http://127.0.0.1:2380',
        '--initial-cluster', `${cp.name}=http://127.0.0.1:2380`, '--listen-metrics-urls', 'http://127.0.0.1:2381',
        '--quota-backend-bytes', String(2 ** 31), '--snapshot-count', '10000', '--log-level', 'warn']);
      const P = '/etc/kubernetes/pki';
      this.start(state, cp, 'kube-apiserver', [k('kube-apiserver'), `--advertise-address=${cp.ip}`, '--bind-address=0.0.0.0', `--secure-port=${APISERVER_PORT}`,
        '--etcd-servers=http://127.0.0.1:2379', `--service-cluster-ip-range=${SERVICE_CIDR}`, '--allow-privileged=true',
        '--authorization-mode=Node,RBAC', '--enable-admission-plugins=NodeRestriction', `--client-ca-file=${P}/ca.crt`,
        `--tls-cert-file=${P}/apiserver.crt`, `--tls-private-key-file=${P}/apiserver.key`,
        `--kubelet-client-certificate=${P}/apiserver-kubelet-client.crt`, `--kubelet-client-key=${P}/apiserver-kubelet-client.key`,
        '--kubelet-preferred-address-types=InternalIP,Hostname', '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
        `--service-account-key-file=${P}/sa.pub`, `--service-account-signing-key-file=${P}/sa.key`, '--profiling=false', '--v=1']);
      await this.waitFor('kube-apiserver /readyz', async () => (await this.kubectl(['get', '--raw', '/readyz'], { reject: false, timeout: 10_000 })).stdout === 'ok', 120_000, state);
      this.say(`kube-controller-manager, kube-scheduler (${elapsed()})`);
      this.start(state, cp, 'kube-controller-manager', [k('kube-controller-manager'), '--kubeconfig=/etc/kubernetes/controller-manager.conf',
        '--authentication-kubeconfig=/etc/kubernetes/controller-manager.conf', '--authorization-kubeconfig=/etc/kubernetes/controller-manager.conf',
        '--bind-address=127.0.0.1', '--leader-elect=false', '--allocate-node-cidrs=true', `--cluster-cidr=${CLUSTER_CIDR}`, '--node-cidr-mask-size=24',
        `--service-cluster-ip-range=${SERVICE_CIDR}`, `--root-ca-file=${P}/ca.crt`, `--service-account-private-key-file=${P}/sa.key`,
        `--cluster-signing-cert-file=${P}/ca.crt`, `--cluster-signing-key-file=${P}/ca.key`, '--use-service-account-credentials=true',
        '--controllers=*,bootstrapsigner,tokencleaner', '--v=1']);
      this.start(state, cp, 'kube-scheduler', [k('kube-scheduler'), '--kubeconfig=/etc/kubernetes/scheduler.conf',
        '--authentication-kubeconfig=/etc/kubernetes/scheduler.conf', '--authorization-kubeconfig=/etc/kubernetes/scheduler.conf',
        '--bind-address=127.0.0.1', '--leader-elect=false', '--v=1']);

      this.say(`containerd on every node, images imported (${elapsed()})`);
      for (const n of state.nodes) this.startContainerd(state, n);
      await Promise.all(state.nodes.map((n) => this.waitFor(`containerd on ${n.name}`, async () => (await this.ctr(n, ['version'], { reject: false, timeout: 10_000 })).exitCode === 0, 60_000, state)));
      await Promise.all(state.nodes.map((n) => this.importImages(n, state.images)));

      this.say(`kubelet and kube-proxy on every node (${elapsed()})`);
      for (const n of state.nodes) {
        this.startKubelet(state, n);
        this.start(state, n, 'kube-proxy', [k('kube-proxy'), '--config=/etc/kubernetes/kube-proxy-config.yaml', '--v=1']);
      }
      await this.waitFor('every Node registered', async () => (await this.nodeNames()).length === count, 120_000, state);

      this.say(`podnet: kubectl apply -f kind/podnet.yaml (image ${state.podnetImage}) (${elapsed()})`);
      await this.kubectl(['apply', '-f', '-'], { input: podnetManifest(state.podnetImage) });
      if (cni === 'reference') {
        this.say(`reference plugins: routesync only routes; bridge + host-local conflist on every node (${elapsed()})`);
        await this.useReferencePlugins(state);
      }
      await this.waitFor('every Node Ready', async () => (await this.readyNodes()).length === count, 180_000, state);
      this.say(`cluster "${this.name}" is up: ${count} nodes Ready in ${elapsed()}`);
    } catch (e) {
      this.save(state);
      throw e;
    }
  }

  private async makeFabric(state: ClusterState, nodes: string[]): Promise<void> {
    await execa('ip', ['netns', 'add', this.fabricNs]);
    const fab = (args: string[], input?: string) => execa('ip', ['netns', 'exec', this.fabricNs, ...args], input !== undefined ? { input } : {});
    await fab(['ip', '-batch', '-'], ['link set lo up', 'link add br0 type bridge', `addr add ${FABRIC_GW}/16 dev br0`, 'link set br0 up'].join('\n'));
    ensureCgroup(this.cgroupBase);
    for (const [k, name] of nodes.entries()) {
      const index = k + 1;
      const netns = `${this.name}-n${index}`;
      const ip = nodeIp(index);
      await execa('ip', ['netns', 'add', netns]);
      await execa('ip', ['netns', 'exec', netns, 'ip', '-batch', '-'], {
        input: ['link set lo up', `link add eth0 type veth peer name n${index} netns ${this.fabricNs}`, `addr add ${ip}/16 dev eth0`, 'link set eth0 up', `route add default via ${FABRIC_GW}`].join('\n'),
      });
      await fab(['ip', 'link', 'set', `n${index}`, 'master', 'br0', 'up']);
      // A node forwards (kind nodes do): pod traffic is routed through it.
      await execa('ip', ['netns', 'exec', netns, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
      ensureCgroup(`${this.cgroupBase}/${name}/sys`);
      ensureCgroup(`${this.cgroupBase}/${name}/pods`);
      const dir = this.nodeDir(name);
      mkdirSync(join(dir, 'fs'), { recursive: true });
      const ready = join(dir, 'ns-ready');
      rmSync(ready, { force: true });
      const log = join(this.dir, 'logs', `${name}-ns.log`);
      mkdirSync(join(this.dir, 'logs'), { recursive: true });
      const holderPid = spawnDetached('nsenter', [`--net=/var/run/netns/${netns}`, 'unshare', '--mount', '--uts', '--propagation', 'private', 'sh', NODE_NS_SCRIPT, dir, name], log, this.cgroupProcs(`${name}/sys`));
      const node: NodeState = { name, index, netns, ip, holderPid };
      state.nodes.push(node);
      this.save(state);
      await this.waitFor(`namespaces of ${name}`, async () => {
        if (existsSync(ready)) return true;
        if (!alive(holderPid)) throw new Fatal(`node-ns.sh for ${name} exited:\n${tail(log)}`);
        return false;
      }, 15_000, state);
    }
  }

  private cgroupProcs(sub: string): string {
    return hierarchies().map((h) => join(h, this.cgroupBase, sub, 'cgroup.procs')).join(' ');
  }

  private writeNodeFiles(n: NodeState, pki: Pki, server: string, bins: Record<string, string>, cni: Cni): void {
    const f = (p: string) => this.nodeFile(n.name, p);
    for (const d of ['/etc/kubernetes/pki', '/etc/containerd', '/opt/cni/bin', '/etc/cni/net.d', '/var/lib/kubelet']) mkdirSync(f(d), { recursive: true });
    copyFileSync(pki.ca, f('/etc/kubernetes/pki/ca.crt'));
    if (n.index === 1) {
      cpSync(pki.dir, f('/etc/kubernetes/pki'), { recursive: true });
      writeFileSync(f('/etc/kubernetes/controller-manager.conf'), kubeconfig(pki, 'controller-manager', server), { mode: 0o600 });
      writeFileSync(f('/etc/kubernetes/scheduler.conf'), kubeconfig(pki, 'scheduler', server), { mode: 0o600 });
    }
    writeFileSync(f('/etc/kubernetes/kubelet.conf'), kubeconfig(pki, `kubelet-${n.name}`, server), { mode: 0o600 });
    writeFileSync(f('/etc/kubernetes/kube-proxy.conf'), kubeconfig(pki, 'kube-proxy', server), { mode: 0o600 });
    writeFileSync(f('/etc/kubernetes/kubelet-config.yaml'), kubeletConfig({ nodeIp: n.ip, cgroupRoot: `${this.cgroupBase}/${n.name}/pods` }));
    writeFileSync(f('/etc/kubernetes/kube-proxy-config.yaml'), kubeProxyConfig({ nodeName: n.name }));
    writeFileSync(f('/etc/containerd/config.toml'), containerdConfig({ snapshotter: 'overlayfs', runc: runcPath(bins.containerd as string) }));
    // What a kind node image ships in /opt/cni/bin (host-local, loopback, portmap, ptp) plus the
    // reference bridge for the reference-plugins cluster; podnet's init container adds its own.
    for (const p of ['loopback', 'portmap', 'host-local', 'ptp', 'bridge']) {
      const src = join(bins['cni-plugins'] as string, p);
      if (existsSync(src)) copyFileSync(src, f(`/opt/cni/bin/${p}`));
    }
    void cni;
  }

  private startContainerd(state: ClusterState, n: NodeState): void {
    const bins = state.bins;
    this.start(state, n, 'containerd', [join(bins.containerd as string, 'containerd'), '--config', '/etc/containerd/config.toml']);
  }

  private startKubelet(state: ClusterState, n: NodeState): void {
    this.start(state, n, 'kubelet', [join(state.bins.kubernetes as string, 'kubelet'), '--config=/etc/kubernetes/kubelet-config.yaml',
      '--kubeconfig=/etc/kubernetes/kubelet.conf', `--node-ip=${n.ip}`, `--hostname-override=${n.name}`, '--v=1']);
  }

  /** Start a node component detached (it outlives this process), in the node's namespaces and cgroup. */
  private start(state: ClusterState, n: NodeState, comp: string, argv: string[]): void {
    const log = join(this.dir, 'logs', `${n.name}-${comp}.log`);
    const path = [state.bins.containerd, state.bins.kubernetes, '/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'].filter(Boolean).join(':');
    const pid = spawnDetached('nsenter', ['-t', String(n.holderPid), '-m', '-u', '-n', '--', ...argv], log, this.cgroupProcs(`${n.name}/sys`), { PATH: path });
    state.procs[`${n.name}/${comp}`] = { pid, argv, log };
    this.save(state);
  }

  /** Stop and start again one component of a node (kubelet, containerd, kube-proxy, …). */
  async restart(nodeName: string, comp: string): Promise<void> {
    const state = this.requireState();
    const n = state.nodes.find((x) => x.name === nodeName);
    const p = state.procs[`${nodeName}/${comp}`];
    if (!n || !p) throw new Error(`no ${comp} on node "${nodeName}"`);
    await stopPid(p.pid);
    this.start(state, n, comp, p.argv);
    // kubelet exits at once when the CRI socket does not answer: a restarted containerd must be
    // serving before anything that depends on it starts (systemd's After= on a kind node).
    if (comp === 'kubelet') {
      await this.waitFor(`kubelet /healthz on ${n.name}`, async () => (await this.nodeExec(n.name, 'curl', ['-sf', '--max-time', '2', 'http://127.0.0.1:10248/healthz'], { reject: false })).stdout === 'ok', 60_000);
    }
    if (comp === 'containerd') await this.waitFor(`containerd on ${n.name}`, async () => (await this.ctr(n, ['version'], { reject: false, timeout: 10_000 })).exitCode === 0, 60_000);
  }

  async stop(nodeName: string, comp: string): Promise<void> {
    const p = this.requireState().procs[`${nodeName}/${comp}`];
    if (p) await stopPid(p.pid);
  }

  // ---------------------------------------------------------------- images

  ctr(n: NodeState, args: string[], o: { reject?: boolean; timeout?: number } = {}) {
    const bin = join(this.requireState().bins.containerd as string, 'ctr');
    return execa('nsenter', ['-t', String(n.holderPid), '-m', '-u', '-n', '--', bin, '--address', '/run/containerd/containerd.sock', '--namespace', 'k8s.io', ...args],
      { stdin: 'ignore', reject: o.reject ?? true, timeout: o.timeout ?? 300_000 });
  }

  private async importImages(n: NodeState, images: ClusterImage[]): Promise<void> {
    for (const img of images) {
      await this.ctr(n, ['images', 'import', '--snapshotter', 'overlayfs', img.tar]);
    }
  }

  // ---------------------------------------------------------------- CNI of the reference cluster

  /**
   * The reference-plugins cluster: routesync still routes and masquerades (the same DaemonSet,
   * with --write-conflist=false), and every node gets the reference bridge + host-local conflist
   * for its podCIDR, written where containerd reads it.
   */
  async useReferencePlugins(state: ClusterState = this.requireState()): Promise<void> {
    await this.kubectl(['-n', 'kube-system', 'patch', 'daemonset', 'podnet', '--type=json', '-p',
      JSON.stringify([{ op: 'add', path: '/spec/template/spec/containers/0/args/-', value: '--write-conflist=false' }])]);
    await this.kubectl(['-n', 'kube-system', 'rollout', 'status', 'daemonset/podnet', '--timeout=180s']);
    // A conflist routesync wrote before (a cluster switched from podnet) would come first.
    for (const n of state.nodes) rmSync(this.nodeFile(n.name, '/etc/cni/net.d/10-podnet.conflist'), { force: true });
    await this.waitFor('every Node has a podCIDR', async () => {
      const nodes = await this.nodesJson();
      return nodes.length === state.nodes.length && nodes.every((x) => x.spec?.podCIDR);
    }, 60_000, state);
    for (const node of await this.nodesJson()) {
      writeFileSync(this.nodeFile(node.metadata.name, '/etc/cni/net.d/10-reference.conflist'), referenceConflist(node.spec?.podCIDR as string));
    }
    state.cni = 'reference';
    this.save(state);
  }

  // ---------------------------------------------------------------- kubectl and queries

  kubectl(args: readonly string[], o: { input?: string; reject?: boolean; timeout?: number; stdio?: 'inherit' } = {}) {
    const bin = join(this.requireState().bins.kubernetes as string, 'kubectl');
    const opts: ExecaOptions = {
      reject: o.reject ?? true,
      timeout: o.timeout ?? 120_000,
      ...(o.input !== undefined ? { input: o.input } : { stdin: o.stdio ?? ('ignore' as const) }),
      ...(o.stdio ? { stdout: 'inherit' as const, stderr: 'inherit' as const } : {}),
    };
    return execa('ip', ['netns', 'exec', this.fabricNs, bin, '--kubeconfig', this.adminConf, ...args], opts) as unknown as Promise<{ stdout: string; stderr: string; exitCode?: number }>;
  }

  async nodesJson(): Promise<Array<{ metadata: { name: string }; spec?: { podCIDR?: string }; status?: { conditions?: Array<{ type: string; status: string }> } }>> {
    const r = await this.kubectl(['get', 'nodes', '-o', 'json'], { reject: false, timeout: 15_000 });
    if (r.exitCode !== 0 || !r.stdout) return [];
    return (JSON.parse(r.stdout) as { items: never[] }).items;
  }
  async nodeNames(): Promise<string[]> {
    return (await this.nodesJson()).map((n) => n.metadata.name);
  }
  async readyNodes(): Promise<string[]> {
    return (await this.nodesJson()).filter((n) => n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')).map((n) => n.metadata.name);
  }

  /** Run a command in a node's namespaces. */
  nodeExec(nodeName: string, file: string, args: readonly string[], o: { reject?: boolean; timeout?: number; input?: string } = {}) {
    const n = this.node(nodeName);
    return execa('nsenter', ['-t', String(n.holderPid), '-m', '-u', '-n', '--', file, ...args], {
      reject: o.reject ?? true,
      timeout: o.timeout ?? 60_000,
      ...(o.input !== undefined ? { input: o.input } : { stdin: 'ignore' as const }),
    });
  }

  async waitFor(what: string, f: () => Promise<boolean>, ms: number, state?: ClusterState): Promise<void> {
    const until = Date.now() + ms;
    for (;;) {
      try {
        if (await f()) return;
      } catch (e) {
        if (e instanceof Fatal) throw e;
      }
      if (state) {
        for (const [key, p] of Object.entries(state.procs)) {
          if (!alive(p.pid)) throw new Error(`${key} exited while waiting for ${what}; its log (${p.log}):\n${tail(p.log)}`);
        }
      }
      if (Date.now() > until) throw new Error(`timed out after ${ms / 1000} s waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 500));
    }
  }

  async status(): Promise<string> {
    const s = this.state();
    if (!s) return `cluster "${this.name}": down`;
    const lines = [`cluster "${this.name}" (${s.cni}), state in ${this.dir}`];
    for (const [key, p] of Object.entries(s.procs)) lines.push(`  ${alive(p.pid) ? 'running' : 'EXITED '} ${key} (pid ${p.pid})`);
    const r = await this.kubectl(['get', 'nodes', '-o', 'wide'], { reject: false, timeout: 15_000 });
    lines.push(r.exitCode === 0 ? r.stdout : `  kubectl get nodes failed: ${r.stderr}`);
    return lines.join('\n');
  }

  // ---------------------------------------------------------------- down

  /** Remove every process, mount, cgroup and namespace the cluster made, and its state. */
  async down(): Promise<void> {
    const s = this.state();
    // Components first (kubelet before containerd, so nothing restarts pods meanwhile).
    if (s) {
      const order = ['kubelet', 'kube-proxy', 'kube-scheduler', 'kube-controller-manager', 'kube-apiserver', 'etcd', 'containerd'];
      for (const comp of order) {
        await Promise.all(Object.entries(s.procs).filter(([k]) => k.endsWith(`/${comp}`)).map(([, p]) => stopPid(p.pid)));
      }
      for (const p of Object.values(s.procs)) await stopPid(p.pid, 0);
    }
    // Everything still in the cluster's cgroups: shims, containers, holders.
    await removeCgroupTree(this.cgroupBase);
    for (const n of s?.nodes ?? []) await stopPid(n.holderPid, 0);
    const leftover = cgroupPids(this.cgroupBase);
    if (leftover.length) this.say(`warning: processes left in cgroup ${this.cgroupBase}: ${leftover.join(' ')}`);
    const names = (await execa('ip', ['netns', 'list'])).stdout.split('\n').map((l) => l.split(' ')[0] ?? '');
    for (const ns of names) if (ns === this.fabricNs || new RegExp(`^${this.name}-n\\d+$`).test(ns)) await execa('ip', ['netns', 'del', ns], { reject: false });
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** An error that ends a wait at once. */
class Fatal extends Error {}

/** Spawn detached with output to `log`, after moving itself into the given cgroup.procs files. */
function spawnDetached(file: string, args: string[], log: string, cgroupProcs: string, env: Record<string, string> = {}): number {
  const fd = openSync(log, 'a');
  try {
    const child = spawn('sh', ['-c', 'for f in $PCL_CGROUP_PROCS; do echo $$ > "$f"; done; exec "$@"', 'sh', file, ...args], {
      detached: true,
      stdio: ['ignore', fd, fd],
      env: { ...process.env, ...env, PCL_CGROUP_PROCS: cgroupProcs },
    });
    child.unref();
    if (child.pid === undefined) throw new Error(`failed to start ${file}`);
    return child.pid;
  } finally {
    closeSync(fd);
  }
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    // A zombie (exited, not yet reaped by its parent) counts as gone.
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

async function stopPid(pid: number, graceMs = 10_000): Promise<void> {
  if (!alive(pid)) return;
  try {
    process.kill(pid, graceMs > 0 ? 'SIGTERM' : 'SIGKILL');
  } catch {
    return;
  }
  const until = Date.now() + graceMs;
  while (alive(pid) && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
  if (alive(pid)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
    while (alive(pid)) await new Promise((r) => setTimeout(r, 50));
  }
}

function tail(file: string, lines = 30): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** kind/podnet.yaml with only the image name replaced. */
export function podnetManifest(image: string | undefined): string {
  const src = readFileSync(join(REPO_ROOT, 'kind', 'podnet.yaml'), 'utf8');
  if (!image) return src;
  const out = src.replace(/image: podnet:dev$/gm, `image: ${image}`);
  if (out === src) throw new Error('kind/podnet.yaml has no "image: podnet:dev" line to point at the imported image');
  return out;
}

/** The reference plugins' conflist for a node: routesync's template with the upstream bridge + host-local. */
export function referenceConflist(podCidr: string): string {
  return JSON.stringify({
    cniVersion: '1.0.0',
    name: 'reference',
    plugins: [
      { type: 'bridge', bridge: 'ref0', isGateway: true, isDefaultGateway: true, ipMasq: false, hairpinMode: true, ipam: { type: 'host-local', ranges: [[{ subnet: podCidr }]], dataDir: '/run/cni/reference-ipam' } },
      { type: 'portmap', capabilities: { portMappings: true } },
    ],
  }, null, 2);
}

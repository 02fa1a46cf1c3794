import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { Background } from './containerd.js';
import type { Netns } from '../../helpers/netns.js';
import { REPO_ROOT } from '../../helpers/env.js';
import { peerBin } from '../../helpers/peers.js';

/**
 * A Kubernetes node's container runtime, driven the way kubelet drives it: containerd with its
 * CRI plugin on, spoken to through crictl (cri-tools). Everything is private to the test:
 *
 * - a "holder" process pins the node: it lives in the test's node network namespace and in a
 *   private mount namespace (clients/cni-mounts.sh) where the two paths containerd hard-codes
 *   are the test's directories — go-cni's result cache /var/lib/cni and the shims' sockets under
 *   /run/containerd. containerd, crictl and ctr enter both namespaces (`nsenter -t <holder>`),
 *   so containerd can be stopped and started again on the same node while its pods (shims,
 *   sandbox network namespaces mounted in that mount namespace) live on, as on a real node;
 * - containerd's root, state, sockets and config are in the test's directory; the pods'
 *   network namespaces are mounted under its state dir (`netns_mounts_under_state_dir`), never
 *   in /run/netns; NRI, tracing and the snapshotters this machine cannot use are off;
 * - runc uses cgroupfs (no systemd here, cgroup v1 hybrid); every pod names the test's own
 *   cgroup parent, which `destroy()` empties and removes.
 */

// By the repo root, not import.meta.dirname: the bench runs this file bundled elsewhere.
const MOUNTS_SCRIPT = join(REPO_ROOT, 'test', 'e2e', 'clients', 'cni-mounts.sh');
/** go-cni's result cache: libcni's default, which containerd's CRI plugin does not change. */
export const CNI_CACHE_DIR = '/var/lib/cni';
const SHIM_STATE_DIR = '/run/containerd';

/** A containerd release line as a node runs it: its binaries, config format and libcni line. */
export interface CriRuntime {
  /** `containerd-1.6` (Debian 12's package) or `containerd-2` (what kind ships, from peers). */
  name: 'containerd-1.6' | 'containerd-2';
  containerd: string;
  ctr: string;
  runc: string;
  /** Put first on containerd's PATH (where its containerd-shim-runc-v2 is). */
  pathPrefix: string | undefined;
  /** How the CNI library inside negotiates a conflist's version. */
  libcni: '1.1' | '>=1.2';
}

/** Debian 12's containerd 1.6 + runc 1.1 (libcni 1.1.x inside). */
export const CONTAINERD_16: CriRuntime = {
  name: 'containerd-1.6',
  containerd: '/usr/bin/containerd',
  ctr: '/usr/bin/ctr',
  runc: '/usr/sbin/runc',
  pathPrefix: undefined,
  libcni: '1.1',
};

/** containerd 2 + runc as kind ships them, built by scripts/peers.sh (libcni 1.3 inside). Throws with the build command when not built. */
export function containerd2(): CriRuntime {
  const containerd = peerBin('containerd', 'containerd');
  return {
    name: 'containerd-2',
    containerd,
    ctr: peerBin('containerd', 'ctr'),
    runc: peerBin('containerd', 'runc'),
    pathPrefix: join(containerd, '..'),
    libcni: '>=1.2',
  };
}

/** crictl from scripts/peers.sh (cri-tools). */
export function crictlPath(): string {
  return peerBin('cri-tools', 'crictl');
}

export interface CriNodeOptions {
  runtime: CriRuntime;
  /** The node network namespace containerd runs in. */
  node: Netns;
  /** An empty directory owned by the test. */
  dir: string;
  cniBinDir: string;
  cniConfDir: string;
  /** Image reference of the sandbox (pause) image; it must be imported before the first pod. */
  sandboxImage: string;
}

export interface PodOptions {
  name: string;
  /** Kubernetes namespace of the pod (K8S_POD_NAMESPACE). */
  namespace?: string;
  portMappings?: { containerPort: number; hostPort: number; protocol?: 'TCP' | 'UDP' }[];
}

/** What `crictl inspectp` says about a pod's network. */
export interface PodNetworkStatus {
  state: string;
  ip: string;
  additionalIps: string[];
  netnsPath: string | undefined;
}

export class CriNode {
  readonly address: string;
  /** cgroupfs parent of every pod of this node (`/` + unique name). */
  readonly cgroupParent: string;
  readonly cacheDir: string;
  private readonly holder: Background;
  private containerd: Background | undefined;
  private starts = 0;
  private readonly configFile: string;
  private readonly crictlConfig: string;
  private podSeq = 0;

  private constructor(
    readonly opts: CriNodeOptions,
    holder: Background,
    readonly snapshotter: string,
  ) {
    this.holder = holder;
    this.address = join(opts.dir, 'containerd.sock');
    this.cgroupParent = `/${opts.node.name}-pods`;
    this.cacheDir = join(opts.dir, 'cni-cache');
    this.configFile = join(opts.dir, 'config.toml');
    this.crictlConfig = join(opts.dir, 'crictl.yaml');
  }

  get holderPid(): number {
    if (this.holder.pid === undefined) throw new Error('the node holder has no pid');
    return this.holder.pid;
  }

  get runtime(): CriRuntime {
    return this.opts.runtime;
  }

  /** Pin the node (network + private mount namespace), write containerd's config, start it. */
  static async create(opts: CriNodeOptions): Promise<CriNode> {
    const { dir } = opts;
    for (const d of ['root', 'state', 'run', 'scratch', 'cni-cache', 'pods', 'opt']) mkdirSync(join(dir, d), { recursive: true });
    // overlayfs cannot stack its upper layer on an overlay root (a container CI); fall back to native.
    const fsType = (await execa('findmnt', ['-n', '-o', 'FSTYPE', '-T', dir])).stdout.trim();
    const snapshotter = fsType === 'overlay' ? 'native' : 'overlayfs';
    const holder = new Background('nsenter', [
      `--net=${opts.node.path}`,
      'sh', MOUNTS_SCRIPT, join(dir, 'scratch'),
      `${CNI_CACHE_DIR}=${join(dir, 'cni-cache')}`,
      `${SHIM_STATE_DIR}=${join(dir, 'run')}`,
      '--',
      'sleep', '2147483647',
    ]);
    const node = new CriNode(opts, holder, snapshotter);
    try {
      // nsenter, sh and unshare exec in place: the holder is ready once its pid runs sleep.
      const deadline = Date.now() + 10_000;
      while (!/\/sleep$/.test(safeReadlink(`/proc/${node.holderPid}/exe`))) {
        if (holder.exited) throw new Error(`the node holder exited: ${(await holder.ended).stderr}`);
        if (Date.now() > deadline) throw new Error('the node holder did not come up within 10 s');
        await sleep(20);
      }
      writeFileSync(node.configFile, node.containerdConfig());
      writeFileSync(node.crictlConfig, `runtime-endpoint: unix://${node.address}\nimage-endpoint: unix://${node.address}\ntimeout: 60\n`);
      await node.startContainerd();
      return node;
    } catch (e) {
      await node.destroy();
      throw e;
    }
  }

  private containerdConfig(): string {
    const { dir, cniBinDir, cniConfDir, sandboxImage, runtime } = this.opts;
    const q = JSON.stringify;
    const common = [
      `root = ${q(join(dir, 'root'))}`,
      `state = ${q(join(dir, 'state'))}`,
      // Nothing that writes outside the test dir (NRI's socket dir), nothing this machine lacks.
      'disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.blockfile", "io.containerd.snapshotter.v1.erofs", "io.containerd.differ.v1.erofs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing", "io.containerd.nri.v1.nri"]',
      '[grpc]',
      `  address = ${q(this.address)}`,
      '[ttrpc]',
      `  address = ${q(`${this.address}.ttrpc`)}`,
      '[debug]',
      '  address = ""',
      `  level = "${process.env.PODNET_CRI_DEBUG ? 'debug' : 'info'}"`,
      '[metrics]',
      '  address = ""',
      '[plugins."io.containerd.internal.v1.opt"]',
      `  path = ${q(join(dir, 'opt'))}`,
    ];
    if (runtime.name === 'containerd-1.6') {
      const cri = '[plugins."io.containerd.grpc.v1.cri"';
      return [
        'version = 2',
        ...common,
        `${cri}]`,
        `  sandbox_image = ${q(sandboxImage)}`,
        '  disable_apparmor = true',
        // This sandbox may not lower oom_score_adj (the pause container asks for -998).
        '  restrict_oom_score_adj = true',
        '  netns_mounts_under_state_dir = true',
        '  stream_server_address = "127.0.0.1"',
        '  stream_server_port = "0"',
        `${cri}.cni]`,
        `  bin_dir = ${q(cniBinDir)}`,
        `  conf_dir = ${q(cniConfDir)}`,
        '  max_conf_num = 1',
        `${cri}.containerd]`,
        `  snapshotter = ${q(this.snapshotter)}`,
        '  default_runtime_name = "runc"',
        `${cri}.containerd.runtimes.runc]`,
        '  runtime_type = "io.containerd.runc.v2"',
        `${cri}.containerd.runtimes.runc.options]`,
        `  BinaryName = ${q(runtime.runc)}`,
        '  SystemdCgroup = false',
        '[plugins."io.containerd.runtime.v1.linux"]',
        `  runtime_root = ${q(join(dir, 'runtime-v1'))}`,
        '',
      ].join('\n');
    }
    const rt = '[plugins."io.containerd.cri.v1.runtime"';
    return [
      'version = 3',
      ...common,
      '[plugins."io.containerd.cri.v1.images"]',
      `  snapshotter = ${q(this.snapshotter)}`,
      '[plugins."io.containerd.cri.v1.images".pinned_images]',
      `  sandbox = ${q(sandboxImage)}`,
      `${rt}]`,
      '  disable_apparmor = true',
      '  restrict_oom_score_adj = true',
      '  netns_mounts_under_state_dir = true',
      `${rt}.containerd]`,
      '  default_runtime_name = "runc"',
      `${rt}.containerd.runtimes.runc]`,
      '  runtime_type = "io.containerd.runc.v2"',
      `${rt}.containerd.runtimes.runc.options]`,
      `  BinaryName = ${q(runtime.runc)}`,
      '  SystemdCgroup = false',
      `${rt}.cni]`,
      `  bin_dirs = [${q(cniBinDir)}]`,
      `  conf_dir = ${q(cniConfDir)}`,
      '  max_conf_num = 1',
      '[plugins."io.containerd.grpc.v1.cri"]',
      '  stream_server_address = "127.0.0.1"',
      '  stream_server_port = "0"',
      '',
    ].join('\n');
  }

  private get logFile(): string {
    return join(this.opts.dir, `containerd-${this.starts}.log`);
  }

  /** Start containerd on the node; ready when its CRI service answers `crictl version`. */
  async startContainerd(): Promise<void> {
    if (this.containerd && !this.containerd.exited) throw new Error('containerd is already running');
    this.starts += 1;
    const env = ['env', `PATH=${[this.runtime.pathPrefix, process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'].filter(Boolean).join(':')}`];
    const proc = new Background('nsenter', ['-t', String(this.holderPid), '-m', '-n', '--', ...env, this.runtime.containerd, '--config', this.configFile], this.logFile);
    this.containerd = proc;
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (proc.exited) {
        const r = await proc.ended;
        throw new Error(`failed to start ${this.runtime.name}: it exited (${String(r.exitCode ?? r.signal)})\n${this.logTail()}`);
      }
      if (existsSync(this.address) && (await this.crictl(['version'], { reject: false, timeout: 5_000 })).exitCode === 0) return;
      if (Date.now() > deadline) throw new Error(`${this.runtime.name}: no CRI answer on ${this.address} within 60 s\n${this.logTail()}`);
      await sleep(100);
    }
  }

  /** Stop containerd (SIGTERM, as a service manager does); its shims and pods keep running. */
  async stopContainerd(): Promise<void> {
    const proc = this.containerd;
    if (!proc || proc.exited) return;
    proc.kill('SIGTERM');
    if (!(await proc.waitFor(20_000))) {
      proc.kill('SIGKILL');
      await proc.ended;
    }
  }

  async restartContainerd(): Promise<void> {
    await this.stopContainerd();
    await this.startContainerd();
  }

  /** Run a command inside the node (its network and mount namespaces). */
  inNode(file: string, args: readonly string[], opts: { reject?: boolean; timeout?: number; input?: string } = {}) {
    return execa('nsenter', ['-t', String(this.holderPid), '-m', '-n', '--', file, ...args], {
      ...(opts.input !== undefined ? { input: opts.input } : { stdin: 'ignore' as const }),
      reject: opts.reject ?? true,
      timeout: opts.timeout ?? 90_000,
    });
  }

  crictl(args: readonly string[], opts: { reject?: boolean; timeout?: number } = {}) {
    return this.inNode(crictlPath(), ['--config', this.crictlConfig, ...args], opts);
  }

  ctr(args: readonly string[], opts: { reject?: boolean; timeout?: number } = {}) {
    return this.inNode(this.runtime.ctr, ['--address', this.address, '--namespace', 'k8s.io', ...args], opts);
  }

  /** Import an OCI archive into the CRI's image store (containerd namespace k8s.io). */
  async importImage(tar: string): Promise<void> {
    await this.ctr(['images', 'import', '--snapshotter', this.snapshotter, tar], { timeout: 120_000 });
  }

  /** Write a PodSandboxConfig for crictl; returns its path. */
  podConfig(pod: PodOptions): string {
    this.podSeq += 1;
    const file = join(this.opts.dir, 'pods', `${pod.name}-${this.podSeq}.json`);
    const logDir = join(this.opts.dir, 'pods', `${pod.name}-${this.podSeq}-logs`);
    mkdirSync(logDir, { recursive: true });
    writeFileSync(
      file,
      JSON.stringify({
        metadata: { name: pod.name, namespace: pod.namespace ?? 'pcr', uid: `${pod.name}-uid-${this.podSeq}`, attempt: 0 },
        hostname: pod.name,
        log_directory: logDir,
        linux: { cgroup_parent: this.cgroupParent, security_context: { namespace_options: { network: 0, pid: 0, ipc: 0 } } },
        port_mappings: (pod.portMappings ?? []).map((m) => ({ protocol: m.protocol === 'UDP' ? 1 : 0, container_port: m.containerPort, host_port: m.hostPort })),
      }),
    );
    return file;
  }

  /** RunPodSandbox; returns the sandbox ID. */
  async runPod(pod: PodOptions): Promise<string> {
    const r = await this.crictl(['runp', this.podConfig(pod)]);
    return r.stdout.trim();
  }

  /** CreateContainer + StartContainer in a pod; returns the container ID. */
  async runContainer(podId: string, podConfigFile: string, name: string, image: string, command: readonly string[]): Promise<string> {
    const file = join(this.opts.dir, 'pods', `${podId.slice(0, 12)}-${name}.json`);
    writeFileSync(file, JSON.stringify({ metadata: { name }, image: { image }, command, log_path: `${name}.log`, linux: {} }));
    const id = (await this.crictl(['create', podId, file, podConfigFile])).stdout.trim();
    await this.crictl(['start', id]);
    return id;
  }

  /** ExecSync in a container (no streaming server needed); resolves whatever the exit code. */
  execSync(containerId: string, cmd: readonly string[], timeoutS = 20) {
    return this.crictl(['exec', '--sync', '--timeout', String(timeoutS), containerId, ...cmd], { reject: false, timeout: (timeoutS + 30) * 1000 });
  }

  /** PodSandboxStatus as crictl inspectp reports it. */
  async podStatus(podId: string): Promise<PodNetworkStatus> {
    const r = await this.crictl(['inspectp', '--output', 'json', podId]);
    const o = JSON.parse(r.stdout) as {
      status: { state: string; network?: { ip?: string; additionalIps?: { ip: string }[] } };
      info?: { runtimeSpec?: { linux?: { namespaces?: { type: string; path?: string }[] } } };
    };
    const netns = o.info?.runtimeSpec?.linux?.namespaces?.find((n) => n.type === 'network')?.path;
    return {
      state: o.status.state,
      ip: o.status.network?.ip ?? '',
      additionalIps: (o.status.network?.additionalIps ?? []).map((a) => a.ip),
      netnsPath: netns,
    };
  }

  /** IDs of every pod sandbox the runtime knows. */
  async pods(): Promise<string[]> {
    const r = await this.crictl(['pods', '--quiet']);
    return r.stdout.split('\n').map((l) => l.trim()).filter(Boolean);
  }

  /** The runtime's conditions (`crictl info`: the CRI Status call, which runs CNI STATUS on containerd 2). */
  async conditions(): Promise<Map<string, { status: boolean; reason: string; message: string }>> {
    const r = await this.crictl(['info']);
    const o = JSON.parse(r.stdout) as { status: { conditions: { type: string; status: boolean; reason?: string; message?: string }[] } };
    return new Map(o.status.conditions.map((c) => [c.type, { status: c.status, reason: c.reason ?? '', message: c.message ?? '' }]));
  }

  logTail(lines = 60): string {
    const out: string[] = [];
    for (let i = 1; i <= this.starts; i++) {
      try {
        out.push(`--- ${this.runtime.name} log #${i} ---`, ...readFileSync(join(this.opts.dir, `containerd-${i}.log`), 'utf8').trimEnd().split('\n').slice(-lines));
      } catch {
        // no log yet
      }
    }
    return out.join('\n');
  }

  /**
   * Remove what the node made, in the order a node would: every pod through CRI (StopPodSandbox
   * + RemovePodSandbox, so CNI DEL runs), containerd, the shims started for our socket, every
   * process still in our cgroup parent, the cgroup parent, the holder (with it the mount namespace
   * and whatever was mounted in it).
   */
  async destroy(): Promise<void> {
    if (this.containerd && !this.containerd.exited) {
      for (const id of await this.pods().catch(() => [] as string[])) {
        await this.crictl(['stopp', id], { reject: false, timeout: 60_000 });
        await this.crictl(['rmp', '--force', id], { reject: false, timeout: 60_000 });
      }
      await this.stopContainerd();
    }
    for (const pid of processesMentioning(this.address)) killQuietly(pid);
    await removeCgroupTree(this.cgroupParent);
    this.holder.kill('SIGKILL');
    await this.holder.ended;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function safeReadlink(p: string): string {
  try {
    return readlinkSync(p);
  } catch {
    return '';
  }
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/** PIDs whose command line contains `needle` (our shims carry our unique socket path). */
function processesMentioning(needle: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(needle)) pids.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return pids;
}

/** The cgroup v1 hierarchies (and the v2 one of a hybrid), where a cgroupfs parent may exist. */
function cgroupRoots(): string[] {
  const base = '/sys/fs/cgroup';
  const roots = [base];
  try {
    for (const d of readdirSync(base, { withFileTypes: true })) if (d.isDirectory()) roots.push(join(base, d.name));
  } catch {
    // no cgroupfs
  }
  return roots;
}

/** Every directory of a cgroup parent in every hierarchy (deepest first). */
export function cgroupDirs(parent: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of safeDirs(d)) walk(join(d, e));
    out.push(d);
  };
  for (const root of cgroupRoots()) {
    const dir = join(root, parent);
    if (existsSync(join(dir, 'cgroup.procs'))) walk(dir);
  }
  return out;
}

/** Kill every process left in the cgroup parent's tree, then remove its directories. */
async function removeCgroupTree(parent: string): Promise<void> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const dirs = cgroupDirs(parent);
    if (dirs.length === 0) return;
    for (const d of dirs) {
      for (const pid of readFileSync(join(d, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) killQuietly(Number(pid));
    }
    for (const d of dirs) {
      try {
        rmdirSync(d);
      } catch {
        // still busy: processes are dying
      }
    }
    await sleep(100);
  }
  throw new Error(`could not remove cgroup ${parent}: ${cgroupDirs(parent).join(', ')}`);
}

function safeDirs(dir: string): string[] {
  try {
    return readdirSync(dir, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name);
  } catch {
    return [];
  }
}

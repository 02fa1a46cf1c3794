import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import type { Netns } from '../../helpers/netns.js';

const MOUNTS_SCRIPT = join(import.meta.dirname, 'cni-mounts.sh');

/** The paths `ctr run --cni` (containerd 1.6, go-cni defaults) and containerd's shims hard-code. */
export const CTR_CNI_CONF_DIR = '/etc/cni/net.d';
export const CTR_CNI_BIN_DIR = '/opt/cni/bin';
export const CTR_CNI_CACHE_DIR = '/var/lib/cni';
const SHIM_STATE_DIR = '/run/containerd';

export interface PrivateContainerdOptions {
  /** The "node" network namespace containerd and every ctr command run in. */
  node: Netns;
  /** An empty directory owned by the test: containerd's root, state, socket and config go here. */
  dir: string;
  /** Shown to ctr as /etc/cni/net.d. */
  cniConfDir: string;
  /** Shown to ctr as /opt/cni/bin. */
  cniBinDir: string;
  /** Shown to ctr as /var/lib/cni (go-cni's result cache). */
  cniCacheDir: string;
  /** containerd namespace for the test's images and containers. */
  namespace: string;
}

/**
 * A containerd of the test's own: own root, state, socket and config, running inside the test's
 * node network namespace and a private mount namespace in which the CNI paths ctr hard-codes
 * (and /run/containerd, where shims put their sockets) are bind mounts of the test's directories.
 * Nothing in the host's /etc/cni, /opt/cni, /var/lib/cni or /run/containerd is read or written.
 * Every ctr command enters the same network and mount namespaces (`nsenter -t <containerd pid>`).
 */
export class PrivateContainerd {
  readonly address: string;
  readonly namespace: string;
  readonly snapshotter: string;
  private readonly proc: Background;
  private readonly log: string;

  private constructor(opts: PrivateContainerdOptions, proc: Background, address: string, snapshotter: string, log: string) {
    this.proc = proc;
    this.address = address;
    this.namespace = opts.namespace;
    this.snapshotter = snapshotter;
    this.log = log;
  }

  get pid(): number {
    if (this.proc.pid === undefined) throw new Error('containerd has no pid');
    return this.proc.pid;
  }

  static async start(opts: PrivateContainerdOptions): Promise<PrivateContainerd> {
    const { dir } = opts;
    for (const d of ['root', 'state', 'run', 'scratch']) mkdirSync(join(dir, d), { recursive: true });
    const address = join(dir, 'containerd.sock');
    // overlayfs cannot stack its upper layer on an overlay root (a container CI); fall back to native.
    const fsType = (await execa('findmnt', ['-n', '-o', 'FSTYPE', '-T', dir])).stdout.trim();
    const snapshotter = fsType === 'overlay' ? 'native' : 'overlayfs';
    const config = join(dir, 'config.toml');
    writeFileSync(
      config,
      [
        'version = 2',
        `root = ${JSON.stringify(join(dir, 'root'))}`,
        `state = ${JSON.stringify(join(dir, 'state'))}`,
        // Only what ctr run needs: no CRI (it would watch /etc/cni/net.d itself), no other snapshotters.
        'disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]',
        '[grpc]',
        `  address = ${JSON.stringify(address)}`,
        '[ttrpc]',
        `  address = ${JSON.stringify(`${address}.ttrpc`)}`,
        '[debug]',
        '  address = ""',
        '  level = "info"',
        '[metrics]',
        '  address = ""',
        '[plugins."io.containerd.internal.v1.opt"]',
        `  path = ${JSON.stringify(join(dir, 'opt'))}`,
        '[plugins."io.containerd.runtime.v1.linux"]',
        `  runtime_root = ${JSON.stringify(join(dir, 'runtime-v1'))}`,
        '',
      ].join('\n'),
    );
    const log = join(dir, 'containerd.log');
    const proc = new Background(
      'nsenter',
      [
        `--net=${opts.node.path}`,
        'sh', MOUNTS_SCRIPT, join(dir, 'scratch'),
        `${CTR_CNI_CONF_DIR}=${opts.cniConfDir}`,
        `${CTR_CNI_BIN_DIR}=${opts.cniBinDir}`,
        `${CTR_CNI_CACHE_DIR}=${opts.cniCacheDir}`,
        `${SHIM_STATE_DIR}=${join(dir, 'run')}`,
        '--',
        'containerd', '--config', config,
      ],
      log,
    );
    const cd = new PrivateContainerd(opts, proc, address, snapshotter, log);
    // Ready when ctr gets an answer; give up early if containerd died.
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (proc.exited) {
        const r = await proc.ended;
        throw new Error(`failed to start containerd: it exited (${String(r.exitCode ?? r.signal)})\n${cd.logTail()}`);
      }
      if (existsSync(address)) {
        const r = await cd.ctr(['version'], { reject: false, timeout: 5_000 });
        if (r.exitCode === 0) return cd;
      }
      if (Date.now() > deadline) {
        await cd.stop();
        throw new Error(`failed to start containerd: no answer on ${address} within 30 s\n${cd.logTail()}`);
      }
      await sleep(100);
    }
  }

  /** The argv prefix that runs ctr inside containerd's network and mount namespaces. */
  ctrArgv(args: readonly string[]): [string, string[]] {
    return ['nsenter', ['-t', String(this.pid), '-m', '-n', 'ctr', '--address', this.address, '--namespace', this.namespace, ...args]];
  }

  /** Run ctr and wait for it. */
  ctr(args: readonly string[], opts: { reject?: boolean; timeout?: number } = {}) {
    const [file, argv] = this.ctrArgv(args);
    return execa(file, argv, { stdin: 'ignore', reject: opts.reject ?? true, timeout: opts.timeout ?? 60_000 });
  }

  /** Start ctr without waiting (a foreground `ctr run` lives as long as its container). */
  spawnCtr(args: readonly string[]): Background {
    const [file, argv] = this.ctrArgv(args);
    return new Background(file, argv);
  }

  /** Run a command in a running container; resolves with its result, whatever the exit code. */
  exec(container: string, execId: string, cmd: readonly string[], timeout = 30_000) {
    return this.ctr(['task', 'exec', '--exec-id', execId, container, ...cmd], { reject: false, timeout });
  }

  /** IDs of the containers in the test's containerd namespace. */
  async containers(): Promise<string[]> {
    const r = await this.ctr(['containers', 'list', '--quiet']);
    return r.stdout.split('\n').map((l) => l.trim()).filter(Boolean);
  }

  /** `ctr task list` as id → status. */
  async tasks(): Promise<Map<string, string>> {
    const r = await this.ctr(['task', 'list']);
    const out = new Map<string, string>();
    for (const line of r.stdout.split('\n').slice(1)) {
      const [id, , status] = line.trim().split(/\s+/);
      if (id && status) out.set(id, status);
    }
    return out;
  }

  logTail(lines = 40): string {
    try {
      return readFileSync(this.log, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '(no containerd log)';
    }
  }

  /**
   * Remove every container left in the namespace (kill, delete task, delete container with its
   * snapshot), stop containerd, then end the shims it started (found by our socket path in their
   * command line, killed by pid) and remove the cgroups runc left for the namespace.
   */
  async stop(): Promise<void> {
    if (!this.proc.exited && this.proc.pid !== undefined) {
      const ids = await this.containers().catch(() => [] as string[]);
      for (const id of ids) {
        await this.ctr(['task', 'kill', '--signal', 'SIGKILL', id], { reject: false, timeout: 10_000 });
        await this.ctr(['task', 'delete', '--force', id], { reject: false, timeout: 10_000 });
        await this.ctr(['containers', 'delete', id], { reject: false, timeout: 10_000 });
      }
      for (const img of (await this.ctr(['images', 'list', '--quiet'], { reject: false })).stdout.split('\n').filter(Boolean)) {
        await this.ctr(['images', 'remove', '--sync', img], { reject: false });
      }
      this.proc.kill('SIGTERM');
      if (!(await this.proc.waitFor(10_000))) {
        this.proc.kill('SIGKILL');
        await this.proc.ended;
      }
    }
    for (const pid of processesMentioning(this.address)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    removeNamespaceCgroups(this.namespace);
  }
}

/** How a background process ended. */
export interface Ended {
  exitCode: number | undefined;
  signal: string | undefined;
  stdout: string;
  stderr: string;
}

/** A process the tests start and do not wait for (containerd, a foreground `ctr run`). */
export class Background {
  readonly pid: number | undefined;
  /** Settles when the process has ended, never rejects. */
  readonly ended: Promise<Ended>;
  private finished = false;
  private readonly signal: (sig: NodeJS.Signals) => void;

  /** Output goes to `log` when given, else it is collected into `ended`. */
  constructor(file: string, args: readonly string[], log?: string) {
    const child = log
      ? execa(file, args, { stdin: 'ignore', stdout: { file: log }, stderr: { file: log }, reject: false })
      : execa(file, args, { stdin: 'ignore', reject: false });
    this.pid = child.pid;
    this.signal = (sig) => {
      child.kill(sig);
    };
    this.ended = child.then((r) => {
      this.finished = true;
      return { exitCode: r.exitCode, signal: r.signal, stdout: typeof r.stdout === 'string' ? r.stdout : '', stderr: typeof r.stderr === 'string' ? r.stderr : '' };
    });
  }

  get exited(): boolean {
    return this.finished;
  }

  kill(sig: NodeJS.Signals = 'SIGTERM'): void {
    if (!this.finished) this.signal(sig);
  }

  /** Wait at most `ms`; true when the process ended in time. */
  async waitFor(ms: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const ended = await Promise.race([this.ended.then(() => true), new Promise<false>((r) => (timer = setTimeout(() => r(false), ms)))]);
    clearTimeout(timer);
    return ended;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** PIDs whose command line contains `needle` (our shims carry our unique socket path). */
function processesMentioning(needle: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (cmdline.includes(needle)) pids.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return pids;
}

/** runc creates /sys/fs/cgroup/<controller>/<namespace>/<id> (ctr's default path) and removes only <id>. */
function removeNamespaceCgroups(namespace: string): void {
  const roots = ['/sys/fs/cgroup', ...safeList('/sys/fs/cgroup').map((c) => join('/sys/fs/cgroup', c))];
  for (const root of roots) {
    const dir = join(root, namespace);
    if (!existsSync(dir)) continue;
    // Children first (emptied by runc on delete); rmdir fails harmlessly on a cgroup still in use.
    for (const child of safeList(dir)) {
      try {
        rmdirSync(join(dir, child));
      } catch {
        // not a cgroup dir, or busy
      }
    }
    try {
      rmdirSync(dir);
    } catch {
      // busy
    }
  }
}

function safeList(dir: string): string[] {
  try {
    return readdirSync(dir, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name);
  } catch {
    return [];
  }
}

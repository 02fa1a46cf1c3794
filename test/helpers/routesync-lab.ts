import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import * as esbuild from 'esbuild';
import { execa } from 'execa';
import { type FakeNode, makeNode } from './fake-apiserver.js';
import { REPO_ROOT } from './env.js';
export { eventually } from './wait.js';
import { FABRIC_V4, FABRIC_V6, type Fabric, type FabricNode, createFabric, destroyFabric } from './fabric.js';
import { FakeApiServerProcess } from './fake-apiserver-process.js';
import { Netns } from './netns.js';

/**
 * A kind-like lab for podnet-routesync (root only): the namespace fabric of test/helpers/fabric.ts
 * (nodes on 172.18.0.0/16 and fc00:f853:ccd:e793::/64, podCIDRs 10.244.i.0/24 and
 * fd00:10:244:i::/64) plus the fake API server listening on 172.18.0.1:6443 inside the fabric
 * namespace. destroy() removes every namespace (and with them the veths) and the temp dir.
 */
export { FABRIC_V4, FABRIC_V6 };
export type LabNode = FabricNode;

export class RoutesyncLab {
  readonly daemons = new Set<DaemonHandle>();

  private constructor(
    private readonly net: Fabric,
    readonly api: FakeApiServerProcess,
    readonly dir: string,
    readonly kubeconfig: string,
  ) {}

  static async create(opts: { nodes: number; prefix?: string; mtu?: number; goneAs?: 'event' | 'status' }): Promise<RoutesyncLab> {
    const prefix = opts.prefix ?? 'prs';
    const fabric = await createFabric({ nodes: opts.nodes, prefix, ...(opts.mtu ? { mtu: opts.mtu } : {}) });
    const dir = mkdtempSync(join(tmpdir(), `${prefix}-lab-`));
    try {
      const api = await FakeApiServerProcess.spawn({ netns: fabric.ns.name, host: FABRIC_V4, port: 6443, ...(opts.goneAs ? { goneAs: opts.goneAs } : {}) });
      const kubeconfig = join(dir, 'kubeconfig');
      writeFileSync(kubeconfig, api.kubeconfig());
      return new RoutesyncLab(fabric, api, dir, kubeconfig);
    } catch (e) {
      await destroyFabric(fabric);
      rmSync(dir, { recursive: true, force: true });
      throw e;
    }
  }

  get nodes(): LabNode[] {
    return this.net.nodes;
  }

  get fabric(): Netns {
    return this.net.ns;
  }

  /** The Node object of lab node i (single or dual stack). */
  nodeObject(i: number, opts: { dual?: boolean } = {}): FakeNode {
    const n = this.nodes[i] as LabNode;
    return makeNode(n.name, {
      podCIDRs: opts.dual ? [n.cidr4, n.cidr6] : [n.cidr4],
      ips: opts.dual ? [n.ip4, n.ip6] : [n.ip4],
      created: `2024-01-0${i + 1}T00:00:00Z`,
    });
  }

  /** Start the daemon in node i's namespace. */
  async daemon(i: number, args: string[], env?: Record<string, string | undefined>): Promise<DaemonHandle> {
    const n = this.nodes[i] as LabNode;
    const h = await DaemonHandle.spawn(n.ns.name, ['--node-name', n.name, ...args], env);
    this.daemons.add(h);
    return h;
  }

  /** `ip -N -j route show proto 112` (both families) in node i: "dst via gw" strings. */
  async ourRoutes(i: number, proto = 112): Promise<string[]> {
    const ns = (this.nodes[i] as LabNode).ns;
    const out: string[] = [];
    for (const fam of ['-4', '-6']) {
      const r = await ns.ipJson<{ dst: string; gateway?: string }[]>(['-N', fam, 'route', 'show', 'table', 'main', 'proto', String(proto)]);
      for (const x of r) out.push(`${x.dst} via ${x.gateway ?? '-'}`);
    }
    return out.sort();
  }

  async destroy(): Promise<void> {
    for (const d of this.daemons) await d.kill();
    await this.api.close().catch(() => undefined);
    await destroyFabric(this.net);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

let daemonCmd: Promise<string[]> | undefined;

/**
 * How to run podnet-routesync: the built executable dist/bin/podnet-routesync when it exists
 * (what `npm test` builds first), otherwise main.ts bundled like scripts/build.mjs does (CJS) and
 * run on this Node.
 */
export function routesyncCommand(): Promise<string[]> {
  daemonCmd ??= (async () => {
    const root = REPO_ROOT;
    const exe = join(root, 'dist', 'bin', 'podnet-routesync');
    if (existsSync(exe) && !process.env.PODNET_TEST_BUNDLE) return [exe];
    const dir = mkdtempSync(join(tmpdir(), 'prs-daemon-'));
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    const outfile = join(dir, 'podnet-routesync.cjs');
    await esbuild.build({ entryPoints: [join(root, 'routesync/main.ts')], outfile, bundle: true, platform: 'node', format: 'cjs', target: 'node22', logLevel: 'warning' });
    return [process.execPath, outfile];
  })();
  return daemonCmd;
}

export type LogLine = Record<string, unknown> & { msg: string; level: string };

/** A running daemon in a namespace: its JSON log lines, waiters, signals. */
export class DaemonHandle {
  readonly logs: LogLine[] = [];
  readonly stderrText: string[] = [];
  private readonly listeners = new Set<() => void>();
  readonly exited: Promise<{ code: number | null; signal: string | null }>;

  private constructor(readonly child: ChildProcess) {
    const rl = createInterface({ input: child.stderr as NodeJS.ReadableStream });
    rl.on('line', (line) => {
      this.stderrText.push(line);
      try {
        this.logs.push({ ...(JSON.parse(line) as LogLine), at: Date.now() });
      } catch {
        // not JSON: kept in stderrText
      }
      for (const l of this.listeners) l();
    });
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  }

  static async spawn(netns: string, args: string[], env?: Record<string, string | undefined>): Promise<DaemonHandle> {
    const cmd = await routesyncCommand();
    // `ip netns exec` execs the command in place: the child's pid is the daemon's.
    const child = spawn('ip', ['netns', 'exec', netns, ...cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    return new DaemonHandle(child);
  }

  get pid(): number {
    return this.child.pid as number;
  }

  /** Wait for a log line matching `pred` (already seen ones count). */
  waitLog(pred: (l: LogLine) => boolean, ms = 15_000, what = 'log line'): Promise<LogLine> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const hit = this.logs.find(pred);
        if (hit) {
          this.listeners.delete(check);
          clearTimeout(timer);
          resolve(hit);
        }
      };
      const timer = setTimeout(() => {
        this.listeners.delete(check);
        reject(new Error(`timed out waiting for ${what}; last log lines:\n${this.stderrText.slice(-15).join('\n')}`));
      }, ms);
      this.listeners.add(check);
      check();
    });
  }

  async kill(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGKILL');
    await this.exited;
  }
}

/** GET a URL from inside a namespace (where the daemon's metrics server listens). */
export async function httpGetIn(ns: Netns, url: string): Promise<{ code: number; body: string }> {
  const script = `fetch(${JSON.stringify(url)}).then(async r => { process.stdout.write(JSON.stringify({ code: r.status, body: await r.text() })) }, e => { process.stdout.write(JSON.stringify({ code: 0, body: String(e) })) })`;
  const r = await execa('ip', ['netns', 'exec', ns.name, process.execPath, '-e', script], { timeout: 20_000 });
  return JSON.parse(r.stdout) as { code: number; body: string };
}

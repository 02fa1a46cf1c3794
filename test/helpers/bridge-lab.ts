import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type PluginRun, runPlugin } from './cni.js';
import { makeCniBinDir } from './cni-bin.js';
import { CniRuntime } from './cni-runtime.js';
import { Netns } from './netns.js';

/**
 * A node for bridge tests: a "node" network namespace, pod namespaces, a CNI_PATH holding podnet
 * (as podnet-bridge and podnet-host-local) and the reference plugins, and a host-local data dir.
 * Everything is removed by `destroy()`.
 */
export class BridgeLab {
  readonly cniPath: string;
  readonly dataDir: string;
  private readonly pods: Netns[] = [];
  private counter = 0;

  private constructor(
    readonly node: Netns,
    private readonly dir: string,
    private readonly prefix: string,
  ) {
    this.cniPath = join(dir, 'bin');
    this.dataDir = join(dir, 'ipam');
  }

  /** `prefix` names the namespaces (`<prefix>n…`, `<prefix>p…`) and the temp dir: one per test file. */
  static async create(prefix = 'pbr'): Promise<BridgeLab> {
    const node = await Netns.create(`${prefix}n`);
    const dir = mkdtempSync(join(tmpdir(), `${prefix}-lab-`));
    const lab = new BridgeLab(node, dir, prefix);
    makeCniBinDir(lab.cniPath);
    return lab;
  }

  async pod(): Promise<Netns> {
    const ns = await Netns.create(`${this.prefix}p`);
    this.pods.push(ns);
    return ns;
  }

  nextId(): string {
    this.counter += 1;
    return `${this.prefix}c${process.pid.toString(36)}x${this.counter}`;
  }

  /** Run a plugin of the lab's CNI_PATH inside the node namespace (`exe`: another executable of
   * it, e.g. the test build's, still with the lab's CNI_PATH). */
  run(
    plugin: string,
    command: string,
    conf: unknown,
    o: { id?: string; netns?: string; ifName?: string; args?: string; env?: Record<string, string | undefined>; exe?: string } = {},
  ): Promise<PluginRun> {
    return runPlugin(
      o.exe ?? join(this.cniPath, plugin),
      {
        command,
        ...(o.id !== undefined ? { containerId: o.id } : {}),
        ...(o.netns !== undefined ? { netns: o.netns } : {}),
        ifName: o.ifName ?? 'eth0',
        path: this.cniPath,
        ...(o.args !== undefined ? { args: o.args } : {}),
        ...(o.env ? { env: o.env } : {}),
        node: this.node,
      },
      conf,
    );
  }

  /** A runtime (libcni-like conflist handling) whose plugins run in this node with this CNI_PATH. */
  runtime(): CniRuntime {
    return new CniRuntime({ binDirs: [this.cniPath], cacheDir: join(this.dir, 'cache'), node: this.node.name });
  }

  /** Links of the node namespace, `ip -j -d link`. */
  links(): Promise<Record<string, unknown>[]> {
    return this.node.ipJson(['-d', 'link', 'show']);
  }

  async nftRuleset(): Promise<Record<string, unknown>[]> {
    const r = await this.node.exec('nft', ['-j', 'list', 'ruleset']);
    return (JSON.parse(r.stdout) as { nftables: Record<string, unknown>[] }).nftables;
  }

  async nftRules(): Promise<Record<string, unknown>[]> {
    return (await this.nftRuleset()).filter((x) => 'rule' in x).map((x) => x.rule as Record<string, unknown>);
  }

  async iptablesSave(family: 4 | 6 = 4): Promise<string> {
    return (await this.node.exec(family === 4 ? 'iptables-save' : 'ip6tables-save', ['-t', 'nat'])).stdout;
  }

  async sysctl(key: string, ns: Netns = this.node): Promise<string> {
    return (await ns.exec('cat', [`/proc/sys/${key}`])).stdout.trim();
  }

  async destroy(): Promise<void> {
    await Promise.all(this.pods.map((p) => p.destroy()));
    await this.node.destroy();
    rmSync(this.dir, { recursive: true, force: true });
  }
}


/** A bridge + host-local config; `ipam` fields override the defaults. */
export function bridgeConf(lab: BridgeLab, o: { version?: string; name?: string; bridge?: string; ipamType?: string; ranges?: unknown; extra?: Record<string, unknown>; ipamExtra?: Record<string, unknown> } = {}): Record<string, unknown> {
  return {
    cniVersion: o.version ?? '1.0.0',
    name: o.name ?? 'pbrnet',
    type: 'podnet-bridge',
    bridge: o.bridge ?? 'pbrbr0',
    ...o.extra,
    ipam: {
      type: o.ipamType ?? 'podnet-host-local',
      dataDir: lab.dataDir,
      ranges: o.ranges ?? [[{ subnet: '10.88.0.0/24' }]],
      ...o.ipamExtra,
    },
  };
}

/** `ip -j -d addr show dev NAME` in `ns`; throws when the link is missing. */
export async function linkInfo(ns: Netns, name: string): Promise<Record<string, unknown>> {
  const [l] = await ns.ipJson<Record<string, unknown>[]>(['-d', 'addr', 'show', 'dev', name]);
  if (!l) throw new Error(`no link ${name}`);
  return l;
}

/** A link's addresses other than link-local ones, as CIDRs. */
export const globalAddrs = (l: Record<string, unknown>): string[] =>
  ((l.addr_info as Record<string, unknown>[] | undefined) ?? []).filter((a) => a.scope !== 'link').map((a) => `${String(a.local)}/${String(a.prefixlen)}`);

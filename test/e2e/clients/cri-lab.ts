import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { CriNode, type CriRuntime } from './cri.js';
import { buildBusyboxImage, type BuiltImage } from './image.js';
import { DEFAULT_TEMPLATE } from '../../../routesync/conflist.js';
import { DIST_BIN, debianCniBin } from '../../helpers/env.js';
import { Netns } from '../../helpers/netns.js';
import { peerDir } from '../../helpers/peers.js';

/**
 * One Kubernetes-like node for the CRI tier and the CRI bench: a node network namespace with an
 * uplink address, a CNI bin dir as a node has it (podnet's plugins plus the stock portmap and
 * loopback of one release), the conflist podnet-routesync writes for this node (`--once`, from a
 * nodes file, asking `--cni-bin-dir` which versions the chain speaks), and a private containerd
 * with its CRI plugin on (clients/cri.ts), the busybox and pause images imported.
 */

export const NODE_NAME = 'pcr-node';
export const NODE_IP = '172.18.0.2';
export const POD_CIDR = '10.244.0.0/24';
export const NETWORK = 'podnet';
export const BRIDGE = 'podnet0';
export const BUSYBOX_REF = 'pcr.local/busybox:1';
export const PAUSE_REF = 'pcr.local/pause:1';

/** Where the stock plugins come from: Debian 12's package (CNI ≤ 1.0.0) or upstream v1.10 (1.1.0). */
export type StockPlugins = 'debian' | 'v1.10';

export function stockBinDir(stock: StockPlugins): string {
  return stock === 'debian' ? debianCniBin() : join(peerDir('cni-plugins'), 'bin');
}

export interface CriLabOptions {
  runtime: CriRuntime;
  stock: StockPlugins;
  /**
   * `podnet`: podnet-bridge + podnet-host-local in the conflist routesync writes. `reference`: the
   * same conflist with the reference bridge + host-local of the stock release (the bench's yardstick).
   */
  plugins?: 'podnet' | 'reference';
  /** Record every call of the main plugin (env + stdin + exit code) under `<dir>/calls`. */
  record?: boolean;
  /** Replace the conflist routesync wrote (a test of what a wrong one does). */
  conflist?: (written: Record<string, unknown>) => Record<string, unknown>;
  prefix?: string;
}

/** One CNI invocation of the main plugin as the runtime made it. */
export interface CniCall {
  command: string;
  containerId: string;
  netns: string;
  ifName: string;
  args: Map<string, string>;
  cniVersion: string;
  hasPrevResult: boolean;
  rc: number;
  stdout: string;
}

export class CriLab {
  private constructor(
    readonly dir: string,
    readonly node: Netns,
    readonly cri: CriNode,
    readonly binDir: string,
    readonly confDir: string,
    readonly dataDir: string,
    readonly conflist: Record<string, unknown>,
    readonly mainType: string,
  ) {}

  static async create(o: CriLabOptions): Promise<CriLab> {
    const prefix = o.prefix ?? 'pcr';
    const dir = mkdtempSync(`/tmp/${prefix}-cri-`);
    const node = await Netns.create(prefix);
    try {
      // The node's uplink with the address the nodes file names (a veth whose peer stays in the
      // node: this kernel has no dummy links, and nothing outside the node is needed).
      await node.exec('ip', ['link', 'add', 'pcr-up', 'type', 'veth', 'peer', 'name', 'pcr-up-peer']);
      await node.exec('ip', ['addr', 'add', `${NODE_IP}/16`, 'dev', 'pcr-up']);
      for (const l of ['pcr-up', 'pcr-up-peer']) await node.exec('ip', ['link', 'set', l, 'up']);

      const flavour = o.plugins ?? 'podnet';
      const binDir = join(dir, 'bin');
      const stock = stockBinDir(o.stock);
      mkdirSync(binDir);
      for (const p of ['portmap', 'loopback']) symlinkSync(join(stock, p), join(binDir, p));
      const mainType = flavour === 'podnet' ? 'podnet-bridge' : 'bridge';
      const ipamType = flavour === 'podnet' ? 'podnet-host-local' : 'host-local';
      const mainTarget = flavour === 'podnet' ? join(DIST_BIN, 'podnet') : join(stock, 'bridge');
      symlinkSync(flavour === 'podnet' ? join(DIST_BIN, 'podnet') : join(stock, 'host-local'), join(binDir, ipamType));
      if (o.record) {
        const real = join(dir, 'real');
        mkdirSync(real);
        symlinkSync(mainTarget, join(real, mainType));
        mkdirSync(join(dir, 'calls'));
        writeRecorder(join(binDir, mainType), join(real, mainType), join(dir, 'calls'));
      } else {
        symlinkSync(mainTarget, join(binDir, mainType));
      }
      for (const f of [join(DIST_BIN, 'podnet'), join(DIST_BIN, 'podnet-routesync')]) {
        if (!existsSync(f)) throw new Error(`missing ${f}: run npm run build`);
      }

      // podnet-routesync --once writes the node's conflist, as the DaemonSet does at start.
      const dataDir = join(dir, 'ipam');
      const template = structuredClone(DEFAULT_TEMPLATE) as unknown as { plugins: Record<string, unknown>[] };
      const bridge = template.plugins.find((p) => p.type === 'podnet-bridge')!;
      (bridge.ipam as Record<string, unknown>).dataDir = dataDir;
      const templateFile = join(dir, 'template.json');
      writeFileSync(templateFile, JSON.stringify(template));
      const nodesFile = join(dir, 'nodes.json');
      writeFileSync(
        nodesFile,
        JSON.stringify({
          apiVersion: 'v1',
          kind: 'NodeList',
          items: [
            {
              apiVersion: 'v1',
              kind: 'Node',
              metadata: { name: NODE_NAME },
              spec: { podCIDR: POD_CIDR, podCIDRs: [POD_CIDR] },
              status: { addresses: [{ type: 'InternalIP', address: NODE_IP }] },
            },
          ],
        }),
      );
      const confDir = join(dir, 'net.d');
      const rs = await node.exec(
        join(DIST_BIN, 'podnet-routesync'),
        ['--once', '--node-name', NODE_NAME, '--nodes-file', nodesFile, '--cni-conf-dir', confDir, '--cni-bin-dir', binDir, '--conflist-template', templateFile, '--metrics-addr='],
        { reject: false },
      );
      const confFile = join(confDir, '10-podnet.conflist');
      if (rs.exitCode !== 0 || !existsSync(confFile)) throw new Error(`podnet-routesync --once failed (${rs.exitCode}): ${rs.stderr}`);
      let conflist = JSON.parse(readFileSync(confFile, 'utf8')) as Record<string, unknown>;
      if (flavour === 'reference') conflist = referenceConflist(conflist);
      if (o.conflist) conflist = o.conflist(conflist);
      if (flavour === 'reference' || o.conflist) writeFileSync(confFile, JSON.stringify(conflist, null, 2));

      const images = join(dir, 'images');
      const busybox = await buildImage(join(images, 'busybox'), BUSYBOX_REF, ['/bin/sh']);
      // The sandbox image: one process that never exits (pause's role; CRI stops it with SIGKILL).
      const pause = await buildImage(join(images, 'pause'), PAUSE_REF, ['/bin/sleep', '2147483647']);
      const cri = await CriNode.create({ runtime: o.runtime, node, dir: join(dir, 'node'), cniBinDir: binDir, cniConfDir: confDir, sandboxImage: PAUSE_REF });
      const lab = new CriLab(dir, node, cri, binDir, confDir, dataDir, conflist, mainType);
      try {
        await cri.importImage(busybox.tar);
        await cri.importImage(pause.tar);
      } catch (e) {
        await lab.destroy();
        throw e;
      }
      return lab;
    } catch (e) {
      await node.destroy();
      rmSync(dir, { recursive: true, force: true });
      throw e;
    }
  }

  /** The recorded calls of the main plugin, oldest first (needs `record`). */
  calls(): CniCall[] {
    const dir = join(this.dir, 'calls');
    const ids = [...new Set(readdirSync(dir).filter((f) => f.endsWith('.rc')).map((f) => f.slice(0, -3)))].sort();
    return ids.map((id) => {
      const env = new Map(
        readFileSync(join(dir, `${id}.env`), 'utf8')
          .split('\n')
          .filter(Boolean)
          .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)] as [string, string]),
      );
      let conf: { cniVersion?: string; prevResult?: unknown } = {};
      try {
        conf = JSON.parse(readFileSync(join(dir, `${id}.stdin`), 'utf8')) as typeof conf;
      } catch {
        // VERSION may come with an empty stdin
      }
      return {
        command: env.get('CNI_COMMAND') ?? '',
        containerId: env.get('CNI_CONTAINERID') ?? '',
        netns: env.get('CNI_NETNS') ?? '',
        ifName: env.get('CNI_IFNAME') ?? '',
        args: new Map(
          (env.get('CNI_ARGS') ?? '')
            .split(';')
            .filter(Boolean)
            .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)] as [string, string]),
        ),
        cniVersion: conf.cniVersion ?? '',
        hasPrevResult: conf.prevResult !== undefined,
        rc: Number(readFileSync(join(dir, `${id}.rc`), 'utf8').trim()),
        stdout: readFileSync(join(dir, `${id}.stdout`), 'utf8'),
      };
    });
  }

  /** The pods' host-side veths: the ports of podnet's bridge in the node namespace. */
  async veths(): Promise<string[]> {
    const r = await this.node.exec('ip', ['-j', 'link', 'show', 'master', BRIDGE], { reject: false });
    if (r.exitCode !== 0) return [];
    return (JSON.parse(r.stdout || '[]') as { ifname: string }[]).map((l) => l.ifname);
  }

  /** Files go-cni keeps in its result cache (`/var/lib/cni/results` inside the node). */
  cachedResults(): string[] {
    const d = join(this.cri.cacheDir, 'results');
    return existsSync(d) ? readdirSync(d) : [];
  }

  async destroy(): Promise<void> {
    try {
      await this.cri.destroy();
    } finally {
      await this.node.destroy();
      rmSync(this.dir, { recursive: true, force: true });
    }
  }
}

async function buildImage(work: string, ref: string, cmd: string[]): Promise<BuiltImage> {
  mkdirSync(work, { recursive: true });
  return buildBusyboxImage(work, ref, cmd);
}

/** The conflist routesync wrote, with the reference bridge + host-local in podnet's place. */
function referenceConflist(c: Record<string, unknown>): Record<string, unknown> {
  const copy = structuredClone(c) as { plugins: Record<string, unknown>[] } & Record<string, unknown>;
  for (const p of copy.plugins) {
    if (p.type === 'podnet-bridge') {
      p.type = 'bridge';
      (p.ipam as Record<string, unknown>).type = 'host-local';
    }
  }
  return copy;
}

/**
 * A bash wrapper in the bin dir under the plugin's name: it keeps the call's CNI_* environment,
 * stdin, stdout and exit code in `calls/<time>-<pid>.*`, and passes everything through unchanged.
 */
function writeRecorder(file: string, real: string, calls: string): void {
  writeFileSync(
    file,
    [
      '#!/bin/bash',
      `rec=${JSON.stringify(calls)}/$(date +%s%N)-$$`,
      'cat > "$rec.stdin"',
      'env | grep "^CNI_" > "$rec.env"',
      `${JSON.stringify(real)} "$@" < "$rec.stdin" > "$rec.stdout"`,
      'rc=$?',
      'cat "$rec.stdout"',
      'echo "$rc" > "$rec.rc"',
      'exit "$rc"',
      '',
    ].join('\n'),
  );
  chmodSync(file, 0o755);
}


import { PluginNotFoundError } from '../../../lib/cni/delegate.js';
import type { CmdArgs, GcArgs, PluginFuncs } from '../../../lib/cni/dispatch.js';
import { CniError } from '../../../lib/cni/errors.js';
import { silentLogger } from '../../../lib/cni/log.js';
import type { NetConf, Result } from '../../../lib/cni/types.js';
import type { BridgeDeps } from '../../../plugins/bridge/bridge.js';
import type { IpamDeps } from '../../../plugins/bridge/ipam.js';
import type { RunResult } from '../../../lib/linux/exec.js';
import type { BatchRequest, IpRunner } from '../../../lib/linux/ip.js';
import type { NetDevView } from '../../../lib/linux/netdev.js';
import type { IpFamily, Netfilter, NftRule } from '../../../lib/linux/netfilter.js';
import type { Sysctl } from '../../../lib/linux/sysctl.js';

/** A link in the fake kernel. */
export interface FakeLink {
  name: string;
  ifindex: number;
  kind: string;
  mac: string;
  up: boolean;
  master?: string;
  peer?: { ns: string; name: string };
  addrs: string[];
  flags: Set<string>;
  mtu: number;
}

/**
 * A small model of the kernel behind `ip -batch`: namespaces holding links, addresses and routes.
 * It understands exactly the commands the bridge plugin sends and records every line, so unit
 * tests can assert both the commands and the resulting state.
 */
export class FakeKernel implements IpRunner {
  readonly ns = new Map<string, Map<string, FakeLink>>([['node', new Map()]]);
  readonly routes = new Map<string, string[]>();
  readonly sysctls = new Map<string, string>();
  readonly log: { ns: string; line: string }[] = [];
  readonly bridgeLog: string[] = [];
  /** Fail the first line matching this (message as the kernel's). */
  failOn: { match: RegExp; message: string; ns?: string } | undefined;
  private nextIndex = 2;
  private macN = 0;

  addNetns(path: string): void {
    this.ns.set(path, new Map([['lo', this.mk('lo', 'loopback')]]));
  }

  mk(name: string, kind: string, mac?: string): FakeLink {
    this.macN += 1;
    return { name, ifindex: this.nextIndex++, kind, mac: mac ?? `02:00:00:00:00:${this.macN.toString(16).padStart(2, '0')}`, up: false, addrs: [], flags: new Set(), mtu: 1500 };
  }

  links(ns = 'node'): Map<string, FakeLink> {
    const m = this.ns.get(ns);
    if (!m) throw new Error(`no netns ${ns}`);
    return m;
  }

  /** One batch process: lines run in order, output and failures printed as iproute2 prints them. */
  async exec(req: BatchRequest): Promise<RunResult> {
    if (req.tool === 'bridge') {
      this.bridgeLog.push(...req.lines);
      return { code: 0, stdout: '', stderr: '' };
    }
    const where = req.opts.netns ?? 'node';
    if (!this.ns.has(where)) return { code: 1, stdout: '', stderr: `nsenter: cannot open ${where}\n` };
    for (const s of req.opts.sysctls ?? []) this.sysctls.set(`${where}:${s.key}`, s.value);
    let stdout = '';
    let stderr = '';
    for (let i = 0; i < req.lines.length; i++) {
      const line = req.lines[i] as string;
      this.log.push({ ns: where, line });
      let err: string | undefined;
      if (this.failOn && this.failOn.match.test(line) && (this.failOn.ns === undefined || this.failOn.ns === where)) {
        err = this.failOn.message;
        this.failOn = undefined;
      } else {
        try {
          const out = this.execLine(where, line);
          if (out) stdout += `${JSON.stringify(out)}\n`;
        } catch (e) {
          err = (e as Error).message;
        }
      }
      if (err !== undefined) {
        stderr += `Error: ${err}\nCommand failed -:${i + 1}\n`;
        if (!req.opts.force) break;
      }
    }
    return { code: stderr ? 1 : 0, stdout, stderr };
  }

  private execLine(where: string, line: string): Record<string, unknown>[] | undefined {
    const links = this.links(where);
    const t = line.split(/\s+/);
    const get = (key: string): string | undefined => {
      const i = t.indexOf(key);
      return i >= 0 ? t[i + 1] : undefined;
    };
    const need = (name: string): FakeLink => {
      const l = links.get(name);
      if (!l) throw new Error(`Cannot find device "${name}"`);
      return l;
    };
    if (line.startsWith('link add ')) {
      const name = get('name') as string;
      if (links.has(name)) throw new Error('File exists');
      const kind = get('type') as string;
      if (kind === 'bridge') {
        const l = this.mk(name, 'bridge', get('address'));
        if (line.includes('vlan_filtering 1')) l.flags.add('vlan_filtering');
        links.set(name, l);
        return undefined;
      }
      const peerAt = t.indexOf('peer');
      const peerName = t[peerAt + 2] as string;
      const peerNs = get('netns') ?? where;
      const peerLinks = this.links(peerNs);
      if (peerLinks.has(peerName)) throw new Error('File exists');
      const a = this.mk(name, 'veth');
      const macAt = t.indexOf('address', peerAt);
      const b = this.mk(peerName, 'veth', macAt > 0 ? t[macAt + 1] : undefined);
      a.peer = { ns: peerNs, name: peerName };
      b.peer = { ns: where, name };
      links.set(name, a);
      peerLinks.set(peerName, b);
      return undefined;
    }
    if (line.startsWith('link set dev ')) {
      const l = need(t[3] as string);
      if (t[4] === 'master') {
        const m = need(t[5] as string);
        if (m.kind !== 'bridge') throw new Error('Operation not supported');
        l.master = m.name;
      } else if (t[4] === 'type') {
        for (let i = 6; i < t.length; i += 2) if (t[i + 1] === 'on') l.flags.add(t[i] as string);
      } else if (t[4] === 'address') {
        l.mac = t[5] as string;
      } else if (t[4] === 'up') {
        l.up = true;
        if (line.includes('promisc on')) l.flags.add('PROMISC');
      }
      return undefined;
    }
    if (line.startsWith('link del dev ')) {
      const l = need(t[3] as string);
      links.delete(l.name);
      if (l.peer) this.ns.get(l.peer.ns)?.delete(l.peer.name);
      return undefined;
    }
    if (line.startsWith('addr add ')) {
      const l = need(get('dev') as string);
      const a = t[2] as string;
      if (l.addrs.includes(a)) throw new Error('Address already assigned.');
      l.addrs.push(a);
      return undefined;
    }
    if (line.startsWith('addr del ')) {
      const l = need(get('dev') as string);
      l.addrs = l.addrs.filter((a) => a !== t[2]);
      return undefined;
    }
    if (line.startsWith('route add ')) {
      const list = this.routes.get(where) ?? [];
      list.push(line);
      this.routes.set(where, list);
      return undefined;
    }
    if (line === 'route show table all') {
      return (this.routes.get(where) ?? []).map((r) => {
        const w = r.split(/\s+/);
        const via = w.indexOf('via');
        const dst = w[2] === '0.0.0.0/0' || w[2] === '::/0' ? 'default' : w[2];
        return via > 0 ? { dst, gateway: w[via + 1] } : { dst };
      });
    }
    if (line.startsWith('addr show dev ')) {
      const l = need(t[3] as string);
      return [this.entry(where, l)];
    }
    throw new Error(`fake kernel: unknown command "${line}"`);
  }

  entry(where: string, l: FakeLink): Record<string, unknown> {
    const flags = [...(l.up ? ['UP'] : []), ...(l.flags.has('PROMISC') ? ['PROMISC'] : [])];
    const e: Record<string, unknown> = {
      ifindex: l.ifindex,
      ifname: l.name,
      address: l.mac,
      flags,
      operstate: l.up ? 'UP' : 'DOWN',
      linkinfo: { info_kind: l.kind, ...(l.kind === 'bridge' ? { info_data: { vlan_filtering: l.flags.has('vlan_filtering') ? 1 : 0 } } : {}) },
      addr_info: l.addrs.map((a) => ({ family: a.includes(':') ? 'inet6' : 'inet', local: a.split('/')[0], prefixlen: Number(a.split('/')[1]), scope: 'global' })),
    };
    if (l.master) e.master = l.master;
    if (l.peer) {
      const p = this.ns.get(l.peer.ns)?.get(l.peer.name);
      if (p) e.link_index = p.ifindex;
    }
    void where;
    return e;
  }
}

export class FakeNetdev implements NetDevView {
  constructor(private readonly k: FakeKernel) {}
  names(): Set<string> {
    return new Set(this.k.links('node').keys());
  }
  sysfsTrusted(): boolean {
    return true;
  }
  isBridge(name: string): boolean {
    return this.k.links('node').get(name)?.kind === 'bridge';
  }
  operState(name: string): string | undefined {
    const l = this.k.links('node').get(name);
    return l ? (l.up ? 'up' : 'down') : undefined;
  }
}

export class FakeSysctl implements Sysctl {
  readonly values = new Map<string, string>();
  read(key: string): string | undefined {
    return this.values.get(key);
  }
  ensure(key: string, value: string): void {
    this.values.set(key, value);
  }
}

/** nft and iptables in memory: scripts are recorded and their `add rule`/`delete rule` applied. */
export class FakeNetfilter implements Netfilter {
  readonly scripts: string[] = [];
  readonly rules: NftRule[] = [];
  readonly chains = new Set<string>();
  ipt: Record<IpFamily, string> = { 4: '*nat\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n', 6: '*nat\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n' };
  readonly restores: { family: IpFamily; script: string }[] = [];
  nft = true;
  failNext: string | undefined;
  private handle = 1;

  hasNft(): boolean {
    return this.nft;
  }
  hasIptables(): boolean {
    return true;
  }
  async nftApply(script: string): Promise<RunResult> {
    this.scripts.push(script);
    if (this.failNext) {
      const stderr = this.failNext;
      this.failNext = undefined;
      return { code: 1, stdout: '', stderr };
    }
    const lines = script.trim().split('\n');
    const chains = new Set(this.chains);
    const rules = [...this.rules];
    for (const line of lines) {
      let m = /^add chain (\S+) (\S+) (\S+)/.exec(line);
      if (m) {
        chains.add(`${m[1]} ${m[2]} ${m[3]}`);
        continue;
      }
      m = /^add rule (\S+) (\S+) (\S+) .* comment "(.*)"$/.exec(line);
      if (m) {
        if (!chains.has(`${m[1]} ${m[2]} ${m[3]}`)) return { code: 1, stdout: '', stderr: 'Error: Could not process rule: No such file or directory' };
        const saddr = /saddr (\S+)/.exec(line)?.[1];
        rules.push({ family: m[1] as string, table: m[2] as string, chain: m[3] as string, handle: this.handle++, comment: m[4] as string, expr: [{ match: { right: saddr } }] });
        continue;
      }
      m = /^delete rule (\S+) (\S+) (\S+) handle (\d+)$/.exec(line);
      if (m) {
        const i = rules.findIndex((r) => r.handle === Number(m?.[4]));
        if (i < 0) return { code: 1, stdout: '', stderr: 'Error: Could not process rule: No such file or directory' };
        rules.splice(i, 1);
      }
    }
    this.chains.clear();
    for (const c of chains) this.chains.add(c);
    this.rules.splice(0, this.rules.length, ...rules);
    return { code: 0, stdout: '', stderr: '' };
  }
  async nftListTable(family: string, table: string): Promise<NftRule[] | undefined> {
    if (![...this.chains].some((c) => c.startsWith(`${family} ${table} `))) return undefined;
    return this.rules.filter((r) => r.family === family && r.table === table).map((r) => ({ ...r }));
  }
  async iptablesSaveNat(family: IpFamily): Promise<RunResult> {
    return { code: 0, stdout: this.ipt[family], stderr: '' };
  }
  async iptablesRestore(family: IpFamily, script: string): Promise<RunResult> {
    this.restores.push({ family, script });
    let saved = this.ipt[family].replace(/COMMIT\n$/, '');
    for (const line of script.split('\n')) {
      if (line.startsWith(':')) saved = saved.replace('*nat\n', `*nat\n${line}\n`);
      else if (line.startsWith('-A ')) saved += `${line}\n`;
      else if (line.startsWith('-D ')) saved = saved.replace(`-A ${line.slice(3)}\n`, '');
      else if (line.startsWith('-F ')) saved = saved.split('\n').filter((l) => !l.startsWith(`-A ${line.slice(3)} `)).join('\n');
      else if (line.startsWith('-X ')) saved = saved.split('\n').filter((l) => !l.startsWith(`:${line.slice(3)} `)).join('\n');
    }
    this.ipt[family] = `${saved.replace(/\n*$/, '\n')}COMMIT\n`;
    return { code: 0, stdout: '', stderr: '' };
  }
}

/** An IPAM handing out 10.1.0.<n>/24 (+ fd01::<n>/64 when dual), recording calls. */
export class FakeIpam {
  readonly calls: string[] = [];
  readonly held = new Map<string, Result>();
  failAdd: CniError | undefined;
  dual = false;
  private n = 1;

  deps(): IpamDeps {
    const self = this;
    const funcs: PluginFuncs = {
      async add(a: CmdArgs) {
        self.calls.push(`ADD ${a.containerId}`);
        if (self.failAdd) throw self.failAdd;
        self.n += 1;
        const r: Result = { cniVersion: '1.1.0', ips: [{ address: `10.1.0.${self.n}/24` }] };
        if (self.dual) r.ips?.push({ address: `fd01::${self.n}/64` });
        self.held.set(a.containerId, r);
        return r;
      },
      async del(a: CmdArgs) {
        self.calls.push(`DEL ${a.containerId}`);
        self.held.delete(a.containerId);
      },
      async check(a: CmdArgs) {
        self.calls.push(`CHECK ${a.containerId}`);
      },
      async gc(a: GcArgs) {
        self.calls.push(`GC ${a.validAttachments?.length ?? 'none'}`);
      },
      async status() {
        self.calls.push('STATUS');
      },
    };
    return {
      findInPath: (type, paths) => {
        if (type === 'fake-ipam' && paths.includes(FAKE_CNI_PATH)) return `${FAKE_CNI_PATH}/${type}`;
        throw new PluginNotFoundError(type, paths);
      },
      runner: {
        run: () => {
          throw new Error('exec not expected in unit tests');
        },
      },
      inProcess: { 'fake-ipam': async () => funcs },
      forceExec: () => false,
    };
  }
}

export interface Harness {
  kernel: FakeKernel;
  nf: FakeNetfilter;
  sysctl: FakeSysctl;
  ipam: FakeIpam;
  deps: Partial<BridgeDeps>;
}

export function harness(): Harness {
  const kernel = new FakeKernel();
  kernel.addNetns('/var/run/netns/pod1');
  kernel.addNetns('/var/run/netns/pod2');
  const nf = new FakeNetfilter();
  const sysctl = new FakeSysctl();
  const ipam = new FakeIpam();
  let mac = 0;
  const deps: Partial<BridgeDeps> = {
    ip: kernel,
    netfilter: nf,
    sysctl,
    netdev: new FakeNetdev(kernel),
    ipam: ipam.deps(),
    netns: (p) => (kernel.ns.has(p) ? 'ok' : 'missing'),
    randomMac: () => `0a:00:00:00:00:${(++mac).toString(16).padStart(2, '0')}`,
    sleep: async () => {},
    now: () => Date.now(),
  };
  return { kernel, nf, sysctl, ipam, deps };
}

/** The CNI_PATH where the fake findInPath "finds" fake-ipam (the in-process path looks it up first). */
export const FAKE_CNI_PATH = '/fake/cni/bin';

export function cmdArgs(conf: Partial<NetConf> & Record<string, unknown>, over: Partial<CmdArgs> = {}): CmdArgs {
  const netConf = { cniVersion: '1.0.0', name: 'net1', type: 'podnet-bridge', ...conf } as NetConf;
  return {
    command: 'ADD',
    containerId: 'ctr1',
    netns: '/var/run/netns/pod1',
    ifName: 'eth0',
    args: '',
    path: [FAKE_CNI_PATH],
    stdinData: Buffer.from(JSON.stringify(netConf)),
    netConf,
    env: {},
    log: silentLogger,
    ...over,
  };
}

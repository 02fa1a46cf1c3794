import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../../lib/cni/log.js';
import { parseNetwork as parseCidr } from '../../../lib/addr/addr.js';
import { DEFAULT_TEMPLATE, type ConflistTemplate } from '../../../routesync/conflist.js';
import { renderIpOp } from '../../../lib/linux/ip.js';
import type { HostNet, KernelRoute, RouteChange } from '../../../routesync/host-net.js';
import { RouteSyncLoop } from '../../../routesync/loop.js';
import { Metrics } from '../../../routesync/metrics.js';
import type { NodeSource, SourceHooks } from '../../../routesync/node-source.js';
import { NoMasq } from '../../../routesync/reconcile-masq.js';
import type { LocalAddress, NodeLike, Reachability } from '../../../routesync/types.js';

/** An in-memory main routing table that applies the daemon's route changes (and records each
 * batch as the lines the kernel layer renders). */
class FakeNet implements HostNet {
  table: KernelRoute[] = [{ dst: '172.18.0.0/16', family: 4, dev: 'eth0', protocol: '2', metric: 0, type: 'unicast', gateway: undefined }];
  addrs: LocalAddress[] = [{ ifname: 'eth0', mtu: 1450, address: '172.18.0.2', prefix: 16, family: 4 }];
  failReach = false;
  failApply = 0;
  batches: string[][] = [];
  async addresses() {
    return this.addrs;
  }
  async reachability(ips: readonly string[]) {
    if (this.failReach) throw new Error('ip -j -force -batch -: Cannot open netlink socket');
    return new Map<string, Reachability>(ips.map((ip) => [ip, ip.startsWith('172.18.') ? { ok: true, dev: 'eth0' } : { ok: true, dev: 'eth0', gateway: '172.18.0.1' }]));
  }
  async routes() {
    return this.table.map((r) => ({ ...r }));
  }
  async applyRoutes(changes: readonly RouteChange[]) {
    if (this.failApply > 0) {
      this.failApply -= 1;
      throw new Error('ip -force -batch -: Cannot open netlink socket: Operation not permitted');
    }
    this.batches.push(changes.map(renderIpOp));
    for (const c of changes) {
      if (c.verb === 'del') this.table = this.table.filter((r) => !(r.dst === c.dst && r.protocol === String(c.proto)));
      else {
        this.table = this.table.filter((r) => r.dst !== c.dst);
        this.table.push({ dst: c.dst, family: 4, gateway: c.via, dev: 'eth0', protocol: String(c.proto), metric: 0, type: 'unicast' });
      }
    }
    return changes.map(() => undefined);
  }
  ours() {
    return this.table.filter((r) => r.protocol === '112').map((r) => `${r.dst} via ${r.gateway}`).sort();
  }
}

class FakeSource implements NodeSource {
  readonly description = 'fake';
  list: NodeLike[] = [];
  isSynced = false;
  hooks: SourceHooks | undefined;
  start(h: SourceHooks) {
    this.hooks = h;
  }
  synced() {
    return this.isSynced;
  }
  nodes() {
    return this.list;
  }
  async listOnce() {
    return this.list;
  }
  async stop() {}
  set(list: NodeLike[]) {
    this.list = list;
    this.isSynced = true;
    this.hooks?.onChange();
  }
}

const node = (name: string, cidr: string, ip: string): NodeLike => ({
  metadata: { name, creationTimestamp: '2024-01-01T00:00:00Z' },
  spec: { podCIDRs: [cidr] },
  status: { addresses: [{ type: 'InternalIP', address: ip }] },
});

async function waitFor(what: string, f: () => boolean, ms = 5000) {
  const until = Date.now() + ms;
  while (!f()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('RouteSyncLoop (fake kernel, fake source)', () => {
  let dir: string;
  let net: FakeNet;
  let source: FakeSource;
  let metrics: Metrics;
  let logs: Record<string, unknown>[];
  let loop: RouteSyncLoop;
  let versions: Map<string, string[]>;

  beforeEach(() => {
    versions = new Map([['podnet-bridge', ['0.4.0', '1.0.0', '1.1.0']], ['portmap', ['0.4.0', '1.0.0']]]);
    dir = mkdtempSync(join(tmpdir(), 'prs-loop-'));
    mkdirSync(join(dir, 'sys/net/bridge'), { recursive: true });
    writeFileSync(join(dir, 'sys/net/bridge/bridge-nf-call-iptables'), '0');
    writeFileSync(join(dir, 'sys/net/bridge/bridge-nf-call-ip6tables'), '1');
    net = new FakeNet();
    source = new FakeSource();
    metrics = new Metrics();
    logs = [];
    loop = new RouteSyncLoop({
      source,
      net,
      masq: new NoMasq(),
      metrics,
      log: createLogger({ level: 'debug', write: (l) => logs.push(JSON.parse(l)) }),
      pluginVersions: async (type) => versions.get(type),
      options: {
        nodeName: 'self',
        cniConfDir: join(dir, 'net.d'),
        writeConflist: true,
        template: structuredClone(DEFAULT_TEMPLATE) as unknown as ConflistTemplate,
        sysctlRoot: join(dir, 'sys'),
        brNetfilter: true,
        routeProtocol: 112,
        resyncMs: 60_000,
        debounceMs: 1,
        backoffBaseMs: 20,
        backoffMaxMs: 100,
      },
    });
  });
  afterEach(async () => {
    await loop.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('does nothing before the first complete list, then programs routes, the CNI config and br_netfilter', async () => {
    net.table.push({ dst: '10.244.1.0/24', family: 4, gateway: '172.18.0.3', dev: 'eth0', protocol: '112', metric: 0, type: 'unicast' });
    loop.start();
    source.hooks?.onChange();
    await new Promise((r) => setTimeout(r, 50));
    expect(net.batches).toEqual([]); // an empty, unsynced cache must not delete the old routes
    expect(loop.status()).toMatchObject({ synced: false, converged: false });

    source.set([node('self', '10.244.0.0/24', '172.18.0.2'), node('b', '10.244.1.0/24', '172.18.0.3'), node('c', '10.244.2.0/24', '172.18.0.4')]);
    await waitFor('routes', () => net.ours().length === 2);
    expect(net.ours()).toEqual(['10.244.1.0/24 via 172.18.0.3', '10.244.2.0/24 via 172.18.0.4']);
    expect(net.batches).toEqual([['route add 10.244.2.0/24 via 172.18.0.4 proto 112 table main']]);
    await waitFor('converged', () => loop.status().converged);
    const conf = JSON.parse(readFileSync(join(dir, 'net.d/10-podnet.conflist'), 'utf8'));
    expect(conf.plugins[0]).toMatchObject({ mtu: 1450, ipam: { ranges: [[{ subnet: '10.244.0.0/24' }]] } });
    expect(conf).toMatchObject({ cniVersion: '1.0.0', cniVersions: ['1.0.0'] }); // this portmap lacks 1.1.0
    expect(logs.some((l) => l.msg?.toString().startsWith('cni version left out') && l.version === '1.1.0')).toBe(true);
    expect(readFileSync(join(dir, 'sys/net/bridge/bridge-nf-call-iptables'), 'utf8').trim()).toBe('1');
    expect(metrics.render()).toContain('podnet_routesync_routes_programmed{family="ipv4"} 2');
    expect(logs.some((l) => l.msg === 'node source synced')).toBe(true);
  });

  it('follows changes: moved InternalIP, deleted node; rejections are logged once and counted', async () => {
    loop.start();
    source.set([node('self', '10.244.0.0/24', '172.18.0.2'), node('b', '10.244.1.0/24', '172.18.0.3'), node('far', '10.244.9.0/24', '192.168.1.9')]);
    await waitFor('first', () => net.ours().length === 1);
    source.set([node('self', '10.244.0.0/24', '172.18.0.2'), node('b', '10.244.1.0/24', '172.18.0.7'), node('far', '10.244.9.0/24', '192.168.1.9')]);
    await waitFor('moved', () => net.ours()[0] === '10.244.1.0/24 via 172.18.0.7');
    source.set([node('self', '10.244.0.0/24', '172.18.0.2')]);
    await waitFor('deleted', () => net.ours().length === 0);
    const rejected = logs.filter((l) => l.msg === 'node rejected');
    expect(rejected).toHaveLength(1);
    expect(rejected[0]).toMatchObject({ level: 'warn', node: 'far', reason: 'NotDirectlyReachable' });
    expect(logs.some((l) => l.msg === 'node rejection cleared' && l.node === 'far')).toBe(true);
    expect(metrics.render()).toContain('podnet_routesync_rejected_nodes{reason="NotDirectlyReachable"} 0');
  });

  it('a failing reachability lookup never deletes routes; a failing apply is retried with backoff', async () => {
    loop.start();
    source.set([node('self', '10.244.0.0/24', '172.18.0.2'), node('b', '10.244.1.0/24', '172.18.0.3')]);
    await waitFor('first', () => net.ours().length === 1);
    net.failReach = true;
    source.set([node('self', '10.244.0.0/24', '172.18.0.2'), node('b', '10.244.1.0/24', '172.18.0.3'), node('c', '10.244.2.0/24', '172.18.0.4')]);
    await waitFor('error', () => (metrics.reconcileErrors.get('reachability') ?? 0) >= 1);
    expect(net.ours()).toEqual(['10.244.1.0/24 via 172.18.0.3']);
    net.failReach = false;
    net.failApply = 2;
    await waitFor('recovered', () => net.ours().length === 2, 5000);
    expect(metrics.reconcileErrors.get('routes')).toBe(2);
    expect(logs.filter((l) => l.msg === 'reconcile failed; retrying').length).toBeGreaterThanOrEqual(3);
    await waitFor('converged', () => loop.status().converged);
  });

  it('keeps routes while the source reports errors (API server unreachable)', async () => {
    loop.start();
    source.set([node('self', '10.244.0.0/24', '172.18.0.2'), node('b', '10.244.1.0/24', '172.18.0.3')]);
    await waitFor('first', () => net.ours().length === 1);
    source.hooks?.onError(new Error('failed to watch nodes on "https://10.96.0.1:443": fetch failed: connect ECONNREFUSED'));
    source.hooks?.onChange();
    await new Promise((r) => setTimeout(r, 50));
    expect(net.ours()).toEqual(['10.244.1.0/24 via 172.18.0.3']);
    expect(metrics.sourceErrors).toBe(1);
    expect(logs.some((l) => l.level === 'error' && String(l.error).includes('ECONNREFUSED'))).toBe(true);
  });

  it('not ready while this node has no podCIDR or br_netfilter is missing, with the reasons', async () => {
    rmSync(join(dir, 'sys/net'), { recursive: true });
    loop.start();
    source.set([{ metadata: { name: 'self' }, status: { addresses: [{ type: 'InternalIP', address: '172.18.0.2' }] } }]);
    await waitFor('pass', () => loop.status().lastPassAt !== undefined);
    const s = loop.status();
    expect(s.converged).toBe(false);
    expect(s.problems.join('\n')).toMatch(/NoPodCIDR: node "self" has no podCIDR yet; CNI config not written/);
    expect(s.problems.join('\n')).toMatch(/br_netfilter: .*br_netfilter kernel module is not loaded/);
    expect(metrics.render()).toContain('podnet_routesync_br_netfilter_ok 0');
  });

  it('a full resync repairs a route removed by hand', async () => {
    loop.start();
    source.set([node('self', '10.244.0.0/24', '172.18.0.2'), node('b', '10.244.1.0/24', '172.18.0.3')]);
    await waitFor('first', () => net.ours().length === 1);
    net.table = net.table.filter((r) => r.protocol !== '112');
    loop.trigger(true);
    await waitFor('repaired', () => net.ours().length === 1);
  });

  it('the conflist follows the installed portmap: 1.1.0 is listed once every chained plugin speaks it', async () => {
    loop.start();
    source.set([node('self', '10.244.0.0/24', '172.18.0.2')]);
    const conf = () => JSON.parse(readFileSync(join(dir, 'net.d/10-podnet.conflist'), 'utf8'));
    await waitFor('written', () => loop.status().converged);
    expect(conf().cniVersions).toEqual(['1.0.0']);
    versions.set('portmap', ['0.4.0', '1.0.0', '1.1.0']);
    loop.trigger(true);
    await waitFor('upgraded', () => conf().cniVersions.length === 2);
    expect(conf()).toMatchObject({ cniVersion: '1.0.0', cniVersions: ['1.0.0', '1.1.0'] });
    versions.set('portmap', ['0.3.1']);
    loop.trigger(true);
    await waitFor('error', () => (metrics.reconcileErrors.get('conflist') ?? 0) >= 1);
    expect(conf().cniVersions).toEqual(['1.0.0', '1.1.0']); // the last good config stays
  });

  it('one bad peer never makes this node not ready: it is rejected, the others are routed', async () => {
    loop.start();
    source.set([
      node('self', '10.244.0.0/24', '172.18.0.2'),
      node('b', '10.244.1.0/24', '172.18.0.3'),
      node('mcast-ip', '10.244.2.0/24', '224.0.0.5'),
      node('bcast-ip', '10.244.3.0/24', '255.255.255.255'),
      node('mcast-cidr', '224.0.0.0/4', '172.18.0.6'),
      node('wide', '8.0.0.0/7', '172.18.0.7'),
    ]);
    await waitFor('converged', () => loop.status().converged);
    expect(net.ours()).toEqual(['10.244.1.0/24 via 172.18.0.3']);
    const rejected = new Map(logs.filter((l) => l.msg === 'node rejected').map((l) => [l.node, l.reason]));
    expect(Object.fromEntries(rejected)).toEqual({ 'mcast-ip': 'InternalIPUnusable', 'bcast-ip': 'InternalIPUnusable', 'mcast-cidr': 'PodCIDRReserved', wide: 'PodCIDRTooBroad' });
    expect(metrics.reconcileErrors.size).toBe(0);
    expect(loop.status()).toMatchObject({ converged: true, rejected: 4, routes: 1 });
  });

  it('a route blocked by another owner\'s route is a condition (not converged) until that route goes', async () => {
    net.table.push({ dst: '10.244.1.0/24', family: 4, gateway: '172.18.0.9', dev: 'eth0', protocol: '4', metric: 0, type: 'unicast' });
    loop.start();
    source.set([node('self', '10.244.0.0/24', '172.18.0.2'), node('b', '10.244.1.0/24', '172.18.0.3')]);
    await waitFor('pass', () => loop.status().lastPassAt !== undefined);
    expect(loop.status()).toMatchObject({ converged: false });
    expect(loop.status().problems).toEqual([expect.stringMatching(/^route conflict: 10\.244\.1\.0\/24 of node "b" is held by a route of another owner \(proto 4 via 172\.18\.0\.9 dev eth0\)/)]);
    expect(metrics.reconcileErrors.size).toBe(0); // nothing to retry: the other owner decides
    expect(logs.filter((l) => String(l.msg).startsWith('route conflict:'))).toHaveLength(1);
    loop.trigger(true);
    await waitFor('second pass', () => logs.filter((l) => l.msg === 'reconciled').length >= 2);
    expect(logs.filter((l) => String(l.msg).startsWith('route conflict:'))).toHaveLength(1); // logged once
    net.table = net.table.filter((r) => r.protocol !== '4');
    loop.trigger(true);
    await waitFor('converged', () => loop.status().converged);
    expect(net.ours()).toEqual(['10.244.1.0/24 via 172.18.0.3']);
    expect(logs.some((l) => l.msg === 'route conflict cleared' && l.dst === '10.244.1.0/24')).toBe(true);
  });

  it('--cluster-cidr: podCIDRs outside the cluster range are refused; this node outside it gets no CNI config', async () => {
    await loop.stop();
    const cluster = parseCidr('10.244.0.0/16');
    if (!cluster.ok) throw new Error(cluster.error);
    const opts = { nodeName: 'self', cniConfDir: join(dir, 'net.d'), writeConflist: true, template: structuredClone(DEFAULT_TEMPLATE) as unknown as ConflistTemplate, sysctlRoot: join(dir, 'sys'), brNetfilter: true, routeProtocol: 112, resyncMs: 60_000, debounceMs: 1, clusterCIDRs: [cluster.value] };
    loop = new RouteSyncLoop({ source, net, masq: new NoMasq(), metrics, log: createLogger({ level: 'debug', write: (l) => logs.push(JSON.parse(l)) }), pluginVersions: async (type) => versions.get(type), options: opts });
    const r = await loop.reconcileNodes([node('self', '10.244.0.0/24', '172.18.0.2'), node('b', '10.244.1.0/24', '172.18.0.3'), node('out', '10.99.1.0/24', '172.18.0.4')], true);
    expect(r.errors).toEqual([]);
    expect(r.conditions).toEqual([]);
    expect(net.ours()).toEqual(['10.244.1.0/24 via 172.18.0.3']);
    expect(r.desired?.rejections).toMatchObject([{ node: 'out', reason: 'PodCIDROutsideCluster' }]);
    const s = await loop.reconcileNodes([node('self', '10.99.0.0/24', '172.18.0.2'), node('b', '10.244.1.0/24', '172.18.0.3')], true);
    expect(s.conditions).toEqual([expect.stringMatching(/^PodCIDROutsideCluster: this node: podCIDR "10\.99\.0\.0\/24" is outside the cluster's pod range 10\.244\.0\.0\/16 .*; CNI config not written$/)]);
  });

  it('this node\'s podCIDR equal to its own network: no CNI config written, not ready', async () => {
    const r = await loop.reconcileNodes([node('self', '172.18.0.0/16', '172.18.0.2'), node('b', '10.244.1.0/24', '172.18.0.3')], true);
    expect(r.conditions).toEqual([expect.stringMatching(/^PodCIDROverlap: this node: podCIDR "172\.18\.0\.0\/16" overlaps 172\.18\.0\.0\/16 on this node's interface eth0/)]);
    expect(existsSync(join(dir, 'net.d/10-podnet.conflist'))).toBe(false);
    expect(net.ours()).toEqual(['10.244.1.0/24 via 172.18.0.3']);
  });

  it('stop() returns promptly and leaves routes in place', async () => {
    loop.start();
    source.set([node('self', '10.244.0.0/24', '172.18.0.2'), node('b', '10.244.1.0/24', '172.18.0.3')]);
    await waitFor('first', () => net.ours().length === 1);
    const t = Date.now();
    await loop.stop();
    expect(Date.now() - t).toBeLessThan(500);
    expect(net.ours()).toHaveLength(1);
    source.set([node('self', '10.244.0.0/24', '172.18.0.2')]);
    await new Promise((r) => setTimeout(r, 30));
    expect(net.ours()).toHaveLength(1);
  });
});

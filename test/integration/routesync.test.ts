import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isRoot } from '../helpers/env.js';
import { makeNode } from '../helpers/fake-apiserver.js';
import { type DaemonHandle, RoutesyncLab, eventually, httpGetIn } from '../helpers/routesync-lab.js';

/**
 * podnet-routesync, the real executable, in node1 of a three-node namespace lab, watching the
 * fake API server on the lab's fabric (see test/helpers/routesync-lab.ts and fake-apiserver.ts).
 * The tests run in order against one daemon: each one changes the cluster and checks node1's
 * kernel.
 */
describe.runIf(isRoot)('podnet-routesync in a namespace lab (API server)', () => {
  let lab: RoutesyncLab;
  let d: DaemonHandle;
  let rootBrnf = '';
  const confDir = () => join(lab.dir, 'net.d-node1');
  const metrics = async () => (await httpGetIn(lab.nodes[0]!.ns, 'http://127.0.0.1:9646/metrics')).body;
  const metric = async (name: string) => {
    const m = new RegExp(`^${name.replace(/[{}"]/g, (c) => `\\${c}`)} (\\S+)$`, 'm').exec(await metrics());
    return m ? Number(m[1]) : undefined;
  };

  beforeAll(async () => {
    lab = await RoutesyncLab.create({ nodes: 3, mtu: 1450 });
    await lab.api.seed([lab.nodeObject(0, { dual: true }), lab.nodeObject(1, { dual: true }), lab.nodeObject(2)]);
    // br_netfilter's sysctls exist per namespace on this kernel: start node1 from 0 to see the
    // daemon set it, and check that the root namespace's value never changes.
    rootBrnf = readFileSync('/proc/sys/net/bridge/bridge-nf-call-iptables', 'utf8');
    await lab.nodes[0]!.ns.exec('sh', ['-c', 'echo 0 > /proc/sys/net/bridge/bridge-nf-call-iptables']);
    d = await lab.daemon(0, [
      '--kubeconfig',
      lab.kubeconfig,
      '--cni-conf-dir',
      confDir(),
      '--metrics-addr',
      '127.0.0.1:9646',
      '--resync-interval',
      '1s',
      '--log-level',
      'debug',
    ]);
  });
  afterAll(async () => {
    await lab?.destroy();
  });

  it('programs a route per family to every other node, writes the CNI config, turns br_netfilter on, masquerades', async () => {
    await eventually('ready', async () => (await httpGetIn(lab.nodes[0]!.ns, 'http://127.0.0.1:9646/readyz')).code === 200);
    expect(await lab.ourRoutes(0)).toEqual([
      '10.244.2.0/24 via 172.18.0.3',
      '10.244.3.0/24 via 172.18.0.4',
      'fd00:10:244:2::/64 via fc00:f853:ccd:e793::3',
    ]);
    const conf = JSON.parse(readFileSync(join(confDir(), '10-podnet.conflist'), 'utf8'));
    expect(conf.plugins[0]).toMatchObject({
      type: 'podnet-bridge',
      mtu: 1450,
      ipMasq: false,
      ipam: { ranges: [[{ subnet: '10.244.1.0/24' }], [{ subnet: 'fd00:10:244:1::/64' }]] },
    });
    const brnf = await lab.nodes[0]!.ns.exec('cat', ['/proc/sys/net/bridge/bridge-nf-call-iptables', '/proc/sys/net/bridge/bridge-nf-call-ip6tables']);
    expect(brnf.stdout.split('\n')).toEqual(['1', '1']);
    expect(readFileSync('/proc/sys/net/bridge/bridge-nf-call-iptables', 'utf8')).toBe(rootBrnf);
    const nft = JSON.parse((await lab.nodes[0]!.ns.exec('nft', ['-j', 'list', 'set', 'inet', 'podnet-routesync', 'pod-cidrs-v4'])).stdout);
    const elems = nft.nftables.find((x: { set?: unknown }) => x.set).set.elem.map((e: { prefix: { addr: string; len: number } }) => `${e.prefix.addr}/${e.prefix.len}`);
    expect(elems.sort()).toEqual(['10.244.1.0/24', '10.244.2.0/24', '10.244.3.0/24']);
    await eventually('metrics', async () => (await metric('podnet_routesync_routes_programmed{family="ipv4"}')) === 2);
    expect(await metric('podnet_routesync_routes_programmed{family="ipv6"}')).toBe(1);
    expect(await metric('podnet_routesync_br_netfilter_ok')).toBe(1);
    expect(await metric('podnet_routesync_last_successful_sync_timestamp_seconds')).toBeGreaterThan(Date.now() / 1000 - 60);
    const ready = await httpGetIn(lab.nodes[0]!.ns, 'http://127.0.0.1:9646/readyz');
    expect(ready.code).toBe(200);
    expect((await httpGetIn(lab.nodes[0]!.ns, 'http://127.0.0.1:9646/healthz')).code).toBe(200);
  });

  it('moves a route when a node\'s InternalIP changes, replaces it when the podCIDR changes, removes it when the node goes, adds new nodes', async () => {
    await lab.api.upsert(makeNode('node3', { podCIDRs: ['10.244.3.0/24'], ips: ['172.18.0.44'], created: '2024-01-03T00:00:00Z' }));
    await eventually('moved', async () => (await lab.ourRoutes(0)).includes('10.244.3.0/24 via 172.18.0.44'));
    await lab.api.upsert(makeNode('node3', { podCIDRs: ['10.244.33.0/24'], ips: ['172.18.0.44'], created: '2024-01-03T00:00:00Z' }));
    await eventually('new podCIDR', async () => {
      const r = await lab.ourRoutes(0);
      return r.includes('10.244.33.0/24 via 172.18.0.44') && !r.some((x) => x.startsWith('10.244.3.0/24'));
    });
    await lab.api.remove('node3');
    await eventually('deleted', async () => !(await lab.ourRoutes(0)).some((x) => x.startsWith('10.244.33.')));
    await lab.api.upsert(makeNode('node4', { podCIDRs: ['10.244.4.0/24'], ips: ['172.18.0.5'], created: '2024-01-04T00:00:00Z' }));
    await eventually('added', async () => (await lab.ourRoutes(0)).includes('10.244.4.0/24 via 172.18.0.5'));
    expect(await lab.ourRoutes(0)).toEqual(['10.244.2.0/24 via 172.18.0.3', '10.244.4.0/24 via 172.18.0.5', 'fd00:10:244:2::/64 via fc00:f853:ccd:e793::3']);
    // The masquerade set follows the nodes too.
    await eventually('masq set', async () => {
      const t = (await lab.nodes[0]!.ns.exec('nft', ['list', 'set', 'inet', 'podnet-routesync', 'pod-cidrs-v4'])).stdout;
      return t.includes('10.244.4.0/24') && !t.includes('10.244.33.0/24');
    });
  });

  it('leaves routes of other owners alone, even one with a destination it wants (reported as a conflict)', async () => {
    const ns = lab.nodes[0]!.ns;
    await ns.exec('ip', ['route', 'add', '10.99.0.0/24', 'via', '172.18.0.3', 'proto', 'static']);
    await ns.exec('ip', ['route', 'add', '10.244.5.0/24', 'via', '172.18.0.4', 'proto', 'boot']);
    await lab.api.upsert(makeNode('node5', { podCIDRs: ['10.244.5.0/24'], ips: ['172.18.0.6'], created: '2024-01-05T00:00:00Z' }));
    await d.waitLog((l) => l.msg.startsWith('route conflict') && l.dst === '10.244.5.0/24', 10_000, 'conflict log');
    await eventually('conflict metric', async () => (await metric('podnet_routesync_route_conflicts')) === 1);
    await new Promise((r) => setTimeout(r, 1500)); // a resync passes
    const all = await ns.ipJson<{ dst: string; gateway?: string; protocol?: string }[]>(['-N', '-d', 'route', 'show', 'table', 'main']);
    expect(all).toContainEqual(expect.objectContaining({ dst: '10.99.0.0/24', gateway: '172.18.0.3', protocol: '4' }));
    expect(all).toContainEqual(expect.objectContaining({ dst: '10.244.5.0/24', gateway: '172.18.0.4', protocol: '3' }));
    // Once the other owner's route goes, the daemon's takes its place.
    await ns.exec('ip', ['route', 'del', '10.244.5.0/24', 'proto', 'boot']);
    await eventually('own route after conflict', async () => (await lab.ourRoutes(0)).includes('10.244.5.0/24 via 172.18.0.6'), 5000);
    await ns.exec('ip', ['route', 'del', '10.99.0.0/24']);
    await lab.api.remove('node5');
  });

  it('puts back a route deleted by hand at the next resync', async () => {
    await lab.nodes[0]!.ns.exec('ip', ['route', 'del', '10.244.2.0/24']);
    expect(await lab.ourRoutes(0)).not.toContain('10.244.2.0/24 via 172.18.0.3');
    await eventually('repaired', async () => (await lab.ourRoutes(0)).includes('10.244.2.0/24 via 172.18.0.3'), 5000);
  });

  it('API server restart mid-watch (history kept): resumes and notices a deletion made during the outage', async () => {
    const before = await lab.api.counts();
    await lab.api.stop();
    await lab.api.remove('node4');
    await lab.api.upsert(makeNode('node6', { podCIDRs: ['10.244.6.0/24'], ips: ['172.18.0.7'], created: '2024-01-06T00:00:00Z' }));
    await d.waitLog((l) => l.msg.startsWith('node source failed'), 10_000, 'source error');
    // Routes stay while the API server is gone.
    expect(await lab.ourRoutes(0)).toContain('10.244.4.0/24 via 172.18.0.5');
    await lab.api.start();
    await eventually('resumed', async () => {
      const r = await lab.ourRoutes(0);
      return !r.some((x) => x.startsWith('10.244.4.')) && r.includes('10.244.6.0/24 via 172.18.0.7');
    }, 20_000);
    expect((await lab.api.counts()).lists).toBe(before.lists); // resumed from its resourceVersion, no relist
  });

  it('API server restart with compacted history: 410 Gone, relist, the deletion is still noticed', async () => {
    const before = await lab.api.counts();
    await lab.api.stop();
    await lab.api.remove('node6');
    await lab.api.compact();
    await lab.api.start();
    await eventually('relisted', async () => !(await lab.ourRoutes(0)).some((x) => x.startsWith('10.244.6.')), 20_000);
    expect((await lab.api.counts()).lists).toBe(before.lists + 1);
  });

  it('rejects bad nodes (log + metric + reason) and keeps serving the good ones; Node objects missing fields do no harm', async () => {
    const ns = lab.nodes[0]!.ns;
    await ns.exec('ip', ['route', 'add', '192.168.50.0/24', 'via', '172.18.0.4']);
    const bad = [
      makeNode('bad-malformed', { podCIDRs: ['10.244.300.0/24'], ips: ['172.18.0.20'] }),
      makeNode('bad-hostbits', { podCIDRs: ['10.244.21.7/24'], ips: ['172.18.0.21'] }),
      makeNode('bad-all', { podCIDRs: ['0.0.0.0/0'], ips: ['172.18.0.22'] }),
      makeNode('bad-overlap-node-net', { podCIDRs: ['172.18.128.0/24'], ips: ['172.18.0.23'] }),
      makeNode('bad-overlap-peer', { podCIDRs: ['10.244.2.128/25'], ips: ['172.18.0.24'] }),
      makeNode('bad-overlap-self', { podCIDRs: ['10.244.1.0/25'], ips: ['172.18.0.25'] }),
      makeNode('bad-no-ip', { podCIDRs: ['10.244.26.0/24'], ips: [] }),
      makeNode('bad-gateway', { podCIDRs: ['10.244.27.0/24'], ips: ['192.168.50.9'] }),
      makeNode('bad-unreachable', { podCIDRs: ['10.244.28.0/24'], ips: ['198.51.100.9'] }),
      { metadata: { name: 'bare' } },
      { metadata: { name: 'no-status' }, spec: { podCIDR: '10.244.29.0/24' } },
      { metadata: { name: 'junk' }, spec: { podCIDRs: 'nope' as unknown as string[] }, status: { addresses: 'nope' as unknown as [] } },
    ];
    for (const n of bad) await lab.api.upsert({ ...n, metadata: { ...n.metadata, creationTimestamp: '2025-01-01T00:00:00Z' } });
    const expected: Record<string, string> = {
      'bad-malformed': 'PodCIDRMalformed',
      'bad-hostbits': 'PodCIDRMalformed',
      'bad-all': 'PodCIDRTooBroad',
      'bad-overlap-node-net': 'PodCIDROverlap',
      'bad-overlap-peer': 'PodCIDROverlap',
      'bad-overlap-self': 'PodCIDROverlap',
      'bad-no-ip': 'NoInternalIP',
      'bad-gateway': 'NotDirectlyReachable',
      'bad-unreachable': 'NotDirectlyReachable',
      bare: 'NoPodCIDR',
      'no-status': 'NoInternalIP',
    };
    for (const [node, reason] of Object.entries(expected)) {
      await d.waitLog((l) => l.msg === 'node rejected' && l.node === node && l.reason === reason, 10_000, `rejection of ${node}`);
    }
    expect(d.logs.find((l) => l.node === 'bad-gateway' && l.msg === 'node rejected')?.message).toMatch(/through gateway 172\.18\.0\.4/);
    expect(await metric('podnet_routesync_rejected_nodes{reason="PodCIDROverlap"}')).toBe(3);
    expect(await metric('podnet_routesync_rejected_nodes{reason="NotDirectlyReachable"}')).toBe(2);
    expect(await metric('podnet_routesync_rejected_nodes{reason="PodCIDRMalformed"}')).toBe(2);
    expect(await lab.ourRoutes(0)).toEqual(['10.244.2.0/24 via 172.18.0.3', 'fd00:10:244:2::/64 via fc00:f853:ccd:e793::3']);
    expect(d.child.exitCode).toBeNull();
    for (const n of bad) await lab.api.remove(n.metadata.name);
    await ns.exec('ip', ['route', 'del', '192.168.50.0/24']);
    await eventually('rejections cleared', async () => (await metric('podnet_routesync_rejected_nodes{reason="PodCIDROverlap"}')) === 0);
  });

  it('SIGTERM: exits 0 within 5 s and leaves routes, rules and the CNI config in place', async () => {
    const before = await lab.ourRoutes(0);
    const t = Date.now();
    d.child.kill('SIGTERM');
    const { code } = await d.exited;
    expect(code).toBe(0);
    expect(Date.now() - t).toBeLessThan(5000);
    expect(await lab.ourRoutes(0)).toEqual(before);
    expect((await lab.nodes[0]!.ns.exec('nft', ['list', 'table', 'inet', 'podnet-routesync'])).stdout).toContain('masquerade');
    expect(readFileSync(join(confDir(), '10-podnet.conflist'), 'utf8')).toContain('10.244.1.0/24');
  });
});

describe.runIf(isRoot)('podnet-routesync --once and bad configuration', () => {
  let lab: RoutesyncLab;
  beforeAll(async () => {
    lab = await RoutesyncLab.create({ nodes: 2 });
    await lab.api.seed([lab.nodeObject(0), lab.nodeObject(1)]);
  });
  afterAll(async () => {
    await lab?.destroy();
  });

  it('--once converges and exits 0', async () => {
    const h = await lab.daemon(1, ['--once', '--kubeconfig', lab.kubeconfig, '--cni-conf-dir', join(lab.dir, 'once'), '--metrics-addr=']);
    const { code } = await h.exited;
    expect(code, h.stderrText.join('\n')).toBe(0);
    expect(await lab.ourRoutes(1)).toEqual(['10.244.1.0/24 via 172.18.0.2']);
    expect(h.logs.some((l) => l.msg === 'converged')).toBe(true);
  });

  it('--masquerade iptables: the fallback chain in iptables and ip6tables, replaced atomically, one jump', async () => {
    const ns = lab.nodes[0]!.ns;
    for (let i = 0; i < 2; i += 1) {
      const h = await lab.daemon(0, ['--once', '--kubeconfig', lab.kubeconfig, '--cni-conf-dir', join(lab.dir, 'ipt'), '--masquerade', 'iptables', '--metrics-addr=']);
      expect((await h.exited).code, h.stderrText.join('\n')).toBe(0);
    }
    const v4 = (await ns.exec('iptables', ['-w', '5', '-t', 'nat', '-S'])).stdout.split('\n');
    expect(v4.filter((l) => l.includes('-j PODNET-MASQ'))).toHaveLength(1);
    expect(v4).toContain('-A PODNET-MASQ -d 10.244.1.0/24 -j RETURN');
    expect(v4).toContain('-A PODNET-MASQ -d 10.244.2.0/24 -j RETURN');
    expect(v4.filter((l) => l.startsWith('-A PODNET-MASQ -s 10.244.') && l.endsWith('-j MASQUERADE'))).toHaveLength(2);
    const v6 = (await ns.exec('ip6tables', ['-w', '5', '-t', 'nat', '-S'])).stdout;
    expect(v6).toContain('-N PODNET-MASQ');
  });

  it('--once with a kubeconfig pointing nowhere: non-zero exit and a clear error', async () => {
    const kc = join(lab.dir, 'nowhere');
    writeFileSync(kc, readFileSync(lab.kubeconfig, 'utf8').replace('172.18.0.1:6443', '172.18.0.1:6999'));
    const h = await lab.daemon(1, ['--once', '--kubeconfig', kc, '--cni-conf-dir', join(lab.dir, 'x')]);
    const { code } = await h.exited;
    expect(code).toBe(1);
    expect(h.logs.find((l) => l.level === 'error')?.msg).toMatch(/^failed to list nodes from "http:\/\/172\.18\.0\.1:6999": fetch failed: .*ECONNREFUSED/);
  });

  it('a kubeconfig file that does not exist: non-zero exit naming it', async () => {
    const h = await lab.daemon(1, ['--kubeconfig', '/nonexistent/prs-kubeconfig']);
    const { code } = await h.exited;
    expect(code).toBe(1);
    expect(h.logs[0]?.msg).toMatch(/^failed to load kubeconfig "\/nonexistent\/prs-kubeconfig": .*ENOENT/);
  });

  it('no in-cluster environment and no --kubeconfig: says what to pass', async () => {
    const h = await lab.daemon(1, ['--once']);
    expect((await h.exited).code).toBe(1);
    expect(h.logs[0]?.msg).toMatch(/pass --kubeconfig PATH or --nodes-file PATH/);
  });

  it('usage errors exit 2 with the reason', async () => {
    const bad = await lab.daemon(1, ['--frobnicate']);
    expect((await bad.exited).code).toBe(2);
    expect(bad.stderrText.join('\n')).toContain('unknown flag "--frobnicate"');
  });

  it('daemon mode with the API server unreachable: keeps running, not ready, retries with backoff', async () => {
    const kc = join(lab.dir, 'nowhere2');
    writeFileSync(kc, readFileSync(lab.kubeconfig, 'utf8').replace('172.18.0.1:6443', '172.18.0.1:6998'));
    const h = await lab.daemon(1, ['--kubeconfig', kc, '--cni-conf-dir', join(lab.dir, 'y'), '--metrics-addr', '127.0.0.1:9650']);
    await h.waitLog((l) => l.msg === 'retrying node list/watch' && Number(l.attempt) >= 2, 15_000, 'second retry');
    const ready = await httpGetIn(lab.nodes[1]!.ns, 'http://127.0.0.1:9650/readyz');
    expect(ready.code).toBe(503);
    expect(JSON.parse(ready.body).problems[0]).toMatch(/has not listed nodes yet/);
    expect((await httpGetIn(lab.nodes[1]!.ns, 'http://127.0.0.1:9650/healthz')).code).toBe(200);
    expect(await lab.ourRoutes(1)).toEqual(['10.244.1.0/24 via 172.18.0.2']); // from --once above, untouched
    h.child.kill('SIGTERM');
    expect((await h.exited).code).toBe(0);
  });
});

describe.runIf(isRoot)('podnet-routesync --nodes-file', () => {
  let lab: RoutesyncLab;
  beforeAll(async () => {
    lab = await RoutesyncLab.create({ nodes: 3 });
  });
  afterAll(async () => {
    await lab?.destroy();
  });

  it('follows the file: routes appear, move and vanish as it is rewritten', async () => {
    const file = join(lab.dir, 'nodes.yaml');
    const write = (nodes: unknown[]) => writeFileSync(file, JSON.stringify({ apiVersion: 'v1', kind: 'NodeList', items: nodes }));
    write([lab.nodeObject(0), lab.nodeObject(1), lab.nodeObject(2)]);
    const h = await lab.daemon(1, ['--nodes-file', file, '--cni-conf-dir', join(lab.dir, 'nf'), '--metrics-addr=', '--masquerade', 'none']);
    await eventually('routes', async () => (await lab.ourRoutes(1)).length === 2);
    expect(await lab.ourRoutes(1)).toEqual(['10.244.1.0/24 via 172.18.0.2', '10.244.3.0/24 via 172.18.0.4']);
    write([lab.nodeObject(0), lab.nodeObject(1)]);
    await eventually('deleted', async () => (await lab.ourRoutes(1)).length === 1);
    write([makeNode('node1', { podCIDRs: ['10.244.1.0/24'], ips: ['172.18.0.9'] }), lab.nodeObject(1)]);
    await eventually('moved', async () => (await lab.ourRoutes(1)).includes('10.244.1.0/24 via 172.18.0.9'));
    writeFileSync(file, '{ broken');
    await h.waitLog((l) => l.msg.startsWith('node source failed'), 10_000, 'parse error');
    expect(await lab.ourRoutes(1)).toEqual(['10.244.1.0/24 via 172.18.0.9']); // kept
    // Items that are not Node objects: a bad file too, never an empty cluster.
    writeFileSync(file, '{"items":[1,2,"x",null]}');
    await h.waitLog((l) => l.msg.startsWith('node source failed') && String(l.error).includes('not a Node object'), 10_000, 'items error');
    expect(await lab.ourRoutes(1)).toEqual(['10.244.1.0/24 via 172.18.0.9']); // kept
    h.child.kill('SIGTERM');
    expect((await h.exited).code).toBe(0);
  });
});

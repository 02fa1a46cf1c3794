import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isRoot } from '../helpers/env.js';
import { type FakeNode, makeNode } from '../helpers/fake-apiserver.js';
import { type DaemonHandle, RoutesyncLab, eventually, httpGetIn } from '../helpers/routesync-lab.js';

/**
 * podnet-routesync refuses what is not a pod network (issue 10), the real executable in a
 * three-node namespace lab against the fake API server: Nodes whose podCIDR is multicast or
 * absurdly wide, whose InternalIP cannot be a next hop, or that lie outside --cluster-cidr earn a
 * rejection and nothing else — the node running the daemon stays converged (--once exits 0,
 * /readyz answers 200). This node's own bad podCIDR, and a route another owner holds, are not
 * converged (--once exits 1).
 */
const BAD: Record<string, { node: FakeNode; reason: string }> = {
  'bad-mcast-ip': { node: makeNode('bad-mcast-ip', { podCIDRs: ['10.244.50.0/24'], ips: ['224.0.0.5'] }), reason: 'InternalIPUnusable' },
  'bad-bcast-ip': { node: makeNode('bad-bcast-ip', { podCIDRs: ['10.244.51.0/24'], ips: ['255.255.255.255'] }), reason: 'InternalIPUnusable' },
  'bad-dbcast-ip': { node: makeNode('bad-dbcast-ip', { podCIDRs: ['10.244.57.0/24'], ips: ['172.18.255.255'] }), reason: 'InternalIPUnusable' },
  'bad-ll6-ip': { node: makeNode('bad-ll6-ip', { podCIDRs: ['fd00:10:244:52::/64'], ips: ['fe80::52'] }), reason: 'InternalIPUnusable' },
  'bad-mcast': { node: makeNode('bad-mcast', { podCIDRs: ['224.0.0.0/4'], ips: ['172.18.0.53'] }), reason: 'PodCIDRReserved' },
  'bad-mcast6': { node: makeNode('bad-mcast6', { podCIDRs: ['ff02::/16'], ips: ['fc00:f853:ccd:e793::54'] }), reason: 'PodCIDRReserved' },
  'bad-link-local': { node: makeNode('bad-link-local', { podCIDRs: ['169.254.0.0/16'], ips: ['172.18.0.55'] }), reason: 'PodCIDRReserved' },
  'bad-wide': { node: makeNode('bad-wide', { podCIDRs: ['8.0.0.0/7'], ips: ['172.18.0.56'] }), reason: 'PodCIDRTooBroad' },
};

describe.runIf(isRoot)('podnet-routesync refuses what is not a pod network', () => {
  let lab: RoutesyncLab;
  const once = async (i: number, extra: string[] = []): Promise<DaemonHandle> => {
    const h = await lab.daemon(i, ['--once', '--kubeconfig', lab.kubeconfig, '--cni-conf-dir', join(lab.dir, `once-${i}`), '--metrics-addr=', '--masquerade', 'none', ...extra]);
    await h.exited;
    return h;
  };
  const rejections = (h: DaemonHandle) => Object.fromEntries(h.logs.filter((l) => l.msg === 'node rejected').map((l) => [l.node, l.reason]));

  beforeAll(async () => {
    lab = await RoutesyncLab.create({ nodes: 3, prefix: 'prt' });
    await lab.api.seed([lab.nodeObject(0, { dual: true }), lab.nodeObject(1, { dual: true }), lab.nodeObject(2), ...Object.values(BAD).map((b) => b.node)]);
  });
  afterAll(async () => {
    await lab?.destroy();
  });

  it('--once: bad peers are rejected with their reasons, the good ones routed, exit 0', async () => {
    const h = await once(0);
    expect(h.child.exitCode, h.stderrText.slice(-10).join('\n')).toBe(0);
    expect(rejections(h)).toEqual(Object.fromEntries(Object.entries(BAD).map(([n, b]) => [n, b.reason])));
    expect(await lab.ourRoutes(0)).toEqual(['10.244.2.0/24 via 172.18.0.3', '10.244.3.0/24 via 172.18.0.4', 'fd00:10:244:2::/64 via fc00:f853:ccd:e793::3']);
    // 8.8.8.8 still leaves through the node's own default route, not through a peer.
    const get = await lab.nodes[0]!.ns.ipJson<{ gateway?: string }[]>(['route', 'get', '8.8.8.8']);
    expect(get[0]?.gateway).toBe('172.18.0.1');
  });

  it('daemon mode: /readyz answers 200 while bad peers are rejected', async () => {
    const d = await lab.daemon(1, ['--kubeconfig', lab.kubeconfig, '--cni-conf-dir', join(lab.dir, 'daemon-1'), '--metrics-addr', '127.0.0.1:9651', '--masquerade', 'none']);
    try {
      await eventually('ready', async () => (await httpGetIn(lab.nodes[1]!.ns, 'http://127.0.0.1:9651/readyz')).code === 200, 15_000);
      const body = JSON.parse((await httpGetIn(lab.nodes[1]!.ns, 'http://127.0.0.1:9651/readyz')).body);
      expect(body).toMatchObject({ converged: true, problems: [], rejected: Object.keys(BAD).length });
      expect(await lab.ourRoutes(1)).toEqual(['10.244.1.0/24 via 172.18.0.2', '10.244.3.0/24 via 172.18.0.4', 'fd00:10:244:1::/64 via fc00:f853:ccd:e793::2']);
      d.child.kill('SIGTERM');
      expect((await d.exited).code).toBe(0);
    } finally {
      await d.kill();
    }
  });

  it('--cluster-cidr: a podCIDR outside the cluster range is refused, one inside routed', async () => {
    await lab.api.upsert(makeNode('outside', { podCIDRs: ['10.99.0.0/24'], ips: ['172.18.0.60'] }));
    await lab.api.upsert(makeNode('inside', { podCIDRs: ['10.244.61.0/24'], ips: ['172.18.0.61'] }));
    try {
      const h = await once(2, ['--cluster-cidr', '10.244.0.0/16,fd00:10:244::/56']);
      expect(h.child.exitCode, h.stderrText.slice(-10).join('\n')).toBe(0);
      expect(rejections(h)).toMatchObject({ outside: 'PodCIDROutsideCluster' });
      expect(h.logs.find((l) => l.msg === 'node rejected' && l.node === 'outside')?.message).toMatch(/outside the cluster's pod range 10\.244\.0\.0\/16/);
      expect(await lab.ourRoutes(2)).toEqual([
        '10.244.1.0/24 via 172.18.0.2',
        '10.244.2.0/24 via 172.18.0.3',
        '10.244.61.0/24 via 172.18.0.61',
        'fd00:10:244:1::/64 via fc00:f853:ccd:e793::2',
        'fd00:10:244:2::/64 via fc00:f853:ccd:e793::3',
      ]);
    } finally {
      await lab.api.remove('outside');
      await lab.api.remove('inside');
    }
  });

  it("this node's podCIDR equal to the node network: no CNI config, exit 1 with the reason", async () => {
    const n = lab.nodes[2]!;
    await lab.api.upsert(makeNode(n.name, { podCIDRs: ['172.18.0.0/16'], ips: [n.ip4], created: '2024-01-03T00:00:00Z' }));
    try {
      const h = await lab.daemon(2, ['--once', '--kubeconfig', lab.kubeconfig, '--cni-conf-dir', join(lab.dir, 'self-bad'), '--metrics-addr=', '--masquerade', 'none']);
      expect((await h.exited).code).toBe(1);
      const problems = (h.logs.find((l) => l.msg === 'not converged')?.problems ?? []) as string[];
      expect(problems).toEqual([expect.stringMatching(/^PodCIDROverlap: this node: podCIDR "172\.18\.0\.0\/16" overlaps 172\.18\.0\.0\/16 on this node's interface eth0; CNI config not written$/)]);
      expect(existsSync(join(lab.dir, 'self-bad', '10-podnet.conflist'))).toBe(false);
    } finally {
      await lab.api.upsert(lab.nodeObject(2));
    }
  });

  it("--once exits 1 when another owner's route holds a desired destination, 0 once it is gone", async () => {
    const ns = lab.nodes[0]!.ns;
    await ns.exec('ip', ['route', 'del', '10.244.3.0/24', 'proto', '112']);
    await ns.exec('ip', ['route', 'add', '10.244.3.0/24', 'via', '172.18.0.3', 'proto', 'static']);
    try {
      const h = await once(0);
      expect(h.child.exitCode).toBe(1);
      const problems = (h.logs.find((l) => l.msg === 'not converged')?.problems ?? []) as string[];
      expect(problems).toEqual([expect.stringMatching(/^route conflict: 10\.244\.3\.0\/24 of node "node3" is held by a route of another owner \(proto 4 via 172\.18\.0\.3/)]);
      const routes = await ns.ipJson<{ dst: string; gateway?: string; protocol?: string }[]>(['-N', 'route', 'show', '10.244.3.0/24']);
      expect(routes).toEqual([expect.objectContaining({ gateway: '172.18.0.3', protocol: '4' })]); // left alone
    } finally {
      await ns.exec('ip', ['route', 'del', '10.244.3.0/24', 'proto', 'static']);
    }
    const h = await once(0);
    expect(h.child.exitCode).toBe(0);
    expect(await lab.ourRoutes(0)).toContain('10.244.3.0/24 via 172.18.0.4');
    expect(readFileSync(join(lab.dir, 'once-0', '10-podnet.conflist'), 'utf8')).toContain('10.244.1.0/24');
  });
});

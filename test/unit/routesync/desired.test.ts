import { describe, expect, it } from 'vitest';
import { parseNetwork as parseCidr } from '../../../lib/addr/addr.js';
import { NodeMemo, calcDesired, calcPeerAddresses, calcSelf } from '../../../routesync/desired.js';
import type { LocalAddress, NodeLike, Reachability } from '../../../routesync/types.js';

/** Node factory: `ips` become InternalIPs, `cidrs` podCIDRs. */
function node(name: string, cidrs: string[] | undefined, ips: string[], created?: string): NodeLike {
  return {
    metadata: { name, ...(created ? { creationTimestamp: created } : {}) },
    spec: cidrs ? { podCIDRs: cidrs, podCIDR: cidrs[0] } : {},
    status: { addresses: [...ips.map((address) => ({ type: 'InternalIP', address })), { type: 'Hostname', address: name }] },
  };
}

const uplink: LocalAddress[] = [
  { ifname: 'lo', mtu: 65536, address: '127.0.0.1', prefix: 8, family: 4 },
  { ifname: 'eth0', mtu: 1500, address: '172.18.0.2', prefix: 16, family: 4 },
  { ifname: 'eth0', mtu: 1500, address: 'fc00:f853:ccd:e793::2', prefix: 64, family: 6 },
  // The CNI bridge's gateway address lies inside this node's own podCIDR: not a conflict.
  { ifname: 'podnet0', mtu: 1500, address: '10.244.0.1', prefix: 24, family: 4 },
];

/** Every address directly reachable unless listed. */
function reach(nodes: NodeLike[], special: Record<string, Reachability> = {}): Map<string, Reachability> {
  const m = new Map<string, Reachability>();
  for (const ip of calcPeerAddresses(nodes, 'self')) m.set(ip, special[ip] ?? { ok: true, dev: 'eth0' });
  return m;
}

function desired(nodes: NodeLike[], special: Record<string, Reachability> = {}, local = uplink) {
  return calcDesired({ nodes, selfName: 'self', localAddresses: local, reachability: reach(nodes, special) });
}

const self = node('self', ['10.244.0.0/24'], ['172.18.0.2']);

describe('calcDesired: routes', () => {
  it('single stack: one route per other node, none for this node', () => {
    const d = desired([self, node('b', ['10.244.1.0/24'], ['172.18.0.3']), node('c', ['10.244.2.0/24'], ['172.18.0.4'])]);
    expect(d.routes).toEqual([
      { dst: '10.244.1.0/24', via: '172.18.0.3', family: 4, node: 'b' },
      { dst: '10.244.2.0/24', via: '172.18.0.4', family: 4, node: 'c' },
    ]);
    expect(d.rejections).toEqual([]);
    expect(d.self).toEqual({ ok: true, name: 'self', podCIDRs: ['10.244.0.0/24'], internalIPs: ['172.18.0.2'] });
    expect(d.clusterPodCIDRs).toEqual({ v4: ['10.244.0.0/24', '10.244.1.0/24', '10.244.2.0/24'], v6: [] });
  });

  it('dual stack: one route per family, each via the InternalIP of its family', () => {
    const me = node('self', ['10.244.0.0/24', 'fd00:10:244::/64'], ['172.18.0.2', 'fc00:f853:ccd:e793::2']);
    const b = node('b', ['10.244.1.0/24', 'fd00:10:244:1::/64'], ['fc00:f853:ccd:e793::3', '172.18.0.3']);
    const d = desired([me, b]);
    expect(d.routes).toEqual([
      { dst: '10.244.1.0/24', via: '172.18.0.3', family: 4, node: 'b' },
      { dst: 'fd00:10:244:1::/64', via: 'fc00:f853:ccd:e793::3', family: 6, node: 'b' },
    ]);
    expect(d.self).toMatchObject({ ok: true, podCIDRs: ['10.244.0.0/24', 'fd00:10:244::/64'], internalIPs: ['172.18.0.2', 'fc00:f853:ccd:e793::2'] });
    expect(d.clusterPodCIDRs).toEqual({ v4: ['10.244.0.0/24', '10.244.1.0/24'], v6: ['fd00:10:244:1::/64', 'fd00:10:244::/64'] });
  });

  it('canonicalises addresses (IPv6 compression) and reads the legacy spec.podCIDR', () => {
    const b: NodeLike = { metadata: { name: 'b' }, spec: { podCIDR: 'fd00:0010:0244:0001:0000:0000:0000:0000/64' }, status: { addresses: [{ type: 'InternalIP', address: 'FC00:F853:CCD:E793:0:0:0:3' }] } };
    expect(desired([self, b]).routes).toEqual([{ dst: 'fd00:10:244:1::/64', via: 'fc00:f853:ccd:e793::3', family: 6, node: 'b' }]);
  });

  it('follows node add, change and delete', () => {
    const b = node('b', ['10.244.1.0/24'], ['172.18.0.3']);
    const before = desired([self, b]).routes;
    const added = desired([self, b, node('c', ['10.244.2.0/24'], ['172.18.0.4'])]).routes;
    const movedIp = desired([self, node('b', ['10.244.1.0/24'], ['172.18.0.9'])]).routes;
    const newCidr = desired([self, node('b', ['10.244.7.0/24'], ['172.18.0.3'])]).routes;
    const deleted = desired([self]).routes;
    expect(before.map((r) => `${r.dst} via ${r.via}`)).toEqual(['10.244.1.0/24 via 172.18.0.3']);
    expect(added.map((r) => `${r.dst} via ${r.via}`)).toEqual(['10.244.1.0/24 via 172.18.0.3', '10.244.2.0/24 via 172.18.0.4']);
    expect(movedIp.map((r) => `${r.dst} via ${r.via}`)).toEqual(['10.244.1.0/24 via 172.18.0.9']);
    expect(newCidr.map((r) => `${r.dst} via ${r.via}`)).toEqual(['10.244.7.0/24 via 172.18.0.3']);
    expect(deleted).toEqual([]);
  });

  it('still routes to peers when this node is missing, and says why it has no CNI config', () => {
    const d = desired([node('b', ['10.244.1.0/24'], ['172.18.0.3'])]);
    expect(d.routes).toHaveLength(1);
    expect(d.self).toMatchObject({ ok: false, reason: 'SelfNodeNotFound' });
  });
});

describe('calcDesired: every rejection', () => {
  const cases: { name: string; nodes: NodeLike[]; special?: Record<string, Reachability>; reason: string; message: RegExp }[] = [
    { name: 'no podCIDR yet', nodes: [node('b', undefined, ['172.18.0.3'])], reason: 'NoPodCIDR', message: /has no podCIDR yet/ },
    { name: 'not a CIDR', nodes: [node('b', ['10.244.1.0'], ['172.18.0.3'])], reason: 'PodCIDRMalformed', message: /not in CIDR notation/ },
    { name: 'garbage', nodes: [node('b', ['banana/24'], ['172.18.0.3'])], reason: 'PodCIDRMalformed', message: /not an IP address/ },
    { name: 'short IPv4 form', nodes: [node('b', ['10.244/16'], ['172.18.0.3'])], reason: 'PodCIDRMalformed', message: /not an IP address/ },
    { name: 'prefix too long', nodes: [node('b', ['10.244.1.0/33'], ['172.18.0.3'])], reason: 'PodCIDRMalformed', message: /prefix length over 32/ },
    { name: 'host bits set', nodes: [node('b', ['10.244.1.5/24'], ['172.18.0.3'])], reason: 'PodCIDRMalformed', message: /host bits set/ },
    { name: '0.0.0.0/0', nodes: [node('b', ['0.0.0.0/0'], ['172.18.0.3'])], reason: 'PodCIDRTooBroad', message: /covers every IPv4 address/ },
    { name: '::/0', nodes: [node('b', ['::/0'], ['fc00:f853:ccd:e793::3'])], reason: 'PodCIDRTooBroad', message: /covers every IPv6 address/ },
    { name: 'overlaps the node network', nodes: [node('b', ['172.18.5.0/24'], ['172.18.0.3'])], reason: 'PodCIDROverlap', message: /overlaps 172\.18\.0\.0\/16 on this node's interface eth0/ },
    { name: 'overlaps loopback', nodes: [node('b', ['127.1.0.0/16'], ['172.18.0.3'])], reason: 'PodCIDROverlap', message: /interface lo/ },
    { name: 'contains the node network', nodes: [node('b', ['172.0.0.0/8'], ['172.18.0.3'])], reason: 'PodCIDROverlap', message: /overlaps 172\.18\.0\.0\/16/ },
    { name: 'overlaps this node\'s podCIDR', nodes: [node('b', ['10.244.0.128/25'], ['172.18.0.3'])], reason: 'PodCIDROverlap', message: /this node's podCIDR "10\.244\.0\.0\/24"/ },
    { name: 'no InternalIP', nodes: [node('b', ['10.244.1.0/24'], [])], reason: 'NoInternalIP', message: /no IPv4 InternalIP/ },
    { name: 'InternalIP of the other family only', nodes: [node('b', ['10.244.1.0/24'], ['fc00:f853:ccd:e793::3'])], reason: 'NoInternalIP', message: /no IPv4 InternalIP for podCIDR "10\.244\.1\.0\/24"/ },
    { name: 'InternalIP not an address', nodes: [node('b', ['10.244.1.0/24'], ['node-b.example'])], reason: 'InternalIPMalformed', message: /"node-b\.example" is not an IP address/ },
    { name: 'via a gateway', nodes: [node('b', ['10.244.1.0/24'], ['192.168.9.9'])], special: { '192.168.9.9': { ok: true, dev: 'eth0', gateway: '172.18.0.1' } }, reason: 'NotDirectlyReachable', message: /through gateway 172\.18\.0\.1/ },
    { name: 'no route at all', nodes: [node('b', ['10.244.1.0/24'], ['192.168.9.9'])], special: { '192.168.9.9': { ok: false, error: 'Network is unreachable' } }, reason: 'NotDirectlyReachable', message: /no route to InternalIP 192\.168\.9\.9: Network is unreachable/ },
    { name: 'an address of this node', nodes: [node('b', ['10.244.1.0/24'], ['172.18.0.2'])], special: { '172.18.0.2': { ok: true, dev: 'lo', local: true } }, reason: 'NotDirectlyReachable', message: /is an address of this node/ },
    // Not a pod network (issue 10).
    { name: 'IPv4 multicast', nodes: [node('b', ['224.0.0.0/4'], ['172.18.0.3'])], reason: 'PodCIDRReserved', message: /overlaps multicast 224\.0\.0\.0\/4/ },
    { name: 'IPv6 multicast', nodes: [node('b', ['ff02::/16'], ['fc00:f853:ccd:e793::3'])], reason: 'PodCIDRReserved', message: /"ff02::\/16" overlaps multicast ff00::\/8/ },
    { name: 'the broadcast address', nodes: [node('b', ['255.255.255.255/32'], ['172.18.0.3'])], reason: 'PodCIDRReserved', message: /broadcast address/ },
    { name: 'IPv6 loopback', nodes: [node('b', ['::1/128'], ['fc00:f853:ccd:e793::3'])], reason: 'PodCIDRReserved', message: /loopback/ },
    { name: 'IPv4 link-local', nodes: [node('b', ['169.254.0.0/16'], ['172.18.0.3'])], reason: 'PodCIDRReserved', message: /link-local 169\.254\.0\.0\/16/ },
    { name: 'IPv6 link-local', nodes: [node('b', ['fe80::/64'], ['fc00:f853:ccd:e793::3'])], reason: 'PodCIDRReserved', message: /link-local fe80::\/10/ },
    { name: 'the unspecified range', nodes: [node('b', ['0.0.0.0/8'], ['172.18.0.3'])], reason: 'PodCIDRReserved', message: /unspecified/ },
    { name: 'absurdly wide (8.8.8.8 would go to the peer)', nodes: [node('b', ['8.0.0.0/7'], ['172.18.0.3'])], reason: 'PodCIDRTooBroad', message: /"8\.0\.0\.0\/7" is wider than \/8/ },
    { name: 'absurdly wide IPv6', nodes: [node('b', ['2000::/3'], ['fc00:f853:ccd:e793::3'])], reason: 'PodCIDRTooBroad', message: /wider than \/32/ },
    { name: 'InternalIP multicast', nodes: [node('b', ['10.244.1.0/24'], ['224.0.0.5'])], reason: 'InternalIPUnusable', message: /224\.0\.0\.5 is multicast: not a next hop/ },
    { name: 'InternalIP broadcast', nodes: [node('b', ['10.244.1.0/24'], ['255.255.255.255'])], reason: 'InternalIPUnusable', message: /broadcast address: not a next hop/ },
    { name: 'InternalIP IPv6 link-local', nodes: [node('b', ['fd00:10:244:1::/64'], ['fe80::3'])], reason: 'InternalIPUnusable', message: /fe80::3 is link-local: not a next hop without a device/ },
    { name: 'InternalIP IPv4 link-local', nodes: [node('b', ['10.244.1.0/24'], ['169.254.3.3'])], reason: 'InternalIPUnusable', message: /link-local/ },
    { name: 'InternalIP unspecified', nodes: [node('b', ['10.244.1.0/24'], ['0.0.0.0'])], reason: 'InternalIPUnusable', message: /0\.0\.0\.0 is the unspecified/ },
    { name: 'InternalIP the broadcast address of the node network', nodes: [node('b', ['10.244.1.0/24'], ['172.18.255.255'])], reason: 'InternalIPUnusable', message: /172\.18\.255\.255 is the broadcast address of 172\.18\.0\.0\/16 on this node's interface eth0/ },
    { name: 'InternalIP loopback', nodes: [node('b', ['10.244.1.0/24'], ['127.0.0.1'])], reason: 'InternalIPUnusable', message: /loopback/ },
  ];
  for (const c of cases) {
    it(`${c.reason}: ${c.name}`, () => {
      const d = desired([self, ...c.nodes], c.special);
      expect(d.routes).toEqual([]);
      expect(d.rejections).toHaveLength(1);
      expect(d.rejections[0]).toMatchObject({ node: 'b', reason: c.reason });
      expect(d.rejections[0]?.message).toMatch(c.message);
      expect(d.clusterPodCIDRs.v4).toEqual(['10.244.0.0/24']);
    });
  }

  it('PodCIDRMalformed: a second podCIDR of one family is refused, the first one kept', () => {
    const d = desired([self, node('b', ['10.244.1.0/24', '10.244.9.0/24'], ['172.18.0.3'])]);
    expect(d.routes.map((r) => r.dst)).toEqual(['10.244.1.0/24']);
    expect(d.rejections).toMatchObject([{ node: 'b', reason: 'PodCIDRMalformed', podCIDR: '10.244.9.0/24', message: expect.stringMatching(/second IPv4 podCIDR/) }]);
  });

  it('PodCIDROverlap between two peers: the older node keeps its route', () => {
    const older = node('zeta', ['10.244.8.0/24'], ['172.18.0.3'], '2024-01-01T00:00:00Z');
    const newer = node('alpha', ['10.244.8.0/25'], ['172.18.0.4'], '2024-06-01T00:00:00Z');
    const d = desired([self, newer, older]);
    expect(d.routes).toEqual([{ dst: '10.244.8.0/24', via: '172.18.0.3', family: 4, node: 'zeta' }]);
    expect(d.rejections).toEqual([
      { node: 'alpha', reason: 'PodCIDROverlap', podCIDR: '10.244.8.0/25', message: 'podCIDR "10.244.8.0/25" overlaps podCIDR "10.244.8.0/24" of node "zeta"' },
    ]);
  });

  it('equal age: the name decides, deterministically', () => {
    const a = node('a', ['10.244.8.0/24'], ['172.18.0.3']);
    const b = node('b', ['10.244.8.0/24'], ['172.18.0.4']);
    expect(desired([self, b, a]).routes.map((r) => r.node)).toEqual(['a']);
    expect(desired([self, a, b]).routes.map((r) => r.node)).toEqual(['a']);
  });

  it('rejects per podCIDR: a dual-stack node can keep its IPv4 route when its IPv6 one is bad', () => {
    const b = node('b', ['10.244.1.0/24', 'fd00:10:244:1::/64'], ['172.18.0.3']);
    const d = desired([self, b]);
    expect(d.routes.map((r) => r.dst)).toEqual(['10.244.1.0/24']);
    expect(d.rejections).toMatchObject([{ node: 'b', reason: 'NoInternalIP', podCIDR: 'fd00:10:244:1::/64' }]);
  });

  it('a node without a name, a duplicate name, and objects missing every field never throw', () => {
    const broken: NodeLike[] = [
      {},
      { metadata: {} },
      { metadata: { name: 'nospec' } },
      { metadata: { name: 'nostatus' }, spec: { podCIDR: '10.244.3.0/24' } },
      { metadata: { name: 'weird' }, spec: { podCIDRs: [] }, status: { addresses: [{}, { type: 'InternalIP' }] } },
      node('dup', ['10.244.4.0/24'], ['172.18.0.5']),
      node('dup', ['10.244.5.0/24'], ['172.18.0.6']),
      null as unknown as NodeLike,
    ];
    const d = desired([self, ...broken]);
    expect(d.routes.map((r) => `${r.node} ${r.dst}`)).toEqual(['dup 10.244.4.0/24']);
    expect(d.rejections.map((r) => `${r.node}:${r.reason}`).sort()).toEqual(
      ['#1:NodeNameMissing', '#2:NodeNameMissing', '#8:NodeNameMissing', 'dup:DuplicateNodeName', 'nospec:NoPodCIDR', 'nostatus:NoInternalIP', 'weird:NoPodCIDR'].sort(),
    );
  });
});

describe('calcDesired: pod networks and next hops', () => {
  it('a loopback podCIDR is refused even when no interface holds loopback addresses', () => {
    const d = desired([self, node('b', ['127.1.0.0/16'], ['172.18.0.3'])], {}, uplink.filter((a) => a.ifname !== 'lo'));
    expect(d.routes).toEqual([]);
    expect(d.rejections).toMatchObject([{ node: 'b', reason: 'PodCIDRReserved', message: expect.stringMatching(/loopback 127\.0\.0\.0\/8/) }]);
  });

  it('an unusable InternalIP is passed over for the next usable one of its family', () => {
    const d = desired([self, node('b', ['10.244.1.0/24'], ['224.0.0.5', '172.18.0.3'])]);
    expect(d.routes).toEqual([{ dst: '10.244.1.0/24', via: '172.18.0.3', family: 4, node: 'b' }]);
    expect(d.rejections).toEqual([]);
  });

  it('unusable InternalIPs are never looked up as peers', () => {
    expect(calcPeerAddresses([self, node('b', ['10.244.1.0/24'], ['224.0.0.5']), node('c', ['10.244.2.0/24'], ['fe80::1', '172.18.0.4'])], 'self')).toEqual(['172.18.0.4']);
  });

  it('one bad peer costs only its own route', () => {
    const d = desired([self, node('b', ['10.244.1.0/24'], ['172.18.0.3']), node('m', ['224.0.0.0/4'], ['172.18.0.5']), node('x', ['10.244.9.0/24'], ['255.255.255.255'])]);
    expect(d.routes.map((r) => r.node)).toEqual(['b']);
    expect(d.rejections.map((r) => `${r.node}:${r.reason}`)).toEqual(['m:PodCIDRReserved', 'x:InternalIPUnusable']);
    expect(d.self.ok).toBe(true);
  });
});

describe('calcDesired: --cluster-cidr', () => {
  const cluster = ['10.244.0.0/16', 'fd00:10:244::/56'].map((t) => {
    const p = parseCidr(t);
    if (!p.ok) throw new Error(p.error);
    return p.value;
  });
  const run = (nodes: NodeLike[], clusterCIDRs = cluster) =>
    calcDesired({ nodes, selfName: 'self', localAddresses: uplink, reachability: reach(nodes), clusterCIDRs });

  it('podCIDRs inside the cluster range are routed, those outside are refused with the range named', () => {
    const d = run([self, node('b', ['10.244.1.0/24'], ['172.18.0.3']), node('c', ['10.245.1.0/24'], ['172.18.0.4']), node('g', ['8.8.8.0/24'], ['172.18.0.5'])]);
    expect(d.routes.map((r) => r.dst)).toEqual(['10.244.1.0/24']);
    expect(d.rejections).toMatchObject([
      { node: 'c', reason: 'PodCIDROutsideCluster', message: expect.stringMatching(/"10\.245\.1\.0\/24" is outside the cluster's pod range 10\.244\.0\.0\/16/) },
      { node: 'g', reason: 'PodCIDROutsideCluster' },
    ]);
  });

  it('a family the cluster has no range for is refused', () => {
    const d = run([self, node('b', ['10.244.1.0/24', 'fd00:10:244:1::/64'], ['172.18.0.3', 'fc00:f853:ccd:e793::3'])], cluster.slice(0, 1));
    expect(d.routes.map((r) => r.dst)).toEqual(['10.244.1.0/24']);
    expect(d.rejections).toMatchObject([{ node: 'b', reason: 'PodCIDROutsideCluster', podCIDR: 'fd00:10:244:1::/64', message: expect.stringMatching(/no IPv6 pod range/) }]);
  });

  it('this node\'s own podCIDR outside the range: no CNI config, peers still routed', () => {
    const d = run([node('self', ['10.250.0.0/24'], ['172.18.0.2']), node('b', ['10.244.1.0/24'], ['172.18.0.3'])]);
    expect(d.self).toMatchObject({ ok: false, reason: 'PodCIDROutsideCluster', message: expect.stringMatching(/^this node: /) });
    expect(d.routes.map((r) => r.dst)).toEqual(['10.244.1.0/24']);
  });

  it('the memo never hands out a result computed for another cluster range', () => {
    const memo = new NodeMemo();
    const nodes = [self, node('c', ['10.245.1.0/24'], ['172.18.0.4'])];
    const input = { nodes, selfName: 'self', localAddresses: uplink, reachability: reach(nodes), memo };
    expect(calcDesired({ ...input, clusterCIDRs: cluster }).routes).toEqual([]);
    expect(calcDesired(input).routes.map((r) => r.dst)).toEqual(['10.245.1.0/24']);
    expect(calcDesired({ ...input, clusterCIDRs: cluster }).rejections).toMatchObject([{ node: 'c', reason: 'PodCIDROutsideCluster' }]);
  });
});

describe('calcDesired: this node\'s own podCIDR against its own networks', () => {
  it('a podCIDR equal to the node network is refused: no CNI config, no masquerade exemption for it', () => {
    const me = node('self', ['172.18.0.0/16'], ['172.18.0.2']);
    const d = desired([me, node('b', ['10.244.1.0/24'], ['172.18.0.3'])]);
    expect(d.self).toMatchObject({ ok: false, reason: 'PodCIDROverlap', message: expect.stringMatching(/this node: podCIDR "172\.18\.0\.0\/16" overlaps 172\.18\.0\.0\/16 on this node's interface eth0/) });
    expect(d.clusterPodCIDRs.v4).toEqual(['10.244.1.0/24']);
    expect(d.routes.map((r) => r.dst)).toEqual(['10.244.1.0/24']);
  });

  it('a podCIDR holding this node\'s InternalIP is refused even when the addresses are not known', () => {
    const me = node('self', ['172.18.0.0/24'], ['172.18.0.2']);
    expect(calcSelf([me], 'self').self).toMatchObject({ ok: false, reason: 'PodCIDROverlap', message: expect.stringMatching(/holds this node's InternalIP 172\.18\.0\.2/) });
  });

  it('reserved space is refused for this node too', () => {
    expect(calcSelf([node('self', ['224.1.0.0/24'], ['172.18.0.2'])], 'self').self).toMatchObject({ ok: false, reason: 'PodCIDRReserved' });
  });

  it('the pod bridge\'s gateway inside the podCIDR is fine; another interface there is a conflict', () => {
    expect(calcSelf([self], 'self', { localAddresses: uplink, podInterface: 'podnet0' }).self).toMatchObject({ ok: true });
    expect(calcSelf([self], 'self', { localAddresses: uplink, podInterface: 'cni0' }).self).toMatchObject({
      ok: false,
      reason: 'PodCIDROverlap',
      message: expect.stringMatching(/overlaps 10\.244\.0\.0\/24 on this node's interface podnet0/),
    });
  });

  it('the uplink is the interface holding the InternalIP', () => {
    expect(desired([self]).uplink).toEqual({ ifname: 'eth0', mtu: 1500 });
  });
});

describe('calcSelf', () => {
  it('reports a missing or malformed own podCIDR', () => {
    expect(calcSelf([node('self', undefined, ['172.18.0.2'])], 'self').self).toMatchObject({ ok: false, reason: 'NoPodCIDR' });
    expect(calcSelf([node('self', ['10.244.0.1/24'], ['172.18.0.2'])], 'self').self).toMatchObject({ ok: false, reason: 'PodCIDRMalformed', message: /this node: .*host bits set/ });
    expect(calcSelf([], 'self').self).toMatchObject({ ok: false, reason: 'SelfNodeNotFound' });
  });
});

describe('calcDesired at scale', () => {
  it('5,000 nodes in well under a second, overlap checks included', () => {
    const nodes: NodeLike[] = [self];
    for (let i = 1; i <= 5000; i += 1) nodes.push(node(`n${i}`, [`10.${(i >> 8) + 1}.${i & 255}.0/24`], [`172.18.${(i >> 8) + 1}.${i & 255}`], '2024-01-01T00:00:00Z'));
    nodes.push(node('late', ['10.3.3.0/24'], ['172.18.200.1'], '2030-01-01T00:00:00Z'));
    const t = performance.now();
    const d = desired(nodes);
    const ms = performance.now() - t;
    expect(d.routes).toHaveLength(5000);
    expect(d.rejections).toMatchObject([{ node: 'late', reason: 'PodCIDROverlap' }]);
    expect(ms).toBeLessThan(2000);
  });
});

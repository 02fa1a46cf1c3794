import { describe, expect, it } from 'vitest';
import { cidrParts, formatIp, gatewayOf, parseCidr } from '../../../lib/addr/addr.js';
import { renderBridgeOp, renderIpOp } from '../../../lib/linux/ip.js';
import { calcHostVethName, calcIptablesChain, calcRuleComment } from '../../../plugins/bridge/names.js';
import { loadBridgeConf } from '../../../plugins/bridge/netconf.js';
import { calcGatewayOps, calcGateways, calcPodRouteOps, calcPodSysctls, calcVlanOps } from '../../../plugins/bridge/setup.js';
import type { NetConf } from '../../../lib/cni/types.js';

const calcGatewayIp = (cidr: string): string => formatIp(gatewayOf(parseCidr(cidr) ?? { addr: { family: 4, value: 0n }, prefix: 32 }));
const calcPodRouteLines = (...a: Parameters<typeof calcPodRouteOps>) => calcPodRouteOps(...a).map(renderIpOp);
const calcGatewayLines = (...a: Parameters<typeof calcGatewayOps>) => calcGatewayOps(...a).map(renderIpOp);
const calcVlanLines = (...a: Parameters<typeof calcVlanOps>) => calcVlanOps(...a).map(renderBridgeOp);

const conf = (extra: Record<string, unknown> = {}) =>
  loadBridgeConf({ cniVersion: '1.0.0', name: 'n', type: 'podnet-bridge', ...extra } as NetConf, '');

describe('bridge calculations', () => {
  it('gateway is network + 1, also across a byte boundary and for IPv6', () => {
    expect(calcGatewayIp('10.1.0.77/24')).toBe('10.1.0.1');
    expect(calcGatewayIp('10.1.255.7/16')).toBe('10.1.0.1');
    expect(calcGatewayIp('fd00::abcd/64')).toBe('fd00::1');
    expect(cidrParts('fd00:0:0::5/64')).toEqual({ family: 6, ip: 'fd00::5', prefix: 64, subnet: 'fd00::/64' });
  });

  it('calcGateways keeps IPAM gateways, fills missing ones, and does not duplicate a default route', () => {
    const r = calcGateways(
      { cniVersion: '1.1.0', ips: [{ address: '10.1.0.5/24', gateway: '10.1.0.254' }, { address: 'fd00::5/64' }], routes: [{ dst: '0.0.0.0/0', gw: '10.1.0.254' }] },
      conf({ isDefaultGateway: true }),
    );
    expect(r.ips).toEqual([
      { address: '10.1.0.5/24', gateway: '10.1.0.254', interface: 2 },
      { address: 'fd00::5/64', gateway: 'fd00::1', interface: 2 },
    ]);
    expect(r.routes).toEqual([{ dst: '0.0.0.0/0', gw: '10.1.0.254' }, { dst: '::/0', gw: 'fd00::1' }]);
    expect(r.gateways).toEqual({ 4: ['10.1.0.254/24'], 6: ['fd00::1/64'] });
  });

  it('without isGateway no gateway is invented and the bridge gets no address', () => {
    const r = calcGateways({ cniVersion: '1.1.0', ips: [{ address: '10.1.0.5/24' }] }, conf());
    expect(r.ips).toEqual([{ address: '10.1.0.5/24', interface: 2 }]);
    expect(r.gateways).toEqual({ 4: [], 6: [] });
  });

  it('pod routes use the family gateway when the route has none, and carry metric/table/scope/mtu', () => {
    const lines = calcPodRouteLines('eth0', [{ address: '10.1.0.5/24', gateway: '10.1.0.1' }], [
      { dst: '0.0.0.0/0' },
      { dst: '192.168.0.0/16', gw: '10.1.0.9', priority: 5, table: 100, scope: 0, mtu: 1400, advmss: 1360 },
      { dst: 'fd99::/64' },
    ]);
    expect(lines).toEqual([
      'route add 0.0.0.0/0 via 10.1.0.1 dev eth0',
      'route add 192.168.0.0/16 via 10.1.0.9 dev eth0 metric 5 table 100 scope 0 mtu 1400 advmss 1360',
      'route add fd99::/64 dev eth0',
    ]);
  });

  it('pod sysctls: DAD off by default, on with enabledad; IPv6 enabled only for IPv6 addresses', () => {
    expect(calcPodSysctls(conf(), 'eth0', [{ address: '10.1.0.5/24' }]).map((s) => `${s.key}=${s.value}${s.required ? '!' : ''}`)).toEqual([
      'net/ipv6/conf/eth0/accept_dad=0',
      'net/ipv4/conf/eth0/arp_notify=1',
    ]);
    const v6 = calcPodSysctls(conf({ enabledad: true }), 'eth0', [{ address: 'fd00::5/64' }]).map((s) => `${s.key}=${s.value}${s.required ? '!' : ''}`);
    expect(v6).toEqual([
      'net/ipv6/conf/eth0/enhanced_dad=1',
      'net/ipv6/conf/eth0/accept_dad=1',
      'net/ipv4/conf/eth0/arp_notify=1',
      'net/ipv6/conf/lo/disable_ipv6=0!',
      'net/ipv6/conf/eth0/disable_ipv6=0!',
      'net/ipv6/conf/eth0/keep_addr_on_down=1!',
    ]);
  });

  it('gateway lines: nothing when present; IPv6 only conflicts when overlapping', () => {
    const gws = { 4: ['10.1.0.1/24'], 6: ['fd00::1/64'] };
    expect(calcGatewayLines('br0', [{ family: 4, cidr: '10.1.0.1/24', scope: 'global' }, { family: 6, cidr: 'fd00::1/64', scope: 'global' }], gws, false)).toEqual([]);
    expect(calcGatewayLines('br0', [{ family: 6, cidr: 'fd99::1/64', scope: 'global' }, { family: 6, cidr: 'fe80::1/64', scope: 'link' }], gws, false)).toEqual([
      'addr add 10.1.0.1/24 brd + dev br0',
      'addr add fd00::1/64 dev br0',
    ]);
    expect(() => calcGatewayLines('br0', [{ family: 4, cidr: '10.1.0.1/16', scope: 'global' }], gws, false)).toThrow(/different/);
    expect(calcGatewayLines('br0', [{ family: 4, cidr: '10.1.0.1/16', scope: 'global' }], { 4: gws[4], 6: [] }, true)).toEqual([
      'addr del 10.1.0.1/16 dev br0',
      'addr add 10.1.0.1/24 brd + dev br0',
    ]);
  });

  it('VLAN lines: default VLAN removed unless preserveDefaultVlan; trunk without vlan gets native 1', () => {
    expect(calcVlanLines(conf({ vlan: 10 }), 'v', 1)).toEqual(['vlan del dev v vid 1', 'vlan add dev v vid 10 pvid untagged master']);
    expect(calcVlanLines(conf({ vlan: 10, preserveDefaultVlan: true }), 'v', 1)).toEqual(['vlan add dev v vid 10 pvid untagged master']);
    expect(calcVlanLines(conf({ vlanTrunk: [{ id: 7 }] }), 'v', 1)).toEqual(['vlan del dev v vid 1', 'vlan add dev v vid 7 master', 'vlan add dev v vid 1 pvid untagged master']);
    expect(calcVlanLines(conf(), 'v', 1)).toEqual([]);
  });

  it('names are deterministic and bounded', () => {
    expect(calcHostVethName('c1', 'eth0')).toBe(calcHostVethName('c1', 'eth0'));
    expect(calcHostVethName('c1', 'eth0')).not.toBe(calcHostVethName('c1', 'eth1'));
    expect(calcHostVethName('c1', 'eth0')).toMatch(/^veth[0-9a-f]{11}$/);
    expect(calcIptablesChain('n', 'c')).toMatch(/^CNI-[0-9a-f]{24}$/);
    expect(calcRuleComment('n', 'x'.repeat(200), 'eth0').length).toBe(128);
  });
});

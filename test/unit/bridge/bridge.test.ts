import { afterAll, describe, expect, it } from 'vitest';
import { createBridgePlugin } from '../../../plugins/bridge/bridge.js';
import { calcHostVethName } from '../../../plugins/bridge/names.js';
import { CniError } from '../../../lib/cni/errors.js';
import type { GcArgs } from '../../../lib/cni/dispatch.js';
import type { Result } from '../../../lib/cni/types.js';
import { cmdArgs, harness, removeFakeCniPath } from './fakes.js';

afterAll(removeFakeCniPath);

const L3 = { bridge: 'br0', isGateway: true, ipMasq: true, ipam: { type: 'fake-ipam' } };
const hv = calcHostVethName('ctr1', 'eth0');

async function rejected(p: Promise<unknown>): Promise<CniError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof CniError) return e;
    throw e;
  }
  throw new Error('expected a rejection');
}

describe('podnet-bridge ADD (fake kernel)', () => {
  it('makes bridge, veth and pod config in one node batch and one pod batch', async () => {
    const h = harness();
    const r = await createBridgePlugin(h.deps).add(cmdArgs(L3));
    const node = h.kernel.log.filter((l) => l.ns === 'node').map((l) => l.line);
    expect(node[0]).toMatch(/^link add name br0 address 0a:00:00:00:00:\w\w type bridge$/);
    expect(node[1]).toBe(`link add name ${hv} type veth peer name eth0 netns /var/run/netns/pod1`);
    expect(node).toContain(`link set dev ${hv} master br0`);
    expect(node).toContain('addr add 10.1.0.1/24 brd + dev br0');
    const pod = h.kernel.log.filter((l) => l.ns === '/var/run/netns/pod1').map((l) => l.line);
    expect(pod).toEqual(['addr add 10.1.0.2/24 brd + dev eth0', 'link set dev eth0 up', 'addr show dev eth0']);
    expect(h.kernel.sysctls.get('/var/run/netns/pod1:net/ipv4/conf/eth0/arp_notify')).toBe('1');
    expect(h.kernel.sysctls.get('/var/run/netns/pod1:net/ipv6/conf/eth0/accept_dad')).toBe('0');
    expect(h.sysctl.values.get('net/ipv4/ip_forward')).toBe('1');
    expect(h.sysctl.values.get('net/ipv6/conf/all/forwarding')).toBeUndefined();

    const ifaces = r.interfaces ?? [];
    expect(ifaces.map((i) => i.name)).toEqual(['br0', hv, 'eth0']);
    expect(ifaces[2]?.sandbox).toBe('/var/run/netns/pod1');
    expect(ifaces[2]?.mac).toBe(h.kernel.links('/var/run/netns/pod1').get('eth0')?.mac);
    expect(r.ips).toEqual([{ address: '10.1.0.2/24', gateway: '10.1.0.1', interface: 2 }]);
    expect(h.nf.rules).toHaveLength(1);
    expect(h.nf.rules[0]?.comment).toMatch(/^podnet:\w{12}:\w{16} net=net1 if=eth0 id=ctr1$/);
    expect(h.nf.scripts.at(-1)).toContain('ip saddr 10.1.0.2 ip daddr != 10.1.0.0/24 ip daddr != 224.0.0.0/4 masquerade');
  });

  it('reuses an existing bridge and its gateway: no bridge creation, no address change', async () => {
    const h = harness();
    const plugin = createBridgePlugin(h.deps);
    await plugin.add(cmdArgs(L3));
    const before = h.kernel.log.length;
    await plugin.add(cmdArgs(L3, { containerId: 'ctr2', netns: '/var/run/netns/pod2' }));
    const node = h.kernel.log.slice(before).filter((l) => l.ns === 'node').map((l) => l.line);
    expect(node.some((l) => l.includes('type bridge'))).toBe(false);
    expect(node.some((l) => l.startsWith('addr add'))).toBe(false);
    // The nft chain exists now: the second pod's rule is a single `add rule` transaction.
    expect(h.nf.scripts.at(-1)?.trim().split('\n')).toHaveLength(1);
  });

  it('adds default routes per family with isDefaultGateway, dual-stack', async () => {
    const h = harness();
    h.ipam.dual = true;
    const r = await createBridgePlugin(h.deps).add(cmdArgs({ ...L3, isDefaultGateway: true }));
    expect(r.routes).toEqual([
      { dst: '0.0.0.0/0', gw: '10.1.0.1' },
      { dst: '::/0', gw: 'fd01::1' },
    ]);
    expect(h.kernel.routes.get('/var/run/netns/pod1')).toEqual(['route add 0.0.0.0/0 via 10.1.0.1 dev eth0', 'route add ::/0 via fd01::1 dev eth0']);
    expect(h.sysctl.values.get('net/ipv6/conf/all/forwarding')).toBe('1');
    expect(h.kernel.sysctls.get('/var/run/netns/pod1:net/ipv6/conf/eth0/keep_addr_on_down')).toBe('1');
    expect(h.nf.rules).toHaveLength(2);
  });

  it('sets port flags, promisc, mtu and the configured MAC', async () => {
    const h = harness();
    await createBridgePlugin(h.deps).add(cmdArgs({ ...L3, mtu: 1400, hairpinMode: true, portIsolation: true, runtimeConfig: { mac: '02:aa:bb:cc:dd:ee' } }));
    const node = h.kernel.log.map((l) => l.line);
    expect(node).toContain(`link add name ${hv} mtu 1400 type veth peer name eth0 mtu 1400 address 02:aa:bb:cc:dd:ee netns /var/run/netns/pod1`);
    expect(node).toContain(`link set dev ${hv} type bridge_slave hairpin on isolated on`);
    expect(h.kernel.links('/var/run/netns/pod1').get('eth0')?.mac).toBe('02:aa:bb:cc:dd:ee');
    const h2 = harness();
    await createBridgePlugin(h2.deps).add(cmdArgs({ ...L3, promiscMode: true }));
    expect(h2.kernel.links().get('br0')?.flags.has('PROMISC')).toBe(true);
  });

  it('configures VLAN and trunk entries on the port', async () => {
    const h = harness();
    await createBridgePlugin(h.deps).add(cmdArgs({ bridge: 'br0', vlan: 100, vlanTrunk: [{ id: 200 }], ipam: {} }));
    expect(h.kernel.log[0]?.line).toContain('vlan_filtering 1');
    expect(h.kernel.bridgeLog).toEqual([`vlan del dev ${hv} vid 1`, `vlan add dev ${hv} vid 100 pvid untagged master`, `vlan add dev ${hv} vid 200 master`]);
  });

  it('adds a spoof-check rule pinned to the container MAC', async () => {
    const h = harness();
    const r = await createBridgePlugin(h.deps).add(cmdArgs({ ...L3, ipMasq: false, macspoofchk: true }));
    const mac = r.interfaces?.[2]?.mac;
    expect(mac).toMatch(/^0a:/);
    expect(h.nf.scripts.join('')).toContain(`iifname "${hv}" ether saddr != ${mac} drop`);
  });

  it('L2 only (ipam: {}): no IPAM, no addresses, interface up', async () => {
    const h = harness();
    const r = await createBridgePlugin(h.deps).add(cmdArgs({ bridge: 'br0', ipam: {} }));
    expect(r.ips).toBeUndefined();
    expect(h.ipam.calls).toEqual([]);
    expect(h.kernel.links('/var/run/netns/pod1').get('eth0')?.up).toBe(true);
    expect(h.nf.scripts).toEqual([]);
  });

  it('L2 only with macspoofchk still pins the MAC, and DEL removes the rule', async () => {
    const h = harness();
    const plugin = createBridgePlugin(h.deps);
    const r = await plugin.add(cmdArgs({ bridge: 'br0', ipam: {}, macspoofchk: true }));
    expect(h.nf.rules).toHaveLength(1);
    expect(h.nf.scripts.join('')).toContain(`ether saddr != ${String(r.interfaces?.[2]?.mac)} drop`);
    await plugin.del(cmdArgs({ bridge: 'br0', ipam: {}, macspoofchk: true }, { command: 'DEL' }));
    expect(h.nf.rules).toEqual([]);
  });

  it('refuses a bridge name that exists but is not a bridge, changing nothing', async () => {
    const h = harness();
    h.kernel.links().set('br0', h.kernel.mk('br0', 'dummy'));
    const e = await rejected(createBridgePlugin(h.deps).add(cmdArgs(L3)));
    expect(e.code).toBe(7);
    expect(e.message).toContain('not a bridge');
    expect(h.kernel.log).toEqual([]);
    expect(h.ipam.calls).toEqual([]);
  });

  it('refuses a second ADD of the same attachment before touching anything', async () => {
    const h = harness();
    const plugin = createBridgePlugin(h.deps);
    await plugin.add(cmdArgs(L3));
    const calls = h.ipam.calls.length;
    const e = await rejected(plugin.add(cmdArgs(L3)));
    expect(e.code).toBe(102);
    expect(h.ipam.calls.length).toBe(calls);
  });

  it('an IPAM failure removes the veth and returns the IPAM error code', async () => {
    const h = harness();
    h.ipam.failAdd = new CniError(100, 'no IP addresses available in range set');
    const e = await rejected(createBridgePlugin(h.deps).add(cmdArgs(L3)));
    expect(e.code).toBe(100);
    expect(h.kernel.links().has(hv)).toBe(false);
    expect(h.kernel.links('/var/run/netns/pod1').has('eth0')).toBe(false);
    expect(h.ipam.calls).toEqual(['ADD ctr1']);
  });

  it('a pod-side failure undoes everything: rule, veth, IP', async () => {
    const h = harness();
    h.kernel.failOn = { match: /^addr add/, message: 'Permission denied', ns: '/var/run/netns/pod1' };
    const e = await rejected(createBridgePlugin(h.deps).add(cmdArgs(L3)));
    expect(e.message).toContain('failed to configure "eth0"');
    expect(h.kernel.links().has(hv)).toBe(false);
    expect(h.ipam.calls).toEqual(['ADD ctr1', 'DEL ctr1']);
    expect(h.nf.rules).toEqual([]);
  });

  it('a failing nft transaction undoes the rest', async () => {
    const h = harness();
    h.nf.failNext = 'Error: Could not process rule: Operation not permitted';
    await rejected(createBridgePlugin(h.deps).add(cmdArgs(L3)));
    expect(h.kernel.links().has(hv)).toBe(false);
    expect(h.ipam.held.size).toBe(0);
  });

  it('an existing interface name in the pod fails the veth and releases the IP', async () => {
    const h = harness();
    h.kernel.links('/var/run/netns/pod1').set('eth0', h.kernel.mk('eth0', 'dummy'));
    const e = await rejected(createBridgePlugin(h.deps).add(cmdArgs(L3)));
    expect(e.message).toContain('already exists');
    expect(h.ipam.held.size).toBe(0);
    expect(h.kernel.links('/var/run/netns/pod1').get('eth0')?.kind).toBe('dummy');
  });

  it('an IPv4 address on the bridge that differs is an error unless forceAddress', async () => {
    const h = harness();
    const br = h.kernel.mk('br0', 'bridge');
    br.addrs.push('10.9.9.1/24');
    h.kernel.links().set('br0', br);
    const e = await rejected(createBridgePlugin(h.deps).add(cmdArgs(L3)));
    expect(e.message).toContain('already has an IP address different');
    expect(h.kernel.links().has(hv)).toBe(false);
    await createBridgePlugin(h.deps).add(cmdArgs({ ...L3, forceAddress: true }));
    expect(h.kernel.links().get('br0')?.addrs).toEqual(['10.1.0.1/24']);
  });

  it('refuses a netns that does not exist (code 8) and a relative one (code 4)', async () => {
    const h = harness();
    expect((await rejected(createBridgePlugin(h.deps).add(cmdArgs(L3, { netns: '/var/run/netns/nope' })))).code).toBe(8);
    expect((await rejected(createBridgePlugin(h.deps).add(cmdArgs(L3, { netns: 'pod1' })))).code).toBe(4);
    expect(h.kernel.log).toEqual([]);
  });

  it('uses the config dns over the IPAM one', async () => {
    const h = harness();
    const r = await createBridgePlugin(h.deps).add(cmdArgs({ ...L3, dns: { nameservers: ['10.96.0.10'] } }));
    expect(r.dns).toEqual({ nameservers: ['10.96.0.10'] });
  });
});

describe('podnet-bridge DEL / CHECK / GC / STATUS (fake kernel)', () => {
  async function added() {
    const h = harness();
    const plugin = createBridgePlugin(h.deps);
    const result = await plugin.add(cmdArgs(L3));
    return { h, plugin, result };
  }

  it('DEL removes veth, rule and IP; a second DEL succeeds too', async () => {
    const { h, plugin } = await added();
    await plugin.del(cmdArgs(L3, { command: 'DEL' }));
    expect(h.kernel.links().has(hv)).toBe(false);
    expect(h.nf.rules).toEqual([]);
    expect(h.ipam.held.size).toBe(0);
    await plugin.del(cmdArgs(L3, { command: 'DEL' }));
    expect(h.ipam.calls.filter((c) => c.startsWith('DEL'))).toHaveLength(2);
  });

  it('DEL with the netns gone or CNI_NETNS empty still releases IP and rule', async () => {
    const { h, plugin } = await added();
    h.kernel.ns.delete('/var/run/netns/pod1');
    h.kernel.links().delete(hv); // the kernel removes the pair with the namespace
    await plugin.del(cmdArgs(L3, { command: 'DEL', netns: '' }));
    expect(h.nf.rules).toEqual([]);
    expect(h.ipam.held.size).toBe(0);
  });

  it('DEL only removes this attachment’s rules', async () => {
    const { h, plugin } = await added();
    await plugin.add(cmdArgs(L3, { containerId: 'ctr2', netns: '/var/run/netns/pod2' }));
    await plugin.del(cmdArgs(L3, { command: 'DEL' }));
    expect(h.nf.rules).toHaveLength(1);
    expect(h.nf.rules[0]?.comment).toContain('id=ctr2');
  });

  it('CHECK passes on what ADD made and fails on a missing rule, address or peer', async () => {
    const { h, plugin, result } = await added();
    const withPrev = (prev: Result) => cmdArgs({ ...L3, prevResult: prev }, { command: 'CHECK', prevResult: prev });
    await plugin.check(withPrev(result));
    expect(h.ipam.calls).toContain('CHECK ctr1');

    const rule = h.nf.rules.pop();
    expect((await rejected(plugin.check(withPrev(result)))).message).toContain('masquerade rule');
    if (rule) h.nf.rules.push(rule);

    const wrongIp = { ...result, ips: [{ address: '10.1.0.99/24', interface: 2 }] };
    expect((await rejected(plugin.check(withPrev(wrongIp)))).code).toBe(110);

    const port = h.kernel.links().get(hv);
    if (port) delete port.master;
    expect((await rejected(plugin.check(withPrev(result)))).message).toContain('veth');
  });

  it('CHECK without prevResult is an error', async () => {
    const { plugin } = await added();
    expect((await rejected(plugin.check(cmdArgs(L3, { command: 'CHECK' })))).message).toContain('prevResult');
  });

  it('GC removes rules of attachments not in the valid list and forwards to IPAM', async () => {
    const { h, plugin } = await added();
    await plugin.add(cmdArgs(L3, { containerId: 'ctr2', netns: '/var/run/netns/pod2' }));
    const gc = (valid: GcArgs['validAttachments']): GcArgs => ({ ...cmdArgs(L3, { command: 'GC' }), validAttachments: valid });
    await plugin.gc(gc(undefined));
    expect(h.nf.rules).toHaveLength(2);
    await plugin.gc(gc([{ containerID: 'ctr2', ifname: 'eth0' }]));
    expect(h.nf.rules.map((r) => r.comment)).toEqual([expect.stringContaining('id=ctr2')]);
    expect(h.ipam.calls.filter((c) => c.startsWith('GC'))).toEqual(['GC none', 'GC 1']);
  });

  it('STATUS forwards to the IPAM; L2 has nothing to ask', async () => {
    const h = harness();
    await createBridgePlugin(h.deps).status(cmdArgs(L3, { command: 'STATUS' }));
    await createBridgePlugin(h.deps).status(cmdArgs({ ipam: {} }, { command: 'STATUS' }));
    expect(h.ipam.calls).toEqual(['STATUS']);
  });

  it('iptables backend: reference chain layout, removed by DEL', async () => {
    const h = harness();
    const plugin = createBridgePlugin(h.deps);
    const conf = { ...L3, ipMasqBackend: 'iptables' };
    await plugin.add(cmdArgs(conf));
    expect(h.nf.ipt[4]).toMatch(/-A POSTROUTING -s 10\.1\.0\.2\/32 -m comment --comment "name: \\"net1\\" id: \\"ctr1\\"" -j CNI-[0-9a-f]{24}/);
    expect(h.nf.rules).toEqual([]);
    await plugin.del(cmdArgs(conf, { command: 'DEL' }));
    expect(h.nf.ipt[4]).not.toContain('CNI-');
  });
});

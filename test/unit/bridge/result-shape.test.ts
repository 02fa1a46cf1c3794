import { describe, expect, it } from 'vitest';
import { dispatch } from '../../../lib/cni/dispatch.js';
import { SUPPORTED_VERSIONS, versionAtLeast } from '../../../lib/cni/version.js';
import { createBridgePlugin } from '../../../plugins/bridge/bridge.js';
import { calcHostVethName } from '../../../plugins/bridge/names.js';
import { FAKE_CNI_PATH, harness } from './fakes.js';

/**
 * What the runtime reads on stdout, per spec version, for the keys whose result differs from the
 * plain L3 case: L2 only, VLAN (the gateway's `<bridge>.<vlan>` interface), macspoofchk and a
 * configured MAC. Through dispatch, so the version conversion is the real one; the kernel is the
 * fake (the VLAN kernel path cannot run where the kernel lacks bridge VLAN filtering).
 */
type Obj = Record<string, unknown>;
const hv = calcHostVethName('ctr1', 'eth0');
const MAC_RE = /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/;

async function add(conf: Obj, version: string) {
  const h = harness();
  let out = '';
  const env = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'ctr1', CNI_NETNS: '/var/run/netns/pod1', CNI_IFNAME: 'eth0', CNI_PATH: FAKE_CNI_PATH };
  const code = await dispatch(createBridgePlugin(h.deps), { name: 'podnet-bridge' }, {
    env,
    readStdin: () => Buffer.from(JSON.stringify({ cniVersion: version, name: 'net1', type: 'podnet-bridge', bridge: 'br0', ...conf })),
    stdout: (t) => {
      out += t;
    },
    stderr: () => {},
  });
  return { code, json: JSON.parse(out) as Obj, h };
}

const L3 = { isGateway: true, ipam: { type: 'fake-ipam' } };
const CASES: [string, Obj, string[]][] = [
  ['L2 only', { ipam: {} }, ['br0', hv, 'eth0']],
  ['VLAN with gateway', { ...L3, vlan: 42 }, ['br0', hv, 'eth0', 'br0.42']],
  ['macspoofchk', { ...L3, macspoofchk: true }, ['br0', hv, 'eth0']],
  ['MAC from runtimeConfig', { ...L3, runtimeConfig: { mac: '02:aa:bb:cc:dd:ee' } }, ['br0', hv, 'eth0']],
];

describe.each(SUPPORTED_VERSIONS)('podnet-bridge result shape, cniVersion %s', (version) => {
  it.each(CASES)('%s', async (what, conf, names) => {
    const { code, json, h } = await add(conf, version);
    expect(code, JSON.stringify(json)).toBe(0);
    expect(json.cniVersion).toBe(version);
    const l3 = what !== 'L2 only';
    const podMac = h.kernel.links('/var/run/netns/pod1').get('eth0')?.mac;
    if (what === 'MAC from runtimeConfig') expect(podMac).toBe('02:aa:bb:cc:dd:ee');
    if (!versionAtLeast(version, '0.3.0')) {
      // { ip4, ip6, dns }: no interfaces, so no MAC; L2 only is an empty result.
      expect(Object.keys(json).sort()).toEqual(l3 ? ['cniVersion', 'ip4'] : ['cniVersion']);
      if (l3) expect(json.ip4).toEqual({ ip: '10.1.0.2/24', gateway: '10.1.0.1' });
      return;
    }
    const ifaces = json.interfaces as Obj[];
    expect(ifaces.map((i) => i.name)).toEqual(names);
    for (const i of ifaces) {
      expect(i.mac).toMatch(MAC_RE);
      expect(i.mtu).toBeUndefined();
    }
    expect(ifaces[2]).toEqual({ name: 'eth0', mac: podMac, sandbox: '/var/run/netns/pod1' });
    expect(ifaces.filter((i) => i.sandbox !== undefined)).toHaveLength(1);
    if (!l3) {
      expect(Object.keys(json).sort()).toEqual(['cniVersion', 'interfaces']);
      return;
    }
    const ip = { address: '10.1.0.2/24', gateway: '10.1.0.1', interface: 2 };
    expect(json.ips).toEqual([versionAtLeast(version, '1.0.0') ? ip : { version: '4', ...ip }]);
    expect(json.routes).toBeUndefined();
    if (what === 'VLAN with gateway') expect(h.kernel.links().get('br0.42')?.addrs).toEqual(['10.1.0.1/24']);
    if (what === 'macspoofchk') expect(h.nf.scripts.join('')).toContain(`iifname "${hv}" ether saddr != ${String(podMac)} drop`);
  });
});

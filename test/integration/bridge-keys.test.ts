import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { versionAtLeast } from '../../lib/cni/version.js';
import { BridgeLab, bridgeConf, globalAddrs, linkInfo } from '../helpers/bridge-lab.js';
import { ALL_VERSIONS, hasBuild, isRoot } from '../helpers/env.js';
import { reservations } from '../helpers/host-local.js';

/**
 * The bridge keys whose result or kernel state differs from the plain L3 case, in a node network
 * namespace: L2 only, macspoofchk and a configured MAC under every spec version;
 * disableContainerInterface, forceAddress, vlanTrunk and dns. Names start with `psh`.
 */
type Obj = Record<string, unknown>;
const MAC_RE = /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/;


describe.runIf(isRoot && hasBuild)('podnet-bridge keys in a node namespace', () => {
  let lab: BridgeLab;
  beforeAll(async () => {
    lab = await BridgeLab.create('psh');
  });
  afterAll(async () => {
    await lab?.destroy();
  });
  const spoofRules = async (id: string) => (await lab.nftRules()).filter((x) => x.family === 'bridge' && String(x.comment).includes(`id=${id}`));

  describe.each(ALL_VERSIONS)('cniVersion %s', (version) => {
    const v = version.replace(/\./g, '');
    const hasIfaces = versionAtLeast(version, '0.3.0');

    it('L2 only with a MAC from CNI_ARGS: result shape, interface up without addresses, CHECK, DEL', async () => {
      const pod = await lab.pod();
      const id = lab.nextId();
      const conf = { cniVersion: version, name: `pshl2${v}`, type: 'podnet-bridge', bridge: `pshbl${v}`, ipam: {} };
      const add = await lab.run('podnet-bridge', 'ADD', conf, { id, netns: pod.path, args: 'IgnoreUnknown=1;MAC=02:5e:00:00:00:01' });
      expect(add.stderr).toBe('');
      expect(add.code).toBe(0);
      const r = add.json as Obj;
      if (hasIfaces) {
        expect(Object.keys(r).sort()).toEqual(['cniVersion', 'interfaces']);
        const ifaces = r.interfaces as Obj[];
        expect(ifaces.map((i) => i.name)).toEqual([`pshbl${v}`, expect.stringMatching(/^veth[0-9a-f]{11}$/), 'eth0']);
        expect(ifaces[2]).toEqual({ name: 'eth0', mac: '02:5e:00:00:00:01', sandbox: pod.path });
      } else {
        expect(r).toEqual({ cniVersion: version });
      }
      const eth0 = await linkInfo(pod, 'eth0');
      expect(eth0.address).toBe('02:5e:00:00:00:01');
      expect(eth0.operstate).toBe('UP');
      expect(globalAddrs(eth0)).toEqual([]);
      expect(globalAddrs(await linkInfo(lab.node, `pshbl${v}`))).toEqual([]);
      if (versionAtLeast(version, '0.4.0')) {
        expect((await lab.run('podnet-bridge', 'CHECK', { ...conf, prevResult: r }, { id, netns: pod.path })).code).toBe(0);
      }
      expect((await lab.run('podnet-bridge', 'DEL', conf, { id, netns: pod.path })).code).toBe(0);
      expect((await lab.node.ipJson<Obj[]>(['link', 'show', 'master', `pshbl${v}`])).length).toBe(0);
    });

    it('macspoofchk with a MAC from runtimeConfig: result shape, the MAC in the pod and in the rule, DEL removes it', async () => {
      const pod = await lab.pod();
      const id = lab.nextId();
      const mac = `02:5e:00:00:${v.padStart(3, '0').slice(0, 2)}:02`;
      const conf = bridgeConf(lab, {
        version,
        name: `pshsp${v}`,
        bridge: `pshbs${v}`,
        ranges: [[{ subnet: `10.150.${Number(v)}.0/24` }]],
        extra: { isGateway: true, macspoofchk: true, runtimeConfig: { mac } },
      });
      const add = await lab.run('podnet-bridge', 'ADD', conf, { id, netns: pod.path });
      expect(add.stderr).toBe('');
      expect(add.code).toBe(0);
      const r = add.json as Obj;
      const ip = { address: `10.150.${Number(v)}.2/24`, gateway: `10.150.${Number(v)}.1` };
      if (hasIfaces) {
        const ifaces = r.interfaces as Obj[];
        expect(ifaces.map((i) => i.name)).toEqual([`pshbs${v}`, expect.stringMatching(/^veth/), 'eth0']);
        for (const i of ifaces) expect(i.mac).toMatch(MAC_RE);
        expect(ifaces[2]).toEqual({ name: 'eth0', mac, sandbox: pod.path });
        expect(r.ips).toEqual([{ ...(versionAtLeast(version, '1.0.0') ? {} : { version: '4' }), ...ip, interface: 2 }]);
      } else {
        expect(r.interfaces).toBeUndefined();
        expect(r.ip4).toEqual({ ip: ip.address, gateway: ip.gateway });
      }
      expect((await linkInfo(pod, 'eth0')).address).toBe(mac);
      const rules = await spoofRules(id);
      expect(rules).toHaveLength(1);
      expect(JSON.stringify(rules[0]?.expr)).toContain(mac);
      if (versionAtLeast(version, '0.4.0')) {
        expect((await lab.run('podnet-bridge', 'CHECK', { ...conf, prevResult: r }, { id, netns: pod.path })).code).toBe(0);
      }
      expect((await lab.run('podnet-bridge', 'DEL', conf, { id, netns: pod.path })).code).toBe(0);
      expect(await spoofRules(id)).toEqual([]);
      expect(Object.keys(reservations(lab.dataDir, `pshsp${v}`))).toEqual([]);
    });
  });

  it('disableContainerInterface: the pod interface exists, on the bridge, and stays down; its MAC is in the result', async () => {
    const pod = await lab.pod();
    const id = lab.nextId();
    const conf = { cniVersion: '1.0.0', name: 'pshdis', type: 'podnet-bridge', bridge: 'pshbd', disableContainerInterface: true, ipam: {} };
    const add = await lab.run('podnet-bridge', 'ADD', conf, { id, netns: pod.path });
    expect(add.stderr).toBe('');
    expect(add.code).toBe(0);
    const ifaces = add.json?.interfaces as Obj[];
    const eth0 = await linkInfo(pod, 'eth0');
    expect(eth0.flags).not.toContain('UP');
    expect(ifaces[2]).toEqual({ name: 'eth0', mac: eth0.address, sandbox: pod.path });
    const ports = await lab.node.ipJson<Obj[]>(['link', 'show', 'master', 'pshbd']);
    expect(ports.map((p) => p.ifname)).toEqual([ifaces[1]?.name]);
    expect(eth0.link_index).toBe(ports[0]?.ifindex);
    expect((await lab.run('podnet-bridge', 'DEL', conf, { id, netns: pod.path })).code).toBe(0);
    expect(await lab.node.ipJson<Obj[]>(['link', 'show', 'master', 'pshbd'])).toEqual([]);
  });

  it('forceAddress: another IPv4 address on the bridge fails ADD (nothing left), and is replaced with forceAddress', async () => {
    await lab.node.exec('ip', ['link', 'add', 'pshbf', 'type', 'bridge']);
    await lab.node.exec('ip', ['addr', 'add', '10.151.9.1/24', 'dev', 'pshbf']);
    const base = { name: 'pshforce', bridge: 'pshbf', ranges: [[{ subnet: '10.151.0.0/24' }]] };
    const pod = await lab.pod();
    const refused = await lab.run('podnet-bridge', 'ADD', bridgeConf(lab, { ...base, extra: { isGateway: true } }), { id: lab.nextId(), netns: pod.path });
    expect(refused.code).not.toBe(0);
    expect(String(refused.json?.msg)).toContain('already has an IP address different');
    expect(await lab.node.ipJson<Obj[]>(['link', 'show', 'master', 'pshbf'])).toEqual([]);
    expect(await pod.ipJson<Obj[]>(['link', 'show', 'eth0']).catch(() => [])).toEqual([]);
    expect(Object.keys(reservations(lab.dataDir, 'pshforce'))).toEqual([]);
    expect(globalAddrs(await linkInfo(lab.node, 'pshbf'))).toEqual(['10.151.9.1/24']);

    const conf = bridgeConf(lab, { ...base, extra: { isGateway: true, forceAddress: true } });
    const id = lab.nextId();
    const ok = await lab.run('podnet-bridge', 'ADD', conf, { id, netns: pod.path });
    expect(ok.code, ok.stdout).toBe(0);
    expect(globalAddrs(await linkInfo(lab.node, 'pshbf'))).toEqual(['10.151.0.1/24']);
    await pod.exec('ping', ['-c', '1', '-W', '2', '10.151.0.1']);
    expect((await lab.run('podnet-bridge', 'DEL', conf, { id, netns: pod.path })).code).toBe(0);
  });

  it('vlanTrunk: the port trunks the listed VLANs (skipped when the kernel lacks VLAN filtering)', async (ctx) => {
    const probe = await lab.node.exec('ip', ['link', 'add', 'pshvprobe', 'type', 'bridge', 'vlan_filtering', '1'], { reject: false });
    await lab.node.exec('ip', ['link', 'del', 'pshvprobe'], { reject: false });
    if (probe.exitCode !== 0) ctx.skip();
    const pod = await lab.pod();
    const id = lab.nextId();
    const conf = { cniVersion: '1.0.0', name: 'pshtrunk', type: 'podnet-bridge', bridge: 'pshbt', vlanTrunk: [{ id: 101 }, { minID: 200, maxID: 202 }], ipam: {} };
    const add = await lab.run('podnet-bridge', 'ADD', conf, { id, netns: pod.path });
    expect(add.code, add.stdout).toBe(0);
    const port = String((add.json?.interfaces as Obj[])[1]?.name);
    const vlans = JSON.parse((await lab.node.exec('bridge', ['-j', 'vlan', 'show', 'dev', port])).stdout) as Obj[];
    const ids = ((vlans[0]?.vlans as Obj[] | undefined) ?? []).flatMap((x) => (x.vlanEnd ? [`${String(x.vlan)}-${String(x.vlanEnd)}`] : [String(x.vlan)]));
    // preserveDefaultVlan is false by default: the default VLAN 1 is removed from the port.
    expect(ids).toEqual(['101', '200-202']);
    expect((await lab.run('podnet-bridge', 'DEL', conf, { id, netns: pod.path })).code).toBe(0);
  });

  it('dns: the config’s dns is the result’s; without it, the IPAM’s (host-local resolvConf)', async () => {
    const resolv = join(dirname(lab.dataDir), 'psh-resolv.conf');
    writeFileSync(resolv, 'nameserver 10.152.0.53\nsearch ipam.example\noptions ndots:2\n');
    const base = { name: 'pshdns', bridge: 'pshbn', ranges: [[{ subnet: '10.152.0.0/24' }]], ipamExtra: { resolvConf: resolv } };
    const fromConf = { nameservers: ['10.96.0.10'], search: ['default.svc.cluster.local'], options: ['ndots:5'] };
    for (const [conf, want] of [
      [bridgeConf(lab, { ...base, extra: { dns: fromConf } }), fromConf],
      [bridgeConf(lab, base), { nameservers: ['10.152.0.53'], search: ['ipam.example'], options: ['ndots:2'] }],
    ] as const) {
      const pod = await lab.pod();
      const id = lab.nextId();
      const add = await lab.run('podnet-bridge', 'ADD', conf, { id, netns: pod.path });
      expect(add.code, add.stdout).toBe(0);
      expect(add.json?.dns).toEqual(want);
      expect((await lab.run('podnet-bridge', 'DEL', conf, { id, netns: pod.path })).code).toBe(0);
    }
  });
});

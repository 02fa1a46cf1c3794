import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { versionAtLeast } from '../../lib/cni/version.js';
import { ALL_VERSIONS, DIST_TEST_BIN, hasBuild, isRoot } from '../helpers/env.js';
import { UPSTREAM_CNI_VERSION } from '../helpers/peers.js';
import { BridgeLab, bridgeConf, globalAddrs, linkInfo } from '../helpers/bridge-lab.js';
import type { Netns } from '../helpers/netns.js';
import { reservations } from '../helpers/host-local.js';

type Obj = Record<string, unknown>;
const DUAL = [[{ subnet: '10.88.0.0/24' }], [{ subnet: 'fd88::/64' }]];


describe.runIf(isRoot && hasBuild)('podnet-bridge in a node namespace', () => {
  let lab: BridgeLab;
  beforeAll(async () => {
    lab = await BridgeLab.create();
  });
  afterAll(async () => {
    await lab?.destroy();
  });

  describe.each(ALL_VERSIONS)('cniVersion %s', (version) => {
    it('ADD: result shape and kernel state for gateway, masquerade, mtu, hairpin, isolation; CHECK; DEL', async () => {
      const pod = await lab.pod();
      const id = lab.nextId();
      const conf = bridgeConf(lab, {
        version,
        bridge: 'pbrbrv',
        ranges: DUAL,
        extra: { isGateway: true, isDefaultGateway: true, ipMasq: true, mtu: 1400, hairpinMode: true, portIsolation: true },
      });
      const add = await lab.run('podnet-bridge', 'ADD', conf, { id, netns: pod.path });
      expect(add.stderr).toBe('');
      expect(add.code).toBe(0);
      const r = add.json as Obj;
      expect(r.cniVersion).toBe(version);

      // Result shape per version.
      let podIp4: string;
      if (versionAtLeast(version, '0.3.0')) {
        const ifaces = r.interfaces as Obj[];
        expect(ifaces.map((i) => i.name)).toEqual(['pbrbrv', expect.stringMatching(/^veth[0-9a-f]{11}$/), 'eth0']);
        expect(ifaces[2]?.sandbox).toBe(pod.path);
        for (const i of ifaces) expect(i.mac).toMatch(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
        const ips = r.ips as Obj[];
        expect(ips).toHaveLength(2);
        expect(ips.every((ip) => ip.interface === 2)).toBe(true);
        expect(ips[0]).toMatchObject({ address: expect.stringMatching(/^10\.88\.0\.\d+\/24$/), gateway: '10.88.0.1' });
        expect(ips[1]).toMatchObject({ address: expect.stringMatching(/^fd88::[0-9a-f]+\/64$/), gateway: 'fd88::1' });
        if (versionAtLeast(version, '1.0.0')) expect(ips[0]?.version).toBeUndefined();
        else expect(ips.map((ip) => ip.version)).toEqual(['4', '6']);
        expect(r.routes).toEqual([
          { dst: '0.0.0.0/0', gw: '10.88.0.1' },
          { dst: '::/0', gw: 'fd88::1' },
        ]);
        podIp4 = String(ips[0]?.address);
      } else {
        expect(r.interfaces).toBeUndefined();
        expect(r.ip4).toMatchObject({ ip: expect.stringMatching(/^10\.88\.0\.\d+\/24$/), gateway: '10.88.0.1', routes: [{ dst: '0.0.0.0/0', gw: '10.88.0.1' }] });
        expect(r.ip6).toMatchObject({ gateway: 'fd88::1' });
        podIp4 = String((r.ip4 as Obj).ip);
      }

      // Node side: bridge with both gateways, port flags, mtu, forwarding.
      const br = await linkInfo(lab.node, 'pbrbrv');
      expect((br.linkinfo as Obj).info_kind).toBe('bridge');
      expect(globalAddrs(br)).toEqual(expect.arrayContaining(['10.88.0.1/24', 'fd88::1/64']));
      const ports = (await lab.node.ipJson<Obj[]>(['-d', 'link', 'show', 'master', 'pbrbrv']));
      const port = ports.find((p) => String(p.ifname).startsWith('veth')) as Obj;
      expect(port.mtu).toBe(1400);
      expect(port.operstate).toBe('UP');
      const slave = (port.linkinfo as Obj).info_slave_data as Obj;
      expect(slave.hairpin).toBe(true);
      expect(slave.isolated).toBe(true);
      const bl = JSON.parse((await lab.node.exec('bridge', ['-j', '-d', 'link', 'show', 'dev', String(port.ifname)])).stdout) as Obj[];
      expect(bl[0]).toMatchObject({ hairpin: true, isolated: true, state: 'forwarding' });
      expect(await lab.sysctl('net/ipv4/ip_forward')).toBe('1');
      expect(await lab.sysctl('net/ipv6/conf/all/forwarding')).toBe('1');
      expect(await lab.sysctl(`net/ipv6/conf/${String(port.ifname)}/accept_ra`)).toBe('0');

      // Pod side: addresses, mtu, routes, sysctls, peer.
      const eth0 = await linkInfo(pod, 'eth0');
      expect(eth0.mtu).toBe(1400);
      expect(eth0.link_index).toBe(port.ifindex);
      expect(globalAddrs(eth0)).toEqual([podIp4, expect.stringMatching(/^fd88::/)]);
      const routes = await pod.ipJson<Obj[]>(['route', 'show', 'default']);
      expect(routes[0]).toMatchObject({ gateway: '10.88.0.1', dev: 'eth0' });
      const routes6 = await pod.ipJson<Obj[]>(['-6', 'route', 'show', 'default']);
      expect(routes6[0]).toMatchObject({ gateway: 'fd88::1', dev: 'eth0' });
      expect(await lab.sysctl('net/ipv4/conf/eth0/arp_notify', pod)).toBe('1');
      expect(await lab.sysctl('net/ipv6/conf/eth0/accept_dad', pod)).toBe('0');
      expect(await lab.sysctl('net/ipv6/conf/eth0/keep_addr_on_down', pod)).toBe('1');

      // Masquerade rules keyed by the attachment.
      const rules = (await lab.nftRules()).filter((x) => String(x.comment).includes(`id=${id}`));
      expect(rules).toHaveLength(2);

      if (versionAtLeast(version, '0.4.0')) {
        const check = await lab.run('podnet-bridge', 'CHECK', { ...conf, prevResult: r }, { id, netns: pod.path });
        expect(check.stdout).toBe('');
        expect(check.code).toBe(0);
      }

      const del = await lab.run('podnet-bridge', 'DEL', { ...conf, prevResult: r }, { id, netns: pod.path });
      expect(del.code).toBe(0);
      expect(del.stdout).toBe('');
      expect((await lab.node.ipJson<Obj[]>(['link', 'show', 'master', 'pbrbrv'])).length).toBe(0);
      expect(await pod.ipJson<Obj[]>(['link', 'show', 'eth0']).catch(() => [])).toEqual([]);
      expect((await lab.nftRules()).filter((x) => String(x.comment).includes(`id=${id}`))).toEqual([]);
      expect(Object.keys(reservations(lab.dataDir, 'pbrnet'))).toEqual([]);
    });
  });

  it.each(['0.2.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'])(`same result as the reference bridge plugin ${UPSTREAM_CNI_VERSION} (cniVersion %s)`, async (version) => {
    const v = version.replace(/\./g, '');
    const third = Number(v); // 20, 31, 40, 100, 110: a valid octet per version
    const results: unknown[] = [];
    for (const [plugin, ipam, octet] of [['bridge', 'host-local', 110], ['podnet-bridge', 'podnet-host-local', 111]] as const) {
      const conf = {
        ...bridgeConf(lab, { version, bridge: `pbrbs${v}${octet}`, name: `pbrsame${v}${octet}`, ipamType: ipam, ranges: [[{ subnet: `10.${octet}.${third}.0/24` }]] }),
        type: plugin,
        isGateway: true,
        isDefaultGateway: true,
        ipMasq: true,
        mtu: 1450,
      };
      const pod = await lab.pod();
      const r = await lab.run(plugin, 'ADD', conf, { id: `pbrside${v}`, netns: pod.path });
      expect(r.code, `${plugin}: ${r.stdout}`).toBe(0);
      // Names, MACs and the subnet differ by construction; the shape and the rest must not.
      const text = r.stdout
        .replace(/pbrbs\d+/g, 'BRIDGE')
        .replace(/veth[0-9a-f]+/g, 'VETH')
        .replace(/([0-9a-f]{2}:){5}[0-9a-f]{2}/g, 'MAC')
        .replace(new RegExp(`10\\.${octet}\\.`, 'g'), '10.X.')
        .replace(/\/var\/run\/netns\/pbrp\w+/g, 'NETNS');
      const parsed = JSON.parse(text) as Obj;
      // Go prints an empty DNS struct as "dns": {}; an absent dns says the same.
      if (parsed.dns && Object.keys(parsed.dns as Obj).length === 0) delete parsed.dns;
      results.push(parsed);
      expect((await lab.run(plugin, 'DEL', conf, { id: `pbrside${v}`, netns: pod.path })).code).toBe(0);
    }
    expect(results[1]).toEqual(results[0]);
  });

  it('two pods on one bridge reach each other over IPv4 and IPv6 (ping and TCP)', async () => {
    const conf = bridgeConf(lab, { bridge: 'pbrbrc', name: 'pbrconn', ranges: [[{ subnet: '10.89.0.0/24' }], [{ subnet: 'fd89::/64' }]], extra: { isGateway: true } });
    const [a, b] = [await lab.pod(), await lab.pod()];
    const ra = await lab.run('podnet-bridge', 'ADD', conf, { id: lab.nextId(), netns: a.path });
    const rb = await lab.run('podnet-bridge', 'ADD', conf, { id: lab.nextId(), netns: b.path });
    expect([ra.code, rb.code]).toEqual([0, 0]);
    const ipsB = (rb.json?.ips as Obj[]).map((i) => String(i.address).split('/')[0] as string);
    const [b4, b6] = ipsB as [string, string];
    await a.exec('ping', ['-c', '1', '-W', '2', b4]);
    await a.exec('ping', ['-6', '-c', '1', '-W', '2', b6]);
    for (const [addr, port] of [[b4, '7001'], [b6, '7002']] as const) {
      const server = b.exec('nc', ['-l', '-N', ...(addr.includes(':') ? ['-6'] : []), addr, port], { timeout: 10_000 });
      await new Promise((res) => setTimeout(res, 200));
      await a.exec('sh', ['-c', `echo hello-${port} | nc -N -w 3 ${addr} ${port}`]);
      expect((await server).stdout.trim()).toBe(`hello-${port}`);
    }
    // Pod to gateway (the bridge's address).
    await a.exec('ping', ['-c', '1', '-W', '2', '10.89.0.1']);
  });

  it('works with the reference host-local as IPAM, and in-process podnet-host-local equals the exec path', async () => {
    const ref = bridgeConf(lab, { bridge: 'pbrbrh', name: 'pbrref', ipamType: 'host-local', ranges: [[{ subnet: '10.90.0.0/24' }]], extra: { isGateway: true } });
    const pod = await lab.pod();
    const id = lab.nextId();
    const r = await lab.run('podnet-bridge', 'ADD', ref, { id, netns: pod.path });
    expect(r.code).toBe(0);
    expect((r.json?.ips as Obj[])[0]?.address).toBe('10.90.0.2/24');
    expect(existsSync(join(lab.dataDir, 'pbrref', '10.90.0.2'))).toBe(true);
    expect((await lab.run('podnet-bridge', 'DEL', ref, { id, netns: pod.path })).code).toBe(0);
    expect(existsSync(join(lab.dataDir, 'pbrref', '10.90.0.2'))).toBe(false);

    // Same sequence twice, once in-process (the shipped build) and once exec'd (the test build,
    // which alone reads PODNET_TEST_IPAM_EXEC; it execs the shipped podnet-host-local): same results.
    const outcomes: unknown[] = [];
    for (const exec of ['0', '1']) {
      const o = exec === '1' ? { env: { PODNET_TEST_IPAM_EXEC: '1' }, exe: join(DIST_TEST_BIN, 'podnet-bridge') } : {};
      const conf = bridgeConf(lab, { bridge: 'pbrbrh', name: `pbrinp${exec}`, ranges: [[{ subnet: '10.91.0.0/24', rangeStart: '10.91.0.10' }]] });
      const steps: unknown[] = [];
      const pods = [await lab.pod(), await lab.pod()];
      const ids = [`pbrsame1`, `pbrsame2`];
      for (let i = 0; i < 2; i++) {
        const a = await lab.run('podnet-bridge', 'ADD', conf, { id: ids[i] as string, netns: (pods[i] as Netns).path, ...o });
        steps.push(a.code, (a.json?.ips as Obj[] | undefined)?.map((x) => x.address));
      }
      const dup = await lab.run('podnet-bridge', 'DEL', conf, { id: ids[0] as string, netns: (pods[0] as Netns).path, ...o });
      steps.push(dup.code);
      const again = await lab.run('podnet-bridge', 'ADD', conf, { id: 'pbrsame3', netns: (pods[0] as Netns).path, ...o });
      steps.push(again.code, (again.json?.ips as Obj[] | undefined)?.map((x) => x.address));
      steps.push(Object.keys(reservations(lab.dataDir, `pbrinp${exec}`)));
      for (const [i, p] of [['pbrsame2', pods[1]], ['pbrsame3', pods[0]]] as const) {
        await lab.run('podnet-bridge', 'DEL', conf, { id: i, netns: (p as Netns).path, ...o });
      }
      outcomes.push(steps);
    }
    expect(outcomes[0]).toEqual(outcomes[1]);
    expect(outcomes[0]).toEqual([0, ['10.91.0.10/24'], 0, ['10.91.0.11/24'], 0, 0, ['10.91.0.12/24'], ['10.91.0.11', '10.91.0.12']]);
  });

  it('promiscMode, enabledad, MAC from runtimeConfig / args / CNI_ARGS', async () => {
    const pod = await lab.pod();
    const conf = bridgeConf(lab, {
      bridge: 'pbrbrp',
      name: 'pbrkeys',
      ranges: [[{ subnet: '10.92.0.0/24' }], [{ subnet: 'fd92::/64' }]],
      extra: { promiscMode: true, enabledad: true, runtimeConfig: { mac: '02:12:34:56:78:9a' }, args: { cni: { mac: '02:00:00:00:00:01' } } },
    });
    const r = await lab.run('podnet-bridge', 'ADD', conf, { id: lab.nextId(), netns: pod.path, args: 'IgnoreUnknown=1;MAC=02:00:00:00:00:02' });
    expect(r.code).toBe(0);
    expect((r.json?.interfaces as Obj[])[2]?.mac).toBe('02:12:34:56:78:9a');
    expect((await linkInfo(pod, 'eth0')).address).toBe('02:12:34:56:78:9a');
    expect((await linkInfo(lab.node, 'pbrbrp')).flags).toContain('PROMISC');
    expect(await lab.sysctl('net/ipv6/conf/eth0/accept_dad', pod)).toBe('1');
    expect(await lab.sysctl('net/ipv6/conf/eth0/enhanced_dad', pod)).toBe('1');
    // DAD ran to completion before ADD returned: nothing tentative.
    const info = (await linkInfo(pod, 'eth0')).addr_info as Obj[];
    expect(info.some((a) => a.tentative)).toBe(false);

    const pod2 = await lab.pod();
    const conf2 = bridgeConf(lab, { bridge: 'pbrbrp', name: 'pbrkeys', ranges: [[{ subnet: '10.92.0.0/24' }], [{ subnet: 'fd92::/64' }]], extra: { promiscMode: true } });
    const r2 = await lab.run('podnet-bridge', 'ADD', conf2, { id: lab.nextId(), netns: pod2.path, args: 'IgnoreUnknown=1;MAC=02:00:00:00:00:02' });
    expect((r2.json?.interfaces as Obj[])[2]?.mac).toBe('02:00:00:00:00:02');
  });

  it('L2 only (ipam: {}): veth on the bridge, interface up, no addresses, no IPAM', async () => {
    const pod = await lab.pod();
    const conf = { cniVersion: '1.1.0', name: 'pbrl2', type: 'podnet-bridge', bridge: 'pbrbrl', ipam: {} };
    const id = lab.nextId();
    const r = await lab.run('podnet-bridge', 'ADD', conf, { id, netns: pod.path });
    expect(r.code).toBe(0);
    expect(r.json?.ips).toBeUndefined();
    expect((r.json?.interfaces as Obj[]).length).toBe(3);
    const eth0 = await linkInfo(pod, 'eth0');
    expect(eth0.operstate).toBe('UP');
    expect(globalAddrs(eth0)).toEqual([]);
    expect(globalAddrs(await linkInfo(lab.node, 'pbrbrl'))).toEqual([]);
    expect((await lab.run('podnet-bridge', 'CHECK', { ...conf, prevResult: r.json }, { id, netns: pod.path })).code).toBe(0);
    expect((await lab.run('podnet-bridge', 'DEL', conf, { id, netns: pod.path })).code).toBe(0);
  });

  it('macspoofchk: a frame with another source MAC is dropped at the bridge', async () => {
    const pod = await lab.pod();
    const conf = bridgeConf(lab, { bridge: 'pbrbrm', name: 'pbrspoof', ranges: [[{ subnet: '10.93.1.0/24' }]], extra: { isGateway: true, macspoofchk: true } });
    const id = lab.nextId();
    const r = await lab.run('podnet-bridge', 'ADD', conf, { id, netns: pod.path });
    expect(r.code).toBe(0);
    const ifaces = r.json?.interfaces as Obj[];
    const spoof = (await lab.nftRules()).filter((x) => x.family === 'bridge' && String(x.comment).includes(`id=${id}`));
    expect(spoof).toHaveLength(1);
    await pod.exec('ping', ['-c', '1', '-W', '2', '10.93.1.1']);
    await pod.exec('ip', ['link', 'set', 'eth0', 'address', '02:66:66:66:66:66']);
    await pod.exec('ip', ['neigh', 'flush', 'all']);
    await lab.node.exec('ip', ['neigh', 'flush', 'all']);
    const bad = await pod.exec('ping', ['-c', '1', '-W', '1', '10.93.1.1'], { reject: false });
    expect(bad.exitCode).not.toBe(0);
    await pod.exec('ip', ['link', 'set', 'eth0', 'address', String(ifaces[2]?.mac)]);
    await pod.exec('ping', ['-c', '1', '-W', '2', '10.93.1.1']);
    expect((await lab.run('podnet-bridge', 'DEL', conf, { id, netns: pod.path })).code).toBe(0);
    expect((await lab.nftRules()).filter((x) => String(x.comment).includes(`id=${id}`))).toEqual([]);
  });

  it('vlan: filtering bridge, tagged port, gateway on <bridge>.<vlan> (skipped when the kernel lacks VLAN filtering)', async (ctx) => {
    const probe = await lab.node.exec('ip', ['link', 'add', 'pbrvprobe', 'type', 'bridge', 'vlan_filtering', '1'], { reject: false });
    await lab.node.exec('ip', ['link', 'del', 'pbrvprobe'], { reject: false });
    if (probe.exitCode !== 0) ctx.skip();
    const pod = await lab.pod();
    const conf = bridgeConf(lab, { bridge: 'pbrbrq', name: 'pbrvlan', ranges: [[{ subnet: '10.93.0.0/24' }]], extra: { vlan: 42, isGateway: true } });
    const id = lab.nextId();
    const r = await lab.run('podnet-bridge', 'ADD', conf, { id, netns: pod.path });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const ifaces = r.json?.interfaces as Obj[];
    expect(ifaces.map((i) => i.name)).toEqual(['pbrbrq', expect.stringMatching(/^veth/), 'eth0', 'pbrbrq.42']);
    const br = (await linkInfo(lab.node, 'pbrbrq')).linkinfo as Obj;
    expect((br.info_data as Obj).vlan_filtering).toBe(1);
    const vlans = JSON.parse((await lab.node.exec('bridge', ['-j', 'vlan', 'show', 'dev', String(ifaces[1]?.name)])).stdout) as Obj[];
    expect(vlans[0]?.vlans).toEqual([{ vlan: 42, flags: ['PVID', 'Egress Untagged'] }]);
    expect(globalAddrs(await linkInfo(lab.node, 'pbrbrq.42'))).toEqual(['10.93.0.1/24']);
    await pod.exec('ping', ['-c', '1', '-W', '2', '10.93.0.1']);
    expect((await lab.run('podnet-bridge', 'DEL', conf, { id, netns: pod.path })).code).toBe(0);
  });

  it('ipMasqBackend iptables: reference chain layout, CHECK sees it, DEL removes it', async () => {
    const pod = await lab.pod();
    const conf = bridgeConf(lab, { bridge: 'pbrbri', name: 'pbript', ranges: [[{ subnet: '10.94.0.0/24' }]], extra: { isGateway: true, ipMasq: true, ipMasqBackend: 'iptables' } });
    const id = lab.nextId();
    const r = await lab.run('podnet-bridge', 'ADD', conf, { id, netns: pod.path });
    expect(r.code).toBe(0);
    const saved = await lab.iptablesSave();
    expect(saved).toMatch(new RegExp(`-A POSTROUTING -s 10\\.94\\.0\\.\\d+/32 -m comment --comment "name: \\\\"pbript\\\\" id: \\\\"${id}\\\\"" -j CNI-[0-9a-f]{24}`));
    expect(saved).toMatch(/-A CNI-[0-9a-f]{24} ! -d 224\.0\.0\.0\/4 .* -j MASQUERADE/);
    expect((await lab.run('podnet-bridge', 'CHECK', { ...conf, prevResult: r.json }, { id, netns: pod.path })).code).toBe(0);
    expect((await lab.run('podnet-bridge', 'DEL', conf, { id, netns: pod.path })).code).toBe(0);
    expect(await lab.iptablesSave()).not.toContain(id);
  });

  it('CHECK fails when the pod lost its address or the masquerade rule is gone', async () => {
    const pod = await lab.pod();
    const conf = bridgeConf(lab, { bridge: 'pbrbrk', name: 'pbrchk', ranges: [[{ subnet: '10.95.0.0/24' }]], extra: { isGateway: true, ipMasq: true } });
    const id = lab.nextId();
    const r = await lab.run('podnet-bridge', 'ADD', conf, { id, netns: pod.path });
    const withPrev = { ...conf, prevResult: r.json };
    expect((await lab.run('podnet-bridge', 'CHECK', withPrev, { id, netns: pod.path })).code).toBe(0);
    await lab.node.exec('nft', ['flush', 'chain', 'inet', 'podnet-bridge', 'postrouting']);
    const noRule = await lab.run('podnet-bridge', 'CHECK', withPrev, { id, netns: pod.path });
    expect(noRule.code).not.toBe(0);
    expect(String(noRule.json?.msg)).toContain('masquerade');
    await pod.exec('ip', ['addr', 'flush', 'dev', 'eth0']);
    const noAddr = await lab.run('podnet-bridge', 'CHECK', withPrev, { id, netns: pod.path });
    expect(noAddr.json?.code).toBe(110);
    expect((await lab.run('podnet-bridge', 'DEL', conf, { id, netns: pod.path })).code).toBe(0);
  });

  it('GC (1.1.0) removes masquerade rules of attachments not in cni.dev/valid-attachments', async () => {
    const conf = bridgeConf(lab, { version: '1.1.0', bridge: 'pbrbrg', name: 'pbrgc', ranges: [[{ subnet: '10.96.0.0/24' }]], extra: { ipMasq: true } });
    const ids = [lab.nextId(), lab.nextId()];
    for (const id of ids) expect((await lab.run('podnet-bridge', 'ADD', conf, { id, netns: (await lab.pod()).path })).code).toBe(0);
    const ours = async () => (await lab.nftRules()).filter((x) => String(x.comment).includes('net=pbrgc')).map((x) => String(x.comment));
    expect(await ours()).toHaveLength(2);
    expect((await lab.run('podnet-bridge', 'GC', conf)).code).toBe(0); // no list: nothing removed
    expect(await ours()).toHaveLength(2);
    const gc = await lab.run('podnet-bridge', 'GC', { ...conf, 'cni.dev/valid-attachments': [{ containerID: ids[1], ifname: 'eth0' }] });
    expect(gc.stdout).toBe('');
    expect(gc.code).toBe(0);
    expect(await ours()).toEqual([expect.stringContaining(`id=${ids[1]}`)]);
    // GC went on to the IPAM: the first pod's reservation is gone, the second's kept.
    const held = Object.keys(reservations(lab.dataDir, 'pbrgc'));
    expect(held).toHaveLength(1);
    expect((await lab.run('podnet-bridge', 'STATUS', conf)).code).toBe(0);
  });

  it('STATUS reports an IPAM that is missing or exhausted as not available (code 50)', async () => {
    const missing = await lab.run('podnet-bridge', 'STATUS', bridgeConf(lab, { version: '1.1.0', name: 'pbrst1', ipamType: 'pbr-no-such-ipam' }));
    expect(missing.code).not.toBe(0);
    expect(missing.json).toMatchObject({ code: 50, msg: expect.stringContaining('pbr-no-such-ipam') });
    // A /30 holds one address besides the gateway: one pod exhausts it.
    const tiny = bridgeConf(lab, { version: '1.1.0', bridge: 'pbrbst', name: 'pbrst2', ranges: [[{ subnet: '10.98.0.0/30' }]] });
    expect((await lab.run('podnet-bridge', 'STATUS', tiny)).code).toBe(0);
    const id = lab.nextId();
    expect((await lab.run('podnet-bridge', 'ADD', tiny, { id, netns: (await lab.pod()).path })).code).toBe(0);
    const full = await lab.run('podnet-bridge', 'STATUS', tiny);
    expect(full.json).toMatchObject({ code: 50 });
    expect((await lab.run('podnet-bridge', 'DEL', tiny, { id })).code).toBe(0);
    expect((await lab.run('podnet-bridge', 'STATUS', tiny)).code).toBe(0);
  });

  it('works without a trusted /sys (plain nsenter into the node): falls back to ip', async () => {
    const pod = await lab.pod();
    const conf = bridgeConf(lab, { bridge: 'pbrbrs', name: 'pbrsys', ranges: [[{ subnet: '10.97.0.0/24' }]], extra: { isGateway: true } });
    const { execa } = await import('execa');
    const env = { PATH: process.env.PATH ?? '', CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'pbrsysfs', CNI_NETNS: pod.path, CNI_IFNAME: 'eth0', CNI_PATH: lab.cniPath };
    const r = await execa('nsenter', [`--net=${lab.node.path}`, join(lab.cniPath, 'podnet-bridge')], { input: JSON.stringify(conf), env, extendEnv: false, reject: false });
    expect(r.stdout).toContain('"interfaces"');
    expect(r.exitCode).toBe(0);
    // A second ADD with the bridge present takes the same path.
    const pod2 = await lab.pod();
    const r2 = await execa('nsenter', [`--net=${lab.node.path}`, join(lab.cniPath, 'podnet-bridge')], { input: JSON.stringify(conf), env: { ...env, CNI_CONTAINERID: 'pbrsysfs2', CNI_NETNS: pod2.path }, extendEnv: false, reject: false });
    expect(r2.exitCode).toBe(0);
    const del = await execa('nsenter', [`--net=${lab.node.path}`, join(lab.cniPath, 'podnet-bridge')], { input: JSON.stringify(conf), env: { ...env, CNI_COMMAND: 'DEL' }, extendEnv: false, reject: false });
    expect(del.exitCode).toBe(0);
    expect((await lab.node.ipJson<Obj[]>(['link', 'show', 'master', 'pbrbrs'])).length).toBe(1);
  });
});

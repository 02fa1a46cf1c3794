import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BridgeLab, bridgeConf } from '../helpers/bridge-lab.js';
import { hasBuild, isRoot } from '../helpers/env.js';
import type { Netns } from '../helpers/netns.js';
import { reservations } from '../helpers/host-local.js';

type Obj = Record<string, unknown>;

/** Everything a bad invocation could have changed: links, addresses, nft, iptables, IPAM store. */
async function snapshot(lab: BridgeLab, pod: Netns): Promise<string> {
  const [node, podLinks, addrs, nft, ipt] = await Promise.all([
    lab.node.exec('ip', ['-o', 'link', 'show']),
    pod.exec('ip', ['-o', 'addr', 'show']),
    lab.node.exec('ip', ['-o', 'addr', 'show']),
    lab.node.exec('nft', ['list', 'ruleset']),
    lab.node.exec('iptables-save', ['-t', 'nat']),
  ]);
  let store: string[] = [];
  try {
    store = readdirSync(join(lab.dataDir, 'pbrerr'));
  } catch {
    store = [];
  }
  const noCounters = ipt.stdout.replace(/\[\d+:\d+\]/g, '').replace(/^#.*$/gm, '');
  // IPv6 DAD of link-local addresses finishes on its own: not a change made by the plugin.
  const addrText = addrs.stdout.replace(/ tentative/g, '');
  return [node.stdout, podLinks.stdout, addrText, nft.stdout, noCounters, store.sort().join(',')].join('\n---\n');
}

describe.runIf(isRoot && hasBuild)('podnet-bridge DEL semantics, failures and bad input', () => {
  let lab: BridgeLab;
  beforeAll(async () => {
    lab = await BridgeLab.create();
  });
  afterAll(async () => {
    await lab?.destroy();
  });

  const conf = () => bridgeConf(lab, { bridge: 'pbrbrd', name: 'pbrdel', ranges: [[{ subnet: '10.98.0.0/24' }]], extra: { isGateway: true, ipMasq: true } });
  const held = () => Object.keys(reservations(lab.dataDir, 'pbrdel'));
  const ours = async (id: string) => ({
    nft: (await lab.nftRules()).filter((x) => String(x.comment).includes(`id=${id}`)),
    ipt: (await lab.iptablesSave()).includes(id),
    veths: (await lab.node.ipJson<Obj[]>(['link', 'show', 'master', 'pbrbrd'])).length,
  });

  it('DEL twice: both succeed; IP released, no veth, no rule', async () => {
    const pod = await lab.pod();
    const id = lab.nextId();
    const add = await lab.run('podnet-bridge', 'ADD', conf(), { id, netns: pod.path });
    expect(add.code).toBe(0);
    for (let i = 0; i < 2; i++) {
      const del = await lab.run('podnet-bridge', 'DEL', { ...conf(), prevResult: add.json }, { id, netns: pod.path });
      expect(del.stdout).toBe('');
      expect(del.code).toBe(0);
    }
    expect(held()).toEqual([]);
    expect(await ours(id)).toEqual({ nft: [], ipt: false, veths: 0 });
  });

  it('DEL after the pod netns is gone, and DEL with an empty CNI_NETNS, without prevResult', async () => {
    for (const how of ['netns-gone', 'empty-netns'] as const) {
      const pod = await lab.pod();
      const id = lab.nextId();
      expect((await lab.run('podnet-bridge', 'ADD', conf(), { id, netns: pod.path })).code).toBe(0);
      const path = pod.path;
      if (how === 'netns-gone') await pod.destroy();
      const del = await lab.run('podnet-bridge', 'DEL', conf(), { id, netns: how === 'netns-gone' ? path : '' });
      expect(del.stdout).toBe('');
      expect(del.code).toBe(0);
      if (how === 'empty-netns') {
        // The host end is found by its name, so even without CNI_NETNS the pair goes away.
        expect(await pod.ipJson<Obj[]>(['link', 'show', 'eth0']).catch(() => [])).toEqual([]);
      }
      expect(held()).toEqual([]);
      expect(await ours(id)).toEqual({ nft: [], ipt: false, veths: 0 });
    }
  });

  it('DEL of an attachment that never existed succeeds', async () => {
    const pod = await lab.pod();
    const del = await lab.run('podnet-bridge', 'DEL', conf(), { id: 'pbrnever', netns: pod.path });
    expect(del.code).toBe(0);
  });

  it('an exhausted range fails ADD with the IPAM code and leaves no veth (podnet and reference host-local)', async () => {
    for (const ipamType of ['podnet-host-local', 'host-local']) {
      const name = `pbrfull${ipamType === 'host-local' ? 'r' : 'p'}`;
      const c = bridgeConf(lab, { bridge: 'pbrbrf', name, ipamType, ranges: [[{ subnet: '10.99.0.0/24', rangeStart: '10.99.0.10', rangeEnd: '10.99.0.10' }]] });
      const first = await lab.run('podnet-bridge', 'ADD', c, { id: lab.nextId(), netns: (await lab.pod()).path });
      expect(first.code).toBe(0);
      const before = await lab.node.ipJson<Obj[]>(['link', 'show', 'master', 'pbrbrf']);
      const pod = await lab.pod();
      const direct = await lab.run(ipamType, 'ADD', c, { id: 'pbrdirect', netns: pod.path });
      const second = await lab.run('podnet-bridge', 'ADD', c, { id: lab.nextId(), netns: pod.path });
      expect(second.code).not.toBe(0);
      // Same code as the IPAM plugin itself gives.
      expect(second.json?.code).toBe(direct.json?.code);
      expect(String(second.json?.msg)).toMatch(/no IP addresses available|exhausted|available/i);
      expect(await lab.node.ipJson<Obj[]>(['link', 'show', 'master', 'pbrbrf'])).toEqual(before);
      expect(await pod.ipJson<Obj[]>(['link', 'show', 'eth0']).catch(() => [])).toEqual([]);
    }
  });

  it('a missing IPAM binary fails ADD with code 7 naming it, and leaves no veth', async () => {
    const pod = await lab.pod();
    const c = bridgeConf(lab, { bridge: 'pbrbrd', name: 'pbrmiss', ipamType: 'pbr-no-such-ipam' });
    const before = await snapshot(lab, pod);
    const r = await lab.run('podnet-bridge', 'ADD', c, { id: lab.nextId(), netns: pod.path });
    expect(r.code).not.toBe(0);
    expect(r.json?.code).toBe(7);
    expect(String(r.json?.msg)).toContain('pbr-no-such-ipam');
    expect(await snapshot(lab, pod)).toBe(before);
  });

  describe('bad input: error JSON, non-zero exit, nothing changed', () => {
    let pod: Netns;
    beforeAll(async () => {
      pod = await lab.pod();
      // A node that already has a bridge, a gateway and a pod, so "nothing changed" means something.
      expect((await lab.run('podnet-bridge', 'ADD', conf(), { id: 'pbrbase', netns: (await lab.pod()).path })).code).toBe(0);
      await lab.node.exec('ip', ['link', 'add', 'pbrdummy', 'type', 'veth', 'peer', 'name', 'pbrdummyp']); // no dummy module here
    });

    const base = () => ({ ...conf(), name: 'pbrerr' });
    const cases: [string, () => { conf: unknown; env?: Record<string, string | undefined>; ifName?: string }, number][] = [
      ['invalid JSON', () => ({ conf: '{"cniVersion": "1.0.0", "name": ' }), 6],
      ['missing CNI_CONTAINERID', () => ({ conf: base(), env: { CNI_CONTAINERID: undefined } }), 4],
      ['missing CNI_NETNS', () => ({ conf: base(), env: { CNI_NETNS: undefined } }), 4],
      ['unknown cniVersion', () => ({ conf: { ...base(), cniVersion: '9.9.9' } }), 1],
      ['network name with /', () => ({ conf: { ...base(), name: 'a/b' } }), 7],
      ['ifname longer than 15', () => ({ conf: base(), ifName: 'a-very-long-ifname' }), 4],
      ['bridge exists but is not a bridge', () => ({ conf: { ...base(), bridge: 'pbrdummy' } }), 7],
      ['hairpinMode with promiscMode', () => ({ conf: { ...base(), hairpinMode: true, promiscMode: true } }), 7],
      ['mtu out of range', () => ({ conf: { ...base(), mtu: 70000 } }), 7],
      ['vlan out of range', () => ({ conf: { ...base(), vlan: 4095 } }), 7],
      ['netns that does not exist', () => ({ conf: base(), env: { CNI_NETNS: '/var/run/netns/pbr-no-such-ns' } }), 8],
    ];
    it.each(cases)('%s', async (_what, make, code) => {
      const c = make();
      const before = await snapshot(lab, pod);
      const r = await lab.run('podnet-bridge', 'ADD', c.conf, {
        id: 'pbrbad',
        netns: pod.path,
        ...(c.ifName ? { ifName: c.ifName } : {}),
        ...(c.env ? { env: c.env } : {}),
      });
      expect(r.code).not.toBe(0);
      expect(r.json?.code).toBe(code);
      expect(typeof r.json?.msg).toBe('string');
      expect(await snapshot(lab, pod)).toBe(before);
    });
  });
});

import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { execa } from 'execa';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BridgeLab, bridgeConf } from '../helpers/bridge-lab.js';
import { hasBuild, isRoot } from '../helpers/env.js';
import { reservations } from '../helpers/host-local.js';
import type { Netns } from '../helpers/netns.js';

/**
 * Hostile and careless input (issue 10, plugin side): values that would change what `ip` runs,
 * namespaces that are not a pod's, and DEL of interfaces that are not this attachment's. Every
 * case drives the built executable in a node namespace and compares the kernel state before
 * and after.
 */
type Obj = Record<string, unknown>;

/** Links, addresses and routes of the node and one pod, plus the nft ruleset. */
async function state(lab: BridgeLab, pod: Netns): Promise<string> {
  const [links, addrs, routes, podLinks, podRoutes, nft] = await Promise.all([
    lab.node.exec('ip', ['-o', 'link', 'show']),
    lab.node.exec('ip', ['-o', 'addr', 'show']),
    lab.node.exec('ip', ['route', 'show', 'table', 'all']),
    pod.exec('ip', ['-o', 'addr', 'show']),
    pod.exec('ip', ['route', 'show', 'table', 'all']),
    lab.node.exec('nft', ['list', 'ruleset']),
  ]);
  // IPv6 link-local addresses and their routes come (and finish DAD) on their own, after a
  // link is up: not a change made by the plugin.
  const own = (l: string) => !/fe80::|ff00::\/8/.test(l);
  const text = [links, addrs, routes, podLinks, podRoutes, nft].map((r) => r.stdout.split('\n').filter(own).join('\n').replace(/ tentative/g, ''));
  return text.join('\n---\n');
}

/** state() once the kernel has stopped changing on its own (ports coming up, DAD finishing). */
async function settled(lab: BridgeLab, pod: Netns): Promise<string> {
  let last = await state(lab, pod);
  for (let i = 0; i < 30; i++) {
    await new Promise((r) => setTimeout(r, 100));
    const now = await state(lab, pod);
    if (now === last) return now;
    last = now;
  }
  return last;
}

describe.runIf(isRoot && hasBuild)('podnet-bridge: hostile input never becomes a command, the node is never damaged', () => {
  let lab: BridgeLab;
  let evilIpam: string;
  beforeAll(async () => {
    lab = await BridgeLab.create('pkl');
    // An IPAM plugin that answers ADD with whatever result the test put in $PKL_RESULT.
    evilIpam = join(lab.cniPath, 'pkl-ipam');
    writeFileSync(evilIpam, '#!/bin/sh\ncat >/dev/null\n[ "$CNI_COMMAND" = ADD ] && cat "$PKL_RESULT"\nexit 0\n');
    chmodSync(evilIpam, 0o755);
    mkdirSync(join(lab.dataDir, 'results'), { recursive: true });
  });
  afterAll(async () => {
    await lab?.destroy();
  });

  const conf = (extra: Obj = {}) => bridgeConf(lab, { bridge: 'pklbr0', name: 'pklnet', ranges: [[{ subnet: '10.97.0.0/24' }]], extra: { isGateway: true, ...extra } });
  let resultN = 0;
  /** A config whose IPAM returns `result`. */
  /** The bridge of evilConf exists before each case (an ADD made it), like any node's bridge. */
  const evilBridge = async () => {
    const c = bridgeConf(lab, { bridge: 'pklbr1', name: 'pklgood', ranges: [[{ subnet: '10.96.0.0/24' }]], extra: { isGateway: true } });
    expect((await lab.run('podnet-bridge', 'ADD', c, { id: lab.nextId(), netns: (await lab.pod()).path })).code).toBe(0);
  };
  const evilConf = (result: Obj, extra: Obj = {}) => {
    resultN += 1;
    const file = join(lab.dataDir, 'results', `r${resultN}.json`);
    writeFileSync(file, JSON.stringify(result));
    return { conf: { cniVersion: '1.0.0', name: 'pklevil', type: 'podnet-bridge', bridge: 'pklbr1', isGateway: true, ...extra, ipam: { type: 'pkl-ipam' } }, env: { PKL_RESULT: file } };
  };
  const linkNames = async (ns: Netns): Promise<string[]> => (await ns.ipJson<Obj[]>(['link', 'show'])).map((l) => String(l.ifname));

  describe('input never becomes a command', () => {
    it('CHECK with a prevResult interface name holding ip commands runs none of them', async () => {
      const pod = await lab.pod();
      const id = lab.nextId();
      const add = await lab.run('podnet-bridge', 'ADD', conf(), { id, netns: pod.path });
      expect(add.code).toBe(0);
      const prev = structuredClone(add.json) as { interfaces: Obj[] };
      prev.interfaces.push({ name: 'pklz\nlink add pklx type bridge\nlink set dev pklbr0 down' });
      const before = await settled(lab, pod);
      const check = await lab.run('podnet-bridge', 'CHECK', { ...conf(), prevResult: prev }, { id, netns: pod.path });
      // The attachment itself is intact, so CHECK passes; what matters is that nothing ran.
      expect(check.stdout).toBe('');
      expect(check.code).toBe(0);
      expect(await linkNames(lab.node)).not.toContain('pklx');
      const [br] = await lab.node.ipJson<Obj[]>(['link', 'show', 'dev', 'pklbr0']);
      expect(br?.flags).toContain('UP');
      expect(await state(lab, pod)).toBe(before);
    });

    it('CHECK with prevResult addresses and routes that are not CIDRs: decoding error, nothing runs', async () => {
      const pod = await lab.pod();
      const id = lab.nextId();
      const add = await lab.run('podnet-bridge', 'ADD', conf(), { id, netns: pod.path });
      expect(add.code).toBe(0);
      for (const bad of [
        { routes: [{ dst: '10.66.0.0/16 dev lo\nlink add pklx type bridge' }] },
        { ips: [{ address: '10.97.0.9/24\nlink set dev pklbr0 down', interface: 2 }] },
        { ips: [{ address: '010.97.0.9/24', interface: 2 }] },
      ]) {
        const before = await settled(lab, pod);
        const check = await lab.run('podnet-bridge', 'CHECK', { ...conf(), prevResult: { ...(add.json as Obj), ...bad } }, { id, netns: pod.path });
        expect(check.code).not.toBe(0);
        expect(check.json?.code).toBe(6);
        expect(await state(lab, pod)).toBe(before);
      }
    });

    it('an IPAM result whose route dst holds ip commands is refused: nothing runs in the pod, nothing is left on the node', async () => {
      await evilBridge();
      const pod = await lab.pod();
      const before = await settled(lab, pod);
      const e = evilConf({ cniVersion: '1.0.0', ips: [{ address: '10.66.0.5/24', gateway: '10.66.0.1' }], routes: [{ dst: '10.66.0.0/16 dev lo\nlink add pklx type bridge' }] });
      const r = await lab.run('podnet-bridge', 'ADD', e.conf, { id: lab.nextId(), netns: pod.path, env: e.env });
      expect(r.code).not.toBe(0);
      expect(r.json?.code).toBe(6);
      expect(String(r.json?.msg)).toMatch(/routes\[0\]\.dst/);
      expect(await linkNames(pod)).not.toContain('pklx');
      expect(await state(lab, pod)).toBe(before);
    });

    it('an IPAM result whose gateway is outside the address subnet is refused: the node routes no foreign subnet', async () => {
      await evilBridge();
      const pod = await lab.pod();
      const before = await settled(lab, pod);
      const e = evilConf({ cniVersion: '1.0.0', ips: [{ address: '10.66.1.5/24', gateway: '192.168.77.1' }] });
      const r = await lab.run('podnet-bridge', 'ADD', e.conf, { id: lab.nextId(), netns: pod.path, env: e.env });
      expect(r.code).not.toBe(0);
      expect(r.json?.code).toBe(7);
      expect(String(r.json?.msg)).toContain('192.168.77.1');
      const routes = await lab.node.exec('ip', ['route', 'show', 'table', 'all']);
      expect(routes.stdout).not.toContain('192.168.77');
      expect(await state(lab, pod)).toBe(before);
    });

    const badNames: [string, { ifName?: string; bridge?: string }, number][] = [
      ['CNI_IFNAME x#y (iproute2 batch comment)', { ifName: 'x#y' }, 4],
      ["CNI_IFNAME 'eth2' (quoted)", { ifName: "'eth2'" }, 4],
      ['CNI_IFNAME "eth3" (double-quoted)', { ifName: '"eth3"' }, 4],
      ['CNI_IFNAME of ten é (20 bytes)', { ifName: 'é'.repeat(10) }, 4],
      ['bridge name with quotes', { bridge: "pkl'q'" }, 7],
      ['bridge name with #', { bridge: 'pkl#q' }, 7],
      ['bridge name of eight é (16 bytes)', { bridge: 'é'.repeat(8) }, 7],
    ];
    it.each(badNames)('%s: refused with the right code, nothing created', async (_what, o, code) => {
      const pod = await lab.pod();
      await lab.run('podnet-bridge', 'ADD', conf(), { id: lab.nextId(), netns: (await lab.pod()).path }); // a bridge exists already
      const before = await settled(lab, pod);
      const c = o.bridge ? conf({ bridge: o.bridge }) : conf();
      const r = await lab.run('podnet-bridge', 'ADD', c, { id: lab.nextId(), netns: pod.path, ...(o.ifName ? { ifName: o.ifName } : {}) });
      expect(r.code).not.toBe(0);
      expect(r.json?.code).toBe(code);
      expect(await state(lab, pod)).toBe(before);
    });

    it('a 14-byte interface name of non-ASCII characters is a valid name and works', async () => {
      const pod = await lab.pod();
      const ifName = 'é'.repeat(7);
      const id = lab.nextId();
      const r = await lab.run('podnet-bridge', 'ADD', conf(), { id, netns: pod.path, ifName });
      expect(r.code).toBe(0);
      expect(await linkNames(pod)).toContain(ifName);
      expect((await lab.run('podnet-bridge', 'DEL', conf(), { id, netns: pod.path, ifName })).code).toBe(0);
    });
  });

  describe('the node is never damaged', () => {
    it("CNI_NETNS that is the plugin's own namespace is refused with code 8 (by path and as /proc/self/ns/net)", async () => {
      const pod = await lab.pod();
      const held = () => Object.keys(reservations(lab.dataDir, 'pklnet')).sort();
      for (const netns of ['/proc/self/ns/net', lab.node.path]) {
        const before = await settled(lab, pod);
        const heldBefore = held();
        const r = await lab.run('podnet-bridge', 'ADD', conf(), { id: lab.nextId(), netns });
        expect(r.code).not.toBe(0);
        expect(r.json?.code).toBe(8);
        expect(await state(lab, pod)).toBe(before);
        expect(held()).toEqual(heldBefore);
      }
    });

    it('CNI_NETNS that is a regular file, a directory or /dev/null: "not a network namespace", nothing created', async () => {
      const pod = await lab.pod();
      const file = join(lab.dataDir, 'not-a-netns');
      writeFileSync(file, '');
      const held = () => Object.keys(reservations(lab.dataDir, 'pklnet')).sort();
      for (const netns of [file, lab.dataDir, '/dev/null']) {
        const before = await settled(lab, pod);
        const heldBefore = held();
        const r = await lab.run('podnet-bridge', 'ADD', conf(), { id: lab.nextId(), netns });
        expect(r.code).not.toBe(0);
        expect([4, 8]).toContain(r.json?.code);
        expect(String(r.json?.msg)).toContain('not a network namespace');
        expect(await state(lab, pod)).toBe(before);
        expect(held()).toEqual(heldBefore);
      }
    });

    it('CNI_NETNS naming a namespace of another type (mnt, user, a bind-mounted uts): code 8 naming the type, nothing created; DEL succeeds', async () => {
      const pod = await lab.pod();
      const uts = join(lab.dataDir, 'uts-ns');
      writeFileSync(uts, '');
      await execa('mount', ['--bind', '/proc/self/ns/uts', uts]);
      try {
        const held = () => Object.keys(reservations(lab.dataDir, 'pklnet')).sort();
        for (const [netns, type] of [['/proc/self/ns/mnt', 'mnt'], ['/proc/self/ns/user', 'user'], [uts, 'uts']] as const) {
          const before = await settled(lab, pod);
          const heldBefore = held();
          const id = lab.nextId();
          const r = await lab.run('podnet-bridge', 'ADD', conf(), { id, netns });
          expect(r.code).not.toBe(0);
          expect(r.json).toMatchObject({ code: 8, msg: `"${netns}" is not a network namespace: it is a ${type} namespace` });
          expect(await state(lab, pod)).toBe(before);
          expect(held()).toEqual(heldBefore);
          expect((await lab.run('podnet-bridge', 'DEL', conf(), { id, netns })).code).toBe(0);
        }
      } finally {
        await execa('umount', [uts], { reject: false });
      }
    });

    it("DEL of a container that was never added leaves another pod's interface and the node's own links alone", async () => {
      const other = await lab.pod();
      const otherId = lab.nextId();
      expect((await lab.run('podnet-bridge', 'ADD', conf(), { id: otherId, netns: other.path })).code).toBe(0);
      await lab.node.exec('ip', ['link', 'add', 'pklup', 'type', 'veth', 'peer', 'name', 'pklupp']);
      try {
        const before = await state(lab, other);
        const intoPod = await lab.run('podnet-bridge', 'DEL', conf(), { id: 'pklnever1', netns: other.path });
        expect(intoPod.code).toBe(0);
        const intoNode = await lab.run('podnet-bridge', 'DEL', conf(), { id: 'pklnever2', netns: lab.node.path, ifName: 'pklup' });
        expect(intoNode.code).toBe(0);
        const viaSelf = await lab.run('podnet-bridge', 'DEL', conf(), { id: 'pklnever3', netns: '/proc/self/ns/net', ifName: 'pklupp' });
        expect(viaSelf.code).toBe(0);
        expect(await state(lab, other)).toBe(before);
        expect(await linkNames(other)).toContain('eth0');
      } finally {
        await lab.node.exec('ip', ['link', 'del', 'pklup'], { reject: false });
      }
    });

    it('DEL whose pod interface is not provably its own keeps the interface, and still releases the IP and the rules', async () => {
      const pod = await lab.pod();
      const id = lab.nextId();
      const c = conf({ ipMasq: true });
      const add = await lab.run('podnet-bridge', 'ADD', c, { id, netns: pod.path });
      expect(add.code).toBe(0);
      const hostVeth = String((add.json?.interfaces as Obj[])[1]?.name);
      // Someone removes our pair and puts an unrelated eth0 into the pod.
      await lab.node.exec('ip', ['link', 'del', hostVeth]);
      await pod.exec('ip', ['link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'pkleth0p']);
      const del = await lab.run('podnet-bridge', 'DEL', c, { id, netns: pod.path });
      expect(del.code).toBe(0);
      expect(await linkNames(pod)).toContain('eth0');
      expect(Object.values(reservations(lab.dataDir, 'pklnet')).join('\n')).not.toContain(id);
      const rules = (await lab.nftRules()).filter((x) => String(x.comment).includes(`id=${id}`));
      expect(rules).toEqual([]);
    });

    it('DEL with the prevResult of this attachment still removes its pod interface when the host end is renamed', async () => {
      const pod = await lab.pod();
      const id = lab.nextId();
      const add = await lab.run('podnet-bridge', 'ADD', conf(), { id, netns: pod.path });
      expect(add.code).toBe(0);
      const hostVeth = String((add.json?.interfaces as Obj[])[1]?.name);
      // A host end podnet cannot find by name (an older naming scheme): prevResult's MAC proves the pod end.
      await lab.node.exec('ip', ['link', 'set', 'dev', hostVeth, 'name', 'pklrenamed']);
      const del = await lab.run('podnet-bridge', 'DEL', { ...conf(), prevResult: add.json }, { id, netns: pod.path });
      expect(del.code).toBe(0);
      expect(await linkNames(pod)).not.toContain('eth0');
      expect(await linkNames(lab.node)).not.toContain('pklrenamed');
    });
  });
});

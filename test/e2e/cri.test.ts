import { rmSync } from 'node:fs';
import ipaddr from 'ipaddr.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BRIDGE, BUSYBOX_REF, CriLab, NETWORK, NODE_IP, POD_CIDR, type StockPlugins } from './clients/cri-lab.js';
import { CONTAINERD_16, type CriRuntime, cgroupDirs, containerd2 } from './clients/cri.js';
import { reservations, storeFilesNaming } from './clients/plugins.js';
import { isRoot } from '../helpers/env.js';
import { eventually } from '../helpers/wait.js';

/**
 * The CRI tier: podnet as a Kubernetes node's CNI, through the exact path kubelet uses —
 * RunPodSandbox / StopPodSandbox / RemovePodSandbox of containerd's CRI plugin (go-cni → libcni →
 * podnet-bridge → podnet-host-local, then the stock portmap), driven by crictl — with the
 * conflist podnet-routesync writes for the node (`--once`, asking the node's bin dir which CNI
 * versions the chain speaks). Each combination that matters in the field:
 *
 * | runtime | libcni | stock portmap | conflist | the runtime runs the chain at |
 * |---|---|---|---|---|
 * | containerd 1.6 (Debian 12) | 1.1: takes `cniVersion`, ignores `cniVersions` | Debian 1.1.1 (≤ 1.0.0) | 1.0.0, [1.0.0] | 1.0.0 |
 * | containerd 1.6 | 1.1 | upstream v1.10 (1.1.0) | 1.0.0, [1.0.0, 1.1.0] | 1.0.0 (1.1.0 would fail the pod) |
 * | containerd 2 (kind's) | ≥ 1.2: highest of `cniVersions` it knows | Debian 1.1.1 | 1.0.0, [1.0.0] | 1.0.0 (1.1.0 listed would fail at portmap) |
 * | containerd 2 | ≥ 1.2 | upstream v1.10 | 1.0.0, [1.0.0, 1.1.0] | 1.1.0 (STATUS reaches podnet) |
 *
 * The two a node really runs (Debian's pair, kind's pair) get the whole scenario; the crossed two
 * check the version the runtime picks with a shorter one. Every call of podnet-bridge is recorded
 * by a pass-through wrapper (clients/cri-lab.ts) to check what the runtime sent.
 */

interface Combo {
  label: string;
  runtime: () => CriRuntime;
  stock: StockPlugins;
  cniVersions: string[];
  used: string;
  full: boolean;
}

const COMBOS: Combo[] = [
  { label: 'containerd 1.6', runtime: () => CONTAINERD_16, stock: 'debian', cniVersions: ['1.0.0'], used: '1.0.0', full: true },
  { label: 'containerd 2', runtime: () => containerd2(), stock: 'v1.10', cniVersions: ['1.0.0', '1.1.0'], used: '1.1.0', full: true },
  { label: 'containerd 1.6', runtime: () => CONTAINERD_16, stock: 'v1.10', cniVersions: ['1.0.0', '1.1.0'], used: '1.0.0', full: false },
  { label: 'containerd 2', runtime: () => containerd2(), stock: 'debian', cniVersions: ['1.0.0'], used: '1.0.0', full: false },
];

/** podnet's gateway on the bridge: the first address of the node's podCIDR. */
const GATEWAY = '10.244.0.1';

const SERVER = ['nc', '-ll', '-p', '8080', '-e', 'netstat', '-tn'];

describe.runIf(isRoot)('CRI tier', () => {
  for (const combo of COMBOS) {
    const label = `${combo.label} + ${combo.stock} portmap`;

    describe(`${label}: podnet from routesync's conflist, run at ${combo.used}`, () => {
      let lab: CriLab;
      /** Pods still to remove at the end (by sandbox ID). */
      const gone = new Set<string>();
      const pods = new Map<string, { id: string; ip: string; config: string }>();

      beforeAll(async () => {
        lab = await CriLab.create({ runtime: combo.runtime(), stock: combo.stock, record: true });
      }, 180_000);

      afterAll(async () => {
        await lab?.destroy();
      }, 180_000);

      const run = async (podName: string, portMappings?: { containerPort: number; hostPort: number }[]) => {
        const config = lab.cri.podConfig({ name: podName, ...(portMappings ? { portMappings } : {}) });
        const r = await lab.cri.crictl(['runp', config], { reject: false });
        if (r.exitCode !== 0) throw new Error(`runp ${podName}: ${r.stderr}\n${lab.cri.logTail()}`);
        const id = r.stdout.trim();
        const status = await lab.cri.podStatus(id);
        pods.set(podName, { id, ip: status.ip, config });
        return id;
      };

      it('routesync wrote cniVersion 1.0.0 and only the versions every chained plugin here speaks', () => {
        expect(lab.conflist.cniVersion).toBe('1.0.0');
        expect(lab.conflist.cniVersions).toEqual(combo.cniVersions);
      });

      it('runs several pods at once: each gets its own podnet IP, which PodSandboxStatus reports', async () => {
        const names = combo.full ? ['pcr-a', 'pcr-b', 'pcr-c', 'pcr-d'] : ['pcr-a', 'pcr-b'];
        await Promise.all(names.map((n) => run(n)));
        const subnet = ipaddr.parseCIDR(POD_CIDR);
        const held = reservations(lab.dataDir, NETWORK);
        for (const n of names) {
          const p = pods.get(n)!;
          expect((await lab.cri.podStatus(p.id)).state).toBe('SANDBOX_READY');
          expect(ipaddr.parse(p.ip).match(subnet), `${n}: ${p.ip} in ${POD_CIDR}`).toBe(true);
          // podnet-host-local holds exactly that IP for the sandbox, on eth0.
          expect(held.get(p.ip)).toEqual({ containerId: p.id, ifName: 'eth0' });
        }
        expect(new Set(names.map((n) => pods.get(n)!.ip)).size).toBe(names.length);
        expect(held.size).toBe(names.length);
        expect(await lab.veths()).toHaveLength(names.length);
        // go-cni caches one result per network: its loopback and podnet's.
        expect(lab.cachedResults().filter((f) => f.startsWith(`${NETWORK}-`))).toHaveLength(names.length);
      });

      it(`the runtime sent ADD at ${combo.used} with the K8S_POD_* args, and took podnet's result`, () => {
        const adds = lab.calls().filter((c) => c.command === 'ADD');
        expect(adds.length).toBe(pods.size);
        for (const [podName, p] of pods) {
          const add = adds.find((c) => c.containerId === p.id)!;
          expect(add, podName).toBeDefined();
          expect(add.cniVersion).toBe(combo.used);
          expect(add.rc).toBe(0);
          expect(add.ifName).toBe('eth0');
          expect(add.netns).toMatch(/\/netns\/cni-[0-9a-f-]+$/);
          expect(Object.fromEntries(add.args)).toEqual({
            IgnoreUnknown: '1',
            K8S_POD_NAMESPACE: 'pcr',
            K8S_POD_NAME: podName,
            K8S_POD_INFRA_CONTAINER_ID: p.id,
            K8S_POD_UID: expect.stringMatching(new RegExp(`^${podName}-uid-`)),
          });
          const result = JSON.parse(add.stdout) as { cniVersion: string; ips: { address: string }[] };
          expect(result.cniVersion).toBe(combo.used);
          expect(result.ips.map((i) => i.address)).toEqual([`${p.ip}/24`]);
        }
      });

      it(combo.used === '1.1.0' ? 'CRI Status runs CNI STATUS on podnet, and a failing STATUS makes the network not ready' : 'CRI Status sends no CNI STATUS (a 1.0.0 chain)', async () => {
        const before = lab.calls().length;
        const cond = await lab.cri.conditions();
        expect(cond.get('NetworkReady')?.status, cond.get('NetworkReady')?.message).toBe(true);
        const statuses = lab.calls().slice(before).filter((c) => c.command === 'STATUS');
        if (combo.used !== '1.1.0') {
          expect(statuses).toEqual([]);
          return;
        }
        expect(statuses.length).toBeGreaterThan(0);
        for (const s of statuses) expect([s.cniVersion, s.rc]).toEqual(['1.1.0', 0]);
        // podnet-bridge STATUS reports its IPAM missing (code 50): the runtime must say not ready.
        const ipam = `${lab.binDir}/podnet-host-local`;
        const aside = `${lab.dir}/podnet-host-local.aside`;
        await lab.node.exec('mv', [ipam, aside]);
        try {
          const down = (await lab.cri.conditions()).get('NetworkReady');
          expect(down?.status).toBe(false);
          expect(down?.message).toMatch(/podnet-host-local/);
        } finally {
          await lab.node.exec('mv', [aside, ipam]);
        }
        expect((await lab.cri.conditions()).get('NetworkReady')?.status).toBe(true);
      });

      if (combo.full) {
        it("containers in two pods talk, and the receiver sees the sender's pod IP", async () => {
          const a = pods.get('pcr-a')!;
          const b = pods.get('pcr-b')!;
          await lab.cri.runContainer(a.id, a.config, 'server', BUSYBOX_REF, SERVER);
          const client = await lab.cri.runContainer(b.id, b.config, 'client', BUSYBOX_REF, ['sleep', '3600']);
          const seen = await peerSeenBy(lab, client, a.ip, 8080);
          expect(seen).toBe(b.ip);
        });

        it('hostPort through portmap: the node address and port reach the pod', async () => {
          const id = await run('pcr-hp', [{ containerPort: 8080, hostPort: 30080 }]);
          const hp = pods.get('pcr-hp')!;
          await lab.cri.runContainer(id, hp.config, 'server', BUSYBOX_REF, SERVER);
          // From another pod on the bridge: portmap DNATs in PREROUTING and, as the client is in
          // the pods' own subnet, masquerades the hairpin (its `snat` default): the server sees
          // the bridge's gateway address.
          const clientPod = pods.get('pcr-b')!;
          const client = (await lab.cri.crictl(['ps', '--quiet', '--pod', clientPod.id])).stdout.trim();
          expect(await peerSeenBy(lab, client, NODE_IP, 30080)).toBe(GATEWAY);
          // From the node itself (OUTPUT chain): the pod answers on the hostPort.
          const r = await lab.node.exec('busybox', ['sh', '-c', `sleep 1 | busybox nc -w 5 ${NODE_IP} 30080`], { reject: false });
          expect(parsePeer(r.stdout, 8080), r.stdout + r.stderr).toBeDefined();
        });

        it('StopPodSandbox twice: DEL each time (the later ones with no netns, no prevResult), IP and veth gone', async () => {
          const c = pods.get('pcr-c')!;
          await lab.cri.crictl(['stopp', c.id]);
          await lab.cri.crictl(['stopp', c.id]);
          expect(reservations(lab.dataDir, NETWORK).has(c.ip)).toBe(false);
          await lab.cri.crictl(['rmp', c.id]);
          gone.add(c.id);
          const dels = lab.calls().filter((x) => x.command === 'DEL' && x.containerId === c.id);
          expect(dels.length).toBeGreaterThanOrEqual(2);
          expect(dels.every((d) => d.rc === 0 && d.cniVersion === combo.used)).toBe(true);
          // The first DEL is the teardown of a live pod: its netns and the cached result.
          expect([dels[0]!.netns !== '', dels[0]!.hasPrevResult]).toEqual([true, true]);
          for (const d of dels.slice(1)) expect([d.netns, d.hasPrevResult]).toEqual(['', false]);
          expect(storeFilesNaming(lab.dataDir, NETWORK, c.id)).toEqual([]);
          expect(await lab.veths()).toHaveLength(pods.size - gone.size);
        });

        it('the pod netns removed by hand before StopPodSandbox: stop and remove still release everything', async () => {
          const d = pods.get('pcr-d')!;
          const netns = (await lab.cri.podStatus(d.id)).netnsPath!;
          expect(netns.startsWith(lab.dir)).toBe(true);
          await lab.cri.inNode('umount', [netns]);
          rmSync(netns);
          await lab.cri.crictl(['stopp', d.id]);
          await lab.cri.crictl(['rmp', d.id]);
          gone.add(d.id);
          expect(reservations(lab.dataDir, NETWORK).has(d.ip)).toBe(false);
          expect(storeFilesNaming(lab.dataDir, NETWORK, d.id)).toEqual([]);
          expect(lab.calls().filter((x) => x.command === 'DEL' && x.containerId === d.id && x.rc !== 0)).toEqual([]);
          await eventuallyVeths(lab, pods.size - gone.size);
        });

        it('containerd restarted mid-way: pods keep their IPs, new pods start, old pods stop cleanly', async () => {
          const live = [...pods.entries()].filter(([, p]) => !gone.has(p.id));
          await lab.cri.restartContainerd();
          for (const [, p] of live) {
            const s = await lab.cri.podStatus(p.id);
            expect([s.state, s.ip]).toEqual(['SANDBOX_READY', p.ip]);
          }
          await run('pcr-e');
          const e = pods.get('pcr-e')!;
          expect(live.map(([, p]) => p.ip)).not.toContain(e.ip);
          expect(reservations(lab.dataDir, NETWORK).get(e.ip)).toEqual({ containerId: e.id, ifName: 'eth0' });
          // The pods made before the restart still talk to one made after it.
          const client = (await lab.cri.crictl(['ps', '--quiet', '--pod', pods.get('pcr-b')!.id])).stdout.trim();
          expect(await peerSeenBy(lab, client, pods.get('pcr-a')!.ip, 8080)).toBe(pods.get('pcr-b')!.ip);
        });
      }

      it('StopPodSandbox + RemovePodSandbox of every pod: no reservation, veth, cached result or rule left', async () => {
        const all = [...pods.values()].filter((p) => !gone.has(p.id));
        await Promise.all(all.map((p) => lab.cri.crictl(['stopp', p.id])));
        await Promise.all(all.map((p) => lab.cri.crictl(['rmp', p.id])));
        for (const p of all) gone.add(p.id);
        expect(await lab.cri.pods()).toEqual([]);
        expect(reservations(lab.dataDir, NETWORK).size).toBe(0);
        for (const p of pods.values()) expect(storeFilesNaming(lab.dataDir, NETWORK, p.id)).toEqual([]);
        await eventuallyVeths(lab, 0);
        expect(lab.cachedResults()).toEqual([]);
        // portmap's per-pod chains and podnet's own rules, in the node's iptables and nftables.
        const ipt = (await lab.node.exec('iptables-save', [], { reject: false })).stdout;
        for (const p of pods.values()) expect(ipt).not.toContain(p.ip);
        expect(ipt).not.toMatch(/CNI-DN-/);
        const nft = (await lab.node.exec('nft', ['list', 'ruleset'], { reject: false })).stdout;
        for (const p of pods.values()) expect(nft).not.toContain(p.ip);
        // Every DEL succeeded; no GC came (containerd 2.3's go-cni has no GC call).
        const calls = lab.calls();
        expect(calls.filter((c) => c.command === 'DEL' && c.rc !== 0)).toEqual([]);
        expect(calls.filter((c) => c.command === 'GC')).toEqual([]);
        // The pods' cgroups are gone; only the (empty) parent may remain until destroy().
        const left = cgroupDirs(lab.cri.cgroupParent).filter((d) => !d.endsWith(lab.cri.cgroupParent));
        expect(left).toEqual([]);
      });
    });
  }

  describe('containerd 1.6 + debian portmap with the old conflist (cniVersion 1.1.0): the bug this tier exists for', () => {
    let lab: CriLab;
    beforeAll(async () => {
      lab = await CriLab.create({
        runtime: CONTAINERD_16,
        stock: 'debian',
        record: true,
        conflist: (c) => ({ ...c, cniVersion: '1.1.0', cniVersions: ['1.0.0', '1.1.0'] }),
      });
    }, 180_000);
    afterAll(async () => {
      await lab?.destroy();
    }, 180_000);

    it('no pod starts: libcni 1.1 rejects the 1.1.0 result, and the failed attempt leaks the IP', async () => {
      const r = await lab.cri.crictl(['runp', lab.cri.podConfig({ name: 'pcr-old' })], { reject: false });
      expect(r.exitCode).not.toBe(0);
      expect(r.stderr).toMatch(/plugin type=\\*"podnet-bridge\\*" failed \(add\): unsupported CNI result version \\*"1\.1\.0/);
      const adds = lab.calls().filter((c) => c.command === 'ADD');
      expect(adds.map((c) => [c.cniVersion, c.rc])).toEqual([['1.1.0', 0]]);
      // The cleanup DEL runs the chain in reverse: Debian's portmap refuses 1.1.0, libcni stops
      // there, podnet-bridge never gets its DEL — the reservation stays (what kubelet's retries
      // would do to the node's /24). destroy() removes the lab with it.
      expect(lab.calls().filter((c) => c.command === 'DEL')).toEqual([]);
      expect(reservations(lab.dataDir, NETWORK).size).toBe(1);
    });
  });
});

/**
 * Connect from a container to ip:port, where SERVER answers each connection with the receiver's
 * own `netstat -tn`; returns the peer address the receiver saw for that connection.
 */
async function peerSeenBy(lab: CriLab, fromContainer: string, ip: string, port: number): Promise<string | undefined> {
  const r = await lab.cri.execSync(fromContainer, ['sh', '-c', `sleep 1 | nc -w 5 ${ip} ${port}`]);
  const peer = parsePeer(r.stdout, 8080);
  if (peer === undefined) throw new Error(`no answer from ${ip}:${port} (exit ${r.exitCode}): ${r.stdout}${r.stderr}`);
  return peer;
}

/** The foreign address of the connection to local port `port` in a `netstat -tn` listing. */
function parsePeer(netstat: string, port: number): string | undefined {
  const re = new RegExp(`^tcp6?\\s+\\d+\\s+\\d+\\s+(?:::ffff:)?[\\d.]+:${port}\\s+(?:::ffff:)?([\\d.]+):\\d+\\s+(?:ESTABLISHED|CLOSE_WAIT)`, 'm');
  return re.exec(netstat)?.[1];
}

/** The host veths go with their pod's netns, once its last process (the sandbox) is gone. */
async function eventuallyVeths(lab: CriLab, n: number): Promise<void> {
  await eventually(`${n} pod veths on ${BRIDGE}`, async () => {
    const v = await lab.veths();
    if (v.length !== n) throw new Error(`veths: ${v.join(', ')}`);
    return true;
  });
}

import { join } from 'node:path';
import { execa } from 'execa';
import ipaddr from 'ipaddr.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasBuild, isRoot } from '../helpers/env.js';
import { reservations } from '../helpers/host-local.js';
import { eventually } from '../helpers/wait.js';
import { Lab, type LabNode, type Pod, probe, sleep } from './lab/lab.js';
import type { NetworkList } from '../helpers/cni-runtime.js';

/**
 * The Kubernetes network model, one test per rule, on a 3-node lab (test/e2e/lab/lab.ts):
 * namespaces for a fabric, nodes and pods; podnet-routesync on every node from a nodes file;
 * pods wired by podnet's plugins through the CNI contract as a runtime does.
 */
describe.runIf(isRoot && hasBuild)('Kubernetes network model on a 3-node lab', () => {
  let lab: Lab;
  const lists = new Map<string, NetworkList>();

  const inCidr = (ip: string, cidr: string) => ipaddr.parse(ip).match(ipaddr.parseCIDR(cidr));
  const storeFiles = (node: LabNode) => Object.keys(reservations(node.ipamDir, lists.get(node.name)!.name));

  beforeAll(async () => {
    lab = await Lab.create({ prefix: `pe2e${process.pid.toString(36)}`, nodes: 3 });
    for (const node of lab.nodes) lab.startRoutesync(node);
    for (const node of lab.nodes) {
      lists.set(node.name, await lab.waitForConflist(node));
      await lab.waitForRoutes(node, lab.nodes);
    }
    await Promise.all(lab.nodes.map(async (node) => {
      for (let i = 1; i <= 2; i++) await lab.addPod(node, `${node.name}-pod${i}`);
    }));
    await lab.startProbes();
  }, 120_000);

  afterAll(async () => {
    await lab?.destroy();
  }, 120_000);

  it('gives every pod a unique IP from its node\'s podCIDR', () => {
    const ips = lab.pods.map((p) => p.ip);
    expect(new Set(ips).size).toBe(ips.length);
    for (const pod of lab.pods) expect(inCidr(pod.ip, lab.node(pod.node).podCidr), `${pod.name} ${pod.ip}`).toBe(true);
  });

  it('lets pods on one node reach each other, seeing the sender\'s own IP', async () => {
    for (const node of lab.nodes) {
      const local = lab.pods.filter((p) => p.node === node.name);
      for (const src of local) {
        const results = await probe(src.ns, local.map((p) => p.ip));
        expect(results.map((r) => r.seen)).toEqual(local.map(() => src.ip));
      }
    }
  });

  it('lets pods on different nodes reach each other without NAT', async () => {
    for (const src of lab.pods) {
      const remote = lab.pods.filter((p) => p.node !== src.node);
      const results = await probe(src.ns, remote.map((p) => p.ip));
      expect(results, `from ${src.name}`).toEqual(remote.map((p) => ({ target: p.ip, seen: src.ip })));
    }
  });

  it('lets every node reach every pod', async () => {
    for (const node of lab.nodes) {
      const results = await probe(node.ns, lab.pods.map((p) => p.ip));
      for (const r of results) expect(r.seen, `${node.name} → ${r.target}: ${r.error}`).toBeDefined();
      // Remote pods see the node's own uplink address: routed, not translated.
      for (const r of results.filter((x) => lab.pods.find((p) => p.ip === x.target)?.node !== node.name)) {
        expect(r.seen).toBe(node.ip);
      }
    }
  });

  it('masquerades pod traffic to an address outside the cluster to the node IP', async () => {
    for (const src of lab.pods) {
      const [r] = await probe(src.ns, [lab.outsideAddress]);
      expect(r?.seen, `${src.name}: ${r?.error}`).toBe(lab.node(src.node).ip);
    }
  });

  it('hands a deleted pod\'s IP out again', async () => {
    // The node's own network, narrowed to a pool of 4 addresses (own network name, so its own
    // store): fill it, see the 5th ADD refused, delete one pod, and get its IP back.
    const node = lab.nodes[0]!;
    const base = lists.get(node.name)!;
    const bridge = base.plugins[0]!;
    const ipam = bridge.ipam as Record<string, unknown>;
    const small: NetworkList = {
      ...base,
      name: 'podnet-small',
      plugins: [{ ...bridge, ipam: { ...ipam, ranges: [[{ subnet: node.podCidr, rangeStart: '10.244.1.240', rangeEnd: '10.244.1.243' }]] } }],
    };
    const pods: Pod[] = [];
    try {
      for (let i = 0; i < 4; i++) pods.push(await lab.addPod(node, `small-${i}`, small));
      expect(pods.map((p) => p.ip).sort()).toEqual(['10.244.1.240', '10.244.1.241', '10.244.1.242', '10.244.1.243']);
      await expect(lab.addPod(node, 'small-full', small)).rejects.toThrow(/no IP addresses available/);
      const freed = pods.splice(1, 1)[0]!;
      await lab.delPod(freed, small);
      const again = await lab.addPod(node, 'small-again', small);
      pods.push(again);
      expect(again.ip).toBe(freed.ip);
    } finally {
      for (const p of lab.pods.filter((x) => x.name.startsWith('small-'))) await lab.delPod(p, small).catch(() => undefined);
    }
  });

  it('leaks nothing when a plugin is killed with SIGKILL in the middle of ADD', async () => {
    const node = lab.nodes[1]!;
    const list = lists.get(node.name)!;
    const runtime = lab.runtime(node);
    const baseline = { files: storeFiles(node).sort(), links: await links(node) };
    for (const delayMs of [5, 15, 30, 45, 60, 90]) {
      const ns = `${node.ns}k${delayMs}`;
      await execa('ip', ['netns', 'add', ns]);
      const rt = { containerId: `killed-${delayMs}`, netns: `/var/run/netns/${ns}`, ifName: 'eth0' };
      try {
        const bridge = list.plugins[0]!;
        const conf = { ...bridge, name: list.name, cniVersion: list.cniVersion };
        const child = execa('ip', ['netns', 'exec', node.ns, join(node.binDir, bridge.type)], {
          input: JSON.stringify(conf),
          env: { CNI_COMMAND: 'ADD', CNI_CONTAINERID: rt.containerId, CNI_NETNS: rt.netns, CNI_IFNAME: 'eth0', CNI_PATH: node.binDir },
          reject: false,
        });
        await sleep(delayMs);
        child.kill('SIGKILL');
        await child;
        // What a runtime does next: DEL for the failed sandbox, later GC with what it still runs.
        await runtime.del(list, rt);
      } finally {
        await execa('ip', ['netns', 'del', ns], { reject: false });
      }
    }
    await runtime.gc(list, lab.pods.map((p) => ({ containerID: p.containerId, ifname: p.ifName })));
    expect(storeFiles(node).sort()).toEqual(baseline.files);
    expect(await links(node)).toEqual(baseline.links);
  }, 120_000);

  it('keeps routes and traffic when routesync restarts', async () => {
    const node = lab.nodes[0]!;
    const before = await ownRoutes(node);
    await lab.stopRoutesync(node, 'SIGTERM');
    expect(await ownRoutes(node)).toEqual(before);
    lab.startRoutesync(node);
    await sleep(1500);
    expect(await ownRoutes(node)).toEqual(before);
    const src = lab.pods.find((p) => p.node === node.name)!;
    const remote = lab.pods.filter((p) => p.node !== node.name);
    expect((await probe(src.ns, remote.map((p) => p.ip))).map((r) => r.seen)).toEqual(remote.map(() => src.ip));
  });

  it('wires 3 nodes × 30 pods added in parallel, all reachable', async () => {
    const added = await Promise.all(
      lab.nodes.flatMap((node) => Array.from({ length: 30 }, (_, i) => lab.addPod(node, `bulk-${node.name}-${i}`))),
    );
    try {
      expect(new Set(added.map((p) => p.ip)).size).toBe(90);
      await lab.startProbes();
      const src = lab.pods.find((p) => p.name === 'node1-pod1')!;
      const results = await probe(src.ns, added.map((p) => p.ip), 5000);
      expect(results.filter((r) => r.seen !== src.ip)).toEqual([]);
    } finally {
      await Promise.all(added.map((p) => lab.delPod(p)));
    }
  }, 300_000);

  it('removes a deleted node\'s routes from the other nodes', async () => {
    const gone = lab.nodes[2]!;
    lab.writeNodesFile(lab.nodes.filter((n) => n !== gone));
    for (const node of lab.nodes.filter((n) => n !== gone)) {
      await eventually(`${node.name} to drop its route to ${gone.podCidr}`, async () => !(await lab.routes(node)).some((r) => r.dst === gone.podCidr), 10_000);
      // The surviving peer's route is still there.
      await lab.waitForRoutes(node, lab.nodes.filter((n) => n !== gone));
    }
    lab.writeNodesFile(lab.nodes);
  });

  async function links(node: LabNode): Promise<string[]> {
    const r = await execa('ip', ['-n', node.ns, '-j', 'link', 'show']);
    return (JSON.parse(r.stdout) as { ifname: string }[]).map((l) => l.ifname).sort();
  }

  async function ownRoutes(node: LabNode) {
    return (await lab.routes(node)).filter((r) => lab.nodes.some((n) => n.podCidr === r.dst)).sort((a, b) => a.dst.localeCompare(b.dst));
  }
});

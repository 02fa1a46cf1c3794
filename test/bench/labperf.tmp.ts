// TEMPORARY (not committed): one burst per side, printing CLOCK_MONOTONIC marks for perf slicing.
import { join } from 'node:path';
import { Lab, type LabNode } from '../e2e/lab/lab.js';
import type { NetworkList } from '../helpers/cni-runtime.js';
const mono = () => Number(process.hrtime.bigint()) / 1e9;
function referenceList(list: NetworkList, node: LabNode): NetworkList {
  return { ...list, plugins: list.plugins.map((p) => p.type !== 'podnet-bridge' ? p : { ...p, type: 'bridge', ipam: { ...(p.ipam as object), type: 'host-local', dataDir: join(node.ipamDir, 'reference') } }) };
}
const lab = await Lab.create({ prefix: 'pnperf', nodes: 3 });
try {
  const lists = new Map<string, NetworkList>();
  for (const node of lab.nodes) lab.startRoutesync(node);
  for (const node of lab.nodes) lists.set(node.name, await lab.waitForConflist(node));
  const N = Number(process.env.PODS ?? 30);
  for (const side of (process.env.SIDES ?? 'podnet,reference').split(',')) {
    const listFor = (n: LabNode) => side === 'podnet' ? lists.get(n.name)! : referenceList(lists.get(n.name)!, n);
    await new Promise((r) => setTimeout(r, 500));
    const t0 = mono();
    const pods = await Promise.all(lab.nodes.flatMap((node) => Array.from({ length: N }, (_, i) => lab.addPod(node, `${side}-${node.name}-${i}`, listFor(node)))));
    const t1 = mono();
    const times = pods.map((p) => p.addMs!).sort((a, b) => a - b);
    console.log(`MARK ${side} ${t0.toFixed(6)} ${t1.toFixed(6)} p50 ${times[Math.floor(times.length / 2)]!.toFixed(0)} wall ${((t1 - t0) * 1000).toFixed(0)}`);
    await Promise.all(pods.map((p) => lab.delPod(p, listFor(lab.node(p.node)))));
  }
} finally {
  await lab.destroy();
}

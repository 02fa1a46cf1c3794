import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isRoot, uniqueTag } from '../helpers/env.js';
import { eventually } from '../helpers/wait.js';
import { Cluster, type Cni } from './cluster.js';
import { runUpstreamE2e } from './upstream-e2e.js';

/**
 * The cluster tier: one real cluster per CNI (podnet, or the reference bridge + host-local),
 * and the same checks of the network on both. `up` builds what is missing (scripts/peers.sh),
 * so the tier never skips on a root machine.
 */
const NS = 'pct-net';

interface PodInfo {
  name: string;
  ip: string;
  node: string;
}

export function rootNamespaceSnapshot(): string {
  const run = (f: string, a: string[]) => {
    try {
      return execFileSync(f, a, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    } catch {
      return '';
    }
  };
  // Counters and values that move on their own are left out of the comparison.
  const volatile = /^(fs\.(dentry-state|inode-nr|inode-state|file-nr|aio-nr|quota\.)|kernel\.(random\.|ns_last_pid|pty\.nr)|net\.netfilter\.nf_conntrack_count|vm\.stat)/;
  const sysctls = run('sysctl', ['-a']).split('\n').filter((l) => l && !volatile.test(l)).join('\n');
  return [sysctls, run('ip', ['route', 'show', 'table', 'all']), run('ip', ['-o', 'link', 'show']), run('ip', ['rule']), run('nft', ['list', 'ruleset']), run('iptables-save', [])].join('\n--\n')
    .replace(/^# (Generated|Completed) .*$/gm, '');
}

export function defineClusterSuite(cni: Cni, o: { upstream: boolean }): void {
  describe.runIf(isRoot)(`cluster tier (${cni} plugins): kubelet, containerd, kube-proxy, real API server`, () => {
    const cluster = new Cluster(uniqueTag('pct').slice(0, 12), { say: (m) => process.stderr.write(`[cluster ${cni}] ${m}\n`) });
    let agnhost = '';
    let rootBefore = '';
    const ipamDir = cni === 'podnet' ? '/run/cni/podnet-ipam/podnet' : '/run/cni/reference-ipam/reference';

    const kubectl = (args: string[], input?: string) => cluster.kubectl(args, { ...(input !== undefined ? { input } : {}) });
    const execIn = async (pod: string, cmd: string) => (await cluster.kubectl(['-n', NS, 'exec', pod, '--', 'sh', '-c', cmd], { timeout: 60_000 })).stdout;
    const pods = async (selector: string): Promise<PodInfo[]> => {
      const r = await kubectl(['-n', NS, 'get', 'pods', '-l', selector, '-o', 'json']);
      return (JSON.parse(r.stdout) as { items: Array<{ metadata: { name: string; deletionTimestamp?: string }; spec: { nodeName: string }; status: { podIP?: string; phase: string } }> }).items
        .filter((p) => p.status.phase === 'Running' && p.status.podIP && !p.metadata.deletionTimestamp)
        .map((p) => ({ name: p.metadata.name, ip: p.status.podIP as string, node: p.spec.nodeName }));
    };
    const reservations = async (node: string): Promise<string[]> => {
      const r = await cluster.nodeExec(node, 'ls', ['-1', ipamDir], { reject: false });
      return r.stdout.split('\n').filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f));
    };
    /** From every pod, every other pod: the address each receiver saw (agnhost /clientip). */
    const matrix = async (list: PodInfo[]) => {
      const bad: string[] = [];
      for (const from of list) {
        const targets = list.filter((p) => p.name !== from.name);
        const out = await execIn(from.name, targets.map((t) => `echo "${t.ip} $(curl -s --max-time 5 http://${t.ip}:8080/clientip)"`).join('; '));
        for (const line of out.split('\n').filter(Boolean)) {
          const [to, seen] = line.split(' ');
          const seenIp = (seen ?? '').split(':')[0];
          if (seenIp !== from.ip) bad.push(`${from.name} (${from.ip}, ${from.node}) → ${to}: receiver saw "${seen ?? ''}"`);
        }
      }
      return bad;
    };
    const deployment = (replicas: number) => `apiVersion: apps/v1
kind: Deployment
metadata: {name: echo, namespace: ${NS}}
spec:
  replicas: ${replicas}
  selector: {matchLabels: {app: echo}}
  template:
    metadata: {labels: {app: echo}}
    spec:
      terminationGracePeriodSeconds: 1
      topologySpreadConstraints:
        - {maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: DoNotSchedule, labelSelector: {matchLabels: {app: echo}}}
      containers:
        - name: agnhost
          image: ${agnhost}
          args: ["netexec", "--http-port=8080", "--udp-port=8081"]
          readinessProbe: {httpGet: {path: /healthz, port: 8080}, periodSeconds: 1}
`;
    const waitDeployment = async (replicas: number): Promise<PodInfo[]> => {
      await kubectl(['-n', NS, 'rollout', 'status', 'deployment/echo', '--timeout=180s']);
      let list: PodInfo[] = [];
      await eventually(`${replicas} echo pods running`, async () => {
        list = await pods('app=echo');
        return list.length === replicas;
      }, 60_000, 500);
      return list;
    };

    beforeAll(async () => {
      rootBefore = rootNamespaceSnapshot();
      await cluster.up({ cni });
      agnhost = (cluster.requireState().images.find((i) => i.name === 'agnhost') as { ref: string }).ref;
      await kubectl(['create', 'namespace', NS]);
    }, 3_600_000);

    afterAll(async () => {
      await cluster.down();
      // Nothing the cluster made is left in the root namespace, and nothing there changed.
      expect(execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })).not.toContain(`${cluster.name}-`);
      expect(rootNamespaceSnapshot()).toBe(rootBefore);
    }, 180_000);

    it('every node turned Ready once its CNI config was written', async () => {
      expect((await cluster.readyNodes()).sort()).toEqual([cluster.nodeName(1), cluster.nodeName(2), cluster.nodeName(3)].sort());
      for (const n of cluster.requireState().nodes) {
        const conf = await cluster.nodeExec(n.name, 'ls', ['/etc/cni/net.d']);
        expect(conf.stdout).toContain(cni === 'podnet' ? '10-podnet.conflist' : '10-reference.conflist');
      }
    });

    if (o.upstream) {
      it('upstream e2e: Networking Granular Checks (Pods; Services without DNS) all pass', async () => {
        const bins = cluster.requireState().bins;
        const kbin = bins.kubernetes as string;
        const { specs, shards } = await runUpstreamE2e(cluster, { e2eTest: join(kbin, 'e2e.test'), kubectlDir: kbin, reportDir: join(cluster.dir, 'e2e'), timeoutMs: 1_200_000, shards: 3 });
        const ran = shards.map((s) => Number(/Ran (\d+) of \d+ Specs/.exec(s.output)?.[1] ?? 0)).reduce((a, b) => a + b, 0);
        process.stderr.write(`[cluster ${cni}] upstream e2e: ${ran} of ${specs.length} selected specs ran; ${shards.map((s) => /(SUCCESS|FAIL)! .*$/m.exec(s.output)?.[0] ?? `exit ${String(s.exitCode)}`).join(' | ')}\n`);
        for (const s of shards) expect(s.exitCode, `${s.focus.join('\n')}\n${s.output.split('\n').filter((l) => /\[FAIL\]|FAILED|Expected|error/i.test(l)).slice(-40).join('\n')}`).toBe(0);
        expect(ran).toBe(specs.length);
      }, 1_400_000);
    }

    it('a Deployment over the 3 nodes: every pod reaches every other pod, and the receiver sees the sender\'s pod IP', async () => {
      await kubectl(['apply', '-f', '-'], deployment(6));
      const list = await waitDeployment(6);
      expect(new Set(list.map((p) => p.node)).size).toBe(3);
      expect(await matrix(list)).toEqual([]);
    }, 300_000);

    it('a pod reaches itself through its own ClusterIP Service (hairpin)', async () => {
      await kubectl(['apply', '-f', '-'], `apiVersion: v1
kind: Pod
metadata: {name: hairpin, namespace: ${NS}, labels: {app: hairpin}}
spec:
  terminationGracePeriodSeconds: 1
  containers: [{name: agnhost, image: ${agnhost}, args: ["netexec", "--http-port=8080"]}]
---
apiVersion: v1
kind: Service
metadata: {name: hairpin, namespace: ${NS}}
spec:
  selector: {app: hairpin}
  ports: [{port: 80, targetPort: 8080}]
`);
      await kubectl(['-n', NS, 'wait', '--for=condition=Ready', 'pod/hairpin', '--timeout=120s']);
      const ip = (await kubectl(['-n', NS, 'get', 'service', 'hairpin', '-o', 'jsonpath={.spec.clusterIP}'])).stdout;
      const out = await eventually('hairpin answer', async () => execIn('hairpin', `curl -s --max-time 3 http://${ip}/hostname`), 30_000, 1000);
      expect(out).toBe('hairpin');
    }, 200_000);

    it('deleting pods releases their IPs on their node (reservation files gone); new pods get addresses again', async () => {
      const before = await pods('app=echo');
      const node = (before[0] as PodInfo).node;
      const onNode = before.filter((p) => p.node === node);
      const held = await reservations(node);
      for (const p of onNode) expect(held).toContain(p.ip);
      await kubectl(['-n', NS, 'delete', 'pod', '--wait=true', ...onNode.map((p) => p.name)]);
      await eventually('reservations released', async () => {
        const now = await reservations(node);
        return onNode.every((p) => !now.includes(p.ip));
      }, 60_000, 500);
      const after = await waitDeployment(6);
      // The deployment's spread (maxSkew 1 by hostname, DoNotSchedule) puts every replacement on
      // this node: its IPAM must hand out addresses again, not just have released them.
      const fresh = after.filter((p) => p.node === node && !onNode.some((o) => o.name === p.name));
      expect(fresh).toHaveLength(onNode.length);
      const nowHeld = await reservations(node);
      for (const p of fresh) expect(nowHeld).toContain(p.ip);
      // Every reservation on the node belongs to a live pod there (hairpin and echo pods).
      const live = [...(await pods('app=echo')), ...(await pods('app=hairpin'))].filter((p) => p.node === node).map((p) => p.ip);
      expect(nowHeld.sort()).toEqual(live.sort());
      expect(await matrix(after)).toEqual([]);
    }, 300_000);

    it('the podnet DaemonSet pod of a node is deleted: its routes and its pods\' traffic stay while it restarts', async () => {
      const list = await pods('app=echo');
      const node = cluster.nodeName(2);
      const routesBefore = (await cluster.nodeExec(node, 'ip', ['route', 'show', 'proto', '112'])).stdout;
      expect(routesBefore.split('\n').filter(Boolean).length).toBe(2);
      await kubectl(['-n', 'kube-system', 'delete', 'pod', '-l', 'app.kubernetes.io/name=podnet', '--field-selector', `spec.nodeName=${node}`, '--wait=false']);
      expect(await matrix(list)).toEqual([]);
      expect((await cluster.nodeExec(node, 'ip', ['route', 'show', 'proto', '112'])).stdout).toBe(routesBefore);
      await kubectl(['-n', 'kube-system', 'rollout', 'status', 'daemonset/podnet', '--timeout=120s']);
      expect((await cluster.nodeExec(node, 'ip', ['route', 'show', 'proto', '112'])).stdout).toBe(routesBefore);
    }, 200_000);

    it('restarting kubelet and containerd on a node keeps its pods\' network, and new pods still start there', async () => {
      const node = cluster.nodeName(3);
      const before = await pods('app=echo');
      await cluster.restart(node, 'containerd');
      await cluster.restart(node, 'kubelet');
      // The restarted kubelet serves exec again once it has synced its pods.
      for (const p of before.filter((x) => x.node === node)) await eventually(`exec in ${p.name} after the restart`, async () => (await execIn(p.name, 'echo ok')).trim() === 'ok', 90_000, 1000);
      expect(await cluster.readyNodes()).toContain(node);
      const after = await pods('app=echo');
      expect(after.map((p) => `${p.name} ${p.ip}`).sort()).toEqual(before.map((p) => `${p.name} ${p.ip}`).sort());
      expect(await matrix(after)).toEqual([]);
      await kubectl(['-n', NS, 'scale', 'deployment/echo', '--replicas=9']);
      const more = await waitDeployment(9);
      expect(more.filter((p) => p.node === node).length).toBe(3);
      expect(await matrix(more)).toEqual([]);
    }, 300_000);

    it('routesync\'s ServiceAccount can get/list/watch Nodes and nothing else', async () => {
      const can = async (...args: string[]) => (await cluster.kubectl(['auth', 'can-i', '--as=system:serviceaccount:kube-system:podnet', ...args], { reject: false })).stdout.trim();
      for (const verb of ['get', 'list', 'watch']) expect(await can(verb, 'nodes')).toBe('yes');
      for (const [verb, res] of [['create', 'nodes'], ['patch', 'nodes'], ['update', 'nodes/status'], ['delete', 'nodes'], ['list', 'pods'], ['get', 'secrets'], ['list', 'services'], ['create', 'pods'], ['get', 'configmaps']] as const) {
        expect(`${verb} ${res}: ${await can(verb, res, '--all-namespaces')}`).toBe(`${verb} ${res}: no`);
      }
    });

    it('kubectl delete node: every other node drops the route to its podCIDR', async () => {
      const gone = cluster.nodeName(3);
      const nodes = await cluster.nodesJson();
      const cidr = nodes.find((n) => n.metadata.name === gone)?.spec?.podCIDR as string;
      const others = cluster.requireState().nodes.filter((n) => n.name !== gone);
      for (const n of others) expect((await cluster.nodeExec(n.name, 'ip', ['route', 'show', cidr])).stdout).toContain(`via ${cluster.node(gone).ip}`);
      await cluster.stop(gone, 'kubelet');
      await kubectl(['delete', 'node', gone]);
      for (const n of others) {
        await eventually(`route to ${cidr} gone on ${n.name}`, async () => (await cluster.nodeExec(n.name, 'ip', ['route', 'show', cidr])).stdout.trim() === '', 60_000, 500);
      }
    }, 200_000);
  });
}

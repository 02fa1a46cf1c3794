import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_TEMPLATE } from '../../routesync/conflist.js';
import { runPlugin } from '../helpers/cni.js';
import { DIST_BIN, debianCniBin, hasBuild, isRoot } from '../helpers/env.js';
import { UPSTREAM_CNI_VERSION, upstreamCniBin } from '../helpers/peers.js';
import { Netns } from '../helpers/netns.js';
import { type DaemonHandle, FABRIC_V4, RoutesyncLab, eventually } from '../helpers/routesync-lab.js';

/**
 * The whole point of podnet-routesync, end to end inside the namespace lab: daemons on two nodes
 * write each node's conflist; podnet-bridge (+ podnet-host-local) run from that conflist put a pod
 * on each node; then
 *  - pod → pod across nodes works and arrives with the pod's own IP (no NAT);
 *  - pod → outside the pod CIDRs (a server on the fabric, which has no route back to any pod
 *    CIDR) works only thanks to the daemon's masquerade and arrives from the node's IP;
 *  - the stock portmap accepts its part of the conflist.
 */
const BRIDGE = join(DIST_BIN, 'podnet-bridge');

/** A TCP server in a namespace that reports each peer address on stdout. */
function peerReporter(ns: string, host: string, port: number): { child: ChildProcess; peers: string[]; ready: Promise<void> } {
  const script = `require('net').createServer(s => { console.log(s.remoteAddress); s.end('ok') }).listen(${port}, ${JSON.stringify(host)}, () => console.log('listening'))`;
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const peers: string[] = [];
  const ready = new Promise<void>((resolve) => {
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (l) => {
      if (l === 'listening') resolve();
      else peers.push(l);
    });
  });
  return { child, peers, ready };
}

/** Connect from a namespace; resolves with the server's answer. */
async function tcpFrom(ns: string, host: string, port: number): Promise<string> {
  const script = `const s = require('net').connect(${port}, ${JSON.stringify(host)}); let d=''; s.on('data', c => d += c); s.on('end', () => process.stdout.write(d)); s.on('error', e => { process.stdout.write('error ' + e.code); }); s.setTimeout(3000, () => { process.stdout.write('timeout'); s.destroy(); })`;
  const r = await execa('ip', ['netns', 'exec', ns, process.execPath, '-e', script], { timeout: 10_000 });
  return r.stdout;
}

describe.runIf(isRoot && hasBuild)('pods on two nodes, routed by podnet-routesync', () => {
  let lab: RoutesyncLab;
  const pods: Netns[] = [];
  const servers: ChildProcess[] = [];
  const podIps: string[] = [];
  const results: Record<string, unknown>[] = [];
  const daemons: DaemonHandle[] = [];
  const daemonArgs = (i: number) => [
    '--kubeconfig',
    lab.kubeconfig,
    '--cni-conf-dir',
    join(lab.dir, `net.d-${i}`),
    '--conflist-template',
    join(lab.dir, `template-${i}.json`),
    '--metrics-addr=',
  ];
  const conflist = (i: number) => JSON.parse(readFileSync(join(lab.dir, `net.d-${i}`, '10-podnet.conflist'), 'utf8'));

  beforeAll(async () => {
    lab = await RoutesyncLab.create({ nodes: 2 });
    await lab.api.seed([lab.nodeObject(0), lab.nodeObject(1)]);
    for (const i of [0, 1]) {
      // The stock template with the IPAM store in the lab's temp dir (both "nodes" share one filesystem).
      const t = structuredClone(DEFAULT_TEMPLATE) as unknown as { plugins: { ipam?: { dataDir?: string } }[] };
      (t.plugins[0]!.ipam as { dataDir: string }).dataDir = join(lab.dir, `ipam-${i}`);
      writeFileSync(join(lab.dir, `template-${i}.json`), JSON.stringify(t));
      daemons.push(await lab.daemon(i, daemonArgs(i)));
    }
    await eventually('routes on both nodes', async () => (await lab.ourRoutes(0)).length === 1 && (await lab.ourRoutes(1)).length === 1);
    await eventually('conflists', async () => Boolean(conflist(0) && conflist(1)));
  });

  afterAll(async () => {
    for (const s of servers) s.kill('SIGKILL');
    for (const [i, pod] of pods.entries()) {
      const c = conflist(i);
      await runPlugin(BRIDGE, { command: 'DEL', containerId: `pod${i}`, netns: pod.path, ifName: 'eth0', node: lab.nodes[i]!.ns }, { ...c.plugins[0], name: c.name, cniVersion: '1.1.0' }).catch(() => undefined);
      await pod.destroy();
    }
    await lab?.destroy();
  });

  it('the written conflist is a valid config for podnet-bridge + podnet-host-local: ADD puts a pod on each node', async () => {
    for (const i of [0, 1]) {
      const c = conflist(i);
      expect(c.plugins[0].ipam.ranges).toEqual([[{ subnet: lab.nodes[i]!.cidr4 }]]);
      const pod = await Netns.create('prs');
      pods.push(pod);
      const r = await runPlugin(BRIDGE, { command: 'ADD', containerId: `pod${i}`, netns: pod.path, ifName: 'eth0', node: lab.nodes[i]!.ns }, { ...c.plugins[0], name: c.name, cniVersion: '1.1.0' });
      expect(r.code, r.stdout + r.stderr).toBe(0);
      const ip = ((r.json?.ips as { address: string }[])[0]?.address ?? '').split('/')[0] as string;
      expect(ip.startsWith(lab.nodes[i]!.cidr4.slice(0, -4))).toBe(true);
      podIps.push(ip);
      results.push(r.json as Record<string, unknown>);
    }
  });

  // The conflist's cniVersion is what libcni 1.1 (containerd 1.6/1.7) passes to every plugin as
  // is: Debian 12's portmap (1.1.1, up to 1.0.0) and kind's (upstream) take it; the upstream
  // one also takes 1.1.0, what libcni >= 1.2 picks when every plugin in the bin dir speaks it.
  it.each([
    ["Debian 12's portmap 1.1.1", 'conflist', debianCniBin],
    [`upstream portmap ${UPSTREAM_CNI_VERSION}`, 'conflist', upstreamCniBin],
    [`upstream portmap ${UPSTREAM_CNI_VERSION}`, '1.1.0', upstreamCniBin],
  ] as const)('%s accepts its entry of the conflist at the %s version (ADD, then DEL)', async (_label, at, bin) => {
    const c = conflist(0);
    const version: string = at === 'conflist' ? c.cniVersion : at;
    const prev = { ...results[0], cniVersion: version };
    const inv = { containerId: 'pod0', netns: pods[0]!.path, ifName: 'eth0', node: lab.nodes[0]!.ns };
    const entry = { ...c.plugins[1], name: c.name, cniVersion: version, prevResult: prev };
    const portmap = join(bin(), 'portmap');
    const r = await runPlugin(portmap, { command: 'ADD', ...inv }, entry);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const d = await runPlugin(portmap, { command: 'DEL', ...inv }, entry);
    expect(d.code, d.stdout + d.stderr).toBe(0);
  });

  it('pod → pod across nodes arrives with the source pod\'s own IP (no NAT)', async () => {
    const srv = peerReporter(pods[1]!.name, podIps[1]!, 8080);
    servers.push(srv.child);
    await srv.ready;
    expect(await tcpFrom(pods[0]!.name, podIps[1]!, 8080)).toBe('ok');
    expect(srv.peers).toEqual([podIps[0]]);
  });

  it('pod → outside the pod CIDRs is masqueraded to the node\'s IP (the fabric has no route back to pods)', async () => {
    const noRoute = await lab.fabric.exec('ip', ['route', 'get', podIps[0]!], { reject: false });
    expect(noRoute.exitCode).not.toBe(0);
    const srv = peerReporter(lab.fabric.name, FABRIC_V4, 8081);
    servers.push(srv.child);
    await srv.ready;
    expect(await tcpFrom(pods[0]!.name, FABRIC_V4, 8081)).toBe('ok');
    expect(srv.peers).toEqual([lab.nodes[0]!.ip4]);
  });

  it('the iptables fallback masquerades the same way (nftables table gone, daemon restarted with --masquerade iptables)', async () => {
    const node = lab.nodes[0]!.ns;
    daemons[0]!.child.kill('SIGTERM');
    expect((await daemons[0]!.exited).code).toBe(0);
    await node.exec('nft', ['delete', 'table', 'inet', 'podnet-routesync']);
    expect(await tcpFrom(pods[0]!.name, FABRIC_V4, 8081)).not.toBe('ok'); // no masquerade, no way back
    daemons[0] = await lab.daemon(0, [...daemonArgs(0), '--masquerade', 'iptables']);
    await daemons[0].waitLog((l) => l.msg === 'masquerade rules updated' && l.backend === 'iptables', 15_000, 'iptables rules');
    const srv = peerReporter(lab.fabric.name, FABRIC_V4, 8082);
    servers.push(srv.child);
    await srv.ready;
    expect(await tcpFrom(pods[0]!.name, FABRIC_V4, 8082)).toBe('ok');
    expect(srv.peers).toEqual([lab.nodes[0]!.ip4]);
    // Pod to pod still without NAT.
    const direct = peerReporter(pods[1]!.name, podIps[1]!, 8083);
    servers.push(direct.child);
    await direct.ready;
    expect(await tcpFrom(pods[0]!.name, podIps[1]!, 8083)).toBe('ok');
    expect(direct.peers).toEqual([podIps[0]]);
  });

  it('when a node is deleted, its pods become unreachable from the others (route gone)', async () => {
    await lab.api.remove('node2');
    await eventually('route removed', async () => (await lab.ourRoutes(0)).length === 0);
    expect(await tcpFrom(pods[0]!.name, podIps[1]!, 8080)).not.toBe('ok');
    await lab.api.upsert(lab.nodeObject(1));
    await eventually('route back', async () => (await lab.ourRoutes(0)).length === 1);
    expect(await tcpFrom(pods[0]!.name, podIps[1]!, 8080)).toBe('ok');
  });
});

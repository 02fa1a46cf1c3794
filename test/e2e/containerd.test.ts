import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import ipaddr from 'ipaddr.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Background, PrivateContainerd } from './clients/containerd.js';
import { buildBusyboxImage, BUSYBOX, type BuiltImage } from './clients/image.js';
import { bridgeConflist, FLAVOUR, makeBinDir, missingPlugins, reservations, storeFilesNaming } from './clients/plugins.js';
import { isRoot } from '../helpers/env.js';
import { Netns } from '../helpers/netns.js';

/**
 * containerd + runc driving podnet through `ctr run --cni` (go-cni + libcni inside ctr), with an
 * image built here from busybox-static. containerd runs privately (own root, state, socket) in a
 * node network namespace; ctr's hard-coded /etc/cni/net.d, /opt/cni/bin and /var/lib/cni are the
 * test's directories inside a private mount namespace (clients/cni-mounts.sh).
 *
 * ctr calls CNI DEL only from a foreground `ctr run` when its task exits (a detached run never
 * does), so each container is a foreground `ctr run --rm --cni`, removed by killing its task.
 */
const hasTools = ['containerd', 'ctr', 'runc', 'nsenter', 'unshare'].every(onPath) && existsSync(BUSYBOX);

const NETWORK = 'pcl-ctr';
const SUBNET = '10.88.7.0/24';
const BRIDGE = 'pclbr0';
const CONTAINERS = ['pcl-a', 'pcl-b'] as const;

describe.runIf(isRoot && hasTools)(`containerd ${'ctr run --cni'} with ${FLAVOUR} plugins`, () => {
  let dir: string;
  let node: Netns | undefined;
  let containerd: PrivateContainerd | undefined;
  let image: BuiltImage;
  const runs = new Map<string, Background>();
  const ips = new Map<string, string>();
  let namespace = '';

  const dataDir = () => join(dir, 'ipam');
  const cacheDir = () => join(dir, 'cni-cache');
  /** The container ID ctr hands to CNI: `<containerd namespace>-<container id>`. */
  const cniId = (id: string) => `${namespace}-${id}`;

  beforeAll(async () => {
    const missing = missingPlugins();
    if (missing) throw new Error(missing);
    dir = mkdtempSync('/tmp/pcl-ctr-');
    node = await Netns.create('pcl');
    namespace = `${node.name}`;
    const confDir = join(dir, 'net.d');
    mkdirSync(confDir);
    mkdirSync(cacheDir());
    writeFileSync(
      join(confDir, '10-pcl.conflist'),
      JSON.stringify(bridgeConflist({ name: NETWORK, cniVersion: '1.0.0', bridge: BRIDGE, subnet: SUBNET, dataDir: dataDir() }), null, 2),
    );
    const imageDir = join(dir, 'image');
    mkdirSync(imageDir);
    image = await buildBusyboxImage(imageDir);
    containerd = await PrivateContainerd.start({
      node,
      dir: join(dir, 'containerd'),
      cniConfDir: confDir,
      cniBinDir: makeBinDir(join(dir, 'bin')),
      cniCacheDir: cacheDir(),
      namespace,
    });
    await containerd.ctr(['images', 'import', '--snapshotter', containerd.snapshotter, image.tar], { timeout: 60_000 });
  }, 120_000);

  afterAll(async () => {
    try {
      // Containers still up (a test failed midway): end their tasks so each foreground ctr run
      // does its CNI DEL and removal, then stop containerd (which removes anything left).
      for (const [id, run] of runs) {
        if (run.exited) continue;
        await containerd?.ctr(['task', 'kill', '--signal', 'SIGKILL', id], { reject: false, timeout: 10_000 });
        if (!(await run.waitFor(20_000))) run.kill('SIGKILL');
        await run.ended;
      }
      await containerd?.stop();
    } finally {
      await node?.destroy();
      if (dir) rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);

  it('imports the image built from busybox-static', async () => {
    const cd = containerd!;
    const list = await cd.ctr(['images', 'list']);
    expect(list.stdout).toContain(image.ref);
    expect(list.stdout).toContain(image.manifestDigest);
  });

  it('gives two containers IPs from the conflist subnet, and they reach each other', async () => {
    const cd = containerd!;
    // Both at once: two ctr processes run podnet ADD in parallel against one store and bridge.
    for (const id of CONTAINERS) {
      runs.set(id, cd.spawnCtr(['run', '--rm', '--cni', '--snapshotter', cd.snapshotter, image.ref, id, 'sleep', '3600']));
    }
    await Promise.all(CONTAINERS.map((id) => waitRunning(cd, id, runs.get(id)!)));

    const subnet = ipaddr.parseCIDR(SUBNET);
    for (const id of CONTAINERS) {
      const addr = await cd.exec(id, 'addr', ['ip', '-o', '-4', 'addr', 'show', 'dev', 'eth0']);
      expect(addr.exitCode, addr.stderr).toBe(0);
      const m = /inet (\d+\.\d+\.\d+\.\d+)\/(\d+)/.exec(addr.stdout);
      expect(m, addr.stdout).not.toBeNull();
      const ip = m![1]!;
      expect(ipaddr.parse(ip).match(subnet), `${ip} in ${SUBNET}`).toBe(true);
      expect(m![2]).toBe('24');
      ips.set(id, ip);

      const route = await cd.exec(id, 'route', ['ip', 'route']);
      expect(route.stdout).toMatch(/default via 10\.88\.7\.1 dev eth0/);

      // go-cni kept podnet's result in its cache (what it later hands DEL), naming the same IP.
      const cached = JSON.parse(readFileSync(join(cacheDir(), 'results', `${NETWORK}-${cniId(id)}-eth0`), 'utf8')) as {
        result: { ips: { address: string }[] };
      };
      expect(cached.result.ips.map((i) => i.address)).toEqual([`${ip}/24`]);
    }
    expect(new Set(ips.values()).size).toBe(2);

    // The store holds exactly these two, owned by ctr's container IDs on eth0.
    const held = reservations(dataDir(), NETWORK);
    expect(Object.fromEntries(held)).toEqual(
      Object.fromEntries(CONTAINERS.map((id) => [ips.get(id)!, { containerId: cniId(id), ifName: 'eth0' }])),
    );
    // Two host veths, both ports of podnet's bridge in the node namespace, none in the root one.
    expect(await bridgePorts(node!)).toHaveLength(2);
    expect((await execa('ip', ['link', 'show', 'dev', BRIDGE], { reject: false })).exitCode).not.toBe(0);

    const [a, b] = CONTAINERS;
    for (const [from, to] of [[a, b], [b, a]] as const) {
      const ping = await cd.exec(from, `ping-${to}`, ['ping', '-c', '2', '-W', '2', ips.get(to)!]);
      expect(ping.exitCode, `${from} → ${to}: ${ping.stdout}${ping.stderr}`).toBe(0);
      expect(ping.stdout).toMatch(/2 packets received/);
    }
  });

  it('releases the IPs and removes the veths when the containers are removed', async () => {
    const cd = containerd!;
    expect(runs.size).toBe(CONTAINERS.length);
    // busybox sleep as PID 1 ignores SIGTERM; SIGKILL ends the task, then the foreground ctr
    // runs CNI DEL (with an empty netns path: the task's netns is gone), deletes the task and,
    // with --rm, the container and its snapshot.
    for (const id of CONTAINERS) await cd.ctr(['task', 'kill', '--signal', 'SIGKILL', id]);
    for (const id of CONTAINERS) {
      const run = runs.get(id)!;
      expect(await run.waitFor(30_000), `ctr run ${id} did not exit after its task was killed`).toBe(true);
      const r = await run.ended;
      // 137 = 128 + SIGKILL: the task's exit status; anything else means ctr itself failed.
      expect(r.exitCode, r.stderr).toBe(137);
      expect(r.stderr).not.toMatch(/network review|level=error/);
    }

    expect(await cd.containers()).toEqual([]);
    expect(reservations(dataDir(), NETWORK).size).toBe(0);
    for (const id of CONTAINERS) expect(storeFilesNaming(dataDir(), NETWORK, cniId(id))).toEqual([]);
    expect(await bridgePorts(node!)).toEqual([]);
    const veths = await node!.ipJson(['link', 'show', 'type', 'veth']);
    expect(veths).toEqual([]);
    expect(readdirSync(join(cacheDir(), 'results'))).toEqual([]);
  });
});

function onPath(cmd: string): boolean {
  return (process.env.PATH ?? '').split(':').some((d) => d && existsSync(join(d, cmd)));
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Wait until ctr reports the task RUNNING (ctr starts it only after CNI ADD succeeded). */
async function waitRunning(cd: PrivateContainerd, id: string, run: Background): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (run.exited) {
      const r = await run.ended;
      throw new Error(`ctr run ${id} exited with ${r.exitCode}: ${r.stderr || r.stdout}\n--- containerd log ---\n${cd.logTail()}`);
    }
    if ((await cd.tasks()).get(id) === 'RUNNING') return;
    if (Date.now() > deadline) throw new Error(`container ${id} not running after 60 s\n${cd.logTail()}`);
    await sleep(100);
  }
}

/** Names of the links enslaved to the test bridge in the node namespace. */
async function bridgePorts(node: Netns): Promise<string[]> {
  const r = await execa('ip', ['-n', node.name, '-j', 'link', 'show', 'master', BRIDGE], { reject: false });
  if (r.exitCode !== 0) return [];
  return (JSON.parse(r.stdout || '[]') as { ifname: string }[]).map((l) => l.ifname);
}

import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import ipaddr from 'ipaddr.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LIBCNI_VERSION, libcniDriver, runDriver, type DriverCall } from './clients/libcni.js';
import { bridgeConflist, FLAVOUR, makeBinDir, missingPlugins, reservations, storeFilesNaming } from './clients/plugins.js';
import { ALL_VERSIONS, isRoot } from '../helpers/env.js';
import { Netns } from '../helpers/netns.js';

/**
 * libcni — the library kubelet's runtimes link — driving podnet's conflist through a small Go
 * program of ours (clients/libcni-driver, a Go module on the newest libcni v1, built by
 * `scripts/peers.sh libcni`): ADD, CHECK and DEL of the whole list, with libcni's result cache
 * supplying prevResult to CHECK and DEL exactly as containerd and CRI-O get it, once per spec
 * version; GC and STATUS (spec 1.1.0) as containerd 2's go-cni calls them.
 */
const VERSIONS = [...ALL_VERSIONS];

/** What containerd's CRI passes as CNI_ARGS for a pod. */
const K8S_ARGS = (pod: string) => ({
  IgnoreUnknown: '1',
  K8S_POD_NAMESPACE: 'default',
  K8S_POD_NAME: pod,
  K8S_POD_INFRA_CONTAINER_ID: pod,
  K8S_POD_UID: '00000000-0000-4000-8000-000000000001',
});

/** Whether spec version `v` is `min` or later. */
const atLeast = (v: string, min: string): boolean => {
  const n = (s: string) => s.split('.').map(Number) as [number, number, number];
  const [a, b] = [n(v), n(min)];
  return (a[0] - b[0] || a[1] - b[1] || a[2] - b[2]) >= 0;
};

describe.runIf(isRoot)(`libcni ${LIBCNI_VERSION} with ${FLAVOUR} plugins`, () => {
  let dir: string;
  let driver: string;
  let node: Netns | undefined;
  let binDir: string;
  const pods: Netns[] = [];

  beforeAll(async () => {
    const missing = missingPlugins();
    if (missing) throw new Error(missing);
    driver = libcniDriver(); // throws, naming scripts/peers.sh libcni, when not built
    dir = mkdtempSync('/tmp/pcl-libcni-');
    binDir = makeBinDir(join(dir, 'bin'));
    node = await Netns.create('pcl');
  }, 300_000);

  afterAll(async () => {
    try {
      for (const pod of pods) await pod.destroy();
      await node?.destroy();
    } finally {
      if (dir) rmSync(dir, { recursive: true, force: true });
    }
  });

  it('knows every spec version podnet does, 1.1.0 included, and every verb', async () => {
    const r = await runDriver(driver, { verb: 'info' });
    expect(r.out.ok).toBe(true);
    const info = r.out.info!;
    expect(info.specVersion).toBe('1.1.0');
    expect(info.supportedVersions).toEqual(VERSIONS);
    expect(info.verbs).toEqual(expect.arrayContaining(['add', 'check', 'del', 'gc', 'status']));
    console.info(`libcni ${LIBCNI_VERSION} (spec ${info.specVersion}): versions ${info.supportedVersions.join(' ')}; verbs ${info.verbs.join(' ')}`);
  });

  describe.each(VERSIONS.map((v, i) => [v, i] as const))('cniVersion %s', (version, index) => {
    const network = `pcl-v${version.replace(/\./g, '')}`;
    const subnet = `10.89.${index + 1}.0/24`;
    const containerId = `pcl-${index}-${process.pid}`;
    let pod: Netns;
    let conflist: string;
    let call: (verb: DriverCall['verb'], extra?: Partial<DriverCall>) => ReturnType<typeof runDriver>;
    let added: Record<string, unknown>;
    let podIp: string;
    const dataDir = () => join(dir, 'ipam');
    const cacheDir = () => join(dir, 'cache');
    const cacheFile = () => join(cacheDir(), 'results', `${network}-${containerId}-eth0`);

    beforeAll(async () => {
      pod = await Netns.create('pcl');
      pods.push(pod);
      conflist = join(dir, `${network}.conflist`);
      const conf = bridgeConflist({
        name: network,
        cniVersion: version,
        bridge: `pclbr${index}`,
        subnet,
        dataDir: dataDir(),
      });
      writeFileSync(conflist, JSON.stringify(conf, null, 2));
      call = (verb, extra = {}) =>
        runDriver(driver, {
          verb,
          conflist,
          binDirs: [binDir],
          cacheDir: cacheDir(),
          containerId,
          netns: pod.path,
          ifName: 'eth0',
          args: K8S_ARGS(`pod-${index}`),
          node: node!,
          ...extra,
        });
    });

    it('ValidateNetworkList accepts the conflist (every plugin reports the version)', async () => {
      const r = await call('validate');
      expect(r.out, r.stderr).toMatchObject({ ok: true });
    });

    it('ADD gives eth0 in the pod an IP from the subnet, and libcni caches the result', async () => {
      const r = await call('add');
      expect(r.out, r.stderr).toMatchObject({ ok: true });
      added = r.out.result!;
      expect(added.cniVersion).toBe(version);
      let cidr: string;
      if (atLeast(version, '0.3.0')) {
        const interfaces = added.interfaces as { name: string; sandbox?: string }[];
        const ips = added.ips as { address: string; interface?: number }[];
        expect(ips).toHaveLength(1);
        const iface = interfaces[ips[0]!.interface!];
        expect(iface).toMatchObject({ name: 'eth0', sandbox: pod.path });
        cidr = ips[0]!.address;
      } else {
        cidr = (added.ip4 as { ip: string }).ip;
      }
      const [ip, prefix] = ipaddr.parseCIDR(cidr);
      expect(ip.match(ipaddr.parseCIDR(subnet)), `${cidr} in ${subnet}`).toBe(true);
      expect(prefix).toBe(24);
      podIp = ip.toString();

      const addrs = await pod.ipJson<{ addr_info: { family: string; local: string; prefixlen: number }[] }[]>(['addr', 'show', 'dev', 'eth0']);
      expect(addrs[0]!.addr_info.filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`)).toEqual([cidr]);
      expect(Object.fromEntries(reservations(dataDir(), network))).toEqual({ [podIp]: { containerId, ifName: 'eth0' } });

      // The cache a runtime reads back on CHECK and DEL holds this result.
      expect(existsSync(cacheFile())).toBe(true);
      const cached = await call('cached');
      expect(cached.out.ok).toBe(true);
      expect(cached.out.result).toEqual(added);
    });

    if (atLeast(version, '0.4.0')) {
      it('CHECK (prevResult from the cache) succeeds', async () => {
        const r = await call('check');
        expect(r.out, r.stderr).toMatchObject({ ok: true });
      });

      it("CHECK fails once the pod's address is removed by hand", async () => {
        await pod.exec('ip', ['addr', 'del', `${podIp}/24`, 'dev', 'eth0']);
        const r = await call('check');
        expect(r.exitCode).not.toBe(0);
        expect(r.out.ok).toBe(false);
        expect(r.out.error).toBeTruthy();
      });
    } else {
      it('CHECK is refused by libcni itself for this version', async () => {
        const r = await call('check');
        expect(r.out.ok).toBe(false);
        expect(r.out.error).toMatch(/does not support the CHECK command/);
      });
    }

    it('DEL succeeds, releases the IP and removes the interfaces and the cache entry', async () => {
      const r = await call('del');
      expect(r.out, r.stderr).toMatchObject({ ok: true });
      expect(reservations(dataDir(), network).size).toBe(0);
      expect(storeFilesNaming(dataDir(), network, containerId)).toEqual([]);
      const eth0 = await pod.exec('ip', ['link', 'show', 'dev', 'eth0'], { reject: false });
      expect(eth0.exitCode).not.toBe(0);
      const veths = await node!.ipJson(['link', 'show', 'master', `pclbr${index}`]);
      expect(veths).toEqual([]);
      expect(existsSync(cacheFile())).toBe(false);
    });

    it('DEL again succeeds (no cached result left, nothing to remove)', async () => {
      const r = await call('del');
      expect(r.out, r.stderr).toMatchObject({ ok: true });
      expect(reservations(dataDir(), network).size).toBe(0);
    });
  });

  it('DEL after the pod namespace is gone still releases the IP (runtime cleanup after a crash)', async () => {
    const version = VERSIONS[VERSIONS.length - 1]!;
    const network = 'pcl-gone';
    const pod = await Netns.create('pcl');
    pods.push(pod);
    const conflist = join(dir, `${network}.conflist`);
    writeFileSync(
      conflist,
      JSON.stringify(bridgeConflist({ name: network, cniVersion: version, bridge: 'pclbrg', subnet: '10.89.200.0/24', dataDir: join(dir, 'ipam') })),
    );
    const base = { conflist, binDirs: [binDir], cacheDir: join(dir, 'cache'), containerId: `pcl-gone-${process.pid}`, ifName: 'eth0', node: node! };
    const add = await runDriver(driver, { ...base, verb: 'add', netns: pod.path, args: K8S_ARGS('gone') });
    expect(add.out, add.stderr).toMatchObject({ ok: true });
    expect(reservations(join(dir, 'ipam'), network).size).toBe(1);
    const netnsPath = pod.path;
    await pod.destroy();
    const del = await runDriver(driver, { ...base, verb: 'del', netns: netnsPath, args: K8S_ARGS('gone') });
    expect(del.out, del.stderr).toMatchObject({ ok: true });
    expect(reservations(join(dir, 'ipam'), network).size).toBe(0);
    // The host end of the veth went with the namespace; nothing is left on the bridge.
    expect(await node!.ipJson(['link', 'show', 'master', 'pclbrg'])).toEqual([]);
  });

  it('STATUS is ready, and GC releases what is not a valid attachment (cniVersion 1.1.0)', async () => {
    const network = 'pcl-gc';
    const ipam = join(dir, 'ipam');
    const conflist = join(dir, `${network}.conflist`);
    writeFileSync(conflist, JSON.stringify(bridgeConflist({ name: network, cniVersion: '1.1.0', bridge: 'pclbrgc', subnet: '10.89.201.0/24', dataDir: ipam })));
    const base = { conflist, binDirs: [binDir], cacheDir: join(dir, 'cache'), ifName: 'eth0', node: node! };
    const status = await runDriver(driver, { ...base, verb: 'status' });
    expect(status.out, status.stderr).toMatchObject({ ok: true });

    const ids = [`pcl-gc1-${process.pid}`, `pcl-gc2-${process.pid}`];
    for (const containerId of ids) {
      const pod = await Netns.create('pcl');
      pods.push(pod);
      const add = await runDriver(driver, { ...base, verb: 'add', containerId, netns: pod.path, args: K8S_ARGS(containerId) });
      expect(add.out, add.stderr).toMatchObject({ ok: true });
    }
    expect([...reservations(ipam, network).values()].map((r) => r.containerId).sort()).toEqual([...ids].sort());

    const [keep, drop] = ids as [string, string];
    const gc = await runDriver(driver, { ...base, verb: 'gc', validAttachments: [{ containerID: keep, ifname: 'eth0' }] });
    expect(gc.out, gc.stderr).toMatchObject({ ok: true });
    expect([...reservations(ipam, network).values()].map((r) => r.containerId)).toEqual([keep]);
    expect(storeFilesNaming(ipam, network, drop)).toEqual([]);

    const del = await runDriver(driver, { ...base, verb: 'del', containerId: keep, netns: pods[pods.length - 2]!.path, args: K8S_ARGS(keep) });
    expect(del.out, del.stderr).toMatchObject({ ok: true });
    expect(reservations(ipam, network).size).toBe(0);
  });
});

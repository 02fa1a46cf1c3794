import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadBridgeConf } from '../../plugins/bridge/netconf.js';
import type { NetConf } from '../../lib/cni/types.js';
import { BridgeLab } from '../helpers/bridge-lab.js';
import type { NetworkList, RuntimeConf } from '../helpers/cni-runtime.js';
import { REPO_ROOT, hasBuild, isRoot } from '../helpers/env.js';
import { reservations } from '../helpers/host-local.js';
import { UPSTREAM_CNI_VERSION } from '../helpers/peers.js';

type Obj = Record<string, unknown>;
const CONF_DIR = join(REPO_ROOT, 'conf');
const EXAMPLES = readdirSync(CONF_DIR).filter((f) => /^bridge-.*\.conflist$/.test(f)).sort();
const load = (f: string) => JSON.parse(readFileSync(join(CONF_DIR, f), 'utf8')) as NetworkList;

describe('conf/ bridge examples parse', () => {
  it('has the single-stack, dual-stack and L2-only examples', () => {
    expect(EXAMPLES).toEqual(['bridge-dual-stack.conflist', 'bridge-l2-only.conflist', 'bridge-single-stack.conflist']);
  });

  it.each(EXAMPLES)('%s is a valid podnet-bridge conflist with the stock portmap chained', (f) => {
    const list = load(f);
    expect(list.cniVersion).toMatch(/^\d+\.\d+\.\d+$/);
    expect(list.plugins.map((p) => p.type)).toEqual(['podnet-bridge', 'portmap']);
    const bridge = loadBridgeConf({ ...list.plugins[0], name: list.name, cniVersion: list.cniVersion } as NetConf, '');
    if (f.includes('l2-only')) expect(bridge.ipamType).toBe('');
    else expect(bridge.ipamType).toBe('podnet-host-local');
  });
});

// Chained with the upstream portmap (what kind nodes ship), which speaks 1.1.0: each example as
// shipped (1.0.0, the version every runtime and portmap take) and raised to 1.1.0 (what a
// libcni >= 1.2 picks when a conflist offers it).
describe.runIf(isRoot && hasBuild)(`conf/ bridge examples run through the chain (podnet-bridge → portmap ${UPSTREAM_CNI_VERSION})`, () => {
  let lab: BridgeLab;
  beforeAll(async () => {
    lab = await BridgeLab.create();
  });
  afterAll(async () => {
    await lab?.destroy();
  });

  it.each(EXAMPLES.flatMap((f) => [[f, 'as shipped'], [f, '1.1.0']]))('%s (%s): ADD, CHECK, port mapping, DEL leaves nothing', async (f, variant) => {
    const list = load(f);
    if (variant === '1.1.0') list.cniVersion = '1.1.0';
    // The example as shipped, with the IPAM store in the lab instead of /var/lib/cni.
    const ipam = list.plugins[0]?.ipam as Obj;
    if (ipam.type) ipam.dataDir = lab.dataDir;
    const runtime = lab.runtime();
    const [server, client] = [await lab.pod(), await lab.pod()];
    const tag = f.replace(/^bridge-|\.conflist$/g, '').replace(/-/g, '') + (variant === '1.1.0' ? '11' : '');
    const srv: RuntimeConf = {
      containerId: `pbrsrv${tag}`,
      netns: server.path,
      ifName: 'eth0',
      capabilityArgs: { portMappings: [{ hostPort: 18080, containerPort: 8080, protocol: 'tcp' }] },
    };
    const cli: RuntimeConf = { containerId: `pbrcli${tag}`, netns: client.path, ifName: 'eth0' };
    const rs = await runtime.add(list, srv);
    await runtime.add(list, cli);
    expect((rs.interfaces as Obj[])[2]).toMatchObject({ name: 'eth0', sandbox: server.path });
    await runtime.check(list, srv);
    await runtime.check(list, cli);

    if (ipam.type) {
      const ips = (rs.ips as Obj[]).map((i) => String(i.address).split('/')[0] as string);
      const gw = String((rs.ips as Obj[])[0]?.gateway);
      expect(ips.length).toBe(f.includes('dual') ? 2 : 1);
      await client.exec('ping', ['-c', '1', '-W', '2', ips[0] as string]);
      if (ips[1]) await client.exec('ping', ['-6', '-c', '1', '-W', '2', ips[1]]);
      // portmap's DNAT, reached from the node on the gateway address.
      const srv = server.exec('nc', ['-l', '-N', '0.0.0.0', '8080'], { timeout: 10_000 });
      await new Promise((res) => setTimeout(res, 200));
      await lab.node.exec('sh', ['-c', `echo via-portmap | nc -N -w 3 ${gw} 18080`]);
      expect((await srv).stdout.trim()).toBe('via-portmap');
    } else {
      expect(rs.ips).toBeUndefined();
      const links = await lab.node.ipJson<Obj[]>(['link', 'show', 'master', 'cni1']);
      expect(links).toHaveLength(2);
    }

    await runtime.del(list, srv);
    await runtime.del(list, cli);
    // Again, as runtimes do after a restart: the cached result is gone, so no prevResult.
    await runtime.del(list, srv);
    const bridgeName = String(list.plugins[0]?.bridge);
    expect(await lab.node.ipJson<Obj[]>(['link', 'show', 'master', bridgeName])).toEqual([]);
    expect((await lab.nftRules()).filter((r) => String(r.comment).includes(`net=${list.name} `))).toEqual([]);
    const ipt = await lab.iptablesSave();
    expect(ipt).not.toContain(srv.containerId);
    expect(ipt).not.toMatch(/-A CNI-DN-/);
    if (ipam.type) {
      expect(Object.keys(reservations(lab.dataDir, list.name))).toEqual([]);
    }
  });
});

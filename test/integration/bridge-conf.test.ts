import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadBridgeConf } from '../../plugins/bridge/netconf.js';
import type { NetConf } from '../../plugins/cni/types.js';
import { BridgeLab } from '../helpers/bridge-lab.js';
import { REPO_ROOT, hasBuild, hasReference, isRoot } from '../helpers/env.js';
import type { Netns } from '../helpers/netns.js';

type Obj = Record<string, unknown>;
const CONF_DIR = join(REPO_ROOT, 'conf');
const EXAMPLES = readdirSync(CONF_DIR).filter((f) => /^bridge-.*\.conflist$/.test(f)).sort();
const load = (f: string) => JSON.parse(readFileSync(join(CONF_DIR, f), 'utf8')) as { cniVersion: string; name: string; plugins: Obj[] };

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

/** A runtime in miniature (libcni's conflist handling): ADD in order, CHECK, DEL in reverse. */
class ChainRuntime {
  constructor(
    private readonly lab: BridgeLab,
    private readonly list: { cniVersion: string; name: string; plugins: Obj[] },
  ) {}

  private conf(p: Obj, prevResult: unknown, runtimeConfig: Obj): Obj {
    const caps = (p.capabilities ?? {}) as Record<string, boolean>;
    const rc = Object.fromEntries(Object.entries(runtimeConfig).filter(([k]) => caps[k]));
    const { capabilities: _c, ...rest } = p;
    void _c;
    return {
      ...rest,
      name: this.list.name,
      cniVersion: this.list.cniVersion,
      ...(Object.keys(rc).length ? { runtimeConfig: rc } : {}),
      ...(prevResult ? { prevResult } : {}),
    };
  }

  async add(id: string, pod: Netns, runtimeConfig: Obj = {}): Promise<Obj> {
    let prev: Obj | undefined;
    for (const p of this.list.plugins) {
      const r = await this.lab.run(String(p.type), 'ADD', this.conf(p, prev, runtimeConfig), { id, netns: pod.path });
      if (r.code !== 0) throw new Error(`${String(p.type)} ADD failed: ${r.stdout} ${r.stderr}`);
      prev = r.json;
    }
    return prev as Obj;
  }

  async check(id: string, pod: Netns, result: Obj, runtimeConfig: Obj = {}): Promise<void> {
    for (const p of this.list.plugins) {
      const r = await this.lab.run(String(p.type), 'CHECK', this.conf(p, result, runtimeConfig), { id, netns: pod.path });
      // Debian's portmap 1.1.1 CHECK of a pod with port mappings always fails on its IPv6 DNAT
      // chain (missing for IPv4-only pods, checked against the IPv4 rules for dual-stack ones):
      // the same happens chained after the reference bridge, so it is not ours to fix.
      if (p.type === 'portmap' && /could not check ipv6 dnat/.test(r.stdout)) continue;
      if (r.code !== 0) throw new Error(`${String(p.type)} CHECK failed: ${r.stdout} ${r.stderr}`);
    }
  }

  async del(id: string, pod: Netns, result: Obj | undefined, runtimeConfig: Obj = {}): Promise<void> {
    for (const p of [...this.list.plugins].reverse()) {
      const r = await this.lab.run(String(p.type), 'DEL', this.conf(p, result, runtimeConfig), { id, netns: pod.path });
      if (r.code !== 0) throw new Error(`${String(p.type)} DEL failed: ${r.stdout} ${r.stderr}`);
    }
  }
}

describe.runIf(isRoot && hasBuild && hasReference)('conf/ bridge examples run through the chain (podnet-bridge → stock portmap)', () => {
  let lab: BridgeLab;
  beforeAll(async () => {
    lab = await BridgeLab.create();
  });
  afterAll(async () => {
    await lab?.destroy();
  });

  it.each(EXAMPLES)('%s: ADD, CHECK, port mapping, DEL leaves nothing', async (f) => {
    const list = load(f);
    // The example as shipped, with the IPAM store in the lab instead of /var/lib/cni.
    const ipam = list.plugins[0]?.ipam as Obj;
    if (ipam.type) ipam.dataDir = lab.dataDir;
    const rt = new ChainRuntime(lab, list);
    const [server, client] = [await lab.pod(), await lab.pod()];
    const ports = { portMappings: [{ hostPort: 18080, containerPort: 8080, protocol: 'tcp' }] };
    const tag = f.replace(/^bridge-|\.conflist$/g, '').replace(/-/g, '');
    const [srvId, cliId] = [`pbrsrv${tag}`, `pbrcli${tag}`];
    const rs = await rt.add(srvId, server, ports);
    const rc = await rt.add(cliId, client);
    expect((rs.interfaces as Obj[])[2]).toMatchObject({ name: 'eth0', sandbox: server.path });
    await rt.check(srvId, server, rs, ports);
    await rt.check(cliId, client, rc);

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

    await rt.del(srvId, server, rs, ports);
    await rt.del(cliId, client, rc);
    // Again, as runtimes do after a restart: no prevResult this time.
    await rt.del(srvId, server, undefined, ports);
    const bridgeName = String(list.plugins[0]?.bridge);
    expect(await lab.node.ipJson<Obj[]>(['link', 'show', 'master', bridgeName])).toEqual([]);
    expect((await lab.nftRules()).filter((r) => String(r.comment).includes(`net=${list.name} `))).toEqual([]);
    const ipt = await lab.iptablesSave();
    expect(ipt).not.toContain(srvId);
    expect(ipt).not.toMatch(/-A CNI-DN-/);
    if (ipam.type) {
      expect(readdirSync(join(lab.dataDir, list.name)).filter((x) => /^\d|^fd/.test(x))).toEqual([]);
    }
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BridgeLab, bridgeConf } from '../helpers/bridge-lab.js';
import { hasBuild, isRoot } from '../helpers/env.js';
import type { Netns } from '../helpers/netns.js';
import { reservations } from '../helpers/host-local.js';

type Obj = Record<string, unknown>;
const N = 50;

describe.runIf(isRoot && hasBuild)('podnet-bridge under parallel load', () => {
  let lab: BridgeLab;
  let pods: Netns[];
  beforeAll(async () => {
    lab = await BridgeLab.create();
    pods = [];
    for (let i = 0; i < N; i++) pods.push(await lab.pod());
  }, 120_000);
  afterAll(async () => {
    await lab?.destroy();
  }, 120_000);

  it(`${N} parallel ADDs on a fresh node (no bridge yet) all succeed with distinct IPs; ${N} parallel DELs leave nothing`, async () => {
    const conf = bridgeConf(lab, {
      bridge: 'pbrbrx',
      name: 'pbrpar',
      ranges: [[{ subnet: '10.100.0.0/24' }], [{ subnet: 'fd64::/64' }]],
      extra: { isGateway: true, isDefaultGateway: true, ipMasq: true },
    });
    expect((await lab.links()).some((l) => l.ifname === 'pbrbrx')).toBe(false);
    const ids = pods.map((_, i) => `pbrpar${i}`);
    const adds = await Promise.all(pods.map((p, i) => lab.run('podnet-bridge', 'ADD', conf, { id: ids[i] as string, netns: p.path })));
    const failed = adds.filter((r) => r.code !== 0).map((r) => r.stdout);
    expect(failed).toEqual([]);
    const v4 = adds.map((r) => String((r.json?.ips as Obj[])[0]?.address));
    const v6 = adds.map((r) => String((r.json?.ips as Obj[])[1]?.address));
    expect(new Set(v4).size).toBe(N);
    expect(new Set(v6).size).toBe(N);
    // One bridge, N ports, all up; the gateway once; N×2 masquerade rules.
    const links = await lab.links();
    expect(links.filter((l) => l.ifname === 'pbrbrx')).toHaveLength(1);
    const ports = links.filter((l) => l.master === 'pbrbrx');
    expect(ports).toHaveLength(N);
    expect(ports.every((p) => p.operstate === 'UP')).toBe(true);
    const [br] = await lab.node.ipJson<Obj[]>(['addr', 'show', 'dev', 'pbrbrx']);
    const brAddrs = ((br?.addr_info as Obj[]) ?? []).filter((a) => a.scope === 'global').map((a) => `${String(a.local)}/${String(a.prefixlen)}`);
    expect(brAddrs.sort()).toEqual(['10.100.0.1/24', 'fd64::1/64']);
    expect((await lab.nftRules()).filter((r) => String(r.comment).includes('net=pbrpar'))).toHaveLength(2 * N);
    // Every pod reaches the gateway.
    await Promise.all(pods.slice(0, 10).map((p) => p.exec('ping', ['-c', '1', '-W', '2', '10.100.0.1'])));

    const dels = await Promise.all(pods.map((p, i) => lab.run('podnet-bridge', 'DEL', conf, { id: ids[i] as string, netns: p.path })));
    expect(dels.filter((r) => r.code !== 0).map((r) => r.stdout)).toEqual([]);
    expect((await lab.links()).filter((l) => l.master === 'pbrbrx')).toEqual([]);
    expect((await lab.nftRules()).filter((r) => String(r.comment).includes('net=pbrpar'))).toEqual([]);
    expect(Object.keys(reservations(lab.dataDir, 'pbrpar'))).toEqual([]);
    for (const p of pods.slice(0, 5)) expect(await p.ipJson<Obj[]>(['link', 'show', 'eth0']).catch(() => [])).toEqual([]);
  }, 180_000);
});

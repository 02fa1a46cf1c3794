import { describe, expect, it } from 'vitest';
import { ErrorCode } from '../../../../lib/cni/errors.js';
import type { NetConf } from '../../../../lib/cni/types.js';
import { allocate, freeCounts, staleReservations } from '../../../../ipam/host-local/allocator/allocator.js';
import { capacity, roundRobin } from '../../../../ipam/host-local/allocator/range-set.js';
import { type IpamConf, loadIpamConf } from '../../../../ipam/host-local/config.js';
import { formatIp, parseIp } from '../../../../lib/addr/addr.js';
import { MemoryStore } from '../../../../ipam/host-local/store/memory-store.js';

function load(ipam: Record<string, unknown>, extra: Record<string, unknown> = {}, cniArgs = ''): IpamConf {
  return loadIpamConf({ cniVersion: '1.1.0', name: 'n', type: 'x', ipam, ...extra } as NetConf, cniArgs);
}

const add = (store: MemoryStore, conf: IpamConf, id: string, ifName = 'eth0') =>
  store.withLock((tx) => allocate(tx, conf.ranges, conf.requestedIps, id, ifName));
const addrs = async (p: Promise<{ address: string }[]>) => (await p).map((i) => i.address);
const release = (store: MemoryStore, id: string, ifName = 'eth0') => store.withLock((tx) => tx.release(id, ifName));
const rejects = (code: number, msg: RegExp) => expect.objectContaining({ code, message: expect.stringMatching(msg) });

describe('allocate (round-robin)', () => {
  const conf = load({ subnet: '10.0.0.0/24', rangeStart: '10.0.0.1', rangeEnd: '10.0.0.5' });

  it('skips the gateway and hands out addresses in order with the gateway and prefix', async () => {
    const s = new MemoryStore();
    expect(await add(s, conf, 'a')).toEqual([{ address: '10.0.0.2/24', gateway: '10.0.0.1' }]);
    expect(await addrs(add(s, conf, 'b'))).toEqual(['10.0.0.3/24']);
    expect(s.lastReserved.get(0)).toBe('10.0.0.3');
    expect(s.reservations.get('10.0.0.2')).toEqual({ containerId: 'a', ifName: 'eth0' });
  });

  it('continues after the last reserved address, not at the first free one, and wraps', async () => {
    const s = new MemoryStore();
    for (const id of ['a', 'b', 'c']) await add(s, conf, id); // .2 .3 .4
    await release(s, 'a');
    expect(await addrs(add(s, conf, 'd'))).toEqual(['10.0.0.5/24']);
    // .5 was last: wrap to the start, skip the gateway .1, take the freed .2
    expect(await addrs(add(s, conf, 'e'))).toEqual(['10.0.0.2/24']);
  });

  it('starts at rangeStart when the last reserved address is outside the set', async () => {
    const s = new MemoryStore();
    s.lastReserved.set(0, '192.168.9.9');
    expect(await addrs(add(s, conf, 'a'))).toEqual(['10.0.0.2/24']);
    s.lastReserved.set(0, 'garbage');
    expect(await addrs(add(s, conf, 'b'))).toEqual(['10.0.0.3/24']);
  });

  it('tries the last reserved address itself last', async () => {
    const s = new MemoryStore();
    for (const ip of ['10.0.0.2', '10.0.0.3', '10.0.0.5']) s.reservations.set(ip, { containerId: 'x', ifName: 'eth0' });
    s.lastReserved.set(0, '10.0.0.4');
    expect(await addrs(add(s, conf, 'a'))).toEqual(['10.0.0.4/24']);
  });

  it('exhausts with code 100 and a clear message, reserving nothing', async () => {
    const s = new MemoryStore();
    for (const id of ['a', 'b', 'c', 'd']) await add(s, conf, id);
    const before = new Map(s.reservations);
    await expect(add(s, conf, 'z')).rejects.toEqual(
      rejects(ErrorCode.AddressesExhausted, /^failed to allocate for range 0: no IP addresses available in range set: 10\.0\.0\.1-10\.0\.0\.5$/),
    );
    expect(s.reservations).toEqual(before);
  });

  it('never hands out the IPv4 network or broadcast address, even inside an explicit range', async () => {
    const c = load({ subnet: '10.0.0.0/30', rangeStart: '10.0.0.0', rangeEnd: '10.0.0.3', gateway: '10.0.0.2' });
    const s = new MemoryStore();
    expect(await addrs(add(s, c, 'a'))).toEqual(['10.0.0.1/30']);
    await expect(add(s, c, 'b')).rejects.toEqual(rejects(ErrorCode.AddressesExhausted, /no IP addresses available/));
    expect(capacity(c.ranges[0] ?? [])).toBe(1n);
  });

  it('skips a gateway in the middle of the range', async () => {
    const c = load({ subnet: '10.0.0.0/29', gateway: '10.0.0.3' });
    const s = new MemoryStore();
    const got: string[] = [];
    for (const id of ['a', 'b', 'c', 'd', 'e']) got.push(...(await addrs(add(s, c, id))));
    expect(got).toEqual(['10.0.0.1/29', '10.0.0.2/29', '10.0.0.4/29', '10.0.0.5/29', '10.0.0.6/29']);
    await expect(add(s, c, 'f')).rejects.toEqual(rejects(ErrorCode.AddressesExhausted, /./));
  });

  it('moves through several subnets of one set, with each subnet\'s gateway and prefix', async () => {
    const c = load({ ranges: [[{ subnet: '10.0.0.0/30' }, { subnet: '10.0.1.0/29', gateway: '10.0.1.6' }]] });
    const s = new MemoryStore();
    const got = [];
    for (const id of ['a', 'b', 'c', 'd', 'e', 'f']) got.push(...(await add(s, c, id)));
    expect(got).toEqual([
      { address: '10.0.0.2/30', gateway: '10.0.0.1' },
      { address: '10.0.1.1/29', gateway: '10.0.1.6' },
      { address: '10.0.1.2/29', gateway: '10.0.1.6' },
      { address: '10.0.1.3/29', gateway: '10.0.1.6' },
      { address: '10.0.1.4/29', gateway: '10.0.1.6' },
      { address: '10.0.1.5/29', gateway: '10.0.1.6' },
    ]);
    // Last was the end of the second subnet: the search wraps to the first.
    await release(s, 'a');
    expect(await addrs(add(s, c, 'g'))).toEqual(['10.0.0.2/30']);
  });

  it('gives one address per range set (dual-stack) and records each set\'s last address', async () => {
    const c = load({ ranges: [[{ subnet: '10.0.0.0/24' }], [{ subnet: 'fd00:10::/64' }]] });
    const s = new MemoryStore();
    expect(await add(s, c, 'a')).toEqual([
      { address: '10.0.0.2/24', gateway: '10.0.0.1' },
      { address: 'fd00:10::2/64', gateway: 'fd00:10::1' },
    ]);
    expect(await addrs(add(s, c, 'b'))).toEqual(['10.0.0.3/24', 'fd00:10::3/64']);
    expect([s.lastReserved.get(0), s.lastReserved.get(1)]).toEqual(['10.0.0.3', 'fd00:10::3']);
  });

  it('reserves nothing when a later set is exhausted', async () => {
    const c = load({ ranges: [[{ subnet: '10.0.0.0/24' }], [{ subnet: '10.1.0.0/30' }]] });
    const s = new MemoryStore();
    await add(s, c, 'a'); // takes the only address of 10.1.0.0/30
    await expect(add(s, c, 'b')).rejects.toEqual(rejects(ErrorCode.AddressesExhausted, /range 1: no IP addresses available in range set: 10\.1\.0\.1-10\.1\.0\.2/));
    expect([...s.reservations.keys()].sort()).toEqual(['10.0.0.2', '10.1.0.2']);
  });

  it('refuses a second allocation for the same container and ifname (code 102), allows another ifname', async () => {
    const s = new MemoryStore();
    await add(s, conf, 'a');
    await expect(add(s, conf, 'a')).rejects.toEqual(rejects(ErrorCode.DuplicateAttachment, /10\.0\.0\.2 has been allocated to a, duplicate allocation is not allowed/));
    expect(await addrs(add(s, conf, 'a', 'net1'))).toEqual(['10.0.0.3/24']);
  });

  it('treats a legacy reservation (container ID only) as held by every ifname of that container', async () => {
    const s = new MemoryStore();
    s.reservations.set('10.0.0.4', { containerId: 'old' });
    await expect(add(s, conf, 'old')).rejects.toEqual(rejects(ErrorCode.DuplicateAttachment, /10\.0\.0\.4/));
    expect(await release(s, 'old')).toEqual(['10.0.0.4']);
  });

  it('does not hand out addresses reserved by others (files it did not write)', async () => {
    const s = new MemoryStore();
    s.reservations.set('10.0.0.2', { containerId: 'ref', ifName: 'eth0' });
    expect(await addrs(add(s, conf, 'a'))).toEqual(['10.0.0.3/24']);
  });

  it('lists the store instead of probing one by one after many taken addresses, with the same answer', async () => {
    const c = load({ subnet: '10.0.0.0/16' });
    const s = new MemoryStore();
    for (let i = 2; i < 300; i++) s.reservations.set(`10.0.${i >> 8}.${i & 255}`, { containerId: 'x', ifName: 'eth0' });
    let probes = 0;
    const got = await s.withLock((tx) => {
      const counting = { ...tx, isReserved: (ip: string) => ((probes += 1), tx.isReserved(ip)) };
      return allocate(counting, c.ranges, [], 'a', 'eth0');
    });
    expect(got.map((i) => i.address)).toEqual(['10.0.1.44/16']);
    expect(probes).toBeLessThanOrEqual(32);
  });
});

describe('allocate (requested addresses)', () => {
  const conf = (extra: Record<string, unknown>, cniArgs = '') =>
    load({ ranges: [[{ subnet: '10.0.0.0/24' }], [{ subnet: 'fd00::/64' }]] }, extra, cniArgs);

  it('honours requested addresses from every source, one per set, and records them as last reserved', async () => {
    const s = new MemoryStore();
    const c = conf({ runtimeConfig: { ips: ['fd00::99/64'] } }, 'IP=10.0.0.50');
    expect(await add(s, c, 'a')).toEqual([
      { address: '10.0.0.50/24', gateway: '10.0.0.1' },
      { address: 'fd00::99/64', gateway: 'fd00::1' },
    ]);
    expect(s.lastReserved.get(0)).toBe('10.0.0.50');
    expect(await addrs(add(s, load({ ranges: [[{ subnet: '10.0.0.0/24' }], [{ subnet: 'fd00::/64' }]] }), 'b'))).toEqual(['10.0.0.51/24', 'fd00::9a/64']);
    const c2 = conf({ args: { cni: { ips: ['10.0.0.77'] } } });
    expect(await addrs(add(s, c2, 'c'))).toEqual(['10.0.0.77/24', 'fd00::9b/64']);
  });

  it('refuses a requested address that is taken (code 101 with the address), reserving nothing', async () => {
    const s = new MemoryStore();
    s.reservations.set('10.0.0.50', { containerId: 'x', ifName: 'eth0' });
    await expect(add(s, conf({ runtimeConfig: { ips: ['10.0.0.50'] } }), 'a')).rejects.toEqual(
      rejects(ErrorCode.AddressUnavailable, /requested IP address 10\.0\.0\.50 is not available in range set 10\.0\.0\.1-10\.0\.0\.254/),
    );
    expect(s.reservations.size).toBe(1);
  });

  it('refuses the gateway, the network and the broadcast address', async () => {
    const s = new MemoryStore();
    await expect(add(s, conf({ runtimeConfig: { ips: ['10.0.0.1'] } }), 'a')).rejects.toEqual(rejects(ErrorCode.AddressUnavailable, /10\.0\.0\.1 is subnet's gateway/));
    const wide = load({ subnet: '10.0.0.0/24', rangeStart: '10.0.0.0', rangeEnd: '10.0.0.255' }, { runtimeConfig: { ips: ['10.0.0.255'] } });
    await expect(add(s, wide, 'a')).rejects.toEqual(rejects(ErrorCode.AddressUnavailable, /10\.0\.0\.255 is the broadcast address/));
    const wide0 = load({ subnet: '10.0.0.0/24', rangeStart: '10.0.0.0' }, { runtimeConfig: { ips: ['10.0.0.0'] } });
    await expect(add(s, wide0, 'a')).rejects.toEqual(rejects(ErrorCode.AddressUnavailable, /10\.0\.0\.0 is the network address/));
    expect(s.reservations.size).toBe(0);
  });

  it('refuses requested addresses outside every set, or two for one set, reserving nothing', async () => {
    const s = new MemoryStore();
    await expect(add(s, conf({ runtimeConfig: { ips: ['192.168.1.1'] } }), 'a')).rejects.toEqual(
      rejects(ErrorCode.AddressUnavailable, /failed to allocate all requested IPs: 192\.168\.1\.1/),
    );
    await expect(add(s, conf({ runtimeConfig: { ips: ['10.0.0.5', '10.0.0.6'] } }), 'a')).rejects.toEqual(
      rejects(ErrorCode.AddressUnavailable, /requested IPs: 10\.0\.0\.6/),
    );
    // outside rangeStart..rangeEnd counts as outside the set
    const narrow = load({ subnet: '10.0.0.0/24', rangeStart: '10.0.0.100' }, { runtimeConfig: { ips: ['10.0.0.5'] } });
    await expect(add(s, narrow, 'a')).rejects.toEqual(rejects(ErrorCode.AddressUnavailable, /10\.0\.0\.5/));
    expect(s.reservations.size).toBe(0);
  });

  it('allocates from runtimeConfig.ipRanges (first set) ahead of the configured ranges', async () => {
    const c = load({ subnet: '10.0.0.0/24' }, { runtimeConfig: { ipRanges: [[{ subnet: '10.9.0.0/24', rangeStart: '10.9.0.100' }]] } });
    const s = new MemoryStore();
    expect(await addrs(add(s, c, 'a'))).toEqual(['10.9.0.100/24', '10.0.0.2/24']);
  });
});

describe('roundRobin', () => {
  it('visits every allocatable address exactly once, starting after last', () => {
    const c = load({ ranges: [[{ subnet: '10.0.0.0/29' }, { subnet: '10.0.1.0/30' }]] });
    const set = c.ranges[0] ?? [];
    const seq = [...roundRobin(set, parseIp('10.0.0.4'))].map((x) => formatIp({ family: 4, value: x.value }));
    expect(seq).toEqual(['10.0.0.5', '10.0.0.6', '10.0.1.2', '10.0.0.2', '10.0.0.3', '10.0.0.4']);
    expect(BigInt(seq.length)).toBe(capacity(set));
  });

  it('handles IPv6 ranges near the top of the space', () => {
    const c = load({ subnet: 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:fff0/126' });
    const seq = [...roundRobin(c.ranges[0] ?? [], undefined)].map((x) => formatIp({ family: 6, value: x.value }));
    expect(seq).toEqual(['ffff:ffff:ffff:ffff:ffff:ffff:ffff:fff2', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:fff3']);
  });
});

describe('freeCounts and staleReservations', () => {
  it('counts free addresses per set, ignoring reservations outside the set or on the gateway', () => {
    const c = load({ ranges: [[{ subnet: '10.0.0.0/29' }], [{ subnet: 'fd00::/126' }]] });
    expect(capacity(c.ranges[0] ?? [])).toBe(5n);
    expect(freeCounts(c.ranges, ['10.0.0.2', '10.0.0.3', '10.0.0.1', '192.168.0.1', 'fd00::2', 'lock'])).toEqual([3n, 1n]);
  });

  it('selects reservations not in the valid attachments; legacy ones by container ID', () => {
    const all = [
      { ip: '10.0.0.2', owner: { containerId: 'a', ifName: 'eth0' } },
      { ip: '10.0.0.3', owner: { containerId: 'a', ifName: 'net1' } },
      { ip: '10.0.0.4', owner: { containerId: 'b', ifName: 'eth0' } },
      { ip: '10.0.0.5', owner: { containerId: 'a' } },
      { ip: '10.0.0.6', owner: { containerId: 'c' } },
    ];
    const stale = staleReservations(all, [{ containerID: 'a', ifname: 'eth0' }]).map((r) => r.ip);
    expect(stale).toEqual(['10.0.0.3', '10.0.0.4', '10.0.0.6']);
    expect(staleReservations(all, [])).toHaveLength(5);
  });
});

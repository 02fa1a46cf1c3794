import { describe, expect, it } from 'vitest';
import {
  type Cidr,
  DisjointCidrSet,
  canonicalIp,
  cidrContainsCidr,
  cidrParts,
  cidrsOverlap,
  cidrText,
  formatIp,
  gatewayOf,
  networkOfAddress,
  parseCidr,
  parseIp,
  parseNetwork,
} from '../../../lib/addr/addr.js';
import { parseResult } from '../../../lib/cni/result.js';

const net = (t: string): Cidr => {
  const p = parseNetwork(t);
  if (!p.ok) throw new Error(p.error);
  return p.value;
};

/** One address module for the bridge, host-local and routesync: they must agree on every text. */
describe('lib/addr: one strict reading of addresses', () => {
  it.each(['010.0.0.1/24', '10.1/8', '0x0a.0.0.1/24', '10.0.0.1/024', '10.0.0.1 /24', 'fe80::1%eth0/64', '::ffff:010.0.0.1/120'])(
    'every reader refuses %j',
    (text) => {
      expect(parseCidr(text)).toBeUndefined();
      expect(cidrParts(text)).toBeUndefined();
      expect(parseNetwork(text).ok).toBe(false);
      expect(() => parseResult({ cniVersion: '1.0.0', ips: [{ address: text }] }, '1.0.0')).toThrow(/not an address\/prefix/);
    },
  );

  it('reads IPv4-mapped IPv6 as IPv4 (as Go does) and keeps host bits unless a network is asked for', () => {
    expect(cidrParts('::ffff:10.1.2.3/120')).toEqual({ family: 4, ip: '10.1.2.3', prefix: 24, subnet: '10.1.2.0/24' });
    expect(parseNetwork('10.1.2.3/24')).toEqual({ ok: false, error: '"10.1.2.3/24" has host bits set' });
    const v6 = parseNetwork('fd00:0::/64');
    expect(v6).toMatchObject({ ok: true, value: { addr: { family: 6 }, prefix: 64 } });
    expect(v6.ok && cidrText(v6.value)).toBe('fd00::/64');
    const n = networkOfAddress('172.18.0.2', 16);
    expect(n && cidrText(n)).toBe('172.18.0.0/16');
    expect(canonicalIp('FD00::0001')).toBe('fd00::1');
    expect(parseIp('FD00::0001')?.family).toBe(6);
  });

  it('reads IPv6 text forms as Go does, without node:net (groups, one ::, dotted-quad tail, no zone)', () => {
    const v6 = (t: string) => {
      const a = parseIp(t);
      return a === undefined ? undefined : formatIp(a);
    };
    for (const [text, want] of [
      ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8'],
      ['1:2:3:4:5:6:7::', '1:2:3:4:5:6:7:0'],
      ['::', '::'],
      ['::1', '::1'],
      ['1::', '1::'],
      ['FE80::ABCD', 'fe80::abcd'],
      ['0001:02:003::', '1:2:3::'],
      ['::1.2.3.4', '::102:304'],
      ['1:2:3:4:5:6:1.2.3.4', '1:2:3:4:5:6:102:304'],
      ['::ffff:1.2.3.4', '1.2.3.4'],
    ] as const) {
      expect(v6(text), text).toBe(want);
    }
    for (const bad of [
      ':1::', '1:::2', '1::2::3', '12345::', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7', '1:2:3:4:5:6:7:8::',
      '1:2:3:4:5:6:7:1.2.3.4', '1.2.3.4::', '::1.2.3', '::01.2.3.4', 'fe80::1%eth0', 'g::1', '1:', ':1', ':', '::1:', '1::2:',
    ]) {
      expect(parseIp(bad), bad).toBeUndefined();
    }
  });

  it('prints IPv6 as Go and RFC 5952 do: the first of equally long zero runs is shortened', () => {
    expect(formatIp(parseIp('0:0:190c:0:0:a89e:0:3c61') ?? { family: 4, value: 0n })).toBe('::190c:0:0:a89e:0:3c61');
    expect(formatIp(parseIp('2001:db8:0:0:1:0:0:1') ?? { family: 4, value: 0n })).toBe('2001:db8::1:0:0:1');
    expect(formatIp(parseIp('1:0:0:0:1:0:0:0') ?? { family: 4, value: 0n })).toBe('1::1:0:0:0');
    expect(formatIp(parseIp('::1.2.3.4') ?? { family: 4, value: 0n })).toBe('::102:304');
  });

  it('gateway is network + 1 across byte boundaries; overlap is per family', () => {
    const g = (t: string) => formatIp(gatewayOf(parseCidr(t) ?? { addr: { family: 4, value: 0n }, prefix: 0 }));
    expect(g('10.1.255.7/16')).toBe('10.1.0.1');
    expect(g('fd00::abcd/64')).toBe('fd00::1');
    const c = (t: string) => parseCidr(t) ?? { addr: { family: 4, value: 0n }, prefix: 0 };
    expect(cidrsOverlap(c('10.0.0.0/8'), c('10.9.0.0/16'))).toBe(true);
    expect(cidrsOverlap(c('10.0.0.0/16'), c('10.1.0.0/16'))).toBe(false);
    expect(cidrsOverlap(c('::/0'), c('10.0.0.0/8'))).toBe(false);
  });

  it('a network is a Cidr with zero host bits: containment, and a sorted set of disjoint ones', () => {
    expect(cidrContainsCidr(net('10.244.0.0/16'), net('10.244.3.0/24'))).toBe(true);
    expect(cidrContainsCidr(net('10.244.3.0/24'), net('10.244.0.0/16'))).toBe(false);
    expect(cidrContainsCidr(net('10.244.0.0/16'), net('10.245.0.0/24'))).toBe(false);
    expect(cidrContainsCidr(net('::/0'), net('10.0.0.0/8'))).toBe(false);
    const set = new DisjointCidrSet<string>();
    for (const [t, owner] of [['10.244.2.0/24', 'b'], ['10.244.0.0/24', 'a'], ['10.244.8.0/22', 'c']] as const) set.add(net(t), owner);
    expect(set.find(net('10.244.0.0/23'))?.owner).toBe('a');
    expect(set.find(net('10.244.11.0/24'))?.owner).toBe('c');
    expect(set.find(net('10.244.1.0/24'))).toBeUndefined();
    expect(set.find(net('10.244.4.0/22'))).toBeUndefined();
    const hit = set.find(net('10.0.0.0/8'));
    expect(hit && cidrText(hit.cidr)).toBe('10.244.0.0/24');
  });
});

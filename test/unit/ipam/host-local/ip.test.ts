import { describe, expect, it } from 'vitest';
import { formatIp, parseCidr, parseIp, parseIpMaybeCidr, reservationName } from '../../../../lib/addr/addr.js';
import { parseResolvConf } from '../../../../ipam/host-local/resolv-conf.js';
import { BUCKETS, bucketName, bucketOf } from '../../../../ipam/host-local/store/disk-store.js';
import { ownerText, parseOwner } from '../../../../ipam/host-local/store/store.js';

describe('ip', () => {
  it.each([
    ['10.0.0.1', 4, 0x0a000001n],
    ['255.255.255.255', 4, 0xffffffffn],
    ['::ffff:10.0.0.1', 4, 0x0a000001n],
    ['fd00::1', 6, 0xfd000000000000000000000000000001n],
    ['::', 6, 0n],
  ])('parses %s', (text, family, value) => {
    expect(parseIp(text)).toEqual({ family, value });
  });

  it.each(['', '10.0.0', '10.0.0.256', '010.0.0.1', '10.0.0.1 ', '1.2.3.4.5', 'fe80::1%eth0', 'fd00:::1', 'x'])('rejects %j', (t) => {
    expect(parseIp(t)).toBeUndefined();
  });

  it('formats as Go does (RFC 5952 for IPv6)', () => {
    for (const t of ['10.0.0.1', '2001:db8::1:0:0:1', 'fd00::', '::1', 'fd00:0:1::5']) expect(formatIp(parseIp(t) ?? { family: 4, value: 0n })).toBe(t);
    expect(formatIp(parseIp('2001:DB8:0:0:1:0:0:1') ?? { family: 4, value: 0n })).toBe('2001:db8::1:0:0:1');
  });

  it('parses CIDRs and addresses with an optional prefix', () => {
    expect(parseCidr('10.1.2.3/24')).toEqual({ addr: { family: 4, value: 0x0a010203n }, prefix: 24 });
    expect(parseCidr('fd00::/64')?.prefix).toBe(64);
    expect(parseCidr('10.0.0.0/33')).toBeUndefined();
    expect(parseCidr('10.0.0.0/024')).toBeUndefined();
    expect(parseCidr('10.0.0.0')).toBeUndefined();
    expect(parseIpMaybeCidr('10.0.0.5/24')).toEqual({ family: 4, value: 0x0a000005n });
    expect(parseIpMaybeCidr('10.0.0.5')).toEqual({ family: 4, value: 0x0a000005n });
  });

  it('recognises only canonical addresses as reservation file names', () => {
    expect(reservationName('10.0.0.5')).toBeDefined();
    expect(reservationName('fd00::5')).toBeDefined();
    for (const n of ['lock', 'last_reserved_ip.0', 'podnet-index', 'podnet.lock', 'podnet-tmp', 'fd00:0::5', '::ffff:10.0.0.1', 'c1:eth0']) {
      expect(reservationName(n)).toBeUndefined();
    }
  });
});

describe('owners and index buckets', () => {
  it('writes and reads the reference content', () => {
    expect(ownerText({ containerId: 'abc', ifName: 'eth0' })).toBe('abc\r\neth0');
    expect(ownerText({ containerId: 'abc' })).toBe('abc');
    expect(parseOwner('abc\r\neth0')).toEqual({ containerId: 'abc', ifName: 'eth0' });
    expect(parseOwner('  abc\n')).toEqual({ containerId: 'abc' });
    expect(parseOwner(' \n')).toBeUndefined();
  });

  it('spreads index entries over the buckets, legacy and full owners apart, names safe for any owner', () => {
    const seen = new Set<number>();
    for (let i = 0; i < 2000; i++) seen.add(bucketOf({ containerId: `ctr${i}`, ifName: 'eth0' }));
    expect(seen.size).toBeGreaterThan(BUCKETS * 0.95);
    expect(bucketOf({ containerId: 'a', ifName: 'eth0' })).toBe(bucketOf({ containerId: 'a', ifName: 'eth0' }));
    expect(bucketOf({ containerId: '../../etc', ifName: 'x' })).toBeLessThan(BUCKETS);
    expect(bucketName(0)).toBe('00.json');
    expect(bucketName(255)).toBe('ff.json');
    const legacy = [0, 1, 2, 3].map((i) => bucketOf({ containerId: `c${i}` }));
    const full = [0, 1, 2, 3].map((i) => bucketOf({ containerId: `c${i}`, ifName: '' }));
    expect(legacy).not.toEqual(full);
  });

  it('keeps the on-disk bucket of a key (values computed before the hash moved to lib/hash)', () => {
    // The index is on disk: a key that changed bucket would be looked for in the wrong file.
    // The 32-bit hash steps over UTF-16 code units, so non-ASCII names are pinned too.
    const pinned: [Parameters<typeof bucketOf>[0], number][] = [
      [{ containerId: 'a', ifName: 'eth0' }, 101],
      [{ containerId: 'dummy', ifName: 'eth0' }, 176],
      [{ containerId: 'c0' }, 213],
      [{ containerId: 'c0', ifName: '' }, 50],
      [{ containerId: '0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0', ifName: 'net1' }, 89],
      [{ containerId: 'ctr', ifName: '\u00e9th0' }, 157],
      [{ containerId: 'ctr', ifName: 'eth\u{1F600}' }, 214],
    ];
    for (const [owner, bucket] of pinned) expect(bucketOf(owner), JSON.stringify(owner)).toBe(bucket);
  });
});

describe('parseResolvConf', () => {
  it('reads nameserver, domain, search and options like upstream dns.go', () => {
    const text = '# comment\n; also\nnameserver 8.8.8.8\nnameserver 2001:4860:4860::8888\ndomain example.com\nsearch a.example b.example\noptions ndots:5 rotate\nbogus\n';
    expect(parseResolvConf(text)).toEqual({
      nameservers: ['8.8.8.8', '2001:4860:4860::8888'],
      domain: 'example.com',
      search: ['a.example', 'b.example'],
      options: ['ndots:5', 'rotate'],
    });
    expect(parseResolvConf('')).toEqual({});
  });
});

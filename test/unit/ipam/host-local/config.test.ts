import { describe, expect, it } from 'vitest';
import { ErrorCode } from '../../../../lib/cni/errors.js';
import type { NetConf } from '../../../../lib/cni/types.js';
import { DEFAULT_DATA_DIR, loadIpamConf, rangeSetText, subnetText } from '../../../../ipam/host-local/config.js';
import { formatIp } from '../../../../lib/addr/addr.js';

const conf = (ipam: unknown, extra: Record<string, unknown> = {}): NetConf =>
  ({ cniVersion: '1.0.0', name: 'net1', type: 'bridge', ipam, ...extra }) as NetConf;

const invalid = (msg: string | RegExp) => expect.objectContaining({ code: ErrorCode.InvalidNetworkConfig, message: expect.stringMatching(msg) });

describe('loadIpamConf', () => {
  it('turns the legacy top-level subnet into the first range set with upstream defaults', () => {
    const c = loadIpamConf(conf({ type: 'podnet-host-local', subnet: '10.22.0.0/16' }), '');
    expect(c.name).toBe('net1');
    expect(c.dataDir).toBe(DEFAULT_DATA_DIR);
    expect(c.ranges).toHaveLength(1);
    const r = c.ranges[0]?.[0];
    expect(r && subnetText(r)).toBe('10.22.0.0/16');
    expect(rangeSetText(c.ranges[0] ?? [])).toBe('10.22.0.1-10.22.255.254');
    expect(r && formatIp(r.gateway)).toBe('10.22.0.1');
    expect(c.routes).toEqual([]);
    expect(c.requestedIps).toEqual([]);
    expect(c.resolvConf).toBeUndefined();
  });

  it('reads rangeStart, rangeEnd and gateway of the legacy range', () => {
    const c = loadIpamConf(conf({ subnet: '10.1.2.0/24', rangeStart: '10.1.2.9', rangeEnd: '10.1.2.20', gateway: '10.1.2.30' }), '');
    expect(rangeSetText(c.ranges[0] ?? [])).toBe('10.1.2.9-10.1.2.20');
    expect(formatIp(c.ranges[0]?.[0]?.gateway ?? { family: 4, value: 0n })).toBe('10.1.2.30');
  });

  it('reads ranges: several sets, several subnets per set, IPv6 defaults to the last address', () => {
    const c = loadIpamConf(
      conf({
        ranges: [
          [{ subnet: '10.1.0.0/24' }, { subnet: '10.2.0.0/24', rangeStart: '10.2.0.100' }],
          [{ subnet: 'fd00:1::/64' }],
        ],
      }),
      '',
    );
    expect(c.ranges.map(rangeSetText)).toEqual(['10.1.0.1-10.1.0.254,10.2.0.100-10.2.0.254', 'fd00:1::1-fd00:1::ffff:ffff:ffff:ffff']);
  });

  it('puts runtimeConfig.ipRanges first, then the legacy range, then ranges (as upstream)', () => {
    const c = loadIpamConf(
      conf(
        { subnet: '10.1.2.0/24', rangeStart: '10.1.2.9', rangeEnd: '10.1.2.20', ranges: [[{ subnet: '11.1.2.0/24' }]] },
        { runtimeConfig: { irrelevant: 'a', ipRanges: [[{ subnet: '12.1.3.0/24' }]] } },
      ),
      '',
    );
    expect(c.ranges.map(rangeSetText)).toEqual(['12.1.3.1-12.1.3.254', '10.1.2.9-10.1.2.20', '11.1.2.1-11.1.2.254']);
  });

  it('reads routes, dataDir and resolvConf', () => {
    const c = loadIpamConf(
      conf({
        subnet: '10.0.0.0/8',
        dataDir: '/tmp/x',
        resolvConf: '/etc/resolv.conf',
        routes: [{ dst: '0.0.0.0/0' }, { dst: '192.168.0.0/16', gw: '10.0.0.1', priority: 5 }],
      }),
      '',
    );
    expect(c.dataDir).toBe('/tmp/x');
    expect(c.resolvConf).toBe('/etc/resolv.conf');
    expect(c.routes).toEqual([{ dst: '0.0.0.0/0' }, { dst: '192.168.0.0/16', gw: '10.0.0.1', priority: 5 }]);
  });

  it('collects requested IPs from CNI_ARGS, args.cni.ips and runtimeConfig.ips, deduplicated', () => {
    const c = loadIpamConf(
      conf(
        { ranges: [[{ subnet: '192.168.0.0/24' }], [{ subnet: '2001:db8::/64' }]] },
        { args: { cni: { ips: ['192.168.0.7', '2001:db8::7/64'] } }, runtimeConfig: { ips: ['192.168.0.1', '192.168.0.5/24', '192.168.0.7'] } },
      ),
      'IgnoreUnknown=1;K8S_POD_NAME=x;IP=192.168.0.9,2001:db8::9',
    );
    expect(c.requestedIps.map(formatIp)).toEqual(['192.168.0.9', '2001:db8::9', '192.168.0.7', '2001:db8::7', '192.168.0.1', '192.168.0.5']);
  });

  it('passes CNI_ARGS errors through (unknown key without IgnoreUnknown is code 2)', () => {
    expect(() => loadIpamConf(conf({ subnet: '10.0.0.0/24' }), 'FOO=1')).toThrow(expect.objectContaining({ code: ErrorCode.UnsupportedField }));
    expect(() => loadIpamConf(conf({ subnet: '10.0.0.0/24' }), 'IP=10.0.0.300')).toThrow(invalid(/CNI_ARGS IP/));
  });

  it('allows two ranges of one subnet when their address ranges do not overlap (as upstream)', () => {
    const c = loadIpamConf(
      conf({ ranges: [[{ subnet: '10.0.0.0/24', rangeEnd: '10.0.0.99' }], [{ subnet: '10.0.0.0/24', rangeStart: '10.0.0.100' }]] }),
      '',
    );
    expect(c.ranges).toHaveLength(2);
  });

  it.each([
    ['missing ipam', undefined, /missing "ipam"/],
    ['ipam not an object', 'x', /"ipam" must be an object/],
    ['no ranges', { type: 'x' }, /no IP ranges specified/],
    ['empty ranges list', { ranges: [] }, /no IP ranges specified/],
    ['empty range set', { ranges: [[]] }, /empty range set/],
    ['range set not a list', { ranges: [{ subnet: '10.0.0.0/24' }] }, /must be a list of ranges/],
    ['range without subnet', { ranges: [[{ rangeStart: '10.0.0.1' }]] }, /subnet is required/],
    ['bad subnet', { subnet: '10.0.0.0' }, /not a valid CIDR/],
    ['garbage subnet', { subnet: 'ten/8' }, /not a valid CIDR/],
    ['prefix too long', { subnet: '10.0.0.0/33' }, /not a valid CIDR/],
    ['host bits set', { subnet: '10.0.0.5/24' }, /host bits set.*10\.0\.0\.0/],
    ['/31', { subnet: '10.0.0.0/31' }, /too small/],
    ['/32', { subnet: '10.0.0.1/32' }, /too small/],
    ['/127', { subnet: 'fd00::/127' }, /too small/],
    ['/128', { subnet: 'fd00::1/128' }, /too small/],
    ['rangeStart outside', { subnet: '10.0.0.0/24', rangeStart: '10.0.1.1' }, /rangeStart 10\.0\.1\.1 not in network 10\.0\.0\.0\/24/],
    ['rangeEnd outside', { subnet: '10.0.0.0/24', rangeEnd: '10.0.1.1' }, /rangeEnd 10\.0\.1\.1 not in network/],
    ['rangeStart other family', { subnet: '10.0.0.0/24', rangeStart: 'fd00::1' }, /rangeStart .* not in network/],
    ['reversed range', { subnet: '10.0.0.0/24', rangeStart: '10.0.0.50', rangeEnd: '10.0.0.10' }, /rangeStart 10\.0\.0\.50 is after rangeEnd 10\.0\.0\.10/],
    ['bad rangeStart', { subnet: '10.0.0.0/24', rangeStart: '10.0.0' }, /rangeStart "10\.0\.0" is not a valid IP/],
    ['bad gateway', { subnet: '10.0.0.0/24', gateway: 'gw' }, /gateway "gw" is not a valid IP/],
    ['gateway of the other family', { subnet: '10.0.0.0/24', gateway: 'fd00::1' }, /not in the address family/],
    ['gateway outside the subnet', { subnet: '192.168.77.0/24', gateway: '10.0.0.1' }, /gateway 10\.0\.0\.1 not in network 192\.168\.77\.0\/24/],
    ['v6 gateway outside the subnet', { ranges: [[{ subnet: 'fd00:1::/64', gateway: 'fd00:2::1' }]] }, /gateway fd00:2::1 not in network fd00:1::\/64/],
    ['the whole IPv4 space', { subnet: '0.0.0.0/0' }, /0\.0\.0\.0\/0 is the whole address space/],
    ['the whole IPv6 space', { ranges: [[{ subnet: '::/0' }]] }, /::\/0 is the whole address space/],
    ['non-string subnet', { subnet: 10 }, /not a valid CIDR|must be a string|subnet is required/],
    ['overlap within a set', { ranges: [[{ subnet: '10.0.0.0/24' }, { subnet: '10.0.0.0/25' }]] }, /subnets .* overlap/],
    ['overlap across sets', { ranges: [[{ subnet: '10.0.0.0/16' }], [{ subnet: '10.0.1.0/24' }]] }, /range set 0 overlaps with 1/],
    ['legacy subnet overlapping ranges', { subnet: '10.0.0.0/24', ranges: [[{ subnet: '10.0.0.0/24' }]] }, /range set 0 overlaps with 1/],
    ['mixed families in a set', { ranges: [[{ subnet: '10.0.0.0/24' }, { subnet: 'fd00::/64' }]] }, /mixed address families/],
    ['routes not a list', { subnet: '10.0.0.0/24', routes: {} }, /routes must be a list/],
    ['route without dst', { subnet: '10.0.0.0/24', routes: [{ gw: '10.0.0.1' }] }, /dst is required/],
    ['route with bad dst', { subnet: '10.0.0.0/24', routes: [{ dst: '0.0.0.0' }] }, /dst "0\.0\.0\.0" is not a valid CIDR/],
    ['route with bad gw', { subnet: '10.0.0.0/24', routes: [{ dst: '0.0.0.0/0', gw: 'x' }] }, /gw "x" is not a valid IP/],
    ['route with bad mtu', { subnet: '10.0.0.0/24', routes: [{ dst: '0.0.0.0/0', mtu: 'big' }] }, /mtu must be a non-negative integer/],
    ['dataDir not a string', { subnet: '10.0.0.0/24', dataDir: 5 }, /dataDir must be a string/],
  ])('rejects %s with code 7', (_name, ipam, msg) => {
    expect(() => loadIpamConf(conf(ipam), '')).toThrow(invalid(msg));
  });

  it.each([
    ['bad runtimeConfig.ips', { runtimeConfig: { ips: ['10.0.0.x'] } }, /runtimeConfig\.ips\[0\]/],
    ['runtimeConfig.ips not a list', { runtimeConfig: { ips: '10.0.0.1' } }, /runtimeConfig\.ips must be a list/],
    ['bad args.cni.ips', { args: { cni: { ips: [5] } } }, /args\.cni\.ips\[0\]/],
    ['bad ipRanges', { runtimeConfig: { ipRanges: [[{ subnet: '10.9.0.0/32' }]] } }, /runtimeConfig\.ipRanges\[0\]\[0\].*too small/],
    ['ipRanges overlapping ranges', { runtimeConfig: { ipRanges: [[{ subnet: '10.0.0.0/24' }]] } }, /range set 0 overlaps with 1/],
  ])('rejects %s with code 7', (_name, extra, msg) => {
    expect(() => loadIpamConf(conf({ subnet: '10.0.0.0/24' }, extra), '')).toThrow(invalid(msg));
  });

  it('refuses two sets of one family for configs older than 0.3.0 (one address per family there)', () => {
    const ipam = { ranges: [[{ subnet: '10.0.0.0/24' }], [{ subnet: '10.1.0.0/24' }]] };
    expect(() => loadIpamConf(conf(ipam, { cniVersion: '0.2.0' }), '')).toThrow(invalid(/does not support more than 1 address per family/));
    expect(loadIpamConf(conf(ipam, { cniVersion: '0.3.0' }), '').ranges).toHaveLength(2);
    const dual = { ranges: [[{ subnet: '10.0.0.0/24' }], [{ subnet: 'fd00::/64' }]] };
    expect(loadIpamConf(conf(dual, { cniVersion: '0.2.0' }), '').ranges).toHaveLength(2);
  });
});

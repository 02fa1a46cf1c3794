import { describe, expect, it } from 'vitest';
import { type IpError, ipError, renderIpOp } from '../../../lib/linux/ip.js';
import type { HostNet, KernelRoute, RouteChange } from '../../../routesync/host-net.js';
import { IpHostNet, toKernelRoute } from '../../../routesync/host-net.js';
import { RouteReconciler, calcRouteChanges, routeOps } from '../../../routesync/reconcile-routes.js';
import type { DesiredRoute } from '../../../routesync/types.js';

const P = 112;
const route = (verb: 'add' | 'replace', dst: string, via: string): RouteChange => ({ kind: 'route', verb, dst, via, proto: P, table: 'main' });
const want = (dst: string, via: string, node = 'n'): DesiredRoute => ({ dst, via, family: dst.includes(':') ? 6 : 4, node });
const kr = (dst: string, gateway: string | undefined, protocol: string, metric?: number): KernelRoute => ({
  dst,
  family: dst.includes(':') ? 6 : 4,
  gateway,
  dev: 'eth0',
  protocol,
  metric: metric ?? (dst.includes(':') ? 1024 : 0),
  type: 'unicast',
});

describe('calcRouteChanges', () => {
  it('adds missing routes, replaces a changed gateway, deletes ours that are no longer wanted', () => {
    const c = calcRouteChanges(
      [want('10.244.1.0/24', '172.18.0.3'), want('10.244.2.0/24', '172.18.0.9'), want('10.244.3.0/24', '172.18.0.5')],
      [kr('10.244.2.0/24', '172.18.0.4', '112'), kr('10.244.3.0/24', '172.18.0.5', '112'), kr('10.244.9.0/24', '172.18.0.8', '112')],
      P,
    );
    expect(c.add.map((r) => r.dst)).toEqual(['10.244.1.0/24']);
    expect(c.replace.map((r) => r.dst)).toEqual(['10.244.2.0/24']);
    expect(c.remove.map((r) => r.dst)).toEqual(['10.244.9.0/24']);
    expect(c.inPlace).toBe(1);
    expect(c.conflicts).toEqual([]);
  });

  it('never touches routes of other protocols, and reports one occupying our destination', () => {
    const c = calcRouteChanges(
      [want('10.244.1.0/24', '172.18.0.3'), want('10.244.2.0/24', '172.18.0.4')],
      [kr('10.244.1.0/24', '172.18.0.77', '4'), kr('10.99.0.0/16', '172.18.0.1', '4'), kr('172.18.0.0/16', undefined, '2')],
      P,
    );
    expect(c.add.map((r) => r.dst)).toEqual(['10.244.2.0/24']);
    expect(c.replace).toEqual([]);
    expect(c.remove).toEqual([]);
    expect(c.conflicts).toMatchObject([{ route: { dst: '10.244.1.0/24' }, existing: { protocol: '4', gateway: '172.18.0.77' } }]);
  });

  it('a foreign route with the same destination but another metric is not a conflict', () => {
    const c = calcRouteChanges([want('10.244.1.0/24', '172.18.0.3')], [kr('10.244.1.0/24', '172.18.0.77', '4', 100)], P);
    expect(c.add).toHaveLength(1);
    expect(c.conflicts).toEqual([]);
  });

  it('IPv6 routes compare with the kernel default metric 1024; stray copies of ours go', () => {
    const c = calcRouteChanges(
      [want('fd00:10:244:1::/64', 'fc00::3')],
      [kr('fd00:10:244:1::/64', 'fc00::3', '112', 1024), kr('fd00:10:244:1::/64', 'fc00::3', '112', 50)],
      P,
    );
    expect(c.inPlace).toBe(1);
    expect(c.remove).toMatchObject([{ metric: 50 }]);
  });

  it('renders deletions first, then replacements, then additions, with our protocol', () => {
    const c = calcRouteChanges(
      [want('10.244.1.0/24', '172.18.0.3'), want('10.244.2.0/24', '172.18.0.5')],
      [kr('10.244.9.0/24', '172.18.0.8', '112'), kr('10.244.2.0/24', '172.18.0.4', '112')],
      P,
    );
    expect(routeOps(c, P).map((o) => renderIpOp(o.change))).toEqual([
      'route del 10.244.9.0/24 proto 112 metric 0 table main',
      'route replace 10.244.2.0/24 via 172.18.0.5 proto 112 table main',
      'route add 10.244.1.0/24 via 172.18.0.3 proto 112 table main',
    ]);
  });
});

/** A HostNet over an in-memory table that applies route changes like the kernel (EEXIST on add);
 * it records each batch as the lines the kernel layer renders. */
function memoryNet(initial: KernelRoute[]) {
  const state = { table: [...initial], lists: 0, batches: [] as string[][], failNext: undefined as string | undefined };
  const net: HostNet = {
    addresses: async () => [],
    reachability: async () => new Map(),
    routes: async () => {
      state.lists += 1;
      return state.table.map((r) => ({ ...r }));
    },
    applyRoutes: async (changes) => {
      state.batches.push(changes.map(renderIpOp));
      const outcomes = changes.map((c): IpError | undefined => {
        if (state.failNext) return ipError(state.failNext);
        const idx = state.table.findIndex((r) => r.dst === c.dst && r.metric === 0);
        if (c.verb === 'del') {
          if (idx < 0 || state.table[idx]?.protocol !== String(c.proto)) return ipError('RTNETLINK answers: No such process');
          state.table.splice(idx, 1);
        } else if (c.verb === 'add' && idx >= 0) return ipError('RTNETLINK answers: File exists');
        else {
          if (idx >= 0) state.table.splice(idx, 1);
          state.table.push(kr(c.dst, c.via, String(c.proto)));
        }
        return undefined;
      });
      state.failNext = undefined;
      return outcomes;
    },
  };
  return { net, state };
}

describe('RouteReconciler', () => {
  it('sends one batch per pass and reads the outcome of each route change', async () => {
    const batches: string[][] = [];
    const net: HostNet = {
      addresses: async () => [],
      reachability: async () => new Map(),
      routes: async () => [kr('10.244.9.0/24', '172.18.0.8', '112')],
      applyRoutes: async (changes) => {
        batches.push(changes.map(renderIpOp));
        return changes.map((_, i) => (i === 2 ? ipError('Error: Nexthop has invalid gateway.') : undefined));
      },
    };
    const r = await new RouteReconciler(net, P).reconcile([want('10.244.1.0/24', '172.18.0.3'), want('10.244.2.0/24', '9.9.9.9')], { list: true });
    expect(batches).toHaveLength(1);
    expect(batches[0]).toHaveLength(3);
    expect(r.removed).toBe(1);
    expect(r.replaced).toBe(1);
    expect(r.programmed).toEqual({ 4: 1, 6: 0 });
    expect(r.errors).toEqual(['failed to add route "10.244.2.0/24": Error: Nexthop has invalid gateway.']);
  });

  it('incremental passes diff against its own record (no listing); full passes list and repair', async () => {
    const { net, state } = memoryNet([kr('172.18.0.0/16', undefined, '2')]);
    const rec = new RouteReconciler(net, P);
    await rec.reconcile([want('10.244.1.0/24', '172.18.0.3'), want('10.244.2.0/24', '172.18.0.4')], { list: false });
    expect(state.lists).toBe(1); // no record yet: listed
    const r = await rec.reconcile([want('10.244.1.0/24', '172.18.0.9'), want('10.244.2.0/24', '172.18.0.4')], { list: false });
    expect(state.lists).toBe(1);
    expect(r.listed).toBe(false);
    expect(state.batches.at(-1)).toEqual(['route replace 10.244.1.0/24 via 172.18.0.9 proto 112 table main']);
    // Someone deletes a route by hand: only a full pass notices.
    state.table = state.table.filter((x) => x.dst !== '10.244.2.0/24');
    await rec.reconcile([want('10.244.1.0/24', '172.18.0.9'), want('10.244.2.0/24', '172.18.0.4')], { list: false });
    expect(state.table.some((x) => x.dst === '10.244.2.0/24')).toBe(false);
    await rec.reconcile([want('10.244.1.0/24', '172.18.0.9'), want('10.244.2.0/24', '172.18.0.4')], { list: true });
    expect(state.table.some((x) => x.dst === '10.244.2.0/24')).toBe(true);
  });

  it('without a listing, a foreign route on the destination is found by the kernel refusing the add (never replaced)', async () => {
    const { net, state } = memoryNet([]);
    const rec = new RouteReconciler(net, P);
    await rec.reconcile([want('10.244.1.0/24', '172.18.0.3')], { list: true });
    state.table.push(kr('10.244.5.0/24', '172.18.0.77', '4'));
    const r = await rec.reconcile([want('10.244.1.0/24', '172.18.0.3'), want('10.244.5.0/24', '172.18.0.6')], { list: false });
    expect(r.conflicts).toMatchObject([{ route: { dst: '10.244.5.0/24' } }]);
    expect(r.errors).toEqual([]);
    expect(state.table.find((x) => x.dst === '10.244.5.0/24')).toMatchObject({ protocol: '4', gateway: '172.18.0.77' });
  });

  it('after a failed command the record is dropped and the next pass lists again', async () => {
    const { net, state } = memoryNet([]);
    const rec = new RouteReconciler(net, P);
    await rec.reconcile([want('10.244.1.0/24', '172.18.0.3')], { list: true });
    state.failNext = 'RTNETLINK answers: Operation not permitted';
    const r = await rec.reconcile([want('10.244.1.0/24', '172.18.0.4')], { list: false });
    expect(r.errors).toEqual(['failed to replace route "10.244.1.0/24": RTNETLINK answers: Operation not permitted']);
    const lists = state.lists;
    await rec.reconcile([want('10.244.1.0/24', '172.18.0.4')], { list: false });
    expect(state.lists).toBe(lists + 1);
  });
});

describe('iproute2 output parsing', () => {
  it('settles each route change from the batch stderr: its own error, exists / not found', async () => {
    const inputs: string[] = [];
    const net = new IpHostNet({
      async run(_file, _args, opts = {}) {
        inputs.push(String(opts.input));
        return { code: 1, stdout: '', stderr: 'Error: Nexthop has invalid gateway.\nCommand failed -:2\nRTNETLINK answers: No such process\nCommand failed -:3\n' };
      },
    });
    const r = await net.applyRoutes([route('add', '10.1.0.0/24', '172.18.0.2'), route('add', '10.2.0.0/24', '172.18.0.3'), { kind: 'route', verb: 'del', dst: '10.3.0.0/24', proto: P, metric: 0, table: 'main' }]);
    expect(r.map((e) => e?.raw)).toEqual([undefined, 'Error: Nexthop has invalid gateway.', 'RTNETLINK answers: No such process']);
    expect(r[2]).toMatchObject({ notFound: true, exists: false });
    expect(inputs).toEqual(['route add 10.1.0.0/24 via 172.18.0.2 proto 112 table main\nroute add 10.2.0.0/24 via 172.18.0.3 proto 112 table main\nroute del 10.3.0.0/24 proto 112 metric 0 table main\n']);
  });

  it('refuses a route change that is not a well-formed route, and runs the others', async () => {
    const inputs: string[] = [];
    const net = new IpHostNet({
      async run(_file, _args, opts = {}) {
        inputs.push(String(opts.input));
        return { code: 0, stdout: '', stderr: '' };
      },
    });
    const r = await net.applyRoutes([route('add', '10.1.0.0/24\nlink add x type bridge', '172.18.0.2'), route('add', '010.2.0.0/24', '172.18.0.3'), route('add', '10.3.0.0/24', '172.18.0.4')]);
    expect(r.map((e) => e !== undefined)).toEqual([true, true, false]);
    expect(inputs).toEqual(['route add 10.3.0.0/24 via 172.18.0.4 proto 112 table main\n']);
  });

  it('normalises routes from ip -N -j route show', () => {
    expect(toKernelRoute({ dst: '10.244.1.0/24', gateway: '172.18.0.3', dev: 'eth0', protocol: '112' }, 4)).toEqual(kr('10.244.1.0/24', '172.18.0.3', '112'));
    expect(toKernelRoute({ dst: '10.1.2.3', dev: 'eth0', protocol: '4' }, 4)).toMatchObject({ dst: '10.1.2.3/32', gateway: undefined });
    expect(toKernelRoute({ dst: 'default', gateway: '192.0.2.1' }, 4)).toMatchObject({ dst: '0.0.0.0/0', protocol: '3' });
    expect(toKernelRoute({ dst: 'FD00:0:0::/64', gateway: 'FC00::0003', protocol: '112', metric: 1024 }, 6)).toMatchObject({ dst: 'fd00::/64', gateway: 'fc00::3', metric: 1024 });
    expect(toKernelRoute({ dst: 'fd00::/64', via: { family: 'inet6', host: 'fe80::1' }, protocol: 112 }, 6)).toMatchObject({ gateway: 'fe80::1', protocol: '112' });
  });
});

describe('route types from ip -N -d', () => {
  it('maps numeric rtm_type to names (unicast routes are the only ones that count as ours)', () => {
    expect(toKernelRoute({ type: '1', dst: '10.1.0.0/24', protocol: '112' }, 4)?.type).toBe('unicast');
    expect(toKernelRoute({ type: '6', dst: '10.1.0.0/24', protocol: '112' }, 4)?.type).toBe('blackhole');
    expect(toKernelRoute({ type: 'unicast', dst: '10.1.0.0/24' }, 4)?.type).toBe('unicast');
  });
});

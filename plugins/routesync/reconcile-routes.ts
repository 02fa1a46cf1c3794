import type { HostNet, KernelRoute } from './host-net.js';
import type { DesiredRoute, Family } from './types.js';

/**
 * Route reconciler. Every route it makes carries the daemon's own routing protocol number
 * (default 112 = 0x70, unassigned in iproute2's rt_protos and by the common routing daemons), so
 * it only ever changes or deletes routes with that number: routes of anyone else are left alone,
 * even when they have the same destination (reported as a conflict instead of overwritten —
 * `ip route replace` would otherwise take them over, since the kernel keys a route by
 * table/dst/tos/metric, not by protocol).
 *
 * All changes of one pass go to the kernel in one `ip -force -batch` process.
 */
export const DEFAULT_ROUTE_PROTOCOL = 112;

/** The metric the kernel gives a route added without one. */
function defaultMetric(f: Family): number {
  return f === 4 ? 0 : 1024;
}

export interface RouteConflict {
  route: DesiredRoute;
  /** The foreign route occupying the same key. */
  existing: KernelRoute;
}

export interface RouteChanges {
  /** `route replace` these (missing, wrong gateway, or wrong metric). */
  replace: DesiredRoute[];
  /** Our routes no longer wanted (deleted node, changed podCIDR, duplicates). */
  remove: KernelRoute[];
  conflicts: RouteConflict[];
  /** Desired routes already right in the kernel. */
  inPlace: number;
}

/** Pure diff of desired routes against the main table. */
export function calcRouteChanges(desired: readonly DesiredRoute[], actual: readonly KernelRoute[], protocol: number): RouteChanges {
  const proto = String(protocol);
  const ours = new Map<string, KernelRoute[]>();
  const foreign = new Map<string, KernelRoute[]>();
  for (const r of actual) {
    const m = r.protocol === proto ? ours : foreign;
    const list = m.get(r.dst);
    if (list) list.push(r);
    else m.set(r.dst, [r]);
  }
  const replace: DesiredRoute[] = [];
  const remove: KernelRoute[] = [];
  const conflicts: RouteConflict[] = [];
  let inPlace = 0;
  const wanted = new Set<string>();
  for (const d of desired) {
    wanted.add(d.dst);
    const metric = defaultMetric(d.family);
    const mine = ours.get(d.dst) ?? [];
    // The kernel keys a route by table/dst/tos/metric: ours with the default metric is the one
    // `route replace` overwrites in place (no gap); copies of ours with another metric go.
    const sameKey = mine.filter((r) => r.metric === metric);
    const good = sameKey.find((r) => r.gateway === d.via && r.type === 'unicast');
    const clash = (foreign.get(d.dst) ?? []).find((f) => f.metric === metric);
    for (const r of mine) if (r.metric !== metric) remove.push(r);
    if (good) inPlace += 1;
    else if (clash && sameKey.length === 0) conflicts.push({ route: d, existing: clash });
    else replace.push(d);
  }
  for (const [dst, list] of ours) if (!wanted.has(dst)) remove.push(...list);
  return { replace, remove, conflicts, inPlace };
}

export function routeLines(changes: RouteChanges, protocol: number): { lines: string[]; what: (DesiredRoute | KernelRoute)[] } {
  const lines: string[] = [];
  const what: (DesiredRoute | KernelRoute)[] = [];
  // Deletions first: a changed podCIDR may free a destination another node's route then takes.
  for (const r of changes.remove) {
    lines.push(`route del ${r.dst} proto ${protocol} metric ${r.metric} table main`);
    what.push(r);
  }
  for (const d of changes.replace) {
    lines.push(`route replace ${d.dst} via ${d.via} proto ${protocol} table main`);
    what.push(d);
  }
  return { lines, what };
}

export interface RouteReport {
  /** Desired routes now in the kernel, per family. */
  programmed: { 4: number; 6: number };
  replaced: number;
  removed: number;
  conflicts: RouteConflict[];
  /** Commands the kernel refused. */
  errors: string[];
}

export async function reconcileRoutes(net: HostNet, desired: readonly DesiredRoute[], protocol: number): Promise<RouteReport> {
  const actual = await net.routes();
  const changes = calcRouteChanges(desired, actual, protocol);
  const { lines, what } = routeLines(changes, protocol);
  const failures = await net.applyRoutes(lines);
  const errors: string[] = [];
  const failedDst = new Set<string>();
  for (const [line, error] of failures) {
    const w = what[line - 1];
    const text = lines[line - 1] ?? `line ${line}`;
    errors.push(`failed to ${text.startsWith('route del') ? 'delete' : 'replace'} route "${w?.dst ?? '?'}": ${error}`);
    if (w && 'via' in w) failedDst.add(w.dst);
  }
  const programmed = { 4: 0, 6: 0 };
  const conflicted = new Set(changes.conflicts.map((c) => c.route.dst));
  for (const d of desired) if (!failedDst.has(d.dst) && !conflicted.has(d.dst)) programmed[d.family] += 1;
  let removed = 0;
  let replaced = 0;
  what.forEach((w, i) => {
    if (failures.has(i + 1)) return;
    if ('via' in w) replaced += 1;
    else removed += 1;
  });
  return { programmed, replaced, removed, conflicts: changes.conflicts, errors };
}

import type { Logger } from '../lib/cni/log.js';
import { ChangeTracker } from './change-tracker.js';
import type { HostNet, KernelRoute, RouteChange } from './host-net.js';
import type { Metrics } from './metrics.js';
import type { Stage, StageOutcome } from './stage.js';
import type { DesiredRoute, DesiredState, Family } from './types.js';

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
  /** The foreign route occupying the same key, when a listing showed it. */
  existing?: KernelRoute | undefined;
}

export interface RouteChanges {
  /** `route add` these: no route of ours with this destination (the kernel refuses the add with
   * EEXIST if someone else's route holds the key, so a foreign route is never taken over). */
  add: DesiredRoute[];
  /** `route replace` these: ours exists with the wrong gateway; replaced in place, no gap. */
  replace: DesiredRoute[];
  /** Our routes no longer wanted (deleted node, changed podCIDR, stray copies). */
  remove: KernelRoute[];
  /** Desired routes blocked by a foreign route with the same key (known from a listing). */
  conflicts: RouteConflict[];
  /** Desired routes already right in the kernel. */
  inPlace: number;
}

/** Pure diff of desired routes against the main table (or against our own routes only). */
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
  const add: DesiredRoute[] = [];
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
    // `route replace` overwrites in place; copies of ours with another metric go.
    const sameKey = mine.filter((r) => r.metric === metric);
    const good = sameKey.find((r) => r.gateway === d.via && r.type === 'unicast');
    const clash = (foreign.get(d.dst) ?? []).find((f) => f.metric === metric);
    for (const r of mine) if (r.metric !== metric) remove.push(r);
    if (good) inPlace += 1;
    else if (sameKey.length > 0) replace.push(d);
    else if (clash) conflicts.push({ route: d, existing: clash });
    else add.push(d);
  }
  for (const [dst, list] of ours) if (!wanted.has(dst)) remove.push(...list);
  return { add, replace, remove, conflicts, inPlace };
}

type Op = ({ kind: 'del'; route: KernelRoute } | { kind: 'replace' | 'add'; route: DesiredRoute }) & { change: RouteChange };

/** The kernel changes of a diff, each with the route it is for: deletions first (a changed
 * podCIDR may free a destination another node's route then takes), then replacements, then
 * additions, all with our protocol in the main table. */
export function routeOps(changes: RouteChanges, protocol: number): Op[] {
  const set = (verb: 'add' | 'replace', d: DesiredRoute): RouteChange => ({ kind: 'route', verb, dst: d.dst, via: d.via, proto: protocol, table: 'main' });
  return [
    ...changes.remove.map((r): Op => ({ kind: 'del', route: r, change: { kind: 'route', verb: 'del', dst: r.dst, proto: protocol, metric: r.metric, table: 'main' } })),
    ...changes.replace.map((d): Op => ({ kind: 'replace', route: d, change: set('replace', d) })),
    ...changes.add.map((d): Op => ({ kind: 'add', route: d, change: set('add', d) })),
  ];
}

export interface RouteReport {
  /** Desired routes now in the kernel, per family. */
  programmed: { 4: number; 6: number };
  replaced: number;
  removed: number;
  conflicts: RouteConflict[];
  /** Commands the kernel refused (other than conflicts). */
  errors: string[];
  /** Whether this pass read the kernel's table (full passes) or trusted its own record. */
  listed: boolean;
}

/**
 * Keeps a record of the routes of ours it left in the kernel, so a pass triggered by one Node
 * change diffs against that record and sends one command, instead of listing 5,000 routes first.
 * Full passes (`list: true`: start-up, periodic resync, after any failure) read the kernel's
 * table, which repairs routes removed or changed by hand.
 */
export class RouteReconciler {
  private ours: Map<string, KernelRoute> | undefined;

  constructor(
    private readonly net: HostNet,
    private readonly protocol: number,
  ) {}

  async reconcile(desired: readonly DesiredRoute[], opts: { list: boolean }): Promise<RouteReport> {
    const listed = opts.list || this.ours === undefined;
    const actual = listed ? await this.net.routes() : [...(this.ours as Map<string, KernelRoute>).values()];
    const proto = String(this.protocol);
    const changes = calcRouteChanges(desired, actual, this.protocol);
    const ops = routeOps(changes, this.protocol);
    const outcomes = await this.net.applyRoutes(ops.map((o) => o.change));

    const record = new Map<string, KernelRoute>();
    for (const r of actual) if (r.protocol === proto && r.metric === defaultMetric(r.family)) record.set(r.dst, r);
    const errors: string[] = [];
    const conflicts = [...changes.conflicts];
    const failedDst = new Set<string>();
    let replaced = 0;
    let removed = 0;
    let trustworthy = true;
    ops.forEach((op, i) => {
      const failure = outcomes[i];
      if (failure === undefined) {
        if (op.kind === 'del') {
          removed += 1;
          if (record.get(op.route.dst) === op.route) record.delete(op.route.dst);
        } else {
          replaced += 1;
          const d = op.route;
          record.set(d.dst, { dst: d.dst, family: d.family, gateway: d.via, protocol: proto, metric: defaultMetric(d.family), type: 'unicast', dev: undefined });
        }
        return;
      }
      if (op.kind !== 'del') failedDst.add(op.route.dst);
      if (op.kind === 'add' && failure.exists) {
        conflicts.push({ route: op.route });
        return;
      }
      if (op.kind === 'del' && failure.notFound) {
        // Already gone (deleted by hand since our record): the goal is reached.
        record.delete(op.route.dst);
        return;
      }
      trustworthy = false;
      errors.push(`failed to ${op.kind === 'del' ? 'delete' : op.kind} route "${op.route.dst}": ${failure.raw}`);
    });
    this.ours = trustworthy ? record : undefined;

    const programmed = { 4: 0, 6: 0 };
    const conflicted = new Set(conflicts.map((c) => c.route.dst));
    for (const d of desired) if (!failedDst.has(d.dst) && !conflicted.has(d.dst)) programmed[d.family] += 1;
    return { programmed, replaced, removed, conflicts, errors, listed };
  }
}

/** Text of a conflict, for the log and the not-converged reasons. */
function conflictText(c: RouteConflict): string {
  const e = c.existing;
  const holder = e ? ` (proto ${e.protocol}${e.gateway ? ` via ${e.gateway}` : ''}${e.dev ? ` dev ${e.dev}` : ''})` : '';
  return `route conflict: ${c.route.dst} of node "${c.route.node}" is held by a route of another owner${holder}; left alone`;
}

/**
 * The routes stage: the desired routes into the kernel (RouteReconciler), the route metrics, and
 * each conflict logged when it starts and when it clears. A conflict is a condition, not an
 * error: retrying cannot help until the other owner's route goes (the next resync looks again),
 * and until then this node cannot reach that peer's pods, so it is not converged.
 */
export class RoutesStage implements Stage {
  readonly name = 'routes';
  readonly needs = 'peers' as const;
  private readonly reconciler: RouteReconciler;
  private readonly conflicts = new ChangeTracker<RouteConflict>((a, b) => conflictText(a) === conflictText(b));
  /** The report of the last pass that reached the kernel (undefined after a failed one). */
  last: RouteReport | undefined;

  constructor(
    net: HostNet,
    protocol: number,
    private readonly metrics: Metrics,
    private readonly log: Logger,
  ) {
    this.reconciler = new RouteReconciler(net, protocol);
  }

  async reconcile(desired: DesiredState, full: boolean): Promise<StageOutcome> {
    const { metrics, log } = this;
    this.last = undefined;
    const r = await this.reconciler.reconcile(desired.routes, { list: full });
    this.last = r;
    metrics.routesProgrammed = { ...r.programmed };
    metrics.routeChanges.replace += r.replaced;
    metrics.routeChanges.delete += r.removed;
    metrics.routeConflicts = r.conflicts.length;
    const { started, ended } = this.conflicts.update(new Map(r.conflicts.map((c) => [c.route.dst, c])));
    for (const [, c] of started) {
      log.warn('route conflict: a route of another owner has this destination; left alone', {
        dst: c.route.dst,
        node: c.route.node,
        existingProtocol: c.existing?.protocol,
        existingGateway: c.existing?.gateway,
        existingDev: c.existing?.dev,
      });
    }
    for (const [dst, c] of ended) log.info('route conflict cleared', { dst, node: c.route.node });
    if (r.replaced || r.removed) {
      log.info('routes changed', { replaced: r.replaced, removed: r.removed, programmed: r.programmed[4] + r.programmed[6] });
    }
    return { errors: r.errors, conditions: r.conflicts.map(conflictText) };
  }
}

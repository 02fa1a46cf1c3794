import type { Logger } from '../lib/cni/log.js';
import { BrNetfilterStage } from './br-netfilter.js';
import type { Cidr } from '../lib/addr/addr.js';
import { ChangeTracker } from './change-tracker.js';
import { type ConflistTemplate, bridgeName } from './conflist.js';
import { NodeMemo, calcDesired, calcPeerAddresses } from './desired.js';
import type { HostNet } from './host-net.js';
import type { Metrics } from './metrics.js';
import type { NodeSource } from './node-source.js';
import type { VersionLookup } from './plugin-versions.js';
import { ConflistStage } from './reconcile-conflist.js';
import { MasqStage, type MasqReconciler } from './reconcile-masq.js';
import { RoutesStage, type RouteReport } from './reconcile-routes.js';
import { Scheduler } from './scheduler.js';
import type { Stage, StageNeeds } from './stage.js';
import { type DesiredState, type LocalAddress, type NodeLike, type Reachability, Reason, type Rejection } from './types.js';

/**
 * The controller: a Scheduler decides when a pass runs (debounced node changes, periodic full
 * resync, backoff after failure); a pass learns what it needs from the kernel (this node's
 * addresses, the reachability of each peer), computes the desired state (pure, desired.ts) and
 * hands it to each stage in turn: routes, masquerade, CNI config, br_netfilter.
 *
 * Safety rules:
 *  - nothing is reconciled before the node source has listed once (an empty cache must never
 *    delete the routes a previous instance made);
 *  - while the API server is unreachable the source keeps its last nodes, so routes stay;
 *  - one bad Node only earns a rejection; a failing stage is counted and retried, never fatal;
 *  - a stage acts only on what the pass could learn (StageNeeds): without reachability answers
 *    every peer would look unreachable, so routes and masquerade are left as they are;
 *  - stop() leaves routes, rules and the CNI config in place.
 */
export interface LoopOptions {
  nodeName: string;
  cniConfDir: string;
  writeConflist: boolean;
  template: ConflistTemplate;
  sysctlRoot: string;
  brNetfilter: boolean;
  routeProtocol: number;
  resyncMs: number;
  /** The cluster's pod ranges (--cluster-cidr); empty: not enforced. */
  clusterCIDRs?: readonly Cidr[];
  /** Pause after a change notification before the pass starts (collects a list's burst). */
  debounceMs?: number;
  backoffBaseMs?: number;
  backoffMaxMs?: number;
}

export interface LoopDeps {
  source: NodeSource;
  net: HostNet;
  masq: MasqReconciler;
  metrics: Metrics;
  log: Logger;
  options: LoopOptions;
  /** The CNI versions a chained plugin supports (asked from the node's CNI bin dir). */
  pluginVersions: VersionLookup;
}

export interface PassReport {
  /** Stage failures: retried with backoff. */
  errors: string[];
  /** Not converged for a reason outside the daemon (no podCIDR yet, br_netfilter missing…). */
  conditions: string[];
  /** Undefined when this node's addresses could not be read. */
  desired: DesiredState | undefined;
  /** What the routes stage did, when it ran and reached the kernel. */
  routes: RouteReport | undefined;
  durationMs: number;
}

export interface LoopStatus {
  synced: boolean;
  converged: boolean;
  lastPassAt: number | undefined;
  lastSuccessAt: number | undefined;
  passRunningSinceMs: number | undefined;
  problems: string[];
  rejected: number;
  routes: number;
  brNetfilter: string;
}

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

const rejectionKey = (r: Rejection) => `${r.node}|${r.podCIDR ?? ''}|${r.reason}`;

export class RouteSyncLoop {
  private readonly o: Required<LoopOptions>;
  private readonly scheduler: Scheduler;
  private readonly stages: Stage[];
  private readonly routes: RoutesStage;
  private readonly brnf: BrNetfilterStage | undefined;
  private readonly podInterface: string | undefined;
  /** Parse results of Node objects, kept across passes (a change re-parses one Node). */
  private readonly memo = new NodeMemo();
  private readonly rejections = new ChangeTracker<Rejection>((a, b) => a.message === b.message);
  private reach = new Map<string, Reachability>();
  private addrKey = '';
  private last: PassReport | undefined;
  private lastPassAt: number | undefined;
  private lastSuccessAt: number | undefined;
  private wasSynced = false;

  constructor(private readonly d: LoopDeps) {
    this.o = { debounceMs: 10, backoffBaseMs: 1000, backoffMaxMs: 30_000, clusterCIDRs: [], ...d.options };
    const { metrics, log } = d;
    const o = this.o;
    this.routes = new RoutesStage(d.net, o.routeProtocol, metrics, log);
    this.stages = [this.routes, new MasqStage(d.masq, metrics, log)];
    if (o.writeConflist) this.stages.push(new ConflistStage({ cniConfDir: o.cniConfDir, template: o.template, pluginVersions: d.pluginVersions }, metrics, log));
    if (o.brNetfilter) {
      this.brnf = new BrNetfilterStage(o.sysctlRoot, metrics, log);
      this.stages.push(this.brnf);
    }
    this.podInterface = o.writeConflist ? bridgeName(o.template) : undefined;
    this.scheduler = new Scheduler(
      {
        ready: () => d.source.synced(),
        run: async (full) => {
          if (!this.wasSynced) {
            this.wasSynced = true;
            log.info('node source synced', { source: d.source.description, nodes: d.source.nodes().length });
          }
          return (await this.reconcileNodes(d.source.nodes(), full)).errors.length === 0;
        },
        onRetry: (inMs, attempt) => log.warn('reconcile failed; retrying', { inMs, attempt }),
        onCrash: (e) => {
          metrics.countError('internal');
          log.error('reconcile pass crashed', { error: errText(e) });
        },
      },
      { debounceMs: o.debounceMs, resyncMs: o.resyncMs, backoffBaseMs: o.backoffBaseMs, backoffMaxMs: o.backoffMaxMs },
    );
  }

  /** One pass over the given nodes (what --once runs, and what every scheduled pass runs). */
  async reconcileNodes(nodes: readonly NodeLike[], full: boolean): Promise<PassReport> {
    const started = performance.now();
    const timings: Record<string, number> = {};
    let mark = started;
    const lap = (step: string) => {
      const now = performance.now();
      timings[step] = Math.round((now - mark) * 10) / 10;
      mark = now;
    };
    const { metrics, log } = this.d;
    const errors: string[] = [];
    const conditions: string[] = [];
    const fail = (stage: string, e: unknown) => {
      const msg = errText(e);
      errors.push(msg);
      metrics.countError(stage);
      log.error('reconcile stage failed', { stage, error: msg });
    };

    const learnt = await this.observe(nodes, full, fail);
    lap('observe');
    const desired = calcDesired({
      nodes,
      selfName: this.o.nodeName,
      localAddresses: learnt.addresses ?? [],
      reachability: this.reach,
      clusterCIDRs: this.o.clusterCIDRs,
      podInterface: this.podInterface,
      memo: this.memo,
    });
    if (learnt.peers) this.reportRejections(desired);
    lap('desired');

    const can: Record<StageNeeds, boolean> = { peers: learnt.peers, addresses: learnt.addresses !== undefined, nothing: true };
    let routes: RouteReport | undefined;
    for (const stage of this.stages) {
      if (!can[stage.needs]) continue;
      try {
        const r = await stage.reconcile(desired, full);
        for (const e of r.errors) fail(stage.name, e);
        conditions.push(...r.conditions);
      } catch (e) {
        fail(stage.name, e);
      }
      if (stage === this.routes) routes = this.routes.last;
      lap(stage.name);
    }

    const durationMs = performance.now() - started;
    metrics.observeReconcile(durationMs / 1000);
    metrics.nodes = nodes.length;
    this.lastPassAt = Date.now();
    if (errors.length === 0) {
      this.lastSuccessAt = this.lastPassAt;
      metrics.lastSuccessSeconds = Math.floor(this.lastPassAt / 1000);
    }
    const report: PassReport = { errors, conditions, desired: learnt.addresses ? desired : undefined, routes, durationMs };
    this.last = report;
    log[routes && (routes.replaced || routes.removed) ? 'info' : 'debug']('reconciled', {
      full,
      nodes: nodes.length,
      routes: routes ? routes.programmed[4] + routes.programmed[6] : undefined,
      rejected: desired.rejections.length,
      errors: errors.length,
      conditions: conditions.length,
      durationMs: Math.round(durationMs * 10) / 10,
      stagesMs: timings,
      heapMB: Math.round(process.memoryUsage().heapUsed / 1048576),
      rssMB: Math.round(process.memoryUsage.rss() / 1048576),
    });
    return report;
  }

  /**
   * This node's addresses and each peer's reachability. Answers are kept between passes: a full
   * pass asks again for every peer, any other only for peers not asked yet; a change of this
   * node's addresses forgets them all.
   */
  private async observe(nodes: readonly NodeLike[], full: boolean, fail: (step: string, e: unknown) => void): Promise<{ addresses: LocalAddress[] | undefined; peers: boolean }> {
    const { net } = this.d;
    let addresses: LocalAddress[];
    try {
      addresses = await net.addresses();
    } catch (e) {
      fail('addresses', e);
      return { addresses: undefined, peers: false };
    }
    const key = addresses.map((a) => `${a.ifname}/${a.address}/${a.prefix}`).sort().join(',');
    if (key !== this.addrKey) {
      this.addrKey = key;
      this.reach.clear();
    }
    const peers = calcPeerAddresses(nodes, this.o.nodeName, this.memo);
    const ask = full ? peers : peers.filter((p) => !this.reach.has(p));
    try {
      const answers = await net.reachability(ask);
      const keep = new Set(peers);
      for (const k of this.reach.keys()) if (!keep.has(k)) this.reach.delete(k);
      for (const [k, v] of answers) this.reach.set(k, v);
    } catch (e) {
      fail('reachability', e);
      return { addresses, peers: false };
    }
    return { addresses, peers: true };
  }

  /** Log each rejection when it starts, changes or clears; count them by reason. */
  private reportRejections(desired: DesiredState): void {
    const counts = new Map<string, number>();
    for (const r of desired.rejections) counts.set(r.reason, (counts.get(r.reason) ?? 0) + 1);
    const { started, ended } = this.rejections.update(new Map(desired.rejections.map((r) => [rejectionKey(r), r])));
    for (const [, r] of started) {
      const level = r.reason === Reason.NoPodCIDR ? 'info' : 'warn';
      this.d.log[level]('node rejected', { node: r.node, reason: r.reason, podCIDR: r.podCIDR, message: r.message });
    }
    for (const [, r] of ended) this.d.log.info('node rejection cleared', { node: r.node, podCIDR: r.podCIDR, reason: r.reason });
    this.d.metrics.setRejected(counts, Object.values(Reason));
  }

  /** Ask for a pass soon (coalesced); `full` also re-verifies reachability and rules. */
  trigger(full = false): void {
    this.scheduler.trigger(full);
  }

  start(): void {
    this.scheduler.start();
    this.d.source.start({
      onChange: () => this.scheduler.trigger(false),
      onError: (e) => {
        this.d.metrics.sourceErrors += 1;
        this.d.log.error('node source failed; keeping the last known nodes and routes', { source: this.d.source.description, error: e.message });
      },
      onInfo: (msg, fields) => this.d.log.info(msg, fields),
    });
  }

  /** Stop watching and timers; wait (bounded) for a running pass. Leaves everything in place. */
  async stop(maxWaitMs = 3000): Promise<void> {
    const stopping = this.scheduler.stop(maxWaitMs);
    await Promise.race([this.d.source.stop().catch(() => undefined), new Promise((r) => setTimeout(r, maxWaitMs).unref())]);
    await stopping;
  }

  status(): LoopStatus {
    const problems: string[] = [];
    const synced = this.d.source.synced();
    if (!synced) problems.push(`node source ${this.d.source.description} has not listed nodes yet`);
    if (this.last) problems.push(...this.last.errors, ...this.last.conditions);
    else if (synced) problems.push('no reconcile pass yet');
    return {
      synced,
      converged: problems.length === 0,
      lastPassAt: this.lastPassAt,
      lastSuccessAt: this.lastSuccessAt,
      passRunningSinceMs: this.scheduler.runningForMs(),
      problems,
      rejected: this.last?.desired?.rejections.filter((r) => r.reason !== Reason.NoPodCIDR).length ?? 0,
      routes: this.last?.routes ? this.last.routes.programmed[4] + this.last.routes.programmed[6] : 0,
      brNetfilter: this.brnf ? this.brnf.message : 'not managed',
    };
  }
}

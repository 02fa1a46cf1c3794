import type { Logger } from '../lib/cni/log.js';
import { ensureBrNetfilter } from './br-netfilter.js';
import { CONFLIST_NAME, type ConflistTemplate, calcChainVersions, calcConflist, chainTypes } from './conflist.js';
import { calcDesired, calcPeerAddresses } from './desired.js';
import type { HostNet } from './host-net.js';
import type { Metrics } from './metrics.js';
import type { VersionLookup } from './plugin-versions.js';
import { backoffDelay, type NodeSource } from './node-source.js';
import { writeConflistIfChanged } from './reconcile-conflist.js';
import type { MasqReconciler } from './reconcile-masq.js';
import { RouteReconciler, type RouteReport } from './reconcile-routes.js';
import { type DesiredState, type LocalAddress, type NodeLike, type Reachability, Reason } from './types.js';

/**
 * The controller: one reconcile pass at a time, triggered by node changes (debounced) and by a
 * periodic full resync; failed passes are retried with backoff. Level-triggered: every pass
 * starts from the whole current node set, so nothing depends on having seen each event.
 *
 * Safety rules:
 *  - nothing is reconciled before the node source has listed once (an empty cache must never
 *    delete the routes a previous instance made);
 *  - while the API server is unreachable the source keeps its last nodes, so routes stay;
 *  - one bad Node only earns a rejection; a failing stage is counted and retried, never fatal;
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
  desired: DesiredState | undefined;
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

export class RouteSyncLoop {
  private readonly o: Required<LoopOptions>;
  private reach = new Map<string, Reachability>();
  private addrKey = '';
  private rejectionKeys = new Map<string, string>();
  private conflictKeys = new Set<string>();
  private droppedKey = '[]';
  private running: Promise<void> | undefined;
  private runningSince: number | undefined;
  private queued: { full: boolean } | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private resyncTimer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private failures = 0;
  private stopped = false;
  private brnfOk: boolean | undefined;
  private brnfMessage = 'not checked yet';
  private last: PassReport | undefined;
  private lastPassAt: number | undefined;
  private lastSuccessAt: number | undefined;
  private wasSynced = false;
  private readonly routeReconciler: RouteReconciler;

  constructor(private readonly d: LoopDeps) {
    this.o = { debounceMs: 10, backoffBaseMs: 1000, backoffMaxMs: 30_000, ...d.options };
    this.routeReconciler = new RouteReconciler(d.net, this.o.routeProtocol);
  }

  /** One pass over the given nodes (what --once runs, and what every triggered pass runs). */
  async reconcileNodes(nodes: readonly NodeLike[], full: boolean): Promise<PassReport> {
    const started = performance.now();
    const timings: Record<string, number> = {};
    let mark = started;
    const lap = (stage: string) => {
      const now = performance.now();
      timings[stage] = Math.round((now - mark) * 10) / 10;
      mark = now;
    };
    const { net, metrics, log } = this.d;
    const o = this.o;
    const errors: string[] = [];
    const conditions: string[] = [];
    const fail = (stage: string, e: unknown) => {
      const msg = errText(e);
      errors.push(msg);
      metrics.countError(stage);
      log.error('reconcile stage failed', { stage, error: msg });
    };

    let addrs: LocalAddress[] | undefined;
    try {
      addrs = await net.addresses();
    } catch (e) {
      fail('addresses', e);
    }
    lap('addresses');
    let desired: DesiredState | undefined;
    let routes: RouteReport | undefined;
    if (addrs) {
      const key = addrs.map((a) => `${a.ifname}/${a.address}/${a.prefix}`).sort().join(',');
      if (key !== this.addrKey) {
        this.addrKey = key;
        this.reach.clear();
      }
      const peers = calcPeerAddresses(nodes, o.nodeName);
      const ask = full ? peers : peers.filter((p) => !this.reach.has(p));
      let reachFailed = false;
      try {
        const answers = await net.reachability(ask);
        const keep = new Set(peers);
        for (const k of this.reach.keys()) if (!keep.has(k)) this.reach.delete(k);
        for (const [k, v] of answers) this.reach.set(k, v);
      } catch (e) {
        reachFailed = true;
        fail('reachability', e);
      }
      lap('reachability');
      desired = calcDesired({ nodes, selfName: o.nodeName, localAddresses: addrs, reachability: this.reach });
      if (!reachFailed) this.reportRejections(desired);
      lap('desired');

      // Without reachability answers every peer would look unreachable: touching routes or the
      // masquerade set now would delete good state. Skip both; the retry comes with backoff.
      if (!reachFailed) {
        routes = await this.syncRoutes(desired, full, fail);
        lap('routes');
        await this.syncMasq(desired, full, fail);
        lap('masquerade');
      }

      if (o.writeConflist) {
        const self = desired.self;
        if (!self.ok) {
          conditions.push(`${self.reason}: ${self.message}; CNI config not written`);
        } else {
          const uplink = addrs.find((a) => self.internalIPs.includes(a.address));
          if (!uplink) log.warn('no local interface holds this node\'s InternalIP; CNI config gets no mtu', { internalIPs: self.internalIPs });
          try {
            const types = chainTypes(o.template);
            const support = new Map(await Promise.all(types.map(async (t) => [t, await this.d.pluginVersions(t)] as const)));
            const versions = calcChainVersions(o.template, support);
            if (!versions) throw new Error(`no CNI version of the template is supported by every chained plugin (${types.join(', ')})`);
            const droppedKey = JSON.stringify(versions.dropped);
            if (droppedKey !== this.droppedKey) {
              this.droppedKey = droppedKey;
              for (const d of versions.dropped) log.info('cni version left out of the config: a chained plugin lacks it', d);
            }
            const content = calcConflist(o.template, { podCIDRs: self.podCIDRs, mtu: uplink?.mtu }, versions);
            const w = await writeConflistIfChanged(o.cniConfDir, CONFLIST_NAME, content);
            metrics.conflistWritten = 1;
            if (w.written) {
              metrics.conflistWrites += 1;
              log.info('cni config written', { path: w.path, podCIDRs: self.podCIDRs, mtu: uplink?.mtu });
            }
            if (w.shadowedBy.length) {
              conditions.push(`cni config ${w.shadowedBy.join(', ')} sorts before ${CONFLIST_NAME} in ${o.cniConfDir}; the runtime uses that one`);
            }
          } catch (e) {
            fail('conflist', e);
          }
        }
      }
    }

    if (o.brNetfilter && (full || this.brnfOk !== true)) {
      try {
        const s = await ensureBrNetfilter(o.sysctlRoot);
        if (s.ok !== this.brnfOk || s.written.length) {
          if (s.ok) log.info('br_netfilter ok', { detail: s.message });
          else log.error('br_netfilter not available: Services between pods on one node will not work', { detail: s.message });
        }
        this.brnfOk = s.ok;
        this.brnfMessage = s.message;
        metrics.brNetfilterOk = s.ok ? 1 : 0;
      } catch (e) {
        fail('br_netfilter', e);
      }
    }
    lap('conflist+br_netfilter');
    if (o.brNetfilter && this.brnfOk === false) conditions.push(`br_netfilter: ${this.brnfMessage}`);

    const durationMs = performance.now() - started;
    metrics.observeReconcile(durationMs / 1000);
    metrics.nodes = nodes.length;
    this.lastPassAt = Date.now();
    if (errors.length === 0) {
      this.lastSuccessAt = this.lastPassAt;
      metrics.lastSuccessSeconds = Math.floor(this.lastPassAt / 1000);
    }
    const report: PassReport = { errors, conditions, desired, routes, durationMs };
    this.last = report;
    log[routes && (routes.replaced || routes.removed) ? 'info' : 'debug']('reconciled', {
      full,
      nodes: nodes.length,
      routes: routes ? routes.programmed[4] + routes.programmed[6] : undefined,
      rejected: desired?.rejections.length,
      errors: errors.length,
      conditions: conditions.length,
      durationMs: Math.round(durationMs * 10) / 10,
      stagesMs: timings,
      heapMB: Math.round(process.memoryUsage().heapUsed / 1048576),
      rssMB: Math.round(process.memoryUsage.rss() / 1048576),
    });
    return report;
  }

  private async syncRoutes(desired: DesiredState, full: boolean, fail: (stage: string, e: unknown) => void): Promise<RouteReport | undefined> {
    const { metrics, log } = this.d;
    try {
      const routes = await this.routeReconciler.reconcile(desired.routes, { list: full });
      metrics.routesProgrammed = { ...routes.programmed };
      metrics.routeChanges.replace += routes.replaced;
      metrics.routeChanges.delete += routes.removed;
      metrics.routeConflicts = routes.conflicts.length;
      this.reportConflicts(routes);
      for (const err of routes.errors) fail('routes', new Error(err));
      if (routes.replaced || routes.removed) {
        log.info('routes changed', {
          replaced: routes.replaced,
          removed: routes.removed,
          programmed: routes.programmed[4] + routes.programmed[6],
        });
      }
      return routes;
    } catch (e) {
      fail('routes', e);
      return undefined;
    }
  }

  private async syncMasq(desired: DesiredState, full: boolean, fail: (stage: string, e: unknown) => void): Promise<void> {
    const { masq, metrics, log } = this.d;
    try {
      const r = await masq.ensure(desired.clusterPodCIDRs, full);
      if (r.changed) {
        metrics.masqChanges += 1;
        log.info('masquerade rules updated', { backend: masq.backend, podCIDRs: desired.clusterPodCIDRs.v4.length + desired.clusterPodCIDRs.v6.length });
      }
    } catch (e) {
      fail('masquerade', e);
    }
  }

  private reportRejections(desired: DesiredState): void {
    const now = new Map<string, string>();
    const counts = new Map<string, number>();
    for (const r of desired.rejections) {
      const key = `${r.node}|${r.podCIDR ?? ''}|${r.reason}`;
      now.set(key, r.message);
      counts.set(r.reason, (counts.get(r.reason) ?? 0) + 1);
      if (this.rejectionKeys.get(key) !== r.message) {
        const level = r.reason === Reason.NoPodCIDR ? 'info' : 'warn';
        this.d.log[level]('node rejected', { node: r.node, reason: r.reason, podCIDR: r.podCIDR, message: r.message });
      }
    }
    for (const [key] of this.rejectionKeys) {
      if (!now.has(key)) {
        const [node, podCIDR, reason] = key.split('|');
        this.d.log.info('node rejection cleared', { node, podCIDR: podCIDR || undefined, reason });
      }
    }
    this.rejectionKeys = now;
    this.d.metrics.setRejected(counts, Object.values(Reason));
  }

  private reportConflicts(routes: RouteReport): void {
    const now = new Set<string>();
    for (const c of routes.conflicts) {
      const key = c.route.dst;
      now.add(key);
      if (!this.conflictKeys.has(key)) {
        this.d.log.warn('route conflict: a route of another owner has this destination; left alone', {
          dst: c.route.dst,
          node: c.route.node,
          existingProtocol: c.existing?.protocol,
          existingGateway: c.existing?.gateway,
          existingDev: c.existing?.dev,
        });
      }
    }
    this.conflictKeys = now;
  }

  /** Ask for a pass soon (coalesced); `full` also re-verifies reachability and rules. */
  trigger(full = false): void {
    if (this.stopped) return;
    this.queued = { full: full || (this.queued?.full ?? false) };
    if (this.running || this.debounce) return;
    this.debounce = setTimeout(() => {
      this.debounce = undefined;
      this.kick();
    }, this.o.debounceMs);
  }

  private kick(): void {
    if (this.running || !this.queued || this.stopped) return;
    if (!this.d.source.synced()) return; // the first complete list triggers again
    const { full } = this.queued;
    this.queued = undefined;
    if (!this.wasSynced) {
      this.wasSynced = true;
      this.d.log.info('node source synced', { source: this.d.source.description, nodes: this.d.source.nodes().length });
    }
    this.runningSince = Date.now();
    this.running = this.reconcileNodes(this.d.source.nodes(), full || this.last === undefined)
      .then((r) => {
        clearTimeout(this.retryTimer);
        if (r.errors.length) {
          const wait = backoffDelay(this.failures, this.o.backoffBaseMs, this.o.backoffMaxMs);
          this.failures += 1;
          this.d.log.warn('reconcile failed; retrying', { inMs: wait, attempt: this.failures });
          this.retryTimer = setTimeout(() => this.trigger(true), wait);
        } else {
          this.failures = 0;
        }
      })
      .catch((e: unknown) => {
        // reconcileNodes catches per stage; this is a bug guard, never a crash.
        this.d.metrics.countError('internal');
        this.d.log.error('reconcile pass crashed', { error: errText(e) });
        this.retryTimer = setTimeout(() => this.trigger(true), backoffDelay(this.failures++, this.o.backoffBaseMs, this.o.backoffMaxMs));
      })
      .finally(() => {
        this.running = undefined;
        this.runningSince = undefined;
        if (this.queued) this.kick();
      });
  }

  start(): void {
    this.stopped = false;
    this.d.source.start({
      onChange: () => this.trigger(false),
      onError: (e) => {
        this.d.metrics.sourceErrors += 1;
        this.d.log.error('node source failed; keeping the last known nodes and routes', { source: this.d.source.description, error: e.message });
      },
      onInfo: (msg, fields) => this.d.log.info(msg, fields),
    });
    this.resyncTimer = setInterval(() => this.trigger(true), this.o.resyncMs);
    // Check br_netfilter right away, even before the first list.
    if (this.o.brNetfilter) {
      void ensureBrNetfilter(this.o.sysctlRoot).catch(() => undefined).then((s) => {
        if (!s) return;
        if (this.brnfOk !== undefined) return;
        this.brnfOk = s.ok;
        this.brnfMessage = s.message;
        this.d.metrics.brNetfilterOk = s.ok ? 1 : 0;
        if (!s.ok) this.d.log.error('br_netfilter not available: Services between pods on one node will not work', { detail: s.message });
      });
    }
  }

  /** Stop watching and timers; wait (bounded) for a running pass. Leaves everything in place. */
  async stop(maxWaitMs = 3000): Promise<void> {
    this.stopped = true;
    clearTimeout(this.debounce);
    clearTimeout(this.retryTimer);
    clearInterval(this.resyncTimer);
    const running = this.running;
    await Promise.race([this.d.source.stop().catch(() => undefined), new Promise((r) => setTimeout(r, maxWaitMs).unref())]);
    if (running) await Promise.race([running, new Promise((r) => setTimeout(r, maxWaitMs).unref())]);
  }

  status(): LoopStatus {
    const problems: string[] = [];
    const synced = this.d.source.synced();
    if (!synced) problems.push(`node source ${this.d.source.description} has not listed nodes yet`);
    if (this.last) problems.push(...this.last.errors, ...this.last.conditions);
    else if (synced) problems.push('no reconcile pass yet');
    if (this.o.brNetfilter && this.brnfOk === false && !problems.some((p) => p.startsWith('br_netfilter'))) {
      problems.push(`br_netfilter: ${this.brnfMessage}`);
    }
    return {
      synced,
      converged: problems.length === 0,
      lastPassAt: this.lastPassAt,
      lastSuccessAt: this.lastSuccessAt,
      passRunningSinceMs: this.runningSince === undefined ? undefined : Date.now() - this.runningSince,
      problems,
      rejected: this.last?.desired?.rejections.filter((r) => r.reason !== Reason.NoPodCIDR).length ?? 0,
      routes: this.last?.routes ? this.last.routes.programmed[4] + this.last.routes.programmed[6] : 0,
      brNetfilter: this.o.brNetfilter ? this.brnfMessage : 'not managed',
    };
  }
}

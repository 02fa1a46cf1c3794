/**
 * The daemon's Prometheus metrics (text exposition format 0.0.4), hand-rolled: a dozen series do
 * not justify a client library in the executable.
 */
const PREFIX = 'podnet_routesync';
const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

function esc(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function labels(l: Record<string, string>): string {
  const parts = Object.entries(l).map(([k, v]) => `${k}="${esc(v)}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
}

export class Metrics {
  /** Routes of ours in the kernel that match the desired state, per family. */
  routesProgrammed = { 4: 0, 6: 0 };
  /** Rejected (node, podCIDR) pairs by reason. */
  rejected = new Map<string, number>();
  nodes = 0;
  routeConflicts = 0;
  brNetfilterOk = 0;
  conflistWritten = 0;
  lastSuccessSeconds = 0;
  readonly reconcileErrors = new Map<string, number>();
  readonly routeChanges = { replace: 0, delete: 0 };
  conflistWrites = 0;
  masqChanges = 0;
  sourceErrors = 0;
  private readonly durationBuckets = DURATION_BUCKETS.map(() => 0);
  private durationCount = 0;
  private durationSum = 0;

  observeReconcile(seconds: number): void {
    this.durationCount += 1;
    this.durationSum += seconds;
    DURATION_BUCKETS.forEach((b, i) => {
      if (seconds <= b) this.durationBuckets[i] = (this.durationBuckets[i] ?? 0) + 1;
    });
  }

  countError(stage: string): void {
    this.reconcileErrors.set(stage, (this.reconcileErrors.get(stage) ?? 0) + 1);
  }

  setRejected(counts: Map<string, number>, reasons: readonly string[]): void {
    this.rejected = new Map(reasons.map((r) => [r, counts.get(r) ?? 0]));
    for (const [r, n] of counts) if (!this.rejected.has(r)) this.rejected.set(r, n);
  }

  render(): string {
    const out: string[] = [];
    const metric = (name: string, type: string, help: string, samples: [Record<string, string>, number][]) => {
      out.push(`# HELP ${PREFIX}_${name} ${help}`, `# TYPE ${PREFIX}_${name} ${type}`);
      for (const [l, v] of samples) out.push(`${PREFIX}_${name}${labels(l)} ${Number.isFinite(v) ? v : 0}`);
    };
    metric('routes_programmed', 'gauge', 'Routes to other nodes\' pod CIDRs present in the kernel as desired.', [
      [{ family: 'ipv4' }, this.routesProgrammed[4]],
      [{ family: 'ipv6' }, this.routesProgrammed[6]],
    ]);
    metric('rejected_nodes', 'gauge', 'Node podCIDRs given no route, by reason.', [...this.rejected].map(([reason, n]) => [{ reason }, n]));
    metric('nodes', 'gauge', 'Nodes known to the daemon.', [[{}, this.nodes]]);
    metric('route_conflicts', 'gauge', 'Desired routes blocked by a route of another owner with the same destination.', [[{}, this.routeConflicts]]);
    metric('br_netfilter_ok', 'gauge', '1 when net.bridge.bridge-nf-call-iptables/ip6tables are 1 in the node namespace.', [[{}, this.brNetfilterOk]]);
    metric('cni_config_written', 'gauge', '1 when this node\'s CNI config list is in place.', [[{}, this.conflistWritten]]);
    metric('last_successful_sync_timestamp_seconds', 'gauge', 'Unix time of the last reconcile without errors.', [[{}, this.lastSuccessSeconds]]);
    metric(
      'reconcile_errors_total',
      'counter',
      'Reconcile failures by stage.',
      [...this.reconcileErrors].map(([stage, n]) => [{ stage }, n]),
    );
    metric('route_changes_total', 'counter', 'Routes replaced or deleted.', [
      [{ op: 'replace' }, this.routeChanges.replace],
      [{ op: 'delete' }, this.routeChanges.delete],
    ]);
    metric('cni_config_writes_total', 'counter', 'Times the CNI config list was (re)written.', [[{}, this.conflistWrites]]);
    metric('masquerade_changes_total', 'counter', 'Times the masquerade rule set was replaced.', [[{}, this.masqChanges]]);
    metric('node_source_errors_total', 'counter', 'Failed lists, watches or nodes-file reads.', [[{}, this.sourceErrors]]);
    out.push(
      `# HELP ${PREFIX}_reconcile_duration_seconds Time one reconcile pass takes.`,
      `# TYPE ${PREFIX}_reconcile_duration_seconds histogram`,
    );
    DURATION_BUCKETS.forEach((b, i) => out.push(`${PREFIX}_reconcile_duration_seconds_bucket{le="${b}"} ${this.durationBuckets[i]}`));
    out.push(
      `${PREFIX}_reconcile_duration_seconds_bucket{le="+Inf"} ${this.durationCount}`,
      `${PREFIX}_reconcile_duration_seconds_sum ${this.durationSum}`,
      `${PREFIX}_reconcile_duration_seconds_count ${this.durationCount}`,
    );
    return `${out.join('\n')}\n`;
  }
}

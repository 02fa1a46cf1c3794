import { parseArgs } from 'node:util';
import { cidrText } from '../lib/addr/addr.js';
import { parseClusterCidrs } from './pod-network.js';
import { DEFAULT_ROUTE_PROTOCOL } from './reconcile-routes.js';
import type { MasqMode } from './reconcile-masq.js';

/**
 * Command line of podnet-routesync. One table drives parsing and --help, so every flag is
 * documented by construction. node:util's parseArgs splits the command line (`--flag value`,
 * `--flag=value`, `-h`); the table gives each value its meaning and check. Booleans take an
 * optional `=true|false`, which parseArgs alone does not, hence its non-strict mode and tokens.
 */
export interface Options {
  nodeName: string;
  kubeconfig: string | undefined;
  nodesFile: string | undefined;
  cniConfDir: string;
  cniBinDir: string;
  conflistTemplate: string | undefined;
  writeConflist: boolean;
  masquerade: MasqMode;
  sysctlRoot: string;
  brNetfilter: boolean;
  routeProtocol: number;
  metricsAddr: string;
  resyncMs: number;
  pollMs: number;
  once: boolean;
  logLevel: string;
  listPageSize: number;
  /** Canonical CIDR texts of the cluster's pod ranges; empty: not given. */
  clusterCidrs: string[];
  help: boolean;
}

interface FlagSpec {
  name: string;
  key: keyof Options;
  /** `list`: comma-separated, and the flag may be repeated. */
  kind: 'string' | 'bool' | 'duration' | 'int' | 'list';
  value?: string;
  help: string;
  check?: (v: unknown) => string | undefined;
}

const FLAGS: FlagSpec[] = [
  { name: 'node-name', key: 'nodeName', kind: 'string', value: 'NAME', help: 'this node\'s name as in the API (default: $NODE_NAME, set from the downward API in the DaemonSet)' },
  { name: 'kubeconfig', key: 'kubeconfig', kind: 'string', value: 'PATH', help: 'kubeconfig to use instead of the in-cluster service account' },
  { name: 'nodes-file', key: 'nodesFile', kind: 'string', value: 'PATH', help: 'read Nodes from this JSON/YAML NodeList (re-read on change) instead of the API server' },
  {
    name: 'cluster-cidr',
    key: 'clusterCidrs',
    kind: 'list',
    value: 'CIDR[,CIDR]',
    help: 'the cluster\'s pod ranges, as given to kube-controller-manager (one per family): podCIDRs outside them are refused (default: not enforced)',
    check: (v) => {
      const p = parseClusterCidrs(v as string[]);
      return p.ok ? undefined : p.error;
    },
  },
  { name: 'cni-conf-dir', key: 'cniConfDir', kind: 'string', value: 'DIR', help: 'where to write 10-podnet.conflist (default /etc/cni/net.d)' },
  { name: 'cni-bin-dir', key: 'cniBinDir', kind: 'string', value: 'DIR', help: 'the node\'s CNI plugins, asked which CNI versions they speak so the conflist names only those (default /opt/cni/bin)' },
  { name: 'conflist-template', key: 'conflistTemplate', kind: 'string', value: 'PATH', help: 'JSON conflist to fill in instead of the built-in one (conf/routesync-template.json)' },
  { name: 'write-conflist', key: 'writeConflist', kind: 'bool', help: 'write the CNI config list (default true; --write-conflist=false to only route)' },
  {
    name: 'masquerade',
    key: 'masquerade',
    kind: 'string',
    value: 'MODE',
    help: 'auto | nftables | iptables | none: masquerade pod traffic leaving the cluster pod CIDRs (default auto: nftables if usable, else iptables)',
    check: (v) => (['auto', 'nftables', 'iptables', 'none'].includes(String(v)) ? undefined : 'must be auto, nftables, iptables or none'),
  },
  { name: 'sysctl-root', key: 'sysctlRoot', kind: 'string', value: 'DIR', help: 'where net/bridge/bridge-nf-call-* live (default /proc/sys)' },
  { name: 'br-netfilter', key: 'brNetfilter', kind: 'bool', help: 'ensure net.bridge.bridge-nf-call-iptables/ip6tables = 1 (default true)' },
  {
    name: 'route-protocol',
    key: 'routeProtocol',
    kind: 'int',
    value: 'N',
    help: `routing protocol number marking this daemon's routes (default ${DEFAULT_ROUTE_PROTOCOL} = 0x70)`,
    check: (v) => (Number(v) >= 5 && Number(v) <= 255 ? undefined : 'must be 5..255 (0-4 are the kernel\'s own)'),
  },
  { name: 'metrics-addr', key: 'metricsAddr', kind: 'string', value: 'HOST:PORT', help: 'serve /metrics, /healthz and /readyz here (default 0.0.0.0:9646; empty to disable)' },
  { name: 'resync-interval', key: 'resyncMs', kind: 'duration', value: 'DURATION', help: 'full resync period: repairs routes and rules changed by hand, rechecks reachability (default 30s)' },
  { name: 'nodes-file-poll', key: 'pollMs', kind: 'duration', value: 'DURATION', help: 'stat poll period of --nodes-file, in addition to inotify (default 2s)' },
  { name: 'list-page-size', key: 'listPageSize', kind: 'int', value: 'N', help: 'Nodes per list page (default 500)', check: (v) => (Number(v) >= 1 ? undefined : 'must be at least 1') },
  { name: 'once', key: 'once', kind: 'bool', help: 'reconcile once and exit: 0 when converged, 1 with the reasons otherwise' },
  { name: 'log-level', key: 'logLevel', kind: 'string', value: 'LEVEL', help: 'error | warn | info | debug (default info); logs are JSON lines on stderr', check: (v) => (['error', 'warn', 'info', 'debug'].includes(String(v)) ? undefined : 'must be error, warn, info or debug') },
  { name: 'help', key: 'help', kind: 'bool', help: 'print this help' },
];

export function helpText(): string {
  const rows = FLAGS.map((f) => [`  --${f.name}${f.value ? ` ${f.value}` : ''}`, f.help] as const);
  const width = Math.max(...rows.map((r) => r[0].length)) + 2;
  return [
    'podnet-routesync: makes every node\'s pod CIDR routable from this node, writes this node\'s CNI config,',
    'masquerades pod traffic leaving the cluster, and keeps br_netfilter on.',
    '',
    'usage: podnet-routesync [flags]',
    '',
    ...rows.map(([a, b]) => `${a.padEnd(width)}${b}`),
    '',
    'Durations: 500ms, 30s, 5m, or a plain number of seconds. Signals: SIGTERM/SIGINT exit within 5 s and leave routes in place.',
    '',
  ].join('\n');
}

export function parseDuration(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!m) return undefined;
  const n = Number(m[1]);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h'];
  return Math.round(n * unit);
}

export type ParseResult = { ok: true; options: Options } | { ok: false; error: string };

export function parseFlags(argv: readonly string[], env: NodeJS.ProcessEnv): ParseResult {
  const o: Options = {
    nodeName: env.NODE_NAME ?? '',
    kubeconfig: undefined,
    nodesFile: undefined,
    cniConfDir: '/etc/cni/net.d',
    cniBinDir: '/opt/cni/bin',
    conflistTemplate: undefined,
    writeConflist: true,
    masquerade: 'auto',
    sysctlRoot: '/proc/sys',
    brNetfilter: true,
    routeProtocol: DEFAULT_ROUTE_PROTOCOL,
    metricsAddr: '0.0.0.0:9646',
    resyncMs: 30_000,
    pollMs: 2000,
    once: false,
    logLevel: 'info',
    listPageSize: 500,
    clusterCidrs: [],
    help: false,
  };
  const set = o as unknown as Record<string, unknown>;
  let tokens;
  try {
    ({ tokens } = parseArgs({
      args: [...argv],
      options: Object.fromEntries(FLAGS.map((f) => [f.name, { type: f.kind === 'bool' ? 'boolean' : 'string', ...(f.name === 'help' ? { short: 'h' } : {}) }])),
      strict: false,
      allowPositionals: true,
      tokens: true,
    }));
  } catch (e) {
    return { ok: false, error: (e as Error).message };
  }
  const lists = new Map<string, string[]>();
  for (const t of tokens) {
    if (t.kind === 'positional') return { ok: false, error: `unexpected argument "${t.value}"` };
    if (t.kind === 'option-terminator') continue;
    const spec = FLAGS.find((f) => f.name === t.name);
    if (!spec) return { ok: false, error: `unknown flag "${t.rawName}"` };
    const name = spec.name;
    const raw = t.value;
    if (spec.kind === 'bool') {
      if (raw === undefined) set[spec.key] = true;
      else if (['true', '1', 'yes'].includes(raw)) set[spec.key] = true;
      else if (['false', '0', 'no'].includes(raw)) set[spec.key] = false;
      else return { ok: false, error: `--${name}: "${raw}" is not true or false` };
      continue;
    }
    if (raw === undefined) return { ok: false, error: `--${name} needs a value` };
    let value: unknown = raw;
    if (spec.kind === 'duration') {
      value = parseDuration(raw);
      if (value === undefined || value === 0) return { ok: false, error: `--${name}: "${raw}" is not a positive duration` };
    } else if (spec.kind === 'int') {
      if (!/^\d+$/.test(raw)) return { ok: false, error: `--${name}: "${raw}" is not a number` };
      value = Number(raw);
    } else if (spec.kind === 'list') {
      const items = raw.split(',').map((x) => x.trim());
      if (items.some((x) => x === '')) return { ok: false, error: `--${name}: "${raw}" has an empty item` };
      value = [...(lists.get(name) ?? []), ...items];
      lists.set(name, value as string[]);
    }
    const bad = spec.check?.(value);
    if (bad) return { ok: false, error: `--${name}: ${bad}` };
    set[spec.key] = value;
  }
  if (o.help) return { ok: true, options: o };
  if (!o.nodeName) return { ok: false, error: 'no node name: pass --node-name NAME or set NODE_NAME' };
  if (o.kubeconfig && o.nodesFile) return { ok: false, error: '--kubeconfig and --nodes-file exclude each other' };
  const cluster = parseClusterCidrs(o.clusterCidrs);
  if (cluster.ok) o.clusterCidrs = cluster.value.map(cidrText);
  return { ok: true, options: o };
}

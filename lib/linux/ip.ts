import { CniError, ErrorCode } from '../cni/errors.js';
import { type Family, cidrText, formatIp, parseCidr, parseIp } from '../addr/addr.js';
import { type RunResult, type Runner, binary as binaryPath, processRunner } from './exec.js';
import { ifNameProblem, isIntIn, isMacText, macProblem, netnsPathProblem, sysctlKeyProblem } from './values.js';

/**
 * iproute2 for the whole tree: typed operations → one `ip -batch -` (or `bridge -batch -`)
 * process. Each step returns its own handle, settled when the batch has run: `ok`, its `value`
 * (what a show step printed, decoded) or its `error` (the kernel's message, and whether it
 * means "exists" or "not found"). Callers never see line numbers or iproute2's stderr format.
 *
 * Every argument is checked for what it is before a line is rendered (interface names, CIDRs,
 * addresses, MACs, numbers, the netns path, sysctl keys) and every address is re-printed from
 * its parsed value, so no input text reaches `ip` as is: a newline, a '#' or a quote cannot
 * change what runs. A refused value throws before anything runs. Sources validate first, with
 * their own CNI codes; this is the last line.
 */

// ----------------------------------------------------------------------------- operations

export type IpChange =
  | { kind: 'link-add-bridge'; name: string; mac?: string | undefined; mtu?: number | undefined; vlanFiltering?: boolean }
  | {
      kind: 'link-add-veth';
      name: string;
      mtu?: number | undefined;
      peer: { name: string; mtu?: number | undefined; mac?: string | undefined; netns?: string | undefined };
    }
  | { kind: 'link-master'; dev: string; master: string }
  | { kind: 'link-port'; dev: string; hairpin?: boolean; isolated?: boolean }
  | { kind: 'link-up'; dev: string; promisc?: boolean }
  | { kind: 'link-address'; dev: string; mac: string }
  | { kind: 'link-del'; dev: string }
  | { kind: 'addr-add'; dev: string; cidr: string; broadcast?: boolean }
  | { kind: 'addr-del'; dev: string; cidr: string }
  | {
      kind: 'route';
      verb: 'add' | 'replace' | 'del';
      dst: string;
      via?: string | undefined;
      dev?: string | undefined;
      proto?: number | undefined;
      metric?: number | undefined;
      table?: number | 'main' | undefined;
      scope?: number | undefined;
      mtu?: number | undefined;
      advmss?: number | undefined;
    };

/** `bridge -batch` operations (VLAN filtering entries have no `ip` equivalent). */
export type BridgeChange = { kind: 'vlan'; verb: 'add' | 'del'; dev: string; vid: number; pvidUntagged?: boolean; master?: boolean };

export type IpShow = { kind: 'addr-show'; dev?: string } | { kind: 'route-show'; table: 'all' | 'main' | number } | { kind: 'route-get'; dst: string };

/** A refused value: the caller's source should have refused it first (with its own code). */
export class KernelInputError extends CniError {
  constructor(what: string, value: unknown, why: string) {
    super(ErrorCode.Internal, `refusing to run ip: invalid ${what} ${JSON.stringify(value)}: ${why}`);
    this.name = 'KernelInputError';
  }
}

const name = (what: string, v: string): string => {
  const why = ifNameProblem(v);
  if (why) throw new KernelInputError(what, v, why);
  return v;
};
const mac = (v: string): string => {
  const why = macProblem(v);
  if (why) throw new KernelInputError('MAC address', v, why);
  return v.toLowerCase();
};
const int = (what: string, v: number, min: number, max: number): number => {
  if (!isIntIn(v, min, max)) throw new KernelInputError(what, v, `not an integer in ${min}..${max}`);
  return v;
};
const ip = (v: string): string => {
  const a = parseIp(v);
  if (!a) throw new KernelInputError('address', v, 'not an IP address');
  return formatIp(a);
};
const cidr = (v: string): string => {
  const c = parseCidr(v);
  if (!c) throw new KernelInputError('CIDR', v, 'not an address/prefix');
  return cidrText(c);
};
const netns = (v: string): string => {
  const why = netnsPathProblem(v);
  if (why) throw new KernelInputError('netns path', v, why);
  return v;
};
const opt = (word: string, v: string | number | undefined): string => (v === undefined ? '' : ` ${word} ${v}`);

/** The line of an operation (pure; throws KernelInputError on a bad value). */
export function renderIpOp(op: IpChange | IpShow): string {
  switch (op.kind) {
    case 'link-add-bridge':
      return `link add name ${name('bridge name', op.name)}${opt('address', op.mac === undefined ? undefined : mac(op.mac))}${opt('mtu', op.mtu === undefined ? undefined : int('mtu', op.mtu, 68, 65535))} type bridge${op.vlanFiltering ? ' vlan_filtering 1' : ''}`;
    case 'link-add-veth': {
      const m = (v: number | undefined) => opt('mtu', v === undefined ? undefined : int('mtu', v, 68, 65535));
      const p = op.peer;
      return (
        `link add name ${name('interface name', op.name)}${m(op.mtu)} type veth peer name ${name('interface name', p.name)}${m(p.mtu)}` +
        `${opt('address', p.mac === undefined ? undefined : mac(p.mac))}${opt('netns', p.netns === undefined ? undefined : netns(p.netns))}`
      );
    }
    case 'link-master':
      return `link set dev ${name('interface name', op.dev)} master ${name('bridge name', op.master)}`;
    case 'link-port': {
      const words = [...(op.hairpin ? ['hairpin on'] : []), ...(op.isolated ? ['isolated on'] : [])];
      if (!words.length) throw new KernelInputError('bridge port setting', op, 'nothing to set');
      return `link set dev ${name('interface name', op.dev)} type bridge_slave ${words.join(' ')}`;
    }
    case 'link-up':
      return `link set dev ${name('interface name', op.dev)} up${op.promisc ? ' promisc on' : ''}`;
    case 'link-address':
      return `link set dev ${name('interface name', op.dev)} address ${mac(op.mac)}`;
    case 'link-del':
      return `link del dev ${name('interface name', op.dev)}`;
    case 'addr-add': {
      const c = cidr(op.cidr);
      return `addr add ${c}${op.broadcast && !c.includes(':') ? ' brd +' : ''} dev ${name('interface name', op.dev)}`;
    }
    case 'addr-del':
      return `addr del ${cidr(op.cidr)} dev ${name('interface name', op.dev)}`;
    case 'route': {
      let line = `route ${op.verb} ${cidr(op.dst)}`;
      if (op.via !== undefined) line += ` via ${ip(op.via)}`;
      if (op.dev !== undefined) line += ` dev ${name('interface name', op.dev)}`;
      if (op.proto !== undefined) line += ` proto ${int('route protocol', op.proto, 0, 255)}`;
      if (op.metric !== undefined) line += ` metric ${int('route metric', op.metric, 0, 0xffffffff)}`;
      if (op.table !== undefined) line += ` table ${op.table === 'main' ? 'main' : int('route table', op.table, 0, 0xffffffff)}`;
      if (op.scope !== undefined) line += ` scope ${int('route scope', op.scope, 0, 255)}`;
      if (op.mtu !== undefined) line += ` mtu ${int('route mtu', op.mtu, 68, 0xffffffff)}`;
      if (op.advmss !== undefined) line += ` advmss ${int('route advmss', op.advmss, 1, 0xffffffff)}`;
      return line;
    }
    case 'addr-show':
      return op.dev === undefined ? 'addr show' : `addr show dev ${name('interface name', op.dev)}`;
    case 'route-show':
      return `route show table ${op.table === 'all' || op.table === 'main' ? op.table : int('route table', op.table, 0, 0xffffffff)}`;
    case 'route-get':
      return `route get ${ip(op.dst)}`;
  }
}

export function renderBridgeOp(op: BridgeChange): string {
  const vid = int('VLAN id', op.vid, 1, 4094);
  return `vlan ${op.verb} dev ${name('interface name', op.dev)} vid ${vid}${op.pvidUntagged ? ' pvid untagged' : ''}${op.master ? ' master' : ''}`;
}

// ----------------------------------------------------------------------------- decoded output

export interface LinkAddr {
  family: Family;
  /** Canonical address/prefix. */
  cidr: string;
  scope: string;
  tentative: boolean;
  dadfailed: boolean;
}

/** One entry of `ip -j -d addr show`, checked: unknown or malformed fields are left out. */
export interface LinkEntry {
  ifindex: number;
  ifname: string;
  mac: string | undefined;
  mtu: number | undefined;
  flags: string[];
  /** Lower case ("up", "down", "unknown", "lowerlayerdown"). */
  operstate: string;
  kind: string | undefined;
  master: string | undefined;
  /** The peer's ifindex (veth), in its own namespace. */
  linkIndex: number | undefined;
  /** `linkinfo.info_data` (bridge: vlan_filtering, vlan_default_pvid, …). */
  info: Readonly<Record<string, unknown>>;
  addrs: LinkAddr[];
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

export function decodeLink(e: unknown): LinkEntry | undefined {
  if (!isObj(e) || typeof e.ifname !== 'string' || typeof e.ifindex !== 'number') return undefined;
  const linkinfo = isObj(e.linkinfo) ? e.linkinfo : {};
  const addrs: LinkAddr[] = [];
  for (const a of Array.isArray(e.addr_info) ? e.addr_info : []) {
    if (!isObj(a) || (a.family !== 'inet' && a.family !== 'inet6') || typeof a.prefixlen !== 'number') continue;
    const c = parseCidr(`${String(a.local)}/${a.prefixlen}`);
    if (!c) continue;
    addrs.push({
      family: c.addr.family,
      cidr: cidrText(c),
      scope: typeof a.scope === 'string' ? a.scope : '',
      tentative: a.tentative === true,
      dadfailed: a.dadfailed === true,
    });
  }
  return {
    ifindex: e.ifindex,
    ifname: e.ifname,
    mac: isMacText(e.address) ? e.address.toLowerCase() : undefined,
    mtu: typeof e.mtu === 'number' ? e.mtu : undefined,
    flags: Array.isArray(e.flags) ? e.flags.filter((f): f is string => typeof f === 'string') : [],
    operstate: typeof e.operstate === 'string' ? e.operstate.toLowerCase() : 'unknown',
    kind: typeof linkinfo.info_kind === 'string' ? linkinfo.info_kind : undefined,
    master: typeof e.master === 'string' ? e.master : undefined,
    linkIndex: typeof e.link_index === 'number' ? e.link_index : undefined,
    info: isObj(linkinfo.info_data) ? linkinfo.info_data : {},
    addrs,
  };
}

// ----------------------------------------------------------------------------- steps and batches

export interface IpError {
  /** The kernel's (or tool's) message, prefixes such as "RTNETLINK answers: " removed. */
  message: string;
  /** The message as iproute2 printed it. */
  raw: string;
  /** "File exists", "already assigned": the object is there already. */
  exists: boolean;
  /** "Cannot find device", "does not exist", "No such process" (a route): the object is not there. */
  notFound: boolean;
}

export function ipError(raw: string): IpError {
  const message = raw
    .split('\n')
    .map((l) => l.replace(/^(RTNETLINK answers|Error): /, ''))
    .join('; ')
    .trim();
  return {
    message,
    raw,
    exists: /File exists|already (exists|assigned)/i.test(raw),
    notFound: /Cannot find device|does not exist|No such device|No such process|not found/i.test(raw),
  };
}

/** The handle of one step: settled when its batch has run. */
export class Step<T> {
  #state: 'pending' | 'ok' | 'failed' = 'pending';
  #value: T | undefined;
  #error: IpError | undefined;

  constructor(readonly line: string) {}

  get ok(): boolean {
    return this.#state === 'ok';
  }

  /** Undefined until run, and when the step succeeded. */
  get error(): IpError | undefined {
    return this.#error;
  }

  /** The step's output; throws its error when it failed (or has not run). */
  get value(): T {
    if (this.#state !== 'ok') throw new Error(`${this.line}: ${this.#error?.message ?? 'not run'}`);
    return this.#value as T;
  }

  /** @internal (IpBatch) */
  settle(ok: boolean, value: T | undefined, error: IpError | undefined): void {
    this.#state = ok ? 'ok' : 'failed';
    this.#value = value;
    this.#error = error;
  }
}

/** A sysctl written inside the target namespace before the batch runs. */
export interface NetnsSysctl {
  /** Path below /proc/sys with '/' separators, e.g. `net/ipv4/conf/eth0/arp_notify`. */
  key: string;
  value: string;
  /** A failed optional write is ignored (e.g. IPv6 compiled out); a required one fails the batch. */
  required?: boolean;
}

export interface BatchOptions {
  /** Run inside this network namespace (a path such as /proc/<pid>/ns/net or /var/run/netns/x). */
  netns?: string | undefined;
  /** Sysctls to write inside `netns` first (same process chain: nsenter → sh → ip). */
  sysctls?: readonly NetnsSysctl[];
  /** Keep going after a failing step (`-force`); without it the first failure stops the rest. */
  force?: boolean;
  /** Numeric protocols, scopes and types (`-N`). */
  numeric?: boolean;
  /** `-4` / `-6` (route show without it lists IPv4 only). */
  family?: Family;
  /** The caller overlaps this batch with other work (RunOptions.background). */
  background?: boolean;
}

/** What a runner gets: rendered, validated lines and the options. */
export interface BatchRequest {
  tool: 'ip' | 'bridge';
  lines: readonly string[];
  opts: Readonly<BatchOptions>;
}

/** The seam: runs one batch as one process. The real one is IprouteCli; tests pass a fake kernel. */
export interface IpRunner {
  exec(req: BatchRequest): Promise<RunResult>;
}

type Entry = { step: Step<unknown>; decode?: (out: unknown) => unknown };

abstract class BaseBatch {
  protected readonly entries: Entry[] = [];
  protected abstract readonly tool: 'ip' | 'bridge';

  constructor(readonly opts: Readonly<BatchOptions> = {}) {
    if (opts.netns !== undefined) netns(opts.netns);
    for (const s of opts.sysctls ?? []) {
      const why = sysctlKeyProblem(s.key);
      if (why) throw new KernelInputError('sysctl key', s.key, why);
      if (!/^[0-9A-Za-z_.-]{1,64}$/.test(s.value)) throw new KernelInputError('sysctl value', s.value, 'not a plain word');
    }
    if (opts.sysctls?.length && (opts.netns === undefined || opts.force)) {
      throw new KernelInputError('batch options', 'sysctls', 'need a netns and no force');
    }
  }

  get lines(): string[] {
    return this.entries.map((e) => e.step.line);
  }

  get size(): number {
    return this.entries.length;
  }

  /** The line of the first step that failed (for messages), once run. */
  failedLine(): string | undefined {
    return this.entries.find((e) => e.step.error !== undefined)?.step.line;
  }

  /** Run the batch (nothing to do when empty); afterwards every step is settled. */
  async run(runner: IpRunner): Promise<BatchOutcome> {
    if (this.entries.length === 0) return { ok: true, error: undefined };
    const r = await runner.exec({ tool: this.tool, lines: this.lines, opts: this.opts });
    return this.settle(r);
  }

  /** Decode a run of this batch into its steps. */
  settle(r: RunResult): BatchOutcome {
    const { failed, rest } = parseBatchStderr(r.stderr);
    const failedAt = new Map(failed.map((f) => [f.line, f.text]));
    const docs: unknown[] = [];
    for (const line of r.stdout.split('\n')) {
      const t = line.trim();
      if (!t) continue;
      try {
        docs.push(JSON.parse(t));
      } catch {
        // a tool printing text: no step reads it
      }
    }
    // Failed before any line ran (nsenter, a required sysctl, a missing binary).
    const before = r.code !== 0 && failed.length === 0 ? ipError(rest.join('\n') || `exit code ${r.code}`) : undefined;
    const lastRun = this.opts.force ? Infinity : (failed[0]?.line ?? Infinity);
    let first: IpError | undefined;
    let doc = 0;
    this.entries.forEach((e, i) => {
      const n = i + 1;
      let error: IpError | undefined;
      if (before) error = before;
      else if (failedAt.has(n)) error = ipError(failedAt.get(n) || 'failed');
      else if (n > lastRun) error = ipError('not run: an earlier step of its batch failed');
      if (error) {
        first ??= error;
        e.step.settle(false, undefined, error);
        return;
      }
      if (!e.decode) {
        e.step.settle(true, undefined, undefined);
        return;
      }
      const out = docs[doc++];
      if (out === undefined) {
        const none = ipError('no output');
        first ??= none;
        e.step.settle(false, undefined, none);
        return;
      }
      e.step.settle(true, e.decode(out), undefined);
    });
    return { ok: first === undefined, error: first };
  }

  protected push<T>(line: string, decode?: (out: unknown) => T): Step<T> {
    const step = new Step<T>(line);
    this.entries.push(decode ? { step, decode } : { step });
    return step;
  }
}

export interface BatchOutcome {
  ok: boolean;
  /** The first failure, for a message when the caller does not look at each step. */
  error: IpError | undefined;
}

const list = (out: unknown): Obj[] => (Array.isArray(out) ? out.filter(isObj) : []);

export class IpBatch extends BaseBatch {
  protected readonly tool = 'ip' as const;

  /** A change; its value is nothing, its error the kernel's answer. */
  add(op: IpChange): Step<void> {
    return this.push<void>(renderIpOp(op));
  }

  /** `addr show dev X`: the link with its addresses and details (undefined when not decodable). */
  link(dev: string): Step<LinkEntry | undefined> {
    return this.push(renderIpOp({ kind: 'addr-show', dev }), (out) => decodeLink(list(out)[0]));
  }

  /** `addr show`: every link of the namespace. */
  links(): Step<LinkEntry[]> {
    return this.push(renderIpOp({ kind: 'addr-show' }), (out) => list(out).map(decodeLink).filter((l): l is LinkEntry => l !== undefined));
  }

  /** `route show table T` or `route get IP`: iproute2's JSON objects, for the caller to check. */
  routes(op: Extract<IpShow, { kind: 'route-show' | 'route-get' }>): Step<Obj[]> {
    return this.push(renderIpOp(op), list);
  }
}

export class BridgeBatch extends BaseBatch {
  protected readonly tool = 'bridge' as const;

  add(op: BridgeChange): Step<void> {
    return this.push<void>(renderBridgeOp(op));
  }
}

/**
 * stderr of `ip -batch` / `ip -force -batch` / `bridge -batch`: iproute2 prints a failing line's
 * errors, then `Command failed -:N`. Returns each failed line with its error text, and the
 * error lines no trailer claimed (a failure before any line ran).
 */
export function parseBatchStderr(stderr: string): { failed: { line: number; text: string }[]; rest: string[] } {
  const failed: { line: number; text: string }[] = [];
  let pending: string[] = [];
  for (const raw of stderr.split('\n')) {
    const line = raw.trim();
    if (!line) continue;
    const m = /^Command failed (?:-|\S+):(\d+)$/.exec(line);
    if (m) {
      failed.push({ line: Number(m[1]), text: pending.join('\n') });
      pending = [];
    } else {
      pending.push(line);
    }
  }
  return { failed, rest: pending };
}

// ----------------------------------------------------------------------------- the real runner

/** Exit code the sysctl prelude uses when a required write fails. */
const SYSCTL_FAILED = 97;

/**
 * The prelude run by `sh` inside the namespace: /proc/sys/net is per network namespace, so a
 * process that entered the pod's namespace writes the pod's sysctls. Arguments are
 * `<key>=<value>` pairs, optional ones first, then `--`, then required ones; the ip binary is the
 * first argument. Keys and values never reach the script text (only the fixed ip flags do).
 */
const prelude = (ipFlags: readonly string[]): string =>
  [
    'ipbin=$1; shift; req=',
    'for a do',
    '  if [ "$a" = -- ]; then req=1; continue; fi',
    '  k=${a%%=*}; v=${a#*=}',
    '  if ! { printf "%s\\n" "$v" >"/proc/sys/$k"; } 2>/dev/null; then',
    `    if [ -n "$req" ]; then echo "failed to write sysctl $k" >&2; exit ${SYSCTL_FAILED}; fi`,
    '  fi',
    'done',
    `exec "$ipbin" ${ipFlags.join(' ')}`,
  ].join('\n');

/** iproute2 through processes: one per batch (nsenter → [sh →] ip inside another namespace). */
export class IprouteCli implements IpRunner {
  constructor(private readonly runner: Runner = processRunner) {}

  exec(req: BatchRequest): Promise<RunResult> {
    const o = req.opts;
    const flags =
      req.tool === 'ip'
        ? ['-j', '-d', ...(o.numeric ? ['-N'] : []), ...(o.family ? [`-${o.family}`] : []), ...(o.force ? ['-force'] : []), '-batch', '-']
        : [...(o.force ? ['-force'] : []), '-batch', '-'];
    const runOpts = { input: req.lines.length ? `${req.lines.join('\n')}\n` : '', ...(o.background ? { background: true } : {}) };
    if (o.netns === undefined) return this.runner.run(req.tool, flags, runOpts);
    const enter = [`--net=${netns(o.netns)}`, '--'];
    if (!o.sysctls?.length) return this.runner.run('nsenter', [...enter, binaryPath(req.tool), ...flags], runOpts);
    const optional = o.sysctls.filter((s) => !s.required).map((s) => `${s.key}=${s.value}`);
    const required = o.sysctls.filter((s) => s.required).map((s) => `${s.key}=${s.value}`);
    const args = [...enter, binaryPath('sh'), '-c', prelude(flags), 'sh', binaryPath(req.tool), ...optional, '--', ...required];
    return this.runner.run('nsenter', args, runOpts);
  }
}


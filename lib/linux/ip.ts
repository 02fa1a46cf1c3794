import { type RunResult, binary, run } from './exec.js';

/**
 * iproute2 on the plugin path: every change is a line of one `ip -batch -` run, so a whole step
 * costs one process. Show commands in a batch (`addr show dev X`) print one JSON array per line
 * (`-j -d`), returned in order as `outputs`. A batch without `force` stops at the first failing
 * line; `failures` says which line failed and why, so a caller knows exactly what was done.
 *
 * Note (iproute2 6.1): in one batch, `addr show` after `link show` prints no addresses, so
 * callers use `addr show` (which with `-d` carries the link details too) for every read.
 */
export interface IpFailure {
  /** 1-based line of the batch. */
  line: number;
  message: string;
}

export interface IpBatchResult {
  ok: boolean;
  /** One decoded JSON array per show command, in order. */
  outputs: Record<string, unknown>[][];
  failures: IpFailure[];
  /** Everything the process wrote to stderr (for messages when `failures` is empty). */
  stderr: string;
  code: number;
}

/** A sysctl written inside the target namespace before the batch runs. */
export interface NetnsSysctl {
  /** Path below /proc/sys with '/' separators, e.g. `net/ipv4/conf/eth0/arp_notify`. */
  key: string;
  value: string;
  /** A failed optional write is ignored (e.g. IPv6 compiled out); a required one fails the step. */
  required?: boolean;
}

export interface IpBatchOptions {
  /** Run inside this network namespace (a path such as /proc/<pid>/ns/net or /var/run/netns/x). */
  netns?: string;
  /** Sysctls to write inside `netns` first (same process chain: nsenter → sh → ip). */
  sysctls?: readonly NetnsSysctl[];
  /** Keep going after a failing line (`ip -force`). */
  force?: boolean;
}

/** The seam: bridge code talks to this; tests pass a fake that records the lines. */
export interface IpRunner {
  batch(lines: readonly string[], opts?: IpBatchOptions): Promise<IpBatchResult>;
  /** `bridge -batch -` (VLAN filtering entries have no `ip` equivalent). */
  bridgeBatch(lines: readonly string[], opts?: { force?: boolean }): Promise<IpBatchResult>;
}

/** Exit code the sysctl prelude uses when a required write fails. */
const SYSCTL_FAILED = 97;

/**
 * The prelude run by `sh` inside the namespace: /proc/sys/net is per network namespace, so a
 * process that entered the pod's namespace writes the pod's sysctls. Arguments are
 * `<key>=<value>` pairs, optional ones first, then `--`, then required ones; the ip binary is $0's
 * first argument. Values never reach the script text, so nothing can be injected.
 */
const PRELUDE = [
  'ipbin=$1; shift; req=',
  'for a do',
  '  if [ "$a" = -- ]; then req=1; continue; fi',
  '  k=${a%%=*}; v=${a#*=}',
  '  if ! { printf "%s\\n" "$v" >"/proc/sys/$k"; } 2>/dev/null; then',
  '    if [ -n "$req" ]; then echo "failed to write sysctl $k" >&2; exit ' + SYSCTL_FAILED + '; fi',
  '  fi',
  'done',
  'exec "$ipbin" -j -d -batch -',
].join('\n');

export class IprouteCli implements IpRunner {
  async batch(lines: readonly string[], opts: IpBatchOptions = {}): Promise<IpBatchResult> {
    const ip = binary('ip');
    const ipArgs = ['-j', '-d', ...(opts.force ? ['-force'] : []), '-batch', '-'];
    let file = ip;
    let args: string[] = ipArgs;
    if (opts.netns !== undefined) {
      file = binary('nsenter');
      const enter = [`--net=${opts.netns}`, '--'];
      if (opts.sysctls?.length) {
        if (opts.force) throw new Error('force is not supported together with sysctls');
        const optional = opts.sysctls.filter((s) => !s.required).map((s) => `${s.key}=${s.value}`);
        const required = opts.sysctls.filter((s) => s.required).map((s) => `${s.key}=${s.value}`);
        args = [...enter, binary('sh'), '-c', PRELUDE, 'sh', ip, ...optional, '--', ...required];
      } else {
        args = [...enter, ip, ...ipArgs];
      }
    }
    return decodeBatch(await run(file, args, { input: batchText(lines) }));
  }

  async bridgeBatch(lines: readonly string[], opts: { force?: boolean } = {}): Promise<IpBatchResult> {
    const args = [...(opts.force ? ['-force'] : []), '-batch', '-'];
    return decodeBatch(await run(binary('bridge'), args, { input: batchText(lines) }));
  }
}

const batchText = (lines: readonly string[]): string => (lines.length ? `${lines.join('\n')}\n` : '');

/** Turn an `ip -batch` run into outputs and per-line failures. */
export function decodeBatch(r: RunResult): IpBatchResult {
  const outputs: Record<string, unknown>[][] = [];
  for (const line of r.stdout.split('\n')) {
    const t = line.trim();
    if (!t) continue;
    try {
      const v = JSON.parse(t) as unknown;
      outputs.push(Array.isArray(v) ? (v as Record<string, unknown>[]) : []);
    } catch {
      // not JSON (a tool printing text): ignore
    }
  }
  const { failed, rest } = parseBatchStderr(r.stderr);
  const failures: IpFailure[] = failed.map((f) => ({ line: f.line, message: cleanMessage(f.lines) }));
  if (r.code !== 0 && failures.length === 0) {
    // Failed before running any line (bad argument, missing binary, nsenter or sysctl failure).
    failures.push({ line: 0, message: cleanMessage(rest) || `exit code ${r.code}` });
  }
  return { ok: r.code === 0 && failures.length === 0, outputs, failures, stderr: r.stderr, code: r.code };
}

/**
 * stderr of `ip -batch` (also `ip -force -batch`, `bridge -batch`): iproute2 prints a failing
 * line's errors, then `Command failed -:N`. Returns each failed line with its error lines, and the
 * error lines that no trailer claimed (a failure before any line ran). Shared with the daemon.
 */
export function parseBatchStderr(stderr: string): { failed: { line: number; lines: string[] }[]; rest: string[] } {
  const failed: { line: number; lines: string[] }[] = [];
  let pending: string[] = [];
  for (const raw of stderr.split('\n')) {
    const line = raw.trim();
    if (!line) continue;
    const m = /^Command failed (?:-|\S+):(\d+)$/.exec(line);
    if (m) {
      failed.push({ line: Number(m[1]), lines: pending });
      pending = [];
    } else {
      pending.push(line);
    }
  }
  return { failed, rest: pending };
}

function cleanMessage(lines: string[]): string {
  return lines
    .map((l) => l.replace(/^(RTNETLINK answers|Error): /, ''))
    .join('; ')
    .trim();
}

/** Does an error message say the object already exists / does not exist? */
export const isExists = (message: string): boolean => /File exists|already (exists|assigned)/i.test(message);
export const isNotFound = (message: string): boolean =>
  /Cannot find device|does not exist|No such device|not found/i.test(message);

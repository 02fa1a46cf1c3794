import { execa } from 'execa';
import { CommandError, type RunResult } from './exec.js';
import { parseBatchStderr } from './ip.js';

/**
 * Asynchronous process runner for the long-running daemon (podnet-routesync), built on execa.
 * Plugins use exec.ts's `run` (bare child_process, no execa start-up cost); the daemon must never block
 * its event loop (watch stream, /metrics) while `ip` or `nft` runs.
 *
 * `wrap` prefixes every command, e.g. `['ip', 'netns', 'exec', 'node1']`, so tests can drive
 * a node namespace from a process that stays in the root namespace.
 */
export interface AsyncRunner {
  run(file: string, args: readonly string[], opts?: { input?: string; timeout?: number }): Promise<RunResult>;
}

export function createAsyncRunner(opts: { wrap?: readonly string[] } = {}): AsyncRunner {
  const wrap = opts.wrap ?? [];
  return {
    async run(file, args, runOpts = {}) {
      const [cmd, ...pre] = wrap.length ? [...wrap, file] : [file];
      const r = await execa(cmd as string, [...pre, ...args], {
        input: runOpts.input ?? '',
        reject: false,
        timeout: runOpts.timeout ?? 60_000,
        stripFinalNewline: false,
        maxBuffer: 256 * 1024 * 1024,
      });
      if (r.exitCode === undefined) {
        const code = (r as { code?: string }).code === 'ENOENT' ? 127 : 126;
        return { code, stdout: String(r.stdout ?? ''), stderr: `${file}: ${r.message}` };
      }
      return { code: r.exitCode, stdout: String(r.stdout), stderr: String(r.stderr) };
    },
  };
}

/** Run and throw CommandError (stderr in the message) unless the command exits 0. */
export async function runChecked(
  runner: AsyncRunner,
  file: string,
  args: readonly string[],
  opts: { input?: string; timeout?: number } = {},
): Promise<string> {
  const r = await runner.run(file, args, opts);
  if (r.code !== 0) throw new CommandError(`${file} ${args.join(' ')}`.slice(0, 200), r);
  return r.stdout;
}

/** `ip -j <args>`, decoded (an empty output is an empty list). */
export async function ipJson<T>(runner: AsyncRunner, args: readonly string[]): Promise<T> {
  const out = await runChecked(runner, 'ip', ['-j', ...args]);
  return (out.trim() ? JSON.parse(out) : []) as T;
}

export interface IpBatchResult {
  /** stdout of the whole batch (with `json`, one JSON document per command that printed one). */
  stdout: string;
  /** 1-based line number of each command that failed → its error text. */
  failures: Map<number, string>;
}

/**
 * Run many `ip` commands in one process: `ip -force -batch -` (with `-force` a failing line does
 * not stop the rest). Failures are mapped back to their line through iproute2's
 * `Command failed -:N` trailer, with the error lines printed just before it.
 */
export async function ipBatch(
  runner: AsyncRunner,
  lines: readonly string[],
  opts: { json?: boolean; numeric?: boolean } = {},
): Promise<IpBatchResult> {
  if (lines.length === 0) return { stdout: '', failures: new Map() };
  const flags = [...(opts.json ? ['-j'] : []), ...(opts.numeric ? ['-N'] : []), '-force', '-batch', '-'];
  const r = await runner.run('ip', flags, { input: `${lines.join('\n')}\n` });
  const failures = parseBatchFailures(r.stderr);
  if (r.code !== 0 && failures.size === 0) {
    throw new CommandError(`ip ${flags.join(' ')}`, r);
  }
  return { stdout: r.stdout, failures };
}

/** stderr of `ip -force -batch` → line number → error text (iproute2's own wording). */
export function parseBatchFailures(stderr: string): Map<number, string> {
  return new Map(parseBatchStderr(stderr).failed.map((f) => [f.line, f.lines.join('; ') || 'failed']));
}

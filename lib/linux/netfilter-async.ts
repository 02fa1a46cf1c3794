import type { RunResult } from './exec.js';
import { type AsyncRunner, runChecked } from './ip-async.js';

/**
 * nftables and iptables for the daemon (asynchronous, see ip-async.ts). Every change is one
 * transaction: `nft -f -` applies a whole script atomically, `iptables-restore --noflush`
 * replaces a chain atomically.
 */

/** Apply an nft script in one transaction. */
export async function nftApply(runner: AsyncRunner, script: string): Promise<void> {
  await runChecked(runner, 'nft', ['-f', '-'], { input: script });
}

/** `nft -j <args>` decoded; undefined when the object does not exist. */
export async function nftJson(runner: AsyncRunner, args: readonly string[]): Promise<unknown[] | undefined> {
  const r = await runner.run('nft', ['-j', ...args]);
  if (r.code !== 0) {
    if (/No such file or directory|does not exist/i.test(r.stderr)) return undefined;
    throw new Error(`failed to list nftables "${args.join(' ')}": ${r.stderr.trim() || `exit code ${r.code}`}`);
  }
  const doc = JSON.parse(r.stdout) as { nftables?: unknown[] };
  return doc.nftables ?? [];
}

/** Does `nft` work here (binary present, kernel has nf_tables, we may use it)? */
export async function nftUsable(runner: AsyncRunner): Promise<RunResult> {
  return runner.run('nft', ['list', 'tables']);
}

export type IpFamilyTool = 'iptables' | 'ip6tables';

export async function iptablesRestore(runner: AsyncRunner, tool: IpFamilyTool, input: string): Promise<void> {
  await runChecked(runner, `${tool}-restore`, ['--noflush', '-w', '5'], { input });
}

/** `iptables -w 5 <args>`; returns the exit code (1 from `-C` means "no such rule"). */
export async function iptables(runner: AsyncRunner, tool: IpFamilyTool, args: readonly string[]): Promise<RunResult> {
  return runner.run(tool, ['-w', '5', ...args]);
}

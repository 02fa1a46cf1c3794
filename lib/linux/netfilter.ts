import type { Family } from '../addr/addr.js';
import { type RunResult, type Runner, findBinary, processRunner, runChecked } from './exec.js';

/**
 * nftables and iptables for the whole tree, over the one process runner. One `nft -f -` run is
 * one atomic transaction; one `iptables-restore --noflush` run is atomic for its table. The
 * bridge talks to the `Netfilter` seam (NetfilterCli here, a fake in unit tests); the daemon
 * calls the functions with its runner.
 */
export interface NftRule {
  family: string;
  table: string;
  chain: string;
  handle: number;
  comment?: string;
  expr?: unknown[];
}

export type IpFamily = Family;
export type IptablesTool = 'iptables' | 'ip6tables';

export const iptablesTool = (family: IpFamily): IptablesTool => (family === 4 ? 'iptables' : 'ip6tables');

/** Apply an nft script in one transaction; throws CommandError unless it applies. */
export async function nftApply(runner: Runner, script: string): Promise<void> {
  await runChecked(runner, 'nft', ['-f', '-'], { input: script });
}

/** `nft -j <args>` decoded; undefined when the object does not exist. */
export async function nftJson(runner: Runner, args: readonly string[]): Promise<unknown[] | undefined> {
  const r = await runner.run('nft', ['-j', ...args]);
  if (r.code !== 0) {
    if (/No such file or directory|does not exist/i.test(r.stderr)) return undefined;
    throw new Error(`failed to list nftables "${args.join(' ')}": ${r.stderr.trim() || `exit code ${r.code}`}`);
  }
  const doc = JSON.parse(r.stdout) as { nftables?: unknown };
  return Array.isArray(doc.nftables) ? doc.nftables : [];
}

/** Does `nft` work here (binary present, kernel has nf_tables, we may use it)? */
export function nftUsable(runner: Runner): Promise<RunResult> {
  return runner.run('nft', ['list', 'tables']);
}

/** `iptables-restore --noflush -w 5` (or ip6tables-restore); throws unless it applies. */
export async function iptablesRestore(runner: Runner, tool: IptablesTool, input: string): Promise<void> {
  await runChecked(runner, `${tool}-restore`, ['--noflush', '-w', '5'], { input });
}

/** `iptables -w 5 <args>`; returns the outcome (exit 1 from `-C` means "no such rule"). */
export function iptables(runner: Runner, tool: IptablesTool, args: readonly string[]): Promise<RunResult> {
  return runner.run(tool, ['-w', '5', ...args]);
}

/** The rules of an `nft -j list …` document's items. */
export function parseNftRules(items: readonly unknown[]): NftRule[] {
  const rules: NftRule[] = [];
  for (const item of items as Record<string, unknown>[]) {
    const r = item?.rule as Record<string, unknown> | undefined;
    if (!r || typeof r.handle !== 'number') continue;
    const rule: NftRule = { family: String(r.family), table: String(r.table), chain: String(r.chain), handle: r.handle };
    if (typeof r.comment === 'string') rule.comment = r.comment;
    if (Array.isArray(r.expr)) rule.expr = r.expr;
    rules.push(rule);
  }
  return rules;
}

/** Quote a string for an nft script (comments): no quotes, backslashes or newlines inside. */
export const nftQuote = (s: string): string => `"${s.replace(/["\\\n\r]/g, '')}"`;

/** The seam for the bridge's firewall work; tests pass a fake holding rules in memory. */
export interface Netfilter {
  hasNft(): boolean;
  hasIptables(family: IpFamily): boolean;
  /** Apply an nft script in one transaction; the outcome, never a rejection. */
  nftApply(script: string): Promise<RunResult>;
  /** Rules of one table; undefined when the table does not exist. */
  nftListTable(family: string, table: string): Promise<NftRule[] | undefined>;
  /** `iptables-save -t nat` (or ip6tables-save). */
  iptablesSaveNat(family: IpFamily): Promise<RunResult>;
  /** `iptables-restore --noflush -w 5` (or ip6tables-restore); the outcome, never a rejection. */
  iptablesRestore(family: IpFamily, script: string): Promise<RunResult>;
}

export class NetfilterCli implements Netfilter {
  constructor(private readonly runner: Runner = processRunner) {}

  hasNft(): boolean {
    return findBinary('nft') !== undefined;
  }

  hasIptables(family: IpFamily): boolean {
    return findBinary(`${iptablesTool(family)}-restore`) !== undefined;
  }

  nftApply(script: string): Promise<RunResult> {
    return this.runner.run('nft', ['-f', '-'], { input: script });
  }

  async nftListTable(family: string, table: string): Promise<NftRule[] | undefined> {
    const items = await nftJson(this.runner, ['list', 'table', family, table]);
    return items === undefined ? undefined : parseNftRules(items);
  }

  iptablesSaveNat(family: IpFamily): Promise<RunResult> {
    return this.runner.run(`${iptablesTool(family)}-save`, ['-t', 'nat']);
  }

  iptablesRestore(family: IpFamily, script: string): Promise<RunResult> {
    return this.runner.run(`${iptablesTool(family)}-restore`, ['--noflush', '-w', '5'], { input: script });
  }
}

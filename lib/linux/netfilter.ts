import { type RunResult, binary, findBinary, run } from './exec.js';

/**
 * nftables and iptables on the plugin path (the daemon has its own, execa-based, in
 * netfilter-async.ts). One `nft -f -` run is one atomic transaction; one `iptables-restore
 * --noflush` run is atomic for its table.
 */
export interface NftRule {
  family: string;
  table: string;
  chain: string;
  handle: number;
  comment?: string;
  expr?: unknown[];
}

export type IpFamily = 4 | 6;

/** The seam for everything firewall; tests pass a fake holding rules in memory. */
export interface Netfilter {
  hasNft(): boolean;
  hasIptables(family: IpFamily): boolean;
  /** Apply an nft script in one transaction. */
  nftApply(script: string): Promise<RunResult>;
  /** Rules of one table; undefined when the table does not exist. */
  nftListTable(family: string, table: string): Promise<NftRule[] | undefined>;
  /** `iptables-save -t nat` (or ip6tables-save). */
  iptablesSaveNat(family: IpFamily): Promise<RunResult>;
  /** `iptables-restore -w --noflush` (or ip6tables-restore). */
  iptablesRestore(family: IpFamily, script: string): Promise<RunResult>;
}

const ipt = (family: IpFamily, tool: 'save' | 'restore'): string => `${family === 4 ? 'iptables' : 'ip6tables'}-${tool}`;

export class NetfilterCli implements Netfilter {
  hasNft(): boolean {
    return findBinary('nft') !== undefined;
  }

  hasIptables(family: IpFamily): boolean {
    return findBinary(ipt(family, 'restore')) !== undefined;
  }

  nftApply(script: string): Promise<RunResult> {
    return run(binary('nft'), ['-f', '-'], { input: script });
  }

  async nftListTable(family: string, table: string): Promise<NftRule[] | undefined> {
    const r = await run(binary('nft'), ['-j', 'list', 'table', family, table]);
    if (r.code !== 0) {
      if (/No such file or directory|does not exist/i.test(r.stderr)) return undefined;
      throw new Error(`failed to list nftables table "${family} ${table}": ${r.stderr.trim() || `exit code ${r.code}`}`);
    }
    return parseNftRules(r.stdout);
  }

  iptablesSaveNat(family: IpFamily): Promise<RunResult> {
    return run(binary(ipt(family, 'save')), ['-t', 'nat']);
  }

  iptablesRestore(family: IpFamily, script: string): Promise<RunResult> {
    return run(binary(ipt(family, 'restore')), ['-w', '--noflush'], { input: script });
  }
}

/** The rules of an `nft -j list …` document. */
export function parseNftRules(json: string): NftRule[] {
  const doc = JSON.parse(json) as { nftables?: Record<string, unknown>[] };
  const rules: NftRule[] = [];
  for (const item of doc.nftables ?? []) {
    const r = item.rule as Record<string, unknown> | undefined;
    if (!r) continue;
    const rule: NftRule = {
      family: String(r.family),
      table: String(r.table),
      chain: String(r.chain),
      handle: Number(r.handle),
    };
    if (typeof r.comment === 'string') rule.comment = r.comment;
    if (Array.isArray(r.expr)) rule.expr = r.expr;
    rules.push(rule);
  }
  return rules;
}

/** Quote a string for an nft script (comments): no quotes or backslashes inside. */
export const nftQuote = (s: string): string => `"${s.replace(/["\\\n]/g, '')}"`;

import { describe, expect, it } from 'vitest';
import type { Runner as AsyncRunner } from '../../../lib/linux/exec.js';
import { IptablesMasq, NftMasq, calcIptablesRestore, calcNftScript, readNftState, selectMasq } from '../../../routesync/reconcile-masq.js';

/** A runner that records commands and answers from a script of results. */
function recorder(answer: (file: string, args: readonly string[], input?: string) => { code: number; stdout?: string; stderr?: string }) {
  const calls: { file: string; args: string[]; input: string | undefined }[] = [];
  const runner: AsyncRunner = {
    async run(file, args, opts = {}) {
      const input = opts.input === undefined ? undefined : String(opts.input);
      calls.push({ file, args: [...args], input });
      const a = answer(file, args, input);
      return { code: a.code, stdout: a.stdout ?? '', stderr: a.stderr ?? '' };
    },
  };
  return { runner, calls };
}

describe('nftables script', () => {
  it('replaces its own table in one transaction, with both sets and one rule per family', () => {
    const s = calcNftScript({ v4: ['10.244.0.0/24', '10.244.1.0/24'], v6: [] });
    expect(s.split('\n').slice(0, 3)).toEqual(['table inet podnet-routesync', 'delete table inet podnet-routesync', 'table inet podnet-routesync {']);
    expect(s).toContain('elements = { 10.244.0.0/24, 10.244.1.0/24 }');
    expect(s).toMatch(/set pod-cidrs-v6 \{\n\s+type ipv6_addr\n\s+flags interval\n\s+\}/);
    expect(s).toContain('type nat hook postrouting priority srcnat; policy accept;');
    expect(s).toContain('ip saddr @pod-cidrs-v4 ip daddr != @pod-cidrs-v4 masquerade');
    expect(s).toContain('ip6 saddr @pod-cidrs-v6 ip6 daddr != @pod-cidrs-v6 masquerade');
  });

  it('reads back set elements from nft -j', () => {
    const doc = [
      { set: { name: 'pod-cidrs-v4', elem: ['10.9.9.9', { prefix: { addr: '10.244.0.0', len: 24 } }] } },
      { set: { name: 'pod-cidrs-v6' } },
      { chain: { name: 'postrouting', hook: 'postrouting' } },
      { rule: { chain: 'postrouting' } },
      { rule: { chain: 'postrouting' } },
    ];
    expect(readNftState(doc)).toEqual({ v4: ['10.244.0.0/24', '10.9.9.9/32'], v6: [], rules: 2, chain: true });
  });

  it('applies only when the set changes, and re-applies when verification finds drift', async () => {
    let listed: unknown[] | undefined;
    const { runner, calls } = recorder((_file, args) => {
      if (args.includes('-j')) return listed ? { code: 0, stdout: JSON.stringify({ nftables: listed }) } : { code: 1, stderr: 'Error: No such file or directory' };
      return { code: 0 };
    });
    const m = new NftMasq(runner);
    expect((await m.ensure({ v4: ['10.244.0.0/24'], v6: [] }, false)).changed).toBe(true);
    expect((await m.ensure({ v4: ['10.244.0.0/24'], v6: [] }, false)).changed).toBe(false);
    expect(calls.filter((c) => c.args[0] === '-f')).toHaveLength(1);
    // Verify: the table was removed by hand → applied again.
    listed = undefined;
    expect((await m.ensure({ v4: ['10.244.0.0/24'], v6: [] }, true)).changed).toBe(true);
    // Verify: kernel matches → nothing applied.
    listed = [
      { set: { name: 'pod-cidrs-v4', elem: [{ prefix: { addr: '10.244.0.0', len: 24 } }] } },
      { chain: { name: 'postrouting', hook: 'postrouting' } },
      { rule: { chain: 'postrouting' } },
      { rule: { chain: 'postrouting' } },
    ];
    expect((await m.ensure({ v4: ['10.244.0.0/24'], v6: [] }, true)).changed).toBe(false);
    expect((await m.ensure({ v4: ['10.244.0.0/24', '10.244.1.0/24'], v6: [] }, false)).changed).toBe(true);
    expect(calls.filter((c) => c.args[0] === '-f')).toHaveLength(3);
  });

  it('names the table in an apply error', async () => {
    const { runner } = recorder(() => ({ code: 1, stderr: 'Error: Could not process rule: Operation not permitted' }));
    await expect(new NftMasq(runner).ensure({ v4: [], v6: [] }, false)).rejects.toThrow(/^failed to apply nftables table "inet podnet-routesync": nft -f -: Error: Could not process rule/);
  });
});

describe('iptables fallback', () => {
  it('renders a chain replacement: RETURN for pod destinations, then MASQUERADE for pod sources', () => {
    expect(calcIptablesRestore(['10.244.0.0/24', '10.244.1.0/24']).split('\n')).toEqual([
      '*nat',
      ':PODNET-MASQ - [0:0]',
      '-A PODNET-MASQ -d 10.244.0.0/24 -j RETURN',
      '-A PODNET-MASQ -d 10.244.1.0/24 -j RETURN',
      '-A PODNET-MASQ -s 10.244.0.0/24 -m comment --comment "podnet-routesync: masquerade pod traffic leaving the cluster pod CIDRs" -j MASQUERADE',
      '-A PODNET-MASQ -s 10.244.1.0/24 -m comment --comment "podnet-routesync: masquerade pod traffic leaving the cluster pod CIDRs" -j MASQUERADE',
      'COMMIT',
      '',
    ]);
  });

  it('restores both families and adds the POSTROUTING jump only when missing', async () => {
    const { runner, calls } = recorder((file, args) => (args.includes('-C') ? { code: file === 'iptables' ? 0 : 1 } : { code: 0 }));
    await new IptablesMasq(runner).ensure({ v4: ['10.244.0.0/24'], v6: ['fd00::/64'] }, false);
    expect(calls.map((c) => `${c.file} ${c.args.slice(0, 6).join(' ')}`)).toEqual([
      'iptables-restore --noflush -w 5',
      'iptables -w 5 -t nat -C POSTROUTING',
      'ip6tables-restore --noflush -w 5',
      'ip6tables -w 5 -t nat -C POSTROUTING',
      'ip6tables -w 5 -t nat -A POSTROUTING',
    ]);
    expect(calls[2]?.input).toContain('-A PODNET-MASQ -d fd00::/64 -j RETURN');
  });
});

describe('selectMasq', () => {
  it('auto picks nftables when nft works, iptables when it does not', async () => {
    expect((await selectMasq('auto', recorder(() => ({ code: 0 })).runner)).backend).toBe('nftables');
    expect((await selectMasq('auto', recorder(() => ({ code: 127 })).runner)).backend).toBe('iptables');
    expect((await selectMasq('none', recorder(() => ({ code: 0 })).runner)).backend).toBe('none');
  });
});

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { helpText, parseDuration, parseFlags } from '../../../routesync/flags.js';
import { REPO_ROOT } from '../../helpers/env.js';

describe('parseFlags', () => {
  it('defaults, with the node name from NODE_NAME', () => {
    const r = parseFlags([], { NODE_NAME: 'kind-worker' });
    expect(r).toMatchObject({
      ok: true,
      options: {
        nodeName: 'kind-worker',
        cniConfDir: '/etc/cni/net.d',
        masquerade: 'auto',
        routeProtocol: 112,
        metricsAddr: '0.0.0.0:9646',
        resyncMs: 30_000,
        once: false,
        writeConflist: true,
        brNetfilter: true,
        sysctlRoot: '/proc/sys',
      },
    });
  });

  it('both --flag value and --flag=value; booleans with and without a value', () => {
    const r = parseFlags(
      ['--node-name', 'n1', '--kubeconfig=/k', '--resync-interval', '500ms', '--once', '--write-conflist=false', '--masquerade', 'none', '--metrics-addr=', '--route-protocol=200'],
      {},
    );
    expect(r).toMatchObject({ ok: true, options: { nodeName: 'n1', kubeconfig: '/k', resyncMs: 500, once: true, writeConflist: false, masquerade: 'none', metricsAddr: '', routeProtocol: 200 } });
  });

  it.each([
    [[], 'no node name: pass --node-name NAME or set NODE_NAME'],
    [['--node-name', 'a', '--bogus'], 'unknown flag "--bogus"'],
    [['--node-name', 'a', 'stray'], 'unexpected argument "stray"'],
    [['--node-name'], '--node-name needs a value'],
    [['--node-name', 'a', '--masquerade', 'ipvs'], '--masquerade: must be auto, nftables, iptables or none'],
    [['--node-name', 'a', '--route-protocol', '2'], "--route-protocol: must be 5..255 (0-4 are the kernel's own)"],
    [['--node-name', 'a', '--resync-interval', 'soon'], '--resync-interval: "soon" is not a positive duration'],
    [['--node-name', 'a', '--once=maybe'], '--once: "maybe" is not true or false'],
    [['--node-name', 'a', '--kubeconfig', 'k', '--nodes-file', 'f'], '--kubeconfig and --nodes-file exclude each other'],
  ])('%j → %s', (argv, error) => {
    expect(parseFlags(argv, {})).toEqual({ ok: false, error });
  });

  it('--help needs nothing else', () => {
    expect(parseFlags(['--help'], {})).toMatchObject({ ok: true, options: { help: true } });
    expect(parseFlags(['-h'], {})).toMatchObject({ ok: true, options: { help: true } });
  });

  it('--cluster-cidr: a comma list, repeatable, v4 and v6, canonicalised; not given → not enforced', () => {
    expect(parseFlags(['--node-name=a'], {})).toMatchObject({ ok: true, options: { clusterCidrs: [] } });
    expect(parseFlags(['--node-name=a', '--cluster-cidr', '10.244.0.0/16,FD00:10:244::/56'], {})).toMatchObject({ ok: true, options: { clusterCidrs: ['10.244.0.0/16', 'fd00:10:244::/56'] } });
    expect(parseFlags(['--node-name=a', '--cluster-cidr=10.244.0.0/16', '--cluster-cidr=fd00:10:244::/56'], {})).toMatchObject({ ok: true, options: { clusterCidrs: ['10.244.0.0/16', 'fd00:10:244::/56'] } });
  });

  it.each([
    [['--cluster-cidr', '10.244.0.1/16'], '--cluster-cidr: "10.244.0.1/16" has host bits set'],
    [['--cluster-cidr', '10.244.0.0/16,'], '--cluster-cidr: "10.244.0.0/16," has an empty item'],
    [['--cluster-cidr', '0.0.0.0/0'], '--cluster-cidr: "0.0.0.0/0" is not a pod network (it overlaps the unspecified ("this network") range 0.0.0.0/8)'],
    [['--cluster-cidr', '224.0.0.0/4'], '--cluster-cidr: "224.0.0.0/4" is not a pod network (it overlaps multicast 224.0.0.0/4)'],
    [['--cluster-cidr'], '--cluster-cidr needs a value'],
  ])('%j → %s', (argv, error) => {
    expect(parseFlags(['--node-name', 'a', ...argv], {})).toEqual({ ok: false, error });
  });
});

describe('helpText', () => {
  it('documents every flag the parser knows', () => {
    const text = helpText();
    for (const flag of ['node-name', 'kubeconfig', 'nodes-file', 'cluster-cidr', 'cni-conf-dir', 'cni-bin-dir', 'conflist-template', 'write-conflist', 'masquerade', 'sysctl-root', 'br-netfilter', 'route-protocol', 'metrics-addr', 'resync-interval', 'nodes-file-poll', 'list-page-size', 'once', 'log-level', 'help']) {
      expect(text).toContain(`--${flag}`);
      expect(parseFlags(['--node-name', 'x', `--${flag}`], {})).not.toEqual({ ok: false, error: `unknown flag "--${flag}"` });
    }
  });
});

describe('README', () => {
  it("lists exactly the daemon's flags (--help aside)", () => {
    const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
    const block = /### podnet-routesync\n+```\n([\s\S]*?)```/.exec(readme)?.[1] ?? '';
    const listed = [...block.matchAll(/^ {2}--([a-z-]+)/gm)].map((m) => m[1]).sort();
    const known = [...helpText().matchAll(/^ {2}--([a-z-]+)/gm)].map((m) => m[1]).filter((f) => f !== 'help').sort();
    expect(listed.length).toBeGreaterThan(10);
    expect(listed).toEqual(known);
  });
});

describe('parseDuration', () => {
  it('reads ms, s, m, h and bare seconds', () => {
    expect(['250ms', '2s', '1.5s', '5m', '1h', '30'].map(parseDuration)).toEqual([250, 2000, 1500, 300_000, 3_600_000, 30_000]);
    expect(parseDuration('2 days')).toBeUndefined();
  });
});

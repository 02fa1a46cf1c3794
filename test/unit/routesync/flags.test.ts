import { describe, expect, it } from 'vitest';
import { helpText, parseDuration, parseFlags } from '../../../routesync/flags.js';

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
  });
});

describe('helpText', () => {
  it('documents every flag the parser knows', () => {
    const text = helpText();
    for (const flag of ['node-name', 'kubeconfig', 'nodes-file', 'cni-conf-dir', 'conflist-template', 'write-conflist', 'masquerade', 'sysctl-root', 'br-netfilter', 'route-protocol', 'metrics-addr', 'resync-interval', 'nodes-file-poll', 'list-page-size', 'once', 'log-level', 'help']) {
      expect(text).toContain(`--${flag}`);
      expect(parseFlags(['--node-name', 'x', `--${flag}`], {})).not.toEqual({ ok: false, error: `unknown flag "--${flag}"` });
    }
  });
});

describe('parseDuration', () => {
  it('reads ms, s, m, h and bare seconds', () => {
    expect(['250ms', '2s', '1.5s', '5m', '1h', '30'].map(parseDuration)).toEqual([250, 2000, 1500, 300_000, 3_600_000, 30_000]);
    expect(parseDuration('2 days')).toBeUndefined();
  });
});

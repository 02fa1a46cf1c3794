import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ensureBrNetfilter } from '../../../routesync/br-netfilter.js';
import type { LoopStatus } from '../../../routesync/loop.js';
import { Metrics } from '../../../routesync/metrics.js';
import { parseListenAddr, startHealthServer } from '../../../routesync/server.js';

const status = (over: Partial<LoopStatus> = {}): LoopStatus => ({
  synced: true,
  converged: true,
  lastPassAt: 1,
  lastSuccessAt: 1,
  passRunningSinceMs: undefined,
  problems: [],
  rejected: 0,
  routes: 2,
  brNetfilter: 'already 1',
  ...over,
});

describe('Metrics', () => {
  it('renders every series in Prometheus text format', () => {
    const m = new Metrics();
    m.routesProgrammed = { 4: 3, 6: 1 };
    m.setRejected(new Map([['PodCIDROverlap', 2]]), ['NoInternalIP', 'PodCIDROverlap']);
    m.countError('routes');
    m.countError('routes');
    m.observeReconcile(0.02);
    m.observeReconcile(3);
    m.lastSuccessSeconds = 1700000000;
    const t = m.render();
    expect(t).toContain('podnet_routesync_routes_programmed{family="ipv4"} 3');
    expect(t).toContain('podnet_routesync_routes_programmed{family="ipv6"} 1');
    expect(t).toContain('podnet_routesync_rejected_nodes{reason="NoInternalIP"} 0');
    expect(t).toContain('podnet_routesync_rejected_nodes{reason="PodCIDROverlap"} 2');
    expect(t).toContain('podnet_routesync_reconcile_errors_total{stage="routes"} 2');
    expect(t).toContain('podnet_routesync_reconcile_duration_seconds_bucket{le="0.025"} 1');
    expect(t).toContain('podnet_routesync_reconcile_duration_seconds_bucket{le="5"} 2');
    expect(t).toContain('podnet_routesync_reconcile_duration_seconds_count 2');
    expect(t).toContain('podnet_routesync_last_successful_sync_timestamp_seconds 1700000000');
    // Every sample line: name{labels} value
    for (const line of t.trim().split('\n')) expect(line).toMatch(/^(# (HELP|TYPE) \w+ .+|\w+(\{[^}]*\})? [-+\d.e]+)$/);
  });
});

describe('health server', () => {
  it('parses listen addresses', () => {
    expect(parseListenAddr(':9646')).toEqual({ host: '0.0.0.0', port: 9646 });
    expect(parseListenAddr('127.0.0.1:0')).toEqual({ host: '127.0.0.1', port: 0 });
    expect(parseListenAddr('[::1]:80')).toEqual({ host: '::1', port: 80 });
    expect(parseListenAddr('nope')).toBeUndefined();
    expect(parseListenAddr('a:70000')).toBeUndefined();
  });

  it('serves /metrics, /healthz, /readyz with reasons', async () => {
    let s = status();
    const srv = await startHealthServer('127.0.0.1:0', { status: () => s, metrics: () => 'x 1\n', stuckAfterMs: 1000 });
    try {
      const get = async (p: string) => {
        const r = await fetch(`http://${srv.address}${p}`);
        return { code: r.status, text: await r.text(), type: r.headers.get('content-type') };
      };
      expect(await get('/metrics')).toMatchObject({ code: 200, text: 'x 1\n', type: expect.stringContaining('text/plain; version=0.0.4') });
      expect((await get('/healthz')).code).toBe(200);
      expect((await get('/readyz')).code).toBe(200);
      s = status({ converged: false, problems: ['br_netfilter: /proc/sys/net/bridge/bridge-nf-call-iptables does not exist'] });
      expect((await get('/healthz')).code).toBe(200);
      const ready = await get('/readyz');
      expect(ready.code).toBe(503);
      expect(JSON.parse(ready.text)).toMatchObject({ status: 'not ready', problems: [expect.stringContaining('br_netfilter')] });
      s = status({ passRunningSinceMs: 5000 });
      expect((await get('/healthz')).code).toBe(503);
      expect((await get('/nope')).code).toBe(404);
    } finally {
      await srv.close();
    }
  });

  it('names the address it cannot listen on', async () => {
    const a = await startHealthServer('127.0.0.1:0', { status, metrics: () => '', stuckAfterMs: 1 });
    try {
      await expect(startHealthServer(a.address, { status, metrics: () => '', stuckAfterMs: 1 })).rejects.toThrow(/^failed to listen on "127\.0\.0\.1:\d+": .*EADDRINUSE/);
    } finally {
      await a.close();
    }
  });
});

describe('ensureBrNetfilter (against a fake /proc/sys)', () => {
  it('sets both keys to 1 when they are 0, and leaves them when already 1', async () => {
    const root = mkdtempSync(join(tmpdir(), 'prs-sys-'));
    try {
      mkdirSync(join(root, 'net', 'bridge'), { recursive: true });
      writeFileSync(join(root, 'net/bridge/bridge-nf-call-iptables'), '0\n');
      writeFileSync(join(root, 'net/bridge/bridge-nf-call-ip6tables'), '1\n');
      expect(await ensureBrNetfilter(root)).toEqual({ ok: true, written: ['bridge-nf-call-iptables'], message: 'set bridge-nf-call-iptables to 1' });
      expect(readFileSync(join(root, 'net/bridge/bridge-nf-call-iptables'), 'utf8').trim()).toBe('1');
      expect(await ensureBrNetfilter(root)).toEqual({ ok: true, written: [], message: 'already 1' });
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('reports a missing br_netfilter module clearly', async () => {
    const root = mkdtempSync(join(tmpdir(), 'prs-sys-'));
    try {
      const s = await ensureBrNetfilter(root);
      expect(s.ok).toBe(false);
      expect(s.message).toContain('bridge-nf-call-iptables does not exist: the br_netfilter kernel module is not loaded (run "modprobe br_netfilter" on the host)');
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

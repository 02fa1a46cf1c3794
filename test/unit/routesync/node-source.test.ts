import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FileNodeSource, parseNodeList } from '../../../routesync/file-node-source.js';
import { KubeNodeSource, slimNode } from '../../../routesync/kube-node-source.js';
import { loadKubeConfig } from '../../../routesync/kubeconfig.js';
import { backoffDelay } from '../../../routesync/scheduler.js';
import type { NodeLike } from '../../../routesync/types.js';
import { FakeApiServer, makeNode } from '../../helpers/fake-apiserver.js';

async function waitFor(what: string, f: () => boolean, ms = 10_000): Promise<void> {
  const until = Date.now() + ms;
  while (!f()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const names = (nodes: readonly NodeLike[]) => nodes.map((n) => n.metadata?.name).sort();

describe('KubeNodeSource against the fake API server', () => {
  const cleanup: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  async function setup(opts: ConstructorParameters<typeof FakeApiServer>[0] = {}, pageSize = 500) {
    const api = new FakeApiServer(opts);
    await api.start();
    cleanup.push(() => api.stop());
    const dir = mkdtempSync(join(tmpdir(), 'prs-kc-'));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const kcPath = join(dir, 'kubeconfig');
    writeFileSync(kcPath, api.kubeconfig());
    const source = new KubeNodeSource(loadKubeConfig({ kubeconfig: kcPath }), { pageSize, backoffBaseMs: 30, backoffMaxMs: 200 });
    const errors: Error[] = [];
    let changes = 0;
    cleanup.push(() => source.stop());
    const start = () => source.start({ onChange: () => (changes += 1), onError: (e) => errors.push(e) });
    return { api, source, errors, start, changes: () => changes, kcPath };
  }

  it('lists page by page, then follows ADDED, MODIFIED and DELETED', async () => {
    const { api, source, start } = await setup({}, 2);
    for (let i = 1; i <= 5; i += 1) api.upsert(makeNode(`n${i}`, { podCIDRs: [`10.244.${i}.0/24`], ips: [`172.18.0.${i}`] }));
    start();
    await waitFor('sync', () => source.synced());
    expect(names(source.nodes())).toEqual(['n1', 'n2', 'n3', 'n4', 'n5']);
    const lists = api.requests.filter((r) => !r.watch);
    expect(lists.map((r) => r.query.limit)).toEqual(['2', '2', '2']);
    expect(lists.filter((r) => r.query.continue).length).toBe(2);
    expect(lists[0]?.authorization).toBe('Bearer fake-token');
    await waitFor('watch', () => api.counts().watches === 1);
    const w = api.requests.find((r) => r.watch);
    expect(w?.query.allowWatchBookmarks).toBe('true');
    expect(w?.query.resourceVersion).toBe(api.resourceVersion);

    api.upsert(makeNode('n6', { podCIDRs: ['10.244.6.0/24'], ips: ['172.18.0.6'] }));
    api.update('n2', (n) => {
      (n.spec as Record<string, unknown>).podCIDRs = ['10.244.22.0/24'];
    });
    api.remove('n3');
    await waitFor('events', () => names(source.nodes()).join() === 'n1,n2,n4,n5,n6');
    expect(source.nodes().find((n) => n.metadata?.name === 'n2')?.spec?.podCIDRs).toEqual(['10.244.22.0/24']);
    expect(api.counts().lists).toBe(3);
  });

  it('resumes after an API server restart from the last resourceVersion and sees a deletion made meanwhile', async () => {
    const { api, source, start, errors } = await setup();
    api.upsert(makeNode('a', { podCIDRs: ['10.244.1.0/24'], ips: ['172.18.0.2'] }));
    api.upsert(makeNode('b', { podCIDRs: ['10.244.2.0/24'], ips: ['172.18.0.3'] }));
    start();
    await waitFor('watch', () => source.synced() && api.counts().watches === 1);
    await api.stop();
    api.remove('b');
    api.upsert(makeNode('c', { podCIDRs: ['10.244.3.0/24'], ips: ['172.18.0.4'] }));
    await new Promise((r) => setTimeout(r, 100));
    expect(names(source.nodes())).toEqual(['a', 'b']); // kept while the server is down
    await api.start();
    await waitFor('resume', () => names(source.nodes()).join() === 'a,c');
    expect(api.counts().lists).toBe(1); // resumed, no relist
    expect(errors.length).toBeGreaterThan(0);
  });

  for (const goneAs of ['event', 'status'] as const) {
    it(`relists on 410 Gone (${goneAs}) after compaction and reports the node deleted during the outage`, async () => {
      const { api, source, start } = await setup({ goneAs });
      api.upsert(makeNode('a', { podCIDRs: ['10.244.1.0/24'], ips: ['172.18.0.2'] }));
      api.upsert(makeNode('b', { podCIDRs: ['10.244.2.0/24'], ips: ['172.18.0.3'] }));
      start();
      await waitFor('watch', () => source.synced() && api.counts().watches === 1);
      await api.stop();
      api.remove('b');
      api.compact();
      await api.start();
      await waitFor('relist', () => names(source.nodes()).join() === 'a');
      expect(api.counts().lists).toBe(2);
    });
  }

  it('honours bookmarks: a resume from a bookmarked resourceVersion needs no relist', async () => {
    const { api, source, start } = await setup();
    api.upsert(makeNode('a', { podCIDRs: ['10.244.1.0/24'], ips: ['172.18.0.2'] }));
    start();
    await waitFor('watch', () => source.synced() && api.counts().watches === 1);
    // Other objects change (resourceVersion moves on) and history gets compacted past the last
    // Node event: only a client that took the bookmark can resume.
    api.advance(5);
    api.bookmark();
    await new Promise((r) => setTimeout(r, 50));
    api.compact();
    await api.stop();
    await api.start();
    await waitFor('rewatch', () => api.counts().watches >= 2);
    await new Promise((r) => setTimeout(r, 200));
    expect(api.counts().lists).toBe(1);
    expect(api.requests.filter((r) => r.watch).at(-1)?.query.resourceVersion).toBe(api.resourceVersion);
  });

  it('retries a failing list with backoff and keeps going', async () => {
    const { api, source, start, errors } = await setup();
    api.upsert(makeNode('a', { podCIDRs: ['10.244.1.0/24'], ips: ['172.18.0.2'] }));
    api.failNext(3, 500);
    start();
    await waitFor('sync', () => source.synced());
    expect(errors.length).toBe(3);
    expect(errors[0]?.message).toMatch(/^failed to list nodes from "http:\/\/127\.0\.0\.1:\d+": HTTP 500/);
    expect(names(source.nodes())).toEqual(['a']);
  });

  it('listOnce: an API server that is not there gives a clear error', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'prs-kc-'));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const api = new FakeApiServer();
    await api.start();
    await api.stop(); // the port is free again: nothing listens there
    writeFileSync(join(dir, 'kc'), api.kubeconfig());
    const source = new KubeNodeSource(loadKubeConfig({ kubeconfig: join(dir, 'kc') }));
    await expect(source.listOnce()).rejects.toThrow(new RegExp(`^failed to list nodes from "${api.url}": fetch failed: .*ECONNREFUSED`));
  });
});

describe('loadKubeConfig', () => {
  it('names the missing kubeconfig file', () => {
    expect(() => loadKubeConfig({ kubeconfig: '/nonexistent/prs/kubeconfig' })).toThrow(/^failed to load kubeconfig "\/nonexistent\/prs\/kubeconfig": .*ENOENT/);
  });
  it('says how to run outside a cluster', () => {
    expect(() => loadKubeConfig({ env: {} })).toThrow(/KUBERNETES_SERVICE_HOST.*--kubeconfig PATH or --nodes-file PATH/);
  });
  it('refuses a kubeconfig without a current cluster', () => {
    const dir = mkdtempSync(join(tmpdir(), 'prs-kc-'));
    try {
      writeFileSync(join(dir, 'kc'), 'apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n');
      expect(() => loadKubeConfig({ kubeconfig: join(dir, 'kc') })).toThrow(/no current context/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('backoffDelay', () => {
  it('doubles up to the maximum, with ±20 % jitter', () => {
    expect([0, 1, 2, 3, 10].map((a) => backoffDelay(a, 1000, 30_000, () => 0.5))).toEqual([1000, 2000, 4000, 8000, 30_000]);
    expect(backoffDelay(0, 1000, 30_000, () => 0)).toBe(800);
    expect(backoffDelay(0, 1000, 30_000, () => 1)).toBe(1200);
  });
});

describe('parseNodeList', () => {
  it('reads a JSON NodeList, a YAML List and a bare list', () => {
    expect(names(parseNodeList(JSON.stringify({ kind: 'NodeList', items: [makeNode('a')] }), 'x'))).toEqual(['a']);
    expect(names(parseNodeList('kind: List\nitems:\n- metadata: {name: b}\n- metadata: {name: c}\n', 'x'))).toEqual(['b', 'c']);
    expect(names(parseNodeList('- metadata: {name: d}\n', 'x'))).toEqual(['d']);
    expect(parseNodeList('kind: NodeList\nitems: null\n', 'x')).toEqual([]);
  });
  it('refuses what is not a node list', () => {
    expect(() => parseNodeList('{"kind": "Node"}', 'f.json')).toThrow(/failed to parse nodes file "f.json": expected a NodeList/);
    expect(() => parseNodeList('{ bad', 'f.json')).toThrow(/failed to parse nodes file "f.json"/);
    expect(() => parseNodeList('', 'f.json')).toThrow(/expected a NodeList/);
  });
  it('refuses a list whose items are not Node objects (never an empty cluster)', () => {
    expect(() => parseNodeList('{"items":[1,2,"x",null]}', 'f.json')).toThrow(/failed to parse nodes file "f.json": item 0 is 1, not a Node object/);
    expect(() => parseNodeList(JSON.stringify({ items: [makeNode('a'), null] }), 'f.json')).toThrow(/item 1 is null/);
    expect(() => parseNodeList('- [1]\n', 'f.yaml')).toThrow(/item 0 is \[1\]/);
    expect(() => parseNodeList('items: ["x"]\n', 'f.yaml')).toThrow(/item 0 is "x"/);
  });
});

describe('FileNodeSource', () => {
  it('re-reads the file on change (atomic rename too) and keeps the last good set on a bad write', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'prs-nf-'));
    const file = join(dir, 'nodes.yaml');
    writeFileSync(file, 'items:\n- metadata: {name: a}\n');
    const src = new FileNodeSource(file, { pollMs: 100 });
    const errors: Error[] = [];
    src.start({ onChange: () => {}, onError: (e) => errors.push(e) });
    try {
      await waitFor('first read', () => src.synced());
      expect(names(src.nodes())).toEqual(['a']);
      writeFileSync(join(dir, '.tmp'), JSON.stringify({ items: [makeNode('a'), makeNode('b')] }));
      renameSync(join(dir, '.tmp'), file);
      await waitFor('rename', () => names(src.nodes()).join() === 'a,b');
      writeFileSync(file, '{ not yaml');
      await waitFor('error', () => errors.length > 0);
      expect(names(src.nodes())).toEqual(['a', 'b']);
      expect(errors[0]?.message).toContain(`failed to parse nodes file "${file}"`);
      writeFileSync(file, '{"items":[1,2,"x",null]}');
      await waitFor('second error', () => errors.length > 1);
      expect(errors[1]?.message).toMatch(/item 0 is 1, not a Node object/);
      expect(names(src.nodes())).toEqual(['a', 'b']);
      await expect(src.listOnce()).rejects.toThrow(/not a Node object/);
      writeFileSync(file, 'items: []\n');
      await waitFor('empty', () => src.nodes().length === 0);
    } finally {
      await src.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reports a missing file and picks it up once it appears', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'prs-nf-'));
    const file = join(dir, 'nodes.json');
    const src = new FileNodeSource(file, { pollMs: 50 });
    const errors: Error[] = [];
    src.start({ onChange: () => {}, onError: (e) => errors.push(e) });
    try {
      await waitFor('error', () => errors.length > 0);
      expect(errors[0]?.message).toMatch(/^failed to read nodes file ".*nodes.json": ENOENT/);
      expect(src.synced()).toBe(false);
      await expect(src.listOnce()).rejects.toThrow(/failed to read nodes file/);
      writeFileSync(file, JSON.stringify([makeNode('x')]));
      await waitFor('appear', () => src.synced());
      expect(names(src.nodes())).toEqual(['x']);
    } finally {
      await src.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('slimNode', () => {
  it('keeps only what the daemon reads', () => {
    const full = {
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name: 'a', uid: 'u', resourceVersion: '7', creationTimestamp: '2024-01-01T00:00:00Z', labels: { x: 'y' }, managedFields: [{}] },
      spec: { podCIDR: '10.244.1.0/24', podCIDRs: ['10.244.1.0/24'], providerID: 'kind://x', taints: [] },
      status: { addresses: [{ type: 'InternalIP', address: '172.18.0.2' }], images: [{ names: ['big'], sizeBytes: 1 }], conditions: [] },
    };
    expect(slimNode(full as never)).toEqual({
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name: 'a', uid: 'u', resourceVersion: '7', creationTimestamp: '2024-01-01T00:00:00Z' },
      spec: { podCIDR: '10.244.1.0/24', podCIDRs: ['10.244.1.0/24'] },
      status: { addresses: [{ type: 'InternalIP', address: '172.18.0.2' }] },
    });
    expect(slimNode({ metadata: { name: 'b' } })).toEqual({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'b' } });
  });
});

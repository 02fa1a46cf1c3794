import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/**
 * A fake Kubernetes API server for core/v1 Nodes, speaking the real list/watch wire protocol
 * closely enough for @kubernetes/client-node's ListWatch (and client-go's reflector) to run
 * unchanged against it. Plain HTTP, no authentication (any bearer token is accepted and recorded).
 *
 * What it implements, exactly:
 *  - GET /api/v1/nodes            → NodeList {kind, apiVersion, metadata: {resourceVersion,
 *                                   continue?, remainingItemCount?}, items}, sorted by name.
 *      limit=N & continue=TOKEN   → paginated from one consistent snapshot; a token whose
 *                                   snapshot has been compacted → 410 Gone (reason Expired).
 *  - GET /api/v1/nodes?watch=true → HTTP 200, Transfer-Encoding: chunked, one JSON event per
 *                                   line: {"type": ADDED|MODIFIED|DELETED|BOOKMARK|ERROR, "object"}.
 *      resourceVersion unset/"0"  → synthetic ADDED for every current node, then live events.
 *      resourceVersion=R          → every event after R from the history, then live events;
 *                                   R older than the history (compacted) → a single ERROR event
 *                                   with a 410 Status ("too old resource version"), then the
 *                                   stream ends (what kube-apiserver does); with
 *                                   `goneAs: 'status'`, an HTTP 410 response instead.
 *      allowWatchBookmarks=true   → BOOKMARK events carrying the current resourceVersion on
 *                                   `bookmark()` and every `bookmarkEveryMs`.
 *      timeoutSeconds=N           → the stream ends after N s (clients then resume).
 *  - resourceVersion: one global counter; each create/update/delete takes the next value; a
 *    DELETED event carries the object's last state with the deletion's resourceVersion.
 *  - Anything else → 404 Status. Injected failures: `failNext(n, code)` answers the next n
 *    requests (list or watch) with that HTTP status.
 *  - Outages: `stop()` closes the listener and destroys every open connection (a crash);
 *    the node set can still be changed while stopped; `start()` listens again on the same port.
 *    `compact()` drops the event history (like etcd compaction): any watch resuming from before
 *    it gets 410 and must relist.
 * Not implemented: label/field selectors, resourceVersionMatch, protobuf, TLS, other resources.
 */
export interface FakeNode {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; resourceVersion?: string; creationTimestamp?: string; uid?: string; [k: string]: unknown };
  spec?: Record<string, unknown>;
  status?: Record<string, unknown>;
  [k: string]: unknown;
}

type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';
interface Event {
  rv: number;
  type: EventType;
  object: FakeNode;
}

export interface RequestRecord {
  method: string;
  path: string;
  query: Record<string, string>;
  watch: boolean;
  authorization: string | undefined;
}

export interface FakeApiServerOptions {
  host?: string;
  port?: number;
  /** How a too-old watch resourceVersion is refused: an ERROR event (default, like kube-apiserver) or HTTP 410. */
  goneAs?: 'event' | 'status';
  bookmarkEveryMs?: number;
}

function status(code: number, reason: string, message: string) {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
}

export class FakeApiServer {
  private rv = 1000;
  private readonly nodes = new Map<string, FakeNode>();
  private history: Event[] = [];
  /** Lowest resourceVersion a watch may resume from. */
  private oldestRv = 1000;
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private readonly watchers = new Set<{ res: ServerResponse; bookmarks: boolean }>();
  private readonly snapshots = new Map<string, { rv: number; items: FakeNode[] }>();
  private failures: { n: number; code: number } = { n: 0, code: 500 };
  private bookmarkTimer: NodeJS.Timeout | undefined;
  private uidCounter = 0;
  readonly requests: RequestRecord[] = [];
  host: string;
  port: number;

  constructor(private readonly opts: FakeApiServerOptions = {}) {
    this.host = opts.host ?? '127.0.0.1';
    this.port = opts.port ?? 0;
  }

  get url(): string {
    return `http://${this.host.includes(':') ? `[${this.host}]` : this.host}:${this.port}`;
  }

  get resourceVersion(): string {
    return String(this.rv);
  }

  get running(): boolean {
    return this.server !== undefined;
  }

  /** A kubeconfig (YAML text) pointing at this server. */
  kubeconfig(): string {
    return kubeconfigFor(this.url);
  }

  async start(): Promise<void> {
    if (this.server) return;
    const server = createServer((req, res) => this.handle(req, res));
    server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, this.host, () => resolve());
    });
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
    if (this.opts.bookmarkEveryMs) {
      this.bookmarkTimer = setInterval(() => this.bookmark(), this.opts.bookmarkEveryMs);
      this.bookmarkTimer.unref();
    }
  }

  /** Crash: stop listening and cut every connection (watch streams end abruptly). */
  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    clearInterval(this.bookmarkTimer);
    this.watchers.clear();
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Drop the event history: watches resuming from before now get 410 Gone. */
  compact(): void {
    this.history = [];
    this.oldestRv = this.rv;
    this.snapshots.clear();
  }

  failNext(n: number, code = 500): void {
    this.failures = { n, code };
  }

  list(): FakeNode[] {
    return [...this.nodes.values()].sort((a, b) => (a.metadata.name < b.metadata.name ? -1 : 1)).map((n) => structuredClone(n));
  }

  get(name: string): FakeNode | undefined {
    const n = this.nodes.get(name);
    return n ? structuredClone(n) : undefined;
  }

  /** Create or replace a node (ADDED or MODIFIED). */
  upsert(node: FakeNode): FakeNode {
    const name = node.metadata.name;
    const old = this.nodes.get(name);
    this.rv += 1;
    const stored: FakeNode = structuredClone({
      apiVersion: 'v1',
      kind: 'Node',
      ...node,
      metadata: {
        uid: old?.metadata.uid ?? `fake-uid-${(this.uidCounter += 1)}`,
        creationTimestamp: old?.metadata.creationTimestamp ?? new Date(Date.UTC(2024, 0, 1) + this.rv * 1000).toISOString(),
        ...node.metadata,
        resourceVersion: String(this.rv),
      },
    });
    this.nodes.set(name, stored);
    this.emit({ rv: this.rv, type: old ? 'MODIFIED' : 'ADDED', object: stored });
    return structuredClone(stored);
  }

  /** Change a node with a function of its current state. */
  update(name: string, f: (n: FakeNode) => FakeNode | void): FakeNode {
    const cur = this.get(name);
    if (!cur) throw new Error(`fake apiserver: no node "${name}"`);
    return this.upsert(f(cur) ?? cur);
  }

  remove(name: string): boolean {
    const old = this.nodes.get(name);
    if (!old) return false;
    this.nodes.delete(name);
    this.rv += 1;
    const last = structuredClone({ ...old, metadata: { ...old.metadata, resourceVersion: String(this.rv) } });
    this.emit({ rv: this.rv, type: 'DELETED', object: last });
    return true;
  }

  /** Replace the whole node set (adds, updates and deletes as needed). */
  setNodes(nodes: readonly FakeNode[]): void {
    const want = new Set(nodes.map((n) => n.metadata.name));
    for (const name of [...this.nodes.keys()]) if (!want.has(name)) this.remove(name);
    for (const n of nodes) this.upsert(n);
  }

  /** Load many nodes without one event each (a fresh cluster): history starts after them. */
  seed(nodes: readonly FakeNode[]): void {
    for (const n of nodes) this.upsert(n);
    this.compact();
  }

  /** Other resources changed: the global resourceVersion moves on without a Node event. */
  advance(n = 1): void {
    this.rv += n;
  }

  /** Send a BOOKMARK to every watcher that asked for them. */
  bookmark(): void {
    const line = `${JSON.stringify({ type: 'BOOKMARK', object: { kind: 'Node', apiVersion: 'v1', metadata: { resourceVersion: String(this.rv) } } })}\n`;
    for (const w of this.watchers) if (w.bookmarks) w.res.write(line);
  }

  /** Number of list (non-watch) and watch requests seen. */
  counts(): { lists: number; watches: number } {
    return { lists: this.requests.filter((r) => !r.watch).length, watches: this.requests.filter((r) => r.watch).length };
  }

  private emit(e: Event): void {
    this.history.push(e);
    if (!this.server) return;
    const line = `${JSON.stringify({ type: e.type, object: e.object })}\n`;
    for (const w of this.watchers) w.res.write(line);
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://fake');
    const query = Object.fromEntries(url.searchParams);
    const watch = query.watch === 'true' || query.watch === '1';
    this.requests.push({ method: req.method ?? 'GET', path: url.pathname, query, watch, authorization: req.headers.authorization });
    const send = (code: number, body: unknown) => {
      const text = JSON.stringify(body);
      res.writeHead(code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
    };
    if (this.failures.n > 0) {
      this.failures.n -= 1;
      send(this.failures.code, status(this.failures.code, 'InternalError', 'injected failure'));
      return;
    }
    if (req.method !== 'GET' || url.pathname !== '/api/v1/nodes') {
      send(404, status(404, 'NotFound', `the server could not find the requested resource (${req.method} ${url.pathname})`));
      return;
    }
    if (watch) this.watch(query, res, send);
    else this.listNodes(query, send);
  }

  private listNodes(query: Record<string, string>, send: (code: number, body: unknown) => void): void {
    const limit = query.limit ? Number(query.limit) : 0;
    let snap: { rv: number; items: FakeNode[] };
    let offset = 0;
    if (query.continue) {
      const [id, off] = query.continue.split(':');
      const found = this.snapshots.get(id ?? '');
      if (!found) {
        send(410, status(410, 'Expired', 'The provided continue parameter is too old to display a consistent list result.'));
        return;
      }
      snap = found;
      offset = Number(off);
    } else {
      snap = { rv: this.rv, items: this.list() };
    }
    const page = limit > 0 ? snap.items.slice(offset, offset + limit) : snap.items.slice(offset);
    const next = offset + page.length;
    const metadata: Record<string, unknown> = { resourceVersion: String(snap.rv) };
    if (limit > 0 && next < snap.items.length) {
      const id = query.continue ? (query.continue.split(':')[0] as string) : `s${snap.rv}-${this.snapshots.size}`;
      this.snapshots.set(id, snap);
      metadata.continue = `${id}:${next}`;
      metadata.remainingItemCount = snap.items.length - next;
    }
    send(200, { kind: 'NodeList', apiVersion: 'v1', metadata, items: page });
  }

  private watch(query: Record<string, string>, res: ServerResponse, send: (code: number, body: unknown) => void): void {
    const from = query.resourceVersion;
    const fromRv = from === undefined || from === '' || from === '0' ? undefined : Number(from);
    const tooOld = fromRv !== undefined && (!Number.isFinite(fromRv) || fromRv < this.oldestRv);
    const gone = status(410, 'Expired', `too old resource version: ${from} (${this.oldestRv})`);
    if (tooOld && this.opts.goneAs === 'status') {
      send(410, gone);
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    res.flushHeaders();
    if (tooOld) {
      res.end(`${JSON.stringify({ type: 'ERROR', object: gone })}\n`);
      return;
    }
    if (fromRv === undefined) {
      for (const n of this.list()) res.write(`${JSON.stringify({ type: 'ADDED', object: n })}\n`);
    } else {
      for (const e of this.history) if (e.rv > fromRv) res.write(`${JSON.stringify({ type: e.type, object: e.object })}\n`);
    }
    const w = { res, bookmarks: query.allowWatchBookmarks === 'true' };
    this.watchers.add(w);
    const done = () => this.watchers.delete(w);
    res.on('close', done);
    const timeout = Number(query.timeoutSeconds ?? 0);
    if (timeout > 0) {
      setTimeout(() => {
        done();
        res.end();
      }, timeout * 1000).unref();
    }
  }
}

/** A kubeconfig (YAML) for a fake API server at `url` (plain http, bearer token "fake-token"). */
export function kubeconfigFor(url: string): string {
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '- name: fake',
    '  cluster:',
    `    server: ${url}`,
    // @kubernetes/client-node refuses plain http unless TLS verification is off.
    '    insecure-skip-tls-verify: true',
    'users:',
    '- name: fake',
    '  user:',
    '    token: fake-token',
    'contexts:',
    '- name: fake',
    '  context:',
    '    cluster: fake',
    '    user: fake',
    'current-context: fake',
    '',
  ].join('\n');
}

/** A Node object with the fields the daemon reads. */
export function makeNode(
  name: string,
  opts: { podCIDRs?: string[]; podCIDR?: string; ips?: string[]; created?: string; hostname?: boolean } = {},
): FakeNode {
  const spec: Record<string, unknown> = {};
  if (opts.podCIDRs) {
    spec.podCIDRs = opts.podCIDRs;
    if (opts.podCIDR === undefined && opts.podCIDRs[0]) spec.podCIDR = opts.podCIDRs[0];
  }
  if (opts.podCIDR !== undefined) spec.podCIDR = opts.podCIDR;
  const addresses = (opts.ips ?? []).map((address) => ({ type: 'InternalIP', address }));
  if (opts.hostname !== false) addresses.push({ type: 'Hostname', address: name });
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name, ...(opts.created ? { creationTimestamp: opts.created } : {}) },
    spec,
    status: { addresses },
  };
}

import { watch as fsWatch, type FSWatcher } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { CoreV1Api, KubeConfig, ListWatch, type V1Node, type V1NodeAddress, Watch } from '@kubernetes/client-node';
import { parse as parseYaml } from 'yaml';
import type { NodeLike } from './types.js';

/**
 * Where Nodes come from: the Kubernetes API (list + watch, informer semantics) or a file.
 * Level-triggered: a source only says "something may have changed" and hands out its whole
 * current set; the loop recomputes the desired state from that, so a missed or repeated
 * notification can never leave a stale route behind.
 */
export interface SourceHooks {
  /** The node set may have changed. Called often during a list; the loop debounces. */
  onChange(): void;
  /** A list, watch or read failed (the source retries by itself). */
  onError(err: Error): void;
  /** A note for the log (reconnects, relists). */
  onInfo?(msg: string, fields?: Record<string, unknown>): void;
}

export interface NodeSource {
  readonly description: string;
  start(hooks: SourceHooks): void;
  /** True once one complete list has been seen; before that the node set means nothing. */
  synced(): boolean;
  nodes(): readonly NodeLike[];
  /** One complete list without watching (for --once); throws a clear error on failure. */
  listOnce(): Promise<NodeLike[]>;
  stop(): Promise<void>;
}

/** Exponential backoff with ±20 % jitter: base, 2·base, 4·base … max. */
export function backoffDelay(attempt: number, baseMs: number, maxMs: number, random: () => number = Math.random): number {
  const raw = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 30));
  return Math.round(raw * (0.8 + 0.4 * random()));
}

function describeError(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  const code = (e as { code?: unknown }).code;
  const body = (e as { body?: unknown }).body;
  if (typeof code === 'number' && body !== undefined) {
    let msg = '';
    try {
      const b = typeof body === 'string' ? (JSON.parse(body) as { message?: string }) : (body as { message?: string });
      msg = b?.message ?? '';
    } catch {
      msg = String(body).slice(0, 200);
    }
    return `HTTP ${code}${msg ? `: ${msg}` : ''}`;
  }
  const status = (e as { statusCode?: unknown }).statusCode;
  let text = typeof status === 'number' ? `HTTP ${status}: ${e.message}` : e.message;
  let cause = (e as { cause?: unknown }).cause;
  for (let depth = 0; cause instanceof Error && depth < 3; depth += 1) {
    text += `: ${cause.message}`;
    cause = (cause as { cause?: unknown }).cause;
  }
  return text;
}

/**
 * Only the fields the daemon reads (like client-go's informer transform): a real Node carries
 * conditions, images and more, tens of kB each; 5,000 of them would dominate the daemon's memory.
 */
export function slimNode<T extends NodeLike & { apiVersion?: string; kind?: string }>(n: T): V1Node {
  const m = n.metadata as (NonNullable<NodeLike['metadata']> & { uid?: string; namespace?: string }) | undefined;
  const slim: V1Node = { apiVersion: n.apiVersion ?? 'v1', kind: n.kind ?? 'Node' };
  if (m) {
    slim.metadata = {};
    if (m.name !== undefined) slim.metadata.name = m.name;
    if (m.namespace !== undefined) slim.metadata.namespace = m.namespace;
    if (m.uid !== undefined) slim.metadata.uid = m.uid;
    if (m.resourceVersion !== undefined) slim.metadata.resourceVersion = m.resourceVersion;
    if (m.creationTimestamp !== undefined) slim.metadata.creationTimestamp = m.creationTimestamp as Date;
  }
  if (n.spec) {
    slim.spec = {};
    if (n.spec.podCIDR !== undefined) slim.spec.podCIDR = n.spec.podCIDR;
    if (n.spec.podCIDRs !== undefined) slim.spec.podCIDRs = n.spec.podCIDRs;
  }
  if (n.status) {
    slim.status = {};
    if (n.status.addresses !== undefined) slim.status.addresses = n.status.addresses as V1NodeAddress[];
  }
  return slim;
}

/** The client's Watch with node events slimmed before ListWatch caches them. */
class SlimWatch extends Watch {
  override watch(
    path: string,
    queryParams: Record<string, string | number | boolean | undefined>,
    callback: (phase: string, apiObj: unknown, watchObj?: unknown) => void,
    done: (err: unknown) => void,
  ): Promise<AbortController> {
    return super.watch(
      path,
      queryParams,
      (phase, obj, watchObj) => callback(phase, phase === 'ADDED' || phase === 'MODIFIED' || phase === 'DELETED' ? slimNode(obj as NodeLike) : obj, watchObj),
      done,
    );
  }
}

/**
 * Kubeconfig: `--kubeconfig PATH` when given, else the in-cluster service account (the
 * DaemonSet). Errors say what to do instead.
 */
export function loadKubeConfig(opts: { kubeconfig?: string | undefined; env?: NodeJS.ProcessEnv }): KubeConfig {
  const kc = new KubeConfig();
  if (opts.kubeconfig) {
    try {
      kc.loadFromFile(opts.kubeconfig);
    } catch (e) {
      throw new Error(`failed to load kubeconfig "${opts.kubeconfig}": ${describeError(e)}`, { cause: e });
    }
    const cluster = kc.getCurrentCluster();
    if (!cluster || !cluster.server) {
      throw new Error(`failed to load kubeconfig "${opts.kubeconfig}": no current context with a cluster server`);
    }
    return kc;
  }
  const env = opts.env ?? process.env;
  if (!env.KUBERNETES_SERVICE_HOST || !env.KUBERNETES_SERVICE_PORT) {
    throw new Error(
      'failed to load in-cluster config: KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT are not set (not running in a pod); pass --kubeconfig PATH or --nodes-file PATH',
    );
  }
  kc.loadFromCluster();
  return kc;
}

export interface KubeSourceOptions {
  /** Nodes per list page (limit/continue); default 500 like client-go's pager. */
  pageSize?: number;
  backoffBaseMs?: number;
  backoffMaxMs?: number;
}

/**
 * Nodes from the API server, through the official client's ListWatch: list (paginated), then
 * watch from the list's resourceVersion with bookmarks; on a dropped stream it resumes from the
 * last resourceVersion seen; on 410 Gone (history compacted) it relists and reports every node
 * missing from the new list as deleted, so a deletion during an outage is never lost. When a
 * list or watch fails (API server down, 5xx, network), ListWatch stops; this class restarts it
 * with exponential backoff, keeping the last known nodes (and so the routes) meanwhile.
 */
export class KubeNodeSource implements NodeSource {
  readonly description: string;
  private readonly api: CoreV1Api;
  private readonly informer: ListWatch<V1Node>;
  private hooks: SourceHooks | undefined;
  private isSynced = false;
  private stopped = false;
  private attempt = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private readonly pageSize: number;
  private readonly baseMs: number;
  private readonly maxMs: number;
  private readonly server: string;
  private readonly delays = new Set<{ timer: NodeJS.Timeout; resolve: () => void }>();

  constructor(kc: KubeConfig, opts: KubeSourceOptions = {}) {
    this.server = kc.getCurrentCluster()?.server ?? '?';
    this.description = `kubernetes ${this.server}`;
    this.api = kc.makeApiClient(CoreV1Api);
    this.pageSize = opts.pageSize ?? 500;
    this.baseMs = opts.backoffBaseMs ?? 1000;
    this.maxMs = opts.backoffMaxMs ?? 30_000;
    // allowWatchBookmarks rides on the path: ListWatch builds the watch URL from it and adds
    // resourceVersion and watch=true to its query.
    this.informer = new ListWatch<V1Node>(
      '/api/v1/nodes?allowWatchBookmarks=true',
      new SlimWatch(kc),
      () => this.listForInformer(),
      false,
      undefined,
      undefined,
      { delayFn: (ms: number) => this.delay(ms) },
    );
    const changed = () => {
      this.attempt = 0;
      this.hooks?.onChange();
    };
    this.informer.on('add', changed);
    this.informer.on('update', changed);
    this.informer.on('delete', changed);
    this.informer.on('error', (err: unknown) => this.failed(err));
  }

  /** ListWatch's reconnect pause, cancelled by stop() so it never holds the process. */
  private delay(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const entry = {
        timer: setTimeout(() => {
          this.delays.delete(entry);
          resolve();
        }, ms),
        resolve,
      };
      entry.timer.unref();
      this.delays.add(entry);
    });
  }

  private async listAll(): Promise<{ items: V1Node[]; resourceVersion: string }> {
    for (let tries = 0; ; tries += 1) {
      const items: V1Node[] = [];
      let cont: string | undefined;
      let rv = '';
      try {
        do {
          const page = await this.api.listNode({ limit: this.pageSize, ...(cont ? { _continue: cont } : {}) });
          items.push(...page.items);
          rv = page.metadata?.resourceVersion ?? rv;
          cont = page.metadata?._continue || undefined;
        } while (cont);
        return { items, resourceVersion: rv };
      } catch (e) {
        // An expired continue token (410) means the snapshot is gone: start the list over.
        if (cont && (e as { code?: unknown }).code === 410 && tries < 3) continue;
        throw new Error(`failed to list nodes from "${this.server}": ${describeError(e)}`, { cause: e });
      }
    }
  }

  private async listForInformer() {
    const { items, resourceVersion } = await this.listAll();
    this.attempt = 0;
    this.hooks?.onInfo?.('listed nodes', { nodes: items.length, resourceVersion });
    // ListWatch updates its cache right after this promise settles; mark synced after that.
    setImmediate(() => {
      if (this.stopped) return;
      this.isSynced = true;
      this.hooks?.onChange();
    });
    return { apiVersion: 'v1', kind: 'NodeList', metadata: { resourceVersion }, items: items.map(slimNode) };
  }

  private failed(err: unknown): void {
    if (this.stopped) return;
    const e = err instanceof Error && err.message.startsWith('failed to') ? err : new Error(`failed to watch nodes on "${this.server}": ${describeError(err)}`, { cause: err });
    this.hooks?.onError(e);
    const wait = backoffDelay(this.attempt, this.baseMs, this.maxMs);
    this.attempt += 1;
    this.hooks?.onInfo?.('retrying node list/watch', { inMs: wait, attempt: this.attempt, resumeFrom: this.informer.latestResourceVersion() || '(relist)' });
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.restart(), wait);
  }

  private restart(): void {
    if (this.stopped) return;
    this.informer.start().catch((e: unknown) => this.failed(e));
  }

  start(hooks: SourceHooks): void {
    this.hooks = hooks;
    this.stopped = false;
    this.restart();
  }

  synced(): boolean {
    return this.isSynced;
  }

  nodes(): readonly NodeLike[] {
    return this.informer.list() as readonly NodeLike[];
  }

  async listOnce(): Promise<NodeLike[]> {
    return (await this.listAll()).items;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    for (const d of this.delays) {
      clearTimeout(d.timer);
    }
    this.delays.clear();
    await this.informer.stop();
  }
}

/** A NodeList (JSON or YAML): `{kind: NodeList|List, items: [...]}` or a bare list of Nodes. */
export function parseNodeList(text: string, origin: string): NodeLike[] {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    throw new Error(`failed to parse nodes file "${origin}": ${(e as Error).message.split('\n')[0]}`, { cause: e });
  }
  let items: unknown;
  if (Array.isArray(doc)) items = doc;
  else if (doc && typeof doc === 'object' && 'items' in doc) items = (doc as { items?: unknown }).items ?? [];
  if (!Array.isArray(items)) {
    throw new Error(`failed to parse nodes file "${origin}": expected a NodeList (an object with "items") or a list of Nodes`);
  }
  return items.filter((n): n is NodeLike => n !== null && typeof n === 'object');
}

export interface FileSourceOptions {
  /** Poll interval, the fallback when fs.watch says nothing (network filesystems, some bind mounts). */
  pollMs?: number;
}

/**
 * Nodes from a file, re-read when it changes: fs.watch on its directory (which also sees an
 * atomic rename over it and a ConfigMap's symlink swap) plus polling of its stat as a fallback.
 * A file that cannot be read or parsed keeps the last good node set.
 */
export class FileNodeSource implements NodeSource {
  readonly description: string;
  private current: NodeLike[] = [];
  private isSynced = false;
  private lastText: string | undefined;
  private lastStat = '';
  private hooks: SourceHooks | undefined;
  private watcher: FSWatcher | undefined;
  private poll: NodeJS.Timeout | undefined;
  private pending: NodeJS.Timeout | undefined;
  private reading: Promise<void> = Promise.resolve();
  private readonly pollMs: number;

  constructor(
    private readonly path: string,
    opts: FileSourceOptions = {},
  ) {
    this.description = `file ${path}`;
    this.pollMs = opts.pollMs ?? 2000;
  }

  private async statKey(): Promise<string> {
    try {
      const s = await stat(this.path);
      return `${s.ino}:${s.size}:${s.mtimeMs}`;
    } catch {
      return 'missing';
    }
  }

  private async read(): Promise<void> {
    this.lastStat = await this.statKey();
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (e) {
      throw new Error(`failed to read nodes file "${this.path}": ${(e as Error).message}`, { cause: e });
    }
    if (text === this.lastText && this.isSynced) return;
    const nodes = parseNodeList(text, this.path);
    this.lastText = text;
    this.current = nodes;
    this.isSynced = true;
    this.hooks?.onChange();
  }

  private reread(): void {
    this.reading = this.reading.then(() => this.read()).catch((e: unknown) => this.hooks?.onError(e as Error));
  }

  start(hooks: SourceHooks): void {
    this.hooks = hooks;
    this.reread();
    try {
      this.watcher = fsWatch(dirname(this.path), { persistent: false }, (_event, file) => {
        if (file !== null && file !== basename(this.path) && !String(file).startsWith('..')) return;
        clearTimeout(this.pending);
        this.pending = setTimeout(() => this.reread(), 20);
      });
      this.watcher.on('error', () => {
        this.watcher?.close();
        this.watcher = undefined;
      });
    } catch {
      this.watcher = undefined; // polling alone
    }
    this.poll = setInterval(() => {
      void this.statKey().then((key) => {
        if (key !== this.lastStat) this.reread();
      });
    }, this.pollMs);
  }

  synced(): boolean {
    return this.isSynced;
  }

  nodes(): readonly NodeLike[] {
    return this.current;
  }

  async listOnce(): Promise<NodeLike[]> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (e) {
      throw new Error(`failed to read nodes file "${this.path}": ${(e as Error).message}`, { cause: e });
    }
    return parseNodeList(text, this.path);
  }

  async stop(): Promise<void> {
    this.watcher?.close();
    clearInterval(this.poll);
    clearTimeout(this.pending);
    await this.reading;
  }
}

import { CoreV1Api, type KubeConfig, ListWatch, type V1Node, type V1NodeAddress, Watch } from '@kubernetes/client-node';
import { describeError } from './kubeconfig.js';
import type { NodeSource, SourceHooks } from './node-source.js';
import { backoffDelay } from './scheduler.js';
import type { NodeLike } from './types.js';

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

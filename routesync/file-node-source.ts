import { watch as fsWatch, type FSWatcher } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { isJsonObject } from '../lib/cni/json.js';
import type { NodeSource, SourceHooks } from './node-source.js';
import type { NodeLike } from './types.js';

/**
 * A NodeList (JSON or YAML): `{kind: NodeList|List, items: [...]}` or a bare list of Nodes. Every
 * item must be an object: a file of anything else is a bad file (the caller keeps its last good
 * node set), never an empty cluster that would delete every route. `"items": null` is an empty
 * list, as Go writes one.
 */
export function parseNodeList(text: string, origin: string): NodeLike[] {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    throw new Error(`failed to parse nodes file "${origin}": ${(e as Error).message.split('\n')[0]}`, { cause: e });
  }
  let items: unknown;
  if (Array.isArray(doc)) items = doc;
  else if (isJsonObject(doc) && 'items' in doc) items = doc.items ?? [];
  if (!Array.isArray(items)) {
    throw new Error(`failed to parse nodes file "${origin}": expected a NodeList (an object with "items") or a list of Nodes`);
  }
  const bad = items.findIndex((n) => !isJsonObject(n));
  if (bad >= 0) {
    throw new Error(`failed to parse nodes file "${origin}": item ${bad} is ${JSON.stringify(items[bad]) ?? String(items[bad])}, not a Node object`);
  }
  return items as NodeLike[];
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

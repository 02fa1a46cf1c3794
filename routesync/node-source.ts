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

/**
 * Which entries of a keyed set started, changed or ended since the last update: the daemon logs
 * a rejected node, a route conflict or a missing uplink when it appears, changes or clears — not
 * on every pass (a resync every 30 s would repeat each of them forever).
 */
export interface Changes<V> {
  /** New keys, and keys whose value differs from the last update. */
  started: [string, V][];
  /** Keys of the last update that are gone now, with their last value. */
  ended: [string, V][];
}

export class ChangeTracker<V> {
  private last = new Map<string, V>();

  constructor(private readonly same: (a: V, b: V) => boolean = Object.is) {}

  update(now: ReadonlyMap<string, V>): Changes<V> {
    const started: [string, V][] = [];
    const ended: [string, V][] = [];
    for (const [k, v] of now) {
      const before = this.last.get(k);
      if (!this.last.has(k) || !this.same(before as V, v)) started.push([k, v]);
    }
    for (const [k, v] of this.last) if (!now.has(k)) ended.push([k, v]);
    this.last = new Map(now);
    return { started, ended };
  }
}

import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ChangeTracker } from '../../../routesync/change-tracker.js';
import { type PassRunner, Scheduler } from '../../../routesync/scheduler.js';

/** A runner whose passes are recorded and can be held open or made to fail. */
function recorder() {
  const passes: boolean[] = [];
  const retries: number[] = [];
  const state = { ready: true, fail: 0, crash: 0, hold: undefined as Promise<void> | undefined };
  const runner: PassRunner = {
    ready: () => state.ready,
    run: async (full) => {
      passes.push(full);
      if (state.hold) await state.hold;
      if (state.crash > 0) {
        state.crash -= 1;
        throw new Error('bug');
      }
      if (state.fail > 0) {
        state.fail -= 1;
        return false;
      }
      return true;
    },
    onRetry: (_inMs, attempt) => retries.push(attempt),
  };
  return { runner, passes, retries, state };
}

const OPTS = { debounceMs: 10, resyncMs: 60_000, backoffBaseMs: 100, backoffMaxMs: 400 };

describe('Scheduler', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('debounces a burst into one pass; the first pass is full, later ones as asked', async () => {
    const r = recorder();
    const s = new Scheduler(r.runner, OPTS);
    s.start();
    for (let i = 0; i < 20; i += 1) s.trigger(false);
    await vi.advanceTimersByTimeAsync(50);
    expect(r.passes).toEqual([true]);
    s.trigger(false);
    await vi.advanceTimersByTimeAsync(50);
    s.trigger(true);
    await vi.advanceTimersByTimeAsync(50);
    expect(r.passes).toEqual([true, false, true]);
    await s.stop(100);
  });

  it('runs nothing until the runner is ready; the request waits for the next trigger', async () => {
    const r = recorder();
    r.state.ready = false;
    const s = new Scheduler(r.runner, OPTS);
    s.start();
    s.trigger(false);
    await vi.advanceTimersByTimeAsync(50);
    expect(r.passes).toEqual([]);
    r.state.ready = true;
    s.trigger(false);
    await vi.advanceTimersByTimeAsync(50);
    expect(r.passes).toEqual([true]);
    await s.stop(100);
  });

  it('requests during a pass become one follow-up pass, full if any asked for it', async () => {
    const r = recorder();
    let release!: () => void;
    r.state.hold = new Promise((res) => {
      release = res;
    });
    const s = new Scheduler(r.runner, OPTS);
    s.start();
    s.trigger(false);
    await vi.advanceTimersByTimeAsync(20);
    expect(s.runningForMs()).toBeDefined();
    s.trigger(false);
    s.trigger(true);
    s.trigger(false);
    r.state.hold = undefined;
    release();
    await vi.advanceTimersByTimeAsync(50);
    expect(r.passes).toEqual([true, true]);
    expect(s.runningForMs()).toBeUndefined();
    await s.stop(100);
  });

  it('retries a failed or crashed pass with growing backoff (full), and resets after a success', async () => {
    const r = recorder();
    r.state.fail = 2;
    r.state.crash = 1;
    const crashes: unknown[] = [];
    const s = new Scheduler({ ...r.runner, onCrash: (e) => crashes.push(e) }, OPTS);
    s.start();
    s.trigger(false);
    await vi.advanceTimersByTimeAsync(2000);
    expect(r.passes).toEqual([true, true, true, true]);
    expect(crashes).toHaveLength(1);
    expect(r.retries).toEqual([1, 2, 3]);
    r.state.fail = 1;
    s.trigger(false);
    await vi.advanceTimersByTimeAsync(2000);
    expect(r.retries).toEqual([1, 2, 3, 1]); // the count started over
    await s.stop(100);
  });

  it('a periodic full resync; nothing after stop()', async () => {
    const r = recorder();
    const s = new Scheduler(r.runner, { ...OPTS, resyncMs: 1000 });
    s.start();
    await vi.advanceTimersByTimeAsync(3050);
    expect(r.passes).toEqual([true, true, true]);
    await s.stop(100);
    s.trigger(true);
    await vi.advanceTimersByTimeAsync(3050);
    expect(r.passes).toHaveLength(3);
  });
});

describe('ChangeTracker', () => {
  it('reports what started, changed and ended, and nothing when nothing did', () => {
    const t = new ChangeTracker<string>();
    expect(t.update(new Map([['a', '1'], ['b', '2']]))).toEqual({ started: [['a', '1'], ['b', '2']], ended: [] });
    expect(t.update(new Map([['a', '1'], ['b', '2']]))).toEqual({ started: [], ended: [] });
    expect(t.update(new Map([['a', '9']]))).toEqual({ started: [['a', '9']], ended: [['b', '2']] });
    expect(t.update(new Map())).toEqual({ started: [], ended: [['a', '9']] });
  });

  it('compares values with the given equality', () => {
    const t = new ChangeTracker<{ m: string; n: number }>((x, y) => x.m === y.m);
    t.update(new Map([['k', { m: 'same', n: 1 }]]));
    expect(t.update(new Map([['k', { m: 'same', n: 2 }]])).started).toEqual([]);
    expect(t.update(new Map([['k', { m: 'other', n: 2 }]])).started).toHaveLength(1);
  });
});

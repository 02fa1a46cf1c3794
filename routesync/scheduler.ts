/**
 * When passes run: one at a time; a change notification starts one after a short debounce (a
 * list's burst of events becomes one pass); a periodic full resync; a failed pass is retried with
 * exponential backoff. Requests made while a pass runs are coalesced into one follow-up pass
 * (full if any of them asked for full). Level-triggered: a pass always starts from the whole
 * current state, so which requests were merged never matters.
 */
export interface SchedulerOptions {
  /** Pause after a request before the pass starts (collects a list's burst). */
  debounceMs: number;
  /** Period of the full resync. */
  resyncMs: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
}

export interface PassRunner {
  /** May a pass run now? (The node source has listed once.) Re-asked at the next request. */
  ready(): boolean;
  /** One pass; false: it failed and is retried with backoff. The first pass is always full. */
  run(full: boolean): Promise<boolean>;
  onRetry?(inMs: number, attempt: number): void;
  /** A pass threw (a bug: passes report failures): retried like a failure, never a crash. */
  onCrash?(e: unknown): void;
}

/** Exponential backoff with ±20 % jitter: base, 2·base, 4·base … max. */
export function backoffDelay(attempt: number, baseMs: number, maxMs: number, random: () => number = Math.random): number {
  const raw = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 30));
  return Math.round(raw * (0.8 + 0.4 * random()));
}

export class Scheduler {
  private queued: { full: boolean } | undefined;
  private running: Promise<void> | undefined;
  private runningSince: number | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private resyncTimer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private failures = 0;
  private passes = 0;
  private stopped = true;

  constructor(
    private readonly runner: PassRunner,
    private readonly o: SchedulerOptions,
  ) {}

  start(): void {
    this.stopped = false;
    this.resyncTimer = setInterval(() => this.trigger(true), this.o.resyncMs);
  }

  /** Ask for a pass soon (coalesced); `full` also re-reads the kernel. */
  trigger(full = false): void {
    if (this.stopped) return;
    this.queued = { full: full || (this.queued?.full ?? false) };
    if (this.running || this.debounce) return;
    this.debounce = setTimeout(() => {
      this.debounce = undefined;
      this.kick();
    }, this.o.debounceMs);
  }

  /** How long the running pass has been running, if one is. */
  runningForMs(): number | undefined {
    return this.runningSince === undefined ? undefined : Date.now() - this.runningSince;
  }

  private kick(): void {
    if (this.running || !this.queued || this.stopped) return;
    if (!this.runner.ready()) return; // the request stays queued; the next one starts it
    const full = this.queued.full || this.passes === 0;
    this.queued = undefined;
    this.passes += 1;
    this.runningSince = Date.now();
    this.running = this.runner
      .run(full)
      .then(
        (ok) => {
          clearTimeout(this.retryTimer);
          if (ok) this.failures = 0;
          else this.retry();
        },
        (e: unknown) => {
          this.runner.onCrash?.(e);
          this.retry();
        },
      )
      .finally(() => {
        this.running = undefined;
        this.runningSince = undefined;
        if (this.queued) this.kick();
      });
  }

  private retry(): void {
    const wait = backoffDelay(this.failures, this.o.backoffBaseMs, this.o.backoffMaxMs);
    this.failures += 1;
    this.runner.onRetry?.(wait, this.failures);
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.trigger(true), wait);
  }

  /** Stop timers and requests; wait (bounded) for a running pass. */
  async stop(maxWaitMs: number): Promise<void> {
    this.stopped = true;
    clearTimeout(this.debounce);
    clearTimeout(this.retryTimer);
    clearInterval(this.resyncTimer);
    this.debounce = undefined;
    const running = this.running;
    if (running) await Promise.race([running, new Promise((r) => setTimeout(r, maxWaitMs).unref())]);
  }
}

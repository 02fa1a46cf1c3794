import { getSystemErrorName } from 'node:util';

/**
 * How a child process is started, under exec.ts's runners — the one module that starts them.
 * The plugins' two schedules (`Spawner`: wait for it, or start it on descriptors) go through
 * Node's own spawn bindings (`spawn_sync`, `process_wrap`: what node:child_process is built on)
 * when this Node has them, else through node:child_process; the daemon's (`collect`: pipes, an
 * event loop that never waits) through node:child_process. The reason is start-up cost, paid on
 * every plugin invocation: the first spawn through node:child_process costs a plugin 5–8 ms of CPU, most of
 * it loading the module, which loads net, stream, dgram and the rest of the machinery for pipes,
 * sockets and IPC that a plugin never uses; the bindings cost 1–1.5 ms (a fork and an exec).
 * Only the options child_process itself passes them are used, built here from values that
 * exec.ts's callers have validated; an argument, an environment entry or a file name with a NUL
 * byte (which the C side would cut short) is refused before anything starts, as
 * child_process refuses it.
 */
export type Env = Readonly<Record<string, string | undefined>>;

/** Why a child could not start, or was stopped: an errno name (ENOENT, ETIMEDOUT, ENOBUFS…). */
export interface SpawnError {
  code: string;
  message: string;
}

/** A child that ran to its end: its exit status (null when a signal ended it) or signal. */
export interface ExitStatus {
  status: number | null;
  signal: string | null;
  /** Set when it never started (then status and signal are null), or was killed for a limit. */
  error?: SpawnError;
}

export interface WaitOutcome extends ExitStatus {
  stdout: string;
  stderr: string;
}

export interface Spawner {
  /** Run to completion: stdin from `input`, stdout and stderr collected; killed (SIGTERM) past
   * `timeout` ms or when either output exceeds `maxBuffer` bytes. */
  wait(file: string, args: readonly string[], o: { input: Buffer; env?: Env | undefined; timeout: number; maxBuffer: number }): WaitOutcome;
  /** Start it on these descriptors (stdin, stdout, stderr); settles when it has exited, killed
   * (SIGTERM) past `timeout` ms. */
  start(file: string, args: readonly string[], o: { env?: Env | undefined; stdio: readonly [number, number, number]; timeout: number }): Promise<ExitStatus>;
}

const SIGTERM = 15; // Linux

const failed = (verb: string, file: string, errno: number): SpawnError => {
  const code = getSystemErrorName(errno);
  return { code, message: `${verb} ${file} ${code}` };
};

/** What the C side execs: the argument vector (file first) and the environment as pairs. */
export interface CStrings {
  argv: string[];
  envPairs: string[];
}

/** The C strings of a child, or why not: a NUL byte, where the C side would cut the string short. */
function cStrings(file: string, args: readonly string[], env: Env | undefined): CStrings | SpawnError {
  const envPairs: string[] = [];
  for (const [k, v] of Object.entries(env ?? process.env)) if (v !== undefined) envPairs.push(`${k}=${v}`);
  const argv = [file, ...args];
  if ([...argv, ...envPairs].some((x) => x.includes('\0'))) return { code: 'EINVAL', message: 'an argument or environment entry holds a NUL byte' };
  return { argv, envPairs };
}

/** What a spawn threw or emitted (an errno error, or an option a binding refuses), as an outcome. */
const errorOf = (e: unknown): SpawnError => ({ code: (e as NodeJS.ErrnoException).code ?? 'EINVAL', message: (e as Error).message ?? String(e) });

const neverRan = (error: SpawnError): WaitOutcome => ({ status: null, signal: null, stdout: '', stderr: '', error });

/** A spawner whose arguments and environment are known to be C strings. */
export interface RawSpawner {
  wait(file: string, c: CStrings, o: Parameters<Spawner['wait']>[2]): WaitOutcome;
  start(file: string, c: CStrings, o: Parameters<Spawner['start']>[2]): Promise<ExitStatus>;
}

/** The spawner, refusing a NUL byte before anything starts; what it throws is an outcome too. */
export function checked(raw: RawSpawner): Spawner {
  return {
    wait(file, args, o) {
      const c = cStrings(file, args, o.env);
      if ('code' in c) return neverRan(c);
      try {
        return raw.wait(file, c, o);
      } catch (e) {
        return neverRan(errorOf(e));
      }
    },
    start(file, args, o) {
      const c = cStrings(file, args, o.env);
      if ('code' in c) return Promise.resolve(neverRan(c));
      return new Promise<ExitStatus>((resolve) => resolve(raw.start(file, c, o))).catch((e: unknown) => neverRan(errorOf(e)));
    },
  };
}

interface SpawnSyncBinding {
  spawn(o: Record<string, unknown>): { status?: number | null; signal?: string | null; output?: (Buffer | null)[] | null; error?: number };
}

interface ProcessHandle {
  onexit: (exitCode: number, signalCode: string | null) => void;
  spawn(o: Record<string, unknown>): number;
  kill(signal: number): number;
  close(): void;
}

/** A binding by name, or undefined where this Node has no process.binding or not that one. */
function binding<T>(name: string): T | undefined {
  try {
    return (process as unknown as { binding(n: string): T }).binding(name);
  } catch {
    return undefined;
  }
}

function makeBindingSpawner(): Spawner | undefined {
  const sync = binding<SpawnSyncBinding>('spawn_sync');
  const Process = binding<{ Process: new () => ProcessHandle }>('process_wrap')?.Process;
  if (typeof sync?.spawn !== 'function' || typeof Process !== 'function') return undefined;
  const common = { detached: false, windowsHide: false, windowsVerbatimArguments: false };
  return checked({
    wait(file, c, o) {
      const r = sync.spawn({
        ...common,
        file,
        args: c.argv,
        envPairs: c.envPairs,
        stdio: [
          { type: 'pipe', readable: true, writable: false, input: o.input },
          { type: 'pipe', readable: false, writable: true },
          { type: 'pipe', readable: false, writable: true },
        ],
        timeout: o.timeout,
        maxBuffer: o.maxBuffer,
      });
      return {
        status: typeof r.status === 'number' ? r.status : null,
        signal: r.signal ?? null,
        stdout: r.output?.[1]?.toString('utf8') ?? '',
        stderr: r.output?.[2]?.toString('utf8') ?? '',
        ...(r.error ? { error: failed('spawnSync', file, r.error) } : {}),
      };
    },
    start(file, c, o) {
      return new Promise((resolve) => {
        const child = new Process();
        let timer: NodeJS.Timeout | undefined;
        child.onexit = (exitCode, signalCode) => {
          clearTimeout(timer);
          child.close();
          resolve(exitCode < 0 ? neverRan(failed('spawn', file, exitCode)) : { status: signalCode ? null : exitCode, signal: signalCode || null });
        };
        const err = child.spawn({ ...common, file, args: c.argv, envPairs: c.envPairs, stdio: o.stdio.map((fd) => ({ type: 'fd', fd })) });
        if (err !== 0) {
          child.close();
          resolve(neverRan(failed('spawn', file, err)));
          return;
        }
        timer = setTimeout(() => child.kill(SIGTERM), o.timeout);
      });
    },
  });
}

const childProcess = () => process.getBuiltinModule('node:child_process');

/** The same through node:child_process (loaded on first use), for a Node without the bindings. */
export const childProcessSpawner: Spawner = checked({
  wait(file, c, o) {
    const r = childProcess().spawnSync(file, c.argv.slice(1), { input: o.input, env: o.env as NodeJS.ProcessEnv | undefined, timeout: o.timeout, maxBuffer: o.maxBuffer, encoding: 'utf8' });
    return { status: r.status, signal: r.signal, stdout: r.stdout ?? '', stderr: r.stderr ?? '', ...(r.error ? { error: errorOf(r.error) } : {}) };
  },
  start(file, c, o) {
    return new Promise((resolve) => {
      const child = childProcess().spawn(file, c.argv.slice(1), { env: o.env as NodeJS.ProcessEnv | undefined, stdio: [...o.stdio], timeout: o.timeout });
      // 'error' (not started) and 'exit' both settle; the first one counts.
      child.on('error', (e) => resolve(neverRan(errorOf(e))));
      child.on('exit', (status, signal) => resolve({ status, signal }));
    });
  },
});

/**
 * The daemon's schedule: an asynchronous child on pipes (node:child_process), its input written,
 * its output collected. At `timeout` ms it is killed (SIGTERM) and its pipes are dropped, as
 * spawnSync does (runBlocking): a grandchild holding them open cannot keep the outcome waiting.
 * Settles when the child has exited and the pipes have closed.
 */
export function collect(file: string, args: readonly string[], o: { input: Buffer; env?: Env | undefined; timeout: number }): Promise<WaitOutcome> {
  const c = cStrings(file, args, o.env);
  if ('code' in c) return Promise.resolve(neverRan(c));
  return new Promise<WaitOutcome>((resolve) => {
    const child = childProcess().spawn(file, c.argv.slice(1), { env: o.env as NodeJS.ProcessEnv | undefined, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    let timedOut = false;
    const deadline = setTimeout(() => {
      timedOut = true;
      child.kill();
      child.stdout.destroy();
      child.stderr.destroy();
    }, o.timeout);
    const settle = (r: WaitOutcome) => {
      clearTimeout(deadline);
      resolve(r);
    };
    // 'error' (not started) and 'close' both settle; the first one counts.
    child.on('error', (e) => settle(neverRan(errorOf(e))));
    child.on('close', (status, signal) =>
      settle({
        status,
        signal,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        ...(timedOut ? { error: { code: 'ETIMEDOUT', message: `spawn ${file} ETIMEDOUT` } } : {}),
      }),
    );
    // A child that exits before reading its input must not crash us with EPIPE.
    child.stdin.on('error', () => {});
    child.stdin.end(o.input);
  }).catch((e: unknown) => neverRan(errorOf(e)));
}

/** The spawner on Node's bindings, or undefined where this Node lacks them. */
export const bindingSpawner: Spawner | undefined = makeBindingSpawner();

/** What the runners use: the bindings where this Node has them (the pinned one does). */
export const nodeSpawner: Spawner = bindingSpawner ?? childProcessSpawner;

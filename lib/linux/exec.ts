import { spawn, spawnSync } from 'node:child_process';
import { accessSync, closeSync, constants, fstatSync, openSync, readSync, writeSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The one process runner of podnet (plugins and daemon), tinyexec-like: one call, the outcome
 * as data, `throwOnError` to turn a non-zero exit into a CommandError. Bare `node:child_process`
 * (execa costs a plugin ~15 ms of start-up, architecture.md; it stays in the tests), in two
 * schedules behind one contract:
 * - `run` / `processRunner`: an asynchronous spawn, for the daemon, whose event loop must never
 *   wait for a child;
 * - `runBlocking`: spawnSync, for the plugins, which mostly have nothing else to do while their
 *   child runs. Its first use costs the process ~2 ms of CPU against ~6 ms for the first
 *   asynchronous spawn (three pipes as net.Socket streams, the SIGCHLD machinery), and each later
 *   one ~0.8 ms against ~1.2 ms: what a plugin pays on every pod. `pluginRunner` blocks unless a
 *   call says `background`: then `runInBackground` spawns it asynchronously on anonymous files
 *   (no pipes) and the plugin goes on with its own work meanwhile.
 */
export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  input?: string | Buffer;
  env?: Readonly<Record<string, string | undefined>>;
  /** Milliseconds before the child is killed; default 60 s. */
  timeout?: number;
  /** Reject with a CommandError (stderr in the message) unless the exit code is 0. */
  throwOnError?: boolean;
  /** The caller has other work to do while the child runs: pluginRunner spawns it
   * asynchronously instead of waiting for it (processRunner always does). */
  background?: boolean;
}

export class CommandError extends Error {
  readonly result: RunResult;
  readonly command: string;

  constructor(command: string, result: RunResult) {
    const why = result.stderr.trim() || result.stdout.trim() || `exit code ${result.code}`;
    super(`${command}: ${why}`);
    this.name = 'CommandError';
    this.command = command;
    this.result = result;
  }
}

/** The seam: code that runs tools takes a Runner; tests pass one that records and answers. */
export interface Runner {
  run(file: string, args: readonly string[], opts?: RunOptions): Promise<RunResult>;
}

/**
 * Run a command. Without `throwOnError` it never rejects: the outcome (exit code 127 when the
 * tool is missing) is in the result. A bare name is looked up in PATH and the system dirs.
 */
export async function run(file: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const r = await spawnCollect(file.includes('/') ? file : binary(file), args, opts);
  if (opts.throwOnError && r.code !== 0) throw new CommandError(`${file} ${args.join(' ')}`.slice(0, 200), r);
  return r;
}

export const processRunner: Runner = { run };

/** Most a child may print on stdout or stderr before runBlocking kills it. */
const MAX_OUTPUT = 64 * 1024 * 1024;

/** `run`, to completion before it returns (spawnSync): the same outcomes, the same exit codes. */
export function runBlocking(file: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const r = spawnSync(file.includes('/') ? file : binary(file), args, {
    input: opts.input ?? '',
    env: opts.env as NodeJS.ProcessEnv | undefined,
    timeout: opts.timeout ?? 60_000,
    maxBuffer: MAX_OUTPUT,
    encoding: 'utf8',
  });
  const e = r.error as NodeJS.ErrnoException | undefined;
  let result: RunResult;
  if (e && r.status === null && r.signal === null) {
    // Not started (missing, not executable).
    result = { code: e.code === 'ENOENT' ? 127 : 126, stdout: '', stderr: `${file}: ${e.message}` };
  } else {
    // Killed by a signal, or by the timeout / the output limit (then `e` says which).
    const stderr = e ? `${r.stderr ?? ''}${r.stderr ? '\n' : ''}${file}: ${e.message}` : (r.stderr ?? '');
    result = { code: r.status ?? 128 + (r.signal ? 9 : 0), stdout: r.stdout ?? '', stderr };
  }
  if (opts.throwOnError && result.code !== 0) return Promise.reject(new CommandError(`${file} ${args.join(' ')}`.slice(0, 200), result));
  return Promise.resolve(result);
}

/** Linux's O_TMPFILE (with O_DIRECTORY, as open(2) wants it): an unnamed file in that directory. */
const O_TMPFILE = 0o20000000 | constants.O_DIRECTORY;
/** Where runInBackground's files live (fixed places: TMPDIR is the runtime's, untrusted). */
const TMPFILE_DIRS = ['/dev/shm', '/tmp'];
let tmpfileDir: string | undefined | null = null;

/** An unnamed file (mode 0600, gone with its last descriptor), or undefined where there is none. */
function anonymousFile(): number | undefined {
  const dirs = tmpfileDir === null ? TMPFILE_DIRS : tmpfileDir === undefined ? [] : [tmpfileDir];
  for (const dir of dirs) {
    try {
      const fd = openSync(dir, constants.O_RDWR | O_TMPFILE, 0o600);
      tmpfileDir = dir;
      return fd;
    } catch {
      // not there, read-only, or a file system without O_TMPFILE: the next one
    }
  }
  tmpfileDir = undefined;
  return undefined;
}

function readWhole(fd: number): string {
  const size = Math.min(fstatSync(fd).size, MAX_OUTPUT);
  const buf = Buffer.alloc(size);
  let off = 0;
  while (off < size) {
    const n = readSync(fd, buf, off, size - off, off);
    if (n === 0) break;
    off += n;
  }
  return buf.toString('utf8', 0, off);
}

/**
 * `run` for a child the caller overlaps with other work, with anonymous files for its stdin,
 * stdout and stderr instead of pipes: Node makes each pipe a net.Socket stream, ~4 ms of CPU the
 * first time, where a child on plain descriptors costs what spawnSync does. Falls back to `run`
 * where no directory takes an O_TMPFILE file.
 */
export function runInBackground(file: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const fds: number[] = [];
  for (let i = 0; i < 3; i++) {
    const fd = anonymousFile();
    if (fd === undefined) {
      for (const f of fds) closeSync(f);
      return run(file, args, opts);
    }
    fds.push(fd);
  }
  const [stdin, stdout, stderr] = fds as [number, number, number];
  const input = Buffer.from(opts.input ?? '');
  // At position 0, leaving the shared offset at 0, where the child starts reading.
  for (let off = 0; off < input.length; ) off += writeSync(stdin, input, off, input.length - off, off);
  return new Promise((resolve, reject) => {
    let settled = false;
    const finish = (r: RunResult) => {
      if (settled) return;
      settled = true;
      for (const f of fds) closeSync(f);
      if (opts.throwOnError && r.code !== 0) reject(new CommandError(`${file} ${args.join(' ')}`.slice(0, 200), r));
      else resolve(r);
    };
    let child;
    try {
      child = spawn(file.includes('/') ? file : binary(file), args, {
        env: opts.env as NodeJS.ProcessEnv | undefined,
        stdio: [stdin, stdout, stderr],
        timeout: opts.timeout ?? 60_000,
      });
    } catch (e) {
      finish({ code: 126, stdout: '', stderr: `${file}: ${(e as Error).message}` });
      return;
    }
    child.on('error', (e: NodeJS.ErrnoException) => finish({ code: e.code === 'ENOENT' ? 127 : 126, stdout: '', stderr: `${file}: ${e.message}` }));
    child.on('exit', (code, signal) => finish({ code: code ?? 128 + (signal ? 9 : 0), stdout: readWhole(stdout), stderr: readWhole(stderr) }));
  });
}

/** The plugins' runner: runBlocking, or runInBackground for a call made in the background. */
export const pluginRunner: Runner = { run: (file, args, opts) => (opts?.background ? runInBackground(file, args, opts) : runBlocking(file, args, opts)) };

/** Run through any Runner and throw CommandError unless the exit code is 0 (fakes need not know throwOnError). */
export async function runChecked(runner: Runner, file: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const r = await runner.run(file, args, opts);
  if (r.code !== 0) throw new CommandError(`${file} ${args.join(' ')}`.slice(0, 200), r);
  return r;
}

function spawnCollect(file: string, args: readonly string[], opts: RunOptions): Promise<RunResult> {
  return new Promise((resolve) => {
    let child;
    try {
      child = spawn(file, args, {
        env: opts.env as NodeJS.ProcessEnv | undefined,
        stdio: ['pipe', 'pipe', 'pipe'],
        timeout: opts.timeout ?? 60_000,
      });
    } catch (e) {
      resolve({ code: 126, stdout: '', stderr: `${file}: ${(e as Error).message}` });
      return;
    }
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let settled = false;
    const finish = (r: RunResult) => {
      if (!settled) {
        settled = true;
        resolve(r);
      }
    };
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e: NodeJS.ErrnoException) => {
      finish({ code: e.code === 'ENOENT' ? 127 : 126, stdout: '', stderr: `${file}: ${e.message}` });
    });
    child.on('close', (code, signal) => {
      finish({
        code: code ?? 128 + (signal ? 9 : 0),
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      });
    });
    // A child that exits before reading its input must not crash us with EPIPE.
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
  });
}

/** Directories searched after PATH: runtimes do not always pass a PATH that holds the sbin ones. */
const SYSTEM_DIRS = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];
const found = new Map<string, string | undefined>();

/** Absolute path of a system tool (`ip`, `nft`, …), or undefined when it is not installed. */
export function findBinary(name: string, pathEnv: string | undefined = process.env.PATH): string | undefined {
  const key = `${name}\0${pathEnv ?? ''}`;
  if (found.has(key)) return found.get(key);
  const hit = [...(pathEnv ?? '').split(':').filter(Boolean), ...SYSTEM_DIRS].map((dir) => join(dir, name)).find(isExecutable);
  found.set(key, hit);
  return hit;
}

/** May this process execute `file`? (access(2) with X_OK, as exec's own lookup.) */
export function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Like findBinary, but a missing tool yields its bare name so the spawn reports ENOENT. */
export const binary = (name: string): string => findBinary(name) ?? name;

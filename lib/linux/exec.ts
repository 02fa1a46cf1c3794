import { accessSync, closeSync, constants, fstatSync, openSync, readSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { type ExitStatus, type Spawner, collect, nodeSpawner } from './spawn.js';

/**
 * The one process runner of podnet (plugins and daemon), tinyexec-like: one call, the outcome
 * as data, `throwOnError` to turn a non-zero exit into a CommandError. No execa (it costs a
 * plugin ~15 ms of start-up, architecture.md; it stays in the tests), in two schedules behind
 * one contract:
 * - `run` / `processRunner`: an asynchronous spawn with pipes (node:child_process), for the
 *   daemon, whose event loop must never wait for a child;
 * - `runBlocking`: for the plugins, which mostly have nothing else to do while their child
 *   runs: the child runs to its end before the call returns. `pluginRunner` blocks unless a call
 *   says `background`: then `runInBackground` starts it on anonymous files (no pipes: Node makes
 *   each pipe a net.Socket stream) and the plugin goes on with its own work meanwhile.
 * spawn.ts starts the children: the plugins' through Node's spawn bindings (a plugin never loads
 * node:child_process, ~5 ms of CPU on every invocation), the daemon's through node:child_process.
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

/** What every schedule below shares: the command's text in errors, a missing or refused
 * executable (127 / 126), an exit by signal (128 + 9), the default timeout and output limit. */
const DEFAULT_TIMEOUT_MS = 60_000;
/** Most a child may print on stdout or stderr before runBlocking kills it. */
const MAX_OUTPUT = 64 * 1024 * 1024;
const commandText = (file: string, args: readonly string[]) => `${file} ${args.join(' ')}`.slice(0, 200);
const executable = (file: string) => (file.includes('/') ? file : binary(file));
const notStarted = (file: string, e: { code?: string | undefined; message: string }): RunResult => ({ code: e.code === 'ENOENT' ? 127 : 126, stdout: '', stderr: `${file}: ${e.message}` });
const exitCode = (code: number | null, signal: string | null): number => code ?? 128 + (signal ? 9 : 0);
const inputOf = (opts: RunOptions): Buffer => Buffer.from(opts.input ?? '');
/** A child that never started (127 / 126), or its exit code with what stopped it (a timeout, the
 * output limit) after its stderr. */
function ended(file: string, r: ExitStatus, stdout: () => string, stderr: () => string): RunResult {
  if (r.error && r.status === null && r.signal === null) return notStarted(file, r.error);
  const err = stderr();
  return { code: exitCode(r.status, r.signal), stdout: stdout(), stderr: r.error ? `${err}${err ? '\n' : ''}${file}: ${r.error.message}` : err };
}

/** The result, or a CommandError for a non-zero exit when the caller asked for one. */
function outcome(file: string, args: readonly string[], opts: RunOptions, r: RunResult): RunResult {
  if (opts.throwOnError && r.code !== 0) throw new CommandError(commandText(file, args), r);
  return r;
}

/**
 * Run a command. Without `throwOnError` it never rejects: the outcome (exit code 127 when the
 * tool is missing) is in the result. A bare name is looked up in PATH and the system dirs.
 */
export async function run(file: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const r = await collect(executable(file), args, { input: inputOf(opts), env: opts.env, timeout: opts.timeout ?? DEFAULT_TIMEOUT_MS });
  return outcome(file, args, opts, ended(file, r, () => r.stdout, () => r.stderr));
}

export const processRunner: Runner = { run };

/** `run`, to completion before it returns (no await inside, so the call itself blocks): the
 * same outcomes, the same exit codes. */
export async function runBlocking(file: string, args: readonly string[], opts: RunOptions = {}, spawner: Spawner = nodeSpawner): Promise<RunResult> {
  const r = spawner.wait(executable(file), args, { input: inputOf(opts), env: opts.env, timeout: opts.timeout ?? DEFAULT_TIMEOUT_MS, maxBuffer: MAX_OUTPUT });
  return outcome(file, args, opts, ended(file, r, () => r.stdout, () => r.stderr));
}

/** Linux's O_TMPFILE (with O_DIRECTORY, as open(2) wants it): an unnamed file in that directory. */
const O_TMPFILE = 0o20000000 | constants.O_DIRECTORY;
/** Where runInBackground's files may live (fixed places: TMPDIR is the runtime's, untrusted);
 * narrowed to the one that worked, emptied when none did. */
let tmpfileDirs: readonly string[] = ['/dev/shm', '/tmp'];

/** An unnamed file (mode 0600, gone with its last descriptor), or undefined where there is none. */
function anonymousFile(): number | undefined {
  for (const dir of tmpfileDirs) {
    try {
      const fd = openSync(dir, constants.O_RDWR | O_TMPFILE, 0o600);
      tmpfileDirs = [dir];
      return fd;
    } catch {
      // not there, read-only, or a file system without O_TMPFILE: the next one
    }
  }
  tmpfileDirs = [];
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
 * first time, where a child on plain descriptors costs what a blocking one does. Falls back to
 * `run` where no directory takes an O_TMPFILE file.
 */
export async function runInBackground(file: string, args: readonly string[], opts: RunOptions = {}, spawner: Spawner = nodeSpawner): Promise<RunResult> {
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
  try {
    const input = inputOf(opts);
    // At position 0, leaving the shared offset at 0, where the child starts reading.
    for (let off = 0; off < input.length; ) off += writeSync(stdin, input, off, input.length - off, off);
    const r = await spawner.start(executable(file), args, { env: opts.env, stdio: [stdin, stdout, stderr], timeout: opts.timeout ?? DEFAULT_TIMEOUT_MS });
    return outcome(file, args, opts, ended(file, r, () => readWhole(stdout), () => readWhole(stderr)));
  } finally {
    for (const f of fds) closeSync(f);
  }
}

/** The plugins' runner: runBlocking, or runInBackground for a call made in the background. */
export const pluginRunner: Runner = { run: (file, args, opts) => (opts?.background ? runInBackground(file, args, opts) : runBlocking(file, args, opts)) };

/** Run through any Runner and throw CommandError unless the exit code is 0 (fakes need not know throwOnError). */
export async function runChecked(runner: Runner, file: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return outcome(file, args, { throwOnError: true }, await runner.run(file, args, opts));
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

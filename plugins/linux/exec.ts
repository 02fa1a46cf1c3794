import { spawnSync } from 'node:child_process';

/**
 * The one process runner on the plugin path. Synchronous on purpose: a plugin does one thing at
 * a time, and `spawnSync` starts ~15 ms faster than execa (architecture.md, start-up budget).
 * The daemon, lab and tests use execa instead.
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

/** Run a command and return its exit code and output, whatever the code. */
export function runSync(file: string, args: readonly string[], opts: RunOptions = {}): RunResult {
  const r = spawnSync(file, args, {
    input: opts.input ?? '',
    env: opts.env as NodeJS.ProcessEnv | undefined,
    encoding: 'utf8',
    timeout: opts.timeout ?? 60_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.error) {
    const code = (r.error as NodeJS.ErrnoException).code;
    return { code: code === 'ENOENT' ? 127 : 126, stdout: r.stdout ?? '', stderr: `${file}: ${r.error.message}` };
  }
  return { code: r.status ?? 128 + (r.signal ? 9 : 0), stdout: r.stdout, stderr: r.stderr };
}

/** Run a command; throw CommandError (stderr in the message) unless it exits 0. */
export function run(file: string, args: readonly string[], opts: RunOptions = {}): string {
  const r = runSync(file, args, opts);
  if (r.code !== 0) throw new CommandError(`${file} ${args.join(' ')}`.slice(0, 200), r);
  return r.stdout;
}

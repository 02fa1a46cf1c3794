import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { join } from 'node:path';

/**
 * The one process runner on the plugin path, on bare `node:child_process.spawn` (execa costs
 * ~15 ms of start-up, architecture.md). Asynchronous, so independent kernel work overlaps: the
 * node batch runs while the IPAM answers, a veth is deleted (~20 ms in the kernel) while the
 * address is released. The daemon, lab and tests use execa instead (ip-async.ts).
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

/** Run a command; never rejects: the outcome (exit code 127 when it is missing) is in the result. */
export function run(file: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
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
  let hit: string | undefined;
  for (const dir of [...(pathEnv ?? '').split(':').filter(Boolean), ...SYSTEM_DIRS]) {
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      hit = candidate;
      break;
    } catch {
      // not here
    }
  }
  found.set(key, hit);
  return hit;
}

/** Like findBinary, but a missing tool yields its bare name so the spawn reports ENOENT. */
export const binary = (name: string): string => findBinary(name) ?? name;

import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { join } from 'node:path';
import type { RunOptions, RunResult } from './exec.js';

/**
 * Asynchronous counterpart of exec.ts's `runSync` for the plugin path, on bare
 * `node:child_process.spawn` (no execa: it costs ~15 ms of start-up). A plugin uses it to let
 * independent kernel work overlap, e.g. deleting a veth (the kernel needs ~20 ms to unregister a
 * device) while the IPAM releases the address. Never rejects: the outcome is in the result.
 */
export function runAsync(file: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
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

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import * as esbuild from 'esbuild';
import { REPO_ROOT } from './env.js';
import { type FakeNode, type RequestRecord, kubeconfigFor } from './fake-apiserver.js';

/**
 * Runs test/helpers/fake-apiserver-cli.ts as a child process, optionally inside a network
 * namespace, and drives it over stdio. Used where the daemon under test lives in a namespace of
 * a lab (integration tests, bench) and so cannot reach a server in the test's own process.
 */

/**
 * Bundle the CLI into a fresh temp dir; the caller removes the dir once the process has loaded it
 * (after its "ready" line), so nothing is left behind however the test process ends.
 */
async function bundleCli(): Promise<{ file: string; dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'prs-fakeapi-'));
  const file = join(dir, 'fake-apiserver-cli.mjs');
  await esbuild.build({
    entryPoints: [join(REPO_ROOT, 'test', 'helpers', 'fake-apiserver-cli.ts')],
    outfile: file,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node22',
    logLevel: 'warning',
  });
  return { file, dir };
}

export class FakeApiServerProcess {
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

  private constructor(
    private readonly child: ChildProcess,
    readonly url: string,
  ) {
    const rl = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    rl.on('line', (line) => {
      let msg: { id?: number; ok?: boolean; result?: unknown; error?: string };
      try {
        msg = JSON.parse(line);
      } catch {
        return;
      }
      const w = msg.id === undefined ? undefined : this.waiting.get(msg.id);
      if (!w || msg.id === undefined) return;
      this.waiting.delete(msg.id);
      if (msg.ok) w.resolve(msg.result);
      else w.reject(new Error(`fake apiserver: ${msg.error}`));
    });
  }

  static async spawn(opts: { netns?: string; host: string; port: number; goneAs?: 'event' | 'status' }): Promise<FakeApiServerProcess> {
    const cli = await bundleCli();
    const args = [cli.file, '--host', opts.host, '--port', String(opts.port), ...(opts.goneAs ? ['--gone-as', opts.goneAs] : [])];
    const child = opts.netns
      ? spawn('ip', ['netns', 'exec', opts.netns, process.execPath, ...args], { stdio: ['pipe', 'pipe', 'inherit'] })
      : spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'inherit'] });
    const url = await new Promise<string>((resolve, reject) => {
      const rl = createInterface({ input: child.stdout as NodeJS.ReadableStream });
      const timer = setTimeout(() => reject(new Error('fake apiserver did not start within 20 s')), 20_000);
      rl.once('line', (line) => {
        clearTimeout(timer);
        rl.close();
        try {
          resolve((JSON.parse(line) as { url: string }).url);
        } catch (e) {
          reject(e as Error);
        }
      });
      child.once('exit', (code) => reject(new Error(`fake apiserver exited with ${code}`)));
    }).finally(() => rmSync(cli.dir, { recursive: true, force: true }));
    return new FakeApiServerProcess(child, url);
  }

  private call<T>(op: string, ...args: unknown[]): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.child.stdin?.write(`${JSON.stringify({ id, op, args })}\n`);
    });
  }

  kubeconfig(): string {
    return kubeconfigFor(this.url);
  }

  upsert(n: FakeNode) {
    return this.call<FakeNode>('upsert', n);
  }
  remove(name: string) {
    return this.call<boolean>('remove', name);
  }
  setNodes(nodes: FakeNode[]) {
    return this.call<void>('setNodes', nodes);
  }
  seed(nodes: FakeNode[]) {
    return this.call<void>('seed', nodes);
  }
  compact() {
    return this.call<void>('compact');
  }
  bookmark() {
    return this.call<void>('bookmark');
  }
  failNext(n: number, code = 500) {
    return this.call<void>('failNext', n, code);
  }
  stop() {
    return this.call<void>('stop');
  }
  start() {
    return this.call<void>('start');
  }
  counts() {
    return this.call<{ lists: number; watches: number }>('counts');
  }
  get(name: string) {
    return this.call<FakeNode | null>('get', name);
  }
  requestsSince(i: number) {
    return this.call<RequestRecord[]>('requestsSince', i);
  }

  async close(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise<void>((r) => this.child.once('exit', () => r()));
    this.child.stdin?.end();
    const t = setTimeout(() => this.child.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(t);
  }
}

import { execa } from 'execa';
import { uniqueTag } from './env.js';

/**
 * Network namespaces for tests: a "node" namespace stands in for a Kubernetes node, so plugins
 * never change the root namespace. Every namespace is tracked and removed by `destroy()`, which
 * tests call from afterEach/afterAll so cleanup runs even when the test fails.
 */
export class Netns {
  readonly name: string;
  readonly path: string;

  private constructor(name: string) {
    this.name = name;
    this.path = `/var/run/netns/${name}`;
  }

  /** Create a namespace named `<prefix><unique>` (or exactly `name`) with loopback up. */
  static async create(prefix = 'pnt', opts: { name?: string } = {}): Promise<Netns> {
    const ns = new Netns(opts.name ?? uniqueTag(prefix));
    await execa('ip', ['netns', 'add', ns.name]);
    live.add(ns);
    await ns.exec('ip', ['link', 'set', 'lo', 'up']);
    return ns;
  }

  /** Run a command inside the namespace; throws on non-zero exit. */
  exec(file: string, args: readonly string[], opts: { input?: string; env?: Record<string, string>; reject?: boolean; timeout?: number } = {}) {
    return execa('ip', ['netns', 'exec', this.name, file, ...args], {
      ...(opts.input !== undefined ? { input: opts.input } : {}),
      ...(opts.env ? { env: opts.env } : {}),
      reject: opts.reject ?? true,
      timeout: opts.timeout ?? 60_000,
    });
  }

  /** `ip -j <args>` inside the namespace, decoded. */
  async ipJson<T = Record<string, unknown>[]>(args: readonly string[]): Promise<T> {
    const r = await this.exec('ip', ['-j', ...args]);
    return (r.stdout.trim() ? JSON.parse(r.stdout) : []) as T;
  }

  async destroy(): Promise<void> {
    live.delete(this);
    await execa('ip', ['netns', 'del', this.name], { reject: false });
  }
}

const live = new Set<Netns>();

/** Remove every namespace this process created and has not removed yet. */
export async function destroyAllNetns(): Promise<void> {
  await Promise.all([...live].map((ns) => ns.destroy()));
}

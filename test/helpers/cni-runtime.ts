import { spawnSync } from 'node:child_process';
import { existsSync, realpathSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { runPlugin } from './cni.js';

/**
 * A small container runtime's CNI half, as libcni does it (the library containerd and CRI-O
 * use): pick the conflist's version the way the chosen libcni line does, run each plugin in
 * order with the previous result as prevResult, cache the final result, and on DEL run the
 * plugins in reverse with the cached result. Plugins run inside the node's network namespace
 * (`ip netns exec <node>`). Used by the e2e lab and the conf/ example tests.
 *
 * Two libcni lines behave differently, and real nodes run both (measured through containerd's
 * CRI in test/e2e/cri.test.ts):
 * - `1.1` (containerd 1.6 and 1.7): `cniVersion` goes to every plugin as is, `cniVersions` is
 *   ignored, and a result in a version it does not know (1.1.0) fails the ADD; no GC, no STATUS.
 * - `>=1.2` (containerd 2, the default here): the highest of `cniVersion` ∪ `cniVersions` it
 *   knows (≤ 1.1.0), without asking the plugins; STATUS and GC reach the plugins only at 1.1.0.
 * Neither asks the plugins' VERSION: a chain whose plugin lacks the picked version fails there.
 */

export type LibcniLine = '1.1' | '>=1.2';

export interface PluginConf {
  type: string;
  capabilities?: Record<string, boolean>;
  [key: string]: unknown;
}

export interface NetworkList {
  cniVersion: string;
  cniVersions?: string[];
  name: string;
  plugins: PluginConf[];
}

export interface RuntimeConf {
  containerId: string;
  /** Path of the pod's network namespace. */
  netns: string;
  ifName: string;
  args?: [string, string][];
  /** Offered to plugins whose `capabilities` ask for the key (libcni's capabilityArgs). */
  capabilityArgs?: Record<string, unknown>;
}

export class CniPluginError extends Error {
  constructor(
    readonly plugin: string,
    readonly verb: string,
    readonly code: number,
    msg: string,
  ) {
    super(`plugin ${plugin} ${verb} failed (code ${code}): ${msg}`);
  }
}

/** The spec versions each libcni line knows (libcni 1.1's version.Current() is 1.0.0). */
export const LIBCNI_VERSIONS: Readonly<Record<LibcniLine, readonly string[]>> = {
  '1.1': ['0.1.0', '0.2.0', '0.3.0', '0.3.1', '0.4.0', '1.0.0'],
  '>=1.2': ['0.1.0', '0.2.0', '0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'],
};

const cmpVersion = (a: string, b: string) => a.localeCompare(b, undefined, { numeric: true });

/**
 * The version a libcni line runs the chain at. `1.1`: `cniVersion` as is. `>=1.2` (libcni's
 * conf.go): when `cniVersions` is there, the highest of it and `cniVersion` that is not above the
 * library's own spec version (1.1.0); otherwise `cniVersion`. The plugins are not asked.
 */
export function pickVersion(list: NetworkList, libcni: LibcniLine = '>=1.2'): string {
  if (libcni === '1.1' || !list.cniVersions) return list.cniVersion;
  const current = LIBCNI_VERSIONS[libcni].at(-1)!;
  const offered = [...list.cniVersions, list.cniVersion].filter((v) => cmpVersion(v, current) <= 0);
  return offered.sort(cmpVersion).at(-1) ?? list.cniVersion;
}

export interface CniRuntimeOptions {
  /** CNI_PATH. */
  binDirs: string[];
  /** Where ADD results are cached for CHECK and DEL. */
  cacheDir: string;
  /**
   * Network namespace (name) the plugins run in: the node. Left out only for fake plugins that
   * touch no kernel state (the runtime's own unit tests).
   */
  node?: string;
  /** Which libcni line to behave like (default `>=1.2`, containerd 2's). */
  libcni?: LibcniLine;
}

/** supportedVersions per plugin executable (resolved path), asked once per process. */
const versionCache = new Map<string, string[]>();

/**
 * The spec versions a plugin executable supports, asked the way libcni asks (CNI_COMMAND=VERSION),
 * once per process. `argv0` is the name it runs as (podnet's multi-call executable needs it).
 */
export function pluginVersions(file: string, argv0 = basename(file)): string[] {
  const real = realpathSync(file);
  let v = versionCache.get(real);
  if (!v) {
    const r = spawnSync(real, [], { input: '{}', env: { CNI_COMMAND: 'VERSION' }, encoding: 'utf8', argv0 });
    try {
      v = (JSON.parse(r.stdout) as { supportedVersions?: string[] }).supportedVersions ?? [];
    } catch {
      v = [];
    }
    versionCache.set(real, v);
  }
  return v;
}

export class CniRuntime {
  readonly libcni: LibcniLine;

  constructor(private readonly opts: CniRuntimeOptions) {
    this.libcni = opts.libcni ?? '>=1.2';
  }

  /** A plugin's supportedVersions (CNI VERSION), asked once. The runtime itself never asks. */
  pluginVersions(type: string): string[] {
    return pluginVersions(this.findPlugin(type), type);
  }

  /** The version this runtime runs the list at. */
  version(list: NetworkList): string {
    return pickVersion(list, this.libcni);
  }

  /**
   * ADD through the chain. A result in a version this libcni line does not know fails the ADD
   * with libcni's words (what containerd 1.6 reports for a 1.1.0 result). As in libcni, a failed
   * ADD is not cleaned up here: the caller runs DEL, as containerd does.
   */
  async add(list: NetworkList, rt: RuntimeConf): Promise<Record<string, unknown>> {
    const version = this.version(list);
    let prev: unknown;
    for (const plugin of list.plugins) {
      const out = await this.exec('ADD', plugin, this.pluginConf(list, plugin, version, rt, prev), rt);
      prev = JSON.parse(out);
      const got = (prev as { cniVersion?: unknown }).cniVersion;
      if (typeof got !== 'string' || !LIBCNI_VERSIONS[this.libcni].includes(got)) {
        throw new CniPluginError(plugin.type, 'ADD', -1, `plugin type="${plugin.type}" failed (add): unsupported CNI result version "${String(got)}"`);
      }
    }
    await this.saveCache(list, rt, prev);
    return prev as Record<string, unknown>;
  }

  /** CHECK every plugin with the cached result; `tolerate` may excuse a known plugin failure. */
  async check(list: NetworkList, rt: RuntimeConf, tolerate: (e: CniPluginError) => boolean = () => false): Promise<void> {
    const version = this.version(list);
    const cached = await this.loadCache(list, rt);
    if (cached === undefined) throw new Error(`no cached result for ${rt.containerId}/${rt.ifName} in network ${list.name}`);
    for (const plugin of list.plugins) {
      try {
        await this.exec('CHECK', plugin, this.pluginConf(list, plugin, version, rt, cached), rt);
      } catch (e) {
        if (!(e instanceof CniPluginError && tolerate(e))) throw e;
      }
    }
  }

  async del(list: NetworkList, rt: RuntimeConf): Promise<void> {
    const version = this.version(list);
    const cached = await this.loadCache(list, rt);
    for (const plugin of [...list.plugins].reverse()) {
      await this.exec('DEL', plugin, this.pluginConf(list, plugin, version, rt, cached), rt);
    }
    await rm(this.cacheFile(list, rt), { force: true });
  }

  /**
   * libcni's GCNetworkList: DEL every cached attachment of the network that is not in `valid`,
   * then, when the list runs at 1.1.0 or later, GC to every plugin with the valid attachments
   * (under both keys libcni sends: `cni.dev/valid-attachments` and the legacy `cni.dev/attachments`).
   */
  async gc(list: NetworkList, valid: { containerID: string; ifname: string }[]): Promise<void> {
    this.requireLibcni12('GC');
    const keep = new Set(valid.map((a) => `${a.containerID}/${a.ifname}`));
    for (const entry of await this.cachedAttachments(list)) {
      if (keep.has(`${entry.containerId}/${entry.ifName}`)) continue;
      await this.del(list, { containerId: entry.containerId, ifName: entry.ifName, netns: entry.netns ?? '' });
    }
    const version = this.version(list);
    if (cmpVersion(version, '1.1.0') < 0) return;
    for (const plugin of list.plugins) {
      const conf = { ...plugin, name: list.name, cniVersion: version, 'cni.dev/valid-attachments': valid, 'cni.dev/attachments': valid };
      await this.exec('GC', plugin, conf, undefined);
    }
  }

  /** libcni's GetStatusNetworkList: STATUS to every plugin, only for lists at 1.1.0 or later. */
  async status(list: NetworkList): Promise<void> {
    this.requireLibcni12('STATUS');
    const version = this.version(list);
    if (cmpVersion(version, '1.1.0') < 0) return;
    for (const plugin of list.plugins) await this.exec('STATUS', plugin, { ...plugin, name: list.name, cniVersion: version }, undefined);
  }

  private requireLibcni12(verb: string): void {
    if (this.libcni === '1.1') throw new Error(`libcni 1.1 has no ${verb} (it came with libcni 1.2)`);
  }

  private pluginConf(list: NetworkList, plugin: PluginConf, version: string, rt: RuntimeConf, prev: unknown): Record<string, unknown> {
    const conf: Record<string, unknown> = { ...plugin, name: list.name, cniVersion: version };
    const runtimeConfig: Record<string, unknown> = {};
    for (const [cap, on] of Object.entries(plugin.capabilities ?? {})) {
      if (on && rt.capabilityArgs && cap in rt.capabilityArgs) runtimeConfig[cap] = rt.capabilityArgs[cap];
    }
    if (Object.keys(runtimeConfig).length) conf.runtimeConfig = runtimeConfig;
    if (prev !== undefined) conf.prevResult = prev;
    return conf;
  }

  private async exec(verb: string, plugin: PluginConf, conf: unknown, rt: RuntimeConf | undefined): Promise<string> {
    const r = await runPlugin(
      this.findPlugin(plugin.type),
      {
        command: verb,
        path: this.opts.binDirs.join(':'),
        ...(this.opts.node ? { node: this.opts.node } : {}),
        ...(rt
          ? { containerId: rt.containerId, netns: rt.netns, ifName: rt.ifName, args: (rt.args ?? []).map(([k, v]) => `${k}=${v}`).join(';') }
          : {}),
      },
      conf,
    );
    if (r.code !== 0) {
      const e = r.json as { code?: unknown; msg?: unknown; details?: unknown } | undefined;
      if (typeof e?.code === 'number' && typeof e.msg === 'string') {
        throw new CniPluginError(plugin.type, verb, e.code, typeof e.details === 'string' && e.details ? `${e.msg}; ${e.details}` : e.msg);
      }
      throw new CniPluginError(plugin.type, verb, -1, r.stderr.trim() || r.stdout.trim());
    }
    return r.stdout;
  }

  /** libcni's FindInPath: the first CNI_PATH directory that has the plugin. */
  private findPlugin(type: string): string {
    const file = this.opts.binDirs.map((d) => join(d, type)).find((f) => existsSync(f));
    if (!file) throw new CniPluginError(type, 'find', -1, `not found in ${this.opts.binDirs.join(':')}`);
    return file;
  }

  private cacheFile(list: NetworkList, rt: RuntimeConf): string {
    return join(this.opts.cacheDir, 'results', `${list.name}-${rt.containerId}-${rt.ifName}`);
  }

  private async saveCache(list: NetworkList, rt: RuntimeConf, result: unknown): Promise<void> {
    await mkdir(join(this.opts.cacheDir, 'results'), { recursive: true });
    const entry = { kind: 'cniCacheV1', containerId: rt.containerId, ifName: rt.ifName, networkName: list.name, netns: rt.netns, config: list, result };
    await writeFile(this.cacheFile(list, rt), JSON.stringify(entry));
  }

  /** The network's entries in the result cache (libcni's GetCachedAttachments). */
  private async cachedAttachments(list: NetworkList): Promise<{ containerId: string; ifName: string; netns?: string }[]> {
    const dir = join(this.opts.cacheDir, 'results');
    let files: string[];
    try {
      files = await readdir(dir);
    } catch {
      return [];
    }
    const out: { containerId: string; ifName: string; netns?: string }[] = [];
    for (const f of files) {
      try {
        const e = JSON.parse(await readFile(join(dir, f), 'utf8')) as { containerId: string; ifName: string; networkName: string; netns?: string };
        if (e.networkName === list.name) out.push(e);
      } catch {
        // not a cache entry
      }
    }
    return out;
  }

  private async loadCache(list: NetworkList, rt: RuntimeConf): Promise<unknown> {
    try {
      return (JSON.parse(await readFile(this.cacheFile(list, rt), 'utf8')) as { result: unknown }).result;
    } catch {
      return undefined;
    }
  }
}

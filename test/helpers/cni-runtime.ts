import { spawnSync } from 'node:child_process';
import { existsSync, realpathSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { runPlugin } from './cni.js';

/**
 * A small container runtime's CNI half, as libcni does it (the library containerd and CRI-O
 * use): pick the conflist's version, run each plugin in order with the previous result as
 * prevResult, cache the final result, and on DEL run the plugins in reverse with the cached
 * result. Plugins run inside the node's network namespace (`ip netns exec <node>`). Used by the
 * e2e lab and the conf/ example tests.
 */

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

const RUNTIME_VERSIONS = ['0.1.0', '0.2.0', '0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'];

const cmpVersion = (a: string, b: string) => a.localeCompare(b, undefined, { numeric: true });

/**
 * libcni: the highest of cniVersion ∪ cniVersions that the runtime supports. This runtime also
 * requires every plugin of the chain to support it (libcni does not check, and a chain with
 * Debian 12's portmap, which stops at 1.0.0, would fail at 1.1.0; kind ships a newer portmap).
 */
export function pickVersion(list: NetworkList, pluginVersions: (type: string) => string[] = () => RUNTIME_VERSIONS): string {
  const offered = [list.cniVersion, ...(list.cniVersions ?? [])].filter(
    (v) => RUNTIME_VERSIONS.includes(v) && list.plugins.every((p) => pluginVersions(p.type).includes(v)),
  );
  const best = offered.sort(cmpVersion).at(-1);
  if (!best) throw new Error(`network ${list.name}: no cniVersion in ${JSON.stringify([list.cniVersion, ...(list.cniVersions ?? [])])} that the runtime and every plugin support`);
  return best;
}

export interface CniRuntimeOptions {
  /** CNI_PATH. */
  binDirs: string[];
  /** Where ADD results are cached for CHECK and DEL. */
  cacheDir: string;
  /** Network namespace (name) the plugins run in: the node. */
  node: string;
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
  constructor(private readonly opts: CniRuntimeOptions) {}

  /** A plugin's supportedVersions (CNI VERSION), asked once. */
  pluginVersions(type: string): string[] {
    return pluginVersions(this.findPlugin(type), type);
  }

  private version(list: NetworkList): string {
    return pickVersion(list, (t) => this.pluginVersions(t));
  }

  async add(list: NetworkList, rt: RuntimeConf): Promise<Record<string, unknown>> {
    const version = this.version(list);
    let prev: unknown;
    for (const plugin of list.plugins) {
      const out = await this.exec('ADD', plugin, this.pluginConf(list, plugin, version, rt, prev), rt);
      prev = JSON.parse(out);
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

  /** GC is a 1.1.0 verb: it goes to the plugins that speak 1.1.0 (the others keep no state to collect). */
  async gc(list: NetworkList, valid: { containerID: string; ifname: string }[]): Promise<void> {
    const version = '1.1.0';
    if (![list.cniVersion, ...(list.cniVersions ?? [])].includes(version)) return;
    for (const plugin of list.plugins.filter((p) => this.pluginVersions(p.type).includes(version))) {
      const conf = { ...plugin, name: list.name, cniVersion: version, 'cni.dev/valid-attachments': valid };
      await this.exec('GC', plugin, conf, undefined);
    }
  }

  async status(list: NetworkList): Promise<void> {
    const version = this.version(list);
    for (const plugin of list.plugins) await this.exec('STATUS', plugin, { ...plugin, name: list.name, cniVersion: version }, undefined);
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
        node: this.opts.node,
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
    const entry = { kind: 'cniCacheV1', containerId: rt.containerId, ifName: rt.ifName, networkName: list.name, config: list, result };
    await writeFile(this.cacheFile(list, rt), JSON.stringify(entry));
  }

  private async loadCache(list: NetworkList, rt: RuntimeConf): Promise<unknown> {
    try {
      return (JSON.parse(await readFile(this.cacheFile(list, rt), 'utf8')) as { result: unknown }).result;
    } catch {
      return undefined;
    }
  }
}

import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import type { Netns } from '../../helpers/netns.js';

/** Debian's golang-github-appc-cni-dev puts the CNI library here, for GOPATH-mode builds. */
export const GOCODE = '/usr/share/gocode';
/**
 * The GOPATH the driver is built with: Debian's by default. `PODNET_LIBCNI_GOPATH` (a GOPATH
 * list) lets a developer build the same suite against another libcni source tree.
 */
export const LIBCNI_GOPATH = process.env.PODNET_LIBCNI_GOPATH || GOCODE;
const CNI_SRC =
  LIBCNI_GOPATH.split(':')
    .map((p) => join(p, 'src', 'github.com', 'containernetworking', 'cni'))
    .find((d) => existsSync(join(d, 'libcni', 'api.go'))) ?? join(GOCODE, 'src', 'github.com', 'containernetworking', 'cni');
const DRIVER_SRC = join(import.meta.dirname, 'libcni-driver');

export const hasLibcniSource = existsSync(join(CNI_SRC, 'libcni', 'api.go'));

/** Whether this libcni has a CNIConfig method (GCNetworkList and GetStatusNetworkList came in 1.2). */
export function libcniHasMethod(name: string): boolean {
  try {
    return readFileSync(join(CNI_SRC, 'libcni', 'api.go'), 'utf8').includes(`func (c *CNIConfig) ${name}(`);
  } catch {
    return false;
  }
}

/**
 * The spec versions this libcni knows, read from its source (`All = PluginSupports(...)` in
 * pkg/version) so test cases can be declared before anything is built. The built driver reports
 * the same list at run time (`info`), and the suite checks the two agree.
 */
export function libcniSourceVersions(): string[] {
  try {
    const src = readFileSync(join(CNI_SRC, 'pkg', 'version', 'version.go'), 'utf8');
    const m = /\bAll\s*=\s*PluginSupports\(([^)]*)\)/.exec(src);
    return m ? [...m[1]!.matchAll(/"([^"]+)"/g)].map((v) => v[1]!) : [];
  } catch {
    return [];
  }
}

/** The Debian version of the library package, for the record. */
export async function libcniPackageVersion(): Promise<string> {
  const r = await execa('dpkg-query', ['-W', '-f', '${Version}', 'golang-github-appc-cni-dev'], { reject: false });
  return r.exitCode === 0 ? r.stdout.trim() : 'unknown';
}

/**
 * Build the driver offline against Debian's library: GOPATH mode, no module download, no cgo
 * (so no C compiler is needed), a build cache inside `outDir`. Returns the executable's path.
 */
export async function buildDriver(outDir: string): Promise<string> {
  const out = join(outDir, 'libcni-driver');
  const cache = join(outDir, 'gocache');
  mkdirSync(cache, { recursive: true });
  await execa('go', ['build', '-o', out, '.'], {
    cwd: DRIVER_SRC,
    extendEnv: false,
    env: {
      PATH: `${process.env.PATH ?? ''}:/usr/lib/go/bin`,
      HOME: outDir,
      GO111MODULE: 'off',
      GOPATH: LIBCNI_GOPATH,
      GOCACHE: cache,
      GOFLAGS: '',
      CGO_ENABLED: '0',
    },
    timeout: 300_000,
  });
  return out;
}

export interface DriverOutput {
  verb: string;
  ok: boolean;
  result?: Record<string, unknown>;
  info?: { specVersion: string; supportedVersions: string[]; verbs: string[] };
  error?: string;
  code?: number;
}

export interface DriverRun {
  exitCode: number;
  out: DriverOutput;
  stderr: string;
}

export interface DriverCall {
  verb: 'add' | 'check' | 'del' | 'gc' | 'status' | 'validate' | 'cached' | 'info';
  conflist?: string;
  binDirs?: readonly string[];
  cacheDir?: string;
  containerId?: string;
  netns?: string;
  ifName?: string;
  /** CNI_ARGS pairs, as a runtime passes them (containerd: IgnoreUnknown + K8S_POD_*). */
  args?: Readonly<Record<string, string>>;
  capabilityArgs?: Record<string, unknown>;
  /** gc: the attachments to keep, as runtimes pass cni.dev/valid-attachments. */
  validAttachments?: readonly { containerID: string; ifname: string }[];
  /** Run inside this namespace (the test's node), as the runtime would run on a node. */
  node?: Netns;
}

/** Run the driver once; its stdout is always one JSON object. */
export async function runDriver(driver: string, call: DriverCall): Promise<DriverRun> {
  const argv = ['-verb', call.verb];
  if (call.conflist) argv.push('-conflist', call.conflist);
  if (call.binDirs) argv.push('-bin-dirs', call.binDirs.join(':'));
  if (call.cacheDir) argv.push('-cache-dir', call.cacheDir);
  if (call.containerId) argv.push('-container-id', call.containerId);
  if (call.netns !== undefined) argv.push('-netns', call.netns);
  if (call.ifName) argv.push('-ifname', call.ifName);
  if (call.args) argv.push('-args', Object.entries(call.args).map(([k, v]) => `${k}=${v}`).join(';'));
  if (call.capabilityArgs) argv.push('-capability-args', JSON.stringify(call.capabilityArgs));
  if (call.validAttachments) argv.push('-valid-attachments', JSON.stringify(call.validAttachments));
  const [file, args] = call.node ? ['ip', ['netns', 'exec', call.node.name, driver, ...argv]] : [driver, argv];
  const r = await execa(file, args, { reject: false, timeout: 120_000, stdin: 'ignore' });
  let out: DriverOutput;
  try {
    out = JSON.parse(r.stdout) as DriverOutput;
  } catch {
    throw new Error(`libcni driver printed no JSON (exit ${String(r.exitCode)}): ${r.stdout}\n${r.stderr}`);
  }
  return { exitCode: r.exitCode ?? -1, out, stderr: r.stderr };
}

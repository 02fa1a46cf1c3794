import { execa } from 'execa';
import type { Netns } from '../../helpers/netns.js';
import { peerBin, PEER_VERSIONS } from '../../helpers/peers.js';

/** The libcni release the driver is built against (scripts/peers.versions, the driver's go.mod). */
export const LIBCNI_VERSION = PEER_VERSIONS.CNI_VERSION ?? 'unknown';

/**
 * The driver (clients/libcni-driver, a Go module pinned to LIBCNI_VERSION), built by
 * `scripts/peers.sh libcni`; throws, naming that command, when it is not built (or its source
 * changed since: the peer's directory is keyed by a hash of the driver's source).
 */
export function libcniDriver(): string {
  return peerBin('libcni', 'libcni-driver');
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

import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { isJsonObject } from '../lib/cni/json.js';
import { run } from '../lib/linux/exec.js';

/**
 * Which CNI versions each plugin of the chain speaks, asked the way a runtime would
 * (`CNI_COMMAND=VERSION`) from the node's CNI bin dir. The conflist must name only versions that
 * every chained plugin and every runtime understands (calcChainVersions), and the installed
 * portmap decides that as much as podnet does: Debian 12's stops at 1.0.0, upstream v1.10's
 * speaks 1.1.0.
 *
 * The answer is remembered per executable (inode, size, mtime), so a pass costs one stat per
 * plugin and a plugin upgraded in place is asked again. A missing plugin, one that fails or
 * prints anything but a VERSION answer yields `undefined` ("unknown").
 */
export type VersionLookup = (type: string) => Promise<readonly string[] | undefined>;

const SEMVER = /^\d{1,3}\.\d{1,3}\.\d{1,3}$/;
/** A plugin type is a file name in the bin dir: never a path. */
const PLUGIN_TYPE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export function createVersionLookup(binDir: string, timeoutMs = 5_000): VersionLookup {
  const memo = new Map<string, { key: string; versions: readonly string[] | undefined }>();
  return async (type) => {
    if (!PLUGIN_TYPE.test(type)) return undefined;
    const path = join(binDir, type);
    let key: string;
    try {
      const s = await stat(path);
      key = `${s.ino}:${s.size}:${s.mtimeMs}`;
    } catch {
      memo.delete(type);
      return undefined;
    }
    const hit = memo.get(type);
    if (hit?.key === key) return hit.versions;
    const r = await run(path, [], {
      env: { CNI_COMMAND: 'VERSION', PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin' },
      input: '{"cniVersion":"0.1.0"}',
      timeout: timeoutMs,
    });
    const versions = r.code === 0 ? parseVersionAnswer(r.stdout) : undefined;
    memo.set(type, { key, versions });
    return versions;
  };
}

/** The `supportedVersions` of a VERSION answer, or undefined when it is not one. */
export function parseVersionAnswer(stdout: string): readonly string[] | undefined {
  let o: unknown;
  try {
    o = JSON.parse(stdout);
  } catch {
    return undefined;
  }
  const list = isJsonObject(o) ? o.supportedVersions : undefined;
  if (!Array.isArray(list) || list.length === 0 || list.length > 64) return undefined;
  if (!list.every((v): v is string => typeof v === 'string' && SEMVER.test(v))) return undefined;
  return list;
}

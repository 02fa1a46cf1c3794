import { existsSync, mkdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { DIST_BIN } from './env.js';
import { upstreamCniBin } from './peers.js';

/**
 * The executables a test node's CNI bin dir holds, by the name they are called as. Throws when
 * the upstream reference plugins are not built (the message names the command).
 */
export function cniBinEntries(): Readonly<Record<string, string>> {
  const upstream = upstreamCniBin();
  return {
    // podnet: the multi-call executable dispatches on these names, as from /opt/cni/bin.
    'podnet-bridge': join(DIST_BIN, 'podnet'),
    'podnet-host-local': join(DIST_BIN, 'podnet'),
    'podnet-routesync': join(DIST_BIN, 'podnet-routesync'),
    // The upstream reference plugins (scripts/peers.sh cni-plugins): side by side, and the
    // portmap and loopback that kind nodes ship.
    bridge: join(upstream, 'bridge'),
    'host-local': join(upstream, 'host-local'),
    portmap: join(upstream, 'portmap'),
    loopback: join(upstream, 'loopback'),
  };
}

/** Make `dir` a CNI bin dir of links to podnet's build and the reference plugins; returns it. */
export function makeCniBinDir(dir: string): string {
  const entries = cniBinEntries();
  const missing = Object.values(entries).filter((f) => !existsSync(f));
  if (missing.length) {
    throw new Error(`cannot make a CNI bin dir: missing ${[...new Set(missing)].join(', ')} (run npm run build)`);
  }
  mkdirSync(dir, { recursive: true });
  for (const [name, target] of Object.entries(entries)) symlinkSync(target, join(dir, name));
  return dir;
}

import { existsSync, mkdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { DIST_BIN, REFERENCE_BIN } from './env.js';

/** The executables a test node's CNI bin dir holds, by the name they are called as. */
export const CNI_BIN_ENTRIES: Readonly<Record<string, string>> = {
  // podnet: the multi-call executable dispatches on these names, as from /opt/cni/bin.
  'podnet-bridge': join(DIST_BIN, 'podnet'),
  'podnet-host-local': join(DIST_BIN, 'podnet'),
  'podnet-routesync': join(DIST_BIN, 'podnet-routesync'),
  // The reference plugins (Debian's containernetworking-plugins): side by side, and the stock
  // portmap and loopback that kind nodes ship.
  bridge: join(REFERENCE_BIN, 'bridge'),
  'host-local': join(REFERENCE_BIN, 'host-local'),
  portmap: join(REFERENCE_BIN, 'portmap'),
  loopback: join(REFERENCE_BIN, 'loopback'),
};

/** Make `dir` a CNI bin dir of links to podnet's build and the reference plugins; returns it. */
export function makeCniBinDir(dir: string): string {
  const missing = Object.values(CNI_BIN_ENTRIES).filter((f) => !existsSync(f));
  if (missing.length) {
    throw new Error(`cannot make a CNI bin dir: missing ${[...new Set(missing)].join(', ')} (run npm run build; apt-get install containernetworking-plugins)`);
  }
  mkdirSync(dir, { recursive: true });
  for (const [name, target] of Object.entries(CNI_BIN_ENTRIES)) symlinkSync(target, join(dir, name));
  return dir;
}

import { readFileSync, writeFileSync } from 'node:fs';

/**
 * Sysctls of the calling process's own network namespace, written straight to /proc/sys (no
 * `sysctl` process). Keys use '/' separators below /proc/sys, so interface names with dots work.
 * For another namespace use IpRunner.batch({ netns, sysctls }). `root` is /proc/sys, or where a
 * container has the host's mounted (podnet-routesync's --sysctl-root), or a test's directory.
 */
export interface Sysctl {
  read(key: string): string | undefined;
  /** Write unless it already holds `value`; throws when the write fails. */
  ensure(key: string, value: string): void;
}

export class ProcSysctl implements Sysctl {
  constructor(private readonly root = '/proc/sys') {}

  path(key: string): string {
    return `${this.root}/${key}`;
  }

  read(key: string): string | undefined {
    try {
      return readFileSync(this.path(key), 'utf8').trim();
    } catch {
      return undefined;
    }
  }

  /** As Sysctl.ensure, and says whether it wrote; a key that does not exist throws ENOENT (a
   * sysctl file is never created). */
  ensure(key: string, value: string): boolean {
    let current: string | undefined;
    try {
      current = readFileSync(this.path(key), 'utf8').trim();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw e; // never create a sysctl file
    }
    if (current === value) return false;
    writeFileSync(this.path(key), `${value}\n`);
    return true;
  }
}

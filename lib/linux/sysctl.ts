import { readFileSync, writeFileSync } from 'node:fs';

/**
 * Sysctls of the calling process's own network namespace, written straight to /proc/sys (no
 * `sysctl` process). Keys use '/' separators below /proc/sys, so interface names with dots work.
 * For another namespace use IpRunner.batch({ netns, sysctls }).
 */
export interface Sysctl {
  read(key: string): string | undefined;
  /** Write unless it already holds `value`; throws when the write fails. */
  ensure(key: string, value: string): void;
}

export class ProcSysctl implements Sysctl {
  read(key: string): string | undefined {
    try {
      return readFileSync(`/proc/sys/${key}`, 'utf8').trim();
    } catch {
      return undefined;
    }
  }

  ensure(key: string, value: string): void {
    if (this.read(key) === value) return;
    writeFileSync(`/proc/sys/${key}`, `${value}\n`);
  }
}

import { existsSync, readFileSync, readdirSync } from 'node:fs';

/**
 * Reading the current network namespace's links without spawning anything.
 *
 * /proc/self/net/dev always describes the namespace of the calling process. /sys/class/net
 * describes the namespace the sysfs mount was made in, which is ours under a runtime (containerd
 * runs plugins in the node's namespace with the node's /sys) and under `ip netns exec` (it
 * remounts /sys), but not under a bare `nsenter --net`. So sysfs is only trusted when it lists
 * exactly the links /proc/self/net/dev lists; otherwise callers fall back to `ip`.
 */
export interface NetDevView {
  /** Names of all links in our namespace. */
  names(): Set<string>;
  /** True when /sys/class/net shows our namespace. */
  sysfsTrusted(): boolean;
  /** Only meaningful when sysfsTrusted(): is `name` a bridge? */
  isBridge(name: string): boolean;
  /** Only meaningful when sysfsTrusted(): operstate ("up", "down", …) or undefined if missing. */
  operState(name: string): string | undefined;
}

export function readLinkNames(file = '/proc/self/net/dev'): Set<string> {
  const names = new Set<string>();
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return names;
  }
  for (const line of text.split('\n').slice(2)) {
    const colon = line.indexOf(':');
    if (colon > 0) names.add(line.slice(0, colon).trim());
  }
  return names;
}

export class ProcSysfsView implements NetDevView {
  private trusted: boolean | undefined;

  names(): Set<string> {
    return readLinkNames();
  }

  sysfsTrusted(): boolean {
    if (this.trusted !== undefined) return this.trusted;
    // Links come and go while pods start in parallel: a few tries before calling it foreign.
    for (let i = 0; i < 3 && this.trusted === undefined; i++) {
      let sys: string[];
      try {
        sys = readdirSync('/sys/class/net');
      } catch {
        this.trusted = false;
        break;
      }
      const proc = readLinkNames();
      if (sys.length === proc.size && sys.every((n) => proc.has(n))) this.trusted = true;
    }
    this.trusted ??= false;
    return this.trusted;
  }

  isBridge(name: string): boolean {
    return existsSync(`/sys/class/net/${name}/bridge`);
  }

  operState(name: string): string | undefined {
    try {
      return readFileSync(`/sys/class/net/${name}/operstate`, 'utf8').trim();
    } catch {
      return undefined;
    }
  }
}

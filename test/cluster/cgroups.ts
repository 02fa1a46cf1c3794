import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * cgroup v1 (hybrid) trees of the cluster: /<cluster>/<node>/{sys,pods} in every mounted
 * hierarchy. A node's components (containerd and its shims, kubelet, kube-proxy, etcd, …) run in
 * `sys`; `pods` is kubelet's cgroupRoot (it makes kubepods below). Removing the cluster kills
 * whatever is left in the tree and removes it leaves first.
 */
const CGROUP_FS = '/sys/fs/cgroup';

export function hierarchies(): string[] {
  try {
    return readdirSync(CGROUP_FS, { withFileTypes: true })
      .filter((d) => d.isDirectory() && existsSync(join(CGROUP_FS, d.name, 'cgroup.procs')))
      .map((d) => join(CGROUP_FS, d.name));
  } catch {
    return [];
  }
}

/** mkdir -p in every hierarchy; cpuset children get their parent's cpus and mems (v1 starts them empty). */
export function ensureCgroup(path: string): void {
  const parts = path.split('/').filter(Boolean);
  for (const h of hierarchies()) {
    let dir = h;
    for (const part of parts) {
      const parent = dir;
      dir = join(dir, part);
      if (!existsSync(dir)) mkdirSync(dir);
      for (const f of ['cpuset.cpus', 'cpuset.mems']) {
        const file = join(dir, f);
        if (existsSync(file) && readFileSync(file, 'utf8').trim() === '') writeFileSync(file, readFileSync(join(parent, f), 'utf8').trim());
      }
    }
  }
}

/** Every pid in the tree below `path`, in any hierarchy. */
export function cgroupPids(path: string): number[] {
  const pids = new Set<number>();
  const walk = (dir: string) => {
    try {
      for (const l of readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n')) if (l.trim()) pids.add(Number(l));
      for (const d of readdirSync(dir, { withFileTypes: true })) if (d.isDirectory()) walk(join(dir, d.name));
    } catch {
      // gone meanwhile
    }
  };
  for (const h of hierarchies()) if (existsSync(join(h, path))) walk(join(h, path));
  return [...pids];
}

/** SIGKILL everything in the tree until it is empty (bounded), then rmdir it leaves first. */
export async function removeCgroupTree(path: string): Promise<void> {
  for (let round = 0; round < 50; round++) {
    const pids = cgroupPids(path);
    if (pids.length === 0) break;
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // exited
      }
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const rm = (dir: string) => {
    for (const d of safeDirs(dir)) rm(join(dir, d));
    try {
      rmdirSync(dir);
    } catch {
      // busy (a process we could not kill) or gone
    }
  };
  for (const h of hierarchies()) if (existsSync(join(h, path))) rm(join(h, path));
}

function safeDirs(dir: string): string[] {
  try {
    return readdirSync(dir, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name);
  } catch {
    return [];
  }
}

import { statSync, statfsSync } from 'node:fs';
import { CniError, ErrorCode } from '../cni/errors.js';
import { netnsPathProblem } from './values.js';

/**
 * Is CNI_NETNS a pod's network namespace? Checked without spawning anything, before any kernel
 * work: the path is well-formed (it becomes an `ip`/`nsenter` argument), it exists, it lives on
 * nsfs (a regular file, a directory or /dev/null is not a namespace), and it is not the
 * namespace the plugin itself runs in — the node's (upstream skel compares the same device and
 * inode). Another namespace type on nsfs (`/proc/<pid>/ns/mnt`) is left to the kernel, which
 * refuses it when the veth is moved there.
 */
export type NetnsStatus = 'ok' | 'missing' | 'not-netns' | 'own';

/** NSFS_MAGIC from linux/magic.h. */
const NSFS_MAGIC = 0x6e736673;

export function netnsStatus(path: string, own = '/proc/self/ns/net'): NetnsStatus {
  let st;
  try {
    st = statSync(path);
  } catch {
    return 'missing';
  }
  try {
    if (statfsSync(path).type !== NSFS_MAGIC) return 'not-netns';
  } catch {
    return 'not-netns';
  }
  try {
    const mine = statSync(own);
    if (mine.dev === st.dev && mine.ino === st.ino) return 'own';
  } catch {
    // our own namespace cannot be read: nothing to compare with
  }
  return 'ok';
}

/** The CNI error for a CNI_NETNS that cannot be used as a pod's namespace, or undefined. */
export function netnsError(path: string, status: (p: string) => NetnsStatus): CniError | undefined {
  const why = netnsPathProblem(path);
  if (why) return new CniError(ErrorCode.InvalidEnvironmentVariables, `invalid CNI_NETNS "${path}": ${why}`, 'CNI_NETNS');
  switch (status(path)) {
    case 'ok':
      return undefined;
    case 'missing':
      return new CniError(ErrorCode.InvalidNetns, `failed to open netns "${path}": no such file`, 'CNI_NETNS');
    case 'not-netns':
      return new CniError(ErrorCode.InvalidNetns, `"${path}" is not a network namespace`, 'CNI_NETNS');
    case 'own':
      return new CniError(ErrorCode.InvalidNetns, `netns "${path}" is the plugin's own (the node's) network namespace, not a pod's`, 'CNI_NETNS');
  }
}

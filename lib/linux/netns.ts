import { closeSync, openSync, readFileSync, readlinkSync, statSync, statfsSync } from 'node:fs';
import { CniError, ErrorCode } from '../cni/errors.js';
import { netnsPathProblem } from './values.js';

/**
 * Is CNI_NETNS a pod's network namespace? Checked without spawning anything, before any kernel
 * work: the path is well-formed (it becomes an `ip`/`nsenter` argument), it exists, it lives on
 * nsfs (a regular file, a directory or /dev/null is not a namespace), and it is not the
 * namespace the plugin itself runs in — the node's (upstream skel compares the same device and
 * inode), nor a namespace of another type on nsfs (`/proc/<pid>/ns/mnt`, a bind-mounted uts or
 * user namespace: `other:<type>`), which the kernel would refuse only when the veth is moved
 * there, as an "Invalid argument" that says nothing of CNI_NETNS.
 */
export type NetnsStatus = 'ok' | 'missing' | 'not-netns' | 'own' | `other:${string}`;

/** NSFS_MAGIC from linux/magic.h. */
const NSFS_MAGIC = 0x6e736673;

/** How nsfs names a namespace: `net:[4026532178]`. */
const NS_NAME = /^([a-z_]+):\[[0-9]+\]$/;

/**
 * The type of namespace an nsfs file holds (net, mnt, uts, user…), without spawning (Node has no
 * ioctl for NS_GET_NSTYPE): opened, a /proc/<pid>/ns/<type> link reads back through
 * /proc/self/fd as `<type>:[<inode>]`; a bind mount of one (`ip netns add`, containerd's
 * /var/run/netns/cni-…) reads back as its own path, and its mount's root in /proc/self/mountinfo
 * is that name. undefined when neither tells.
 *
 * Its cost is the kernel writing out the mount table: 0.13 ms with 23 mounts, 3.5 ms with 1,000
 * (a busy node). Asking only after the kernel refuses the veth move would cost nothing on the
 * good path, but on a node's first ADD the same batch has made the bridge by then: bad input
 * would change the node.
 */
export function nsType(path: string): string | undefined {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return undefined;
  }
  try {
    const direct = NS_NAME.exec(readlinkSync(`/proc/self/fd/${fd}`));
    if (direct) return direct[1];
    const mntId = /^mnt_id:\s*([0-9]+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))?.[1];
    if (mntId === undefined) return undefined;
    for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
      // "<mount id> <parent id> <major:minor> <root> <mount point> …"
      if (line.startsWith(`${mntId} `)) return NS_NAME.exec(line.split(' ')[3] ?? '')?.[1];
    }
    return undefined;
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

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
  const type = nsType(path);
  // Type unknown (the file could not be opened): left to the kernel.
  return type === undefined || type === 'net' ? 'ok' : `other:${type}`;
}

/** The CNI error for a CNI_NETNS that cannot be used as a pod's namespace, or undefined. */
export function netnsError(path: string, status: (p: string) => NetnsStatus): CniError | undefined {
  const why = netnsPathProblem(path);
  if (why) return new CniError(ErrorCode.InvalidEnvironmentVariables, `invalid CNI_NETNS "${path}": ${why}`, 'CNI_NETNS');
  const st = status(path);
  switch (st) {
    case 'ok':
      return undefined;
    case 'missing':
      return new CniError(ErrorCode.InvalidNetns, `failed to open netns "${path}": no such file`, 'CNI_NETNS');
    case 'not-netns':
      return new CniError(ErrorCode.InvalidNetns, `"${path}" is not a network namespace`, 'CNI_NETNS');
    case 'own':
      return new CniError(ErrorCode.InvalidNetns, `netns "${path}" is the plugin's own (the node's) network namespace, not a pod's`, 'CNI_NETNS');
    default:
      return new CniError(ErrorCode.InvalidNetns, `"${path}" is not a network namespace: it is a ${st.slice('other:'.length)} namespace`, 'CNI_NETNS');
  }
}

/**
 * What a value handed to the kernel layer must be. Every `ip`/`bridge`/`nft` argument is one of
 * these; the batch builder checks each one again before it renders a line, and the entry points
 * (CNI env, configs, results, `ip -json` output) check them first, so a refusal carries the
 * right CNI error code and names its source.
 *
 * Interface names follow the kernel's dev_valid_name (non-empty, at most 15 BYTES — IFNAMSIZ-1
 * —, not "." or "..", no '/', ':' or whitespace) and refuse what iproute2's batch syntax gives a
 * meaning to and the kernel does not: '#' starts a comment anywhere in a batch line, a leading
 * quote opens a quoted word, and a backslash or a control character (NUL ends a C string) has no
 * business in a name. So `x#y`, `'eth2'` and `"br0"` are refused instead of turning into `x`,
 * `eth2` and `br0`.
 */
export const IFNAME_MAX_BYTES = 15;

/** Why `name` is not an interface name podnet will use, or undefined when it is one. */
export function ifNameProblem(name: unknown): string | undefined {
  if (typeof name !== 'string') return 'not a string';
  if (name === '') return 'empty';
  const bytes = Buffer.byteLength(name, 'utf8');
  if (bytes > IFNAME_MAX_BYTES) return `longer than ${IFNAME_MAX_BYTES} characters (the kernel counts bytes: ${bytes})`;
  if (name === '.' || name === '..') return 'not a valid name';
  // \s covers the kernel's isspace and Unicode spaces (CNI's own check uses unicode.IsSpace).
  if (/[/:\s\u0085]/.test(name)) return "contains '/', ':' or whitespace";
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(name)) return 'contains a control character';
  if (/[#'"\\]/.test(name)) return "contains '#', a quote or a backslash";
  return undefined;
}

export const isIfName = (name: unknown): name is string => ifNameProblem(name) === undefined;

const MAC_RE = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/;

/** Six colon-separated hex bytes (any MAC, as `ip` prints them). */
export const isMacText = (v: unknown): v is string => typeof v === 'string' && MAC_RE.test(v);

/** A unicast MAC address in colon form. */
export function macProblem(mac: unknown): string | undefined {
  if (typeof mac !== 'string' || !MAC_RE.test(mac)) return 'not a MAC address';
  if (parseInt(mac.slice(0, 2), 16) & 1) return 'a multicast address';
  return undefined;
}

/**
 * A network namespace path as CNI_NETNS carries it (`/proc/<pid>/ns/net`, `/var/run/netns/x`):
 * absolute, and free of what would change an `ip` batch line or an argument (whitespace,
 * control characters, '#', quotes, backslash).
 */
export function netnsPathProblem(path: unknown): string | undefined {
  if (typeof path !== 'string' || path === '') return 'empty';
  if (!path.startsWith('/')) return 'not an absolute path';
  // eslint-disable-next-line no-control-regex
  if (/[\s\u0000-\u001f\u007f#'"\\]/.test(path)) return 'contains whitespace, a control character, \'#\', a quote or a backslash';
  if (Buffer.byteLength(path) > 4095) return 'too long';
  return undefined;
}

/** An integer in [min, max]. */
export const isIntIn = (v: unknown, min: number, max: number): v is number =>
  typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max;

/** A sysctl key below /proc/sys: '/'-separated components, each a plain name or an interface name. */
export function sysctlKeyProblem(key: unknown): string | undefined {
  if (typeof key !== 'string' || key === '') return 'empty';
  for (const part of key.split('/')) {
    if (part === '' || part === '.' || part === '..') return `bad component "${part}"`;
    if (!/^[A-Za-z0-9_.-]+$/.test(part) && ifNameProblem(part) !== undefined) return `bad component "${part}"`;
  }
  return undefined;
}

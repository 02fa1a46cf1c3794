import { readFileSync } from 'node:fs';
import { CniError, ErrorCode, causeText } from '../../lib/cni/errors.js';
import type { Dns } from '../../lib/cni/types.js';

/** Parse resolv.conf text into a result's `dns`, as upstream host-local's dns.go does. */
export function parseResolvConf(text: string): Dns {
  const dns: Dns = {};
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const [key, ...rest] = line.split(/\s+/);
    if (rest.length === 0) continue;
    switch (key) {
      case 'nameserver':
        (dns.nameservers ??= []).push(rest[0] as string);
        break;
      case 'domain':
        dns.domain = rest[0] as string;
        break;
      case 'search':
        (dns.search ??= []).push(...rest);
        break;
      case 'options':
        (dns.options ??= []).push(...rest);
        break;
    }
  }
  return dns;
}

export function readResolvConf(path: string): Dns {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new CniError(ErrorCode.IoFailure, `failed to read resolvConf "${path}": ${causeText(e)}`, '', { cause: e });
  }
  return parseResolvConf(text);
}

import { parseCidr, parseIp } from '../addr/addr.js';
import { CniError, ErrorCode } from './errors.js';
import { type JsonObject as Obj, isJsonObject as isObj } from './json.js';
import type { Dns, Interface, IpConfig, Result, Route } from './types.js';
import { assertSupportedVersion, versionAtLeast } from './version.js';

/**
 * Conversion between the result shapes of every spec version and podnet's internal 1.x
 * `Result`:
 *   1.0.0 / 1.1.0  interfaces, ips{address,gateway,interface}, routes, dns
 *   0.3.0 … 0.4.0  same, plus ips[].version "4"|"6"; no interface mtu, route extras
 *   0.1.0 / 0.2.0  { ip4: {ip, gateway, routes}, ip6: {…}, dns } with the first IP of each family
 */

const family = (addr: string): '4' | '6' => (addr.includes(':') ? '6' : '4');

function bad(what: string): never {
  throw new CniError(ErrorCode.DecodingFailure, `failed to decode result: ${what}`);
}

function str(o: Obj, key: string, where: string, required = false): string | undefined {
  const v = o[key];
  if (v === undefined || v === null || v === '') {
    if (required) bad(`${where}.${key} is required`);
    return undefined;
  }
  if (typeof v !== 'string') bad(`${where}.${key} must be a string`);
  return v;
}

function num(o: Obj, key: string, where: string): number | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v)) bad(`${where}.${key} must be an integer`);
  return v;
}

function strList(o: Obj, key: string, where: string): string[] | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || !v.every((s) => typeof s === 'string')) bad(`${where}.${key} must be a list of strings`);
  return v as string[];
}

function list(o: Obj, key: string, where: string): Obj[] {
  const v = o[key];
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || !v.every(isObj)) bad(`${where}.${key} must be a list of objects`);
  return v as Obj[];
}

/**
 * Address fields are decoded for what they are, as upstream's types do (net.ParseCIDR,
 * net.ParseIP): a result is untrusted input (a delegated IPAM plugin, a chained plugin's
 * prevResult), and its addresses end up in `ip` commands.
 */
function cidrField(o: Obj, key: string, where: string, required = false): string | undefined {
  const v = str(o, key, where, required);
  if (v !== undefined && !parseCidr(v)) bad(`${where}.${key} ${JSON.stringify(v)} is not an address/prefix`);
  return v;
}

function ipField(o: Obj, key: string, where: string): string | undefined {
  const v = str(o, key, where);
  if (v !== undefined && !parseIp(v)) bad(`${where}.${key} ${JSON.stringify(v)} is not an IP address`);
  return v;
}

/** Copy only defined values, so optional fields stay absent (exactOptionalPropertyTypes). */
function compact<T extends object>(o: { [K in keyof T]: T[K] | undefined }): T {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) out[k] = v;
  return out as T;
}

function parseRoute(o: Obj, where: string): Route {
  return compact<Route>({
    dst: cidrField(o, 'dst', where, true) as string,
    gw: ipField(o, 'gw', where),
    mtu: num(o, 'mtu', where),
    advmss: num(o, 'advmss', where),
    priority: num(o, 'priority', where),
    table: num(o, 'table', where),
    scope: num(o, 'scope', where),
  });
}

function parseDns(v: unknown): Dns | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isObj(v)) bad('dns must be an object');
  const dns = compact<Dns>({
    nameservers: strList(v, 'nameservers', 'dns'),
    domain: str(v, 'domain', 'dns'),
    search: strList(v, 'search', 'dns'),
    options: strList(v, 'options', 'dns'),
  });
  return Object.keys(dns).length ? dns : undefined;
}

/**
 * Read a result (or prevResult) of any supported version into the internal 1.x shape.
 * `fallbackVersion` applies when the object carries no `cniVersion` of its own.
 */
export function parseResult(raw: unknown, fallbackVersion: string): Result {
  if (!isObj(raw)) bad('not a JSON object');
  const version = typeof raw.cniVersion === 'string' && raw.cniVersion ? raw.cniVersion : fallbackVersion;
  try {
    assertSupportedVersion(version);
  } catch {
    bad(`unsupported cniVersion "${version}"`);
  }
  return versionAtLeast(version, '0.3.0') ? parseResultV03Plus(raw) : parseResultV02(raw);
}

function parseResultV03Plus(raw: Obj): Result {
  const interfaces = list(raw, 'interfaces', 'result').map((o, i) =>
    compact<Interface>({
      name: str(o, 'name', `interfaces[${i}]`, true) as string,
      mac: str(o, 'mac', `interfaces[${i}]`),
      mtu: num(o, 'mtu', `interfaces[${i}]`),
      sandbox: str(o, 'sandbox', `interfaces[${i}]`),
      socketPath: str(o, 'socketPath', `interfaces[${i}]`),
      pciID: str(o, 'pciID', `interfaces[${i}]`),
    }),
  );
  const ips = list(raw, 'ips', 'result').map((o, i) => {
    const where = `ips[${i}]`;
    const idx = num(o, 'interface', where);
    if (idx !== undefined && (idx < 0 || idx >= interfaces.length)) bad(`${where}.interface ${idx} is out of range`);
    return compact<IpConfig>({
      address: cidrField(o, 'address', where, true) as string,
      gateway: ipField(o, 'gateway', where),
      interface: idx,
    });
  });
  const routes = list(raw, 'routes', 'result').map((o, i) => parseRoute(o, `routes[${i}]`));
  return assemble(interfaces, ips, routes, parseDns(raw.dns));
}

function parseResultV02(raw: Obj): Result {
  const ips: IpConfig[] = [];
  const routes: Route[] = [];
  for (const key of ['ip4', 'ip6'] as const) {
    const v = raw[key];
    if (v === undefined || v === null) continue;
    if (!isObj(v)) bad(`${key} must be an object`);
    ips.push(compact<IpConfig>({ address: cidrField(v, 'ip', key, true) as string, gateway: ipField(v, 'gateway', key) }));
    routes.push(...list(v, 'routes', key).map((o, i) => parseRoute(o, `${key}.routes[${i}]`)));
  }
  return assemble([], ips, routes, parseDns(raw.dns));
}

function assemble(interfaces: Interface[], ips: IpConfig[], routes: Route[], dns: Dns | undefined): Result {
  const result: Result = { cniVersion: '1.1.0' };
  if (interfaces.length) result.interfaces = interfaces;
  if (ips.length) result.ips = ips;
  if (routes.length) result.routes = routes;
  if (dns) result.dns = dns;
  return result;
}

/** Render an internal result in the shape of `version` (already validated as supported). */
export function formatResult(result: Result, version: string): Obj {
  if (versionAtLeast(version, '1.0.0')) return formatV1(result, version);
  if (versionAtLeast(version, '0.3.0')) return formatV03(result, version);
  return formatV02(result, version);
}

function formatV1(r: Result, version: string): Obj {
  const out: Obj = { cniVersion: version };
  if (r.interfaces?.length) out.interfaces = r.interfaces.map((i) => ({ ...i }));
  if (r.ips?.length) out.ips = r.ips.map((ip) => ({ ...ip }));
  if (r.routes?.length) out.routes = r.routes.map((rt) => ({ ...rt }));
  if (r.dns) out.dns = { ...r.dns };
  return out;
}

function formatV03(r: Result, version: string): Obj {
  const out: Obj = { cniVersion: version };
  if (r.interfaces?.length) {
    out.interfaces = r.interfaces.map((i) => compact<Interface>({ name: i.name, mac: i.mac, sandbox: i.sandbox }));
  }
  if (r.ips?.length) {
    out.ips = r.ips.map((ip) =>
      compact({ version: family(ip.address), address: ip.address, gateway: ip.gateway, interface: ip.interface }),
    );
  }
  if (r.routes?.length) out.routes = r.routes.map((rt) => compact<Route>({ dst: rt.dst, gw: rt.gw }));
  if (r.dns) out.dns = { ...r.dns };
  return out;
}

function formatV02(r: Result, version: string): Obj {
  const out: Obj = { cniVersion: version };
  for (const fam of ['4', '6'] as const) {
    const ip = r.ips?.find((i) => family(i.address) === fam);
    if (!ip) continue;
    const routes = (r.routes ?? []).filter((rt) => family(rt.dst) === fam).map((rt) => compact<Route>({ dst: rt.dst, gw: rt.gw }));
    out[`ip${fam}`] = compact({ ip: ip.address, gateway: ip.gateway, routes: routes.length ? routes : undefined });
  }
  if (r.dns) out.dns = { ...r.dns };
  return out;
}

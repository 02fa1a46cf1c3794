import { parseCniArgs } from '../../lib/cni/cni-args.js';
import { CniError, ErrorCode } from '../../lib/cni/errors.js';
import type { Dns, NetConf } from '../../lib/cni/types.js';
import { ifNameProblem, macProblem } from '../../lib/linux/values.js';

/** The bridge plugin's configuration: upstream's keys, validated, with defaults filled in. */
export interface BridgeConf {
  name: string;
  cniVersion: string;
  bridge: string;
  isGateway: boolean;
  isDefaultGateway: boolean;
  forceAddress: boolean;
  ipMasq: boolean;
  /** Undefined: nftables when `nft` exists, else iptables (decided at use). */
  ipMasqBackend: 'iptables' | 'nftables' | undefined;
  /** 0: kernel default. */
  mtu: number;
  hairpinMode: boolean;
  promiscMode: boolean;
  /** 0: no VLAN. */
  vlan: number;
  /** VLAN IDs the port trunks (sorted, unique), from `vlanTrunk`. */
  vlanTrunk: number[];
  preserveDefaultVlan: boolean;
  macspoofchk: boolean;
  enabledad: boolean;
  disableContainerInterface: boolean;
  portIsolation: boolean;
  /** Container MAC from runtimeConfig.mac, args.cni.mac or CNI_ARGS MAC= (that precedence). */
  mac: string | undefined;
  /** IPAM plugin type; '' means L2 only (`ipam: {}`). */
  ipamType: string;
  /** The config's own `dns`, when any field is set (it then replaces the IPAM's). */
  dns: Dns | undefined;
}

export const DEFAULT_BRIDGE = 'cni0';
/** Keys CNI_ARGS may carry for this plugin (IP is host-local's). */
const CNI_ARGS_KEYS = ['MAC', 'IP'];

function invalid(key: string, why: string): never {
  throw new CniError(ErrorCode.InvalidNetworkConfig, `invalid "${key}": ${why}`, key);
}

function bool(conf: NetConf, key: string): boolean {
  const v = conf[key];
  if (v === undefined || v === null) return false;
  if (typeof v !== 'boolean') invalid(key, `must be true or false, got ${JSON.stringify(v)}`);
  return v;
}

function int(conf: NetConf, key: string, min: number, max: number, allowZero = true): number {
  const v = conf[key];
  if (v === undefined || v === null) return 0;
  if (typeof v !== 'number' || !Number.isInteger(v)) invalid(key, `must be an integer, got ${JSON.stringify(v)}`);
  if (v === 0 && allowZero) return 0;
  if (v < min || v > max) invalid(key, `${v} is out of range (${allowZero ? '0 or ' : ''}${min}..${max})`);
  return v;
}


function parseMac(key: string, v: unknown): string | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  const why = macProblem(v);
  if (why) invalid(key, `${JSON.stringify(v)} is ${why}`);
  return (v as string).toLowerCase();
}

/** upstream's collectVlanTrunk: entries of {minID,maxID} ranges and/or {id}, each in 1..4094. */
function collectVlanTrunk(v: unknown): number[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) invalid('vlanTrunk', 'must be a list');
  const ids = new Set<number>();
  const id = (x: unknown, what: string): number | undefined => {
    if (x === undefined || x === null) return undefined;
    if (typeof x !== 'number' || !Number.isInteger(x) || x <= 0 || x > 4094) {
      invalid('vlanTrunk', `incorrect trunk ${what} parameter ${JSON.stringify(x)} (must be 1..4094)`);
    }
    return x;
  };
  for (const item of v) {
    if (typeof item !== 'object' || item === null) invalid('vlanTrunk', 'entries must be objects');
    const o = item as Record<string, unknown>;
    const min = id(o.minID, 'minID');
    const max = id(o.maxID, 'maxID');
    if ((min === undefined) !== (max === undefined)) {
      invalid('vlanTrunk', 'minID and maxID must be configured together');
    }
    if (min !== undefined && max !== undefined) {
      if (max < min) invalid('vlanTrunk', 'minID is greater than maxID');
      for (let i = min; i <= max; i++) ids.add(i);
    }
    const single = id(o.id, 'id');
    if (single !== undefined) ids.add(single);
  }
  return [...ids].sort((a, b) => a - b);
}

function dnsSet(d: unknown): Dns | undefined {
  if (typeof d !== 'object' || d === null) return undefined;
  const o = d as Dns;
  const set = (o.nameservers?.length ?? 0) > 0 || (o.search?.length ?? 0) > 0 || (o.options?.length ?? 0) > 0 || !!o.domain;
  return set ? o : undefined;
}

/** Parse and validate a bridge config (already JSON-decoded by dispatch) plus CNI_ARGS. */
export function loadBridgeConf(conf: NetConf, cniArgs: string): BridgeConf {
  const bridge = conf.bridge ?? DEFAULT_BRIDGE;
  if (typeof bridge !== 'string' || bridge === '') invalid('bridge', 'must be a non-empty string');
  const why = ifNameProblem(bridge);
  if (why) invalid('bridge', `${JSON.stringify(bridge)} is not a valid interface name: ${why}`);

  const backend = conf.ipMasqBackend;
  if (backend !== undefined && backend !== null && backend !== 'iptables' && backend !== 'nftables') {
    invalid('ipMasqBackend', `must be "iptables" or "nftables", got ${JSON.stringify(backend)}`);
  }

  const out: BridgeConf = {
    name: conf.name,
    cniVersion: conf.cniVersion,
    bridge,
    isGateway: bool(conf, 'isGateway'),
    isDefaultGateway: bool(conf, 'isDefaultGateway'),
    forceAddress: bool(conf, 'forceAddress'),
    ipMasq: bool(conf, 'ipMasq'),
    ipMasqBackend: (backend ?? undefined) as BridgeConf['ipMasqBackend'],
    mtu: int(conf, 'mtu', 68, 65535),
    hairpinMode: bool(conf, 'hairpinMode'),
    promiscMode: bool(conf, 'promiscMode'),
    vlan: int(conf, 'vlan', 0, 4094),
    vlanTrunk: collectVlanTrunk(conf.vlanTrunk),
    preserveDefaultVlan: bool(conf, 'preserveDefaultVlan'),
    macspoofchk: bool(conf, 'macspoofchk'),
    enabledad: bool(conf, 'enabledad'),
    disableContainerInterface: bool(conf, 'disableContainerInterface'),
    portIsolation: bool(conf, 'portIsolation'),
    mac: undefined,
    ipamType: '',
    dns: dnsSet(conf.dns),
  };
  // upstream: isDefaultGateway implies isGateway.
  if (out.isDefaultGateway) out.isGateway = true;
  if (out.hairpinMode && out.promiscMode) {
    throw new CniError(
      ErrorCode.InvalidNetworkConfig,
      'invalid "hairpinMode": cannot set hairpin mode and promiscuous mode ("promiscMode") at the same time',
      'hairpinMode',
    );
  }

  const ipam = conf.ipam;
  if (ipam !== undefined && ipam !== null) {
    if (typeof ipam !== 'object' || Array.isArray(ipam)) invalid('ipam', 'must be an object');
    if (ipam.type !== undefined && typeof ipam.type !== 'string') invalid('ipam.type', 'must be a string');
    out.ipamType = ipam.type ?? '';
  }
  if (out.ipamType && out.disableContainerInterface) {
    invalid('disableContainerInterface', 'cannot use IPAM when the container interface is disabled');
  }
  if (out.vlan !== 0 && ifNameProblem(`${bridge}.${out.vlan}`) && out.isGateway) {
    invalid('vlan', `gateway interface name "${bridge}.${out.vlan}" would be longer than 15 characters (bytes)`);
  }

  // MAC: CNI_ARGS < args.cni.mac < runtimeConfig.mac (upstream order).
  const env = parseCniArgs(cniArgs, CNI_ARGS_KEYS);
  const fromEnv = env.get('MAC');
  if (fromEnv !== undefined && fromEnv !== '') {
    if (macProblem(fromEnv)) {
      throw new CniError(ErrorCode.InvalidEnvironmentVariables, `invalid CNI_ARGS MAC "${fromEnv}": not a unicast MAC address`, 'CNI_ARGS');
    }
    out.mac = fromEnv.toLowerCase();
  }
  const argsCni = (conf.args as { cni?: { mac?: unknown } } | undefined)?.cni;
  out.mac = parseMac('args.cni.mac', argsCni?.mac) ?? out.mac;
  out.mac = parseMac('runtimeConfig.mac', (conf.runtimeConfig as { mac?: unknown } | undefined)?.mac) ?? out.mac;
  return out;
}

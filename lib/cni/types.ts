/**
 * Result types. podnet works internally with the 1.x shape (`Result`) and converts at the edges
 * (see result.ts): prevResult may arrive in any version's shape, and a result leaves in the
 * config's cniVersion.
 */

export interface Interface {
  name: string;
  mac?: string;
  mtu?: number;
  sandbox?: string;
  socketPath?: string;
  pciID?: string;
}

export interface IpConfig {
  /** CIDR notation: the address with its subnet's prefix length, e.g. "10.244.1.5/24". */
  address: string;
  gateway?: string;
  /** Index into `interfaces`; absent in IPAM results. */
  interface?: number;
}

export interface Route {
  dst: string;
  gw?: string;
  mtu?: number;
  advmss?: number;
  priority?: number;
  table?: number;
  scope?: number;
}

export interface Dns {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}

export interface Result {
  cniVersion: string;
  interfaces?: Interface[];
  ips?: IpConfig[];
  routes?: Route[];
  dns?: Dns;
}

/** The fields every network configuration shares (SPEC.md "Network configuration"). */
export interface NetConf {
  cniVersion: string;
  /** True when the config said nothing and `cniVersion` is the 0.1.0 default. */
  cniVersionDefaulted?: boolean;
  name: string;
  type: string;
  capabilities?: Record<string, boolean>;
  ipam?: { type?: string; [key: string]: unknown };
  dns?: Dns;
  runtimeConfig?: Record<string, unknown>;
  args?: Record<string, unknown>;
  prevResult?: unknown;
  [key: string]: unknown;
}

/** One attachment the runtime still considers valid (GC's `cni.dev/valid-attachments`). */
export interface Attachment {
  containerID: string;
  ifname: string;
}

/**
 * The shapes podnet-routesync works with. A Node is read structurally (only the fields the
 * daemon uses), so objects from the Kubernetes client, a watch event or a nodes file all fit,
 * and any of them may be missing.
 */
export interface NodeAddress {
  type?: string | undefined;
  address?: string | undefined;
}

export interface NodeLike {
  metadata?: {
    name?: string | undefined;
    resourceVersion?: string | undefined;
    creationTimestamp?: string | Date | undefined;
  } | undefined;
  spec?: { podCIDR?: string | undefined; podCIDRs?: string[] | undefined } | undefined;
  status?: { addresses?: NodeAddress[] | undefined } | undefined;
}

export type Family = 4 | 6;

/** Why a node (or one podCIDR of it) gets no route. Kubernetes-style reason strings. */
export const Reason = {
  /** Node object has no metadata.name. */
  NodeNameMissing: 'NodeNameMissing',
  /** Two Node objects with one name (only possible in a nodes file). */
  DuplicateNodeName: 'DuplicateNodeName',
  /** No spec.podCIDRs / spec.podCIDR yet (the controller manager has not allocated one). */
  NoPodCIDR: 'NoPodCIDR',
  /** Not a CIDR, host bits set, or two podCIDRs of one family. */
  PodCIDRMalformed: 'PodCIDRMalformed',
  /** A /0, or wider than any node's share of a cluster (IPv4 /8, IPv6 /32): `8.0.0.0/7` would send
   * 8.8.8.8 to a peer. */
  PodCIDRTooBroad: 'PodCIDRTooBroad',
  /** Overlaps multicast, loopback, link-local, the unspecified range or the broadcast address. */
  PodCIDRReserved: 'PodCIDRReserved',
  /** Not inside the cluster's pod range (`--cluster-cidr`, when given). */
  PodCIDROutsideCluster: 'PodCIDROutsideCluster',
  /** Overlaps a network of this node, this node's podCIDR, or an earlier node's podCIDR (for this
   * node's own podCIDR: a network of this node other than its pod bridge, or its InternalIP). */
  PodCIDROverlap: 'PodCIDROverlap',
  /** No InternalIP of the podCIDR's family. */
  NoInternalIP: 'NoInternalIP',
  /** The InternalIP of that family is not an IP address. */
  InternalIPMalformed: 'InternalIPMalformed',
  /** The InternalIP of that family cannot be a next hop (multicast, broadcast, link-local…). */
  InternalIPUnusable: 'InternalIPUnusable',
  /** The route to the node's InternalIP goes through a gateway, is missing, or is local. */
  NotDirectlyReachable: 'NotDirectlyReachable',
} as const;
export type Reason = (typeof Reason)[keyof typeof Reason];

export interface Rejection {
  node: string;
  reason: Reason;
  message: string;
  podCIDR?: string;
}

/** One route this node should have: `<dst> via <via> proto <ours>`. */
export interface DesiredRoute {
  dst: string;
  via: string;
  family: Family;
  node: string;
}

/** What `ip route get <ip>` said about a peer's InternalIP. */
export type Reachability =
  | { ok: true; dev: string; gateway?: string | undefined; local?: boolean | undefined }
  | { ok: false; error: string };

/** An address on one of this node's interfaces (from `ip -j addr`). */
export interface LocalAddress {
  ifname: string;
  mtu: number;
  /** The address itself and its prefix length (172.18.0.2, 16). */
  address: string;
  prefix: number;
  family: Family;
}

export type SelfState =
  | {
      ok: true;
      name: string;
      /** Canonical podCIDRs, at most one per family, IPv4 first. */
      podCIDRs: string[];
      internalIPs: string[];
    }
  | { ok: false; name: string; reason: string; message: string };

export interface DesiredState {
  routes: DesiredRoute[];
  rejections: Rejection[];
  self: SelfState;
  /** Every accepted podCIDR in the cluster (this node's included): the masquerade exemption set. */
  clusterPodCIDRs: { v4: string[]; v6: string[] };
  /** The interface holding this node's InternalIP (its MTU goes into the CNI config), if any. */
  uplink: { ifname: string; mtu: number } | undefined;
  nodeCount: number;
}

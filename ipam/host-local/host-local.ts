import type { CmdArgs, GcArgs, PluginFuncs } from '../../lib/cni/dispatch.js';
import { CniError, ErrorCode } from '../../lib/cni/errors.js';
import type { Result } from '../../lib/cni/types.js';
import { CURRENT_VERSION } from '../../lib/cni/version.js';
import { allocate, freeCounts, inAnySet, staleReservations } from './allocator/allocator.js';
import { capacity } from './allocator/range-set.js';
import { type IpamConf, loadIpamConf, rangeSetText } from './config.js';
import { formatIp, parseCidr, parseIp } from '../../lib/addr/addr.js';
import { readResolvConf } from './resolv-conf.js';
import { DiskStore, type DiskStoreOptions } from './store/disk-store.js';
import type { Store } from './store/store.js';

/**
 * podnet-host-local: host-local IPAM (upstream plugins/ipam/host-local) over a Store. Handlers use
 * only their CmdArgs, so the bridge plugin can run them in-process with its own config (whose
 * `ipam` section is ours) as well as dispatch running them for the executable.
 */
export interface HostLocalDeps {
  /** The store for a config; defaults to the DiskStore under `dataDir/<network>`. */
  store?: (conf: IpamConf, args: CmdArgs) => Store;
  /** Options of the default DiskStore (tests: lock timeout, pause points; see test-hooks.ts). */
  diskOptions?: (args: CmdArgs) => DiskStoreOptions;
}

export function createHostLocalPlugin(deps: HostLocalDeps = {}): PluginFuncs {
  const storeFor = deps.store ?? ((conf: IpamConf, args: CmdArgs): Store => new DiskStore(conf.dataDir, conf.name, deps.diskOptions?.(args) ?? {}));

  async function add(args: CmdArgs): Promise<Result> {
    const conf = loadIpamConf(args.netConf, args.args);
    // Everything that can fail without the store fails before anything is reserved.
    const dns = conf.resolvConf !== undefined ? readResolvConf(conf.resolvConf) : undefined;
    const store = storeFor(conf, args);
    const ips = await store.withLock((tx) => allocate(tx, conf.ranges, conf.requestedIps, args.containerId, args.ifName));
    args.log.info('reserved', { ips: ips.map((i) => i.address) });
    const result: Result = { cniVersion: CURRENT_VERSION, ips };
    if (conf.routes.length) result.routes = conf.routes;
    if (dns && Object.keys(dns).length) result.dns = dns;
    return result;
  }

  async function del(args: CmdArgs): Promise<void> {
    const conf = loadIpamConf(args.netConf, args.args);
    const store = storeFor(conf, args);
    if (!store.exists()) return;
    const released = await store.withLock((tx) => tx.release(args.containerId, args.ifName));
    if (released.length) args.log.info('released', { ips: released });
  }

  async function check(args: CmdArgs): Promise<void> {
    const conf = loadIpamConf(args.netConf, args.args);
    const store = storeFor(conf, args);
    const what = `reservation of container "${args.containerId}" interface "${args.ifName}"`;
    const held = store.exists() ? await store.withLock((tx) => tx.getByAttachment(args.containerId, args.ifName)) : [];
    if (held.length === 0) {
      throw new CniError(ErrorCode.CheckFailed, `failed to check ${what}: no address reserved in network "${conf.name}"`);
    }
    if (!args.prevResult) return;
    const heldIps = new Set(held.map((r) => r.ip));
    const prevIps = new Set<string>();
    for (const ip of args.prevResult.ips ?? []) {
      const a = parseCidr(ip.address)?.addr ?? parseIp(ip.address);
      // Addresses outside every range set are some other plugin's business.
      if (a && inAnySet(conf.ranges, a)) prevIps.add(formatIp(a));
    }
    for (const ip of prevIps) {
      if (!heldIps.has(ip)) throw new CniError(ErrorCode.CheckFailed, `failed to check ${what}: ${ip} from prevResult is not reserved for it`);
    }
    for (const ip of heldIps) {
      if (!prevIps.has(ip)) throw new CniError(ErrorCode.CheckFailed, `failed to check ${what}: reserved ${ip} is missing from prevResult`);
    }
  }

  async function gc(args: GcArgs): Promise<void> {
    const conf = loadIpamConf(args.netConf, args.args);
    const valid = args.validAttachments;
    // No list means the runtime said nothing about what is valid: release nothing.
    if (valid === undefined) return;
    const store = storeFor(conf, args);
    if (!store.exists()) return;
    const released = await store.withLock(async (tx) => {
      const stale = staleReservations(await tx.list(), valid);
      tx.releaseReservations(stale);
      return stale;
    });
    if (released.length) args.log.info('gc released', { ips: released.map((r) => r.ip) });
  }

  async function status(args: CmdArgs): Promise<void> {
    const conf = loadIpamConf(args.netConf, args.args);
    const reserved = storeFor(conf, args).probe();
    freeCounts(conf.ranges, reserved).forEach((free, i) => {
      const set = conf.ranges[i] ?? [];
      if (free <= 0n) {
        throw new CniError(
          ErrorCode.PluginNotAvailable,
          `no free addresses left in range set ${i} (${rangeSetText(set)}): all ${capacity(set)} are reserved`,
        );
      }
    });
  }

  return { add, del, check, gc, status };
}

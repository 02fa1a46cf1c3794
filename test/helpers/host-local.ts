import { existsSync, lstatSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DIST_BIN, DIST_TEST_BIN } from './env.js';

/** Helpers for the podnet-host-local black-box tests (files only: no namespace, no root needed). */

export const HOST_LOCAL = join(DIST_BIN, 'podnet-host-local');
/**
 * The same plugin with its test hooks compiled in (PODNET_TEST_PAUSE, PODNET_TEST_LOCK_TIMEOUT_MS;
 * ipam/host-local/test-hooks.ts), built by `npm run build` into dist/test/bin, never shipped.
 */
export const HOST_LOCAL_TEST = join(DIST_TEST_BIN, 'podnet-host-local');

export function assertBuilt(): void {
  for (const f of [HOST_LOCAL, HOST_LOCAL_TEST]) if (!existsSync(f)) throw new Error(`${f} is missing: run "npm run build" first`);
}

/** A fresh data directory named with the test prefix; remove it with `rmSync(dir, {recursive})`. */
export function tempDataDir(prefix = 'phl'): string {
  return mkdtempSync(join(tmpdir(), `${prefix}-`));
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/**
 * Every path below `dir` with its content (directories as "<dir>"), for "nothing changed"
 * comparisons. Timestamps are left out: only names and contents are state.
 */
export function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string, rel: string) => {
    if (!existsSync(d)) return;
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      const r = rel ? `${rel}/${name}` : name;
      if (lstatSync(p).isDirectory()) {
        out[r] = '<dir>';
        walk(p, r);
      } else {
        out[r] = readFileSync(p, 'utf8');
      }
    }
  };
  walk(dir, '');
  return out;
}

/** Reservation files (named as addresses) of one network. */
export function reservations(dataDir: string, network: string): Record<string, string> {
  const dir = join(dataDir, network);
  if (!existsSync(dir)) return {};
  const out: Record<string, string> = {};
  for (const name of readdirSync(dir).sort()) {
    if (/^\d+\.\d+\.\d+\.\d+$/.test(name) || (name.includes(':') && /^[0-9a-f:]+$/.test(name))) out[name] = readFileSync(join(dir, name), 'utf8');
  }
  return out;
}

/**
 * podnet's index entries of one network as `<containerID>:<ifname>` (legacy ones `<id>:`), read
 * from its buckets (podnet/index/<xx>.json); none once everything is released.
 */
export function indexEntries(dataDir: string, network: string): string[] {
  const dir = join(dataDir, network, 'podnet', 'index');
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const entries = JSON.parse(readFileSync(join(dir, name), 'utf8')) as { containerID: string; ifname?: string; ips: string[] }[];
    for (const e of entries) out.push(`${e.containerID}:${e.ifname ?? ''}`);
  }
  return out.sort();
}

/** The addresses podnet's index lists for one attachment. */
export function indexedIps(dataDir: string, network: string, containerId: string, ifName: string): string[] | undefined {
  const dir = join(dataDir, network, 'podnet', 'index');
  if (!existsSync(dir)) return undefined;
  for (const name of readdirSync(dir)) {
    const entries = JSON.parse(readFileSync(join(dir, name), 'utf8')) as { containerID: string; ifname?: string; ips: string[] }[];
    const e = entries.find((x) => x.containerID === containerId && x.ifname === ifName);
    if (e) return e.ips;
  }
  return undefined;
}

/** The tutorial's example config (cniVersion 0.2.0 there), with a private dataDir. */
export function tutorialConf(dataDir: string, cniVersion = '0.2.0', name = 'mynet'): Record<string, unknown> {
  return {
    cniVersion,
    name,
    type: 'bridge',
    bridge: 'cni0',
    isGateway: true,
    ipMasq: true,
    ipam: { type: 'podnet-host-local', subnet: '10.22.0.0/16', routes: [{ dst: '0.0.0.0/0' }], dataDir },
  };
}

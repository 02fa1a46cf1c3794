import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { DIST_BIN, REPO_ROOT } from '../helpers/env.js';
import { copyLibsOf, copyWithLibs, makeRootfs, writeOciArchive } from '../helpers/oci-image.js';
import { PAUSE_IMAGE } from './configs.js';

/**
 * The cluster's images, built without Docker or a registry and cached outside the checkout
 * under a key of everything that goes into them (a second `up` builds nothing):
 *
 * - pause: build/pause/linux/pause.c from the k8s.io/kubernetes module, `gcc -static` (as its
 *   Makefile does), alone in the image, user 65535 — what registry.k8s.io/pause is.
 * - agnhost: the agnhost binary from scripts/peers.sh with what the upstream image adds to it
 *   (its Dockerfile: curl, nc, iproute2's ip and ss, bash, /uploads, porter's certificate, the
 *   agnhost-2 link, user 1000 / group 50000), under the exact name `e2e.test --list-images` prints.
 * - podnet: kind/Dockerfile's content — /opt/podnet/bin/{podnet,podnet-routesync} with the two
 *   plugin links, /opt/podnet/install.sh, and ip, nft, iptables (nft backend) and ping.
 *
 * Root filesystems are made of the host's Debian 12 binaries plus the libraries ldd lists
 * (and iptables' dlopen()ed extensions), with busybox-static for the shell and the coreutils
 * install.sh needs. Why not debootstrap: it downloads ~120 MB from a Debian mirror and takes
 * minutes per build; these images hold exactly the Debian 12 binaries the Dockerfile's
 * debian:12-slim would (same release, same packages), are made in seconds offline, and the
 * daemon runs the very ip/nft/iptables the integration tests run.
 */
export const IMAGE_CACHE = process.env.PODNET_CLUSTER_CACHE ?? '/var/cache/podnet-cluster';
const RECIPE = '2';

export interface ClusterImage {
  name: string;
  ref: string;
  tar: string;
}

const BUSYBOX = '/bin/busybox';
/** /bin/sh is dash, as on Debian: busybox's sh runs its own applets (ip, nc, ping) before PATH. */
const DASH = '/usr/bin/dash';

/** The k8s.io/kubernetes module's source (pause.c, agnhost's porter certificate), from the Go module cache. */
export async function kubernetesModuleDir(version: string): Promise<string> {
  const go = process.env.GO ?? (existsSync('/usr/local/go/bin/go') ? '/usr/local/go/bin/go' : 'go');
  // Outside any module (GOFLAGS=-mod=mod): `go mod download` of one module needs no go.mod.
  const r = await execa(go, ['mod', 'download', '-json', `k8s.io/kubernetes@${version}`], { cwd: '/', reject: false, stdin: 'ignore', env: { GOFLAGS: '-mod=mod' } });
  const out = JSON.parse(r.stdout || '{}') as { Dir?: string; Error?: string };
  if (!out.Dir) throw new Error(`failed to download k8s.io/kubernetes@${version}: ${out.Error ?? r.stderr}`);
  return out.Dir;
}

function keyOf(parts: (string | Buffer)[]): string {
  const h = createHash('sha256').update(RECIPE);
  for (const p of parts) h.update(typeof p === 'string' ? p : p).update('\0');
  return h.digest('hex').slice(0, 16);
}

function fileKeyParts(files: readonly string[]): Buffer[] {
  return files.map((f) => readFileSync(f));
}

/** Build into the cache unless the archive for this key is there; returns the archive. */
async function cached(name: string, ref: string, key: string, build: (rootfs: string) => Promise<{ Entrypoint?: string[]; Cmd?: string[]; User?: string; Env?: string[] }>, say: (m: string) => void): Promise<ClusterImage> {
  const dir = join(IMAGE_CACHE, 'images');
  const tar = join(dir, `${name}-${key}.tar`);
  if (existsSync(tar)) return { name, ref, tar };
  mkdirSync(dir, { recursive: true });
  const started = Date.now();
  const work = mkdtempSync(join(dir, `.build-${name}-`));
  try {
    const rootfs = join(work, 'rootfs');
    makeRootfs(rootfs);
    const cfg = await build(rootfs);
    const config = { Env: cfg.Env ?? ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], WorkingDir: '/', ...cfg };
    const tmpTar = join(work, 'image.tar');
    await writeOciArchive({ rootfs, work, ref, config, createdBy: `podnet test/cluster/images.ts (${name}, recipe ${RECIPE})`, tar: tmpTar });
    renameSync(tmpTar, tar);
    // Older archives of this image are never used again.
    for (const f of readdirSync(dir)) if (f.startsWith(`${name}-`) && f.endsWith('.tar') && f !== `${name}-${key}.tar`) rmSync(join(dir, f), { force: true });
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  say(`built image ${ref} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return { name, ref, tar };
}

export async function pauseImage(k8sDir: string, say: (m: string) => void): Promise<ClusterImage> {
  const src = join(k8sDir, 'build', 'pause', 'linux', 'pause.c');
  const gcc = (await execa('gcc', ['--version'])).stdout.split('\n')[0] ?? '';
  const key = keyOf([PAUSE_IMAGE, gcc, ...fileKeyParts([src])]);
  return cached('pause', PAUSE_IMAGE, key, async (rootfs) => {
    const tag = PAUSE_IMAGE.slice(PAUSE_IMAGE.lastIndexOf(':') + 1);
    await execa('gcc', ['-Os', '-Wall', '-Werror', '-static', `-DVERSION=v${tag}-podnet`, '-o', join(rootfs, 'pause'), src]);
    await execa('strip', [join(rootfs, 'pause')]);
    return { Entrypoint: ['/pause'], User: '65535:65535' };
  }, say);
}

const SHELL_APPLETS = ['cat', 'cp', 'mv', 'ln', 'rm', 'mkdir', 'chmod', 'cmp', 'readlink', 'sed', 'echo', 'ls', 'sleep', 'hostname', 'grep', 'ps', 'wget', 'timeout', 'date', 'env', 'id', 'printf', 'test', 'true', 'false', 'uname', 'head', 'tail'];

/** dash as /bin/sh, and busybox for the coreutils (links are only made where no real tool is). */
async function shell(rootfs: string): Promise<void> {
  await copyWithLibs(rootfs, [DASH]);
  symlinkSync('dash', join(rootfs, 'usr/bin/sh'));
  copyFileSync(BUSYBOX, join(rootfs, 'usr/bin/busybox'));
  for (const a of SHELL_APPLETS) if (!existsSync(join(rootfs, 'usr/bin', a)) && !existsSync(join(rootfs, 'usr/sbin', a))) symlinkSync('busybox', join(rootfs, 'usr/bin', a));
}

const XTABLES_EXT = '/usr/lib/x86_64-linux-gnu/xtables';
const NET_TOOLS = ['/usr/bin/ip', '/usr/sbin/nft', '/usr/sbin/xtables-nft-multi', '/usr/bin/ping'];

export async function podnetImage(say: (m: string) => void): Promise<ClusterImage> {
  const inputs = [join(DIST_BIN, 'podnet'), join(DIST_BIN, 'podnet-routesync'), join(REPO_ROOT, 'kind', 'install.sh'), ...NET_TOOLS, BUSYBOX, DASH];
  for (const f of inputs) if (!existsSync(f)) throw new Error(`failed to build the podnet image: ${f} is missing (npm run build; scripts/setup.sh)`);
  const key = keyOf(fileKeyParts(inputs));
  return cached('podnet', `docker.io/library/podnet:${key.slice(0, 12)}`, key, async (rootfs) => {
    await copyWithLibs(rootfs, NET_TOOLS);
    await copyWithLibs(rootfs, readdirSync(XTABLES_EXT).map((f) => join(XTABLES_EXT, f)));
    for (const n of ['iptables', 'iptables-save', 'iptables-restore', 'ip6tables', 'ip6tables-save', 'ip6tables-restore', 'iptables-nft', 'ip6tables-nft']) {
      symlinkSync('xtables-nft-multi', join(rootfs, 'usr/sbin', n));
    }
    for (const f of ['/etc/protocols', '/etc/services', '/etc/ethertypes']) if (existsSync(f)) copyFileSync(f, join(rootfs, f));
    const bin = join(rootfs, 'opt/podnet/bin');
    mkdirSync(bin, { recursive: true });
    copyFileSync(join(DIST_BIN, 'podnet'), join(bin, 'podnet'));
    copyFileSync(join(DIST_BIN, 'podnet-routesync'), join(bin, 'podnet-routesync'));
    symlinkSync('podnet', join(bin, 'podnet-bridge'));
    symlinkSync('podnet', join(bin, 'podnet-host-local'));
    await copyLibsOf(rootfs, [join(bin, 'podnet'), join(bin, 'podnet-routesync')]);
    copyFileSync(join(REPO_ROOT, 'kind', 'install.sh'), join(rootfs, 'opt/podnet/install.sh'));
    await shell(rootfs);
    await execa('chmod', ['0755', join(bin, 'podnet'), join(bin, 'podnet-routesync'), join(rootfs, 'opt/podnet/install.sh')]);
    writeFileSync(join(rootfs, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
    writeFileSync(join(rootfs, 'etc/group'), 'root:x:0:\n');
    return { Entrypoint: ['/opt/podnet/bin/podnet-routesync'] };
  }, say);
}

/** The agnhost image name(s) the e2e binary asks for (`e2e.test --list-images`). */
export async function e2eImageNames(e2eTest: string): Promise<string[]> {
  const r = await execa(e2eTest, ['--list-images'], { stdin: 'ignore' });
  return r.stdout.split('\n').map((l) => l.trim()).filter(Boolean);
}

const AGNHOST_TOOLS = ['/usr/bin/curl', '/usr/bin/nc.openbsd', '/usr/bin/ip', '/usr/bin/ss', '/usr/bin/bash'];

export async function agnhostImage(o: { agnhost: string; ref: string; k8sDir: string }, say: (m: string) => void): Promise<ClusterImage> {
  const porter = join(o.k8sDir, 'test', 'images', 'agnhost', 'porter');
  const inputs = [o.agnhost, ...AGNHOST_TOOLS, BUSYBOX, DASH, join(porter, 'localhost.crt'), join(porter, 'localhost.key')];
  for (const f of inputs) if (!existsSync(f)) throw new Error(`failed to build the agnhost image: ${f} is missing`);
  const key = keyOf([o.ref, ...fileKeyParts(inputs)]);
  return cached('agnhost', o.ref, key, async (rootfs) => {
    await copyWithLibs(rootfs, AGNHOST_TOOLS);
    symlinkSync('nc.openbsd', join(rootfs, 'usr/bin/nc'));
    await shell(rootfs);
    copyFileSync(o.agnhost, join(rootfs, 'agnhost'));
    await execa('chmod', ['0755', join(rootfs, 'agnhost')]);
    symlinkSync('agnhost', join(rootfs, 'agnhost-2'));
    mkdirSync(join(rootfs, 'uploads'));
    copyFileSync(join(porter, 'localhost.crt'), join(rootfs, 'localhost.crt'));
    copyFileSync(join(porter, 'localhost.key'), join(rootfs, 'localhost.key'));
    writeFileSync(join(rootfs, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nuser-defined-in-image:x:1000:1000::/home/user-defined-in-image:/bin/sh\n');
    writeFileSync(join(rootfs, 'etc/group'), 'root:x:0:\nuser-defined-in-image:x:1000:\ngroup-defined-in-image:x:50000:user-defined-in-image\n');
    for (const f of ['/etc/protocols', '/etc/services']) if (existsSync(f)) copyFileSync(f, join(rootfs, f));
    return { Entrypoint: ['/agnhost'], Cmd: ['pause'] };
  }, say);
}

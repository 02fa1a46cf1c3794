import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, lstatSync, mkdirSync, readFileSync, readlinkSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { execa } from 'execa';

/**
 * OCI images without Docker or a registry: a rootfs directory becomes one uncompressed layer
 * (reproducible: sorted, owner 0, mtime 0), then the image config, the manifest, index.json and
 * the oci-layout marker are written and tarred into an OCI image-layout archive that
 * `ctr images import` takes.
 */
export interface BuiltImage {
  /** OCI image-layout archive, ready for `ctr image import`. */
  tar: string;
  /** The name the archive's index gives the image. */
  ref: string;
  /** sha256 digest of the manifest. */
  manifestDigest: string;
}

/** The parts of an OCI image config's `config` we set. */
export interface ImageRunConfig {
  Env?: string[];
  Entrypoint?: string[];
  Cmd?: string[];
  WorkingDir?: string;
  User?: string;
}

export async function writeOciArchive(o: { rootfs: string; work: string; ref: string; config: ImageRunConfig; createdBy: string; tar?: string }): Promise<BuiltImage> {
  const layout = join(o.work, 'layout');
  const blobs = join(layout, 'blobs', 'sha256');
  mkdirSync(blobs, { recursive: true });

  // Uncompressed layer: its digest is also its diff_id.
  const layerTmp = join(o.work, 'layer.tar');
  await execa('tar', ['--sort=name', '--owner=0', '--group=0', '--numeric-owner', '--mtime=@0', '-C', o.rootfs, '-cf', layerTmp, '.']);
  const layer = putBlobFile(blobs, layerTmp);

  const config = putBlob(
    blobs,
    json({
      created: '1970-01-01T00:00:00Z',
      architecture: 'amd64',
      os: 'linux',
      config: o.config,
      rootfs: { type: 'layers', diff_ids: [`sha256:${layer.digest}`] },
      history: [{ created: '1970-01-01T00:00:00Z', created_by: o.createdBy }],
    }),
  );
  const manifest = putBlob(
    blobs,
    json({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${config.digest}`, size: config.size },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: `sha256:${layer.digest}`, size: layer.size }],
    }),
  );
  writeFileSync(
    join(layout, 'index.json'),
    json({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [
        {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          digest: `sha256:${manifest.digest}`,
          size: manifest.size,
          platform: { architecture: 'amd64', os: 'linux' },
          annotations: { 'io.containerd.image.name': o.ref, 'org.opencontainers.image.ref.name': o.ref.slice(o.ref.lastIndexOf(':') + 1) },
        },
      ],
    }),
  );
  writeFileSync(join(layout, 'oci-layout'), json({ imageLayoutVersion: '1.0.0' }));

  const tar = o.tar ?? join(o.work, 'image.tar');
  await execa('tar', ['--owner=0', '--group=0', '--numeric-owner', '-C', layout, '-cf', tar, 'oci-layout', 'index.json', 'blobs']);
  return { tar, ref: o.ref, manifestDigest: `sha256:${manifest.digest}` };
}

/**
 * A merged-/usr rootfs skeleton as Debian 12 has it (bin, sbin, lib, lib64 → usr/…), so host
 * binaries and the libraries ldd names can be copied to the same paths.
 */
export function makeRootfs(rootfs: string): void {
  for (const d of ['usr/bin', 'usr/sbin', 'usr/lib', 'usr/lib64', 'dev', 'proc', 'sys', 'tmp', 'etc', 'root', 'run', 'var/run']) mkdirSync(join(rootfs, d), { recursive: true });
  for (const d of ['bin', 'sbin', 'lib', 'lib64']) if (!existsSync(join(rootfs, d))) symlinkSync(`usr/${d}`, join(rootfs, d));
  chmodSync(join(rootfs, 'tmp'), 0o1777);
}

/**
 * Copy host files into the rootfs at the same paths, each executable or shared object with the
 * libraries `ldd` says it loads (transitively). Symlinks are recreated as symlinks and their
 * targets copied too.
 */
export async function copyWithLibs(rootfs: string, paths: readonly string[]): Promise<void> {
  const done = new Set<string>();
  const queue = [...paths];
  await copyQueue(rootfs, queue, done);
}

/** Copy only the shared libraries `files` (already placed elsewhere in the rootfs) need. */
export async function copyLibsOf(rootfs: string, files: readonly string[]): Promise<void> {
  const queue: string[] = [];
  for (const f of files) queue.push(...(await sharedLibs(f)));
  await copyQueue(rootfs, queue, new Set());
}

async function copyQueue(rootfs: string, queue: string[], done: Set<string>): Promise<void> {
  while (queue.length) {
    const p = queue.shift() as string;
    if (done.has(p)) continue;
    done.add(p);
    const dest = join(rootfs, p);
    mkdirSync(dirname(dest), { recursive: true });
    const st = lstatSync(p);
    if (st.isSymbolicLink()) {
      const target = readlinkSync(p);
      if (!existsSync(dest)) symlinkSync(target, dest);
      queue.push(target.startsWith('/') ? target : join(dirname(p), target));
      continue;
    }
    copyFileSync(p, dest);
    chmodSync(dest, st.mode & 0o7777);
    for (const lib of await sharedLibs(p)) queue.push(lib);
  }
}

/** The absolute paths ldd lists for an ELF file ([] for a static binary or a non-ELF file). */
async function sharedLibs(file: string): Promise<string[]> {
  const head = readFileSync(file).subarray(0, 4);
  if (!head.equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]))) return [];
  const r = await execa('ldd', [file], { reject: false });
  if (r.exitCode !== 0) return [];
  const libs: string[] = [];
  for (const line of r.stdout.split('\n')) {
    const m = /=>\s*(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
    if (m?.[1]) libs.push(m[1]);
  }
  return libs;
}

function json(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value));
}

function putBlob(blobs: string, content: Buffer): { digest: string; size: number } {
  const digest = createHash('sha256').update(content).digest('hex');
  writeFileSync(join(blobs, digest), content);
  return { digest, size: content.length };
}

function putBlobFile(blobs: string, from: string): { digest: string; size: number } {
  const content = readFileSync(from);
  const digest = createHash('sha256').update(content).digest('hex');
  renameSync(from, join(blobs, digest));
  return { digest, size: content.length };
}

import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';

/** The busybox from Debian's busybox-static: one static binary, so the image needs no libraries. */
export const BUSYBOX = '/bin/busybox';

/** Applets the container tests use, linked to busybox in the image's /bin. */
const APPLETS = ['sh', 'sleep', 'ping', 'nc', 'ip', 'cat', 'echo', 'hostname', 'ls', 'true', 'netstat', 'grep'] as const;

export interface BuiltImage {
  /** OCI image-layout archive, ready for `ctr image import`. */
  tar: string;
  /** The name the archive's index gives the image. */
  ref: string;
  /** sha256 digest of the manifest. */
  manifestDigest: string;
}

/**
 * Build a one-layer OCI image from busybox-static, by hand, because no registry is reachable:
 * a rootfs directory (busybox + applet links) tarred into the layer, then the image config,
 * the manifest, index.json and the oci-layout marker, tarred into an OCI image-layout archive.
 * `work` must be an empty directory; the archive is written inside it. `cmd` is the image's
 * default command (a CRI sandbox image: one that never exits, as pause does).
 */
export async function buildBusyboxImage(work: string, ref = 'pcl.local/busybox:1', cmd: readonly string[] = ['/bin/sh']): Promise<BuiltImage> {
  const rootfs = join(work, 'rootfs');
  for (const d of ['bin', 'dev', 'proc', 'sys', 'tmp', 'etc', 'root']) mkdirSync(join(rootfs, d), { recursive: true });
  copyFileSync(BUSYBOX, join(rootfs, 'bin', 'busybox'));
  for (const applet of APPLETS) symlinkSync('busybox', join(rootfs, 'bin', applet));
  writeFileSync(join(rootfs, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  writeFileSync(join(rootfs, 'etc', 'group'), 'root:x:0:\n');

  const layout = join(work, 'layout');
  const blobs = join(layout, 'blobs', 'sha256');
  mkdirSync(blobs, { recursive: true });

  // Uncompressed layer: its digest is also its diff_id. Reproducible ownership, order and times.
  const layerTmp = join(work, 'layer.tar');
  await execa('tar', ['--sort=name', '--owner=0', '--group=0', '--numeric-owner', '--mtime=@0', '-C', rootfs, '-cf', layerTmp, '.']);
  const layer = putBlob(blobs, readFileSync(layerTmp), layerTmp);

  const config = putBlob(
    blobs,
    json({
      created: '1970-01-01T00:00:00Z',
      architecture: 'amd64',
      os: 'linux',
      config: { Env: ['PATH=/bin'], Cmd: [...cmd], WorkingDir: '/' },
      rootfs: { type: 'layers', diff_ids: [`sha256:${layer.digest}`] },
      history: [{ created: '1970-01-01T00:00:00Z', created_by: 'podnet test/e2e/clients/image.ts (busybox-static)' }],
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
          annotations: { 'io.containerd.image.name': ref, 'org.opencontainers.image.ref.name': ref.slice(ref.lastIndexOf(':') + 1) },
        },
      ],
    }),
  );
  writeFileSync(join(layout, 'oci-layout'), json({ imageLayoutVersion: '1.0.0' }));

  const tar = join(work, 'image.tar');
  await execa('tar', ['--owner=0', '--group=0', '--numeric-owner', '-C', layout, '-cf', tar, 'oci-layout', 'index.json', 'blobs']);
  return { tar, ref, manifestDigest: `sha256:${manifest.digest}` };
}

function json(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value));
}

/** Store content under blobs/sha256/<digest>; `from` is moved there instead of rewritten when given. */
function putBlob(blobs: string, content: Buffer, from?: string): { digest: string; size: number } {
  const digest = createHash('sha256').update(content).digest('hex');
  if (from) renameSync(from, join(blobs, digest));
  else writeFileSync(join(blobs, digest), content);
  return { digest, size: content.length };
}

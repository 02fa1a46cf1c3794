import { copyFileSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type BuiltImage, writeOciArchive } from '../../helpers/oci-image.js';

export type { BuiltImage };

/** The busybox from Debian's busybox-static: one static binary, so the image needs no libraries. */
export const BUSYBOX = '/bin/busybox';

/** Applets the container tests use, linked to busybox in the image's /bin. */
const APPLETS = ['sh', 'sleep', 'ping', 'nc', 'ip', 'cat', 'echo', 'hostname', 'ls', 'true', 'netstat', 'grep'] as const;

/**
 * Build a one-layer OCI image from busybox-static, by hand, because no registry is reachable:
 * a rootfs directory (busybox + applet links) made into an OCI image-layout archive by
 * test/helpers/oci-image.ts. `work` must be an empty directory; the archive is written inside
 * it. `cmd` is the image's default command (a CRI sandbox image: one that never exits, as
 * pause does).
 */
export async function buildBusyboxImage(work: string, ref = 'pcl.local/busybox:1', cmd: readonly string[] = ['/bin/sh']): Promise<BuiltImage> {
  const rootfs = join(work, 'rootfs');
  for (const d of ['bin', 'dev', 'proc', 'sys', 'tmp', 'etc', 'root']) mkdirSync(join(rootfs, d), { recursive: true });
  copyFileSync(BUSYBOX, join(rootfs, 'bin', 'busybox'));
  for (const applet of APPLETS) symlinkSync('busybox', join(rootfs, 'bin', applet));
  writeFileSync(join(rootfs, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  writeFileSync(join(rootfs, 'etc', 'group'), 'root:x:0:\n');
  return writeOciArchive({ rootfs, work, ref, config: { Env: ['PATH=/bin'], Cmd: [...cmd], WorkingDir: '/' }, createdBy: 'podnet test/e2e/clients/image.ts (busybox-static)' });
}

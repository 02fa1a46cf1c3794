import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PEER_VERSIONS, PEERS_SCRIPT, type PeerName, peerBin, peerDir } from '../helpers/peers.js';

// The peers scripts/peers.sh built (scripts/setup.sh builds them all): each executable is there
// and reports the version pinned in scripts/peers.versions; asking again builds nothing.
// A peer that is not built fails here with the command to run.

const V = PEER_VERSIONS;
const run = (file: string, args: string[], env: Record<string, string> = {}) => {
  const r = spawnSync(file, args, { encoding: 'utf8', env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env }, timeout: 60_000 });
  return { code: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}` };
};

describe('real peers from their Go modules (scripts/peers.sh)', () => {
  it('versions are pinned once, each peer in its <name>-<version> directory', () => {
    for (const key of ['CNI_PLUGINS_VERSION', 'CNI_VERSION', 'KUBERNETES_VERSION', 'CRI_TOOLS_VERSION', 'CONTAINERD_VERSION', 'RUNC_VERSION', 'ETCD_VERSION']) {
      expect(V[key], key).toMatch(/^v\d+\.\d+\.\d+$/);
    }
    // crictl follows the Kubernetes minor.
    expect(V.CRI_TOOLS_VERSION!.split('.').slice(0, 2)).toEqual(V.KUBERNETES_VERSION!.split('.').slice(0, 2));
    const dirs: [PeerName, string][] = [
      ['cni-plugins', V.CNI_PLUGINS_VERSION!],
      ['cri-tools', V.CRI_TOOLS_VERSION!],
      ['containerd', V.CONTAINERD_VERSION!],
      ['etcd', V.ETCD_VERSION!],
      ['kubernetes', V.KUBERNETES_VERSION!],
    ];
    for (const [name, version] of dirs) expect(peerDir(name).endsWith(`/${name}-${version}`), name).toBe(true);
    expect(peerDir('libcni')).toMatch(new RegExp(`/libcni-${V.CNI_VERSION}-[0-9a-f]{12}$`));
  });

  it('cni-plugins: every plugin of the release, each reporting it', () => {
    const bin = join(peerDir('cni-plugins'), 'bin');
    expect(readdirSync(bin).sort()).toEqual(
      ['bandwidth', 'bridge', 'dhcp', 'dummy', 'firewall', 'host-device', 'host-local', 'ipvlan', 'loopback', 'macvlan', 'portmap', 'ptp', 'sbr', 'static', 'tap', 'tuning', 'vlan', 'vrf'].sort(),
    );
    for (const p of readdirSync(bin)) {
      const r = run(join(bin, p), []);
      expect(r.out, p).toContain(`plugin ${V.CNI_PLUGINS_VERSION}`);
    }
    const version = run(join(bin, 'portmap'), [], { CNI_COMMAND: 'VERSION' });
    expect(JSON.parse(version.out).supportedVersions).toContain('1.1.0');
  });

  it('libcni driver, crictl, containerd + shim + ctr + runc, etcd + etcdctl report their versions', () => {
    const info = JSON.parse(run(peerBin('libcni', 'libcni-driver'), ['-verb', 'info']).out);
    expect(info.info.verbs).toEqual(expect.arrayContaining(['gc', 'status']));
    expect(run(peerBin('cri-tools', 'crictl'), ['--version']).out).toContain(`crictl version ${V.CRI_TOOLS_VERSION}`);
    expect(run(peerBin('containerd', 'containerd'), ['--version']).out).toContain(`containerd/v2 ${V.CONTAINERD_VERSION}`);
    expect(run(peerBin('containerd', 'ctr'), ['--version']).out).toContain(V.CONTAINERD_VERSION);
    expect(run(peerBin('containerd', 'containerd-shim-runc-v2'), ['-v']).out).toContain(V.CONTAINERD_VERSION);
    const runc = run(peerBin('containerd', 'runc'), ['--version']).out;
    expect(runc).toContain(`runc version ${V.RUNC_VERSION!.slice(1)}`);
    expect(runc).toMatch(/libseccomp: \d/);
    expect(run(peerBin('etcd', 'etcd'), ['--version']).out).toContain(`etcd Version: ${V.ETCD_VERSION!.slice(1)}`);
    expect(run(peerBin('etcd', 'etcdctl'), ['version']).out).toContain(`etcdctl version: ${V.ETCD_VERSION!.slice(1)}`);
  });

  it('kubernetes: every component reports the release; e2e.test lists its images and the network tests', () => {
    const k = V.KUBERNETES_VERSION!;
    for (const c of ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kubelet', 'kube-proxy']) {
      expect(run(peerBin('kubernetes', c), ['--version']).out, c).toContain(`Kubernetes ${k}`);
    }
    expect(run(peerBin('kubernetes', 'kubectl'), ['version', '--client']).out).toContain(`Client Version: ${k}`);
    expect(run(peerBin('kubernetes', 'agnhost'), ['--help']).out).toContain('netexec');
    const images = run(peerBin('kubernetes', 'e2e.test'), ['--list-images']);
    expect(images.code, images.out).toBe(0);
    expect(images.out).toMatch(/registry\.k8s\.io\/e2e-test-images\/agnhost:\S+/);
    const dry = run(peerBin('kubernetes', 'e2e.test'), ['--ginkgo.dry-run', '--ginkgo.v', '--ginkgo.focus=Networking Granular Checks', '--ginkgo.no-color']);
    expect(dry.out).toContain('Networking Granular Checks: Pods');
    expect(dry.out).toContain('Networking Granular Checks: Services');
  }, 120_000);

  it('asking for built peers again builds nothing, and says so', () => {
    const r = spawnSync('bash', [PEERS_SCRIPT, 'cni-plugins', 'libcni', 'etcd'], { encoding: 'utf8', timeout: 60_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toContain('nothing to build');
    expect(r.stderr).not.toContain('building ');
  });
});

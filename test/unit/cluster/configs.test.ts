import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { REPO_ROOT } from '../../helpers/env.js';
import { podnetManifest, referenceConflist } from '../../cluster/cluster.js';
import { CLUSTER_CIDR, PAUSE_IMAGE, containerdConfig, kubeProxyConfig, kubeletConfig } from '../../cluster/configs.js';

describe('cluster configs', () => {
  it('kind/podnet.yaml is applied unchanged but for the image name of both containers', () => {
    const original = readFileSync(join(REPO_ROOT, 'kind', 'podnet.yaml'), 'utf8').split('\n');
    const applied = podnetManifest('docker.io/library/podnet:0123456789ab').split('\n');
    expect(applied.length).toBe(original.length);
    const changed = original.map((l, i) => [l, applied[i]]).filter(([a, b]) => a !== b);
    expect(changed).toEqual([
      ['          image: podnet:dev', '          image: docker.io/library/podnet:0123456789ab'],
      ['          image: podnet:dev', '          image: docker.io/library/podnet:0123456789ab'],
    ]);
    expect(parseAllDocuments(applied.join('\n')).every((d) => d.errors.length === 0)).toBe(true);
  });

  it('kube-proxy leaves the global nf_conntrack_max alone and runs iptables mode over the cluster CIDR', () => {
    const c = parse(kubeProxyConfig({ nodeName: 'pcl-worker' }));
    expect(c.conntrack.maxPerCore).toBe(0);
    expect(c.mode).toBe('iptables');
    expect(c.clusterCIDR).toBe(CLUSTER_CIDR);
    expect(c.hostnameOverride).toBe('pcl-worker');
  });

  it('kubelet uses cgroupfs under the node\'s own cgroup root and never evicts or GCs imported images', () => {
    const c = parse(kubeletConfig({ nodeIp: '172.18.0.3', cgroupRoot: '/pcl/pcl-worker/pods' }));
    expect(c).toMatchObject({ cgroupDriver: 'cgroupfs', cgroupRoot: '/pcl/pcl-worker/pods', address: '172.18.0.3', imageGCHighThresholdPercent: 100 });
    expect(c.authentication.anonymous.enabled).toBe(false);
    expect(c.evictionHard['nodefs.available']).toBe('0%');
  });

  it('containerd: runc without systemd cgroups, the pause image pinned, CNI paths as kind has them', () => {
    const t = containerdConfig({ snapshotter: 'overlayfs', runc: '/x/runc' });
    expect(t).toMatch(/SystemdCgroup = false/);
    expect(t).toContain(`sandbox = '${PAUSE_IMAGE}'`);
    expect(t).toContain("bin_dirs = ['/opt/cni/bin']");
    expect(t).toContain("conf_dir = '/etc/cni/net.d'");
    expect(t).toContain("BinaryName = '/x/runc'");
  });

  it('the reference cluster\'s conflist: upstream bridge + host-local on the node\'s podCIDR, no per-pod masquerade', () => {
    const c = JSON.parse(referenceConflist('10.244.2.0/24'));
    expect(c.plugins.map((p: { type: string }) => p.type)).toEqual(['bridge', 'portmap']);
    expect(c.plugins[0]).toMatchObject({ ipMasq: false, hairpinMode: true, ipam: { type: 'host-local', ranges: [[{ subnet: '10.244.2.0/24' }]] } });
  });
});

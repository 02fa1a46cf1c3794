/**
 * The node components' configuration files, as pure functions of the cluster's shape (each
 * checked by test/cluster/configs.test.ts). Values follow kind's node image where kind has one.
 */

export const CLUSTER_CIDR = '10.244.0.0/16';
export const SERVICE_CIDR = '10.96.0.0/16';
export const KUBERNETES_SERVICE_IP = '10.96.0.1';
export const CLUSTER_DNS_IP = '10.96.0.10';
export const APISERVER_PORT = 6443;
/** pause image of Kubernetes 1.34 (cmd/kubeadm/app/constants PauseVersion). */
export const PAUSE_IMAGE = 'registry.k8s.io/pause:3.10.1';

/** containerd 2 (config version 3): CRI with runc, cgroupfs (no systemd here), overlayfs. */
export function containerdConfig(o: { snapshotter: string; runc: string }): string {
  return `version = 3
root = '/var/lib/containerd'
state = '/run/containerd'

[grpc]
  address = '/run/containerd/containerd.sock'

[debug]
  level = 'info'

[metrics]
  address = ''

[plugins]
  [plugins.'io.containerd.cri.v1.images']
    snapshotter = '${o.snapshotter}'
    # Images come from \`ctr images import\`, never from a registry (none is reachable).
    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = '${PAUSE_IMAGE}'
  [plugins.'io.containerd.cri.v1.runtime']
    # No oom_score_adj below containerd's own: this machine's root lacks CAP_SYS_RESOURCE, and
    # runc fails every sandbox that asks for less (kubelet asks -998 for node-critical pods).
    restrict_oom_score_adj = true
    [plugins.'io.containerd.cri.v1.runtime'.containerd]
      default_runtime_name = 'runc'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
        runtime_type = 'io.containerd.runc.v2'
        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
          BinaryName = '${o.runc}'
          SystemdCgroup = false
    [plugins.'io.containerd.cri.v1.runtime'.cni]
      bin_dirs = ['/opt/cni/bin']
      conf_dir = '/etc/cni/net.d'
  [plugins.'io.containerd.grpc.v1.cri']
    # The streaming server (exec, port-forward) listens on the node's loopback, as in kind.
    stream_server_address = '127.0.0.1'
`;
}

export interface KubeletConfigOptions {
  nodeIp: string;
  /** cgroupfs path under which kubelet makes kubepods (exists in every v1 hierarchy). */
  cgroupRoot: string;
}

/**
 * KubeletConfiguration: cgroupfs driver on the node's own cgroup root, x509 + webhook auth as
 * kubeadm sets it, no image GC and no disk eviction (kind's values: images are imported, never
 * pulled back), no static pods.
 */
export function kubeletConfig(o: KubeletConfigOptions): string {
  return `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: ${o.nodeIp}
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: /etc/kubernetes/pki/ca.crt
authorization:
  mode: Webhook
cgroupDriver: cgroupfs
cgroupRoot: ${o.cgroupRoot}
cgroupsPerQOS: true
containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
clusterDNS:
  - ${CLUSTER_DNS_IP}
clusterDomain: cluster.local
failSwapOn: false
healthzBindAddress: 127.0.0.1
healthzPort: 10248
imageGCHighThresholdPercent: 100
evictionHard:
  imagefs.available: "0%"
  nodefs.available: "0%"
  nodefs.inodesFree: "0%"
resolvConf: /etc/resolv.conf
rotateCertificates: false
serializeImagePulls: false
staticPodPath: ""
`;
}

/**
 * KubeProxyConfiguration, iptables mode. conntrack.maxPerCore 0 (as kind): kube-proxy leaves
 * the global nf_conntrack_max alone — it is the one conntrack sysctl that is not per network
 * namespace. The TCP timeouts are per namespace, but 0 keeps kube-proxy from writing them too.
 */
export function kubeProxyConfig(o: { nodeName: string }): string {
  return `apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: /etc/kubernetes/kube-proxy.conf
clusterCIDR: ${CLUSTER_CIDR}
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
hostnameOverride: ${o.nodeName}
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: 0.0.0.0:10256
mode: iptables
`;
}

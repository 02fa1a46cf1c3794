import { execFileSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { cidrText, parseNetwork as parseCidr } from '../../../lib/addr/addr.js';
import { parseFlags } from '../../../routesync/flags.js';
import { parseListenAddr } from '../../../routesync/server.js';
import { PLUGIN_NAMES } from '../../../plugins/registry.js';
import { EXECUTABLES, SEA_OPTIONS } from '../../../scripts/build.mjs';
import { REPO_ROOT } from '../../helpers/env.js';

/**
 * kind/ without a Docker engine: every manifest parses, every key it uses exists in the
 * Kubernetes API (checked against the official JavaScript client's generated models, which list
 * each type's fields), and the pieces reference each other consistently (image, service account,
 * volumes, the daemon's flags, the install script's path in the image).
 */
const kind = (f: string) => join(REPO_ROOT, 'kind', f);
const text = (f: string) => readFileSync(kind(f), 'utf8');

type Model = { getAttributeTypeMap(): { baseName: string; type: string }[] };
const models = k8s as unknown as Record<string, Model | undefined>;

/** Every key of `value` must be a field of API type `type`; returns the problems found. */
function checkType(value: unknown, type: string, path: string, problems: string[]): void {
  if (value === null || value === undefined) return;
  if (type.startsWith('Array<')) {
    if (!Array.isArray(value)) problems.push(`${path}: want a list (${type})`);
    else value.forEach((v, i) => checkType(v, type.slice(6, -1), `${path}[${i}]`, problems));
    return;
  }
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (map) {
    if (typeof value !== 'object' || Array.isArray(value)) problems.push(`${path}: want a map`);
    else for (const [k, v] of Object.entries(value)) checkType(v, map[1] as string, `${path}.${k}`, problems);
    return;
  }
  switch (type) {
    case 'string':
    case 'Date':
      if (typeof value !== 'string') problems.push(`${path}: want a string, got ${JSON.stringify(value)}`);
      return;
    case 'number':
      if (typeof value !== 'number') problems.push(`${path}: want a number, got ${JSON.stringify(value)}`);
      return;
    case 'boolean':
      if (typeof value !== 'boolean') problems.push(`${path}: want true/false, got ${JSON.stringify(value)}`);
      return;
    case 'IntOrString':
      if (typeof value !== 'string' && typeof value !== 'number') problems.push(`${path}: want an int or string`);
      return;
    case 'any':
    case 'object':
      return;
  }
  const model = models[type];
  if (!model || typeof model.getAttributeTypeMap !== 'function') {
    problems.push(`${path}: unknown API type ${type}`);
    return;
  }
  if (typeof value !== 'object' || Array.isArray(value)) {
    problems.push(`${path}: want an object (${type})`);
    return;
  }
  const fields = new Map(model.getAttributeTypeMap().map((a) => [a.baseName, a.type]));
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    const t = fields.get(k);
    if (!t) problems.push(`${path}.${k}: no such field in ${type}`);
    else checkType(v, t, `${path}.${k}`, problems);
  }
}

const MODEL_OF: Record<string, string> = {
  'v1/ServiceAccount': 'V1ServiceAccount',
  'rbac.authorization.k8s.io/v1/ClusterRole': 'V1ClusterRole',
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': 'V1ClusterRoleBinding',
  'apps/v1/DaemonSet': 'V1DaemonSet',
};

function docs(): Record<string, any>[] {
  const all = parseAllDocuments(text('podnet.yaml'));
  for (const d of all) expect(d.errors).toEqual([]);
  return all.map((d) => d.toJS());
}

function byKind(kindName: string): Record<string, any> {
  const d = docs().find((x) => x.kind === kindName);
  expect(d, kindName).toBeDefined();
  return d as Record<string, any>;
}

describe('the schema checker itself', () => {
  it('finds a misspelt key, a wrong type and an unknown nested field', () => {
    const problems: string[] = [];
    checkType({ spec: { template: { spec: { hostNetwrok: true, containers: [{ name: 'x', image: 3, securityContext: { capabilities: { add: ['NET_ADMIN'], addd: [] } } }] } } } }, 'V1DaemonSet', 'ds', problems);
    expect(problems).toEqual([
      'ds.spec.template.spec.hostNetwrok: no such field in V1PodSpec',
      'ds.spec.template.spec.containers[0].image: want a string, got 3',
      'ds.spec.template.spec.containers[0].securityContext.capabilities.addd: no such field in V1Capabilities',
    ]);
  });
});

describe('kind/podnet.yaml', () => {
  it('holds a ServiceAccount, ClusterRole, ClusterRoleBinding and DaemonSet, each using only real API fields', () => {
    const all = docs();
    expect(all.map((d) => d.kind)).toEqual(['ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'DaemonSet']);
    for (const d of all) {
      const model = MODEL_OF[`${d.apiVersion}/${d.kind}`];
      expect(model, `${d.apiVersion} ${d.kind}`).toBeDefined();
      const problems: string[] = [];
      checkType(d, model as string, d.kind, problems);
      expect(problems).toEqual([]);
    }
  });

  it('RBAC: get/list/watch on nodes only, bound to the DaemonSet\'s service account', () => {
    const role = byKind('ClusterRole');
    expect(role.rules).toEqual([{ apiGroups: [''], resources: ['nodes'], verbs: ['get', 'list', 'watch'] }]);
    const binding = byKind('ClusterRoleBinding');
    const sa = byKind('ServiceAccount');
    const ds = byKind('DaemonSet');
    expect(binding.roleRef).toEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: role.metadata.name });
    expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: sa.metadata.name, namespace: sa.metadata.namespace }]);
    expect(ds.spec.template.spec.serviceAccountName).toBe(sa.metadata.name);
    expect(ds.metadata.namespace).toBe(sa.metadata.namespace);
  });

  it('DaemonSet: host network, node-critical, tolerates every taint, selector matches the pod labels', () => {
    const ds = byKind('DaemonSet');
    const pod = ds.spec.template.spec;
    expect(pod.hostNetwork).toBe(true);
    expect(pod.priorityClassName).toBe('system-node-critical');
    expect(pod.tolerations).toEqual([{ operator: 'Exists' }]);
    for (const [k, v] of Object.entries(ds.spec.selector.matchLabels)) expect(ds.spec.template.metadata.labels[k]).toBe(v);
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(5);
  });

  it('main container: the daemon with NET_ADMIN + NET_RAW, NODE_NAME from the downward API, flags the daemon accepts, probes on its metrics port', () => {
    const pod = byKind('DaemonSet').spec.template.spec;
    expect(pod.containers).toHaveLength(1);
    const c = pod.containers[0];
    expect(c.command).toEqual(['/opt/podnet/bin/podnet-routesync']);
    expect(c.securityContext.capabilities.add).toEqual(expect.arrayContaining(['NET_ADMIN', 'NET_RAW']));
    expect(c.securityContext.privileged).toBe(false);
    expect(c.env).toContainEqual({ name: 'NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } });
    const parsed = parseFlags(c.args, { NODE_NAME: 'kind-worker' });
    expect(parsed.ok, JSON.stringify(parsed)).toBe(true);
    if (!parsed.ok) return;
    expect(parsed.options.nodeName).toBe('kind-worker');
    expect(parsed.options.kubeconfig).toBeUndefined(); // in-cluster service account
    const port = parseListenAddr(parsed.options.metricsAddr)?.port;
    expect(c.livenessProbe.httpGet).toEqual({ path: '/healthz', port });
    expect(c.readinessProbe.httpGet).toEqual({ path: '/readyz', port });
    expect(c.ports).toContainEqual({ name: 'metrics', containerPort: port, protocol: 'TCP' });
    // The daemon writes where the host's directories are mounted.
    const mounts = new Map(c.volumeMounts.map((m: { name: string; mountPath: string }) => [m.mountPath, m.name]));
    expect(mounts.get(parsed.options.cniConfDir)).toBe('cni-conf');
    // …and asks the node's own plugins (portmap above all) which CNI versions they speak.
    expect(mounts.get(parsed.options.cniBinDir)).toBe('cni-bin');
    expect(c.volumeMounts.find((m: { name: string }) => m.name === 'cni-bin').readOnly).toBe(true);
    expect(mounts.get(join(parsed.options.sysctlRoot, 'net'))).toBe('proc-sys-net');
    // podCIDRs are held to the cluster's pod subnet: the one kind gives the controller-manager.
    const podSubnet = String((parseYaml(text('cluster.yaml')) as { networking: { podSubnet: string } }).networking.podSubnet);
    expect(parsed.options.clusterCidrs).toEqual(podSubnet.split(',').map((t) => {
      const p = parseCidr(t.trim());
      if (!p.ok) throw new Error(p.error);
      return cidrText(p.value);
    }));
    // The heap cap is built into the executable (which ignores NODE_OPTIONS): none here.
    expect(c.env.find((e: { name: string }) => e.name === 'NODE_OPTIONS')).toBeUndefined();
    const daemon = EXECUTABLES.find((e) => e.name === 'podnet-routesync');
    expect(daemon?.execArgv?.join(' ')).toMatch(/--max-old-space-size=\d+/);
    expect(SEA_OPTIONS.execArgvExtension).toBe('none');
  });

  it('init container: runs the install script the image ships, into the host CNI bin dir', () => {
    const pod = byKind('DaemonSet').spec.template.spec;
    const init = pod.initContainers[0];
    expect(init.command[0]).toBe('/opt/podnet/install.sh');
    expect(text('Dockerfile')).toMatch(/^COPY kind\/install\.sh \/opt\/podnet\/install\.sh$/m);
    const dest = init.command[init.command.indexOf('--dest') + 1];
    const src = init.command[init.command.indexOf('--src') + 1];
    expect(init.volumeMounts).toEqual([{ name: 'cni-bin', mountPath: dest }]);
    expect(src).toBe('/opt/podnet/bin');
    expect(pod.volumes.find((v: { name: string }) => v.name === 'cni-bin').hostPath).toEqual({ path: '/opt/cni/bin', type: 'DirectoryOrCreate' });
  });

  it('every volumeMount names a volume; hostPath types are valid; one image, never pulled', () => {
    const pod = byKind('DaemonSet').spec.template.spec;
    const volumes = new Set(pod.volumes.map((v: { name: string }) => v.name));
    for (const c of [...pod.initContainers, ...pod.containers]) {
      for (const m of c.volumeMounts) expect(volumes.has(m.name), m.name).toBe(true);
      expect(c.image).toBe('podnet:dev');
      expect(c.imagePullPolicy).toBe('IfNotPresent');
    }
    for (const v of pod.volumes) {
      expect(['', 'DirectoryOrCreate', 'Directory', 'FileOrCreate', 'File', 'Socket', 'CharDevice', 'BlockDevice']).toContain(v.hostPath.type);
    }
    expect(text('up.sh')).toContain('IMAGE=${IMAGE:-podnet:dev}');
    expect(text('smoke.sh')).toContain('IMAGE=${IMAGE:-podnet:dev}');
  });
});

/**
 * Field names of kind's cluster config, from kind's pkg/apis/config/v1alpha4/types.go (the JSON
 * tags of Cluster, Node, Networking, Mount, PortMapping, PatchJSON6902).
 */
const KIND_FIELDS: Record<string, string[]> = {
  Cluster: ['kind', 'apiVersion', 'name', 'nodes', 'networking', 'featureGates', 'runtimeConfig', 'kubeadmConfigPatches', 'kubeadmConfigPatchesJSON6902', 'containerdConfigPatches', 'containerdConfigPatchesJSON6902'],
  Node: ['role', 'image', 'labels', 'extraMounts', 'extraPortMappings', 'gpus', 'kubeadmConfigPatches', 'kubeadmConfigPatchesJSON6902'],
  Networking: ['ipFamily', 'apiServerPort', 'apiServerAddress', 'podSubnet', 'serviceSubnet', 'disableDefaultCNI', 'kubeProxyMode', 'dnsSearch'],
};

describe('kind/cluster.yaml', () => {
  const c = parseYaml(text('cluster.yaml')) as Record<string, any>;

  it('uses only fields of kind.x-k8s.io/v1alpha4', () => {
    expect(c.apiVersion).toBe('kind.x-k8s.io/v1alpha4');
    expect(c.kind).toBe('Cluster');
    const extra = (o: Record<string, unknown>, known: string[]) => Object.keys(o).filter((k) => !known.includes(k));
    expect(extra(c, KIND_FIELDS.Cluster as string[])).toEqual([]);
    expect(extra(c.networking, KIND_FIELDS.Networking as string[])).toEqual([]);
    for (const n of c.nodes) {
      expect(extra(n, KIND_FIELDS.Node as string[])).toEqual([]);
      expect(['control-plane', 'worker']).toContain(n.role);
    }
  });

  it('no default CNI, a pod subnet to carve node podCIDRs from, at least two workers for the smoke test', () => {
    expect(c.networking.disableDefaultCNI).toBe(true);
    expect(parseCidr(c.networking.podSubnet).ok).toBe(true);
    expect(parseCidr(c.networking.serviceSubnet).ok).toBe(true);
    expect(['iptables', 'ipvs', 'nftables', 'none']).toContain(c.networking.kubeProxyMode);
    expect(c.nodes.filter((n: { role: string }) => n.role === 'worker').length).toBeGreaterThanOrEqual(2);
    expect(text('up.sh')).toContain('--config kind/cluster.yaml');
  });
});

describe('kind/Dockerfile', () => {
  const lines = text('Dockerfile')
    .split('\n')
    .filter((l) => l.trim() && !l.startsWith('#'))
    .join('\n')
    .replace(/\\\n/g, ' ')
    .split('\n');

  it('a pinned glibc base with the tools the daemon runs', () => {
    const from = lines.filter((l) => l.startsWith('FROM '));
    expect(from).toEqual(['FROM debian:12-slim']);
    const run = lines.filter((l) => l.startsWith('RUN ')).join(' ');
    for (const pkg of ['iproute2', 'nftables', 'iptables']) expect(run).toContain(pkg);
  });

  it('copies only files the build produces or the repository has', () => {
    const build = readFileSync(join(REPO_ROOT, 'scripts', 'build.mjs'), 'utf8');
    for (const l of lines.filter((x) => x.startsWith('COPY '))) {
      const parts = l.split(/\s+/).slice(1, -1);
      for (const p of parts) {
        if (p.startsWith('dist/bin/')) expect(build).toContain(`name: '${p.slice('dist/bin/'.length)}'`);
        else expect(statSync(join(REPO_ROOT, p)).isFile(), p).toBe(true);
      }
    }
    expect(lines.find((l) => l.startsWith('ENTRYPOINT'))).toBe('ENTRYPOINT ["/opt/podnet/bin/podnet-routesync"]');
  });

  it('the links it makes are the plugin names the multi-call executable answers to (plugins/registry.ts)', () => {
    // The build takes its links from the registry itself; the image and install.sh are shell, held to it here.
    expect(EXECUTABLES.find((e) => e.name === 'podnet')?.links).toEqual(PLUGIN_NAMES);
    const links = [...lines.join('\n').matchAll(/ln -s podnet \/opt\/podnet\/bin\/(\S+)/g)].map((m) => m[1]);
    expect(links.sort()).toEqual([...PLUGIN_NAMES].sort());
    expect(/^LINKS="(.*)"$/m.exec(text('install.sh'))?.[1]?.split(' ').sort()).toEqual([...PLUGIN_NAMES].sort());
  });
});

describe('kind scripts', () => {
  it('parse (bash -n / sh -n), are executable, and up.sh references files that exist', () => {
    for (const [shell, f] of [['bash', 'up.sh'], ['bash', 'smoke.sh'], ['sh', 'install.sh']] as const) {
      execFileSync(shell, ['-n', kind(f)]);
      expect(statSync(kind(f)).mode & 0o111, f).not.toBe(0);
    }
    for (const ref of ['kind/Dockerfile', 'kind/cluster.yaml', 'kind/podnet.yaml', 'kind/smoke.sh']) {
      expect(text('up.sh')).toContain(ref);
      expect(statSync(join(REPO_ROOT, ref)).isFile()).toBe(true);
    }
    for (const step of ['npm run build', 'docker build', 'kind create cluster', 'kind load docker-image', 'apply -f', 'wait --for=condition=Ready nodes --all']) {
      expect(text('up.sh')).toContain(step);
    }
  });
});

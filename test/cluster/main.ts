/**
 * npm run cluster -- up [--name N] [--nodes 3] [--cni podnet|reference] | down | status
 *                  | restart NODE COMPONENT | kubectl ARGS...
 *
 * A kind-shaped Kubernetes cluster without Docker: real etcd, kube-apiserver, controller-manager,
 * scheduler, containerd 2, kubelet and kube-proxy as processes in per-node network + mount + UTS
 * namespaces, podnet installed from kind/podnet.yaml. See test/cluster/cluster.ts.
 */
import { isRoot } from '../helpers/env.js';
import { Cluster, type Cni } from './cluster.js';

const USAGE = `usage: npm run cluster -- <command> [--name NAME]
  up [--nodes N] [--cni podnet|reference]   build what is missing, start the cluster, wait for Ready
  down                                      remove every process, mount, cgroup and namespace it made
  status                                    components and nodes
  restart NODE COMPONENT                    e.g. restart pcl-worker kubelet
  kubectl ARGS...                           kubectl in the fabric namespace with the admin kubeconfig
`;

async function main(argv: string[]): Promise<number> {
  let name = process.env.PODNET_CLUSTER_NAME ?? 'pcl';
  const args: string[] = [];
  let nodes = 3;
  let cni: Cni = 'podnet';
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (args[0] === 'kubectl') {
      args.push(a);
      continue;
    }
    if (a === '--name') name = argv[++i] ?? name;
    else if (a === '--nodes') nodes = Number(argv[++i]);
    else if (a === '--cni') cni = argv[++i] === 'reference' ? 'reference' : 'podnet';
    else if (a === '-h' || a === '--help') {
      process.stdout.write(USAGE);
      return 0;
    } else args.push(a);
  }
  const cmd = args.shift();
  if (!cmd) {
    process.stderr.write(USAGE);
    return 2;
  }
  if (!isRoot) {
    process.stderr.write('npm run cluster needs root: it creates namespaces and cgroups (nothing in the root network namespace changes)\n');
    return 1;
  }
  const started = Date.now();
  const say = (m: string) => process.stdout.write(`▸ ${m}  [${((Date.now() - started) / 1000).toFixed(1)} s]\n`);
  const cluster = new Cluster(name, { say });
  switch (cmd) {
    case 'up':
      try {
        await cluster.up({ nodes, cni });
      } catch (e) {
        process.stderr.write(`\ncluster up failed: ${e instanceof Error ? e.message : String(e)}\nlogs: ${cluster.dir}/logs; remove with: npm run cluster -- down${name === 'pcl' ? '' : ` --name ${name}`}\n`);
        return 1;
      }
      process.stdout.write(`\n${await cluster.status()}\n\nnext: npm run cluster -- kubectl get pods -A -o wide\n`);
      return 0;
    case 'down':
      await cluster.down();
      say(`cluster "${name}" removed`);
      return 0;
    case 'status':
      process.stdout.write(`${await cluster.status()}\n`);
      return 0;
    case 'restart': {
      const [node, comp] = args;
      if (!node || !comp) {
        process.stderr.write(USAGE);
        return 2;
      }
      await cluster.restart(node, comp);
      say(`${comp} restarted on ${node}`);
      return 0;
    }
    case 'kubectl': {
      const r = await cluster.kubectl(args, { reject: false, stdio: 'inherit', timeout: 0 });
      return r.exitCode ?? 1;
    }
    default:
      process.stderr.write(USAGE);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  },
);

import { readFile } from 'node:fs/promises';
import { createLogger, type Logger } from '../lib/cni/log.js';
import { processRunner } from '../lib/linux/exec.js';
import { createVersionLookup } from './plugin-versions.js';
import { type ConflistTemplate, DEFAULT_TEMPLATE, checkTemplate } from './conflist.js';
import { type Options, helpText, parseFlags } from './flags.js';
import { IpHostNet } from './host-net.js';
import { RouteSyncLoop } from './loop.js';
import { Metrics } from './metrics.js';
import { FileNodeSource } from './file-node-source.js';
import { KubeNodeSource } from './kube-node-source.js';
import { loadKubeConfig } from './kubeconfig.js';
import type { NodeSource } from './node-source.js';
import { parseClusterCidrs } from './pod-network.js';
import { selectMasq } from './reconcile-masq.js';
import { type HealthServer, startHealthServer } from './server.js';

/**
 * podnet-routesync as a function of (argv, env): parse flags, build the node source, the kernel
 * seams and the loop, then either one pass (--once) or run until SIGTERM/SIGINT.
 * Exit codes: 0 converged / clean stop, 1 not converged or failed to start, 2 usage error.
 */
export interface RunIo {
  out(text: string): void;
  err(text: string): void;
}

const defaultIo: RunIo = {
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
};

/** Exit deadline after SIGTERM (kubelet's grace period is longer; the brief asks for < 5 s). */
const STOP_DEADLINE_MS = 4500;

async function loadTemplate(path: string | undefined): Promise<ConflistTemplate> {
  if (!path) return structuredClone(DEFAULT_TEMPLATE) as unknown as ConflistTemplate;
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(path, 'utf8'));
  } catch (e) {
    throw new Error(`failed to load conflist template "${path}": ${(e as Error).message}`, { cause: e });
  }
  const bad = checkTemplate(parsed);
  if (bad) throw new Error(`failed to load conflist template "${path}": ${bad}`);
  return parsed as ConflistTemplate;
}

function makeSource(o: Options): NodeSource {
  if (o.nodesFile) return new FileNodeSource(o.nodesFile, { pollMs: o.pollMs });
  return new KubeNodeSource(loadKubeConfig({ kubeconfig: o.kubeconfig }), { pageSize: o.listPageSize });
}

function waitForSignal(log: Logger): Promise<string> {
  return new Promise((resolve) => {
    const on = (sig: NodeJS.Signals) => {
      process.off('SIGTERM', on);
      process.off('SIGINT', on);
      log.info('stopping; routes, rules and the CNI config stay in place', { signal: sig });
      resolve(sig);
    };
    process.on('SIGTERM', on);
    process.on('SIGINT', on);
  });
}

export async function runRouteSync(argv: readonly string[], env: NodeJS.ProcessEnv, io: RunIo = defaultIo): Promise<number> {
  const parsed = parseFlags(argv, env);
  if (!parsed.ok) {
    io.err(`podnet-routesync: ${parsed.error}\nrun "podnet-routesync --help" for the flags\n`);
    return 2;
  }
  const o = parsed.options;
  if (o.help) {
    io.out(helpText());
    return 0;
  }
  const log = createLogger({ level: o.logLevel, base: { component: 'podnet-routesync', node: o.nodeName }, write: (l) => io.err(l) });

  let template: ConflistTemplate;
  let source: NodeSource;
  try {
    template = await loadTemplate(o.conflistTemplate);
    source = makeSource(o);
  } catch (e) {
    log.error((e as Error).message);
    return 1;
  }
  const parsedCluster = parseClusterCidrs(o.clusterCidrs);
  const cluster = parsedCluster.ok ? parsedCluster.value : []; // parseFlags checked them
  const runner = processRunner;
  const masq = await selectMasq(o.masquerade, runner);
  const metrics = new Metrics();
  const loop = new RouteSyncLoop({
    source,
    net: new IpHostNet(runner),
    masq,
    metrics,
    log,
    pluginVersions: createVersionLookup(o.cniBinDir),
    options: {
      nodeName: o.nodeName,
      cniConfDir: o.cniConfDir,
      writeConflist: o.writeConflist,
      template,
      sysctlRoot: o.sysctlRoot,
      brNetfilter: o.brNetfilter,
      routeProtocol: o.routeProtocol,
      resyncMs: o.resyncMs,
      clusterCIDRs: cluster,
    },
  });

  if (o.once) {
    let nodes;
    try {
      nodes = await source.listOnce();
    } catch (e) {
      log.error((e as Error).message, { source: source.description });
      return 1;
    }
    const r = await loop.reconcileNodes(nodes, true);
    const problems = [...r.errors, ...r.conditions];
    if (problems.length) {
      log.error('not converged', { problems });
      return 1;
    }
    log.info('converged', { routes: r.routes ? r.routes.programmed[4] + r.routes.programmed[6] : 0, rejected: r.desired?.rejections.length ?? 0 });
    return 0;
  }

  let server: HealthServer | undefined;
  if (o.metricsAddr) {
    try {
      server = await startHealthServer(o.metricsAddr, {
        status: () => loop.status(),
        metrics: () => metrics.render(),
        stuckAfterMs: Math.max(60_000, 2 * o.resyncMs),
      });
    } catch (e) {
      log.error((e as Error).message);
      return 1;
    }
  }
  log.info('starting', {
    source: source.description,
    masquerade: masq.backend,
    metrics: server?.address ?? 'off',
    cniConfDir: o.cniConfDir,
    routeProtocol: o.routeProtocol,
    clusterCIDRs: o.clusterCidrs.length ? o.clusterCidrs : 'not enforced',
  });
  const stopped = waitForSignal(log);
  loop.start();
  await stopped;
  // Whatever still holds the event loop (a hung request), the process is gone within 5 s.
  setTimeout(() => process.exit(0), STOP_DEADLINE_MS).unref();
  await loop.stop(2500);
  await server?.close();
  return 0;
}

import { KubeConfig } from '@kubernetes/client-node';

/** One line for an error of the Kubernetes client: HTTP status and the API's message, or the
 * network error with its causes. */
export function describeError(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  const code = (e as { code?: unknown }).code;
  const body = (e as { body?: unknown }).body;
  if (typeof code === 'number' && body !== undefined) {
    let msg = '';
    try {
      const b = typeof body === 'string' ? (JSON.parse(body) as { message?: string }) : (body as { message?: string });
      msg = b?.message ?? '';
    } catch {
      msg = String(body).slice(0, 200);
    }
    return `HTTP ${code}${msg ? `: ${msg}` : ''}`;
  }
  const status = (e as { statusCode?: unknown }).statusCode;
  let text = typeof status === 'number' ? `HTTP ${status}: ${e.message}` : e.message;
  let cause = (e as { cause?: unknown }).cause;
  for (let depth = 0; cause instanceof Error && depth < 3; depth += 1) {
    text += `: ${cause.message}`;
    cause = (cause as { cause?: unknown }).cause;
  }
  return text;
}

/**
 * Kubeconfig: `--kubeconfig PATH` when given, else the in-cluster service account (the
 * DaemonSet). Errors say what to do instead.
 */
export function loadKubeConfig(opts: { kubeconfig?: string | undefined; env?: NodeJS.ProcessEnv }): KubeConfig {
  const kc = new KubeConfig();
  if (opts.kubeconfig) {
    try {
      kc.loadFromFile(opts.kubeconfig);
    } catch (e) {
      throw new Error(`failed to load kubeconfig "${opts.kubeconfig}": ${describeError(e)}`, { cause: e });
    }
    const cluster = kc.getCurrentCluster();
    if (!cluster || !cluster.server) {
      throw new Error(`failed to load kubeconfig "${opts.kubeconfig}": no current context with a cluster server`);
    }
    return kc;
  }
  const env = opts.env ?? process.env;
  if (!env.KUBERNETES_SERVICE_HOST || !env.KUBERNETES_SERVICE_PORT) {
    throw new Error(
      'failed to load in-cluster config: KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT are not set (not running in a pod); pass --kubeconfig PATH or --nodes-file PATH',
    );
  }
  kc.loadFromCluster();
  return kc;
}

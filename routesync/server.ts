import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { LoopStatus } from './loop.js';

/**
 * /metrics (Prometheus text), /healthz (liveness: the process answers and no pass is stuck) and
 * /readyz (readiness: nodes listed, last pass converged — CNI config written, routes programmed,
 * br_netfilter on). Both health endpoints answer JSON with the reasons.
 */
export interface HealthServer {
  server: Server;
  /** host:port actually bound (port 0 picks one). */
  address: string;
  close(): Promise<void>;
}

/** "HOST:PORT", ":PORT" or "[v6]:PORT" → host and port. */
export function parseListenAddr(addr: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(addr);
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port > 65535) return undefined;
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

export async function startHealthServer(
  addr: string,
  deps: { status(): LoopStatus; metrics(): string; stuckAfterMs: number },
): Promise<HealthServer> {
  const listen = parseListenAddr(addr);
  if (!listen) throw new Error(`failed to parse --metrics-addr "${addr}": want HOST:PORT`);
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/metrics') {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }).end(deps.metrics());
      return;
    }
    if (path === '/healthz' || path === '/readyz') {
      const s = deps.status();
      const stuck = s.passRunningSinceMs !== undefined && s.passRunningSinceMs > deps.stuckAfterMs;
      const ok = path === '/healthz' ? !stuck : s.converged && !stuck;
      const body = { status: ok ? 'ok' : path === '/healthz' ? 'stuck' : 'not ready', ...s, ...(stuck ? { stuck: true } : {}) };
      res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' }).end(`${JSON.stringify(body)}\n`);
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics, /healthz, /readyz\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e) => reject(new Error(`failed to listen on "${addr}": ${e.message}`, { cause: e })));
    server.listen(listen.port, listen.host, () => resolve());
  });
  const a = server.address() as AddressInfo;
  return {
    server,
    address: `${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

import { createInterface } from 'node:readline';
import { FakeApiServer, type FakeApiServerOptions } from './fake-apiserver.js';

/**
 * The fake API server as a process, so it can run inside a network namespace of a test lab
 * (`ip netns exec fabric node fake-apiserver-cli.mjs --host 172.18.0.1 --port 6443`). Driven
 * over stdio: one JSON request per stdin line `{"id", "op", "args": [...]}`, one JSON answer per
 * stdout line `{"id", "ok", "result"|"error"}`; the first stdout line is `{"ready": true, "url"}`.
 * `op` is a method of FakeApiServer (upsert, remove, setNodes, seed, compact, bookmark, advance,
 * failNext, stop, start, counts, list, get, requestsSince) — see fake-apiserver-process.ts.
 */
function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
}

async function main(): Promise<void> {
  const opts: FakeApiServerOptions = { host: arg('host') ?? '127.0.0.1', port: Number(arg('port') ?? 0) };
  const goneAs = arg('gone-as');
  if (goneAs === 'event' || goneAs === 'status') opts.goneAs = goneAs;
  const api = new FakeApiServer(opts);
  await api.start();
  const reply = (o: unknown) => process.stdout.write(`${JSON.stringify(o)}\n`);
  reply({ ready: true, url: api.url });
  const ops: Record<string, (...a: never[]) => unknown> = {
    upsert: (n: never) => api.upsert(n),
    remove: (name: never) => api.remove(name),
    setNodes: (nodes: never) => api.setNodes(nodes),
    seed: (nodes: never) => api.seed(nodes),
    compact: () => api.compact(),
    bookmark: () => api.bookmark(),
    advance: (n: never) => api.advance(n),
    failNext: (n: never, code: never) => api.failNext(n, code),
    stop: () => api.stop(),
    start: () => api.start(),
    counts: () => api.counts(),
    list: () => api.list(),
    get: (name: never) => api.get(name),
    resourceVersion: () => api.resourceVersion,
    requestsSince: (i: never) => api.requests.slice(i),
  };
  const rl = createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    let req: { id: number; op: string; args?: unknown[] };
    try {
      req = JSON.parse(line);
    } catch {
      return;
    }
    const f = ops[req.op];
    if (!f) {
      reply({ id: req.id, ok: false, error: `unknown op ${req.op}` });
      return;
    }
    Promise.resolve()
      .then(() => f(...((req.args ?? []) as never[])))
      .then(
        (result) => reply({ id: req.id, ok: true, result: result ?? null }),
        (e: unknown) => reply({ id: req.id, ok: false, error: e instanceof Error ? e.message : String(e) }),
      );
  });
  rl.on('close', () => {
    void api.stop().then(() => process.exit(0));
  });
}

main().catch((e: unknown) => {
  process.stderr.write(`fake-apiserver: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});

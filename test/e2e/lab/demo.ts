/**
 * npm run demo [-- --keep | --down] [--nodes N] [--pods N]
 *
 * podnet doing its whole job on one machine without Docker: a 3-node kind-style cluster made of
 * network namespaces, podnet-routesync on every node, pods wired through the CNI contract, and
 * the Kubernetes network model checked with real TCP connections.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { DIST_BIN, REPO_ROOT, isRoot } from '../../helpers/env.js';
import { upstreamCniBin } from '../../helpers/peers.js';
import { Lab, type LabNode, type Pod, probe } from './lab.js';

const PREFIX = 'pdemo';

interface Step {
  title: string;
  fix: string;
}

let current: Step | undefined;
/** The step that failed, kept while teardown runs its own step. */
let failed: Step | undefined;
const started = Date.now();

function step(title: string, fix: string): void {
  current = { title, fix };
  process.stdout.write(`\n▸ ${title}  (${((Date.now() - started) / 1000).toFixed(1)} s)\n`);
}

const say = (msg: string) => process.stdout.write(`  ${msg}\n`);

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      keep: { type: 'boolean', default: false },
      down: { type: 'boolean', default: false },
      nodes: { type: 'string', default: '3' },
      pods: { type: 'string', default: '2' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write('usage: npm run demo [-- --keep | --down] [--nodes N] [--pods N]\n');
    return 0;
  }
  if (!isRoot) {
    process.stderr.write('npm run demo needs root: it creates network namespaces (nothing in the root namespace changes)\n');
    return 1;
  }
  if (values.down) {
    const lab = Lab.load(PREFIX, say);
    if (!lab) {
      say('no kept lab to remove');
      return 0;
    }
    await lab.destroy();
    say('lab removed');
    return 0;
  }

  const nodeCount = Number(values.nodes);
  const podsPerNode = Number(values.pods);

  step('building podnet', 'run `npm run build` and read its error');
  buildIfNeeded();
  upstreamCniBin(); // the reference portmap and loopback the lab chains: throws naming scripts/peers.sh when not built

  step(`creating a ${nodeCount}-node lab`, 'a kept lab may be in the way: npm run demo -- --down');
  if (Lab.load(PREFIX)) {
    say('a lab from an earlier run is still here: removing it');
    await Lab.load(PREFIX)?.destroy();
  }
  const lab = await Lab.create({ prefix: PREFIX, nodes: nodeCount, log: say });
  let ok = false;
  try {
    step('starting podnet-routesync on every node', 'look at the routesync log named in the error');
    for (const node of lab.nodes) lab.startRoutesync(node);
    for (const node of lab.nodes) {
      const conf = await lab.waitForConflist(node);
      await lab.waitForRoutes(node, lab.nodes);
      say(`${node.name}: wrote ${conf.name} conflist (${conf.plugins.map((p) => p.type).join(' → ')}), routes to ${lab.nodes.length - 1} peers`);
    }

    step(`starting ${podsPerNode} pods per node through the CNI contract`, 'the error names the plugin and its CNI error; see the plugin config in the node net.d dir');
    await Promise.all(
      lab.nodes.map(async (node) => {
        for (let i = 1; i <= podsPerNode; i++) await lab.addPod(node, `${node.name}-pod${i}`);
      }),
    );
    printPods(lab.pods, lab.nodes);

    step('checking connectivity with real TCP connections', 'see which cell failed: routes (ip -n <node> route), bridge, or masquerade');
    await lab.startProbes();
    const failures = await printConnectivity(lab);
    ok = failures === 0;
    process.stdout.write(`\n${ok ? '✔ every check passed' : `✘ ${failures} check(s) failed`} in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
  } catch (e) {
    failed = current;
    throw e;
  } finally {
    if (values.keep) {
      process.stdout.write(`\nlab kept: namespaces ${lab.state.fabric}, ${lab.nodes.map((n) => n.ns).join(', ')}; state in ${lab.dir}\n`);
      process.stdout.write(`  look around: ip netns exec ${lab.nodes[0]?.ns} ip route; remove it: npm run demo -- --down\n`);
    } else {
      step('tearing the lab down (CNI DEL for every pod, daemons stopped, namespaces removed)', 'npm run demo -- --down');
      await lab.destroy();
    }
  }
  return ok ? 0 : 1;
}

/** Build when an executable is missing or older than any source file. */
function buildIfNeeded(): void {
  const exes = ['podnet', 'podnet-routesync'].map((n) => join(DIST_BIN, n));
  const built = Math.min(...exes.map((f) => (existsSync(f) ? statSync(f).mtimeMs : 0)));
  const newest = Math.max(...['plugins', 'ipam'].map((d) => newestMtime(join(REPO_ROOT, d))));
  if (built >= newest) {
    say('executables are up to date');
    return;
  }
  say('running npm run build');
  execFileSync('npm', ['run', 'build'], { cwd: REPO_ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
}

function newestMtime(dir: string): number {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    newest = Math.max(newest, e.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs);
  }
  return newest;
}

function printPods(pods: Pod[], nodes: LabNode[]): void {
  const rows = [['POD', 'NODE', 'NODE IP', 'POD IP', 'IFACE', 'NETNS']];
  for (const p of byNode(pods)) rows.push([p.name, p.node, nodes.find((n) => n.name === p.node)?.ip ?? '', p.ip, p.ifName, p.ns]);
  process.stdout.write('\n');
  printTable(rows);
}

async function printConnectivity(lab: Lab): Promise<number> {
  let failures = 0;
  const pods = byNode(lab.pods);

  process.stdout.write('\n  pod → pod: each cell is the source address the receiver saw (✔ = the sender\'s own pod IP, no NAT)\n\n');
  const header = ['FROM \\ TO', ...pods.map((p) => p.name)];
  const rows = [header];
  for (const src of pods) {
    const results = await probe(src.ns, pods.map((p) => p.ip));
    rows.push([
      src.name,
      ...results.map((r) => {
        if (r.seen === src.ip) return `✔ ${r.seen}`;
        failures += 1;
        return r.seen ? `✘ ${r.seen}` : `✘ ${r.error}`;
      }),
    ]);
  }
  printTable(rows);

  process.stdout.write('\n  node → pod: the source address each pod saw (✔ = the node\'s own IP)\n\n');
  const nodeRows = [['FROM \\ TO', ...pods.map((p) => p.name)]];
  for (const node of lab.nodes) {
    const results = await probe(node.ns, pods.map((p) => p.ip));
    nodeRows.push([
      node.name,
      ...results.map((r) => {
        // A node reaches a local pod from its bridge address, a remote one from its uplink.
        if (r.seen) return `✔ ${r.seen}`;
        failures += 1;
        return `✘ ${r.error}`;
      }),
    ]);
  }
  printTable(nodeRows);

  process.stdout.write(`\n  pod → outside the cluster (${lab.outsideAddress}): masqueraded to the node IP\n\n`);
  const outRows = [['POD', 'POD IP', 'SEEN AS', '']];
  for (const src of pods) {
    const [r] = await probe(src.ns, [lab.outsideAddress]);
    const nodeIp = lab.node(src.node).ip;
    const good = r?.seen === nodeIp;
    if (!good) failures += 1;
    outRows.push([src.name, src.ip, r?.seen ?? r?.error ?? '?', good ? '✔ node IP' : '✘ expected the node IP']);
  }
  printTable(outRows);
  return failures;
}

const byNode = (pods: Pod[]) => [...pods].sort((a, b) => a.node.localeCompare(b.node) || a.name.localeCompare(b.name));

function printTable(rows: string[][]): void {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  for (const r of rows) process.stdout.write(`  ${r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()}\n`);
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    const msg = e instanceof Error ? e.message : String(e);
    const at = failed ?? current;
    process.stderr.write(`\n✘ failed while ${at?.title ?? 'starting'}: ${msg}\n`);
    if (at) process.stderr.write(`  fix: ${at.fix}\n`);
    process.exitCode = 1;
  },
);

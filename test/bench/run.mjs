// npm run bench [-- section ...]: runs every test/bench/<section>.bench.ts in turn (or the ones
// named). Each section is a script that prints measured figures; nothing here asserts a time.
// Sections are TypeScript: esbuild bundles each to a temporary ESM file (dependencies stay
// external) and it runs on the same Node 22 as the tests.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
const wanted = process.argv.slice(2);
const sections = readdirSync(here)
  .filter((f) => f.endsWith('.bench.ts'))
  .map((f) => f.slice(0, -'.bench.ts'.length))
  .filter((name) => wanted.length === 0 || wanted.includes(name))
  .sort();
if (sections.length === 0) {
  console.error(`no bench sections match ${wanted.join(' ')}`);
  process.exit(2);
}
const work = mkdtempSync(join(here, '.run-'));
let failed = 0;
try {
  for (const name of sections) {
    const outfile = join(work, `${name}.mjs`);
    await esbuild.build({
      entryPoints: [join(here, `${name}.bench.ts`)],
      outfile,
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node22',
      packages: 'external',
      logLevel: 'warning',
    });
    console.log(`\n## ${name}\n`);
    try {
      execFileSync(process.execPath, [outfile], { stdio: 'inherit', cwd: join(here, '..', '..') });
    } catch {
      failed += 1;
      console.log(`(section ${name} failed)`);
    }
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
process.exitCode = failed ? 1 : 0;

// npm run bench [-- section ...]: runs every test/bench/<section>.bench.ts in turn (or the ones
// named), each bundled and run on this Node by scripts/run-ts.mjs. A section is a script that
// prints measured figures; nothing here asserts a time.
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleTs, runBundled } from '../../scripts/run-ts.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const wanted = process.argv.slice(2);
const sections = readdirSync(here)
  .filter((f) => f.endsWith('.bench.ts'))
  .map((f) => f.slice(0, -'.bench.ts'.length))
  .filter((name) => wanted.length === 0 || wanted.includes(name))
  .sort();
if (sections.length === 0) {
  console.error(`no bench sections match: ${wanted.join(' ') || '(none exist yet)'}`);
  process.exit(2);
}
let failed = 0;
for (const name of sections) {
  console.log(`\n## ${name}\n`);
  const { outfile, cleanup } = await bundleTs(join(here, `${name}.bench.ts`));
  try {
    const code = await runBundled(outfile, []);
    if (code !== 0) {
      failed += 1;
      console.log(`(section ${name} exited with ${code})`);
    }
  } finally {
    cleanup();
  }
}
process.exitCode = failed ? 1 : 0;

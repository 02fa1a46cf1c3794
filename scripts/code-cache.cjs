// The V8 code cache of a wrapped bundle (scripts/build.mjs), run with the Node the executable
// embeds, so V8 accepts it there:
//   node code-cache.cjs <bundle> <out> cold          what V8 compiles up front, nothing run
//   node code-cache.cjs <bundle> <out> run <args…>   runs the bundle as the plugin would (env,
//                                                    stdin, argv) and, when it succeeds, writes
//                                                    the cache with every function it compiled
'use strict';
const { readFileSync, writeFileSync } = require('node:fs');
const { Script } = require('node:vm');

const [file, out, mode, ...args] = process.argv.slice(2);
const script = new Script(readFileSync(file, 'utf8'), { filename: 'podnet.cjs' });
if (mode === 'cold') {
  writeFileSync(out, script.createCachedData());
} else {
  // The bundle reads its plugin name from argv[2] (plugins/multicall.ts).
  process.argv = [process.argv[0], file, ...args];
  process.on('exit', (code) => {
    if (code === 0 && !process.exitCode) writeFileSync(out, script.createCachedData());
  });
  script.runInThisContext()(exports, require, module, __filename, __dirname);
}

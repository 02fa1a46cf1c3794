// The entry point of a plugin executable (scripts/build.mjs): the bundle and a V8 code cache
// trained on a real ADD are the executable's SEA assets. Node's own SEA code cache holds only
// what V8 compiles up front, so every invocation compiled each function it called (a function
// is compiled on its first call); with the trained cache they come compiled: an ADD ~7 ms sooner
// and ~5 ms of CPU cheaper (npm run bench, README "Performance"). V8 checks the cache against the
// source and its flags: a cache it rejects is reported and the bundle runs compiled as it goes.
// NODE_V8_COVERAGE=<dir> makes Node write a coverage file into that directory at exit, as root:
// stopped before anything else (Node then says on stderr that it has no coverage to write).
if (process.env.NODE_V8_COVERAGE !== undefined) require('node:v8').stopCoverage();

const { getAsset, getRawAsset } = require('node:sea');
const { Script } = require('node:vm');

// The cache as a view of the executable's asset, not a copy (V8 only reads it).
const script = new Script(getAsset('bundle', 'utf8'), { filename: 'podnet.cjs', cachedData: new Uint8Array(getRawAsset('cache')) });
if (script.cachedDataRejected) process.stderr.write("podnet: V8 rejected this executable's code cache; running without it\n");
script.runInThisContext()(exports, require, module, __filename, __dirname);

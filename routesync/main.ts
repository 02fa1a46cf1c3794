import { stopCoverage } from 'node:v8';
import { runRouteSync } from './daemon.js';

// NODE_V8_COVERAGE=<dir> would make the daemon write a coverage file into that directory at exit.
if (process.env.NODE_V8_COVERAGE !== undefined) stopCoverage();

// podnet-routesync entry point: wiring only (see daemon.ts). No top-level await: this file is
// bundled to CommonJS into its own executable, dist/bin/podnet-routesync.
function main(): Promise<number> {
  return runRouteSync(process.argv.slice(2), process.env);
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`podnet-routesync: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exitCode = 1;
  },
);

// Bundling shim for proper-lockfile's signal-exit dependency in the plugin executable.
// signal-exit loads node:assert and hooks every signal just so a lock held at exit is removed;
// that costs ~6 ms of a plugin's start-up (npm run bench -- host-local). A plugin releases its
// lock in `finally`, and one left by a killed process goes stale after 4 s (disk-store.ts), so
// the plugin executable registers no exit hooks. Tests and the daemon use the real package.
module.exports = () => () => {};

// The floor: a single executable that does nothing, built exactly as the plugins are (same Node,
// same SEA options, same code cache). `npm run bench` times it beside podnet and the reference:
// what podnet costs beyond this is podnet's own.

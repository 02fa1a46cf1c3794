// The floor: a single executable that does nothing, built with the same Node and the same SEA
// options as the plugins. `npm run bench` times it beside podnet and the reference: what podnet
// costs beyond this — its loader (scripts/sea-main.cjs), its bundle and that bundle's code
// cache included — is podnet's own.

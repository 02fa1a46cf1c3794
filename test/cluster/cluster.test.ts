import { defineClusterSuite } from './suite.js';

// One file, so the two clusters run one after the other (each is 3 nodes of real Kubernetes on
// a 2-core machine): podnet with the upstream e2e network tests, then the reference plugins
// through the same checks of ours.
defineClusterSuite('podnet', { upstream: true });
defineClusterSuite('reference', { upstream: false });
